//! bench-node against real HTTP servers on loopback: counts, latency, failures, interruption.

use std::time::Duration;

use benchmaster::result::read::read_file;
use benchmaster::result::{ErrorKind, HostRole, ModelKind, NodeResult};

use crate::util::{bench_node, closed_port, run, tempdir, write, Server};

fn test_toml(url: &str, cycles: &str, duration: f64, steps: &str) -> String {
    format!(
        r#"
[test]
name = "engine"
url = "{url}"

[bench]
cycles = [{cycles}]
duration = {duration}
startup_delay = 0.01
cycle_time = 0.2
timeout = 2

{steps}
"#
    )
}

/// Every request the node made, in windows or outside them.
fn node_requests(r: &NodeResult) -> u64 {
    r.cycles
        .iter()
        .map(|c| c.requests.total() + c.outside.requests)
        .sum()
}

/// One step: `GET /`.
const HOME_STEP: &str = "[[step]]\nname = \"home\"\npath = \"/\"\n";

/// `bench-node run` as the master starts it: waiting for `start` on stdin, progress as asked
/// (stdout piped).
fn spawn_waiting(
    test: &std::path::Path,
    out: &std::path::Path,
    progress: &str,
) -> std::process::Child {
    bench_node()
        .arg("run")
        .arg(test)
        .arg("-o")
        .arg(out)
        .args(["--progress", progress, "--wait-start"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap()
}

/// Runs `bench-node run TEST -o OUT`, which must succeed, and reads its result.
fn run_node(test: &std::path::Path, out: &std::path::Path) -> NodeResult {
    let o = run(bench_node().arg("run").arg(test).arg("-o").arg(out));
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    read_file(out).unwrap()
}

#[test]
fn two_cycles_count_exactly_what_the_server_received() {
    let server = Server::start();
    let dir = tempdir();
    let steps = "[[step]]\nname = \"home\"\npath = \"/\"\n\n[[step]]\nname = \"page\"\npath = \"/page?delay_ms=2\"\n";
    let test = write(
        dir.path(),
        "t.toml",
        &test_toml(&server.url(), "3, 6", 2.5, steps),
    );
    let out = dir.path().join("r.xml");
    let o = run(bench_node().arg("run").arg(&test).arg("-o").arg(&out));
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));

    let r = read_file(&out).unwrap();
    assert!(!r.interrupted);
    assert_eq!(r.cycles.len(), 2);
    assert_eq!(r.cycles[0].users, 3);
    assert_eq!(r.cycles[1].users, 6);
    // Peak users seen in the series match the plan.
    let peak = |c: u32| {
        r.series
            .iter()
            .filter(|s| s.cycle == Some(c))
            .map(|s| s.users)
            .max()
    };
    assert_eq!(peak(0), Some(3));
    assert_eq!(peak(1), Some(6));
    for c in &r.cycles {
        assert!(
            c.requests.success > 50,
            "cycle {} made {} requests",
            c.index,
            c.requests.success
        );
        assert_eq!(c.requests.failure + c.requests.error, 0);
        assert_eq!(c.steps.len(), 2);
        assert_eq!(c.pages.total(), c.steps[0].total() + c.steps[1].total());
        assert!((c.window_s - 2.5).abs() < 0.01, "window {}", c.window_s);
        assert!(c.tests.success > 0);
    }
    assert_eq!(
        node_requests(&r),
        server.count(),
        "node and server disagree"
    );
    println!("node and server both counted {} requests", server.count());
}

#[test]
fn latency_of_a_20ms_answer_reads_20ms() {
    let server = Server::start();
    let dir = tempdir();
    let steps = "[[step]]\nname = \"slow\"\npath = \"/?delay_ms=20\"\n";
    let test = write(
        dir.path(),
        "t.toml",
        &test_toml(&server.url(), "10", 2.0, steps),
    );
    let out = dir.path().join("r.xml");
    let o = run(bench_node()
        .arg("run")
        .arg(&test)
        .arg("-o")
        .arg(&out)
        .args(["--progress", "none"]));
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let r = read_file(&out).unwrap();
    let p50_ms = r.cycles[0].requests.latency.value_at_quantile(0.5) as f64 / 1000.0;
    println!(
        "p50 = {p50_ms:.3} ms over {} requests",
        r.cycles[0].requests.total()
    );
    assert!((20.0..=25.0).contains(&p50_ms), "p50 {p50_ms} ms");
}

