//! Latency percentiles and active users over time: read off the merged run's interval
//! histograms and per-second series, carried in `summary.json` (so that `--diff` overlays two
//! stored runs), and their charts ([`figures`], [`step_figure`], [`overlay`]) drawn with
//! [`super::chart::LineChart`].

use serde::{Deserialize, Serialize};

use super::chart::{figure, Figure, LineChart};
use super::merge::MergedRun;
use super::ReportError;
use crate::result::{LatencyInterval, LatencySeries, SecondSample, StepInfo};

/// A run's figures over time.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct OverTime {
    /// Length of one latency interval, s (0 when the results hold no intervals: older nodes).
    pub interval_s: u32,
    /// All pages, one point per interval in which a page completed.
    pub pages: Vec<IntervalLatency>,
    /// Per step, in the test's order.
    pub steps: Vec<StepOverTime>,
    /// Users running at the end of each second, all nodes: `[second, users]`.
    pub users: Vec<(u32, u32)>,
}

/// One step's latency over time.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct StepOverTime {
    pub step: String,
    /// One point per interval in which a page of the step completed.
    pub points: Vec<IntervalLatency>,
}

/// Latency of the pages that completed in one interval.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct IntervalLatency {
    /// Start of the interval, seconds since the earliest node's start.
    pub start_s: u32,
    /// Pages with a latency (successes and failures) that completed in it.
    pub pages: u64,
    /// Percentiles of their latency, ms (1 % precision: interval histograms keep 2 digits).
    pub p50_ms: f64,
    pub p95_ms: f64,
    pub p99_ms: f64,
}

impl IntervalLatency {
    fn of(start_s: u32, h: &hdrhistogram::Histogram<u64>) -> IntervalLatency {
        let ms = |q: f64| h.value_at_quantile(q) as f64 / 1000.0;
        IntervalLatency {
            start_s,
            pages: h.len(),
            p50_ms: ms(0.5),
            p95_ms: ms(0.95),
            p99_ms: ms(0.99),
        }
    }
}

impl OverTime {
    /// The figures of a merged run: every interval's histograms unpacked once.
    pub fn of(run: &MergedRun) -> OverTime {
        OverTime::from_parts(&run.latency, &run.steps, &run.series)
    }

    fn from_parts(latency: &LatencySeries, steps: &[StepInfo], series: &[SecondSample]) -> Self {
        let LatencySeries {
            interval_s,
            intervals,
        } = latency;
        let start = |iv: &LatencyInterval| iv.index.saturating_mul(*interval_s);
        let mut steps: Vec<StepOverTime> = steps
            .iter()
            .map(|s| StepOverTime {
                step: s.name.clone(),
                points: Vec::new(),
            })
            .collect();
        let mut pages = Vec::with_capacity(intervals.len());
        for iv in intervals {
            let mut all = crate::result::latency::new_interval_histogram();
            for (i, p) in iv.steps.iter().enumerate().filter(|(_, p)| !p.is_empty()) {
                let h = p.unpack();
                all.add(&h).expect("interval histograms share bounds");
                if let Some(s) = steps.get_mut(i) {
                    s.points.push(IntervalLatency::of(start(iv), &h));
                }
            }
            if !all.is_empty() {
                pages.push(IntervalLatency::of(start(iv), &all));
            }
        }
        OverTime {
            interval_s: *interval_s,
            pages,
            steps,
            users: series.iter().map(|s| (s.second, s.users)).collect(),
        }
    }
}

/// The points of one percentile, against the interval's start (s).
fn line(points: &[IntervalLatency], f: fn(&IntervalLatency) -> f64) -> Vec<(f64, f64)> {
    points
        .iter()
        .map(|p| (f64::from(p.start_s), f(p)))
        .collect()
}

/// A chart of p50, p95 and p99 per interval for each `(label prefix, points)`.
fn percentiles(runs: &[(&str, &[IntervalLatency])], width: u32) -> LineChart {
    let mut chart = LineChart {
        width,
        height: 300,
        ..LineChart::new("", "seconds since start", "latency (ms)")
    };
    for (prefix, points) in runs {
        chart = chart
            .line(&format!("{prefix}p50"), line(points, |p| p.p50_ms), false)
            .line(&format!("{prefix}p95"), line(points, |p| p.p95_ms), false)
            .line(&format!("{prefix}p99"), line(points, |p| p.p99_ms), false);
    }
    chart
}

