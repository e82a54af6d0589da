//! HTTP/2 against Debian's nginx: over TLS (ALPN `h2`) and h2c (prior knowledge), every
//! request in nginx's access log as `HTTP/2.0` and counted as bench-node counted it; captures
//! and cookies over h2; `streams` multiplexed on one connection; `auto` taking what ALPN offers.

use std::collections::HashMap;

use benchmaster::result::read::read_file;
use benchmaster::result::{ErrorKind, NodeResult};

use crate::nginx::{Logged, Nginx};
use crate::util::{bench_node, run, tempdir, write, Server};

/// Login (capture a JSON token; nginx sets a session cookie), then a page that needs the
/// cookie and gets the token, then the home page.
const SESSION_STEPS: &str = r#"
[[step]]
name = "login"
path = "/login"
[[step.capture]]
name = "token"
json = "/token"

[[step]]
name = "need"
path = "/need?t={{ token }}"
contains = "hello s"
regex = "tok[0-9]+"

[[step]]
name = "home"
path = "/"
"#;

fn test_toml(url: &str, test_keys: &str, users: u32, duration: f64, steps: &str) -> String {
    format!(
        r#"
[test]
name = "h2"
url = "{url}"
{test_keys}

[bench]
cycles = [{users}]
duration = {duration}
startup_delay = 0.01
timeout = 5
insecure = true
{steps}
"#
    )
}

/// Runs the test, which must succeed, and reads its result.
fn run_test(text: &str) -> NodeResult {
    let dir = tempdir();
    let test = write(dir.path(), "t.toml", text);
    let out = dir.path().join("r.xml");
    let o = run(bench_node().arg("run").arg(&test).arg("-o").arg(&out));
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    read_file(&out).unwrap()
}

/// Every request the node made, in windows or outside them.
fn requests(r: &NodeResult) -> u64 {
    r.cycles
        .iter()
        .map(|c| c.requests.total() + c.outside.requests)
        .sum()
}

fn failures_and_errors(r: &NodeResult) -> u64 {
    r.cycles
        .iter()
        .map(|c| c.requests.failure + c.requests.error + c.pages.failure + c.pages.error)
        .sum()
}

/// The built-in target and nginx before it, with `server` directives made from the target's
/// `host:port`; `None` (the test skipped) without nginx, which only outside CI is allowed:
/// `.ci/run` installs it, so in CI a missing server is a failure, not a skip.
fn nginx_before(server: impl FnOnce(&str) -> String) -> Option<(Server, Nginx)> {
    if !Nginx::available() {
        assert!(std::env::var_os("CI").is_none(), "no nginx-light");
        eprintln!("skipped: no nginx-light");
        return None;
    }
    let upstream = Server::start();
    let to = upstream.target.addr.to_string();
    let nginx = Nginx::start_with(&to, &server(&to));
    Some((upstream, nginx))
}

/// Connections seen in the log, each with its requests.
fn by_connection(log: &[Logged]) -> HashMap<u64, Vec<&Logged>> {
    let mut m: HashMap<u64, Vec<&Logged>> = HashMap::new();
    for l in log {
        m.entry(l.connection).or_default().push(l);
    }
    m
}

#[test]
fn http2_over_tls_and_h2c_with_captures_and_cookies_every_request_logged_as_http2() {
    let Some((_upstream, nginx)) = nginx_before(|_| String::new()) else {
        return;
    };
    for url in [nginx.tls_url(), nginx.h2c_url()] {
        let r = run_test(&test_toml(&url, "http = \"2\"", 2, 1.0, SESSION_STEPS));
        let log = nginx.take_log();
        assert!(!log.is_empty(), "{url}: nothing logged");
        assert_eq!(
            log.len() as u64,
            requests(&r),
            "{url}: nginx and bench-node disagree"
        );
        let other: Vec<_> = log.iter().filter(|l| l.protocol != "HTTP/2.0").collect();
        assert!(other.is_empty(), "{url}: not HTTP/2: {other:?}");
        // The cookie came back and the captured token went on: nothing failed.
        assert!(log.iter().all(|l| l.status == 200), "{url}: {log:?}");
        assert_eq!(failures_and_errors(&r), 0, "{url}: {:?}", r.errors);
        assert!(
            log.iter().any(|l| l.uri.starts_with("/need?t=tok")),
            "{url}"
        );
        // Each user keeps one connection.
        assert_eq!(by_connection(&log).len(), 2, "{url}: {log:?}");
        assert!(
            r.steps.iter().all(|s| s.protocol == "HTTP/2"),
            "{:?}",
            r.steps
        );
        assert_eq!(r.config.streams, 1);
    }
}

