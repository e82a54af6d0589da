//! Differential report: two runs side by side per concurrency level, with deltas, charts and
//! a verdict per metric that says better or worse only when the change is significant
//! ([`super::significance`]); per scenario (STPS, error %, test latency) and per data file
//! (rows used, ran out) when the runs have them.

use std::path::{Path, PathBuf};

use serde::Serialize;

use super::chart::{figure, Figure, LineChart};
use super::input::{self, RunInput};
use super::significance::{self, Change, Interval, Mean, Quantile, Share, Statistic};
use super::stats::{CycleSummary, DataSummary, ScenarioSummary, WindowSecond};
use super::{ReportError, ReportOptions, Summary, Templates};
use crate::result::Packed;

/// Relative change below which a rate or latency is "the same within noise", %, when a run
/// has no per-second data to compute an interval from (a `summary.json` from before it, or a
/// window of fewer than [`significance::MIN_SECONDS`] seconds).
pub const NOISE_PCT: f64 = 5.0;
/// Change of error % below which it is "the same within noise", percentage points (likewise).
pub const NOISE_ERROR_POINTS: f64 = 0.5;

/// A metric compared between runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Metric {
    Spps,
    Rps,
    P50,
    P95,
    P99,
    ErrorPct,
}

impl Metric {
    /// Every metric, in table order.
    pub const ALL: [Metric; 6] = [
        Metric::Spps,
        Metric::Rps,
        Metric::P50,
        Metric::P95,
        Metric::P99,
        Metric::ErrorPct,
    ];

    /// Name shown in tables.
    pub fn name(self) -> &'static str {
        match self {
            Metric::Spps => "SPPS",
            Metric::Rps => "RPS",
            Metric::P50 => "p50 (ms)",
            Metric::P95 => "p95 (ms)",
            Metric::P99 => "p99 (ms)",
            Metric::ErrorPct => "error %",
        }
    }

    /// The metric's value in one cycle.
    pub fn of(self, c: &CycleSummary) -> f64 {
        match self {
            Metric::Spps => c.pages.rates.per_s,
            Metric::Rps => c.requests.rates.per_s,
            Metric::P50 => c.latency_ms.p50,
            Metric::P95 => c.latency_ms.p95,
            Metric::P99 => c.latency_ms.p99,
            Metric::ErrorPct => c.requests.rates.error_pct,
        }
    }

    fn higher_is_better(self) -> bool {
        matches!(self, Metric::Spps | Metric::Rps)
    }

    /// How its change is given: error % in percentage points, the others in %.
    fn change(self) -> Change {
        match self {
            Metric::ErrorPct => Change::Absolute,
            _ => Change::Relative,
        }
    }

    /// The metric as a statistic of a cycle's seconds, when the cycle has them.
    fn statistic(self, c: &CycleSummary) -> Option<Box<dyn Statistic>> {
        let per_second = |f: fn(&WindowSecond) -> u64| -> Box<dyn Statistic> {
            Box::new(Mean(c.seconds.iter().map(|s| f(s) as f64).collect()))
        };
        let quantile = |q: f64| -> Option<Box<dyn Statistic>> {
            let seconds = latency_seconds(c)?;
            Some(Box::new(Quantile::new(q, seconds)))
        };
        match self {
            Metric::P50 => quantile(0.50),
            Metric::P95 => quantile(0.95),
            Metric::P99 => quantile(0.99),
            _ if c.seconds.is_empty() => None,
            Metric::Spps => Some(per_second(|s| s.pages_ok)),
            Metric::Rps => Some(per_second(|s| s.requests)),
            Metric::ErrorPct => Some(Box::new(Share {
                seconds: c.seconds.iter().map(|s| (s.bad, s.requests)).collect(),
            })),
        }
    }

    /// The confidence interval of the metric's change from `b` to `n`, when both have the
    /// seconds it needs.
    fn interval(self, b: &CycleSummary, n: &CycleSummary) -> Option<Interval> {
        significance::interval(&*self.statistic(b)?, &*self.statistic(n)?, self.change())
    }
}

/// Better, worse or the same: significantly so (the confidence interval of the change excludes
/// zero), or, without an interval, beyond the fixed noise band. `Mixed`: better at some
/// concurrency levels and worse at others (a metric's verdict over levels only).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    Better,
    Worse,
    Same,
    Mixed,
}

