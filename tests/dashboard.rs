//! The live dashboard (`bench-master --live`) of a real run of two local nodes, read by
//! headless Chromium while it runs and after, and refused without its token; and the page of
//! `--attach --live` following a detached run (an ssh node and a local one), its numbers back,
//! to its report; and `--attach --export` sending the seconds after the attach only.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::master::{bench_master, merged_requests, start_detached, summary, test_file, Bench};
use crate::sshd::{Sshd, ALIASES};
use crate::util::{chromium, tempdir, write, Server};

/// A `bench-master --live` run whose stderr lines arrive on a channel.
struct LiveRun {
    child: Child,
    lines: mpsc::Receiver<String>,
    /// Everything read from stderr so far, for failure messages.
    seen: Vec<String>,
}

impl LiveRun {
    /// Starts `master` (a bench-master command line with `--live`).
    fn start(master: &mut Command) -> LiveRun {
        let mut child = master
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        LiveRun {
            child,
            lines,
            seen: Vec::new(),
        }
    }

    /// The first line holding `needle` (waiting at most 60 s).
    fn wait_for(&mut self, needle: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(60);
        while let Ok(line) = self
            .lines
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
        {
            self.seen.push(line.clone());
            if line.contains(needle) {
                return line;
            }
        }
        panic!(
            "no line with {needle:?}; bench-master said:\n{}",
            self.seen.join("\n")
        );
    }

    /// The page's URL as printed, and its address and token.
    fn page(&mut self) -> (String, String, String) {
        let line = self.wait_for("live dashboard: http://127.0.0.1:");
        let url = line.rsplit(' ').next().unwrap().to_string();
        let (addr, token) = url
            .trim_start_matches("http://")
            .trim_end_matches('/')
            .split_once('/')
            .unwrap();
        let (addr, token) = (addr.to_string(), token.to_string());
        (url, addr, token)
    }

    /// Sends Ctrl+C and waits (at most 10 s) for the master to end, successfully.
    fn interrupt(&mut self) {
        unsafe { libc::kill(self.child.id() as i32, libc::SIGINT) };
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.child.try_wait().unwrap().is_none() {
            assert!(Instant::now() < deadline, "Ctrl+C did not end the page");
            std::thread::sleep(Duration::from_millis(100));
        }
        assert!(self.child.wait().unwrap().success());
    }
}

