//! The master's half of the mux ([`crate::protocol::mux`]): one `bench-node mux` process per
//! host, split into one ordinary [`Process`] per node for the coordinator.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use base64::Engine as _;
use bytes::Bytes;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, BufReader, DuplexStream};
use tokio::sync::{mpsc, oneshot, watch};

use super::transport::Process;
use crate::protocol::control::Command;
use crate::protocol::lines::{read_line_resumable, Line, MAX_LINE};
use crate::protocol::mux::{Frame, Put, ToMux, GO, HEARTBEAT, MAX_FRAME, MAX_RESULT};

/// A file the mux writes into its nodes' directories before starting them.
#[derive(Debug, Clone)]
pub struct NodeFile {
    /// The node (its position among the mux's nodes); `None`: every node.
    pub node: Option<usize>,
    /// Where, relative to the node's directory.
    pub path: String,
    pub bytes: Bytes,
}

/// What the master sends the mux before the nodes' lines: every file, then `go`.
fn preamble(files: &[NodeFile]) -> Vec<Bytes> {
    let mut out = Vec::with_capacity(2 * files.len() + 1);
    for f in files {
        let put = Put {
            node: f.node,
            len: f.bytes.len() as u64,
            path: f.path.clone(),
        };
        out.push(Bytes::from(put.line()));
        out.push(f.bytes.clone());
    }
    out.push(Bytes::from(format!("{GO}\n")));
    out
}

/// The master's end of one node: where its output and exit go.
struct NodeEnds {
    stdout: Option<DuplexStream>,
    stderr: Option<DuplexStream>,
    exit: Option<oneshot::Sender<Option<i32>>>,
    /// The node's result file as received so far; `None` once it passed [`MAX_RESULT`] or
    /// could not be decoded (the master then fetches it itself).
    result: Option<Vec<u8>>,
    /// Where the complete result goes.
    result_tx: Option<oneshot::Sender<Vec<u8>>>,
}

/// Buffer of each node's stdout and stderr pipe in the master.
const PIPE: usize = 64 * 1024;
/// Longest line a node's stdin keeps (`start` and a Unix time in ms are 20 bytes).
const MAX_COMMAND: usize = 64;

/// Splits the mux's process into the processes of its `n` nodes, sending it `files` first.
pub fn split(process: Process, n: usize, files: &[NodeFile]) -> Vec<Process> {
    let Process {
        stdin,
        stdout,
        stderr,
        exit,
        ..
    } = process;
    let (lines_tx, lines_rx) = mpsc::unbounded_channel();
    let (written_tx, written) = watch::channel(0);
    tokio::spawn(feed(stdin, preamble(files), lines_rx, written_tx));
    let lines = Arc::new(Lines {
        queue: std::sync::Mutex::new((0, lines_tx)),
    });
    let mut nodes = Vec::with_capacity(n);
    let mut ends = Vec::with_capacity(n);
    for i in 0..n {
        let (out_w, out_r) = tokio::io::duplex(PIPE);
        let (err_w, err_r) = tokio::io::duplex(PIPE);
        let (exit_tx, exit_rx) = oneshot::channel();
        let (result_tx, result_rx) = oneshot::channel();
        let stdin = NodeStdin {
            node: i,
            line: Vec::new(),
            lines: lines.clone(),
            last: 0,
            written: written.clone(),
            flushing: None,
        };
        nodes.push(Process {
            stdin: Box::new(stdin),
            stdout: Box::new(out_r),
            stderr: Box::new(err_r),
            exit: Box::pin(async move { exit_rx.await.ok().flatten() }),
            result: Some(Box::pin(async move { result_rx.await.ok() })),
        });
        ends.push(NodeEnds {
            stdout: Some(out_w),
            stderr: Some(err_w),
            exit: Some(exit_tx),
            result: Some(Vec::new()),
            result_tx: Some(result_tx),
        });
    }
    tokio::spawn(demux(stdout, stderr, exit, ends));
    nodes
}

/// The lines for the mux, numbered in the order they are queued.
struct Lines {
    /// The number of the last line queued, and the queue; the lock makes numbering and
    /// queueing one step, so that the numbers reach the feed in order.
    queue: std::sync::Mutex<(u64, mpsc::UnboundedSender<(u64, String)>)>,
}

impl Lines {
    /// Queues `text`; returns its number.
    fn push(&self, text: String) -> u64 {
        let mut queue = self.queue.lock().expect("not poisoned");
        queue.0 += 1;
        let _ = queue.1.send((queue.0, text));
        queue.0
    }
}

