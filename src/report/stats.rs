//! Statistics of a merged run, FunkLoad's way, and `summary.json`'s data model.
//!
//! STPS, SPPS and RPS divide by each node's measured window; peaks come from the per-second
//! series; Apdex, percentiles and min/mean/max come from the exact merged histograms.

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

use super::merge::{MergedCycle, MergedRun};
use super::threshold::LiveStop;
use crate::result::{Counts, DataOrder, ErrorKind, OnEnd, Packed, PageResources};

/// Version of the `summary.json` layout (see docs/SUMMARY-JSON.md).
pub const SUMMARY_FORMAT: u32 = 1;

/// What `summary.json` holds: the figures scripts and CI rely on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    /// Layout version, [`SUMMARY_FORMAT`].
    pub format: u32,
    /// Version of the `bench-node` that measured.
    pub tool_version: String,
    /// Test name.
    pub test: String,
    /// Run name (empty for stand-alone runs).
    pub run: String,
    /// Earliest node start, RFC 3339 UTC.
    pub started: String,
    /// Earliest node start, Unix time in ms.
    pub started_unix_ms: u64,
    /// Number of nodes merged.
    pub nodes: u32,
    /// True when any node was stopped before its plan ended.
    pub interrupted: bool,
    pub cycles: Vec<CycleSummary>,
    pub nodes_detail: Vec<NodeSummary>,
    pub errors: Vec<ErrorSummary>,
    /// Nodes that produced no result (named by the master).
    #[serde(default)]
    pub failed_nodes: Vec<FailedNode>,
    /// Result files left out by `--skip-bad`, with the reason.
    #[serde(default)]
    pub skipped: Vec<SkippedFile>,
    /// The test's thresholds judged on the merged result (empty when it has none).
    #[serde(default)]
    pub thresholds: Vec<super::threshold::ThresholdSummary>,
    /// The test's `[[data]]` files: rows used over all nodes, and when they ran out.
    #[serde(default)]
    pub data: Vec<DataSummary>,
    /// Requests each user kept in flight on its HTTP/2 connection (`streams`); 1 in a summary
    /// written before HTTP/2.
    #[serde(default = "one")]
    pub streams: u32,
    /// The test's steps, in order, with the protocol each used.
    #[serde(default)]
    pub steps: Vec<StepSummary>,
    /// Latency percentiles per interval and users per second over the run (empty from
    /// results or summaries written before them).
    #[serde(default)]
    pub over_time: super::over_time::OverTime,
    /// The threshold that stopped the run live (`abort = true`), and when; null otherwise.
    #[serde(default)]
    pub stopped_by: Option<super::threshold::LiveStop>,
    /// The run's `--export` sinks: intervals delivered and dropped (empty without export, and
    /// in summaries written before it).
    #[serde(default)]
    pub exports: Vec<crate::export::SinkTally>,
}

fn one() -> u32 {
    1
}

/// One step of the test.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepSummary {
    pub name: String,
    /// HTTP method, `WS` for a WebSocket step.
    pub method: String,
    /// Path or URL as written in the test.
    pub target: String,
    /// `HTTP/1.1`, `HTTP/2`, `WebSocket` (see docs/SUMMARY-JSON.md).
    pub protocol: String,
    /// WebSocket messages the step received in the measured windows (0 for HTTP steps).
    pub messages: u64,
    /// Its pages' resources in the measured windows (all zero without `resources`, and in
    /// summaries written before page resources).
    #[serde(default)]
    pub resources: PageResources,
    /// Its pages that completed in the measured windows (0 in summaries written before page
    /// resources).
    #[serde(default)]
    pub pages: u64,
}

/// One data file over all nodes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DataSummary {
    pub name: String,
    pub file: String,
    pub order: DataOrder,
    pub on_end: OnEnd,
    /// Rows the nodes could use (a `unique` file's shares add up to the file's rows).
    pub rows: u64,
    /// Rows handed to test executions.
    pub used: u64,
    /// Nodes whose rows ran out, so that their users stopped.
    pub exhausted_nodes: u32,
    /// When the last of them ran out, s since the run started (null if none did).
    pub ran_out_s: Option<f64>,
}

