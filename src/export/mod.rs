//! Export: each interval's numbers sent, as the run goes, to the team's monitoring —
//! InfluxDB (line protocol over HTTP, [`influx`]), StatsD (UDP, [`statsd`]) or Prometheus
//! (a scrape endpoint, [`prometheus`]). `--export SINK=WHERE` ([`ExportSink`]) on both
//! `bench-master` (the cluster's merged seconds and each node's) and `bench-node run` (its own).
//!
//! Exporting never slows or stops the bench: [`Exporter::push`] never waits. Each sink has a
//! bounded channel ([`BUFFER`] intervals) and a background task that sends what it holds and,
//! when the sink is down or slow, keeps at most [`BUFFER`] intervals to send again a second
//! later. What could not be kept, or was still unsent at the end, is counted as dropped
//! ([`SinkTally`]) and said in the report.

pub mod influx;
pub mod interval;
pub mod prometheus;
pub mod statsd;

use std::collections::VecDeque;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

pub use interval::{Interval, Point, Tags};

/// Intervals a sink may hold unsent (its channel, and again its retry buffer).
pub const BUFFER: usize = 600;
/// Pause before a failed send is tried again.
const RETRY: Duration = Duration::from_secs(1);
/// Longest a sink gets at the end of the run to send what it holds.
pub const FLUSH: Duration = Duration::from_secs(5);
/// Longest one send may take (a sink that hangs counts as down).
const SEND_TIMEOUT: Duration = Duration::from_secs(3);

/// Where `--export` sends the numbers, as parsed from `SINK=WHERE`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExportSink {
    /// InfluxDB: the write URL, 1.x `http://HOST:8086/write?db=DB` or 2.x
    /// `http://HOST:8086/api/v2/write?org=ORG&bucket=BUCKET` (token from `INFLUX_TOKEN`).
    Influx(url::Url),
    /// A StatsD daemon, `HOST:PORT` (UDP).
    Statsd(String),
    /// A Prometheus scrape endpoint served here, on this address (`/metrics`).
    Prometheus(SocketAddr),
}

impl FromStr for ExportSink {
    type Err = String;

    fn from_str(value: &str) -> Result<ExportSink, String> {
        let Some((kind, place)) = value.split_once('=') else {
            return Err(
                "expected SINK=WHERE: influxdb=URL, statsd=HOST:PORT or prometheus=ADDR".into(),
            );
        };
        match kind {
            "influxdb" => influx::write_url(place).map(ExportSink::Influx),
            "statsd" => statsd::check_address(place).map(|()| ExportSink::Statsd(place.into())),
            "prometheus" => place.parse().map(ExportSink::Prometheus).map_err(|_| {
                format!("`{place}` is not an address and port such as 127.0.0.1:9400")
            }),
            other => Err(format!(
                "unknown sink `{other}`: influxdb, statsd or prometheus"
            )),
        }
    }
}

impl std::fmt::Display for ExportSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ExportSink::Influx(url) => write!(f, "influxdb={url}"),
            ExportSink::Statsd(addr) => write!(f, "statsd={addr}"),
            ExportSink::Prometheus(addr) => write!(f, "prometheus={addr}"),
        }
    }
}

/// One sink's delivery: a send of a batch of intervals, in order.
pub trait Sink: Send + 'static {
    /// Sends `batch`; an error leaves it to be sent again.
    fn send<'a>(
        &'a mut self,
        batch: &'a [Arc<Interval>],
    ) -> Pin<Box<dyn Future<Output = Result<(), String>> + Send + 'a>>;
}

/// A sink that could not be set up (before the run starts).
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error("--export {sink}: {message}")]
    Open { sink: String, message: String },
}

/// The one factory: the sink for `--export`, ready to take intervals.
pub async fn open(sink: &ExportSink) -> Result<Box<dyn Sink>, ExportError> {
    let fail = |message: String| ExportError::Open {
        sink: sink.to_string(),
        message,
    };
    Ok(match sink {
        ExportSink::Influx(url) => Box::new(influx::Influx::new(url.clone())),
        ExportSink::Statsd(addr) => Box::new(statsd::Statsd::connect(addr).await.map_err(fail)?),
        ExportSink::Prometheus(addr) => {
            let (sink, url) = prometheus::Prometheus::serve(*addr).await.map_err(fail)?;
            eprintln!("prometheus metrics: {url}");
            Box::new(sink)
        }
    })
}

/// How one sink fared over the run: carried into the report's summary.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SinkTally {
    /// The sink as given, e.g. `statsd=127.0.0.1:8125`.
    pub sink: String,
    /// Intervals delivered.
    pub sent: u64,
    /// Intervals given up: the buffer was full (sink down or slow), or still unsent at the end.
    pub dropped: u64,
}

