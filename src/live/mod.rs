//! The run second by second, merged exactly, for everything that watches it as it goes: the
//! live dashboard and the live thresholds ([`abort`]) of `bench-master`, and the exporters
//! ([`crate::export`]) of both `bench-master` and `bench-node run` ([`local`]: a node's own
//! seconds). It sits between the protocol and its readers so that node code never depends on
//! master code.
//!
//! [`Live`] takes every node's progress lines (fed by the master's coordinator, or by a node
//! running alone), adds the nodes' tallies of each second (counts add, interval histograms
//! add), and once every running node has sent a second, publishes it as a [`ClusterSecond`]:
//!
//! - [`Live::subscribe`]: each settled second once, in order (a `broadcast` channel: a reader
//!   that falls more than [`CHANNEL_SECONDS`] behind loses the oldest and is told how many);
//! - [`Live::watch`]: the last `window` settled seconds ([`LiveWindow`], a `watch` channel: always
//!   the newest), with [`LiveWindow::merged`] to add up the last N of them.
//!
//! Memory is bounded: `window` settled seconds, and at most `window` unsettled ones (a node
//! that lags further has its oldest seconds settled without it).

pub mod abort;
pub mod local;

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;

use hdrhistogram::Histogram;
use tokio::sync::{broadcast, watch};

use crate::protocol::progress::{ProgressEvent, SecondTally};
use crate::result::latency::new_interval_histogram;
use crate::result::Packed;

/// Seconds the live view keeps by default (the window of [`LiveWindow`]).
pub const DEFAULT_WINDOW: usize = 120;
/// Settled seconds a [`Live::subscribe`] reader may fall behind before losing the oldest.
pub const CHANNEL_SECONDS: usize = 64;

/// One second of the whole cluster: every node's tally of that second of its run added up.
#[derive(Debug, Clone, PartialEq)]
pub struct ClusterSecond {
    /// Second of the run (the nodes start together; each counts from its own start).
    pub second: u32,
    /// Requests completed, and of them those that failed (bad status, check) or erred.
    pub requests: u64,
    pub failures: u64,
    pub errors: u64,
    /// Successful tests and pages completed.
    pub tests_ok: u64,
    pub pages_ok: u64,
    /// Users running at the end of the second, all nodes.
    pub users: u32,
    /// Latency of all pages (successes and failures), µs, merged exactly.
    pub latency: Histogram<u64>,
    /// True when a node's histogram is missing from `latency` (left out of an overlong line, or
    /// unreadable): its counts are in, its latencies are not.
    pub latency_partial: bool,
    /// Per step, by step number (as many as the highest step a node reported).
    pub steps: Vec<ClusterStep>,
    /// Per node, in the coordinator's node order.
    pub per_node: Vec<NodeSecond>,
}

/// One step in one second of the cluster.
#[derive(Debug, Clone, PartialEq)]
pub struct ClusterStep {
    /// Pages completed (successes, failures, errors), failures, errors.
    pub pages: u64,
    pub failures: u64,
    pub errors: u64,
    /// Response body bytes.
    pub bytes: u64,
    /// Latency of the successes and failures, µs.
    pub latency: Histogram<u64>,
    /// As [`ClusterSecond::latency_partial`].
    pub latency_partial: bool,
}

/// One node in one second.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct NodeSecond {
    /// Node number.
    pub node: u32,
    pub requests: u64,
    pub failures: u64,
    pub errors: u64,
    /// Response body bytes of its pages.
    pub bytes: u64,
    /// Users running at the end of the second.
    pub users: u32,
    /// The cycle it was in at the end of the second (as its progress line said).
    pub cycle: Option<u32>,
    /// Latency of its pages, µs, packed (unpack on use: a window of many nodes stays small);
    /// empty when it sent none (no page, or left out of an overlong line).
    pub latency: Packed,
    /// False when the node sent nothing for this second (not started, ended, or lagging).
    pub reported: bool,
}

