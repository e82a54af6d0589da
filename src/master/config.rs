//! bench-master's flags (clap) and the validated [`Config`] the master runs with.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;

use super::ssh::SshOptions;
use crate::args::{DocArgs, FlagError, RunArgs};
use crate::export::ExportSink;
use crate::nodes::{self, Node, NodesError};
use crate::test_def::Overrides;

/// Raw command-line flags of `bench-master`.
#[derive(Debug, Parser)]
#[command(
    name = "bench-master",
    version,
    about = "Run a distributed HTTP bench on the nodes of NODES (pssh format; `local` runs a \
             local process), collect the results and build the report.",
    after_help = "Exit codes: 0 done (every threshold passed), 1 error, 2 bad usage, 3 nodes \
                  failed (wins over 4), 4 a threshold failed on the merged result."
)]
pub struct Args {
    /// Nodes file: `host[:port] [user]` per line, `local` for a local process.
    #[arg(required_unless_present_any = ["attach", "stop"])]
    pub nodes: Option<PathBuf>,
    /// Test definition (TOML).
    #[arg(required_unless_present_any = ["attach", "stop", "check"])]
    pub test: Option<PathBuf>,
    #[command(flatten)]
    pub run: RunArgs,
    /// Run name (default: date-time and test name). Runs of one name are grouped.
    #[arg(short = 'n', long = "name")]
    pub name: Option<String>,
    /// Master workspace.
    #[arg(short = 'w', long = "workdir", default_value = "bench-output")]
    pub workdir: PathBuf,
    /// Node workspace (on every node).
    #[arg(short = 'x', long = "node-workdir", default_value = "/tmp/bench-node")]
    pub node_workdir: String,
    /// bench-node already installed on the nodes at PATH (nothing is uploaded).
    #[arg(short = 's', long = "bench-node", value_name = "PATH")]
    pub bench_node: Option<String>,
    /// Use only the first N nodes of the file.
    #[arg(long)]
    pub num_nodes: Option<usize>,
    /// Start once N nodes are ready (default: all); the others are reported missing.
    #[arg(long)]
    pub min_nodes: Option<usize>,
    /// ssh configuration file (passed to ssh as `-F`).
    #[arg(long, value_name = "FILE")]
    pub ssh_config: Option<PathBuf>,
    /// SSH operations at once.
    #[arg(long, default_value_t = 32)]
    pub parallel: usize,
    /// SSH connect timeout, seconds.
    #[arg(long, value_name = "S", default_value_t = 10)]
    pub connect_timeout: u64,
    /// Accept and record unknown host keys (otherwise they are refused).
    #[arg(long)]
    pub accept_new_host_keys: bool,
    /// Cluster preflight: reach every node and report what it offers; runs nothing.
    #[arg(long, conflicts_with_all = ["attach", "stop"])]
    pub check: bool,
    /// Follow a detached run again, then collect and report it.
    #[arg(long, value_name = "RUN_DIR", conflicts_with = "stop")]
    pub attach: Option<PathBuf>,
    /// Stop a detached run, then collect and report what it measured.
    #[arg(long, value_name = "RUN_DIR")]
    pub stop: Option<PathBuf>,
    /// More output.
    #[arg(short = 'v', long)]
    pub verbose: bool,
    /// Serve a live dashboard of the run at ADDR (`--live` alone: 127.0.0.1:0, a free
    /// loopback port; `--live=0.0.0.0:8089` to reach it from elsewhere): the URL, with its
    /// random token, is printed; the page stays up until Ctrl+C after the run.
    #[arg(
        long,
        value_name = "ADDR",
        num_args = 0..=1,
        require_equals = true,
        default_missing_value = "127.0.0.1:0",
        conflicts_with = "check"
    )]
    pub live: Option<String>,
    #[command(flatten)]
    pub docs: DocArgs,
}