/// A running sink: its channel and its task.
struct Running {
    name: String,
    /// Intervals for the sink's task (bounded: [`BUFFER`]).
    tx: mpsc::Sender<Arc<Interval>>,
    /// Intervals handed over (`accepted`), refused for a full channel, and delivered (counted
    /// by the task): what is not delivered at the end was dropped.
    accepted: AtomicU64,
    refused: AtomicU64,
    sent: Arc<AtomicU64>,
    task: JoinHandle<()>,
}

/// Every sink of a run (none when `--export` was not given).
#[derive(Default)]
pub struct Exporter {
    sinks: Vec<Running>,
}

impl Exporter {
    /// Opens every sink and starts its task.
    pub async fn start(sinks: &[ExportSink]) -> Result<Exporter, ExportError> {
        let mut running = Vec::new();
        for s in sinks {
            let sink = open(s).await?;
            let (tx, rx) = mpsc::channel(BUFFER);
            let sent = Arc::new(AtomicU64::new(0));
            running.push(Running {
                name: s.to_string(),
                tx,
                accepted: AtomicU64::new(0),
                refused: AtomicU64::new(0),
                task: tokio::spawn(deliver(sink, rx, sent.clone())),
                sent,
            });
        }
        Ok(Exporter { sinks: running })
    }

    /// True when there is no sink.
    pub fn is_empty(&self) -> bool {
        self.sinks.is_empty()
    }

    /// Hands `interval` to every sink, never waiting: a full channel counts it dropped.
    pub fn push(&self, interval: Interval) {
        let interval = Arc::new(interval);
        for s in &self.sinks {
            let counter = match s.tx.try_send(interval.clone()) {
                Ok(()) => &s.accepted,
                Err(_) => &s.refused,
            };
            counter.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Counts `n` intervals lost before they reached the exporter (a reader that fell behind).
    pub fn lost(&self, n: u64) {
        for s in &self.sinks {
            s.refused.fetch_add(n, Ordering::Relaxed);
        }
    }

    /// Lets every sink send what it holds (at most [`FLUSH`]), then tallies them.
    pub async fn finish(self) -> Vec<SinkTally> {
        let mut tallies = Vec::new();
        for s in self.sinks {
            drop(s.tx);
            let mut task = s.task;
            if tokio::time::timeout(FLUSH, &mut task).await.is_err() {
                task.abort();
            }
            let sent = s.sent.load(Ordering::Relaxed);
            let handed = s.accepted.load(Ordering::Relaxed);
            tallies.push(SinkTally {
                sink: s.name,
                sent,
                dropped: handed.saturating_sub(sent) + s.refused.load(Ordering::Relaxed),
            });
        }
        tallies
    }
}

/// A sink's task: takes intervals as they come, sends what it holds, keeps at most [`BUFFER`]
/// unsent ones while the sink fails and tries again every [`RETRY`]. Ends when the channel
/// closes and the held intervals are sent (or when aborted); counts what it delivered in `sent`.
async fn deliver(
    mut sink: Box<dyn Sink>,
    mut rx: mpsc::Receiver<Arc<Interval>>,
    sent: Arc<AtomicU64>,
) {
    let mut held: VecDeque<Arc<Interval>> = VecDeque::new();
    let mut open = true;
    while open || !held.is_empty() {
        if held.is_empty() {
            match rx.recv().await {
                Some(i) => held.push_back(i),
                None => break,
            }
        }
        // Everything else that already waits goes in the same batch.
        while let Ok(i) = rx.try_recv() {
            held.push_back(i);
        }
        // The oldest go first (counted as dropped at the end: never sent).
        while held.len() > BUFFER {
            held.pop_front();
        }
        let batch: Vec<Arc<Interval>> = held.iter().cloned().collect();
        match tokio::time::timeout(SEND_TIMEOUT, sink.send(&batch)).await {
            Ok(Ok(())) => {
                sent.fetch_add(batch.len() as u64, Ordering::Relaxed);
                held.clear();
            }
            // Down, refused or slow: keep them, wait, meanwhile take what comes.
            _ => {
                let pause = tokio::time::sleep(RETRY);
                tokio::pin!(pause);
                loop {
                    tokio::select! {
                        // Time to try again.
                        _ = &mut pause => break,
                        // A new interval while waiting (or the end of the run).
                        i = rx.recv(), if open => match i {
                            Some(i) => held.push_back(i),
                            None => open = false,
                        },
                    }
                }
            }
        }
    }
}
