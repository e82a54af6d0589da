//! Collect: every finished node's result XML is fetched into `<run dir>/results/`, the nodes
//! that produced none are named with the tail of their stderr, and the report is built into
//! `<run dir>/report/` with the library's report builder.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Semaphore;

use super::follow::{log_paths, tail};
use super::state::NodeState;
use super::transport::{read_file, Transport};
use crate::report::{self, FailedNode, ReportOptions};

/// Lines of a failed node's stderr shown in the report.
pub const STDERR_TAIL: usize = 20;
/// Longest wait for one result file.
const FETCH_TIMEOUT: Duration = Duration::from_secs(120);

/// What collecting found.
#[derive(Debug, Default)]
pub struct Collected {
    /// Result files in `<run dir>/results/`, in node order.
    pub results: Vec<PathBuf>,
    /// Nodes without a result.
    pub failed: Vec<FailedNode>,
}

/// Fetches the results of the nodes marked `done` (at most `parallel` at once); every other
/// node is listed as failed.
pub async fn collect(
    nodes: &[(NodeState, Arc<dyn Transport>)],
    run_dir: &Path,
    parallel: &Arc<Semaphore>,
) -> Collected {
    let results_dir = run_dir.join("results");
    let _ = std::fs::create_dir_all(&results_dir);
    let fetches = nodes.iter().map(|(node, host)| {
        let local = results_dir.join(format!("node{}.xml", node.number));
        async move {
            if node.status != "done" {
                let why = node.reason.clone().unwrap_or_else(|| node.status.clone());
                return Err(why);
            }
            let _permit = parallel.acquire().await.expect("semaphore never closed");
            let remote = format!("{}/result.xml", node.dir);
            let bytes = tokio::time::timeout(FETCH_TIMEOUT, read_file(host.as_ref(), &remote))
                .await
                .map_err(|_| format!("fetching {remote} timed out"))?
                .map_err(|e| format!("no result: {e}"))?;
            std::fs::write(&local, bytes)
                .map_err(|e| format!("cannot write {}: {e}", local.display()))?;
            Ok(local)
        }
    });
    let mut collected = Collected::default();
    for ((node, host), fetched) in nodes.iter().zip(super::join_all(fetches).await) {
        match fetched {
            Ok(path) => collected.results.push(path),
            Err(reason) => collected.failed.push(FailedNode {
                name: format!("node{}", node.number),
                host: host.label().to_string(),
                reason,
                stderr_tail: tail(&log_paths(run_dir, node.number).1, STDERR_TAIL),
            }),
        }
    }
    collected
}

/// Builds the report of `collected` into `<run dir>/report/`; returns the HTML page.
pub fn build_report(run_dir: &Path, collected: &Collected) -> Result<PathBuf, report::ReportError> {
    let opts = ReportOptions {
        failed_nodes: collected.failed.clone(),
        skip_bad: true,
        templates: None,
    };
    let summary = report::build_report(&collected.results, &run_dir.join("report"), &opts)?;
    Ok(summary.index_html)
}

/// Refreshes the index page of the master workspace (every run, grouped by name).
pub fn refresh_index(workdir: &Path) -> Result<PathBuf, report::ReportError> {
    report::write_index(workdir)
}
