//! `[[threshold]]`: pass-or-fail limits on the run's merged figures, validated at load time so
//! that a bad one fails `bench-node check` with its file and line, not the run at its end.

use std::fmt::Write;

use serde::Deserialize;
use toml::Spanned;

use super::error::Source;
use super::TestDefError;
use crate::result::threshold::{Bound, Kind, Metric, Scope, Threshold};

/// `[[threshold]]` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawThreshold {
    pub metric: Spanned<String>,
    pub step: Option<Spanned<String>>,
    pub cycle: Option<Spanned<String>>,
    pub max: Option<Spanned<toml::Value>>,
    pub min: Option<Spanned<toml::Value>>,
    pub abort: Option<bool>,
    pub abort_after: Option<Spanned<toml::Value>>,
}

/// The list as the file holds it.
pub(crate) type RawThresholds = Option<Spanned<Vec<Spanned<RawThreshold>>>>;

/// Validates every `[[threshold]]` against the test's step names.
pub(crate) fn thresholds(
    src: &Source<'_>,
    raw: RawThresholds,
    steps: &[String],
) -> Result<Vec<Threshold>, TestDefError> {
    let Some(raw) = raw else {
        return Ok(Vec::new());
    };
    raw.into_inner()
        .into_iter()
        .enumerate()
        .map(|(i, t)| {
            let span = t.span();
            let key = format!("[[threshold]] #{}", i + 1);
            threshold(src, &key, span, t.into_inner(), steps)
        })
        .collect()
}

fn threshold(
    src: &Source<'_>,
    key: &str,
    span: std::ops::Range<usize>,
    raw: RawThreshold,
    steps: &[String],
) -> Result<Threshold, TestDefError> {
    let at = |span: std::ops::Range<usize>, field: &str, msg: String| {
        src.error(span, &format!("{key} {field}"), msg)
    };
    let names: Vec<&str> = Metric::ALL.iter().map(|m| m.as_str()).collect();
    let metric = raw.metric.get_ref().parse::<Metric>().ok().ok_or_else(|| {
        let msg = format!(
            "unknown metric {:?} (expected one of {})",
            raw.metric.get_ref(),
            names.join(", ")
        );
        at(raw.metric.span(), "metric", msg)
    })?;
    let step = step(raw.step.as_ref(), metric, steps).map_err(|(span, m)| at(span, "step", m))?;
    let scope = match &raw.cycle {
        None => Scope::Each,
        Some(c) => c.get_ref().parse::<Scope>().ok().ok_or_else(|| {
            let msg = format!(
                "{:?} is not a cycle choice: each (every cycle must pass), last (the last \
                 cycle) or all (the whole run merged)",
                c.get_ref()
            );
            at(c.span(), "cycle", msg)
        })?,
    };
    let (bound, limit) = bound_and_limit(src, key, span, metric, raw.max, raw.min)?;
    let abort = raw.abort.unwrap_or(false);
    let abort_after_s = match raw.abort_after {
        None => 0.0,
        Some(a) if !abort => {
            return Err(at(
                a.span(),
                "abort_after",
                "applies only with abort = true".into(),
            ));
        }
        Some(a) => seconds(a.get_ref()).map_err(|m| at(a.span(), "abort_after", m))?,
    };
    Ok(Threshold {
        metric,
        step,
        scope,
        bound,
        limit,
        abort,
        abort_after_s,
    })
}

/// `max` or `min` (exactly one), as a limit in the metric's unit.
fn bound_and_limit(
    src: &Source<'_>,
    key: &str,
    span: std::ops::Range<usize>,
    metric: Metric,
    max: Option<Spanned<toml::Value>>,
    min: Option<Spanned<toml::Value>>,
) -> Result<(Bound, f64), TestDefError> {
    let (bound, value) = match (max, min) {
        (Some(v), None) => (Bound::Max, v),
        (None, Some(v)) => (Bound::Min, v),
        (Some(_), Some(v)) => {
            let msg = "give either max or min, not both";
            return Err(src.error(v.span(), &format!("{key} min"), msg));
        }
        (None, None) => {
            let msg = format!(
                "{} needs a limit: max = ... or min = ... ({})",
                metric.as_str(),
                example(metric.kind())
            );
            return Err(src.error(span, key, msg));
        }
    };
    let field = format!("{key} {}", bound.as_str());
    let limit = limit(metric.kind(), value.get_ref()).map_err(|m| {
        src.error(
            value.span(),
            &field,
            format!("{m} ({})", example(metric.kind())),
        )
    })?;
    Ok((bound, limit))
}

/// The step a threshold is taken at, which must exist and suit the metric.
fn step(
    raw: Option<&Spanned<String>>,
    metric: Metric,
    steps: &[String],
) -> Result<Option<String>, (std::ops::Range<usize>, String)> {
    let Some(s) = raw else {
        return Ok(None);
    };
    if !metric.per_step() {
        let hint = if metric == Metric::Rps {
            ", or use spps for one step's pages per second"
        } else {
            ""
        };
        let msg = format!(
            "{} is counted over all steps, not per step: remove `step`{hint}",
            metric.as_str()
        );
        return Err((s.span(), msg));
    }
    if !steps.iter().any(|st| st == s.get_ref()) {
        let known: Vec<&str> = steps.iter().map(String::as_str).collect();
        let msg = format!(
            "no step is named {:?} (the steps are {})",
            s.get_ref(),
            known.join(", ")
        );
        return Err((s.span(), msg));
    }
    Ok(Some(s.get_ref().clone()))
}

