//! Worker threads: each runs a current-thread tokio runtime holding a share of the users and its
//! own [`Recorder`], so the hot path takes no lock and wakes no other thread.

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Instant;

use tokio::sync::{mpsc, oneshot, watch};

use super::client::Connector;
use super::record::{Recorder, Window};
use super::user::{Phase, User};
use super::Counters;
use crate::test_def::TestPlan;

/// One cycle's share of users for a worker.
pub struct CycleJob {
    pub window: Window,
    /// User numbers this worker runs, each with its start time.
    pub users: Vec<(u32, Instant)>,
    pub phase: watch::Receiver<Phase>,
    /// Told when every user of this job has ended.
    pub done: oneshot::Sender<()>,
}

/// Handle on a worker thread.
pub struct Worker {
    /// Cycle jobs; closing it ends the worker.
    jobs: mpsc::UnboundedSender<CycleJob>,
    thread: JoinHandle<Recorder>,
    pub counters: Arc<Counters>,
}

/// Node-wide settings every worker shares.
#[derive(Clone)]
pub struct Shared {
    pub plan: Arc<TestPlan>,
    pub connector: Arc<Connector>,
    pub t0: Instant,
    pub node: u32,
    pub nodes: u32,
}

impl Worker {
    pub fn spawn(index: usize, shared: Shared) -> std::io::Result<Worker> {
        let (jobs, mut rx) = mpsc::unbounded_channel::<CycleJob>();
        let counters = Arc::new(Counters::default());
        let c = counters.clone();
        let thread = std::thread::Builder::new()
            .name(format!("bench-worker-{index}"))
            .spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("a current-thread runtime builds");
                let names = shared.plan.steps.iter().map(|s| s.name.clone()).collect();
                let recorder = Rc::new(RefCell::new(Recorder::new(shared.t0, names)));
                let local = tokio::task::LocalSet::new();
                local.block_on(&runtime, async {
                    while let Some(job) = rx.recv().await {
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
        })
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

async fn run_job(
    shared: &Shared,
    recorder: &Rc<RefCell<Recorder>>,
    counters: &Arc<Counters>,
    job: CycleJob,
) {
    let mut users = tokio::task::JoinSet::new();
    for (number, start_at) in job.users {
        let user = User {
            plan: shared.plan.clone(),
            connector: shared.connector.clone(),
            recorder: recorder.clone(),
            counters: counters.clone(),
            window: job.window,
            phase: job.phase.clone(),
            node: shared.node,
            nodes: shared.nodes,
            number,
            start_at,
        };
        users.spawn_local(user.run());
    }
    while users.join_next().await.is_some() {}
    let _ = job.done.send(());
}
