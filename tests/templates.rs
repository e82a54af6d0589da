//! Templates end to end: a value captured from a real server goes through a filter into the
//! next request, and the server sees what the test meant.

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};

use crate::util::{bench_node, run, tempdir, write};

/// The token the server hands out: `&`, `=` and a space would each break a query string.
const TOKEN: &str = "a&b=c d";

/// `GET /token` answers `{"token": TOKEN}`; any other request is answered `200 ok` and its
/// query string kept.
struct TokenServer {
    addr: SocketAddr,
    queries: Arc<Mutex<Vec<String>>>,
}

impl TokenServer {
    fn start() -> TokenServer {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let queries = Arc::new(Mutex::new(Vec::new()));
        let kept = queries.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let kept = kept.clone();
                std::thread::spawn(move || TokenServer::serve(stream, &kept));
            }
        });
        TokenServer { addr, queries }
    }

    fn serve(stream: TcpStream, kept: &Mutex<Vec<String>>) {
        let mut reader = BufReader::new(stream.try_clone().unwrap());
        let mut writer = stream;
        loop {
            let mut request_line = String::new();
            if reader.read_line(&mut request_line).unwrap_or(0) == 0 {
                return;
            }
            let mut line = String::new();
            loop {
                line.clear();
                match reader.read_line(&mut line) {
                    Ok(0) | Err(_) => return,
                    Ok(_) if line == "\r\n" => break,
                    Ok(_) => {}
                }
            }
            let target = request_line.split(' ').nth(1).unwrap_or("/");
            let body = if target == "/token" {
                serde_json::json!({ "token": TOKEN }).to_string()
            } else {
                let query = target.split_once('?').map_or("", |(_, q)| q);
                kept.lock().unwrap().push(query.to_string());
                "ok".to_string()
            };
            let answer = format!(
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
                body.len()
            );
            if writer.write_all(answer.as_bytes()).is_err() {
                return;
            }
        }
    }
}

/// Runs one user for half a second: `GET /token` captures the token, `GET /use?t=TEMPLATE`
/// sends it. Returns the value of `t` in each query the server received, decoded.
fn sent_tokens(template: &str) -> Vec<String> {
    let server = TokenServer::start();
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
    let queries = server.queries.lock().unwrap().clone();
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
