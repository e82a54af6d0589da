//! The master: deploy, start, follow and collect a distributed run.
//!
//! The stages, in order: [`config`] (flags → validated [`Config`]), [`transport`] (how a host is
//! reached: [`ssh`] or [`local`]), [`deploy`] (bench-node and the test onto each node;
//! `--check`), [`coordinator`] (start together, follow with [`follow`], show with [`display`],
//! merge the cluster second by second in [`crate::live`], judge the live thresholds on it
//! with [`crate::live::abort`], stop or detach), [`collect`] (results → report), with [`run`]
//! tying them together end to end, [`dashboard`] for `--live` (the page showing the live
//! view's seconds), [`exporting`] for `--export`, [`attach`] for detached runs, [`service`] for
//! the test's `[service]`, [`monitor`] for its `[monitor] hosts` (the sampling loop of
//! [`crate::monitor::sampler`] fed over each host's transport), and [`mux`], the master's half
//! of one SSH channel per host; [`trace`] times the stages when asked.

pub mod attach;
pub mod collect;
pub mod config;
pub mod coordinator;
pub mod dashboard;
pub mod deploy;
pub mod display;
pub mod exporting;
pub mod follow;
pub mod local;
pub mod monitor;
pub mod mux;
pub mod run;
pub mod service;
pub mod ssh;
pub mod state;
pub mod trace;
pub mod transport;

use std::future::Future;
use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::Arc;

use tokio::io::AsyncBufReadExt;
use tokio::sync::{mpsc, Semaphore};

pub use config::{Args, Config, ConfigError, Mode};

/// What the user asked for by interrupting the master.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Interrupt {
    /// End every node; still collect and report what was measured.
    Stop,
    /// Leave the nodes running and exit (`--attach` follows them again).
    Detach,
}

/// How a master run ended.
#[derive(Debug)]
pub struct Outcome {
    /// The run directory.
    pub run_dir: PathBuf,
    /// The report's HTML page, when one was built.
    pub report: Option<PathBuf>,
    /// True when the master detached from running nodes.
    pub detached: bool,
    /// Nodes without a result.
    pub failed: Vec<crate::report::FailedNode>,
    /// Thresholds of the test that failed on the merged result (0 when none or no report).
    pub thresholds_failed: usize,
}

