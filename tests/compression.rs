//! Compressed answers: `Accept-Encoding: gzip, br` sent by default and not with
//! `compression = false` (a step's own header wins), gzip from Debian's nginx over HTTP/1.1 and
//! HTTP/2 and br from a server on port 0 decoded before checks and captures, wire and decoded
//! bytes counted apart, and bodies that do not decode (corrupt, cut short, a bomb) reported as
//! `decode` errors of their request.

use std::io::Write;
use std::sync::{Arc, Mutex};

use benchmaster::result::read::read_file;
use benchmaster::result::{ErrorKind, NodeResult};

use crate::nginx::Nginx;
use crate::util::{bench_node, report, response_bytes, run, tempdir, write, RawServer, Server};

/// A text that compresses well, with a word only the decoded body shows.
fn page_text() -> String {
    format!(
        "{} token=decoded42 end",
        "lorem ipsum dolor sit amet ".repeat(60)
    )
}

fn test_toml(url: &str, bench: &str, steps: &str) -> String {
    format!(
        r#"
[test]
name = "compression"
url = "{url}"

[bench]
cycles = [1]
duration = 0.5
timeout = 5
{bench}
{steps}
"#
    )
}

/// Runs the test, which must succeed, and reads its result.
fn run_test(text: &str) -> NodeResult {
    run_kept(text).2
}

/// The same, keeping the result file in its directory.
fn run_kept(text: &str) -> (tempfile::TempDir, std::path::PathBuf, NodeResult) {
    let dir = tempdir();
    let test = write(dir.path(), "t.toml", text);
    let out = dir.path().join("r.xml");
    let o = run(bench_node().arg("run").arg(&test).arg("-o").arg(&out));
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let result = read_file(&out).unwrap();
    (dir, out, result)
}

/// Requests, failures and errors, wire and decoded bytes over the cycles' windows.
fn totals(r: &NodeResult) -> (u64, u64, u64, u64) {
    let mut t = (0, 0, 0, 0);
    for c in &r.cycles {
        t.0 += c.requests.total();
        t.1 += c.requests.failure + c.requests.error + c.pages.failure + c.pages.error;
        t.2 += c.requests.bytes;
        t.3 += c.requests.decoded_bytes;
    }
    t
}

/// A check and a capture that only the decoded body satisfies; the capture goes on in the
/// next request's query, where the server's log sees it.
const CHECKED_STEPS: &str = r#"
[[step]]
name = "page"
path = "/gz"
contains = "token=decoded42 end"
[[step.capture]]
name = "token"
regex = "token=([a-z0-9]+)"

[[step]]
name = "next"
path = "/?got={{ token }}"
"#;

#[test]
fn gzip_from_nginx_is_decoded_before_checks_over_http1_and_http2() {
    if !Nginx::available() {
        // .ci/run installs it: in CI a missing server is a failure, not a skip.
        assert!(std::env::var_os("CI").is_none(), "no nginx-light");
        eprintln!("skipped: no nginx-light");
        return;
    }
    let upstream = Server::start();
    let server = format!(
        r#"gzip on; gzip_min_length 1; gzip_types text/plain;
        location /gz {{ default_type text/plain; return 200 "{}"; }}"#,
        page_text()
    );
    let nginx = Nginx::start_with(&upstream.target.addr.to_string(), &server);
    for (url, http) in [(nginx.http1_url(), "1.1"), (nginx.h2c_url(), "2")] {
        let steps = CHECKED_STEPS.replace("[[step]]", &format!("[[step]]\nhttp = \"{http}\""));
        let (dir, path, r) = run_kept(&test_toml(&url, "", &steps));
        let (requests, bad, wire, decoded) = totals(&r);
        assert!(requests >= 2, "{url}: {requests} requests");
        assert_eq!(bad, 0, "{url}: {:?}", r.errors);
        assert!(
            wire * 5 < decoded,
            "{url}: {wire} bytes on the wire, {decoded} decoded"
        );
        // The report and its summary.json carry both counts.
        let (html, summary) = report(&path, dir.path());
        assert!(
            html.contains("<th>Decoded KiB</th>"),
            "no decoded bytes in the report"
        );
        let cycle = &summary["cycles"][0];
        assert_eq!(cycle["bytes"], wire, "{cycle}");
        assert_eq!(cycle["decoded_bytes"], decoded, "{cycle}");
        let log = nginx.take_log();
        assert!(
            log.iter().any(|l| l.uri == "/?got=decoded42"),
            "{url}: the capture did not reach the server: {log:?}"
        );
    }
}

