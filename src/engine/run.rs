//! The run controller: starts the workers, walks the cycles (ramp-up, measured window, ramp-down,
//! pause), reports progress each second and assembles the node's result.

use std::future::Future;
use std::path::PathBuf;
use std::pin::pin;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use tokio::sync::{oneshot, watch};

use super::client::Connector;
use super::record::{Recorder, Window};
use super::user::CyclePhase;
use super::worker::{CycleJob, Load, Shared, Worker};
use super::EngineError;
use crate::protocol::progress::ProgressEvent;
use crate::result::{
    unix_ms, BenchConfig, HostResources, NodeInfo, NodeResult, StepInfo, TestInfo,
};
use crate::test_def::{LoadModel, TestPlan};

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
    /// Worker threads (one current-thread runtime each).
    pub workers: usize,
}

/// How a run ended.
#[derive(Debug)]
pub struct RunEnd {
    pub output: PathBuf,
    pub interrupted: bool,
    pub requests: u64,
}

/// Extra time users get after a window to finish the request in flight, beyond the timeout.
const FINISH_GRACE: Duration = Duration::from_secs(1);

/// Runs the bench: waits for `start`, then the cycles; `shutdown` interrupts it. The result is
/// written whatever happens once the run has started.
pub async fn run(
    config: RunConfig,
    start: impl Future<Output = ()>,
    shutdown: impl Future<Output = ()>,
) -> Result<RunEnd, EngineError> {
    check_output(&config.output)?;
    let plan = Arc::new(config.plan);
    let connector = Connector::new(plan.bench.insecure);
    connector
        .resolve(&plan.url)
        .await
        .map_err(|e| EngineError::Resolve {
            url: plan.url.to_string(),
            message: e.message,
        })?;
    // Everything is prepared before the start, so that nodes start together on the word.
    let shared = Shared {
        plan: plan.clone(),
        connector,
        node: config.node.number,
        nodes: config.node.count.max(1),
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
    };
    let workers = (0..config.workers.max(1))
        .map(|i| Worker::spawn(i, shared.clone()))
        .collect::<Result<Vec<_>, _>>()
        .map_err(EngineError::Spawn)?;
    let mut shutdown = pin!(shutdown);
    emit(
        config.progress,
        &ProgressEvent::Ready {
            node: config.node.number,
            pid: std::process::id(),
        },
    );
    let mut interrupted = tokio::select! {
        // The master's word (or at once when running alone).
        _ = start => false,
        // Stopped before it began.
        _ = &mut shutdown => true,
    };

    let t0 = Instant::now();
    let started_unix_ms = unix_ms(SystemTime::now());

    let mut windows: Vec<Window> = Vec::new();
    let mut users_per_second: Vec<u32> = Vec::new();
    let mut ticker = Ticker::new(t0, config.progress);
    let resources = crate::monitor::sampler::Sampler::local(t0);

    for (index, &users) in plan.bench.cycles.iter().enumerate() {
        if interrupted {
            break;
        }
        let cycle = index as u32;
        let cycle_start = Instant::now();
        let open = match plan.bench.model {
            LoadModel::Open { max_users } => Some(max_users),
            LoadModel::Closed => None,
        };
        // Closed model: the window opens once every user has started.
        let ramp = match open {
            Some(_) => Duration::ZERO,
            None => plan.bench.startup_delay * users.saturating_sub(1),
        };
        let window = Window {
            cycle,
            start: cycle_start + ramp,
            end: cycle_start + ramp + plan.bench.duration,
        };
        emit(config.progress, &ProgressEvent::Cycle { cycle, users });
        let (phase_tx, phase_rx) = watch::channel(CyclePhase::Running);
        let mut done = Vec::new();
        for (w, worker) in workers.iter().enumerate() {
            let (tx, rx) = oneshot::channel();
            done.push(rx);
            let n = workers.len() as u32;
            let w = w as u32;
            let load = match open {
                // Worker w takes every n-th execution, offset by w, so the node's rate is exact.
                Some(max_users) => Load::Rate {
                    first: cycle_start + Duration::from_secs_f64(w as f64 / users as f64),
                    period: Duration::from_secs_f64(n as f64 / users as f64),
                    max_users: (max_users / n + u32::from(w < max_users % n)).max(1),
                    number_base: w,
                    number_step: n,
                },
                None => Load::Users(
                    (0..users)
                        .filter(|u| u % n == w)
                        .map(|u| (u, cycle_start + plan.bench.startup_delay * u))
                        .collect(),
                ),
            };
            worker.start(CycleJob {
                t0,
                window,
                load,
                phase: phase_rx.clone(),
                done: tx,
            });
        }

        // Measured window.
        let mut window_end = window.end;
        loop {
            tokio::select! {
                // The window is over.
                _ = tokio::time::sleep_until(window.end.into()) => break,
                // Once a second: progress.
                _ = ticker.tick() => ticker.report(cycle, &workers, &mut users_per_second),
                // Interrupted: the window ends now.
                _ = &mut shutdown, if !interrupted => {
                    interrupted = true;
                    window_end = Instant::now().min(window.end);
                    break;
                }
            }
        }
        windows.push(Window {
            end: window_end.max(window.start),
            ..window
        });

        // Ramp-down: users finish what they are doing, within the timeout.
        let _ = phase_tx.send(if interrupted {
            CyclePhase::Abort
        } else {
            CyclePhase::Finish
        });
        let deadline = Instant::now() + plan.bench.timeout + FINISH_GRACE;
        let mut all_done = pin!(futures_all(done));
        loop {
            tokio::select! {
                // Every user of the cycle has ended.
                _ = &mut all_done => break,
                // Someone hangs beyond the timeout: abandon them.
                _ = tokio::time::sleep_until(deadline.into()) => {
                    let _ = phase_tx.send(CyclePhase::Abort);
                }
                _ = ticker.tick() => ticker.report(cycle, &workers, &mut users_per_second),
                // Interrupted during ramp-down: abandon requests in flight.
                _ = &mut shutdown, if !interrupted => {
                    interrupted = true;
                    let _ = phase_tx.send(CyclePhase::Abort);
                }
            }
        }

        // Pause between cycles.
        if index + 1 < plan.bench.cycles.len() && !interrupted {
            let until = Instant::now() + plan.bench.cycle_time;
            loop {
                tokio::select! {
                    _ = tokio::time::sleep_until(until.into()) => break,
                    _ = ticker.tick() => ticker.report(cycle, &workers, &mut users_per_second),
                    _ = &mut shutdown => { interrupted = true; break; }
                }
            }
        }
    }

    let requests = workers
        .iter()
        .map(|w| w.counters.requests.load(Ordering::Relaxed))
        .sum();
    let mut recorder: Option<Recorder> = None;
    for worker in workers {
        let r = worker.finish();
        match &mut recorder {
            Some(all) => all.merge(r),
            None => recorder = Some(r),
        }
    }
    let recorder = recorder.expect("at least one worker");
    let (mut cycles, mut series, errors) = recorder.finish(windows.len());
    cycles.truncate(windows.len());
    for (c, w) in cycles.iter_mut().zip(&windows) {
        c.users = plan.bench.cycles[c.index as usize];
        c.window_start_ms = (w.start - t0).as_millis() as u64;
        c.window_s = (w.end - w.start).as_secs_f64();
    }
    for s in &mut series {
        let from = t0 + Duration::from_secs(s.second as u64);
        let to = from + Duration::from_secs(1);
        s.cycle = windows
            .iter()
            .find(|w| {
                from + Duration::from_millis(1) >= w.start && to <= w.end + Duration::from_millis(1)
            })
            .map(|w| w.cycle);
        s.users = users_per_second
            .get(s.second as usize)
            .copied()
            .unwrap_or(0);
    }
    let host = crate::monitor::proc::hostname();
    let result = NodeResult {
        format_version: crate::result::FORMAT_VERSION,
        tool_version: crate::VERSION.to_string(),
        started_unix_ms,
        finished_unix_ms: unix_ms(SystemTime::now()),
        interrupted,
        node: NodeInfo {
            host: if config.node.host.is_empty() {
                host.clone()
            } else {
                config.node.host.clone()
            },
            ..config.node
        },
        test: TestInfo {
            name: plan.name.clone(),
            description: plan.description.clone(),
            url: plan.url.to_string(),
        },
        config: bench_config(&plan),
        steps: plan
            .steps
            .iter()
            .map(|s| StepInfo {
                name: s.name.clone(),
                method: s.method.to_string(),
                target: s.target_text.clone(),
            })
            .collect(),
        cycles,
        series,
        errors,
        resources: vec![HostResources {
            host,
            role: "node".into(),
            samples: resources.stop().await,
        }],
    };
    crate::result::write::write_file(&result, &config.output).map_err(|source| {
        EngineError::Write {
            path: config.output.clone(),
            source,
        }
    })?;
    emit(
        config.progress,
        &ProgressEvent::Done {
            result: config.output.display().to_string(),
            interrupted,
        },
    );
    Ok(RunEnd {
        output: config.output,
        interrupted,
        requests,
    })
}

