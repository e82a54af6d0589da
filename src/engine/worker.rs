//! Worker threads: each runs a current-thread tokio runtime holding a share of the users and its
//! own [`Recorder`], so the hot path takes no lock and wakes no other thread.

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rand::rngs::SmallRng;

use tokio::sync::{mpsc, oneshot, watch};

use super::client::{Client, Connector};
use super::data::Rows;
use super::record::{Recorder, Window};
use super::tally::Tally;
use super::user::{user_rng, CyclePhase, User};
use super::Counters;
use crate::test_def::TestPlan;

/// One cycle's share of the load for a worker.
pub struct CycleJob {
    /// When the run started (the origin of per-second counts).
    pub t0: Instant,
    pub window: Window,
    pub load: Load,
    pub phase: watch::Receiver<CyclePhase>,
    /// Told when every user of this job has ended.
    pub done: oneshot::Sender<()>,
}

/// What a worker runs during a cycle.
pub enum Load {
    /// Closed model: these user numbers, each starting at its time.
    Users(Vec<(u32, Instant)>),
    /// Open model: an execution due at `first`, then every `period`, while the cycle runs;
    /// at most `max_users` in flight, numbered `number_base + k * number_step`.
    Rate {
        first: Instant,
        period: Duration,
        max_users: u32,
        number_base: u32,
        number_step: u32,
    },
}

/// Handle on a worker thread.
pub struct Worker {
    /// Cycle jobs; closing it ends the worker.
    jobs: mpsc::UnboundedSender<CycleJob>,
    thread: JoinHandle<Recorder>,
    pub counters: Arc<Counters>,
    /// Asks for the tallies of the seconds before a second (see [`Worker::tallies`]).
    flush: mpsc::UnboundedSender<Flush>,
}

/// A request for a worker's tallies of the seconds before `upto`.
struct Flush {
    upto: u32,
    reply: oneshot::Sender<Vec<Tally>>,
}

/// Node-wide settings every worker shares.
#[derive(Clone)]
pub struct Shared {
    pub plan: Arc<TestPlan>,
    pub connector: Arc<Connector>,
    pub node: u32,
    pub nodes: u32,
    /// Per step, its URL when it has no template: resolved once, not per request.
    pub static_urls: Arc<[Option<url::Url>]>,
    /// The data files' rows, shared by every user of the node.
    pub rows: Arc<Rows>,
}

impl Worker {
    pub fn spawn(index: usize, shared: Shared) -> std::io::Result<Worker> {
        let (jobs, mut rx) = mpsc::unbounded_channel::<CycleJob>();
        let (flush, mut flushes) = mpsc::unbounded_channel::<Flush>();
        let counters = Arc::new(Counters::default());
        let c = counters.clone();
        // Built here, so that a node short of file descriptors (a runtime needs two) fails
        // before its load with the reason, not in a worker thread once users hold them all.
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let thread = std::thread::Builder::new()
            .name(format!("bench-worker-{index}"))
            .spawn(move || {
                let names = shared.plan.steps.iter().map(|s| s.name.clone()).collect();
                // Spawned before the start: the run's origin comes with the first job.
                let scenarios = shared.plan.scenarios.recorded().len();
                let recorder = Recorder::new(Instant::now(), names, scenarios);
                let recorder = Rc::new(RefCell::new(recorder));
                let local = tokio::task::LocalSet::new();
                // Answers the controller's once-a-second request between the users' turns.
                let r = recorder.clone();
                local.spawn_local(async move {
                    while let Some(f) = flushes.recv().await {
                        let _ = f.reply.send(r.borrow_mut().take_tallies(f.upto));
                    }
                });
                local.block_on(&runtime, async {
                    while let Some(job) = rx.recv().await {
                        recorder.borrow_mut().set_origin(job.t0);
                        run_job(&shared, &recorder, &c, job).await;
                    }
                });
                drop(local);
                Rc::try_unwrap(recorder)
                    .ok()
                    .expect("users have ended")
                    .into_inner()
            })?;
        Ok(Worker {
            jobs,
            thread,
            counters,
            flush,
        })
    }

    /// Asks for the worker's tallies of the seconds before `upto`: they come on the returned
    /// channel (which closes without them if the worker has ended).
    pub fn tallies(&self, upto: u32) -> oneshot::Receiver<Vec<Tally>> {
        let (reply, rx) = oneshot::channel();
        let _ = self.flush.send(Flush { upto, reply });
        rx
    }

    /// Hands a cycle's users to the worker.
    pub fn start(&self, job: CycleJob) {
        let _ = self.jobs.send(job);
    }

    /// Ends the worker and returns what it measured.
    pub fn finish(self) -> Recorder {
        drop(self.jobs);
        self.thread.join().expect("worker thread does not panic")
    }
}

