//! SVG line charts drawn with plotters (no system fonts: the SVG keeps text as `<text>` and
//! the browser lays it out), and the charts of a report.

use plotters::chart::DualCoordChartContext;
use plotters::coord::types::RangedCoordf64;
use plotters::prelude::*;

use super::view::Report;
use super::ReportError;
use crate::result::{HostResources, ResourceSample};

/// Series colours, in order.
const COLORS: [RGBColor; 8] = [
    RGBColor(37, 99, 235),
    RGBColor(220, 38, 38),
    RGBColor(22, 163, 74),
    RGBColor(217, 119, 6),
    RGBColor(124, 58, 237),
    RGBColor(8, 145, 178),
    RGBColor(219, 39, 119),
    RGBColor(75, 85, 99),
];
/// More lines than this get no legend (colours repeat; one line per node, say).
const MAX_LEGEND: usize = 12;
const FONT: &str = "sans-serif";

/// One line of a chart.
#[derive(Debug, Clone, Default)]
pub struct Line {
    pub label: String,
    pub points: Vec<(f64, f64)>,
    /// Drawn against the right-hand axis.
    pub secondary: bool,
    /// Draw a dot at each point (for few points, like one per cycle).
    pub dots: bool,
}

/// A line chart.
#[derive(Debug, Clone, Default)]
pub struct LineChart {
    /// Title drawn above the plot; empty for none.
    pub title: String,
    pub x_desc: String,
    pub y_desc: String,
    /// Right-hand axis description; the axis is drawn when a line is `secondary`.
    pub y2_desc: String,
    pub lines: Vec<Line>,
    /// Labels of x = 0, 1, 2… instead of numbers (for runs in a trend).
    pub x_labels: Vec<String>,
    /// Fixed top of the left axis (e.g. 1 for Apdex); otherwise fitted to the data.
    pub y_max: Option<f64>,
    pub width: u32,
    pub height: u32,
}

fn top(values: impl Iterator<Item = f64>) -> f64 {
    let m = values.filter(|v| v.is_finite()).fold(0.0, f64::max);
    if m <= 0.0 {
        1.0
    } else {
        m * 1.1
    }
}

fn short(x: f64) -> String {
    let a = x.abs();
    if a >= 1e6 {
        format!("{:.1}M", x / 1e6)
    } else if a >= 1e4 {
        format!("{:.0}k", x / 1e3)
    } else if a >= 100.0 || x == x.trunc() {
        format!("{x:.0}")
    } else if a >= 1.0 {
        format!("{x:.1}")
    } else {
        format!("{x:.2}")
    }
}

impl LineChart {
    /// A chart of the given size with axis descriptions.
    pub fn new(title: &str, x_desc: &str, y_desc: &str) -> LineChart {
        LineChart {
            title: title.into(),
            x_desc: x_desc.into(),
            y_desc: y_desc.into(),
            width: 560,
            height: 300,
            ..LineChart::default()
        }
    }

    /// Adds a line.
    pub fn line(mut self, label: &str, points: Vec<(f64, f64)>, secondary: bool) -> Self {
        let dots = points.len() <= 40;
        self.lines.push(Line {
            label: label.into(),
            points,
            secondary,
            dots,
        });
        self
    }

    /// Label and colour of each line, for a legend drawn by the page; empty when there are
    /// too many lines to tell apart.
    pub fn legend(&self) -> Vec<LegendItem> {
        if self.lines.len() > MAX_LEGEND {
            return Vec::new();
        }
        self.lines
            .iter()
            .enumerate()
            .map(|(i, l)| {
                let RGBColor(r, g, b) = COLORS[i % COLORS.len()];
                LegendItem {
                    label: if l.secondary && self.lines.iter().any(|l| !l.secondary) {
                        format!("{} (right axis)", l.label)
                    } else {
                        l.label.clone()
                    },
                    color: format!("#{r:02x}{g:02x}{b:02x}"),
                }
            })
            .collect()
    }

    /// The chart as an `<svg>` element.
    pub fn to_svg(&self) -> Result<String, ReportError> {
        let mut svg = String::new();
        self.draw(&mut svg).map_err(|message| ReportError::Chart {
            chart: self.title.clone(),
            message,
        })?;
        Ok(svg)
    }

