//! Deploy: reach every host in parallel (bounded by `--parallel`), make sure it has this very
//! bench-node (uploading the master's own when the architecture matches), and copy each node's
//! test, its files and its `node.toml` into `<x>/<run>/node<N>/`. On an SSH host one remote
//! command does it all once bench-node is there: it checks the version and starts the host's
//! mux, which receives the files and runs the nodes (and brings their results back): every
//! remote command starts the user's login shell and its rc files, the largest cost of a host.
//! Also `--check`, the cluster preflight.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use tokio::io::{AsyncReadExt, BufReader};
use tokio::sync::Semaphore;

use super::local::LocalHost;
use super::mux::{self, NodeFile};
use super::ssh::SshOptions;
use super::transport::{
    self, batches, display_argv, exec_ok, host_facts, parse_facts, put_file, HostFacts, Process,
    Transport, TransportError, FACTS_SCRIPT,
};
use crate::nodes::{Node, NodeHost};
use crate::protocol::lines::{read_line, Line, MAX_LINE};
use crate::test_def::{node_config_toml, NodeConfig, Overrides, TestPlan};

/// What `bench-node --version` prints for this build.
pub fn expected_version() -> String {
    format!("bench-node {}", crate::NODE_VERSION)
}

/// Writes the nodes of one host, after [`FACTS_SCRIPT`] (whose `$1` is the bench-node to ask
/// for its version): the words after `$1` are pairs of a node directory and its node.toml, the
/// test comes on stdin. Constant: every value travels as an argument, never as shell text.
const NODES_SCRIPT: &str = r#"set -e
shift
first="$1"
mkdir -p -- "$first"
cat > "$first/test.toml"
while [ "$#" -ge 2 ]; do
  mkdir -p -- "$1"
  printf '%s\n' "$2" > "$1/node.toml"
  [ "$1" = "$first" ] || cp -- "$first/test.toml" "$1/test.toml"
  shift 2
done"#;

/// Writes stdin to `<dir>/$1` for every node directory after `$1` (a file the test refers to):
/// once per host, then hard-linked into the other node directories (copied where links cannot
/// be made), so that a 100 MB data file takes one transfer and one copy on disk per host.
const FANOUT_SCRIPT: &str = r#"set -e
r="$1"
shift
first="$1"
for d; do mkdir -p -- "$(dirname -- "$d/$r")"; done
cat > "$first/$r"
for d; do
  [ "$d" = "$first" ] || ln -f -- "$first/$r" "$d/$r" 2>/dev/null || cp -- "$first/$r" "$d/$r"
done"#;

/// On an SSH host: when `$1` is bench-node of version `$2`, says `mux` and becomes
/// `bench-node mux` for the node directories after `$2` (which receives their files on stdin);
/// otherwise goes on with [`FACTS_SCRIPT`] (its programs run only then). Constant: values
/// travel as arguments.
const MUX_SCRIPT: &str = r#"if [ "$("$1" --version 2>/dev/null)" = "$2" ]; then
  echo mux
  bench_node="$1"
  shift 2
  exec "$bench_node" mux -- "$@"
fi"#;

/// The line of [`MUX_SCRIPT`] after which the mux's frames follow.
const MUX_STARTED: &[u8] = b"mux\n";

