//! HAR import (`bench-node import FILE.har`): a journey recorded by a browser (HAR 1.2, as
//! Chromium and Firefox export it) turned into a test definition.
//!
//! One step per document, XHR/fetch or non-GET request, in the order recorded; a request that
//! only follows a redirect is left to the engine, which follows redirects itself; static
//! resources (stylesheets, scripts, images, fonts) are folded into `resources = true` on the
//! page before them (`"all"` when one is on another origin) and listed in a comment (kept as
//! steps with `--keep-resources`). Headers that matter are kept (credentials, content type,
//! custom `X-` headers, `Accept` of an API call); cookies (the server sets them again) and
//! browser noise are dropped. The recorded gaps between steps become the think time.

use std::fmt::Write;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use url::Url;

/// Why a HAR file could not be imported.
#[derive(Debug, thiserror::Error)]
pub enum HarError {
    #[error("{}: cannot read: {error}", path.display())]
    Read {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("{}:{line}:{column}: not a HAR file: {message}", path.display())]
    Parse {
        path: PathBuf,
        line: usize,
        column: usize,
        message: String,
    },
    #[error("{}: {message}", path.display())]
    Content { path: PathBuf, message: String },
}

#[derive(Deserialize)]
struct Har {
    log: Log,
}

#[derive(Deserialize)]
struct Log {
    entries: Vec<Entry>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Entry {
    #[serde(default)]
    started_date_time: String,
    /// Total time of the request, ms.
    #[serde(default)]
    time: f64,
    request: Request,
    response: Response,
    /// Chromium's kind of request (`document`, `xhr`, `fetch`, `stylesheet`, `image`...).
    #[serde(rename = "_resourceType", default)]
    resource_type: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Request {
    method: String,
    url: String,
    #[serde(default)]
    headers: Vec<NameValue>,
    #[serde(default)]
    post_data: Option<PostData>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct PostData {
    #[serde(default)]
    mime_type: String,
    #[serde(default)]
    text: Option<String>,
    #[serde(default)]
    params: Option<Vec<NameValue>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Response {
    #[serde(default)]
    status: u16,
    #[serde(rename = "redirectURL", default)]
    redirect_url: String,
    #[serde(default)]
    content: Content,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct Content {
    #[serde(default)]
    mime_type: String,
}

#[derive(Deserialize)]
struct NameValue {
    name: String,
    value: String,
}

/// Headers a browser sends by itself, or that the engine sets: never copied into a step.
const NOISE: [&str; 18] = [
    "cookie",
    "user-agent",
    "accept-encoding",
    "accept-language",
    "connection",
    "host",
    "content-length",
    "origin",
    "referer",
    "pragma",
    "cache-control",
    "upgrade-insecure-requests",
    "if-none-match",
    "if-modified-since",
    "priority",
    "dnt",
    "te",
    "keep-alive",
];

/// Reads the HAR at `path` and returns the test it makes (TOML text).
pub fn import_file(path: &Path, keep_resources: bool) -> Result<String, HarError> {
    let text = std::fs::read_to_string(path).map_err(|error| HarError::Read {
        path: path.to_path_buf(),
        error,
    })?;
    let har: Har = serde_json::from_str(&text).map_err(|e| HarError::Parse {
        path: path.to_path_buf(),
        line: e.line(),
        column: e.column(),
        message: e.to_string(),
    })?;
    let name = path
        .file_stem()
        .map_or("imported".into(), |s| s.to_string_lossy().into_owned());
    test_text(
        &name,
        &path.display().to_string(),
        &har.log.entries,
        keep_resources,
    )
    .map_err(|message| HarError::Content {
        path: path.to_path_buf(),
        message,
    })
}

/// True for a request a user's journey is made of (not a page's static resource).
fn is_step(e: &Entry) -> bool {
    if e.request.method != "GET" {
        return true;
    }
    match e.resource_type.as_deref() {
        // `other` is also what Chromium calls the favicon it fetches by itself.
        Some("other") => !static_path(&e.request.url),
        Some(kind) => matches!(kind, "document" | "xhr" | "fetch" | "websocket"),
        None if static_path(&e.request.url) => false,
        None => {
            let mime = e.response.content.mime_type.to_ascii_lowercase();
            mime.contains("html") || mime.contains("json") || mime.is_empty()
        }
    }
}

/// True for an HTML document: the page whose resources follow it.
fn is_page(e: &Entry) -> bool {
    e.request.method == "GET"
        && match e.resource_type.as_deref() {
            Some(kind) => kind == "document",
            None => e
                .response
                .content
                .mime_type
                .to_ascii_lowercase()
                .contains("html"),
        }
}

/// The origin of `url` (`None` when it is not a URL).
fn origin_of(url: &str) -> Option<String> {
    Url::parse(url)
        .ok()
        .map(|u| u.origin().ascii_serialization())
}

/// True when `url`'s path names a static file by its extension (an icon, image, style, script
/// or font).
fn static_path(url: &str) -> bool {
    const STATIC: [&str; 12] = [
        "ico", "png", "jpg", "jpeg", "gif", "svg", "webp", "css", "js", "woff", "woff2", "ttf",
    ];
    Url::parse(url).is_ok_and(|u| {
        let last = u.path().rsplit('/').next().unwrap_or("");
        last.rsplit_once('.')
            .is_some_and(|(_, ext)| STATIC.contains(&ext.to_ascii_lowercase().as_str()))
    })
}

/// The test for `entries`; `Err` when nothing is left to make a step of.
fn test_text(
    name: &str,
    source: &str,
    entries: &[Entry],
    keep_resources: bool,
) -> Result<String, String> {
    let mut steps: Vec<&Entry> = Vec::new();
    let mut folded: Vec<&str> = Vec::new();
    // Per step, the `resources` its page gets from the resources folded after it.
    let mut resources: Vec<Option<&str>> = Vec::new();
    let mut redirected_to: Option<String> = None;
    for e in entries {
        if e.request.url.starts_with("data:") {
            continue;
        }
        // The engine follows a redirect itself: the recorded follow-up is not a step.
        if redirected_to.take().is_some_and(|to| to == e.request.url) {
            continue;
        }
        if (300..400).contains(&e.response.status) && !e.response.redirect_url.is_empty() {
            let from = Url::parse(&e.request.url).ok();
            redirected_to = from
                .and_then(|u| u.join(&e.response.redirect_url).ok())
                .map(|u| u.to_string());
        }
        if keep_resources || is_step(e) {
            steps.push(e);
            resources.push(None);
        } else {
            folded.push(&e.request.url);
            // The resource belongs to the last page before it: fetched with that page.
            if let Some(i) = steps.iter().rposition(|s| is_page(s)) {
                let same = origin_of(&steps[i].request.url) == origin_of(&e.request.url);
                if resources[i] != Some("\"all\"") {
                    resources[i] = Some(if same { "true" } else { "\"all\"" });
                }
            }
        }
    }
    let first = steps
        .first()
        .ok_or("the HAR has no request to make a step of")?;
    let base = Url::parse(&first.request.url)
        .map_err(|e| format!("{:?} is not a URL: {e}", first.request.url))?;
    let origin = base.origin().ascii_serialization();
    let gaps = think_times(&steps);
    let (min, max) = gaps
        .iter()
        .flatten()
        .fold((f64::MAX, 0.0f64), |(lo, hi), g| (lo.min(*g), hi.max(*g)));
    let mut out = String::new();
    let q = |s: &str| toml::Value::String(s.to_string()).to_string();
    let _ = writeln!(out, "# Imported from {source} by bench-node import.");
    let _ = writeln!(
        out,
        "# Check it with `bench-node check`, then adjust names, checks and captures."
    );
    let _ = writeln!(
        out,
        "\n[test]\nname = {}\nurl = {}\n",
        q(name),
        q(&format!("{origin}/"))
    );
    let _ = writeln!(out, "[bench]");
    if max > 0.0 {
        let _ = writeln!(out, "# Think time from the recorded gaps between steps.");
        let _ = writeln!(out, "sleep_time_min = {:.1}", round(min));
        let _ = writeln!(out, "sleep_time_max = {:.1}", round(max.max(min)));
    }
    for (i, e) in steps.iter().enumerate() {
        out.push('\n');
        write_step(&mut out, i, e, &origin, gaps[i]);
        if let Some(r) = resources[i] {
            let _ = writeln!(out, "resources = {r}");
        }
    }
    if !folded.is_empty() {
        let _ = writeln!(
            out,
            "\n# Static resources fetched by their page's `resources` ({}; --keep-resources makes \
             steps of them):",
            folded.len()
        );
        for url in folded {
            let _ = writeln!(out, "#   {url}");
        }
    }
    Ok(out)
}

/// Seconds rounded to 0.1 s (at least 0).
fn round(s: f64) -> f64 {
    ((s * 10.0).round() / 10.0).max(0.0)
}

/// The recorded gap before each step (from the end of the one before), s; `None` for the
/// first step or a time that cannot be read.
fn think_times(steps: &[&Entry]) -> Vec<Option<f64>> {
    let start =
        |e: &Entry| humantime::parse_rfc3339_weak(e.started_date_time.trim_end_matches('Z')).ok();
    let mut out = vec![None];
    for pair in steps.windows(2) {
        let gap = match (start(pair[0]), start(pair[1])) {
            (Some(a), Some(b)) => b
                .duration_since(a)
                .ok()
                .map(|d| (d.as_secs_f64() - pair[0].time / 1000.0).max(0.0)),
            _ => None,
        };
        out.push(gap);
    }
    out
}

/// One `[[step]]` for entry `e`, number `i`.
fn write_step(out: &mut String, i: usize, e: &Entry, origin: &str, gap: Option<f64>) {
    let q = |s: &str| toml::Value::String(s.to_string()).to_string();
    let url = Url::parse(&e.request.url).ok();
    let path = url.as_ref().map_or("/".to_string(), |u| {
        let mut p = u.path().to_string();
        if let Some(query) = u.query() {
            p.push('?');
            p.push_str(query);
        }
        p
    });
    let same = url
        .as_ref()
        .is_some_and(|u| u.origin().ascii_serialization() == origin);
    let short: String = path
        .split('?')
        .next()
        .unwrap_or("/")
        .chars()
        .take(40)
        .collect();
    let _ = writeln!(
        out,
        "# recorded: {} {}",
        e.request.method,
        e.request.url.replace('\n', " ")
    );
    if let Some(g) = gap {
        let _ = writeln!(out, "# {:.1} s after the previous step", g);
    }
    let _ = writeln!(out, "[[step]]");
    let _ = writeln!(
        out,
        "name = {}",
        q(&format!("{:02} {} {short}", i + 1, e.request.method))
    );
    if e.request.method != "GET" {
        let _ = writeln!(out, "method = {}", q(&e.request.method));
    }
    if same {
        let _ = writeln!(out, "path = {}", q(&path));
    } else {
        let _ = writeln!(out, "url = {}", q(&e.request.url));
    }
    let body = e.request.post_data.as_ref().and_then(body_line);
    let headers = kept_headers(e, body.is_some());
    if !headers.is_empty() {
        let table: toml::Table = headers
            .into_iter()
            .map(|(n, v)| (n, toml::Value::String(v)))
            .collect();
        let _ = writeln!(out, "headers = {}", toml::Value::Table(table));
    }
    if let Some(line) = body {
        let _ = writeln!(out, "{line}");
    }
    // A recorded redirect is followed; any other answer but 200 is what the step expects.
    let status = e.response.status;
    if status != 0 && status != 200 && !(300..400).contains(&status) {
        let _ = writeln!(out, "expect_status = {status}");
    }
}

/// The request headers worth replaying: not a cookie, not browser noise, not an HTTP/2
/// pseudo-header; `Content-Type` only with a body kept as text.
fn kept_headers(e: &Entry, has_body: bool) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    for h in &e.request.headers {
        let name = h.name.to_ascii_lowercase();
        let keep = !name.starts_with(':')
            && !name.starts_with("sec-")
            && !NOISE.contains(&name.as_str())
            && (name != "content-type" || has_body)
            && (name != "accept" || h.value.contains("json"));
        if keep && !out.iter().any(|(n, _)| n.eq_ignore_ascii_case(&h.name)) {
            out.push((h.name.clone(), h.value.clone()));
        }
    }
    out
}

/// The body of a request as one TOML line: `json = {...}` for JSON a TOML table can hold,
/// `form = {...}` for a form, else `body = "..."`.
fn body_line(p: &PostData) -> Option<String> {
    let mime = p.mime_type.to_ascii_lowercase();
    let text = p.text.clone().unwrap_or_default();
    if mime.contains("json") {
        if let Some(v) = serde_json::from_str::<serde_json::Value>(&text)
            .ok()
            .and_then(|j| json_to_toml(&j))
        {
            return Some(format!("json = {v}"));
        }
    }
    if mime.contains("x-www-form-urlencoded") {
        let pairs: Vec<(String, String)> = match &p.params {
            Some(params) if !params.is_empty() => params
                .iter()
                .map(|nv| (nv.name.clone(), nv.value.clone()))
                .collect(),
            _ => url::form_urlencoded::parse(text.as_bytes())
                .into_owned()
                .collect(),
        };
        let table: toml::Table = pairs
            .into_iter()
            .map(|(k, v)| (k, toml::Value::String(v)))
            .collect();
        return Some(format!("form = {}", toml::Value::Table(table)));
    }
    (!text.is_empty()).then(|| format!("body = {}", toml::Value::String(text)))
}

/// A JSON value as TOML, when TOML can hold it (it has no null); templates in strings are not
/// expected in a recording, so `{{` is left as it is.
fn json_to_toml(v: &serde_json::Value) -> Option<toml::Value> {
    use serde_json::Value as J;
    Some(match v {
        J::Null => return None,
        J::Bool(b) => toml::Value::Boolean(*b),
        J::Number(n) => match n.as_i64() {
            Some(i) => toml::Value::Integer(i),
            None => toml::Value::Float(n.as_f64()?),
        },
        J::String(s) => toml::Value::String(s.clone()),
        J::Array(items) => {
            toml::Value::Array(items.iter().map(json_to_toml).collect::<Option<_>>()?)
        }
        J::Object(map) => toml::Value::Table(
            map.iter()
                .map(|(k, v)| Some((k.clone(), json_to_toml(v)?)))
                .collect::<Option<_>>()?,
        ),
    })
}
