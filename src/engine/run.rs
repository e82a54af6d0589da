//! The run controller: starts the workers, walks the cycles (ramp-up, measured window, ramp-down,
//! pause), reports progress each second and assembles the node's result.

use std::future::Future;
use std::path::PathBuf;
use std::pin::{pin, Pin};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use tokio::sync::{oneshot, watch};

use super::client::Connector;
use super::data::Rows;
use super::generator::Generator;
use super::record::{Recorder, Window};
use super::source::{CycleStart, Source};
use super::tally::{self, Tally};
use super::user::CyclePhase;
use super::worker::{Load, Shared, Worker};
use super::EngineError;
use crate::export::{Exporter, SinkTally, Tags};
use crate::live::abort::AbortWatch;
use crate::live::local::{LocalExport, LocalLive};
use crate::monitor::sampler::Sampler;
use crate::protocol::progress::{ProgressEvent, ProgressLog};
use crate::report::threshold::LiveStop;
use crate::result::latency::interval_for;
use crate::result::write::ResultFile;
use crate::result::{
    unix_ms, unix_ms_at, BenchConfig, CycleResult, ErrorGroup, HostResources, HostRole,
    LatencySeries, LatencySum, ModelKind, NodeInfo, NodeResult, ResourceSample, ScenarioInfo,
    SecondSample, StepInfo, TestInfo,
};
use crate::test_def::{Bench, HttpVersion, LoadModel, TestPlan};

/// How progress is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProgressMode {
    /// A line per second on stderr, for people.
    Human,
    /// JSON lines on stdout, for the master.
    Json,
    None,
}

/// A validated `bench-node run`.
pub struct RunConfig {
    pub plan: TestPlan,
    pub node: NodeInfo,
    /// Where the result XML goes.
    pub output: PathBuf,
    pub progress: ProgressMode,
    /// Where every progress line is also kept ([`ProgressLog`]), whatever `progress` says.
    pub progress_log: Option<PathBuf>,
    /// Where the JSON lines go instead of stdout: a node run inside a mux, beside the other
    /// nodes of its host in one process.
    pub relay: Option<Relay>,
    /// Worker threads (one current-thread runtime each); never more than the plan's peak
    /// users, who are all a worker runs.
    pub workers: usize,
    /// Judge the test's `abort = true` thresholds live on this node's own seconds and stop
    /// when one stays broken (running alone; under a master, the master judges the cluster).
    pub live_abort: bool,
    /// Where this node's own seconds go as the run goes (`--export`; none when empty).
    pub exporter: Exporter,
}

/// A line of a node run inside a mux, without its newline, for its stdout or its stderr.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NodeLine {
    Out(String),
    Err(String),
}

/// Where a node run inside a mux says its lines (see [`RunConfig::relay`]); a send fails only
/// once the mux stopped relaying, and the line is then dropped, as a closed stdout's would be.
pub type Relay = tokio::sync::mpsc::UnboundedSender<NodeLine>;

/// How a run ended.
#[derive(Debug)]
pub struct RunEnd {
    pub output: PathBuf,
    pub interrupted: bool,
    pub requests: u64,
    /// The threshold that stopped the run live (with [`RunConfig::live_abort`]).
    pub stopped_by: Option<LiveStop>,
    /// How each `--export` sink fared.
    pub exports: Vec<SinkTally>,
}

/// Extra time users get after a window to finish the request in flight, beyond the timeout.
const FINISH_GRACE: Duration = Duration::from_secs(1);

