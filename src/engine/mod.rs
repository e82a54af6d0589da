//! The load engine: what `bench-node run` does. Virtual users ([`user`]) with their own HTTP
//! connection ([`client`]: HTTP/1.1 framed by our own codec, `h1`, HTTP/2 by `h2`; answers
//! decoded by [`decode`]) run on worker threads ([`worker`]), or a program ([`generator`])
//! makes the load — [`source`] is either; the controller ([`run`]) walks the cycles and
//! assembles the result; [`record`] measures, [`tally`] second by second; [`data`] hands out
//! the data files' rows; [`resources`] fetches a page's stylesheets, scripts and images
//! through a per-user cache; [`target`] is the built-in test server. Progress lines for the master
//! are [`crate::protocol::progress`].

mod cache;
pub mod client;
pub mod data;
pub mod decode;
mod finisher;
pub mod generator;
mod h1;
mod h2;
pub mod record;
pub mod resources;
pub mod run;
pub mod source;
pub mod tally;
pub mod target;
pub mod user;
mod websocket;
pub mod worker;

use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;

pub use run::{run, NodeLine, ProgressMode, Relay, RunConfig, RunEnd};

/// Live counters of one worker, read once a second for progress.
#[derive(Debug, Default)]
pub struct Counters {
    /// Users running now.
    pub users: AtomicU32,
    /// Requests completed since the run started.
    pub requests: AtomicU64,
    /// Requests with a status outside the accepted codes.
    pub failures: AtomicU64,
    /// Requests with no response.
    pub errors: AtomicU64,
    /// Per step, the HTTP versions its `http = "auto"` answers came in: bit 0 HTTP/1.1, bit 1
    /// HTTP/2. A std mutex: taken only by `auto` steps, on the worker's own thread.
    pub versions: std::sync::Mutex<Vec<u8>>,
}

impl Counters {
    /// Notes that step `index` (an `http = "auto"` one) got an answer in `version`.
    pub fn negotiated(&self, index: usize, version: hyper::Version) {
        let bit = if version == hyper::Version::HTTP_2 {
            2
        } else {
            1
        };
        let mut versions = self.versions.lock().unwrap();
        if versions.len() <= index {
            versions.resize(index + 1, 0);
        }
        versions[index] |= bit;
    }

    /// Counts a user as running until the returned guard drops, also when its task is dropped
    /// mid-request (an abort).
    pub fn user_running(self: &Arc<Self>) -> RunningUser {
        self.users.fetch_add(1, Ordering::Relaxed);
        RunningUser(self.clone())
    }
}

/// A user counted in [`Counters::users`] while this lives.
pub struct RunningUser(Arc<Counters>);

impl Drop for RunningUser {
    fn drop(&mut self) {
        self.0.users.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Why a run could not start or its result could not be kept.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("cannot resolve the target {url}: {message}")]
    Resolve { url: String, message: String },
    #[error("{file}: line {line}: {message}")]
    Data {
        file: String,
        line: u64,
        message: String,
    },
    #[error("cannot run the generator: {0}")]
    Generator(String),
    #[error("cannot start worker threads")]
    Spawn(#[source] std::io::Error),
    // The cause is the source, not in the message too: `{:#}` would print it twice.
    #[error("cannot write the result {}", path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}