    fn draw(&self, svg: &mut String) -> Result<(), String> {
        let err = |e: &dyn std::fmt::Display| e.to_string();
        let (x0, x1) = self.x_range();
        let y1 = self.y_max.unwrap_or_else(|| self.top_of(false));
        let has_y2 = self.lines.iter().any(|l| l.secondary);
        let y2 = self.top_of(true);
        let root = SVGBackend::with_string(svg, (self.width, self.height)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| err(&e))?;
        let mut builder = ChartBuilder::on(&root);
        builder
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(58)
            .right_y_label_area_size(if has_y2 { 58 } else { 12 });
        if !self.title.is_empty() {
            builder.caption(
                &self.title,
                (FONT, 17).into_font().color(&RGBColor(31, 41, 55)),
            );
        }
        let mut chart = builder
            .build_cartesian_2d(x0..x1, 0.0..y1)
            .map_err(|e| err(&e))?
            .set_secondary_coord(x0..x1, 0.0..y2);
        self.draw_axes(&mut chart, has_y2).map_err(|e| err(&e))?;
        for (i, line) in self.lines.iter().enumerate() {
            let color = COLORS[i % COLORS.len()];
            let style = ShapeStyle::from(&color).stroke_width(2);
            let dots = if line.dots { 3 } else { 0 };
            let series = LineSeries::new(line.points.iter().copied(), style).point_size(dots);
            if line.secondary {
                chart.draw_secondary_series(series).map_err(|e| err(&e))?;
            } else {
                chart.draw_series(series).map_err(|e| err(&e))?;
            }
        }
        root.present().map_err(|e| err(&e))?;
        Ok(())
    }

    /// The x axis: the points' span padded by 4 % (never below 0 for positive data), or one
    /// place per label.
    fn x_range(&self) -> (f64, f64) {
        let all = self.lines.iter().flat_map(|l| l.points.iter());
        let (mut x0, mut x1) = all.fold((f64::MAX, f64::MIN), |(a, b), p| (a.min(p.0), b.max(p.0)));
        if !self.x_labels.is_empty() {
            (x0, x1) = (0.0, (self.x_labels.len() - 1) as f64);
        }
        if x0 > x1 {
            (x0, x1) = (0.0, 1.0);
        }
        let pad = if x1 > x0 { (x1 - x0) * 0.04 } else { 1.0 };
        let low = if x0 >= 0.0 {
            (x0 - pad).max(0.0)
        } else {
            x0 - pad
        };
        (low, x1 + pad)
    }

    /// The top of the right-hand (`secondary`) or the left-hand axis, fitted to its lines.
    fn top_of(&self, secondary: bool) -> f64 {
        top(self
            .lines
            .iter()
            .filter(|l| l.secondary == secondary)
            .flat_map(|l| l.points.iter().map(|p| p.1)))
    }

    /// The grid, the axes and their labels (the right-hand axis when `has_y2`).
    fn draw_axes(&self, chart: &mut Chart<'_, '_>, has_y2: bool) -> Result<(), DrawError> {
        let labels = &self.x_labels;
        let x_fmt = |x: &f64| {
            if labels.is_empty() {
                short(*x)
            } else {
                let i = x.round();
                if (x - i).abs() < 1e-6 && i >= 0.0 {
                    labels.get(i as usize).cloned().unwrap_or_default()
                } else {
                    String::new()
                }
            }
        };
        let y_fmt = |y: &f64| short(*y);
        let grid = RGBColor(229, 231, 235);
        let text = (FONT, 14).into_font().color(&RGBColor(75, 85, 99));
        let mut mesh = chart.configure_mesh();
        mesh.x_desc(self.x_desc.as_str())
            .y_desc(self.y_desc.as_str())
            .label_style(text.clone())
            .axis_desc_style(text.clone())
            .x_label_formatter(&x_fmt)
            .y_label_formatter(&y_fmt)
            .bold_line_style(grid)
            .light_line_style(RGBColor(243, 244, 246))
            .axis_style(RGBColor(156, 163, 175))
            .y_labels(6);
        if !labels.is_empty() {
            mesh.x_labels(labels.len().min(12));
        } else {
            mesh.x_labels(8);
        }
        mesh.draw()?;
        if has_y2 {
            chart
                .configure_secondary_axes()
                .y_desc(self.y2_desc.as_str())
                .label_style(text.clone())
                .axis_desc_style(text)
                .y_label_formatter(&y_fmt)
                .axis_style(RGBColor(156, 163, 175))
                .draw()?;
        }
        Ok(())
    }
}