/// Debian's Python, where python3-brotli installs (not whatever `python3` is first on PATH).
const PYTHON: &str = "/usr/bin/python3";

/// `python3 -c` with Debian's python3-brotli: `text` compressed as br.
fn brotli(text: &str) -> Vec<u8> {
    let mut child = std::process::Command::new(PYTHON)
        .args([
            "-c",
            "import brotli, sys; sys.stdout.buffer.write(brotli.compress(sys.stdin.buffer.read()))",
        ])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("python3 starts");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "this test needs python3-brotli (.ci/run installs it)"
    );
    out.stdout
}

fn has_python_brotli() -> bool {
    let ok = std::process::Command::new(PYTHON)
        .args(["-c", "import brotli"])
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        assert!(std::env::var_os("CI").is_none(), "no python3-brotli");
        eprintln!("skipped: no python3-brotli");
    }
    ok
}

/// Each request's target and Accept-Encoding (none: `None`), in order.
type AcceptLog = Vec<(String, Option<String>)>;

/// A server on port 0 answering `/gz` with br bytes whatever was asked (so the witness of the
/// request headers is the log, not the answer), anything else with `ok`; it logs each
/// request's path and Accept-Encoding.
fn br_server() -> (RawServer, Arc<Mutex<AcceptLog>>) {
    let br = brotli(&page_text());
    let log: Arc<Mutex<AcceptLog>> = Arc::default();
    let seen = log.clone();
    let server = RawServer::start(move |req| {
        let accept = req
            .headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case("accept-encoding"))
            .map(|(_, v)| v.clone());
        seen.lock()
            .unwrap()
            .push((req.target().to_string(), accept));
        if req.target() == "/gz" {
            response_bytes("200 OK", &[("content-encoding", "br")], &br)
        } else {
            response_bytes("200 OK", &[], b"ok")
        }
    });
    (server, log)
}

#[test]
fn br_is_decoded_before_checks_and_compression_false_sends_no_accept_encoding() {
    if !has_python_brotli() {
        return;
    }
    let (server, log) = br_server();
    let steps = format!(
        r#"{CHECKED_STEPS}
[[step]]
name = "plain"
path = "/plain"
compression = false

[[step]]
name = "own"
path = "/own"
compression = false
headers = {{ "Accept-Encoding" = "identity" }}
"#
    );
    let r = run_test(&test_toml(&server.url(), "", &steps));
    let (requests, bad, wire, decoded) = totals(&r);
    assert!(requests >= 4, "{requests} requests");
    assert_eq!(bad, 0, "{:?}", r.errors);
    assert!(
        wire * 5 < decoded,
        "{wire} bytes on the wire, {decoded} decoded"
    );
    let seen = log.lock().unwrap().clone();
    let accepts = |path: &str| -> Vec<Option<String>> {
        (seen.iter())
            .filter(|(p, _)| p.split('?').next() == Some(path))
            .map(|(_, a)| a.clone())
            .collect()
    };
    assert!(!accepts("/gz").is_empty(), "{seen:?}");
    for path in ["/gz", "/"] {
        let a = accepts(path);
        assert!(
            a.iter().all(|a| a.as_deref() == Some("gzip, br")),
            "{path}: {a:?}"
        );
    }
    let plain = accepts("/plain");
    assert!(
        !plain.is_empty() && plain.iter().all(Option::is_none),
        "{plain:?}"
    );
    let own = accepts("/own");
    assert!(
        !own.is_empty() && own.iter().all(|a| a.as_deref() == Some("identity")),
        "{own:?}"
    );

    // `[bench] compression = false` turns it off for every step; a br answer sent anyway is
    // still decoded.
    log.lock().unwrap().clear();
    let r = run_test(&test_toml(
        &server.url(),
        "compression = false",
        CHECKED_STEPS,
    ));
    assert_eq!(totals(&r).1, 0, "{:?}", r.errors);
    let seen = log.lock().unwrap().clone();
    assert!(
        !seen.is_empty() && seen.iter().all(|(_, a)| a.is_none()),
        "{seen:?}"
    );
}

