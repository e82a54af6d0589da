//! Any program as the load generator (`[generator]`): started once per cycle in the test's
//! directory with `BENCH_*` in its environment, it prints one JSON line per operation
//! ([`line`]), recorded into the same [`Recorder`] as HTTP users' pages. When the cycle's
//! window ends it gets SIGTERM, and SIGKILL [`KILL_AFTER`] later; a program that dies early, a
//! bad line, a program that ignores SIGTERM are counted in the error groups, naming what
//! happened (and the line number), never a failure of the node.

pub mod line;

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::{ExitStatus, Stdio};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::BufReader;
use tokio::process::{Child, ChildStdout, Command};
use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;

use super::record::{ErrorReport, Recorder, Verdict, Window};
use super::user::CyclePhase;
use super::Counters;
use crate::protocol::lines::{read_line, Line, MAX_LINE};
use crate::result::{ErrorKind, NodeInfo};
use crate::test_def::TestPlan;

/// Time a program has to end after SIGTERM before it gets SIGKILL.
pub const KILL_AFTER: Duration = Duration::from_secs(5);
/// Time given to read what the program wrote before it ended (its children may hold stdout).
const DRAIN: Duration = Duration::from_secs(1);
/// The "step" of error groups about the program itself rather than one of its steps.
const NO_STEP: usize = usize::MAX;

/// The program of a `[generator]` test, run once per cycle.
pub struct Generator {
    program: Arc<Program>,
    /// Shared with the cycle's task (a std mutex: held for one line, never across an await).
    recorder: Arc<Mutex<Recorder>>,
    pub counters: Arc<Counters>,
    /// The cycles' tasks; each ends within [`KILL_AFTER`] + [`DRAIN`] of its window.
    tasks: Vec<JoinHandle<()>>,
}

/// What every cycle's run of the program needs.
struct Program {
    command: Vec<String>,
    /// The command as one text, naming the program in error samples.
    label: String,
    /// The test's directory: the program runs there.
    dir: PathBuf,
    /// Declared step names → their index.
    steps: HashMap<String, usize>,
    /// `BENCH_*` values that hold for the whole run.
    env: Vec<(&'static str, String)>,
    counters: Arc<Counters>,
}

/// One cycle for the program.
pub struct GeneratorJob {
    /// When the run started (the origin of per-second counts).
    pub t0: Instant,
    pub window: Window,
    /// `BENCH_USERS`: the cycle's users on this node.
    pub users: u32,
    pub phase: watch::Receiver<CyclePhase>,
    /// Told when the program has ended and its lines are read.
    pub done: oneshot::Sender<()>,
}

impl Generator {
    /// The plan's generator for `node`, or why the program cannot run.
    pub fn new(plan: &TestPlan, node: &NodeInfo) -> Result<Generator, String> {
        let g = plan
            .generator
            .as_ref()
            .ok_or("the test has no [generator]")?;
        let parent = plan.path.parent().unwrap_or(std::path::Path::new(""));
        // Absolute, so that a program given as a path (`./load.sh`) is found whatever the
        // child's working directory does to relative paths.
        let dir = std::path::absolute(if parent.as_os_str().is_empty() {
            std::path::Path::new(".")
        } else {
            parent
        })
        .map_err(|e| format!("cannot find the test's directory: {e}"))?;
        check_program(&g.command[0], &dir)?;
        let mut command = g.command.clone();
        if command[0].contains('/') {
            command[0] = dir.join(&command[0]).to_string_lossy().into_owned();
        }
        let counters = Arc::new(Counters::default());
        let env = vec![
            ("BENCH_NODE", node.number.to_string()),
            ("BENCH_NODES", node.count.max(1).to_string()),
            (
                "BENCH_DURATION",
                plan.bench.duration.as_secs_f64().to_string(),
            ),
            ("BENCH_RUN", node.run.clone()),
            ("BENCH_URL", plan.url.to_string()),
        ];
        let program = Program {
            label: g
                .command
                .iter()
                .map(|w| shell_escape::unix::escape(w.into()))
                .collect::<Vec<_>>()
                .join(" "),
            command,
            dir,
            steps: g.steps.iter().cloned().zip(0..).collect(),
            env,
            counters: counters.clone(),
        };
        let recorder = Recorder::new(Instant::now(), plan.step_names(), 0);
        Ok(Generator {
            program: Arc::new(program),
            recorder: Arc::new(Mutex::new(recorder)),
            counters,
            tasks: Vec::new(),
        })
    }

    /// Starts the program for a cycle, on a task of the current runtime.
    pub fn start(&mut self, job: GeneratorJob) {
        self.recorder
            .lock()
            .expect("not poisoned")
            .set_origin(job.t0);
        let program = self.program.clone();
        let recorder = self.recorder.clone();
        self.tasks.retain(|t| !t.is_finished());
        self.tasks.push(tokio::spawn(program.cycle(recorder, job)));
    }

