//! Follows one running node: its stdout and stderr are appended to `out/node<N>.log` and
//! `err/node<N>.log` as they arrive, its JSON progress lines are parsed and sent to the run's
//! coordinator, and its end is reported, after its result file when its mux sent it (written to
//! `results/node<N>.xml` at once). Every line is bounded ([`MAX_LINE`]): a node that sends a
//! longer one is reported, and that output is no longer read.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use tokio::io::{AsyncRead, BufReader};
use tokio::sync::mpsc;

use super::transport::Process;
use crate::protocol::lines::{read_line, Line, MAX_LINE};
use crate::protocol::progress::ProgressEvent;

/// What a node tells the coordinator.
#[derive(Debug)]
pub enum NodeMsg {
    /// A progress event of the node at this position.
    Event(usize, ProgressEvent),
    /// The node at this position sent a line longer than [`MAX_LINE`] on this stream
    /// (`stdout`, `stderr`): a broken or hostile node, no longer heard on it.
    Overlong(usize, &'static str),
    /// The node's result file came with its end and is in the run's `results/`.
    Delivered(usize),
    /// The node's process ended (exit code; `None` when killed or cut off).
    Exited(usize, Option<i32>),
}

/// Where the result of node `number` goes in the master's run directory.
pub fn result_path(run_dir: &Path, number: u32) -> PathBuf {
    run_dir.join("results").join(format!("node{number}.xml"))
}

/// The log files of one node in the master's run directory.
pub fn log_paths(run_dir: &Path, number: u32) -> (PathBuf, PathBuf) {
    (
        run_dir.join("out").join(format!("node{number}.log")),
        run_dir.join("err").join(format!("node{number}.log")),
    )
}

/// The two log files of one node, open for appending; `None` where one could not be made (said
/// on stderr when it was tried).
#[derive(Default)]
pub struct NodeLogs {
    pub out: Option<std::fs::File>,
    pub err: Option<std::fs::File>,
}

/// Creates (or opens, to append) the logs of the nodes `numbers` in `run_dir`, one after
/// another on the calling thread. The master runs it off its runtime while the hosts connect:
/// made then, the files never keep a node's first line (its `ready`) waiting, and a run of
/// hundreds of nodes needs no thread per file.
pub fn open_logs(run_dir: &Path, numbers: &[u32]) -> Vec<NodeLogs> {
    let open = |path: PathBuf| match std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
    {
        Ok(f) => Some(f),
        Err(e) => {
            eprintln!("bench-master: cannot write {}: {e}", path.display());
            None
        }
    };
    numbers
        .iter()
        .map(|&n| {
            let (out, err) = log_paths(run_dir, n);
            NodeLogs {
                out: open(out),
                err: open(err),
            }
        })
        .collect()
}

/// Starts following `process`; returns its stdin. Its output goes to `logs`, a result it
/// brings to `result_path`. Messages go to `tx` (bounded: a slow display slows the readers,
/// never grows memory).
pub fn follow(
    position: usize,
    process: Process,
    (logs, result_path): (NodeLogs, PathBuf),
    tx: mpsc::Sender<NodeMsg>,
) -> Box<dyn tokio::io::AsyncWrite + Send + Unpin> {
    let Process {
        stdin,
        stdout,
        stderr,
        exit,
        result,
    } = process;
    tokio::spawn(async move {
        let events = tx.clone();
        let out = copy_lines(stdout, logs.out, move |line| {
            let events = events.clone();
            async move {
                if let Some(event) = ProgressEvent::parse(&line) {
                    let _ = events.send(NodeMsg::Event(position, event)).await;
                }
            }
        });
        let err = copy_lines(stderr, logs.err, |_| async {});
        tokio::join!(
            overlong(out, &tx, NodeMsg::Overlong(position, "stdout")),
            overlong(err, &tx, NodeMsg::Overlong(position, "stderr"))
        );
        let code = exit.await;
        if let Some(bytes) = match result {
            Some(result) => result.await,
            None => None,
        } {
            // Not written: the master fetches it from the node's host.
            if tokio::fs::write(&result_path, bytes).await.is_ok() {
                let _ = tx.send(NodeMsg::Delivered(position)).await;
            }
        }
        let _ = tx.send(NodeMsg::Exited(position, code)).await;
    });
    stdin
}

/// Runs `copy` (a [`copy_lines`]); sends `msg` when it stopped at an overlong line.
async fn overlong(
    copy: impl std::future::Future<Output = bool>,
    tx: &mpsc::Sender<NodeMsg>,
    msg: NodeMsg,
) {
    if copy.await {
        let _ = tx.send(msg).await;
    }
}

/// Appends every line of `input` to `file` as it comes (so that `tail -f` shows it) and hands
/// it to `on_line`; true when it stopped at a line longer than [`MAX_LINE`] (its input then
/// dropped, a note in place of the line). A line is one `write(2)` to the page cache, done
/// here: through `tokio::fs` it was two trips to the blocking pool, which at the end of a
/// 128-node run, every node saying its last lines at once, started dozens of threads.
async fn copy_lines<F, Fut>(
    input: Box<dyn AsyncRead + Send + Unpin>,
    mut file: Option<std::fs::File>,
    on_line: F,
) -> bool
where
    F: Fn(String) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let mut lines = BufReader::new(input);
    let mut buf = Vec::new();
    loop {
        match read_line(&mut lines, &mut buf, MAX_LINE).await {
            Ok(Line::Full) => {}
            Ok(Line::TooLong) => {
                if let Some(f) = file.as_mut() {
                    let note = format!(
                        "bench-master: a line longer than {MAX_LINE} bytes: not kept, and \
                         nothing more of this output read\n"
                    );
                    let _ = f.write_all(note.as_bytes());
                }
                return true;
            }
            Ok(Line::End) | Err(_) => return false,
        }
        if let Some(f) = file.as_mut() {
            let _ = f.write_all(&buf);
        }
        on_line(String::from_utf8_lossy(&buf).into_owned()).await;
    }
}

/// Bytes read from the end of a log file for its tail: a node's log may be large.
const TAIL_BYTES: u64 = 64 * 1024;

/// The last `n` lines of a log file (empty when missing), from its last [`TAIL_BYTES`].
pub fn tail(path: &Path, n: usize) -> String {
    use std::io::{Read, Seek, SeekFrom};
    let mut text = Vec::new();
    if let Ok(mut f) = std::fs::File::open(path) {
        let len = f.metadata().map_or(0, |m| m.len());
        let from = len.saturating_sub(TAIL_BYTES);
        if f.seek(SeekFrom::Start(from)).is_ok() {
            let _ = f.take(TAIL_BYTES).read_to_end(&mut text);
        }
        if from > 0 {
            // The first line read is most likely a piece of a line.
            let start = text.iter().position(|b| *b == b'\n').map_or(0, |i| i + 1);
            text.drain(..start);
        }
    }
    let text = String::from_utf8_lossy(&text);
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}