/// Runs the bench: waits for `start`, then the cycles; `shutdown` interrupts it. The result is
/// written whatever happens once the run has started.
pub async fn run(
    config: RunConfig,
    start: impl Future<Output = Instant>,
    shutdown: impl Future<Output = ()>,
) -> Result<RunEnd, EngineError> {
    let file = check_output(&config.output)?;
    let plan = Arc::new(config.plan);
    let (mut source, rows) = prepare(&plan, &config.node, config.workers).await?;
    let mut shutdown = pin!(shutdown);
    let progress = Progress {
        mode: config.progress,
        relay: config.relay.clone(),
        log: config
            .progress_log
            .as_deref()
            .map(|p| Arc::new(ProgressLog::create(p))),
    };
    progress.emit(&ProgressEvent::Ready {
        node: config.node.number,
        pid: std::process::id(),
    });
    let (t0, interrupted) = tokio::select! {
        // The stop first: a master gone without a word ends the start's wait too, and the
        // stop it leaves behind must win, or the users would send requests (counted by the
        // server, never recorded) before the run heard of it.
        biased;
        // Stopped before it began.
        _ = &mut shutdown => (Instant::now(), true),
        // The master's word (or at once when running alone): the instant the run starts at,
        // which may be still to come. The users wait for it on their workers' clocks, so that
        // the nodes' windows line up whatever the wake-up of each node's controller.
        at = start => (at, false),
    };
    let started_unix_ms = unix_ms_at(t0);
    let resources = Sampler::local(t0);
    let mut ticker = Ticker::new(t0, progress.clone(), &plan);
    ticker.cpu = Some(resources.cpu());
    let abort = config
        .live_abort
        .then(|| AbortWatch::for_plan(&plan))
        .flatten();
    let export = LocalExport {
        exporter: config.exporter,
        tags: export_tags(&plan, &config.node),
        start_unix_ms: started_unix_ms,
    };
    ticker.live = LocalLive::new(abort, Some(export));
    let mut walked = Cycles::new(&plan, &mut source, t0, ticker, shutdown, interrupted)
        .run()
        .await;
    let requests = source
        .counters()
        .iter()
        .map(|c| c.requests.load(Ordering::Relaxed))
        .sum();
    let versions = match &source {
        Source::Users(workers) => negotiated(workers),
        Source::Program(_) => Vec::new(),
    };
    let samples = resources.stop().await;
    let live = walked.live.take();
    let interrupted = walked.interrupted;
    // Off the runtime's thread, whose nodes (a mux's) would wait: joining the workers,
    // merging their tallies and encoding the result on the finisher thread, then writing the
    // file and its directory synced, which waits on the disk, on the blocking pool.
    let node = config.node;
    let encoded = super::finisher::finish(move || {
        let measured = Measured::place(&plan, &walked, source.finish());
        let mut result = node_result(
            &plan,
            node,
            started_unix_ms,
            interrupted,
            measured,
            samples,
            &versions,
        );
        result.data = rows.usage(t0);
        let mut bytes = Vec::new();
        crate::result::write::to_writer(&result, &mut bytes).map(|()| bytes)
    })
    .await
    .unwrap_or_else(|e| {
        Err(std::io::Error::other(format!(
            "the result was not made: {e}"
        )))
    });
    let written = match encoded {
        Ok(bytes) => tokio::task::spawn_blocking(move || file.write_bytes(&bytes))
            .await
            .unwrap_or_else(|e| Err(std::io::Error::other(format!("the writer failed: {e}")))),
        Err(e) => Err(e),
    };
    written.map_err(|source| EngineError::Write {
        path: config.output.clone(),
        source,
    })?;
    // The result is safe: now the sinks may take their time (bounded) to send what they hold.
    let stopped_by = live.as_ref().and_then(|l| l.stopped_by().cloned());
    let exports = match live {
        Some(live) => live.finish().await,
        None => Vec::new(),
    };
    progress.emit(&ProgressEvent::Done {
        result: config.output.display().to_string(),
        interrupted,
    });
    Ok(RunEnd {
        output: config.output,
        interrupted,
        requests,
        stopped_by,
        exports,
    })
}

/// The tags of this node's exported seconds: its run (the test's name when alone), and its
/// name, `local` when alone.
fn export_tags(plan: &TestPlan, node: &NodeInfo) -> Tags {
    let alone = node.run.is_empty();
    Tags {
        run: if alone {
            plan.name.clone()
        } else {
            node.run.clone()
        },
        test: plan.name.clone(),
        steps: plan.step_names(),
        nodes: vec![if alone {
            "local".to_string()
        } else {
            format!("node{}", node.number)
        }],
    }
}

