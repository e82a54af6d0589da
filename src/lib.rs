//! Bench Master: distributed HTTP load testing over SSH.
//!
//! # Layout
//!
//! The data flows one way, and the modules follow it:
//!
//! - [`test_def`]: the test definition (TOML) → a validated [`test_def::TestPlan`]; [`har`]
//!   writes one from a browser's HAR export (`bench-node import`).
//! - [`nodes`]: the nodes file (pssh format) → the list of nodes.
//! - [`master`]: deploy to the nodes over SSH (or as local processes), start them together,
//!   follow their progress, collect their results.
//! - [`protocol`]: the wire between master and nodes (the master's commands, progress events
//!   with each second's counts and latency histograms, the mux's frames), every line read from
//!   it bounded.
//! - [`node`]: what `bench-node` does as a process: hear the master, carry a host's nodes over
//!   one channel, raise its limits.
//! - [`live`]: the run second by second, merged exactly across nodes from their progress
//!   lines: what the live dashboard shows, the live thresholds judge and the exporters send.
//! - [`engine`]: what `bench-node run` does on each node: virtual users (or a `[generator]`
//!   program) in cycles, measured.
//! - [`monitor`]: host resources: /proc read and parsed, and the one sampling loop the nodes
//!   run for their own host and the master for `[monitor] hosts`.
//! - [`result`]: the shared result model (latency over time included), its XML writer and
//!   streaming reader.
//! - [`export`]: each second's numbers sent as the run goes to InfluxDB, StatsD or a
//!   Prometheus endpoint, through bounded buffers that never hold the bench up.
//! - [`report`]: merge node results exactly, compute statistics, judge the test's thresholds,
//!   write the HTML report, `summary.json`, text tables, `junit.xml` and markdown summaries,
//!   differential and trend reports and the workspace index.
//!
//! The binaries in `src/bin/` only parse flags and call into these modules; [`args`] holds the
//! flags they share (the run flags, completions and man pages) and turns them into typed values.

pub mod args;
pub mod engine;
pub mod export;
pub mod har;
pub mod live;
pub mod master;
pub mod monitor;
pub mod node;
pub mod nodes;
pub mod protocol;
pub mod report;
pub mod result;
pub mod test_def;
mod words;

/// Version of this build, written into results and compared by the master when deploying.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// What `bench-node --version` says: the version and the revision of the words master and node
/// exchange (deploy, mux, progress). The master keeps a node host's bench-node only when this
/// matches exactly, so a build that changed the protocol replaces an older binary of the same
/// version. Raise the revision with any change to those words.
pub const NODE_VERSION: &str = concat!(env!("CARGO_PKG_VERSION"), " (protocol 3)");

/// Writes `text` to standard output. A reader that went away (`bench-node check t.toml | head`)
/// ends the output quietly: `print!` would panic on the broken pipe.
pub fn print_stdout(text: &str) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(text.as_bytes()).and_then(|()| out.flush());
}
