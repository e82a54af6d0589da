//! One line of a generator's stdout: a JSON object per operation,
//! `{"step":"put","ms":12.5,"ok":true,"bytes":1048576}`, parsed and checked into an [`Op`].
//!
//! `ok` defaults to true, or to false when `error` is given. An operation with `ms` was answered
//! (a success, or a failure whose latency counts); one without `ms` that is not ok got no
//! answer (an error: no latency). `error` is the failure's detail, `kind` its kind (the result's
//! words: `status`, `check`, `timeout`, ...). Other keys are ignored.

use std::collections::HashMap;
use std::time::Duration;

use serde::Deserialize;

use crate::engine::record::Verdict;
use crate::result::{ErrorKind, HISTOGRAM_MAX_US};

/// An operation as the program reported it.
#[derive(Debug, PartialEq)]
pub struct Op {
    /// Index of its step in the declared steps.
    pub step: usize,
    pub verdict: Verdict,
    /// Its latency; zero for an error, which has none.
    pub latency: Duration,
    /// Bytes it moved.
    pub bytes: u64,
    /// The error group of a failure or error: its kind and detail.
    pub fault: Option<(ErrorKind, String)>,
}

/// What is wrong with a line: `what` groups it (`not JSON`), `message` says exactly.
#[derive(Debug, PartialEq)]
pub struct BadLine {
    pub what: &'static str,
    pub message: String,
}

/// The line as serde sees it.
#[derive(Deserialize)]
struct Raw {
    step: String,
    ms: Option<f64>,
    ok: Option<bool>,
    bytes: Option<u64>,
    error: Option<String>,
    kind: Option<ErrorKind>,
}

/// Longest error text kept as a group's detail, bytes.
const MAX_DETAIL: usize = 200;

/// Parses one line against the declared steps (name → index).
pub fn parse(line: &[u8], steps: &HashMap<String, usize>) -> Result<Op, BadLine> {
    let bad = |what, message: String| BadLine { what, message };
    let raw: Raw = serde_json::from_slice(line)
        .map_err(|e| bad("not a JSON object with a \"step\"", e.to_string()))?;
    let Some(&step) = steps.get(&raw.step) else {
        let mut names: Vec<&String> = steps.keys().collect();
        names.sort_by_key(|n| steps[*n]);
        let names: Vec<&str> = names.iter().map(|n| n.as_str()).collect();
        let message = format!(
            "step {:?} is not declared in [generator] steps ({})",
            raw.step,
            names.join(", ")
        );
        return Err(bad("unknown step", message));
    };
    let ok = raw.ok.unwrap_or(raw.error.is_none());
    if ok && raw.error.is_some() {
        return Err(bad(
            "ok with an error",
            "\"ok\" is true but \"error\" is given".into(),
        ));
    }
    let latency = match raw.ms {
        Some(ms) => Some(latency(ms).map_err(|m| bad("bad ms", m))?),
        None if ok => return Err(bad("no ms", "a successful operation needs \"ms\"".into())),
        None => None,
    };
    let verdict = match (ok, latency) {
        (true, _) => Verdict::Success,
        (false, Some(_)) => Verdict::Failure,
        (false, None) => Verdict::Error,
    };
    let fault = (!ok).then(|| {
        let default = match verdict {
            Verdict::Failure => ErrorKind::Check,
            _ => ErrorKind::Other,
        };
        let detail = raw.error.map_or_else(|| "not ok".into(), |e| cut(&e));
        (raw.kind.unwrap_or(default), detail)
    });
    Ok(Op {
        step,
        verdict,
        latency: latency.unwrap_or_default(),
        bytes: raw.bytes.unwrap_or(0),
        fault,
    })
}

/// `ms` as a latency: a finite number from 0 to the histograms' hour.
fn latency(ms: f64) -> Result<Duration, String> {
    let max_ms = (HISTOGRAM_MAX_US / 1000) as f64;
    if !(0.0..=max_ms).contains(&ms) {
        return Err(format!(
            "\"ms\" is {ms}: give milliseconds from 0 to {max_ms}"
        ));
    }
    Ok(Duration::from_secs_f64(ms / 1000.0))
}

/// `text` cut to [`MAX_DETAIL`] bytes at a character boundary.
fn cut(text: &str) -> String {
    let mut end = text.len().min(MAX_DETAIL);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text[..end].to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn steps() -> HashMap<String, usize> {
        [("put".to_string(), 0), ("get".to_string(), 1)].into()
    }

    fn op(line: &str) -> Result<Op, BadLine> {
        parse(line.as_bytes(), &steps())
    }

    #[test]
    fn operations_become_verdicts() {
        let ok = op(r#"{"step":"get","ms":12.5,"ok":true,"bytes":1048576,"key":"x"}"#).unwrap();
        assert_eq!(ok.step, 1);
        assert_eq!(ok.verdict, Verdict::Success);
        assert_eq!(ok.latency, Duration::from_micros(12_500));
        assert_eq!(ok.bytes, 1_048_576);
        assert_eq!(ok.fault, None);
        let failed = op(r#"{"step":"put","ms":3,"error":"HTTP 503"}"#).unwrap();
        assert_eq!(failed.verdict, Verdict::Failure);
        assert_eq!(failed.fault, Some((ErrorKind::Check, "HTTP 503".into())));
        let erred = op(r#"{"step":"put","ok":false,"error":"refused","kind":"connect"}"#).unwrap();
        assert_eq!(erred.verdict, Verdict::Error);
        assert_eq!(erred.latency, Duration::ZERO);
        assert_eq!(erred.fault, Some((ErrorKind::Connect, "refused".into())));
        let bare = op(r#"{"step":"put","ok":false}"#).unwrap();
        assert_eq!(bare.fault, Some((ErrorKind::Other, "not ok".into())));
    }

    #[test]
    fn bad_lines_say_what_is_wrong() {
        let what = |line: &str| op(line).unwrap_err().what;
        assert_eq!(what("hello"), "not a JSON object with a \"step\"");
        assert_eq!(what(r#"{"ms":1}"#), "not a JSON object with a \"step\"");
        assert_eq!(
            what(r#"{"step":"put","ms":"fast"}"#),
            "not a JSON object with a \"step\""
        );
        assert_eq!(what(r#"{"step":"delete","ms":1}"#), "unknown step");
        assert!(op(r#"{"step":"x","ms":1}"#)
            .unwrap_err()
            .message
            .contains("(put, get)"));
        assert_eq!(what(r#"{"step":"put","ms":-1}"#), "bad ms");
        assert_eq!(what(r#"{"step":"put","ms":1e300}"#), "bad ms");
        assert_eq!(what(r#"{"step":"put"}"#), "no ms");
        assert_eq!(
            what(r#"{"step":"put","ms":1,"ok":true,"error":"x"}"#),
            "ok with an error"
        );
        assert_eq!(
            what(r#"{"step":"put","ms":1,"kind":"nope","ok":false}"#),
            "not a JSON object with a \"step\""
        );
    }
}
