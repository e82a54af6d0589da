//! `bench-node`'s command line and what each subcommand does: `run` (one node's load),
//! `check` (a test's plan), `import` (a test from a HAR), `target` (the built-in HTTP server) and `mux` (the nodes of a host
//! over one channel). The binary parses, builds the runtime and maps [`NodeError`] to its exit
//! code: 0 done, 1 failed, 2 bad input, 4 a threshold failed (`run` alone), 130 interrupted (the
//! result is still written).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, Subcommand, ValueEnum};

use super::control::Control;
use crate::args::{DocArgs, FlagError, RunArgs};
use crate::engine::{self, target::Target, EngineError, NodeLine, ProgressMode, Relay, RunConfig};
use crate::result::NodeInfo;
use crate::test_def::{self, Overrides, TestDefError};

/// bench-node's flags.
#[derive(Debug, Parser)]
#[command(
    name = "bench-node",
    version = crate::NODE_VERSION,
    about = "One node of a Bench Master run",
    args_conflicts_with_subcommands = true,
    after_help = "Exit codes: 0 done, 1 failed, 2 bad input, 4 a threshold of the test failed \
                  (`run` without --node: judged on this node's result), 130 interrupted."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    #[command(flatten)]
    pub docs: DocArgs,
}

/// What bench-node is asked to do.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a bench and write its result XML.
    #[command(
        after_help = "Exit codes: 0 done, 1 failed, 2 bad input, 4 a threshold of the \
                            test failed (without --node: judged on this node's result), 130 \
                            interrupted (the result is still written)."
    )]
    Run(Box<NodeRunArgs>),
    /// Validate a test definition (`[[step]]`s, `[[scenario]]`s or a `[generator]`) and print
    /// its plan: scenarios and their weights, data files
    /// (read through: row count and first row), steps and thresholds.
    #[command(
        after_help = "Exit codes: 0 valid, 2 invalid (the file, line and key are named; for a \
                      bad data file, its line and column)."
    )]
    Check { test: PathBuf },
    /// Make a test from a browser's HAR export: one step per document, XHR or form request,
    /// the recorded gaps as think time; static resources listed in a comment.
    #[command(after_help = "Exit codes: 0 written, 2 not a HAR file (its line and column named).")]
    Import {
        /// The HAR file (Chromium, Firefox: "Save all as HAR").
        har: PathBuf,
        /// Write the test here instead of standard output.
        #[arg(short = 'o', long)]
        output: Option<PathBuf>,
        /// Make steps of static resources (stylesheets, scripts, images) too.
        #[arg(long)]
        keep_resources: bool,
    },
    /// Run the nodes in DIRS with their stdio carried over this one (used by bench-master:
    /// one SSH channel for all the nodes of a host).
    #[command(hide = true)]
    Mux { dirs: Vec<String> },
    /// Serve the built-in HTTP target (`?delay_ms=N`, `?status=N`, `?bytes=N`, `?close=1`,
    /// an object store at `/objects/KEY`: PUT, GET, DELETE, a page for a browser at `/__shop`).
    Target {
        #[arg(long, default_value = "127.0.0.1:8099")]
        listen: SocketAddr,
        /// Close keep-alive connections idle for longer than this, e.g. `5s` or `300ms`
        /// (default: keep them open).
        #[arg(long, value_parser = humantime::parse_duration)]
        idle_timeout: Option<Duration>,
    },
}

/// `bench-node run`'s flags.
#[derive(Debug, clap::Args)]
pub struct NodeRunArgs {
    /// The test definition (TOML).
    pub test: PathBuf,
    #[command(flatten)]
    pub run: RunArgs,
    /// Where the result XML goes.
    #[arg(short = 'o', long, default_value = "result.xml")]
    pub output: PathBuf,
    /// This node's configuration, written by bench-master.
    #[arg(long)]
    pub node: Option<PathBuf>,
    #[arg(long, value_enum, default_value_t = Progress::Human)]
    pub progress: Progress,
    /// Print `ready`, then wait for `start` on stdin; stop when stdin closes (unless `detach`).
    #[arg(long)]
    pub wait_start: bool,
    /// Write this process's id here.
    #[arg(long)]
    pub pid_file: Option<PathBuf>,
    /// Also keep every progress line, as JSON, in this file (bench-master's nodes keep one in
    /// their directory, for `--attach`; emptied past 16 MiB).
    #[arg(long)]
    pub progress_log: Option<PathBuf>,
    /// Worker threads (default: one per core; never more than the test's peak users).
    #[arg(long)]
    pub workers: Option<usize>,
}

