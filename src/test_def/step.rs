//! Compiling one `[[step]]`: target, method, headers, body, checks and captures, each checked
//! with its place in the file.

use std::collections::HashSet;
use std::ops::Range;
use std::path::Path;

use hyper::header::{HeaderName, HeaderValue};
use hyper::Method;
use toml::Spanned;

use super::error::Source;
use super::load::status_codes;
use super::protocol;
use super::raw::{OneOrMany, RawCapture, RawStep};
use super::request::{is_absolute, JsonBody};
use super::values::check_base_url;
use super::{
    Body, Capture, CaptureSource, Check, HttpVersion, Resources, Step, Template, TestDefError,
    BUILTINS,
};

/// Compiles a templated value, naming its key when it is wrong.
type Compile<'a> = dyn Fn(&Spanned<String>, &str) -> Result<Template, TestDefError> + 'a;

/// What a step takes from `[test]` and `[bench]` when it does not say.
#[derive(Debug, Clone, Copy)]
pub(crate) struct StepDefaults {
    /// `[test] http`.
    pub http: HttpVersion,
    /// `[bench] resources`.
    pub resources: Resources,
}

/// `resources = true | false | "all"` at `key`, else `default`.
pub(crate) fn resources(
    src: &Source<'_>,
    key: &str,
    value: Option<&Spanned<toml::Value>>,
    default: Resources,
) -> Result<Resources, TestDefError> {
    let Some(value) = value else {
        return Ok(default);
    };
    match value.get_ref() {
        toml::Value::Boolean(false) => Ok(Resources::Off),
        toml::Value::Boolean(true) => Ok(Resources::SameOrigin),
        toml::Value::String(s) if s.trim() == "all" => Ok(Resources::All),
        other => Err(src.error(
            value.span(),
            key,
            format!(
                "{other} is not a resources setting: give true (the page's own origin), \
                 \"all\" (every origin) or false"
            ),
        )),
    }
}

/// Validates and compiles step number `i` (from 0) of `section` (`[[step]]`, or a scenario's
/// steps); `captured` holds the names earlier steps capture.
pub(crate) fn step(
    src: &Source<'_>,
    section: &str,
    i: usize,
    span: Range<usize>,
    mut raw: RawStep,
    captured: &HashSet<String>,
    defaults: StepDefaults,
) -> Result<Step, TestDefError> {
    let name = raw.name.get_ref().trim().to_string();
    let at = format!("{section} #{} {name:?}", i + 1);
    let key = |k: &str| format!("{at} {k}");
    if name.is_empty() {
        return Err(src.error(
            raw.name.span(),
            &format!("{section} #{} name", i + 1),
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
    let (target, target_text) = target(src, &at, span, &raw, &template)?;
    let headers = headers(src, &key, &raw, &template)?;
    let body = body(src, &key, &raw, &known)?;
    let http = protocol::http_version(src, &key("http"), raw.http.as_ref(), defaults.http)?;
    let mut checks = checks(
        src,
        &key,
        raw.contains.take(),
        raw.not_contains.take(),
        raw.regex.take(),
    )?;
    let websocket = protocol::websocket(src, &key, &raw, &mut checks, &known)?;
    let resources = match (&websocket, &raw.resources) {
        (Some(_), Some(r)) => {
            return Err(src.error(
                r.span(),
                &key("resources"),
                "a WebSocket step has no page whose resources could be fetched",
            ))
        }
        // The bench's default is for HTTP pages.
        (Some(_), None) => Resources::Off,
        (None, r) => resources(src, &key("resources"), r.as_ref(), defaults.resources)?,
    };
    let expect_status = raw
        .expect_status
        .take()
        .map(|codes| status_codes(src, &key("expect_status"), codes))
        .transpose()?;
    let captures = raw
        .capture
        .take()
        .unwrap_or_default()
        .into_iter()
        .enumerate()
        .map(|(j, c)| capture(src, &format!("{at} capture #{}", j + 1), c))
        .collect::<Result<Vec<Capture>, _>>()?;
    Ok(Step {
        name,
        method,
        target,
        target_text,
        headers,
        body,
        expect_status,
        checks,
        captures,
        http,
        websocket,
        compression: raw.compression.map(|c| *c.get_ref()),
        resources,
    })
}

/// The step's `path` or `url`, compiled, and as written.
fn target(
    src: &Source<'_>,
    at: &str,
    span: Range<usize>,
    raw: &RawStep,
    template: &Compile<'_>,
) -> Result<(Template, String), TestDefError> {
    let key = |k: &str| format!("{at} {k}");
    let (target, k) = match (&raw.path, &raw.url) {
        _ if raw.websocket.is_some() => (raw.websocket.as_ref().unwrap(), "websocket"),
        (Some(_), Some(url)) => {
            return Err(src.error(url.span(), &key("url"), "give either path or url, not both"))
        }
        (None, None) => {
            return Err(src.error(span, at, "needs a path (joined to the base URL) or a url"))
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
        if k == "websocket" && is_absolute(text) {
            check_base_url(&text.replacen("ws", "http", 1))
                .map_err(|m| src.error(target.span(), &key(k), m))?;
        } else if k == "websocket" && text.contains("://") {
            return Err(src.error(
                target.span(),
                &key(k),
                format!("{text:?}: give a path, or a URL starting with ws://, wss://, http:// or https://"),
            ));
        }
        if k == "url" {
            check_base_url(text).map_err(|m| src.error(target.span(), &key(k), m))?;
        }
    }
    Ok((compiled, target.get_ref().clone()))
}

/// The step's headers in the order written, names checked and values compiled.
fn headers(
    src: &Source<'_>,
    key: &dyn Fn(&str) -> String,
    raw: &RawStep,
    template: &Compile<'_>,
) -> Result<Vec<(HeaderName, Template)>, TestDefError> {
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
    Ok(headers)
}

/// Body checks in order: `contains`, `not_contains`, `regex`.
fn checks(
    src: &Source<'_>,
    key: &dyn Fn(&str) -> String,
    contains: Option<Spanned<OneOrMany<String>>>,
    not_contains: Option<Spanned<OneOrMany<String>>>,
    regexes: Option<Spanned<OneOrMany<String>>>,
) -> Result<Vec<Check>, TestDefError> {
    let mut checks = Vec::new();
    for s in list(contains) {
        checks.push(Check::Contains(s.into_inner()));
    }
    for s in list(not_contains) {
        checks.push(Check::NotContains(s.into_inner()));
    }
    for s in list(regexes) {
        checks.push(Check::Regex(regex(src, &key("regex"), &s)?));
    }
    Ok(checks)
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
        return Ok(Some(Body::File {
            path: file.get_ref().into(),
            bytes: bytes.into(),
        }));
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
