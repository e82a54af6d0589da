//! `summary.json`: the report's figures for scripts and CI (layout in docs/SUMMARY-JSON.md).

use super::{Output, Report, ReportError};

/// File name of the JSON summary.
pub const FILE_NAME: &str = "summary.json";

/// Writes [`Report::summary`] as pretty JSON.
#[derive(Debug, Clone, Copy)]
pub struct JsonOutput;

impl Output for JsonOutput {
    fn file_name(&self) -> &'static str {
        FILE_NAME
    }

    fn render(&self, report: &Report) -> Result<Vec<u8>, ReportError> {
        let mut bytes = serde_json::to_vec_pretty(&report.summary)
            .expect("the summary holds only plain values");
        bytes.push(b'\n');
        Ok(bytes)
    }
}
