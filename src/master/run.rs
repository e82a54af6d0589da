//! One distributed run, end to end: test → run directory → service → deploy → spawn the nodes
//! → coordinate → collect → report.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::sync::{mpsc, Semaphore};

use super::collect::{self, Collected};
use super::config::Config;
use super::coordinator::{Coordinator, Ending, Slot, State};
use super::dashboard::Board;
use super::deploy::{deploy, test_files, Cluster, DeployPlan, Deployed, DeployedNode};
use super::display::Display;
use super::exporting::{Feed, Sources};
use super::follow::{follow, open_logs, result_path, NodeLogs, NodeMsg};
use super::service::Service;
use super::ssh::SshOptions;
use super::state::{NodeState, RunState};
use super::transport::{Process, Transport};
use super::{join_all, monitor, Interrupt, MasterError, Outcome};
use crate::export::{Exporter, SinkTally, Tags};
use crate::live::abort::AbortWatch;
use crate::result::unix_ms;
use crate::result::HostResources;
use crate::test_def::{self, LoadModel, TestPlan};

/// Longest wait for the nodes to get ready once spawned.
const READY_TIMEOUT: Duration = Duration::from_secs(60);
/// Time added to the planned length of a run before the master stops it.
const RUN_GRACE: Duration = Duration::from_secs(30);
/// Time nodes get to stop once asked, beyond the request timeout.
const STOP_GRACE: Duration = Duration::from_secs(15);

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

/// The test as loaded for a run: its validated plan and what deploy copies to the nodes.
struct LoadedTest {
    plan: TestPlan,
    /// The test file's bytes.
    bytes: bytes::Bytes,
    /// The files it names ([`test_files`]) with their bytes.
    files: Vec<(String, bytes::Bytes)>,
}

impl LoadedTest {
    /// Loads and validates the test of `config`, and reads it and its files for the nodes.
    fn load(config: &Config) -> Result<LoadedTest, MasterError> {
        let path = config.test.as_deref().expect("validated: a run has a test");
        let plan = test_def::load(path, &config.overrides)?;
        let read_err = |source| MasterError::Io {
            path: path.to_owned(),
            source,
        };
        let bytes = std::fs::read(path).map_err(read_err)?.into();
        let files = test_files(&plan).map_err(read_err)?;
        Ok(LoadedTest { plan, bytes, files })
    }

    /// The plan, and what deploy copies into `run` on every node.
    fn into_deploy(self, config: &Config, run: &RunDir) -> (TestPlan, DeployPlan) {
        let deploy = DeployPlan {
            run_id: run.id.clone(),
            node_workdir: config.node_workdir.clone(),
            bench_node: config.bench_node.clone(),
            test: self.bytes,
            files: self.files,
            run_name: run.name.clone(),
            overrides: config.overrides.clone(),
        };
        (self.plan, deploy)
    }
}

/// A run's directory on the master.
struct RunDir {
    /// The run name (`-n`, or made from the date and the test).
    name: String,
    /// `<name>/<stamp>[-k]`, the same below the node workspace.
    id: String,
    /// `<workdir>/<id>`, with its `out/`, `err/` and `results/`.
    dir: PathBuf,
}

impl RunDir {
    /// Creates a new run directory `<workdir>/<name>/<stamp>[-k]` (never an existing one).
    fn create(workdir: &Path, name: String) -> Result<RunDir, MasterError> {
        let stamp = stamp();
        let parent = workdir.join(&name);
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
                    let id = format!("{name}/{leaf}");
                    return Ok(RunDir { name, id, dir });
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                Err(source) => return Err(MasterError::Io { path: dir, source }),
            }
        }
        unreachable!("some suffix is free")
    }
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

