//! The node samples its own host's resources once a second during a run.

use std::time::{Duration, Instant};

use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::result::ResourceSample;

/// A background task sampling /proc every second until stopped.
pub struct LocalSampler {
    stop: oneshot::Sender<()>,
    task: JoinHandle<Vec<ResourceSample>>,
}

impl LocalSampler {
    pub fn start(t0: Instant) -> LocalSampler {
        let (stop, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(super::proc::sample_local_every(
            Duration::from_secs(1),
            t0,
            async move {
                let _ = rx.await;
            },
        ));
        LocalSampler { stop, task }
    }

    pub async fn stop(self) -> Vec<ResourceSample> {
        let _ = self.stop.send(());
        self.task.await.unwrap_or_default()
    }
}

/// This machine's host name.
pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "localhost".into())
}
