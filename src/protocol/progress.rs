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
        /// Every second of the run before this one has been sent in `seconds` (of this line or
        /// an earlier one): a master merging nodes knows the node's seconds before it are final.
        #[serde(default)]
        through: u32,
        /// What completed in the seconds that ended since the last line (usually one; seconds
        /// with nothing completed are left out), each once. Absent from older nodes.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        seconds: Vec<SecondTally>,
        /// CPU busy of the node's host over its last sample, % of all cores (0-100); absent
        /// before the first sample, where /proc cannot be read, and from older nodes.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        cpu: Option<f64>,
    },
    /// The run ended and its result file is written.
    Done {
        /// Path of the result XML.
        result: String,
        /// True when stopped before the plan ended.
        interrupted: bool,
    },
}

/// What completed on one node during one second of its run: counts, and latency as interval
/// histograms ([`crate::result::Packed`], base64) that add exactly across nodes.
///
/// Bounded: a line holds at most [`MAX_SECONDS_PER_LINE`] tallies and their histograms at most
/// [`LATENCY_BUDGET`] bytes of base64 (plus the one that crosses it, at most ~40 KiB); a
/// histogram past the budget is left out (`latency` absent), its counts still sent. A count is
/// at most 20 digits, so a step's entry without histogram is under 160 bytes: 100 steps × 4
/// seconds under 64 KiB, and the worst line under 256 + 40 + 64 + 1 KiB ≈ 360 KiB, far below
/// [`crate::protocol::lines::MAX_LINE`] (1 MiB); `engine::tally`'s test builds one (100 steps
/// of 20 000 pages spread over every bucket: 290 KiB). A typical second's histogram is 100-400
/// bytes.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct SecondTally {
    /// Second of the node's run (from its start) this covers.
    pub second: u32,
    /// Users running on the node when the second was sent.
    pub users: u32,
    /// Requests completed in the second, and of them those that failed (bad status, check) or
    /// erred (no response).
    pub requests: u64,
    pub failures: u64,
    pub errors: u64,
    /// Successful tests and pages completed in the second.
    pub tests_ok: u64,
    pub pages_ok: u64,
    /// Latency of all pages (successes and failures), µs; `None` when left out for the budget.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency: Option<String>,
    /// Steps that completed a page in the second, by step number.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub steps: Vec<StepTally>,
}

/// The pages of one step completed in one second on one node.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct StepTally {
    /// Step number, from 0, in the test's order.
    pub step: u32,
    /// Pages completed (successes, failures and errors), failures, errors.
    pub pages: u64,
    pub failures: u64,
    pub errors: u64,
    /// Response body bytes of the pages.
    pub bytes: u64,
    /// Latency of the successes and failures, µs; `None` when left out for the budget.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency: Option<String>,
}

/// Most seconds one progress line carries; a node that fell behind sends several lines.
pub const MAX_SECONDS_PER_LINE: usize = 4;
/// Bytes of base64 histograms one progress line carries at most (see [`SecondTally`]).
pub const LATENCY_BUDGET: usize = 256 * 1024;

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
