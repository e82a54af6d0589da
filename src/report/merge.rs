//! Merging node results: histograms add exactly, users add per cycle, per-node figures are kept.
//!
//! The [`Merger`] takes one [`NodeResult`] at a time and keeps only the sums and a few figures
//! per node, so that a run of many nodes never needs all of them in memory at once.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use hdrhistogram::Histogram;

use super::ReportError;
use crate::result::{
    new_histogram, BenchConfig, Counts, CycleResult, DataOrder, ErrorGroup, ErrorKind,
    HostResources, HostRole, LatencySeries, LatencySum, NodeResult, OnEnd, Outside, ScenarioInfo,
    SecondSample, StepInfo, TestInfo,
};

/// A node's CPU above this share of all its cores, %, flags it as possibly saturated.
pub const CPU_SATURATED_PCT: f64 = 90.0;

/// The figures of one node kept for the per-node section.
#[derive(Debug, Clone, PartialEq)]
pub struct NodeFigures {
    /// File the node's result was read from.
    pub source: PathBuf,
    /// Node number, from 0.
    pub number: u32,
    /// Host the node ran on.
    pub host: String,
    /// Wall-clock start, Unix time in ms.
    pub started_unix_ms: u64,
    /// Requests completed inside the measured windows of all cycles.
    pub requests: u64,
    /// Requests per second over the measured windows of all cycles, requests/s.
    pub rps: f64,
    /// 95th percentile of request latency over all windows, ms.
    pub p95_ms: f64,
    /// Requests that failed or erred inside the windows.
    pub errors: u64,
    /// Highest CPU busy share sampled on the node's host, % (None when not sampled).
    pub cpu_peak_pct: Option<f64>,
    /// True when the node's run was stopped before its plan ended.
    pub interrupted: bool,
}

impl NodeFigures {
    /// True when the node's CPU peaked above [`CPU_SATURATED_PCT`].
    pub fn cpu_saturated(&self) -> bool {
        self.cpu_peak_pct.is_some_and(|c| c > CPU_SATURATED_PCT)
    }
}

/// One `[[data]]` file over all nodes.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct MergedData {
    pub name: String,
    pub file: String,
    pub order: DataOrder,
    pub on_end: OnEnd,
    /// Rows the nodes could use, summed (a `unique` file's shares add up to the file).
    pub rows: u64,
    /// Rows handed to test executions, summed over nodes.
    pub used: u64,
    /// Nodes whose rows ran out (their users stopped).
    pub exhausted_nodes: u32,
    /// When the last of those ran out, ms since the earliest start (Unix ms until `finish`).
    pub exhausted_ms: Option<u64>,
}

/// One cycle, summed over nodes.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct MergedCycle {
    /// Cycle number, from 0.
    pub index: u32,
    /// Users over all nodes (or executions/s in the open model).
    pub users: u32,
    /// Longest measured window of the nodes, s.
    pub window_s: f64,
    pub tests: Counts,
    pub pages: Counts,
    pub requests: Counts,
    /// Pages per step, in the order of [`MergedRun::steps`].
    pub steps: Vec<Counts>,
    pub outside: Outside,
    pub dropped: u64,
    /// Sum over nodes of each node's successful tests / its window, tests/s (STPS).
    pub tests_ok_per_s: f64,
    /// Sum over nodes of each node's successful pages / its window, pages/s (SPPS).
    pub pages_ok_per_s: f64,
    /// Sum over nodes of each node's requests / its window, requests/s (RPS).
    pub requests_per_s: f64,
    /// Per step: sum over nodes of successful pages / window, pages/s.
    pub steps_ok_per_s: Vec<f64>,
    /// Tests per scenario, in the order of [`MergedRun::scenarios`].
    pub scenarios: Vec<Counts>,
    /// Per scenario: sum over nodes of successful tests / window, tests/s (its STPS).
    pub scenarios_ok_per_s: Vec<f64>,
    /// Nodes that ran this cycle.
    pub nodes: u32,
}

