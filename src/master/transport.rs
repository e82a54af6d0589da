//! How the master reaches a node's host: a [`Transport`] runs programs there (never through an
//! unquoted shell string) and spawns long-lived processes with piped stdio. Two real
//! implementations: [`super::ssh::SshHost`] and [`super::local::LocalHost`]. File transfer and
//! the other helpers below are written once on top of the trait.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use tokio::io::{AsyncRead, AsyncWrite};

use super::local::LocalHost;
use super::ssh::{SshHost, SshOptions};
use crate::nodes::NodeHost;

/// A boxed future, so that the trait stays object-safe.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A failure to reach a host or to run something there.
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    /// No connection could be made (the ssh error follows).
    #[error("{host}: cannot connect: {message}")]
    Connect { host: String, message: String },
    /// The program could not be started or its channel broke.
    #[error("{host}: `{command}`: {message}")]
    Exec {
        host: String,
        command: String,
        message: String,
    },
    /// The program ran and failed.
    #[error("{host}: `{command}` failed ({status}): {stderr}")]
    Failed {
        host: String,
        command: String,
        status: String,
        stderr: String,
    },
}

/// What a finished program printed.
#[derive(Debug, Clone)]
pub struct Output {
    /// Exit code; `None` when killed by a signal or when the channel was lost.
    pub code: Option<i32>,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
}

/// A running program with piped stdio.
pub struct Process {
    /// Its standard input (the node's command channel).
    pub stdin: Box<dyn AsyncWrite + Send + Unpin>,
    pub stdout: Box<dyn AsyncRead + Send + Unpin>,
    pub stderr: Box<dyn AsyncRead + Send + Unpin>,
    /// Resolves with the exit code when the program ends (`None`: signal or lost channel). It
    /// owns whatever keeps the channel open (an SSH session slot).
    pub exit: BoxFuture<'static, Option<i32>>,
    /// A node run by a mux: resolves, once it ended, with its result file as the mux sent it
    /// (`None`: none came, the master fetches it). `None` for any other process.
    pub result: Option<BoxFuture<'static, Option<Vec<u8>>>>,
}

/// A host where programs run: over SSH or as local processes.
pub trait Transport: Send + Sync {
    /// How the host is named in messages (`local`, `user@host:port`).
    fn label(&self) -> &str;

    /// True for the master's own machine (bench-node is then used from beside bench-master).
    fn is_local(&self) -> bool;

    /// Runs `argv` (each word passed as one argument, quoted for the remote shell) with `stdin`
    /// as its input, and waits for it.
    fn exec(
        &self,
        argv: Vec<String>,
        stdin: Vec<u8>,
    ) -> BoxFuture<'_, Result<Output, TransportError>>;

    /// Starts `argv` with piped stdin, stdout and stderr.
    fn spawn(&self, argv: Vec<String>) -> BoxFuture<'_, Result<Process, TransportError>>;
}

/// The transport that reaches `host`: the one place a [`NodeHost`] becomes a [`Transport`],
/// for the nodes, `--attach`, `[service]` and `[monitor]` alike.
pub fn for_host(host: &NodeHost, ssh: &Arc<SshOptions>) -> Arc<dyn Transport> {
    match host {
        NodeHost::Local => Arc::new(LocalHost),
        NodeHost::Ssh(target) => Arc::new(SshHost::new(target.clone(), ssh.clone())),
    }
}

/// The transport for a host named in a test (`local` or an ssh destination, as in a nodes
/// file); `None` when `name` names no host. `what` says where it was written, for messages.
pub fn for_name(name: &str, what: &str, ssh: &Arc<SshOptions>) -> Option<Arc<dyn Transport>> {
    let node = crate::nodes::parse(name, std::path::Path::new(what))
        .ok()?
        .pop()?;
    Some(for_host(&node.host, ssh))
}

/// The words of a command, for messages.
pub fn display_argv(argv: &[String]) -> String {
    argv.iter()
        .map(|w| shell_escape::unix::escape(w.into()).into_owned())
        .collect::<Vec<_>>()
        .join(" ")
}

/// Builds an argv from string slices.
pub fn argv<I: IntoIterator<Item = S>, S: Into<String>>(words: I) -> Vec<String> {
    words.into_iter().map(Into::into).collect()
}

/// Runs `argv` and requires exit code 0.
pub async fn exec_ok(
    t: &dyn Transport,
    argv: Vec<String>,
    stdin: Vec<u8>,
) -> Result<Output, TransportError> {
    let command = display_argv(&argv);
    let out = t.exec(argv, stdin).await?;
    if out.code == Some(0) {
        return Ok(out);
    }
    Err(TransportError::Failed {
        host: t.label().to_string(),
        command,
        status: out.code.map_or("killed or disconnected".to_string(), |c| {
            format!("exit {c}")
        }),
        stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
    })
}