/// Prepares everything before the start, so that nodes start together on the word: opens
/// the data files, resolves the target and spawns the worker threads, or finds the generator's
/// program.
async fn prepare(
    plan: &Arc<TestPlan>,
    node: &NodeInfo,
    workers: usize,
) -> Result<(Source, Arc<Rows>), EngineError> {
    let rows = Arc::new(Rows::open(plan, node.number, node.count.max(1))?);
    if plan.generator.is_some() {
        let generator = Generator::new(plan, node).map_err(EngineError::Generator)?;
        return Ok((Source::Program(generator), rows));
    }
    let connector = Connector::new(plan.bench.insecure);
    connector
        .resolve(&plan.url)
        .await
        .map_err(|e| EngineError::Resolve {
            url: plan.url.to_string(),
            message: e.message,
        })?;
    let shared = Shared {
        plan: plan.clone(),
        connector,
        node: node.number,
        nodes: node.count.max(1),
        static_urls: plan
            .steps
            .iter()
            .map(|s| {
                s.target
                    .is_static()
                    .then(|| s.url(&plan.url, &Default::default()).ok())
                    .flatten()
            })
            .collect(),
        rows: rows.clone(),
    };
    // A worker runs whole users: threads beyond the node's peak users would sit idle, and
    // each costs its start and end (which a host's many nodes in one mux feel).
    let workers = workers.clamp(1, (plan.bench.peak_users() as usize).max(1));
    let workers = (0..workers)
        .map(|i| Worker::spawn(i, shared.clone()))
        .collect::<Result<Vec<_>, _>>()
        .map_err(EngineError::Spawn)?;
    Ok((Source::Users(workers), rows))
}

/// Walks the plan's cycles on the workers: for each, spread the load, hold the measured
/// window, ramp down, pause; a progress line every second throughout.
struct Cycles<'a, S> {
    plan: &'a TestPlan,
    source: &'a mut Source,
    /// The run's start; seconds of the series count from it.
    t0: Instant,
    ticker: Ticker,
    /// Users running at the end of each second of the run.
    users_per_second: Vec<u32>,
    /// Completes on an interrupt (Ctrl+C, SIGTERM, the master's `stop`).
    shutdown: Pin<&'a mut S>,
    interrupted: bool,
    /// When a generator program began.
    began: Option<Instant>,
}

/// The cycles as they ran.
struct Walked {
    t0: Instant,
    /// When a generator program began (users say it themselves, in their recorders).
    began: Option<Instant>,
    /// Measured windows of the cycles that started (cut short by an interrupt).
    windows: Vec<Window>,
    /// Users running at the end of each second of the run.
    users_per_second: Vec<u32>,
    /// Latency per interval of the run, from the workers' tallies.
    latency: LatencySeries,
    interrupted: bool,
    /// The node's live view (live thresholds, export), to be finished once the result is
    /// written.
    live: Option<LocalLive>,
}

impl<'a, S: Future<Output = ()>> Cycles<'a, S> {
    fn new(
        plan: &'a TestPlan,
        source: &'a mut Source,
        t0: Instant,
        ticker: Ticker,
        shutdown: Pin<&'a mut S>,
        interrupted: bool,
    ) -> Self {
        Cycles {
            plan,
            source,
            t0,
            ticker,
            users_per_second: Vec::new(),
            shutdown,
            interrupted,
            began: None,
        }
    }