/// A node's stdin through the mux: each command written becomes `<i> <command>` (other lines
/// are dropped: the mux carries commands only); a flush completes
/// once the mux's channel took every line written before it (so that a `detach` said just
/// before the master leaves is not lost); dropping it closes the node's stdin (`<i> close`).
struct NodeStdin {
    node: usize,
    /// The line being written.
    line: Vec<u8>,
    lines: Arc<Lines>,
    /// Number of this node's last queued line.
    last: u64,
    /// Number of the last line the feed wrote (`u64::MAX` once the channel broke).
    written: watch::Receiver<u64>,
    /// A flush in progress.
    flushing: Option<Pin<Box<dyn Future<Output = ()> + Send>>>,
}

impl AsyncWrite for NodeStdin {
    fn poll_write(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let this = self.get_mut();
        for &b in buf {
            if b != b'\n' {
                // No command is longer: a longer line is not one, and is not kept whole.
                if this.line.len() < MAX_COMMAND {
                    this.line.push(b);
                }
                continue;
            }
            let command = Command::parse(&String::from_utf8_lossy(&this.line));
            this.line.clear();
            if let Some(command) = command {
                this.last = this.lines.push(ToMux::Say(this.node, command).line());
            }
        }
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        if *this.written.borrow() >= this.last {
            this.flushing = None;
            return Poll::Ready(Ok(()));
        }
        let last = this.last;
        let mut written = this.written.clone();
        let flushing = this.flushing.get_or_insert_with(|| {
            Box::pin(async move {
                // The feed gone: nothing more will be written; the node's end tells the rest.
                let _ = written.wait_for(|w| *w >= last).await;
            })
        });
        match flushing.as_mut().poll(cx) {
            Poll::Ready(()) => {
                this.flushing = None;
                Poll::Ready(Ok(()))
            }
            Poll::Pending => Poll::Pending,
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        self.poll_flush(cx)
    }
}

impl Drop for NodeStdin {
    fn drop(&mut self) {
        self.lines.push(ToMux::Close(self.node).line());
    }
}

/// Writes the `preamble` (the nodes' files), then the nodes' lines to the mux in order, and a
/// `ping` every [`HEARTBEAT`]; publishes the number of the last line written; closes the mux's
/// input once every node's stdin is closed.
async fn feed(
    mut stdin: Box<dyn AsyncWrite + Send + Unpin>,
    preamble: Vec<Bytes>,
    mut lines: mpsc::UnboundedReceiver<(u64, String)>,
    written: watch::Sender<u64>,
) {
    let mut ok = true;
    for piece in &preamble {
        ok = ok && stdin.write_all(piece).await.is_ok();
    }
    drop(preamble);
    let mut beat = tokio::time::interval(HEARTBEAT);
    beat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let (number, text) = tokio::select! {
            // A node's line, or the end of every node's input.
            line = lines.recv() => match line {
                Some((n, line)) => (Some(n), line),
                None => break,
            },
            // The master is alive.
            _ = beat.tick() => (None, ToMux::Ping.line()),
        };
        if ok {
            ok = stdin.write_all(text.as_bytes()).await.is_ok() && stdin.flush().await.is_ok();
        }
        // Once the channel is broken every line counts as written: no flush waits forever.
        if !ok {
            written.send_replace(u64::MAX);
        } else if let Some(n) = number {
            written.send_replace(n);
        }
    }
    let _ = stdin.shutdown().await;
}

/// Routes the mux's frames to the nodes; the mux's own stderr goes to every node still
/// running. When the mux ends, every node not yet ended ends with it (`None`: lost). A line
/// of the mux passing [`MAX_FRAME`] means a broken or hostile mux: it is passed on to the node
/// it names (to every node when it names none), whose follower fails the node for it, and the
/// mux's channel is given up: its nodes end as lost.
async fn demux(
    stdout: Box<dyn AsyncRead + Send + Unpin>,
    stderr: Box<dyn AsyncRead + Send + Unpin>,
    exit: super::transport::BoxFuture<'static, Option<i32>>,
    mut ends: Vec<NodeEnds>,
) {
    let mut out = BufReader::new(stdout);
    let mut err = BufReader::new(stderr);
    let (mut out_line, mut err_line) = (Vec::new(), Vec::new());
    let (mut out_open, mut err_open) = (true, true);
    // Resumable reads: when one stream's line (or end) wins the select, the other's line read
    // in part is kept, not dropped with a frame in it (a node's `done` went so, now and then,
    // when the mux's stderr closed while its last frames were coming in).
    while out_open || err_open {
        tokio::select! {
            // A frame of one node.
            read = read_line_resumable(&mut out, &mut out_line, MAX_FRAME), if out_open => {
                match read {
                    Ok(Line::Full) => route(&out_line, &mut ends).await,
                    Ok(Line::TooLong) => return overflow(&out_line, ends).await,
                    Ok(Line::End) | Err(_) => out_open = false,
                }
                out_line.clear();
            }
            // The mux's own complaint (bench-node missing, a shell error): every node's.
            read = read_line_resumable(&mut err, &mut err_line, MAX_LINE), if err_open => {
                match read {
                    Ok(Line::Full) => to_every_node(&err_line, &mut ends).await,
                    Ok(Line::TooLong) => return overflow(&err_line, ends).await,
                    Ok(Line::End) | Err(_) => err_open = false,
                }
                err_line.clear();
            }
        }
    }
    let code = exit.await;
    for end in &mut ends {
        if let (Some(tx), Some(code)) = (end.exit.take(), code) {
            // The mux itself failed (bench-node missing: 127): the node's exit code says so.
            let _ = tx.send((code != 0).then_some(code));
        }
    }
    // Dropping the ends closes the nodes' output; a node without an exit frame was lost.
}