/// A deploy that failed on a host or a node.
#[derive(Debug, thiserror::Error)]
pub enum DeployError {
    #[error(transparent)]
    Transport(#[from] TransportError),
    /// The node's architecture differs: the master's binary cannot run there.
    #[error(
        "{host}: bench-node is {found:?} and this machine's binary is for {local}, not {remote}: \
         install bench-node {version} there and pass -s PATH"
    )]
    Arch {
        host: String,
        found: String,
        local: String,
        remote: String,
        version: String,
    },
    /// `-s PATH` names no bench-node of this version.
    #[error("{host}: {path} is {found:?}, expected {expected:?} (check -s PATH)")]
    Version {
        host: String,
        path: String,
        found: String,
        expected: String,
    },
    /// bench-node could not be uploaded (on this host or another alias of its machine).
    #[error("{host}: uploading bench-node failed: {message}")]
    Upload { host: String, message: String },
    /// The deploy of the node's host failed (as reported for its first node).
    #[error("{0}")]
    Host(String),
    /// The master's own bench-node binary cannot be read.
    #[error("cannot read {}: {source} (build it with `cargo build --bin bench-node`)", path.display())]
    LocalBinary {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// The nodes of a run and the hosts they run on: one transport per physical host, shared by
/// all its virtual nodes.
pub struct Cluster {
    /// Distinct hosts, in order of first appearance.
    pub hosts: Vec<Arc<dyn Transport>>,
    /// The nodes, each with the index of its host in `hosts`.
    pub nodes: Vec<(Node, usize)>,
}

impl Cluster {
    /// Groups `nodes` by host.
    pub fn new(nodes: &[Node], ssh: &Arc<SshOptions>) -> Cluster {
        let mut index: HashMap<NodeHost, usize> = HashMap::new();
        let mut hosts: Vec<Arc<dyn Transport>> = Vec::new();
        let mut list = Vec::new();
        for node in nodes {
            let i = *index.entry(node.host.clone()).or_insert_with(|| {
                hosts.push(transport::for_host(&node.host, ssh));
                hosts.len() - 1
            });
            list.push((node.clone(), i));
        }
        Cluster { hosts, nodes: list }
    }

    /// The host of node `number`.
    pub fn host_of(&self, position: usize) -> &Arc<dyn Transport> {
        &self.hosts[self.nodes[position].1]
    }
}

/// Everything a deploy copies.
#[derive(Debug, Clone)]
pub struct DeployPlan {
    /// Run directory below the node workspace (`<name>/<stamp>`).
    pub run_id: String,
    /// Node workspace (`-x`).
    pub node_workdir: String,
    /// Installed bench-node (`-s`); `None` = deploy the master's own.
    pub bench_node: Option<String>,
    /// The test file's bytes.
    pub test: Bytes,
    /// Files the test names ([`test_files`]), relative to the test, with their bytes.
    pub files: Vec<(String, Bytes)>,
    /// Run name written into each node's configuration.
    pub run_name: String,
    pub overrides: Overrides,
}

/// A node ready to be started.
#[derive(Debug, Clone)]
pub struct DeployedNode {
    /// Node number.
    pub number: u32,
    /// Its directory on the host.
    pub dir: String,
    /// bench-node on the host.
    pub bench_node: String,
}

impl DeployedNode {
    /// The command that runs the node as a process of its own, waiting for the master's
    /// `start`; its pid is kept in its directory's `pid` file.
    pub fn command(&self) -> Vec<String> {
        let mut argv = vec![self.bench_node.clone()];
        argv.extend(crate::protocol::mux::node_args(&self.dir));
        argv.extend(["--pid-file".to_string(), format!("{}/pid", self.dir)]);
        argv
    }
}

/// bench-node beside the running bench-master.
pub fn local_bench_node() -> PathBuf {
    let exe = std::env::current_exe().unwrap_or_default();
    exe.with_file_name("bench-node")
}

/// What a deploy did: one result per node, in order, and for each host (in the order of
/// [`Cluster::hosts`]) the processes of its nodes when its mux already runs them (an SSH host).
pub struct Deployed {
    pub nodes: Vec<Result<DeployedNode, DeployError>>,
    pub running: Vec<Option<Vec<Process>>>,
}

/// Deploys every node. Hosts are handled in parallel, at most `parallel` at once.
pub async fn deploy(cluster: &Cluster, plan: &DeployPlan, parallel: &Arc<Semaphore>) -> Deployed {
    let uploads = Uploads::default();
    let per_host = cluster.hosts.iter().enumerate().map(|(h, host)| {
        let nodes: Vec<&Node> = cluster
            .nodes
            .iter()
            .filter(|(_, i)| *i == h)
            .map(|(n, _)| n)
            .collect();
        let uploads = &uploads;
        let count = cluster.nodes.len();
        async move {
            let _permit = parallel.acquire().await.expect("semaphore never closed");
            let host = HostDeploy {
                host: host.as_ref(),
                nodes: &nodes,
                plan,
                count,
            };
            if host.host.is_local() {
                host.local(uploads).await.map(|n| (n, None))
            } else {
                host.ssh(uploads).await.map(|(n, p)| (n, Some(p)))
            }
        }
    });
    let results = super::join_all(per_host).await;
    let mut by_node: Vec<Option<Result<DeployedNode, DeployError>>> =
        (0..cluster.nodes.len()).map(|_| None).collect();
    let mut running = Vec::with_capacity(results.len());
    for (h, result) in results.into_iter().enumerate() {
        let positions = cluster
            .nodes
            .iter()
            .enumerate()
            .filter(|(_, (_, i))| *i == h)
            .map(|(p, _)| p);
        match result {
            Ok((nodes, processes)) => {
                for (p, node) in positions.zip(nodes) {
                    by_node[p] = Some(Ok(node));
                }
                running.push(processes);
            }
            Err(e) => {
                // The first node of the host keeps the typed error, the others its text.
                let text = e.to_string();
                let mut error = Some(e);
                for p in positions {
                    let e = error
                        .take()
                        .unwrap_or_else(|| DeployError::Host(text.clone()));
                    by_node[p] = Some(Err(e));
                }
                running.push(None);
            }
        }
    }
    let nodes = by_node
        .into_iter()
        .map(|r| r.expect("every node has a result"))
        .collect();
    Deployed { nodes, running }
}

/// The deploy of one host's nodes.
struct HostDeploy<'a> {
    host: &'a dyn Transport,
    nodes: &'a [&'a Node],
    plan: &'a DeployPlan,
    /// Nodes in the whole run.
    count: usize,
}

