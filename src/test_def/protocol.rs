//! The protocol keys: `http` and `streams` in `[test]`, a step's `http`, and a WebSocket step's
//! `websocket`, `send`, `send_binary` and `expect`, each checked with its place in the file.

use std::ops::Range;

use base64::Engine as _;
use toml::Spanned;

use super::error::Source;
use super::raw::RawStep;
use super::{Check, HttpVersion, Step, Template, TestDefError, WebSocketStep, WsMessage};

/// Most requests in flight per user (`streams`): nginx's default concurrent streams limit is
/// 128, and a larger value mostly says the test wants more users.
pub const MAX_STREAMS: u32 = 128;

/// `http = "..."` at `key`, else `default`.
pub(crate) fn http_version(
    src: &Source<'_>,
    key: &str,
    value: Option<&Spanned<String>>,
    default: HttpVersion,
) -> Result<HttpVersion, TestDefError> {
    let Some(value) = value else {
        return Ok(default);
    };
    value
        .get_ref()
        .trim()
        .parse()
        .map_err(|e: crate::words::UnknownWord| {
            src.error(
                value.span(),
                key,
                format!(
                    "unknown HTTP version {:?}: {} (\"1.1\" is the default)",
                    e.word, e.expected
                ),
            )
        })
}

/// `[test] streams`: 1 to [`MAX_STREAMS`], default 1.
pub(crate) fn streams(src: &Source<'_>, value: Option<&Spanned<i64>>) -> Result<u32, TestDefError> {
    let Some(value) = value else { return Ok(1) };
    let n = *value.get_ref();
    u32::try_from(n)
        .ok()
        .filter(|n| (1..=MAX_STREAMS).contains(n))
        .ok_or_else(|| {
            src.error(
                value.span(),
                "[test] streams",
                format!("{n} is not a stream count: give 1 to {MAX_STREAMS} requests in flight per user"),
            )
        })
}

/// `streams > 1` shares each user's one HTTP/2 connection between that many executions of
/// the steps: every step must speak HTTP/2.
pub(crate) fn check_streams(
    src: &Source<'_>,
    span: Range<usize>,
    streams: u32,
    steps: &[Step],
) -> Result<(), TestDefError> {
    if streams <= 1 {
        return Ok(());
    }
    match steps.iter().find(|s| s.websocket.is_some() || s.http != HttpVersion::Http2) {
        None => Ok(()),
        Some(s) => Err(src.error(
            span,
            "[test] streams",
            format!(
                "streams = {streams} keeps several requests in flight on one HTTP/2 connection, \
                 but step {:?} {}: set http = \"2\" in [test] (and no WebSocket steps), or remove streams",
                s.name,
                if s.websocket.is_some() {
                    "is a WebSocket step".to_string()
                } else {
                    format!("speaks HTTP {}", s.http)
                }
            ),
        )),
    }
}

/// The WebSocket part of a step, or `None` for an HTTP step; refuses `send`, `send_binary` and
/// `expect` without `websocket`, and the HTTP request keys with it. `checks` loses its regexes
/// to the awaited message's condition.
pub(crate) fn websocket(
    src: &Source<'_>,
    key: &dyn Fn(&str) -> String,
    raw: &RawStep,
    checks: &mut Vec<Check>,
    known: &dyn Fn(&str) -> bool,
) -> Result<Option<WebSocketStep>, TestDefError> {
    let ws_keys = [
        ("send", raw.send.as_ref().map(Spanned::span)),
        ("send_binary", raw.send_binary.as_ref().map(Spanned::span)),
        ("expect", raw.expect.as_ref().map(Spanned::span)),
    ];
    if raw.websocket.is_none() {
        if let Some((k, Some(span))) = ws_keys.into_iter().find(|(_, s)| s.is_some()) {
            return Err(src.error(
                span,
                &key(k),
                format!("`{k}` is for WebSocket steps: add websocket = \"/path\" to the step"),
            ));
        }
        return Ok(None);
    }
    let http_keys = [
        ("path", raw.path.as_ref().map(Spanned::span)),
        ("url", raw.url.as_ref().map(Spanned::span)),
        ("method", raw.method.as_ref().map(Spanned::span)),
        ("body", raw.body.as_ref().map(Spanned::span)),
        ("form", raw.form.as_ref().map(Spanned::span)),
        ("json", raw.json.as_ref().map(Spanned::span)),
        ("body_file", raw.body_file.as_ref().map(Spanned::span)),
        ("http", raw.http.as_ref().map(Spanned::span)),
        (
            "expect_status",
            raw.expect_status.as_ref().map(Spanned::span),
        ),
    ];
    if let Some((k, Some(span))) = http_keys.into_iter().find(|(_, s)| s.is_some()) {
        return Err(src.error(
            span,
            &key(k),
            format!("a WebSocket step has no `{k}`: its target is `websocket`, and it sends `send` or `send_binary` (HTTP/1.1 upgrade)"),
        ));
    }
    let send = match (&raw.send, &raw.send_binary) {
        (Some(_), Some(b)) => {
            return Err(src.error(
                b.span(),
                &key("send_binary"),
                "give either send (text) or send_binary (base64), not both",
            ))
        }
        (Some(text), None) => Some(WsMessage::Text(
            Template::compile(text.get_ref(), known)
                .map_err(|m| src.error(text.span(), &key("send"), m))?,
        )),
        (None, Some(b)) => Some(WsMessage::Binary(
            base64::engine::general_purpose::STANDARD
                .decode(b.get_ref().trim())
                .map_err(|e| {
                    src.error(
                        b.span(),
                        &key("send_binary"),
                        format!("not valid base64: {e}"),
                    )
                })?
                .into(),
        )),
        (None, None) => None,
    };
    let mut expect_regex = Vec::new();
    checks.retain(|c| match c {
        Check::Regex(r) => {
            expect_regex.push(r.clone());
            false
        }
        _ => true,
    });
    Ok(Some(WebSocketStep {
        send,
        expect: raw.expect.as_ref().map(|e| e.get_ref().clone()),
        expect_regex,
    }))
}