    /// Every cycle in turn until the plan ends or an interrupt.
    async fn run(mut self) -> Walked {
        let cycles = &self.plan.bench.cycles;
        let mut windows = Vec::new();
        for (index, &users) in cycles.iter().enumerate() {
            if self.interrupted {
                break;
            }
            windows.push(self.cycle(index as u32, users).await);
            if index + 1 < cycles.len() && !self.interrupted {
                self.pause(index as u32).await;
            }
        }
        // The last seconds' tallies: every user has ended, so this takes all that is left.
        let last = windows.len().saturating_sub(1) as u32;
        let elapsed = self.t0.elapsed().as_secs_f64();
        self.ticker
            .send(
                last,
                self.source,
                &mut self.users_per_second,
                u32::MAX,
                elapsed,
            )
            .await;
        Walked {
            t0: self.t0,
            began: self.began,
            windows,
            users_per_second: self.users_per_second,
            latency: self.ticker.latency.finish(),
            interrupted: self.interrupted,
            live: self.ticker.live,
        }
    }

    /// One cycle of `users`: the load spread over the workers, the window, the ramp-down.
    /// Returns the window as measured.
    async fn cycle(&mut self, cycle: u32, users: u32) -> Window {
        let bench = &self.plan.bench;
        // The first cycle starts at the run's start, which may be still to come: its users
        // wait for it on their workers' clocks. A later one starts once its pause is over.
        let cycle_start = if cycle == 0 { self.t0 } else { Instant::now() };
        let start = cycle_start + ramp_up(bench, users);
        let window = Window {
            cycle,
            start,
            end: start + bench.duration,
        };
        if matches!(self.source, Source::Program(_)) {
            // A program is started when its cycle is due, not before.
            tokio::time::sleep_until(cycle_start.into()).await;
            self.began.get_or_insert_with(Instant::now);
        }
        let (phase, phase_rx) = watch::channel(CyclePhase::Running);
        let start = CycleStart {
            t0: self.t0,
            window,
            users,
            phase: phase_rx,
        };
        let done = self
            .source
            .start(start, |w, n| share(bench, cycle_start, users, w, n));
        // The word that the cycle began goes out when it is due.
        tokio::time::sleep_until(cycle_start.into()).await;
        self.ticker.out.emit(&ProgressEvent::Cycle { cycle, users });
        let measured = self.window(window).await;
        self.ramp_down(cycle, &phase, done).await;
        measured
    }

    /// Holds the measured window; an interrupt ends it at once.
    async fn window(&mut self, window: Window) -> Window {
        let mut end = window.end;
        loop {
            tokio::select! {
                // The window is over.
                _ = tokio::time::sleep_until(window.end.into()) => break,
                // Once a second: progress (and the live thresholds, which may stop the run).
                _ = self.ticker.tick() => {
                    self.ticker.report(window.cycle, self.source, &mut self.users_per_second).await;
                    if self.ticker.stopped() && !self.interrupted {
                        self.interrupted = true;
                        end = Instant::now().min(window.end);
                        break;
                    }
                }
                // Interrupted: the window ends now.
                _ = &mut self.shutdown, if !self.interrupted => {
                    self.interrupted = true;
                    end = Instant::now().min(window.end);
                    break;
                }
            }
        }
        Window {
            end: end.max(window.start),
            ..window
        }
    }

    /// Ramp-down: users finish what they are doing, within the timeout; `done` completes when
    /// every worker's users have ended.
    async fn ramp_down(
        &mut self,
        cycle: u32,
        phase: &watch::Sender<CyclePhase>,
        done: Vec<oneshot::Receiver<()>>,
    ) {
        let _ = phase.send(if self.interrupted {
            CyclePhase::Abort
        } else {
            CyclePhase::Finish
        });
        let deadline = Instant::now() + self.plan.bench.timeout + FINISH_GRACE;
        let mut all_done = pin!(futures_all(done));
        loop {
            tokio::select! {
                // Every user of the cycle has ended.
                _ = &mut all_done => break,
                // Someone hangs beyond the timeout: abandon them.
                _ = tokio::time::sleep_until(deadline.into()) => {
                    let _ = phase.send(CyclePhase::Abort);
                }
                // Once a second: progress.
                _ = self.ticker.tick() => {
                    self.ticker.report(cycle, self.source, &mut self.users_per_second).await;
                }
                // Interrupted during ramp-down: abandon requests in flight.
                _ = &mut self.shutdown, if !self.interrupted => {
                    self.interrupted = true;
                    let _ = phase.send(CyclePhase::Abort);
                }
            }
        }
    }

