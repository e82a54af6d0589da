//! The ceiling of the mandated HTTP client on this machine: GET requests in a loop over hyper's
//! `client::conn::http1`, one keep-alive connection per task on one current-thread runtime,
//! each connection polled by its own task, as bench-node does, but measuring nothing. Used by
//! `scripts/bench.sh` to tell bench-node's own cost apart from hyper's.
//!
//!   cargo run --release --example hyper_floor -- 127.0.0.1:18080 50 10
//!
//! Prints the requests per second over the run.

use std::cell::Cell;
use std::future::Future;
use std::net::SocketAddr;
use std::rc::Rc;
use std::task::Poll;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;

fn main() -> std::process::ExitCode {
    match run() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("hyper_floor: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn run() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let usage = "usage: hyper_floor ADDR CONNECTIONS SECONDS";
    let addr: SocketAddr = args.next().ok_or_else(|| anyhow::anyhow!(usage))?.parse()?;
    let connections: usize = args.next().ok_or_else(|| anyhow::anyhow!(usage))?.parse()?;
    let secs: f64 = args.next().ok_or_else(|| anyhow::anyhow!(usage))?.parse()?;
    anyhow::ensure!(
        addr.ip().is_loopback(),
        "load goes to loopback only, not {addr}"
    );

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let done = Rc::new(Cell::new(0u64));
    let end = Instant::now() + Duration::from_secs_f64(secs);
    let local = tokio::task::LocalSet::new();
    local.block_on(&runtime, async {
        let mut tasks = tokio::task::JoinSet::new();
        for _ in 0..connections {
            tasks.spawn_local(connection(addr, end, done.clone()));
        }
        while let Some(r) = tasks.join_next().await {
            r??;
        }
        anyhow::Ok(())
    })?;
    println!("{:.0}", done.get() as f64 / secs);
    Ok(())
}

/// One connection's loop until `end`; counts complete responses in `done`.
async fn connection(addr: SocketAddr, end: Instant, done: Rc<Cell<u64>>) -> anyhow::Result<()> {
    let tcp = tokio::net::TcpStream::connect(addr).await?;
    tcp.set_nodelay(true)?;
    let (mut sender, conn) = http1::Builder::new()
        .writev(false)
        .handshake::<_, Empty<Bytes>>(TokioIo::new(tcp))
        .await?;
    let mut conn = std::pin::pin!(conn);
    let host = addr.to_string();
    while Instant::now() < end {
        let request = hyper::Request::get("/")
            .header(hyper::header::HOST, &host)
            .body(Empty::new())?;
        let response = drive(&mut conn, sender.send_request(request)).await??;
        let mut body = response.into_body();
        while let Some(frame) = drive(&mut conn, body.frame()).await? {
            frame?;
        }
        done.set(done.get() + 1);
        drive(&mut conn, sender.ready()).await??;
    }
    Ok(())
}

/// Awaits `fut` while polling the connection in the same task, and polls `fut` again right
/// after the connection's turn (as bench-node does: no round through the scheduler for the
/// connection's own wake-up).
async fn drive<T>(
    conn: &mut std::pin::Pin<&mut http1::Connection<TokioIo<tokio::net::TcpStream>, Empty<Bytes>>>,
    fut: impl std::future::Future<Output = T>,
) -> anyhow::Result<T> {
    let mut fut = std::pin::pin!(fut);
    std::future::poll_fn(|cx| {
        if let Poll::Ready(out) = fut.as_mut().poll(cx) {
            return Poll::Ready(Ok(out));
        }
        if let Poll::Ready(r) = conn.as_mut().poll(cx) {
            // The connection ended before the answer: the server closed it.
            return Poll::Ready(match r {
                Ok(()) => Err(anyhow::anyhow!("the server closed the connection")),
                Err(e) => Err(e.into()),
            });
        }
        fut.as_mut().poll(cx).map(Ok)
    })
    .await
}