/// A chart being drawn: two y axes over one x axis, into an SVG string.
type Chart<'a, 'b> = DualCoordChartContext<
    'a,
    SVGBackend<'b>,
    Cartesian2d<RangedCoordf64, RangedCoordf64>,
    Cartesian2d<RangedCoordf64, RangedCoordf64>,
>;

/// A drawing error of the SVG backend.
type DrawError = DrawingAreaErrorKind<<SVGBackend<'static> as DrawingBackend>::ErrorType>;

/// One entry of a chart's legend.
#[derive(Debug, Clone, serde::Serialize)]
pub struct LegendItem {
    pub label: String,
    /// CSS colour, `#rrggbb`.
    pub color: String,
}

/// A chart with its anchor name, caption and legend, ready for a template.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Figure {
    pub id: String,
    pub caption: String,
    pub svg: String,
    pub legend: Vec<LegendItem>,
}

/// Draws `chart` as a figure.
pub fn figure(id: &str, caption: &str, chart: LineChart) -> Result<Figure, ReportError> {
    Ok(Figure {
        id: id.into(),
        caption: caption.into(),
        svg: chart.to_svg()?,
        legend: chart.legend(),
    })
}

/// The charts of a report's overview: throughput, latency, Apdex, activity over time.
pub fn overview(report: &Report) -> Result<Vec<Figure>, ReportError> {
    let cycles = report.cycles();
    let by_users = |f: &dyn Fn(&super::stats::CycleSummary) -> f64| {
        cycles
            .iter()
            .map(|c| (c.users as f64, f(c)))
            .collect::<Vec<_>>()
    };
    let throughput = LineChart::new("", "users", "per second")
        .line("SPPS", by_users(&|c| c.pages.rates.per_s), false)
        .line("RPS", by_users(&|c| c.requests.rates.per_s), false)
        .line("STPS", by_users(&|c| c.tests.per_s), false)
        .line("error %", by_users(&|c| c.requests.rates.error_pct), true);
    let throughput = LineChart {
        y2_desc: "error %".into(),
        ..throughput
    };
    let latency = LineChart::new("", "users", "request latency (ms)")
        .line("p50", by_users(&|c| c.latency_ms.p50), false)
        .line("p90", by_users(&|c| c.latency_ms.p90), false)
        .line("p95", by_users(&|c| c.latency_ms.p95), false)
        .line("p99", by_users(&|c| c.latency_ms.p99), false);
    let apdex = LineChart {
        y_max: Some(1.0),
        ..LineChart::new("", "users", "Apdex")
            .line("pages", by_users(&|c| c.pages.apdex.unwrap_or(0.0)), false)
            .line(
                "requests",
                by_users(&|c| c.requests.apdex.unwrap_or(0.0)),
                false,
            )
    };
    let s = &report.series;
    let at = |f: &dyn Fn(&crate::result::SecondSample) -> u64| {
        s.iter()
            .map(|x| (x.second as f64, f(x) as f64))
            .collect::<Vec<_>>()
    };
    let timeline = LineChart::new("", "seconds since start", "per second")
        .line("requests", at(&|x| x.requests), false)
        .line("successful pages", at(&|x| x.pages_ok), false)
        .line("failures + errors", at(&|x| x.failures + x.errors), false)
        .line("users", at(&|x| u64::from(x.users)), true);
    let timeline = LineChart {
        y2_desc: "users".into(),
        width: 1160,
        height: 340,
        ..timeline
    };
    Ok(vec![
        figure(
            "throughput",
            "Throughput and errors against users",
            throughput,
        )?,
        figure(
            "latency",
            "Request latency percentiles against users",
            latency,
        )?,
        figure("apdex", "Apdex per cycle", apdex)?,
        figure(
            "timeline",
            "Requests and errors over the whole run",
            timeline,
        )?,
    ])
}