impl ClusterStep {
    fn new() -> ClusterStep {
        ClusterStep {
            pages: 0,
            failures: 0,
            errors: 0,
            bytes: 0,
            latency: new_interval_histogram(),
            latency_partial: false,
        }
    }

    fn merge(&mut self, o: &ClusterStep) {
        self.pages += o.pages;
        self.failures += o.failures;
        self.errors += o.errors;
        self.bytes += o.bytes;
        add(&mut self.latency, &o.latency);
        self.latency_partial |= o.latency_partial;
    }
}

impl ClusterSecond {
    fn new(second: u32, nodes: &[u32]) -> ClusterSecond {
        ClusterSecond {
            second,
            requests: 0,
            failures: 0,
            errors: 0,
            tests_ok: 0,
            pages_ok: 0,
            users: 0,
            latency: new_interval_histogram(),
            latency_partial: false,
            steps: Vec::new(),
            per_node: nodes
                .iter()
                .map(|&node| NodeSecond {
                    node,
                    ..NodeSecond::default()
                })
                .collect(),
        }
    }

    /// Adds `other` (another second, or the same second measured elsewhere) into `self`:
    /// counts add, histograms add exactly, users add; `second` is kept. The last seconds of a
    /// window added up this way are that window's exact figures (users: a sum of seconds).
    pub fn merge(&mut self, other: &ClusterSecond) {
        self.requests += other.requests;
        self.failures += other.failures;
        self.errors += other.errors;
        self.tests_ok += other.tests_ok;
        self.pages_ok += other.pages_ok;
        self.users += other.users;
        add(&mut self.latency, &other.latency);
        self.latency_partial |= other.latency_partial;
        if self.steps.len() < other.steps.len() {
            self.steps.resize(other.steps.len(), ClusterStep::new());
        }
        for (m, o) in self.steps.iter_mut().zip(&other.steps) {
            m.merge(o);
        }
        for (m, o) in self.per_node.iter_mut().zip(&other.per_node) {
            m.requests += o.requests;
            m.failures += o.failures;
            m.errors += o.errors;
            m.bytes += o.bytes;
            m.users += o.users;
            m.cycle = o.cycle.or(m.cycle);
            if !o.latency.is_empty() {
                let mut h = m.latency.unpack();
                add(&mut h, &o.latency.unpack());
                m.latency = Packed::pack(&h);
            }
            m.reported |= o.reported;
        }
    }

    /// Response body bytes of all pages.
    pub fn bytes(&self) -> u64 {
        self.steps.iter().map(|s| s.bytes).sum()
    }

    /// Adds one node's tally of this second, sent in a line of `cycle`; false when a
    /// histogram was unreadable.
    fn add_tally(&mut self, slot: usize, cycle: u32, t: &SecondTally) -> bool {
        self.requests += t.requests;
        self.failures += t.failures;
        self.errors += t.errors;
        self.tests_ok += t.tests_ok;
        self.pages_ok += t.pages_ok;
        let mut ok = unpack_into(&mut self.latency, &mut self.latency_partial, &t.latency);
        for s in &t.steps {
            // Step numbers come from a node: at most a bounded line's worth of them.
            let i = s.step as usize;
            if i >= self.steps.len() {
                self.steps.resize(i + 1, ClusterStep::new());
            }
            let step = &mut self.steps[i];
            step.pages += s.pages;
            step.failures += s.failures;
            step.errors += s.errors;
            step.bytes += s.bytes;
            ok &= unpack_into(&mut step.latency, &mut step.latency_partial, &s.latency);
        }
        if let Some(n) = self.per_node.get_mut(slot) {
            n.requests += t.requests;
            n.failures += t.failures;
            n.errors += t.errors;
            n.bytes += t.steps.iter().map(|s| s.bytes).sum::<u64>();
            if let Some(p) = t
                .latency
                .as_deref()
                .and_then(|t| Packed::from_base64(t).ok())
            {
                if n.latency.is_empty() {
                    n.latency = p;
                } else if !p.is_empty() {
                    let mut h = n.latency.unpack();
                    add(&mut h, &p.unpack());
                    n.latency = Packed::pack(&h);
                }
            }
            // The line's cycle, unless its users line says (the last line of a run has none).
            n.cycle.get_or_insert(cycle);
            n.reported = true;
        }
        ok
    }

