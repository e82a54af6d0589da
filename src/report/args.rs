//! bench-report's flags (clap) and their checks: which [`Job`] an invocation asks for.

use std::path::PathBuf;

use clap::Parser;

use super::ci::CiFiles;
use super::job::Job;
use super::ReportOptions;
use crate::args::DocArgs;

const EXIT_CODES: &str = "Exit codes: 0 done (every threshold passed), 1 error, 2 bad usage or \
bad input, 4 a threshold of the test failed (the stored run judged again on its merged result), \
or with --diff --fail-if-worse a metric is significantly worse by more than the limit.";

/// Merge bench-node results into a report; compare runs (--diff), follow them (--trend), or
/// index a workspace (--index).
#[derive(Debug, Parser)]
#[command(name = "bench-report", version, after_help = EXIT_CODES)]
pub struct Flags {
    /// Result XML files of one run (one per node).
    #[arg(value_name = "RESULT.xml")]
    pub results: Vec<PathBuf>,
    /// Directory to write the report into (index.html, summary.json).
    #[arg(short = 'o', long, value_name = "DIR")]
    pub output: Option<PathBuf>,
    /// Print the main tables to the terminal instead of writing HTML.
    #[arg(long, conflicts_with_all = ["diff", "trend", "index", "output"])]
    pub text: bool,
    /// Compare two runs: each a report directory, a run directory or a result file.
    #[arg(long, num_args = 2, value_names = ["BASE", "NEW"], conflicts_with_all = ["trend", "index"])]
    pub diff: Option<Vec<PathBuf>>,
    /// With --diff: exit 4 when any metric at any concurrency level is significantly worse
    /// (its 95 % interval excludes zero) by more than PCT (e.g. 5%): % of the base value, or
    /// percentage points for error %.
    #[arg(long, value_name = "PCT", requires = "diff", allow_hyphen_values = true, value_parser = WorseLimit::parse)]
    pub fail_if_worse: Option<WorseLimit>,
    /// Follow runs, oldest first: each a report or run directory.
    #[arg(long, num_args = 1.., value_name = "RUN", conflicts_with = "index")]
    pub trend: Option<Vec<PathBuf>>,
    /// Write WORKDIR/index.html listing every run in the workspace.
    #[arg(long, value_name = "WORKDIR")]
    pub index: Option<PathBuf>,
    /// Merge the readable results and list the bad ones instead of failing.
    #[arg(long)]
    pub skip_bad: bool,
    /// Directory of templates replacing the embedded ones (same file names).
    #[arg(long, value_name = "DIR")]
    pub templates: Option<PathBuf>,
    /// Also write the thresholds as JUnit test cases to FILE (one per threshold and cycle).
    #[arg(long, value_name = "FILE", conflicts_with_all = ["diff", "trend", "index"])]
    pub junit: Option<PathBuf>,
    /// Also write a markdown summary for a pull-request comment to FILE.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["diff", "trend", "index"])]
    pub markdown: Option<PathBuf>,
    #[command(flatten)]
    pub docs: DocArgs,
}

/// `--fail-if-worse`'s limit: how much worse a significant change may be, %.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct WorseLimit(pub f64);

impl WorseLimit {
    /// Parses `5%` (or `2.5 %`): a finite percentage of 0 or more; the `%` is required, so
    /// that `5` cannot be mistaken for a fraction or an absolute value.
    pub fn parse(text: &str) -> Result<WorseLimit, String> {
        let number = text
            .trim()
            .strip_suffix('%')
            .ok_or_else(|| format!("{text:?}: give a percentage such as 5%"))?;
        let pct: f64 = number
            .trim()
            .parse()
            .map_err(|_| format!("{text:?}: not a number before the %"))?;
        if !pct.is_finite() || pct < 0.0 {
            return Err(format!("{text:?}: the limit must be 0% or more"));
        }
        Ok(WorseLimit(pct))
    }
}

impl TryFrom<Flags> for Job {
    type Error = String;

    fn try_from(f: Flags) -> Result<Job, String> {
        let opts = ReportOptions {
            skip_bad: f.skip_bad,
            templates: f.templates.clone(),
            ..ReportOptions::default()
        };
        if let Some(dir) = f.templates.as_ref().filter(|d| !d.is_dir()) {
            return Err(format!("--templates {}: not a directory", dir.display()));
        }
        let extra = |mode: &str| format!("{mode} takes no RESULT.xml arguments");
        let out = |mode: &str| {
            f.output
                .clone()
                .ok_or_else(|| format!("{mode} needs -o DIR, the directory to write into"))
        };
        if let Some(workdir) = f.index.clone() {
            if !f.results.is_empty() {
                return Err(extra("--index"));
            }
            return Ok(Job::Index {
                workdir,
                templates: f.templates,
            });
        }
        if let Some(mut both) = f.diff.clone() {
            if !f.results.is_empty() {
                return Err(extra("--diff"));
            }
            let new = both.pop().expect("clap takes two values");
            let base = both.pop().expect("clap takes two values");
            let out = out("--diff")?;
            return Ok(Job::Diff {
                base,
                new,
                out,
                fail_if_worse: f.fail_if_worse,
                opts,
            });
        }
        if let Some(runs) = f.trend.clone() {
            if !f.results.is_empty() {
                return Err(extra("--trend"));
            }
            let out = out("--trend")?;
            return Ok(Job::Trend { runs, out, opts });
        }
        if f.results.is_empty() {
            return Err("no RESULT.xml given (see --help)".into());
        }
        let ci = CiFiles {
            junit: f.junit,
            markdown: f.markdown,
        };
        if f.text {
            return Ok(Job::Text {
                results: f.results,
                ci,
                opts,
            });
        }
        if f.output.is_none() && ci != CiFiles::default() {
            return Ok(Job::Judge {
                results: f.results,
                ci,
                opts,
            });
        }
        let out = out("a report")?;
        Ok(Job::Report {
            results: f.results,
            out,
            ci,
            opts,
        })
    }
}
