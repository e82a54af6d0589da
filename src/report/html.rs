//! The HTML report: one self-contained page rendered from `templates/report.html`.

use serde::Serialize;

use super::chart::{self, Figure};
use super::over_time;
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
    /// Its latency percentiles over time, when the results have intervals.
    over_time: Option<Figure>,
}

impl Output for HtmlOutput<'_> {
    fn file_name(&self) -> &'static str {
        FILE_NAME
    }

    fn render(&self, report: &Report) -> Result<Vec<u8>, ReportError> {
        let step_charts = chart::steps(report)?;
        let over_time = &report.summary.over_time;
        let mut steps = Vec::with_capacity(report.steps.len());
        for (i, (step, chart)) in report.steps.iter().zip(step_charts).enumerate() {
            let over_time = over_time::step_figure(over_time, i, step.number)?;
            steps.push(StepSection {
                step,
                chart,
                over_time,
            });
        }
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
        let mut overview = chart::overview(report)?;
        overview.extend(over_time::figures(&report.summary.over_time)?);
        ctx.insert("overview", &overview);
        ctx.insert("monitoring", &chart::monitoring(report)?);
        Ok(self.templates.render("report.html", &ctx)?.into_bytes())
    }
}
