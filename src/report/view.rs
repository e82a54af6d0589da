//! The report's content, computed once from a merged run and shared by every output.

use serde::Serialize;

use super::merge::{MergedRun, NodeFigures};
use super::stats::{self, CycleSummary, Latency, Summary};
use crate::result::{ErrorKind, HostResources, ModelKind, PageResources, SecondSample};

/// Steps listed as the slowest at the best cycle.
pub const SLOWEST_STEPS: usize = 5;

/// Everything a report output shows.
#[derive(Debug, Clone)]
pub struct Report {
    /// The figures written to `summary.json`.
    pub summary: Summary,
    pub config: ConfigView,
    /// Latency of all pages per cycle (the summary holds requests' only), ms.
    pub page_latency: Vec<Latency>,
    /// Steps of the test with their totals over all cycles.
    pub content: Vec<StepTotals>,
    /// Per step, its figures per cycle.
    pub steps: Vec<StepDetail>,
    /// Steps with the highest p95 at the cycle of highest SPPS.
    pub slowest: Vec<SlowStep>,
    pub nodes: Vec<NodeView>,
    /// Error groups with every kept sample.
    pub errors: Vec<ErrorView>,
    /// Per-second series over all nodes.
    pub series: Vec<SecondSample>,
    /// Resource samples of nodes and monitored hosts.
    pub resources: Vec<HostResources>,
}

/// The bench configuration as shown in the report.
#[derive(Debug, Clone, Serialize)]
pub struct ConfigView {
    pub launched: String,
    pub finished: String,
    pub test: String,
    pub description: String,
    pub url: String,
    pub run: String,
    pub nodes: usize,
    /// `node N on host`, by node number.
    pub hosts: Vec<String>,
    /// Distinct hosts the nodes ran on.
    pub host_count: usize,
    /// Users per cycle on each node (first node's plan), e.g. `10:20:30`.
    pub cycles_per_node: String,
    /// Users per cycle over all nodes, e.g. `40:80:120`.
    pub cycles_total: String,
    pub duration_s: f64,
    pub startup_delay_s: f64,
    pub sleep_time_min_s: f64,
    pub sleep_time_max_s: f64,
    pub sleep_time_s: f64,
    pub cycle_time_s: f64,
    pub apdex_t_s: f64,
    pub timeout_s: f64,
    pub ok_codes: String,
    /// Requests each user kept in flight on its HTTP/2 connection.
    pub streams: u32,
    /// The load model, spelled as the result XML spells it (`closed`, `open`).
    pub model: ModelKind,
    pub start_skew_ms: u64,
    pub interrupted: bool,
    /// Version of `bench-node` that measured.
    pub node_version: String,
    /// Version of `bench-report` that wrote this.
    pub report_version: String,
}

/// One step with its totals over every cycle.
#[derive(Debug, Clone, Serialize)]
pub struct StepTotals {
    pub number: usize,
    pub name: String,
    pub method: String,
    pub target: String,
    /// `HTTP/1.1`, `HTTP/2`, `WebSocket`.
    pub protocol: String,
    /// WebSocket messages received.
    pub messages: u64,
    pub total: u64,
    pub success: u64,
    pub failure: u64,
    pub error: u64,
    pub error_pct: f64,
}

/// One step's figures at one cycle.
#[derive(Debug, Clone, Serialize)]
pub struct StepCycle {
    pub users: u32,
    /// Successful pages of this step per second.
    pub spps: f64,
    pub total: u64,
    pub success: u64,
    pub error_pct: f64,
    /// WebSocket messages received.
    pub messages: u64,
    /// The pages' resources: requests, their bytes, 304s and fresh cache hits.
    pub resources: PageResources,
    pub apdex: Option<f64>,
    pub rating: String,
    pub latency_ms: Latency,
}

/// One step across cycles.
#[derive(Debug, Clone, Serialize)]
pub struct StepDetail {
    pub number: usize,
    pub name: String,
    pub method: String,
    pub target: String,
    pub protocol: String,
    /// True for a step that received WebSocket messages (its table shows them).
    pub has_messages: bool,
    /// True for a step whose pages had resources (its table shows them).
    pub has_resources: bool,
    pub cycles: Vec<StepCycle>,
}

