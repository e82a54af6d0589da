//! Attacks on the engine and the report: shell metacharacters and markup in test names, step
//! names, URLs and server answers come back intact from the result XML and inert in the HTML
//! report (checked in a real headless chromium); the built-in target listens only where told;
//! `bench-node run` listens nowhere. SECURITY.md states what these tests prove.

use std::collections::HashSet;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use benchmaster::result::read::read_file;
use benchmaster::result::ErrorKind;

use crate::util::{
    bench_node, listening_sockets, response, run, socket_inodes, tempdir, write, RawServer, Server,
    TargetProcess,
};

/// Runs a script when the page is parsed.
const SCRIPT: &str = "<script>document.title='PWNED'</script>";
/// Breaks out of an attribute and runs a handler.
const ATTR: &str = r#""><img src=x onerror="document.body.dataset.p=1">"#;

/// Both markup payloads, as one string.
fn markup() -> String {
    format!("{SCRIPT}{ATTR}")
}

/// Shell payloads that create a file in `dir` if any of them ever reaches a shell.
fn shell(dir: &Path) -> String {
    let d = dir.display();
    format!(
        "a; touch {d}/pwned1 # $(touch {d}/pwned2) `touch {d}/pwned3` | & > < * ? ~ ! \\ 'q' {{x}}"
    )
}

/// Escapes `s` as a TOML basic string (without the quotes).
fn toml_str(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
        .replace('\t', "\\t")
}

/// A server whose answers carry the payloads: paths starting with `/check` answer `200 fine`;
/// any other request is answered in turn `200 fine` and `500` with the markup payloads in the
/// body and in an `X-Evil` header.
struct EvilServer {
    server: RawServer,
    requests: Arc<AtomicU64>,
}

impl EvilServer {
    fn start() -> EvilServer {
        let requests = Arc::new(AtomicU64::new(0));
        let count = requests.clone();
        let server = RawServer::start(move |request| {
            let n = count.fetch_add(1, Ordering::SeqCst);
            let (status, body) = if request.target().starts_with("/check") || n % 2 == 0 {
                ("200 OK", "fine".to_string())
            } else {
                (
                    "500 Internal Server Error",
                    format!("<html><body>{}</body></html>", markup()),
                )
            };
            response(
                status,
                &[("content-type", "text/html"), ("x-evil", ATTR)],
                &body,
            )
        });
        EvilServer { server, requests }
    }

    fn url(&self) -> String {
        self.server.url()
    }
}

/// A test whose names, description and paths carry `payload`, against `url`: step 1 is
/// answered alternately 200 and 500 (with an evil body), step 2 fails a `contains` check whose
/// text is the payload, with a captured header in its URL.
fn evil_test(url: &str, payload: &str) -> String {
    let p = toml_str(payload);
    format!(
        r#"[test]
name = "test {p}"
description = "description {p}"
url = "{url}"

[bench]
cycles = [2]
duration = 1
startup_delay = 0.01
timeout = 2

[[step]]
name = "step {p}"
path = "/path/{p}"
capture = [{{ name = "evil", header = "X-Evil" }}]

[[step]]
name = "check {p}"
path = "/check?v={{{{ evil }}}}"
contains = "{p}"
"#
    )
}

