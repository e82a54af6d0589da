//! Judging a run: each threshold of the test evaluated on the merged cluster result (exact
//! histograms added across nodes and, for `cycle = "all"`, across cycles; never an average of
//! nodes), per cycle or for the whole run.

use std::fmt::Write;

use serde::{Deserialize, Serialize};

use super::merge::{MergedCycle, MergedRun};
use super::stats;
use crate::result::threshold::{Kind, Metric, Scope, Threshold};
use crate::result::{Counts, StepInfo};

/// One threshold judged, as `summary.json` carries it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ThresholdSummary {
    /// The threshold in words, e.g. `p95 of all pages ≤ 300 ms`.
    pub name: String,
    /// `p50` … `apdex`, as in the test file.
    pub metric: String,
    /// The step it is taken at; null for all pages.
    pub step: Option<String>,
    /// `each`, `last` or `all`.
    pub cycle: String,
    /// `max` or `min`.
    pub bound: String,
    /// The limit in the metric's unit: ms (latencies), a fraction 0-1 (`error_rate`), per
    /// second (rates), the score (`apdex`).
    pub limit: f64,
    /// The limit in words, e.g. `≤ 300 ms`.
    pub limit_text: String,
    /// Also evaluated live, every second, and after how long broken it stops the run, s.
    pub abort: bool,
    pub abort_after_s: f64,
    /// True when every check passed and it did not stop the run live.
    pub passed: bool,
    /// True when it stopped the run live (see [`super::Summary::stopped_by`]).
    #[serde(default)]
    pub stopped_run: bool,
    /// One check per cycle (`each`), one for the last cycle or one for the whole run.
    pub checks: Vec<ThresholdCheck>,
}

/// A threshold with `abort = true` that stayed broken live for its `abort_after` and stopped
/// the run: which, and when.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LiveStop {
    /// Its place among the test's thresholds, from 0.
    pub index: usize,
    /// The threshold in words, as in [`ThresholdSummary::name`].
    pub threshold: String,
    /// Second of the run (from its start) in which it was first broken, of the seconds in a
    /// row that stopped the run.
    pub broken_from_s: u32,
    /// Second of the run at which the run was stopped (the end of the last broken second).
    pub at_s: u32,
    /// The value in its last second, in words (e.g. `412 ms`).
    pub value_text: String,
}

impl std::fmt::Display for LiveStop {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} broken from second {} of the run ({} in its last second): every node stopped at \
             {} s",
            self.threshold, self.broken_from_s, self.value_text, self.at_s
        )
    }
}

/// Marks the threshold that stopped the run as failed, whatever the end of the run says.
pub fn mark_stop(thresholds: &mut [ThresholdSummary], stop: &LiveStop) {
    if let Some(t) = thresholds.get_mut(stop.index) {
        t.passed = false;
        t.stopped_run = true;
    }
}

/// One value measured and compared with the limit.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ThresholdCheck {
    /// Cycle number, from 0; null for the whole run.
    pub cycle: Option<u32>,
    /// Users of that cycle over all nodes; null for the whole run.
    pub users: Option<u32>,
    /// Where it was measured, in words: `cycle 2 (60 users)` (cycles counted from 1 here) or
    /// `whole run`.
    pub place: String,
    /// Measured window, s (all windows together for the whole run).
    pub duration_s: f64,
    /// The value in the metric's unit; null when nothing was measured (which fails).
    pub value: Option<f64>,
    /// The value in words, e.g. `412.5 ms`, or `nothing measured`.
    pub value_text: String,
    pub passed: bool,
}

/// Judges every threshold the run's configuration holds.
pub fn evaluate(run: &MergedRun) -> Vec<ThresholdSummary> {
    run.config
        .thresholds
        .iter()
        .map(|t| judge(run, t))
        .collect()
}

/// Number of thresholds that failed.
pub fn failed(thresholds: &[ThresholdSummary]) -> usize {
    thresholds.iter().filter(|t| !t.passed).count()
}

fn judge(run: &MergedRun, t: &Threshold) -> ThresholdSummary {
    let cycles: Vec<&MergedCycle> = run.cycles.iter().collect();
    let mut checks: Vec<ThresholdCheck> = match t.scope {
        Scope::Each => cycles.iter().map(|c| check(run, t, &[c])).collect(),
        Scope::Last => cycles
            .last()
            .map(|c| check(run, t, &[c]))
            .into_iter()
            .collect(),
        Scope::All => vec![check(run, t, &cycles)],
    };
    if checks.is_empty() {
        // No cycle ran: nothing to judge is not a pass.
        checks.push(check(run, t, &[]));
    }
    ThresholdSummary {
        name: t.to_string(),
        metric: t.metric.as_str().into(),
        step: t.step.clone(),
        cycle: t.scope.as_str().into(),
        bound: t.bound.as_str().into(),
        limit: t.limit,
        limit_text: t.limit_text(),
        abort: t.abort,
        abort_after_s: t.abort_after_s,
        passed: checks.iter().all(|c| c.passed),
        stopped_run: false,
        checks,
    }
}

