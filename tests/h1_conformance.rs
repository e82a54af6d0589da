//! HTTP/1.1 conformance of bench-node's client (issue 16): `bench-node run` against a raw TCP
//! server on port 0 that answers byte scripts (bodies framed by length, chunked with extensions
//! and trailers, read to close; answers split into many reads; interim answers; HEAD, 204, 304;
//! heads over the limits; a server closing its kept connections). Each case asserts what the
//! node recorded (requests by outcome, error kinds, body bytes) against what the server saw, so
//! that a codec that frames a body wrongly, reuses a connection it must not, or accepts a bad
//! head fails it.

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use benchmaster::result::read::read_file;
use benchmaster::result::NodeResult;

use crate::util::{bench_node, run, tempdir, write};

/// A request as the server read it.
struct Asked {
    method: String,
    target: String,
}

/// What the server does with one request.
struct Script {
    /// The answer's bytes, written in pieces of this size (each its own TCP segment: the
    /// server sets no delay), `pause` apart; `usize::MAX`: in one write.
    wire: Vec<u8>,
    piece: usize,
    pause: Duration,
    /// After the answer: close the connection this long after it (`None`: keep it open and
    /// read the next request).
    close_after: Option<Duration>,
    /// The answer ended the connection for the client (`Connection: close`, HTTP/1.0): the
    /// server keeps the socket open, and a request arriving on it anyway is counted as a
    /// protocol violation of the client's.
    final_answer: bool,
}

impl Script {
    /// `wire` in one write, the connection kept.
    fn keep(wire: impl Into<Vec<u8>>) -> Script {
        Script {
            wire: wire.into(),
            piece: usize::MAX,
            pause: Duration::ZERO,
            close_after: None,
            final_answer: false,
        }
    }

    /// `wire`, then the server closes at once.
    fn close(wire: impl Into<Vec<u8>>) -> Script {
        Script {
            close_after: Some(Duration::ZERO),
            ..Script::keep(wire)
        }
    }
}

/// What the server saw.
#[derive(Default)]
struct Seen {
    connections: AtomicU64,
    requests: AtomicU64,
    /// Requests that came on a connection whose last answer ended it.
    violations: AtomicU64,
}

/// The scripted server: every request read (head only: the tests send no bodies) is answered
/// by `script`.
struct ScriptServer {
    addr: SocketAddr,
    seen: Arc<Seen>,
}

impl ScriptServer {
    fn start(script: impl Fn(&Asked) -> Script + Send + Sync + 'static) -> ScriptServer {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let seen = Arc::new(Seen::default());
        let script = Arc::new(script);
        let counts = seen.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                counts.connections.fetch_add(1, Ordering::Relaxed);
                let (script, counts) = (script.clone(), counts.clone());
                std::thread::spawn(move || serve(stream, &*script, &counts));
            }
        });
        ScriptServer { addr, seen }
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn connections(&self) -> u64 {
        self.seen.connections.load(Ordering::Relaxed)
    }

    fn requests(&self) -> u64 {
        self.seen.requests.load(Ordering::Relaxed)
    }

    fn violations(&self) -> u64 {
        self.seen.violations.load(Ordering::Relaxed)
    }
}

fn serve(stream: TcpStream, script: &dyn Fn(&Asked) -> Script, seen: &Seen) {
    let _ = stream.set_nodelay(true);
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut writer = stream;
    let mut ended = false;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        loop {
            let mut header = String::new();
            match reader.read_line(&mut header) {
                Ok(0) | Err(_) => return,
                Ok(_) if header == "\r\n" => break,
                Ok(_) => {}
            }
        }
        seen.requests.fetch_add(1, Ordering::Relaxed);
        if ended {
            seen.violations.fetch_add(1, Ordering::Relaxed);
        }
        let mut words = line.split_whitespace();
        let asked = Asked {
            method: words.next().unwrap_or_default().to_string(),
            target: words.next().unwrap_or_default().to_string(),
        };
        let s = script(&asked);
        for piece in s.wire.chunks(s.piece.min(s.wire.len().max(1))) {
            if writer.write_all(piece).is_err() {
                return;
            }
            if !s.pause.is_zero() {
                std::thread::sleep(s.pause);
            }
        }
        if let Some(after) = s.close_after {
            std::thread::sleep(after);
            let _ = writer.shutdown(std::net::Shutdown::Both);
            return;
        }
        ended |= s.final_answer;
    }
}