/// Runs `bench-node run` on `test` into `out`; panics with its stderr on failure.
fn node_run(test: &Path, out: &Path) {
    let o = run(bench_node()
        .arg("run")
        .arg(test)
        .arg("-o")
        .arg(out)
        .args(["--progress", "none"]));
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

/// Runs `bench-report -o dir results...`; panics with its stderr on failure.
fn report(dir: &Path, results: &[&Path]) {
    let o = run(Command::new(env!("CARGO_BIN_EXE_bench-report"))
        .arg("-o")
        .arg(dir)
        .args(results));
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

#[test]
fn shell_metacharacters_in_names_and_urls_read_back_equal_and_reach_no_shell() {
    let server = EvilServer::start();
    let dir = tempdir();
    let payload = format!("{}\t{}", shell(dir.path()), markup());
    let test = write(dir.path(), "t.toml", &evil_test(&server.url(), &payload));
    let out = dir.path().join("r.xml");
    node_run(&test, &out);
    let r = read_file(&out).unwrap();
    assert_eq!(r.test.name, format!("test {payload}"));
    assert_eq!(r.test.description, format!("description {payload}"));
    assert_eq!(r.steps[0].name, format!("step {payload}"));
    assert_eq!(r.steps[0].target, format!("/path/{payload}"));
    assert_eq!(r.steps[1].name, format!("check {payload}"));
    let check = r
        .errors
        .iter()
        .find(|g| g.kind == ErrorKind::Check)
        .expect("a check failure");
    assert!(check.detail.contains(SCRIPT), "{}", check.detail);
    let status = r
        .errors
        .iter()
        .find(|g| g.kind == ErrorKind::Status)
        .expect("a 500");
    assert!(
        status.samples[0].body.contains(&markup()),
        "the body comes back whole: {:?}",
        status.samples[0].body
    );
    assert!(server.requests.load(Ordering::SeqCst) > 0);
    println!(
        "names, description, target, check detail and error body read back equal; {} requests",
        server.requests.load(Ordering::SeqCst)
    );

    report(&dir.path().join("report"), &[&out]);
    for n in 1..=3 {
        let canary = dir.path().join(format!("pwned{n}"));
        assert!(
            !canary.exists(),
            "a shell ran the payload: {}",
            canary.display()
        );
    }
}

/// Dumps the DOM of `page` after headless chromium loaded it and ran its scripts.
fn dump_dom(page: &Path) -> String {
    let profile = tempdir();
    let o = Command::new("/usr/bin/chromium")
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg("--dump-dom")
        .arg(format!("file://{}", page.display()))
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| {
            panic!("this test needs Debian's chromium (apt-get install -y chromium): {e}")
        });
    let dom = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(
        dom.contains("<body"),
        "chromium dumped no DOM for {}: {}",
        page.display(),
        String::from_utf8_lossy(&o.stderr)
    );
    dom
}

/// True when one of the payloads ran in `dom`.
fn pwned(dom: &str) -> bool {
    dom.contains("<title>PWNED</title>") || dom.contains("data-p=\"1\"")
}

/// Every HTML file under `dir`.
fn html_files(dir: &Path) -> Vec<PathBuf> {
    walkdir::WalkDir::new(dir)
        .into_iter()
        .filter_map(Result::ok)
        .map(|e| e.into_path())
        .filter(|p| p.extension().is_some_and(|e| e == "html"))
        .collect()
}

#[test]
fn markup_from_tests_and_servers_never_runs_in_a_real_browser() {
    let dir = tempdir();

    // The detector works: the payloads do run in a page that does not escape them.
    let control = write(
        dir.path(),
        "control.html",
        &format!(
            "<html><head><title>t</title></head><body><p title=\"{ATTR}</p>{SCRIPT}</body></html>"
        ),
    );
    let dom = dump_dom(&control);
    assert!(
        dom.contains("<title>PWNED</title>") && dom.contains("data-p=\"1\""),
        "chromium ran no script in the control page: the check below would prove nothing\n{dom}"
    );

    // Two nodes, one against the evil server and one against the built-in target (whose answer
    // fails the check), so that both the 500 body and the check detail reach the report.
    let evil = EvilServer::start();
    let plain = Server::start();
    let payload = markup();
    let mut results = Vec::new();
    for (n, url) in [evil.url(), plain.url()].iter().enumerate() {
        let test = write(dir.path(), &format!("t{n}.toml"), &evil_test(url, &payload));
        let out = dir.path().join(format!("r{n}.xml"));
        node_run(&test, &out);
        results.push(out);
    }
    let report_dir = dir.path().join("report");
    let paths: Vec<&Path> = results.iter().map(PathBuf::as_path).collect();
    report(&report_dir, &paths);

    let pages = html_files(&report_dir);
    assert!(
        !pages.is_empty(),
        "no HTML page in {}",
        report_dir.display()
    );
    for page in &pages {
        let html = std::fs::read_to_string(page).unwrap();
        assert!(
            !html.contains("<script") && !html.contains("<img"),
            "{} holds markup that was not escaped",
            page.display()
        );
        let dom = dump_dom(page);
        assert!(!pwned(&dom), "a payload ran in {}", page.display());
        println!(
            "{}: {} bytes of DOM, no payload ran",
            page.display(),
            dom.len()
        );
    }
    // The payloads did reach the main page, as text (chromium serialises text canonically).
    let main = dump_dom(&report_dir.join("index.html"));
    let as_text = "&lt;script&gt;document.title='PWNED'&lt;/script&gt;";
    for place in [
        "test ",
        "step ",
        "check ",
        "/path/",
        "body does not contain \"",
        "&lt;html&gt;&lt;body&gt;",
    ] {
        assert!(
            main.contains(&format!("{place}{as_text}")),
            "`{place}` + the payload is shown as text in index.html"
        );
    }
}

#[test]
fn the_built_in_target_listens_only_where_told() {
    let target = TargetProcess::start();
    let pid = target.child.id();
    let inodes = socket_inodes(pid);
    let listening = listening_sockets(pid, &inodes);
    // 127.0.0.1 as /proc/net/tcp writes it (little-endian hex), then the port.
    let expected = format!("tcp 0100007F:{:04X}", target.addr.port());
    println!(
        "bench-node target on {}: listening sockets {listening:?}",
        target.addr
    );
    assert_eq!(listening, vec![expected]);
    // Nothing bound on UDP either.
    for table in ["udp", "udp6"] {
        let text = std::fs::read_to_string(format!("/proc/{pid}/net/{table}")).unwrap_or_default();
        let bound = text.lines().skip(1).any(|l| {
            l.split_whitespace()
                .nth(9)
                .and_then(|i| i.parse().ok())
                .is_some_and(|i: u64| inodes.contains(&i))
        });
        assert!(!bound, "the target holds a {table} socket");
    }
}

#[test]
fn bench_node_run_opens_no_listening_port() {
    let server = Server::start();
    let dir = tempdir();
    let test = write(
        dir.path(),
        "t.toml",
        &format!(
            "[test]\nname = \"n\"\nurl = \"{}\"\n[bench]\ncycles = [4]\nduration = 2\n\
             [[step]]\nname = \"a\"\npath = \"/?delay_ms=2\"\n",
            server.url()
        ),
    );
    let out = dir.path().join("r.xml");
    // As the master runs it: JSON progress on stdout, waiting for `start` on stdin.
    let mut child = bench_node()
        .arg("run")
        .arg(&test)
        .arg("-o")
        .arg(&out)
        .args(["--progress", "json", "--wait-start"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let ready = lines.next().unwrap().unwrap();
    assert!(ready.contains("\"ready\""), "{ready}");
    let mut samples = 0;
    let mut seen: HashSet<u64> = socket_inodes(pid);
    assert!(
        listening_sockets(pid, &seen).is_empty(),
        "listens while waiting"
    );
    let mut stdin = child.stdin.take().unwrap();
    writeln!(stdin, "start").unwrap();
    let events = std::thread::spawn(move || lines.map_while(Result::ok).count());
    let start = Instant::now();
    while start.elapsed() < Duration::from_millis(1800) {
        let inodes = socket_inodes(pid);
        let listening = listening_sockets(pid, &inodes);
        assert!(
            listening.is_empty(),
            "bench-node run listens: {listening:?}"
        );
        seen.extend(inodes);
        samples += 1;
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(child.wait().unwrap().success());
    drop(stdin);
    assert!(events.join().unwrap() > 0);
    println!(
        "{samples} samples, {} sockets seen, none listening",
        seen.len()
    );
    assert!(
        seen.len() >= 4,
        "the users' connections were seen (the check can see sockets)"
    );
}

#[test]
fn xml_entities_and_doctypes_in_a_result_are_refused() {
    let server = Server::start();
    let dir = tempdir();
    let test = write(
        dir.path(),
        "t.toml",
        &format!(
            "[test]\nname = \"n\"\ndescription = \"DESCRIPTION\"\nurl = \"{}\"\n[bench]\n\
             cycles = [1]\nduration = 0.3\n[[step]]\nname = \"a\"\npath = \"/\"\n",
            server.url()
        ),
    );
    let out = dir.path().join("r.xml");
    node_run(&test, &out);
    let xml = std::fs::read_to_string(&out).unwrap();
    let decl = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n";
    assert!(xml.starts_with(decl));
    let body = &xml[decl.len()..];
    let laughs: String = (1..10)
        .map(|i| {
            format!(
                "<!ENTITY lol{i} \"{}\">",
                format!("&lol{};", i - 1).repeat(10)
            )
        })
        .collect();
    let cases = [
        (
            "billion laughs",
            format!("<!DOCTYPE r [<!ENTITY lol0 \"lol\">{laughs}]>\n"),
            "&lol9;",
        ),
        (
            "external entity",
            "<!DOCTYPE r [<!ENTITY xxe SYSTEM \"file:///etc/passwd\">]>\n".to_string(),
            "&xxe;",
        ),
        ("undeclared entity", String::new(), "&xxe;"),
    ];
    for (case, doctype, reference) in cases {
        let file = dir.path().join(format!("{}.xml", case.replace(' ', "-")));
        let evil = format!("{decl}{doctype}{}", body.replace("DESCRIPTION", reference));
        std::fs::write(&file, evil).unwrap();
        let start = Instant::now();
        let o = run(Command::new(env!("CARGO_BIN_EXE_bench-report"))
            .arg("-o")
            .arg(dir.path().join(format!("report-{case}")))
            .arg(&file));
        let err = String::from_utf8_lossy(&o.stderr);
        println!(
            "{case}: exit {:?} after {:.2} s: {}",
            o.status.code(),
            start.elapsed().as_secs_f64(),
            err.trim()
        );
        assert!(!o.status.success(), "{case} is refused");
        assert!(err.contains(&file.display().to_string()), "{err}");
        assert!(!err.contains("panicked") && !err.contains("root:"), "{err}");
        assert!(start.elapsed() < Duration::from_secs(5));
    }
}

/// Characters XML 1.0 forbids are refused by the result reader, raw or as references.
#[test]
fn control_characters_in_a_result_are_refused() {
    let server = Server::start();
    let dir = tempdir();
    let test = write(
        dir.path(),
        "t.toml",
        &format!(
            "[test]\nname = \"NAME\"\nurl = \"{}\"\n[bench]\ncycles = [1]\nduration = 0.3\n\
             [[step]]\nname = \"a\"\npath = \"/\"\n",
            server.url()
        ),
    );
    let out = dir.path().join("r.xml");
    node_run(&test, &out);
    let xml = std::fs::read_to_string(&out).unwrap();
    // A terminal escape (set the window title), raw and as a character reference: a node's
    // result would reach the terminal through `bench-report --text`.
    for name in ["\u{1b}]0;PWNED\u{7}", "&#27;]0;PWNED&#7;"] {
        let evil = xml.replacen("name=\"NAME\"", &format!("name=\"{name}\""), 1);
        let read = benchmaster::result::read::from_reader(evil.as_bytes(), "evil.xml");
        assert!(
            read.is_err(),
            "{name:?} is refused: {:?}",
            read.map(|r| r.test.name)
        );
    }
}

/// An HTTP server that keeps the header names of every request to `/landing` (answered
/// `200`), and answers `/hop` with a redirect to its own `/landing`.
struct HeaderRecorder {
    server: RawServer,
    /// The header names (lowercase) of each request to `/landing`.
    landed: Arc<std::sync::Mutex<Vec<Vec<String>>>>,
}

impl HeaderRecorder {
    fn start() -> HeaderRecorder {
        let landed = Arc::new(std::sync::Mutex::new(Vec::new()));
        let seen = landed.clone();
        let server = RawServer::start(move |request| {
            if request.line.starts_with("GET /hop ") {
                return response("302 Found", &[("location", "/landing")], "");
            }
            let names = request.headers.iter();
            let names = names.map(|(name, _)| name.to_ascii_lowercase()).collect();
            seen.lock().unwrap().push(names);
            response("200 OK", &[], "ok")
        });
        HeaderRecorder { server, landed }
    }

    fn landed(&self) -> Vec<Vec<String>> {
        self.landed.lock().unwrap().clone()
    }
}

/// A one-step test at `url` whose step sends credentials and one harmless header.
fn credentials_test(dir: &Path, base: &str, path: &str) -> PathBuf {
    write(
        dir,
        "credentials.toml",
        &format!(
            "[test]\nname = \"credentials\"\nurl = \"{base}\"\n\n[bench]\ncycles = [1]\n\
             duration = 0.5\ncycle_time = 0\ntimeout = 2\nsleep_time_min = 0.05\n\
             sleep_time_max = 0.05\n\n[[step]]\nname = \"hop\"\npath = \"{path}\"\n\
             headers = {{ Authorization = \"Bearer s3cret\", Cookie = \"sid=42\", \
             Proxy-Authorization = \"Basic cHJveHk=\", X-Trace = \"kept\" }}\n"
        ),
    )
}

/// A step's `Authorization`, `Cookie` and `Proxy-Authorization` never follow a redirect to
/// another origin (here another port: a real server redirecting to a second real one), as
/// browsers and reqwest do; they do follow a redirect within the origin; other headers always.
#[test]
fn credentials_never_follow_a_redirect_to_another_origin() {
    const CREDENTIALS: [&str; 3] = ["authorization", "cookie", "proxy-authorization"];
    let recorder = HeaderRecorder::start();
    let first = Server::start();
    let dir = tempdir();
    let away = format!("http://{}/landing", recorder.server.addr);
    let away: String = url::form_urlencoded::byte_serialize(away.as_bytes()).collect();
    let out = dir.path().join("away.xml");
    node_run(
        &credentials_test(dir.path(), &first.url(), &format!("/?redirect={away}")),
        &out,
    );
    let r = read_file(&out).unwrap();
    assert!(r.errors.is_empty(), "{:?}", r.errors);
    let landed = recorder.landed();
    assert!(landed.len() >= 2, "{landed:?}");
    assert_eq!(first.count(), landed.len() as u64);
    for names in &landed {
        assert!(names.contains(&"x-trace".to_string()), "{names:?}");
        for c in CREDENTIALS {
            assert!(
                !names.contains(&c.to_string()),
                "{c} crossed origins: {names:?}"
            );
        }
    }

    let before = landed.len();
    let out = dir.path().join("home.xml");
    let base = format!("http://{}", recorder.server.addr);
    node_run(&credentials_test(dir.path(), &base, "/hop"), &out);
    let landed = recorder.landed()[before..].to_vec();
    assert!(!landed.is_empty());
    for names in &landed {
        for c in CREDENTIALS.iter().chain(&["x-trace"]) {
            assert!(names.contains(&c.to_string()), "{c} lost: {names:?}");
        }
    }
}
