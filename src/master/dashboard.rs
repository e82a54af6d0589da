//! The live dashboard (`--live [ADDR]`): one page and its server-sent event stream, served
//! under a random token while the run lasts and until Ctrl+C after it.
//!
//! What it shows comes from a [`Board`]: the run's stages write to it (the coordinator's
//! node lines and [`crate::live::Live`] window while it runs, or `--attach`'s, fed from the
//! nodes' progress logs; the report's path at the end) and the stream reads it once a second. Every figure of the
//! cluster is the merged [`ClusterSecond`] of the live view: nothing is counted apart.
//!
//! Only `GET /TOKEN/` (the page) and `GET /TOKEN/events` (the stream) are served; a request
//! without the token gets 403, anything else under it 404.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::Path;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::{Body, Frame};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde::Serialize;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};

use super::coordinator::State;
use super::display::NodeLine;
use crate::live::{ClusterSecond, LiveWindow};

/// A node's CPU above this share (%) is flagged on the page.
pub const CPU_HOT: f64 = 90.0;
/// Events a slow page may have queued before it is sent no more (it reconnects by itself).
const STREAM_QUEUE: usize = 4;

/// What the dashboard shows, written by the run's stages (cheap to clone: one shared state).
#[derive(Clone, Default)]
pub struct Board {
    inner: Arc<Mutex<BoardState>>,
}

#[derive(Default)]
struct BoardState {
    run: String,
    test: String,
    /// Node names (`node0 local`), in the coordinator's order.
    names: Vec<String>,
    /// The nodes' lines, as the coordinator last drew them.
    nodes: Option<watch::Receiver<Arc<Vec<NodeLine>>>>,
    /// The cluster's settled seconds.
    window: Option<watch::Receiver<Arc<LiveWindow>>>,
    /// Node statuses set directly, when nothing follows the nodes.
    statuses: Vec<NodeLine>,
    /// The report, once built.
    report: Option<String>,
    /// The run is over (report built, or given up).
    finished: bool,
}

impl Board {
    fn with<T>(&self, f: impl FnOnce(&mut BoardState) -> T) -> T {
        // A panic elsewhere while holding the lock leaves plain data behind: keep using it.
        let mut s = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        f(&mut s)
    }

    /// Names the run and its test.
    pub fn run(&self, run: &str, test: &str) {
        self.with(|s| {
            s.run = run.to_string();
            s.test = test.to_string();
        });
    }

    /// Follows a run (the coordinator's, or `--attach`'s): its nodes' lines and the
    /// cluster's settled seconds.
    pub fn follow(
        &self,
        names: Vec<String>,
        nodes: watch::Receiver<Arc<Vec<NodeLine>>>,
        window: watch::Receiver<Arc<LiveWindow>>,
    ) {
        self.with(|s| {
            s.names = names;
            s.nodes = Some(nodes);
            s.window = Some(window);
        });
    }

    /// Node names and statuses known without following the nodes.
    pub fn statuses(&self, names: Vec<String>, lines: Vec<NodeLine>) {
        self.with(|s| {
            s.names = names;
            s.statuses = lines;
        });
    }

    /// The run is over; `report` is its HTML page when one was built.
    pub fn finished(&self, report: Option<&Path>) {
        self.with(|s| {
            s.report = report.map(|p| {
                let p = std::fs::canonicalize(p).unwrap_or_else(|_| p.to_owned());
                format!("file://{}", p.display())
            });
            s.finished = true;
        });
    }

    /// What the page shows now.
    pub fn snapshot(&self) -> Snapshot {
        self.with(|s| {
            let lines: Vec<NodeLine> = match &s.nodes {
                Some(rx) => rx.borrow().as_ref().clone(),
                None => s.statuses.clone(),
            };
            let window = s.window.as_ref().map(|w| w.borrow().clone());
            let last = window.as_ref().and_then(|w| w.last().cloned());
            let rates = window
                .as_ref()
                .map(|w| w.seconds.iter().map(|s| s.requests).collect())
                .unwrap_or_default();
            Snapshot {
                run: s.run.clone(),
                test: s.test.clone(),
                cycle: lines.iter().filter_map(|l| l.cycle).max().map(|c| c + 1),
                cluster: last.as_ref().map(ClusterView::of),
                rates,
                nodes: s
                    .names
                    .iter()
                    .zip(&lines)
                    .map(|(name, l)| NodeView::of(name, l))
                    .collect(),
                report: s.report.clone(),
                finished: s.finished,
            }
        })
    }
}

/// One event of the stream: the whole page's data (a page that missed events loses nothing).
#[derive(Debug, Clone, Serialize)]
pub struct Snapshot {
    pub run: String,
    pub test: String,
    /// Highest cycle a node is in, from 1.
    pub cycle: Option<u32>,
    /// The cluster's last settled second; `None` before the first.
    pub cluster: Option<ClusterView>,
    /// Requests of each settled second of the window, oldest first (the page's sparkline).
    pub rates: Vec<u64>,
    pub nodes: Vec<NodeView>,
    /// `file://` URL of the report, once built.
    pub report: Option<String>,
    pub finished: bool,
}

