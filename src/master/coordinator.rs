//! The run's coordinator: waits until the nodes are ready, starts them together with one
//! `start` line each, follows their progress, notices nodes that die or go silent, enforces
//! the run's deadline, and stops or detaches them on request.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::sync::{mpsc, watch};

use super::display::{Display, NodeLine};
use super::follow::NodeMsg;
use super::state::NodeStatus;
use super::transport::{signal, Transport};
use super::Interrupt;
use crate::live::abort::AbortWatch;
use crate::live::{ClusterSecond, Live, DEFAULT_WINDOW};
use crate::protocol::control::Command;
use crate::protocol::lines::MAX_LINE;
use crate::protocol::progress::ProgressEvent;
use crate::report::threshold::LiveStop;
use crate::words::words;

/// How far ahead of the word nodes are told to start.
const START_LEAD: Duration = Duration::from_millis(200);

/// A node silent for this long while it runs is taken for dead or cut off (it reports every
/// second).
pub const STALL: Duration = Duration::from_secs(10);
/// Longest wait for a node that reported its result to end.
pub const EXIT_WAIT: Duration = Duration::from_secs(5);
/// Time a node has, once the first nodes are ready and enough of them are, to get ready too.
pub const READY_GRACE: Duration = Duration::from_secs(10);

words! {
    /// Where a node is in the run, spelled as the progress lines show it.
    #[derive(Default)]
    pub enum State {
        /// Started, preparing.
        #[default]
        Waiting => "starting",
        /// Prepared, waiting for `start`.
        Ready => "ready",
        /// Running its cycles.
        Running => "running",
        /// Told to stop.
        Stopping => "stopping",
        /// Ended with its result written.
        Done => "done",
        /// Died, went silent, or failed to deploy or start.
        Failed => "failed",
        /// Not ready in time: left out of the run.
        Missing => "missing",
    }
}

impl State {
    fn active(self) -> bool {
        matches!(
            self,
            State::Waiting | State::Ready | State::Running | State::Stopping
        )
    }
}

/// How the state file records a node: every node still in the run is `running` there (a
/// detached run's nodes are followed by their process ids, whatever their phase).
impl From<State> for NodeStatus {
    fn from(state: State) -> NodeStatus {
        match state {
            State::Waiting | State::Ready | State::Running | State::Stopping => NodeStatus::Running,
            State::Done => NodeStatus::Done,
            State::Failed => NodeStatus::Failed,
            State::Missing => NodeStatus::Missing,
        }
    }
}

/// One node as the coordinator sees it.
pub struct Slot {
    pub number: u32,
    /// Its host.
    pub host: Arc<dyn Transport>,
    /// Node directory on the host (empty when deploy failed).
    pub dir: String,
    /// The node's stdin: the master's command channel. Dropped (EOF) when the node is given up.
    pub stdin: Option<Box<dyn AsyncWrite + Send + Unpin>>,
    pub state: State,
    pub pid: Option<u32>,
    /// Why it failed or is missing.
    pub reason: Option<String>,
    /// The result path the node announced.
    pub result: Option<String>,
    /// Whether the node's process ended.
    pub exited: bool,
    /// Whether its result came with its end (already in the run's `results/`).
    pub delivered: bool,
    last_heard: Instant,
    line: NodeLine,
}

impl Slot {
    /// A node that will be followed (`stdin` set) or that already failed (`reason` set).
    pub fn new(number: u32, host: Arc<dyn Transport>, dir: String) -> Slot {
        Slot {
            number,
            host,
            dir,
            stdin: None,
            state: State::Waiting,
            pid: None,
            reason: None,
            result: None,
            exited: false,
            delivered: false,
            last_heard: Instant::now(),
            line: NodeLine::default(),
        }
    }

    /// Marks the node failed (or missing) for `reason` and closes its command channel.
    pub fn give_up(&mut self, state: State, reason: String) {
        if self.state.active() {
            self.state = state;
            self.reason = Some(reason);
        }
        self.stdin = None;
    }

    async fn say(&mut self, command: Command) {
        if let Some(stdin) = self.stdin.as_mut() {
            // A closed channel shows up as the node's end; nothing to do here.
            if stdin.write_all(command.line().as_bytes()).await.is_ok() {
                let _ = stdin.flush().await;
            }
        }
    }