/// The check of `t` over `cycles` merged (one cycle, or every cycle for the whole run).
fn check(run: &MergedRun, t: &Threshold, cycles: &[&MergedCycle]) -> ThresholdCheck {
    let basis = Basis {
        steps: &run.steps,
        apdex_t_s: run.config.apdex_t_s,
    };
    let value = measure(basis, t, cycles);
    let one = (cycles.len() == 1 && t.scope != Scope::All).then(|| cycles[0]);
    ThresholdCheck {
        cycle: one.map(|c| c.index),
        users: one.map(|c| c.users),
        place: one.map_or_else(
            || "whole run".into(),
            |c| {
                let s = if c.users == 1 { "" } else { "s" };
                format!("cycle {} ({} user{s})", c.index + 1, c.users)
            },
        ),
        duration_s: cycles.iter().map(|c| c.window_s).sum(),
        value,
        value_text: value.map_or_else(|| "nothing measured".into(), |v| t.format(v)),
        passed: value.is_some_and(|v| t.passes(v)),
    }
}

/// What thresholds are measured against besides the figures: the run's steps (named, in the
/// order of the per-step figures) and its Apdex T, s. The end of a run takes them from the
/// merged result; the live abort from the test plan.
#[derive(Debug, Clone, Copy)]
pub struct Basis<'a> {
    pub steps: &'a [StepInfo],
    pub apdex_t_s: f64,
}

/// The value of `t`'s metric over `cycles` merged, in its unit; `None` when nothing was
/// measured. One evaluation for both inputs: the cycles of a merged result at the end, and
/// the live window of the last seconds ([`crate::live::abort`]) while the run goes on.
pub fn measure(basis: Basis<'_>, t: &Threshold, cycles: &[&MergedCycle]) -> Option<f64> {
    let step = match &t.step {
        Some(name) => Some(basis.steps.iter().position(|s| s.name == *name)?),
        None => None,
    };
    if t.metric.kind() == Kind::Rate {
        return rate(t.metric, step, cycles);
    }
    let mut c = Counts::default();
    for cycle in cycles {
        match step {
            Some(i) => c.merge(cycle.steps.get(i)?),
            None => c.merge(&cycle.pages),
        }
    }
    if c.total() == 0 {
        return None;
    }
    let latency = || (!c.latency.is_empty()).then(|| stats::latency(&c.latency));
    Some(match t.metric {
        Metric::P50 => latency()?.p50,
        Metric::P90 => latency()?.p90,
        Metric::P95 => latency()?.p95,
        Metric::P99 => latency()?.p99,
        Metric::P999 => latency()?.p999,
        Metric::Max => latency()?.max,
        Metric::Mean => latency()?.mean,
        Metric::ErrorRate => (c.failure + c.error) as f64 / c.total() as f64,
        Metric::Apdex => stats::apdex(&c.latency, c.success, c.failure, c.error, basis.apdex_t_s)?,
        Metric::Rps | Metric::Spps | Metric::Stps => return None,
    })
}

/// A rate over `cycles`: each cycle's rate (summed over nodes, each over its own window),
/// weighted by the cycle's window.
fn rate(metric: Metric, step: Option<usize>, cycles: &[&MergedCycle]) -> Option<f64> {
    let of = |c: &MergedCycle| match (metric, step) {
        (Metric::Rps, _) => Some(c.requests_per_s),
        (Metric::Stps, _) => Some(c.tests_ok_per_s),
        (_, Some(i)) => c.steps_ok_per_s.get(i).copied(),
        _ => Some(c.pages_ok_per_s),
    };
    let window: f64 = cycles.iter().map(|c| c.window_s).sum();
    if window <= 0.0 {
        return None;
    }
    let mut sum = 0.0;
    for c in cycles {
        sum += of(c)? * c.window_s;
    }
    Some(sum / window)
}