/// A step among the slowest.
#[derive(Debug, Clone, Serialize)]
pub struct SlowStep {
    pub name: String,
    pub users: u32,
    pub latency_ms: Latency,
    pub spps: f64,
}

/// One node in the per-node breakdown.
#[derive(Debug, Clone, Serialize)]
pub struct NodeView {
    pub number: u32,
    pub host: String,
    /// Result file name, and its full path.
    pub source: String,
    pub source_path: String,
    pub requests: u64,
    pub rps: f64,
    /// This node's requests against the mean over nodes, % (100 = balanced).
    pub share_pct: f64,
    pub p95_ms: f64,
    pub errors: u64,
    pub error_pct: f64,
    pub cpu_peak_pct: Option<f64>,
    pub cpu_saturated: bool,
    pub interrupted: bool,
}

/// One error group.
#[derive(Debug, Clone, Serialize)]
pub struct ErrorView {
    pub step: String,
    pub kind: ErrorKind,
    pub detail: String,
    pub count: u64,
    pub samples: Vec<SampleView>,
}

/// One error occurrence.
#[derive(Debug, Clone, Serialize)]
pub struct SampleView {
    pub url: String,
    pub status: Option<u16>,
    /// Seconds since the run started.
    pub at_s: f64,
    pub body: String,
}

fn joined(v: impl IntoIterator<Item = u32>) -> String {
    v.into_iter()
        .map(|u| u.to_string())
        .collect::<Vec<_>>()
        .join(":")
}

fn rfc3339(unix_ms: u64) -> String {
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_millis(unix_ms);
    humantime::format_rfc3339_seconds(t).to_string()
}

impl Report {
    /// Computes the report of a merged run.
    pub fn new(run: MergedRun, summary: Summary) -> Report {
        let config = config_view(&run, &summary);
        let content = step_totals(&run);
        let steps = step_details(&run);
        let slowest = slowest_steps(&summary, &steps);
        Report {
            page_latency: run
                .cycles
                .iter()
                .map(|c| stats::latency(&c.pages.latency))
                .collect(),
            nodes: node_views(&run.nodes),
            errors: error_views(&run),
            summary,
            config,
            content,
            steps,
            slowest,
            series: run.series,
            resources: run.resources,
        }
    }

    /// The cycles' figures.
    pub fn cycles(&self) -> &[CycleSummary] {
        &self.summary.cycles
    }
}

/// The bench configuration as the report shows it.
fn config_view(run: &MergedRun, summary: &Summary) -> ConfigView {
    let c = &run.config;
    ConfigView {
        launched: summary.started.clone(),
        finished: rfc3339(run.finished_unix_ms),
        test: run.test.name.clone(),
        description: run.test.description.clone(),
        url: run.test.url.clone(),
        run: run.run.clone(),
        nodes: run.nodes.len(),
        hosts: run
            .nodes
            .iter()
            .map(|n| format!("node {} on {}", n.number, n.host))
            .collect(),
        host_count: run
            .nodes
            .iter()
            .map(|n| n.host.as_str())
            .collect::<std::collections::BTreeSet<_>>()
            .len(),
        cycles_per_node: joined(c.cycles.iter().copied()),
        cycles_total: joined(run.cycles.iter().map(|c| c.users)),
        duration_s: c.duration_s,
        startup_delay_s: c.startup_delay_s,
        sleep_time_min_s: c.sleep_time_min_s,
        sleep_time_max_s: c.sleep_time_max_s,
        sleep_time_s: c.sleep_time_s,
        cycle_time_s: c.cycle_time_s,
        apdex_t_s: c.apdex_t_s,
        timeout_s: c.timeout_s,
        ok_codes: c
            .ok_codes
            .iter()
            .map(u16::to_string)
            .collect::<Vec<_>>()
            .join(", "),
        streams: c.streams,
        model: c.model,
        start_skew_ms: run.start_skew_ms,
        interrupted: run.interrupted,
        node_version: run.tool_version.clone(),
        report_version: crate::VERSION.to_string(),
    }
}

