//! Debian's nginx (`nginx-light`) on free loopback ports for the HTTP/2 tests: its own config,
//! logs and temp files in a temp dir (never the system service), a self-signed certificate made
//! by rcgen, and an access log that names each request's protocol, connection and timing.
//! Killed on drop.

#![allow(dead_code)]

use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::sshd::free_port;

/// Where nginx lives on Debian.
pub const NGINX: &str = "/usr/sbin/nginx";

/// A running nginx.
pub struct Nginx {
    pub dir: tempfile::TempDir,
    /// HTTP/2 over TLS (ALPN `h2`, and `http/1.1` for clients that ask).
    pub tls_port: u16,
    /// HTTP/2 with prior knowledge, no TLS (h2c).
    pub h2c_port: u16,
    /// HTTP/1.1, no TLS.
    pub http1_port: u16,
    child: Child,
}

/// One line of the access log.
#[derive(Debug, Clone)]
pub struct Logged {
    /// `$server_protocol`: `HTTP/2.0`, `HTTP/1.1`.
    pub protocol: String,
    /// `$connection`: the connection's serial number.
    pub connection: u64,
    /// `$connection_requests`: requests made on the connection so far.
    pub connection_requests: u64,
    /// `$request_uri`.
    pub uri: String,
    pub status: u16,
    /// When the request started and ended, s (from `$msec - $request_time` and `$msec`).
    pub start: f64,
    pub end: f64,
}

impl Nginx {
    pub fn available() -> bool {
        std::path::Path::new(NGINX).exists()
    }

    /// Starts nginx; `/slow` is proxied to `upstream` (the built-in target's `host:port`) with
    /// `?delay_ms=300`, so that requests overlap when a client keeps several in flight.
    pub fn start(upstream: &str) -> Nginx {
        Nginx::start_with(upstream, "")
    }

    /// The same with `server` directives added (e.g. `keepalive_requests 20;`).
    pub fn start_with(upstream: &str, server: &str) -> Nginx {
        Nginx::start_full(upstream, "", server)
    }

    /// The same with `http` directives added too (e.g. a `log_format` of one's own).
    pub fn start_full(upstream: &str, http: &str, server: &str) -> Nginx {
        let dir = tempfile::Builder::new()
            .prefix("bm-nginx-")
            .tempdir()
            .unwrap();
        let d = dir.path();
        let cert = rcgen::generate_simple_self_signed(vec!["127.0.0.1".into(), "localhost".into()])
            .unwrap();
        std::fs::write(d.join("cert.pem"), cert.cert.pem()).unwrap();
        std::fs::write(d.join("key.pem"), cert.key_pair.serialize_pem()).unwrap();
        std::fs::create_dir(d.join("tmp")).unwrap();
        let (tls_port, h2c_port, http1_port) = (free_port(), free_port(), free_port());
        let p = d.display();
        let conf = format!(
            r#"daemon off;
master_process off;
pid {p}/nginx.pid;
error_log {p}/error.log warn;
events {{ worker_connections 1024; }}
http {{
    log_format bench '$server_protocol $connection $connection_requests $request_uri $status $msec $request_time';
    access_log {p}/access.log bench;
    {http}
    client_body_temp_path {p}/tmp/body;
    proxy_temp_path {p}/tmp/proxy;
    fastcgi_temp_path {p}/tmp/fastcgi;
    uwsgi_temp_path {p}/tmp/uwsgi;
    scgi_temp_path {p}/tmp/scgi;
    keepalive_requests 100000;
    http2_max_requests 100000;
    server {{
        listen 127.0.0.1:{tls_port} ssl http2;
        listen 127.0.0.1:{h2c_port} http2;
        listen 127.0.0.1:{http1_port};
        ssl_certificate {p}/cert.pem;
        ssl_certificate_key {p}/key.pem;
        {server}
        location / {{ return 200 "ok\n"; }}
        location /login {{
            add_header Set-Cookie "session=s$connection; Path=/";
            default_type application/json;
            return 200 '{{"token": "tok$connection_requests"}}';
        }}
        location /need {{
            if ($cookie_session = "") {{ return 401 "no session\n"; }}
            return 200 "hello $cookie_session $arg_t\n";
        }}
        location /slow {{
            proxy_pass http://{upstream}/?delay_ms=300;
        }}
    }}
}}
"#
        );
        let conf_path = d.join("nginx.conf");
        std::fs::write(&conf_path, conf).unwrap();
        let child = Command::new(NGINX)
            .arg("-p")
            .arg(d)
            .arg("-e")
            .arg(d.join("error.log"))
            .arg("-c")
            .arg(&conf_path)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("nginx starts");
        let nginx = Nginx {
            dir,
            tls_port,
            h2c_port,
            http1_port,
            child,
        };
        nginx.wait_listening();
        nginx
    }

    fn wait_listening(&self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        for port in [self.tls_port, self.h2c_port, self.http1_port] {
            while TcpStream::connect(("127.0.0.1", port)).is_err() {
                assert!(
                    Instant::now() < deadline,
                    "nginx does not listen on {port}: {}",
                    std::fs::read_to_string(self.dir.path().join("error.log")).unwrap_or_default()
                );
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }

    pub fn tls_url(&self) -> String {
        format!("https://127.0.0.1:{}", self.tls_port)
    }

    pub fn h2c_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.h2c_port)
    }

    pub fn http1_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.http1_port)
    }

    pub fn access_log_path(&self) -> PathBuf {
        self.dir.path().join("access.log")
    }

    /// The access log so far, parsed; it is emptied, so the next call sees only newer lines.
    pub fn take_log(&self) -> Vec<Logged> {
        let path = self.access_log_path();
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        std::fs::write(&path, "").unwrap();
        text.lines()
            .map(|line| {
                let f: Vec<&str> = line.split(' ').collect();
                assert_eq!(f.len(), 7, "access log line {line:?}");
                let end: f64 = f[5].parse().unwrap();
                let took: f64 = f[6].parse().unwrap();
                Logged {
                    protocol: f[0].into(),
                    connection: f[1].parse().unwrap(),
                    connection_requests: f[2].parse().unwrap(),
                    uri: f[3].into(),
                    status: f[4].parse().unwrap(),
                    start: end - took,
                    end,
                }
            })
            .collect()
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