    /// Notes a node's users and cycle at the end of this second.
    fn set_users(&mut self, slot: usize, users: u32, cycle: u32) {
        if let Some(n) = self.per_node.get_mut(slot) {
            self.users = self.users.saturating_sub(n.users) + users;
            n.users = users;
            n.cycle = Some(cycle);
            n.reported = true;
        }
    }
}

fn add(into: &mut Histogram<u64>, h: &Histogram<u64>) {
    if !h.is_empty() {
        into.add(h).expect("interval histograms share bounds");
    }
}

/// Adds a node's base64 histogram into `into`; absent or unreadable marks it `partial`.
/// False when unreadable.
fn unpack_into(into: &mut Histogram<u64>, partial: &mut bool, text: &Option<String>) -> bool {
    let Some(text) = text else {
        *partial = true;
        return true;
    };
    match Packed::from_base64(text) {
        Ok(p) if p.is_empty() => true,
        Ok(p) => {
            add(into, &p.unpack());
            true
        }
        Err(_) => {
            *partial = true;
            false
        }
    }
}

/// The last settled seconds, oldest first.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LiveWindow {
    pub seconds: VecDeque<Arc<ClusterSecond>>,
}

impl LiveWindow {
    /// The newest settled second.
    pub fn last(&self) -> Option<&ClusterSecond> {
        self.seconds.back().map(|s| &**s)
    }

    /// The last `n` settled seconds added up (see [`ClusterSecond::merge`]), numbered by the
    /// newest; `None` before any second settled.
    pub fn merged(&self, n: usize) -> Option<ClusterSecond> {
        let mut newest = self.seconds.iter().rev().take(n);
        let mut sum = (**newest.next()?).clone();
        for s in newest {
            sum.merge(s);
        }
        Some(sum)
    }
}

/// Where one node is.
#[derive(Debug, Clone)]
struct NodeState {
    /// The node has sent every second before this one.
    through: u32,
    /// Still expected to send seconds.
    active: bool,
}

/// The cluster's live per-second view (see the module's documentation).
pub struct Live {
    window: usize,
    /// Node numbers, in the coordinator's order (the slot index is the position).
    numbers: Vec<u32>,
    nodes: Vec<NodeState>,
    /// Seconds some running node has not sent yet, by second.
    pending: BTreeMap<u32, ClusterSecond>,
    /// Every second before this one has been settled (published).
    settled_through: u32,
    /// Seconds before this one are skipped, not counted as rejected (see [`Live::starting_at`]).
    first: u32,
    /// Each settled second, once (see [`Live::subscribe`]).
    seconds_tx: broadcast::Sender<Arc<ClusterSecond>>,
    /// The last `window` settled seconds (see [`Live::watch`]).
    window_tx: watch::Sender<Arc<LiveWindow>>,
    /// Tallies that came for a second already settled, or with an unreadable histogram.
    rejected: u64,
}

impl Live {
    /// A live view of nodes numbered `numbers` (the coordinator's order), keeping `window`
    /// settled seconds (at least 1).
    pub fn new(numbers: Vec<u32>, window: usize) -> Live {
        let (seconds_tx, _) = broadcast::channel(CHANNEL_SECONDS);
        let (window_tx, _) = watch::channel(Arc::new(LiveWindow::default()));
        Live {
            window: window.max(1),
            nodes: vec![
                NodeState {
                    through: 0,
                    active: true,
                };
                numbers.len()
            ],
            numbers,
            pending: BTreeMap::new(),
            settled_through: 0,
            first: 0,
            seconds_tx,
            window_tx,
            rejected: 0,
        }
    }