/// Script writing stdin to `$1` atomically with mode `$2`, creating its directory. Constant:
/// the path travels as an argument, never as shell text.
const PUT_SCRIPT: &str = r#"set -e; d=$(dirname -- "$1"); mkdir -p -- "$d"; t="$1.part.$$"; cat > "$t"; chmod "$2" "$t"; mv -f -- "$t" "$1""#;

/// Writes `data` to `path` on the host (parent directories created; replaced atomically).
pub async fn put_file(
    t: &dyn Transport,
    path: &str,
    data: Vec<u8>,
    mode: u32,
) -> Result<(), TransportError> {
    let words = argv(["sh", "-c", PUT_SCRIPT, "sh", path]);
    let mut words = words;
    words.push(format!("{mode:o}"));
    exec_ok(t, words, data).await.map(drop)
}

/// Reads a whole file from the host.
pub async fn read_file(t: &dyn Transport, path: &str) -> Result<Vec<u8>, TransportError> {
    Ok(exec_ok(t, argv(["cat", "--", path]), Vec::new())
        .await?
        .stdout)
}

/// Script printing, for each path argument, its size in bytes on a line and then its bytes, or
/// a line `-` when it is missing or unreadable. Constant: the paths travel as arguments.
const READ_SCRIPT: &str = r#"for f; do
  if [ -f "$f" ] && [ -r "$f" ]; then wc -c < "$f" && cat -- "$f"; else echo -; fi
done"#;

/// Reads several files from the host in one command per [`ARGS_PER_COMMAND`] bytes of paths;
/// one result per path, in order. Should the output be out of step (a file changed while it
/// was read), the rest are read one by one.
pub async fn read_files(
    t: &dyn Transport,
    paths: &[String],
) -> Result<Vec<Result<Vec<u8>, String>>, TransportError> {
    let mut out = Vec::with_capacity(paths.len());
    for batch in batches(paths, 1) {
        let mut words = argv(["sh", "-c", READ_SCRIPT, "sh"]);
        words.extend(batch.iter().cloned());
        let stdout = exec_ok(t, words, Vec::new()).await?.stdout;
        let mut rest = stdout.as_slice();
        for path in batch {
            let parsed = rest.iter().position(|b| *b == b'\n').and_then(|nl| {
                let header = std::str::from_utf8(&rest[..nl]).ok()?.trim();
                if header == "-" {
                    return Some((Err(format!("{path} is missing or unreadable")), nl + 1));
                }
                let size: usize = header.parse().ok()?;
                let body = rest.get(nl + 1..nl + 1 + size)?;
                Some((Ok(body.to_vec()), nl + 1 + size))
            });
            match parsed {
                Some((file, used)) => {
                    out.push(file);
                    rest = &rest[used..];
                }
                None => {
                    rest = &[];
                    out.push(read_file(t, path).await.map_err(|e| e.to_string()));
                }
            }
        }
    }
    Ok(out)
}

/// Bytes of arguments in one batched command: well below Linux's 128 KiB limit on the one
/// string a remote shell receives.
pub const ARGS_PER_COMMAND: usize = 64 * 1024;

/// Splits `words` (groups of `group` words kept together) into runs of at most
/// [`ARGS_PER_COMMAND`] bytes, each the arguments of one command.
pub fn batches(words: &[String], group: usize) -> Vec<&[String]> {
    let group = group.max(1);
    let mut out = Vec::new();
    let (mut start, mut bytes) = (0, 0);
    for (i, g) in words.chunks(group).enumerate() {
        // A word costs its bytes and, quoted, about three more.
        let size: usize = g.iter().map(|w| w.len() + 3).sum();
        if bytes + size > ARGS_PER_COMMAND && i * group > start {
            out.push(&words[start..i * group]);
            (start, bytes) = (i * group, 0);
        }
        bytes += size;
    }
    if start < words.len() {
        out.push(&words[start..]);
    }
    out
}

/// Sends `signal` (`TERM`, `KILL`, `0`) to a process on the host; `Ok(false)` when it is gone.
pub async fn signal(t: &dyn Transport, pid: u32, signal: &str) -> Result<bool, TransportError> {
    let out = t
        .exec(
            argv(["kill".to_string(), format!("-{signal}"), pid.to_string()]),
            Vec::new(),
        )
        .await?;
    Ok(out.code == Some(0))
}

