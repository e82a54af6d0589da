//! Fault injection on the engine side: bench-node against real servers on 127.0.0.1 that stop,
//! hang, fail, send a 1 GB body or close every connection; an unwritable results directory; a
//! truncated result given to bench-report. Each test prints its figure (time to end, peak RSS);
//! docs/RELIABILITY.md lists them with their bounds.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use benchmaster::result::read::read_file;
use benchmaster::result::{ErrorKind, NodeResult};

use crate::util::{bench_node, peak_rss_kib, run, tempdir, write, Server, TargetProcess};

/// Time a process may take to start, resolve its target and write its result, beyond the
/// bench's own bound.
const SLACK: Duration = Duration::from_secs(2);

/// A one-step test of `users` users for `duration` s, requests timing out after `timeout` s.
fn one_step(url: &str, path: &str, users: u32, duration: f64, timeout: f64) -> String {
    format!(
        r#"[test]
name = "faults"
url = "{url}"

[bench]
cycles = [{users}]
duration = {duration}
startup_delay = 0.01
timeout = {timeout}

[[step]]
name = "page"
path = "{path}"
"#
    )
}

/// How a bench-node run ended, and what it cost.
struct Finished {
    output: Output,
    elapsed: Duration,
    /// Peak resident memory (VmHWM) seen while it ran, KiB.
    peak_rss_kib: u64,
}

impl Finished {
    fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.output.stderr).into_owned()
    }
}

