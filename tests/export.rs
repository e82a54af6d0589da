//! `--export`: bench-master runs of local nodes and a bench-node run alone sending their
//! numbers to Debian's real `influxd` and `prometheus`, started here on free loopback ports
//! with their own config and data in a temp dir; InfluxDB 2.x's write API as a real HTTP server
//! on port 0 records it; sinks that are down: a StatsD port where nobody listens, an InfluxDB
//! URL on a closed port.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use benchmaster::result::read::read_file;
use influxdb_line_protocol::{parse_lines, FieldValue};

use crate::master::{merged_requests, summary, text, Bench};
use crate::sshd::free_port;
use crate::util::{bench_node, closed_port, run, tempdir, write, LogServer, Server};

/// A server process killed on drop.
struct Daemon(Child);

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// True when `binary` is on PATH; otherwise says why the test is skipped.
fn have(binary: &str, package: &str) -> bool {
    let found = Command::new("sh")
        .args(["-c", &format!("command -v {binary}")])
        .output()
        .is_ok_and(|o| o.status.success());
    if !found {
        eprintln!("SKIPPED: `{binary}` is not installed (apt-get install -y {package})");
    }
    found
}

/// Status code and body of an HTTP request to 127.0.0.1:`port`.
fn http(port: u16, method: &str, target: &str) -> (u16, String) {
    let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) else {
        return (0, String::new());
    };
    let _ = write!(
        s,
        "{method} {target} HTTP/1.0\r\nHost: 127.0.0.1\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    );
    let mut answer = String::new();
    let _ = s.read_to_string(&mut answer);
    let code = answer
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = answer
        .split_once("\r\n\r\n")
        .map_or("", |x| x.1)
        .to_string();
    (code, body)
}

