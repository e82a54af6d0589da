//! What `--diff`, `--trend` and the index read back: a report directory (its `summary.json`),
//! a run directory (its report, or else its result files), or result files.

use std::path::{Path, PathBuf};

use super::{json, merge_files, report_of, ReportError, ReportOptions, Summary};

/// One run's figures and how to name it.
#[derive(Debug, Clone)]
pub struct RunInput {
    /// Where it was read from.
    pub path: PathBuf,
    /// Run name, or the directory's name when the run had none.
    pub label: String,
    pub summary: Summary,
}

/// Reads a `summary.json`.
pub fn read_summary(path: &Path) -> Result<Summary, ReportError> {
    let text = std::fs::read_to_string(path).map_err(ReportError::io(path))?;
    serde_json::from_str(&text).map_err(|source| ReportError::Summary {
        path: path.to_path_buf(),
        source,
    })
}

/// `*.xml` files directly in `dir`, sorted.
fn xml_files(dir: &Path) -> Result<Vec<PathBuf>, ReportError> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(ReportError::io(dir))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file() && p.extension().is_some_and(|e| e == "xml"))
        .collect();
    files.sort();
    Ok(files)
}

fn summary_of_results(files: &[PathBuf], opts: &ReportOptions) -> Result<Summary, ReportError> {
    let (run, skipped) = merge_files(files, opts.skip_bad)?;
    Ok(report_of(run, &skipped, opts).summary)
}

/// The figures of a report directory, run directory, `summary.json` or result file.
pub fn load(path: &Path, opts: &ReportOptions) -> Result<RunInput, ReportError> {
    let summary = if path.is_file() {
        if path.extension().is_some_and(|e| e == "json") {
            read_summary(path)?
        } else {
            summary_of_results(&[path.to_path_buf()], opts)?
        }
    } else if path.is_dir() {
        let candidates = [
            path.join(json::FILE_NAME),
            path.join("report").join(json::FILE_NAME),
        ];
        if let Some(s) = candidates.iter().find(|p| p.is_file()) {
            read_summary(s)?
        } else {
            let mut files = Vec::new();
            for dir in [path.join("results"), path.to_path_buf()] {
                if dir.is_dir() && files.is_empty() {
                    files = xml_files(&dir)?;
                }
            }
            if files.is_empty() {
                return Err(ReportError::BadInput {
                    path: path.to_path_buf(),
                    message: "neither a report (summary.json), a run directory (report/ or \
                              results/*.xml) nor a directory of result files"
                        .into(),
                });
            }
            summary_of_results(&files, opts)?
        }
    } else {
        return Err(ReportError::BadInput {
            path: path.to_path_buf(),
            message: "no such file or directory".into(),
        });
    };
    Ok(RunInput {
        path: path.to_path_buf(),
        label: label(path, &summary),
        summary,
    })
}

/// The run's name, or else the name of the directory that holds it.
fn label(path: &Path, summary: &Summary) -> String {
    if !summary.run.is_empty() {
        return summary.run.clone();
    }
    dir_label(path)
}

/// The name of the run directory holding `path` (a report, run or result file).
pub fn dir_label(path: &Path) -> String {
    let path = path.canonicalize().unwrap_or_else(|_| path.to_path_buf());
    let path = path.as_path();
    let dir = if path.is_dir() {
        Some(path)
    } else {
        path.parent()
    };
    let dir = dir.map(|d| {
        if d.ends_with("report") || d.ends_with("results") {
            d.parent().unwrap_or(d)
        } else {
            d
        }
    });
    dir.and_then(|d| d.file_name())
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| path.display().to_string())
}
