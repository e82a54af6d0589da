//! `--export` on the master: the live view's settled seconds (the cluster merged, each node)
//! handed to the [`Exporter`] as they settle, from a task that never holds the coordinator up.

use std::sync::Arc;

use tokio::sync::broadcast::error::RecvError;
use tokio::sync::{broadcast, oneshot, watch};
use tokio::task::JoinHandle;

use crate::export::{Exporter, Interval, SinkTally, Tags};
use crate::live::ClusterSecond;

/// Where the feed reads from: the coordinator's live view and start time.
pub struct Sources {
    pub seconds: broadcast::Receiver<Arc<ClusterSecond>>,
    pub started: watch::Receiver<Option<u64>>,
}

/// The running feed.
pub struct Feed {
    /// Tells the task that the run is over: take what is left, then end.
    stop: oneshot::Sender<()>,
    task: JoinHandle<Exporter>,
}

impl Feed {
    /// Starts feeding `exporter` from `sources`.
    pub fn start(exporter: Exporter, sources: Sources, tags: Tags) -> Feed {
        let (stop, stopped) = oneshot::channel();
        let task = tokio::spawn(feed(exporter, sources, tags, stopped));
        Feed { stop, task }
    }

    /// Once the coordinator is done: the last seconds, then each sink's flush and tally.
    pub async fn finish(self) -> Vec<SinkTally> {
        let _ = self.stop.send(());
        match self.task.await {
            Ok(exporter) => exporter.finish().await,
            Err(_) => Vec::new(),
        }
    }
}

async fn feed(
    exporter: Exporter,
    mut sources: Sources,
    tags: Tags,
    mut stopped: oneshot::Receiver<()>,
) -> Exporter {
    let push = |s: &ClusterSecond, sources: &Sources| {
        let start = sources.started.borrow().unwrap_or_else(|| {
            crate::result::unix_ms(std::time::SystemTime::now())
                .saturating_sub(u64::from(s.second + 1) * 1000)
        });
        exporter.push(Interval::of_cluster(s, start, &tags));
    };
    loop {
        tokio::select! {
            // A second settled (or the reader fell behind and lost some).
            r = sources.seconds.recv() => match r {
                Ok(s) => push(&s, &sources),
                Err(RecvError::Lagged(n)) => exporter.lost(n),
                Err(RecvError::Closed) => break,
            },
            // The run is over: what settled meanwhile is already in the channel.
            _ = &mut stopped => {
                while let Ok(s) = sources.seconds.try_recv() {
                    push(&s, &sources);
                }
                break;
            }
        }
    }
    exporter
}