#[test]
fn bad_status_is_a_failure_and_a_closed_port_an_error() {
    let server = Server::start();
    let dir = tempdir();
    let steps = format!(
        "[[step]]\nname = \"ok\"\npath = \"/\"\n\n[[step]]\nname = \"boom\"\npath = \"/?status=500\"\n\n\
         [[step]]\nname = \"never\"\nurl = \"http://127.0.0.1:{}/\"\n",
        closed_port()
    );
    let test = write(
        dir.path(),
        "t.toml",
        &test_toml(&server.url(), "2", 1.0, &steps),
    );
    let out = dir.path().join("r.xml");
    let r = run_node(&test, &out);
    let c = &r.cycles[0];
    // The failing step ends each test: the third step is never reached.
    assert!(c.steps[1].failure > 0 && c.steps[1].success == 0);
    assert_eq!(c.steps[2].total(), 0);
    assert_eq!(c.tests.success, 0);
    assert!(c.tests.failure > 0);
    let group = r
        .errors
        .iter()
        .find(|g| g.kind == ErrorKind::Status)
        .expect("a status group");
    assert_eq!(group.detail, "HTTP 500");
    assert_eq!(group.samples[0].status, Some(500));

    // Now only the closed port.
    let steps = format!(
        "[[step]]\nname = \"never\"\nurl = \"http://127.0.0.1:{}/\"\n",
        closed_port()
    );
    let test = write(
        dir.path(),
        "t2.toml",
        &test_toml(&server.url(), "2", 1.0, &steps),
    );
    let r = run_node(&test, &out);
    assert!(r.cycles[0].requests.error > 0);
    assert_eq!(r.cycles[0].requests.success, 0);
    assert!(
        r.errors.iter().any(|g| g.kind == ErrorKind::Connect),
        "{:?}",
        r.errors
    );
}

#[test]
fn sigint_mid_cycle_leaves_a_readable_result() {
    let server = Server::start();
    let dir = tempdir();
    let steps = "[[step]]\nname = \"home\"\npath = \"/?delay_ms=5\"\n";
    let test = write(
        dir.path(),
        "t.toml",
        &test_toml(&server.url(), "4, 8", 30.0, steps),
    );
    let out = dir.path().join("r.xml");
    let child = bench_node()
        .arg("run")
        .arg(&test)
        .arg("-o")
        .arg(&out)
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let started = std::time::Instant::now();
    let o = child.wait_with_output().unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "took {:?} to stop",
        started.elapsed()
    );
    assert_eq!(
        o.status.code(),
        Some(130),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let r = read_file(&out).unwrap();
    assert!(r.interrupted);
    assert_eq!(r.cycles.len(), 1);
    assert!(r.cycles[0].requests.success > 0);
    assert!(r.cycles[0].window_s < 2.0);
    assert!(!dir.path().join("r.xml.tmp").exists());
}

#[test]
fn bad_input_is_one_clear_line_and_exit_code_2() {
    let dir = tempdir();
    let cases = [
        ("missing.toml", None, "missing.toml"),
        ("syntax.toml", Some("[test\nname = 1"), "syntax.toml"),
        ("unknown.toml", Some("[test]\nname = \"x\"\nurl = \"http://127.0.0.1:1\"\n[bench]\nduraton = 3\n[[step]]\nname = \"a\"\npath = \"/\"\n"), "duraton"),
        ("badurl.toml", Some("[test]\nname = \"x\"\nurl = \"not a url\"\n[[step]]\nname = \"a\"\npath = \"/\"\n"), "url"),
    ];
    for (name, text, needle) in cases {
        let path = match text {
            Some(t) => write(dir.path(), name, t),
            None => dir.path().join(name),
        };
        for sub in ["run", "check"] {
            let o = run(bench_node().arg(sub).arg(&path));
            let err = String::from_utf8_lossy(&o.stderr);
            assert_eq!(o.status.code(), Some(2), "{sub} {name}: {err}");
            assert_eq!(err.trim().lines().count(), 1, "{sub} {name}: {err}");
            assert!(err.contains(needle), "{sub} {name}: {err}");
            assert!(!err.contains("panicked"), "{err}");
        }
    }
    let o = run(bench_node().args(["run", "x.toml", "-c", "10::20"]));
    assert_eq!(o.status.code(), Some(2));
}

