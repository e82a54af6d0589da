//! Loading a test file: parse with spans, validate every value, compile templates, apply the
//! command-line overrides.

use std::collections::HashSet;
use std::ops::Range;
use std::path::Path;
use std::time::Duration;

use hyper::header::{HeaderName, HeaderValue};
use hyper::Method;
use toml::Spanned;
use url::Url;

use super::error::{from_toml, read_text, Source};
use super::raw::{OneOrMany, RawBench, RawCapture, RawFile, RawService, RawStep};
use super::request::{is_absolute, JsonBody};
use super::{
    Bench, Body, Capture, CaptureSource, Check, Overrides, Service, Step, Template, TestDefError,
    TestPlan, BUILTINS,
};

/// Status codes a page may answer with by default.
pub const DEFAULT_OK_CODES: [u16; 5] = [200, 301, 302, 303, 307];

/// Loads, validates and compiles the test file at `path`, then applies `overrides` (`-c`,
/// `-D`, `-u`), which are validated too.
pub fn load(path: &Path, overrides: &Overrides) -> Result<TestPlan, TestDefError> {
    let text = read_text(path)?;
    let src = Source { path, text: &text };
    let raw: RawFile = parse(&src)?;
    let mut plan = build(&src, raw)?;

    if let Some(url) = &overrides.url {
        plan.url = check_base_url(url).map_err(|message| TestDefError::Override {
            option: "-u".into(),
            message,
        })?;
    }
    if let Some(cycles) = &overrides.cycles {
        if cycles.is_empty() || cycles.contains(&0) {
            return Err(TestDefError::Override {
                option: "-c".into(),
                message: format!("{cycles:?}: needs at least one cycle, each of at least 1 user"),
            });
        }
        plan.bench.cycles = cycles.clone();
    }
    if let Some(duration) = overrides.duration {
        if duration.is_zero() {
            return Err(TestDefError::Override {
                option: "-D".into(),
                message: "the duration of a cycle must be more than 0 seconds".into(),
            });
        }
        plan.bench.duration = duration;
    }
    Ok(plan)
}

/// Checks a base URL: absolute, `http` or `https`, with a host.
pub(crate) fn check_base_url(text: &str) -> Result<Url, String> {
    let hint = |e: &dyn std::fmt::Display| {
        if text.contains("://") {
            format!("invalid URL `{text}`: {e}")
        } else {
            format!("invalid URL `{text}`: {e} (write it whole, e.g. `http://{text}`)")
        }
    };
    let url = Url::parse(text.trim()).map_err(|e| hint(&e))?;
    if !text.contains("://") {
        return Err(hint(&"no scheme"));
    }
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!(
            "invalid URL `{text}`: the scheme must be http or https, not `{}`",
            url.scheme()
        ));
    }
    if !url.host_str().is_some_and(|h| !h.is_empty()) {
        return Err(format!("invalid URL `{text}`: no host"));
    }
    Ok(url)
}

/// Deserialises the file, turning serde errors into located ones.
fn parse(src: &Source<'_>) -> Result<RawFile, TestDefError> {
    serde_path_to_error::deserialize(toml::Deserializer::new(src.text)).map_err(|e| {
        use serde_path_to_error::Segment;
        let mut segments: Vec<&Segment> = e
            .path()
            .iter()
            .filter(|s| !matches!(s, Segment::Map { key } if key.starts_with("$__")))
            .collect();
        // The path of an unknown key ends with that key; the table is what we name.
        if e.inner().message().starts_with("unknown field") {
            segments.pop();
        }
        let (section, field) = place(&segments);
        from_toml(src, e.inner(), &section, field.as_deref())
    })
}

/// The human name of the table a serde path is in, and the key inside it.
fn place(segments: &[&serde_path_to_error::Segment]) -> (String, Option<String>) {
    use serde_path_to_error::Segment;
    let mut section = String::new();
    let mut rest = segments;
    match rest {
        [Segment::Map { key }, Segment::Seq { index: i }, Segment::Map { key: c }, Segment::Seq { index: j }, tail @ ..]
            if key == "step" && c == "capture" =>
        {
            section = format!("[[step]] #{} capture #{}", i + 1, j + 1);
            rest = tail;
        }
        [Segment::Map { key }, Segment::Seq { index }, tail @ ..] if key == "step" => {
            section = format!("[[step]] #{}", index + 1);
            rest = tail;
        }
        [Segment::Map { key }, tail @ ..] => {
            section = if key == "step" {
                "[[step]]".into()
            } else {
                format!("[{key}]")
            };
            rest = tail;
        }
        _ => {}
    }
    let field: Vec<String> = rest
        .iter()
        .filter_map(|s| match s {
            Segment::Map { key } => Some(key.clone()),
            Segment::Seq { index } => Some(index.to_string()),
            _ => None,
        })
        .collect();
    let field = (!field.is_empty()).then(|| field.join("."));
    (section, field)
}

