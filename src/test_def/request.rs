//! What a step sends: its target URL resolved against the base URL, and its body rendered.

use std::ops::Deref;

use bytes::Bytes;
use serde::ser::{SerializeMap, SerializeSeq};
use serde::{Serialize, Serializer};
use url::Url;

use super::{Body, Step, Template, Vars};

impl Step {
    /// The URL of this step's request: the rendered target, either an absolute `http(s)://`
    /// URL or a path joined onto the base URL's path (`http://h/api` + `/users?x=1` gives
    /// `http://h/api/users?x=1`).
    pub fn url(&self, base: &Url, vars: &Vars) -> Result<Url, String> {
        let target = self.target.try_render(vars)?;
        resolve(base, &target)
    }
}

/// Joins `target` onto `base` (see [`Step::url`]).
pub(crate) fn resolve(base: &Url, target: &str) -> Result<Url, String> {
    if is_absolute(target) {
        return Url::parse(target).map_err(|e| format!("invalid URL `{target}`: {e}"));
    }
    let target = target.split('#').next().unwrap_or_default();
    let (path, query) = match target.split_once('?') {
        Some((path, query)) => (path, Some(query)),
        None => (target, None),
    };
    let mut url = base.clone();
    if !path.is_empty() {
        let joined = format!(
            "{}/{}",
            base.path().trim_end_matches('/'),
            path.trim_start_matches('/')
        );
        url.set_path(&joined);
    }
    url.set_query(query);
    url.set_fragment(None);
    Ok(url)
}

/// True for a target written as a whole URL rather than a path.
pub(crate) fn is_absolute(target: &str) -> bool {
    let lower = target.get(..8).unwrap_or(target).to_ascii_lowercase();
    ["http://", "https://", "ws://", "wss://"]
        .iter()
        .any(|scheme| lower.starts_with(scheme))
}

impl Body {
    /// The content type to send when the step sets none, and the bytes of the body.
    ///
    /// Static bodies (a file, a text or JSON without templates) are shared, not copied.
    pub fn render(&self, vars: &Vars) -> (Option<&'static str>, Bytes) {
        match self {
            Body::Text(t) => (Some("text/plain; charset=utf-8"), t.render_bytes(vars)),
            Body::Form(fields) => {
                let mut form = url::form_urlencoded::Serializer::new(String::new());
                for (name, value) in fields {
                    form.append_pair(name, &value.render(vars));
                }
                (
                    Some("application/x-www-form-urlencoded"),
                    Bytes::from(form.finish()),
                )
            }
            Body::Json(json) => (Some("application/json"), json.render(vars)),
            Body::File { bytes, .. } => (Some("application/octet-stream"), bytes.clone()),
        }
    }

    /// What kind of body it is, for the plan description.
    pub fn kind(&self) -> &'static str {
        match self {
            Body::Text(_) => "text",
            Body::Form(_) => "form",
            Body::Json(_) => "json",
            Body::File { .. } => "file",
        }
    }
}

/// A JSON body whose string leaves are templates, compiled once at load.
///
/// Derefs to the value as written.
#[derive(Debug, Clone)]
pub struct JsonBody {
    /// The value as written in the test file (templates unrendered).
    pub value: serde_json::Value,
    /// Serialised once when no string holds a template.
    ready: Option<Bytes>,
    tree: Json,
}

/// The JSON value with its templated strings compiled.
#[derive(Debug, Clone)]
enum Json {
    /// A subtree without templates.
    Plain(serde_json::Value),
    Text(Template),
    Array(Vec<Json>),
    Object(Vec<(String, Json)>),
}

impl JsonBody {
    /// Compiles the string leaves of `value` as templates (see [`Template::compile`]).
    pub fn compile(
        value: serde_json::Value,
        known: &dyn Fn(&str) -> bool,
    ) -> Result<JsonBody, String> {
        let tree = compile_json(&value, known)?;
        let ready = match &tree {
            Json::Plain(v) => Some(Bytes::from(
                serde_json::to_vec(v).map_err(|e| e.to_string())?,
            )),
            _ => None,
        };
        Ok(JsonBody { value, ready, tree })
    }

    /// The body with templates rendered, serialised.
    pub fn render(&self, vars: &Vars) -> Bytes {
        if let Some(ready) = &self.ready {
            return ready.clone();
        }
        let rendered = Rendered {
            json: &self.tree,
            vars,
        };
        // Serialising strings, numbers and maps with string keys cannot fail.
        Bytes::from(serde_json::to_vec(&rendered).unwrap_or_default())
    }
}

impl Deref for JsonBody {
    type Target = serde_json::Value;

    fn deref(&self) -> &serde_json::Value {
        &self.value
    }
}

fn compile_json(value: &serde_json::Value, known: &dyn Fn(&str) -> bool) -> Result<Json, String> {
    use serde_json::Value;
    Ok(match value {
        Value::String(s) => {
            let t = Template::compile(s, known)?;
            if t.is_static() {
                Json::Plain(value.clone())
            } else {
                Json::Text(t)
            }
        }
        Value::Array(items) => {
            let items = items
                .iter()
                .map(|v| compile_json(v, known))
                .collect::<Result<Vec<_>, _>>()?;
            if items.iter().all(|i| matches!(i, Json::Plain(_))) {
                Json::Plain(value.clone())
            } else {
                Json::Array(items)
            }
        }
        Value::Object(map) => {
            let fields = map
                .iter()
                .map(|(k, v)| Ok((k.clone(), compile_json(v, known)?)))
                .collect::<Result<Vec<_>, String>>()?;
            if fields.iter().all(|(_, i)| matches!(i, Json::Plain(_))) {
                Json::Plain(value.clone())
            } else {
                Json::Object(fields)
            }
        }
        other => Json::Plain(other.clone()),
    })
}

