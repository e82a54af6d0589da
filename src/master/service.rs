//! `[service]`: the service under test, started before the bench (locally or on a host over
//! SSH), waited for until its readiness URL answers, and stopped after the run.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::Empty;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::sync::oneshot;

use super::deploy::local_bench_node;
use super::ssh::SshOptions;
use super::transport::{self, signal, Transport, TransportError};
use crate::test_def;

/// A service that could not be started.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    #[error("[service] host {0:?} is not a valid host")]
    Host(String),
    #[error("[service] {command}: {source}")]
    Start {
        command: String,
        #[source]
        source: TransportError,
    },
    #[error("[service] {command} exited before {url} answered (see {log})")]
    Exited {
        command: String,
        url: String,
        log: String,
    },
    #[error("[service] {url} did not answer within {secs}s (see {log})")]
    NotReady { url: String, secs: u64, log: String },
}

/// Prints the shell's pid, then becomes the command: the pid is what `stop` signals. Constant;
/// the command's words follow as arguments.
const WRAPPER: &str = r#"echo "$$"; exec "$@""#;

/// A running service.
pub struct Service {
    host: Arc<dyn Transport>,
    pid: Option<u32>,
    /// The command, for messages.
    command: String,
    /// Its log file, for messages.
    log: String,
    /// Keeps the service's channel open (its stdin) while it runs.
    _stdin: Box<dyn tokio::io::AsyncWrite + Send + Unpin>,
    /// Fires when the service's process ends.
    /// Told when the process ended; `None` once that was seen.
    exited: Option<oneshot::Receiver<()>>,
}

impl Service {
    /// Starts `spec`; its output goes to `<run dir>/service.log`. Then wait for it with
    /// [`Service::ready`].
    pub async fn start(
        spec: &test_def::Service,
        ssh: &Arc<SshOptions>,
        run_dir: &Path,
    ) -> Result<Service, ServiceError> {
        let name = spec.host.clone().unwrap_or_else(|| "local".into());
        let host = transport::for_name(&name, "[service] host", ssh)
            .ok_or_else(|| ServiceError::Host(name.clone()))?;
        let command = spec.command.join(" ");
        let mut words = vec!["sh".to_string(), "-c".into(), WRAPPER.into(), "sh".into()];
        words.extend(spec.command.iter().cloned());
        // `bench-node` on the master's machine is the one beside bench-master, even when it
        // is not on the PATH (a `cargo run` of the quickstart).
        let beside = local_bench_node();
        if host.is_local()
            && spec.command.first().is_some_and(|c| c == "bench-node")
            && beside.exists()
        {
            words[4] = beside.to_string_lossy().into_owned();
        }
        let process = host
            .spawn(words)
            .await
            .map_err(|source| ServiceError::Start {
                command: command.clone(),
                source,
            })?;
        let log_path = run_dir.join("service.log");
        let log = log_path.display().to_string();
        eprintln!("service: {command} on {name} (output in {log})");
        let mut out = BufReader::new(process.stdout);
        let mut first = String::new();
        let _ = tokio::time::timeout(Duration::from_secs(30), out.read_line(&mut first)).await;
        let pid = first.trim().parse().ok();
        let (tx, exited) = oneshot::channel();
        let exit = process.exit;
        let err = process.stderr;
        tokio::spawn(async move {
            let file = tokio::fs::File::create(&log_path).await.ok();
            if let Some(file) = file {
                let file = Arc::new(tokio::sync::Mutex::new(file));
                let copy = |mut from: Box<dyn tokio::io::AsyncRead + Send + Unpin>| {
                    let file = file.clone();
                    async move {
                        let mut buf = vec![0u8; 8192];
                        while let Ok(n) = tokio::io::AsyncReadExt::read(&mut from, &mut buf).await {
                            if n == 0 {
                                break;
                            }
                            let _ = file.lock().await.write_all(&buf[..n]).await;
                        }
                    }
                };
                tokio::join!(copy(Box::new(out)), copy(err));
            }
            exit.await;
            let _ = tx.send(());
        });
        Ok(Service {
            host,
            pid,
            command,
            log,
            _stdin: process.stdin,
            exited: Some(exited),
        })
    }

    /// Waits until the readiness URL of `spec` answers (at most its `ready_timeout`). On an
    /// error, the caller stops the service.
    pub async fn ready(&mut self, spec: &test_def::Service) -> Result<(), ServiceError> {
        let deadline = Instant::now() + spec.ready_timeout;
        loop {
            if answers(&spec.ready_url).await {
                eprintln!("service: {} answers", spec.ready_url);
                return Ok(());
            }
            let gone = match self.exited.as_mut().map(|rx| rx.try_recv()) {
                Some(Err(oneshot::error::TryRecvError::Empty)) => false,
                Some(_) | None => true,
            };
            if gone {
                self.exited = None;
                return Err(ServiceError::Exited {
                    command: self.command.clone(),
                    url: spec.ready_url.to_string(),
                    log: self.log.clone(),
                });
            }
            if Instant::now() >= deadline {
                return Err(ServiceError::NotReady {
                    url: spec.ready_url.to_string(),
                    secs: spec.ready_timeout.as_secs(),
                    log: self.log.clone(),
                });
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Stops the service: SIGTERM, then SIGKILL after 5 s.
    pub async fn stop(mut self) {
        let Some(pid) = self.pid else { return };
        // Already ended (it may have failed to start).
        let Some(exited) = self.exited.take() else {
            return;
        };
        let bounded = |s: &'static str| {
            let host = self.host.clone();
            async move {
                let _ =
                    tokio::time::timeout(Duration::from_secs(10), signal(host.as_ref(), pid, s))
                        .await;
            }
        };
        bounded("TERM").await;
        if tokio::time::timeout(Duration::from_secs(5), exited)
            .await
            .is_err()
        {
            bounded("KILL").await;
        }
    }
}

/// True when `url` answers: any HTTP response below 500 (https: the port accepts).
async fn answers(url: &url::Url) -> bool {
    let (Some(host), Some(port)) = (url.host_str(), url.port_or_known_default()) else {
        return false;
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let connect = tokio::net::TcpStream::connect((host, port));
    let Ok(Ok(stream)) = tokio::time::timeout(Duration::from_secs(2), connect).await else {
        return false;
    };
    if url.scheme() != "http" {
        return true;
    }
    let request = async {
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .ok()?;
        tokio::spawn(conn);
        let path = &url[url::Position::BeforePath..url::Position::AfterQuery];
        let req = hyper::Request::get(path)
            .header(hyper::header::HOST, format!("{host}:{port}"))
            .body(Empty::<Bytes>::new())
            .ok()?;
        let resp = sender.send_request(req).await.ok()?;
        Some(resp.status().as_u16() < 500)
    };
    matches!(
        tokio::time::timeout(Duration::from_secs(5), request).await,
        Ok(Some(true))
    )
}