/// Writes `bytes` to the stderr of every node still running.
async fn to_every_node(bytes: &[u8], ends: &mut [NodeEnds]) {
    for end in ends {
        if let Some(w) = end.stderr.as_mut() {
            let _ = w.write_all(bytes).await;
        }
    }
}

/// Passes an overlong line of the mux on (see [`demux`]) and ends every node: the mux's
/// channel, its output no longer read, is dropped with them.
async fn overflow(line: &[u8], mut ends: Vec<NodeEnds>) {
    let target = match Frame::decode(line) {
        Some(Frame::Stdout(i, payload)) => ends.get_mut(i).map(|e| (&mut e.stdout, payload)),
        Some(Frame::Stderr(i, payload)) => ends.get_mut(i).map(|e| (&mut e.stderr, payload)),
        _ => None,
    };
    match target {
        Some((Some(w), payload)) => {
            // The follower stops reading once past the limit: the rest need not go through.
            let _ = w.write_all(payload).await;
        }
        Some((None, _)) => {}
        None => to_every_node(line, &mut ends).await,
    }
    for end in &mut ends {
        if let Some(tx) = end.exit.take() {
            let _ = tx.send(None);
        }
    }
}

/// Routes one frame.
async fn route(line: &[u8], ends: &mut [NodeEnds]) {
    let Some(frame) = Frame::decode(line) else {
        return;
    };
    let (Frame::Stdout(i, _)
    | Frame::Stderr(i, _)
    | Frame::Result(i, _)
    | Frame::ResultEnd(i, _)
    | Frame::Exit(i, _)) = frame;
    let Some(end) = ends.get_mut(i) else {
        return;
    };
    let (w, payload) = match frame {
        Frame::Stdout(_, payload) => (&mut end.stdout, payload),
        Frame::Stderr(_, payload) => (&mut end.stderr, payload),
        Frame::Result(_, piece) => {
            let decoded = base64::engine::general_purpose::STANDARD.decode(piece);
            end.result = match (end.result.take(), decoded) {
                (Some(mut got), Ok(bytes)) if got.len() + bytes.len() <= MAX_RESULT => {
                    got.extend_from_slice(&bytes);
                    Some(got)
                }
                _ => None,
            };
            return;
        }
        Frame::ResultEnd(_, size) => {
            let got = end.result.take();
            if let (Some(got), Some(tx)) = (got, end.result_tx.take()) {
                if got.len() as u64 == size {
                    let _ = tx.send(got);
                }
            }
            return;
        }
        Frame::Exit(_, code) => {
            end.stdout = None;
            end.stderr = None;
            end.result = None;
            end.result_tx = None;
            if let Some(tx) = end.exit.take() {
                let _ = tx.send(code);
            }
            return;
        }
    };
    if let Some(w) = w.as_mut() {
        // A reader that went away is the follower's business.
        if w.write_all(payload).await.is_ok() {
            let _ = w.write_all(b"\n").await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    use crate::protocol::lines::read_line;
    use tokio::io::AsyncReadExt;

    /// A fake mux: the test plays the remote side through the other ends of its pipes.
    fn fake() -> (
        Process,
        DuplexStream,
        DuplexStream,
        DuplexStream,
        oneshot::Sender<i32>,
    ) {
        let (stdin, remote_in) = tokio::io::duplex(4096);
        let (remote_out, stdout) = tokio::io::duplex(4096);
        let (remote_err, stderr) = tokio::io::duplex(4096);
        let (exit_tx, exit_rx) = oneshot::channel::<i32>();
        let process = Process {
            stdin: Box::new(stdin),
            stdout: Box::new(stdout),
            stderr: Box::new(stderr),
            exit: Box::pin(async move { exit_rx.await.ok() }),
            result: None,
        };
        (process, remote_in, remote_out, remote_err, exit_tx)
    }

    async fn read_all(mut r: impl AsyncRead + Unpin) -> String {
        let mut s = String::new();
        r.read_to_string(&mut s).await.unwrap();
        s
    }

    #[tokio::test]
    async fn frames_reach_their_node_and_words_reach_the_mux() {
        let (process, remote_in, mut remote_out, remote_err, exit) = fake();
        let mut nodes = split(process, 2, &[]);
        let mut n1 = nodes.pop().unwrap();
        let mut n0 = nodes.pop().unwrap();
        n1.stdin.write_all(b"start\n").await.unwrap();
        drop(n0.stdin);
        remote_out
            .write_all(b"0 o {\"event\":\"ready\"}\n1 e warn ing\n0 x 0\n1 o a b c\n1 x -\n")
            .await
            .unwrap();
        assert_eq!(read_all(&mut n0.stdout).await, "{\"event\":\"ready\"}\n");
        assert_eq!(read_all(&mut n0.stderr).await, "");
        assert_eq!(n0.exit.await, Some(0));
        assert_eq!(read_all(&mut n1.stdout).await, "a b c\n");
        assert_eq!(read_all(&mut n1.stderr).await, "warn ing\n");
        assert_eq!(n1.exit.await, None);
        drop(n1.stdin);
        drop((remote_out, remote_err));
        let _ = exit.send(0);
        // Every node's input closed: the mux's input ends.
        let sent = read_all(remote_in).await;
        let lines: Vec<&str> = sent.lines().filter(|l| *l != "ping").collect();
        assert!(
            lines.contains(&"1 start") && lines.contains(&"0 close"),
            "{sent}"
        );
        assert_eq!(lines.last(), Some(&"1 close"), "{sent}");
    }

    /// The mux's stderr speaking (or closing) while a frame is coming in part by part must not
    /// cost that frame: a node's `done` was lost so, now and then, at the end of big runs.
    #[tokio::test]
    async fn a_frame_read_in_part_survives_the_muxs_stderr() {
        let (process, _remote_in, mut remote_out, mut remote_err, exit) = fake();
        let mut nodes = split(process, 1, &[]);
        remote_out.write_all(b"0 o {\"event\":\"do").await.unwrap();
        // The demux has read the first part and waits for the rest when stderr speaks.
        tokio::time::sleep(Duration::from_millis(50)).await;
        remote_err.write_all(b"a word of the mux\n").await.unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
        drop(remote_err);
        tokio::time::sleep(Duration::from_millis(50)).await;
        remote_out.write_all(b"ne\"}\n0 x 0\n").await.unwrap();
        drop(remote_out);
        let _ = exit.send(0);
        let mut n0 = nodes.pop().unwrap();
        assert_eq!(read_all(&mut n0.stdout).await, "{\"event\":\"done\"}\n");
        assert_eq!(read_all(&mut n0.stderr).await, "a word of the mux\n");
        assert_eq!(n0.exit.await, Some(0));
    }

    #[tokio::test]
    async fn a_lost_mux_ends_its_nodes_and_its_errors_reach_them() {
        let (process, _remote_in, remote_out, mut remote_err, exit) = fake();
        let mut nodes = split(process, 2, &[]);
        remote_err
            .write_all(b"sh: bench-node: not found\n")
            .await
            .unwrap();
        drop((remote_out, remote_err));
        let _ = exit.send(127);
        for node in &mut nodes {
            assert_eq!(
                read_all(&mut node.stderr).await,
                "sh: bench-node: not found\n"
            );
        }
        for node in nodes {
            assert_eq!(node.exit.await, Some(127));
        }
    }

    /// A mux line past the limit ends the mux's channel: the node it names gets it (cut), so
    /// that its follower sees it pass the limit; every node ends as lost; memory stays bounded.
    #[tokio::test]
    async fn an_overlong_frame_is_passed_on_and_the_mux_given_up() {
        let (process, _remote_in, mut remote_out, _remote_err, _exit) = fake();
        let mut nodes = split(process, 2, &[]);
        tokio::spawn(async move {
            remote_out.write_all(b"0 o fine\n1 o ").await.unwrap();
            let chunk = vec![b'a'; 64 * 1024];
            // Endless: the demux stops reading, and the writes fail once it dropped the pipe.
            while remote_out.write_all(&chunk).await.is_ok() {}
        });
        let n1 = nodes.pop().unwrap();
        let n0 = nodes.pop().unwrap();
        let mut out1 = BufReader::new(n1.stdout);
        let mut line = Vec::new();
        let read = read_line(&mut out1, &mut line, MAX_LINE).await.unwrap();
        assert_eq!((read, line.len()), (Line::TooLong, MAX_LINE + 1));
        assert_eq!(read_all(n0.stdout).await, "fine\n");
        assert_eq!(n0.exit.await, None);
        assert_eq!(n1.exit.await, None);
    }
}