/// Runs `cmd`, sampling its peak RSS every 10 ms; kills it and fails the test if it is still
/// running after `limit`. `during` is called once, `after` into the run.
fn run_bounded(
    cmd: &mut Command,
    limit: Duration,
    after: Duration,
    during: impl FnOnce(),
) -> Finished {
    let start = Instant::now();
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("bench-node starts");
    let pipe = |mut r: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            let _ = r.read_to_end(&mut buf);
            buf
        })
    };
    let stdout = pipe(Box::new(child.stdout.take().unwrap()));
    let stderr = pipe(Box::new(child.stderr.take().unwrap()));
    let mut during = Some(during);
    let mut peak = 0;
    let status = loop {
        if let Some(kib) = peak_rss_kib(child.id()) {
            peak = peak.max(kib);
        }
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if start.elapsed() >= after {
            if let Some(f) = during.take() {
                f();
            }
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            panic!("bench-node still running after {limit:?}: it must end by itself");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    Finished {
        output: Output {
            status,
            stdout: stdout.join().unwrap(),
            stderr: stderr.join().unwrap(),
        },
        elapsed: start.elapsed(),
        peak_rss_kib: peak,
    }
}

/// `bench-node run TEST -o OUT --progress none`.
fn node_run(test: &Path, out: &Path) -> Command {
    let mut cmd = bench_node();
    cmd.arg("run")
        .arg(test)
        .arg("-o")
        .arg(out)
        .args(["--progress", "none"]);
    cmd
}

fn error_kinds(r: &NodeResult) -> Vec<(String, String, u64)> {
    r.errors
        .iter()
        .map(|g| (g.kind.to_string(), g.detail.clone(), g.count))
        .collect()
}

#[test]
fn target_stopping_mid_run_ends_on_time_with_errors_counted() {
    let mut target = TargetProcess::start();
    let dir = tempdir();
    let duration = 3.0;
    let test = write(
        dir.path(),
        "t.toml",
        &one_step(&target.url(), "/?delay_ms=5", 4, duration, 2.0),
    );
    let out = dir.path().join("r.xml");
    let limit = Duration::from_secs_f64(duration) + SLACK;
    let f = run_bounded(
        &mut node_run(&test, &out),
        limit * 2,
        Duration::from_millis(1200),
        || target.kill(),
    );
    assert!(f.output.status.success(), "{}", f.stderr());
    let r = read_file(&out).expect("the result is written and reads");
    let c = &r.cycles[0].requests;
    println!(
        "target killed at 1.2 s of a {duration} s run: ended after {:.2} s; {} successes before, \
         {} errors after; error groups {:?}",
        f.elapsed.as_secs_f64(),
        c.success,
        c.error,
        error_kinds(&r)
    );
    assert!(f.elapsed < limit, "took {:?}", f.elapsed);
    assert!(c.success > 0, "successes before the stop are kept");
    assert!(c.error > 0, "requests after the stop are errors");
    assert!(
        r.errors.iter().any(|g| g.kind == ErrorKind::Connect),
        "refused connections are named: {:?}",
        error_kinds(&r)
    );
}

/// A server that accepts connections and never answers (nor closes them).
struct Silent {
    addr: SocketAddr,
    accepted: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Silent {
    fn start() -> Silent {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let accepted = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (a, s) = (accepted.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            let mut held = Vec::new();
            while !s.load(Ordering::SeqCst) {
                match listener.accept() {
                    Ok((stream, _)) => {
                        a.fetch_add(1, Ordering::SeqCst);
                        held.push(stream);
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        Silent {
            addr,
            accepted,
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for Silent {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[test]
fn hanging_target_times_out_and_the_run_ends_within_duration_timeout_and_grace() {
    let server = Silent::start();
    let dir = tempdir();
    let (duration, timeout) = (2.0, 1.0);
    let test = write(
        dir.path(),
        "t.toml",
        &one_step(
            &format!("http://{}", server.addr),
            "/",
            3,
            duration,
            timeout,
        ),
    );
    let out = dir.path().join("r.xml");
    // The engine gives a request in flight at the end of a window its timeout plus 1 s.
    let bound = Duration::from_secs_f64(duration + timeout + 1.0) + SLACK;
    let f = run_bounded(&mut node_run(&test, &out), bound * 2, Duration::ZERO, || ());
    assert!(f.output.status.success(), "{}", f.stderr());
    let r = read_file(&out).unwrap();
    let c = &r.cycles[0];
    let timeouts: u64 = r
        .errors
        .iter()
        .filter(|g| g.kind == ErrorKind::Timeout)
        .map(|g| g.count)
        .sum();
    println!(
        "silent server, {duration} s run, {timeout} s timeout: ended after {:.2} s (bound {:.1} \
         s); {timeouts} timeouts, {} connections accepted",
        f.elapsed.as_secs_f64(),
        bound.as_secs_f64(),
        server.accepted.load(Ordering::SeqCst)
    );
    assert!(f.elapsed < bound, "took {:?}", f.elapsed);
    assert_eq!(c.requests.success + c.requests.failure, 0);
    assert!(timeouts >= 3, "each user timed out: {:?}", error_kinds(&r));
    assert!(c.requests.error + c.outside.requests >= timeouts);
}

/// One user, timeout 1 s: a fast step, two 700 ms steps, then one the server holds for 3 s. The
/// third step ends 1.4 s after the first was sent, beyond the first request's deadline but
/// within its own; the last must time out 1 s after it was sent (2.4 s into the iteration),
/// not at an earlier request's deadline.
#[test]
fn each_request_times_out_on_its_own_deadline_not_an_earlier_one() {
    let server = Server::start();
    let dir = tempdir();
    let mut def = one_step(&server.url(), "/", 1, 3.0, 1.0);
    for (name, delay) in [("slow1", 700), ("slow2", 700), ("hung", 3000)] {
        def += &format!("\n[[step]]\nname = \"{name}\"\npath = \"/?delay_ms={delay}\"\n");
    }
    let test = write(dir.path(), "t.toml", &def);
    let out = dir.path().join("r.xml");
    let f = run_bounded(
        &mut node_run(&test, &out),
        Duration::from_secs(20),
        Duration::ZERO,
        || (),
    );
    assert!(f.output.status.success(), "{}", f.stderr());
    let r = read_file(&out).unwrap();
    let steps = &r.cycles[0].steps;
    let timeouts: Vec<u64> = r
        .errors
        .iter()
        .filter(|g| g.kind == ErrorKind::Timeout)
        .flat_map(|g| g.samples.iter().map(|s| s.at_ms))
        .collect();
    println!(
        "successes per step {:?}, errors per step {:?}, timeouts at {timeouts:?} ms",
        steps.iter().map(|s| s.success).collect::<Vec<_>>(),
        steps.iter().map(|s| s.error).collect::<Vec<_>>()
    );
    for (i, step) in steps.iter().enumerate().take(3) {
        assert!(
            step.success >= 1,
            "step {i} completed: {:?}",
            error_kinds(&r)
        );
        assert_eq!(
            step.error,
            0,
            "step {i} within its timeout: {:?}",
            error_kinds(&r)
        );
    }
    // Started 10 ms in: 0.01 + 0.7 + 0.7 + 1.0 s; an earlier request's deadline gives 1.71 s.
    let first = *timeouts.first().expect("the hung step timed out");
    assert!((2300..3000).contains(&first), "first timeout at {first} ms");
}

#[test]
fn server_errors_are_failures_with_their_body_and_the_run_ends_on_time() {
    let server = Server::start();
    let dir = tempdir();
    let duration = 1.5;
    let test = write(
        dir.path(),
        "t.toml",
        &one_step(&server.url(), "/?status=500", 4, duration, 2.0),
    );
    let out = dir.path().join("r.xml");
    let bound = Duration::from_secs_f64(duration) + SLACK;
    let f = run_bounded(&mut node_run(&test, &out), bound * 2, Duration::ZERO, || ());
    assert!(f.output.status.success(), "{}", f.stderr());
    let r = read_file(&out).unwrap();
    let c = &r.cycles[0].requests;
    println!(
        "500 on every request: ended after {:.2} s, {} failures, {} successes",
        f.elapsed.as_secs_f64(),
        c.failure,
        c.success
    );
    assert!(f.elapsed < bound, "took {:?}", f.elapsed);
    assert_eq!(c.success, 0);
    assert!(c.failure > 100, "{} failures", c.failure);
    let group = r
        .errors
        .iter()
        .find(|g| g.kind == ErrorKind::Status)
        .unwrap();
    assert_eq!(group.detail, "HTTP 500");
    assert_eq!(group.count, c.failure + r.cycles[0].outside.requests);
    assert_eq!(group.samples[0].status, Some(500));
    assert_eq!(
        group.samples[0].body.trim(),
        "ok",
        "the body is kept as a sample"
    );
}

/// Bytes of the huge body.
const GIB: u64 = 1 << 30;

/// A server answering every request with a body of 1 GiB, streamed from one 64 KiB buffer.
struct HugeBody {
    addr: SocketAddr,
    /// Bodies sent whole.
    complete: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
}

impl HugeBody {
    fn start() -> HugeBody {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let complete = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (c, s) = (complete.clone(), stop.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                if s.load(Ordering::SeqCst) {
                    return;
                }
                let (c, s) = (c.clone(), s.clone());
                std::thread::spawn(move || HugeBody::serve(stream, &c, &s));
            }
        });
        HugeBody {
            addr,
            complete,
            stop,
        }
    }

    /// Answers requests on one connection until the client goes or the test ends.
    fn serve(stream: TcpStream, complete: &AtomicU64, stop: &AtomicBool) {
        static CHUNK: [u8; 64 << 10] = [b'x'; 64 << 10];
        let mut reader = BufReader::new(stream.try_clone().unwrap());
        let mut writer = stream;
        loop {
            // The request head, up to its blank line.
            let mut line = String::new();
            loop {
                line.clear();
                match reader.read_line(&mut line) {
                    Ok(0) | Err(_) => return,
                    Ok(_) if line == "\r\n" => break,
                    Ok(_) => {}
                }
            }
            let head = format!("HTTP/1.1 200 OK\r\ncontent-length: {GIB}\r\n\r\n");
            if writer.write_all(head.as_bytes()).is_err() {
                return;
            }
            for _ in 0..GIB / CHUNK.len() as u64 {
                if stop.load(Ordering::SeqCst) || writer.write_all(&CHUNK).is_err() {
                    return;
                }
            }
            complete.fetch_add(1, Ordering::SeqCst);
        }
    }
}

impl Drop for HugeBody {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop so that it sees `stop`.
        let _ = TcpStream::connect(self.addr);
    }
}

#[test]
fn a_1gb_body_is_counted_and_memory_stays_bounded() {
    let server = HugeBody::start();
    let dir = tempdir();
    let (duration, timeout) = (3.0, 30.0);
    let test = write(
        dir.path(),
        "t.toml",
        &one_step(
            &format!("http://{}", server.addr),
            "/",
            2,
            duration,
            timeout,
        ),
    );
    let out = dir.path().join("r.xml");
    let bound = Duration::from_secs_f64(duration + timeout + 1.0) + SLACK;
    let f = run_bounded(&mut node_run(&test, &out), bound, Duration::ZERO, || ());
    assert!(f.output.status.success(), "{}", f.stderr());
    let r = read_file(&out).unwrap();
    let c = &r.cycles[0];
    let bytes = c.requests.bytes;
    let whole = server.complete.load(Ordering::SeqCst);
    println!(
        "1 GiB bodies: {whole} sent whole, {:.2} GiB counted in the window, ended after {:.2} s, \
         peak RSS {:.1} MiB",
        bytes as f64 / GIB as f64,
        f.elapsed.as_secs_f64(),
        f.peak_rss_kib as f64 / 1024.0
    );
    assert!(
        whole >= 1,
        "no body was sent whole: the test proves nothing"
    );
    assert!(
        c.requests.success + c.outside.requests >= 1,
        "{:?}",
        error_kinds(&r)
    );
    assert!(
        bytes >= GIB || c.outside.requests > 0,
        "a whole body is counted"
    );
    // A few MiB of buffers per connection at most; 1 GiB would be held if bodies were kept.
    assert!(
        f.peak_rss_kib > 0 && f.peak_rss_kib < 128 * 1024,
        "peak RSS {} KiB",
        f.peak_rss_kib
    );
}

#[test]
fn a_server_closing_every_connection_costs_no_error() {
    let server = Server::start();
    let dir = tempdir();
    let duration = 2.0;
    let test = write(
        dir.path(),
        "t.toml",
        &one_step(&server.url(), "/?close=1", 4, duration, 2.0),
    );
    let out = dir.path().join("r.xml");
    let bound = Duration::from_secs_f64(duration) + SLACK;
    let f = run_bounded(&mut node_run(&test, &out), bound * 2, Duration::ZERO, || ());
    assert!(f.output.status.success(), "{}", f.stderr());
    let r = read_file(&out).unwrap();
    let c = &r.cycles[0];
    let all: u64 = r
        .cycles
        .iter()
        .map(|c| c.requests.total() + c.outside.requests)
        .sum();
    println!(
        "Connection: close on every answer: {} successes ({:.0}/s), {} errors, ended after {:.2} s",
        c.requests.success,
        c.requests.success as f64 / c.window_s,
        c.requests.error,
        f.elapsed.as_secs_f64()
    );
    assert!(f.elapsed < bound, "took {:?}", f.elapsed);
    assert!(c.requests.success > 100, "{}", c.requests.success);
    assert_eq!(c.requests.error, 0, "{:?}", error_kinds(&r));
    assert_eq!(c.requests.failure, 0);
    assert_eq!(all, server.count(), "node and server disagree");
}

#[test]
fn an_unwritable_results_directory_fails_at_once_naming_the_path() {
    let server = Server::start();
    let dir = tempdir();
    let test = write(
        dir.path(),
        "t.toml",
        &one_step(&server.url(), "/", 2, 3.0, 2.0),
    );
    let a_file = write(dir.path(), "a-file", "not a directory");
    let mut cases = vec![
        ("parent is a file", a_file.join("r.xml")),
        ("parent missing", dir.path().join("missing/r.xml")),
        ("output is a directory", dir.path().to_path_buf()),
    ];
    // Root writes into a read-only directory anyway: that case needs another user.
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        use std::os::unix::fs::PermissionsExt;
        let ro = dir.path().join("read-only");
        std::fs::create_dir(&ro).unwrap();
        std::fs::set_permissions(&ro, std::fs::Permissions::from_mode(0o555)).unwrap();
        cases.push(("read-only directory", ro.join("r.xml")));
    }
    for (case, out) in cases {
        let start = Instant::now();
        let o = run(&mut node_run(&test, &out));
        let elapsed = start.elapsed();
        let err = String::from_utf8_lossy(&o.stderr);
        println!(
            "{case}: exit {:?} after {:.2} s: {}",
            o.status.code(),
            elapsed.as_secs_f64(),
            err.trim()
        );
        assert!(!o.status.success(), "{case}");
        assert!(
            err.contains(&out.display().to_string()),
            "{case}: the path is named: {err}"
        );
        assert!(!err.contains("panicked"), "{err}");
        assert_eq!(err.trim().lines().count(), 1, "{case}: one line: {err}");
        assert!(
            elapsed < Duration::from_secs(2),
            "{case}: fails before the 3 s bench, not after it ({elapsed:?})"
        );
    }
    assert_eq!(
        server.count(),
        0,
        "no load is made when the result cannot be kept"
    );
}

#[test]
fn a_truncated_result_is_refused_by_bench_report_naming_file_and_position() {
    let server = Server::start();
    let dir = tempdir();
    let test = write(
        dir.path(),
        "t.toml",
        &one_step(&server.url(), "/?status=500", 2, 0.5, 2.0),
    );
    let whole = dir.path().join("whole.xml");
    let o = run(&mut node_run(&test, &whole));
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let xml = std::fs::read(&whole).unwrap();
    for percent in [0, 1, 10, 50, 90, 99] {
        let cut = xml.len() * percent / 100;
        let file = dir.path().join(format!("cut-{percent}.xml"));
        std::fs::write(&file, &xml[..cut]).unwrap();
        let report = dir.path().join(format!("report-{percent}"));
        let o = run(Command::new(env!("CARGO_BIN_EXE_bench-report"))
            .arg("-o")
            .arg(&report)
            .arg(&file));
        let err = String::from_utf8_lossy(&o.stderr);
        println!(
            "cut at {percent}% (byte {cut} of {}): exit {:?}: {}",
            xml.len(),
            o.status.code(),
            err.trim()
        );
        assert!(
            !o.status.success(),
            "{percent}%: a truncated file is refused"
        );
        assert!(!err.contains("panicked"), "{err}");
        assert!(
            err.contains(&file.display().to_string()),
            "{percent}%: names the file: {err}"
        );
        if cut > 0 {
            assert!(
                err.contains("line ") || err.contains("byte "),
                "{percent}%: names the position: {err}"
            );
        }
        assert!(
            !report.join("index.html").exists(),
            "{percent}%: no report from a truncated result"
        );
    }
}
