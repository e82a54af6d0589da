//! Where a run's load comes from: virtual users on worker threads running the test's steps, or
//! the test's `[generator]` program. The run controller walks the same cycles with either and
//! gets one [`Recorder`] back.

use std::time::Instant;

use tokio::sync::{oneshot, watch};

use super::generator::{Generator, GeneratorJob};
use super::record::{Recorder, Window};
use super::tally::Tally;
use super::user::CyclePhase;
use super::worker::{CycleJob, Load, Worker};
use super::Counters;

/// The load makers of a run.
pub enum Source {
    /// HTTP users, shared out over the worker threads.
    Users(Vec<Worker>),
    /// One program per cycle.
    Program(Generator),
}

/// What a cycle hands its load makers.
pub struct CycleStart {
    /// When the run started (the origin of per-second counts).
    pub t0: Instant,
    pub window: Window,
    /// Users of the cycle on this node.
    pub users: u32,
    pub phase: watch::Receiver<CyclePhase>,
}

impl Source {
    /// The live counters, one per worker (or the program's), for progress.
    pub fn counters(&self) -> Vec<&Counters> {
        match self {
            Source::Users(workers) => workers.iter().map(|w| &*w.counters).collect(),
            Source::Program(g) => vec![&*g.counters],
        }
    }

    /// Asks for the tallies of the seconds before `upto`, one answer per worker (or the
    /// program's at once).
    pub fn tallies(&self, upto: u32) -> Vec<oneshot::Receiver<Vec<Tally>>> {
        match self {
            Source::Users(workers) => workers.iter().map(|w| w.tallies(upto)).collect(),
            Source::Program(g) => {
                let (tx, rx) = oneshot::channel();
                let _ = tx.send(g.take_tallies(upto));
                vec![rx]
            }
        }
    }

    /// Starts a cycle; `share(w, n)` is worker `w` of `n`'s share of the users. Each receiver
    /// completes when that part of the load has ended.
    pub fn start(
        &mut self,
        cycle: CycleStart,
        share: impl Fn(u32, u32) -> Load,
    ) -> Vec<oneshot::Receiver<()>> {
        let mut done = Vec::new();
        match self {
            Source::Users(workers) => {
                let n = workers.len() as u32;
                for (worker, w) in workers.iter().zip(0..) {
                    let (tx, rx) = oneshot::channel();
                    done.push(rx);
                    worker.start(CycleJob {
                        t0: cycle.t0,
                        window: cycle.window,
                        load: share(w, n),
                        phase: cycle.phase.clone(),
                        done: tx,
                    });
                }
            }
            Source::Program(g) => {
                let (tx, rx) = oneshot::channel();
                done.push(rx);
                g.start(GeneratorJob {
                    t0: cycle.t0,
                    window: cycle.window,
                    users: cycle.users,
                    phase: cycle.phase,
                    done: tx,
                });
            }
        }
        done
    }

    /// Ends the load makers and merges what they measured into one recorder.
    pub fn finish(self) -> Recorder {
        match self {
            Source::Users(workers) => workers
                .into_iter()
                .map(Worker::finish)
                .reduce(|mut all, r| {
                    all.merge(r);
                    all
                })
                .expect("at least one worker"),
            Source::Program(g) => g.finish(),
        }
    }
}