/// Fails before any load is made when the result cannot be written where asked (a missing or
/// read-only directory, a directory in place of the file): a bench must not run for an hour
/// only to lose its result. Probes by creating the writer's `<output>.tmp` and removing it.
fn check_output(output: &std::path::Path) -> Result<(), EngineError> {
    let fail = |source| EngineError::Write {
        path: output.to_path_buf(),
        source,
    };
    if output.is_dir() {
        return Err(fail(std::io::Error::other("it is a directory")));
    }
    let mut probe = output.as_os_str().to_owned();
    probe.push(".tmp");
    std::fs::File::create(&probe).map_err(fail)?;
    let _ = std::fs::remove_file(&probe);
    Ok(())
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
            LoadModel::Closed => "closed".into(),
            LoadModel::Open { .. } => "open".into(),
        },
    }
}

/// Waits for every receiver (a dropped sender counts as done).
async fn futures_all(done: Vec<oneshot::Receiver<()>>) {
    for rx in done {
        let _ = rx.await;
    }
}

/// Prints one progress event where the mode says. Write errors (a closed pipe after the master
/// detached) are ignored: the result file is what matters.
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

/// The once-a-second progress clock.
struct Ticker {
    t0: Instant,
    interval: tokio::time::Interval,
    mode: ProgressMode,
    last_requests: u64,
}

