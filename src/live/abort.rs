//! The live abort: the test's thresholds with `abort = true`, judged on every second of the
//! cluster's merged live view ([`super`]) by the same evaluation as at the end of the
//! run ([`crate::report::threshold::measure`]); one that stays broken for its `abort_after`
//! stops the run. `bench-master` feeds it the cluster's seconds, `bench-node run` alone its
//! own.
//!
//! The window is one second ([`WINDOW_S`]): each settled second of the cluster is judged on
//! its own, so that a target turning slow is seen in the next whole second rather than
//! diluted by the fast seconds before it (a closed model completes far fewer slow requests
//! than fast ones). A threshold is broken while its seconds fail; `abort_after` is how many
//! seconds in a row must fail (the first failing second stops the run with 0). A second in
//! which nothing was measured (no page completed) carries on a streak already begun but
//! starts none, so a ramp-up's empty first second stops nothing.

use crate::report::merge::MergedCycle;
use crate::report::threshold::{self, Basis, LiveStop};
use crate::result::threshold::Threshold;
use crate::result::{Counts, StepInfo};

use super::ClusterSecond;

/// Seconds of the live view one judgement covers.
pub const WINDOW_S: u32 = 1;

/// One threshold watched live.
#[derive(Debug, Clone)]
struct Watched {
    /// Its place among the test's thresholds.
    index: usize,
    threshold: Threshold,
    /// First second of the current run of failing seconds.
    broken_from: Option<u32>,
}

/// The thresholds with `abort = true` and how long each has been broken.
#[derive(Debug, Clone)]
pub struct AbortWatch {
    watched: Vec<Watched>,
    steps: Vec<StepInfo>,
    apdex_t_s: f64,
}

impl AbortWatch {
    /// A watch of `thresholds`' live ones over a test of `steps`; `None` when none is live.
    pub fn new(thresholds: &[Threshold], steps: Vec<StepInfo>, apdex_t_s: f64) -> Option<Self> {
        let watched: Vec<Watched> = thresholds
            .iter()
            .enumerate()
            .filter(|(_, t)| t.abort)
            .map(|(index, t)| Watched {
                index,
                threshold: t.clone(),
                broken_from: None,
            })
            .collect();
        (!watched.is_empty()).then_some(AbortWatch {
            watched,
            steps,
            apdex_t_s,
        })
    }

    /// The watch of a test plan's live thresholds; `None` when none has `abort = true`.
    pub fn for_plan(plan: &crate::test_def::TestPlan) -> Option<Self> {
        let steps = plan
            .steps
            .iter()
            .map(|s| StepInfo {
                name: s.name.clone(),
                ..StepInfo::default()
            })
            .collect();
        AbortWatch::new(&plan.thresholds, steps, plan.bench.apdex_t.as_secs_f64())
    }

    /// Judges one settled second; the threshold that stopped the run, once one has stayed
    /// broken for its `abort_after`.
    pub fn second(&mut self, s: &ClusterSecond) -> Option<LiveStop> {
        if s.users == 0 {
            // Between cycles, or every node done: nothing runs to be judged.
            return None;
        }
        let window = window(s);
        let basis = Basis {
            steps: &self.steps,
            apdex_t_s: self.apdex_t_s,
        };
        for w in &mut self.watched {
            let value = threshold::measure(basis, &w.threshold, &[&window]);
            match value {
                Some(v) if w.threshold.passes(v) => w.broken_from = None,
                Some(_) => {
                    w.broken_from.get_or_insert(s.second);
                }
                // Nothing measured: carries on a streak, starts none.
                None => {}
            }
            let Some(from) = w.broken_from else { continue };
            let broken_s = f64::from(s.second + 1 - from);
            if broken_s >= w.threshold.abort_after_s {
                return Some(LiveStop {
                    index: w.index,
                    threshold: w.threshold.to_string(),
                    broken_from_s: from,
                    at_s: s.second + 1,
                    value_text: value
                        .map_or_else(|| "nothing measured".into(), |v| w.threshold.format(v)),
                });
            }
        }
        None
    }
}

/// One second of the cluster as the evaluation's input: a cycle of one second's window.
fn window(s: &ClusterSecond) -> MergedCycle {
    let mut pages = Counts {
        success: s.pages_ok,
        latency: s.latency.clone(),
        ..Counts::default()
    };
    let steps: Vec<Counts> = s
        .steps
        .iter()
        .map(|st| {
            pages.failure += st.failures;
            pages.error += st.errors;
            pages.bytes += st.bytes;
            pages.decoded_bytes += st.bytes;
            Counts {
                success: st.pages.saturating_sub(st.failures + st.errors),
                failure: st.failures,
                error: st.errors,
                bytes: st.bytes,
                decoded_bytes: st.bytes,
                latency: st.latency.clone(),
                ..Counts::default()
            }
        })
        .collect();
    let bad = s.failures + s.errors;
    MergedCycle {
        index: 0,
        users: s.users,
        window_s: f64::from(WINDOW_S),
        tests: Counts {
            success: s.tests_ok,
            ..Counts::default()
        },
        requests: Counts {
            success: s.requests.saturating_sub(bad),
            failure: s.failures,
            error: s.errors,
            ..Counts::default()
        },
        tests_ok_per_s: s.tests_ok as f64,
        pages_ok_per_s: s.pages_ok as f64,
        requests_per_s: s.requests as f64,
        steps_ok_per_s: steps.iter().map(|c| c.success as f64).collect(),
        steps,
        pages,
        nodes: 1,
        ..MergedCycle::default()
    }
}