#[test]
fn check_prints_the_plan() {
    let server = Server::start();
    let dir = tempdir();
    let steps = HOME_STEP;
    let test = write(
        dir.path(),
        "t.toml",
        &test_toml(&server.url(), "2, 4", 1.0, steps),
    );
    let o = run(bench_node().arg("check").arg(&test));
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success());
    assert!(text.contains("home") && text.contains("engine"), "{text}");
}

#[test]
fn json_progress_and_start_on_the_masters_word() {
    use std::io::{BufRead, BufReader, Write};
    let server = Server::start();
    let dir = tempdir();
    let steps = HOME_STEP;
    let test = write(
        dir.path(),
        "t.toml",
        &test_toml(&server.url(), "2", 1.5, steps),
    );
    let out = dir.path().join("r.xml");
    let mut child = spawn_waiting(&test, &out, "json");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let first = lines.next().unwrap().unwrap();
    assert!(first.contains("\"ready\""), "{first}");
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(server.count(), 0, "nothing before start");
    let mut stdin = child.stdin.take().unwrap();
    writeln!(stdin, "start").unwrap();
    let events: Vec<String> = lines.map(|l| l.unwrap()).collect();
    assert!(
        events.iter().any(|l| l.contains("\"progress\"")),
        "{events:?}"
    );
    assert!(events.last().unwrap().contains("\"done\""), "{events:?}");
    assert!(child.wait().unwrap().success());
    drop(stdin);
}

#[test]
fn a_start_at_an_instant_is_the_runs_origin_and_users_wait_for_it() {
    use std::io::{BufRead, BufReader, Write};
    let server = Server::start();
    let dir = tempdir();
    let test = write(
        dir.path(),
        "t.toml",
        &test_toml(&server.url(), "2", 1.0, HOME_STEP),
    );
    let out = dir.path().join("r.xml");
    let mut child = spawn_waiting(&test, &out, "json");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    assert!(lines.next().unwrap().unwrap().contains("\"ready\""));
    let now_ms = || benchmaster::result::unix_ms(std::time::SystemTime::now());
    let at = now_ms() + 600;
    let mut stdin = child.stdin.take().unwrap();
    writeln!(stdin, "start {at}").unwrap();
    // The node knows its start and has handed its users over; they wait for the instant.
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(server.count(), 0, "nothing before the instant");
    // The cycle is said once it is due.
    let cycle = lines
        .by_ref()
        .map(|l| l.unwrap())
        .find(|l| l.contains("\"cycle\""))
        .unwrap();
    let said = now_ms();
    assert!(
        said >= at,
        "{cycle} said {} ms before the instant",
        at - said
    );
    let rest: Vec<String> = lines.map(|l| l.unwrap()).collect();
    assert!(rest.last().unwrap().contains("\"done\""), "{rest:?}");
    assert!(child.wait().unwrap().success());
    drop(stdin);
    let r = read_file(&out).unwrap();
    // The run's origin is the instant asked for (the clocks are read apart: within 2 ms),
    // and its users began at it or just after.
    assert!(
        r.started_unix_ms.abs_diff(at) <= 2,
        "{} for {at}",
        r.started_unix_ms
    );
    let began = r.began_unix_ms.expect("users began");
    assert!(began >= r.started_unix_ms, "began {began}");
    assert!(
        began - r.started_unix_ms < 500,
        "began {} ms late",
        began - at
    );
    assert_eq!(node_requests(&r), server.count());
}