/// What the master is asked to do.
#[derive(Debug, Clone)]
pub enum Mode {
    /// Deploy, run, collect, report.
    Run,
    /// Preflight only.
    Check,
    /// Follow the detached run in this directory.
    Attach(PathBuf),
    /// Stop the detached run in this directory.
    Stop(PathBuf),
}

/// A validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub mode: Mode,
    /// The nodes to use (after `--num-nodes`); empty for attach and stop.
    pub nodes: Vec<Node>,
    /// Test definition file.
    pub test: Option<PathBuf>,
    /// Cycles, duration and URL given on the command line.
    pub overrides: Overrides,
    pub name: Option<String>,
    pub workdir: PathBuf,
    /// Node workspace, as a path on the nodes.
    pub node_workdir: String,
    /// Installed bench-node on the nodes (`-s`); `None` = deploy the master's own.
    pub bench_node: Option<String>,
    /// Nodes that must be ready for the run to start.
    pub min_nodes: usize,
    /// SSH operations at once.
    pub parallel: usize,
    pub ssh: SshOptions,
    pub verbose: bool,
    /// Where the live dashboard listens (`--live`); `None` without one.
    pub live: Option<SocketAddr>,
    /// Where each second's cluster and node numbers are sent (`--export`).
    pub exports: Vec<ExportSink>,
}