#[test]
fn streams_keep_several_requests_in_flight_on_one_connection() {
    let Some((_upstream, nginx)) = nginx_before(|_| String::new()) else {
        return;
    };
    let steps = "[[step]]\nname = \"slow\"\npath = \"/slow\"\n";
    let text = test_toml(&nginx.tls_url(), "http = \"2\"\nstreams = 4", 1, 1.5, steps);
    let r = run_test(&text);
    let log = nginx.take_log();
    assert_eq!(log.len() as u64, requests(&r));
    assert_eq!(failures_and_errors(&r), 0, "{:?}", r.errors);
    assert_eq!(r.config.streams, 4);
    let conns = by_connection(&log);
    assert_eq!(conns.len(), 1, "one user, one connection: {log:?}");
    assert!(log.iter().all(|l| l.protocol == "HTTP/2.0"));
    // The most requests in flight at once on that connection, from the server's clock.
    let mut edges: Vec<(f64, i32)> = log
        .iter()
        .flat_map(|l| [(l.start, 1), (l.end, -1)])
        .collect();
    edges.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let (mut now, mut most) = (0, 0);
    for (_, d) in edges {
        now += d;
        most = most.max(now);
    }
    assert!(most >= 3, "at most {most} requests at once: {log:?}");
    // And faster than one at a time could be (300 ms each).
    assert!(log.len() >= 8, "{} requests", log.len());
}

#[test]
fn the_report_and_summary_name_the_protocol_and_streams() {
    let server = Server::start();
    let dir = tempdir();
    let test = write(
        dir.path(),
        "t.toml",
        &test_toml(
            &server.url(),
            "",
            1,
            0.3,
            "[[step]]\nname = \"home\"\npath = \"/\"\n",
        ),
    );
    let out = dir.path().join("r.xml");
    let o = run(bench_node().arg("run").arg(&test).arg("-o").arg(&out));
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    // As if measured over HTTP/2 with 4 streams (the XML is what a node writes).
    let xml = std::fs::read_to_string(&out).unwrap();
    let xml = xml
        .replace("protocol=\"HTTP/1.1\"", "protocol=\"HTTP/2\"")
        .replace("streams=\"1\"", "streams=\"4\"");
    std::fs::write(&out, xml).unwrap();
    let (html, summary) = crate::util::report(&out, &dir.path().join("report"));
    assert_eq!(summary["steps"][0]["protocol"], "HTTP/2");
    assert_eq!(summary["streams"], 4);
    assert!(html.contains("home: HTTP&#x2F;2"), "{html}");
    assert!(html.contains("4 requests in flight per user"));
}

#[test]
fn streams_a_closing_server_refused_are_sent_again_on_a_new_connection() {
    // nginx ends each connection (GOAWAY) after 20 requests, with others still in flight.
    let Some((_upstream, nginx)) = nginx_before(|_| "keepalive_requests 20;".to_string()) else {
        return;
    };
    let home = "[[step]]\nname = \"home\"\npath = \"/\"\n";
    let text = test_toml(&nginx.h2c_url(), "http = \"2\"\nstreams = 8", 2, 1.0, home);
    let r = run_test(&text);
    let log = nginx.take_log();
    assert!(
        by_connection(&log).len() > 4,
        "nginx did not close connections"
    );
    assert_eq!(failures_and_errors(&r), 0, "{:?}", r.errors);
    assert_eq!(log.len() as u64, requests(&r));
}