/// A node that produced no result, as the master saw it.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct FailedNode {
    /// Node name (e.g. `node3`).
    pub name: String,
    /// Host it was to run on.
    pub host: String,
    /// Why it failed.
    pub reason: String,
    /// The last lines of its standard error.
    pub stderr_tail: String,
}

/// A result file left out of the merge.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SkippedFile {
    pub path: String,
    /// The error, with its position in the file.
    pub reason: String,
}

/// One cycle over all nodes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CycleSummary {
    /// Cycle number, from 0.
    pub index: u32,
    /// Users over all nodes.
    pub users: u32,
    /// Measured window, s.
    pub duration_s: f64,
    /// Tests; `per_s` is STPS (successful tests/s).
    pub tests: Rates,
    /// Pages; `per_s` is SPPS (successful pages/s).
    pub pages: RatedWithApdex,
    /// Requests; `per_s` is RPS (all requests/s, successful or not).
    pub requests: RatedWithApdex,
    /// Request latency, ms.
    pub latency_ms: Latency,
    /// Requests completed outside the measured window.
    pub outside_window: u64,
    /// Response body bytes of the window's requests as they came over the wire (compressed
    /// when the server compressed them), bytes; 0 in summaries written before it.
    #[serde(default)]
    pub bytes: u64,
    /// The same bodies decoded (`Content-Encoding` undone; `bytes` when nothing came
    /// compressed), bytes; 0 in summaries written before it.
    #[serde(default)]
    pub decoded_bytes: u64,
    /// Open model: executions due while every user was busy, not started (0 when closed).
    #[serde(default)]
    pub dropped: u64,
    /// Tests per `[[scenario]]`, in the test's order (empty without scenarios).
    #[serde(default)]
    pub scenarios: Vec<ScenarioSummary>,
    /// The window's whole seconds over all nodes, in order: what `--diff` resamples for its
    /// confidence intervals (absent from files written before it existed).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub seconds: Vec<WindowSecond>,
    /// Latency of the pages completed in each whole interval of the window (1 s up to a
    /// 10-minute plan), over all nodes: interval histograms as the result XML packs them
    /// (HdrHistogram V2 + deflate, base64), in order; what `--diff` resamples for the
    /// percentiles' intervals (absent from files written before it existed).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub latency_intervals: Vec<String>,
}

/// One scenario's tests in one cycle.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScenarioSummary {
    pub name: String,
    /// Its weight in the test.
    pub weight: u32,
    /// Its share of all tests of the cycle, %.
    pub share_pct: f64,
    /// Its tests; `per_s` is its STPS.
    pub tests: Rates,
    /// Test latency (all its steps, think times included), ms.
    pub latency_ms: Latency,
}

/// What completed in one whole second of a cycle's measured window, over all nodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct WindowSecond {
    /// Successful pages.
    pub pages_ok: u64,
    /// Requests, successful or not.
    pub requests: u64,
    /// Requests that failed (status, check) or erred (no answer).
    pub bad: u64,
}

/// Counts and rate of tests.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Rates {
    pub total: u64,
    pub success: u64,
    pub failure: u64,
    pub error: u64,
    /// Per second (see the field using it), /s.
    pub per_s: f64,
    /// (failure + error) / total, %.
    pub error_pct: f64,
}

/// Counts, rates and Apdex of pages or requests.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RatedWithApdex {
    #[serde(flatten)]
    pub rates: Rates,
    /// Highest one-second rate in the window (same meaning as `per_s`), /s.
    pub peak_per_s: f64,
    /// Apdex score 0-1 (null when nothing completed).
    pub apdex: Option<f64>,
    /// Excellent, Good, Fair, Poor, Unacceptable, or n/a.
    pub rating: String,
}

/// Latency figures, ms.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct Latency {
    pub min: f64,
    pub mean: f64,
    pub max: f64,
    pub p50: f64,
    pub p90: f64,
    pub p95: f64,
    pub p99: f64,
    pub p999: f64,
}