/// Runs a one-user test of `secs` seconds against `url` (one step of path `/` unless `step`,
/// added to it, names its own; `bench` adding to `[bench]`), which must end well, and reads
/// its result.
fn bench(url: &str, secs: f64, bench: &str, step: &str) -> NodeResult {
    let dir = tempdir();
    let path = if step.starts_with("path") {
        ""
    } else {
        "path = \"/\""
    };
    let text = format!(
        r#"[test]
name = "h1"
url = "{url}"

[bench]
cycles = [1]
duration = {secs}
startup_delay = 0
timeout = 2
{bench}

[[step]]
name = "s"
{path}
{step}
"#
    );
    let test = write(dir.path(), "t.toml", &text);
    let out = dir.path().join("r.xml");
    let o = run(bench_node()
        .arg("run")
        .arg(&test)
        .arg("-o")
        .arg(&out)
        .args(["--progress", "none"]));
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    read_file(&out).unwrap()
}

/// What a run recorded, over its cycles.
#[derive(Debug)]
struct Recorded {
    success: u64,
    failure: u64,
    error: u64,
    /// Body bytes over the wire and decoded, in the measured window.
    bytes: u64,
    decoded: u64,
    /// Requests completed in and outside the window: what the server must have answered.
    all: u64,
    /// Error groups: kind and count.
    kinds: Vec<(String, u64)>,
}

fn recorded(r: &NodeResult) -> Recorded {
    let mut t = Recorded {
        success: 0,
        failure: 0,
        error: 0,
        bytes: 0,
        decoded: 0,
        all: 0,
        kinds: r
            .errors
            .iter()
            .map(|g| (g.kind.to_string(), g.count))
            .collect(),
    };
    for c in &r.cycles {
        t.success += c.requests.success;
        t.failure += c.requests.failure;
        t.error += c.requests.error;
        t.bytes += c.requests.bytes;
        t.decoded += c.requests.decoded_bytes;
        t.all += c.requests.total() + c.outside.requests;
    }
    t
}

/// Every request succeeded with a `body_len`-byte body, and the node counted what the server
/// answered.
fn all_succeeded(t: &Recorded, server: &ScriptServer, body_len: u64) {
    assert!(t.success >= 3, "{t:?}");
    assert_eq!((t.failure, t.error), (0, 0), "{t:?}");
    assert_eq!(t.bytes, t.success * body_len, "{t:?}");
    assert_eq!(t.all, server.requests(), "node and server disagree: {t:?}");
    assert_eq!(server.violations(), 0, "a request on an ended connection");
}

/// Every request erred, all as `kind`; the server answered them all.
fn all_erred(t: &Recorded, server: &ScriptServer, kind: &str) {
    assert!(t.error >= 2, "{t:?}");
    assert_eq!((t.success, t.failure), (0, 0), "{t:?}");
    let total: u64 = t.kinds.iter().map(|(_, n)| n).sum();
    assert!(
        t.kinds.iter().all(|(k, _)| k == kind) && total >= t.error,
        "{t:?}"
    );
    assert_eq!(t.all, server.requests(), "node and server disagree: {t:?}");
}

const CHUNKED: &[u8] = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n\
    5;name=value\r\nhello\r\n6 ; x=\"y\"\r\n world\r\n0\r\nX-Trailer: 1\r\nX-Other: 2\r\n\r\n";

