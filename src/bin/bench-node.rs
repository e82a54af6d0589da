//! `bench-node`: one node's load (`run`), a test's plan (`check`), the built-in target (`target`).
//! Exit codes: 0 done, 1 failed, 2 bad input, 130 interrupted (the result is still written).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use benchmaster::engine::{self, target::Target, ProgressMode, RunConfig};
use benchmaster::node::{self, control::Control};
use benchmaster::result::NodeInfo;
use benchmaster::test_def::{self, Overrides};
use clap::{Parser, Subcommand, ValueEnum};

#[derive(Parser)]
#[command(name = "bench-node", version, about = "One node of a Bench Master run")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a bench and write its result XML.
    Run(RunArgs),
    /// Validate a test definition and print its plan.
    Check { test: PathBuf },
    /// Run the nodes in DIRS with their stdio carried over this one (used by bench-master:
    /// one SSH channel for all the nodes of a host).
    #[command(hide = true)]
    Mux { dirs: Vec<String> },
    /// Serve the built-in HTTP target (`?delay_ms=N`, `?status=N`, `?bytes=N`, `?close=1`).
    Target {
        #[arg(long, default_value = "127.0.0.1:8099")]
        listen: SocketAddr,
        /// Close keep-alive connections idle for longer than this, e.g. `5s` or `300ms`
        /// (default: keep them open).
        #[arg(long, value_parser = humantime::parse_duration)]
        idle_timeout: Option<Duration>,
    },
}

#[derive(clap::Args)]
struct RunArgs {
    /// The test definition (TOML).
    test: PathBuf,
    /// Users per cycle, e.g. `5:10:20` (overrides [bench] cycles).
    #[arg(short = 'c', long)]
    cycles: Option<String>,
    /// Open model: test executions started per second, per cycle, e.g. `100:200:400`
    /// (overrides [bench] cycles and rate).
    #[arg(short = 'r', long, conflicts_with = "cycles")]
    rate: Option<String>,
    /// Seconds per cycle (overrides [bench] duration).
    #[arg(short = 'D', long)]
    duration: Option<f64>,
    /// Base URL (overrides [test] url).
    #[arg(short = 'u', long)]
    url: Option<String>,
    /// Where the result XML goes.
    #[arg(short = 'o', long, default_value = "result.xml")]
    output: PathBuf,
    /// This node's configuration, written by bench-master.
    #[arg(long)]
    node: Option<PathBuf>,
    #[arg(long, value_enum, default_value_t = Progress::Human)]
    progress: Progress,
    /// Print `ready`, then wait for `start` on stdin; stop when stdin closes (unless `detach`).
    #[arg(long)]
    wait_start: bool,
    /// Write this process's id here.
    #[arg(long)]
    pid_file: Option<PathBuf>,
    /// Worker threads (default: one per core).
    #[arg(long)]
    workers: Option<usize>,
}

#[derive(Clone, Copy, ValueEnum)]
enum Progress {
    Human,
    Json,
    None,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let outcome = runtime.block_on(dispatch(cli));
    // Do not wait for the blocking stdin reader: it only ends with the master's pipe.
    runtime.shutdown_background();
    match outcome {
        Ok(code) => code,
        Err((code, e)) => {
            eprintln!("bench-node: {e:#}");
            ExitCode::from(code)
        }
    }
}

async fn dispatch(cli: Cli) -> Result<ExitCode, (u8, anyhow::Error)> {
    let bad = |e: anyhow::Error| (2, e);
    match cli.command {
        Command::Check { test } => {
            let plan = test_def::load(&test, &Overrides::default()).map_err(|e| bad(e.into()))?;
            println!("{}", plan.describe());
            Ok(ExitCode::SUCCESS)
        }
        Command::Mux { dirs } => {
            let exe = std::env::current_exe().map_err(|e| (1, e.into()))?;
            node::mux::serve(&exe, &dirs).await;
            Ok(ExitCode::SUCCESS)
        }
        Command::Target {
            listen,
            idle_timeout,
        } => {
            let (mut target, listener) = Target::bind(listen)
                .await
                .map_err(|e| (1, anyhow::anyhow!("cannot listen on {listen}: {e}")))?;
            target.idle_timeout = idle_timeout;
            eprintln!("bench-node target listening on http://{}", target.addr);
            target
                .serve(listener, None, async {
                    let _ = tokio::signal::ctrl_c().await;
                })
                .await;
            Ok(ExitCode::SUCCESS)
        }
        Command::Run(args) => {
            let (node, mut overrides) = match &args.node {
                Some(path) => {
                    let n = test_def::load_node_config(path).map_err(|e| bad(e.into()))?;
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
            if let Some(c) = &args.cycles {
                overrides.rates = None;
                overrides.cycles = Some(
                    test_def::parse_cycles(c).map_err(|e| bad(anyhow::anyhow!("-c {c}: {e}")))?,
                );
            }
            if let Some(r) = &args.rate {
                overrides.cycles = None;
                overrides.rates = Some(
                    test_def::parse_cycles(r).map_err(|e| bad(anyhow::anyhow!("-r {r}: {e}")))?,
                );
            }
            if let Some(d) = args.duration {
                if !(d.is_finite() && d > 0.0) {
                    return Err(bad(anyhow::anyhow!(
                        "-D {d}: the duration must be a positive number of seconds"
                    )));
                }
                overrides.duration = Some(Duration::from_secs_f64(d));
            }
            overrides.url = args.url.clone().or(overrides.url);
            let plan = test_def::load(&args.test, &overrides).map_err(|e| bad(e.into()))?;
            let most_users = match plan.bench.model {
                test_def::LoadModel::Closed => plan.bench.cycles.iter().copied().max().unwrap_or(1),
                test_def::LoadModel::Open { max_users } => max_users,
            };
            if let Some(note) = node::limits::raise_open_files(most_users.into()) {
                eprintln!("bench-node: {note}");
            }
            if let Some(pid_file) = &args.pid_file {
                std::fs::write(pid_file, format!("{}\n", std::process::id())).map_err(|e| {
                    (
                        1,
                        anyhow::anyhow!("cannot write {}: {e}", pid_file.display()),
                    )
                })?;
            }
            let config = RunConfig {
                plan,
                node,
                output: args.output,
                progress: match args.progress {
                    Progress::Human => ProgressMode::Human,
                    Progress::Json => ProgressMode::Json,
                    Progress::None => ProgressMode::None,
                },
                workers: args
                    .workers
                    .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get())),
            };
            let control = Control::spawn(args.wait_start).map_err(|e| (1, e.into()))?;
            let outcome = engine::run(config, control.started(), control.stopped())
                .await
                .map_err(|e| (1, e.into()))?;
            if outcome.interrupted {
                eprintln!(
                    "bench-node: interrupted ({}); what was measured is in {}",
                    control.reason().unwrap_or_default(),
                    outcome.output.display()
                );
                return Ok(ExitCode::from(130));
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}