/// Each step with its totals over all cycles.
fn step_totals(run: &MergedRun) -> Vec<StepTotals> {
    run.steps
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let (mut ok, mut fail, mut err, mut messages) = (0, 0, 0, 0);
            for cy in &run.cycles {
                if let Some(c) = cy.steps.get(i) {
                    ok += c.success;
                    fail += c.failure;
                    err += c.error;
                    messages += c.messages;
                }
            }
            StepTotals {
                number: i + 1,
                name: s.name.clone(),
                method: s.method.clone(),
                target: s.target.clone(),
                protocol: s.protocol.clone(),
                messages,
                total: ok + fail + err,
                success: ok,
                failure: fail,
                error: err,
                error_pct: stats::pct(fail + err, ok + fail + err),
            }
        })
        .collect()
}

/// Each step with its figures per cycle.
fn step_details(run: &MergedRun) -> Vec<StepDetail> {
    let apdex_t = run.config.apdex_t_s;
    run.steps
        .iter()
        .enumerate()
        .map(|(i, s)| StepDetail {
            number: i + 1,
            name: s.name.clone(),
            method: s.method.clone(),
            target: s.target.clone(),
            protocol: s.protocol.clone(),
            has_messages: run
                .cycles
                .iter()
                .any(|cy| cy.steps.get(i).is_some_and(|c| c.messages > 0)),
            has_resources: run
                .cycles
                .iter()
                .any(|cy| cy.steps.get(i).is_some_and(|c| !c.resources.is_empty())),
            cycles: run
                .cycles
                .iter()
                .filter_map(|cy| {
                    let c = cy.steps.get(i)?;
                    let apdex = stats::apdex(&c.latency, c.success, c.failure, c.error, apdex_t);
                    Some(StepCycle {
                        users: cy.users,
                        spps: cy.steps_ok_per_s.get(i).copied().unwrap_or(0.0),
                        total: c.total(),
                        success: c.success,
                        error_pct: stats::pct(c.failure + c.error, c.total()),
                        messages: c.messages,
                        resources: c.resources,
                        apdex,
                        rating: stats::rating(apdex).to_string(),
                        latency_ms: stats::latency(&c.latency),
                    })
                })
                .collect(),
        })
        .collect()
}

/// The error groups with every kept sample.
fn error_views(run: &MergedRun) -> Vec<ErrorView> {
    run.errors
        .iter()
        .map(|g| ErrorView {
            step: g.step.clone(),
            kind: g.kind,
            detail: g.detail.clone(),
            count: g.count,
            samples: g
                .samples
                .iter()
                .map(|s| SampleView {
                    url: s.url.clone(),
                    status: s.status,
                    at_s: s.at_ms as f64 / 1000.0,
                    body: s.body.clone(),
                })
                .collect(),
        })
        .collect()
}

fn slowest_steps(summary: &Summary, steps: &[StepDetail]) -> Vec<SlowStep> {
    let Some(best) = summary.best_cycle() else {
        return Vec::new();
    };
    let pos = summary
        .cycles
        .iter()
        .position(|c| c.index == best.index)
        .unwrap_or(0);
    let mut slow: Vec<SlowStep> = steps
        .iter()
        .filter_map(|s| {
            let c = s.cycles.get(pos)?;
            Some(SlowStep {
                name: s.name.clone(),
                users: c.users,
                latency_ms: c.latency_ms,
                spps: c.spps,
            })
        })
        .collect();
    slow.sort_by(|a, b| b.latency_ms.p95.total_cmp(&a.latency_ms.p95));
    slow.truncate(SLOWEST_STEPS);
    slow
}

fn node_views(nodes: &[NodeFigures]) -> Vec<NodeView> {
    let mean = nodes.iter().map(|n| n.requests as f64).sum::<f64>() / nodes.len().max(1) as f64;
    nodes
        .iter()
        .map(|n| NodeView {
            number: n.number,
            host: n.host.clone(),
            source: n.source.file_name().map_or_else(
                || n.source.display().to_string(),
                |f| f.to_string_lossy().into_owned(),
            ),
            source_path: n.source.display().to_string(),
            requests: n.requests,
            rps: n.rps,
            share_pct: if mean > 0.0 {
                n.requests as f64 * 100.0 / mean
            } else {
                0.0
            },
            p95_ms: n.p95_ms,
            errors: n.errors,
            error_pct: stats::pct(n.errors, n.requests),
            cpu_peak_pct: n.cpu_peak_pct,
            cpu_saturated: n.cpu_saturated(),
            interrupted: n.interrupted,
        })
        .collect()
}