/// A chart of users running per second for each `(label, series)`.
fn users(runs: &[(&str, &[(u32, u32)])]) -> LineChart {
    let mut chart = LineChart {
        width: 1160,
        height: 260,
        ..LineChart::new("", "seconds since start", "users")
    };
    for (label, series) in runs {
        let points = series
            .iter()
            .map(|&(t, u)| (f64::from(t), f64::from(u)))
            .collect();
        chart = chart.line(label, points, false);
    }
    chart
}

/// Seconds of each interval, said in a caption.
fn per(t: &OverTime) -> String {
    match t.interval_s {
        1 => "per second".into(),
        n => format!("per {n}-s interval"),
    }
}

/// The report's charts over time: all pages' latency percentiles per interval, active users.
pub fn figures(t: &OverTime) -> Result<Vec<Figure>, ReportError> {
    let mut out = Vec::new();
    if !t.pages.is_empty() {
        let caption = format!("Page latency percentiles over time, {}", per(t));
        let chart = percentiles(&[("", &t.pages)], 1160);
        out.push(figure("latency-over-time", &caption, chart)?);
    }
    if !t.users.is_empty() {
        let chart = users(&[("users", &t.users)]);
        out.push(figure("users-over-time", "Active users over time", chart)?);
    }
    Ok(out)
}

/// Step `index`'s latency percentiles per interval, `number` naming its anchor; `None` when
/// the step has no interval.
pub fn step_figure(
    t: &OverTime,
    index: usize,
    number: usize,
) -> Result<Option<Figure>, ReportError> {
    let Some(step) = t.steps.get(index).filter(|s| !s.points.is_empty()) else {
        return Ok(None);
    };
    let chart = percentiles(&[("", &step.points)], 520);
    let caption = format!("Latency over time, {}", per(t));
    figure(&format!("step-{number}-over-time"), &caption, chart).map(Some)
}

/// `--diff`: both runs' latency percentiles over time and active users, overlaid; nothing
/// for a run without them.
pub fn overlay(
    base: (&str, &OverTime),
    new: (&str, &OverTime),
) -> Result<Vec<Figure>, ReportError> {
    let (b, n) = (format!("base {}: ", base.0), format!("new {}: ", new.0));
    let mut out = Vec::new();
    if !base.1.pages.is_empty() && !new.1.pages.is_empty() {
        let chart = percentiles(&[(&b, &base.1.pages), (&n, &new.1.pages)], 1160);
        let caption = "Page latency percentiles over time";
        out.push(figure("diff-latency-over-time", caption, chart)?);
    }
    if !base.1.users.is_empty() && !new.1.users.is_empty() {
        let runs = [
            (b.trim_end_matches(": "), &base.1.users[..]),
            (n.trim_end_matches(": "), &new.1.users[..]),
        ];
        out.push(figure(
            "diff-users-over-time",
            "Active users over time",
            users(&runs),
        )?);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::result::{latency::new_interval_histogram, LatencySum};

    #[test]
    fn percentiles_per_interval_all_pages_and_per_step() {
        let mut sum = LatencySum::new(2, 2);
        let mut fast = new_interval_histogram();
        let mut slow = new_interval_histogram();
        for _ in 0..90 {
            fast.record(1_000).unwrap();
        }
        for _ in 0..10 {
            slow.record(50_000).unwrap();
        }
        sum.add_second(1, 0, &fast);
        sum.add_second(1, 1, &slow);
        sum.add_second(6, 1, &slow);
        let steps = vec![StepInfo::default(), StepInfo::default()];
        let t = OverTime::from_parts(&sum.finish(), &steps, &[]);
        assert_eq!(t.interval_s, 2);
        assert_eq!(t.pages.len(), 2);
        let first = &t.pages[0];
        assert_eq!((first.start_s, first.pages), (0, 100));
        assert!((first.p50_ms - 1.0).abs() < 0.01, "{first:?}");
        assert!((first.p95_ms - 50.0).abs() < 0.5, "{first:?}");
        assert_eq!(t.pages[1].start_s, 6);
        assert_eq!(t.steps[0].points.len(), 1);
        assert_eq!(t.steps[1].points.len(), 2);
    }
}
