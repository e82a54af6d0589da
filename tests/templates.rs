//! Templates end to end: a value captured from a real server goes through a filter into the
//! next request, and the server sees what the test meant.

use std::sync::{Arc, Mutex};

use crate::util::{bench_node, response, run, tempdir, write, RawServer};

/// The token the server hands out: `&`, `=` and a space would each break a query string.
const TOKEN: &str = "a&b=c d";

/// A server whose `GET /token` answers `{"token": TOKEN}`; any other request is answered
/// `200 ok` and its query string kept in `queries`.
fn token_server(queries: Arc<Mutex<Vec<String>>>) -> RawServer {
    RawServer::start(move |request| {
        let target = request.target();
        let body = if target == "/token" {
            serde_json::json!({ "token": TOKEN }).to_string()
        } else {
            let query = target.split_once('?').map_or("", |(_, q)| q);
            queries.lock().unwrap().push(query.to_string());
            "ok".to_string()
        };
        response("200 OK", &[("content-type", "application/json")], &body)
    })
}

/// Runs one user for half a second: `GET /token` captures the token, `GET /use?t=TEMPLATE`
/// sends it. Returns the value of `t` in each query the server received, decoded.
fn sent_tokens(template: &str) -> Vec<String> {
    let queries = Arc::new(Mutex::new(Vec::new()));
    let server = token_server(queries.clone());
    let dir = tempdir();
    let test = write(
        dir.path(),
        "t.toml",
        &format!(
            r#"
[test]
name = "encoding"
url = "http://{}"

[bench]
cycles = [1]
duration = 0.5
sleep_time = 0.05
timeout = 2

[[step]]
name = "token"
path = "/token"
[[step.capture]]
name = "tok"
json = "/token"

[[step]]
name = "use"
path = "/use?t={template}"
"#,
            server.addr
        ),
    );
    let o = run(bench_node()
        .arg("run")
        .arg(&test)
        .arg("-o")
        .arg(dir.path().join("out.xml"))
        .args(["--progress", "none"]));
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let queries = queries.lock().unwrap().clone();
    assert!(!queries.is_empty(), "the second step never ran");
    queries
        .iter()
        .map(|q| {
            url::form_urlencoded::parse(q.as_bytes())
                .find(|(k, _)| k == "t")
                .map(|(_, v)| v.into_owned())
                .unwrap_or_default()
        })
        .collect()
}

#[test]
fn urlencode_keeps_a_captured_value_whole_in_a_query() {
    for filter in ["urlencode", "urlencode_strict"] {
        let sent = sent_tokens(&format!("{{{{ tok | {filter} }}}}"));
        assert!(sent.iter().all(|t| t == TOKEN), "{filter}: {sent:?}");
    }
    // Without the filter the token's `&` and `=` make parameters of their own: what the
    // filter is for.
    let sent = sent_tokens("{{ tok }}");
    assert!(sent.iter().all(|t| t == "a"), "{sent:?}");
}
