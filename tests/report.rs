//! bench-report: merging, statistics in the tables, escaping, diff, index, the CLI, and a real
//! browser loading a generated report.

use std::path::{Path, PathBuf};
use std::process::Command;

use benchmaster::report::merge::{MergedRun, Merger};
use benchmaster::report::{
    self, build_diff, build_report, diff, write_index, write_report, ReportError, ReportOptions,
};
use benchmaster::result::write::write_file;
use benchmaster::result::*;

mod fixture;
mod over_time;
use fixture::{CycleSpec, Fixture};

use crate::util::chromium;

fn merged(nodes: Vec<NodeResult>) -> MergedRun {
    let mut m = Merger::new();
    for (i, n) in nodes.into_iter().enumerate() {
        m.add(Path::new(&format!("node{i}.xml")), n).unwrap();
    }
    m.finish().unwrap()
}

fn tempdir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("bm-report-")
        .tempdir()
        .unwrap()
}

/// Writes the report of `nodes` into `dir` and returns its HTML.
fn html_of(nodes: Vec<NodeResult>, dir: &Path) -> String {
    let opts = ReportOptions::default();
    let r = report::report_of(merged(nodes), &[], &opts);
    write_report(&r, dir, &opts).unwrap();
    std::fs::read_to_string(dir.join("index.html")).unwrap()
}

/// `x` as the report's tables print it (thin space between thousands).
fn grouped(x: &str) -> String {
    x.replace(',', "\u{202f}")
}

#[test]
fn merging_two_nodes_equals_one_node_holding_all_samples() {
    let f = Fixture::default();
    let lat: Vec<u64> = (1..=1000).map(|i| i * 997 % 250_000 + 1_000).collect();
    let (a, b) = lat.split_at(377);
    let spec = |v: &[u64], users| {
        let mut c = CycleSpec::new(users, 10.0);
        c.ok_us = v.to_vec();
        c
    };
    let two = merged(vec![
        f.node(0, "a", &[spec(a, 10).fail(3, 9_000).err(2), spec(a, 20)]),
        f.node(1, "b", &[spec(b, 10).fail(4, 9_000).err(1), spec(b, 20)]),
    ]);
    let one = merged(vec![f.node(
        0,
        "a",
        &[spec(&lat, 20).fail(7, 9_000).err(3), spec(&lat, 40)],
    )]);
    for (x, y) in two.cycles.iter().zip(&one.cycles) {
        assert_eq!(x.users, y.users, "users add across nodes");
        assert!(
            x.requests == y.requests,
            "counts and histograms add exactly"
        );
        assert!(x.pages == y.pages && x.tests == y.tests);
        let step_total =
            |c: &report::merge::MergedCycle| c.steps.iter().map(Counts::total).sum::<u64>();
        assert_eq!(step_total(x), step_total(y));
        let (sx, sy) = (
            report::stats::latency(&x.requests.latency),
            report::stats::latency(&y.requests.latency),
        );
        assert_eq!(sx, sy);
    }
    assert_eq!(two.cycles[0].requests.total(), 1000 + 7 + 3);
    assert_eq!(two.cycles[0].requests.failure, 7);
    assert_eq!(two.cycles[0].requests.error, 3);
    assert_eq!(two.nodes.len(), 2);
    assert_eq!(two.nodes[0].requests, 2 * 377 + 3 + 2);
    assert_eq!(two.start_skew_ms, 7);
    // The per-second series add up too.
    let total: u64 = two.series.iter().map(|s| s.requests).sum();
    assert_eq!(total, 2 * 1000 + 10);
}

