//! Shared test fixtures: temp dirs, a real HTTP server on port 0, running the binaries.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use benchmaster::engine::target::Target;

/// A real HTTP server (the built-in target) on 127.0.0.1 port 0, on its own thread; it counts
/// the requests it receives.
pub struct Server {
    pub target: Target,
    tls: bool,
    _thread: std::thread::JoinHandle<()>,
}

impl Server {
    pub fn start() -> Server {
        Server::start_with(None, None)
    }

    /// One that closes keep-alive connections idle for longer than `idle`.
    pub fn start_closing_idle(idle: std::time::Duration) -> Server {
        Server::start_with(None, Some(idle))
    }

    /// The same over HTTPS, with a freshly generated self-signed certificate for 127.0.0.1.
    pub fn start_tls() -> Server {
        let cert = rcgen::generate_simple_self_signed(vec!["127.0.0.1".into(), "localhost".into()])
            .unwrap();
        let key =
            rustls::pki_types::PrivateKeyDer::try_from(cert.key_pair.serialize_der()).unwrap();
        let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(vec![cert.cert.der().clone()], key)
            .unwrap();
        let tls = tokio_rustls::TlsAcceptor::from(std::sync::Arc::new(config));
        Server::start_with(Some(tls), None)
    }

    fn start_with(
        tls: Option<tokio_rustls::TlsAcceptor>,
        idle_timeout: Option<std::time::Duration>,
    ) -> Server {
        let (tx, rx) = std::sync::mpsc::channel();
        let is_tls = tls.is_some();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async {
                let (mut target, listener) =
                    Target::bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
                target.idle_timeout = idle_timeout;
                tx.send(target.clone()).unwrap();
                target.serve(listener, tls, std::future::pending()).await;
            });
        });
        Server {
            tls: is_tls,
            target: rx.recv().unwrap(),
            _thread: thread,
        }
    }

    pub fn url(&self) -> String {
        let scheme = if self.tls { "https" } else { "http" };
        format!("{scheme}://{}", self.target.addr)
    }

    pub fn count(&self) -> u64 {
        self.target.count()
    }

    /// Connections accepted so far.
    pub fn connections(&self) -> u64 {
        self.target.connection_count()
    }
}

/// A fresh temporary directory, removed on drop.
pub fn tempdir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("bm-test-")
        .tempdir()
        .unwrap()
}

/// Writes `text` to `dir/name` and returns the path.
pub fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

/// Writes an executable script `text` to `dir/name` and returns the path.
pub fn write_script(dir: &Path, name: &str, text: &str) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let path = write(dir, name, text);
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path
}

/// A `bench-node` command.
pub fn bench_node() -> Command {
    Command::new(env!("CARGO_BIN_EXE_bench-node"))
}

/// Runs `bench-report -o DIR RESULT` (which must succeed) and returns the HTML report and
/// `summary.json`.
pub fn report(result: &Path, dir: &Path) -> (String, serde_json::Value) {
    let o = run(Command::new(env!("CARGO_BIN_EXE_bench-report"))
        .arg("-o")
        .arg(dir)
        .arg(result));
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let html = std::fs::read_to_string(dir.join("index.html")).unwrap();
    let summary = std::fs::read_to_string(dir.join("summary.json")).unwrap();
    (html, serde_json::from_str(&summary).unwrap())
}

/// Runs a command, returning its output (stdout, stderr, status).
pub fn run(cmd: &mut Command) -> Output {
    cmd.output().expect("the command starts")
}

/// A port on 127.0.0.1 where nothing listens.
pub fn closed_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

/// The built-in target as its own process (`bench-node target --listen 127.0.0.1:0`), for tests
/// that stop it or look at its sockets; killed on drop.
pub struct TargetProcess {
    pub child: std::process::Child,
    pub addr: std::net::SocketAddr,
}