#[test]
fn stdin_closing_stops_the_node() {
    let server = Server::start();
    let dir = tempdir();
    let steps = HOME_STEP;
    let test = write(
        dir.path(),
        "t.toml",
        &test_toml(&server.url(), "2", 60.0, steps),
    );
    let out = dir.path().join("r.xml");
    let mut child = spawn_waiting(&test, &out, "none");
    let mut stdin = child.stdin.take().unwrap();
    use std::io::Write;
    writeln!(stdin, "start").unwrap();
    std::thread::sleep(Duration::from_millis(800));
    drop(stdin);
    let t = std::time::Instant::now();
    let status = child.wait().unwrap();
    assert!(t.elapsed() < Duration::from_secs(5));
    assert_eq!(status.code(), Some(130));
    assert!(read_file(&out).unwrap().interrupted);
}

#[test]
fn https_with_a_self_signed_certificate_needs_insecure() {
    let server = Server::start_tls();
    let dir = tempdir();
    let steps = HOME_STEP;
    let strict = test_toml(&server.url(), "2", 1.0, steps);
    let insecure = strict.replace("timeout = 2", "timeout = 2\ninsecure = true");
    let out = dir.path().join("r.xml");

    let test = write(dir.path(), "strict.toml", &strict);
    let r = run_node(&test, &out);
    assert_eq!(r.cycles[0].requests.success, 0);
    assert!(
        r.errors.iter().any(|g| g.kind == ErrorKind::Tls),
        "{:?}",
        r.errors
    );

    let test = write(dir.path(), "insecure.toml", &insecure);
    let r = run_node(&test, &out);
    assert!(r.cycles[0].requests.success > 10);
    assert_eq!(r.cycles[0].requests.error, 0, "{:?}", r.errors);
    assert!(r.test.url.starts_with("https://"));
}

/// Two steps with think time between them and a pause between executions.
fn thinking_test(url: &str, users: u32, think: f64) -> String {
    let steps = "[[step]]\nname = \"a\"\npath = \"/a\"\n\n[[step]]\nname = \"b\"\npath = \"/b\"\n";
    test_toml(url, &users.to_string(), 1.5, steps).replace(
        "timeout = 2",
        &format!(
            "timeout = 2\ninsecure = true\nsleep_time_min = {think}\nsleep_time_max = {think}\n\
             sleep_time = {think}"
        ),
    )
}

/// A thinking user keeps its connection (only the socket: nothing else is held between two
/// requests): all its requests go over one keep-alive connection, plain or TLS.
#[test]
fn thinking_users_keep_one_connection_each() {
    for server in [Server::start(), Server::start_tls()] {
        let dir = tempdir();
        let test = write(dir.path(), "t.toml", &thinking_test(&server.url(), 4, 0.03));
        let r = run_node(&test, &dir.path().join("r.xml"));
        let c = &r.cycles[0];
        assert_eq!(c.requests.error + c.requests.failure, 0, "{:?}", r.errors);
        assert!(
            node_requests(&r) >= 4 * 20,
            "{} requests",
            node_requests(&r)
        );
        assert_eq!(node_requests(&r), server.count());
        assert_eq!(server.connections(), 4, "{}", server.url());
    }
}

/// A server that closes connections idle for 50 ms, users that think 150 ms: each connection
/// is closed while the user thinks, and the next request opens a new one instead of failing.
#[test]
fn a_connection_closed_while_the_user_thinks_is_reopened() {
    let server = Server::start_closing_idle(Duration::from_millis(50));
    let dir = tempdir();
    let test = write(dir.path(), "t.toml", &thinking_test(&server.url(), 3, 0.15));
    let r = run_node(&test, &dir.path().join("r.xml"));
    let c = &r.cycles[0];
    assert_eq!(c.requests.error + c.requests.failure, 0, "{:?}", r.errors);
    let requests = node_requests(&r);
    assert!(requests >= 3 * 8, "{requests} requests");
    assert_eq!(requests, server.count());
    // Every request after a think found its connection closed.
    assert_eq!(server.connections(), requests, "{requests} requests");
}

