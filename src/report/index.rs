//! The workspace index: one page listing every run's report, grouped by run name, newest first.

use std::path::{Path, PathBuf};

use serde::Serialize;
use walkdir::WalkDir;

use super::input::read_summary;
use super::{json, ReportError, Templates};

/// How deep under the workspace reports are looked for (`<run>/report/summary.json` and
/// deeper layouts).
const MAX_DEPTH: usize = 6;

/// One report in the index.
#[derive(Debug, Clone, Serialize)]
pub struct IndexEntry {
    pub started: String,
    pub started_unix_ms: u64,
    /// Run name (the group).
    pub run: String,
    /// The run's directory relative to the workspace.
    pub id: String,
    pub test: String,
    pub nodes: u32,
    /// Users per cycle over all nodes, e.g. `40:80:120`.
    pub cycles: String,
    pub peak_spps: f64,
    /// Request p95 at the cycle of highest SPPS, ms.
    pub p95_ms: f64,
    pub error_pct: f64,
    pub interrupted: bool,
    /// Link to the report's page, relative to the workspace and percent-encoded.
    pub href: String,
}

/// Runs of one name.
#[derive(Debug, Clone, Serialize)]
pub struct IndexGroup {
    pub run: String,
    pub entries: Vec<IndexEntry>,
}

/// `path` relative to the workspace as a URL path.
fn href(rel: &Path) -> String {
    let mut out = String::new();
    for (i, part) in rel.components().enumerate() {
        if i > 0 {
            out.push('/');
        }
        for b in part.as_os_str().to_string_lossy().bytes() {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                out.push(b as char);
            } else {
                out.push_str(&format!("%{b:02X}"));
            }
        }
    }
    out
}

/// Every report under `workdir`, grouped by run name; groups and entries newest first.
pub fn scan(workdir: &Path) -> Vec<IndexGroup> {
    let mut entries = Vec::new();
    for e in WalkDir::new(workdir)
        .max_depth(MAX_DEPTH)
        .into_iter()
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_file() && e.file_name() == json::FILE_NAME)
    {
        // A summary that cannot be read is not a report of ours: leave it out of the index.
        let Ok(s) = read_summary(e.path()) else {
            continue;
        };
        let dir = e.path().parent().unwrap_or(workdir);
        let rel = dir.strip_prefix(workdir).unwrap_or(dir);
        // The master names runs `<name>/<stamp>` and writes `<name>/<stamp>/report/`.
        let run_dir = if rel.ends_with("report") {
            rel.parent().unwrap_or(rel)
        } else {
            rel
        };
        let run = match s.run.split('/').next().filter(|r| !r.is_empty()) {
            Some(r) => r.to_string(),
            None => run_dir
                .components()
                .next()
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .unwrap_or_else(|| "(unnamed)".into()),
        };
        let best = s.best_cycle();
        entries.push(IndexEntry {
            started: s.started.clone(),
            started_unix_ms: s.started_unix_ms,
            run,
            id: run_dir.display().to_string(),
            test: s.test.clone(),
            nodes: s.nodes,
            cycles: s
                .cycles
                .iter()
                .map(|c| c.users.to_string())
                .collect::<Vec<_>>()
                .join(":"),
            peak_spps: best.map_or(0.0, |c| c.pages.rates.per_s),
            p95_ms: best.map_or(0.0, |c| c.latency_ms.p95),
            error_pct: s.error_pct(),
            interrupted: s.interrupted,
            href: format!("{}/index.html", href(rel))
                .trim_start_matches('/')
                .to_string(),
        });
    }
    entries.sort_by_key(|e| std::cmp::Reverse(e.started_unix_ms));
    let mut groups: Vec<IndexGroup> = Vec::new();
    for e in entries {
        match groups.iter_mut().find(|g| g.run == e.run) {
            Some(g) => g.entries.push(e),
            None => groups.push(IndexGroup {
                run: e.run.clone(),
                entries: vec![e],
            }),
        }
    }
    groups
}

/// Writes `workdir/index.html` listing every report under `workdir`; returns its path.
pub fn write_index(workdir: &Path) -> Result<PathBuf, ReportError> {
    write_index_with(workdir, None)
}

/// [`write_index`] with templates overridden from `templates`.
pub fn write_index_with(workdir: &Path, templates: Option<&Path>) -> Result<PathBuf, ReportError> {
    if !workdir.is_dir() {
        return Err(ReportError::BadInput {
            path: workdir.to_path_buf(),
            message: "not a directory".into(),
        });
    }
    let groups = scan(workdir);
    let templates = Templates::load(templates)?;
    let mut ctx = tera::Context::new();
    ctx.insert("title", "Bench runs");
    ctx.insert("workdir", &workdir.display().to_string());
    ctx.insert("groups", &groups);
    ctx.insert(
        "count",
        &groups.iter().map(|g| g.entries.len()).sum::<usize>(),
    );
    ctx.insert("report_version", crate::VERSION);
    let html = templates.render("index.html", &ctx)?;
    let path = workdir.join("index.html");
    std::fs::write(&path, html).map_err(ReportError::io(&path))?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_are_percent_encoded() {
        assert_eq!(
            href(Path::new("my run/2024 #1/report")),
            "my%20run/2024%20%231/report"
        );
    }
}