/// Builds the plan from the raw file, validating every value.
fn build(src: &Source<'_>, raw: RawFile) -> Result<TestPlan, TestDefError> {
    let test = raw.test.into_inner();
    let name = test.name.get_ref().trim().to_string();
    if name.is_empty() {
        return Err(src.error(test.name.span(), "[test] name", "must not be empty"));
    }
    let url = check_base_url(test.url.get_ref())
        .map_err(|m| src.error(test.url.span(), "[test] url", m))?;
    let bench = bench(src, raw.bench.unwrap_or_default())?;

    let Some(raw_steps) = raw.step else {
        let end = src.text.trim_end().len();
        return Err(src.error(
            end..end,
            "[[step]]",
            "the test has no steps: add at least one [[step]] with a name and a path",
        ));
    };
    if raw_steps.get_ref().is_empty() {
        return Err(src.error(raw_steps.span(), "step", "the list of steps is empty"));
    }
    let mut steps: Vec<Step> = Vec::new();
    let mut captured: HashSet<String> = HashSet::new();
    for (i, raw_step) in raw_steps.into_inner().into_iter().enumerate() {
        let span = raw_step.span();
        let step = step(src, i, span.clone(), raw_step.into_inner(), &captured)?;
        if let Some(first) = steps.iter().position(|s| s.name == step.name) {
            return Err(src.error(
                span,
                &format!("[[step]] #{}", i + 1),
                format!(
                    "step name {:?} is already used by step #{}; give each step its own name",
                    step.name,
                    first + 1
                ),
            ));
        }
        captured.extend(step.captures.iter().map(|c| c.name.clone()));
        steps.push(step);
    }

    let service = raw.service.map(|s| service(src, s)).transpose()?;
    Ok(TestPlan {
        path: src.path.to_path_buf(),
        name,
        description: test.description.unwrap_or_default().trim().to_string(),
        url,
        bench,
        steps,
        monitor_hosts: raw.monitor.map(|m| m.hosts).unwrap_or_default(),
        service,
    })
}

/// A time in seconds: finite, not negative, and more than 0 when `positive`.
fn seconds(
    src: &Source<'_>,
    key: &str,
    value: Option<Spanned<f64>>,
    default: f64,
    positive: bool,
) -> Result<Duration, TestDefError> {
    let Some(value) = value else {
        return Ok(Duration::from_secs_f64(default));
    };
    let secs = *value.get_ref();
    match Duration::try_from_secs_f64(secs) {
        Ok(d) if !(positive && d.is_zero()) => Ok(d),
        _ => Err(src.error(
            value.span(),
            key,
            format!(
                "{secs} is not a valid time: give {} number of seconds",
                if positive {
                    "a positive"
                } else {
                    "a non-negative"
                }
            ),
        )),
    }
}

/// Status codes: a non-empty list of numbers from 100 to 599.
fn status_codes(
    src: &Source<'_>,
    key: &str,
    codes: Spanned<OneOrMany<i64>>,
) -> Result<Vec<u16>, TestDefError> {
    let span = codes.span();
    let codes = codes.into_inner().0;
    if codes.is_empty() {
        return Err(src.error(span, key, "the list of status codes is empty"));
    }
    codes
        .into_iter()
        .map(|c| {
            u16::try_from(c)
                .ok()
                .filter(|c| (100..=599).contains(c))
                .ok_or_else(|| {
                    src.error(
                        span.clone(),
                        key,
                        format!("{c} is not an HTTP status code (100 to 599)"),
                    )
                })
        })
        .collect()
}