#[test]
fn merged_interval_histograms_are_the_sum_of_the_nodes() {
    let f = Fixture {
        steps: vec!["a".into(), "b".into()],
        ..Fixture::default()
    };
    let a = f.node(
        0,
        "a",
        &[CycleSpec::new(5, 4.0).ok(40, 2_000).ok(9, 30_000)],
    );
    let b = f.node(1, "b", &[CycleSpec::new(5, 4.0).ok(25, 7_000)]);
    let two = merged(vec![a.clone(), b.clone()]);
    assert_eq!(two.latency.interval_s, 1);
    assert_eq!(two.latency.intervals.len(), 4);
    for iv in &two.latency.intervals {
        for step in 0..2 {
            let mut sum = latency::new_interval_histogram();
            for n in [&a, &b] {
                let same = n.latency.intervals.iter().find(|x| x.index == iv.index);
                sum.add(same.unwrap().steps[step].unpack()).unwrap();
            }
            assert_eq!(iv.steps[step].unpack(), sum);
        }
    }
    let all: u64 = two.latency.intervals.iter().map(|i| i.pages().len()).sum();
    assert_eq!(all, 40 + 9 + 25);
    // A node that started 2 s later: its intervals are placed 2 s later.
    let mut late = b.clone();
    late.started_unix_ms += 2000;
    let shifted = merged(vec![a, late]);
    assert_eq!(shifted.latency.intervals.last().unwrap().index, 3 + 2);
}

#[test]
fn nodes_with_another_cycle_plan_are_refused_by_name() {
    let f = Fixture::default();
    let mut m = Merger::new();
    m.add(
        Path::new("n0.xml"),
        f.node(0, "a", &[CycleSpec::new(10, 10.0)]),
    )
    .unwrap();
    let other = f.node(
        1,
        "b",
        &[CycleSpec::new(10, 10.0), CycleSpec::new(20, 10.0)],
    );
    let e = m.add(Path::new("n1.xml"), other).unwrap_err();
    assert!(matches!(e, ReportError::PlanMismatch { .. }));
    let msg = e.to_string();
    assert!(msg.contains("n1.xml") && msg.contains("n0.xml"), "{msg}");
    assert!(msg.contains("10:20") && msg.contains("cycles 10 "), "{msg}");
}

#[test]
fn tables_show_the_known_counts() {
    let dir = tempdir();
    let f = Fixture::default();
    // 1 234 successes of 100 ms and 40 of 2 s, 56 failures of 50 ms, 7 errors in 10 s.
    let c = CycleSpec::new(25, 10.0)
        .ok(1234, 100_000)
        .ok(40, 2_000_000)
        .fail(56, 50_000)
        .err(7);
    let html = html_of(vec![f.node(0, "host-a", &[c])], dir.path());
    let s: report::Summary =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("summary.json")).unwrap())
            .unwrap();
    let cy = &s.cycles[0];
    assert_eq!(cy.users, 25);
    assert_eq!(cy.requests.rates.total, 1337);
    assert_eq!(cy.requests.rates.success, 1274);
    assert_eq!(cy.requests.rates.failure, 56);
    assert_eq!(cy.requests.rates.error, 7);
    assert!((cy.requests.rates.per_s - 133.7).abs() < 1e-9);
    assert!((cy.pages.rates.per_s - 127.4).abs() < 1e-9);
    assert!((cy.tests.per_s - 127.4).abs() < 1e-9);
    assert_eq!(cy.outside_window, 1);
    // Apdex T = 1.5 s: 1 234 satisfied, 40 tolerating; failures and errors frustrated.
    let apdex = (1234.0 + 20.0) / 1337.0;
    assert!(
        (cy.pages.apdex.unwrap() - apdex).abs() < 1e-3,
        "{:?}",
        cy.pages.apdex
    );
    assert_eq!(cy.pages.rating, "Good");
    assert!((cy.latency_ms.p50 - 100.0).abs() < 0.2);
    assert!((cy.latency_ms.max - 2000.0).abs() < 2.0);
    assert!((cy.latency_ms.min - 50.0).abs() < 0.1);
    assert_eq!(s.nodes, 1);
    assert_eq!(s.nodes_detail[0].host, "host-a");

    for shown in ["1,337", "1,274", "133.70", "127.40", "0.938", "4.71"] {
        assert!(
            html.contains(&grouped(shown)),
            "{shown} is not in the report"
        );
    }
    assert!(html.contains("<svg"), "charts are inline");
    assert!(
        !html.contains("http://") || !html.contains("<link"),
        "no external resources"
    );
    assert!(!html.contains("<script"), "the report needs no script");
}