/// How [`HostDeploy::start_mux`] went.
enum MuxStart {
    /// The mux runs (the frames follow on its stdout).
    Started(Process),
    /// bench-node is missing or of another version: the host's facts.
    Refused(HostFacts),
}

impl HostDeploy<'_> {
    /// The node directories, in order.
    fn dirs(&self) -> Vec<String> {
        let plan = self.plan;
        self.nodes
            .iter()
            .map(|node| {
                format!(
                    "{}/{}/node{}",
                    plan.node_workdir.trim_end_matches('/'),
                    plan.run_id,
                    node.number
                )
            })
            .collect()
    }

    /// Each node's `node.toml`, in order.
    fn configs(&self) -> Vec<String> {
        self.nodes
            .iter()
            .map(|node| {
                node_config_toml(&NodeConfig {
                    number: node.number,
                    count: self.count as u32,
                    run: self.plan.run_name.clone(),
                    host: self.host.label().to_string(),
                    overrides: self.plan.overrides.clone(),
                })
            })
            .collect()
    }

    /// The nodes as deployed, run by `bench_node`.
    fn deployed(&self, dirs: Vec<String>, bench_node: &str) -> Vec<DeployedNode> {
        self.nodes
            .iter()
            .zip(dirs)
            .map(|(node, dir)| DeployedNode {
                number: node.number,
                dir,
                bench_node: bench_node.to_string(),
            })
            .collect()
    }

    /// An SSH host: one command checks bench-node and starts the mux, which receives the
    /// files and runs the nodes; when bench-node is missing or of another version, it is
    /// uploaded (or refused) and the mux started again. Returns the nodes and their processes.
    async fn ssh(
        &self,
        uploads: &Uploads,
    ) -> Result<(Vec<DeployedNode>, Vec<Process>), DeployError> {
        let (host, plan) = (self.host, self.plan);
        let dirs = self.dirs();
        let probe = bench_node_path(host, &plan.node_workdir, plan.bench_node.as_deref());
        let process = match self.start_mux(&probe, &dirs).await? {
            MuxStart::Started(process) => process,
            MuxStart::Refused(facts) => {
                let bench_node = ensure_bench_node(host, plan, &probe, facts, uploads).await?;
                match self.start_mux(&bench_node, &dirs).await? {
                    MuxStart::Started(process) => process,
                    MuxStart::Refused(facts) => {
                        return Err(DeployError::Version {
                            host: host.label().to_string(),
                            path: bench_node,
                            found: facts.version,
                            expected: expected_version(),
                        })
                    }
                }
            }
        };
        let mut files = vec![NodeFile {
            node: None,
            path: "test.toml".into(),
            bytes: plan.test.clone(),
        }];
        for (i, config) in self.configs().into_iter().enumerate() {
            files.push(NodeFile {
                node: Some(i),
                path: "node.toml".into(),
                bytes: Bytes::from(config),
            });
        }
        for (rel, bytes) in &plan.files {
            files.push(NodeFile {
                node: None,
                path: rel.clone(),
                bytes: bytes.clone(),
            });
        }
        let processes = mux::split(process, dirs.len(), &files);
        Ok((self.deployed(dirs, &probe), processes))
    }

    /// Runs [`MUX_SCRIPT`] and [`FACTS_SCRIPT`] with `bench_node` for `dirs`: the mux when
    /// that is bench-node of this version, the host's facts otherwise.
    async fn start_mux(&self, bench_node: &str, dirs: &[String]) -> Result<MuxStart, DeployError> {
        let script = format!("{MUX_SCRIPT}\n{FACTS_SCRIPT}");
        let mut argv = vec!["sh".to_string(), "-c".into(), script, "sh".into()];
        argv.push(bench_node.to_string());
        argv.push(expected_version());
        argv.extend(dirs.iter().cloned());
        let Process {
            stdin,
            stdout,
            mut stderr,
            exit,
            result,
        } = self.host.spawn(argv.clone()).await?;
        let mut out = BufReader::new(stdout);
        let (mut facts, mut line) = (String::new(), Vec::new());
        while let Ok(Line::Full) = read_line(&mut out, &mut line, MAX_LINE).await {
            if line == MUX_STARTED {
                super::trace::mark(|| format!("{}: mux started", self.host.label()));
                return Ok(MuxStart::Started(Process {
                    stdin,
                    stdout: Box::new(out),
                    stderr,
                    exit,
                    result,
                }));
            }
            facts.push_str(&String::from_utf8_lossy(&line));
        }
        drop(stdin);
        super::trace::mark(|| format!("{}: bench-node refused, facts", self.host.label()));
        let mut complaint = Vec::new();
        let _ = (&mut stderr)
            .take(64 * 1024)
            .read_to_end(&mut complaint)
            .await;
        let code = exit.await;
        if code != Some(0) {
            return Err(DeployError::Transport(TransportError::Failed {
                host: self.host.label().to_string(),
                command: display_argv(&argv),
                status: code.map_or("killed or disconnected".to_string(), |c| {
                    format!("exit {c}")
                }),
                stderr: String::from_utf8_lossy(&complaint).trim().to_string(),
            }));
        }
        Ok(MuxStart::Refused(parse_facts(&facts)))
    }

    /// The master's own machine: every node's directory, test and node.toml in as few
    /// commands as possible, one more per file the test refers to; the nodes run from
    /// bench-node beside bench-master.
    async fn local(&self, uploads: &Uploads) -> Result<Vec<DeployedNode>, DeployError> {
        let (host, plan) = (self.host, self.plan);
        let dirs = self.dirs();
        let mut pairs = Vec::with_capacity(2 * dirs.len());
        for (dir, config) in dirs.iter().zip(self.configs()) {
            pairs.push(dir.clone());
            pairs.push(config);
        }
        let probe = bench_node_path(host, &plan.node_workdir, plan.bench_node.as_deref());
        let mut facts = None;
        for chunk in batches(&pairs, 2) {
            let script = format!("{FACTS_SCRIPT}\n{NODES_SCRIPT}");
            let mut words = vec!["sh".to_string(), "-c".into(), script, "sh".into()];
            words.push(probe.clone());
            words.extend(chunk.iter().cloned());
            let out = exec_ok(host, words, plan.test.to_vec()).await?;
            facts.get_or_insert_with(|| parse_facts(&String::from_utf8_lossy(&out.stdout)));
        }
        for (rel, bytes) in &plan.files {
            for chunk in batches(&dirs, 1) {
                let mut words = vec![
                    "sh".to_string(),
                    "-c".into(),
                    FANOUT_SCRIPT.into(),
                    "sh".into(),
                    rel.clone(),
                ];
                words.extend(chunk.iter().cloned());
                exec_ok(host, words, bytes.to_vec()).await?;
            }
        }
        let facts = facts.unwrap_or_default();
        let bench_node = ensure_bench_node(host, plan, &probe, facts, uploads).await?;
        Ok(self.deployed(dirs, &bench_node))
    }
}

