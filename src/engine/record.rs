//! Recording what users measure. Each worker thread owns one [`Recorder`] (no lock on the hot
//! path); the recorders are merged once the run is over.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use super::tally::Tally;

use crate::result::{
    Counts, CycleResult, ErrorGroup, ErrorKind, ErrorSample, PageResources, SecondSample,
    MAX_ERROR_GROUPS, MAX_ERROR_SAMPLES, MAX_SAMPLE_BODY,
};

/// How a request, page or test ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Success,
    Failure,
    Error,
}

/// A cycle's measured window: things completing in `[start, end)` count in the cycle.
#[derive(Debug, Clone, Copy)]
pub struct Window {
    pub cycle: u32,
    pub start: Instant,
    pub end: Instant,
}

impl Window {
    fn holds(&self, t: Instant) -> bool {
        t >= self.start && t < self.end
    }
}

/// What a failure or error looked like, for the error groups.
pub struct ErrorReport<'a> {
    pub step: usize,
    pub kind: ErrorKind,
    pub detail: String,
    pub url: &'a str,
    pub status: Option<u16>,
    pub body: &'a [u8],
}

/// One worker's measurements.
pub struct Recorder {
    t0: Instant,
    steps: usize,
    /// Scenarios counted apart (0 for a test of top-level steps).
    scenarios: usize,
    cycles: Vec<CycleResult>,
    /// Per-second counts, by second of the run (taken from the completion time); their
    /// `second`, `cycle` and `users` are filled in by [`Recorder::finish`] and the controller.
    seconds: Vec<SecondSample>,
    errors: Vec<ErrorGroup>,
    /// (step, kind, detail) → index in `errors`.
    error_index: HashMap<(String, ErrorKind, String), usize>,
    step_names: Vec<String>,
    /// The last instant placed by [`Recorder::place`].
    placed: Option<Placed>,
    /// The latest second's tally, for the live stream and the latency intervals; things are
    /// recorded in completion order (each right after its end is taken, on this thread), so a
    /// second, once passed, takes nothing more.
    live: Tally,
    /// Past seconds' tallies not yet taken by [`Recorder::take_tallies`].
    closed: Vec<Tally>,
    /// When the first user began (see [`Recorder::began`]).
    began: Option<Instant>,
}

/// An instant already placed: its cycle, second of the run and whether it was in the window.
struct Placed {
    t: Instant,
    cycle: u32,
    second: usize,
    holds: bool,
}

impl Recorder {
    pub fn new(t0: Instant, step_names: Vec<String>, scenarios: usize) -> Recorder {
        Recorder {
            t0,
            steps: step_names.len(),
            scenarios,
            cycles: Vec::new(),
            seconds: Vec::new(),
            errors: Vec::new(),
            error_index: HashMap::new(),
            live: Tally::new(0, step_names.len()),
            step_names,
            placed: None,
            closed: Vec::new(),
            began: None,
        }
    }

    /// A user began at `t` (its first execution, once its start was due).
    pub fn user_began(&mut self, t: Instant) {
        self.began = Some(self.began.map_or(t, |b| b.min(t)));
    }

    /// When the first user began, if one did.
    pub fn began(&self) -> Option<Instant> {
        self.began
    }

    /// The tally of `second`: a later second closes the current one; an earlier one (which
    /// the completion order rules out) counts in the current one, so nothing is lost.
    #[inline]
    fn live(&mut self, second: usize) -> &mut Tally {
        if second as u32 > self.live.second {
            self.roll(second as u32);
        }
        &mut self.live
    }

    #[cold]
    fn roll(&mut self, second: u32) {
        let done = std::mem::replace(&mut self.live, Tally::new(second, self.steps));
        if !done.is_empty() {
            self.closed.push(done);
        }
    }

    /// The tallies of the seconds before `upto`, taken once: each thing completed is in
    /// exactly one tally taken.
    pub fn take_tallies(&mut self, upto: u32) -> Vec<Tally> {
        if self.live.second < upto {
            self.roll(upto);
        }
        let later = self.closed.iter().position(|t| t.second >= upto);
        let rest = later.map_or_else(Vec::new, |i| self.closed.split_off(i));
        std::mem::replace(&mut self.closed, rest)
    }

    /// Sets when the run started; per-second counts are taken from it.
    pub fn set_origin(&mut self, t0: Instant) {
        self.t0 = t0;
        self.placed = None;
    }

    fn cycle(&mut self, cycle: u32) -> &mut CycleResult {
        while self.cycles.len() <= cycle as usize {
            let index = self.cycles.len() as u32;
            self.cycles.push(CycleResult {
                index,
                steps: vec![Counts::default(); self.steps],
                scenarios: vec![Counts::default(); self.scenarios],
                ..CycleResult::default()
            });
        }
        &mut self.cycles[cycle as usize]
    }

