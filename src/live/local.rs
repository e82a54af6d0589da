//! A node's own seconds, watched as the master watches the cluster's: `bench-node run` feeds
//! its progress lines to a one-node [`Live`] view, and each second it settles is judged by
//! the live thresholds (running alone: [`AbortWatch`]) and handed to the exporters
//! (`--export`, through the same [`Exporter`] as the master's).

use std::sync::Arc;

use tokio::sync::broadcast;

use super::abort::AbortWatch;
use super::{ClusterSecond, Live, DEFAULT_WINDOW};
use crate::export::{Exporter, Interval, SinkTally, Tags};
use crate::protocol::progress::ProgressEvent;
use crate::report::threshold::LiveStop;

/// Where a node's settled seconds are exported.
pub struct LocalExport {
    pub exporter: Exporter,
    pub tags: Tags,
    /// When the run started, Unix ms (second 0 of the export).
    pub start_unix_ms: u64,
}

/// The node's own live view and what reads it.
pub struct LocalLive {
    live: Live,
    /// Settled seconds of `live`.
    seconds: broadcast::Receiver<Arc<ClusterSecond>>,
    abort: Option<AbortWatch>,
    export: Option<LocalExport>,
    /// The threshold that stopped the run, once one did.
    stopped_by: Option<LiveStop>,
}

impl LocalLive {
    /// A live view judged by `abort` and exported to `export`; `None` when neither is wanted
    /// (no live threshold, no sink).
    pub fn new(abort: Option<AbortWatch>, export: Option<LocalExport>) -> Option<LocalLive> {
        let export = export.filter(|e| !e.exporter.is_empty());
        if abort.is_none() && export.is_none() {
            return None;
        }
        let live = Live::new(vec![0], DEFAULT_WINDOW);
        Some(LocalLive {
            seconds: live.subscribe(),
            live,
            abort,
            export,
            stopped_by: None,
        })
    }

    /// Takes one progress line of this node; judges and exports the seconds it settled.
    pub fn progress(&mut self, event: &ProgressEvent) {
        self.live.progress(0, event);
        loop {
            let second = match self.seconds.try_recv() {
                Ok(s) => s,
                // Read once per line, the channel cannot fall behind; counted all the same.
                Err(broadcast::error::TryRecvError::Lagged(n)) => {
                    if let Some(e) = &self.export {
                        e.exporter.lost(n);
                    }
                    continue;
                }
                Err(_) => break,
            };
            if let (Some(watch), None) = (&mut self.abort, &self.stopped_by) {
                self.stopped_by = watch.second(&second);
            }
            if let Some(e) = &self.export {
                let interval = Interval::of_cluster(&second, e.start_unix_ms, &e.tags);
                e.exporter.push(interval);
            }
        }
    }

    /// The threshold that stopped the run, once one stayed broken.
    pub fn stopped_by(&self) -> Option<&LiveStop> {
        self.stopped_by.as_ref()
    }

    /// Once the run is over (its last line taken): how each sink fared, after sending what
    /// it holds (at most [`crate::export::FLUSH`]).
    pub async fn finish(self) -> Vec<SinkTally> {
        match self.export {
            Some(e) => e.exporter.finish().await,
            None => Vec::new(),
        }
    }
}
