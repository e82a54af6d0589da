//! Follows one running node: its stdout and stderr are appended to `out/node<N>.log` and
//! `err/node<N>.log` as they arrive, its JSON progress lines are parsed and sent to the run's
//! coordinator, and its end is reported.

use std::path::{Path, PathBuf};

use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWriteExt, BufReader};
use tokio::sync::mpsc;

use super::transport::Process;
use crate::protocol::progress::ProgressEvent;

/// What a node tells the coordinator.
#[derive(Debug)]
pub enum NodeMsg {
    /// A progress event of the node at this position.
    Event(usize, ProgressEvent),
    /// The node's process ended (exit code; `None` when killed or cut off).
    Exited(usize, Option<i32>),
}

/// The log files of one node in the master's run directory.
pub fn log_paths(run_dir: &Path, number: u32) -> (PathBuf, PathBuf) {
    (
        run_dir.join("out").join(format!("node{number}.log")),
        run_dir.join("err").join(format!("node{number}.log")),
    )
}

/// Starts following `process`; returns its stdin. Messages go to `tx` (bounded: a slow
/// display slows the readers, never grows memory).
pub fn follow(
    position: usize,
    process: Process,
    out_path: PathBuf,
    err_path: PathBuf,
    tx: mpsc::Sender<NodeMsg>,
) -> Box<dyn tokio::io::AsyncWrite + Send + Unpin> {
    let Process {
        stdin,
        stdout,
        stderr,
        exit,
    } = process;
    tokio::spawn(async move {
        let events = tx.clone();
        let out = copy_lines(stdout, out_path, move |line| {
            let events = events.clone();
            async move {
                if let Some(event) = ProgressEvent::parse(&line) {
                    let _ = events.send(NodeMsg::Event(position, event)).await;
                }
            }
        });
        let err = copy_lines(stderr, err_path, |_| async {});
        tokio::join!(out, err);
        let code = exit.await;
        let _ = tx.send(NodeMsg::Exited(position, code)).await;
    });
    stdin
}

/// Appends every line of `input` to `path` (flushed per line, so that `tail -f` shows it) and
/// hands it to `on_line`.
async fn copy_lines<F, Fut>(input: Box<dyn AsyncRead + Send + Unpin>, path: PathBuf, on_line: F)
where
    F: Fn(String) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let mut file = match tokio::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .await
    {
        Ok(f) => Some(f),
        Err(e) => {
            eprintln!("bench-master: cannot write {}: {e}", path.display());
            None
        }
    };
    let mut lines = BufReader::new(input);
    let mut buf = Vec::new();
    loop {
        buf.clear();
        match lines.read_until(b'\n', &mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
        if let Some(f) = file.as_mut() {
            let _ = f.write_all(&buf).await;
            let _ = f.flush().await;
        }
        on_line(String::from_utf8_lossy(&buf).into_owned()).await;
    }
}

/// The last `n` lines of a log file (empty when missing).
pub fn tail(path: &Path, n: usize) -> String {
    let text = std::fs::read(path).unwrap_or_default();
    let text = String::from_utf8_lossy(&text);
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}