/// A run that could not be carried out.
#[derive(Debug, thiserror::Error)]
pub enum MasterError {
    #[error(transparent)]
    Test(#[from] crate::test_def::TestDefError),
    /// A file or directory of the master's workspace (the cause follows as the source).
    #[error("{}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The results could not be saved (the cause is in the message, not repeated as a source).
    #[error(
        "cannot write the results into {}: {error}; each node keeps its own result.xml in \
         its directory (listed in run.json)",
        path.display()
    )]
    ResultsNotWritable {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("only {ready} nodes could be started, {needed} needed (--min-nodes); see {}", run_dir.display())]
    NotEnoughNodes {
        ready: usize,
        needed: usize,
        run_dir: PathBuf,
    },
    #[error("the run did not start: {why}; see {}", run_dir.display())]
    Aborted { why: String, run_dir: PathBuf },
    #[error("interrupted before the nodes started")]
    Interrupted,
    #[error(transparent)]
    State(#[from] state::StateError),
    #[error("report: {0}")]
    Report(#[from] crate::report::ReportError),
    #[error(transparent)]
    Service(#[from] service::ServiceError),
    #[error(transparent)]
    Dashboard(#[from] dashboard::DashboardError),
    #[error(transparent)]
    Export(#[from] crate::export::ExportError),
}

/// Runs the master as configured until done; `shutdown` resolves on Ctrl+C or SIGTERM with
/// what to do (see [`interrupted`]). With `--live` the dashboard is served from the start
/// and, once the run is over, until Ctrl+C or SIGTERM.
pub async fn run(
    config: Config,
    shutdown: impl Future<Output = Interrupt> + Send + 'static,
) -> Result<Outcome, MasterError> {
    trace::begin();
    trace::mark(|| "master begins".into());
    // The interrupt becomes a message, so that each stage can listen for it.
    let (tx, mut interrupts) = mpsc::channel(1);
    let listener = tokio::spawn(async move {
        let _ = tx.send(shutdown.await).await;
    });
    let board = dashboard::Board::default();
    let live = match (config.live, &config.mode) {
        (Some(addr), Mode::Run | Mode::Attach(_) | Mode::Stop(_)) => {
            Some(serve_dashboard(addr, &board).await?)
        }
        _ => None,
    };
    let outcome = match &config.mode {
        Mode::Run => run::bench(&config, &board, &mut interrupts).await,
        Mode::Check => check(&config).await,
        Mode::Attach(dir) => attach::attach(&config, dir, false, &board, &mut interrupts).await,
        Mode::Stop(dir) => attach::attach(&config, dir, true, &board, &mut interrupts).await,
    };
    if let Some(stop) = live {
        board.finished(outcome.as_ref().ok().and_then(|o| o.report.as_deref()));
        // The run's own interrupt handling is over: from now on a signal ends the page.
        listener.abort();
        eprintln!("the live page stays up until Ctrl+C");
        signal_after_run().await;
        let _ = stop.send(());
    }
    trace::mark(|| "master ends".into());
    outcome
}

/// Binds the dashboard, prints its URL and serves `board` until the sender is used or dropped.
async fn serve_dashboard(
    addr: std::net::SocketAddr,
    board: &dashboard::Board,
) -> Result<tokio::sync::oneshot::Sender<()>, MasterError> {
    let dashboard = dashboard::Dashboard::bind(addr).await?;
    eprintln!("live dashboard: {}", dashboard.url());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(dashboard.serve(board.clone(), async move {
        let _ = stopped.await;
    }));
    Ok(stop)
}

/// Resolves on SIGINT or SIGTERM (never when they cannot be listened for).
async fn signal_after_run() {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut int), Ok(mut term)) = (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    ) else {
        return std::future::pending().await;
    };
    tokio::select! {
        // Ctrl+C.
        _ = int.recv() => {}
        // Asked to end.
        _ = term.recv() => {}
    }
}

/// `--check`: one line per host; fails when a host cannot be reached.
async fn check(config: &Config) -> Result<Outcome, MasterError> {
    let ssh = Arc::new(config.ssh.clone());
    let cluster = deploy::Cluster::new(&config.nodes, &ssh);
    let parallel = Arc::new(Semaphore::new(config.parallel));
    let reports = deploy::check(
        &cluster,
        &config.node_workdir,
        config.bench_node.as_deref(),
        &parallel,
    )
    .await;
    let mut failed = Vec::new();
    for r in &reports {
        println!("{}", deploy::check_line(r));
        if let Err(e) = &r.facts {
            failed.push(crate::report::FailedNode {
                name: r.host.clone(),
                host: r.host.clone(),
                reason: e.to_string(),
                stderr_tail: String::new(),
            });
        }
    }
    println!(
        "{} of {} hosts reachable ({} nodes)",
        reports.len() - failed.len(),
        reports.len(),
        cluster.nodes.len()
    );
    Ok(Outcome {
        run_dir: PathBuf::new(),
        report: None,
        detached: false,
        failed,
        thresholds_failed: 0,
    })
}

/// Resolves on SIGTERM (stop) or SIGINT: on a terminal the user is asked "(s)top or
/// (d)etach", elsewhere it means stop.
pub async fn interrupted() -> Interrupt {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut int), Ok(mut term)) = (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    ) else {
        return std::future::pending().await;
    };
    tokio::select! {
        _ = term.recv() => Interrupt::Stop,
        _ = int.recv() => {
            if !std::io::stdin().is_terminal() {
                return Interrupt::Stop;
            }
            eprint!("\n(s)top or (d)etach? ");
            let mut line = String::new();
            let mut stdin = tokio::io::BufReader::new(tokio::io::stdin());
            tokio::select! {
                _ = stdin.read_line(&mut line) => {}
                // A second Ctrl+C while asking: stop.
                _ = int.recv() => return Interrupt::Stop,
            }
            if line.trim_start().starts_with(['d', 'D']) {
                Interrupt::Detach
            } else {
                Interrupt::Stop
            }
        }
    }
}

/// Runs futures concurrently and returns their outputs in order.
pub async fn join_all<F: Future>(futures: impl IntoIterator<Item = F>) -> Vec<F::Output> {
    let mut pending: Vec<_> = futures.into_iter().map(Box::pin).collect();
    let mut out: Vec<Option<F::Output>> = pending.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut all = true;
        for (f, slot) in pending.iter_mut().zip(out.iter_mut()) {
            if slot.is_none() {
                match f.as_mut().poll(cx) {
                    std::task::Poll::Ready(v) => *slot = Some(v),
                    std::task::Poll::Pending => all = false,
                }
            }
        }
        if all {
            std::task::Poll::Ready(())
        } else {
            std::task::Poll::Pending
        }
    })
    .await;
    out.into_iter()
        .map(|v| v.expect("every future finished"))
        .collect()
}
