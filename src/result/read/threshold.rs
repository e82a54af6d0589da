//! Reading `<thresholds>`: each `<threshold>` checked as strictly as a test file's, since a
//! stored run is judged again from it.

use std::io::BufRead;

use super::events::{FromAttr, Parser};
use super::ReadError;
use crate::result::threshold::{Bound, Metric, Scope, Threshold};

impl FromAttr for Metric {
    fn from_attr(s: &str) -> Result<Self, &'static str> {
        s.parse().map_err(|_| Metric::EXPECTED)
    }
}

impl FromAttr for Scope {
    fn from_attr(s: &str) -> Result<Self, &'static str> {
        s.parse().map_err(|_| Scope::EXPECTED)
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

#[cfg(test)]
mod tests {
    use crate::result::read::{from_reader, ReadError};
    use crate::result::threshold::{Bound, Metric, Scope};

    /// A smallest result with `thresholds` as its `<thresholds>` children.
    fn doc(thresholds: &str) -> Result<crate::result::NodeResult, ReadError> {
        let xml = format!(
            "<benchmaster-result format=\"1\" tool-version=\"0\" started-unix-ms=\"0\">\
             <node number=\"0\" count=\"1\" host=\"h\" run=\"\" start-delay-ms=\"0\"/>\
             <test name=\"t\" url=\"http://x/\"></test>\
             <config cycles=\"1\" duration-s=\"1\" startup-delay-s=\"0\" sleep-time-min-s=\"0\" \
             sleep-time-max-s=\"0\" sleep-time-s=\"0\" cycle-time-s=\"0\" apdex-t-s=\"1.5\" \
             ok-codes=\"200\" timeout-s=\"1\" model=\"closed\"/>\
             <thresholds>{thresholds}</thresholds><steps/><cycles/>\
             <end interrupted=\"false\" finished-unix-ms=\"0\"/></benchmaster-result>"
        );
        from_reader(xml.as_bytes(), "t.xml")
    }

    #[test]
    fn thresholds_read_back_and_bad_ones_are_refused() {
        let r = doc(
            "<threshold metric=\"p99.9\" cycle=\"all\" min=\"2\" abort=\"false\" \
                     abort-after-s=\"0\"/><future/>",
        )
        .unwrap();
        let t = &r.config.thresholds[0];
        assert_eq!(
            (t.metric, t.scope, t.bound, t.limit),
            (Metric::P999, Scope::All, Bound::Min, 2.0)
        );
        for bad in [
            "metric=\"p96\" cycle=\"each\" max=\"1\"",
            "metric=\"p95\" cycle=\"first\" max=\"1\"",
            "metric=\"p95\" cycle=\"each\"",
            "metric=\"p95\" cycle=\"each\" max=\"1\" min=\"1\"",
            "metric=\"p95\" cycle=\"each\" max=\"-1\"",
        ] {
            let e = doc(&format!(
                "<threshold {bad} abort=\"false\" abort-after-s=\"0\"/>"
            ));
            assert!(e.is_err(), "{bad} was accepted");
        }
    }
}