/// How `run` reports its progress.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Progress {
    Human,
    Json,
    None,
}

/// Why bench-node failed; [`NodeError::exit_code`] says how it exits.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    /// The test or the node's configuration is invalid.
    #[error(transparent)]
    Test(#[from] TestDefError),
    /// A run flag is invalid.
    #[error(transparent)]
    Flag(#[from] FlagError),
    #[error("cannot listen on {addr}: {error}")]
    Listen {
        addr: SocketAddr,
        error: std::io::Error,
    },
    #[error("cannot write {}: {error}", path.display())]
    PidFile {
        path: PathBuf,
        error: std::io::Error,
    },
    /// This process could not set itself up (its own path, signal handlers).
    #[error(transparent)]
    Process(#[from] std::io::Error),
    #[error(transparent)]
    Engine(#[from] EngineError),
    /// A HAR file that cannot be imported.
    #[error(transparent)]
    Har(#[from] crate::har::HarError),
    /// An `--export` sink could not be set up.
    #[error(transparent)]
    Export(#[from] crate::export::ExportError),
    /// The result could not be read back to judge its thresholds.
    #[error(transparent)]
    Report(#[from] crate::report::ReportError),
}

impl NodeError {
    /// 2 for bad input, 1 for anything else.
    pub fn exit_code(&self) -> u8 {
        match self {
            NodeError::Test(_) | NodeError::Flag(_) | NodeError::Har(_) => 2,
            _ => 1,
        }
    }
}

/// Does what `command` asks; returns the exit code of a run that ended (0, or 130 when it was
/// interrupted).
pub async fn run(command: Command) -> Result<u8, NodeError> {
    match command {
        Command::Check { test } => {
            let plan = test_def::load(&test, &Overrides::default())?;
            crate::print_stdout(&format!("{}\n", plan.describe()));
            Ok(0)
        }
        Command::Import {
            har,
            output,
            keep_resources,
        } => {
            let text = crate::har::import_file(&har, keep_resources)?;
            match output {
                Some(path) => std::fs::write(&path, text)?,
                None => crate::print_stdout(&text),
            }
            Ok(0)
        }
        Command::Mux { dirs } => {
            super::mux::serve(&dirs).await;
            Ok(0)
        }
        Command::Target {
            listen,
            idle_timeout,
        } => target(listen, idle_timeout).await,
        Command::Run(args) => {
            let control = Control::spawn(args.wait_start)?;
            bench(*args, control, None).await
        }
    }
}

/// Serves the built-in target until Ctrl+C.
async fn target(listen: SocketAddr, idle_timeout: Option<Duration>) -> Result<u8, NodeError> {
    let (mut target, listener) = Target::bind(listen)
        .await
        .map_err(|error| NodeError::Listen {
            addr: listen,
            error,
        })?;
    target.idle_timeout = idle_timeout;
    eprintln!("bench-node target listening on http://{}", target.addr);
    target
        .serve(listener, None, async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await;
    Ok(0)
}

/// Says a node's words for people: on stderr, or as its stderr lines through its mux.
fn say(relay: Option<&Relay>, text: &str) {
    match relay {
        Some(relay) => {
            for line in text.lines() {
                let _ = relay.send(NodeLine::Err(line.to_string()));
            }
        }
        None => eprintln!("{text}"),
    }
}

/// Runs one node's bench, started and stopped by `control`, and writes its result. With
/// `relay`, the node runs inside a mux: its lines go there instead of this process's stdio.
pub async fn bench(
    args: NodeRunArgs,
    control: Control,
    relay: Option<Relay>,
) -> Result<u8, NodeError> {
    let relay = relay.as_ref();
    let mut config = run_config(args.node.as_ref(), &args)?;
    config.relay = relay.cloned();
    config.exporter = crate::export::Exporter::start(&args.run.exports()?).await?;
    let most_users = config.plan.bench.peak_users().max(1);
    if let Some(note) = super::limits::raise_open_files(most_users.into()) {
        say(relay, &format!("bench-node: {note}"));
    }
    if let Some(path) = &args.pid_file {
        std::fs::write(path, format!("{}\n", std::process::id())).map_err(|error| {
            NodeError::PidFile {
                path: path.clone(),
                error,
            }
        })?;
    }
    // Alone, the node judges its own result; under a master, the master judges the merged one.
    let judge = args.node.is_none() && !config.plan.thresholds.is_empty();
    let outcome = engine::run(config, control.started(), control.stopped()).await?;
    for t in outcome.exports.iter().filter(|t| t.dropped > 0) {
        say(
            relay,
            &format!(
                "bench-node: export {}: {} intervals sent, {} dropped (the sink was down or slow)",
                t.sink, t.sent, t.dropped
            ),
        );
    }
    if let Some(stop) = outcome.stopped_by {
        say(relay, &format!("bench-node: stopped: threshold {stop}"));
        return judge_alone(&outcome.output, Some(stop));
    }
    if outcome.interrupted {
        say(
            relay,
            &format!(
                "bench-node: interrupted ({}); what was measured is in {}",
                control.reason().unwrap_or_default(),
                outcome.output.display()
            ),
        );
        return Ok(130);
    }
    if judge {
        return judge_alone(&outcome.output, None);
    }
    Ok(0)
}

/// `bench-node run` alone: the test's thresholds judged on this node's result, and the one
/// that stopped the run live, if one did.
fn judge_alone(
    result: &std::path::Path,
    stopped_by: Option<crate::report::threshold::LiveStop>,
) -> Result<u8, NodeError> {
    use crate::report::ci::{self, CiFiles, Show};
    let results = [result.to_path_buf()];
    let judged = ci::judge(
        &results,
        None,
        Show::Verdict,
        &CiFiles::default(),
        &crate::report::ReportOptions {
            stopped_by,
            ..Default::default()
        },
    )?;
    eprint!("{}", judged.output);
    Ok(if judged.failed_thresholds > 0 {
        ci::EXIT_THRESHOLD_FAILED
    } else {
        0
    })
}

/// The engine's configuration: the node's file (`--node`), then the flags over it.
fn run_config(node_file: Option<&PathBuf>, args: &NodeRunArgs) -> Result<RunConfig, NodeError> {
    let (node, base) = match node_file {
        Some(path) => {
            let n = test_def::load_node_config(path)?;
            let node = NodeInfo {
                number: n.number,
                count: n.count,
                host: n.host,
                run: n.run,
                start_delay_ms: 0.0,
            };
            (node, n.overrides)
        }
        None => (
            NodeInfo {
                count: 1,
                ..NodeInfo::default()
            },
            Overrides::default(),
        ),
    };
    let overrides = Overrides::try_from(args.run.clone())?.over(base);
    Ok(RunConfig {
        plan: test_def::load(&args.test, &overrides)?,
        node,
        output: args.output.clone(),
        progress: match args.progress {
            Progress::Human => ProgressMode::Human,
            Progress::Json => ProgressMode::Json,
            Progress::None => ProgressMode::None,
        },
        progress_log: args.progress_log.clone(),
        relay: None,
        workers: args
            .workers
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get())),
        // Alone, the node stops itself on a live threshold; under a master, the master does.
        live_abort: node_file.is_none(),
        // Opened once the plan is known good (a Prometheus endpoint binds its port).
        exporter: crate::export::Exporter::default(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run_args(extra: &[&str]) -> NodeRunArgs {
        let mut argv = vec!["bench-node", "run", "t.toml"];
        argv.extend_from_slice(extra);
        match Cli::try_parse_from(argv).unwrap().command {
            Some(Command::Run(args)) => *args,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn run_flags_are_the_masters() {
        let o = Overrides::try_from(run_args(&["-c", "5:10", "-D", "5m"]).run).unwrap();
        assert_eq!(o.cycles, Some(vec![5, 10]));
        assert_eq!(o.duration, Some(Duration::from_secs(300)));
        let o = Overrides::try_from(run_args(&["-r", "5,10", "-D", "90s"]).run).unwrap();
        assert_eq!(o.rates, Some(vec![5, 10]));
        assert_eq!(o.duration, Some(Duration::from_secs(90)));
        assert!(Cli::try_parse_from(["bench-node", "run", "t", "-c", "1", "-r", "1"]).is_err());
    }

    #[test]
    fn flags_win_over_the_node_file() {
        let file = Overrides {
            cycles: Some(vec![4]),
            duration: Some(Duration::from_secs(9)),
            url: Some("http://file.test".parse().unwrap()),
            ..Overrides::default()
        };
        let flags = Overrides {
            rates: Some(vec![50]),
            ..Overrides::default()
        };
        let o = flags.over(file.clone());
        assert_eq!(o.cycles, None);
        assert_eq!(o.rates, Some(vec![50]));
        assert_eq!(o.duration, file.duration);
        assert_eq!(o.url, file.url);
        assert_eq!(Overrides::default().over(file.clone()), file);
    }
}