#[test]
fn names_urls_and_bodies_from_tests_and_servers_are_escaped() {
    let dir = tempdir();
    let evil = r#"<script>alert(1)</script>"><img src=x onerror=alert(2)>"#;
    let f = Fixture {
        test: format!("t{evil}"),
        url: format!("http://127.0.0.1/{evil}"),
        steps: vec![format!("step{evil}")],
        run: format!("run{evil}"),
        ..Fixture::default()
    };
    let mut node = f.node(
        0,
        &format!("host{evil}"),
        &[CycleSpec::new(1, 5.0).ok(10, 1000).fail(2, 10)],
    );
    node.test.description = evil.into();
    node.steps[0].target = evil.into();
    node.errors.push(ErrorGroup {
        step: format!("step{evil}"),
        kind: ErrorKind::Status,
        detail: format!("HTTP 500 {evil}"),
        count: 2,
        samples: vec![ErrorSample {
            url: format!("http://127.0.0.1/?q={evil}"),
            status: Some(500),
            at_ms: 1500,
            body: format!("<html>{evil}</html>"),
        }],
    });
    node.resources.push(HostResources {
        host: format!("db{evil}"),
        role: HostRole::Monitor,
        samples: node.resources[0].samples.clone(),
    });
    let html = html_of(vec![node], dir.path());
    assert!(!html.contains("<script"), "a script tag got through");
    assert!(!html.contains("<img"), "an img tag got through");
    assert!(
        html.contains("&quot;&gt;&lt;img"),
        "the attribute breaker is escaped"
    );
    assert!(html.contains("&lt;script&gt;"));
    assert!(html.contains("onerror=alert(2)&gt;"));

    // The same through the index page.
    let idx = write_index(dir.path().parent().unwrap()).unwrap();
    let index = std::fs::read_to_string(&idx).unwrap();
    std::fs::remove_file(idx).ok();
    assert!(!index.contains("<script") && !index.contains("<img"));
}

fn run_dir(root: &Path, name: &str, nodes: Vec<NodeResult>) -> PathBuf {
    let dir = root.join(name).join("report");
    let opts = ReportOptions::default();
    write_report(&report::report_of(merged(nodes), &[], &opts), &dir, &opts).unwrap();
    root.join(name)
}