fn bench(src: &Source<'_>, raw: RawBench) -> Result<Bench, TestDefError> {
    let cycles = match raw.cycles {
        None => vec![1],
        Some(list) => {
            if list.get_ref().is_empty() {
                return Err(src.error(
                    list.span(),
                    "[bench] cycles",
                    "the list of cycles is empty: give users per cycle, e.g. [5, 10]",
                ));
            }
            list.into_inner()
                .into_iter()
                .enumerate()
                .map(|(i, users)| {
                    u32::try_from(*users.get_ref())
                        .ok()
                        .filter(|u| *u > 0)
                        .ok_or_else(|| {
                            src.error(
                                users.span(),
                                "[bench] cycles",
                                format!(
                                    "cycle {} has {} users; each cycle needs at least 1",
                                    i + 1,
                                    users.get_ref()
                                ),
                            )
                        })
                })
                .collect::<Result<_, _>>()?
        }
    };
    let sleep_time_min = seconds(
        src,
        "[bench] sleep_time_min",
        raw.sleep_time_min,
        0.0,
        false,
    )?;
    let max_span = raw.sleep_time_max.as_ref().map(Spanned::span);
    let sleep_time_max = seconds(
        src,
        "[bench] sleep_time_max",
        raw.sleep_time_max,
        sleep_time_min.as_secs_f64(),
        false,
    )?;
    if sleep_time_max < sleep_time_min {
        return Err(src.error(
            max_span.unwrap_or(0..0),
            "[bench] sleep_time_max",
            format!(
                "{} s is below sleep_time_min ({} s)",
                sleep_time_max.as_secs_f64(),
                sleep_time_min.as_secs_f64()
            ),
        ));
    }
    Ok(Bench {
        cycles,
        duration: seconds(src, "[bench] duration", raw.duration, 10.0, true)?,
        startup_delay: seconds(src, "[bench] startup_delay", raw.startup_delay, 0.01, false)?,
        sleep_time_min,
        sleep_time_max,
        sleep_time: seconds(src, "[bench] sleep_time", raw.sleep_time, 0.0, false)?,
        cycle_time: seconds(src, "[bench] cycle_time", raw.cycle_time, 0.0, false)?,
        apdex_t: seconds(src, "[bench] apdex_t", raw.apdex_t, 1.5, true)?,
        ok_codes: match raw.ok_codes {
            Some(codes) => status_codes(src, "[bench] ok_codes", codes)?,
            None => DEFAULT_OK_CODES.to_vec(),
        },
        timeout: seconds(src, "[bench] timeout", raw.timeout, 30.0, true)?,
        insecure: raw.insecure.unwrap_or(false),
    })
}

/// Validates and compiles step number `i` (from 0); `captured` holds the names earlier steps
/// capture.
fn step(
    src: &Source<'_>,
    i: usize,
    span: Range<usize>,
    raw: RawStep,
    captured: &HashSet<String>,
) -> Result<Step, TestDefError> {
    let name = raw.name.get_ref().trim().to_string();
    let at = format!("[[step]] #{} {name:?}", i + 1);
    let key = |k: &str| format!("{at} {k}");
    if name.is_empty() {
        return Err(src.error(
            raw.name.span(),
            &format!("[[step]] #{} name", i + 1),
            "must not be empty",
        ));
    }
    let known = |n: &str| captured.contains(n);
    let template = |value: &Spanned<String>, k: &str| {
        Template::compile(value.get_ref(), &known).map_err(|m| src.error(value.span(), &key(k), m))
    };

    let method = match &raw.method {
        None => Method::GET,
        Some(m) => Method::from_bytes(m.get_ref().trim().to_ascii_uppercase().as_bytes()).map_err(
            |_| {
                src.error(
                    m.span(),
                    &key("method"),
                    format!("invalid HTTP method {:?}", m.get_ref()),
                )
            },
        )?,
    };

    let (target, k) = match (&raw.path, &raw.url) {
        (Some(_), Some(url)) => {
            return Err(src.error(url.span(), &key("url"), "give either path or url, not both"))
        }
        (None, None) => {
            return Err(src.error(span, &at, "needs a path (joined to the base URL) or a url"))
        }
        (Some(path), None) => (path, "path"),
        (None, Some(url)) => (url, "url"),
    };
    let compiled = template(target, k)?;
    if compiled.is_static() {
        let text = target.get_ref();
        if k == "path" && is_absolute(text) {
            return Err(src.error(
                target.span(),
                &key(k),
                format!("{text:?} is a whole URL: write it as url = {text:?}"),
            ));
        }
        if k == "url" {
            check_base_url(text).map_err(|m| src.error(target.span(), &key(k), m))?;
        }
    }

    let mut headers = Vec::new();
    for (name, value) in raw.headers.iter().flat_map(|h| &h.0) {
        let header = HeaderName::from_bytes(name.get_ref().as_bytes()).map_err(|_| {
            src.error(
                name.span(),
                &key("headers"),
                format!("invalid header name {:?}", name.get_ref()),
            )
        })?;
        let k = format!("headers.{}", name.get_ref());
        let t = template(value, &k)?;
        if t.is_static() && HeaderValue::from_str(value.get_ref()).is_err() {
            return Err(src.error(
                value.span(),
                &key(&k),
                format!("invalid header value {:?}", value.get_ref()),
            ));
        }
        headers.push((header, t));
    }

    let body = body(src, &key, &raw, &known)?;
    let expect_status = raw
        .expect_status
        .map(|codes| status_codes(src, &key("expect_status"), codes))
        .transpose()?;

    let mut checks = Vec::new();
    for s in list(raw.contains) {
        checks.push(Check::Contains(s.into_inner()));
    }
    for s in list(raw.not_contains) {
        checks.push(Check::NotContains(s.into_inner()));
    }
    for s in list(raw.regex) {
        checks.push(Check::Regex(regex(src, &key("regex"), &s)?));
    }

    let mut captures: Vec<Capture> = Vec::new();
    for (j, c) in raw.capture.unwrap_or_default().into_iter().enumerate() {
        let capture = capture(src, &format!("{at} capture #{}", j + 1), c)?;
        captures.push(capture);
    }

    Ok(Step {
        name,
        method,
        target: compiled,
        target_text: target.get_ref().clone(),
        headers,
        body,
        expect_status,
        checks,
        captures,
    })
}