/// Waits until `GET target` on `port` answers `code` (at most 60 s).
fn wait_until(port: u16, target: &str, code: u16, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while http(port, "GET", target).0 != code {
        assert!(Instant::now() < deadline, "{what} did not come up");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// A test of `rate` executions per second on each node for `seconds` (open model: the same
/// count every run), one 1 ms page each.
fn rate_test(dir: &Path, url: &str, rate: u32, seconds: u32) -> PathBuf {
    write(
        dir,
        "t.toml",
        &format!(
            "[test]\nname = \"export\"\nurl = \"{url}\"\n\n[bench]\nrate = [{rate}]\n\
             duration = {seconds}\ncycle_time = 0\ntimeout = 2\n\n\
             [[step]]\nname = \"home page\"\npath = \"/?delay_ms=1\"\n"
        ),
    )
}

/// Runs the bench of `test` on two local nodes with `extra` flags and `env`; returns the run
/// directory.
fn bench_run(dir: &Path, test: &Path, extra: &[&str], env: &[(&str, &str)]) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    let bench = Bench::new(dir);
    let nodes = write(dir, "nodes", "local\nlocal\n");
    let out = bench
        .command(None, extra)
        .envs(env.iter().copied())
        .arg(&nodes)
        .arg(test)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    bench.run_dir()
}

/// Runs the bench of `test` on two local nodes with `extra` flags; returns the summary.
fn bench_with(dir: &Path, test: &Path, extra: &[&str]) -> serde_json::Value {
    summary(&bench_run(dir, test, extra, &[]))
}

/// Debian's `influxd` (1.x) on free loopback ports, its data in `dir`, with a database
/// `bench`; killed on drop.
struct Influxd {
    _daemon: Daemon,
    port: u16,
}

impl Influxd {
    /// Starts it, or `None` (the test skipped) when it is not installed.
    fn start(dir: &Path) -> Option<Influxd> {
        if !have("influxd", "influxdb") {
            return None;
        }
        let (rpc, port) = (free_port(), free_port());
        let d = dir.display();
        let config = write(
            dir,
            "influxdb.conf",
            &format!(
                "reporting-disabled = true\nbind-address = \"127.0.0.1:{rpc}\"\n\n\
                 [meta]\n  dir = \"{d}/meta\"\n\n[data]\n  dir = \"{d}/data\"\n  wal-dir = \"{d}/wal\"\n\n\
                 [http]\n  bind-address = \"127.0.0.1:{port}\"\n  log-enabled = false\n\n\
                 [monitor]\n  store-enabled = false\n"
            ),
        );
        let daemon = Daemon(
            Command::new("influxd")
                .arg("-config")
                .arg(&config)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap(),
        );
        wait_until(port, "/ping", 204, "influxd");
        let (code, body) = http(port, "POST", "/query?q=CREATE%20DATABASE%20bench");
        assert_eq!(code, 200, "{body}");
        Some(Influxd {
            _daemon: daemon,
            port,
        })
    }

    /// The `--export` flag writing to database `bench`.
    fn sink(&self) -> String {
        format!(
            "--export=influxdb=http://127.0.0.1:{}/write?db=bench",
            self.port
        )
    }

    /// The first value of an InfluxQL query's first series.
    fn query(&self, query: &str) -> serde_json::Value {
        let target = format!(
            "/query?db=bench&q={}",
            query
                .replace(' ', "%20")
                .replace('\'', "%27")
                .replace('"', "%22")
        );
        let (code, body) = http(self.port, "GET", &target);
        assert_eq!(code, 200, "{body}");
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        v["results"][0]["series"][0]["values"][0][1].clone()
    }
}

#[test]
fn influxdb_holds_exactly_the_runs_request_count() {
    let dir = tempdir();
    let Some(influxd) = Influxd::start(dir.path()) else {
        return;
    };
    let server = Server::start();
    let test = rate_test(dir.path(), &server.url(), 40, 3);
    let s = bench_with(dir.path(), &test, &["-n", "night run", &influxd.sink()]);
    let total = merged_requests(&s);
    assert!(total >= 200, "{total} requests");
    assert_eq!(s["exports"][0]["dropped"], 0, "{}", s["exports"]);
    assert!(s["exports"][0]["sent"].as_u64().unwrap() >= 3);

    let q = |query: &str| influxd.query(query);
    // The cluster's seconds add up to the run's count, exactly; so do the nodes' and the step's.
    let cluster = "SELECT sum(requests) FROM bench WHERE node = 'all' AND step = 'all'";
    assert_eq!(
        q(cluster).as_u64(),
        Some(total),
        "summary.json says {total}"
    );
    let nodes = "SELECT sum(requests) FROM bench WHERE node != 'all'";
    assert_eq!(q(nodes).as_u64(), Some(total));
    let step = "SELECT sum(requests) FROM bench WHERE step = 'home page' AND run = 'night run'";
    assert_eq!(q(step).as_u64(), Some(total));
    let p95 = q("SELECT max(p95_ms) FROM bench WHERE step = 'all'")
        .as_f64()
        .unwrap();
    assert!(p95 >= 1.0, "p95 {p95} ms of a 1 ms page");
    // Each node's own latency and bytes too.
    let node_p95 = q("SELECT max(p95_ms) FROM bench WHERE node = 'node1'").as_f64();
    assert!(node_p95.is_some_and(|p| p >= 1.0), "{node_p95:?}");
    let node_bytes = q("SELECT sum(bytes) FROM bench WHERE node != 'all'").as_u64();
    let all_bytes = q("SELECT sum(bytes) FROM bench WHERE node = 'all' AND step = 'all'").as_u64();
    assert_eq!(node_bytes, all_bytes);
}

/// The requests a node's result counts, inside its windows and outside.
fn result_requests(result: &Path) -> u64 {
    let r = read_file(result).unwrap();
    r.cycles
        .iter()
        .map(|c| c.requests.total() + c.outside.requests)
        .sum()
}

#[test]
fn bench_node_run_alone_exports_its_own_seconds_to_influxdb() {
    let dir = tempdir();
    let Some(influxd) = Influxd::start(dir.path()) else {
        return;
    };
    let server = Server::start();
    let test = rate_test(dir.path(), &server.url(), 40, 3);
    let result = dir.path().join("result.xml");
    run(bench_node()
        .arg("run")
        .arg(&test)
        .arg("-o")
        .arg(&result)
        .arg(influxd.sink()));
    let total = result_requests(&result);
    assert!(total >= 100, "{total} requests");
    assert_eq!(total, server.count());
    // The node is the whole "cluster" and itself, named `local`; the run is named after the test.
    let q = |query: &str| influxd.query(query).as_u64();
    let cluster = "SELECT sum(requests) FROM bench WHERE node = 'all' AND step = 'all' \
                   AND run = 'export' AND test = 'export' AND cycle = '1'";
    assert_eq!(q(cluster), Some(total), "the result XML says {total}");
    let node = "SELECT sum(requests) FROM bench WHERE node = 'local'";
    assert_eq!(q(node), Some(total));
    let step = "SELECT sum(requests) FROM bench WHERE step = 'home page'";
    assert_eq!(q(step), Some(total));
    // Active users are exported for the node; their count is the executions in flight at each
    // second's end, which in this open model of 1 ms answers is mostly 0, so only its presence
    // is certain.
    assert!(q(r#"SELECT max("users") FROM bench WHERE node = 'local'"#).is_some());
}

#[test]
fn a_bad_sink_is_refused_before_the_run_by_both_commands() {
    let dir = tempdir();
    let server = Server::start();
    let test = rate_test(dir.path(), &server.url(), 10, 1);
    let nodes = write(dir.path(), "nodes", "local\n");
    let bad = "--export=influxdb=http://127.0.0.1:8086/query?db=x";
    let node = bench_node()
        .arg("run")
        .arg(&test)
        .arg(bad)
        .output()
        .unwrap();
    let master = Bench::new(dir.path())
        .command(None, &[bad])
        .arg(&nodes)
        .arg(&test)
        .output()
        .unwrap();
    for out in [node, master] {
        assert_eq!(out.status.code(), Some(2), "{}", text(&out));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains("--export `influxdb=http://127.0.0.1:8086/query?db=x`")
                && stderr.contains("/write?db=DB"),
            "{stderr}"
        );
        assert!(!stderr.contains("panicked"), "{stderr}");
    }
    assert_eq!(server.count(), 0, "nothing ran");
}

#[test]
fn influxdb_2_gets_the_token_and_every_request_of_the_run() {
    let dir = tempdir();
    // InfluxDB 2.x is not in Debian: a real HTTP server records what its write API receives.
    let influx = LogServer::start();
    let server = Server::start();
    let test = rate_test(dir.path(), &server.url(), 40, 3);
    let sink = format!(
        "--export=influxdb={}/api/v2/write?org=team&bucket=load",
        influx.url()
    );
    let run_dir = bench_run(
        dir.path(),
        &test,
        &[&sink],
        &[("INFLUX_TOKEN", "s3cr3t-token")],
    );
    let s = summary(&run_dir);
    let total = merged_requests(&s);
    assert_eq!(s["exports"][0]["dropped"], 0, "{}", s["exports"]);
    let writes = influx.logged();
    assert!(!writes.is_empty(), "nothing was written");
    let (mut cluster, mut nodes, mut lines) = (0, 0, 0);
    for w in &writes {
        assert_eq!(
            w.target, "/api/v2/write?org=team&bucket=load&precision=ms",
            "the 2.x write API"
        );
        assert_eq!(
            w.headers.get("authorization").map(|v| v.to_str().unwrap()),
            Some("Token s3cr3t-token")
        );
        let body = std::str::from_utf8(&w.body).unwrap();
        for line in parse_lines(body) {
            let line = line.unwrap_or_else(|e| panic!("{e}: {body}"));
            lines += 1;
            assert_eq!(line.series.measurement.as_str(), "bench");
            let tag = |k: &str| line.tag_value(k).map(|v| v.as_str().to_string());
            let Some(FieldValue::I64(requests)) = line.field_value("requests") else {
                panic!("no integer requests in {line}");
            };
            let requests = *requests as u64;
            match (tag("node").as_deref(), tag("step").as_deref()) {
                (Some("all"), Some("all")) => cluster += requests,
                (Some("node0" | "node1"), Some("all")) => nodes += requests,
                (Some("all"), Some("home page")) => {}
                other => panic!("unexpected point {other:?}: {line}"),
            }
            assert_eq!(tag("test").as_deref(), Some("export"));
            assert!(line.timestamp.is_some_and(|t| t > 1_600_000_000_000), "ms");
        }
    }
    assert!(lines >= 3 * 4, "{lines} lines");
    assert_eq!(cluster, total, "summary.json says {total}");
    assert_eq!(nodes, total);
}

#[test]
fn an_influxdb_that_is_down_costs_no_request_and_the_report_says_what_was_dropped() {
    let dir = tempdir();
    let server = Server::start();
    let test = rate_test(dir.path(), &server.url(), 40, 3);
    let sink = format!("influxdb=http://127.0.0.1:{}/write?db=bench", closed_port());
    let run_dir = bench_run(dir.path(), &test, &[&format!("--export={sink}")], &[]);
    let s = summary(&run_dir);
    assert_eq!(merged_requests(&s), server.count());
    // Every second of the run was dropped: none could be sent.
    let tally = &s["exports"][0];
    assert_eq!(tally["sink"], format!("{sink}&precision=ms"));
    assert_eq!(tally["sent"], 0, "{tally}");
    let dropped = tally["dropped"].as_u64().unwrap();
    assert!(dropped >= 3, "{tally}");
    let html = std::fs::read_to_string(run_dir.join("report/index.html")).unwrap();
    let said = format!("{dropped} of {dropped} intervals dropped");
    assert!(html.contains(&said), "the report does not say {said:?}");
}

#[test]
fn prometheus_scrapes_the_master_and_holds_the_series() {
    if !have("prometheus", "prometheus") {
        return;
    }
    let dir = tempdir();
    let (metrics, web) = (free_port(), free_port());
    let config = write(
        dir.path(),
        "prometheus.yml",
        &format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs:\n  \
             - job_name: bench\n    static_configs:\n      - targets: ['127.0.0.1:{metrics}']\n"
        ),
    );
    let _prometheus = Daemon(
        Command::new("prometheus")
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("tsdb").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{web}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    wait_until(web, "/-/ready", 200, "prometheus");

    let server = Server::start();
    let test = rate_test(dir.path(), &server.url(), 40, 6);
    let sink = format!("--export=prometheus=127.0.0.1:{metrics}");
    let s = bench_with(dir.path(), &test, &[&sink]);
    let total = merged_requests(&s);
    assert_eq!(s["exports"][0]["dropped"], 0);

    let query = |q: &str| {
        let (code, body) = http(web, "GET", &format!("/api/v1/query?query={q}"));
        assert_eq!(code, 200, "{body}");
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        v["data"]["result"].as_array().unwrap().clone()
    };
    // The cluster's counter, scraped during the run: rising, at most the run's total.
    let series = query("bench_requests_total%7Bnode%3D%22all%22,step%3D%22all%22%7D");
    assert!(!series.is_empty(), "no series");
    let m = &series[0]["metric"];
    assert_eq!(
        (m["test"].as_str(), m["cycle"].as_str()),
        (Some("export"), Some("1"))
    );
    let seen: u64 = series[0]["value"][1].as_str().unwrap().parse().unwrap();
    assert!(seen > 0 && seen <= total, "{seen} of {total}");
    for name in [
        "bench_p95_ms",
        "bench_users",
        "bench_errors_total",
        "bench_bytes_total",
    ] {
        assert!(!query(name).is_empty(), "{name} missing");
    }
    let nodes = query("bench_requests_total%7Bnode%21%3D%22all%22%7D");
    assert_eq!(nodes.len(), 2, "{nodes:?}");
}

#[test]
fn a_statsd_daemon_receives_counters_that_add_up_to_the_run() {
    let dir = tempdir();
    let server = Server::start();
    let test = rate_test(dir.path(), &server.url(), 40, 3);
    // The daemon's socket: what the run sends waits in its buffer (a few kB) until read.
    let daemon = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let sink = format!("--export=statsd={}", daemon.local_addr().unwrap());
    let s = bench_with(dir.path(), &test, &["-n", "udp", &sink]);
    let total = merged_requests(&s);
    daemon
        .set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    let mut buf = [0u8; 2048];
    let mut lines = Vec::new();
    while let Ok(n) = daemon.recv(&mut buf) {
        let datagram = std::str::from_utf8(&buf[..n]).unwrap();
        assert!(n <= 1400, "a datagram of {n} bytes");
        lines.extend(datagram.lines().map(String::from));
    }
    // `bench.requests:N|c|#run:udp,test:export,cycle:C,step:S,node:D`, one per point.
    let counted = |step: &str, node: &str| -> u64 {
        let tags = format!(",step:{step},node:{node}");
        lines
            .iter()
            .filter(|l| l.starts_with("bench.requests:") && l.ends_with(&tags))
            .map(|l| {
                assert!(l.contains("|c|#run:udp,test:export,cycle:"), "{l}");
                let value = &l["bench.requests:".len()..l.find('|').unwrap()];
                value.parse::<u64>().unwrap()
            })
            .sum()
    };
    assert_eq!(counted("all", "all"), total, "summary.json says {total}");
    assert_eq!(counted("home_page", "all"), total);
    assert_eq!(counted("all", "node0") + counted("all", "node1"), total);
    for gauge in ["bench.p95_ms:", "bench.users:"] {
        assert!(lines
            .iter()
            .any(|l| l.starts_with(gauge) && l.contains("|g|#")));
    }
}

#[test]
fn a_statsd_sink_that_is_down_costs_no_request() {
    let dir = tempdir();
    let server = Server::start();
    let test = rate_test(dir.path(), &server.url(), 50, 2);
    // Nobody listens on this UDP port: every datagram is refused.
    let port = std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let sink = format!("--export=statsd=127.0.0.1:{port}");
    // The open model starts its 2 × 50/s × 2 s executions on schedule inside the window
    // whatever else the node does (one more may land on the window's edge, outside it). A
    // machine too busy to keep the schedule misses it with or without export: try again then.
    let in_window = |s: &serde_json::Value| s["cycles"][0]["requests"]["total"].as_u64().unwrap();
    let mut seen = Vec::new();
    for attempt in 0..3 {
        let plain = bench_with(&dir.path().join(format!("plain{attempt}")), &test, &[]);
        let before = server.count();
        let out = dir.path().join(format!("exported{attempt}"));
        let exported = bench_with(&out, &test, &[&sink]);
        let tally = &exported["exports"][0];
        assert_eq!(tally["sink"], format!("statsd=127.0.0.1:{port}"));
        assert!(tally["sent"].as_u64().unwrap() >= 2, "{tally}");
        assert_eq!(server.count() - before, merged_requests(&exported));
        let counts = (in_window(&plain), in_window(&exported));
        if counts == (200, 200) {
            return;
        }
        seen.push(counts);
    }
    panic!("requests in the window (without, with export): {seen:?}, 200 planned");
}
