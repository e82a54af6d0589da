//! What every sink sends: one [`Interval`] (a second of the run) of [`Point`]s, one per node
//! and step, made from the live view's merged [`ClusterSecond`] and the run's [`Tags`].

use crate::live::{ClusterSecond, NodeSecond};

/// The name `node` and `step` take for the whole cluster and for all steps.
pub const ALL: &str = "all";

/// What the exported points are named and tagged with: the same for every second of a run.
#[derive(Debug, Clone, Default)]
pub struct Tags {
    /// Run name and test name.
    pub run: String,
    pub test: String,
    /// Step names, by step number.
    pub steps: Vec<String>,
    /// Node names, by slot of the live view (`node0`, ...; `local` for `bench-node run` alone).
    pub nodes: Vec<String>,
}

/// One second of the run, ready to export.
#[derive(Debug, Clone, PartialEq)]
pub struct Interval {
    /// Start of the second, Unix ms.
    pub unix_ms: u64,
    /// Run name and test name (tags of every point).
    pub run: String,
    pub test: String,
    /// Cycle the nodes were in, from 1 (tag of every point); `None` before the first.
    pub cycle: Option<u32>,
    /// The cluster (`node` = `step` = [`ALL`]) first, then each step of the cluster, then
    /// each node (its own numbers, all steps).
    pub points: Vec<Point>,
}

/// The numbers of one node (or the cluster) and one step (or all) in one second.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Point {
    /// A node's name ([`Tags::nodes`]) or [`ALL`].
    pub node: String,
    /// Step name or [`ALL`].
    pub step: String,
    /// Requests (pages for a step) completed, and of them failed and erred.
    pub requests: u64,
    pub failures: u64,
    pub errors: u64,
    /// Response body bytes; `None` where not known.
    pub bytes: Option<u64>,
    /// Latency percentiles, ms; `None` when nothing completed or not known (a node whose
    /// histogram was left out of its progress line).
    pub p50_ms: Option<f64>,
    pub p95_ms: Option<f64>,
    pub p99_ms: Option<f64>,
    /// Users running at the end of the second; `None` for a step.
    pub users: Option<u32>,
}

fn percentiles(h: &hdrhistogram::Histogram<u64>) -> [Option<f64>; 3] {
    [0.50, 0.95, 0.99].map(|q| (!h.is_empty()).then(|| h.value_at_quantile(q) as f64 / 1000.0))
}

impl Point {
    /// One node's own numbers in a second (all its steps).
    fn of_node(name: String, n: &NodeSecond) -> Point {
        let [p50_ms, p95_ms, p99_ms] = if n.latency.is_empty() {
            [None; 3]
        } else {
            percentiles(&n.latency.unpack())
        };
        Point {
            node: name,
            step: ALL.into(),
            requests: n.requests,
            failures: n.failures,
            errors: n.errors,
            bytes: Some(n.bytes),
            p50_ms,
            p95_ms,
            p99_ms,
            users: Some(n.users),
        }
    }
}

impl Interval {
    /// The export of one merged second; `start_unix_ms` is when the nodes started. Its cycle
    /// is the highest a node was in at the end of the second.
    pub fn of_cluster(s: &ClusterSecond, start_unix_ms: u64, tags: &Tags) -> Interval {
        let [p50, p95, p99] = percentiles(&s.latency);
        let mut points = vec![Point {
            node: ALL.into(),
            step: ALL.into(),
            requests: s.requests,
            failures: s.failures,
            errors: s.errors,
            bytes: Some(s.bytes()),
            p50_ms: p50,
            p95_ms: p95,
            p99_ms: p99,
            users: Some(s.users),
        }];
        for (i, step) in s.steps.iter().enumerate().filter(|(_, x)| x.pages > 0) {
            let [p50, p95, p99] = percentiles(&step.latency);
            points.push(Point {
                node: ALL.into(),
                step: tags
                    .steps
                    .get(i)
                    .cloned()
                    .unwrap_or_else(|| format!("step{i}")),
                requests: step.pages,
                failures: step.failures,
                errors: step.errors,
                bytes: Some(step.bytes),
                p50_ms: p50,
                p95_ms: p95,
                p99_ms: p99,
                users: None,
            });
        }
        for (slot, n) in s.per_node.iter().enumerate().filter(|(_, n)| n.reported) {
            let name = tags
                .nodes
                .get(slot)
                .cloned()
                .unwrap_or_else(|| format!("node{}", n.node));
            points.push(Point::of_node(name, n));
        }
        Interval {
            unix_ms: start_unix_ms + u64::from(s.second) * 1000,
            run: tags.run.clone(),
            test: tags.test.clone(),
            cycle: s
                .per_node
                .iter()
                .filter_map(|n| n.cycle)
                .max()
                .map(|c| c + 1),
            points,
        }
    }
}