    /// Where `t` counts: its second of the run and whether it is in `w`. A page and its test
    /// mostly complete at the very instant of their last request, so the last answer is kept.
    fn place(&mut self, w: &Window, t: Instant) -> (usize, bool) {
        if let Some(p) = &self.placed {
            if p.t == t && p.cycle == w.cycle {
                return (p.second, p.holds);
            }
        }
        let second = t.saturating_duration_since(self.t0).as_secs() as usize;
        if self.seconds.len() <= second {
            self.seconds.resize(second + 1, SecondSample::default());
        }
        let holds = w.holds(t);
        self.placed = Some(Placed {
            t,
            cycle: w.cycle,
            second,
            holds,
        });
        (second, holds)
    }

    /// WebSocket messages step `step` received, its exchange completed at `done`.
    pub fn messages(&mut self, w: &Window, step: usize, done: Instant, n: u64) {
        let (_, holds) = self.place(w, done);
        if holds && n > 0 {
            self.cycle(w.cycle).steps[step].messages += n;
        }
    }

    /// One HTTP exchange (a redirect is one too) completed at `done`.
    pub fn request(
        &mut self,
        w: &Window,
        done: Instant,
        latency: Duration,
        outcome: Verdict,
        bytes: impl Into<BodySize>,
    ) {
        let bytes = bytes.into();
        let (second, holds) = self.place(w, done);
        self.live(second).request(outcome);
        let s = &mut self.seconds[second];
        s.requests += 1;
        match outcome {
            Verdict::Success => {}
            Verdict::Failure => s.failures += 1,
            Verdict::Error => s.errors += 1,
        }
        let c = self.cycle(w.cycle);
        if holds {
            add(&mut c.requests, latency, outcome, bytes);
        } else {
            c.outside.requests += 1;
        }
    }

    /// One page (step) completed at `done`.
    pub fn page(
        &mut self,
        w: &Window,
        step: usize,
        done: Instant,
        latency: Duration,
        outcome: Verdict,
        bytes: impl Into<BodySize>,
    ) {
        let bytes = bytes.into();
        let (second, holds) = self.place(w, done);
        self.live(second).page(step, latency, outcome, bytes.wire);
        if outcome == Verdict::Success {
            self.seconds[second].pages_ok += 1;
        }
        let c = self.cycle(w.cycle);
        if holds {
            // Only per step: all pages are the sum of the steps, added up in `finish`.
            add(&mut c.steps[step], latency, outcome, bytes);
        } else {
            c.outside.pages += 1;
        }
    }

    /// The resources of a page of step `step` completed at `done` (recorded right after the
    /// page, so they count where it does).
    pub fn resources(&mut self, w: &Window, step: usize, done: Instant, r: &PageResources) {
        let (_, holds) = self.place(w, done);
        if holds {
            self.cycle(w.cycle).steps[step].resources.add(r);
        }
    }

    /// One execution of the whole test, of scenario `scenario`, completed at `done`.
    pub fn test(
        &mut self,
        w: &Window,
        done: Instant,
        latency: Duration,
        outcome: Verdict,
        scenario: usize,
    ) {
        let (second, holds) = self.place(w, done);
        if outcome == Verdict::Success {
            self.live(second).tests_ok += 1;
            self.seconds[second].tests_ok += 1;
        }
        let c = self.cycle(w.cycle);
        if holds {
            add(&mut c.tests, latency, outcome, BodySize::default());
            // Absent for a test of top-level steps: it is all of `tests`.
            if let Some(s) = c.scenarios.get_mut(scenario) {
                add(s, latency, outcome, BodySize::default());
            }
        } else {
            c.outside.tests += 1;
        }
    }

    /// Open model: an execution was due but every user was busy.
    pub fn dropped(&mut self, w: &Window) {
        self.cycle(w.cycle).dropped += 1;
    }