/// The items of a `OneOrMany`, each carrying the span of the whole value.
fn list(value: Option<Spanned<OneOrMany<String>>>) -> Vec<Spanned<String>> {
    let Some(value) = value else {
        return Vec::new();
    };
    let span = value.span();
    value
        .into_inner()
        .0
        .into_iter()
        .map(|s| Spanned::new(span.clone(), s))
        .collect()
}

fn regex(src: &Source<'_>, key: &str, s: &Spanned<String>) -> Result<regex::Regex, TestDefError> {
    regex::Regex::new(s.get_ref()).map_err(|e| {
        let text = e.to_string();
        let last = text.lines().last().unwrap_or_default().trim();
        let detail = last.strip_prefix("error: ").unwrap_or(last).to_string();
        src.error(
            s.span(),
            key,
            format!("invalid regex {:?}: {detail}", s.get_ref()),
        )
    })
}

fn body(
    src: &Source<'_>,
    key: &dyn Fn(&str) -> String,
    raw: &RawStep,
    known: &dyn Fn(&str) -> bool,
) -> Result<Option<Body>, TestDefError> {
    let given: Vec<(&str, Range<usize>)> = [
        ("body", raw.body.as_ref().map(Spanned::span)),
        ("form", raw.form.as_ref().map(Spanned::span)),
        ("json", raw.json.as_ref().map(Spanned::span)),
        ("body_file", raw.body_file.as_ref().map(Spanned::span)),
    ]
    .into_iter()
    .filter_map(|(k, s)| Some((k, s?)))
    .collect();
    if let [(first, _), (second, span), ..] = given.as_slice() {
        return Err(src.error(
            span.clone(),
            &key(second),
            format!("a step has one body: give only one of body, form, json, body_file (`{first}` is already given)"),
        ));
    }
    if let Some(text) = &raw.body {
        let t = Template::compile(text.get_ref(), known)
            .map_err(|m| src.error(text.span(), &key("body"), m))?;
        return Ok(Some(Body::Text(t)));
    }
    if let Some(form) = &raw.form {
        let mut fields = Vec::new();
        for (name, value) in &form.get_ref().0 {
            let k = key(&format!("form.{}", name.get_ref()));
            let t = Template::compile(value.get_ref(), known)
                .map_err(|m| src.error(value.span(), &k, m))?;
            fields.push((name.get_ref().clone(), t));
        }
        return Ok(Some(Body::Form(fields)));
    }
    if let Some(json) = &raw.json {
        let fail = |m: String| src.error(json.span(), &key("json"), m);
        let value = toml_to_json(json.get_ref()).map_err(fail)?;
        return Ok(Some(Body::Json(
            JsonBody::compile(value, known).map_err(fail)?,
        )));
    }
    if let Some(file) = &raw.body_file {
        let dir = src.path.parent().unwrap_or(Path::new("."));
        let full = dir.join(file.get_ref());
        let bytes = std::fs::read(&full).map_err(|e| {
            src.error(
                file.span(),
                &key("body_file"),
                format!("cannot read {:?} ({}): {e}", file.get_ref(), full.display()),
            )
        })?;
        return Ok(Some(Body::File(bytes.into())));
    }
    Ok(None)
}

