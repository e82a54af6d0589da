//! Prometheus: a scrape endpoint on the master (or node), `GET /metrics` in the OpenMetrics
//! text format (the `prometheus-client` crate's registry and encoder). Counters
//! `bench_requests`, `bench_failures`, `bench_errors`, `bench_bytes` (`_total`) add up every
//! interval; gauges `bench_p50_ms`, `bench_p95_ms`, `bench_p99_ms` and `bench_users` hold the
//! last one; labels `run`, `test`, `cycle`, `step`, `node`. Served while the run lasts.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, RwLock};

use bytes::Bytes;
use http_body_util::Full;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Response, StatusCode};
use hyper_util::rt::TokioIo;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use tokio::net::TcpListener;
use tokio::sync::oneshot;

use super::{Interval, Sink};

type Labels = Vec<(String, String)>;
type Counters = Family<Labels, Counter>;
type Gauges = Family<Labels, Gauge<f64, AtomicU64>>;

/// The metrics, and the endpoint serving them until dropped.
pub struct Prometheus {
    counters: [Counters; 4],
    gauges: [Gauges; 4],
    /// Ends the endpoint's task when the sink goes.
    _stop: oneshot::Sender<()>,
}

const COUNTERS: [(&str, &str); 4] = [
    ("bench_requests", "Requests completed (pages for a step)"),
    (
        "bench_failures",
        "Requests that failed (bad status, failed check)",
    ),
    ("bench_errors", "Requests that erred (no response)"),
    ("bench_bytes", "Response body bytes"),
];
const GAUGES: [(&str, &str); 4] = [
    ("bench_p50_ms", "Median latency of the last second, ms"),
    (
        "bench_p95_ms",
        "95th percentile latency of the last second, ms",
    ),
    (
        "bench_p99_ms",
        "99th percentile latency of the last second, ms",
    ),
    ("bench_users", "Users running at the end of the last second"),
];

impl Prometheus {
    /// Binds `addr` and serves `/metrics` there; returns the sink and the endpoint's URL.
    pub async fn serve(addr: SocketAddr) -> Result<(Prometheus, String), String> {
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|e| format!("cannot listen on {addr}: {e}"))?;
        let url = format!(
            "http://{}/metrics",
            listener.local_addr().map_err(|e| e.to_string())?
        );
        let mut registry = Registry::default();
        let counters: [Counters; 4] = Default::default();
        let gauges: [Gauges; 4] = Default::default();
        for ((name, help), f) in COUNTERS.iter().zip(&counters) {
            registry.register(*name, *help, f.clone());
        }
        for ((name, help), f) in GAUGES.iter().zip(&gauges) {
            registry.register(*name, *help, f.clone());
        }
        let (stop, stopped) = oneshot::channel();
        tokio::spawn(endpoint(listener, Arc::new(RwLock::new(registry)), stopped));
        let sink = Prometheus {
            counters,
            gauges,
            _stop: stop,
        };
        Ok((sink, url))
    }

    fn record(&self, batch: &[Arc<Interval>]) {
        for i in batch {
            let cycle = i.cycle.unwrap_or(0).to_string();
            for p in &i.points {
                let labels: Labels = vec![
                    ("run".into(), i.run.clone()),
                    ("test".into(), i.test.clone()),
                    ("cycle".into(), cycle.clone()),
                    ("step".into(), p.step.clone()),
                    ("node".into(), p.node.clone()),
                ];
                let counts = [p.requests, p.failures, p.errors, p.bytes.unwrap_or(0)];
                for (f, n) in self.counters.iter().zip(counts) {
                    f.get_or_create(&labels).inc_by(n);
                }
                let users = p.users.map(f64::from);
                for (f, v) in self
                    .gauges
                    .iter()
                    .zip([p.p50_ms, p.p95_ms, p.p99_ms, users])
                {
                    if let Some(v) = v {
                        f.get_or_create(&labels).set(v);
                    }
                }
            }
        }
    }
}

impl Sink for Prometheus {
    fn send<'a>(
        &'a mut self,
        batch: &'a [Arc<Interval>],
    ) -> Pin<Box<dyn Future<Output = Result<(), String>> + Send + 'a>> {
        self.record(batch);
        Box::pin(std::future::ready(Ok(())))
    }
}

/// Serves `GET /metrics` (404 otherwise) until `stopped`.
async fn endpoint(
    listener: TcpListener,
    registry: Arc<RwLock<Registry>>,
    mut stopped: oneshot::Receiver<()>,
) {
    loop {
        tokio::select! {
            // A scrape.
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else { continue };
                let registry = registry.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                        let registry = registry.clone();
                        async move { Ok::<_, Infallible>(scrape(req.uri().path(), &registry)) }
                    });
                    let _ = http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
            // The sink is gone.
            _ = &mut stopped => return,
        }
    }
}

fn scrape(path: &str, registry: &RwLock<Registry>) -> Response<Full<Bytes>> {
    if path != "/metrics" {
        return Response::builder()
            .status(StatusCode::NOT_FOUND)
            .body(Full::new(Bytes::from_static(b"404 not found\n")))
            .expect("constant headers");
    }
    let mut text = String::new();
    let registry = registry.read().unwrap_or_else(|e| e.into_inner());
    let _ = prometheus_client::encoding::text::encode(&mut text, &registry);
    Response::builder()
        .header(
            "content-type",
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )
        .body(Full::new(Bytes::from(text)))
        .expect("constant headers")
}