#[test]
fn content_length_bodies_on_one_kept_connection() {
    let server = ScriptServer::start(|_| {
        Script::keep(&b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello"[..])
    });
    let t = recorded(&bench(&server.url(), 1.0, "", r#"contains = "hello""#));
    all_succeeded(&t, &server, 5);
    assert_eq!(server.connections(), 1);
}

#[test]
fn chunked_bodies_with_extensions_and_trailers() {
    let server = ScriptServer::start(|_| Script::keep(CHUNKED));
    let t = recorded(&bench(
        &server.url(),
        1.0,
        "",
        r#"contains = "hello world""#,
    ));
    all_succeeded(&t, &server, 11);
    assert_eq!(server.connections(), 1);
}

#[test]
fn chunked_answers_byte_by_byte_and_in_odd_pieces() {
    // Every other answer byte by byte, the others in 7-byte pieces: the head, chunk sizes,
    // their extensions, data, CR LFs and trailers all cut across reads.
    let n = Arc::new(AtomicU64::new(0));
    let server = ScriptServer::start(move |_| Script {
        piece: if n.fetch_add(1, Ordering::Relaxed) % 2 == 0 {
            1
        } else {
            7
        },
        pause: Duration::from_millis(1),
        ..Script::keep(CHUNKED)
    });
    let t = recorded(&bench(
        &server.url(),
        1.0,
        "",
        r#"contains = "hello world""#,
    ));
    all_succeeded(&t, &server, 11);
    assert_eq!(server.connections(), 1);
}

#[test]
fn content_length_answer_byte_by_byte() {
    let server = ScriptServer::start(|_| Script {
        piece: 1,
        pause: Duration::from_millis(1),
        ..Script::keep(&b"HTTP/1.1 200 OK\r\nContent-Length: 11\r\nX-A: b\r\n\r\nhello world"[..])
    });
    let t = recorded(&bench(
        &server.url(),
        1.0,
        "",
        r#"contains = "hello world""#,
    ));
    all_succeeded(&t, &server, 11);
    assert_eq!(server.connections(), 1);
}

#[test]
fn bodies_read_to_close_take_a_connection_each() {
    let server = ScriptServer::start(|_| Script::close(&b"HTTP/1.1 200 OK\r\n\r\nall of it"[..]));
    let t = recorded(&bench(&server.url(), 1.0, "", r#"contains = "all of it""#));
    all_succeeded(&t, &server, 9);
    assert_eq!(server.connections(), server.requests());
}

#[test]
fn connection_close_is_honoured_and_the_next_request_reconnects() {
    // The server leaves the socket open: only the client's codec ends it.
    let server = ScriptServer::start(|_| Script {
        final_answer: true,
        ..Script::keep(&b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok"[..])
    });
    let t = recorded(&bench(&server.url(), 1.0, "", ""));
    all_succeeded(&t, &server, 2);
    assert_eq!(server.connections(), server.requests());
}

#[test]
fn http10_answers_without_keep_alive_end_the_connection() {
    let server = ScriptServer::start(|_| Script {
        final_answer: true,
        ..Script::keep(&b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok"[..])
    });
    let t = recorded(&bench(&server.url(), 1.0, "", ""));
    all_succeeded(&t, &server, 2);
    assert_eq!(server.connections(), server.requests());
}

#[test]
fn http10_keep_alive_answers_keep_it() {
    let server = ScriptServer::start(|_| {
        Script::keep(
            &b"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 2\r\n\r\nok"[..],
        )
    });
    let t = recorded(&bench(&server.url(), 1.0, "", ""));
    all_succeeded(&t, &server, 2);
    assert_eq!(server.connections(), 1);
}

#[test]
fn interim_100_and_103_answers_are_skipped() {
    let server = ScriptServer::start(|_| {
        Script::keep(
            &b"HTTP/1.1 100 Continue\r\n\r\n\
            HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\n\
            HTTP/1.1 201 Created\r\nContent-Length: 5\r\n\r\nfinal"[..],
        )
    });
    let step = "expect_status = 201\ncontains = \"final\"";
    let t = recorded(&bench(&server.url(), 1.0, "", step));
    all_succeeded(&t, &server, 5);
    assert_eq!(server.connections(), 1);
}

#[test]
fn head_answers_have_no_body_whatever_their_content_length() {
    let server = ScriptServer::start(|asked| {
        assert_eq!(asked.method, "HEAD");
        Script::keep(&b"HTTP/1.1 200 OK\r\nContent-Length: 50\r\n\r\n"[..])
    });
    let t = recorded(&bench(&server.url(), 1.0, "", r#"method = "HEAD""#));
    all_succeeded(&t, &server, 0);
    assert_eq!(server.connections(), 1);
}

#[test]
fn answers_204_and_304_have_no_body() {
    let server = ScriptServer::start(|asked| {
        Script::keep(match asked.target.as_str() {
            "/204" => &b"HTTP/1.1 204 No Content\r\n\r\n"[..],
            _ => &b"HTTP/1.1 304 Not Modified\r\nContent-Length: 7\r\nETag: \"a\"\r\n\r\n"[..],
        })
    });
    let steps = r#"path = "/204"
expect_status = 204

[[step]]
name = "t"
path = "/304"
expect_status = 304"#;
    let r = bench(&server.url(), 1.0, "", steps);
    let t = recorded(&r);
    all_succeeded(&t, &server, 0);
    assert_eq!(server.connections(), 1);
    let c = &r.cycles[0];
    assert!(c.steps[0].success > 0 && c.steps[1].success > 0, "{t:?}");
}

#[test]
fn a_head_over_the_size_limit_is_a_protocol_error() {
    // 600 KB of one header: over our 64 KiB and hyper's 400 KB alike.
    let server = ScriptServer::start(|_| {
        let mut wire = b"HTTP/1.1 200 OK\r\nX-Long: ".to_vec();
        wire.resize(600 << 10, b'a');
        wire.extend_from_slice(b"\r\nContent-Length: 2\r\n\r\nok");
        Script::close(wire)
    });
    let t = recorded(&bench(&server.url(), 1.0, "sleep_time = 0.05", ""));
    all_erred(&t, &server, "protocol");
}

#[test]
fn too_many_headers_are_a_protocol_error() {
    let server = ScriptServer::start(|_| {
        let mut wire = b"HTTP/1.1 200 OK\r\n".to_vec();
        for i in 0..150 {
            wire.extend_from_slice(format!("X-{i}: v\r\n").as_bytes());
        }
        wire.extend_from_slice(b"Content-Length: 2\r\n\r\nok");
        Script::keep(wire)
    });
    let t = recorded(&bench(&server.url(), 1.0, "sleep_time = 0.05", ""));
    all_erred(&t, &server, "protocol");
    assert_eq!(
        server.connections(),
        server.requests(),
        "a bad head ends it"
    );
}

#[test]
fn a_malformed_status_line_is_a_protocol_error() {
    let server = ScriptServer::start(|_| {
        Script::keep(&b"HTTP/1.1 2x0 OK\r\nContent-Length: 2\r\n\r\nok"[..])
    });
    let t = recorded(&bench(&server.url(), 1.0, "sleep_time = 0.05", ""));
    all_erred(&t, &server, "protocol");
    assert_eq!(
        server.connections(),
        server.requests(),
        "a bad head ends it"
    );
}

#[test]
fn a_body_cut_short_is_a_reset() {
    // Answers alternate between a Content-Length body and a chunked one, each cut short.
    let n = Arc::new(AtomicU64::new(0));
    let server = ScriptServer::start(move |_| {
        Script::close(if n.fetch_add(1, Ordering::Relaxed) % 2 == 0 {
            &b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc"[..]
        } else {
            &b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n wo"[..]
        })
    });
    let t = recorded(&bench(&server.url(), 1.0, "sleep_time = 0.05", ""));
    all_erred(&t, &server, "reset");
}

#[test]
fn a_server_closing_idle_kept_connections_costs_no_error() {
    // Each answer keeps the connection, then the server closes it 20 ms later, while the user
    // pauses: the next request finds it closed and takes a new one.
    let server = ScriptServer::start(|_| Script {
        close_after: Some(Duration::from_millis(20)),
        ..Script::keep(&b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"[..])
    });
    let t = recorded(&bench(&server.url(), 1.5, "sleep_time = 0.1", ""));
    all_succeeded(&t, &server, 2);
    assert_eq!(server.connections(), server.requests());
}

#[test]
fn bytes_beyond_an_answer_make_the_connection_unusable() {
    // What follows the body was never asked for: read as the next answer, it would be
    // a malformed head (or a wrong answer to the next request).
    let server = ScriptServer::start(|_| {
        Script::keep(
            &b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokHTTP/1.1 500 Stale\r\n\r\n"[..],
        )
    });
    let t = recorded(&bench(&server.url(), 1.0, "sleep_time = 0.05", ""));
    all_succeeded(&t, &server, 2);
    assert_eq!(server.connections(), server.requests());
}

#[test]
fn a_kept_connection_closed_as_the_next_request_goes_is_retried_once() {
    // The server closes 2 ms after each answer, not reading what came meanwhile: the user,
    // with no pause, has sent its next request on it by then, and gets the close (a reset, no
    // byte of an answer) instead. That request is sent again, once, on a new connection.
    let server = ScriptServer::start(|_| Script {
        close_after: Some(Duration::from_millis(2)),
        ..Script::keep(&b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"[..])
    });
    let t = recorded(&bench(&server.url(), 1.0, "", ""));
    all_succeeded(&t, &server, 2);
    assert!(server.connections() >= server.requests(), "{t:?}");
}

#[test]
fn gzip_bodies_are_decoded_and_counted_both_ways() {
    use flate2::write::GzEncoder;
    let text = "gzip conformance ".repeat(40) + "token=decoded";
    let mut gz = GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(text.as_bytes()).unwrap();
    let gz = gz.finish().unwrap();
    let mut wire = format!(
        "HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: {}\r\n\r\n",
        gz.len()
    )
    .into_bytes();
    wire.extend_from_slice(&gz);
    let server = ScriptServer::start(move |_| Script {
        piece: 13,
        ..Script::keep(wire.clone())
    });
    let t = recorded(&bench(
        &server.url(),
        1.0,
        "",
        "compression = true\ncontains = \"token=decoded\"",
    ));
    all_succeeded(&t, &server, gz.len() as u64);
    assert_eq!(t.decoded, t.success * text.len() as u64, "{t:?}");
    assert_eq!(server.connections(), 1);
}
