//! What a step looks for in the response: body checks and captured values.

use std::borrow::Cow;
use std::fmt;

use super::{Capture, CaptureSource, Check};

/// The body as text; invalid UTF-8 is replaced, only then is it copied.
fn text(body: &[u8]) -> Cow<'_, str> {
    String::from_utf8_lossy(body)
}

impl Check {
    /// `Err(description)` when the body fails the check.
    pub fn check(&self, body: &[u8]) -> Result<(), String> {
        let body = text(body);
        let ok = match self {
            Check::Contains(s) => body.contains(s.as_str()),
            Check::NotContains(s) => !body.contains(s.as_str()),
            Check::Regex(re) => re.is_match(&body),
        };
        if ok {
            Ok(())
        } else {
            Err(match self {
                Check::Contains(s) => format!("body does not contain {s:?}"),
                Check::NotContains(s) => format!("body contains {s:?}"),
                Check::Regex(re) => format!("body does not match regex `{}`", re.as_str()),
            })
        }
    }
}

impl fmt::Display for Check {
    /// As in the plan: `contains "x"`, `not_contains "x"`, ``regex `x` ``.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Check::Contains(s) => write!(f, "contains {s:?}"),
            Check::NotContains(s) => write!(f, "not_contains {s:?}"),
            Check::Regex(re) => write!(f, "regex `{}`", re.as_str()),
        }
    }
}

impl Capture {
    /// The captured value, `None` when absent (the page is then a failure).
    ///
    /// A regex gives its first match: group 1 if it has groups, else the whole match. A JSON
    /// pointer gives a string as is and any other value as JSON text (`null` counts as absent).
    /// A header gives its first value.
    pub fn extract(&self, headers: &hyper::HeaderMap, body: &[u8]) -> Option<String> {
        match &self.source {
            CaptureSource::Regex(re) => {
                let body = text(body);
                let caps = re.captures(&body)?;
                let m = if caps.len() > 1 {
                    caps.get(1)?
                } else {
                    caps.get(0)?
                };
                Some(m.as_str().to_string())
            }
            CaptureSource::JsonPointer(pointer) => {
                let json: serde_json::Value = serde_json::from_slice(body).ok()?;
                match json.pointer(pointer)? {
                    serde_json::Value::Null => None,
                    serde_json::Value::String(s) => Some(s.clone()),
                    other => Some(other.to_string()),
                }
            }
            CaptureSource::Header(name) => headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string),
        }
    }
}

impl fmt::Display for CaptureSource {
    /// As in the plan: ``regex `x` ``, `json "/a/b"`, `header x-token`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CaptureSource::Regex(re) => write!(f, "regex `{}`", re.as_str()),
            CaptureSource::JsonPointer(p) => write!(f, "json {p:?}"),
            CaptureSource::Header(h) => write!(f, "header {h}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hyper::header::{HeaderMap, HeaderName, HeaderValue};
    use regex::Regex;

    #[test]
    fn checks() {
        let body = b"<html><title>Welcome home</title></html>";
        assert!(Check::Contains("Welcome".into()).check(body).is_ok());
        let err = Check::Contains("Goodbye".into()).check(body).unwrap_err();
        assert_eq!(err, "body does not contain \"Goodbye\"");
        assert!(Check::NotContains("Error".into()).check(body).is_ok());
        assert!(Check::NotContains("home".into()).check(body).is_err());
        assert!(Check::Regex(Regex::new(r"<title>\w+ home").unwrap())
            .check(body)
            .is_ok());
        let err = Check::Regex(Regex::new(r"^\d+$").unwrap())
            .check(body)
            .unwrap_err();
        assert!(err.contains(r"^\d+$"), "{err}");
        // Invalid UTF-8 does not prevent checking the rest.
        assert!(Check::Contains("ok".into()).check(b"\xff\xfe ok").is_ok());
    }

    fn capture(source: CaptureSource) -> Capture {
        Capture {
            name: "v".into(),
            source,
        }
    }

    #[test]
    fn regex_captures_group_one_or_whole_match() {
        let h = HeaderMap::new();
        let body = b"token=abc123; id=42";
        let group = capture(CaptureSource::Regex(Regex::new(r"token=(\w+)").unwrap()));
        assert_eq!(group.extract(&h, body).as_deref(), Some("abc123"));
        let whole = capture(CaptureSource::Regex(Regex::new(r"id=\d+").unwrap()));
        assert_eq!(whole.extract(&h, body).as_deref(), Some("id=42"));
        let none = capture(CaptureSource::Regex(Regex::new(r"nope=(\w+)").unwrap()));
        assert_eq!(none.extract(&h, body), None);
    }

    #[test]
    fn json_pointer_captures() {
        let h = HeaderMap::new();
        let body = br#"{"user": {"id": 7, "token": "xyz", "tags": ["a", "b"], "gone": null}}"#;
        let get = |p: &str| capture(CaptureSource::JsonPointer(p.into())).extract(&h, body);
        assert_eq!(get("/user/token").as_deref(), Some("xyz"));
        assert_eq!(get("/user/id").as_deref(), Some("7"));
        assert_eq!(get("/user/tags/1").as_deref(), Some("b"));
        assert_eq!(get("/user/tags").as_deref(), Some(r#"["a","b"]"#));
        assert_eq!(get("/user/gone"), None);
        assert_eq!(get("/user/missing"), None);
        assert_eq!(
            capture(CaptureSource::JsonPointer("/a".into())).extract(&h, b"not json"),
            None
        );
    }

    #[test]
    fn header_captures() {
        let mut h = HeaderMap::new();
        h.insert("x-token", HeaderValue::from_static("secret"));
        let c = capture(CaptureSource::Header(HeaderName::from_static("x-token")));
        assert_eq!(c.extract(&h, b"").as_deref(), Some("secret"));
        let c = capture(CaptureSource::Header(HeaderName::from_static("x-other")));
        assert_eq!(c.extract(&h, b""), None);
    }
}
