//! One distributed run, end to end: test → run directory → service → deploy → spawn the nodes
//! → coordinate → collect → report.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::sync::{mpsc, Semaphore};

use super::collect::{self, Collected};
use super::config::Config;
use super::coordinator::{Coordinator, Ending, Slot, State};
use super::deploy::{deploy, test_files, Cluster, DeployPlan, DeployedNode};
use super::display::Display;
use super::follow::{follow, log_paths, NodeMsg};
use super::state::{NodeState, RunState};
use super::transport::{Process, Transport};
use super::{join_all, monitor, mux, service, Interrupt, MasterError, Outcome};
use crate::result::unix_ms;
use crate::test_def::{self, LoadModel, TestPlan};

/// Longest wait for the nodes to get ready once spawned.
const READY_TIMEOUT: Duration = Duration::from_secs(60);
/// Time added to the planned length of a run before the master stops it.
const RUN_GRACE: Duration = Duration::from_secs(30);

/// `20260102-130405` (UTC).
fn stamp() -> String {
    let text = humantime::format_rfc3339_seconds(SystemTime::now()).to_string();
    text.chars()
        .filter(|c| c.is_ascii_digit() || *c == 'T')
        .map(|c| if c == 'T' { '-' } else { c })
        .collect()
}

/// The longest a run of `plan` may last once started: every cycle's ramp-up (closed model
/// only: an open-model cycle starts at full rate), window, pause and last request, plus a
/// grace period.
pub fn run_budget(plan: &TestPlan) -> Duration {
    let b = &plan.bench;
    let ramp = |users: u32| match b.model {
        LoadModel::Closed => b.startup_delay * users,
        LoadModel::Open { .. } => Duration::ZERO,
    };
    let per_cycle =
        |users: u32| ramp(users) + b.duration + b.cycle_time + b.timeout + b.sleep_time_max;
    b.cycles.iter().map(|&u| per_cycle(u)).sum::<Duration>() + RUN_GRACE
}

/// Creates a new run directory `<workdir>/<name>/<stamp>[-k]` (never an existing one);
/// returns it with its id `<name>/<stamp>[-k]`.
fn new_run_dir(workdir: &Path, name: &str) -> Result<(String, PathBuf), MasterError> {
    let stamp = stamp();
    let parent = workdir.join(name);
    std::fs::create_dir_all(&parent).map_err(|source| MasterError::Io {
        path: parent.clone(),
        source,
    })?;
    for k in 1.. {
        let leaf = if k == 1 {
            stamp.clone()
        } else {
            format!("{stamp}-{k}")
        };
        let dir = parent.join(&leaf);
        match std::fs::create_dir(&dir) {
            Ok(()) => {
                for sub in ["out", "err", "results"] {
                    let d = dir.join(sub);
                    std::fs::create_dir_all(&d)
                        .map_err(|source| MasterError::Io { path: d, source })?;
                }
                return Ok((format!("{name}/{leaf}"), dir));
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(source) => return Err(MasterError::Io { path: dir, source }),
        }
    }
    unreachable!("some suffix is free")
}

/// A default run name: date-time and test name, with only safe characters.
fn default_name(plan: &TestPlan) -> String {
    let test: String = plan
        .name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!("{}-{test}", stamp())
}

/// Runs a distributed bench.
pub async fn bench(
    config: &Config,
    interrupts: &mut mpsc::Receiver<Interrupt>,
) -> Result<Outcome, MasterError> {
    let test_path = config.test.as_deref().expect("validated: a run has a test");
    let plan = test_def::load(test_path, &config.overrides)?;
    let read_err = |source| MasterError::Io {
        path: test_path.to_owned(),
        source,
    };
    let test = std::fs::read(test_path).map_err(read_err)?;
    let files = test_files(&plan).map_err(read_err)?;
    let name = config.name.clone().unwrap_or_else(|| default_name(&plan));
    let (run_id, run_dir) = new_run_dir(&config.workdir, &name)?;
    eprintln!("run {name}: {}", run_dir.display());

    let ssh = Arc::new(config.ssh.clone());
    let service = match &plan.service {
        Some(spec) => {
            let mut service = service::Service::start(spec, &ssh, &run_dir).await?;
            let ready = tokio::select! {
                r = service.ready(spec) => r.map_err(MasterError::from),
                // Ctrl+C while waiting: nothing ran yet.
                Some(_) = interrupts.recv() => Err(MasterError::Interrupted),
            };
            if let Err(e) = ready {
                service.stop().await;
                return Err(e);
            }
            Some(service)
        }
        None => None,
    };
    let run = Run {
        config,
        plan: &plan,
        name,
        run_id,
        run_dir,
        ssh,
        test,
        files,
    };
    let outcome = run.go(interrupts).await;
    // Whatever the outcome (a deploy that failed, too few nodes, an interrupt, an error while
    // collecting), the service is stopped; only a detached run still needs it.
    let detached = outcome.as_ref().is_ok_and(|o| o.detached);
    if let (Some(service), false) = (service, detached) {
        service.stop().await;
    }
    outcome
}

/// A run once its directory exists and its service answers.
struct Run<'a> {
    config: &'a Config,
    plan: &'a TestPlan,
    name: String,
    run_id: String,
    run_dir: PathBuf,
    ssh: Arc<super::ssh::SshOptions>,
    test: Vec<u8>,
    files: Vec<(String, Vec<u8>)>,
}

