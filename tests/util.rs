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
        Server::start_with(None)
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
        Server::start_with(Some(tokio_rustls::TlsAcceptor::from(std::sync::Arc::new(
            config,
        ))))
    }

    fn start_with(tls: Option<tokio_rustls::TlsAcceptor>) -> Server {
        let (tx, rx) = std::sync::mpsc::channel();
        let is_tls = tls.is_some();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async {
                let (target, listener) =
                    Target::bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
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

/// A `bench-node` command.
pub fn bench_node() -> Command {
    Command::new(env!("CARGO_BIN_EXE_bench-node"))
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
