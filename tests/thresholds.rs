//! Thresholds end to end: judged on the merged cluster result of `bench-master` runs of three
//! local nodes (exit codes 0 and 4, junit.xml validated against Jenkins' JUnit schema), the
//! cluster's verdict against the average of the nodes', a stored run judged again by
//! `bench-report`, bad thresholds at check time, the markdown summary. Loads go to 127.0.0.1.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::master::{summary, text, Bench};
use crate::util::{bench_node, run, tempdir, write, Server};

/// The schema Jenkins validates JUnit reports with (source and licence in the file).
fn junit_xsd() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/junit-10.xsd")
}

/// Validates `file` against the JUnit schema with xmllint (Debian's libxml2-utils).
fn assert_valid_junit(file: &Path) {
    let out = Command::new("xmllint")
        .arg("--noout")
        .arg("--schema")
        .arg(junit_xsd())
        .arg(file)
        .output()
        .expect("xmllint runs (apt-get install libxml2-utils)");
    assert!(out.status.success(), "{file:?}: {}", text(&out));
}

/// The test cases of a JUnit file: (name, failed).
fn testcases(file: &Path) -> Vec<(String, bool)> {
    use quick_xml::events::Event;
    let xml = std::fs::read_to_string(file).unwrap();
    let mut reader = quick_xml::Reader::from_str(&xml);
    let mut cases: Vec<(String, bool)> = Vec::new();
    loop {
        match reader.read_event().unwrap() {
            Event::Start(e) | Event::Empty(e) if e.name().as_ref() == b"testcase" => {
                let name = e
                    .try_get_attribute("name")
                    .unwrap()
                    .unwrap()
                    .unescape_value()
                    .unwrap()
                    .into_owned();
                cases.push((name, false));
            }
            Event::Start(e) if e.name().as_ref() == b"failure" => {
                cases.last_mut().unwrap().1 = true;
            }
            Event::Eof => return cases,
            _ => {}
        }
    }
}

/// A test of one step at `path` with `thresholds` (TOML) appended.
fn test_with(dir: &Path, url: &str, path: &str, thresholds: &str) -> PathBuf {
    write(
        dir,
        "test.toml",
        &format!(
            "[test]\nname = \"thresholds\"\nurl = \"{url}\"\n\n[bench]\ncycles = [1]\nduration = 1\n\n\
             [[step]]\nname = \"home\"\npath = '{path}'\n\n{thresholds}"
        ),
    )
}

/// `bench-master` on three local nodes with `flags`; the output and the run directory.
fn three_nodes(dir: &Path, test: &Path, flags: &[&str]) -> (Output, PathBuf) {
    let b = Bench::new(dir);
    let nodes = write(dir, "nodes", "local\nlocal\nlocal\n");
    let out = b
        .command(None, flags)
        .arg(&nodes)
        .arg(test)
        .output()
        .unwrap();
    (out, b.run_dir())
}

const PASSING: &str = "[[threshold]]\nmetric = \"p95\"\nmax = \"5s\"\n\n\
    [[threshold]]\nmetric = \"error_rate\"\nmax = \"1%\"\ncycle = \"all\"\n\n\
    [[threshold]]\nmetric = \"rps\"\nmin = 1\ncycle = \"last\"\n";