impl Drop for LiveRun {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The text of the element with `id` in a dumped DOM.
fn text_of(dom: &str, id: &str) -> String {
    let open = format!("id=\"{id}\"");
    let at = dom
        .find(&open)
        .unwrap_or_else(|| panic!("no #{id} in:\n{dom}"));
    let rest = &dom[at..];
    let start = rest.find('>').unwrap() + 1;
    let end = rest[start..].find('<').unwrap();
    rest[start..start + end].to_string()
}

/// Status line and body of `GET path` from `addr`.
fn get(addr: &str, path: &str) -> (String, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut answer = String::new();
    s.read_to_string(&mut answer).unwrap();
    let status = answer.lines().next().unwrap_or_default().to_string();
    let body = answer
        .split_once("\r\n\r\n")
        .map_or("", |x| x.1)
        .to_string();
    (status, body)
}

/// The first two events of the page's stream, as JSON.
fn two_events(addr: &str, token: &str) -> Vec<serde_json::Value> {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(s, "GET /{token}/events HTTP/1.1\r\nHost: {addr}\r\n\r\n").unwrap();
    let mut events = BufReader::new(s)
        .lines()
        .map_while(Result::ok)
        .filter_map(|l| l.strip_prefix("data: ").map(String::from))
        .map(|j| serde_json::from_str::<serde_json::Value>(&j).unwrap());
    // The first event, then the first of a newer second: an event a second carries the last
    // second every node has sent, and a node's line can come a little late (its progress log
    // followed over ssh after --attach), so one event may repeat a second. At most 8 events.
    let first = events.next().expect("no event");
    let second_of = |e: &serde_json::Value| e["cluster"]["second"].as_u64();
    let newer = events
        .take(7)
        .find(|e| second_of(e) > second_of(&first))
        .unwrap_or_else(|| panic!("no newer second than {first} in 8 events"));
    vec![first, newer]
}

#[test]
fn the_live_page_shows_the_running_cluster_and_refuses_a_wrong_token() {
    let server = Server::start();
    let dir = tempdir();
    let bench = Bench::new(dir.path());
    let nodes = write(dir.path(), "nodes", "local\nlocal\n");
    let test = write(
        dir.path(),
        "t.toml",
        &format!(
            "[test]\nname = \"live-page\"\nurl = \"{}\"\n\n[bench]\ncycles = [2]\nduration = 15\n\
             startup_delay = 0.01\nsleep_time_min = 0.01\nsleep_time_max = 0.02\n\n\
             [[step]]\nname = \"home\"\npath = \"/?delay_ms=2\"\n",
            server.url()
        ),
    );
    let mut run = LiveRun::start(bench.command(None, &["--live"]).arg(&nodes).arg(&test));
    let (url, addr, token) = run.page();
    let (addr, token) = (addr.as_str(), token.as_str());
    assert_eq!(token.len(), 32, "128 bits in hex: {url}");
    assert!(token.chars().all(|c| c.is_ascii_hexdigit()));
    run.wait_for("started");
    std::thread::sleep(Duration::from_millis(2500));

    // Two reads by a real browser a second and a half apart: the running numbers, changed.
    let (first, _) = chromium(&["--dump-dom", &url]);
    std::thread::sleep(Duration::from_millis(1500));
    let (second, _) = chromium(&["--dump-dom", &url]);
    for dom in [&first, &second] {
        assert_eq!(text_of(dom, "state"), "running", "{dom}");
        assert_eq!(text_of(dom, "users"), "4", "{dom}");
        assert_eq!(text_of(dom, "cycle"), "1", "{dom}");
        let rps: u64 = text_of(dom, "rps").parse().unwrap();
        assert!(rps > 10, "{rps} requests/s");
        let p95: f64 = text_of(dom, "p95").parse().unwrap();
        assert!(p95 >= 2.0, "p95 {p95} ms of a 2 ms page");
        assert_eq!(dom.matches("<td class=\"l\">node").count(), 2, "{dom}");
        assert!(dom.contains("<td class=\"l\">running</td>"));
    }
    let seconds = [&first, &second].map(|d| text_of(d, "second").parse::<u32>().unwrap());
    assert!(seconds[1] > seconds[0], "seconds {seconds:?}");
    assert_ne!(text_of(&first, "p50") + &text_of(&first, "rps"), "");

    // The stream: one event a second, each the merged cluster of a newer second.
    let events = two_events(addr, token);
    let second_of = |e: &serde_json::Value| e["cluster"]["second"].as_u64().unwrap();
    assert!(second_of(&events[1]) > second_of(&events[0]), "{events:?}");
    assert_eq!(events[0]["nodes"].as_array().unwrap().len(), 2);

    // Without the token, or with another: 403, in the browser too; nothing else is served.
    let wrong = format!("http://{addr}/{}/", "0".repeat(32));
    let (dom, _) = chromium(&["--dump-dom", &wrong]);
    assert!(dom.contains("403 forbidden"), "{dom}");
    for path in ["/", "/events", &format!("/{}/", "f".repeat(32)), "/x/../"] {
        assert!(get(addr, path).0.contains(" 403 "), "{path}");
    }
    assert!(get(addr, &format!("/{token}/report")).0.contains(" 404 "));

    // After the run: the link to the report, until Ctrl+C.
    run.wait_for("the live page stays up until Ctrl+C");
    let (dom, _) = chromium(&["--dump-dom", &url]);
    assert_eq!(text_of(&dom, "state"), "finished");
    let report = text_of(&dom, "report-link");
    assert!(report.starts_with("file:///"), "{report}");
    assert!(std::path::Path::new(report.trim_start_matches("file://")).is_file());
    run.interrupt();
}

/// The state words of the page's node table, in order.
fn node_states(dom: &str) -> Vec<String> {
    dom.split("<tbody id=\"nodes\">")
        .nth(1)
        .and_then(|t| t.split("</tbody>").next())
        .unwrap_or_else(|| panic!("no node table in:\n{dom}"))
        .split("<tr>")
        .skip(1)
        .map(|row| {
            let cells: Vec<&str> = row.split("<td").skip(1).collect();
            let state = cells.get(1).unwrap_or_else(|| panic!("{row}"));
            state[state.find('>').unwrap() + 1..state.find('<').unwrap()].to_string()
        })
        .collect()
}

/// The page as headless Chromium shows it once it has a settled second (waiting at most 15 s).
fn page_with_numbers(url: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let (dom, _) = chromium(&["--dump-dom", url]);
        if text_of(&dom, "rps") != "–" || Instant::now() > deadline {
            return dom;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}

#[test]
fn after_attach_the_live_page_shows_the_running_numbers_then_the_report() {
    let sshd = Sshd::start();
    let server = Server::start();
    let dir = tempdir();
    let b = Bench::new(dir.path());
    let test = test_file(dir.path(), &server.url());
    let outcome = start_detached(&sshd, &b, &test, "20");
    let mut run = LiveRun::start(
        bench_master()
            .arg("--attach")
            .arg(&outcome.run_dir)
            .arg("--live")
            .stdin(Stdio::null()),
    );
    let (url, addr, token) = run.page();
    run.wait_for("of 2 nodes running");

    // While the detached nodes run: both named, both running, and the cluster's numbers back
    // (the nodes' progress logs followed over ssh and locally), newer at a second read.
    let first = page_with_numbers(&url);
    std::thread::sleep(Duration::from_millis(1500));
    let (second, _) = chromium(&["--dump-dom", &url]);
    for dom in [&first, &second] {
        assert_eq!(text_of(dom, "state"), "running", "{dom}");
        assert!(
            dom.contains(&format!("<td class=\"l\">node0 {}</td>", ALIASES[0])),
            "{dom}"
        );
        assert!(dom.contains("<td class=\"l\">node1 local</td>"), "{dom}");
        assert_eq!(node_states(dom), ["running", "running"], "{dom}");
        let rps: u64 = text_of(dom, "rps")
            .parse()
            .unwrap_or_else(|_| panic!("{dom}"));
        assert!(rps > 10, "{rps} requests/s");
        assert_eq!(text_of(dom, "users"), "2", "{dom}");
        assert_eq!(text_of(dom, "cycle"), "1", "{dom}");
    }
    let seconds = [&first, &second].map(|d| text_of(d, "second").parse::<u32>().unwrap());
    assert!(seconds[1] > seconds[0], "seconds {seconds:?}");
    let events = two_events(&addr, &token);
    let second_of = |e: &serde_json::Value| e["cluster"]["second"].as_u64().unwrap();
    assert!(second_of(&events[1]) > second_of(&events[0]), "{events:?}");
    assert!(events[1]["cluster"]["requests"].as_u64().unwrap() > 0);

    // Once they ended: both done, and the link to the report the attach built.
    run.wait_for("the live page stays up until Ctrl+C");
    let (dom, _) = chromium(&["--dump-dom", &url]);
    assert_eq!(text_of(&dom, "state"), "finished", "{dom}");
    assert_eq!(node_states(&dom), ["done", "done"], "{dom}");
    let report = text_of(&dom, "report-link");
    let page = std::path::Path::new(report.trim_start_matches("file://"));
    assert!(page.is_file(), "{report}");
    assert!(page.starts_with(std::fs::canonicalize(&outcome.run_dir).unwrap()));
    run.interrupt();
}

#[test]
fn a_node_above_90_pct_cpu_is_flagged_on_a_page_of_the_reports_css_and_nothing_from_elsewhere() {
    use benchmaster::master::coordinator::State;
    use benchmaster::master::dashboard::{Board, Dashboard};
    use benchmaster::master::display::NodeLine;

    let runtime = tokio::runtime::Runtime::new().unwrap();
    let board = Board::default();
    board.run("night", "shop");
    let node = |cpu| NodeLine {
        state: State::Running,
        cpu: Some(cpu),
        ..NodeLine::default()
    };
    board.statuses(
        vec!["node0 a".into(), "node1 b".into()],
        vec![node(97.0), node(40.0)],
    );
    let dashboard = runtime
        .block_on(Dashboard::bind("127.0.0.1:0".parse().unwrap()))
        .unwrap();
    let url = dashboard.url();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    runtime.spawn(dashboard.serve(board, async move {
        let _ = stopped.await;
    }));

    let (dom, _) = chromium(&["--dump-dom", &url]);
    assert_eq!(dom.matches("<span class=\"flag\">").count(), 1, "{dom}");
    assert!(
        dom.contains("<span class=\"flag\">&gt; 90 %</span>"),
        "{dom}"
    );
    let alert = text_of(&dom, "hot");
    assert!(
        alert.starts_with("1 node(s) above 90 % CPU") && alert.contains("(node0 a)"),
        "{alert}"
    );
    // The report's own stylesheet, inline; nothing fetched from anywhere else.
    let addr = url.trim_start_matches("http://").split('/').next().unwrap();
    let (status, html) = get(addr, url.trim_start_matches(&format!("http://{addr}")));
    assert!(status.contains(" 200 "), "{status}");
    let css = include_str!("../templates/style.css");
    assert!(
        html.contains(css.trim()),
        "the report's style.css is not in the page"
    );
    for outside in ["http://", "https://", "//cdn", "<link", "src=\""] {
        assert!(!html.contains(outside), "the page refers to {outside}");
    }
    let _ = stop.send(());
}

#[test]
fn after_attach_export_resumes_with_the_seconds_to_come_only() {
    let sshd = Sshd::start();
    let server = Server::start();
    let dir = tempdir();
    let b = Bench::new(dir.path());
    let test = test_file(dir.path(), &server.url());
    let outcome = start_detached(&sshd, &b, &test, "8");
    // The daemon's socket: what the attach sends waits in its buffer until read.
    let daemon = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let sink = format!("--export=statsd={}", daemon.local_addr().unwrap());
    let mut child = bench_master()
        .arg("--attach")
        .arg(&outcome.run_dir)
        .arg(&sink)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while child.try_wait().unwrap().is_none() {
        assert!(Instant::now() < deadline, "--attach did not end");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(child.wait().unwrap().success());
    let total = merged_requests(&summary(&outcome.run_dir));
    daemon
        .set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    let mut buf = [0u8; 2048];
    let mut counted = 0;
    while let Ok(n) = daemon.recv(&mut buf) {
        counted += std::str::from_utf8(&buf[..n])
            .unwrap()
            .lines()
            .filter(|l| l.starts_with("bench.requests:") && l.ends_with(",step:all,node:all"))
            .map(|l| {
                l["bench.requests:".len()..l.find('|').unwrap()]
                    .parse::<u64>()
                    .unwrap()
            })
            .sum::<u64>();
    }
    // The seconds after the attach are exported; those before it (the master that detached
    // may have exported them) are not, though the nodes' logs hold them.
    assert!(counted > 0, "nothing exported after --attach");
    assert!(counted < total, "{counted} exported of the run's {total}");
}