impl Verdict {
    fn judge(metric: Metric, delta: f64, change_pct: Option<f64>, ci: Option<Interval>) -> Verdict {
        let (same, up) = match ci {
            Some(ci) => (!ci.excludes_zero(), ci.low > 0.0),
            None => {
                let noise = match metric {
                    Metric::ErrorPct => delta.abs() < NOISE_ERROR_POINTS,
                    _ => change_pct.map_or(delta == 0.0, |c| c.abs() < NOISE_PCT),
                };
                (noise, delta > 0.0)
            }
        };
        if same {
            Verdict::Same
        } else if up == metric.higher_is_better() {
            Verdict::Better
        } else {
            Verdict::Worse
        }
    }
}

/// One metric at one concurrency level.
#[derive(Debug, Clone, Serialize)]
pub struct Delta {
    pub metric: &'static str,
    pub base: f64,
    pub new: f64,
    /// new - base.
    pub delta: f64,
    /// (new - base) / base, % (None when base is 0).
    pub change_pct: Option<f64>,
    /// 95 % confidence interval of the change: of `change_pct` (%), or of `delta` (percentage
    /// points) for error %; None when a run has no per-second data for it (then the fixed
    /// noise band judged).
    pub interval: Option<Interval>,
    pub verdict: Verdict,
}

impl Delta {
    /// The change in the unit its interval and `--fail-if-worse` use: % or, for error %,
    /// percentage points.
    fn change(&self, m: Metric) -> Option<f64> {
        match m.change() {
            Change::Absolute => Some(self.delta),
            Change::Relative => self.change_pct,
        }
    }
}

/// One concurrency level present in both runs.
#[derive(Debug, Clone, Serialize)]
pub struct Level {
    /// Users in the base run.
    pub users: u32,
    /// Users in the new run (differs from `users` when cycles matched by position).
    pub new_users: u32,
    pub deltas: Vec<Delta>,
    /// The scenarios both runs have, in the base run's order (empty without scenarios).
    pub scenarios: Vec<ScenarioLevel>,
}

/// One scenario's tests at one level in both runs: STPS, error % and test p95, in that order.
/// Judged by the fixed noise band only (a scenario has no per-second series to give an
/// interval), and not gated by `--fail-if-worse`.
#[derive(Debug, Clone, Serialize)]
pub struct ScenarioLevel {
    pub name: String,
    pub deltas: Vec<Delta>,
}

/// A scenario's figure compared: name, the metric whose verdict rules it follows, the value.
type ScenarioMetric = (&'static str, Metric, fn(&ScenarioSummary) -> f64);

/// What a scenario is compared on.
const SCENARIO_METRICS: [ScenarioMetric; 3] = [
    ("STPS", Metric::Spps, |s| s.tests.per_s),
    ("error %", Metric::ErrorPct, |s| s.tests.error_pct),
    ("test p95 (ms)", Metric::P95, |s| s.latency_ms.p95),
];

/// One `[[data]]` file in either run, by name.
#[derive(Debug, Clone, Serialize)]
pub struct DataDiff {
    pub name: String,
    pub base: Option<DataSummary>,
    pub new: Option<DataSummary>,
}

/// One step's page resources in either run (a step that had some in one of them), by name.
#[derive(Debug, Clone, Serialize)]
pub struct ResourceDiff {
    pub step: String,
    pub base: Option<PerPage>,
    pub new: Option<PerPage>,
}

/// A step's page resources per page, over the run's measured windows.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct PerPage {
    /// Resource requests per page.
    pub requests: f64,
    /// Their body KiB per page, over the wire.
    pub kib: f64,
    /// Resources answered 304 or taken fresh from the cache, % of all the page wanted.
    pub from_cache_pct: f64,
}

impl PerPage {
    fn of(s: &super::stats::StepSummary) -> Option<PerPage> {
        let r = &s.resources;
        (!r.is_empty() && s.pages > 0).then(|| PerPage {
            requests: r.requests as f64 / s.pages as f64,
            kib: r.bytes as f64 / 1024.0 / s.pages as f64,
            from_cache_pct: super::stats::pct(r.revalidated + r.cached, r.requests + r.cached),
        })
    }
}

/// The verdict on one metric over every level.
#[derive(Debug, Clone, Serialize)]
pub struct MetricVerdict {
    pub metric: &'static str,
    pub verdict: Verdict,
    /// One paragraph saying why.
    pub text: String,
}

