//! Thresholds: pass-or-fail limits on a run's merged figures, as a test defines them
//! (`[[threshold]]`) and a result carries them, so that a stored run can be judged again.

use std::fmt;

use crate::words::words;

words! {
    /// What a threshold measures.
    pub enum Metric {
        /// Latency percentiles of pages (or of one step), ms.
        P50 => "p50",
        P90 => "p90",
        P95 => "p95",
        P99 => "p99",
        P999 => "p99.9",
        /// Highest latency, ms.
        Max => "max",
        /// Mean latency, ms.
        Mean => "mean",
        /// Pages that failed or erred / all pages, a fraction from 0 to 1.
        ErrorRate => "error_rate",
        /// Requests per second, successful or not.
        Rps => "rps",
        /// Successful pages per second.
        Spps => "spps",
        /// Successful tests per second.
        Stps => "stps",
        /// Apdex score of pages, 0 to 1.
        Apdex => "apdex",
    }
}

/// The kinds of limits: what unit a limit is written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A time, kept in ms (`"300ms"`, `"1.5s"` in a test).
    Latency,
    /// A share, kept as a fraction 0-1 (`"1%"` or `0.01` in a test).
    Ratio,
    /// A number per second.
    Rate,
    /// A score from 0 to 1.
    Score,
}

impl Metric {
    /// The unit its limit is written in.
    pub fn kind(self) -> Kind {
        match self {
            Metric::P50
            | Metric::P90
            | Metric::P95
            | Metric::P99
            | Metric::P999
            | Metric::Max
            | Metric::Mean => Kind::Latency,
            Metric::ErrorRate => Kind::Ratio,
            Metric::Rps | Metric::Spps | Metric::Stps => Kind::Rate,
            Metric::Apdex => Kind::Score,
        }
    }

    /// True for metrics that can be taken at one step: not `rps` (requests are not counted
    /// per step) nor `stps` (a test is every step).
    pub fn per_step(self) -> bool {
        !matches!(self, Metric::Rps | Metric::Stps)
    }
}

words! {
    /// Which cycles a threshold judges.
    pub enum Scope {
        /// Every cycle on its own must pass (the default).
        Each => "each",
        /// The last cycle that ran.
        Last => "last",
        /// The whole run: every cycle merged, histograms added exactly.
        All => "all",
    }
}

impl Scope {
    /// In words: `every cycle`, `last cycle`, `whole run`.
    pub fn words(self) -> &'static str {
        match self {
            Scope::Each => "every cycle",
            Scope::Last => "last cycle",
            Scope::All => "whole run",
        }
    }
}

words! {
    /// Which side of the limit passes, spelled as in a test file.
    pub enum Bound {
        /// The value must be at most the limit.
        Max => "max",
        /// The value must be at least the limit.
        Min => "min",
    }
}

/// One threshold, validated.
#[derive(Debug, Clone, PartialEq)]
pub struct Threshold {
    pub metric: Metric,
    /// The step it is taken at; `None` for all pages.
    pub step: Option<String>,
    pub scope: Scope,
    pub bound: Bound,
    /// The limit in the metric's unit: ms for latencies, a fraction 0-1 for `error_rate`,
    /// per second for rates, the score for `apdex`. Finite and not negative.
    pub limit: f64,
    /// Also evaluated live, stopping the run when broken (stored; the live evaluation is not
    /// implemented yet).
    pub abort: bool,
    /// How long it must stay broken before a live abort, s.
    pub abort_after_s: f64,
}

impl Threshold {
    /// True when `value` (in the metric's unit) is on the passing side of the limit.
    pub fn passes(&self, value: f64) -> bool {
        match self.bound {
            Bound::Max => value <= self.limit,
            Bound::Min => value >= self.limit,
        }
    }

    /// `value` in the metric's unit, for reading: `412.5 ms`, `1.2 %`, `950/s`, `0.93`.
    pub fn format(&self, value: f64) -> String {
        match self.metric.kind() {
            // Sub-10 ms values keep µs precision: `0.25 ms`, `6.523 ms`, `412.5 ms`.
            Kind::Latency => format!("{} ms", short(value, if value < 10.0 { 3 } else { 1 })),
            Kind::Ratio => format!("{} %", short(value * 100.0, 3)),
            Kind::Rate => format!("{}/s", short(value, 1)),
            Kind::Score => short(value, 3),
        }
    }

    /// The limit in words: `≤ 300 ms`, `≥ 1000/s`.
    pub fn limit_text(&self) -> String {
        let sign = match self.bound {
            Bound::Max => "≤",
            Bound::Min => "≥",
        };
        format!("{sign} {}", self.format(self.limit))
    }

    /// What it is taken at: `all pages` or `step "login"`.
    pub fn subject(&self) -> String {
        match &self.step {
            Some(s) => format!("step {s:?}"),
            None => "all pages".into(),
        }
    }
}

impl fmt::Display for Threshold {
    /// `p95 of all pages ≤ 300 ms`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if !self.metric.per_step() {
            return write!(f, "{} {}", self.metric.as_str(), self.limit_text());
        }
        write!(
            f,
            "{} of {} {}",
            self.metric.as_str(),
            self.subject(),
            self.limit_text()
        )
    }
}

/// `x` with at most `d` decimals, trailing zeros dropped: `300`, `1.5`, `0.125`.
fn short(x: f64, d: usize) -> String {
    let s = format!("{x:.d$}");
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_limits_read_well() {
        crate::words::assert_round_trip(Metric::ALL);
        crate::words::assert_round_trip(Scope::ALL);
        let t = Threshold {
            metric: Metric::ErrorRate,
            step: Some("login".into()),
            scope: Scope::Each,
            bound: Bound::Max,
            limit: 0.01,
            abort: false,
            abort_after_s: 0.0,
        };
        assert_eq!(t.to_string(), "error_rate of step \"login\" ≤ 1 %");
        assert!(t.passes(0.01) && !t.passes(0.0101));
        let t = Threshold {
            metric: Metric::P95,
            bound: Bound::Min,
            limit: 1500.0,
            ..t
        };
        assert_eq!(t.limit_text(), "≥ 1500 ms");
        assert_eq!(t.format(412.46), "412.5 ms");
    }
}
