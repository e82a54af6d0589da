//! Reports: merge node results, compute statistics, write HTML, JSON and text.
//!
//! # Layout
//!
//! - [`merge`]: node results → one [`merge::MergedRun`], histograms added exactly.
//! - [`stats`]: FunkLoad's figures (STPS, SPPS, RPS, Apdex, percentiles) and `summary.json`;
//!   [`over_time`]: latency percentiles per interval and active users over time.
//! - [`view`]: the [`Report`] every output shows.
//! - outputs, one file each behind the [`Output`] trait: [`html`] (tera templates from
//!   `templates/`, charts from [`chart`]), [`json`], [`text`], [`junit`], [`markdown`].
//! - [`threshold`]: the test's thresholds judged on the merged result; [`ci`]: the CI files
//!   (`--junit`, `--markdown`) and the verdict of a `bench-report` run.
//! - [`diff`], [`trend`]: comparisons of runs, read back through [`input`];
//!   [`index`]: the page listing every run of a workspace.
//! - [`args`] → [`job`]: bench-report's flags, checked into one job, and running it.

pub mod args;
pub mod chart;
pub mod ci;
pub mod diff;
mod error;
pub mod html;
pub mod index;
pub mod input;
pub mod job;
pub mod json;
pub mod junit;
pub mod markdown;
pub mod merge;
pub mod over_time;
pub mod significance;
pub mod stats;
pub mod templates;
pub mod text;
pub mod threshold;
pub mod trend;
pub mod view;

use std::path::{Path, PathBuf};

pub use diff::build_diff;
pub use error::ReportError;
pub use index::write_index;
pub use stats::{FailedNode, SkippedFile, Summary};
pub use templates::Templates;
pub use trend::build_trend;
pub use view::Report;

use crate::result::NodeResult;
use merge::{MergedRun, Merger};

/// How to build a report.
#[derive(Debug, Clone, Default)]
pub struct ReportOptions {
    /// Nodes that produced no result, shown in the report (filled in by the master).
    pub failed_nodes: Vec<FailedNode>,
    /// How the run's `--export` sinks fared (filled in by the master).
    pub exports: Vec<crate::export::SinkTally>,
    /// Merge the good results and list the bad ones instead of failing on the first bad one.
    pub skip_bad: bool,
    /// Directory whose templates replace the embedded ones (same file names).
    pub templates: Option<PathBuf>,
    /// The threshold that stopped the run live (filled in by the master).
    pub stopped_by: Option<threshold::LiveStop>,
}

/// What [`build_report`] wrote.
#[derive(Debug, Clone)]
pub struct ReportSummary {
    /// The HTML report.
    pub index_html: PathBuf,
    /// The figures as JSON.
    pub summary_json: PathBuf,
    pub summary: Summary,
}

/// One way of writing a report: an HTML page, a JSON summary, text tables.
pub trait Output {
    /// Name of the file it writes in the output directory.
    fn file_name(&self) -> &'static str;
    /// The file's content.
    fn render(&self, report: &Report) -> Result<Vec<u8>, ReportError>;
}

/// The outputs a report can be written as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Html,
    Json,
    Text,
    /// The thresholds as JUnit test cases.
    Junit,
}

/// The output of one format.
pub fn output(format: Format, templates: &Templates) -> Box<dyn Output + '_> {
    match format {
        Format::Html => Box::new(html::HtmlOutput::new(templates)),
        Format::Json => Box::new(json::JsonOutput),
        Format::Text => Box::new(text::TextOutput),
        Format::Junit => Box::new(junit::JunitOutput),
    }
}

/// Reads one result file.
pub fn read_result(path: &Path) -> Result<NodeResult, ReportError> {
    crate::result::read::read_file(path).map_err(|error| ReportError::Read {
        path: path.to_path_buf(),
        error: Box::new(error),
    })
}

/// Reads and merges result files one at a time. With `skip_bad`, unreadable or mismatching
/// files are listed instead of failing the merge.
pub fn merge_files(
    results: &[PathBuf],
    skip_bad: bool,
) -> Result<(MergedRun, Vec<SkippedFile>), ReportError> {
    let mut merger = Merger::new();
    let mut skipped = Vec::new();
    for path in results {
        let added = read_result(path).and_then(|node| merger.add(path, node));
        match added {
            Ok(()) => {}
            Err(e) if skip_bad && e.is_bad_input() => skipped.push(SkippedFile {
                path: path.display().to_string(),
                reason: format!("{e}"),
            }),
            Err(e) => return Err(e),
        }
    }
    let run = merger.finish().ok_or(ReportError::NoResults {
        skipped: skipped.len(),
    })?;
    Ok((run, skipped))
}

/// The report of a merged run.
pub fn report_of(run: MergedRun, skipped: &[SkippedFile], opts: &ReportOptions) -> Report {
    let mut summary = stats::summarize(&run, &opts.failed_nodes, skipped, opts.stopped_by.as_ref());
    summary.exports = opts.exports.clone();
    Report::new(run, summary)
}

/// Merges result files and writes `index.html`, `summary.json` and `junit.xml` into `out_dir`.
pub fn build_report(
    results: &[PathBuf],
    out_dir: &Path,
    opts: &ReportOptions,
) -> Result<ReportSummary, ReportError> {
    let (run, skipped) = merge_files(results, opts.skip_bad)?;
    write_report(&report_of(run, &skipped, opts), out_dir, opts)
}

/// Writes the report of the results in `merger` (the files in `skipped` left out) into
/// `out_dir`, as [`build_report`] does with files it reads itself.
pub fn build_merged(
    merger: merge::Merger,
    skipped: Vec<SkippedFile>,
    out_dir: &Path,
    opts: &ReportOptions,
) -> Result<ReportSummary, ReportError> {
    let run = merger.finish().ok_or(ReportError::NoResults {
        skipped: skipped.len(),
    })?;
    write_report(&report_of(run, &skipped, opts), out_dir, opts)
}

/// Writes a computed report into `out_dir` (created if missing).
pub fn write_report(
    report: &Report,
    out_dir: &Path,
    opts: &ReportOptions,
) -> Result<ReportSummary, ReportError> {
    let templates = Templates::load(opts.templates.as_deref())?;
    std::fs::create_dir_all(out_dir).map_err(ReportError::io(out_dir))?;
    for format in [Format::Json, Format::Html, Format::Junit] {
        let out = output(format, &templates);
        let path = out_dir.join(out.file_name());
        let bytes = out.render(report)?;
        std::fs::write(&path, bytes).map_err(ReportError::io(&path))?;
    }
    Ok(ReportSummary {
        index_html: out_dir.join(html::FILE_NAME),
        summary_json: out_dir.join(json::FILE_NAME),
        summary: report.summary.clone(),
    })
}

/// Merges result files and returns the main tables as text.
pub fn text_report(results: &[PathBuf], opts: &ReportOptions) -> Result<String, ReportError> {
    let (run, skipped) = merge_files(results, opts.skip_bad)?;
    let bytes = text::TextOutput.render(&report_of(run, &skipped, opts))?;
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}