    /// The pause after cycle `cycle`, before the next one.
    async fn pause(&mut self, cycle: u32) {
        let until = Instant::now() + self.plan.bench.cycle_time;
        loop {
            tokio::select! {
                // The pause is over.
                _ = tokio::time::sleep_until(until.into()) => break,
                // Once a second: progress (and the live thresholds, which may stop the run).
                _ = self.ticker.tick() => {
                    self.ticker.report(cycle, self.source, &mut self.users_per_second).await;
                    if self.ticker.stopped() {
                        self.interrupted = true;
                        break;
                    }
                }
                // Interrupted: no next cycle.
                _ = &mut self.shutdown, if !self.interrupted => {
                    self.interrupted = true;
                    break;
                }
            }
        }
    }
}

/// Time from a cycle's start to its measured window: the closed model's window opens once
/// every user has started; the open model starts at full rate.
fn ramp_up(bench: &Bench, users: u32) -> Duration {
    match bench.model {
        LoadModel::Open { .. } => Duration::ZERO,
        LoadModel::Closed => bench.startup_delay * users.saturating_sub(1),
    }
}

/// Worker `w` of `n`'s share of a cycle of `users` begun at `cycle_start`, by load model.
fn share(bench: &Bench, cycle_start: Instant, users: u32, w: u32, n: u32) -> Load {
    match bench.model {
        // Worker w takes every n-th execution, offset by w, so the node's rate is exact.
        LoadModel::Open { max_users } => Load::Rate {
            first: cycle_start + Duration::from_secs_f64(w as f64 / users as f64),
            period: Duration::from_secs_f64(n as f64 / users as f64),
            max_users: (max_users / n + u32::from(w < max_users % n)).max(1),
            number_base: w,
            number_step: n,
        },
        // Worker w runs every n-th user, each starting `startup_delay` after the one before.
        LoadModel::Closed => Load::Users(
            (0..users)
                .filter(|u| u % n == w)
                .map(|u| (u, cycle_start + bench.startup_delay * u))
                .collect(),
        ),
    }
}

/// What the workers measured, placed on the cycles as they ran.
struct Measured {
    /// When the first user began.
    began: Option<Instant>,
    cycles: Vec<CycleResult>,
    series: Vec<SecondSample>,
    latency: LatencySeries,
    errors: Vec<ErrorGroup>,
}

impl Measured {
    /// The recorder's figures with each cycle's users and window, and each second's cycle (the
    /// one whose window holds it) and users.
    fn place(plan: &TestPlan, walked: &Walked, recorder: Recorder) -> Measured {
        let windows = &walked.windows;
        let began = recorder.began().or(walked.began);
        let (mut cycles, mut series, errors) = recorder.finish(windows.len());
        cycles.truncate(windows.len());
        for (c, w) in cycles.iter_mut().zip(windows) {
            c.users = plan.bench.cycles[c.index as usize];
            c.window_start_ms = (w.start - walked.t0).as_millis() as u64;
            c.window_s = (w.end - w.start).as_secs_f64();
        }
        let ms = Duration::from_millis(1);
        for s in &mut series {
            let from = walked.t0 + Duration::from_secs(s.second as u64);
            let to = from + Duration::from_secs(1);
            s.cycle = windows
                .iter()
                .find(|w| from + ms >= w.start && to <= w.end + ms)
                .map(|w| w.cycle);
            let users = walked.users_per_second.get(s.second as usize);
            s.users = users.copied().unwrap_or(0);
        }
        Measured {
            began,
            cycles,
            series,
            latency: walked.latency.clone(),
            errors,
        }
    }
}