/// A compiled JSON tree with the values to render it, serialised without building a `Value`.
struct Rendered<'a> {
    json: &'a Json,
    vars: &'a Vars,
}

impl Serialize for Rendered<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let vars = self.vars;
        match self.json {
            Json::Plain(v) => v.serialize(s),
            Json::Text(t) => s.serialize_str(&t.render(vars)),
            Json::Array(items) => {
                let mut seq = s.serialize_seq(Some(items.len()))?;
                for json in items {
                    seq.serialize_element(&Rendered { json, vars })?;
                }
                seq.end()
            }
            Json::Object(fields) => {
                let mut map = s.serialize_map(Some(fields.len()))?;
                for (key, json) in fields {
                    map.serialize_entry(key, &Rendered { json, vars })?;
                }
                map.end()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn vars() -> Vars {
        let mut vars = Vars {
            user: 3,
            ..Vars::default()
        };
        vars.captured.insert("token".into(), "t\"k".into());
        vars
    }

    fn known(name: &str) -> bool {
        name == "token"
    }

    #[test]
    fn paths_join_the_base_path() {
        let base = Url::parse("http://127.0.0.1:8099").unwrap();
        assert_eq!(
            resolve(&base, "/").unwrap().as_str(),
            "http://127.0.0.1:8099/"
        );
        assert_eq!(
            resolve(&base, "/page?delay_ms=5").unwrap().as_str(),
            "http://127.0.0.1:8099/page?delay_ms=5"
        );
        let base = Url::parse("http://h/api/?old=1").unwrap();
        assert_eq!(
            resolve(&base, "/users").unwrap().as_str(),
            "http://h/api/users"
        );
        assert_eq!(
            resolve(&base, "users?a=b").unwrap().as_str(),
            "http://h/api/users?a=b"
        );
        let base = Url::parse("http://h/api").unwrap();
        assert_eq!(
            resolve(&base, "/x#frag").unwrap().as_str(),
            "http://h/api/x"
        );
        assert_eq!(
            resolve(&base, "HTTPS://other:8443/y").unwrap().as_str(),
            "https://other:8443/y"
        );
    }

    #[test]
    fn step_url_renders_the_target() {
        let step = Step {
            name: "s".into(),
            method: hyper::Method::GET,
            target: Template::compile("/u/{{ user }}?t={{ token }}", &known).unwrap(),
            target_text: String::new(),
            headers: vec![],
            body: None,
            expect_status: None,
            checks: vec![],
            captures: vec![],
            http: Default::default(),
            websocket: None,
            compression: None,
            resources: Default::default(),
        };
        let base = Url::parse("http://127.0.0.1:1/base/").unwrap();
        assert_eq!(
            step.url(&base, &vars()).unwrap().as_str(),
            "http://127.0.0.1:1/base/u/3?t=t%22k"
        );
    }

    #[test]
    fn json_bodies_render_templates_in_strings_only() {
        let value = json!({"user": "u{{ user }}", "token": "{{ token }}", "n": 1, "list": ["{{ user }}", 2]});
        let body = JsonBody::compile(value, &known).unwrap();
        let (ct, bytes) = Body::Json(body).render(&vars());
        assert_eq!(ct, Some("application/json"));
        let back: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(
            back,
            json!({"user": "u3", "token": "t\"k", "n": 1, "list": ["3", 2]})
        );
    }

    #[test]
    fn static_bodies_are_shared() {
        let body = Body::Json(JsonBody::compile(json!({"a": [1, "b"]}), &known).unwrap());
        let (_, a) = body.render(&vars());
        let (_, b) = body.render(&vars());
        assert_eq!(a.as_ptr(), b.as_ptr());
        assert_eq!(&a[..], br#"{"a":[1,"b"]}"#);

        let text = Body::Text(Template::compile("hello", &known).unwrap());
        let (ct, a) = text.render(&vars());
        assert_eq!(ct, Some("text/plain; charset=utf-8"));
        assert_eq!(a.as_ptr(), text.render(&vars()).1.as_ptr());
    }

    #[test]
    fn form_bodies_are_urlencoded() {
        let body = Body::Form(vec![
            (
                "login".into(),
                Template::compile("user{{ user }}", &known).unwrap(),
            ),
            ("pass".into(), Template::compile("a b&c", &known).unwrap()),
        ]);
        let (ct, bytes) = body.render(&vars());
        assert_eq!(ct, Some("application/x-www-form-urlencoded"));
        assert_eq!(&bytes[..], b"login=user3&pass=a+b%26c");
    }

    #[test]
    fn unknown_names_in_json_are_rejected() {
        let err = JsonBody::compile(json!({"a": ["{{ nope }}"]}), &known).unwrap_err();
        assert!(err.contains("`nope`"), "{err}");
    }
}
