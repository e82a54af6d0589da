//! What every sink sends: one [`Interval`] (a second of the run) of [`Point`]s, one per node
//! and step, made from the live view's merged [`ClusterSecond`].

use crate::master::live::ClusterSecond;

/// The name `node` and `step` take for the whole cluster and for all steps.
pub const ALL: &str = "all";

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
    /// `node0`, ... or [`ALL`].
    pub node: String,
    /// Step name or [`ALL`].
    pub step: String,
    /// Requests (pages for a step) completed, and of them failed and erred.
    pub requests: u64,
    pub failures: u64,
    pub errors: u64,
    /// Response body bytes; `None` where not known (a node's own line).
    pub bytes: Option<u64>,
    /// Latency percentiles, ms; `None` when nothing completed or not known.
    pub p50_ms: Option<f64>,
    pub p95_ms: Option<f64>,
    pub p99_ms: Option<f64>,
    /// Users running at the end of the second; `None` for a step.
    pub users: Option<u32>,
}

fn percentiles(h: &hdrhistogram::Histogram<u64>) -> [Option<f64>; 3] {
    [0.50, 0.95, 0.99].map(|q| (!h.is_empty()).then(|| h.value_at_quantile(q) as f64 / 1000.0))
}

impl Interval {
    /// The export of one merged second; `start_unix_ms` is when the nodes started, `steps`
    /// the test's step names (by step number).
    pub fn of_cluster(
        s: &ClusterSecond,
        start_unix_ms: u64,
        run: &str,
        test: &str,
        cycle: Option<u32>,
        steps: &[String],
    ) -> Interval {
        let [p50, p95, p99] = percentiles(&s.latency);
        let mut points = vec![Point {
            node: ALL.into(),
            step: ALL.into(),
            requests: s.requests,
            failures: s.failures,
            errors: s.errors,
            bytes: Some(s.steps.iter().map(|x| x.bytes).sum()),
            p50_ms: p50,
            p95_ms: p95,
            p99_ms: p99,
            users: Some(s.users),
        }];
        for (i, step) in s.steps.iter().enumerate().filter(|(_, x)| x.pages > 0) {
            let [p50, p95, p99] = percentiles(&step.latency);
            points.push(Point {
                node: ALL.into(),
                step: steps.get(i).cloned().unwrap_or_else(|| format!("step{i}")),
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
        for n in s.per_node.iter().filter(|n| n.reported) {
            points.push(Point {
                node: format!("node{}", n.node),
                step: ALL.into(),
                requests: n.requests,
                failures: n.failures,
                errors: n.errors,
                users: Some(n.users),
                ..Point::default()
            });
        }
        Interval {
            unix_ms: start_unix_ms + u64::from(s.second) * 1000,
            run: run.into(),
            test: test.into(),
            cycle,
            points,
        }
    }
}
