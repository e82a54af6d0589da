//! test_def tests: the shipped examples load and describe themselves; bad files give one line.

use std::path::Path;
use std::time::Duration;

use benchmaster::test_def::{self, Body, CaptureSource, HttpVersion, Overrides, Vars};

fn example(name: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("examples")
        .join(name)
}

#[test]
fn quickstart_example_loads() {
    let plan = test_def::load(&example("quickstart.toml"), &Overrides::default()).unwrap();
    assert_eq!(plan.name, "quickstart");
    assert_eq!(plan.url.as_str(), "http://127.0.0.1:8099/");
    assert_eq!(plan.bench.cycles, [4, 8]);
    assert_eq!(plan.bench.duration, Duration::from_secs(3));
    assert!(plan.steps.len() >= 2);
    assert!(plan.steps.iter().any(|s| !s.checks.is_empty()));
    assert!(plan.steps.iter().any(|s| !s.captures.is_empty()));
    let service = plan.service.as_ref().expect("[service]");
    assert_eq!(
        service.command,
        ["bench-node", "target", "--listen", "127.0.0.1:8099"]
    );
    assert_eq!(service.ready_url.as_str(), "http://127.0.0.1:8099/");
    assert_eq!(service.ready_timeout, Duration::from_secs(30));

    // Every step resolves against the built-in target, templates rendered.
    let mut vars = Vars {
        user: 3,
        ..Vars::default()
    };
    vars.captured.insert("greeting".into(), "ok".into());
    for step in &plan.steps {
        let url = step.url(&plan.url, &vars).unwrap();
        assert_eq!(url.host_str(), Some("127.0.0.1"));
        assert_eq!(url.port(), Some(8099));
        if let Some(body) = &step.body {
            let (_, bytes) = body.render(&vars);
            assert!(!bytes.is_empty());
        }
    }

    let text = plan.describe();
    for expected in [
        "quickstart",
        "http://127.0.0.1:8099/",
        "4, 8 users",
        "3 s",
        "home",
        "GET /",
    ] {
        assert!(text.contains(expected), "{expected:?} not in\n{text}");
    }
    // 4 and 8 users started 0.01 s apart, 3 s each.
    assert_eq!(plan.expected_duration(), Duration::from_millis(6120));
}

#[test]
fn full_example_uses_every_feature() {
    let plan = test_def::load(&example("full.toml"), &Overrides::default()).unwrap();
    let b = &plan.bench;
    assert_eq!(b.cycles, [5, 10, 20]);
    assert_eq!(b.sleep_time_max, Duration::from_millis(500));
    assert_eq!(b.cycle_time, Duration::from_secs(1));
    assert!(!plan.monitor_hosts.is_empty());
    assert!(plan.service.is_some());
    assert_eq!(plan.thresholds.len(), 3);
    assert!(plan.thresholds[0].abort && plan.thresholds[0].step.as_deref() == Some("search"));

    let bodies: Vec<&str> = plan
        .steps
        .iter()
        .filter_map(|s| s.body.as_ref())
        .map(Body::kind)
        .collect();
    for kind in ["form", "json", "text", "file"] {
        assert!(bodies.contains(&kind), "no {kind} body in full.toml");
    }
    let captures: Vec<&CaptureSource> = plan
        .steps
        .iter()
        .flat_map(|s| &s.captures)
        .map(|c| &c.source)
        .collect();
    assert!(captures
        .iter()
        .any(|c| matches!(c, CaptureSource::Regex(_))));
    assert!(captures
        .iter()
        .any(|c| matches!(c, CaptureSource::JsonPointer(_))));
    assert!(captures
        .iter()
        .any(|c| matches!(c, CaptureSource::Header(_))));
    assert!(plan.steps.iter().any(|s| s.expect_status.is_some()));
    assert!(plan.steps.iter().any(|s| !s.headers.is_empty()));
    assert!(plan
        .steps
        .iter()
        .any(|s| s.target_text.starts_with("http://")));
    assert!(plan.describe().contains("checkout"));
    assert!(plan.steps.iter().any(|s| s.websocket.is_some()));
    assert!(plan.steps.iter().any(|s| s.http == HttpVersion::Auto));
    assert!(plan.steps.iter().any(|s| s.http == HttpVersion::Http1));
    assert!(plan
        .steps
        .iter()
        .any(|s| s.resources == test_def::Resources::SameOrigin));
    assert_eq!(plan.bench.resource_connections, 6);
}