/// Where bench-node lives on a host, the one place this is decided: `-s PATH` (`installed`)
/// when given, the one beside bench-master on the master's own machine, otherwise
/// `<node workdir>/bench-node`. Deploy asks it for its version and uploads to it; `--check`
/// asks the same.
pub fn bench_node_path(
    host: &dyn Transport,
    node_workdir: &str,
    installed: Option<&str>,
) -> String {
    match (installed, host.is_local()) {
        (Some(path), _) => path.to_string(),
        (None, true) => local_bench_node().to_string_lossy().into_owned(),
        (None, false) => format!("{}/bench-node", node_workdir.trim_end_matches('/')),
    }
}

/// Uploads of bench-node in progress or done, by machine, user and path: several aliases of
/// one machine (same `/etc/machine-id`) logging in as one user share one upload of one file,
/// while other users there (other homes, where a relative `-x` lies) get their own.
#[derive(Default)]
struct Uploads {
    /// One upload cell per machine, user and absolute path; the lock is held only to find the
    /// cell.
    by_machine: std::sync::Mutex<HashMap<String, UploadCell>>,
    /// This machine's architecture, asked once and only when an upload is considered.
    local_arch: tokio::sync::OnceCell<String>,
}

/// The outcome of one machine's upload, shared by its aliases.
type UploadCell = Arc<tokio::sync::OnceCell<Result<(), String>>>;