/// Runs a distributed bench: test → run directory → service → [`go`].
pub async fn bench(
    config: &Config,
    board: &Board,
    interrupts: &mut mpsc::Receiver<Interrupt>,
) -> Result<Outcome, MasterError> {
    let test = LoadedTest::load(config)?;
    let name = config
        .name
        .clone()
        .unwrap_or_else(|| default_name(&test.plan));
    let run = RunDir::create(&config.workdir, name)?;
    eprintln!("run {}: {}", run.name, run.dir.display());
    board.run(&run.name, &test.plan.name);
    let (plan, deploy_plan) = test.into_deploy(config, &run);
    let ssh = Arc::new(config.ssh.clone());
    let service = start_service(&plan, &ssh, &run.dir, interrupts).await?;
    let outcome = go(config, &plan, &run, deploy_plan, &ssh, board, interrupts).await;
    // Whatever the outcome (a deploy that failed, too few nodes, an interrupt, an error while
    // collecting), the service is stopped; only a detached run still needs it.
    let detached = outcome.as_ref().is_ok_and(|o| o.detached);
    if let (Some(service), false) = (service, detached) {
        service.stop().await;
    }
    outcome
}

/// Starts the test's `[service]`, if any, and waits until it answers.
async fn start_service(
    plan: &TestPlan,
    ssh: &Arc<SshOptions>,
    run_dir: &Path,
    interrupts: &mut mpsc::Receiver<Interrupt>,
) -> Result<Option<Service>, MasterError> {
    let Some(spec) = &plan.service else {
        return Ok(None);
    };
    let mut service = Service::start(spec, ssh, run_dir).await?;
    let ready = tokio::select! {
        // It answers, or it failed to.
        r = service.ready(spec) => r.map_err(MasterError::from),
        // Ctrl+C while waiting: nothing ran yet.
        Some(_) = interrupts.recv() => Err(MasterError::Interrupted),
    };
    match ready {
        Ok(()) => Ok(Some(service)),
        Err(e) => {
            service.stop().await;
            Err(e)
        }
    }
}

/// A run once its directory exists and its service answers: deploy → spawn → coordinate →
/// collect → report.
async fn go(
    config: &Config,
    plan: &TestPlan,
    run: &RunDir,
    deploy_plan: DeployPlan,
    ssh: &Arc<SshOptions>,
    board: &Board,
    interrupts: &mut mpsc::Receiver<Interrupt>,
) -> Result<Outcome, MasterError> {
    let exporter = Exporter::start(&config.exports).await?;
    let parallel = Arc::new(Semaphore::new(config.parallel));
    let cluster = Cluster::new(&config.nodes, ssh);
    let deploy_started = std::time::Instant::now();
    // The nodes' log files are made while the hosts connect (see `open_logs`).
    let numbers: Vec<u32> = cluster.nodes.iter().map(|(n, _)| n.number).collect();
    let dir = run.dir.clone();
    let logs = tokio::task::spawn_blocking(move || open_logs(&dir, &numbers));
    let deployed = deploy_all(&cluster, &deploy_plan, &parallel, interrupts).await?;
    super::trace::mark(|| "deployed".into());
    let logs = logs.await.unwrap_or_else(|e| {
        eprintln!("bench-master: the nodes' logs were not made: {e}");
        Vec::new()
    });
    let (slots, rx) = spawn_all(&cluster, deployed, logs, &run.dir).await;
    eprintln!(
        "deployed and spawned in {:.1}s",
        deploy_started.elapsed().as_secs_f64()
    );
    enough_started(&slots, config.min_nodes, &run.dir)?;
    let wiring = Wiring {
        board,
        exporter,
        run_name: &run.name,
    };
    let coordinated = coordinate(config, plan, slots, rx, ssh, wiring, interrupts).await;
    super::trace::mark(|| "coordinator ended".into());
    let state = coordinated.state(config, plan, run);
    state.save(&run.dir)?;
    match coordinated.ending {
        Ending::Finished => {}
        Ending::Detached => return Ok(detached(coordinated, &run.dir)),
        Ending::Aborted(why) => {
            return Err(MasterError::Aborted {
                why,
                run_dir: run.dir.clone(),
            })
        }
    }
    let collected = collect_all(coordinated, &run.dir, &parallel).await;
    super::trace::mark(|| "collected".into());
    let outcome = report(&config.workdir, &run.dir, state, collected);
    super::trace::mark(|| "reported".into());
    outcome
}

