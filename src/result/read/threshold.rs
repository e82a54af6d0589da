//! Reading `<thresholds>`: each `<threshold>` checked as strictly as a test file's, since a
//! stored run is judged again from it.

use std::io::BufRead;

use super::events::{FromAttr, Parser};
use super::ReadError;
use crate::result::threshold::{Bound, Metric, Scope, Threshold};

impl FromAttr for Metric {
    fn from_attr(s: &str) -> Result<Self, &'static str> {
        Metric::parse(s)
            .ok_or("expected one of p50 p90 p95 p99 p99.9 max mean error_rate rps spps stps apdex")
    }
}

impl FromAttr for Scope {
    fn from_attr(s: &str) -> Result<Self, &'static str> {
        Scope::parse(s).ok_or("expected each, last or all")
    }
}

impl<R: BufRead> Parser<R> {
    /// The `<threshold>`s of a `<thresholds>`, in order; other children are skipped.
    pub(super) fn thresholds(&mut self) -> Result<Vec<Threshold>, ReadError> {
        let mut out = Vec::new();
        self.children(|p, e| {
            if e.name != "threshold" {
                return p.skip();
            }
            let max: Option<f64> = p.opt_attr(&e, "max")?;
            let min: Option<f64> = p.opt_attr(&e, "min")?;
            let (bound, limit) = match (max, min) {
                (Some(v), None) => (Bound::Max, v),
                (None, Some(v)) => (Bound::Min, v),
                _ => {
                    return Err(p.invalid(e.pos, "<threshold> needs either `max` or `min`"));
                }
            };
            let abort_after_s: f64 = p.attr(&e, "abort-after-s")?;
            if limit < 0.0 || abort_after_s < 0.0 {
                return Err(p.invalid(e.pos, "<threshold> has a negative limit or time"));
            }
            out.push(Threshold {
                metric: p.attr(&e, "metric")?,
                step: p.opt_attr(&e, "step")?,
                scope: p.attr(&e, "cycle")?,
                bound,
                limit,
                abort: p.attr(&e, "abort")?,
                abort_after_s,
            });
            p.skip()
        })?;
        Ok(out)
    }
}
