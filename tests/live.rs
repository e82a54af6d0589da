//! The live per-second stream: two real bench-node processes' progress lines merged by the
//! live view, checked against what the nodes and the server counted; and the bound of the
//! latency over time they record (1 s intervals up to a 10-minute plan, coarser above).

use std::io::{BufRead, BufReader, Write};
use std::process::Stdio;

use benchmaster::live::{ClusterSecond, Live};
use benchmaster::protocol::progress::ProgressEvent;
use benchmaster::result::latency::new_interval_histogram;
use benchmaster::result::read::read_file;
use benchmaster::result::NodeResult;

use crate::util::{bench_node, tempdir, write, Server};

/// The result of a `bench-node run` planned for `duration` s (one user, one page), stopped by
/// Ctrl+C after about 3 s: the plan, not the time run, sets the interval.
fn interrupted_run(dir: &std::path::Path, url: &str, duration: u32) -> NodeResult {
    let test = write(
        dir,
        &format!("t{duration}.toml"),
        &format!(
            "[test]\nname = \"bound\"\nurl = \"{url}\"\n\n[bench]\ncycles = [1]\n\
             duration = {duration}\nsleep_time_min = 0.01\nsleep_time_max = 0.01\n\n\
             [[step]]\nname = \"home\"\npath = \"/\"\n"
        ),
    );
    let out = dir.join(format!("r{duration}.xml"));
    let mut child = bench_node()
        .arg("run")
        .arg(&test)
        .arg("-o")
        .arg(&out)
        .args(["--progress", "none"])
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_secs(3));
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    assert_eq!(child.wait().unwrap().code(), Some(130), "interrupted");
    read_file(&out).unwrap()
}

#[test]
fn latency_intervals_are_one_second_for_a_ten_minute_plan_and_two_just_above() {
    let server = Server::start();
    let dir = tempdir();
    for (duration, interval_s) in [(600, 1), (601, 2)] {
        let r = interrupted_run(dir.path(), &server.url(), duration);
        let series = &r.latency;
        assert_eq!(series.interval_s, interval_s, "a plan of {duration} s");
        assert!(!series.intervals.is_empty());
        // Each interval holds the pages of its seconds of the run, no more, no fewer.
        for iv in &series.intervals {
            let seconds = iv.index * interval_s..(iv.index + 1) * interval_s;
            let in_series: u64 = r
                .series
                .iter()
                .filter(|s| seconds.contains(&s.second))
                .map(|s| s.requests)
                .sum();
            assert_eq!(iv.pages().len(), in_series, "interval {}", iv.index);
        }
        let pages: u64 = series.intervals.iter().map(|iv| iv.pages().len()).sum();
        assert_eq!(pages, r.series.iter().map(|s| s.requests).sum::<u64>());
        assert!(pages > 10, "{pages} pages");
    }
}