/// Deploys to every node of `cluster`; a Ctrl+C ends the run before anything started.
async fn deploy_all(
    cluster: &Cluster,
    plan: &DeployPlan,
    parallel: &Arc<Semaphore>,
    interrupts: &mut mpsc::Receiver<Interrupt>,
) -> Result<Deployed, MasterError> {
    eprintln!(
        "deploying to {} nodes on {} hosts...",
        cluster.nodes.len(),
        cluster.hosts.len()
    );
    tokio::select! {
        // One result per node, in order, and the SSH hosts' muxes running their nodes.
        d = deploy(cluster, plan, parallel) => Ok(d),
        // Ctrl+C while deploying: nothing runs yet.
        Some(_) = interrupts.recv() => Err(MasterError::Interrupted),
    }
}

/// Names the nodes that failed to deploy or start, and refuses to go on with fewer than
/// `min_nodes` started.
fn enough_started(slots: &[Slot], min_nodes: usize, run_dir: &Path) -> Result<(), MasterError> {
    for slot in slots.iter().filter(|s| s.state == State::Failed) {
        eprintln!(
            "node{} ({}): {}",
            slot.number,
            slot.host.label(),
            slot.reason.as_deref().unwrap_or("failed")
        );
    }
    let started = slots.iter().filter(|s| s.state != State::Failed).count();
    if started < min_nodes {
        return Err(MasterError::NotEnoughNodes {
            ready: started,
            needed: min_nodes,
            run_dir: run_dir.to_owned(),
        });
    }
    Ok(())
}

/// A run as the coordinator ended it.
struct Coordinated {
    /// Holds the nodes' slots (and their stdin: dropping it ends a node's input).
    coordinator: Coordinator,
    ending: Ending,
    /// Samples of the test's `[monitor] hosts`, taken while the coordinator ran.
    resources: Vec<HostResources>,
    /// The longest the run may last once started ([`run_budget`]).
    budget: Duration,
    /// Time the nodes get to stop once asked.
    stop_budget: Duration,
    /// How the `--export` sinks fared.
    exports: Vec<SinkTally>,
}

/// What watches the run besides the terminal: the live dashboard and the exporters.
struct Wiring<'a> {
    board: &'a Board,
    exporter: Exporter,
    run_name: &'a str,
}

/// Starts the spawned nodes together and follows them until they end, the run is detached or
/// aborted; `[monitor] hosts` are sampled meanwhile.
async fn coordinate(
    config: &Config,
    plan: &TestPlan,
    slots: Vec<Slot>,
    rx: mpsc::Receiver<NodeMsg>,
    ssh: &Arc<SshOptions>,
    wiring: Wiring<'_>,
    interrupts: &mut mpsc::Receiver<Interrupt>,
) -> Coordinated {
    let names: Vec<String> = slots
        .iter()
        .map(|s| format!("node{} {}", s.number, s.host.label()))
        .collect();
    let slot_names = slots.iter().map(|s| format!("node{}", s.number)).collect();
    let budget = run_budget(plan);
    let stop_budget = plan.bench.timeout + STOP_GRACE;
    let mut coordinator = Coordinator::new(
        slots,
        rx,
        Display::new(names.clone(), config.verbose),
        config.min_nodes,
        READY_TIMEOUT,
        budget,
        stop_budget,
    )
    .with_abort(AbortWatch::for_plan(plan));
    wiring
        .board
        .follow(names, coordinator.nodes(), coordinator.live().watch());
    let feed = (!wiring.exporter.is_empty()).then(|| {
        let sources = Sources {
            seconds: coordinator.live().subscribe(),
            started: coordinator.start_time(),
        };
        let tags = Tags {
            run: wiring.run_name.to_string(),
            test: plan.name.clone(),
            steps: plan.step_names(),
            nodes: slot_names,
        };
        Feed::start(wiring.exporter, sources, tags)
    });
    let monitors = monitor::Monitors::start(&plan.monitor_hosts, ssh);
    let ending = coordinator.run(interrupts).await;
    let resources = monitors.stop().await;
    let exports = match feed {
        Some(feed) => feed.finish().await,
        None => Vec::new(),
    };
    for t in exports.iter().filter(|t| t.dropped > 0) {
        eprintln!(
            "export {}: {} intervals sent, {} dropped (the sink was down or slow)",
            t.sink, t.sent, t.dropped
        );
    }
    Coordinated {
        coordinator,
        ending,
        resources,
        budget,
        stop_budget,
        exports,
    }
}

