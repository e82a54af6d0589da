//! What one `bench-report` invocation does, as a validated value, and running it.

use std::path::{Path, PathBuf};

use super::args::WorseLimit;
use super::ci::{self, CiFiles, Judged, Show};
use super::{build_diff, build_trend, index, ReportError, ReportOptions};

/// One invocation of `bench-report`, its inputs checked.
#[derive(Debug, Clone)]
pub enum Job {
    /// Merge result files into `out/index.html`, `out/summary.json` and `out/junit.xml`.
    Report {
        results: Vec<PathBuf>,
        out: PathBuf,
        ci: CiFiles,
        opts: ReportOptions,
    },
    /// Merge result files and print the main tables.
    Text {
        results: Vec<PathBuf>,
        ci: CiFiles,
        opts: ReportOptions,
    },
    /// Merge result files, judge their thresholds and write only the CI files.
    Judge {
        results: Vec<PathBuf>,
        ci: CiFiles,
        opts: ReportOptions,
    },
    /// Compare two runs into `out/index.html`; with a limit, fail when a metric is
    /// significantly worse by more than it.
    Diff {
        base: PathBuf,
        new: PathBuf,
        out: PathBuf,
        fail_if_worse: Option<WorseLimit>,
        opts: ReportOptions,
    },
    /// Follow runs (oldest first) into `out/index.html`.
    Trend {
        runs: Vec<PathBuf>,
        out: PathBuf,
        opts: ReportOptions,
    },
    /// Write `workdir/index.html` listing every report in the workspace.
    Index {
        workdir: PathBuf,
        templates: Option<PathBuf>,
    },
}

/// Runs a job; returns what to print on standard output and the thresholds' verdict.
pub fn run(job: Job) -> Result<Judged, ReportError> {
    let printed = |output: String| Judged {
        output,
        failed_thresholds: 0,
    };
    match job {
        Job::Report {
            results,
            out,
            ci,
            opts,
        } => ci::judge(&results, Some(&out), Show::Html, &ci, &opts),
        Job::Text { results, ci, opts } => ci::judge(&results, None, Show::Text, &ci, &opts),
        Job::Judge { results, ci, opts } => ci::judge(&results, None, Show::Verdict, &ci, &opts),
        Job::Diff {
            base,
            new,
            out,
            fail_if_worse,
            opts,
        } => diff(&base, &new, &out, fail_if_worse, &opts),
        Job::Trend { runs, out, opts } => Ok(printed(format!(
            "trend report: {}\n",
            build_trend(&runs, &out, &opts)?.display()
        ))),
        Job::Index { workdir, templates } => Ok(printed(format!(
            "index: {}\n",
            index::write_index_with(&workdir, templates.as_deref())?.display()
        ))),
    }
}

/// Writes the differential report; with `--fail-if-worse`, names every regression beyond the
/// limit (each counts as a failed threshold: exit code 4).
fn diff(
    base: &Path,
    new: &Path,
    out: &Path,
    limit: Option<WorseLimit>,
    opts: &ReportOptions,
) -> Result<Judged, ReportError> {
    let (page, diff) = build_diff(base, new, out, opts)?;
    let mut output = format!("differential report: {}\n", page.display());
    let mut failed = 0;
    if let Some(WorseLimit(limit)) = limit {
        let regressions = diff.regressions(limit);
        failed = regressions.len();
        if regressions.is_empty() {
            output += &format!("no metric is significantly worse by more than {limit} %\n");
        }
        for r in regressions {
            output += &format!("worse by more than {limit} %: {r}\n");
        }
    }
    Ok(Judged {
        output,
        failed_thresholds: failed,
    })
}
