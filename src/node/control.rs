//! How a running node is told to start and stop: signals always, and with `--wait-start` the
//! master's words on stdin ([`Command`]). Without `detach`, stdin closing means the master is
//! gone, and the node stops by itself: no orphaned load generator.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::watch;

use crate::protocol::control::Command;
use crate::protocol::lines::{read_line, Line, MAX_LINE};
use crate::result::unix_ms;

/// Longest wait for a `start AT` time: beyond it the clocks of master and node disagree, and
/// the node starts then rather than wait on a wrong clock.
const MAX_START_WAIT: Duration = Duration::from_secs(2);

/// How long to wait for `start AT` (Unix ms): none when AT is past or was unreadable.
fn start_delay(at_ms: Option<u64>) -> Duration {
    let Some(at_ms) = at_ms else {
        return Duration::ZERO;
    };
    let now = Duration::from_millis(unix_ms(SystemTime::now()));
    Duration::from_millis(at_ms)
        .saturating_sub(now)
        .min(MAX_START_WAIT)
}

/// Hears the master's commands on stdin until it ends; the end of stdin (or an unreadable
/// one) means the master is gone, and stops the run unless it was detached.
async fn listen(
    start_tx: watch::Sender<bool>,
    stop_tx: Arc<watch::Sender<Option<String>>>,
    detached: Arc<AtomicBool>,
) {
    let mut input = tokio::io::BufReader::new(tokio::io::stdin());
    let mut line = Vec::new();
    loop {
        let heard = match read_line(&mut input, &mut line, MAX_LINE).await {
            Ok(Line::Full) => Command::parse(&String::from_utf8_lossy(&line)),
            // The end of stdin, a line no master writes, or an unreadable stdin: the master
            // is gone.
            Ok(Line::End | Line::TooLong) | Err(_) => {
                if !detached.load(Ordering::SeqCst) {
                    stop_tx.send_replace(Some("the master went away".into()));
                }
                return;
            }
        };
        match heard {
            Some(Command::Start(None)) => {
                start_tx.send_replace(true);
            }
            // `start AT`: start at Unix time AT (ms), so that nodes reached one after the
            // other still start together.
            Some(Command::Start(at_ms)) => {
                let wait = start_delay(at_ms);
                let tx = start_tx.clone();
                tokio::spawn(async move {
                    tokio::time::sleep(wait).await;
                    tx.send_replace(true);
                });
            }
            Some(Command::Stop) => {
                stop_tx.send_replace(Some("stopped by the master".into()));
            }
            Some(Command::Detach) => detached.store(true, Ordering::SeqCst),
            None => {}
        }
    }
}

/// The start gate and the stop signal of a run.
pub struct Control {
    start: watch::Receiver<bool>,
    stop: watch::Receiver<Option<String>>,
}

impl Control {
    /// Listens to signals and, when `wait_start`, to stdin. Must run inside a tokio runtime.
    pub fn spawn(wait_start: bool) -> std::io::Result<Control> {
        let (start_tx, start) = watch::channel(!wait_start);
        let (stop_tx, stop) = watch::channel(None::<String>);
        let stop_tx = Arc::new(stop_tx);
        let detached = Arc::new(AtomicBool::new(false));

        let mut int = signal(SignalKind::interrupt())?;
        let mut term = signal(SignalKind::terminate())?;
        let mut hup = signal(SignalKind::hangup())?;
        let (tx, d) = (stop_tx.clone(), detached.clone());
        tokio::spawn(async move {
            loop {
                let why = tokio::select! {
                    _ = int.recv() => "SIGINT",
                    _ = term.recv() => "SIGTERM",
                    // A hang-up ends an attached run only: a detached node outlives its session.
                    _ = hup.recv() => if d.load(Ordering::SeqCst) { continue } else { "SIGHUP" },
                };
                tx.send_replace(Some(why.to_string()));
            }
        });

        if wait_start {
            tokio::spawn(listen(start_tx, stop_tx, detached));
        }
        Ok(Control { start, stop })
    }

    /// Completes when the run may start.
    pub fn started(&self) -> impl std::future::Future<Output = ()> {
        let mut rx = self.start.clone();
        async move {
            let _ = rx.wait_for(|s| *s).await;
        }
    }

    /// Completes when the run must stop.
    pub fn stopped(&self) -> impl std::future::Future<Output = ()> {
        let mut rx = self.stop.clone();
        async move {
            let _ = rx.wait_for(|s| s.is_some()).await;
        }
    }

    /// Why the run was stopped, if it was.
    pub fn reason(&self) -> Option<String> {
        self.stop.borrow().clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn start_times_wait_until_then_but_never_long() {
        let now = unix_ms(SystemTime::now());
        let wait = start_delay(Some(now + 300));
        assert!(
            wait > Duration::from_millis(200) && wait <= Duration::from_millis(300),
            "{wait:?}"
        );
        assert_eq!(start_delay(Some(now - 1000)), Duration::ZERO);
        assert_eq!(start_delay(Some(now + 60_000)), MAX_START_WAIT);
        assert_eq!(start_delay(None), Duration::ZERO);
    }
}