impl Coordinated {
    /// The run's state file (`run.json`) as the coordinator left it.
    fn state(&self, config: &Config, plan: &TestPlan, run: &RunDir) -> RunState {
        let started = self.coordinator.started;
        RunState {
            name: run.name.clone(),
            run_id: run.id.clone(),
            test: plan.name.clone(),
            ssh_config: config.ssh.config_file.clone(),
            accept_new_host_keys: config.ssh.accept_new_host_keys,
            started_unix_ms: started.map_or(0, unix_ms),
            planned_start_unix_ms: self.coordinator.planned_start,
            deadline_unix_ms: started.map_or(0, |s| unix_ms(s + self.budget + self.stop_budget)),
            detached: self.ending == Ending::Detached,
            start_skew_ms: None,
            observed_skew_ms: self.coordinator.observed_skew_ms(),
            steps: plan.step_names(),
            live_through: self.coordinator.live().settled_through(),
            nodes: self.coordinator.slots.iter().map(node_state).collect(),
        }
    }
}

/// Leaves a detached run to its nodes and says how to find it again.
fn detached(coordinated: Coordinated, run_dir: &Path) -> Outcome {
    // Dropping the nodes' stdin now: a detached node ignores the end of its input.
    drop(coordinated);
    eprintln!(
        "detached; follow the run again with: bench-master --attach {0}\n\
         or stop it with: bench-master --stop {0}",
        run_dir.display()
    );
    Outcome {
        run_dir: run_dir.to_owned(),
        report: None,
        detached: true,
        failed: Vec::new(),
        thresholds_failed: 0,
    }
}

/// Collects the results of a finished run into `run_dir`; the monitored hosts' samples join
/// the first one.
async fn collect_all(
    coordinated: Coordinated,
    run_dir: &Path,
    parallel: &Arc<Semaphore>,
) -> Collected {
    let slots = &coordinated.coordinator.slots;
    let hosts: Vec<_> = slots
        .iter()
        .map(|s| (node_state(s), s.host.clone()))
        .collect();
    let delivered: Vec<bool> = slots.iter().map(|s| s.delivered).collect();
    let stopped_by = coordinated.coordinator.stopped_by.clone();
    drop(coordinated.coordinator);
    let collecting = std::time::Instant::now();
    let collected =
        collect::collect(&hosts, &delivered, run_dir, parallel, coordinated.resources).await;
    eprintln!(
        "collected {} results in {:.1}s",
        collected.results.len(),
        collecting.elapsed().as_secs_f64()
    );
    Collected {
        stopped_by,
        exports: coordinated.exports,
        ..collected
    }
}

/// Records when each node started against the planned instant in the state file, says it,
/// then builds the report ([`finish`]).
fn report(
    workdir: &Path,
    run_dir: &Path,
    mut state: RunState,
    collected: Collected,
) -> Result<Outcome, MasterError> {
    for node in &mut state.nodes {
        node.started_unix_ms = collected
            .started
            .iter()
            .find(|(n, _)| *n == node.number)
            .map(|(_, at)| *at);
    }
    let starts: Vec<u64> = collected.started.iter().map(|(_, at)| *at).collect();
    state.start_skew_ms = start_skew_ms(&starts);
    if let Some(line) = start_line(&starts, state.planned_start_unix_ms, state.observed_skew_ms) {
        eprintln!("{line}");
    }
    state.save(run_dir)?;
    finish(workdir, run_dir, collected)
}