/// Two runs compared.
#[derive(Debug, Clone, Serialize)]
pub struct Diff {
    pub levels: Vec<Level>,
    /// Users levels found in one run only.
    pub unmatched: Vec<u32>,
    /// True when cycles were matched by position because no users level matched.
    pub by_position: bool,
    pub verdicts: Vec<MetricVerdict>,
    /// Scenarios found in one run only.
    pub unmatched_scenarios: Vec<String>,
    /// The data files of both runs (base's order, then the new run's others).
    pub data: Vec<DataDiff>,
    /// The steps with page resources in either run (base's order, then the new run's others).
    pub resources: Vec<ResourceDiff>,
}

/// A metric at a level that is significantly worse by more than `--fail-if-worse`'s limit.
#[derive(Debug, Clone, PartialEq)]
pub struct Regression {
    pub users: u32,
    pub metric: &'static str,
    /// The change, % (percentage points for error %).
    pub change: f64,
    pub interval: Option<Interval>,
}

impl std::fmt::Display for Regression {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let unit = unit(self.metric == Metric::ErrorPct.name());
        write!(
            f,
            "{} at {} users: {}",
            self.metric,
            self.users,
            signed(self.change, unit)
        )?;
        match self.interval {
            Some(ci) => write!(f, " (95 % interval {})", span(ci, unit)),
            None => write!(f, " (no per-second data: beyond the fixed noise band)"),
        }
    }
}

impl Diff {
    /// Every metric at every level that is worse (significantly, or beyond the noise band
    /// without an interval) by more than `limit`: % of the base value, or percentage points
    /// for error %.
    pub fn regressions(&self, limit: f64) -> Vec<Regression> {
        let mut found = Vec::new();
        for l in &self.levels {
            for (m, d) in Metric::ALL.iter().zip(&l.deltas) {
                let Some(change) = d.change(*m) else { continue };
                let worse_by = if m.higher_is_better() {
                    -change
                } else {
                    change
                };
                if d.verdict == Verdict::Worse && worse_by > limit {
                    found.push(Regression {
                        users: l.users,
                        metric: d.metric,
                        change,
                        interval: d.interval,
                    });
                }
            }
        }
        found
    }
}

/// A cycle's latency intervals as (value µs, count) pairs each; `None` when it has none (an
/// older summary) or one does not decode (a damaged file: the noise band judges instead).
fn latency_seconds(c: &CycleSummary) -> Option<Vec<Vec<(u64, u64)>>> {
    if c.latency_intervals.is_empty() {
        return None;
    }
    c.latency_intervals
        .iter()
        .map(|text| {
            let h = Packed::from_base64(text).ok()?.unpack();
            Some(
                h.iter_recorded()
                    .map(|v| (v.value_iterated_to(), v.count_at_value()))
                    .collect(),
            )
        })
        .collect()
}

/// A metric's delta from `vb` to `vn`, judged by `interval` or else the noise band.
fn delta(name: &'static str, m: Metric, (vb, vn): (f64, f64), interval: Option<Interval>) -> Delta {
    let change_pct = Change::Relative.of(vb, vn);
    Delta {
        metric: name,
        base: vb,
        new: vn,
        delta: vn - vb,
        change_pct,
        interval,
        verdict: Verdict::judge(m, vn - vb, change_pct, interval),
    }
}

fn level(b: &CycleSummary, n: &CycleSummary) -> Level {
    let scenarios = b
        .scenarios
        .iter()
        .filter_map(|sb| {
            let sn = n.scenarios.iter().find(|s| s.name == sb.name)?;
            let deltas = SCENARIO_METRICS
                .iter()
                .map(|(name, m, f)| delta(name, *m, (f(sb), f(sn)), None))
                .collect();
            Some(ScenarioLevel {
                name: sb.name.clone(),
                deltas,
            })
        })
        .collect();
    Level {
        users: b.users,
        new_users: n.users,
        deltas: Metric::ALL
            .iter()
            .map(|&m| delta(m.name(), m, (m.of(b), m.of(n)), m.interval(b, n)))
            .collect(),
        scenarios,
    }
}

/// The scenario names of one run only.
fn unmatched_scenarios(base: &Summary, new: &Summary) -> Vec<String> {
    let names = |s: &Summary| -> Vec<String> {
        let mut names: Vec<String> = Vec::new();
        for c in &s.cycles {
            for sc in &c.scenarios {
                if !names.contains(&sc.name) {
                    names.push(sc.name.clone());
                }
            }
        }
        names
    };
    let (b, n) = (names(base), names(new));
    let only = |a: &[String], other: &[String]| -> Vec<String> {
        a.iter().filter(|x| !other.contains(x)).cloned().collect()
    };
    [only(&b, &n), only(&n, &b)].concat()
}

