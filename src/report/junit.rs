//! `junit.xml`: the thresholds as JUnit test cases (one per threshold and cycle, failures
//! carrying the measured value), for the test reports of GitLab, Jenkins and GitHub.
//! Written with quick-xml's writer, which escapes every value.

use std::io::{self, Write};

use quick_xml::events::{BytesDecl, BytesText, Event};
use quick_xml::Writer;

use super::threshold::{failed, ThresholdCheck, ThresholdSummary};
use super::{Output, Report, ReportError};
use crate::result::write::xml_safe;

/// File name of the JUnit report, beside `index.html`.
pub const FILE_NAME: &str = "junit.xml";

/// Writes the thresholds of a report as JUnit XML.
#[derive(Debug, Clone, Copy)]
pub struct JunitOutput;

impl Output for JunitOutput {
    fn file_name(&self) -> &'static str {
        FILE_NAME
    }

    fn render(&self, report: &Report) -> Result<Vec<u8>, ReportError> {
        let mut bytes = Vec::new();
        write(report, &mut bytes).map_err(ReportError::io(FILE_NAME))?;
        Ok(bytes)
    }
}

/// Test cases and failures of a report, counted as JUnit counts them.
fn totals(thresholds: &[ThresholdSummary]) -> (usize, usize) {
    let checks = thresholds.iter().flat_map(|t| &t.checks);
    let tests = checks.clone().count();
    let failures = checks.filter(|c| !c.passed).count();
    (tests, failures)
}

fn write<W: Write>(report: &Report, w: W) -> io::Result<()> {
    let s = &report.summary;
    let (tests, failures) = totals(&s.thresholds);
    let time: f64 = s.cycles.iter().map(|c| c.duration_s).sum();
    let (tests, failures, time) = (tests.to_string(), failures.to_string(), time.to_string());
    let test = xml_safe(&s.test);
    let suites = format!("bench {test}");
    let suite = format!("thresholds of {test}");
    let mut x = Writer::new_with_indent(w, b' ', 2);
    x.write_event(Event::Decl(BytesDecl::new("1.0", Some("UTF-8"), None)))?;
    x.create_element("testsuites")
        .with_attributes([
            ("name", suites.as_str()),
            ("tests", &tests),
            ("failures", &failures),
            ("errors", "0"),
            ("time", &time),
        ])
        .write_inner_content(|x| {
            x.create_element("testsuite")
                .with_attributes([
                    ("name", suite.as_str()),
                    ("tests", &tests),
                    ("failures", &failures),
                    ("errors", "0"),
                    ("skipped", "0"),
                    ("time", &time),
                    ("timestamp", &s.started),
                ])
                .write_inner_content(|x| {
                    properties(x, report)?;
                    for t in &s.thresholds {
                        for c in &t.checks {
                            testcase(x, &test, t, c)?;
                        }
                    }
                    Ok::<(), io::Error>(())
                })?;
            Ok::<(), io::Error>(())
        })?;
    let mut w = x.into_inner();
    w.write_all(b"\n")?;
    w.flush()
}

/// The run's facts a CI page may show beside the cases.
fn properties<W: Write>(x: &mut Writer<W>, report: &Report) -> io::Result<()> {
    let c = &report.config;
    let failed_thresholds = failed(&report.summary.thresholds).to_string();
    let props = [
        ("run", xml_safe(&c.run).into_owned()),
        ("url", xml_safe(&c.url).into_owned()),
        ("nodes", c.nodes.to_string()),
        (
            "failed-nodes",
            report.summary.failed_nodes.len().to_string(),
        ),
        ("cycles", c.cycles_total.clone()),
        ("failed-thresholds", failed_thresholds),
    ];
    x.create_element("properties").write_inner_content(|x| {
        for (name, value) in &props {
            x.create_element("property")
                .with_attributes([("name", *name), ("value", value.as_str())])
                .write_empty()?;
        }
        Ok::<(), io::Error>(())
    })?;
    Ok(())
}

/// One `<testcase>`: a threshold at one cycle (or the whole run).
fn testcase<W: Write>(
    x: &mut Writer<W>,
    test: &str,
    t: &ThresholdSummary,
    c: &ThresholdCheck,
) -> io::Result<()> {
    let name = xml_safe(&format!("{} — {}", t.name, c.place)).into_owned();
    let classname = format!("benchmaster.{test}");
    let time = c.duration_s.to_string();
    let case = x.create_element("testcase").with_attributes([
        ("name", name.as_str()),
        ("classname", classname.as_str()),
        ("time", time.as_str()),
    ]);
    if c.passed {
        case.write_empty()?;
        return Ok(());
    }
    let message = xml_safe(&format!(
        "measured {}, limit {}",
        c.value_text, t.limit_text
    ))
    .into_owned();
    let detail = xml_safe(&format!(
        "{}: measured {} ({}) on the merged result of every node, limit {}",
        t.name, c.value_text, c.place, t.limit_text
    ))
    .into_owned();
    case.write_inner_content(|x| {
        x.create_element("failure")
            .with_attributes([("message", message.as_str()), ("type", "threshold")])
            .write_text_content(BytesText::new(&detail))?;
        Ok::<(), io::Error>(())
    })?;
    Ok(())
}
