//! `--attach RUN_DIR` and `--stop RUN_DIR`: follow a detached run by its nodes' process ids
//! until they end (or stop them first), then collect and report it like any run.
//!
//! While it waits, the running numbers come back: each node keeps its progress lines in its
//! directory ([`crate::protocol::progress::ProgressLog`]), and one `tail --pid=PID -F` per node,
//! over its host's transport, feeds them to a [`Live`] view and the node lines, as the nodes'
//! stdout does during a run; the dashboard (`--live`), `--export` and the terminal read them
//! from there. The seconds already past are skipped, not replayed: the view starts a few
//! seconds before now, and never before the second the master had settled when it left, so
//! nothing is counted twice.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use tokio::io::{AsyncRead, AsyncReadExt, BufReader};
use tokio::sync::{mpsc, watch, Semaphore};

use super::collect;
use super::config::Config;
use super::coordinator::State;
use super::dashboard::Board;
use super::display::{Display, NodeLine};
use super::exporting::{Feed, Sources};
use super::run::finish;
use super::ssh::SshOptions;
use super::state::{NodeStatus, RunState};
use super::transport::{self, argv, signal, Process, Transport};
use super::{join_all, Interrupt, MasterError, Outcome};
use crate::export::{Exporter, Tags};
use crate::live::{Live, DEFAULT_WINDOW};
use crate::nodes::NodeHost;
use crate::protocol::lines::{read_line, Line, MAX_LINE};
use crate::protocol::progress::{ProgressEvent, LOG_FILE};
use crate::result::unix_ms;

/// Time nodes get to end after `--stop` before they are killed.
const STOP_WAIT: Duration = Duration::from_secs(30);
/// Time after a detached run's deadline before its nodes are killed.
const LATE: Duration = Duration::from_secs(60);
/// Lines read back from the end of each node's progress log: about the last minute of a node
/// that reports once a second, well more than the [`BACK`] seconds shown.
const REPLAY_LINES: u32 = 60;
/// Seconds before now the view of an attached run starts at.
const BACK: u64 = 3;
/// Longest wait, once every node ended, for their last progress lines.
const LAST_LINES: Duration = Duration::from_secs(3);
/// Bytes of a `tail`'s complaints kept for the message saying it failed.
const TAIL_ERR: u64 = 4096;

/// Follows (or, with `stop`, stops) the detached run in `run_dir`, then collects and reports it.
pub async fn attach(
    config: &Config,
    run_dir: &Path,
    stop: bool,
    board: &Board,
    interrupts: &mut mpsc::Receiver<Interrupt>,
) -> Result<Outcome, MasterError> {
    let mut state = RunState::load(run_dir)?;
    board.run(&state.name, &state.test);
    let node_hosts = node_transports(config, &state);
    let exporter = Exporter::start(&config.exports).await?;
    let mut watch = Watch::start(config, &state, &node_hosts, board, exporter);
    let followed = follow_nodes(
        &mut state,
        &node_hosts,
        run_dir,
        stop,
        &mut watch,
        interrupts,
    )
    .await;
    let exports = watch.finish().await;
    if !followed {
        eprintln!("detached again");
        return Ok(Outcome {
            run_dir: run_dir.to_owned(),
            report: None,
            detached: true,
            failed: Vec::new(),
            thresholds_failed: 0,
        });
    }
    state.detached = false;
    state.save(run_dir)?;
    let pairs: Vec<_> = state.nodes.iter().cloned().zip(node_hosts).collect();
    let parallel = Arc::new(Semaphore::new(config.parallel));
    let collected = collect::collect(&pairs, &[], run_dir, &parallel, Vec::new()).await;
    let workdir = run_dir
        .parent()
        .and_then(Path::parent)
        .unwrap_or(Path::new("."));
    finish(
        workdir,
        run_dir,
        collect::Collected {
            exports,
            ..collected
        },
    )
}