#[test]
fn redirects_are_followed_and_counted_and_cookies_kept_per_user() {
    let server = Server::start();
    let dir = tempdir();
    // Page 1: a redirect (2 requests) that also sets a cookie; page 2 needs the cookie.
    let steps = "[[step]]\nname = \"login\"\npath = \"/login?set_cookie=sid%3D{{ user }}&redirect=/home\"\n\n\
                 [[step]]\nname = \"private\"\npath = \"/private?need_cookie=sid\"\n";
    let test = write(
        dir.path(),
        "t.toml",
        &test_toml(&server.url(), "3", 1.0, steps),
    );
    let out = dir.path().join("r.xml");
    let r = run_node(&test, &out);
    let c = &r.cycles[0];
    assert_eq!(c.steps[1].failure, 0, "cookie lost: {:?}", r.errors);
    assert!(c.steps[1].success > 10);
    // Each login page is two requests (302 + the target).
    let pages = c.pages.total() + c.outside.pages;
    let requests = c.requests.total() + c.outside.requests;
    let logins = c.steps[0].total();
    assert!(
        requests >= pages + logins - 3,
        "{requests} requests for {pages} pages"
    );
    assert_eq!(requests, server.count());
}

#[test]
fn captured_values_feed_later_steps() {
    let server = Server::start();
    let dir = tempdir();
    // The target echoes nothing useful, so capture from a header it sets: the redirect location.
    let steps = "[[step]]\nname = \"first\"\npath = \"/?status=302&redirect=/next%3Fuser%3D{{ user }}\"\n\
                 expect_status = [302]\n[[step.capture]]\nname = \"loc\"\nheader = \"location\"\n\n\
                 [[step]]\nname = \"second\"\npath = \"{{ loc }}&need_cookie=none\"\nexpect_status = [401]\n";
    let test = write(
        dir.path(),
        "t.toml",
        &test_toml(&server.url(), "2", 1.0, steps),
    );
    let out = dir.path().join("r.xml");
    let r = run_node(&test, &out);
    let c = &r.cycles[0];
    assert!(c.steps[0].success > 5, "{:?}", r.errors);
    assert_eq!(c.steps[1].failure + c.steps[1].error, 0, "{:?}", r.errors);
    assert!(c.tests.success > 5);
}

#[test]
fn the_node_samples_its_own_resources() {
    let server = Server::start();
    let dir = tempdir();
    let steps = HOME_STEP;
    let test = write(
        dir.path(),
        "t.toml",
        &test_toml(&server.url(), "2", 2.5, steps),
    );
    let out = dir.path().join("r.xml");
    let r = run_node(&test, &out);
    let own = r
        .resources
        .iter()
        .find(|h| h.role == HostRole::Node)
        .unwrap();
    assert!(own.samples.len() >= 2, "{} samples", own.samples.len());
    assert!(own.samples.iter().all(|s| s.mem_total_kib > 0));
}