impl Uploads {
    /// `uname -m` of the master's machine (empty when it cannot be asked).
    async fn local_arch(&self) -> &str {
        self.local_arch
            .get_or_init(|| async {
                host_facts(&LocalHost, "/nonexistent")
                    .await
                    .map(|f| f.arch)
                    .unwrap_or_default()
            })
            .await
    }

    /// The upload cell of `path` on the host `facts` describe (a fresh one when the machine
    /// id is unknown).
    fn cell(&self, facts: &HostFacts, path: &str) -> UploadCell {
        if facts.machine.is_empty() {
            return Arc::default();
        }
        let path = if path.starts_with('/') {
            path.to_string()
        } else {
            format!("{}/{path}", facts.cwd.trim_end_matches('/'))
        };
        let key = format!("{}\0{}\0{path}", facts.machine, facts.user);
        let mut map = self.by_machine.lock().expect("not poisoned");
        map.entry(key).or_default().clone()
    }
}

/// Returns the bench-node path to run on `host` (`probe`, of which `facts` were gathered),
/// uploading the master's own when needed.
async fn ensure_bench_node(
    host: &dyn Transport,
    plan: &DeployPlan,
    probe: &str,
    facts: HostFacts,
    uploads: &Uploads,
) -> Result<String, DeployError> {
    let expected = expected_version();
    if let Some(path) = &plan.bench_node {
        if facts.version != expected {
            return Err(DeployError::Version {
                host: host.label().to_string(),
                path: path.clone(),
                found: facts.version,
                expected,
            });
        }
        return Ok(path.clone());
    }
    if host.is_local() {
        std::fs::metadata(probe).map_err(|source| DeployError::LocalBinary {
            path: probe.into(),
            source,
        })?;
        return Ok(probe.to_string());
    }
    if facts.version == expected {
        return Ok(probe.to_string());
    }
    let local_arch = uploads.local_arch().await;
    if facts.arch != local_arch {
        return Err(DeployError::Arch {
            host: host.label().to_string(),
            found: if facts.version.is_empty() {
                "missing".into()
            } else {
                facts.version
            },
            local: local_arch.to_string(),
            remote: facts.arch,
            version: crate::VERSION.to_string(),
        });
    }
    let upload = || async {
        let path = local_bench_node();
        let bytes = tokio::fs::read(&path)
            .await
            .map_err(|source| DeployError::LocalBinary { path, source })
            .map_err(|e| e.to_string())?;
        put_file(host, probe, bytes, 0o755)
            .await
            .map_err(|e| e.to_string())
    };
    let cell = uploads.cell(&facts, probe);
    match cell.get_or_init(upload).await {
        Ok(()) => Ok(probe.to_string()),
        Err(message) => Err(DeployError::Upload {
            host: host.label().to_string(),
            message: message.clone(),
        }),
    }
}

