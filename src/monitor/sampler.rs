//! The one sampling loop: a snapshot of a host's /proc every second, two snapshots in a row
//! making one [`ResourceSample`]. Where snapshots come from is a parameter: the node reads its
//! own /proc ([`Sampler::local`]), the master runs a command over a transport
//! (`master::monitor`).

use std::future::Future;
use std::time::{Duration, Instant};

use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;

use super::proc::{read_local, sample, ProcSnapshot};
use crate::result::ResourceSample;

/// How often a host is sampled during a run.
pub const INTERVAL: Duration = Duration::from_secs(1);

/// A background task sampling one host every interval until stopped.
pub struct Sampler {
    /// Ends the loop; the task then returns what it sampled.
    stop: oneshot::Sender<()>,
    task: JoinHandle<Vec<ResourceSample>>,
    /// The last sample's CPU busy, % (for the progress lines: see [`Sampler::cpu`]).
    cpu: watch::Receiver<Option<f64>>,
}

impl Sampler {
    /// Starts sampling every `interval` with snapshots from `read`; sample times are ms since
    /// `start`. The first failure to read is handed to `warn`, later ones pass silently:
    /// resource samples are an aid, never a reason to fail a run.
    pub fn start<R, F>(
        interval: Duration,
        start: Instant,
        read: R,
        warn: impl FnOnce(String) + Send + 'static,
    ) -> Sampler
    where
        R: FnMut() -> F + Send + 'static,
        F: Future<Output = Result<ProcSnapshot, String>> + Send + 'static,
    {
        let (stop, rx) = oneshot::channel::<()>();
        let stopped = async move {
            let _ = rx.await;
        };
        let (cpu_tx, cpu) = watch::channel(None);
        let task = tokio::spawn(async move {
            sample_every(interval, start, read, warn, stopped, &cpu_tx).await
        });
        Sampler { stop, task, cpu }
    }

    /// The node's own host, every second from `t0` (the run's start). Where /proc cannot be
    /// read (not Linux) the samples are empty.
    pub fn local(t0: Instant) -> Sampler {
        let read = || async { read_local().map_err(|e| e.to_string()) };
        Sampler::start(INTERVAL, t0, read, |_| {})
    }

    /// The CPU busy of the last sample, % of all cores; `None` before the first.
    pub fn cpu(&self) -> watch::Receiver<Option<f64>> {
        self.cpu.clone()
    }

    /// Stops sampling and returns the samples, in time order.
    pub async fn stop(self) -> Vec<ResourceSample> {
        let _ = self.stop.send(());
        self.task.await.unwrap_or_default()
    }
}

/// Samples every `interval` until `stop` completes (see [`Sampler::start`]). The first
/// snapshot is taken at once and the first sample one interval later, since a rate needs two
/// snapshots. Each sample's CPU busy is also published on `cpu`.
pub async fn sample_every<R, F>(
    interval: Duration,
    start: Instant,
    mut read: R,
    warn: impl FnOnce(String),
    stop: impl Future<Output = ()>,
    cpu: &watch::Sender<Option<f64>>,
) -> Vec<ResourceSample>
where
    R: FnMut() -> F,
    F: Future<Output = Result<ProcSnapshot, String>>,
{
    let mut samples = Vec::new();
    let mut prev: Option<ProcSnapshot> = None;
    let mut warn = Some(warn);
    // From `start` when it is still to come (a node told to start at an instant), else now.
    let first = start.max(Instant::now());
    let mut ticker =
        tokio::time::interval_at(first.into(), interval.max(Duration::from_millis(10)));
    // A slow read (a remote host) delays the next one rather than bursting to catch up.
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    tokio::pin!(stop);
    loop {
        tokio::select! {
            // The run is over: keep what was sampled.
            _ = &mut stop => break,
            // Time for the next snapshot (the first at `first`).
            _ = ticker.tick() => {}
        }
        match read().await {
            Ok(now) => {
                if let Some(p) = &prev {
                    let at = now.taken_at.saturating_duration_since(start).as_millis();
                    let s = sample(p, &now, u64::try_from(at).unwrap_or(u64::MAX));
                    cpu.send_replace(Some(s.cpu_pct));
                    samples.push(s);
                }
                prev = Some(now);
            }
            Err(e) => {
                if let Some(warn) = warn.take() {
                    warn(e);
                }
            }
        }
    }
    samples
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn samples_every_interval_until_stopped() {
        let start = Instant::now();
        let stop = tokio::time::sleep(Duration::from_millis(350));
        let read = || async { read_local().map_err(|e| e.to_string()) };
        let samples = sample_every(
            Duration::from_millis(100),
            start,
            read,
            |_| {},
            stop,
            &watch::channel(None).0,
        )
        .await;
        assert!((1..=4).contains(&samples.len()), "{samples:?}");
        assert!(samples.windows(2).all(|w| w[0].at_ms < w[1].at_ms));
        assert!(samples.iter().all(|s| s.mem_total_kib > 0));
    }

    #[tokio::test]
    async fn the_first_failure_is_told_once_and_sampling_goes_on() {
        let start = Instant::now();
        let mut calls = 0;
        // Every third read fails; each success after a success makes a sample.
        let read = move || {
            calls += 1;
            let fail = calls % 3 == 2;
            async move {
                if fail {
                    Err(format!("read {calls} failed"))
                } else {
                    read_local().map_err(|e| e.to_string())
                }
            }
        };
        let (tx, rx) = std::sync::mpsc::channel();
        let warn = move |e: String| tx.send(e).unwrap();
        let stop = tokio::time::sleep(Duration::from_millis(560));
        let samples = sample_every(
            Duration::from_millis(50),
            start,
            read,
            warn,
            stop,
            &watch::channel(None).0,
        )
        .await;
        let told: Vec<String> = rx.try_iter().collect();
        assert_eq!(told, ["read 2 failed"]);
        assert!(samples.len() >= 3, "{samples:?}");
    }

    #[tokio::test]
    async fn a_sampler_returns_its_samples_when_stopped() {
        let sampler = Sampler::start(
            Duration::from_millis(20),
            Instant::now(),
            || async { read_local().map_err(|e| e.to_string()) },
            |_| {},
        );
        tokio::time::sleep(Duration::from_millis(150)).await;
        let samples = sampler.stop().await;
        assert!(!samples.is_empty());
    }
}