/// Per step, the HTTP versions its `http = "auto"` answers came in, on every worker.
fn negotiated(workers: &[Worker]) -> Vec<u8> {
    let mut all = Vec::new();
    for w in workers {
        let versions = w.counters.versions.lock().unwrap();
        all.resize(all.len().max(versions.len()), 0);
        for (a, v) in all.iter_mut().zip(versions.iter()) {
            *a |= v;
        }
    }
    all
}

/// The protocol step `step` used, as the result names it; `seen` are the versions its
/// `auto` answers came in (see [`negotiated`]).
fn protocol(step: &crate::test_def::Step, seen: u8) -> String {
    if step.websocket.is_some() {
        return "WebSocket".into();
    }
    match (step.http, seen) {
        (HttpVersion::Http1, _) | (HttpVersion::Auto, 1) => "HTTP/1.1".into(),
        (HttpVersion::Http2, _) | (HttpVersion::Auto, 2) => "HTTP/2".into(),
        (HttpVersion::Auto, 3) => "HTTP/1.1 and HTTP/2".into(),
        (HttpVersion::Auto, _) => "auto (no answer)".into(),
    }
}

/// The node's result: who measured, what was tested and how, and what was measured.
fn node_result(
    plan: &TestPlan,
    node: NodeInfo,
    started_unix_ms: u64,
    interrupted: bool,
    measured: Measured,
    samples: Vec<ResourceSample>,
    versions: &[u8],
) -> NodeResult {
    let host = crate::monitor::proc::hostname();
    NodeResult {
        format_version: crate::result::FORMAT_VERSION,
        tool_version: crate::VERSION.to_string(),
        started_unix_ms,
        // Never before the start (the two clocks are read apart).
        began_unix_ms: measured.began.map(|t| unix_ms_at(t).max(started_unix_ms)),
        finished_unix_ms: unix_ms(SystemTime::now()),
        interrupted,
        node: NodeInfo {
            host: if node.host.is_empty() {
                host.clone()
            } else {
                node.host.clone()
            },
            ..node
        },
        test: TestInfo {
            name: plan.name.clone(),
            description: plan.description.clone(),
            url: plan.url.to_string(),
        },
        config: bench_config(plan),
        steps: step_infos(plan, versions),
        scenarios: plan
            .scenarios
            .recorded()
            .iter()
            .map(|s| ScenarioInfo {
                name: s.name.clone(),
                weight: s.weight,
                first_step: s.steps.start as u32,
                steps: s.steps.len() as u32,
            })
            .collect(),
        cycles: measured.cycles,
        series: measured.series,
        latency: measured.latency,
        errors: measured.errors,
        data: Vec::new(),
        resources: vec![HostResources {
            host,
            role: HostRole::Node,
            samples,
        }],
    }
}

/// The steps as the result names them: the `[[step]]`s, or the generator's steps (method
/// `program`, target the command).
fn step_infos(plan: &TestPlan, versions: &[u8]) -> Vec<StepInfo> {
    match &plan.generator {
        Some(g) => g
            .steps
            .iter()
            .map(|name| StepInfo {
                name: name.clone(),
                method: "program".into(),
                target: g.command.join(" "),
                protocol: "program".into(),
            })
            .collect(),
        None => plan
            .steps
            .iter()
            .enumerate()
            .map(|(i, s)| StepInfo {
                name: s.name.clone(),
                method: if s.websocket.is_some() {
                    "WS".into()
                } else {
                    s.method.to_string()
                },
                target: s.target_text.clone(),
                protocol: protocol(s, versions.get(i).copied().unwrap_or(0)),
            })
            .collect(),
    }
}

/// Fails before any load is made when the result cannot be written where asked (a missing or
/// read-only directory, a directory in place of the file): a bench must not run for an hour
/// only to lose its result. The file it opens, `<output>.tmp`, is the one the run's end writes.
fn check_output(output: &std::path::Path) -> Result<ResultFile, EngineError> {
    let fail = |source| EngineError::Write {
        path: output.to_path_buf(),
        source,
    };
    if output.is_dir() {
        return Err(fail(std::io::Error::other("it is a directory")));
    }
    ResultFile::create(output).map_err(fail)
}

