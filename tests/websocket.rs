//! WebSocket steps against a server we did not write (Debian's `python3-websockets`, a small
//! script on 127.0.0.1 port 0) and against the built-in target's echo (the example).

use std::io::BufRead;
use std::path::Path;
use std::process::{Child, Command, Stdio};

use benchmaster::result::read::read_file;
use benchmaster::result::{ErrorKind, NodeResult};

use crate::util::{bench_node, run, tempdir, write, TargetProcess};

/// Debian's Python, which has `python3-websockets` (not a pyenv one on PATH).
const PYTHON: &str = "/usr/bin/python3";

/// `/echo` echoes; `/push` sends `noise` then `echo: <message>` for each message; `/close3`
/// echoes two messages and closes on the third. Every message received is logged, one line
/// each, to the file named by its argument.
const SERVER: &str = r#"
import asyncio, sys, websockets
log = open(sys.argv[1], "a", buffering=1)
async def handler(ws, path):
    n = 0
    async for message in ws:
        n += 1
        log.write(path + "\n")
        if path == "/close3" and n == 3:
            await ws.close(code=1000, reason="enough")
            return
        if path == "/push":
            await ws.send("noise")
            message = "echo: " + message
        await ws.send(message)
async def main():
    async with websockets.serve(handler, "127.0.0.1", 0) as server:
        print(server.sockets[0].getsockname()[1], flush=True)
        await asyncio.Future()
asyncio.run(main())
"#;

/// The Python server, killed on drop.
struct PyServer {
    child: Child,
    port: u16,
    log: std::path::PathBuf,
}

impl PyServer {
    fn available() -> bool {
        Command::new(PYTHON)
            .args(["-c", "import websockets"])
            .status()
            .is_ok_and(|s| s.success())
    }

    fn start(dir: &Path) -> PyServer {
        let script = write(dir, "server.py", SERVER);
        let log = dir.join("received.log");
        let mut child = Command::new(PYTHON)
            .arg(&script)
            .arg(&log)
            .stdout(Stdio::piped())
            .spawn()
            .expect("python3 starts");
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let port = line
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("port? {line:?}"));
        PyServer { child, port, log }
    }

    /// Messages the server received on `path`.
    fn received(&self, path: &str) -> u64 {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        text.lines().filter(|l| *l == path).count() as u64
    }
}

impl Drop for PyServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn test_toml(url: &str, users: u32, duration: f64, steps: &str) -> String {
    format!(
        r#"
[test]
name = "ws"
url = "{url}"

[bench]
cycles = [{users}]
duration = {duration}
startup_delay = 0.01
timeout = 2
{steps}
"#
    )
}

fn run_test(dir: &Path, text: &str, args: &[&str]) -> NodeResult {
    let test = write(dir, "t.toml", text);
    let out = dir.join("r.xml");
    let o = run(bench_node()
        .arg("run")
        .arg(&test)
        .arg("-o")
        .arg(&out)
        .args(args));
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    read_file(&out).unwrap()
}

#[test]
fn send_and_expect_record_latency_and_count_the_messages_received() {
    if !PyServer::available() {
        // .ci/run installs it: in CI a missing server is a failure, not a skip.
        assert!(std::env::var_os("CI").is_none(), "no python3-websockets");
        eprintln!("skipped: no python3-websockets");
        return;
    }
    let dir = tempdir();
    let server = PyServer::start(dir.path());
    let steps = r#"
[[step]]
name = "chat"
websocket = "/push"
send = "hi {{ user }} {{ iteration }}"
expect = "echo: hi"
regex = "^echo: hi [0-9]+ [0-9]+$"
"#;
    let url = format!("http://127.0.0.1:{}", server.port);
    let r = run_test(dir.path(), &test_toml(&url, 2, 1.0, steps), &[]);
    assert!(r.errors.is_empty(), "{:?}", r.errors);
    let c = &r.cycles[0];
    let chat = &c.steps[0];
    assert!(chat.success > 10, "{} exchanges", chat.success);
    // Every exchange's latency recorded; two messages received for each (noise, echo).
    assert_eq!(chat.latency.len(), chat.success);
    assert!(chat.latency.min() > 0);
    assert_eq!(chat.messages, 2 * chat.total(), "{chat:?}");
    // Each exchange is a request, and so is each user's one upgrade; the server received
    // one message per exchange.
    let pages: u64 = r
        .cycles
        .iter()
        .map(|c| c.pages.total() + c.outside.pages)
        .sum();
    let requests: u64 = r
        .cycles
        .iter()
        .map(|c| c.requests.total() + c.outside.requests)
        .sum();
    assert_eq!(requests, pages + 2);
    assert_eq!(server.received("/push"), pages);
    assert_eq!(r.steps[0].protocol, "WebSocket");
    assert_eq!(r.steps[0].method, "WS");
}

