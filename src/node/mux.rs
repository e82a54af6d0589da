//! The node's half of the mux ([`crate::protocol::mux`]): runs the nodes of a host inside one
//! `bench-node mux` process, each as `bench-node run` would (its own flags, files, workers and
//! result), and relays their lines over its stdio. One process for a host's virtual nodes: a
//! process start and end costs a few ms of CPU each, which 128 nodes on a small machine feel.

use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine as _;
use clap::Parser;
use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use super::cli::{Cli, Command as NodeCommand};
use super::control::Control;
use crate::engine::NodeLine;
use crate::protocol::control::Command;
use crate::protocol::lines::{read_line_blocking, Line, MAX_LINE};
use crate::protocol::mux::{node_args, Frame, Put, ToMux, GO, MAX_RESULT, RESULT_CHUNK, WATCHDOG};

/// Exit code reported for a node that could not be started.
const NOT_STARTED: i32 = 127;

/// Where the master's words for each node go (passed on from the thread that reads them, so
/// that `start` reaches every node at once); a node's sender dropped is, to that node, its
/// master gone. Emptied when the master is gone.
type Stdins = Arc<std::sync::Mutex<Vec<Option<mpsc::UnboundedSender<Command>>>>>;

/// `bench-node mux -- DIR...`: writes the nodes' files the master sends first (see
/// [`crate::protocol::mux`]), then runs the node in each of `dirs` and relays their lines over
/// this process's stdio until every node ended.
pub async fn serve(dirs: &[String]) {
    let (out_tx, out_rx) = mpsc::channel::<Vec<u8>>(1024);
    let writer = tokio::spawn(write_frames(tokio::io::stdout(), out_rx));
    let stdins: Stdins = Arc::default();
    let heard = Arc::new(std::sync::Mutex::new(Instant::now()));
    let (files_tx, files) = oneshot::channel();
    let (spawned_tx, spawned) = std::sync::mpsc::channel();
    let (input, last, owned) = (stdins.clone(), heard.clone(), dirs.to_vec());
    // Blocked in read() until the master writes or goes; ends with the process.
    std::thread::spawn(move || listen(&owned, files_tx, spawned, input, last));
    let received = files
        .await
        .unwrap_or_else(|_| Err("the files were not received".into()));
    if let Err(why) = received {
        let why = format!("bench-node mux: {why}");
        for i in 0..dirs.len() {
            let _ = out_tx.send(Frame::Stderr(i, why.as_bytes()).encode()).await;
            let _ = out_tx
                .send(Frame::Exit(i, Some(NOT_STARTED)).encode())
                .await;
        }
        drop(out_tx);
        let _ = writer.await;
        return;
    }
    // One node's result is sent at a time, so that the master holds at most one per host.
    let results = Arc::new(tokio::sync::Mutex::new(()));
    let mut relays = tokio::task::JoinSet::new();
    for (i, dir) in dirs.iter().enumerate() {
        let (commands_tx, commands) = mpsc::unbounded_channel();
        let (lines_tx, lines) = mpsc::unbounded_channel();
        let node = tokio::spawn(node(dir.clone(), commands, lines_tx));
        let result = Path::new(dir).join("result.xml");
        relays.spawn(relay(
            i,
            node,
            lines,
            result,
            results.clone(),
            out_tx.clone(),
        ));
        lock(&stdins).push(Some(commands_tx));
    }
    drop(out_tx);
    let _ = spawned_tx.send(());

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

/// Reads the nodes' files from `input` up to `go`, writing each into the directories in `dirs`
/// it is for (a file for every node written once, then hard-linked, or copied where a link
/// cannot be made).
fn receive(
    input: &mut impl BufRead,
    dirs: &[String],
    heard: &std::sync::Mutex<Instant>,
) -> Result<(), String> {
    let mut line = Vec::new();
    loop {
        match read_line_blocking(input, &mut line, MAX_LINE) {
            Ok(Line::Full) => {}
            _ => return Err("the master went away before sending the nodes' files".into()),
        }
        *lock(heard) = Instant::now();
        if line.strip_suffix(b"\n").unwrap_or(&line) == GO.as_bytes() {
            return Ok(());
        }
        if line.strip_suffix(b"\n").unwrap_or(&line) == b"ping" {
            continue;
        }
        let Some(put) = Put::parse(&line) else {
            return Err(format!(
                "unexpected line from the master: {:?}",
                String::from_utf8_lossy(&line)
            ));
        };
        let targets: Vec<PathBuf> = match put.node {
            None => dirs.iter().map(|d| Path::new(d).join(&put.path)).collect(),
            Some(i) => match dirs.get(i) {
                Some(d) => vec![Path::new(d).join(&put.path)],
                None => return Err(format!("no node {i} for {}", put.path)),
            },
        };
        let fail = |path: &Path, e: std::io::Error| format!("cannot write {}: {e}", path.display());
        let Some((first, others)) = targets.split_first() else {
            return Err("no node directories given".into());
        };
        if let Some(parent) = first.parent() {
            std::fs::create_dir_all(parent).map_err(|e| fail(parent, e))?;
        }
        let mut file = std::fs::File::create(first).map_err(|e| fail(first, e))?;
        let copied = std::io::copy(&mut std::io::Read::take(&mut *input, put.len), &mut file)
            .map_err(|e| fail(first, e))?;
        if copied != put.len {
            return Err(format!(
                "{} ended after {copied} of {} bytes",
                put.path, put.len
            ));
        }
        drop(file);
        for path in others {
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent).map_err(|e| fail(parent, e))?;
            }
            let _ = std::fs::remove_file(path);
            if std::fs::hard_link(first, path).is_err() {
                std::fs::copy(first, path).map_err(|e| fail(path, e))?;
            }
        }
    }
}

fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Receives the nodes' files ([`receive`], its outcome to `files`), waits until the nodes are
/// `spawned`, then reads the master's lines and carries them out; at the end of its input (the
/// master is gone, or wrote a line no master writes), closes every node's stdin.
fn listen(
    dirs: &[String],
    files: oneshot::Sender<Result<(), String>>,
    spawned: std::sync::mpsc::Receiver<()>,
    stdins: Stdins,
    heard: Arc<std::sync::Mutex<Instant>>,
) {
    let mut input = std::io::stdin().lock();
    let received = receive(&mut input, dirs, &heard);
    let ok = received.is_ok();
    let _ = files.send(received);
    // The nodes are not started (files missing): nothing more to hear.
    if !ok || spawned.recv().is_err() {
        return;
    }
    let mut line = Vec::new();
    while let Ok(Line::Full) = read_line_blocking(&mut input, &mut line, MAX_LINE) {
        *lock(&heard) = Instant::now();
        command(&line, &mut lock(&stdins));
    }
    lock(&stdins).clear();
}

/// Carries out one line of the master (a `ping` was heard already; other lines are ignored).
fn command(line: &[u8], stdins: &mut [Option<mpsc::UnboundedSender<Command>>]) {
    let (i, command) = match ToMux::parse(line) {
        Some(ToMux::Say(i, command)) => (i, Some(command)),
        Some(ToMux::Close(i)) => (i, None),
        Some(ToMux::Ping) | None => return,
    };
    let Some(slot) = stdins.get_mut(i) else {
        return;
    };
    match (command, slot.as_mut()) {
        (None, _) => *slot = None,
        // A node that is gone shows up by its own end; nothing to do here.
        (Some(command), Some(node)) => {
            let _ = node.send(command);
        }
        (Some(_), None) => {}
    }
}

