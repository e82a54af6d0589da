//! The HTML report: one self-contained page rendered from `templates/report.html`.

use serde::Serialize;

use super::chart::{self, Figure};
use super::view::StepDetail;
use super::{Output, Report, ReportError, Templates};

/// File name of the HTML report.
pub const FILE_NAME: &str = "index.html";

/// Renders the report page with its charts.
#[derive(Debug)]
pub struct HtmlOutput<'t> {
    templates: &'t Templates,
}

impl<'t> HtmlOutput<'t> {
    /// An HTML output using `templates`.
    pub fn new(templates: &'t Templates) -> Self {
        HtmlOutput { templates }
    }
}

/// A step's table with its chart.
#[derive(Serialize)]
struct StepSection<'a> {
    #[serde(flatten)]
    step: &'a StepDetail,
    chart: Figure,
}

impl Output for HtmlOutput<'_> {
    fn file_name(&self) -> &'static str {
        FILE_NAME
    }

    fn render(&self, report: &Report) -> Result<Vec<u8>, ReportError> {
        let step_charts = chart::steps(report)?;
        let steps: Vec<StepSection> = report
            .steps
            .iter()
            .zip(step_charts)
            .map(|(step, chart)| StepSection { step, chart })
            .collect();
        let mut ctx = tera::Context::new();
        ctx.insert("title", &format!("{} — bench report", report.config.test));
        ctx.insert("summary", &report.summary);
        ctx.insert("config", &report.config);
        ctx.insert("content", &report.content);
        ctx.insert("cycles", report.cycles());
        ctx.insert("page_latency", &report.page_latency);
        ctx.insert("report_version", crate::VERSION);
        ctx.insert("steps", &steps);
        ctx.insert("slowest", &report.slowest);
        ctx.insert("best", &report.summary.best_cycle());
        ctx.insert("nodes", &report.nodes);
        ctx.insert(
            "saturated",
            &report.nodes.iter().filter(|n| n.cpu_saturated).count(),
        );
        ctx.insert("errors", &report.errors);
        ctx.insert("error_pct", &report.summary.error_pct());
        ctx.insert("overview", &chart::overview(report)?);
        ctx.insert("monitoring", &chart::monitoring(report)?);
        Ok(self.templates.render("report.html", &ctx)?.into_bytes())
    }
}