/// The data files of both runs, matched by name.
fn data_diff(base: &Summary, new: &Summary) -> Vec<DataDiff> {
    let find = |s: &Summary, name: &str| s.data.iter().find(|d| d.name == name).cloned();
    let mut out: Vec<DataDiff> = base
        .data
        .iter()
        .map(|d| DataDiff {
            name: d.name.clone(),
            base: Some(d.clone()),
            new: find(new, &d.name),
        })
        .collect();
    for d in &new.data {
        if find(base, &d.name).is_none() {
            out.push(DataDiff {
                name: d.name.clone(),
                base: None,
                new: Some(d.clone()),
            });
        }
    }
    out
}

/// The steps with page resources in either run, matched by name.
fn resource_diff(base: &Summary, new: &Summary) -> Vec<ResourceDiff> {
    let find = |s: &Summary, name: &str| {
        s.steps
            .iter()
            .find(|x| x.name == name)
            .and_then(PerPage::of)
    };
    let mut names: Vec<&str> = base.steps.iter().map(|s| s.name.as_str()).collect();
    for s in &new.steps {
        if !names.contains(&s.name.as_str()) {
            names.push(&s.name);
        }
    }
    names
        .into_iter()
        .map(|name| ResourceDiff {
            step: name.to_string(),
            base: find(base, name),
            new: find(new, name),
        })
        .filter(|d| d.base.is_some() || d.new.is_some())
        .collect()
}

/// Compares `new` with `base`, level by level: cycles match by their total users; when no
/// level matches but both runs have as many cycles, they match by position instead (the node
/// count changed).
pub fn compare(base: &Summary, new: &Summary) -> Diff {
    let mut levels = Vec::new();
    let mut unmatched = Vec::new();
    for b in &base.cycles {
        match new.cycles.iter().find(|n| n.users == b.users) {
            Some(n) => levels.push(level(b, n)),
            None => unmatched.push(b.users),
        }
    }
    for n in &new.cycles {
        if !base.cycles.iter().any(|b| b.users == n.users) {
            unmatched.push(n.users);
        }
    }
    let by_position = levels.is_empty() && base.cycles.len() == new.cycles.len();
    if by_position {
        levels = base
            .cycles
            .iter()
            .zip(&new.cycles)
            .map(|(b, n)| level(b, n))
            .collect();
        unmatched.clear();
    }
    let verdicts = Metric::ALL
        .iter()
        .enumerate()
        .map(|(i, &m)| verdict(m, levels.iter().map(|l| (l.users, &l.deltas[i]))))
        .collect();
    Diff {
        levels,
        unmatched,
        by_position,
        verdicts,
        unmatched_scenarios: unmatched_scenarios(base, new),
        data: data_diff(base, new),
        resources: resource_diff(base, new),
    }
}

fn signed(x: f64, unit: &str) -> String {
    format!("{}{:.1}{unit}", if x >= 0.0 { "+" } else { "−" }, x.abs())
}

fn unit(points: bool) -> &'static str {
    if points {
        " points"
    } else {
        " %"
    }
}

/// An interval as text: `+27.0 … +33.1 %`.
fn span(ci: Interval, unit: &str) -> String {
    format!("{} … {}", signed(ci.low, ""), signed(ci.high, unit))
}

/// The verdict over levels: better or worse when some levels are and none the other way.
fn overall(deltas: &[(u32, &Delta)]) -> (Verdict, usize, usize) {
    let count = |v| deltas.iter().filter(|d| d.1.verdict == v).count();
    let (better, worse) = (count(Verdict::Better), count(Verdict::Worse));
    let v = match (better, worse) {
        (0, 0) => Verdict::Same,
        (_, 0) => Verdict::Better,
        (0, _) => Verdict::Worse,
        _ => Verdict::Mixed,
    };
    (v, better, worse)
}