/// The transport of each node of `state`: one per distinct host, as during the run, with the
/// run's SSH settings unless the command line gives others.
fn node_transports(config: &Config, state: &RunState) -> Vec<Arc<dyn Transport>> {
    let ssh = Arc::new(SshOptions {
        config_file: config
            .ssh
            .config_file
            .clone()
            .or_else(|| state.ssh_config.clone()),
        accept_new_host_keys: config.ssh.accept_new_host_keys || state.accept_new_host_keys,
        ..config.ssh.clone()
    });
    let mut hosts: Vec<(String, Arc<dyn Transport>)> = Vec::new();
    let mut node_hosts = Vec::new();
    for node in &state.nodes {
        let i = match hosts.iter().position(|(h, _)| *h == node.host) {
            Some(i) => i,
            None => {
                let host = node.node_host().unwrap_or(NodeHost::Local);
                let t = transport::for_host(&host, &ssh);
                hosts.push((node.host.clone(), t));
                hosts.len() - 1
            }
        };
        node_hosts.push(hosts[i].1.clone());
    }
    node_hosts
}

/// Watches the running nodes of `state` (stopping them first with `stop`) until none runs,
/// marking those that ended `done` and those killed past the deadline `failed`; false when
/// the user detached again.
async fn follow_nodes(
    state: &mut RunState,
    node_hosts: &[Arc<dyn Transport>],
    run_dir: &Path,
    stop: bool,
    watch: &mut Watch,
    interrupts: &mut mpsc::Receiver<Interrupt>,
) -> bool {
    let mut deadline = Instant::now()
        + Duration::from_millis(
            state
                .deadline_unix_ms
                .saturating_sub(unix_ms(SystemTime::now())),
        )
        + LATE;
    if stop {
        eprintln!("stopping the nodes of {}", run_dir.display());
        send_all(state, node_hosts, "TERM").await;
        deadline = Instant::now() + STOP_WAIT;
    }
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let mut said = None;
    loop {
        tokio::select! {
            // A node's progress line, or the end of its log's follower.
            Some(heard) = watch.rx.recv() => {
                watch.heard(heard, state);
                continue;
            }
            // Time to look again.
            _ = tick.tick() => {}
            // Ctrl+C: stop the nodes, or leave them running.
            Some(i) = interrupts.recv() => match i {
                Interrupt::Detach => return false,
                Interrupt::Stop => {
                    send_all(state, node_hosts, "TERM").await;
                    deadline = deadline.min(Instant::now() + STOP_WAIT);
                }
            },
        }
        let running = mark_ended(state, node_hosts, watch).await;
        watch.show(state);
        if running == 0 {
            watch.last_lines(state).await;
            return true;
        }
        if said != Some(running) {
            said = Some(running);
            watch
                .display
                .message(&format!("{running} of {} nodes running", state.nodes.len()));
        }
        if Instant::now() >= deadline {
            send_all(state, node_hosts, "KILL").await;
            for node in state
                .nodes
                .iter_mut()
                .filter(|n| n.status == NodeStatus::Running)
            {
                node.status = NodeStatus::Failed;
                node.reason = Some("still running past the run's deadline: killed".into());
            }
            return true;
        }
    }
}

/// What one node's log follower says.
enum Heard {
    /// A progress line of the node at this position.
    Event(usize, ProgressEvent),
    /// The follower of the node at this position ended: why, when it failed.
    Ended(usize, Option<String>),
}

/// The live numbers of an attached run: the nodes' progress logs followed into a [`Live`]
/// view, node lines for the dashboard and the terminal, and the `--export` feed.
struct Watch {
    live: Live,
    /// What the followers say (bounded: a slow master slows the readers).
    rx: mpsc::Receiver<Heard>,
    /// Followers still running.
    following: usize,
    lines: Vec<NodeLine>,
    /// The lines as last shown, for the dashboard.
    nodes_tx: watch::Sender<Arc<Vec<NodeLine>>>,
    display: Display,
    /// The running `--export` feed, if any.
    feed: Option<Feed>,
}