    /// The same view starting at second `first`: what the nodes send for the seconds before
    /// is skipped (`--attach` skips the seconds already past, which the master may have
    /// exported before it detached, so that nothing is counted twice).
    pub fn starting_at(mut self, first: u32) -> Live {
        self.first = first;
        self.settled_through = first;
        self
    }

    /// Every second before this one is settled (published).
    pub fn settled_through(&self) -> u32 {
        self.settled_through
    }

    /// Each second of the cluster once it is settled, in order.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<ClusterSecond>> {
        self.seconds_tx.subscribe()
    }

    /// The last settled seconds, updated as each settles.
    pub fn watch(&self) -> watch::Receiver<Arc<LiveWindow>> {
        self.window_tx.subscribe()
    }

    /// Tallies rejected so far: for a second already settled (a node lagging by more than the
    /// window) or with an unreadable histogram.
    pub fn rejected(&self) -> u64 {
        self.rejected
    }

    /// A progress line of the node at `slot`.
    pub fn progress(&mut self, slot: usize, event: &ProgressEvent) {
        let ProgressEvent::Progress {
            cycle,
            users,
            through,
            seconds,
            ..
        } = event
        else {
            return;
        };
        if slot >= self.nodes.len() {
            return;
        }
        for t in seconds {
            if t.second < self.settled_through {
                if t.second >= self.first {
                    self.rejected += 1;
                }
                continue;
            }
            let s = self.second(t.second);
            if !s.add_tally(slot, *cycle, t) {
                self.rejected += 1;
            }
        }
        // `users` is the node's count at the end of the second before `through`.
        if *through > self.settled_through && *through != u32::MAX {
            let users = *users;
            self.second(through - 1).set_users(slot, users, *cycle);
        }
        let node = &mut self.nodes[slot];
        node.through = node.through.max(*through);
        if *through == u32::MAX {
            node.active = false;
        }
        self.settle();
    }

    /// The node at `slot` sends no more seconds (done, failed, stopped).
    pub fn node_ended(&mut self, slot: usize) {
        if let Some(n) = self.nodes.get_mut(slot) {
            n.active = false;
            self.settle();
        }
    }

    fn second(&mut self, second: u32) -> &mut ClusterSecond {
        let numbers = &self.numbers;
        self.pending
            .entry(second)
            .or_insert_with(|| ClusterSecond::new(second, numbers))
    }

    /// Publishes the seconds every running node has sent (all of them once none runs), and
    /// the oldest beyond the window's worth of pending ones.
    fn settle(&mut self) {
        let through = self
            .nodes
            .iter()
            .filter(|n| n.active)
            .map(|n| n.through)
            .min()
            .unwrap_or(u32::MAX);
        let mut window = None;
        while let Some(&second) = self.pending.keys().next() {
            if second >= through && self.pending.len() <= self.window {
                break;
            }
            let s = Arc::new(
                self.pending
                    .remove(&second)
                    .expect("the first key is there"),
            );
            self.settled_through = second + 1;
            let _ = self.seconds_tx.send(s.clone());
            let w = window.get_or_insert_with(|| (**self.window_tx.borrow()).clone());
            w.seconds.push_back(s);
            while w.seconds.len() > self.window {
                w.seconds.pop_front();
            }
        }
        if let Some(w) = window {
            self.window_tx.send_replace(Arc::new(w));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::progress::StepTally;

    fn packed(values: &[u64]) -> Option<String> {
        let mut h = new_interval_histogram();
        for v in values {
            h.record(*v).unwrap();
        }
        Some(Packed::pack(&h).to_base64())
    }

    fn line(through: u32, users: u32, seconds: Vec<SecondTally>) -> ProgressEvent {
        ProgressEvent::Progress {
            cycle: 0,
            users,
            requests: 0,
            failures: 0,
            errors: 0,
            rps: 0.0,
            elapsed: f64::from(through),
            through,
            seconds,
            cpu: None,
        }
    }

    fn tally(second: u32, requests: u64, values: &[u64]) -> SecondTally {
        SecondTally {
            second,
            requests,
            latency: packed(values),
            steps: vec![StepTally {
                step: 1,
                pages: values.len() as u64,
                latency: packed(values),
                ..StepTally::default()
            }],
            ..SecondTally::default()
        }
    }

    #[test]
    fn a_second_settles_once_every_running_node_sent_it_and_merges_exactly() {
        let mut live = Live::new(vec![0, 1], 3);
        let mut each = live.subscribe();
        let window = live.watch();
        live.progress(0, &line(1, 5, vec![tally(0, 2, &[1000, 2000])]));
        assert!(each.try_recv().is_err(), "node 1 has not sent second 0");
        live.progress(1, &line(1, 7, vec![tally(0, 3, &[3000, 4000, 5000])]));
        let s = each.try_recv().unwrap();
        assert_eq!((s.second, s.requests, s.users), (0, 5, 12));
        assert_eq!(s.latency.len(), 5);
        assert!(s.latency.equivalent(s.latency.value_at_quantile(0.5), 3000));
        assert_eq!(s.steps[1].latency.len(), 5);
        assert_eq!(s.per_node[1].requests, 3);
        assert_eq!(
            s.per_node[1].latency.unpack().len(),
            3,
            "each node's own latency"
        );
        assert_eq!((s.per_node[0].users, s.per_node[0].cycle), (5, Some(0)));
        // A node that ended no longer holds seconds back.
        live.progress(0, &line(2, 5, vec![tally(1, 1, &[10])]));
        live.node_ended(1);
        assert_eq!(each.try_recv().unwrap().requests, 1);
        assert_eq!(window.borrow().seconds.len(), 2);
        assert_eq!(window.borrow().merged(2).unwrap().requests, 6);
        // Late for a settled second: rejected, counted.
        live.progress(0, &line(2, 5, vec![tally(0, 1, &[10])]));
        assert_eq!(live.rejected(), 1);
    }

    #[test]
    fn a_view_starting_later_skips_the_seconds_before_and_merges_the_rest_exactly() {
        let mut live = Live::new(vec![0, 1], 3).starting_at(5);
        let mut each = live.subscribe();
        // Replayed lines of seconds already past: skipped, not rejected, not settled.
        for n in 0..2 {
            live.progress(n, &line(5, 1, vec![tally(3, 9, &[1]), tally(4, 9, &[1])]));
        }
        assert!(each.try_recv().is_err());
        assert_eq!(live.rejected(), 0);
        live.progress(0, &line(6, 1, vec![tally(5, 2, &[1000, 2000])]));
        live.progress(1, &line(6, 1, vec![tally(5, 3, &[3000])]));
        let s = each.try_recv().unwrap();
        assert_eq!((s.second, s.requests, s.latency.len()), (5, 5, 3));
        assert_eq!(live.settled_through(), 6);
    }

    #[test]
    fn a_lagging_node_holds_back_at_most_a_window_and_bad_histograms_are_counted() {
        let mut live = Live::new(vec![0, 1], 2);
        let window = live.watch();
        for s in 0..5 {
            live.progress(0, &line(s + 1, 1, vec![tally(s, 1, &[5])]));
        }
        assert_eq!(window.borrow().seconds.len(), 2);
        assert!(live.pending.len() <= 2);
        let mut bad = tally(9, 1, &[5]);
        bad.latency = Some("AAAA".into());
        live.progress(0, &line(10, 1, vec![bad]));
        assert_eq!(live.rejected(), 1);
        live.node_ended(1);
        let w = window.borrow();
        let last = w.last().unwrap();
        assert_eq!(last.second, 9);
        assert!(last.latency_partial);
    }
}