/// A TOML value as JSON; dates become strings.
fn toml_to_json(value: &toml::Value) -> Result<serde_json::Value, String> {
    use serde_json::Value as J;
    Ok(match value {
        toml::Value::String(s) => J::String(s.clone()),
        toml::Value::Integer(i) => J::from(*i),
        toml::Value::Float(f) => serde_json::Number::from_f64(*f)
            .map(J::Number)
            .ok_or_else(|| format!("{f} cannot be written in JSON"))?,
        toml::Value::Boolean(b) => J::Bool(*b),
        toml::Value::Datetime(d) => J::String(d.to_string()),
        toml::Value::Array(items) => {
            J::Array(items.iter().map(toml_to_json).collect::<Result<_, _>>()?)
        }
        toml::Value::Table(t) => J::Object(
            t.iter()
                .map(|(k, v)| Ok((k.clone(), toml_to_json(v)?)))
                .collect::<Result<_, String>>()?,
        ),
    })
}

fn capture(src: &Source<'_>, at: &str, raw: Spanned<RawCapture>) -> Result<Capture, TestDefError> {
    let span = raw.span();
    let raw = raw.into_inner();
    let key = |k: &str| format!("{at} {k}");
    let name = raw.name.get_ref().trim();
    let mut chars = name.chars();
    let ident = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_');
    if !ident {
        return Err(src.error(
            raw.name.span(),
            &key("name"),
            format!("{name:?} cannot be used in templates: use letters, digits and _, not starting with a digit"),
        ));
    }
    if BUILTINS.contains(&name) {
        return Err(src.error(
            raw.name.span(),
            &key("name"),
            format!("`{name}` is a built-in template value; choose another name"),
        ));
    }
    let source = match (raw.regex, raw.json, raw.header) {
        (Some(re), None, None) => CaptureSource::Regex(regex(src, &key("regex"), &re)?),
        (None, Some(pointer), None) => {
            let p = pointer.get_ref();
            if !p.is_empty() && !p.starts_with('/') {
                return Err(src.error(
                    pointer.span(),
                    &key("json"),
                    format!("{p:?} is not a JSON pointer: it starts with / (e.g. \"/user/token\")"),
                ));
            }
            CaptureSource::JsonPointer(p.clone())
        }
        (None, None, Some(header)) => CaptureSource::Header(
            HeaderName::from_bytes(header.get_ref().trim().as_bytes()).map_err(|_| {
                src.error(
                    header.span(),
                    &key("header"),
                    format!("invalid header name {:?}", header.get_ref()),
                )
            })?,
        ),
        _ => {
            return Err(src.error(
                span,
                at,
                "give exactly one of regex, json (a pointer) or header",
            ));
        }
    };
    Ok(Capture {
        name: name.to_string(),
        source,
    })
}

fn service(src: &Source<'_>, raw: Spanned<RawService>) -> Result<Service, TestDefError> {
    let raw: RawService = raw.into_inner();
    if !raw
        .command
        .get_ref()
        .first()
        .is_some_and(|p| !p.trim().is_empty())
    {
        return Err(src.error(
            raw.command.span(),
            "[service] command",
            "give the program and its arguments, e.g. [\"bench-node\", \"target\"]",
        ));
    }
    let ready_url = check_base_url(raw.ready_url.get_ref())
        .map_err(|m| src.error(raw.ready_url.span(), "[service] ready_url", m))?;
    Ok(Service {
        command: raw.command.into_inner(),
        host: raw.host.filter(|h| !h.trim().is_empty()),
        ready_url,
        ready_timeout: seconds(
            src,
            "[service] ready_timeout",
            raw.ready_timeout,
            30.0,
            true,
        )?,
    })
}
