//! Differential report: two runs side by side per concurrency level, with deltas, charts and
//! a verdict per metric.

use std::path::{Path, PathBuf};

use serde::Serialize;

use super::chart::{figure, Figure, LineChart};
use super::input::{self, RunInput};
use super::stats::CycleSummary;
use super::{ReportError, ReportOptions, Summary, Templates};

/// Relative change below which a rate or latency is "the same within noise", %.
pub const NOISE_PCT: f64 = 5.0;
/// Change of error % below which it is "the same within noise", percentage points.
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
}

/// Better, worse or the same within noise.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    Better,
    Worse,
    Same,
}

impl Verdict {
    fn judge(metric: Metric, delta: f64, change_pct: Option<f64>) -> Verdict {
        let noise = match metric {
            Metric::ErrorPct => delta.abs() < NOISE_ERROR_POINTS,
            _ => change_pct.map_or(delta == 0.0, |c| c.abs() < NOISE_PCT),
        };
        if noise {
            Verdict::Same
        } else if (delta > 0.0) == metric.higher_is_better() {
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
    pub verdict: Verdict,
}

/// One concurrency level present in both runs.
#[derive(Debug, Clone, Serialize)]
pub struct Level {
    /// Users in the base run.
    pub users: u32,
    /// Users in the new run (differs from `users` when cycles matched by position).
    pub new_users: u32,
    pub deltas: Vec<Delta>,
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
}

fn change(base: f64, new: f64) -> Option<f64> {
    (base != 0.0).then(|| (new - base) * 100.0 / base.abs())
}

fn level(b: &CycleSummary, n: &CycleSummary) -> Level {
    Level {
        users: b.users,
        new_users: n.users,
        deltas: Metric::ALL
            .iter()
            .map(|&m| {
                let (vb, vn) = (m.of(b), m.of(n));
                let change_pct = change(vb, vn);
                Delta {
                    metric: m.name(),
                    base: vb,
                    new: vn,
                    delta: vn - vb,
                    change_pct,
                    verdict: Verdict::judge(m, vn - vb, change_pct),
                }
            })
            .collect(),
    }
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
    }
}

fn signed(x: f64, unit: &str) -> String {
    format!("{}{:.1}{unit}", if x >= 0.0 { "+" } else { "−" }, x.abs())
}

fn verdict<'a>(m: Metric, deltas: impl Iterator<Item = (u32, &'a Delta)>) -> MetricVerdict {
    let deltas: Vec<(u32, &Delta)> = deltas.collect();
    let points = m == Metric::ErrorPct;
    let unit = if points { " points" } else { " %" };
    let value = |d: &Delta| if points { Some(d.delta) } else { d.change_pct };
    let values: Vec<(u32, f64)> = deltas
        .iter()
        .filter_map(|(u, d)| Some((*u, value(d)?)))
        .collect();
    if values.is_empty() {
        return MetricVerdict {
            metric: m.name(),
            verdict: Verdict::Same,
            text: format!("{}: no level to compare.", m.name()),
        };
    }
    let mean = values.iter().map(|v| v.1).sum::<f64>() / values.len() as f64;
    let overall = Verdict::judge(m, mean, Some(mean));
    let (lo, hi) = values.iter().fold((values[0], values[0]), |(lo, hi), &v| {
        (
            if v.1 < lo.1 { v } else { lo },
            if v.1 > hi.1 { v } else { hi },
        )
    });
    let better = deltas
        .iter()
        .filter(|d| d.1.verdict == Verdict::Better)
        .count();
    let worse = deltas
        .iter()
        .filter(|d| d.1.verdict == Verdict::Worse)
        .count();
    let word = match overall {
        Verdict::Better => "better".to_string(),
        Verdict::Worse => "worse".to_string(),
        Verdict::Same if points => format!("the same within noise (±{NOISE_ERROR_POINTS} points)"),
        Verdict::Same => format!("the same within noise (±{NOISE_PCT} %)"),
    };
    let spread = if (hi.1 - lo.1).abs() < 0.05 {
        format!("{} at every level", signed(lo.1, unit))
    } else {
        format!(
            "from {} at {} users to {} at {} users",
            signed(lo.1, unit),
            lo.0,
            signed(hi.1, unit),
            hi.0
        )
    };
    let text = format!(
        "{} is {word}: {} on average over {} concurrency level{} ({spread}); {better} level{} \
         better, {worse} worse, {} within noise.",
        m.name(),
        signed(mean, unit),
        values.len(),
        if values.len() == 1 { "" } else { "s" },
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

/// Compares two runs and writes `out_dir/index.html`; returns its path.
pub fn build_diff(
    base: &Path,
    new: &Path,
    out_dir: &Path,
    opts: &ReportOptions,
) -> Result<PathBuf, ReportError> {
    let mut base = input::load(base, opts)?;
    let mut new = input::load(new, opts)?;
    if base.label == new.label {
        // Two runs of one name: tell them apart by their directories.
        for r in [&mut base, &mut new] {
            r.label = input::dir_label(&r.path);
        }
    }
    let diff = compare(&base.summary, &new.summary);
    let charts = vec![
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
    ctx.insert("report_version", crate::VERSION);
    let html = templates.render("diff.html", &ctx)?;
    std::fs::create_dir_all(out_dir).map_err(ReportError::io(out_dir))?;
    let path = out_dir.join("index.html");
    std::fs::write(&path, html).map_err(ReportError::io(&path))?;
    Ok(path)
}