impl Run<'_> {
    /// Deploys, starts, follows, collects and reports.
    async fn go(self, interrupts: &mut mpsc::Receiver<Interrupt>) -> Result<Outcome, MasterError> {
        let Run {
            config,
            plan,
            name,
            run_id,
            run_dir,
            ssh,
            test,
            files,
        } = self;
        let parallel = Arc::new(Semaphore::new(config.parallel));
        let cluster = Cluster::new(&config.nodes, &ssh);
        eprintln!(
            "deploying to {} nodes on {} hosts...",
            cluster.nodes.len(),
            cluster.hosts.len()
        );
        let deploy_plan = DeployPlan {
            run_id: run_id.clone(),
            node_workdir: config.node_workdir.clone(),
            bench_node: config.bench_node.clone(),
            test,
            files,
            run_name: name.clone(),
            overrides: config.overrides.clone(),
        };
        let deploy_started = std::time::Instant::now();
        let deployed = tokio::select! {
            d = deploy(&cluster, &deploy_plan, &parallel) => d,
            Some(_) = interrupts.recv() => return Err(MasterError::Interrupted),
        };

        let (slots, rx) = spawn_all(&cluster, deployed, &run_dir).await;
        eprintln!(
            "deployed and spawned in {:.1}s",
            deploy_started.elapsed().as_secs_f64()
        );
        for slot in slots.iter().filter(|s| s.state == State::Failed) {
            eprintln!(
                "node{} ({}): {}",
                slot.number,
                slot.host.label(),
                slot.reason.as_deref().unwrap_or("failed")
            );
        }
        let started = slots.iter().filter(|s| s.state != State::Failed).count();
        if started < config.min_nodes {
            return Err(MasterError::NotEnoughNodes {
                ready: started,
                needed: config.min_nodes,
                run_dir,
            });
        }

        let names = slots
            .iter()
            .map(|s| format!("node{} {}", s.number, s.host.label()))
            .collect();
        let budget = run_budget(plan);
        let stop_budget = plan.bench.timeout + Duration::from_secs(15);
        let mut coordinator = Coordinator::new(
            slots,
            rx,
            Display::new(names, config.verbose),
            config.min_nodes,
            READY_TIMEOUT,
            budget,
            stop_budget,
        );
        let sampler = monitor::Monitors::start(&plan.monitor_hosts, &ssh);
        let ending = coordinator.run(interrupts).await;
        let resources = sampler.stop().await;

        let mut state = RunState {
            name,
            run_id,
            test: plan.name.clone(),
            ssh_config: config.ssh.config_file.clone(),
            accept_new_host_keys: config.ssh.accept_new_host_keys,
            started_unix_ms: coordinator.started.map_or(0, unix_ms),
            deadline_unix_ms: coordinator
                .started
                .map_or(0, |s| unix_ms(s + budget + stop_budget)),
            detached: ending == Ending::Detached,
            start_skew_ms: None,
            observed_skew_ms: coordinator.observed_skew_ms(),
            nodes: coordinator.slots.iter().map(node_state).collect(),
        };
        state.save(&run_dir)?;
        match ending {
            Ending::Detached => {
                // Dropping the nodes' stdin now: a detached node ignores the end of its input.
                drop(coordinator);
                eprintln!(
                    "detached; follow the run again with: bench-master --attach {0}\n\
                 or stop it with: bench-master --stop {0}",
                    run_dir.display()
                );
                return Ok(Outcome {
                    run_dir,
                    report: None,
                    detached: true,
                    failed: Vec::new(),
                });
            }
            Ending::Aborted(why) => return Err(MasterError::Aborted { why, run_dir }),
            Ending::Finished => {}
        }
        let hosts: Vec<_> = coordinator
            .slots
            .iter()
            .map(|s| (node_state(s), s.host.clone()))
            .collect();
        drop(coordinator);
        let collecting = std::time::Instant::now();
        let collected = collect::collect(&hosts, &run_dir, &parallel).await;
        eprintln!(
            "collected {} results in {:.1}s",
            collected.results.len(),
            collecting.elapsed().as_secs_f64()
        );
        monitor::attach_resources(&collected, resources);
        state.start_skew_ms = start_skew_ms(&collected.started_unix_ms);
        if let (Some(skew), Some(seen)) = (state.start_skew_ms, state.observed_skew_ms) {
            eprintln!(
                "start skew between nodes: {skew:.1} ms ({seen:.1} ms as seen by the master)"
            );
        }
        state.save(&run_dir)?;
        finish(&config.workdir, &run_dir, collected)
    }
}

