//! Errors of the report stage, each naming the file or template it concerns.

use std::path::PathBuf;

/// What can go wrong while building a report.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// A result file could not be read (truncated, malformed, unknown version); the reader's
    /// error names the file and the position.
    #[error("{error}")]
    Read {
        path: PathBuf,
        error: Box<crate::result::read::ReadError>,
    },
    /// A node's cycle plan or steps differ from the first node's.
    #[error(
        "{} does not match {}: {detail}; merge only results of the same bench",
        path.display(),
        first.display()
    )]
    PlanMismatch {
        path: PathBuf,
        first: PathBuf,
        detail: String,
    },
    /// Nothing to report on.
    #[error("no result to report on{}", if skipped > &0 { format!(" ({skipped} skipped as bad)") } else { String::new() })]
    NoResults { skipped: usize },
    /// A `--diff`/`--trend` input that is neither a report, a run directory nor a result file.
    #[error("{}: {message}", path.display())]
    BadInput { path: PathBuf, message: String },
    /// A `summary.json` that cannot be parsed.
    #[error("cannot parse {}", path.display())]
    Summary {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    /// A template failed to parse or render.
    #[error("template {name}")]
    Template {
        name: String,
        #[source]
        source: Box<tera::Error>,
    },
    /// A chart could not be drawn.
    #[error("chart {chart}: {message}")]
    Chart { chart: String, message: String },
    /// Reading or writing a file failed.
    #[error("{}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl ReportError {
    /// True when the error lies in the input (exit code 2) rather than in building the report.
    pub fn is_bad_input(&self) -> bool {
        matches!(
            self,
            ReportError::Read { .. }
                | ReportError::PlanMismatch { .. }
                | ReportError::NoResults { .. }
                | ReportError::BadInput { .. }
                | ReportError::Summary { .. }
        )
    }

    pub(crate) fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> ReportError {
        let path = path.into();
        move |source| ReportError::Io { path, source }
    }
}
