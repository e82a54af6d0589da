//! The main tables as plain text for a terminal.

use std::fmt::Write;

use super::stats::Summary;
use super::templates::format_num;
use super::{Output, Report, ReportError};

/// Writes the test, page and request tables per cycle as aligned text.
#[derive(Debug, Clone, Copy)]
pub struct TextOutput;

/// A table: a header and rows of cells, first column left-aligned, the others right-aligned.
struct Table {
    header: Vec<&'static str>,
    rows: Vec<Vec<String>>,
}

impl Table {
    fn render(&self, out: &mut String) {
        let width = |i: usize| {
            self.rows
                .iter()
                .map(|r| r[i].chars().count())
                .chain([self.header[i].len()])
                .max()
                .unwrap_or(0)
        };
        let widths: Vec<usize> = (0..self.header.len()).map(width).collect();
        let line = |cells: Vec<&str>, out: &mut String| {
            for (i, (c, w)) in cells.iter().zip(&widths).enumerate() {
                let pad = w - c.chars().count();
                if i == 0 {
                    let _ = write!(out, "{c}{}", " ".repeat(pad));
                } else {
                    let _ = write!(out, "  {}{c}", " ".repeat(pad));
                }
            }
            out.push('\n');
        };
        line(self.header.clone(), out);
        let rule: usize = widths.iter().sum::<usize>() + 2 * (widths.len() - 1);
        out.push_str(&"-".repeat(rule));
        out.push('\n');
        for r in &self.rows {
            line(r.iter().map(String::as_str).collect(), out);
        }
        out.push('\n');
    }
}

/// `s` on one line, without control characters (a server's body must not drive the
/// terminal), cut to `max` characters.
fn clean(s: &str, max: usize) -> String {
    let mut out: String = s
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(max)
        .collect();
    if s.chars().count() > max {
        out.push('…');
    }
    out
}

fn n(x: f64, d: usize) -> String {
    format_num(x, d).replace('\u{202f}', ",")
}

impl Output for TextOutput {
    fn file_name(&self) -> &'static str {
        "report.txt"
    }

    fn render(&self, report: &Report) -> Result<Vec<u8>, ReportError> {
        let s = &report.summary;
        let c = &report.config;
        let mut out = String::new();
        let _ = writeln!(
            out,
            "{} — {} node(s), started {}",
            s.test, s.nodes, s.started
        );
        let _ = writeln!(
            out,
            "target {}, cycles {} users ({} per node) of {} s, Apdex T {} s\n",
            c.url, c.cycles_total, c.cycles_per_node, c.duration_s, c.apdex_t_s
        );
        super::threshold::write_text(&mut out, &s.thresholds, s.stopped_by.as_ref());
        tests_table(s).render(&mut out);
        if s.cycles.iter().any(|c| !c.scenarios.is_empty()) {
            scenarios_table(s).render(&mut out);
        }
        pages_table(report, Kind::Pages).render(&mut out);
        pages_table(report, Kind::Requests).render(&mut out);
        let _ = writeln!(out, "latency in ms; error % counts failures and errors");
        for d in &s.data {
            let ran_out = match d.ran_out_s {
                Some(t) => format!(", ran out at {t:.1} s on {} node(s)", d.exhausted_nodes),
                None => String::new(),
            };
            let _ = writeln!(
                out,
                "data {} ({}, {}, {}): {} of {} rows used{ran_out}",
                d.name, d.file, d.order, d.on_end, d.used, d.rows
            );
        }
        errors(&mut out, s);
        Ok(out.into_bytes())
    }
}

/// Tests per cycle: executions of the whole test.
fn tests_table(s: &Summary) -> Table {
    Table {
        header: vec!["TESTS users", "STPS", "total", "success", "error %"],
        rows: s
            .cycles
            .iter()
            .map(|c| {
                vec![
                    c.users.to_string(),
                    n(c.tests.per_s, 2),
                    n(c.tests.total as f64, 0),
                    n(c.tests.success as f64, 0),
                    n(c.tests.error_pct, 2),
                ]
            })
            .collect(),
    }
}

/// Tests per scenario per cycle.
fn scenarios_table(s: &Summary) -> Table {
    Table {
        header: vec![
            "SCENARIOS users",
            "scenario",
            "share %",
            "STPS",
            "total",
            "error %",
            "p95",
        ],
        rows: s
            .cycles
            .iter()
            .flat_map(|c| {
                c.scenarios.iter().map(|sc| {
                    vec![
                        c.users.to_string(),
                        sc.name.clone(),
                        n(sc.share_pct, 1),
                        n(sc.tests.per_s, 2),
                        n(sc.tests.total as f64, 0),
                        n(sc.tests.error_pct, 2),
                        n(sc.latency_ms.p95, 1),
                    ]
                })
            })
            .collect(),
    }
}

/// Which of the two latency tables.
#[derive(Clone, Copy)]
enum Kind {
    Pages,
    Requests,
}

/// Pages or requests per cycle: Apdex, rates, counts and latency.
fn pages_table(report: &Report, kind: Kind) -> Table {
    let (title, rate) = match kind {
        Kind::Pages => ("PAGES users", "SPPS"),
        Kind::Requests => ("REQUESTS users", "RPS"),
    };
    let mut header = vec![title, "Apdex", "rating", rate, "peak", "total", "success"];
    header.extend(["error %", "min", "mean", "max", "p50", "p90", "p95", "p99"]);
    let rows = report
        .summary
        .cycles
        .iter()
        .map(|c| {
            let (r, lat) = match kind {
                Kind::Pages => (&c.pages, page_latency(report, c.index)),
                Kind::Requests => (&c.requests, c.latency_ms),
            };
            let mut row = vec![
                c.users.to_string(),
                r.apdex.map_or("-".into(), |a| n(a, 3)),
                r.rating.clone(),
                n(r.rates.per_s, 2),
                n(r.peak_per_s, 0),
                n(r.rates.total as f64, 0),
                n(r.rates.success as f64, 0),
                n(r.rates.error_pct, 2),
            ];
            for v in [
                lat.min, lat.mean, lat.max, lat.p50, lat.p90, lat.p95, lat.p99,
            ] {
                row.push(n(v, 1));
            }
            row
        })
        .collect();
    Table { header, rows }
}

/// The error groups and the skipped result files, if any.
fn errors(out: &mut String, s: &Summary) {
    if !s.errors.is_empty() {
        let _ = writeln!(out, "\nERRORS");
        for e in &s.errors {
            let _ = writeln!(
                out,
                "{:>8}  {} {} {}: {}",
                e.count,
                clean(&e.step, 60),
                e.kind,
                clean(&e.detail, 80),
                clean(&e.sample, 120)
            );
        }
    }
    for f in &s.skipped {
        let _ = writeln!(out, "skipped {}: {}", f.path, clean(&f.reason, 300));
    }
}

/// Latency of all pages at one cycle.
fn page_latency(report: &Report, cycle: u32) -> super::stats::Latency {
    report
        .page_latency
        .get(cycle as usize)
        .copied()
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::clean;

    #[test]
    fn text_from_servers_cannot_drive_the_terminal() {
        assert_eq!(clean("a\x1b[2Jb\nc", 100), "a [2Jb c");
        assert_eq!(clean("abcdef", 3), "abc…");
    }
}