/// One line of `--check`.
#[derive(Debug)]
pub struct CheckReport {
    /// Host label.
    pub host: String,
    /// Nodes of the file on this host.
    pub nodes: usize,
    /// What the host offers, or why it could not be reached.
    pub facts: Result<HostFacts, TransportError>,
    /// Where the version was asked.
    pub bench_node: String,
}

/// Reaches every host (bounded by `parallel`) and gathers its [`HostFacts`].
pub async fn check(
    cluster: &Cluster,
    node_workdir: &str,
    bench_node: Option<&str>,
    parallel: &Arc<Semaphore>,
) -> Vec<CheckReport> {
    let checks = cluster
        .hosts
        .iter()
        .enumerate()
        .map(|(h, host)| async move {
            let _permit = parallel.acquire().await.expect("semaphore never closed");
            let path = bench_node_path(host.as_ref(), node_workdir, bench_node);
            CheckReport {
                host: host.label().to_string(),
                nodes: cluster.nodes.iter().filter(|(_, i)| *i == h).count(),
                facts: host_facts(host.as_ref(), &path).await,
                bench_node: path,
            }
        });
    super::join_all(checks).await
}

/// Formats one `--check` line.
pub fn check_line(r: &CheckReport) -> String {
    let expected = expected_version();
    match &r.facts {
        Err(e) => format!("{:<24} UNREACHABLE  {e}", r.host),
        Ok(f) => {
            let version = match f.version.as_str() {
                "" => format!("bench-node missing at {} (will be uploaded)", r.bench_node),
                v if v == expected => v.to_string(),
                v => format!("{v} at {} (will be replaced)", r.bench_node),
            };
            let mem = f
                .mem_available_kib
                .map_or("?".into(), |k| format!("{} MiB", k / 1024));
            format!(
                "{:<24} ok  nodes={} arch={} cores={} nofile={} mem_free={} {}",
                r.host,
                r.nodes,
                f.arch,
                f.cores.map_or("?".into(), |c| c.to_string()),
                f.nofile,
                mem,
                version
            )
        }
    }
}

/// The files `plan` names ([`TestPlan::files`]) with their bytes, read from beside the test,
/// for [`DeployPlan::files`]. Only paths inside the test's directory can be placed beside the
/// test on a node; others (absolute, `..`, a name with a newline) are left out, and the node
/// then names the missing file when it loads the test.
pub fn test_files(plan: &TestPlan) -> std::io::Result<Vec<(String, Bytes)>> {
    let base = plan.path.parent().unwrap_or(Path::new("."));
    let mut files = Vec::new();
    for rel in plan.files() {
        let inside = rel
            .components()
            .all(|c| matches!(c, std::path::Component::Normal(_)));
        let name = rel.to_string_lossy().into_owned();
        // A name with a newline cannot be announced to a mux on its line.
        if inside && !name.contains('\n') {
            let bytes = std::fs::read(base.join(rel))?;
            files.push((name, Bytes::from(bytes)));
        }
    }
    Ok(files)
}
