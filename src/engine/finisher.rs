//! The thread that ends runs: joins a run's workers, merges what they measured and encodes its
//! result, for every run of the process in turn. One long-lived thread rather than one from
//! the blocking pool per run: the 16 nodes of a mux used to end on 16 new threads at once,
//! each faulting in a fresh heap for its merge and its deflate state, which cost the nodes of a
//! 128-node run as much as the work itself. Writing the file, which waits on the disk, stays on
//! the blocking pool (see [`super::run`]).

use std::sync::mpsc;
use std::sync::{Mutex, OnceLock};

type Job = Box<dyn FnOnce() + Send>;

/// The finisher's queue; `None` when its thread could not be started.
static QUEUE: OnceLock<Option<Mutex<mpsc::Sender<Job>>>> = OnceLock::new();

fn queue() -> Option<&'static Mutex<mpsc::Sender<Job>>> {
    QUEUE
        .get_or_init(|| {
            let (tx, rx) = mpsc::channel::<Job>();
            std::thread::Builder::new()
                .name("bench-finisher".into())
                .spawn(move || {
                    while let Ok(job) = rx.recv() {
                        // One run's end failing (its caller hears of it) must not end the
                        // others'.
                        let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(job));
                    }
                })
                .ok()
                .map(|_| Mutex::new(tx))
        })
        .as_ref()
}

/// Runs `f` on the finisher thread, after the ends queued before it (on the blocking pool
/// when that thread could not be made); its value, or an error when it panicked.
pub async fn finish<R: Send + 'static>(
    f: impl FnOnce() -> R + Send + 'static,
) -> Result<R, String> {
    let Some(queue) = queue() else {
        return tokio::task::spawn_blocking(f)
            .await
            .map_err(|e| e.to_string());
    };
    let (tx, rx) = tokio::sync::oneshot::channel();
    let job: Job = Box::new(move || {
        let _ = tx.send(f());
    });
    let sent = queue
        .lock()
        .map_err(|_| "the finisher's queue is poisoned".to_string())?
        .send(job);
    if sent.is_err() {
        return Err("the finisher thread is gone".into());
    }
    rx.await
        .map_err(|_| "the run's end failed on the finisher thread".to_string())
}