/// How a limit of `kind` is written.
fn example(kind: Kind) -> &'static str {
    match kind {
        Kind::Latency => "a time with its unit, e.g. \"300ms\" or \"1.5s\"",
        Kind::Ratio => "a percentage such as \"1%\", or a fraction from 0 to 1 such as 0.01",
        Kind::Rate => "a number per second, e.g. 1000",
        Kind::Score => "a score from 0 to 1, e.g. 0.9",
    }
}

/// A limit in the metric's unit (ms, fraction, per second, score).
fn limit(kind: Kind, value: &toml::Value) -> Result<f64, String> {
    let number = match value {
        toml::Value::Integer(i) => Some(*i as f64),
        toml::Value::Float(f) => Some(*f),
        _ => None,
    };
    let v = match (kind, value, number) {
        (Kind::Latency, toml::Value::String(s), _) => time_s(s)? * 1000.0,
        (Kind::Latency, _, Some(n)) => return Err(format!("{n} has no unit")),
        (Kind::Ratio, toml::Value::String(s), _) => {
            let pct = s
                .trim()
                .strip_suffix('%')
                .ok_or_else(|| format!("{s:?} is not a percentage"))?;
            let pct: f64 = pct
                .trim()
                .parse()
                .map_err(|_| format!("{s:?} is not a percentage"))?;
            if pct > 100.0 {
                return Err(format!("{s:?} is more than 100 %"));
            }
            pct / 100.0
        }
        (Kind::Ratio, _, Some(n)) if n > 1.0 => {
            return Err(format!(
                "{n} is more than 1 (write \"{n}%\" for a percentage)"
            ))
        }
        (Kind::Rate | Kind::Score | Kind::Ratio, _, Some(n)) => n,
        _ => return Err(format!("{value} does not fit this metric")),
    };
    if !v.is_finite() || v < 0.0 {
        return Err(format!("{value} must not be negative"));
    }
    if kind == Kind::Score && v > 1.0 {
        return Err(format!("{value} is more than 1"));
    }
    Ok(v)
}

/// `abort_after`: a number of seconds or a time with its unit, not negative.
fn seconds(value: &toml::Value) -> Result<f64, String> {
    let s = match value {
        toml::Value::Integer(i) => *i as f64,
        toml::Value::Float(f) => *f,
        toml::Value::String(s) => time_s(s)?,
        _ => return Err(format!("{value} is not a time: give e.g. \"10s\"")),
    };
    if !s.is_finite() || s < 0.0 {
        return Err(format!("{value} must not be negative"));
    }
    Ok(s)
}

/// `"300ms"`, `"1.5s"`, `"250us"`, `"2min"` in seconds.
fn time_s(text: &str) -> Result<f64, String> {
    let t = text.trim();
    if t.starts_with('-') {
        return Err(format!("{text:?} must not be negative"));
    }
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (number, unit) = t.split_at(split);
    let scale = match unit.trim() {
        "us" | "µs" => 1e-6,
        "ms" => 1e-3,
        "s" => 1.0,
        "m" | "min" => 60.0,
        "" => return Err(format!("{text:?} has no unit")),
        _ => return Err(format!("{text:?}: unknown unit (use us, ms, s or min)")),
    };
    let n: f64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a time"))?;
    Ok(n * scale)
}

/// The thresholds as `bench-node check` prints them.
pub(crate) fn describe(out: &mut String, thresholds: &[Threshold]) -> std::fmt::Result {
    if thresholds.is_empty() {
        return Ok(());
    }
    writeln!(
        out,
        "thresholds {} (judged on the merged cluster result; exit code 4 when one fails)",
        thresholds.len()
    )?;
    for (i, t) in thresholds.iter().enumerate() {
        write!(out, "  {:>2}. {t}, {}", i + 1, t.scope.words())?;
        if t.abort {
            write!(
                out,
                "; live: each second of the cluster judged alone, {} s broken in a row stop \
                 every node",
                t.abort_after_s
            )?;
        }
        writeln!(out)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_take_the_unit_of_their_metric() {
        let s = |v: &str| toml::Value::String(v.into());
        assert_eq!(limit(Kind::Latency, &s("300ms")), Ok(300.0));
        assert_eq!(limit(Kind::Latency, &s("1.5s")), Ok(1500.0));
        assert_eq!(limit(Kind::Latency, &s("250 us")), Ok(0.25));
        assert!(limit(Kind::Latency, &toml::Value::Integer(300)).is_err());
        assert!(limit(Kind::Latency, &s("-3ms")).is_err());
        assert!(limit(Kind::Latency, &s("3 parsecs")).is_err());
        assert_eq!(limit(Kind::Ratio, &s("1%")), Ok(0.01));
        assert_eq!(limit(Kind::Ratio, &toml::Value::Float(0.05)), Ok(0.05));
        assert!(limit(Kind::Ratio, &toml::Value::Integer(5)).is_err());
        assert!(limit(Kind::Ratio, &s("101%")).is_err());
        assert_eq!(limit(Kind::Rate, &toml::Value::Integer(1000)), Ok(1000.0));
        assert!(limit(Kind::Rate, &s("1000/s")).is_err());
        assert!(limit(Kind::Rate, &toml::Value::Integer(-1)).is_err());
        assert!(limit(Kind::Score, &toml::Value::Float(1.2)).is_err());
        assert_eq!(seconds(&s("10s")), Ok(10.0));
        assert_eq!(seconds(&toml::Value::Float(2.5)), Ok(2.5));
    }
}
