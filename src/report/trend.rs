//! Trend report: SPPS, p95 and Apdex of many runs (oldest first) per concurrency level, each
//! scenario's STPS, error % and test p95, and the data files' rows used.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::chart::{figure, Figure, LineChart};
use super::input::{self, RunInput};
use super::stats::{CycleSummary, DataSummary};
use super::{ReportError, ReportOptions, Templates};

/// One run at one concurrency level.
#[derive(Debug, Clone, Serialize)]
pub struct TrendCell {
    /// Users of this run at this level.
    pub users: u32,
    pub spps: f64,
    pub p95_ms: f64,
    pub apdex: Option<f64>,
    pub rating: String,
    pub error_pct: f64,
    /// The cycle's scenarios, in the test's order (empty without scenarios).
    pub scenarios: Vec<ScenarioCell>,
}

/// One scenario's tests in one run at one level.
#[derive(Debug, Clone, Serialize)]
pub struct ScenarioCell {
    pub name: String,
    /// Its successful tests/s.
    pub stps: f64,
    /// Failed or erred tests, %.
    pub error_pct: f64,
    /// Test latency p95, ms.
    pub p95_ms: f64,
}

/// One run of the trend.
#[derive(Debug, Clone, Serialize)]
pub struct TrendRun {
    pub label: String,
    pub path: String,
    pub started: String,
    pub nodes: u32,
    /// One entry per level of [`Trend::levels`] (None when the run lacks that level).
    pub cells: Vec<Option<TrendCell>>,
    /// The run's data files: rows used, and when they ran out.
    pub data: Vec<DataSummary>,
}

/// Runs across concurrency levels.
#[derive(Debug, Clone, Serialize)]
pub struct Trend {
    /// Names of the levels: `N users`, or `cycle N` when runs had different users levels
    /// (another node count) and are followed cycle by cycle.
    pub levels: Vec<String>,
    /// True when levels are cycle positions rather than users.
    pub by_position: bool,
    pub runs: Vec<TrendRun>,
    /// True when some run has scenarios, and when some has data files.
    pub has_scenarios: bool,
    pub has_data: bool,
}

fn cell(c: &CycleSummary) -> TrendCell {
    TrendCell {
        users: c.users,
        spps: c.pages.rates.per_s,
        p95_ms: c.latency_ms.p95,
        apdex: c.pages.apdex,
        rating: c.pages.rating.clone(),
        error_pct: c.requests.rates.error_pct,
        scenarios: c
            .scenarios
            .iter()
            .map(|s| ScenarioCell {
                name: s.name.clone(),
                stps: s.tests.per_s,
                error_pct: s.tests.error_pct,
                p95_ms: s.latency_ms.p95,
            })
            .collect(),
    }
}

/// The trend of `runs`, in the order given: per users level when every run has the same
/// levels, else per cycle position.
pub fn trend(runs: &[RunInput]) -> Trend {
    let users = |r: &RunInput| r.summary.cycles.iter().map(|c| c.users).collect::<Vec<_>>();
    let by_position = runs.windows(2).any(|w| users(&w[0]) != users(&w[1]));
    let (levels, cells): (Vec<String>, Vec<Vec<Option<TrendCell>>>) = if by_position {
        let n = runs
            .iter()
            .map(|r| r.summary.cycles.len())
            .max()
            .unwrap_or(0);
        (
            (1..=n).map(|i| format!("cycle {i}")).collect(),
            runs.iter()
                .map(|r| (0..n).map(|i| r.summary.cycles.get(i).map(cell)).collect())
                .collect(),
        )
    } else {
        let first = runs.first().map(users).unwrap_or_default();
        (
            first.iter().map(|u| format!("{u} users")).collect(),
            runs.iter()
                .map(|r| r.summary.cycles.iter().map(|c| Some(cell(c))).collect())
                .collect(),
        )
    };
    let has_scenarios = runs
        .iter()
        .any(|r| r.summary.cycles.iter().any(|c| !c.scenarios.is_empty()));
    let has_data = runs.iter().any(|r| !r.summary.data.is_empty());
    let runs = runs
        .iter()
        .zip(cells)
        .map(|(r, cells)| TrendRun {
            label: r.label.clone(),
            path: r.path.display().to_string(),
            started: r.summary.started.clone(),
            nodes: r.summary.nodes,
            cells,
            data: r.summary.data.clone(),
        })
        .collect();
    Trend {
        levels,
        by_position,
        runs,
        has_scenarios,
        has_data,
    }
}

/// The runs' labels, or their start times when labels repeat (runs of one name).
fn x_labels(t: &Trend) -> Vec<String> {
    let labels: BTreeSet<&str> = t.runs.iter().map(|r| r.label.as_str()).collect();
    if labels.len() == t.runs.len() {
        return t.runs.iter().map(|r| r.label.clone()).collect();
    }
    // `2024-05-01T12:00:00Z` → `05-01 12:00`
    t.runs
        .iter()
        .map(|r| match (r.started.get(5..10), r.started.get(11..16)) {
            (Some(d), Some(h)) => format!("{d} {h}"),
            _ => r.started.clone(),
        })
        .collect()
}

fn chart(
    t: &Trend,
    id: &str,
    caption: &str,
    y: &str,
    f: fn(&TrendCell) -> Option<f64>,
) -> Result<Figure, ReportError> {
    let mut c = LineChart::new("", "run", y);
    c.x_labels = x_labels(t);
    if id == "apdex" {
        c.y_max = Some(1.0);
    }
    for (i, users) in t.levels.iter().enumerate() {
        let pts = t
            .runs
            .iter()
            .enumerate()
            .filter_map(|(x, r)| Some((x as f64, f(r.cells[i].as_ref()?)?)))
            .collect();
        c = c.line(users, pts, false);
    }
    figure(&format!("trend-{id}"), caption, c)
}

/// Reads every run and writes `out_dir/index.html`; returns its path.
pub fn build_trend(
    runs: &[PathBuf],
    out_dir: &Path,
    opts: &ReportOptions,
) -> Result<PathBuf, ReportError> {
    let inputs = runs
        .iter()
        .map(|r| input::load(r, opts))
        .collect::<Result<Vec<_>, _>>()?;
    let t = trend(&inputs);
    let charts = vec![
        chart(&t, "spps", "SPPS per run", "successful pages/s", |c| {
            Some(c.spps)
        })?,
        chart(&t, "p95", "p95 request latency per run", "ms", |c| {
            Some(c.p95_ms)
        })?,
        chart(&t, "apdex", "Apdex per run", "Apdex", |c| c.apdex)?,
    ];
    let templates = Templates::load(opts.templates.as_deref())?;
    let mut ctx = tera::Context::new();
    ctx.insert("title", &format!("Trend over {} runs", t.runs.len()));
    ctx.insert("trend", &t);
    ctx.insert("charts", &charts);
    ctx.insert("report_version", crate::VERSION);
    let html = templates.render("trend.html", &ctx)?;
    std::fs::create_dir_all(out_dir).map_err(ReportError::io(out_dir))?;
    let path = out_dir.join("index.html");
    std::fs::write(&path, html).map_err(ReportError::io(&path))?;
    Ok(path)
}
