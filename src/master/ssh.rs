//! A host reached over SSH through the system OpenSSH client (`openssh`, native mux), so that
//! `~/.ssh/config`, agents, `ProxyJump` and known_hosts all work.
//!
//! A stock sshd drops connections while more than 10 are authenticating (`MaxStartups`) and
//! caps the channels of one connection (`MaxSessions 10`). So one [`SshHost`] serves every
//! virtual node of a host: it opens connections one at a time, shares each among up to
//! [`SshOptions::channels_per_connection`] channels, opens another when they are all taken, and
//! retries a dropped connect with backoff.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use openssh::{KnownHosts, Session, SessionBuilder, Stdio};
use tokio::io::AsyncWriteExt;
use tokio::sync::{Mutex, OwnedSemaphorePermit, Semaphore};

use super::transport::{display_argv, BoxFuture, Output, Process, Transport, TransportError};
use crate::nodes::SshTarget;

/// Default bound of [`SshOptions::connects`], below sshd's default `MaxStartups 10`.
pub const MAX_CONNECTS: usize = 8;

/// Seconds an SSH connection without any channel stays up.
const IDLE_SECS: usize = 10;

/// How SSH connections are made.
#[derive(Debug, Clone)]
pub struct SshOptions {
    /// `-F` file for ssh; `None` = the user's default configuration.
    pub config_file: Option<PathBuf>,
    /// Give up a connection attempt after this long.
    pub connect_timeout: Duration,
    /// Accept and record unknown host keys (`StrictHostKeyChecking=accept-new`); otherwise an
    /// unknown key is refused.
    pub accept_new_host_keys: bool,
    /// Channels opened at once on one connection (below sshd's default `MaxSessions 10`).
    pub channels_per_connection: usize,
    /// Connection attempts before giving up on a dropped connect.
    pub connect_attempts: u32,
    /// Keepalive interval: a host cut off is noticed after about three of them.
    pub keepalive: Duration,
    /// Connects in progress at once, over all hosts: several aliases may lead to one sshd,
    /// which drops connections while more than 10 are authenticating (`MaxStartups`).
    pub connects: Arc<Semaphore>,
}

impl Default for SshOptions {
    fn default() -> Self {
        SshOptions {
            config_file: None,
            connect_timeout: Duration::from_secs(10),
            accept_new_host_keys: false,
            channels_per_connection: 8,
            connect_attempts: 6,
            keepalive: Duration::from_secs(2),
            connects: Arc::new(Semaphore::new(MAX_CONNECTS)),
        }
    }
}

/// One SSH connection and its free channel slots.
struct Connection {
    session: Arc<Session>,
    /// Channel slots of this connection (sshd's `MaxSessions`); a permit is held for as long
    /// as a channel is open.
    channels: Arc<Semaphore>,
}

/// A host reached over SSH; cheap to share between all the nodes on it.
pub struct SshHost {
    target: SshTarget,
    label: String,
    options: Arc<SshOptions>,
    /// Open connections. The lock is held while a new one is opened, so that connects to one
    /// host happen one at a time (sshd's `MaxStartups`).
    connections: Mutex<Vec<Connection>>,
}

impl SshHost {
    /// A host; nothing is connected until the first command.
    pub fn new(target: SshTarget, options: Arc<SshOptions>) -> SshHost {
        SshHost {
            label: target.to_string(),
            target,
            options,
            connections: Mutex::new(Vec::new()),
        }
    }

    /// The destination as written in the nodes file.
    pub fn target(&self) -> &SshTarget {
        &self.target
    }

    /// Makes sure a connection is up (reports the ssh error otherwise).
    pub async fn connect(&self) -> Result<(), TransportError> {
        self.channel().await.map(drop)
    }

    /// A session with a free channel slot, opening a new connection when every slot is taken.
    async fn channel(&self) -> Result<(Arc<Session>, OwnedSemaphorePermit), TransportError> {
        let mut connections = self.connections.lock().await;
        // A connection whose master went away (idle, or its host lost) removed its socket.
        connections.retain(|c| c.session.control_socket().exists());
        for conn in connections.iter() {
            if let Ok(permit) = conn.channels.clone().try_acquire_owned() {
                return Ok((conn.session.clone(), permit));
            }
        }
        let session = Arc::new(self.open().await?);
        let channels = Arc::new(Semaphore::new(self.options.channels_per_connection.max(1)));
        let permit = channels
            .clone()
            .try_acquire_owned()
            .expect("a new connection has free channels");
        connections.push(Connection {
            session: session.clone(),
            channels,
        });
        Ok((session, permit))
    }