/// The cluster in one second, merged exactly from the nodes' interval histograms.
#[derive(Debug, Clone, Serialize)]
pub struct ClusterView {
    /// Second of the run.
    pub second: u32,
    /// Requests completed in the second (= requests/s).
    pub requests: u64,
    /// Failures and errors in the second (= errors/s).
    pub errors: u64,
    /// Latency percentiles of the second's pages, ms; `None` when none completed.
    pub p50_ms: Option<f64>,
    pub p95_ms: Option<f64>,
    pub p99_ms: Option<f64>,
    /// Users running, all nodes.
    pub users: u32,
    /// A node's histogram was missing: its counts are in, its latencies are not.
    pub latency_partial: bool,
}

impl ClusterView {
    fn of(s: &ClusterSecond) -> ClusterView {
        let q = |q: f64| {
            (!s.latency.is_empty()).then(|| s.latency.value_at_quantile(q) as f64 / 1000.0)
        };
        ClusterView {
            second: s.second,
            requests: s.requests,
            errors: s.failures + s.errors,
            p50_ms: q(0.50),
            p95_ms: q(0.95),
            p99_ms: q(0.99),
            users: s.users,
            latency_partial: s.latency_partial,
        }
    }
}

/// One node's line on the page.
#[derive(Debug, Clone, Serialize)]
pub struct NodeView {
    pub name: String,
    /// Its state word (`running`, `done`, `failed`, ...).
    pub state: String,
    /// Cycle from 1.
    pub cycle: Option<u32>,
    pub users: u32,
    /// Requests per second over its last second.
    pub rps: f64,
    pub requests: u64,
    pub errors: u64,
    /// CPU busy of its host, % of all cores, when it reports it.
    pub cpu: Option<f64>,
    /// CPU above [`CPU_HOT`]: the node may be the bottleneck.
    pub hot: bool,
}

impl NodeView {
    fn of(name: &str, l: &NodeLine) -> NodeView {
        NodeView {
            name: name.to_string(),
            state: l.state.to_string(),
            cycle: l.cycle.map(|c| c + 1),
            users: l.users,
            rps: l.rps,
            requests: l.requests,
            errors: l.errors,
            cpu: l.cpu,
            hot: l.cpu.is_some_and(|c| c > CPU_HOT),
        }
    }
}

/// A node line that says its state only.
pub fn status_line(state: State) -> NodeLine {
    NodeLine {
        state,
        ..NodeLine::default()
    }
}

/// The dashboard's listening socket and token.
pub struct Dashboard {
    listener: TcpListener,
    token: String,
    page: Page,
}

/// The page's template; each request renders it with the board's snapshot of the moment,
/// which the stream then updates.
struct Page {
    templates: crate::report::templates::Templates,
}

impl Page {
    fn render(&self, board: &Board) -> Bytes {
        let mut ctx = tera::Context::new();
        ctx.insert("title", "Bench Master · live");
        ctx.insert("report_version", crate::VERSION);
        ctx.insert("cpu_hot", &CPU_HOT);
        let snapshot = serde_json::to_string(&board.snapshot()).expect("snapshots serialise");
        ctx.insert("initial", &snapshot);
        match self.templates.render("live.html", &ctx) {
            Ok(html) => Bytes::from(html),
            Err(e) => Bytes::from(format!("the live page could not be drawn: {e}")),
        }
    }
}

/// The dashboard could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum DashboardError {
    #[error("--live {addr}: cannot listen there: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("--live: the page template: {0}")]
    Template(#[from] crate::report::ReportError),
}

impl Dashboard {
    /// Binds `addr` and draws a fresh 128-bit token.
    pub async fn bind(addr: SocketAddr) -> Result<Dashboard, DashboardError> {
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| DashboardError::Bind { addr, source })?;
        let token = format!("{:032x}", rand::random::<u128>());
        let page = Page {
            templates: crate::report::templates::Templates::load(None)?,
        };
        // Drawn once now, so that a broken template shows before the run rather than on a
        // request.
        let mut ctx = tera::Context::new();
        ctx.insert("title", "");
        ctx.insert("report_version", "");
        ctx.insert("cpu_hot", &CPU_HOT);
        ctx.insert("initial", "{}");
        page.templates.render("live.html", &ctx)?;
        Ok(Dashboard {
            listener,
            token,
            page,
        })
    }

    /// The page's URL (with its token).
    pub fn url(&self) -> String {
        let addr = self
            .listener
            .local_addr()
            .map_or_else(|_| "?".into(), |a| a.to_string());
        format!("http://{addr}/{}/", self.token)
    }

    /// Serves `board` until `shutdown` completes.
    pub async fn serve(self, board: Board, shutdown: impl std::future::Future<Output = ()>) {
        let shared = Arc::new((self.token, self.page, board));
        let mut shutdown = std::pin::pin!(shutdown);
        loop {
            tokio::select! {
                // A browser connects: served by its own task.
                accepted = self.listener.accept() => {
                    let Ok((stream, _)) = accepted else { continue };
                    let shared = shared.clone();
                    tokio::spawn(async move {
                        let service = service_fn(move |req| {
                            let shared = shared.clone();
                            async move { Ok::<_, Infallible>(answer(&req, &shared)) }
                        });
                        let _ = http1::Builder::new()
                            .serve_connection(TokioIo::new(stream), service)
                            .await;
                    });
                }
                // Ctrl+C after the run (or the master ends).
                _ = &mut shutdown => return,
            }
        }
    }
}