impl TargetProcess {
    pub fn start() -> TargetProcess {
        use std::io::BufRead;
        let mut child = bench_node()
            .args(["target", "--listen", "127.0.0.1:0"])
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("bench-node target starts");
        // "bench-node target listening on http://ADDR"
        let mut line = String::new();
        std::io::BufReader::new(child.stderr.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let addr = line
            .trim()
            .rsplit("http://")
            .next()
            .and_then(|a| a.parse().ok())
            .unwrap_or_else(|| panic!("unexpected first line from bench-node target: {line:?}"));
        TargetProcess { child, addr }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// SIGKILLs the server and reaps it.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for TargetProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Peak resident memory (VmHWM) of a running process, in KiB; `None` once it has exited.
pub fn peak_rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// Socket inodes of a process's open descriptors (`socket:[N]` links in /proc/PID/fd).
pub fn socket_inodes(pid: u32) -> std::collections::HashSet<u64> {
    let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return Default::default();
    };
    fds.filter_map(|fd| std::fs::read_link(fd.ok()?.path()).ok())
        .filter_map(|link| {
            let link = link.to_string_lossy().into_owned();
            link.strip_prefix("socket:[")?
                .strip_suffix(']')?
                .parse()
                .ok()
        })
        .collect()
}

/// TCP sockets in LISTEN state (IPv4 and IPv6) among `inodes`, as seen in the network
/// namespace of `pid`: their local addresses, as /proc/net/tcp* writes them (hex).
pub fn listening_sockets(pid: u32, inodes: &std::collections::HashSet<u64>) -> Vec<String> {
    let mut found = Vec::new();
    for table in ["tcp", "tcp6"] {
        let Ok(text) = std::fs::read_to_string(format!("/proc/{pid}/net/{table}")) else {
            continue;
        };
        for line in text.lines().skip(1) {
            let f: Vec<&str> = line.split_whitespace().collect();
            // sl local_address rem_address st tx:rx tr:when retrnsmt uid timeout inode
            if f.len() > 9 && f[3] == "0A" && f[9].parse().is_ok_and(|i| inodes.contains(&i)) {
                found.push(format!("{table} {}", f[1]));
            }
        }
    }
    found
}

/// A request as [`RawServer`] read it: the request line and the headers, as sent.
pub struct RawRequest {
    /// `GET /path?query HTTP/1.1`, without its line end.
    pub line: String,
    /// Header names and values, in order, names as sent.
    pub headers: Vec<(String, String)>,
}

impl RawRequest {
    /// The request target (`/path?query`).
    pub fn target(&self) -> &str {
        self.line.split(' ').nth(1).unwrap_or("/")
    }
}

/// A keep-alive HTTP/1.1 server on 127.0.0.1:0 for answers no real server gives (payloads in
/// headers, a recorder of what arrived): each request without a body is answered with the
/// bytes `answer` returns, a whole response.
pub struct RawServer {
    pub addr: std::net::SocketAddr,
}

impl RawServer {
    pub fn start(answer: impl Fn(&RawRequest) -> Vec<u8> + Send + Sync + 'static) -> RawServer {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let answer = std::sync::Arc::new(answer);
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let answer = answer.clone();
                std::thread::spawn(move || RawServer::serve(stream, &*answer));
            }
        });
        RawServer { addr }
    }

    fn serve(stream: std::net::TcpStream, answer: &dyn Fn(&RawRequest) -> Vec<u8>) {
        use std::io::{BufRead, Write};
        let mut reader = std::io::BufReader::new(stream.try_clone().unwrap());
        let mut writer = stream;
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line).unwrap_or(0) == 0 {
                return;
            }
            let mut request = RawRequest {
                line: line.trim_end().to_string(),
                headers: Vec::new(),
            };
            loop {
                line.clear();
                match reader.read_line(&mut line) {
                    Ok(0) | Err(_) => return,
                    Ok(_) if line == "\r\n" => break,
                    Ok(_) => {
                        let (name, value) = line.split_once(':').unwrap_or((&line, ""));
                        request
                            .headers
                            .push((name.to_string(), value.trim().to_string()));
                    }
                }
            }
            if writer.write_all(&answer(&request)).is_err() {
                return;
            }
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

