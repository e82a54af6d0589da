//! The node's half of the mux ([`crate::protocol::mux`]): runs the nodes of a host as children of
//! one `bench-node mux` process and relays their stdio over its own.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::process::Child;
use tokio::sync::mpsc;

use crate::protocol::mux::{exit_frame, frame, node_args, WATCHDOG};

/// Exit code reported for a node that could not be started.
const NOT_STARTED: i32 = 127;

/// The nodes' stdin (blocking files: the master's words are written from the thread that
/// reads them, with no hop through the runtime, so that `start` reaches every node at once).
/// Emptied when the master is gone.
type Stdins = Arc<std::sync::Mutex<Vec<Option<std::fs::File>>>>;

/// `bench-node mux -- DIR...`: runs `bench_node` (this very binary) for the node in each of
/// `dirs` and relays their stdio over this process's stdio until every node ended.
pub async fn serve(bench_node: &Path, dirs: &[String]) {
    let (out_tx, out_rx) = mpsc::channel::<Vec<u8>>(1024);
    let writer = tokio::spawn(write_frames(tokio::io::stdout(), out_rx));
    let stdins: Stdins = Arc::default();
    let mut relays = tokio::task::JoinSet::new();
    for (i, dir) in dirs.iter().enumerate() {
        let spawned = tokio::process::Command::new(bench_node)
            .args(node_args(dir))
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn();
        let stdin = match spawned {
            Ok(mut child) => {
                let stdin = child.stdin.take().and_then(|s| s.into_owned_fd().ok());
                relays.spawn(relay(i, child, out_tx.clone()));
                stdin.map(std::fs::File::from)
            }
            Err(e) => {
                let why = format!("bench-node mux: cannot start {}: {e}", bench_node.display());
                let _ = out_tx.send(frame(i, b'e', why.as_bytes())).await;
                let _ = out_tx.send(exit_frame(i, Some(NOT_STARTED))).await;
                None
            }
        };
        lock(&stdins).push(stdin);
    }
    drop(out_tx);

    let heard = Arc::new(std::sync::Mutex::new(Instant::now()));
    let (input, last) = (stdins.clone(), heard.clone());
    // Blocked in read() until the master writes or goes; ends with the process.
    std::thread::spawn(move || listen(input, last));
    let mut check = tokio::time::interval(Duration::from_secs(1));
    loop {
        tokio::select! {
            // A node ended; once all have (and their last frames are queued), the mux is done.
            ended = relays.join_next() => {
                if ended.is_none() {
                    break;
                }
            }
            // The master silent too long (killed, or its host cut off): closing their stdin
            // stops the nodes that are not detached.
            _ = check.tick() => {
                if lock(&heard).elapsed() > WATCHDOG {
                    lock(&stdins).clear();
                }
            }
        }
    }
    let _ = writer.await;
}

fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Reads the master's lines and carries them out; at the end of its input (the master is
/// gone), closes every node's stdin.
fn listen(stdins: Stdins, heard: Arc<std::sync::Mutex<Instant>>) {
    use std::io::BufRead;
    let mut input = std::io::stdin().lock();
    let mut line = Vec::new();
    while matches!(input.read_until(b'\n', &mut line), Ok(n) if n > 0) {
        *lock(&heard) = Instant::now();
        command(&line, &mut lock(&stdins));
        line.clear();
    }
    lock(&stdins).clear();
}

/// Carries out one line of the master.
fn command(line: &[u8], stdins: &mut [Option<std::fs::File>]) {
    use std::io::Write;
    let line = String::from_utf8_lossy(line);
    let Some((node, word)) = line.trim_end().split_once(' ') else {
        return; // `ping`, or nothing we know.
    };
    let Some(slot) = node.parse::<usize>().ok().and_then(|i| stdins.get_mut(i)) else {
        return;
    };
    if word == "close" {
        *slot = None;
    } else if let Some(stdin) = slot.as_mut() {
        // A node that is gone shows up by its own end; nothing to do here.
        let _ = stdin.write_all(format!("{word}\n").as_bytes());
    }
}

/// Relays node `i`'s stdout and stderr as frames, then its exit code.
async fn relay(i: usize, mut child: Child, tx: mpsc::Sender<Vec<u8>>) {
    let out = child.stdout.take();
    let err = child.stderr.take();
    tokio::join!(
        relay_lines(i, b'o', out, tx.clone()),
        relay_lines(i, b'e', err, tx.clone())
    );
    let code = child.wait().await.ok().and_then(|s| s.code());
    let _ = tx.send(exit_frame(i, code)).await;
}

async fn relay_lines(
    i: usize,
    kind: u8,
    input: Option<impl AsyncRead + Unpin>,
    tx: mpsc::Sender<Vec<u8>>,
) {
    let Some(input) = input else { return };
    let mut input = BufReader::new(input);
    let mut line = Vec::new();
    while matches!(input.read_until(b'\n', &mut line).await, Ok(n) if n > 0) {
        let _ = tx.send(frame(i, kind, &line)).await;
        line.clear();
    }
}

/// Writes frames as they come; write errors (the master is gone) are ignored so that the
/// nodes are never blocked on their output.
async fn write_frames(mut out: impl AsyncWrite + Unpin, mut rx: mpsc::Receiver<Vec<u8>>) {
    let mut ok = true;
    while let Some(f) = rx.recv().await {
        if ok {
            ok = out.write_all(&f).await.is_ok();
            if ok && rx.is_empty() {
                ok = out.flush().await.is_ok();
            }
        }
    }
    let _ = out.flush().await;
}
