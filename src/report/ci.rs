//! What a pipeline asks of `bench-report`: the run judged by its thresholds, a JUnit file
//! (`--junit`), a markdown summary (`--markdown`), and the exit code of the verdict.

use std::path::{Path, PathBuf};

use super::markdown::MarkdownOutput;
use super::threshold::{failed, write_text};
use super::{
    html, junit, merge_files, report_of, text, write_report, Output, Report, ReportError,
    ReportOptions, Templates,
};

/// Exit code when every node ran but a threshold failed (3, failed nodes, wins over it).
pub const EXIT_THRESHOLD_FAILED: u8 = 4;

/// Files written besides (or instead of) the HTML report.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CiFiles {
    /// `--junit FILE`: the thresholds as JUnit test cases.
    pub junit: Option<PathBuf>,
    /// `--markdown FILE`: a summary for a pull-request comment.
    pub markdown: Option<PathBuf>,
}

/// What `bench-report` prints, and the thresholds' verdict.
#[derive(Debug, Clone)]
pub struct Judged {
    /// Text for standard output.
    pub output: String,
    /// Thresholds that failed, or with `--diff --fail-if-worse` the regressions beyond the limit
    /// (0 when all passed or there are none).
    pub failed_thresholds: usize,
}

/// How a judged report is shown on the terminal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Show {
    /// Write the HTML report into this directory and say where it is.
    Html,
    /// Print the main tables (`--text`).
    Text,
    /// Only the thresholds' lines (no `-o`, no `--text`: the CI files are the point).
    Verdict,
}

/// Merges `results`, writes the HTML report into `out` (with [`Show::Html`]) and the CI files,
/// and returns what to print with the verdict.
pub fn judge(
    results: &[PathBuf],
    out: Option<&Path>,
    show: Show,
    ci: &CiFiles,
    opts: &ReportOptions,
) -> Result<Judged, ReportError> {
    let (run, skipped) = merge_files(results, opts.skip_bad)?;
    let report = report_of(run, &skipped, opts);
    let mut output = String::new();
    for s in &report.summary.skipped {
        output.push_str(&format!("skipped {}: {}\n", s.path, s.reason));
    }
    let html_page = match (show, out) {
        (Show::Html, Some(dir)) => {
            let written = write_report(&report, dir, opts)?;
            output.push_str(&format!(
                "report of {} node(s): {}\nsummary: {}\n",
                written.summary.nodes,
                written.index_html.display(),
                written.summary_json.display()
            ));
            Some(written.index_html)
        }
        _ => existing_report(results),
    };
    match show {
        Show::Text => {
            output.clear();
            let bytes = text::TextOutput.render(&report)?;
            output.push_str(&String::from_utf8_lossy(&bytes));
        }
        _ => write_text(
            &mut output,
            &report.summary.thresholds,
            report.summary.stopped_by.as_ref(),
        ),
    }
    write_ci_files(&report, ci, html_page.as_deref(), opts)?;
    Ok(Judged {
        output,
        failed_thresholds: failed(&report.summary.thresholds),
    })
}

/// Writes the files of `ci` for `report`; the markdown links to `html_page` when known.
pub fn write_ci_files(
    report: &Report,
    ci: &CiFiles,
    html_page: Option<&Path>,
    opts: &ReportOptions,
) -> Result<(), ReportError> {
    if let Some(path) = &ci.junit {
        let bytes = junit::JunitOutput.render(report)?;
        std::fs::write(path, bytes).map_err(ReportError::io(path))?;
    }
    if let Some(path) = &ci.markdown {
        let templates = Templates::load(opts.templates.as_deref())?;
        let link = html_page.map(|page| link(path, page));
        let bytes = MarkdownOutput::new(&templates, link).render(report)?;
        std::fs::write(path, bytes).map_err(ReportError::io(path))?;
    }
    Ok(())
}

/// The report a master already built for these results: `<run>/report/index.html` beside
/// `<run>/results/`.
fn existing_report(results: &[PathBuf]) -> Option<PathBuf> {
    let dir = results.first()?.parent()?;
    if dir.file_name()? != "results" {
        return None;
    }
    let page = dir.parent()?.join("report").join(html::FILE_NAME);
    page.is_file().then_some(page)
}

/// `page` as the markdown file at `from` links to it: relative when it lies below the
/// markdown's directory, else absolute.
fn link(from: &Path, page: &Path) -> String {
    let abs = |p: &Path| std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf());
    let page = abs(page);
    let base = abs(from)
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default();
    let shown = page.strip_prefix(&base).unwrap_or(&page);
    shown.to_string_lossy().replace(' ', "%20")
}