/// Runs one cycle job: its users, until they end or the cycle aborts; then says so.
async fn run_job(
    shared: &Shared,
    recorder: &Rc<RefCell<Recorder>>,
    counters: &Arc<Counters>,
    job: CycleJob,
) {
    let cast = Cast {
        shared,
        recorder,
        counters,
        window: job.window,
        phase: &job.phase,
    };
    let mut users = tokio::task::JoinSet::new();
    match job.load {
        Load::Users(list) => {
            for (number, start_at) in list {
                users.spawn_local(cast.user(number, start_at).run());
            }
        }
        Load::Rate {
            first,
            period,
            max_users,
            number_base,
            number_step,
        } => {
            let rate = Rate {
                first,
                period,
                max_users,
                number_base,
                number_step,
            };
            run_rate(&cast, &mut users, rate).await;
        }
    }
    wait_users(&mut users, job.phase.clone()).await;
    let _ = job.done.send(());
}

/// What every user of a job shares, to make its users from.
struct Cast<'a> {
    shared: &'a Shared,
    recorder: &'a Rc<RefCell<Recorder>>,
    counters: &'a Arc<Counters>,
    window: Window,
    phase: &'a watch::Receiver<CyclePhase>,
}

impl Cast<'_> {
    fn user(&self, number: u32, start_at: Instant) -> User {
        User {
            plan: self.shared.plan.clone(),
            connector: self.shared.connector.clone(),
            static_urls: self.shared.static_urls.clone(),
            rows: self.shared.rows.clone(),
            recorder: self.recorder.clone(),
            counters: self.counters.clone(),
            window: self.window,
            phase: self.phase.clone(),
            node: self.shared.node,
            nodes: self.shared.nodes,
            number,
            start_at,
        }
    }
}

/// The open model's schedule for one worker (see [`Load::Rate`]).
struct Rate {
    first: Instant,
    period: Duration,
    max_users: u32,
    number_base: u32,
    number_step: u32,
}

/// An idle open-model user: its number, client, next iteration and random numbers.
type Idle = (u32, Client, u64, SmallRng);

/// Open model: starts an execution every period while the cycle runs, on an idle user or a
/// new one (at most `max_users`); an execution due while all are busy is dropped, and counted.
async fn run_rate(cast: &Cast<'_>, users: &mut tokio::task::JoinSet<()>, rate: Rate) {
    // A std RefCell, as everything here runs on this worker's thread.
    let idle = Rc::new(RefCell::new(Vec::<Idle>::new()));
    let mut created = 0u32;
    let mut phase = cast.phase.clone();
    let mut due = rate.first;
    // Nothing is due at the window's end or after it.
    while due < cast.window.end {
        tokio::select! {
            // The next execution is due.
            _ = tokio::time::sleep_until(due.into()) => {}
            // The cycle's window is over: schedule nothing more.
            _ = phase.wait_for(|p| *p != CyclePhase::Running) => break,
        }
        let free = idle.borrow_mut().pop();
        let picked = free.or_else(|| {
            (created < rate.max_users).then(|| {
                created += 1;
                let number = rate.number_base + (created - 1) * rate.number_step;
                let shared = cast.shared;
                let client = Client::new(shared.connector.clone(), shared.plan.bench.timeout);
                let seed = shared.plan.bench.seed;
                let rng = user_rng(seed, shared.node, cast.window.cycle, number);
                (number, client, 0, rng)
            })
        });
        match picked {
            Some((number, mut client, iteration, mut rng)) => {
                cast.recorder.borrow_mut().user_began(Instant::now());
                let u = cast.user(number, due);
                let idle = idle.clone();
                let scheduled = due;
                users.spawn_local(async move {
                    let running = u.counters.user_running();
                    u.execute(&mut client, &mut rng, iteration, scheduled).await;
                    // Idle until its next execution is due.
                    drop(running);
                    idle.borrow_mut().push((number, client, iteration + 1, rng));
                });
            }
            // Every user is busy: the execution is dropped, and counted.
            None => cast.recorder.borrow_mut().dropped(&cast.window),
        }
        // Reap finished executions so the set stays small.
        while users.try_join_next().is_some() {}
        due += rate.period;
    }
}

/// Waits until every user ended, or drops them all when the cycle aborts.
async fn wait_users(users: &mut tokio::task::JoinSet<()>, mut phase: watch::Receiver<CyclePhase>) {
    loop {
        tokio::select! {
            // Every user has ended.
            next = users.join_next() => if next.is_none() { break },
            // Stop now: the users' tasks are dropped, abandoning their requests in flight.
            _ = phase.wait_for(|p| *p == CyclePhase::Abort) => {
                users.abort_all();
                while users.join_next().await.is_some() {}
                break;
            }
        }
    }
}