    /// A failure or an error, grouped by step, kind and detail.
    pub fn error(&mut self, at: Instant, e: ErrorReport<'_>) {
        let step = self.step_names.get(e.step).cloned().unwrap_or_default();
        let mut key = (step, e.kind, e.detail);
        if !self.error_index.contains_key(&key) && self.errors.len() >= MAX_ERROR_GROUPS - 1 {
            key = (
                String::new(),
                ErrorKind::Other,
                "further kinds of errors".into(),
            );
        }
        let at_ms = at.saturating_duration_since(self.t0).as_millis() as u64;
        let index = match self.error_index.get(&key) {
            Some(&i) => i,
            None => {
                self.errors.push(ErrorGroup {
                    step: key.0.clone(),
                    kind: key.1,
                    detail: key.2.clone(),
                    count: 0,
                    samples: Vec::new(),
                });
                self.error_index.insert(key, self.errors.len() - 1);
                self.errors.len() - 1
            }
        };
        let group = &mut self.errors[index];
        group.count += 1;
        if group.samples.len() < MAX_ERROR_SAMPLES {
            let body = &e.body[..e.body.len().min(MAX_SAMPLE_BODY)];
            group.samples.push(ErrorSample {
                url: e.url.to_string(),
                status: e.status,
                at_ms,
                body: String::from_utf8_lossy(body).into_owned(),
            });
        }
    }

    /// Adds another worker's measurements into this one.
    pub fn merge(&mut self, other: Recorder) {
        if let Some(t) = other.began {
            self.user_began(t);
        }
        for c in other.cycles {
            let mine = self.cycle(c.index);
            mine.tests.merge(&c.tests);
            mine.requests.merge(&c.requests);
            for (m, o) in mine.steps.iter_mut().zip(&c.steps) {
                m.merge(o);
            }
            for (m, o) in mine.scenarios.iter_mut().zip(&c.scenarios) {
                m.merge(o);
            }
            mine.outside.add(&c.outside);
            mine.dropped += c.dropped;
        }
        if self.seconds.len() < other.seconds.len() {
            self.seconds
                .resize(other.seconds.len(), SecondSample::default());
        }
        for (m, o) in self.seconds.iter_mut().zip(&other.seconds) {
            m.merge(o);
        }
        for g in other.errors {
            let key = (g.step.clone(), g.kind, g.detail.clone());
            match self.error_index.get(&key) {
                Some(&i) => self.errors[i].absorb(g),
                None => {
                    self.errors.push(g);
                    self.error_index.insert(key, self.errors.len() - 1);
                }
            }
        }
    }

    /// The per-cycle results, the per-second series (without users and cycle, which the
    /// controller knows) and the error groups.
    pub fn finish(
        mut self,
        cycles: usize,
    ) -> (Vec<CycleResult>, Vec<SecondSample>, Vec<ErrorGroup>) {
        if cycles > 0 {
            self.cycle(cycles as u32 - 1);
        }
        for c in &mut self.cycles {
            for step in &c.steps {
                c.pages.merge(step);
            }
        }
        for (i, s) in self.seconds.iter_mut().enumerate() {
            s.second = i as u32;
        }
        (self.cycles, self.seconds, self.errors)
    }
}

/// Body bytes of an answer, or of a page's answers: as they came over the wire, and decoded.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BodySize {
    /// Over the wire (compressed when the server compressed), bytes.
    pub wire: u64,
    /// Decoded, bytes.
    pub decoded: u64,
}

/// Bytes that came as they are (WebSocket messages, a generator's operations).
impl From<u64> for BodySize {
    fn from(n: u64) -> BodySize {
        BodySize {
            wire: n,
            decoded: n,
        }
    }
}

impl std::ops::AddAssign for BodySize {
    fn add_assign(&mut self, other: BodySize) {
        self.wire += other.wire;
        self.decoded += other.decoded;
    }
}