#[test]
fn a_socket_the_server_closed_is_an_error_of_its_own_kind() {
    if !PyServer::available() {
        // .ci/run installs it: in CI a missing server is a failure, not a skip.
        assert!(std::env::var_os("CI").is_none(), "no python3-websockets");
        eprintln!("skipped: no python3-websockets");
        return;
    }
    let dir = tempdir();
    let server = PyServer::start(dir.path());
    let steps =
        "[[step]]\nname = \"talk\"\nwebsocket = \"/close3\"\nsend = \"m\"\nexpect = \"m\"\n";
    let url = format!("ws://127.0.0.1:{}", server.port);
    let steps = steps.replace("\"/close3\"", &format!("\"{url}/close3\""));
    let base = format!("http://127.0.0.1:{}", server.port);
    let r = run_test(dir.path(), &test_toml(&base, 1, 1.0, &steps), &[]);
    let closed = r
        .errors
        .iter()
        .find(|g| g.kind == ErrorKind::Closed)
        .unwrap_or_else(|| panic!("no closed group: {:?}", r.errors));
    assert!(closed.detail.contains("closed"), "{}", closed.detail);
    assert!(closed.count >= 2, "{closed:?}");
    let all = r.cycles.iter().fold((0, 0), |(ok, err), c| {
        (ok + c.pages.success, err + c.pages.error)
    });
    // Two answered, then closed, then the next page opens a new socket.
    assert!(all.0 >= 2 * all.1 - 2 && all.0 <= 2 * all.1 + 2, "{all:?}");
    assert_eq!(r.errors.len(), 1, "{:?}", r.errors);
}

#[test]
fn the_websocket_example_checks_and_runs_against_the_builtin_target() {
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/websocket.toml");
    let o = run(bench_node().arg("check").arg(&example));
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let target = TargetProcess::start();
    let dir = tempdir();
    let out = dir.path().join("r.xml");
    let o = run(bench_node()
        .arg("run")
        .arg(&example)
        .args(["-u", &target.url(), "-c", "2", "-D", "1", "-o"])
        .arg(&out));
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let r = read_file(&out).unwrap();
    assert!(r.errors.is_empty(), "{:?}", r.errors);
    let c = &r.cycles[0];
    assert!(
        c.pages.success > 10 && c.pages.failure == 0,
        "{:?}",
        c.pages
    );
    let protocols: Vec<&str> = r.steps.iter().map(|s| s.protocol.as_str()).collect();
    assert_eq!(protocols, ["WebSocket", "WebSocket", "HTTP/1.1"]);
    assert_eq!(c.steps[0].messages, c.steps[0].total());
    // The report and summary.json say so.
    let (html, summary) = crate::util::report(&out, &dir.path().join("report"));
    assert_eq!(summary["steps"][0]["protocol"], "WebSocket");
    assert_eq!(summary["steps"][2]["protocol"], "HTTP/1.1");
    let messages = summary["steps"][0]["messages"].as_u64().unwrap();
    assert_eq!(messages, c.steps[0].messages);
    assert!(html.contains("<th>Messages</th>"));
    assert!(
        html.contains("WebSocket (") && html.contains(" messages)</td>"),
        "{html}"
    );
}
