//! Collect: every finished node's result XML is fetched into `<run dir>/results/`, the nodes
//! that produced none are named with the tail of their stderr, and the report is built into
//! `<run dir>/report/` with the library's report builder.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Semaphore;

use super::follow::{log_paths, result_path, tail};
use super::state::{NodeState, NodeStatus};
use super::transport::{read_files, Transport};
use crate::report::merge::Merger;
use crate::report::{self, FailedNode, ReportOptions, SkippedFile};
use crate::result::{HostResources, NodeResult};

/// Lines of a failed node's stderr shown in the report.
pub const STDERR_TAIL: usize = 20;
/// Longest wait for one result file.
const FETCH_TIMEOUT: Duration = Duration::from_secs(120);

/// What collecting found.
#[derive(Debug, Default)]
pub struct Collected {
    /// Result files in `<run dir>/results/`, in node order, each read back whole.
    pub results: Vec<PathBuf>,
    /// Those results merged as they were read back (each file is read once), for the report.
    pub merged: Merger,
    /// Results the merge refused (their plan or steps differ from the first one's).
    pub skipped: Vec<SkippedFile>,
    /// Each result's node number and when its load began, Unix ms (as `results`).
    pub started: Vec<(u32, u64)>,
    /// Nodes without a (readable) result.
    pub failed: Vec<FailedNode>,
    /// The results directory could not be written: where, and why.
    pub unwritable: Option<(PathBuf, std::io::Error)>,
    /// The threshold that stopped the run live, if one did (set by the master's run).
    pub stopped_by: Option<crate::report::threshold::LiveStop>,
    /// How the run's `--export` sinks fared (filled in by the run).
    pub exports: Vec<crate::export::SinkTally>,
}

/// Fetches the results of the nodes marked `done`, one command per host (hosts in parallel,
/// at most `parallel` at once), but for those `delivered` already (their mux brought them into
/// `results/`); every other node is listed as failed. The monitored hosts' `resources` join
/// the first readable result, in its file too.
pub async fn collect(
    nodes: &[(NodeState, Arc<dyn Transport>)],
    delivered: &[bool],
    run_dir: &Path,
    parallel: &Arc<Semaphore>,
    resources: Vec<HostResources>,
) -> Collected {
    let results_dir = run_dir.join("results");
    let _ = std::fs::create_dir_all(&results_dir);
    // The done nodes, grouped by host (one transport per host).
    let mut hosts: Vec<(&Arc<dyn Transport>, Vec<usize>)> = Vec::new();
    for (i, (node, host)) in nodes.iter().enumerate() {
        if node.status != NodeStatus::Done || delivered.get(i) == Some(&true) {
            continue;
        }
        match hosts.iter_mut().find(|(h, _)| Arc::ptr_eq(h, host)) {
            Some((_, list)) => list.push(i),
            None => hosts.push((host, vec![i])),
        }
    }
    let fetches = hosts.iter().map(|(host, list)| async move {
        let _permit = parallel.acquire().await.expect("semaphore never closed");
        let paths: Vec<String> = list
            .iter()
            .map(|&i| format!("{}/result.xml", nodes[i].0.dir))
            .collect();
        match tokio::time::timeout(FETCH_TIMEOUT, read_files(host.as_ref(), &paths)).await {
            Ok(Ok(files)) => files,
            Ok(Err(e)) => paths.iter().map(|_| Err(e.to_string())).collect(),
            Err(_) => paths
                .iter()
                .map(|p| Err(format!("fetching {p} timed out")))
                .collect(),
        }
    });
    let mut fetched: Vec<Option<Result<Vec<u8>, String>>> = nodes.iter().map(|_| None).collect();
    for ((_, list), files) in hosts.iter().zip(super::join_all(fetches).await) {
        for (&i, file) in list.iter().zip(files) {
            fetched[i] = Some(file);
        }
    }
    let mut collected = Collected::default();
    let mut resources = Some(resources).filter(|r| !r.is_empty());
    for (i, ((node, host), file)) in nodes.iter().zip(fetched).enumerate() {
        let local = result_path(run_dir, node.number);
        let here = node.status == NodeStatus::Done && delivered.get(i) == Some(&true);
        let saved = match file {
            None if here => check_result(&local),
            None => Err(node
                .reason
                .clone()
                .unwrap_or_else(|| node.status.to_string())),
            Some(Err(e)) => Err(format!("no result: {e}")),
            Some(Ok(bytes)) => match std::fs::write(&local, bytes) {
                Ok(()) => check_result(&local),
                Err(e) => {
                    let why = format!("cannot write {}: {e}", local.display());
                    collected.unwritable.get_or_insert((results_dir.clone(), e));
                    Err(why)
                }
            },
        };
        match saved {
            Ok(mut result) => {
                if let Some(samples) = resources.take() {
                    attach_resources(&local, &mut result, samples);
                }
                collected.results.push(local.clone());
                // When its load began: the planned instant, later by how late the node was.
                let began = result.began_unix_ms.unwrap_or(result.started_unix_ms);
                collected.started.push((node.number, began));
                if let Err(e) = collected.merged.add(&local, result) {
                    collected.skipped.push(SkippedFile {
                        path: local.display().to_string(),
                        reason: e.to_string(),
                    });
                }
            }
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

/// Adds the monitored hosts' samples to `result`, read from `path`, and to its file, so that
/// a report built again from the files has them too.
fn attach_resources(path: &Path, result: &mut NodeResult, samples: Vec<HostResources>) {
    result.resources.extend(samples);
    if let Err(e) = crate::result::write::write_file(result, path) {
        eprintln!(
            "bench-master: monitoring samples not written into {}: {e}",
            path.display()
        );
    }
}

/// Reads a fetched result back whole (a node cut off while writing, or a disk full on its
/// host, leaves it truncated), or says why it cannot be used, the file then kept aside as
/// `<name>.bad` so that the report is built from the others.
fn check_result(path: &Path) -> Result<NodeResult, String> {
    match crate::result::read::read_file(path) {
        Ok(result) => Ok(result),
        Err(e) => {
            let bad = path.with_extension("xml.bad");
            let kept = match std::fs::rename(path, &bad) {
                Ok(()) => format!("kept as {}", bad.display()),
                Err(_) => format!("left in {}", path.display()),
            };
            Err(format!("its result is unreadable ({e}); {kept}"))
        }
    }
}

/// Builds the report of `collected` (its merged results) into `<run dir>/report/`; returns
/// what was written.
pub fn build_report(
    run_dir: &Path,
    collected: Collected,
) -> Result<report::ReportSummary, report::ReportError> {
    let opts = ReportOptions {
        failed_nodes: collected.failed,
        exports: collected.exports,
        skip_bad: true,
        templates: None,
        stopped_by: collected.stopped_by,
    };
    report::build_merged(
        collected.merged,
        collected.skipped,
        &run_dir.join("report"),
        &opts,
    )
}

/// Refreshes the index page of the master workspace (every run, grouped by name).
pub fn refresh_index(workdir: &Path) -> Result<PathBuf, report::ReportError> {
    report::write_index(workdir)
}