/// The thresholds as text, for `--text` and the terminal: one line per check, after the
/// threshold that stopped the run if one did.
pub fn write_text(out: &mut String, thresholds: &[ThresholdSummary], stop: Option<&LiveStop>) {
    if let Some(stop) = stop {
        let _ = writeln!(out, "STOPPED BY A THRESHOLD: {stop}");
    }
    if thresholds.is_empty() {
        return;
    }
    let failed = failed(thresholds);
    let _ = writeln!(
        out,
        "THRESHOLDS: {} ({} of {} passed)",
        if failed == 0 { "PASSED" } else { "FAILED" },
        thresholds.len() - failed,
        thresholds.len()
    );
    for t in thresholds {
        for c in &t.checks {
            let _ = writeln!(
                out,
                "  {}  {} — {}: {}",
                if c.passed { "pass" } else { "FAIL" },
                t.name,
                c.place,
                c.value_text
            );
        }
    }
    out.push('\n');
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::result::threshold::Bound;

    fn cycle(index: u32, window_s: f64, latencies_ms: &[u64], errors: u64) -> MergedCycle {
        let mut pages = Counts::default();
        for ms in latencies_ms {
            pages.latency.record(ms * 1000).unwrap();
        }
        pages.success = latencies_ms.len() as u64;
        pages.error = errors;
        MergedCycle {
            index,
            users: 10 * (index + 1),
            window_s,
            pages_ok_per_s: pages.success as f64 / window_s,
            pages,
            ..MergedCycle::default()
        }
    }

    fn run(cycles: Vec<MergedCycle>, thresholds: Vec<Threshold>) -> MergedRun {
        MergedRun {
            tool_version: String::new(),
            run: String::new(),
            test: Default::default(),
            config: crate::result::BenchConfig {
                apdex_t_s: 1.5,
                thresholds,
                ..Default::default()
            },
            steps: Vec::new(),
            scenarios: Vec::new(),
            data: Vec::new(),
            started_unix_ms: 0,
            finished_unix_ms: 0,
            start_skew_ms: 0,
            interrupted: false,
            cycles,
            series: Vec::new(),
            latency: Default::default(),
            errors: Vec::new(),
            resources: Vec::new(),
            nodes: Vec::new(),
        }
    }

    fn t(metric: Metric, scope: Scope, bound: Bound, limit: f64) -> Threshold {
        Threshold {
            metric,
            step: None,
            scope,
            bound,
            limit,
            abort: false,
            abort_after_s: 0.0,
        }
    }

    #[test]
    fn each_last_and_all_judge_their_cycles() {
        // Cycle 1: 100 pages at 10 ms; cycle 2: 100 at 10 ms and 10 at 500 ms.
        let c1 = cycle(0, 10.0, &[10; 100], 0);
        let mut slow = vec![10; 100];
        slow.extend([500; 10]);
        let c2 = cycle(1, 10.0, &slow, 0);
        let p95 = |scope| t(Metric::P95, scope, Bound::Max, 100.0);
        let r = run(
            vec![c1, c2],
            vec![p95(Scope::Each), p95(Scope::Last), p95(Scope::All)],
        );
        let j = evaluate(&r);
        assert_eq!(
            j[0].checks.iter().map(|c| c.passed).collect::<Vec<_>>(),
            [true, false]
        );
        assert!(!j[1].passed && j[1].checks.len() == 1 && j[1].checks[0].cycle == Some(1));
        // Merged: 10 slow of 210 is under 5 %: the whole run passes.
        assert!(j[2].passed, "{:?}", j[2]);
        assert_eq!(j[2].checks[0].cycle, None);
        assert_eq!(failed(&j), 2);
    }

    #[test]
    fn rates_error_rates_and_empty_cycles() {
        let r = run(
            vec![cycle(0, 10.0, &[5; 50], 50), cycle(1, 30.0, &[5; 300], 0)],
            vec![
                t(Metric::Spps, Scope::All, Bound::Min, 8.0),
                t(Metric::ErrorRate, Scope::Each, Bound::Max, 0.01),
            ],
        );
        let j = evaluate(&r);
        // (5/s × 10 s + 10/s × 30 s) / 40 s = 8.75/s.
        assert_eq!(j[0].checks[0].value, Some(8.75));
        assert!(j[0].passed);
        assert_eq!(j[1].checks[0].value, Some(0.5));
        assert_eq!(j[1].checks[0].value_text, "50 %");
        assert!(!j[1].passed);
        let empty = run(vec![], vec![t(Metric::P99, Scope::Each, Bound::Max, 1.0)]);
        let j = evaluate(&empty);
        assert!(!j[0].passed);
        assert_eq!(j[0].checks[0].value_text, "nothing measured");
    }
}