/// Per-node figures over all measured windows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeSummary {
    pub node: u32,
    pub host: String,
    pub requests: u64,
    /// Requests/s over the windows.
    pub rps: f64,
    /// Request latency p95, ms.
    pub p95_ms: f64,
    /// Failed or erred requests.
    pub errors: u64,
    /// Highest CPU busy share of the node's host, % (null when not sampled).
    pub cpu_peak_pct: Option<f64>,
    /// CPU peak above 90 %: the load generator may be the limit.
    pub cpu_saturated: bool,
}

/// One group of failures or errors.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorSummary {
    pub step: String,
    pub kind: ErrorKind,
    pub detail: String,
    pub count: u64,
    /// One occurrence: URL, status, body start (empty when none was kept).
    pub sample: String,
}

/// Apdex score of a latency histogram holding successes and failures, with `failed` failures
/// and `errors` that never completed: satisfied ≤ T, tolerating ≤ 4T, and failures and errors
/// frustrated. The histogram does not tell failures apart, so its satisfied and tolerating
/// counts are scaled by the share of successes in it.
pub fn apdex(
    latency: &Histogram<u64>,
    success: u64,
    failed: u64,
    errors: u64,
    t_s: f64,
) -> Option<f64> {
    let total = success + failed + errors;
    if total == 0 {
        return None;
    }
    let t_us = (t_s * 1e6).round().max(1.0) as u64;
    let completed = latency.len();
    if completed == 0 {
        return Some(0.0);
    }
    let satisfied = latency.count_between(0, t_us) as f64;
    let tolerating = latency.count_between(t_us + 1, 4 * t_us) as f64;
    let share = success as f64 / (success + failed).max(1) as f64;
    let completed_f = completed as f64;
    let satisfied = satisfied.min(completed_f) * share;
    let tolerating = tolerating.min(completed_f) * share;
    Some(((satisfied + tolerating / 2.0) / total as f64).clamp(0.0, 1.0))
}

/// FunkLoad's rating of an Apdex score.
pub fn rating(apdex: Option<f64>) -> &'static str {
    match apdex {
        None => "n/a",
        Some(a) if a >= 0.94 => "Excellent",
        Some(a) if a >= 0.85 => "Good",
        Some(a) if a >= 0.70 => "Fair",
        Some(a) if a >= 0.50 => "Poor",
        Some(_) => "Unacceptable",
    }
}

/// Latency figures of a histogram in µs, in ms (all zero when empty).
pub fn latency(h: &Histogram<u64>) -> Latency {
    if h.is_empty() {
        return Latency::default();
    }
    let q = |q: f64| h.value_at_quantile(q) as f64 / 1000.0;
    Latency {
        min: h.min() as f64 / 1000.0,
        mean: h.mean() / 1000.0,
        max: h.max() as f64 / 1000.0,
        p50: q(0.50),
        p90: q(0.90),
        p95: q(0.95),
        p99: q(0.99),
        p999: q(0.999),
    }
}

/// Counts and a rate.
pub fn rates(c: &Counts, per_s: f64) -> Rates {
    let total = c.total();
    Rates {
        total,
        success: c.success,
        failure: c.failure,
        error: c.error,
        per_s,
        error_pct: pct(c.failure + c.error, total),
    }
}

/// `part` of `whole`, % (0 when `whole` is 0).
pub fn pct(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        part as f64 * 100.0 / whole as f64
    }
}

fn with_apdex(c: &Counts, per_s: f64, peak_per_s: f64, t_s: f64) -> RatedWithApdex {
    let a = apdex(&c.latency, c.success, c.failure, c.error, t_s);
    RatedWithApdex {
        rates: rates(c, per_s),
        peak_per_s,
        apdex: a,
        rating: rating(a).to_string(),
    }
}

/// Highest per-second values (successful pages, requests) within one cycle's window.
fn peaks(run: &MergedRun, cycle: u32) -> (f64, f64) {
    run.series
        .iter()
        .filter(|s| s.cycle == Some(cycle))
        .fold((0.0, 0.0), |(p, r), s| {
            (
                f64::max(p, s.pages_ok as f64),
                f64::max(r, s.requests as f64),
            )
        })
}