#[test]
fn diff_of_two_runs_shows_the_deltas() {
    let root = tempdir();
    let f = Fixture::default();
    // Base: 100 and 150 pages/s at 10 and 20 users; new: 120 (+20 %) and 151.5 (+1 %).
    let base = f.node(
        0,
        "a",
        &[
            CycleSpec::new(10, 10.0).ok(1000, 100_000),
            CycleSpec::new(20, 10.0).ok(1500, 200_000),
        ],
    );
    let new = f.node(
        0,
        "a",
        &[
            CycleSpec::new(10, 10.0).ok(1200, 50_000),
            CycleSpec::new(20, 10.0).ok(1515, 300_000).err(100),
        ],
    );
    let b = run_dir(root.path(), "base", vec![base]);
    let n = run_dir(root.path(), "new", vec![new]);
    let load = |p: &Path| {
        report::input::load(p, &ReportOptions::default())
            .unwrap()
            .summary
    };
    let d = diff::compare(&load(&b), &load(&n));
    assert_eq!(d.levels.len(), 2);
    let spps = &d.levels[0].deltas[0];
    assert_eq!(spps.metric, "SPPS");
    assert!((spps.base - 100.0).abs() < 1e-9 && (spps.new - 120.0).abs() < 1e-9);
    assert!((spps.delta - 20.0).abs() < 1e-9);
    assert!((spps.change_pct.unwrap() - 20.0).abs() < 1e-9);
    assert_eq!(spps.verdict, diff::Verdict::Better);
    // The fixture spreads a cycle's pages evenly over its seconds: no noise, so even +1 % is
    // significant, its interval a point.
    let spps20 = &d.levels[1].deltas[0];
    assert!((spps20.change_pct.unwrap() - 1.0).abs() < 1e-9);
    let ci = spps20.interval.expect("the fixture has per-second series");
    assert!(ci.low > 0.5 && ci.high < 1.5, "{ci:?}");
    assert_eq!(spps20.verdict, diff::Verdict::Better);
    let p95 = &d.levels[0].deltas[3];
    assert_eq!(p95.metric, "p95 (ms)");
    assert!((p95.change_pct.unwrap() + 50.0).abs() < 0.2, "{p95:?}");
    assert_eq!(p95.verdict, diff::Verdict::Better);
    let err = &d.levels[1].deltas[5];
    assert!((err.new - 100.0 * 100.0 / 1615.0).abs() < 1e-9);
    assert_eq!(err.verdict, diff::Verdict::Worse);
    assert_eq!(
        d.verdicts[0].verdict,
        diff::Verdict::Better,
        "{}",
        d.verdicts[0].text
    );
    assert!(
        d.verdicts[0]
            .text
            .contains("+20.0 % at 10 users (95 % interval +"),
        "{}",
        d.verdicts[0].text
    );

    // A summary.json from before the per-second data: no interval, the fixed band judges
    // (+1 % is then the same, +20 % better).
    let strip = |dir: &Path| {
        let path = dir.join("report/summary.json");
        let mut v: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        for c in v["cycles"].as_array_mut().unwrap() {
            let c = c.as_object_mut().unwrap();
            assert!(c.remove("seconds").is_some() && c.remove("latency_intervals").is_some());
        }
        let name = dir.file_name().unwrap().to_string_lossy();
        let old = root.path().join(format!("old-{name}.json"));
        std::fs::write(&old, v.to_string()).unwrap();
        old
    };
    let (old_b, old_n) = (strip(&b), strip(&n));
    let old = diff::compare(&load(&old_b), &load(&old_n));
    assert!(old.levels[1].deltas.iter().all(|d| d.interval.is_none()));
    assert_eq!(old.levels[1].deltas[0].verdict, diff::Verdict::Same);
    assert_eq!(old.levels[0].deltas[0].verdict, diff::Verdict::Better);

    let out = root.path().join("diff");
    let (page, _) = build_diff(&b, &n, &out, &ReportOptions::default()).unwrap();
    let html = std::fs::read_to_string(page).unwrap();
    assert!(html.contains("SPPS is better"));
    assert!(html.contains("20.0 %"));
    assert!(html.matches("<svg").count() >= 3);

    // The trend of both, and the workspace index listing both (the diff is not a run).
    let trend = report::build_trend(
        &[b.clone(), n.clone()],
        &root.path().join("trend"),
        &ReportOptions::default(),
    )
    .unwrap();
    assert!(
        std::fs::read_to_string(trend)
            .unwrap()
            .matches("<svg")
            .count()
            >= 3
    );
    let idx = std::fs::read_to_string(write_index(root.path()).unwrap()).unwrap();
    assert_eq!(idx.matches("index.html\">").count(), 2, "{idx}");
    assert!(
        idx.contains(">base</a>") && idx.contains(">new</a>"),
        "{idx}"
    );
    assert!(
        idx.contains("href=\"base&#x2F;report&#x2F;index.html\""),
        "{idx}"
    );
}