/// How the nodes started (`starts`, Unix ms) against the `planned` instant, for the terminal.
fn start_line(starts: &[u64], planned: Option<u64>, seen: Option<f64>) -> Option<String> {
    let (first, last) = (starts.iter().min()?, starts.iter().max()?);
    let mut line = format!("start skew between nodes: {} ms", last - first);
    if let Some(seen) = seen {
        line.push_str(&format!(" ({seen:.1} ms as seen by the master)"));
    }
    if let Some(planned) = planned {
        let off = |at: u64| at as i64 - planned as i64;
        line.push_str(&format!(
            "; nodes started {} to {} ms after the planned instant",
            off(*first),
            off(*last)
        ));
    }
    Some(line)
}

/// Follows every deployed node (an SSH host's already run by its mux, one channel per host;
/// local ones spawned now), its output into its `logs` (in the order of the cluster's nodes);
/// the nodes that failed to deploy are failed from the start. Returns the coordinator's slots
/// and the channel of their messages.
async fn spawn_all(
    cluster: &Cluster,
    deployed: Deployed,
    logs: Vec<NodeLogs>,
    run_dir: &Path,
) -> (Vec<Slot>, mpsc::Receiver<NodeMsg>) {
    let mut logs: Vec<Option<NodeLogs>> = logs.into_iter().map(Some).collect();
    let (tx, rx) = mpsc::channel(1024);
    let Deployed { nodes, mut running } = deployed;
    let mut slots = Vec::with_capacity(nodes.len());
    let mut by_host: Vec<Vec<(usize, DeployedNode)>> = vec![Vec::new(); cluster.hosts.len()];
    for (p, d) in nodes.into_iter().enumerate() {
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
        .zip(running.iter_mut())
        .map(|((nodes, host), running)| start_nodes(host.as_ref(), nodes, running.take()));
    for (nodes, started) in by_host.iter().zip(join_all(starts).await) {
        for ((p, _), process) in nodes.iter().zip(started) {
            let slot = &mut slots[*p];
            match process {
                Ok(process) => {
                    let logs = logs.get_mut(*p).and_then(Option::take).unwrap_or_default();
                    let result = result_path(run_dir, slot.number);
                    slot.stdin = Some(follow(*p, process, (logs, result), tx.clone()));
                }
                Err(e) => slot.give_up(State::Failed, format!("cannot start bench-node: {e}")),
            }
        }
    }
    (slots, rx)
}

/// The processes of the deployed `nodes` of `host`: those its mux already runs (`running`, an
/// SSH host), or child processes started now on the local one.
async fn start_nodes(
    host: &dyn Transport,
    nodes: &[(usize, DeployedNode)],
    running: Option<Vec<Process>>,
) -> Vec<Result<Process, String>> {
    if let Some(processes) = running {
        return processes.into_iter().map(Ok).collect();
    }
    let spawns = nodes.iter().map(|(_, n)| host.spawn(n.command()));
    join_all(spawns)
        .await
        .into_iter()
        .map(|r| r.map_err(|e| e.to_string()))
        .collect()
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
    let failed = collected.failed.clone();
    let written = collect::build_report(run_dir, collected)?;
    super::trace::mark(|| "report built".into());
    eprintln!("report built in {:.1}s", building.elapsed().as_secs_f64());
    let thresholds = &written.summary.thresholds;
    let mut verdict = String::new();
    crate::report::threshold::write_text(
        &mut verdict,
        thresholds,
        written.summary.stopped_by.as_ref(),
    );
    eprint!("{verdict}");
    let report = written.index_html;
    if let Err(e) = collect::refresh_index(workdir) {
        eprintln!("bench-master: workspace index not refreshed: {e}");
    }
    println!("{}", report.display());
    Ok(Outcome {
        run_dir: run_dir.to_owned(),
        report: Some(report),
        detached: false,
        failed,
        thresholds_failed: crate::report::threshold::failed(thresholds),
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
        status: s.state.into(),
        started_unix_ms: None,
        reason: s.reason.clone(),
    }
}
