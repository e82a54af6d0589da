//! Deploy: reach every host in parallel (bounded by `--parallel`), make sure it has this very
//! bench-node (uploading the master's own when the architecture matches), and copy each node's
//! test, its files and its `node.toml` into `<x>/<run>/node<N>/`. Also `--check`, the cluster
//! preflight.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio::sync::Semaphore;

use super::local::LocalHost;
use super::ssh::SshOptions;
use super::transport::{
    self, batches, exec_ok, host_facts, parse_facts, put_file, HostFacts, Transport,
    TransportError, FACTS_SCRIPT,
};
use crate::nodes::{Node, NodeHost};
use crate::test_def::{node_config_toml, NodeConfig, Overrides, TestPlan};

/// What `bench-node --version` prints for this build.
pub fn expected_version() -> String {
    format!("bench-node {}", crate::VERSION)
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
    pub test: Vec<u8>,
    /// Files the test names ([`test_files`]), relative to the test, with their bytes.
    pub files: Vec<(String, Vec<u8>)>,
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
    /// The command that runs the node, waiting for the master's `start`.
    pub fn command(&self) -> Vec<String> {
        let mut argv = vec![self.bench_node.clone()];
        argv.extend(crate::protocol::mux::node_args(&self.dir));
        argv
    }
}

/// bench-node beside the running bench-master.
pub fn local_bench_node() -> PathBuf {
    let exe = std::env::current_exe().unwrap_or_default();
    exe.with_file_name("bench-node")
}

/// Deploys every node; one result per node, in order. Hosts are handled in parallel, at most
/// `parallel` at once.
pub async fn deploy(
    cluster: &Cluster,
    plan: &DeployPlan,
    parallel: &Arc<Semaphore>,
) -> Vec<Result<DeployedNode, DeployError>> {
    let local_arch = host_facts(&LocalHost, "/nonexistent").await.map(|f| f.arch);
    let uploads = Uploads::default();
    let per_host = cluster.hosts.iter().enumerate().map(|(h, host)| {
        let nodes: Vec<&Node> = cluster
            .nodes
            .iter()
            .filter(|(_, i)| *i == h)
            .map(|(n, _)| n)
            .collect();
        let local_arch = local_arch.as_ref().map(String::as_str).unwrap_or("");
        let uploads = &uploads;
        let count = cluster.nodes.len();
        async move {
            let _permit = parallel.acquire().await.expect("semaphore never closed");
            deploy_host(host.as_ref(), &nodes, plan, count, local_arch, uploads).await
        }
    });
    let results = super::join_all(per_host).await;
    let mut by_node: Vec<Option<Result<DeployedNode, DeployError>>> =
        (0..cluster.nodes.len()).map(|_| None).collect();
    for (h, result) in results.into_iter().enumerate() {
        let positions = cluster
            .nodes
            .iter()
            .enumerate()
            .filter(|(_, (_, i))| *i == h)
            .map(|(p, _)| p);
        match result {
            Ok(nodes) => {
                for (p, node) in positions.zip(nodes) {
                    by_node[p] = Some(Ok(node));
                }
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
            }
        }
    }
    by_node
        .into_iter()
        .map(|r| r.expect("every node has a result"))
        .collect()
}

/// Deploys the nodes of one host in as few remote commands as possible (each one starts the
/// user's login shell there): one writes every node's directory, test and node.toml and
/// reports the host's facts, one more per file the test refers to, and bench-node is
/// uploaded only when missing or of another version.
async fn deploy_host(
    host: &dyn Transport,
    nodes: &[&Node],
    plan: &DeployPlan,
    count: usize,
    local_arch: &str,
    uploads: &Uploads,
) -> Result<Vec<DeployedNode>, DeployError> {
    let dirs: Vec<String> = nodes
        .iter()
        .map(|node| {
            format!(
                "{}/{}/node{}",
                plan.node_workdir.trim_end_matches('/'),
                plan.run_id,
                node.number
            )
        })
        .collect();
    let mut pairs = Vec::with_capacity(2 * nodes.len());
    for (node, dir) in nodes.iter().zip(&dirs) {
        let config = NodeConfig {
            number: node.number,
            count: count as u32,
            run: plan.run_name.clone(),
            host: host.label().to_string(),
            overrides: plan.overrides.clone(),
        };
        pairs.push(dir.clone());
        pairs.push(node_config_toml(&config));
    }
    let probe = bench_node_path(host, &plan.node_workdir, plan.bench_node.as_deref());
    let mut facts = None;
    for chunk in batches(&pairs, 2) {
        let script = format!("{FACTS_SCRIPT}\n{NODES_SCRIPT}");
        let mut words = vec!["sh".to_string(), "-c".into(), script, "sh".into()];
        words.push(probe.clone());
        words.extend(chunk.iter().cloned());
        let out = exec_ok(host, words, plan.test.clone()).await?;
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
            exec_ok(host, words, bytes.clone()).await?;
        }
    }
    let facts = facts.unwrap_or_default();
    let bench_node = ensure_bench_node(host, plan, &probe, facts, local_arch, uploads).await?;
    Ok(nodes
        .iter()
        .zip(dirs)
        .map(|(node, dir)| DeployedNode {
            number: node.number,
            dir,
            bench_node: bench_node.clone(),
        })
        .collect())
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

/// Uploads of bench-node in progress or done, by machine: several aliases of one machine
/// (same `/etc/machine-id`) share one upload.
#[derive(Default)]
struct Uploads {
    /// One upload cell per machine id; the lock is held only to find the cell.
    by_machine: std::sync::Mutex<HashMap<String, UploadCell>>,
}

/// The outcome of one machine's upload, shared by its aliases.
type UploadCell = Arc<tokio::sync::OnceCell<Result<(), String>>>;

impl Uploads {
    /// The upload cell of `machine` (a fresh one when the machine id is unknown).
    fn cell(&self, machine: &str) -> UploadCell {
        if machine.is_empty() {
            return Arc::default();
        }
        let mut map = self.by_machine.lock().expect("not poisoned");
        map.entry(machine.to_string()).or_default().clone()
    }
}

/// Returns the bench-node path to run on `host` (`probe`, of which `facts` were gathered),
/// uploading the master's own when needed.
async fn ensure_bench_node(
    host: &dyn Transport,
    plan: &DeployPlan,
    probe: &str,
    facts: HostFacts,
    local_arch: &str,
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
    let cell = uploads.cell(&facts.machine);
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
/// test on a node; others (absolute, `..`) are left out, and the node then names the missing
/// file when it loads the test.
pub fn test_files(plan: &TestPlan) -> std::io::Result<Vec<(String, Vec<u8>)>> {
    let base = plan.path.parent().unwrap_or(Path::new("."));
    let mut files = Vec::new();
    for rel in plan.files() {
        let inside = rel
            .components()
            .all(|c| matches!(c, std::path::Component::Normal(_)));
        if inside {
            let bytes = std::fs::read(base.join(rel))?;
            files.push((rel.to_string_lossy().into_owned(), bytes));
        }
    }
    Ok(files)
}