#[test]
fn results_are_read_from_files_and_bad_ones_skipped_on_request() {
    let dir = tempdir();
    let f = Fixture::default();
    let mut files = Vec::new();
    for i in 0..3 {
        let p = dir.path().join(format!("node{i}.xml"));
        write_file(
            &f.node(
                i,
                &format!("h{i}"),
                &[CycleSpec::new(5, 10.0).ok(100, 20_000)],
            ),
            &p,
        )
        .unwrap();
        files.push(p);
    }
    let bad = dir.path().join("cut.xml");
    let text = std::fs::read_to_string(&files[0]).unwrap();
    std::fs::write(&bad, &text[..text.len() / 2]).unwrap();
    files.push(bad.clone());

    let out = dir.path().join("report");
    let e = build_report(&files, &out, &ReportOptions::default()).unwrap_err();
    assert!(e.is_bad_input());
    assert!(e.to_string().contains("cut.xml"), "{e}");

    let opts = ReportOptions {
        skip_bad: true,
        ..ReportOptions::default()
    };
    let written = build_report(&files, &out, &opts).unwrap();
    assert_eq!(written.summary.nodes, 3);
    assert_eq!(written.summary.cycles[0].users, 15);
    assert_eq!(written.summary.skipped.len(), 1);
    assert!(written.summary.skipped[0].path.ends_with("cut.xml"));
    let html = std::fs::read_to_string(written.index_html).unwrap();
    assert!(html.contains("cut.xml"), "skipped files are listed");

    let text = report::text_report(&files[..3], &ReportOptions::default()).unwrap();
    assert!(text.contains("REQUESTS"), "{text}");
    assert!(text.contains("30.00"), "{text}");
}

#[test]
fn the_command_line_reports_and_exits_with_the_documented_codes() {
    let dir = tempdir();
    let f = Fixture::default();
    let file = dir.path().join("node0.xml");
    write_file(
        &f.node(0, "h", &[CycleSpec::new(5, 10.0).ok(100, 20_000)]),
        &file,
    )
    .unwrap();
    let bin = env!("CARGO_BIN_EXE_bench-report");
    let out = dir.path().join("r");
    let ok = Command::new(bin)
        .arg("-o")
        .arg(&out)
        .arg(&file)
        .output()
        .unwrap();
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    assert!(out.join("index.html").is_file() && out.join("summary.json").is_file());
    let text = Command::new(bin).arg("--text").arg(&file).output().unwrap();
    assert!(String::from_utf8_lossy(&text.stdout).contains("PAGES"));
    let no_out = Command::new(bin).arg(&file).output().unwrap();
    assert_eq!(no_out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&no_out.stderr).contains("-o DIR"));
    let missing = Command::new(bin)
        .arg("-o")
        .arg(&out)
        .arg(dir.path().join("nope.xml"))
        .output()
        .unwrap();
    assert_eq!(missing.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("nope.xml"));
    let idx = Command::new(bin)
        .arg("--index")
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(idx.status.success());
    assert!(dir.path().join("index.html").is_file());
}

/// A report with everything in it, for the browser and for people to look at.
fn showcase(dir: &Path) -> PathBuf {
    let f = Fixture {
        steps: (1..=6).map(|i| format!("step {i}")).collect(),
        ..Fixture::default()
    };
    let spec = |users: u32, n: usize, us: u64, fail: usize| {
        CycleSpec::new(users, 20.0)
            .ok(n, us)
            .ok(n / 4, us * 3)
            .ok(n / 50, us * 12)
            .fail(fail, us / 2)
            .err(fail as u64 / 3)
    };
    let nodes = (0..4)
        .map(|i| {
            let mut n = f.node(
                i,
                &format!("load{i}.example"),
                &[
                    spec(10, 900, 40_000, 0),
                    spec(20, 1600, 70_000, 12),
                    spec(40, 2000, 160_000, 90),
                ],
            );
            n.errors.push(ErrorGroup {
                step: "step 2".into(),
                kind: ErrorKind::Status,
                detail: "HTTP 503".into(),
                count: 34,
                samples: vec![ErrorSample {
                    url: "http://127.0.0.1:8080/step2?id=42".into(),
                    status: Some(503),
                    at_ms: 41_200,
                    body: "Service Unavailable: upstream overloaded".into(),
                }],
            });
            n
        })
        .collect();
    let opts = ReportOptions {
        failed_nodes: vec![report::FailedNode {
            name: "node4".into(),
            host: "load4.example".into(),
            reason: "ssh: connection refused".into(),
            stderr_tail: "ssh: connect to host load4.example port 22: Connection refused".into(),
        }],
        ..ReportOptions::default()
    };
    let r = report::report_of(merged(nodes), &[], &opts);
    write_report(&r, dir, &opts).unwrap().index_html
}

