//! What completed in one second of the run: each worker's [`Recorder`](super::record::Recorder)
//! keeps the current second's [`Tally`]; once a second the controller takes the workers' past
//! seconds, merges them, sends them in its progress line ([`to_wire`]) and adds their latency into
//! the result's intervals ([`crate::result::LatencySum`]).

use std::collections::BTreeMap;
use std::time::Duration;

use hdrhistogram::Histogram;

use super::record::Verdict;
use crate::protocol::progress::{self, SecondTally, StepTally};
use crate::result::latency::new_interval_histogram;
use crate::result::{Packed, HISTOGRAM_MAX_US};

/// The pages of one step completed in one second.
#[derive(Debug, Clone, Default)]
pub struct StepSecond {
    /// Pages completed: successes, failures and errors.
    pub pages: u64,
    pub failures: u64,
    pub errors: u64,
    /// Response body bytes, bytes.
    pub bytes: u64,
    /// Latency of successes and failures, µs (made at the step's first such page).
    pub latency: Option<Histogram<u64>>,
}

/// What completed in one second of the run, on one worker or on the node.
#[derive(Debug, Clone, Default)]
pub struct Tally {
    /// Second of the run.
    pub second: u32,
    /// Requests completed, and of them failed and erred.
    pub requests: u64,
    pub failures: u64,
    pub errors: u64,
    /// Successful tests and pages completed.
    pub tests_ok: u64,
    pub pages_ok: u64,
    /// Per step, in the test's order.
    pub steps: Vec<StepSecond>,
}

impl Tally {
    pub fn new(second: u32, steps: usize) -> Tally {
        Tally {
            second,
            steps: vec![StepSecond::default(); steps],
            ..Tally::default()
        }
    }

    /// True when nothing completed.
    pub fn is_empty(&self) -> bool {
        self.requests == 0 && self.tests_ok == 0 && self.steps.iter().all(|s| s.pages == 0)
    }

    #[inline]
    pub fn request(&mut self, outcome: Verdict) {
        self.requests += 1;
        match outcome {
            Verdict::Success => {}
            Verdict::Failure => self.failures += 1,
            Verdict::Error => self.errors += 1,
        }
    }

    #[inline]
    pub fn page(&mut self, step: usize, latency: Duration, outcome: Verdict, bytes: u64) {
        let Some(s) = self.steps.get_mut(step) else {
            return;
        };
        s.pages += 1;
        match outcome {
            Verdict::Success => self.pages_ok += 1,
            Verdict::Failure => s.failures += 1,
            Verdict::Error => {
                s.errors += 1;
                return;
            }
        }
        s.bytes += bytes;
        let us = (latency.as_micros() as u64).clamp(1, HISTOGRAM_MAX_US);
        s.latency
            .get_or_insert_with(new_interval_histogram)
            .saturating_record(us);
    }

    /// Adds `other` (the same second elsewhere) into `self`; histograms add exactly.
    pub fn merge(&mut self, other: Tally) {
        self.requests += other.requests;
        self.failures += other.failures;
        self.errors += other.errors;
        self.tests_ok += other.tests_ok;
        self.pages_ok += other.pages_ok;
        if self.steps.len() < other.steps.len() {
            self.steps.resize(other.steps.len(), StepSecond::default());
        }
        for (m, o) in self.steps.iter_mut().zip(other.steps) {
            m.pages += o.pages;
            m.failures += o.failures;
            m.errors += o.errors;
            m.bytes += o.bytes;
            match (&mut m.latency, o.latency) {
                (Some(a), Some(b)) => a.add(b).expect("interval histograms share bounds"),
                (a @ None, b) => *a = b,
                (_, None) => {}
            }
        }
    }
}

/// Merges tallies of several workers by second, in order of the seconds.
pub fn merge_by_second(tallies: impl IntoIterator<Item = Tally>) -> Vec<Tally> {
    let mut by_second: BTreeMap<u32, Tally> = BTreeMap::new();
    for t in tallies {
        match by_second.get_mut(&t.second) {
            Some(m) => m.merge(t),
            None => {
                by_second.insert(t.second, t);
            }
        }
    }
    by_second.into_values().collect()
}

