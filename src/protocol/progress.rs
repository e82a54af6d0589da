//! Progress events: one JSON object per line on stdout with `--progress json`, read by the
//! master to show live progress and to learn that a node is ready or done.

use serde::{Deserialize, Serialize};

/// One progress line. The `event` field names the variant.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum ProgressEvent {
    /// The plan is loaded and the target resolved; with `--wait-start` the node now waits for
    /// `start` (now) or `start AT` (at Unix time AT, ms) on stdin.
    Ready {
        /// Node number.
        node: u32,
        /// Process id of the bench-node process (for `bench-master --stop`).
        pid: u32,
    },
    /// A cycle begins.
    Cycle {
        /// Cycle number, from 0.
        cycle: u32,
        /// Users (or executions per second) of the cycle on this node.
        users: u32,
    },
    /// Once per second while the run lasts.
    Progress {
        cycle: u32,
        /// Users running now.
        users: u32,
        /// Requests completed since the run started.
        requests: u64,
        /// Requests that failed (bad status, failed check) since the run started.
        failures: u64,
        /// Requests that erred (no response) since the run started.
        errors: u64,
        /// Requests per second over the last second.
        rps: f64,
        /// Seconds since the run started.
        elapsed: f64,
    },
    /// The run ended and its result file is written.
    Done {
        /// Path of the result XML.
        result: String,
        /// True when stopped before the plan ended.
        interrupted: bool,
    },
}

impl ProgressEvent {
    /// Parses one line; `None` when it is not a progress event (a stray line).
    pub fn parse(line: &str) -> Option<ProgressEvent> {
        serde_json::from_str(line.trim()).ok()
    }

    /// The JSON line, without its newline.
    pub fn to_line(&self) -> String {
        serde_json::to_string(self).expect("progress events always serialise")
    }
}