#[test]
fn a_real_browser_loads_the_report_without_errors_and_draws_the_charts() {
    let target = Path::new(env!("CARGO_MANIFEST_DIR")).join("target");
    let dir = target.join("report-browser");
    std::fs::remove_dir_all(&dir).ok();
    let page = showcase(&dir);
    let url = format!("file://{}", page.display());

    // Console errors (and a screenshot for people to look at).
    let shot = target.join("report-screenshot.png");
    std::fs::remove_file(&shot).ok();
    let (_, log) = chromium(&[
        "--enable-logging=stderr",
        "--v=0",
        "--window-size=1280,2400",
        &format!("--screenshot={}", shot.display()),
        &url,
    ]);
    let console: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("CONSOLE") || l.contains("Uncaught"))
        .collect();
    assert!(console.is_empty(), "console messages: {console:#?}");
    assert!(
        shot.is_file(),
        "no screenshot written; chromium said:\n{log}"
    );

    // Chart sizes, measured by a script in a test-only copy of the page.
    let probe = r#"<script>
var sizes = [];
document.querySelectorAll('figure svg').forEach(function (s) {
  if (s.closest('details:not([open])')) return;
  var r = s.getBoundingClientRect();
  sizes.push(Math.round(r.width) + 'x' + Math.round(r.height));
});
var p = document.createElement('pre');
p.id = 'svg-sizes';
p.textContent = 'SVG' + 'SIZES ' + sizes.join(' ') + ' END';
document.body.appendChild(p);
</script></body>"#;
    let html = std::fs::read_to_string(&page).unwrap();
    let copy = dir.join("probe.html");
    std::fs::write(&copy, html.replace("</body>", probe)).unwrap();
    let (dom, log) = chromium(&[
        "--window-size=1280,2400",
        "--dump-dom",
        &format!("file://{}", copy.display()),
    ]);
    let sizes = dom
        .split("SVGSIZES ")
        .nth(1)
        .and_then(|s| s.split(" END").next())
        .unwrap_or_else(|| panic!("the probe did not run; chromium said:\n{log}"));
    let sizes: Vec<(u32, u32)> = sizes
        .split_whitespace()
        .map(|s| {
            let (w, h) = s.split_once('x').unwrap();
            (w.parse().unwrap(), h.parse().unwrap())
        })
        .collect();
    assert!(sizes.len() >= 8, "too few charts measured: {sizes:?}");
    assert!(
        sizes.iter().all(|&(w, h)| w > 100 && h > 50),
        "a chart has no size: {sizes:?}"
    );
}