fn bench_config(plan: &TestPlan) -> BenchConfig {
    let b = &plan.bench;
    BenchConfig {
        cycles: b.cycles.clone(),
        duration_s: b.duration.as_secs_f64(),
        startup_delay_s: b.startup_delay.as_secs_f64(),
        sleep_time_min_s: b.sleep_time_min.as_secs_f64(),
        sleep_time_max_s: b.sleep_time_max.as_secs_f64(),
        sleep_time_s: b.sleep_time.as_secs_f64(),
        cycle_time_s: b.cycle_time.as_secs_f64(),
        apdex_t_s: b.apdex_t.as_secs_f64(),
        ok_codes: b.ok_codes.clone(),
        timeout_s: b.timeout.as_secs_f64(),
        model: match b.model {
            LoadModel::Closed => ModelKind::Closed,
            LoadModel::Open { .. } => ModelKind::Open,
        },
        thresholds: plan.thresholds.clone(),
        streams: plan.streams,
    }
}

/// Waits for every receiver (a dropped sender counts as done).
async fn futures_all(done: Vec<oneshot::Receiver<()>>) {
    for rx in done {
        let _ = rx.await;
    }
}

/// Where a run's progress goes: shown as `mode` says, and kept in the node's log if it has one.
#[derive(Clone)]
struct Progress {
    mode: ProgressMode,
    relay: Option<Relay>,
    log: Option<Arc<ProgressLog>>,
}

impl Progress {
    /// Shows one progress event and keeps it in the log.
    fn emit(&self, event: &ProgressEvent) {
        if let Some(log) = &self.log {
            log.append(&event.to_line());
        }
        match (&self.relay, self.mode) {
            (Some(relay), ProgressMode::Json) => {
                let _ = relay.send(NodeLine::Out(event.to_line()));
            }
            _ => emit(self.mode, event),
        }
    }
}

/// Prints one progress event where the mode says. Write errors (a closed pipe after the master
/// detached) are ignored: the result file, and the progress log for `--attach`, are what
/// matter.
pub fn emit(mode: ProgressMode, event: &ProgressEvent) {
    use std::io::Write;
    match mode {
        ProgressMode::Json => {
            let mut out = std::io::stdout().lock();
            let _ = writeln!(out, "{}", event.to_line());
            let _ = out.flush();
        }
        ProgressMode::Human => match event {
            ProgressEvent::Cycle { cycle, users } => {
                eprintln!("cycle {}: {users} users", cycle + 1)
            }
            ProgressEvent::Progress {
                cycle,
                users,
                requests,
                failures,
                errors,
                rps,
                elapsed,
                ..
            } => eprintln!(
                "{elapsed:>6.1}s  cycle {}  users {users:>5}  requests {requests:>9}  {rps:>9.1}/s  failures {failures}  errors {errors}",
                cycle + 1
            ),
            ProgressEvent::Done {
                result,
                interrupted,
            } => eprintln!(
                "{} result: {result}",
                if *interrupted { "interrupted;" } else { "done;" }
            ),
            ProgressEvent::Ready { .. } => {}
        },
        ProgressMode::None => {}
    }
}

/// The once-a-second progress clock: takes the workers' tallies of the seconds that ended,
/// sends them in the progress line and adds their latency into the result's intervals.
struct Ticker {
    t0: Instant,
    interval: tokio::time::Interval,
    /// Where its lines go.
    out: Progress,
    last_requests: u64,
    /// The run's latency intervals: sealed as they pass, so a long run holds them packed.
    latency: LatencySum,
    /// This node's own seconds, judged by the live thresholds (running alone) and exported.
    live: Option<LocalLive>,
    /// The host's CPU busy, from the resource sampler, sent with each progress line.
    cpu: Option<watch::Receiver<Option<f64>>>,
}

