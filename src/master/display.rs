//! Live progress: one line per node (state, cycle, users, requests/s, errors) and a total, drawn
//! with indicatif on a terminal and printed as plain lines otherwise.

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::coordinator::State;
use crate::protocol::progress::ProgressEvent;

/// What one node's line shows.
#[derive(Debug, Clone, Default)]
pub struct NodeLine {
    pub state: State,
    /// Current cycle, from 0.
    pub cycle: Option<u32>,
    pub users: u32,
    /// Requests per second over the last second.
    pub rps: f64,
    /// Requests so far.
    pub requests: u64,
    /// Failures and errors so far.
    pub errors: u64,
    /// CPU busy of the node's host, % of all cores, when it reports it.
    pub cpu: Option<f64>,
}

impl NodeLine {
    /// What a progress event of the node says of it (its state is the coordinator's, or the
    /// state file's after `--attach`).
    pub fn heard(&mut self, event: &ProgressEvent) {
        match *event {
            ProgressEvent::Ready { .. } => {}
            ProgressEvent::Cycle { cycle, users } => {
                self.cycle = Some(cycle);
                self.users = users;
            }
            ProgressEvent::Progress {
                cycle,
                users,
                requests,
                failures,
                errors,
                rps,
                cpu,
                ..
            } => {
                self.cycle = Some(cycle);
                self.users = users;
                self.requests = requests;
                self.errors = failures + errors;
                self.rps = rps;
                self.cpu = cpu;
            }
            ProgressEvent::Done { .. } => {
                self.rps = 0.0;
                self.users = 0;
            }
        }
    }
}

/// The progress display of a run.
pub struct Display {
    names: Vec<String>,
    /// Bars when drawing on a terminal; `None` for plain lines.
    bars: Option<(MultiProgress, Vec<ProgressBar>, ProgressBar)>,
    verbose: bool,
    last_plain: Instant,
}

/// Seconds between two plain total lines.
const PLAIN_EVERY: Duration = Duration::from_secs(5);

impl Display {
    /// A display for nodes named `names` (`node0 local`); bars only on a terminal.
    pub fn new(names: Vec<String>, verbose: bool) -> Display {
        let bars = std::io::stderr().is_terminal().then(|| {
            let multi = MultiProgress::with_draw_target(ProgressDrawTarget::stderr_with_hz(4));
            let style =
                ProgressStyle::with_template("{prefix:.bold} {msg}").expect("constant template");
            let make = |prefix: &str| {
                let bar = multi.add(ProgressBar::new_spinner());
                bar.set_style(style.clone());
                bar.set_prefix(prefix.to_string());
                bar
            };
            let width = names.iter().map(String::len).max().unwrap_or(5).max(5);
            let lines = names
                .iter()
                .map(|n| make(&format!("{n:<width$}")))
                .collect();
            let total = make(&format!("{:<width$}", "total"));
            (multi, lines, total)
        });
        Display {
            names,
            bars,
            verbose,
            last_plain: Instant::now(),
        }
    }

    /// Prints a message above the bars (or as a line).
    pub fn message(&self, text: &str) {
        match &self.bars {
            Some((multi, _, _)) => {
                let _ = multi.println(text);
            }
            None => eprintln!("{text}"),
        }
    }

    /// Redraws every node line and the total.
    pub fn refresh(&mut self, lines: &[NodeLine]) {
        let total = total_line(lines);
        match &self.bars {
            Some((_, bars, total_bar)) => {
                for (bar, line) in bars.iter().zip(lines) {
                    bar.set_message(format_line(line));
                }
                total_bar.set_message(total);
            }
            None => {
                if self.last_plain.elapsed() < PLAIN_EVERY {
                    return;
                }
                self.last_plain = Instant::now();
                if self.verbose {
                    for (name, line) in self.names.iter().zip(lines) {
                        eprintln!("{name}: {}", format_line(line));
                    }
                }
                eprintln!("total: {total}");
            }
        }
    }

    /// Leaves the last state on screen.
    pub fn finish(&self) {
        if let Some((_, bars, total)) = &self.bars {
            for bar in bars.iter().chain([total]) {
                bar.finish();
            }
        }
    }
}

fn format_line(l: &NodeLine) -> String {
    let cycle = l.cycle.map_or("-".into(), |c| (c + 1).to_string());
    format!(
        "{:<8} cycle {cycle:>2} users {:>5} {:>9.1} req/s {:>9} requests {:>6} errors",
        l.state, l.users, l.rps, l.requests, l.errors
    )
}

fn total_line(lines: &[NodeLine]) -> String {
    let running = lines.iter().filter(|l| l.state == State::Running).count();
    let failed = lines.iter().filter(|l| l.state == State::Failed).count();
    let users: u32 = lines.iter().map(|l| l.users).sum();
    let rps: f64 = lines.iter().map(|l| l.rps).sum();
    let requests: u64 = lines.iter().map(|l| l.requests).sum();
    let errors: u64 = lines.iter().map(|l| l.errors).sum();
    format!(
        "{running}/{} running, {failed} failed, users {users}, {rps:.1} req/s, {requests} requests, \
         {errors} errors",
        lines.len()
    )
}