/// Runs the node in `dir` as `bench-node run` with the master's flags for it
/// ([`node_args`]) would, hearing the master's `commands` and saying its `lines`; returns its
/// exit code.
async fn node(
    dir: String,
    commands: mpsc::UnboundedReceiver<Command>,
    lines: mpsc::UnboundedSender<NodeLine>,
) -> i32 {
    let fail = |why: String, code: u8| {
        let _ = lines.send(NodeLine::Err(format!("bench-node: {why}")));
        i32::from(code)
    };
    let argv = std::iter::once("bench-node".to_string()).chain(node_args(&dir));
    let args = match Cli::try_parse_from(argv).map(|cli| cli.command) {
        Ok(Some(NodeCommand::Run(args))) => *args,
        Ok(_) => return fail("not a run".into(), 2),
        Err(e) => return fail(e.to_string(), 2),
    };
    let control = match Control::fed(commands) {
        Ok(control) => control,
        Err(e) => return fail(format!("cannot listen to signals: {e}"), 1),
    };
    match super::cli::bench(args, control, Some(lines.clone())).await {
        Ok(code) => i32::from(code),
        Err(e) => {
            let code = e.exit_code();
            fail(format!("{:#}", anyhow::Error::from(e)), code)
        }
    }
}

/// Relays node `i`'s lines as frames until it ends, then its result file ([`send_result`],
/// holding `results` meanwhile) and its exit code.
async fn relay(
    i: usize,
    node: JoinHandle<i32>,
    mut lines: mpsc::UnboundedReceiver<NodeLine>,
    result: PathBuf,
    results: Arc<tokio::sync::Mutex<()>>,
    tx: mpsc::Sender<Vec<u8>>,
) {
    let frame = |line: &NodeLine| match line {
        NodeLine::Out(text) => Frame::Stdout(i, text.as_bytes()).encode(),
        NodeLine::Err(text) => Frame::Stderr(i, text.as_bytes()).encode(),
    };
    let mut node = std::pin::pin!(node);
    let ended = loop {
        tokio::select! {
            biased;
            Some(line) = lines.recv() => {
                let _ = tx.send(frame(&line)).await;
            }
            ended = &mut node => break ended,
        }
    };
    while let Ok(line) = lines.try_recv() {
        let _ = tx.send(frame(&line)).await;
    }
    // A node that panicked ends as a panicking process would.
    let code = ended.unwrap_or(101);
    let turn = results.lock().await;
    send_result(i, &result, &tx).await;
    drop(turn);
    let _ = tx.send(Frame::Exit(i, Some(code)).encode()).await;
}

/// Sends node `i`'s result file, when there is one of at most [`MAX_RESULT`] bytes, as `r`
/// frames and an `f` frame; otherwise nothing (the master fetches it, or names it missing).
async fn send_result(i: usize, path: &Path, tx: &mpsc::Sender<Vec<u8>>) {
    let Ok(bytes) = tokio::fs::read(path).await else {
        return;
    };
    if bytes.len() > MAX_RESULT {
        return;
    }
    let base64 = base64::engine::general_purpose::STANDARD;
    for piece in bytes.chunks(RESULT_CHUNK) {
        let text = base64.encode(piece);
        if tx
            .send(Frame::Result(i, text.as_bytes()).encode())
            .await
            .is_err()
        {
            return;
        }
    }
    let _ = tx
        .send(Frame::ResultEnd(i, bytes.len() as u64).encode())
        .await;
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::master::deploy::DeployedNode;

    fn run_args(argv: Vec<String>) -> crate::node::cli::NodeRunArgs {
        match Cli::try_parse_from(argv).map(|cli| cli.command) {
            Ok(Some(NodeCommand::Run(args))) => *args,
            other => panic!("not a run: {:?}", other.err()),
        }
    }

    /// A mux's nodes share its process, so none keeps a pid file (one file fewer to make per
    /// node); a node run as its own process keeps one in its directory.
    #[test]
    fn only_a_node_of_its_own_keeps_a_pid_file() {
        let in_mux = run_args(
            std::iter::once("bench-node".into())
                .chain(node_args("w/n3"))
                .collect(),
        );
        assert_eq!(in_mux.pid_file, None);
        assert_eq!(in_mux.output, PathBuf::from("w/n3/result.xml"));
        assert!(in_mux.wait_start);
        let own = DeployedNode {
            number: 3,
            dir: "w/n3".into(),
            bench_node: "bench-node".into(),
        };
        let alone = run_args(own.command());
        assert_eq!(alone.pid_file, Some(PathBuf::from("w/n3/pid")));
        assert_eq!(alone.output, in_mux.output);
    }
}