impl Ticker {
    fn new(t0: Instant, out: Progress, plan: &TestPlan) -> Ticker {
        let mut interval =
            tokio::time::interval_at((t0 + Duration::from_secs(1)).into(), Duration::from_secs(1));
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        let planned = interval_for(planned_length(&plan.bench).as_secs_f64());
        Ticker {
            t0,
            interval,
            out,
            last_requests: 0,
            latency: LatencySum::new(planned, plan.step_names().len()),
            live: None,
            cpu: None,
        }
    }

    /// True once a live threshold stopped the run.
    fn stopped(&self) -> bool {
        self.live.as_ref().is_some_and(|l| l.stopped_by().is_some())
    }

    async fn tick(&mut self) {
        self.interval.tick().await;
    }

    /// The progress of the second that just ended.
    async fn report(&mut self, cycle: u32, source: &Source, users_per_second: &mut Vec<u32>) {
        let elapsed = self.t0.elapsed().as_secs_f64();
        self.send(cycle, source, users_per_second, elapsed as u32, elapsed)
            .await;
    }

    /// Progress with the tallies of the seconds before `upto` (one line, or more when the
    /// node fell behind: see [`tally::to_wire`]).
    async fn send(
        &mut self,
        cycle: u32,
        source: &Source,
        users_per_second: &mut Vec<u32>,
        upto: u32,
        elapsed: f64,
    ) {
        let tallies = self.collect(source, upto).await;
        let counters = source.counters();
        let sum = |f: fn(&super::Counters) -> u64| counters.iter().map(|c| f(c)).sum();
        let requests: u64 = sum(|c| c.requests.load(Ordering::Relaxed));
        let users: u64 = sum(|c| c.users.load(Ordering::Relaxed) as u64);
        let second = (elapsed as usize).saturating_sub(1);
        if users_per_second.len() <= second {
            users_per_second.resize(second + 1, users as u32);
        }
        users_per_second[second] = users as u32;
        let rps = (requests - self.last_requests) as f64;
        self.last_requests = requests;
        let mut lines = match self.out.mode {
            _ if self.live.is_some() || self.out.log.is_some() => {
                tally::to_wire(&tallies, users as u32)
            }
            ProgressMode::Json => tally::to_wire(&tallies, users as u32),
            _ => Vec::new(),
        };
        if lines.is_empty() {
            lines.push(Vec::new());
        }
        for seconds in lines {
            let event = ProgressEvent::Progress {
                cycle,
                users: users as u32,
                requests,
                failures: sum(|c| c.failures.load(Ordering::Relaxed)),
                errors: sum(|c| c.errors.load(Ordering::Relaxed)),
                rps,
                elapsed,
                through: upto,
                seconds,
                cpu: self.cpu.as_ref().and_then(|c| *c.borrow()),
            };
            if let Some(live) = &mut self.live {
                live.progress(&event);
            }
            self.out.emit(&event);
        }
    }

    /// Every worker's tallies of the seconds before `upto`, merged by second; their latency
    /// added into the intervals, and the intervals that ended sealed.
    async fn collect(&mut self, source: &Source, upto: u32) -> Vec<Tally> {
        // Asked all at once: the workers answer in parallel, each between its users' turns.
        let asked = source.tallies(upto);
        let mut all = Vec::new();
        for rx in asked {
            all.extend(rx.await.unwrap_or_default());
        }
        let merged = tally::merge_by_second(all);
        for t in &merged {
            for (step, s) in t.steps.iter().enumerate() {
                if let Some(h) = &s.latency {
                    self.latency.add_second(t.second, step, h);
                }
            }
        }
        self.latency.seal_before(upto / self.latency.interval_s());
        merged
    }
}

/// How long the plan runs: each cycle's ramp-up and window, and the pauses between cycles
/// (ramp-downs, bounded by the timeout, not counted).
fn planned_length(bench: &Bench) -> Duration {
    let cycles = bench
        .cycles
        .iter()
        .map(|&u| ramp_up(bench, u) + bench.duration);
    let pauses = bench.cycle_time * (bench.cycles.len().saturating_sub(1) as u32);
    cycles.sum::<Duration>() + pauses
}