impl Watch {
    /// Starts following the log of every node of `state` still running, shows them on
    /// `board`, and feeds `exporter`.
    fn start(
        config: &Config,
        state: &RunState,
        node_hosts: &[Arc<dyn Transport>],
        board: &Board,
        exporter: Exporter,
    ) -> Watch {
        let start_ms = state.planned_start_unix_ms.unwrap_or(state.started_unix_ms);
        let now_s = unix_ms(SystemTime::now()).saturating_sub(start_ms) / 1000;
        let first = (now_s.saturating_sub(BACK) as u32).max(state.live_through);
        let mut live = Live::new(
            state.nodes.iter().map(|n| n.number).collect(),
            DEFAULT_WINDOW,
        )
        .starting_at(first);
        let (tx, rx) = mpsc::channel(1024);
        let mut following = 0;
        for (i, (node, host)) in state.nodes.iter().zip(node_hosts).enumerate() {
            match (node.status, node.pid) {
                (NodeStatus::Running, Some(pid)) => {
                    following += 1;
                    tokio::spawn(follow_log(
                        i,
                        node.dir.clone(),
                        pid,
                        host.clone(),
                        tx.clone(),
                    ));
                }
                _ => live.node_ended(i),
            }
        }
        let names: Vec<String> = state
            .nodes
            .iter()
            .map(|n| format!("node{} {}", n.number, n.host))
            .collect();
        let (nodes_tx, nodes_rx) = watch::channel(Arc::new(Vec::new()));
        board.follow(names.clone(), nodes_rx, live.watch());
        let feed = (!exporter.is_empty()).then(|| {
            let sources = Sources {
                seconds: live.subscribe(),
                started: watch::channel(Some(start_ms)).1,
            };
            let tags = Tags {
                run: state.name.clone(),
                test: state.test.clone(),
                steps: state.steps.clone(),
                nodes: state
                    .nodes
                    .iter()
                    .map(|n| format!("node{}", n.number))
                    .collect(),
            };
            Feed::start(exporter, sources, tags)
        });
        let mut watch = Watch {
            live,
            rx,
            following,
            lines: vec![NodeLine::default(); state.nodes.len()],
            nodes_tx,
            display: Display::new(names, config.verbose),
            feed,
        };
        watch.show(state);
        watch
    }

    /// One word of a follower.
    fn heard(&mut self, heard: Heard, state: &RunState) {
        match heard {
            Heard::Event(i, event) => {
                self.live.progress(i, &event);
                if matches!(event, ProgressEvent::Done { .. }) {
                    self.live.node_ended(i);
                }
                self.lines[i].heard(&event);
            }
            Heard::Ended(i, why) => {
                self.following -= 1;
                self.live.node_ended(i);
                let node = &state.nodes[i];
                if let (Some(why), NodeStatus::Running) = (why, node.status) {
                    self.display.message(&format!(
                        "node{} ({}): its numbers are not followed: {why}",
                        node.number, node.host
                    ));
                }
            }
        }
    }

    /// Shows the nodes with their states from `state`, on the terminal and the dashboard.
    fn show(&mut self, state: &RunState) {
        for (line, node) in self.lines.iter_mut().zip(&state.nodes) {
            line.state = match node.status {
                NodeStatus::Running => State::Running,
                NodeStatus::Done => State::Done,
                NodeStatus::Failed => State::Failed,
                NodeStatus::Missing => State::Missing,
            };
        }
        self.display.refresh(&self.lines);
        self.nodes_tx.send_replace(Arc::new(self.lines.clone()));
    }

    /// Once every node ended: their last lines, until every follower ended (bounded).
    async fn last_lines(&mut self, state: &RunState) {
        let until = tokio::time::Instant::now() + LAST_LINES;
        while self.following > 0 {
            match tokio::time::timeout_at(until, self.rx.recv()).await {
                Ok(Some(heard)) => self.heard(heard, state),
                Ok(None) | Err(_) => break,
            }
        }
        self.show(state);
        self.display.finish();
    }

    /// The exports' tallies, once the feed took the last settled seconds.
    async fn finish(self) -> Vec<crate::export::SinkTally> {
        match self.feed {
            Some(feed) => feed.finish().await,
            None => Vec::new(),
        }
    }
}