#[test]
fn auto_takes_http2_from_alpn_and_http1_on_a_plain_url() {
    let Some((_upstream, nginx)) = nginx_before(|_| String::new()) else {
        return;
    };
    let home = "[[step]]\nname = \"home\"\npath = \"/\"\n";
    for (url, logged, named) in [
        (nginx.tls_url(), "HTTP/2.0", "HTTP/2"),
        (nginx.http1_url(), "HTTP/1.1", "HTTP/1.1"),
    ] {
        let r = run_test(&test_toml(&url, "http = \"auto\"", 1, 0.5, home));
        let log = nginx.take_log();
        assert_eq!(log.len() as u64, requests(&r), "{url}");
        assert!(log.iter().all(|l| l.protocol == logged), "{url}: {log:?}");
        assert_eq!(r.steps[0].protocol, named, "{url}");
    }
    // The default stays HTTP/1.1, also over TLS where nginx offers h2.
    let r = run_test(&test_toml(&nginx.tls_url(), "", 1, 0.5, home));
    let log = nginx.take_log();
    assert!(log.iter().all(|l| l.protocol == "HTTP/1.1"), "{log:?}");
    assert_eq!(r.steps[0].protocol, "HTTP/1.1");
}

#[test]
fn http2_to_a_server_without_it_is_a_protocol_error_named() {
    // The built-in target offers no ALPN h2 over TLS (h2c only on a plain port).
    let server = Server::start_tls();
    let home = "[[step]]\nname = \"home\"\npath = \"/\"\n";
    let r = run_test(&test_toml(&server.url(), "http = \"2\"", 1, 0.3, home));
    let group = r
        .errors
        .iter()
        .find(|g| g.kind == ErrorKind::Protocol)
        .unwrap_or_else(|| panic!("{:?}", r.errors));
    assert!(group.detail.contains("HTTP/2"), "{}", group.detail);
    assert_eq!(server.count(), 0);
}

/// The built-in target speaks h2c with prior knowledge beside HTTP/1.1 on one port: an
/// `http = "2"` test against it has no errors, the target counted each of its requests, and
/// its result says HTTP/2; an HTTP/1.1 test on the same port still runs as HTTP/1.1.
#[test]
fn the_built_in_target_speaks_h2c_beside_http1() {
    let server = Server::start();
    let home = "[[step]]\nname = \"home\"\npath = \"/\"\n";
    let r = run_test(&test_toml(
        &server.url(),
        "http = \"2\"\nstreams = 4",
        2,
        0.5,
        home,
    ));
    assert_eq!(failures_and_errors(&r), 0, "{:?}", r.errors);
    assert!(requests(&r) > 0);
    assert_eq!(server.count(), requests(&r));
    assert_eq!(r.steps[0].protocol, "HTTP/2");
    let before = server.count();
    let r = run_test(&test_toml(&server.url(), "", 1, 0.3, home));
    assert_eq!(failures_and_errors(&r), 0, "{:?}", r.errors);
    assert_eq!(server.count() - before, requests(&r));
    assert_eq!(r.steps[0].protocol, "HTTP/1.1");
}

