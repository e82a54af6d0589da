//! What one `bench-report` invocation does, as a validated value, and running it.

use std::path::PathBuf;

use super::{
    build_diff, build_report, build_trend, index, text_report, ReportError, ReportOptions,
};

/// One invocation of `bench-report`, its inputs checked.
#[derive(Debug, Clone)]
pub enum Job {
    /// Merge result files into `out/index.html` and `out/summary.json`.
    Report {
        results: Vec<PathBuf>,
        out: PathBuf,
        opts: ReportOptions,
    },
    /// Merge result files and print the main tables.
    Text {
        results: Vec<PathBuf>,
        opts: ReportOptions,
    },
    /// Compare two runs into `out/index.html`.
    Diff {
        base: PathBuf,
        new: PathBuf,
        out: PathBuf,
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

/// Runs a job; returns what to print on standard output.
pub fn run(job: Job) -> Result<String, ReportError> {
    match job {
        Job::Report { results, out, opts } => {
            let written = build_report(&results, &out, &opts)?;
            let mut msg = String::new();
            for s in &written.summary.skipped {
                msg.push_str(&format!("skipped {}: {}\n", s.path, s.reason));
            }
            msg.push_str(&format!(
                "report of {} node(s): {}\nsummary: {}\n",
                written.summary.nodes,
                written.index_html.display(),
                written.summary_json.display()
            ));
            Ok(msg)
        }
        Job::Text { results, opts } => text_report(&results, &opts),
        Job::Diff {
            base,
            new,
            out,
            opts,
        } => Ok(format!(
            "differential report: {}\n",
            build_diff(&base, &new, &out, &opts)?.display()
        )),
        Job::Trend { runs, out, opts } => Ok(format!(
            "trend report: {}\n",
            build_trend(&runs, &out, &opts)?.display()
        )),
        Job::Index { workdir, templates } => Ok(format!(
            "index: {}\n",
            index::write_index_with(&workdir, templates.as_deref())?.display()
        )),
    }
}