#[test]
fn a_passing_threshold_set_on_three_nodes_exits_0() {
    let server = Server::start();
    let dir = tempdir();
    let test = test_with(dir.path(), &server.url(), "/", PASSING);
    let (out, run_dir) = three_nodes(dir.path(), &test, &["-c", "1:2", "-D", "1"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let junit = run_dir.join("report/junit.xml");
    assert_valid_junit(&junit);
    let cases = testcases(&junit);
    // p95 at each of the 2 cycles, error_rate of the whole run, rps of the last cycle.
    assert_eq!(cases.len(), 4, "{cases:?}");
    assert!(cases.iter().all(|(_, failed)| !failed), "{cases:?}");
    let s = summary(&run_dir);
    assert_eq!(s["thresholds"].as_array().unwrap().len(), 3);
    assert!(s["thresholds"][0]["passed"].as_bool().unwrap());
    let html = std::fs::read_to_string(run_dir.join("report/index.html")).unwrap();
    assert!(html.contains("id=\"thresholds\""), "no thresholds table");
}

#[test]
fn a_failing_threshold_set_on_three_nodes_exits_4_with_the_failing_cases() {
    let server = Server::start();
    let dir = tempdir();
    let failing = format!(
        "{PASSING}\n[[threshold]]\nmetric = \"spps\"\nstep = \"home\"\nmin = 1000000\n\n\
         [[threshold]]\nmetric = \"p50\"\nmax = \"1us\"\ncycle = \"last\"\n"
    );
    let test = test_with(dir.path(), &server.url(), "/?delay_ms=2", &failing);
    let (out, run_dir) = three_nodes(dir.path(), &test, &["-c", "1:2", "-D", "1"]);
    assert_eq!(out.status.code(), Some(4), "{}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("THRESHOLDS: FAILED (3 of 5 passed)"),
        "{stderr}"
    );
    let junit = run_dir.join("report/junit.xml");
    assert_valid_junit(&junit);
    let failed: Vec<String> = testcases(&junit)
        .into_iter()
        .filter(|(_, failed)| *failed)
        .map(|(name, _)| name)
        .collect();
    assert_eq!(
        failed,
        [
            "spps of step \"home\" ≥ 1000000/s — cycle 1 (3 users)",
            "spps of step \"home\" ≥ 1000000/s — cycle 2 (6 users)",
            "p50 of all pages ≤ 0.001 ms — cycle 2 (6 users)",
        ]
    );
    let xml = std::fs::read_to_string(&junit).unwrap();
    assert!(xml.contains("<failure message=\"measured "), "{xml}");
}

/// Runs three nodes of one user (closed model, `-c`) or one rate (open model, `-r`) each,
/// node 2 answered after 300 ms and the others at once, with `p95 ≤ limit` on the merged
/// result; returns (exit code, the average of the nodes' p95s, the merged p95), ms.
fn p95_cluster_against_nodes(model: &str, load: &str, limit_ms: u32) -> (i32, f64, f64) {
    let server = Server::start();
    let dir = tempdir();
    let threshold = format!("[[threshold]]\nmetric = \"p95\"\nmax = \"{limit_ms}ms\"\n");
    let path = "/?delay_ms={% if node == 2 %}300{% else %}0{% endif %}";
    let test = test_with(dir.path(), &server.url(), path, &threshold);
    let (out, run_dir) = three_nodes(dir.path(), &test, &[model, load, "-D", "2"]);
    let s = summary(&run_dir);
    let nodes = s["nodes_detail"].as_array().unwrap();
    assert_eq!(nodes.len(), 3, "{}", text(&out));
    let average = nodes
        .iter()
        .map(|n| n["p95_ms"].as_f64().unwrap())
        .sum::<f64>()
        / 3.0;
    let merged = s["cycles"][0]["latency_ms"]["p95"].as_f64().unwrap();
    let judged = s["thresholds"][0]["checks"][0]["value"].as_f64().unwrap();
    assert_eq!(
        judged, merged,
        "the threshold is judged on the merged histogram"
    );
    eprintln!("{model} {load}: average of nodes p95 {average} ms, merged {merged} ms");
    (out.status.code().unwrap(), average, merged)
}

#[test]
fn the_p95_verdict_is_the_clusters_when_the_average_of_nodes_would_pass() {
    // Open model: every node sends as many requests, so a third of them are slow: the merged
    // p95 is node 2's 300 ms, while the average of the nodes' p95s is about 100 ms.
    let (code, average, merged) = p95_cluster_against_nodes("-r", "20", 200);
    assert!(average < 200.0, "average of nodes' p95 {average} ms");
    assert!(merged > 200.0, "merged p95 {merged} ms");
    assert_eq!(code, 4, "the cluster broke the threshold");
}

#[test]
fn the_p95_verdict_is_the_clusters_when_the_average_of_nodes_would_fail() {
    // Closed model, one user each: the fast nodes send hundreds of requests for node 2's
    // few slow ones, so the merged p95 is fast while the average of p95s is about 100 ms.
    let (code, average, merged) = p95_cluster_against_nodes("-c", "1", 50);
    assert!(average > 50.0, "average of nodes' p95 {average} ms");
    assert!(merged < 50.0, "merged p95 {merged} ms");
    assert_eq!(code, 0, "the cluster met the threshold");
}

/// `bench-node run` alone of a test whose p50 cannot be met; returns the result file.
fn stored_failing_run(dir: &Path) -> PathBuf {
    let server = Server::start();
    let thresholds = "[[threshold]]\nmetric = \"p50\"\nmax = \"1us\"\n\n\
        [[threshold]]\nmetric = \"error_rate\"\nmax = 0.01\ncycle = \"all\"\n";
    let test = test_with(dir, &server.url(), "/?delay_ms=1", thresholds);
    let result = dir.join("result.xml");
    let out = run(bench_node()
        .arg("run")
        .arg(&test)
        .args(["-D", "1", "--progress", "none", "-o"])
        .arg(&result));
    // Alone, bench-node judges its own result.
    assert_eq!(out.status.code(), Some(4), "{}", text(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("FAIL  p50"));
    result
}

#[test]
fn bench_report_judges_a_stored_run_again() {
    let dir = tempdir();
    let result = stored_failing_run(dir.path());
    let report = |args: &[&str]| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_bench-report"));
        run(cmd.current_dir(dir.path()).args(args).arg(&result))
    };
    let out = report(&["-o", "rep"]);
    assert_eq!(out.status.code(), Some(4), "{}", text(&out));
    assert_valid_junit(&dir.path().join("rep/junit.xml"));
    let out = report(&["--junit", "ci.xml"]);
    assert_eq!(out.status.code(), Some(4), "{}", text(&out));
    let cases = testcases(&dir.path().join("ci.xml"));
    assert_eq!(
        cases,
        [
            (
                "p50 of all pages ≤ 0.001 ms — cycle 1 (1 user)".to_string(),
                true
            ),
            (
                "error_rate of all pages ≤ 1 % — whole run".to_string(),
                false
            ),
        ]
    );
    let out = report(&["--text"]);
    assert_eq!(out.status.code(), Some(4), "{}", text(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("THRESHOLDS: FAILED (1 of 2 passed)"));

    // A result without thresholds (as written before them) still reads, and passes.
    let xml = std::fs::read_to_string(&result).unwrap();
    let start = xml.find("<thresholds>").unwrap();
    let end = xml.find("</thresholds>").unwrap() + "</thresholds>".len();
    std::fs::write(&result, format!("{}{}", &xml[..start], &xml[end..])).unwrap();
    let out = report(&["--junit", "none.xml"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_valid_junit(&dir.path().join("none.xml"));
}

#[test]
fn markdown_summary_for_a_pull_request() {
    let dir = tempdir();
    let result = stored_failing_run(dir.path());
    let out = run(Command::new(env!("CARGO_BIN_EXE_bench-report"))
        .current_dir(dir.path())
        .args(["-o", "report", "--markdown", "comment.md"])
        .arg(&result));
    assert_eq!(out.status.code(), Some(4), "{}", text(&out));
    let md = std::fs::read_to_string(dir.path().join("comment.md")).unwrap();
    assert!(
        md.starts_with("### ❌ thresholds: 1 of 2 thresholds failed\n"),
        "{md}"
    );
    assert!(
        md.contains("| ❌ | p50 of all pages ≤ 0.001 ms | cycle 1 (1 user) |"),
        "{md}"
    );
    assert!(
        md.contains("| ✅ | error\\_rate of all pages ≤ 1 % | whole run | 0 % |"),
        "{md}"
    );
    assert!(md.contains("| Users | RPS | SPPS | Apdex |"), "{md}");
    assert!(md.contains("[Full report](report/index.html)"), "{md}");
}

#[test]
fn bad_thresholds_fail_at_check_time_with_file_and_line() {
    let dir = tempdir();
    let cases: &[(&str, &str)] = &[
        ("metric = \"p96\"\nmax = \"1s\"", "unknown metric \"p96\""),
        (
            "metric = \"p95\"\nstep = \"nope\"\nmax = \"1s\"",
            "no step is named \"nope\"",
        ),
        (
            "metric = \"p95\"\nmax = \"1s\"\nmin = \"1ms\"",
            "either max or min, not both",
        ),
        ("metric = \"p95\"\ncycle = \"each\"", "needs a limit"),
        ("metric = \"p95\"\nmax = 300", "300 has no unit"),
        (
            "metric = \"rps\"\nmin = \"300ms\"",
            "does not fit this metric",
        ),
        ("metric = \"error_rate\"\nmax = 5", "more than 1"),
        ("metric = \"spps\"\nmin = -1", "must not be negative"),
        ("metric = \"rps\"\nstep = \"home\"\nmin = 1", "not per step"),
        (
            "metric = \"p95\"\nmax = \"1s\"\nabort_after = \"5s\"",
            "only with abort = true",
        ),
        (
            "metric = \"p95\"\nmax = \"1s\"\ncycle = \"first\"",
            "not a cycle choice",
        ),
        (
            "metric = \"p95\"\nmax = \"1s\"\nlimit = 3",
            "unknown key `limit`",
        ),
    ];
    for (body, needle) in cases {
        // The [[threshold]] header is on line 13; the offending key on the lines below it.
        let test = test_with(
            dir.path(),
            "http://127.0.0.1:1",
            "/",
            &format!("[[threshold]]\n{body}\n"),
        );
        let out = run(bench_node().arg("check").arg(&test));
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{body}: {}", text(&out));
        assert!(err.contains(needle), "{body}: {err}");
        let line: usize = err
            .split_once("test.toml:")
            .and_then(|(_, rest)| rest.split(':').next())
            .and_then(|l| l.parse().ok())
            .unwrap_or_else(|| panic!("{body}: no file:line in {err}"));
        assert!((13..=17).contains(&line), "{body}: line {line} in {err}");
        assert!(err.contains("[[threshold]] #1"), "{body}: {err}");
    }
    // A good one is shown in the plan.
    let test = test_with(
        dir.path(),
        "http://127.0.0.1:1",
        "/",
        "[[threshold]]\nmetric = \"p99.9\"\nstep = \"home\"\nmax = \"1.5s\"\ncycle = \"all\"\n\
         abort = true\nabort_after = \"10s\"\n",
    );
    let out = run(bench_node().arg("check").arg(&test));
    assert!(out.status.success(), "{}", text(&out));
    let plan = String::from_utf8_lossy(&out.stdout);
    assert!(
        plan.contains(
            "1. p99.9 of step \"home\" ≤ 1500 ms, whole run; live: each second of the cluster \
             judged alone, 10 s broken in a row stop every node"
        ),
        "{plan}"
    );
}