/// Follows the progress log of the node at `i` (directory `dir`, process `pid`) on `host`
/// with one `tail` that ends with the node (`--pid`), sending its lines to `tx`, then its end.
async fn follow_log(
    i: usize,
    dir: String,
    pid: u32,
    host: Arc<dyn Transport>,
    tx: mpsc::Sender<Heard>,
) {
    let words = argv([
        "tail".to_string(),
        format!("--pid={pid}"),
        "-n".into(),
        REPLAY_LINES.to_string(),
        "-F".into(),
        "--".into(),
        format!("{dir}/{LOG_FILE}"),
    ]);
    let Process {
        stdout,
        stderr,
        exit,
        ..
    } = match host.spawn(words).await {
        Ok(p) => p,
        Err(e) => {
            let _ = tx.send(Heard::Ended(i, Some(e.to_string()))).await;
            return;
        }
    };
    let lines = async {
        let mut input = BufReader::new(stdout);
        let mut line = Vec::new();
        while let Ok(Line::Full) = read_line(&mut input, &mut line, MAX_LINE).await {
            if let Some(event) = ProgressEvent::parse(&String::from_utf8_lossy(&line)) {
                let _ = tx.send(Heard::Event(i, event)).await;
            }
        }
    };
    let (_, complaint) = tokio::join!(lines, complaints(stderr));
    let why = match exit.await {
        Some(0) => None,
        code => Some(format!(
            "`tail` of {dir}/{LOG_FILE} ended ({}): {}",
            code.map_or("killed or disconnected".into(), |c| format!("exit {c}")),
            complaint.trim()
        )),
    };
    let _ = tx.send(Heard::Ended(i, why)).await;
}

/// The first [`TAIL_ERR`] bytes of `stderr`, the rest read and dropped.
async fn complaints(stderr: Box<dyn AsyncRead + Send + Unpin>) -> String {
    let mut first = Vec::new();
    let mut stderr = stderr;
    let _ = (&mut stderr).take(TAIL_ERR).read_to_end(&mut first).await;
    let _ = tokio::io::copy(&mut stderr, &mut tokio::io::sink()).await;
    String::from_utf8_lossy(&first).into_owned()
}

/// Asks every running node's host whether its process is alive (bounded in time; a host that
/// does not answer counts as alive); marks the others `done`. Returns how many run. The
/// followers are heard meanwhile: a slow host does not hold the numbers back.
async fn mark_ended(
    state: &mut RunState,
    node_hosts: &[Arc<dyn Transport>],
    watch: &mut Watch,
) -> usize {
    let checks = state.nodes.iter().zip(node_hosts).map(|(n, h)| async move {
        match (n.status, n.pid) {
            (NodeStatus::Running, Some(pid)) => {
                tokio::time::timeout(Duration::from_secs(10), signal(h.as_ref(), pid, "0"))
                    .await
                    .map_or(true, |r| r.unwrap_or(true))
            }
            _ => false,
        }
    });
    let alive = {
        let mut checks = std::pin::pin!(join_all(checks));
        loop {
            tokio::select! {
                // Every host answered (or timed out).
                alive = &mut checks => break alive,
                // A progress line meanwhile.
                Some(heard) = watch.rx.recv() => watch.heard(heard, state),
            }
        }
    };
    for (node, alive) in state.nodes.iter_mut().zip(&alive) {
        if node.status == NodeStatus::Running && !alive {
            node.status = NodeStatus::Done;
        }
    }
    alive.iter().filter(|a| **a).count()
}

/// Sends `sig` to every running node (bounded in time).
async fn send_all(state: &RunState, hosts: &[Arc<dyn Transport>], sig: &str) {
    let sends = state.nodes.iter().zip(hosts).map(|(n, h)| async move {
        if let (Some(pid), NodeStatus::Running) = (n.pid, n.status) {
            let _ =
                tokio::time::timeout(Duration::from_secs(10), signal(h.as_ref(), pid, sig)).await;
        }
    });
    join_all(sends).await;
}