#[test]
fn bodies_that_do_not_decode_are_decode_errors_of_their_request() {
    let text = page_text();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(text.as_bytes()).unwrap();
    let gz = gz.finish().unwrap();
    let mut corrupt = gz.clone();
    for b in &mut corrupt[12..40] {
        *b ^= 0x5a;
    }
    let cut = gz[..gz.len() / 2].to_vec();
    // 80 MiB of zeros, about 80 KiB on the wire: past the 64 MiB cap.
    let mut bomb = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    let zeros = vec![0u8; 1 << 20];
    for _ in 0..80 {
        bomb.write_all(&zeros).unwrap();
    }
    let bomb = bomb.finish().unwrap();
    let server = RawServer::start(move |req| {
        let body = match req.target() {
            "/corrupt" => &corrupt,
            "/cut" => &cut,
            "/bomb" => &bomb,
            _ => &gz,
        };
        response_bytes("200 OK", &[("content-encoding", "gzip")], body)
    });
    // One scenario per body: a test stops at its first error, the mix reaches them all.
    let scenarios = ["corrupt", "cut", "bomb"]
        .map(|s| format!("[[scenario]]\nname = \"{s}\"\n[[scenario.step]]\nname = \"get\"\npath = \"/{s}\"\n"))
        .join("\n");
    let r = run_test(&test_toml(&server.url(), "seed = 1", &scenarios));
    let groups: Vec<_> = r
        .errors
        .iter()
        .map(|g| (g.step.as_str(), g.kind, g.detail.as_str()))
        .collect();
    let decode = |step: &str, why: &str| {
        (groups.iter())
            .any(|(s, k, d)| s.starts_with(step) && *k == ErrorKind::Decode && d.contains(why))
    };
    assert!(
        decode("corrupt/", "not valid compressed data"),
        "{groups:?}"
    );
    assert!(
        decode("cut/", "ends before its compressed stream does"),
        "{groups:?}"
    );
    assert!(decode("bomb/", "decodes to more than 64 MiB"), "{groups:?}");
    assert!(
        groups.iter().all(|(_, k, _)| *k == ErrorKind::Decode),
        "{groups:?}"
    );
    // The same server's whole body decodes, and passes its check.
    let good = run_test(&test_toml(
        &server.url(),
        "",
        "[[step]]\nname = \"good\"\npath = \"/good\"\ncontains = \"token=decoded42\"\n",
    ));
    assert_eq!(totals(&good).1, 0, "{:?}", good.errors);
}

#[test]
fn check_names_the_steps_that_ask_for_no_compression() {
    let dir = tempdir();
    let steps = "[[step]]\nname = \"a\"\npath = \"/\"\n\n[[step]]\nname = \"b\"\npath = \"/\"\ncompression = false\n";
    let test = write(
        dir.path(),
        "t.toml",
        &test_toml("http://127.0.0.1:1", "", steps),
    );
    let o = run(bench_node().arg("check").arg(&test));
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let said = String::from_utf8_lossy(&o.stdout);
    assert!(said.contains("compress  not asked for by b\n"), "{said}");
    // Off in [bench], a step turns it on again.
    let on = steps.replace("compression = false", "compression = true");
    let test = write(
        dir.path(),
        "t.toml",
        &test_toml("http://127.0.0.1:1", "compression = false", &on),
    );
    let said =
        String::from_utf8_lossy(&run(bench_node().arg("check").arg(&test)).stdout).into_owned();
    assert!(said.contains("compress  not asked for by a\n"), "{said}");
    // Not a boolean: named with its place.
    let bad = steps.replace("compression = false", "compression = \"no\"");
    let test = write(
        dir.path(),
        "t.toml",
        &test_toml("http://127.0.0.1:1", "", &bad),
    );
    let o = run(bench_node().arg("check").arg(&test));
    assert_eq!(
        o.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("compression"), "{err}");
}