/// The node's tallies as progress lines' `seconds`: at most
/// [`progress::MAX_SECONDS_PER_LINE`] per line, histograms within [`progress::LATENCY_BUDGET`]
/// per line (the all-pages one of each second first, then the steps').
pub fn to_wire(tallies: &[Tally], users: u32) -> Vec<Vec<SecondTally>> {
    tallies
        .chunks(progress::MAX_SECONDS_PER_LINE)
        .map(|chunk| {
            let mut budget = progress::LATENCY_BUDGET;
            let mut spend = |h: &Histogram<u64>| {
                (budget > 0).then(|| {
                    let text = Packed::pack(h).to_base64();
                    budget = budget.saturating_sub(text.len());
                    text
                })
            };
            let mut lines: Vec<SecondTally> = Vec::with_capacity(chunk.len());
            for t in chunk {
                let mut all = new_interval_histogram();
                for h in t.steps.iter().filter_map(|s| s.latency.as_ref()) {
                    all.add(h).expect("interval histograms share bounds");
                }
                lines.push(SecondTally {
                    second: t.second,
                    users,
                    requests: t.requests,
                    failures: t.failures,
                    errors: t.errors,
                    tests_ok: t.tests_ok,
                    pages_ok: t.pages_ok,
                    latency: spend(&all),
                    steps: Vec::new(),
                });
            }
            for (t, line) in chunk.iter().zip(&mut lines) {
                line.steps = t
                    .steps
                    .iter()
                    .enumerate()
                    .filter(|(_, s)| s.pages > 0)
                    .map(|(i, s)| StepTally {
                        step: i as u32,
                        pages: s.pages,
                        failures: s.failures,
                        errors: s.errors,
                        bytes: s.bytes,
                        latency: match &s.latency {
                            Some(h) => spend(h),
                            None => Some(String::new()),
                        },
                    })
                    .collect();
            }
            lines
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::progress::ProgressEvent;

    fn busy(second: u32, steps: usize, spread: u64) -> Tally {
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::SmallRng::seed_from_u64(u64::from(second));
        let mut t = Tally::new(second, steps);
        for step in 0..steps {
            for _ in 0..spread {
                // Values over the whole range, log-uniform: most buckets used, counts random.
                let us = 2f64.powf(rng.gen_range(0.0..31.0)) as u64;
                t.request(Verdict::Success);
                t.page(step, Duration::from_micros(us), Verdict::Success, 10);
            }
        }
        t
    }

    #[test]
    fn merged_tallies_add_counts_and_histograms() {
        let mut a = Tally::new(3, 2);
        a.request(Verdict::Failure);
        a.page(1, Duration::from_millis(5), Verdict::Failure, 7);
        let mut b = Tally::new(3, 2);
        b.request(Verdict::Success);
        b.page(1, Duration::from_millis(9), Verdict::Success, 3);
        b.page(0, Duration::ZERO, Verdict::Error, 0);
        let m = merge_by_second([a, b, Tally::new(1, 2)]);
        assert_eq!(m.iter().map(|t| t.second).collect::<Vec<_>>(), [1, 3]);
        let t = &m[1];
        assert_eq!((t.requests, t.failures, t.pages_ok), (2, 1, 1));
        assert_eq!(t.steps[1].latency.as_ref().unwrap().len(), 2);
        assert_eq!((t.steps[0].pages, t.steps[0].errors), (1, 1));
        assert!(t.steps[0].latency.is_none());
    }

    #[test]
    fn a_line_of_100_busy_steps_stays_far_below_the_line_limit() {
        // 100 steps with 20 000 pages each spread over the whole range, 4 seconds behind.
        let tallies: Vec<Tally> = (0..6).map(|s| busy(s, 100, 20_000)).collect();
        let lines = to_wire(&tallies, 10);
        assert_eq!(lines.len(), 2);
        for seconds in lines {
            // The budget is what keeps it there: some histograms were left out.
            assert!(seconds
                .iter()
                .any(|t| t.steps.iter().any(|s| s.latency.is_none())));
            let line = ProgressEvent::Progress {
                cycle: 0,
                users: 10,
                requests: 0,
                failures: 0,
                errors: 0,
                rps: 0.0,
                elapsed: 1.0,
                through: 6,
                seconds,
                cpu: None,
            }
            .to_line();
            assert!(line.len() < 400 * 1024, "{} bytes", line.len());
            assert!(line.len() < crate::protocol::lines::MAX_LINE / 2);
        }
    }

    #[test]
    fn a_quiet_second_sends_every_histogram() {
        let lines = to_wire(&[busy(0, 3, 50)], 1);
        let t = &lines[0][0];
        assert!(t.latency.is_some());
        assert_eq!(t.steps.len(), 3);
        assert!(t.steps.iter().all(|s| s.latency.is_some() && s.pages == 50));
    }
}