/// Bodies larger than HTTP/2's default 64 KiB window, both ways, over TLS through nginx to the
/// built-in target's object store: each PUT sends 300 000 bytes (in the windows nginx grants),
/// each GET brings them back whole (its end checked, every byte counted), two streams at once.
#[test]
fn bodies_larger_than_the_default_window_go_and_come_whole() {
    const SIZE: usize = 300_000;
    let Some((upstream, nginx)) = nginx_before(|to| {
        format!("location /objects/ {{ proxy_pass http://{to}; client_max_body_size 1m; }}")
    }) else {
        return;
    };
    let dir = tempdir();
    let mut body = vec![b'a'; SIZE - 10];
    body.extend_from_slice(b"tail-mark\n");
    let file = write(dir.path(), "big.bin", std::str::from_utf8(&body).unwrap());
    let steps = format!(
        r#"
[[step]]
name = "put"
method = "PUT"
path = "/objects/u{{{{ user }}}}-{{{{ iteration }}}}"
body_file = "{}"
expect_status = [201]

[[step]]
name = "get"
path = "/objects/u{{{{ user }}}}-{{{{ iteration }}}}"
contains = "tail-mark"
"#,
        file.display()
    );
    let r = run_test(&test_toml(
        &nginx.tls_url(),
        "http = \"2\"\nstreams = 2",
        1,
        1.0,
        &steps,
    ));
    let log = nginx.take_log();
    assert_eq!(failures_and_errors(&r), 0, "{:?}", r.errors);
    assert_eq!(log.len() as u64, requests(&r));
    assert!(log.iter().all(|l| l.protocol == "HTTP/2.0"), "{log:?}");
    assert_eq!(by_connection(&log).len(), 1, "{log:?}");
    // The target stored what was sent (a short PUT would have failed the GET's check).
    assert_eq!(upstream.count(), requests(&r));
    let gets: u64 = r.cycles.iter().map(|c| c.steps[1].total()).sum();
    let bytes: u64 = r.cycles.iter().map(|c| c.steps[1].bytes).sum();
    assert!(gets > 2, "{gets} GETs");
    assert_eq!(bytes, gets * SIZE as u64);
}

/// More lanes than the server's stream limit: they wait their turn on the user's one
/// connection (h2 holds a stream until the server takes it), none refused or counted twice.
#[test]
fn lanes_beyond_the_servers_stream_limit_wait_their_turn() {
    let Some((_upstream, nginx)) = nginx_before(|_| "http2_max_concurrent_streams 2;".to_string())
    else {
        return;
    };
    let steps = "[[step]]\nname = \"slow\"\npath = \"/slow\"\n";
    for url in [nginx.tls_url(), nginx.h2c_url()] {
        let r = run_test(&test_toml(&url, "http = \"2\"\nstreams = 6", 1, 1.0, steps));
        let log = nginx.take_log();
        assert_eq!(failures_and_errors(&r), 0, "{url}: {:?}", r.errors);
        assert_eq!(log.len() as u64, requests(&r), "{url}");
        assert_eq!(by_connection(&log).len(), 1, "{url}: {log:?}");
        // The server's limit held, and was used: 2 at once, never more. In whole milliseconds
        // (the log's resolution), an end before a start of the same millisecond.
        let ms = |t: f64| (t * 1000.0).round() as i64;
        let mut edges: Vec<(i64, i32)> = log
            .iter()
            .flat_map(|l| [(ms(l.start), 1), (ms(l.end), -1)])
            .collect();
        edges.sort();
        let (mut now, mut most) = (0, 0);
        for (_, d) in edges {
            now += d;
            most = most.max(now);
        }
        assert_eq!(most, 2, "{url}: {log:?}");
    }
}

/// The open model over HTTP/2: its executions are tasks of their own, with no user task to
/// read the connection beside them, so the connection gets a task of its own. Every execution
/// is answered (none waits for its timeout), each user keeps one connection across its
/// executions, all of it HTTP/2.
#[test]
fn the_open_model_over_http2_answers_every_execution() {
    let Some((_upstream, nginx)) = nginx_before(|_| String::new()) else {
        return;
    };
    let text = format!(
        "[test]\nname = \"open\"\nurl = \"{}\"\nhttp = \"2\"\n[bench]\nrate = [40]\nmax_users = 4\n\
         duration = 1.5\ntimeout = 2\n[[step]]\nname = \"home\"\npath = \"/\"\n",
        nginx.h2c_url()
    );
    let r = run_test(&text);
    let log = nginx.take_log();
    assert_eq!(failures_and_errors(&r), 0, "{:?}", r.errors);
    assert!(log.len() >= 40, "{} requests", log.len());
    assert_eq!(log.len() as u64, requests(&r));
    assert!(log.iter().all(|l| l.protocol == "HTTP/2.0"), "{log:?}");
    assert!(by_connection(&log).len() <= 4, "{log:?}");
}