type Reply = Response<http_body_util::combinators::BoxBody<Bytes, Infallible>>;

/// Answers one request: the page, the stream, 403 without the token, 404 otherwise.
fn answer<B>(req: &Request<B>, (token, page, board): &(String, Page, Board)) -> Reply {
    let path = req.uri().path();
    let rest = path
        .strip_prefix('/')
        .and_then(|p| p.strip_prefix(token.as_str()));
    let Some(rest) = rest.filter(|r| r.is_empty() || r.starts_with('/')) else {
        return plain(
            StatusCode::FORBIDDEN,
            "403 forbidden: this page needs its token\n",
        );
    };
    match (req.method(), rest) {
        (&Method::GET, "" | "/") => Response::builder()
            .header("content-type", "text/html; charset=utf-8")
            .header("cache-control", "no-store")
            .body(Full::new(page.render(board)).boxed())
            .expect("constant headers"),
        (&Method::GET, "/events") => Response::builder()
            .header("content-type", "text/event-stream")
            .header("cache-control", "no-store")
            .body(events(board.clone()).boxed())
            .expect("constant headers"),
        _ => plain(StatusCode::NOT_FOUND, "404 not found\n"),
    }
}

fn plain(status: StatusCode, text: &'static str) -> Reply {
    Response::builder()
        .status(status)
        .header("content-type", "text/plain; charset=utf-8")
        .body(Full::new(Bytes::from_static(text.as_bytes())).boxed())
        .expect("constant headers")
}

/// The event stream of one page: a snapshot at once and one every second, from a task that
/// ends when the page goes away (or falls [`STREAM_QUEUE`] events behind).
fn events(board: Board) -> EventStream {
    let (tx, rx) = mpsc::channel(STREAM_QUEUE);
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        loop {
            tick.tick().await;
            let json = serde_json::to_string(&board.snapshot()).expect("snapshots serialise");
            if tx
                .try_send(Bytes::from(format!("data: {json}\n\n")))
                .is_err()
            {
                return;
            }
        }
    });
    EventStream { rx }
}

/// A response body of server-sent events, fed by a channel.
struct EventStream {
    /// The events, as `data: ...\n\n` chunks.
    rx: mpsc::Receiver<Bytes>,
}

impl Body for EventStream {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        self.rx.poll_recv(cx).map(|b| b.map(|b| Ok(Frame::data(b))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn get(path: &str) -> Request<()> {
        Request::get(path).body(()).unwrap()
    }

    #[tokio::test]
    async fn only_the_page_and_its_stream_are_served_under_the_token() {
        let page = Page {
            templates: crate::report::templates::Templates::load(None).unwrap(),
        };
        let shared = ("abc".to_string(), page, Board::default());
        let status = |p: &str| answer(&get(p), &shared).status();
        assert_eq!(status("/abc/"), StatusCode::OK);
        assert_eq!(status("/abc"), StatusCode::OK);
        assert_eq!(status("/abc/events"), StatusCode::OK);
        assert_eq!(status("/abc/other"), StatusCode::NOT_FOUND);
        assert_eq!(status("/abd/"), StatusCode::FORBIDDEN);
        assert_eq!(status("/abcd/"), StatusCode::FORBIDDEN);
        assert_eq!(status("/"), StatusCode::FORBIDDEN);
        assert_eq!(status("/favicon.ico"), StatusCode::FORBIDDEN);
    }

    #[test]
    fn a_hot_node_is_flagged() {
        let board = Board::default();
        let hot = NodeLine {
            state: State::Running,
            cpu: Some(95.0),
            ..NodeLine::default()
        };
        board.statuses(
            vec!["a".into(), "b".into()],
            vec![hot, status_line(State::Done)],
        );
        let s = board.snapshot();
        assert!(s.nodes[0].hot);
        assert!(!s.nodes[1].hot);
        assert_eq!(s.nodes[1].state, "done");
    }
}