fn add(counts: &mut Counts, latency: Duration, outcome: Verdict, bytes: BodySize) {
    match outcome {
        Verdict::Success => counts.success += 1,
        Verdict::Failure => counts.failure += 1,
        Verdict::Error => {
            counts.error += 1;
            return;
        }
    }
    counts.bytes += bytes.wire;
    counts.decoded_bytes += bytes.decoded;
    let us = (latency.as_micros() as u64).clamp(1, crate::result::HISTOGRAM_MAX_US);
    counts.latency.saturating_record(us);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_decides_where_a_request_counts() {
        let t0 = Instant::now();
        let w = Window {
            cycle: 0,
            start: t0 + Duration::from_secs(1),
            end: t0 + Duration::from_secs(2),
        };
        let mut r = Recorder::new(t0, vec!["a".into()], 0);
        let ms = Duration::from_millis;
        r.request(&w, t0 + ms(500), ms(5), Verdict::Success, 10);
        r.request(&w, t0 + ms(1500), ms(5), Verdict::Success, 10);
        r.request(&w, t0 + ms(1600), ms(7), Verdict::Failure, 3);
        let gzipped = BodySize {
            wire: 4,
            decoded: 40,
        };
        r.request(&w, t0 + ms(1650), ms(7), Verdict::Success, gzipped);
        r.request(&w, t0 + ms(1700), ms(7), Verdict::Error, 0);
        r.request(&w, t0 + ms(2000), ms(5), Verdict::Success, 10);
        let (cycles, series, _) = r.finish(1);
        let c = &cycles[0];
        assert_eq!(
            (c.requests.success, c.requests.failure, c.requests.error),
            (2, 1, 1)
        );
        // Wire and decoded bytes apart; plain bodies count the same in both.
        assert_eq!((c.requests.bytes, c.requests.decoded_bytes), (17, 53));
        assert_eq!(c.requests.latency.len(), 3);
        assert_eq!(c.outside.requests, 2);
        assert_eq!(series.iter().map(|s| s.requests).sum::<u64>(), 6);
        assert_eq!(series[1].failures + series[1].errors, 2);
    }

    #[test]
    fn tallies_are_taken_once_each_by_second() {
        let t0 = Instant::now();
        let w = Window {
            cycle: 0,
            start: t0,
            end: t0 + Duration::from_secs(10),
        };
        let ms = Duration::from_millis;
        let mut r = Recorder::new(t0, vec!["a".into(), "b".into()], 1);
        for (at, step) in [(100, 0), (900, 1), (1200, 0), (2500, 1), (2600, 1)] {
            r.request(&w, t0 + ms(at), ms(4), Verdict::Success, 1);
            r.page(&w, step, t0 + ms(at), ms(4), Verdict::Success, 1);
        }
        r.test(&w, t0 + ms(2600), ms(9), Verdict::Success, 0);
        let first = r.take_tallies(1);
        assert_eq!(first.len(), 1);
        assert_eq!((first[0].second, first[0].requests), (0, 2));
        assert_eq!(first[0].steps[1].latency.as_ref().unwrap().len(), 1);
        assert!(r.take_tallies(1).is_empty());
        let rest = r.take_tallies(u32::MAX);
        assert_eq!(rest.iter().map(|t| t.second).collect::<Vec<_>>(), [1, 2]);
        assert_eq!(
            (rest[1].requests, rest[1].tests_ok, rest[1].pages_ok),
            (2, 1, 2)
        );
    }

    #[test]
    fn merge_adds_everything_and_groups_errors() {
        let t0 = Instant::now();
        let w = Window {
            cycle: 1,
            start: t0,
            end: t0 + Duration::from_secs(10),
        };
        let mk = || {
            let mut r = Recorder::new(t0, vec!["home".into()], 0);
            r.page(
                &w,
                0,
                t0 + Duration::from_millis(10),
                Duration::from_millis(3),
                Verdict::Success,
                5,
            );
            r.error(
                t0,
                ErrorReport {
                    step: 0,
                    kind: ErrorKind::Status,
                    detail: "HTTP 500".into(),
                    url: "http://x/",
                    status: Some(500),
                    body: b"oops",
                },
            );
            r
        };
        let mut a = mk();
        a.merge(mk());
        let (cycles, _, errors) = a.finish(2);
        assert_eq!(cycles.len(), 2);
        assert_eq!(cycles[1].pages.success, 2);
        assert_eq!(cycles[1].steps[0].latency.len(), 2);
        assert_eq!(errors.len(), 1);
        assert_eq!(errors[0].count, 2);
        assert_eq!(errors[0].samples.len(), 2);
    }

    #[test]
    fn pages_are_the_sum_of_the_steps_within_the_window() {
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        let w = Window {
            cycle: 0,
            start: t0,
            end: t0 + Duration::from_secs(1),
        };
        let mk = |offset: u64| {
            let mut r = Recorder::new(t0, vec!["home".into(), "search".into()], 0);
            r.page(&w, 0, t0 + ms(10 + offset), ms(3), Verdict::Success, 5);
            r.page(&w, 1, t0 + ms(20 + offset), ms(40), Verdict::Failure, 7);
            r.page(&w, 1, t0 + ms(30 + offset), ms(9), Verdict::Error, 0);
            // After the window: counted outside, in no histogram.
            r.page(&w, 0, t0 + ms(1500), ms(2), Verdict::Success, 5);
            r
        };
        let mut r = mk(0);
        r.merge(mk(100));
        let (cycles, series, _) = r.finish(1);
        let c = &cycles[0];
        assert_eq!(
            (
                c.pages.success,
                c.pages.failure,
                c.pages.error,
                c.pages.bytes
            ),
            (2, 2, 2, 24)
        );
        assert_eq!(c.pages.latency.len(), 4);
        assert_eq!(c.pages.latency.max(), c.steps[1].latency.max());
        assert_eq!(c.pages.latency.min(), c.steps[0].latency.min());
        assert_eq!(c.outside.pages, 2);
        assert_eq!(series.iter().map(|s| s.pages_ok).sum::<u64>(), 4);
    }
}