#[test]
fn overrides_replace_file_values() {
    let overrides = Overrides {
        cycles: Some(test_def::parse_cycles("2:3").unwrap()),
        duration: Some(Duration::from_secs(1)),
        url: Some("http://[::1]:9000/app".parse().unwrap()),
        ..Default::default()
    };
    let plan = test_def::load(&example("quickstart.toml"), &overrides).unwrap();
    assert_eq!(plan.bench.cycles, [2, 3]);
    assert_eq!(plan.bench.duration, Duration::from_secs(1));
    let url = plan.steps[0].url(&plan.url, &Vars::default()).unwrap();
    assert_eq!(url.as_str(), "http://[::1]:9000/app/");
}

#[test]
fn bad_file_gives_one_line_with_file_line_and_key() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("typo.toml");
    std::fs::write(
        &path,
        "[test]\nname = \"t\"\nurl = \"http://127.0.0.1:1\"\n\n[bench]\nduraton = 10\n",
    )
    .unwrap();
    let err = test_def::load(&path, &Overrides::default())
        .unwrap_err()
        .to_string();
    let expected = format!(
        "{}:6:1: unknown key `duraton` in [bench] (expected one of ",
        path.display()
    );
    assert!(err.starts_with(&expected), "{err}");
    assert!(!err.contains('\n'));
}

/// One HTTP/1.1 exchange over a plain socket: (status, headers, body).
fn exchange(
    url: &url::Url,
    method: &str,
    content_type: Option<&str>,
    body: &[u8],
) -> (u16, hyper::HeaderMap, Vec<u8>) {
    use std::io::{Read, Write};
    let addr = (url.host_str().unwrap(), url.port().unwrap());
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let target = &url[url::Position::BeforePath..];
    let mut request = format!(
        "{method} {target} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    if let Some(ct) = content_type {
        request.push_str(&format!("Content-Type: {ct}\r\n"));
    }
    request.push_str("\r\n");
    stream.write_all(request.as_bytes()).unwrap();
    stream.write_all(body).unwrap();
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).unwrap();
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    let head = String::from_utf8(raw[..split].to_vec()).unwrap();
    let mut lines = head.lines();
    let status = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let mut headers = hyper::HeaderMap::new();
    for line in lines {
        let (name, value) = line.split_once(':').unwrap();
        headers.insert(
            hyper::header::HeaderName::from_bytes(name.trim().as_bytes()).unwrap(),
            value.trim().parse().unwrap(),
        );
    }
    (status, headers, raw[split + 4..].to_vec())
}

#[test]
fn quickstart_steps_pass_against_the_builtin_target() {
    use benchmaster::engine::target::Target;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let target = rt
        .block_on(Target::spawn("127.0.0.1:0".parse().unwrap()))
        .unwrap();
    let overrides = Overrides {
        url: Some(format!("http://{}", target.addr).parse().unwrap()),
        ..Overrides::default()
    };
    let plan = test_def::load(&example("quickstart.toml"), &overrides).unwrap();

    // One execution of the test by user 1, as the engine runs it: captures feed later steps.
    let mut vars = Vars {
        user: 1,
        nodes: 1,
        ..Vars::default()
    };
    for step in &plan.steps {
        let url = step.url(&plan.url, &vars).unwrap();
        let (content_type, body) = match &step.body {
            Some(b) => b.render(&vars),
            None => (None, bytes::Bytes::new()),
        };
        let (status, headers, response) = exchange(&url, step.method.as_str(), content_type, &body);
        let ok = step.expect_status.as_ref().unwrap_or(&plan.bench.ok_codes);
        assert!(ok.contains(&status), "{}: status {status}", step.name);
        for check in &step.checks {
            check.check(&response).unwrap();
        }
        for capture in &step.captures {
            let value = capture.extract(&headers, &response).expect("captured");
            vars.captured.insert(capture.name.clone(), value);
        }
        if let Some(test_def::Body::Json(_)) = &step.body {
            let sent: serde_json::Value = serde_json::from_slice(&body).unwrap();
            assert_eq!(sent["user"], "user1");
            assert_eq!(sent["said"], "ok");
        }
    }
    assert_eq!(vars.captured["greeting"], "ok");
    assert_eq!(target.count(), plan.steps.len() as u64);
    rt.shutdown_background();
}