/// Script printing `key=value` facts about a host for `--check` and deploy; `$1` is the
/// bench-node path to ask for its version (left in `$version`). Deploy runs it as the start of
/// a longer script.
pub const FACTS_SCRIPT: &str = r#"echo "arch=$(uname -m)"
echo "cores=$(getconf _NPROCESSORS_ONLN 2>/dev/null || nproc 2>/dev/null)"
echo "nofile=$(ulimit -n)"
echo "mem_available_kib=$(awk '/^MemAvailable:/ {print $2}' /proc/meminfo 2>/dev/null)"
version=$("$1" --version 2>/dev/null | head -n 1)
echo "version=$version"
echo "machine=$(cat /etc/machine-id 2>/dev/null)"
echo "user=$(id -un 2>/dev/null)"
echo "cwd=$(pwd)""#;

/// Facts about a host that matter to a run.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct HostFacts {
    /// `uname -m`.
    pub arch: String,
    /// Online CPU cores.
    pub cores: Option<u32>,
    /// `ulimit -n` (open files), as printed (`unlimited` possible).
    pub nofile: String,
    /// MemAvailable, KiB.
    pub mem_available_kib: Option<u64>,
    /// First line of `bench-node --version`, empty when missing.
    pub version: String,
    /// `/etc/machine-id`: tells several aliases of one machine apart from distinct machines.
    pub machine: String,
    /// The user logged in as (`id -un`).
    pub user: String,
    /// The directory remote commands start in (the user's home): where a relative node
    /// workspace lies.
    pub cwd: String,
}

/// Gathers [`HostFacts`], asking `bench_node` for its version.
pub async fn host_facts(t: &dyn Transport, bench_node: &str) -> Result<HostFacts, TransportError> {
    let out = exec_ok(
        t,
        argv(["sh", "-c", FACTS_SCRIPT, "sh", bench_node]),
        Vec::new(),
    )
    .await?;
    Ok(parse_facts(&String::from_utf8_lossy(&out.stdout)))
}

/// Reads the output of [`FACTS_SCRIPT`].
pub fn parse_facts(text: &str) -> HostFacts {
    let mut facts = HostFacts::default();
    for line in text.lines() {
        let Some((key, value)) = line.split_once('=') else {
            continue;
        };
        let value = value.trim();
        match key {
            "arch" => facts.arch = value.to_string(),
            "cores" => facts.cores = value.parse().ok(),
            "nofile" => facts.nofile = value.to_string(),
            "mem_available_kib" => facts.mem_available_kib = value.parse().ok(),
            "version" => facts.version = value.to_string(),
            "machine" => facts.machine = value.to_string(),
            "user" => facts.user = value.to_string(),
            "cwd" => facts.cwd = value.to_string(),
            _ => {}
        }
    }
    facts
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::master::local::LocalHost;

    #[test]
    fn batches_stay_under_the_argument_limit_and_keep_groups() {
        let words: Vec<String> = (0..10_000).map(|i| format!("/some/dir/node{i}")).collect();
        let b = batches(&words, 2);
        assert!(b.len() > 1);
        assert_eq!(b.concat(), words);
        for batch in &b {
            assert_eq!(batch.len() % 2, 0);
            assert!(batch.iter().map(|w| w.len() + 3).sum::<usize>() <= ARGS_PER_COMMAND);
        }
        assert_eq!(batches(&words[..3], 1), [&words[..3]]);
        assert!(batches(&[], 1).is_empty());
    }

    #[tokio::test]
    async fn files_with_shell_metacharacters_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let weird = dir.path().join("a b;$(touch PWNED) 'q\" `x`/f ile");
        let path = weird.to_str().unwrap();
        put_file(&LocalHost, path, b"data\n".to_vec(), 0o600)
            .await
            .unwrap();
        assert_eq!(read_file(&LocalHost, path).await.unwrap(), b"data\n");
        assert!(!dir.path().join("PWNED").exists());
        assert!(!std::path::Path::new("PWNED").exists());
        let err = read_file(&LocalHost, &format!("{path}.missing"))
            .await
            .unwrap_err();
        assert!(matches!(err, TransportError::Failed { .. }), "{err}");
        let missing = format!("{path}.missing");
        let paths = [path.to_string(), missing.clone(), path.to_string()];
        let files = read_files(&LocalHost, &paths).await.unwrap();
        assert_eq!(files[0].as_deref(), Ok(&b"data\n"[..]));
        assert_eq!(files[1], Err(format!("{missing} is missing or unreadable")));
        assert_eq!(files[2].as_deref(), Ok(&b"data\n"[..]));
        assert!(read_files(&LocalHost, &[]).await.unwrap().is_empty());
        let facts = host_facts(&LocalHost, "/nonexistent").await.unwrap();
        assert!(!facts.arch.is_empty() && facts.version.is_empty());
        assert!(facts.cores.is_some_and(|c| c > 0));
    }
}