    /// The tallies of the seconds before `upto` (see [`Recorder::take_tallies`]).
    pub fn take_tallies(&self, upto: u32) -> Vec<super::tally::Tally> {
        self.recorder
            .lock()
            .expect("not poisoned")
            .take_tallies(upto)
    }

    /// What the program measured over the run.
    pub fn finish(self) -> Recorder {
        for task in &self.tasks {
            task.abort();
        }
        let mut recorder = self.recorder.lock().expect("not poisoned");
        let names = Vec::new();
        std::mem::replace(&mut *recorder, Recorder::new(Instant::now(), names, 0))
    }
}

/// Fails early, before any load, when the program cannot be found: a path that is not a file
/// (relative to the test's directory), or a name on no directory of `PATH`.
fn check_program(program: &str, dir: &std::path::Path) -> Result<(), String> {
    let found = if program.contains('/') {
        dir.join(program).is_file()
    } else {
        std::env::var_os("PATH")
            .map(|path| std::env::split_paths(&path).any(|d| d.join(program).is_file()))
            .unwrap_or(false)
    };
    match found {
        true => Ok(()),
        false if program.contains('/') => Err(format!(
            "the generator's program {program:?} is not a file in {}",
            dir.display()
        )),
        false => Err(format!(
            "the generator's program {program:?} is on no directory of PATH"
        )),
    }
}

/// How the program ended.
enum End {
    /// It exited by itself before its window ended.
    Early(ExitStatus),
    /// It exited after SIGTERM (whatever its status: it was asked to).
    Asked,
    /// It ignored SIGTERM and got SIGKILL.
    Killed,
}

impl Program {
    /// One cycle: start the program, record its lines, stop it when the window ends.
    async fn cycle(self: Arc<Self>, recorder: Arc<Mutex<Recorder>>, job: GeneratorJob) {
        let mut running = match self.spawn(&job) {
            Ok(running) => running,
            Err(e) => {
                let detail = format!("cannot start the program: {e}");
                self.fault(&recorder, detail, format!("cycle {}", job.window.cycle + 1));
                let _ = job.done.send(());
                return;
            }
        };
        let started = Instant::now();
        let users = job.users;
        self.counters.users.fetch_add(users, Ordering::Relaxed);
        let stdout = running.child.stdout.take().expect("stdout is piped");
        let mut reading = std::pin::pin!(self.read(stdout, &recorder, job.window));
        let mut supervising = std::pin::pin!(running.supervise(job.phase));
        let mut read_all = false;
        let end = loop {
            tokio::select! {
                // Its stdout is closed (the program may still run).
                _ = &mut reading, if !read_all => read_all = true,
                // The program has ended.
                end = &mut supervising => break end,
            }
        };
        if !read_all {
            // Lines still in the pipe; a child of the program holding stdout open is left.
            let _ = tokio::time::timeout(DRAIN, reading).await;
        }
        self.counters.users.fetch_sub(users, Ordering::Relaxed);
        let when = format!(
            "cycle {}, {:.1} s after the program started",
            job.window.cycle + 1,
            started.elapsed().as_secs_f64()
        );
        match end {
            End::Early(status) if !status.success() => {
                let detail = format!("the program died before its window ended ({status})");
                self.fault(&recorder, detail, when);
            }
            End::Killed => {
                let detail = format!(
                    "the program ignored SIGTERM for {} s and was killed",
                    KILL_AFTER.as_secs()
                );
                self.fault(&recorder, detail, when);
            }
            End::Early(_) | End::Asked => {}
        }
        let _ = job.done.send(());
    }