/// One latency chart per step: p50, p95, p99 and mean against users.
pub fn steps(report: &Report) -> Result<Vec<Figure>, ReportError> {
    report
        .steps
        .iter()
        .map(|s| {
            let p = |f: &dyn Fn(&super::stats::Latency) -> f64| {
                s.cycles
                    .iter()
                    .map(|c| (c.users as f64, f(&c.latency_ms)))
                    .collect()
            };
            let chart = LineChart {
                width: 520,
                height: 260,
                ..LineChart::new("", "users", "latency (ms)")
                    .line("mean", p(&|l| l.mean), false)
                    .line("p50", p(&|l| l.p50), false)
                    .line("p95", p(&|l| l.p95), false)
                    .line("p99", p(&|l| l.p99), false)
            };
            figure(&format!("step-{}", s.number), "", chart)
        })
        .collect()
}

/// A resource metric: anchor id, axis description, value of a sample.
type Metric = (&'static str, &'static str, fn(&ResourceSample) -> f64);

/// The metrics of the monitoring charts.
const METRICS: [Metric; 4] = [
    ("cpu", "CPU busy (%)", |s| s.cpu_pct),
    ("load", "load average (1 min)", |s| s.load1),
    ("mem", "memory used (%)", |s| {
        if s.mem_total_kib == 0 {
            0.0
        } else {
            s.mem_used_kib as f64 * 100.0 / s.mem_total_kib as f64
        }
    }),
    ("net", "network (MB/s)", |s| {
        (s.net_rx_bps + s.net_tx_bps) / 1e6
    }),
];

/// Monitoring charts: one per metric overlaying every node, then four per monitored host.
pub fn monitoring(report: &Report) -> Result<Vec<Figure>, ReportError> {
    let (nodes, hosts): (Vec<&HostResources>, Vec<&HostResources>) = report
        .resources
        .iter()
        .partition(|h| h.role == crate::result::HostRole::Node);
    let mut out = Vec::new();
    if !nodes.is_empty() {
        for (id, desc, f) in METRICS {
            let mut chart = metric_chart(id, desc);
            for h in &nodes {
                chart = chart.line(&h.host, points(h, f), false);
            }
            out.push(figure(
                &format!("nodes-{id}"),
                &format!("Nodes: {desc}"),
                undotted(chart),
            )?);
        }
    }
    for (n, h) in hosts.into_iter().enumerate() {
        for (id, desc, f) in METRICS {
            let chart = if id == "net" {
                metric_chart(id, desc)
                    .line("received", points(h, |s| s.net_rx_bps / 1e6), false)
                    .line("sent", points(h, |s| s.net_tx_bps / 1e6), false)
            } else {
                metric_chart(id, desc).line(&h.host, points(h, f), false)
            };
            out.push(figure(
                &format!("host{n}-{id}"),
                &format!("{}: {desc}", h.host),
                undotted(chart),
            )?);
        }
    }
    Ok(out)
}

/// An empty monitoring chart of metric `id` over the run; percentages top at 100.
fn metric_chart(id: &str, desc: &str) -> LineChart {
    LineChart {
        width: 560,
        height: 260,
        y_max: (id == "cpu" || id == "mem").then_some(100.0),
        ..LineChart::new("", "seconds since start", desc)
    }
}

/// `f` of every sample of `h`, against seconds since the start.
fn points(h: &HostResources, f: fn(&ResourceSample) -> f64) -> Vec<(f64, f64)> {
    h.samples
        .iter()
        .map(|s| (s.at_ms as f64 / 1000.0, f(s)))
        .collect()
}

/// `chart` without dots: samples come every second, too many to mark.
fn undotted(mut chart: LineChart) -> LineChart {
    for l in &mut chart.lines {
        l.dots = false;
    }
    chart
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chart_is_svg_with_escaped_labels() {
        let svg = LineChart::new("<script>x</script>", "users", "\"><b>")
            .line("a", vec![(1.0, 2.0), (2.0, 3.0)], false)
            .line("err", vec![(1.0, 0.5)], true)
            .to_svg()
            .unwrap();
        assert!(svg.starts_with("<svg"), "{svg}");
        assert!(svg.contains("viewBox"));
        assert!(!svg.contains("<script>"));
        assert!(svg.contains("&lt;script&gt;"));
        assert!(!svg.contains("<b>"));
    }

    #[test]
    fn empty_chart_still_draws() {
        LineChart::new("", "x", "y").to_svg().unwrap();
        LineChart::new("", "x", "y")
            .line("one", vec![(5.0, 0.0)], false)
            .to_svg()
            .unwrap();
    }
}
