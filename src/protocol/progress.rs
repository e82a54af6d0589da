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

/// File name of a node's progress log in its directory (see [`ProgressLog`]).
pub const LOG_FILE: &str = "progress.jsonl";
/// Bytes past which a progress log starts again from empty: 16 MiB is some hours of one line
/// a second (a typical line is 0.5-4 KiB), and only the last minute is ever read.
pub const LOG_CAP: u64 = 16 * 1024 * 1024;

/// A node's progress lines, also kept in a file of its directory, so that `bench-master
/// --attach` can follow a detached node whose stdout nobody reads any more. Each line is
/// written whole in one call; past [`LOG_CAP`] the file is emptied and written again from its
/// start (`tail -F` follows that). A log that cannot be written is said once and given up:
/// the run never depends on it.
#[derive(Debug)]
pub struct ProgressLog {
    path: std::path::PathBuf,
    /// The open file and its length; `None` once given up.
    file: std::sync::Mutex<Option<(std::fs::File, u64)>>,
}

impl ProgressLog {
    /// Creates (or empties) the log at `path`.
    pub fn create(path: &std::path::Path) -> ProgressLog {
        let log = ProgressLog {
            path: path.to_owned(),
            file: std::sync::Mutex::new(None),
        };
        match std::fs::File::create(path) {
            Ok(f) => *log.lock() = Some((f, 0)),
            Err(e) => log.give_up(&e),
        }
        log
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<(std::fs::File, u64)>> {
        self.file.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn give_up(&self, e: &std::io::Error) {
        eprintln!(
            "bench-node: cannot write {}: {e} (bench-master --attach will not show this \
             node's numbers)",
            self.path.display()
        );
    }

    /// Appends `line` (without its newline).
    pub fn append(&self, line: &str) {
        use std::io::{Seek, Write};
        let mut guard = self.lock();
        let Some((file, len)) = guard.as_mut() else {
            return;
        };
        let mut bytes = Vec::with_capacity(line.len() + 1);
        bytes.extend_from_slice(line.as_bytes());
        bytes.push(b'\n');
        let mut write = || {
            if *len + bytes.len() as u64 > LOG_CAP {
                file.set_len(0)?;
                file.rewind()?;
                *len = 0;
            }
            file.write_all(&bytes)?;
            *len += bytes.len() as u64;
            Ok(())
        };
        if let Err(e) = write() {
            *guard = None;
            drop(guard);
            self.give_up(&e);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_log_keeps_whole_lines_and_starts_again_past_its_cap() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(LOG_FILE);
        let log = ProgressLog::create(&path);
        let line = "x".repeat(1023);
        for _ in 0..LOG_CAP / 1024 {
            log.append(&line);
        }
        assert_eq!(std::fs::metadata(&path).unwrap().len(), LOG_CAP);
        log.append("last");
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "last\n");
        // A directory that is not there: said, given up, the node goes on.
        let gone = ProgressLog::create(&dir.path().join("no/such/dir/log"));
        gone.append("ignored");
    }
}
