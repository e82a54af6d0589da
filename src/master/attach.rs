//! `--attach RUN_DIR` and `--stop RUN_DIR`: follow a detached run by its nodes' process ids
//! until they end (or stop them first), then collect and report it like any run.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use tokio::sync::{mpsc, Semaphore};

use super::collect;
use super::config::Config;
use super::coordinator::State;
use super::dashboard::{status_line, Board};
use super::run::finish;
use super::ssh::SshOptions;
use super::state::{NodeStatus, RunState};
use super::transport::{self, signal, Transport};
use super::{join_all, Interrupt, MasterError, Outcome};
use crate::nodes::NodeHost;
use crate::result::unix_ms;

/// Time nodes get to end after `--stop` before they are killed.
const STOP_WAIT: Duration = Duration::from_secs(30);
/// Time after a detached run's deadline before its nodes are killed.
const LATE: Duration = Duration::from_secs(60);

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
    if !follow_nodes(&mut state, &node_hosts, run_dir, stop, board, interrupts).await {
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
    let collected = collect::collect(&pairs, &[], run_dir, &parallel).await;
    let workdir = run_dir
        .parent()
        .and_then(Path::parent)
        .unwrap_or(Path::new("."));
    finish(workdir, run_dir, collected)
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
    board: &Board,
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
    loop {
        tokio::select! {
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
        let running = mark_ended(state, node_hosts).await;
        show(board, state);
        if running == 0 {
            return true;
        }
        eprintln!("{running} of {} nodes running", state.nodes.len());
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

/// Shows the nodes of `state` on the live dashboard (their status only: a detached run's
/// progress is not followed).
fn show(board: &Board, state: &RunState) {
    let names = state
        .nodes
        .iter()
        .map(|n| format!("node{} {}", n.number, n.host))
        .collect();
    let lines = state
        .nodes
        .iter()
        .map(|n| {
            status_line(match n.status {
                NodeStatus::Running => State::Running,
                NodeStatus::Done => State::Done,
                NodeStatus::Failed => State::Failed,
                NodeStatus::Missing => State::Missing,
            })
        })
        .collect();
    board.statuses(names, lines);
}

/// Asks every running node's host whether its process is alive (bounded in time; a host that
/// does not answer counts as alive); marks the others `done`. Returns how many run.
async fn mark_ended(state: &mut RunState, node_hosts: &[Arc<dyn Transport>]) -> usize {
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
    let alive = join_all(checks).await;
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