/// Spawns every deployed node, one channel per SSH host, and follows it; the nodes that
/// failed to deploy are failed from the start. Returns the coordinator's slots and the
/// channel of their messages.
async fn spawn_all(
    cluster: &Cluster,
    deployed: Vec<Result<DeployedNode, super::deploy::DeployError>>,
    run_dir: &Path,
) -> (Vec<Slot>, mpsc::Receiver<NodeMsg>) {
    let (tx, rx) = mpsc::channel(1024);
    let mut slots = Vec::with_capacity(deployed.len());
    let mut by_host: Vec<Vec<(usize, DeployedNode)>> = vec![Vec::new(); cluster.hosts.len()];
    for (p, d) in deployed.into_iter().enumerate() {
        let (node, h) = &cluster.nodes[p];
        let mut slot = Slot::new(node.number, cluster.hosts[*h].clone(), String::new());
        match d {
            Ok(d) => {
                slot.dir = d.dir.clone();
                by_host[*h].push((p, d));
            }
            Err(e) => slot.give_up(State::Failed, format!("deploy failed: {e}")),
        }
        slots.push(slot);
    }
    let starts = by_host
        .iter()
        .zip(&cluster.hosts)
        .map(|(nodes, host)| start_nodes(host.as_ref(), nodes));
    for (nodes, started) in by_host.iter().zip(join_all(starts).await) {
        for ((p, _), process) in nodes.iter().zip(started) {
            let slot = &mut slots[*p];
            match process {
                Ok(process) => {
                    let (out, err) = log_paths(run_dir, slot.number);
                    slot.stdin = Some(follow(*p, process, out, err, tx.clone()));
                }
                Err(e) => slot.give_up(State::Failed, format!("cannot start bench-node: {e}")),
            }
        }
    }
    (slots, rx)
}

/// Starts the deployed `nodes` of `host`: through one `bench-node mux` channel on an SSH host
/// (one remote command however many nodes), as child processes on the local one.
async fn start_nodes(
    host: &dyn Transport,
    nodes: &[(usize, DeployedNode)],
) -> Vec<Result<Process, String>> {
    if host.is_local() {
        let spawns = nodes.iter().map(|(_, n)| host.spawn(n.command()));
        return join_all(spawns)
            .await
            .into_iter()
            .map(|r| r.map_err(|e| e.to_string()))
            .collect();
    }
    let Some((_, first)) = nodes.first() else {
        return Vec::new();
    };
    let dirs: Vec<String> = nodes.iter().map(|(_, n)| n.dir.clone()).collect();
    match mux::spawn(host, &first.bench_node, &dirs).await {
        Ok(processes) => processes.into_iter().map(Ok).collect(),
        Err(e) => nodes.iter().map(|_| Err(e.to_string())).collect(),
    }
}

/// Builds the report of a collected run, refreshes the workspace index and says where it is.
pub fn finish(
    workdir: &Path,
    run_dir: &Path,
    mut collected: Collected,
) -> Result<Outcome, MasterError> {
    if let Some((path, error)) = collected.unwritable.take() {
        return Err(MasterError::ResultsNotWritable { path, error });
    }
    for f in &collected.failed {
        eprintln!("{} ({}) failed: {}", f.name, f.host, f.reason);
        if !f.stderr_tail.is_empty() {
            for line in f.stderr_tail.lines() {
                eprintln!("    {line}");
            }
        }
    }
    let building = std::time::Instant::now();
    let report = collect::build_report(run_dir, &collected)?;
    eprintln!("report built in {:.1}s", building.elapsed().as_secs_f64());
    if let Err(e) = collect::refresh_index(workdir) {
        eprintln!("bench-master: workspace index not refreshed: {e}");
    }
    println!("{}", report.display());
    Ok(Outcome {
        run_dir: run_dir.to_owned(),
        report: Some(report),
        detached: false,
        failed: collected.failed,
    })
}

/// Spread of the nodes' start times (first user of cycle 1), ms, from their results.
fn start_skew_ms(starts: &[u64]) -> Option<f64> {
    let (min, max) = (starts.iter().min()?, starts.iter().max()?);
    Some((max - min) as f64)
}

/// The state-file record of a node.
pub fn node_state(s: &Slot) -> NodeState {
    NodeState {
        number: s.number,
        host: s.host.label().to_string(),
        dir: s.dir.clone(),
        pid: s.pid,
        status: match s.state {
            State::Waiting | State::Ready | State::Running | State::Stopping => "running",
            other => other.as_str(),
        }
        .to_string(),
        reason: s.reason.clone(),
    }
}