/// All node results of a run, merged.
#[derive(Debug, Clone, PartialEq)]
pub struct MergedRun {
    /// Version of the first node's `bench-node`.
    pub tool_version: String,
    /// Run name given by the master (empty for stand-alone runs).
    pub run: String,
    pub test: TestInfo,
    /// The first node's configuration (all nodes share its cycle plan).
    pub config: BenchConfig,
    pub steps: Vec<StepInfo>,
    /// The first node's scenarios (every node has the same).
    pub scenarios: Vec<ScenarioInfo>,
    /// The data files, in the test's order, over all nodes.
    pub data: Vec<MergedData>,
    /// Earliest start, Unix time in ms.
    pub started_unix_ms: u64,
    /// Latest end, Unix time in ms.
    pub finished_unix_ms: u64,
    /// Latest start minus earliest start, ms.
    pub start_skew_ms: u64,
    /// True when any node was interrupted.
    pub interrupted: bool,
    pub cycles: Vec<MergedCycle>,
    /// Per-second series summed over nodes, seconds counted from the earliest start.
    pub series: Vec<SecondSample>,
    /// Latency per interval and step, the nodes' histograms added exactly; seconds counted
    /// from the earliest start (empty when no node's result has it).
    pub latency: LatencySeries,
    /// Error groups summed over nodes, largest first.
    pub errors: Vec<ErrorGroup>,
    /// Resource samples of every node's host and every monitored host; times are ms since
    /// the earliest start.
    pub resources: Vec<HostResources>,
    /// Per-node figures, ordered by node number.
    pub nodes: Vec<NodeFigures>,
}

impl MergedRun {
    /// A run of no node yet, described by its first node.
    fn first(node: &NodeResult) -> MergedRun {
        MergedRun {
            tool_version: node.tool_version.clone(),
            run: node.node.run.clone(),
            test: node.test.clone(),
            config: node.config.clone(),
            steps: node.steps.clone(),
            scenarios: node.scenarios.clone(),
            data: Vec::new(),
            started_unix_ms: node.started_unix_ms,
            finished_unix_ms: node.finished_unix_ms,
            start_skew_ms: 0,
            interrupted: false,
            cycles: Vec::new(),
            series: Vec::new(),
            latency: LatencySeries::default(),
            errors: Vec::new(),
            resources: Vec::new(),
            nodes: Vec::new(),
        }
    }

    /// The cycle at `pos`, with the cycles before it, made when missing.
    fn cycle(&mut self, pos: usize) -> &mut MergedCycle {
        while self.cycles.len() <= pos {
            let index = self.cycles.len() as u32;
            self.cycles.push(MergedCycle {
                index,
                steps: vec![Counts::default(); self.steps.len()],
                steps_ok_per_s: vec![0.0; self.steps.len()],
                scenarios: vec![Counts::default(); self.scenarios.len()],
                scenarios_ok_per_s: vec![0.0; self.scenarios.len()],
                ..MergedCycle::default()
            });
        }
        &mut self.cycles[pos]
    }
}

impl MergedCycle {
    /// Adds one node's cycle: counts and histograms add, rates add as each node's count over
    /// its own window.
    fn add(&mut self, cycle: &CycleResult) {
        self.users += cycle.users;
        self.window_s = self.window_s.max(cycle.window_s);
        self.tests.merge(&cycle.tests);
        self.pages.merge(&cycle.pages);
        self.requests.merge(&cycle.requests);
        let rate = |n: u64| {
            if cycle.window_s > 0.0 {
                n as f64 / cycle.window_s
            } else {
                0.0
            }
        };
        for (i, step) in cycle.steps.iter().enumerate().take(self.steps.len()) {
            self.steps[i].merge(step);
            self.steps_ok_per_s[i] += rate(step.success);
        }
        let known = self.scenarios.len();
        for (i, scenario) in cycle.scenarios.iter().enumerate().take(known) {
            self.scenarios[i].merge(scenario);
            self.scenarios_ok_per_s[i] += rate(scenario.success);
        }
        self.outside.add(&cycle.outside);
        self.dropped += cycle.dropped;
        self.tests_ok_per_s += rate(cycle.tests.success);
        self.pages_ok_per_s += rate(cycle.pages.success);
        self.requests_per_s += rate(cycle.requests.total());
        self.nodes += 1;
    }
}

/// Merges node results one at a time.
#[derive(Debug, Default)]
pub struct Merger {
    run: Option<MergedRun>,
    /// File of the first node, named when another one's plan differs.
    first_source: PathBuf,
    /// Per-second series keyed by absolute Unix second.
    series: HashMap<u64, SecondSample>,
    /// Error groups keyed by (step, kind, detail).
    errors: HashMap<(String, ErrorKind, String), ErrorGroup>,
    /// Resource samples with absolute times (Unix ms in `at_ms`).
    resources: Vec<HostResources>,
    /// Each node's latency series (packed) and its start, Unix s: added up in `finish`, once
    /// the earliest start is known.
    latency: Vec<(u64, LatencySeries)>,
}