fn verdict<'a>(m: Metric, deltas: impl Iterator<Item = (u32, &'a Delta)>) -> MetricVerdict {
    let deltas: Vec<(u32, &Delta)> = deltas.collect();
    let unit = unit(m == Metric::ErrorPct);
    let values: Vec<(u32, f64, Option<Interval>)> = deltas
        .iter()
        .filter_map(|(u, d)| Some((*u, d.change(m)?, d.interval)))
        .collect();
    if values.is_empty() {
        return MetricVerdict {
            metric: m.name(),
            verdict: Verdict::Same,
            text: format!("{}: no level to compare.", m.name()),
        };
    }
    let (overall, better, worse) = overall(&deltas);
    let word = match overall {
        Verdict::Better => "better",
        Verdict::Worse => "worse",
        Verdict::Mixed => "better at some levels and worse at others",
        Verdict::Same => "the same",
    };
    let at = |(u, c, ci): &(u32, f64, Option<Interval>)| {
        let ci = ci.map_or_else(|| "no interval".to_string(), |ci| span(ci, unit));
        format!("{} at {u} users (95 % interval {ci})", signed(*c, unit))
    };
    let shown: Vec<String> = values.iter().map(at).collect();
    let text = format!(
        "{} is {word}: {}; {better} level{} significantly better, {worse} worse, {} the same.",
        m.name(),
        shown.join(", "),
        if better == 1 { "" } else { "s" },
        deltas.len() - better - worse,
    );
    MetricVerdict {
        metric: m.name(),
        verdict: overall,
        text,
    }
}

fn overlay(
    title: &str,
    y: &str,
    m: Metric,
    base: &RunInput,
    new: &RunInput,
) -> Result<Figure, ReportError> {
    let pts = |s: &Summary| s.cycles.iter().map(|c| (c.users as f64, m.of(c))).collect();
    let chart = LineChart::new("", "users", y)
        .line(&format!("base: {}", base.label), pts(&base.summary), false)
        .line(&format!("new: {}", new.label), pts(&new.summary), false);
    let id = format!(
        "diff-{}",
        m.name().split(' ').next().unwrap_or("m").to_lowercase()
    );
    figure(&id, title, chart)
}

/// A run as shown in the diff's header.
#[derive(Serialize)]
struct RunHead<'a> {
    label: &'a str,
    path: String,
    test: &'a str,
    started: &'a str,
    nodes: u32,
}

fn head(r: &RunInput) -> RunHead<'_> {
    RunHead {
        label: &r.label,
        path: r.path.display().to_string(),
        test: &r.summary.test,
        started: &r.summary.started,
        nodes: r.summary.nodes,
    }
}

/// Compares two runs and writes `out_dir/index.html`; returns its path and the comparison.
pub fn build_diff(
    base: &Path,
    new: &Path,
    out_dir: &Path,
    opts: &ReportOptions,
) -> Result<(PathBuf, Diff), ReportError> {
    let mut base = input::load(base, opts)?;
    let mut new = input::load(new, opts)?;
    if base.label == new.label {
        // Two runs of one name: tell them apart by their directories.
        for r in [&mut base, &mut new] {
            r.label = input::dir_label(&r.path);
        }
    }
    let diff = compare(&base.summary, &new.summary);
    let mut charts = vec![
        overlay(
            "SPPS against users",
            "successful pages/s",
            Metric::Spps,
            &base,
            &new,
        )?,
        overlay("p95 latency against users", "ms", Metric::P95, &base, &new)?,
        overlay(
            "Errors against users",
            "error %",
            Metric::ErrorPct,
            &base,
            &new,
        )?,
    ];
    charts.extend(super::over_time::overlay(
        (&base.label, &base.summary.over_time),
        (&new.label, &new.summary.over_time),
    )?);
    let templates = Templates::load(opts.templates.as_deref())?;
    let mut ctx = tera::Context::new();
    ctx.insert(
        "title",
        &format!("{} vs {} — differential report", new.label, base.label),
    );
    ctx.insert("base", &head(&base));
    ctx.insert("new", &head(&new));
    ctx.insert("diff", &diff);
    ctx.insert("charts", &charts);
    ctx.insert("noise_pct", &NOISE_PCT);
    ctx.insert("noise_points", &NOISE_ERROR_POINTS);
    ctx.insert("confidence_pct", &(significance::CONFIDENCE * 100.0));
    ctx.insert("resamples", &significance::RESAMPLES);
    ctx.insert("min_seconds", &significance::MIN_SECONDS);
    ctx.insert("report_version", crate::VERSION);
    let html = templates.render("diff.html", &ctx)?;
    std::fs::create_dir_all(out_dir).map_err(ReportError::io(out_dir))?;
    let path = out_dir.join("index.html");
    std::fs::write(&path, html).map_err(ReportError::io(&path))?;
    Ok((path, diff))
}