/// The whole seconds of one cycle's window (a second counts in the cycle whose window holds it).
fn window_seconds(run: &MergedRun, cycle: u32) -> Vec<WindowSecond> {
    run.series
        .iter()
        .filter(|s| s.cycle == Some(cycle))
        .map(|s| WindowSecond {
            pages_ok: s.pages_ok,
            requests: s.requests,
            bad: s.failures + s.errors,
        })
        .collect()
}

/// The latency intervals that lie whole inside one cycle's window, packed as in the result.
fn window_latency(run: &MergedRun, cycle: u32) -> Vec<String> {
    let inside: std::collections::HashSet<u32> = run
        .series
        .iter()
        .filter(|s| s.cycle == Some(cycle))
        .map(|s| s.second)
        .collect();
    let len = run.latency.interval_s.max(1);
    run.latency
        .intervals
        .iter()
        .filter(|iv| {
            let start = iv.index.saturating_mul(len);
            (start..start.saturating_add(len)).all(|s| inside.contains(&s))
        })
        .map(|iv| Packed::pack(&iv.pages()).to_base64())
        .collect()
}

/// The summary of one cycle.
pub fn cycle_summary(run: &MergedRun, c: &MergedCycle) -> CycleSummary {
    let t = run.config.apdex_t_s;
    let (peak_pages, peak_requests) = peaks(run, c.index);
    CycleSummary {
        index: c.index,
        users: c.users,
        duration_s: c.window_s,
        tests: rates(&c.tests, c.tests_ok_per_s),
        pages: with_apdex(&c.pages, c.pages_ok_per_s, peak_pages, t),
        requests: with_apdex(&c.requests, c.requests_per_s, peak_requests, t),
        latency_ms: latency(&c.requests.latency),
        outside_window: c.outside.requests,
        bytes: c.requests.bytes,
        decoded_bytes: c.requests.decoded_bytes,
        dropped: c.dropped,
        scenarios: run
            .scenarios
            .iter()
            .zip(&c.scenarios)
            .zip(&c.scenarios_ok_per_s)
            .map(|((info, counts), per_s)| ScenarioSummary {
                name: info.name.clone(),
                weight: info.weight,
                share_pct: pct(counts.total(), c.tests.total()),
                tests: rates(counts, *per_s),
                latency_ms: latency(&counts.latency),
            })
            .collect(),
        seconds: window_seconds(run, c.index),
        latency_intervals: window_latency(run, c.index),
    }
}

