//! The live abort end to end: a `bench-master` run of two local nodes planned for 60 s against
//! a server on 127.0.0.1 that turns slow a few seconds in is stopped by its `abort = true`
//! threshold within `abort_after` + 3 s, every node stopped, the report written and the
//! stopping threshold named in it, in summary.json and in the master's output (exit code 4);
//! `bench-node run` alone does the same on its own seconds.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::master::{summary, text, Bench};
use crate::util::{bench_node, response, run, tempdir, write, RawServer};

/// After the first request, the server answers in 5 ms for this long, then in 300 ms.
const FAST_FOR: Duration = Duration::from_secs(6);

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

/// A server answering in 5 ms until [`FAST_FOR`] after its first request, then in 300 ms;
/// and when it turned slow, Unix ms (0 before).
fn turning_slow() -> (RawServer, Arc<AtomicU64>) {
    let first = Arc::new(AtomicU64::new(0));
    let slow_since = Arc::new(AtomicU64::new(0));
    let slow = slow_since.clone();
    let server = RawServer::start(move |_| {
        let now = now_ms();
        let _ = first.compare_exchange(0, now, Ordering::SeqCst, Ordering::SeqCst);
        let turn = first.load(Ordering::SeqCst) + FAST_FOR.as_millis() as u64;
        if now >= turn {
            let _ = slow.compare_exchange(0, turn, Ordering::SeqCst, Ordering::SeqCst);
            std::thread::sleep(Duration::from_millis(300));
        } else {
            std::thread::sleep(Duration::from_millis(5));
        }
        response("200 OK", &[], "ok")
    });
    (server, slow_since)
}

/// A 60 s test of one step at `url` whose p95 must stay under 100 ms, else the run stops
/// after 2 s of it.
fn test_file(dir: &std::path::Path, url: &str) -> std::path::PathBuf {
    write(
        dir,
        "test.toml",
        &format!(
            "[test]\nname = \"abort\"\nurl = \"{url}\"\n\n[bench]\ncycles = [2]\nduration = 60\n\
             startup_delay = 0\n\n[[step]]\nname = \"home\"\npath = \"/\"\n\n\
             [[threshold]]\nmetric = \"p95\"\nmax = \"100ms\"\nabort = true\nabort_after = \"2s\"\n\n\
             [[threshold]]\nmetric = \"error_rate\"\nmax = \"1%\"\n"
        ),
    )
}

#[test]
fn a_live_threshold_stops_a_60s_run_soon_after_the_target_turns_slow() {
    let (server, slow_since) = turning_slow();
    let dir = tempdir();
    let test = test_file(dir.path(), &server.url());
    let nodes = write(dir.path(), "nodes", "local\nlocal\n");
    let b = Bench::new(dir.path());
    let started = std::time::Instant::now();
    let out = b
        .command(None, &[])
        .arg(&nodes)
        .arg(&test)
        .output()
        .unwrap();
    let took = started.elapsed();
    let said = text(&out);
    assert_eq!(out.status.code(), Some(4), "{said}");
    assert!(
        took < Duration::from_secs(40),
        "the run went on: {took:?}\n{said}"
    );
    assert!(
        said.contains("stopping every node: threshold p95"),
        "the master does not say why it stopped: {said}"
    );
    assert!(said.contains("STOPPED BY A THRESHOLD: p95"), "{said}");

    // Every node stopped within abort_after + 3 s of the server turning slow.
    let slow_at = slow_since.load(Ordering::SeqCst);
    assert!(slow_at > 0, "the server never turned slow");
    let run_dir = b.run_dir();
    for node in ["node0.xml", "node1.xml"] {
        let result = benchmaster::result::read::read_file(&run_dir.join("results").join(node))
            .unwrap_or_else(|e| panic!("{node}: {e}"));
        assert!(result.interrupted, "{node} was not stopped");
        let after_ms = result.finished_unix_ms.saturating_sub(slow_at);
        println!("{node} stopped {after_ms} ms after the server turned slow");
        assert!(after_ms <= 5_000, "{node} stopped {after_ms} ms after");
    }

    // The report and summary.json name the threshold and when.
    let s = summary(&run_dir);
    let stop = &s["stopped_by"];
    assert_eq!(stop["index"], 0, "{stop}");
    assert!(
        stop["threshold"].as_str().unwrap().starts_with("p95"),
        "{stop}"
    );
    let from = stop["broken_from_s"].as_u64().unwrap();
    let at = stop["at_s"].as_u64().unwrap();
    assert!(at >= from + 2, "stopped before 2 s broken: {stop}");
    assert!(s["thresholds"][0]["stopped_run"].as_bool().unwrap());
    assert!(!s["thresholds"][0]["passed"].as_bool().unwrap());
    let html = std::fs::read_to_string(run_dir.join("report/index.html")).unwrap();
    assert!(
        html.contains("id=\"stopped-by\""),
        "no stop notice in the report"
    );
}

#[test]
fn bench_node_alone_stops_itself_on_its_own_seconds() {
    let (server, slow_since) = turning_slow();
    let dir = tempdir();
    let test = test_file(dir.path(), &server.url());
    let result = dir.path().join("result.xml");
    let started = std::time::Instant::now();
    let out = run(bench_node().arg("run").arg(&test).arg("-o").arg(&result));
    let said = text(&out);
    assert_eq!(out.status.code(), Some(4), "{said}");
    assert!(started.elapsed() < Duration::from_secs(40), "{said}");
    assert!(said.contains("stopped: threshold p95"), "{said}");
    assert!(said.contains("STOPPED BY A THRESHOLD: p95"), "{said}");
    let r = benchmaster::result::read::read_file(&result).unwrap();
    assert!(r.interrupted);
    let slow_at = slow_since.load(Ordering::SeqCst);
    let after_ms = r.finished_unix_ms.saturating_sub(slow_at);
    println!("stopped {after_ms} ms after the server turned slow");
    assert!(
        slow_at > 0 && after_ms <= 5_000,
        "stopped {after_ms} ms after"
    );
}
