//! How a running node is told to start and stop: signals always, and the master's words
//! ([`Command`]) on stdin with `--wait-start`, or over a channel from the mux that carries the
//! node in-process. Without `detach`, stdin (or the channel) closing means the master is gone,
//! and the node stops by itself: no orphaned load generator.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::{mpsc, watch};

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

/// Reads the master's commands from stdin into `tx` until stdin ends, is unreadable or gives a
/// line no master writes: then `tx` is dropped, which tells [`obey`] the master is gone.
async fn read_stdin(tx: mpsc::UnboundedSender<Command>) {
    let mut input = tokio::io::BufReader::new(tokio::io::stdin());
    let mut line = Vec::new();
    while let Ok(Line::Full) = read_line(&mut input, &mut line, MAX_LINE).await {
        if let Some(command) = Command::parse(&String::from_utf8_lossy(&line)) {
            if tx.send(command).is_err() {
                return;
            }
        }
    }
}

/// Carries out the master's commands as they come; their end (stdin's, or the mux dropping
/// the node's sender) means the master is gone, and stops the run unless it was detached.
async fn obey(
    mut commands: mpsc::UnboundedReceiver<Command>,
    start_tx: watch::Sender<Option<Instant>>,
    stop_tx: Arc<watch::Sender<Option<String>>>,
    detached: Arc<AtomicBool>,
) {
    while let Some(command) = commands.recv().await {
        match command {
            Command::Start(None) => {
                start_tx.send_replace(Some(Instant::now()));
            }
            // `start AT`: start at Unix time AT (ms), so that nodes reached one after the
            // other still start together. Said at once: the run sets its users' clocks to
            // that instant, so that a busy host's late wake-up delays none of them.
            Command::Start(at_ms) => {
                start_tx.send_replace(Some(Instant::now() + start_delay(at_ms)));
            }
            Command::Stop => {
                stop_tx.send_replace(Some("stopped by the master".into()));
            }
            Command::Detach => detached.store(true, Ordering::SeqCst),
        }
    }
    if !detached.load(Ordering::SeqCst) {
        stop_tx.send_replace(Some("the master went away".into()));
    }
}

/// The start gate and the stop signal of a run.
pub struct Control {
    /// The instant the run starts at, once known.
    start: watch::Receiver<Option<Instant>>,
    stop: watch::Receiver<Option<String>>,
}

impl Control {
    /// Listens to signals and, when `wait_start`, to stdin. Must run inside a tokio runtime.
    pub fn spawn(wait_start: bool) -> std::io::Result<Control> {
        if !wait_start {
            return Control::new(None);
        }
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(read_stdin(tx));
        Control::new(Some(rx))
    }

    /// Listens to signals and to `commands` (a node inside a mux: the mux passes on the
    /// master's words; the sender dropped is the master gone). Must run inside a tokio runtime.
    pub fn fed(commands: mpsc::UnboundedReceiver<Command>) -> std::io::Result<Control> {
        Control::new(Some(commands))
    }

    /// Signals, and the master's `commands` when it waits for them (without, the run starts
    /// at once).
    fn new(commands: Option<mpsc::UnboundedReceiver<Command>>) -> std::io::Result<Control> {
        let (start_tx, start) = watch::channel(commands.is_none().then(Instant::now));
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

        if let Some(commands) = commands {
            tokio::spawn(obey(commands, start_tx, stop_tx, detached));
        }
        Ok(Control { start, stop })
    }

    /// Completes when the instant the run starts at is known (it may be still to come), with
    /// it; at once without a master, and now when the master went away without a word.
    pub fn started(&self) -> impl std::future::Future<Output = Instant> {
        let mut rx = self.start.clone();
        async move {
            match rx.wait_for(Option::is_some).await {
                Ok(at) => (*at).unwrap_or_else(Instant::now),
                Err(_) => Instant::now(),
            }
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