/// A whole HTTP/1.1 response: `status` (`200 OK`), extra header lines, then the body with its
/// length.
pub fn response(status: &str, headers: &[(&str, &str)], body: &str) -> Vec<u8> {
    response_bytes(status, headers, body.as_bytes())
}

/// The same with a body of any bytes (a compressed one).
pub fn response_bytes(status: &str, headers: &[(&str, &str)], body: &[u8]) -> Vec<u8> {
    let mut head = format!("HTTP/1.1 {status}\r\n");
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    let mut out = format!("{head}content-length: {}\r\n\r\n", body.len()).into_bytes();
    out.extend_from_slice(body);
    out
}

/// A real HTTP/1.1 server (hyper) on 127.0.0.1 port 0 that answers `200 ok` to everything and
/// logs every request it receives (path and query, headers, body), in order: the witness of
/// what the load (or an exporter) really sent.
pub struct LogServer {
    pub addr: std::net::SocketAddr,
    log: std::sync::Arc<std::sync::Mutex<Vec<Logged>>>,
    _thread: std::thread::JoinHandle<()>,
}

/// One request as [`LogServer`] received it.
#[derive(Debug, Clone)]
pub struct Logged {
    /// Path and query.
    pub target: String,
    pub headers: hyper::HeaderMap,
    pub body: Vec<u8>,
}

impl LogServer {
    pub fn start() -> LogServer {
        use std::sync::{Arc, Mutex};
        let log: Arc<Mutex<Vec<Logged>>> = Arc::default();
        let (tx, rx) = std::sync::mpsc::channel();
        let kept = log.clone();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
                tx.send(listener.local_addr().unwrap()).unwrap();
                loop {
                    let Ok((stream, _)) = listener.accept().await else {
                        continue;
                    };
                    let log = kept.clone();
                    tokio::spawn(async move {
                        let service = hyper::service::service_fn(
                            move |req: hyper::Request<hyper::body::Incoming>| {
                                let target = req
                                    .uri()
                                    .path_and_query()
                                    .map_or("/".to_string(), |p| p.to_string());
                                let log = log.clone();
                                async move {
                                    use http_body_util::BodyExt;
                                    let (head, body) = req.into_parts();
                                    let body = body.collect().await.map(|b| b.to_bytes().to_vec());
                                    log.lock().unwrap().push(Logged {
                                        target,
                                        headers: head.headers,
                                        body: body.unwrap_or_default(),
                                    });
                                    Ok::<_, std::convert::Infallible>(hyper::Response::new(
                                        http_body_util::Full::new(bytes::Bytes::from_static(b"ok")),
                                    ))
                                }
                            },
                        );
                        let io = hyper_util::rt::TokioIo::new(stream);
                        let _ = hyper::server::conn::http1::Builder::new()
                            .serve_connection(io, service)
                            .await;
                    });
                }
            });
        });
        LogServer {
            addr: rx.recv().unwrap(),
            log,
            _thread: thread,
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Every request's path and query so far, in the order received.
    pub fn requests(&self) -> Vec<String> {
        self.logged().into_iter().map(|l| l.target).collect()
    }

    /// Every request so far, whole, in the order received.
    pub fn logged(&self) -> Vec<Logged> {
        self.log.lock().unwrap().clone()
    }
}

/// Runs headless chromium with `args` and returns (stdout, stderr); retries once when it
/// crashes (it sometimes segfaults on start in containers).
pub fn chromium(args: &[&str]) -> (String, String) {
    let mut last = String::new();
    for _ in 0..2 {
        let profile = tempdir();
        let out = std::process::Command::new("chromium")
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--hide-scrollbars",
            ])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .args(args)
            .output()
            .unwrap_or_else(|e| {
                panic!(
                    "this test needs Debian's chromium (apt-get install -y chromium): cannot \
                     run `chromium`: {e}"
                )
            });
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        if out.status.success() {
            return (String::from_utf8_lossy(&out.stdout).into_owned(), stderr);
        }
        last = format!("{}\n{stderr}", out.status);
    }
    panic!("chromium failed twice: {last}");
}