/// The summary of a merged run; `stopped_by`, the threshold that stopped it live.
pub fn summarize(
    run: &MergedRun,
    failed_nodes: &[FailedNode],
    skipped: &[SkippedFile],
    stopped_by: Option<&LiveStop>,
) -> Summary {
    let mut thresholds = super::threshold::evaluate(run);
    if let Some(stop) = stopped_by {
        super::threshold::mark_stop(&mut thresholds, stop);
    }
    let started = std::time::UNIX_EPOCH + std::time::Duration::from_millis(run.started_unix_ms);
    Summary {
        format: SUMMARY_FORMAT,
        tool_version: run.tool_version.clone(),
        test: run.test.name.clone(),
        run: run.run.clone(),
        started: humantime::format_rfc3339_seconds(started).to_string(),
        started_unix_ms: run.started_unix_ms,
        nodes: run.nodes.len() as u32,
        interrupted: run.interrupted,
        cycles: run.cycles.iter().map(|c| cycle_summary(run, c)).collect(),
        streams: run.config.streams,
        steps: run
            .steps
            .iter()
            .enumerate()
            .map(|(i, s)| StepSummary {
                name: s.name.clone(),
                method: s.method.clone(),
                target: s.target.clone(),
                protocol: s.protocol.clone(),
                messages: run
                    .cycles
                    .iter()
                    .filter_map(|c| c.steps.get(i))
                    .map(|c| c.messages)
                    .sum(),
                resources: run.cycles.iter().filter_map(|c| c.steps.get(i)).fold(
                    PageResources::default(),
                    |mut sum, c| {
                        sum.add(&c.resources);
                        sum
                    },
                ),
                pages: run
                    .cycles
                    .iter()
                    .filter_map(|c| c.steps.get(i))
                    .map(Counts::total)
                    .sum(),
            })
            .collect(),
        nodes_detail: run
            .nodes
            .iter()
            .map(|n| NodeSummary {
                node: n.number,
                host: n.host.clone(),
                requests: n.requests,
                rps: n.rps,
                p95_ms: n.p95_ms,
                errors: n.errors,
                cpu_peak_pct: n.cpu_peak_pct,
                cpu_saturated: n.cpu_saturated(),
            })
            .collect(),
        errors: run
            .errors
            .iter()
            .map(|g| ErrorSummary {
                step: g.step.clone(),
                kind: g.kind,
                detail: g.detail.clone(),
                count: g.count,
                sample: g
                    .samples
                    .first()
                    .map(|s| {
                        let status = s.status.map(|c| format!(" → {c}")).unwrap_or_default();
                        format!("{}{}: {}", s.url, status, s.body)
                    })
                    .unwrap_or_default(),
            })
            .collect(),
        failed_nodes: failed_nodes.to_vec(),
        skipped: skipped.to_vec(),
        data: run
            .data
            .iter()
            .map(|d| DataSummary {
                name: d.name.clone(),
                file: d.file.clone(),
                order: d.order,
                on_end: d.on_end,
                rows: d.rows,
                used: d.used,
                exhausted_nodes: d.exhausted_nodes,
                ran_out_s: d.exhausted_ms.map(|ms| ms as f64 / 1000.0),
            })
            .collect(),
        over_time: super::over_time::OverTime::of(run),
        thresholds,
        stopped_by: stopped_by.cloned(),
        exports: Vec::new(),
    }
}

impl Summary {
    /// The cycle with the highest SPPS, if any.
    pub fn best_cycle(&self) -> Option<&CycleSummary> {
        self.cycles
            .iter()
            .max_by(|a, b| a.pages.rates.per_s.total_cmp(&b.pages.rates.per_s))
    }

    /// Error share of all requests in all windows, %.
    pub fn error_pct(&self) -> f64 {
        let (bad, total) = self.cycles.iter().fold((0, 0), |(b, t), c| {
            (
                b + c.requests.rates.failure + c.requests.rates.error,
                t + c.requests.rates.total,
            )
        });
        pct(bad, total)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::result::new_histogram;

    #[test]
    fn apdex_counts_satisfied_tolerating_and_frustrated() {
        let mut h = new_histogram();
        // T = 1 s: 6 satisfied, 2 tolerating, 2 frustrated.
        for _ in 0..6 {
            h.record(500_000).unwrap();
        }
        for _ in 0..2 {
            h.record(3_000_000).unwrap();
        }
        for _ in 0..2 {
            h.record(9_000_000).unwrap();
        }
        let a = apdex(&h, 10, 0, 0, 1.0).unwrap();
        assert!((a - 0.7).abs() < 1e-9, "{a}");
        assert_eq!(rating(Some(a)), "Fair");
        // Ten errors on top: everyone else's score halves.
        let a = apdex(&h, 10, 0, 10, 1.0).unwrap();
        assert!((a - 0.35).abs() < 1e-9, "{a}");
        assert_eq!(rating(Some(a)), "Unacceptable");
        assert_eq!(apdex(&new_histogram(), 0, 0, 0, 1.0), None);
        assert_eq!(rating(None), "n/a");
    }

    #[test]
    fn ratings_follow_funkload_thresholds() {
        let r = |a| rating(Some(a));
        assert_eq!(
            [r(0.94), r(0.85), r(0.70), r(0.50), r(0.49)],
            ["Excellent", "Good", "Fair", "Poor", "Unacceptable"]
        );
    }

    #[test]
    fn latency_of_empty_histogram_is_zero() {
        assert_eq!(latency(&new_histogram()), Latency::default());
    }
}