#[test]
fn two_nodes_merged_live_add_up_to_their_totals_with_exact_percentiles() {
    let server = Server::start();
    let dir = tempdir();
    let test = write(
        dir.path(),
        "t.toml",
        &format!(
            r#"
[test]
name = "live"
url = "{}"

[bench]
cycles = [3]
duration = 2.5
startup_delay = 0.01
timeout = 2

[[step]]
name = "home"
path = "/"

[[step]]
name = "slow"
path = "/slow?delay_ms=4"
"#,
            server.url()
        ),
    );
    let mut nodes: Vec<_> = (0..2)
        .map(|n| {
            let out = dir.path().join(format!("r{n}.xml"));
            let child = bench_node()
                .arg("run")
                .arg(&test)
                .arg("-o")
                .arg(&out)
                .args(["--progress", "json", "--wait-start"])
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .spawn()
                .unwrap();
            (child, out)
        })
        .collect();
    // Both read their plan; both start on the word, as the master starts them.
    let mut readers: Vec<_> = nodes
        .iter_mut()
        .map(|(c, _)| BufReader::new(c.stdout.take().unwrap()).lines())
        .collect();
    for r in &mut readers {
        assert!(r.next().unwrap().unwrap().contains("\"ready\""));
    }
    for (c, _) in &mut nodes {
        writeln!(c.stdin.as_mut().unwrap(), "start").unwrap();
    }
    let (tx, rx) = std::sync::mpsc::channel();
    for (slot, lines) in readers.into_iter().enumerate() {
        let tx = tx.clone();
        std::thread::spawn(move || {
            for line in lines.map_while(Result::ok) {
                if let Some(event) = ProgressEvent::parse(&line) {
                    tx.send((slot, event)).unwrap();
                }
            }
        });
    }
    drop(tx);
    let mut live = Live::new(vec![0, 1], 1000);
    let mut each = live.subscribe();
    let mut totals = [0u64; 2];
    let mut lines_with_seconds = 0;
    for (slot, event) in rx {
        if let ProgressEvent::Progress {
            requests, seconds, ..
        } = &event
        {
            totals[slot] = *requests;
            lines_with_seconds += usize::from(!seconds.is_empty());
        }
        live.progress(slot, &event);
        if matches!(event, ProgressEvent::Done { .. }) {
            live.node_ended(slot);
        }
    }
    for (c, _) in &mut nodes {
        assert!(c.wait().unwrap().success());
    }
    let mut seconds: Vec<ClusterSecond> = Vec::new();
    while let Ok(s) = each.try_recv() {
        seconds.push((*s).clone());
    }
    assert!(
        lines_with_seconds >= 4,
        "{lines_with_seconds} lines had seconds"
    );
    assert!(seconds.len() >= 3, "{} seconds", seconds.len());
    assert!(seconds.windows(2).all(|w| w[0].second < w[1].second));
    // Counts: every request once, as the nodes and the server counted them.
    let live_requests: u64 = seconds.iter().map(|s| s.requests).sum();
    assert!(live_requests > 100, "{live_requests}");
    assert_eq!(live_requests, totals[0] + totals[1]);
    assert_eq!(live_requests, server.count());
    for (slot, total) in totals.iter().enumerate() {
        let per_node: u64 = seconds.iter().map(|s| s.per_node[slot].requests).sum();
        assert_eq!(per_node, *total, "node {slot}");
    }
    assert!(
        seconds.iter().any(|s| s.users == 6),
        "both nodes' users add up"
    );
    // Latency: the live seconds' histograms, merged, are the nodes' result intervals summed.
    let mut live_all = new_interval_histogram();
    let mut live_slow = new_interval_histogram();
    for s in &seconds {
        assert!(!s.latency_partial);
        live_all.add(&s.latency).unwrap();
        live_slow.add(&s.steps[1].latency).unwrap();
        // Each node's own latency is kept too; together they are the cluster's.
        let mut nodes_sum = new_interval_histogram();
        for n in &s.per_node {
            nodes_sum.add(n.latency.unpack()).unwrap();
        }
        assert_eq!(nodes_sum, s.latency, "second {}", s.second);
    }
    let mut results_all = new_interval_histogram();
    let mut results_slow = new_interval_histogram();
    for (_, out) in &nodes {
        let r = read_file(out).unwrap();
        assert_eq!(r.latency.interval_s, 1);
        for iv in &r.latency.intervals {
            results_all.add(iv.pages()).unwrap();
            results_slow.add(iv.steps[1].unpack()).unwrap();
        }
    }
    assert_eq!(live_all, results_all);
    assert_eq!(live_slow, results_slow);
    for q in [0.5, 0.95, 0.99] {
        assert_eq!(
            live_all.value_at_quantile(q),
            results_all.value_at_quantile(q)
        );
    }
    // The slow step is the slow one: its median is at least its 4 ms, all pages' is lower.
    assert!(live_slow.value_at_quantile(0.5) >= 4000);
    assert!(live_all.value_at_quantile(0.25) < 4000);
}