    /// Kills the node's process in the background (bounded in time; a cut-off host may not
    /// answer).
    fn kill(&self) {
        let (Some(pid), host) = (self.pid, self.host.clone()) else {
            return;
        };
        tokio::spawn(async move {
            let _ =
                tokio::time::timeout(Duration::from_secs(10), signal(host.as_ref(), pid, "KILL"))
                    .await;
        });
    }
}

/// How the coordinator's loop ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ending {
    /// Every node ended (done or failed).
    Finished,
    /// The nodes keep running; the master leaves.
    Detached,
    /// Too few nodes got ready: nothing ran.
    Aborted(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RunPhase {
    Waiting,
    Running,
    Stopping,
}

/// Follows the nodes of a run from their start to their end.
pub struct Coordinator {
    pub slots: Vec<Slot>,
    /// Messages of every node's follower task (bounded: see [`super::follow::follow`]).
    rx: mpsc::Receiver<NodeMsg>,
    display: Display,
    min_nodes: usize,
    phase: RunPhase,
    ready_deadline: Instant,
    grace_until: Option<Instant>,
    /// Longest the run may last once started (plan + grace).
    budget: Duration,
    run_deadline: Option<Instant>,
    stop_deadline: Option<Instant>,
    /// Time nodes get to stop when told to.
    stop_budget: Duration,
    /// When `start` was sent.
    pub started: Option<SystemTime>,
    /// The instant the nodes were told to start at, Unix ms.
    pub planned_start: Option<u64>,
    /// When the coordinator stops waiting for done nodes to end (see [`Coordinator::exited`]).
    exit_deadline: Option<Instant>,
    /// Start instants as received from each node's first cycle event, for the skew.
    first_cycle: Vec<Option<Instant>>,
    created: Instant,
    /// The cluster's merged seconds, fed with every node's progress (see [`Coordinator::live`]).
    live: Live,
    /// The thresholds judged live on the cluster's seconds (`abort = true`), if any.
    abort: Option<AbortWatch>,
    /// The threshold that stopped the run live, once one did.
    pub stopped_by: Option<LiveStop>,
    /// The node lines as last drawn, for the live dashboard (see [`Coordinator::nodes`]).
    nodes_tx: watch::Sender<Arc<Vec<NodeLine>>>,
    /// When the nodes were told to start, Unix ms (see [`Coordinator::start_time`]).
    start_tx: watch::Sender<Option<u64>>,
}

impl Coordinator {
    /// A coordinator for `slots`; `ready_timeout` bounds the wait for ready nodes, `budget` the
    /// run once started, `stop_budget` the wait for nodes told to stop.
    pub fn new(
        slots: Vec<Slot>,
        rx: mpsc::Receiver<NodeMsg>,
        display: Display,
        min_nodes: usize,
        ready_timeout: Duration,
        budget: Duration,
        stop_budget: Duration,
    ) -> Coordinator {
        let n = slots.len();
        let numbers = slots.iter().map(|s| s.number).collect();
        Coordinator {
            slots,
            rx,
            display,
            min_nodes,
            phase: RunPhase::Waiting,
            ready_deadline: Instant::now() + ready_timeout,
            grace_until: None,
            budget,
            run_deadline: None,
            stop_deadline: None,
            stop_budget,
            started: None,
            planned_start: None,
            exit_deadline: None,
            first_cycle: vec![None; n],
            created: Instant::now(),
            live: Live::new(numbers, DEFAULT_WINDOW),
            abort: None,
            stopped_by: None,
            nodes_tx: watch::channel(Arc::new(Vec::new())).0,
            start_tx: watch::channel(None).0,
        }
    }

    /// When the nodes start their second 0, Unix ms, once they are told to.
    pub fn start_time(&self) -> watch::Receiver<Option<u64>> {
        self.start_tx.subscribe()
    }

    /// The node lines (state, cycle, users, rate, CPU), updated once a second.
    pub fn nodes(&self) -> watch::Receiver<Arc<Vec<NodeLine>>> {
        self.nodes_tx.subscribe()
    }

    /// The cluster's live per-second view: subscribe to it before [`Coordinator::run`].
    pub fn live(&self) -> &Live {
        &self.live
    }

    /// Judges `watch`'s thresholds on every settled second of the cluster while the run goes
    /// on; one that stays broken stops every node.
    pub fn with_abort(mut self, watch: Option<AbortWatch>) -> Coordinator {
        self.abort = watch;
        self
    }

    /// Runs until every node ended, the master detached, or too few nodes got ready.
    pub async fn run(&mut self, interrupts: &mut mpsc::Receiver<Interrupt>) -> Ending {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut seconds = self.live.subscribe();
        loop {
            tokio::select! {
                // A node spoke or ended.
                Some(msg) = self.rx.recv() => self.handle(msg),
                // A second of the cluster settled: the live thresholds judge it (a lagging
                // reader skips the seconds it lost: the next ones are judged).
                Ok(second) = seconds.recv(), if self.abort.is_some() => {
                    self.judge_live(&second).await;
                }
                // Once a second: redraw, find silent nodes, enforce deadlines.
                _ = tick.tick() => self.on_tick(),
                // Ctrl+C or SIGTERM.
                Some(interrupt) = interrupts.recv() => {
                    if let Some(ending) = self.interrupt(interrupt).await {
                        self.display.finish();
                        return ending;
                    }
                }
            }
            if let Some(ending) = self.advance().await {
                self.refresh();
                self.display.finish();
                return ending;
            }
        }
    }

    fn handle(&mut self, msg: NodeMsg) {
        match msg {
            NodeMsg::Event(i, event) => self.heard(i, event),
            NodeMsg::Overlong(i, stream) => {
                let why = format!(
                    "sent a line longer than {MAX_LINE} bytes on its {stream} (a broken or \
                     hostile bench-node): no longer heard, killed"
                );
                self.fail(i, why, true);
            }
            NodeMsg::Delivered(i) => {
                self.slots[i].delivered = true;
                let n = self.slots[i].number;
                super::trace::mark(|| format!("node{n} result delivered"));
            }
            NodeMsg::Exited(i, code) => {
                self.slots[i].exited = true;
                let n = self.slots[i].number;
                super::trace::mark(|| format!("node{n} exited"));
                let why = match code {
                    Some(c) => format!("bench-node exited with code {c} before finishing"),
                    None => "bench-node was killed or its connection was lost".to_string(),
                };
                self.fail(i, why, false);
            }
        }
    }

    /// A progress event of the node at `i`.
    fn heard(&mut self, i: usize, event: ProgressEvent) {
        self.live.progress(i, &event);
        if matches!(event, ProgressEvent::Done { .. }) {
            self.live.node_ended(i);
        }
        let slot = &mut self.slots[i];
        slot.last_heard = Instant::now();
        slot.line.heard(&event);
        match event {
            ProgressEvent::Ready { pid, .. } => {
                slot.pid = Some(pid);
                if slot.state == State::Waiting {
                    slot.state = State::Ready;
                }
                let n = slot.number;
                super::trace::mark(|| format!("node{n} ready"));
            }
            ProgressEvent::Cycle { .. } => {
                if slot.state == State::Ready {
                    slot.state = State::Running;
                }
                if self.first_cycle[i].is_none() {
                    self.first_cycle[i] = Some(Instant::now());
                }
            }
            ProgressEvent::Progress { .. } => {
                if slot.state == State::Ready {
                    slot.state = State::Running;
                }
            }
            ProgressEvent::Done {
                result,
                interrupted,
            } => {
                if slot.state.active() {
                    slot.state = State::Done;
                }
                let n = slot.number;
                super::trace::mark(|| format!("node{n} done"));
                slot.result = Some(result);
                if interrupted {
                    slot.reason = Some("interrupted".into());
                }
            }
        }
    }

    /// Fails the node at `i` for `why` (said on the display while it was active), and with
    /// `kill` kills its process.
    fn fail(&mut self, i: usize, why: String, kill: bool) {
        self.live.node_ended(i);
        let slot = &mut self.slots[i];
        if slot.state.active() {
            self.display.message(&format!(
                "node{} ({}) failed: {why}",
                slot.number,
                slot.host.label()
            ));
            if kill {
                slot.kill();
            }
        }
        slot.give_up(State::Failed, why);
    }

    fn on_tick(&mut self) {
        if self.phase != RunPhase::Waiting {
            for slot in &mut self.slots {
                let silent = slot.last_heard.elapsed();
                if matches!(slot.state, State::Running | State::Ready | State::Stopping)
                    && silent > STALL
                {
                    let why = format!(
                        "no word from the node for {}s (dead, hung or cut off)",
                        silent.as_secs()
                    );
                    self.display.message(&format!(
                        "node{} ({}) failed: {why}",
                        slot.number,
                        slot.host.label()
                    ));
                    slot.kill();
                    slot.give_up(State::Failed, why);
                }
            }
        }
        self.refresh();
    }

    fn refresh(&mut self) {
        let lines: Vec<NodeLine> = self
            .slots
            .iter()
            .map(|s| NodeLine {
                state: s.state,
                ..s.line.clone()
            })
            .collect();
        self.display.refresh(&lines);
        self.nodes_tx.send_replace(Arc::new(lines));
    }

    /// Moves the run to its next phase when due.
    async fn advance(&mut self) -> Option<Ending> {
        let now = Instant::now();
        let count = |s: State| self.slots.iter().filter(|x| x.state == s).count();
        let active = self.slots.iter().filter(|x| x.state.active()).count();
        match self.phase {
            RunPhase::Waiting => {
                let ready = count(State::Ready);
                let waiting = count(State::Waiting);
                if ready >= self.min_nodes && self.grace_until.is_none() && waiting > 0 {
                    self.grace_until = Some(now + READY_GRACE);
                }
                let grace_over = self.grace_until.is_some_and(|g| now >= g);
                if waiting == 0 || grace_over || now >= self.ready_deadline {
                    if ready >= self.min_nodes && ready > 0 {
                        self.start().await;
                    } else {
                        let why = format!(
                            "only {ready} of {} nodes ready, {} needed (--min-nodes)",
                            self.slots.len(),
                            self.min_nodes
                        );
                        for slot in &mut self.slots {
                            slot.kill();
                            slot.give_up(State::Missing, "the run did not start".into());
                        }
                        return Some(Ending::Aborted(why));
                    }
                }
            }
            RunPhase::Running => {
                if active == 0 && self.exited(now) {
                    return Some(Ending::Finished);
                }
                if self.run_deadline.is_some_and(|d| now >= d) {
                    self.display.message(&format!(
                        "the run passed its deadline ({}s): stopping the nodes",
                        self.budget.as_secs()
                    ));
                    self.stop_all().await;
                }
            }
            RunPhase::Stopping => {
                if active == 0 && self.exited(now) {
                    return Some(Ending::Finished);
                }
                if self.stop_deadline.is_some_and(|d| now >= d) {
                    for slot in &mut self.slots {
                        if slot.state.active() {
                            slot.kill();
                            slot.give_up(State::Failed, "did not stop in time: killed".into());
                        }
                    }
                    return Some(Ending::Finished);
                }
            }
        }
        None
    }

    /// True once every node that reported its result has also ended, or [`EXIT_WAIT`] after
    /// the last one reported: its result is complete when it says so, and no process is left.
    fn exited(&mut self, now: Instant) -> bool {
        if self
            .slots
            .iter()
            .all(|s| s.exited || s.state != State::Done)
        {
            return true;
        }
        let deadline = *self.exit_deadline.get_or_insert(now + EXIT_WAIT);
        now >= deadline
    }

    /// Sends `start` to every ready node at once; the others are left out.
    async fn start(&mut self) {
        for slot in &mut self.slots {
            if slot.state == State::Waiting {
                self.display.message(&format!(
                    "node{} ({}) missing: not ready in time",
                    slot.number,
                    slot.host.label()
                ));
                slot.kill();
                slot.give_up(State::Missing, "not ready when the run started".into());
            }
        }
        // Every node gets the same start time a little ahead, so that the order and delay in
        // which the words arrive (one channel per host, busy machines) do not skew the start.
        let at = SystemTime::now() + START_LEAD;
        let at_ms = crate::result::unix_ms(at);
        super::trace::mark(|| format!("start said, for {} ms later", START_LEAD.as_millis()));
        self.planned_start = Some(at_ms);
        self.start_tx.send_replace(Some(at_ms));
        let writes = self
            .slots
            .iter_mut()
            .filter(|s| s.state == State::Ready)
            .map(|s| s.say(Command::Start(Some(at_ms))));
        super::join_all(writes).await;
        let now = Instant::now();
        for slot in &mut self.slots {
            slot.last_heard = now;
        }
        self.started = Some(SystemTime::now());
        self.run_deadline = Some(now + self.budget);
        self.phase = RunPhase::Running;
        let ready = self
            .slots
            .iter()
            .filter(|s| s.state == State::Ready)
            .count();
        self.display.message(&format!(
            "{ready} nodes ready in {:.1}s: started",
            self.created.elapsed().as_secs_f64()
        ));
    }

    /// Judges a settled second of the cluster on the live thresholds; the first one broken
    /// for its `abort_after` stops every node (the run is still collected and reported).
    async fn judge_live(&mut self, second: &ClusterSecond) {
        if self.phase != RunPhase::Running || self.stopped_by.is_some() {
            return;
        }
        let Some(stop) = self.abort.as_mut().and_then(|w| w.second(second)) else {
            return;
        };
        self.display
            .message(&format!("stopping every node: threshold {stop}"));
        self.stopped_by = Some(stop);
        self.stop_all().await;
    }

    /// Tells every active node to stop; they write their results and end.
    async fn stop_all(&mut self) {
        let stops = self.slots.iter_mut().filter(|s| s.state.active()).map(|s| {
            s.state = State::Stopping;
            s.say(Command::Stop)
        });
        super::join_all(stops).await;
        self.phase = RunPhase::Stopping;
        self.stop_deadline = Some(Instant::now() + self.stop_budget);
    }

    async fn interrupt(&mut self, interrupt: Interrupt) -> Option<Ending> {
        match (interrupt, self.phase) {
            (Interrupt::Detach, RunPhase::Running) => {
                let detach = self
                    .slots
                    .iter_mut()
                    .filter(|s| s.state.active())
                    .map(|s| s.say(Command::Detach));
                super::join_all(detach).await;
                self.display.message("detached: the nodes keep running");
                Some(Ending::Detached)
            }
            _ => {
                self.display.message("stopping every node...");
                self.stop_all().await;
                None
            }
        }
    }

    /// Spread of the arrival of the nodes' first cycle event, ms (as the master saw it).
    pub fn observed_skew_ms(&self) -> Option<f64> {
        let starts: Vec<Instant> = self.first_cycle.iter().flatten().copied().collect();
        let (min, max) = (starts.iter().min()?, starts.iter().max()?);
        Some(max.duration_since(*min).as_secs_f64() * 1000.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::master::local::LocalHost;
    use crate::protocol::progress::SecondTally;

    fn progress(through: u32, requests: u64) -> ProgressEvent {
        ProgressEvent::Progress {
            cycle: 0,
            users: 3,
            requests,
            failures: 0,
            errors: 0,
            rps: 0.0,
            elapsed: f64::from(through),
            through,
            seconds: vec![SecondTally {
                second: through - 1,
                requests,
                latency: Some(String::new()),
                ..SecondTally::default()
            }],
            cpu: None,
        }
    }

    #[test]
    fn every_node_event_feeds_the_live_view_and_a_failed_node_stops_holding_it() {
        let slots = (0..2)
            .map(|n| Slot::new(n, Arc::new(LocalHost), String::new()))
            .collect();
        let (_tx, rx) = mpsc::channel(1);
        let names = vec!["node0".into(), "node1".into()];
        let d = Duration::from_secs(1);
        let mut c = Coordinator::new(slots, rx, Display::new(names, false), 1, d, d, d);
        let mut seconds = c.live().subscribe();
        c.heard(0, progress(1, 5));
        assert!(seconds.try_recv().is_err(), "node1 has not sent second 0");
        c.heard(1, progress(1, 7));
        let s = seconds.try_recv().unwrap();
        assert_eq!((s.second, s.requests, s.users), (0, 12, 6));
        c.heard(0, progress(2, 1));
        c.fail(1, "gone".into(), false);
        assert_eq!(seconds.try_recv().unwrap().requests, 1);
    }
}