/// Flags that do not make a valid configuration.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error(transparent)]
    Nodes(#[from] NodesError),
    #[error(transparent)]
    Flag(#[from] FlagError),
    #[error("{flag} must be at least 1")]
    Zero { flag: &'static str },
    #[error("--min-nodes {min} is more than the {count} nodes in use")]
    MinNodes { min: usize, count: usize },
    #[error("-n {0:?}: a run name may not be empty, `.`, `..` or hold `/`")]
    Name(String),
    #[error("--live `{0}`: expected an address and port such as 127.0.0.1:8089")]
    Live(String),
}

impl TryFrom<Args> for Config {
    type Error = ConfigError;

    fn try_from(a: Args) -> Result<Config, ConfigError> {
        let mode = match (&a.attach, &a.stop, a.check) {
            (Some(dir), _, _) => Mode::Attach(dir.clone()),
            (_, Some(dir), _) => Mode::Stop(dir.clone()),
            (_, _, true) => Mode::Check,
            _ => Mode::Run,
        };
        let mut nodes = match &a.nodes {
            Some(path) if matches!(mode, Mode::Run | Mode::Check) => nodes::load(path)?,
            _ => Vec::new(),
        };
        if let Some(n) = a.num_nodes {
            if n == 0 {
                return Err(ConfigError::Zero {
                    flag: "--num-nodes",
                });
            }
            nodes.truncate(n);
        }
        let min_nodes = a.min_nodes.unwrap_or(nodes.len());
        if min_nodes > nodes.len() && matches!(mode, Mode::Run) {
            return Err(ConfigError::MinNodes {
                min: min_nodes,
                count: nodes.len(),
            });
        }
        if a.min_nodes == Some(0) {
            return Err(ConfigError::Zero {
                flag: "--min-nodes",
            });
        }
        if a.parallel == 0 {
            return Err(ConfigError::Zero { flag: "--parallel" });
        }
        if let Some(name) = &a.name {
            if name.is_empty() || name == "." || name == ".." || name.contains('/') {
                return Err(ConfigError::Name(name.clone()));
            }
        }
        let live = a
            .live
            .map(|v| v.parse().map_err(|_| ConfigError::Live(v)))
            .transpose()?;
        let exports = a.run.exports()?;
        let overrides = Overrides::try_from(a.run)?;
        Ok(Config {
            mode,
            nodes,
            test: a.test,
            overrides,
            name: a.name,
            workdir: a.workdir,
            node_workdir: a.node_workdir,
            bench_node: a.bench_node,
            min_nodes,
            parallel: a.parallel,
            ssh: SshOptions {
                config_file: a.ssh_config,
                connect_timeout: Duration::from_secs(a.connect_timeout.max(1)),
                accept_new_host_keys: a.accept_new_host_keys,
                ..SshOptions::default()
            },
            verbose: a.verbose,
            live,
            exports,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cycles_and_durations() {
        let parse = |c: &str, d: &str| {
            let (c, d) = (format!("--cycles={c}"), format!("--duration={d}"));
            let a = Args::try_parse_from(["bench-master", "--check", "n", &c, &d])?;
            Ok::<_, clap::Error>(Overrides::try_from(a.run))
        };
        let o = parse("10:20:30", "3").unwrap().unwrap();
        assert_eq!(o.cycles, Some(vec![10, 20, 30]));
        assert_eq!(o.duration, Some(Duration::from_secs(3)));
        // `,` separates cycles as well as `:`, as for bench-node.
        assert_eq!(
            parse("5,10", "1.5").unwrap().unwrap().cycles,
            Some(vec![5, 10])
        );
        assert_eq!(
            parse("1", "2m").unwrap().unwrap().duration,
            Some(Duration::from_secs(120))
        );
        assert!(parse("10::30", "1").unwrap().is_err());
        assert!(parse("0", "1").unwrap().is_err());
        assert!(parse("1", "-1").unwrap().is_err());
        assert!(parse("1", "soon").unwrap().is_err());
    }

    #[test]
    fn flags_validate() {
        let args = |extra: &[&str]| {
            let mut v = vec!["bench-master"];
            v.extend_from_slice(extra);
            Args::try_parse_from(v)
        };
        let dir = tempfile::tempdir().unwrap();
        let nodes = dir.path().join("nodes");
        std::fs::write(&nodes, "local\nlocal\nlocal\n").unwrap();
        let n = nodes.to_str().unwrap();
        let c = Config::try_from(args(&[n, "t.toml", "--num-nodes", "2", "-c", "1:2"]).unwrap())
            .unwrap();
        assert_eq!(c.nodes.len(), 2);
        assert_eq!(c.min_nodes, 2);
        assert_eq!(c.overrides.cycles, Some(vec![1, 2]));
        let c = Config::try_from(args(&[n, "t.toml", "-r", "100:200"]).unwrap()).unwrap();
        assert_eq!(c.overrides.rates, Some(vec![100, 200]));
        assert_eq!(c.overrides.cycles, None);
        assert!(args(&[n, "t", "-r", "1", "-c", "1"]).is_err());
        assert!(matches!(
            Config::try_from(args(&[n, "t", "-r", "10:0"]).unwrap()),
            Err(ConfigError::Flag(FlagError { flag: "-r", .. }))
        ));
        assert!(Config::try_from(args(&[n, "t", "--min-nodes", "4"]).unwrap()).is_err());
        assert!(Config::try_from(args(&[n, "t", "-n", "a/b"]).unwrap()).is_err());
        assert!(matches!(
            Config::try_from(args(&["--attach", "x"]).unwrap())
                .unwrap()
                .mode,
            Mode::Attach(_)
        ));
        assert!(args(&[n]).is_err());
        let live = |extra: &[&str]| {
            let mut v = vec![n, "t"];
            v.extend_from_slice(extra);
            Config::try_from(args(&v).unwrap()).map(|c| c.live)
        };
        assert_eq!(live(&[]).unwrap(), None);
        assert_eq!(
            live(&["--live"]).unwrap(),
            Some("127.0.0.1:0".parse().unwrap())
        );
        assert_eq!(
            live(&["--live=0.0.0.0:8089"]).unwrap(),
            Some("0.0.0.0:8089".parse().unwrap())
        );
        assert!(matches!(live(&["--live=here"]), Err(ConfigError::Live(_))));
        assert!(Config::try_from(args(&[n, "--check"]).unwrap()).is_ok());
    }
}