/// Writes the benchmark's input: `BENCH_REPORT_NODES` (64) node results of 3 cycles × 20 steps
/// into `BENCH_REPORT_FIXTURES`. Run by scripts/bench-report.sh, not as a test.
#[test]
#[ignore = "writes the input of scripts/bench-report.sh"]
fn write_benchmark_fixtures() {
    let Ok(dir) = std::env::var("BENCH_REPORT_FIXTURES") else {
        panic!("set BENCH_REPORT_FIXTURES to the directory to write into");
    };
    let nodes: u32 = std::env::var("BENCH_REPORT_NODES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(64);
    let dir = PathBuf::from(dir);
    std::fs::create_dir_all(&dir).unwrap();
    let f = Fixture {
        steps: (1..=20).map(|i| format!("step {i:02}")).collect(),
        duration_s: 60.0,
        ..Fixture::default()
    };
    for n in 0..nodes {
        // Latencies spread over three orders of magnitude, different on every node, so that
        // histograms are as dense as real ones.
        let cycles: Vec<CycleSpec> = [10u32, 20, 40]
            .iter()
            .enumerate()
            .map(|(c, &users)| {
                let mut spec = CycleSpec::new(users, 60.0).err(u64::from(n % 5) + c as u64);
                spec.ok_us = (0..6000u64)
                    .map(|i| {
                        let x = (i * 7919 + u64::from(n) * 104_729) % 10_007;
                        2_000 + x * x / 40 * (c as u64 + 1) + i % 997
                    })
                    .collect();
                spec.failures = (0..(30 * (c + 1)) as u64)
                    .map(|i| 5_000 + i * 331)
                    .collect();
                spec
            })
            .collect();
        let mut node = f.node(n, &format!("load{n:02}.example"), &cycles);
        node.errors = (0..8)
            .map(|k| ErrorGroup {
                step: format!("step {:02}", k + 1),
                kind: ErrorKind::Status,
                detail: format!("HTTP 50{}", k % 4),
                count: 10 + k,
                samples: vec![
                    ErrorSample {
                        url: format!("http://127.0.0.1:8080/step{k}?node={n}"),
                        status: Some(500 + (k % 4) as u16),
                        at_ms: 1000 * k,
                        body: "x".repeat(300),
                    };
                    3
                ],
            })
            .collect();
        node.resources[0].samples = (0..200)
            .map(|k| ResourceSample {
                at_ms: k * 1000,
                cpu_pct: (k % 90) as f64,
                load1: 1.0,
                mem_used_kib: 1 << 21,
                mem_total_kib: 1 << 23,
                net_rx_bps: 1e6,
                net_tx_bps: 1e5,
            })
            .collect();
        write_file(&node, &dir.join(format!("node{n:02}.xml"))).unwrap();
    }
}

#[test]
fn a_node_that_measured_nothing_still_gives_a_report() {
    let dir = tempdir();
    let mut node = Fixture::default().node(0, "h", &[]);
    node.interrupted = true;
    node.resources.clear();
    let html = html_of(vec![node], dir.path());
    assert!(html.contains("interrupted"));
    let text = report::text::TextOutput;
    let r = report::report_of(
        merged(vec![Fixture::default().node(0, "h", &[])]),
        &[],
        &ReportOptions::default(),
    );
    report::Output::render(&text, &r).unwrap();
}

#[test]
fn templates_can_be_overridden_from_a_directory() {
    let dir = tempdir();
    let tpl = dir.path().join("tpl");
    std::fs::create_dir_all(&tpl).unwrap();
    std::fs::write(
        tpl.join("report.html"),
        "custom {{ config.test }} {{ cycles | length }}",
    )
    .unwrap();
    let opts = ReportOptions {
        templates: Some(tpl),
        ..ReportOptions::default()
    };
    let f = Fixture {
        test: "<b>".into(),
        ..Fixture::default()
    };
    let r = report::report_of(
        merged(vec![f.node(0, "h", &[CycleSpec::new(1, 1.0).ok(1, 10)])]),
        &[],
        &opts,
    );
    let out = dir.path().join("out");
    write_report(&r, &out, &opts).unwrap();
    let html = std::fs::read_to_string(out.join("index.html")).unwrap();
    assert_eq!(html, "custom &lt;b&gt; 1", "overrides are autoescaped too");
}

#[test]
fn trend_follows_levels_or_else_cycle_positions() {
    let f = Fixture::default();
    let run = |users: &[u32], spps: usize| {
        let nodes = vec![f.node(
            0,
            "h",
            &users
                .iter()
                .map(|&u| CycleSpec::new(u, 10.0).ok(spps * 10, 1000))
                .collect::<Vec<_>>(),
        )];
        let summary = report::report_of(merged(nodes), &[], &ReportOptions::default()).summary;
        report::input::RunInput {
            path: PathBuf::from("x"),
            label: format!("r{spps}"),
            summary,
        }
    };
    let same = report::trend::trend(&[run(&[10, 20], 5), run(&[10, 20], 7)]);
    assert!(!same.by_position);
    assert_eq!(same.levels, ["10 users", "20 users"]);
    assert_eq!(same.runs[1].cells[1].as_ref().unwrap().spps, 7.0);
    let other = report::trend::trend(&[run(&[10, 20], 5), run(&[30, 60, 90], 7)]);
    assert!(other.by_position);
    assert_eq!(other.levels, ["cycle 1", "cycle 2", "cycle 3"]);
    assert!(other.runs[0].cells[2].is_none());
    assert_eq!(other.runs[1].cells[2].as_ref().unwrap().users, 90);
}