impl Merger {
    /// An empty merger.
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of nodes merged so far.
    pub fn len(&self) -> usize {
        self.run.as_ref().map_or(0, |r| r.nodes.len())
    }

    /// True when no node was merged yet.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Checks that `node` can join the nodes merged so far, without merging it.
    pub fn check(&self, source: &Path, node: &NodeResult) -> Result<(), ReportError> {
        let Some(run) = &self.run else {
            return Ok(());
        };
        let plan = |c: &BenchConfig| {
            let users: Vec<String> = c.cycles.iter().map(u32::to_string).collect();
            format!("cycles {} of {} s", users.join(":"), c.duration_s)
        };
        let mismatch = |detail: String| ReportError::PlanMismatch {
            path: source.to_path_buf(),
            first: self.first_source.clone(),
            detail,
        };
        if node.config.cycles != run.config.cycles
            || node.config.duration_s != run.config.duration_s
        {
            return Err(mismatch(format!(
                "{} here, {} there",
                plan(&node.config),
                plan(&run.config)
            )));
        }
        let names = |s: &[StepInfo]| s.iter().map(|s| s.name.clone()).collect::<Vec<_>>();
        if names(&node.steps) != names(&run.steps) {
            return Err(mismatch(format!(
                "steps [{}] here, [{}] there",
                names(&node.steps).join(", "),
                names(&run.steps).join(", ")
            )));
        }
        let mix = |s: &[ScenarioInfo]| {
            s.iter()
                .map(|s| format!("{} ×{}", s.name, s.weight))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let here: Vec<&str> = node.data.iter().map(|d| d.name.as_str()).collect();
        let there: Vec<&str> = run.data.iter().map(|d| d.name.as_str()).collect();
        if here != there {
            return Err(mismatch(format!(
                "data files [{}] here, [{}] there",
                here.join(", "),
                there.join(", ")
            )));
        }
        if node.scenarios != run.scenarios {
            return Err(mismatch(format!(
                "scenarios [{}] here, [{}] there",
                mix(&node.scenarios),
                mix(&run.scenarios)
            )));
        }
        Ok(())
    }

    /// Adds one node's result; refuses it when its cycle plan or steps differ from the first
    /// node's.
    pub fn add(&mut self, source: &Path, node: NodeResult) -> Result<(), ReportError> {
        self.check(source, &node)?;
        let figures = node_figures(source, &node);
        let run = self.run.get_or_insert_with(|| {
            self.first_source = source.to_path_buf();
            MergedRun::first(&node)
        });
        run.started_unix_ms = run.started_unix_ms.min(node.started_unix_ms);
        run.finished_unix_ms = run.finished_unix_ms.max(node.finished_unix_ms);
        run.interrupted |= node.interrupted;
        run.nodes.push(figures);
        // `http = "auto"` may agree on other versions on other nodes: name them all.
        for (mine, theirs) in run.steps.iter_mut().zip(&node.steps) {
            for p in theirs.protocol.split(" and ") {
                if !mine.protocol.split(" and ").any(|m| m == p) {
                    mine.protocol = format!("{} and {p}", mine.protocol);
                }
            }
        }
        for (pos, d) in node.data.iter().enumerate() {
            if run.data.len() <= pos {
                run.data.push(MergedData {
                    name: d.name.clone(),
                    file: d.file.clone(),
                    order: d.order,
                    on_end: d.on_end,
                    ..MergedData::default()
                });
            }
            let m = &mut run.data[pos];
            m.rows += d.rows;
            m.used += d.used;
            if let Some(ms) = d.exhausted_ms {
                m.exhausted_nodes += 1;
                let at = node.started_unix_ms + ms;
                m.exhausted_ms = Some(m.exhausted_ms.map_or(at, |t| t.max(at)));
            }
        }
        // Cycles match by position (an index read from a file is not trusted with memory).
        for (pos, cycle) in node.cycles.iter().enumerate() {
            run.cycle(pos).add(cycle);
        }
        let start_s = node.started_unix_ms / 1000;
        if !node.latency.intervals.is_empty() {
            self.latency.push((start_s, node.latency));
        }
        for s in &node.series {
            let abs = start_s + u64::from(s.second);
            self.series.entry(abs).or_default().merge(s);
        }
        for g in node.errors {
            let key = (g.step.clone(), g.kind, g.detail.clone());
            match self.errors.get_mut(&key) {
                Some(e) => e.absorb(g),
                None => {
                    self.errors.insert(key, g);
                }
            }
        }
        for mut h in node.resources {
            for s in &mut h.samples {
                s.at_ms += node.started_unix_ms;
            }
            if h.role == HostRole::Node {
                h.host = format!("node {} ({})", node.node.number, h.host);
            }
            self.resources.push(h);
        }
        Ok(())
    }

    /// The merged run, or `None` when no node was added.
    pub fn finish(self) -> Option<MergedRun> {
        let mut run = self.run?;
        let t0 = run.started_unix_ms;
        let latest = run
            .nodes
            .iter()
            .map(|n| n.started_unix_ms)
            .max()
            .unwrap_or(t0);
        run.start_skew_ms = latest - t0;
        for d in &mut run.data {
            d.exhausted_ms = d.exhausted_ms.map(|at| at.saturating_sub(t0));
        }
        run.nodes.sort_by_key(|n| n.number);

        let mut series: Vec<(u64, SecondSample)> = self.series.into_iter().collect();
        series.sort_by_key(|(abs, _)| *abs);
        let t0_s = t0 / 1000;
        run.series = series
            .into_iter()
            .map(|(abs, mut s)| {
                s.second = (abs - t0_s) as u32;
                s
            })
            .collect();

        run.latency = merge_latency(self.latency, t0_s, run.steps.len());

        let mut errors: Vec<ErrorGroup> = self.errors.into_values().collect();
        errors.sort_by(|a, b| {
            b.count.cmp(&a.count).then_with(|| {
                (&a.step, a.kind.as_str(), &a.detail).cmp(&(&b.step, b.kind.as_str(), &b.detail))
            })
        });
        run.errors = errors;

        let mut resources = self.resources;
        for h in &mut resources {
            for s in &mut h.samples {
                s.at_ms = s.at_ms.saturating_sub(t0);
            }
        }
        // Monitored hosts sampled by several nodes are kept once: the first one seen.
        let mut seen = std::collections::HashSet::new();
        resources.retain(|h| h.role == HostRole::Node || seen.insert(h.host.clone()));
        run.resources = resources;
        Some(run)
    }
}

/// The nodes' latency series added up, each placed by its start (Unix s) after `t0_s`.
fn merge_latency(nodes: Vec<(u64, LatencySeries)>, t0_s: u64, steps: usize) -> LatencySeries {
    let Some(interval_s) = nodes.first().map(|(_, l)| l.interval_s) else {
        return LatencySeries::default();
    };
    let mut sum = LatencySum::new(interval_s, steps);
    for (start_s, series) in &nodes {
        let offset = u32::try_from(start_s.saturating_sub(t0_s)).unwrap_or(u32::MAX);
        sum.add_series(series, offset);
    }
    sum.finish()
}

/// The per-node figures of one node.
fn node_figures(source: &Path, node: &NodeResult) -> NodeFigures {
    let mut latency: Histogram<u64> = new_histogram();
    let (mut requests, mut errors, mut window) = (0, 0, 0.0);
    for c in &node.cycles {
        latency
            .add(&c.requests.latency)
            .expect("histograms share the format's bounds");
        requests += c.requests.total();
        errors += c.requests.failure + c.requests.error;
        window += c.window_s;
    }
    let cpu_peak_pct = node
        .resources
        .iter()
        .filter(|h| h.role == HostRole::Node)
        .flat_map(|h| h.samples.iter().map(|s| s.cpu_pct))
        .reduce(f64::max);
    NodeFigures {
        source: source.to_path_buf(),
        number: node.node.number,
        host: node.node.host.clone(),
        started_unix_ms: node.started_unix_ms,
        requests,
        rps: if window > 0.0 {
            requests as f64 / window
        } else {
            0.0
        },
        p95_ms: if latency.is_empty() {
            0.0
        } else {
            latency.value_at_quantile(0.95) as f64 / 1000.0
        },
        errors,
        cpu_peak_pct,
        interrupted: node.interrupted,
    }
}