/// Open model: runs `rate` executions/s for `duration` s against a target answering after
/// `delay_ms`, with at most `max_users` in flight; returns (result, requests the server saw).
fn open_model_run(
    rate: u32,
    duration: f64,
    delay_ms: u32,
    max_users: u32,
) -> (NodeResult, u64, serde_json::Value) {
    let server = Server::start();
    let dir = tempdir();
    let text = format!(
        "[test]\nname = \"open\"\nurl = \"{}\"\n[bench]\nrate = [{rate}]\nmax_users = {max_users}\n\
         duration = {duration}\ntimeout = 5\n[[step]]\nname = \"slow\"\npath = \"/?delay_ms={delay_ms}\"\n",
        server.url()
    );
    let test = write(dir.path(), "t.toml", &text);
    let out = dir.path().join("r.xml");
    let o = run(bench_node().arg("run").arg(&test).arg("-o").arg(&out));
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let report = dir.path().join("report");
    let o = run(
        std::process::Command::new(env!("CARGO_BIN_EXE_bench-report"))
            .arg("-o")
            .arg(&report)
            .arg(&out),
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let summary = std::fs::read_to_string(report.join("summary.json")).unwrap();
    let html = std::fs::read_to_string(report.join("index.html")).unwrap();
    assert!(html.contains("open: test executions started on schedule"));
    (
        read_file(&out).unwrap(),
        server.count(),
        serde_json::from_str(&summary).unwrap(),
    )
}

#[test]
fn open_model_starts_executions_on_schedule() {
    let (r, received, _) = open_model_run(50, 4.0, 100, 100);
    let expected = 50.0 * 4.0;
    println!("open model: {received} executions started for {expected} due");
    assert_eq!(r.config.model, ModelKind::Open);
    assert!(
        (received as f64 - expected).abs() <= expected * 0.02,
        "{received} started"
    );
    assert_eq!(r.cycles[0].dropped, 0);
    // Latency counts from the schedule: at least the target's 100 ms.
    let p50 = r.cycles[0].tests.latency.value_at_quantile(0.5);
    assert!((100_000..150_000).contains(&p50), "p50 {p50} µs");
}

#[test]
fn open_model_counts_dropped_executions() {
    // 5 users answering in 500 ms can start at most 10 executions/s of the 50 due.
    let (r, received, summary) = open_model_run(50, 4.0, 500, 5);
    let c = &r.cycles[0];
    assert_eq!(
        summary["cycles"][0]["dropped"], c.dropped,
        "the report shows the drops"
    );
    let expected = 50.0 * 4.0;
    println!(
        "open model: {received} started, {} dropped, {expected} due",
        c.dropped
    );
    assert!(c.dropped > 100, "{} dropped", c.dropped);
    assert!(received <= 5 * 9, "{received} started");
    let total = (received + c.dropped) as f64;
    assert!((total - expected).abs() <= expected * 0.02, "{total} due");
}

/// `bench-node run` with its open-files limit set to `soft`/`hard` before it starts.
fn run_with_nofile(test: &std::path::Path, out: &std::path::Path, soft: u64, hard: u64) -> String {
    use std::os::unix::process::CommandExt;
    let mut cmd = bench_node();
    cmd.arg("run").arg(test).arg("-o").arg(out);
    // SAFETY: setrlimit is async-signal-safe and only touches the child about to exec.
    unsafe {
        cmd.pre_exec(move || {
            let lim = libc::rlimit {
                rlim_cur: soft,
                rlim_max: hard,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &lim) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let o = run(&mut cmd);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// The node raises its soft open-files limit to the hard one and says so; when even the hard
/// limit is too low for the users asked, it says that and how to fix it, and still runs.
#[test]
fn the_open_files_limit_is_raised_or_named_as_too_low() {
    let server = Server::start();
    let dir = tempdir();
    let test = write(
        dir.path(),
        "t.toml",
        &test_toml(&server.url(), "200", 0.3, HOME_STEP)
            .replace("startup_delay = 0.01", "startup_delay = 0"),
    );
    let out = dir.path().join("r.xml");

    let stderr = run_with_nofile(&test, &out, 100, 4096);
    assert!(
        stderr.contains("raised the open-files limit from 100 to 4096 for 200 users"),
        "{stderr}"
    );
    assert!(node_requests(&read_file(&out).unwrap()) > 0);

    let stderr = run_with_nofile(&test, &out, 100, 100);
    assert!(
        stderr.contains("open-files limit 100 (hard limit 100) is too low for 200 users"),
        "{stderr}"
    );
    assert!(stderr.contains("ulimit -Hn"), "{stderr}");
    assert!(read_file(&out).is_ok(), "a result is written all the same");
}

/// Checks see the whole kept body, not only its first read: a 40 000-byte body arrives in
/// several frames (hyper reads 8 KiB at first), and a check needing 30 000 of its bytes in a
/// row passes.
#[test]
fn checks_see_a_body_that_arrives_in_many_reads() {
    let server = Server::start();
    let dir = tempdir();
    let steps = "[[step]]\nname = \"big\"\npath = \"/?bytes=40000\"\nregex = \"x{30000}\"\n";
    let test = write(
        dir.path(),
        "t.toml",
        &test_toml(&server.url(), "1", 0.5, steps),
    );
    let r = run_node(&test, &dir.path().join("r.xml"));
    let c = &r.cycles[0];
    assert!(c.steps[0].success > 0, "{:?}", r.errors);
    assert_eq!(c.steps[0].failure, 0, "{:?}", r.errors);
}