    /// Opens one connection, retrying with backoff when sshd drops it.
    async fn open(&self) -> Result<Session, TransportError> {
        let o = &self.options;
        let mut builder = SessionBuilder::default();
        builder
            .known_hosts_check(if o.accept_new_host_keys {
                KnownHosts::Add
            } else {
                KnownHosts::Strict
            })
            .connect_timeout(o.connect_timeout)
            .server_alive_interval(o.keepalive)
            .control_directory(std::env::temp_dir())
            // A master left behind by a killed bench-master goes away on its own, soon after
            // its last channel (a node's) closed. A connection idle that long is opened again.
            .control_persist(openssh::ControlPersist::IdleFor(
                std::num::NonZeroUsize::new(IDLE_SECS).expect("non-zero"),
            ));
        if let Some(file) = &o.config_file {
            builder.config_file(file);
        }
        if let Some(port) = self.target.port {
            builder.port(port);
        }
        if let Some(user) = &self.target.user {
            builder.user(user.clone());
        }
        let mut delay = Duration::from_millis(200);
        let mut attempt = 1;
        loop {
            let permit = o.connects.acquire().await.expect("semaphore never closed");
            let connected = builder.connect_mux(&self.target.host).await;
            drop(permit);
            match connected {
                Ok(session) => return Ok(session),
                Err(err) => {
                    let message = error_chain(&err);
                    if attempt >= o.connect_attempts || !is_transient(&message) {
                        return Err(TransportError::Connect {
                            host: self.label.clone(),
                            message,
                        });
                    }
                }
            }
            // Jitter spreads the retries of several masters or aliases of one sshd.
            let jitter = Duration::from_millis(rand::random::<u64>() % 100);
            tokio::time::sleep(delay + jitter).await;
            delay = (delay * 2).min(Duration::from_secs(3));
            attempt += 1;
        }
    }

    fn exec_error(&self, argv: &[String], err: impl std::error::Error) -> TransportError {
        TransportError::Exec {
            host: self.label.clone(),
            command: display_argv(argv),
            message: error_chain(&err),
        }
    }

    /// Starts `argv` on a channel; when the connection turns out to be dead (its master ended
    /// between the check and the start), forgets it and tries once more on a fresh one.
    async fn start(
        &self,
        argv: &[String],
    ) -> Result<(openssh::Child<Arc<Session>>, OwnedSemaphorePermit), TransportError> {
        let mut retried = false;
        loop {
            let (session, permit) = self.channel().await?;
            match Self::command(session.clone(), argv).spawn().await {
                Ok(child) => return Ok((child, permit)),
                Err(_) if !retried && session.check().await.is_err() => {
                    self.connections
                        .lock()
                        .await
                        .retain(|c| !Arc::ptr_eq(&c.session, &session));
                    retried = true;
                }
                Err(e) => return Err(self.exec_error(argv, e)),
            }
        }
    }

    /// Builds the remote command: every word quoted by `openssh` for the remote shell.
    fn command(session: Arc<Session>, argv: &[String]) -> openssh::OwningCommand<Arc<Session>> {
        let mut cmd = Session::to_command(session, argv[0].clone());
        cmd.args(&argv[1..]);
        cmd.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        cmd
    }
}

/// The error and its sources on one line (the ssh message is in the sources).
fn error_chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(s) = source {
        let message = s.to_string();
        if !message.is_empty() && !text.contains(message.trim()) {
            text.push_str(": ");
            text.push_str(message.trim());
        }
        source = s.source();
    }
    text
}

/// True for connect failures worth retrying (a connection dropped by `MaxStartups`), false for
/// those that will not change (authentication, host key, unknown host, refused port).
fn is_transient(message: &str) -> bool {
    const FINAL: &[&str] = &[
        "Host key verification failed",
        "Permission denied",
        "Could not resolve hostname",
        "Connection refused",
        "No route to host",
        "REMOTE HOST IDENTIFICATION HAS CHANGED",
        "timed out",
    ];
    !FINAL.iter().any(|f| message.contains(f))
}

impl Transport for SshHost {
    fn label(&self) -> &str {
        &self.label
    }

    fn is_local(&self) -> bool {
        false
    }

    fn exec(
        &self,
        argv: Vec<String>,
        stdin: Vec<u8>,
    ) -> BoxFuture<'_, Result<Output, TransportError>> {
        Box::pin(async move {
            let (mut child, _permit) = self.start(&argv).await?;
            let mut input = child.stdin().take().expect("piped stdin");
            // Feed stdin while the output is read, so that neither side blocks the other.
            let feed = async move {
                let _ = input.write_all(&stdin).await;
                let _ = input.shutdown().await;
                drop(input);
            };
            let (_, out) = tokio::join!(feed, child.wait_with_output());
            match out {
                Ok(out) => Ok(Output {
                    code: out.status.code(),
                    stdout: out.stdout,
                    stderr: out.stderr,
                }),
                // The remote side ended without an exit status (killed, channel lost).
                Err(openssh::Error::RemoteProcessTerminated) => Ok(Output {
                    code: None,
                    stdout: Vec::new(),
                    stderr: Vec::new(),
                }),
                Err(e) => Err(self.exec_error(&argv, e)),
            }
        })
    }

    fn spawn(&self, argv: Vec<String>) -> BoxFuture<'_, Result<Process, TransportError>> {
        Box::pin(async move {
            let (mut child, permit) = self.start(&argv).await?;
            let stdin = child.stdin().take().expect("piped stdin");
            let stdout = child.stdout().take().expect("piped stdout");
            let stderr = child.stderr().take().expect("piped stderr");
            Ok(Process {
                stdin: Box::new(stdin),
                stdout: Box::new(stdout),
                stderr: Box::new(stderr),
                exit: Box::pin(async move {
                    let status = child.wait().await;
                    // The channel slot is free again once the process is gone.
                    drop(permit);
                    status.ok().and_then(|s| s.code())
                }),
                result: None,
            })
        })
    }
}