impl Ticker {
    fn new(t0: Instant, mode: ProgressMode) -> Ticker {
        let mut interval =
            tokio::time::interval_at((t0 + Duration::from_secs(1)).into(), Duration::from_secs(1));
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        Ticker {
            t0,
            interval,
            mode,
            last_requests: 0,
        }
    }

    async fn tick(&mut self) {
        self.interval.tick().await;
    }

    fn report(&mut self, cycle: u32, workers: &[Worker], users_per_second: &mut Vec<u32>) {
        let sum = |f: fn(&super::Counters) -> u64| workers.iter().map(|w| f(&w.counters)).sum();
        let requests: u64 = sum(|c| c.requests.load(Ordering::Relaxed));
        let users: u64 = sum(|c| c.users.load(Ordering::Relaxed) as u64);
        let elapsed = self.t0.elapsed().as_secs_f64();
        let second = (elapsed as usize).saturating_sub(1);
        if users_per_second.len() <= second {
            users_per_second.resize(second + 1, users as u32);
        }
        users_per_second[second] = users as u32;
        let rps = (requests - self.last_requests) as f64;
        self.last_requests = requests;
        emit(
            self.mode,
            &ProgressEvent::Progress {
                cycle,
                users: users as u32,
                requests,
                failures: sum(|c| c.failures.load(Ordering::Relaxed)),
                errors: sum(|c| c.errors.load(Ordering::Relaxed)),
                rps,
                elapsed,
            },
        );
    }
}