    /// Starts the program in its own process group, stdout piped, stderr the node's.
    fn spawn(&self, job: &GeneratorJob) -> std::io::Result<Running> {
        let child = Command::new(&self.command[0])
            .args(&self.command[1..])
            .current_dir(&self.dir)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .env("BENCH_USERS", job.users.to_string())
            .env("BENCH_CYCLE", job.window.cycle.to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .process_group(0)
            .kill_on_drop(true)
            .spawn()?;
        let group = child.id().map(|pid| pid as libc::pid_t);
        Ok(Running { child, group })
    }

    /// Reads the program's lines until its stdout closes, each bounded ([`MAX_LINE`]) and
    /// recorded as it arrives.
    async fn read(&self, stdout: ChildStdout, recorder: &Mutex<Recorder>, window: Window) {
        let mut reader = BufReader::new(stdout);
        let mut buf = Vec::new();
        let mut number = 0u64;
        loop {
            let Ok(line) = read_line(&mut reader, &mut buf, MAX_LINE).await else {
                return;
            };
            number += 1;
            let at = Instant::now();
            match line {
                Line::End => return,
                Line::Full => self.record(recorder, window, at, number, &buf),
                Line::TooLong => {
                    let what = "longer than 1 MiB";
                    let message = format!("line {number}: {what}");
                    self.bad_line(recorder, at, what, message, &buf);
                    // The rest of the line, up to its newline, is skipped.
                    loop {
                        match read_line(&mut reader, &mut buf, MAX_LINE).await {
                            Ok(Line::TooLong) => continue,
                            Ok(Line::Full) => break,
                            Ok(Line::End) | Err(_) => return,
                        }
                    }
                }
            }
        }
    }

    /// Records one complete line: an operation, or a bad line. Blank lines are skipped.
    fn record(&self, recorder: &Mutex<Recorder>, w: Window, at: Instant, n: u64, text: &[u8]) {
        let text = text.trim_ascii();
        if text.is_empty() {
            return;
        }
        let op = match line::parse(text, &self.steps) {
            Ok(op) => op,
            Err(bad) => {
                let message = format!("line {n}: {}", bad.message);
                return self.bad_line(recorder, at, bad.what, message, text);
            }
        };
        self.counters.requests.fetch_add(1, Ordering::Relaxed);
        match op.verdict {
            Verdict::Success => {}
            Verdict::Failure => _ = self.counters.failures.fetch_add(1, Ordering::Relaxed),
            Verdict::Error => _ = self.counters.errors.fetch_add(1, Ordering::Relaxed),
        }
        let mut r = recorder.lock().expect("not poisoned");
        // An operation is a request, a page of its step and a test (of the one implicit
        // scenario, not counted apart) at once.
        r.request(&w, at, op.latency, op.verdict, op.bytes);
        r.page(&w, op.step, at, op.latency, op.verdict, op.bytes);
        r.test(&w, at, op.latency, op.verdict, 0);
        if let Some((kind, detail)) = op.fault {
            let body = format!("line {n}: {}", String::from_utf8_lossy(text));
            let report = ErrorReport {
                step: op.step,
                kind,
                detail,
                url: &self.label,
                status: None,
                body: body.as_bytes(),
            };
            r.error(at, report);
        }
    }

    /// A line that is no operation: grouped by `what`, the sample naming its number.
    fn bad_line(
        &self,
        recorder: &Mutex<Recorder>,
        at: Instant,
        what: &str,
        message: String,
        text: &[u8],
    ) {
        let body = format!("{message}: {}", String::from_utf8_lossy(text));
        let report = ErrorReport {
            step: NO_STEP,
            kind: ErrorKind::Other,
            detail: format!("bad output line: {what}"),
            url: &self.label,
            status: None,
            body: body.as_bytes(),
        };
        recorder.lock().expect("not poisoned").error(at, report);
    }

    /// Something that happened to the program itself (it could not start, died, was killed).
    fn fault(&self, recorder: &Mutex<Recorder>, detail: String, body: String) {
        let report = ErrorReport {
            step: NO_STEP,
            kind: ErrorKind::Other,
            detail,
            url: &self.label,
            status: None,
            body: body.as_bytes(),
        };
        recorder
            .lock()
            .expect("not poisoned")
            .error(Instant::now(), report);
    }
}

/// A started program and its process group, which gets SIGKILL when this drops unreaped.
struct Running {
    child: Child,
    /// The group's id (the program's pid) until the program is reaped: from then on the id
    /// may name another process, so no signal is sent to it.
    group: Option<libc::pid_t>,
}

impl Running {
    /// Waits for the program to end; once the phase leaves `Running`, SIGTERM, then SIGKILL
    /// [`KILL_AFTER`] later.
    async fn supervise(&mut self, mut phase: watch::Receiver<CyclePhase>) -> End {
        let mut termed: Option<Instant> = None;
        let mut killed = false;
        loop {
            let kill_at = termed.map_or_else(Instant::now, |t| t + KILL_AFTER);
            tokio::select! {
                // The program ended (and is reaped).
                status = self.child.wait() => {
                    self.group = None;
                    return match (status, termed, killed) {
                        (_, _, true) => End::Killed,
                        (_, Some(_), false) => End::Asked,
                        (Ok(status), None, false) => End::Early(status),
                        // Cannot wait for it: as good as gone.
                        (Err(_), None, false) => End::Asked,
                    };
                }
                // The window is over (or the run is interrupted): ask it to stop.
                _ = phase.wait_for(|p| *p != CyclePhase::Running), if termed.is_none() => {
                    self.signal(libc::SIGTERM);
                    termed = Some(Instant::now());
                }
                // It ignored SIGTERM: kill the whole group.
                _ = tokio::time::sleep_until(kill_at.into()), if termed.is_some() && !killed => {
                    self.signal(libc::SIGKILL);
                    killed = true;
                }
            }
        }
    }

    /// Sends `signal` to the program's process group while the program is not reaped.
    fn signal(&self, signal: libc::c_int) {
        if let Some(group) = self.group {
            // SAFETY: kill(2) takes plain integers and touches no memory of ours; the group
            // is the unreaped program's own, so it names no other process.
            unsafe {
                libc::kill(-group, signal);
            }
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        // An aborted cycle leaves no program behind, nor any of its children.
        self.signal(libc::SIGKILL);
    }
}
