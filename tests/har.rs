//! `bench-node import`: a hand-written HAR with a page and its resources, a form POST answered
//! by a redirect, a JSON POST and an XHR becomes a test that passes `check` and runs against
//! the built-in target, which counts what it receives; and the same journey recorded by
//! headless Chromium on the target's `/__shop` page (over the DevTools protocol, by
//! `tests/data/record-har.py`) imports, checks and runs with no error.

use crate::util::{bench_node, run, tempdir, write, Server, TargetProcess};

/// One HAR entry.
fn entry(at: &str, method: &str, url: &str, kind: &str, status: u16, extra: &str) -> String {
    format!(
        r#"{{"startedDateTime": "{at}", "time": 50, "_resourceType": "{kind}",
  "request": {{"method": "{method}", "url": "{url}", "httpVersion": "HTTP/1.1",
    "headers": [{{"name": "Cookie", "value": "sid=secret"}}, {{"name": "User-Agent", "value": "Chromium"}},
                {{"name": "X-Client", "value": "bench"}}, {{"name": "sec-fetch-mode", "value": "cors"}}]{extra}}},
  "response": {{"status": {status}, "redirectURL": "{redirect}", "headers": [], "content": {{"mimeType": "text/html"}}}}}}"#,
        redirect = if status == 302 {
            "/home?from=login"
        } else {
            ""
        },
    )
}

fn har(base: &str) -> String {
    let form = r#", "postData": {"mimeType": "application/x-www-form-urlencoded", "text": "login=ann&password=p%26w", "params": [{"name": "login", "value": "ann"}, {"name": "password", "value": "p&w"}]}"#;
    let json = r#", "postData": {"mimeType": "application/json", "text": "{\"item\": \"book\", \"quantity\": 2, \"tags\": [\"gift\"]}"}"#;
    let entries = [
        entry(
            "2024-05-01T12:00:00.000Z",
            "GET",
            &format!("{base}/"),
            "document",
            200,
            "",
        ),
        entry(
            "2024-05-01T12:00:00.100Z",
            "GET",
            &format!("{base}/style.css"),
            "stylesheet",
            200,
            "",
        ),
        entry(
            "2024-05-01T12:00:00.120Z",
            "GET",
            &format!("{base}/logo.png"),
            "image",
            200,
            "",
        ),
        entry(
            "2024-05-01T12:00:02.000Z",
            "POST",
            &format!("{base}/login?redirect=/home?from=login"),
            "document",
            302,
            form,
        ),
        entry(
            "2024-05-01T12:00:02.060Z",
            "GET",
            &format!("{base}/home?from=login"),
            "document",
            200,
            "",
        ),
        entry(
            "2024-05-01T12:00:03.500Z",
            "POST",
            &format!("{base}/api/cart?status=201"),
            "fetch",
            201,
            json,
        ),
        entry(
            "2024-05-01T12:00:04.000Z",
            "GET",
            &format!("{base}/api/items?page=2"),
            "xhr",
            200,
            "",
        ),
    ];
    format!(
        r#"{{"log": {{"version": "1.2", "creator": {{"name": "hand", "version": "1"}}, "entries": [{}]}}}}"#,
        entries.join(",\n")
    )
}

/// `bench-node check` accepts the imported test (`text`, shown when it does not).
fn checks(test: &std::path::Path, text: &str) {
    let o = run(bench_node().arg("check").arg(test));
    assert!(
        o.status.success(),
        "{}\n{text}",
        String::from_utf8_lossy(&o.stderr)
    );
}

#[test]
fn a_recorded_journey_becomes_a_test_that_checks_and_runs() {
    let server = Server::start();
    let dir = tempdir();
    let file = write(dir.path(), "shop.har", &har(&server.url()));
    let test = dir.path().join("shop.toml");
    let o = run(bench_node().arg("import").arg(&file).arg("-o").arg(&test));
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let text = std::fs::read_to_string(&test).unwrap();
    // One step per document, form, JSON call and XHR; the redirect's target is the engine's.
    assert_eq!(text.matches("[[step]]").count(), 4, "{text}");
    assert!(
        text.contains("path = \"/login?redirect=/home?from=login\""),
        "{text}"
    );
    assert!(!text.contains("path = \"/home?from=login\""), "{text}");
    assert!(text.contains("form = {"), "{text}");
    assert!(text.contains("password = \"p&w\""), "{text}");
    assert!(text.contains("json = {"), "{text}");
    assert!(text.contains("quantity = 2"), "{text}");
    assert!(text.contains("expect_status = 201"), "{text}");
    assert!(text.contains("path = \"/api/items?page=2\""), "{text}");
    // Headers that matter stay, cookies and browser noise go; resources are listed, not steps.
    assert!(text.contains("X-Client"), "{text}");
    assert!(
        !text.contains("sid=secret") && !text.contains("Chromium") && !text.contains("sec-fetch"),
        "{text}"
    );
    assert!(
        text.contains("#   ") && text.contains("/style.css"),
        "{text}"
    );
    // ... and fetched by the page they came with (its step, the first), the only one.
    let page = &text[..text.match_indices("[[step]]").nth(1).unwrap().0];
    assert!(page.contains("\nresources = true\n"), "{text}");
    assert_eq!(text.matches("resources = ").count(), 1, "{text}");
    // Think time from the gaps: 1.95 s before the login (after the page's 50 ms), 0.45 s the
    // least (before the XHR), to 0.1 s.
    assert!(text.contains("sleep_time_max = 2.0"), "{text}");
    assert!(text.contains("sleep_time_min = 0.5"), "{text}");
    assert!(
        text.contains(&format!("# recorded: POST {}/login?", server.url())),
        "{text}"
    );

    checks(&test, &text);
    // It runs: the target received its requests, the result has its four steps (how far the
    // journey gets in 3 s depends on the recorded think times and the machine's load).
    let o = run(bench_node()
        .arg("run")
        .arg(&test)
        .args(["-c", "1", "-D", "3"])
        .arg("-o")
        .arg(dir.path().join("r.xml")));
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(server.count() >= 1, "{}", server.count());
    let r = benchmaster::result::read::read_file(&dir.path().join("r.xml")).unwrap();
    assert_eq!(r.steps.len(), 4);
    assert_eq!(r.steps[1].name, "02 POST /login");
    // The target answers as recorded (the login's 302, the cart's 201): nothing failed.
    assert!(r.errors.is_empty(), "{:?}\n{text}", r.errors);

    // --keep-resources makes steps of the stylesheet and the image too.
    let o = run(bench_node()
        .arg("import")
        .arg(&file)
        .arg("--keep-resources"));
    let all = String::from_utf8_lossy(&o.stdout);
    assert_eq!(all.matches("[[step]]").count(), 6, "{all}");
}

#[test]
fn a_file_that_is_not_a_har_is_named_with_its_place() {
    let dir = tempdir();
    let file = write(
        dir.path(),
        "bad.har",
        "{\"log\": {\"entries\": [\n  {\"request\": 3}]}}",
    );
    let o = run(bench_node().arg("import").arg(&file));
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("bad.har:2:") && err.contains("not a HAR file"),
        "{err}"
    );
}

/// Debian's Python, where python3-websockets installs.
const PYTHON: &str = "/usr/bin/python3";

#[test]
fn a_journey_recorded_by_headless_chromium_imports_checks_and_runs_without_errors() {
    let target = TargetProcess::start();
    let dir = tempdir();
    let har = dir.path().join("shop.har");
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/record-har.py");
    // Chromium sometimes dies on start in containers: once more before giving up.
    let mut recorded = None;
    for _ in 0..2 {
        let profile = tempdir();
        let o = run(std::process::Command::new(PYTHON)
            .arg(script)
            .arg("chromium")
            .arg(format!("{}/__shop", target.url()))
            .arg(&har)
            .arg(profile.path()));
        if o.status.success() {
            recorded = Some(());
            break;
        }
        eprintln!("recording failed: {}", String::from_utf8_lossy(&o.stderr));
    }
    assert!(
        recorded.is_some(),
        "headless Chromium recorded no HAR (needs chromium and python3-websockets)"
    );
    let test = dir.path().join("shop.toml");
    let o = run(bench_node().arg("import").arg(&har).arg("-o").arg(&test));
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let text = std::fs::read_to_string(&test).unwrap();
    // The page, the JSON call, the XHR and the form; the redirect's target, the stylesheet,
    // script, image and favicon are not steps.
    assert_eq!(text.matches("[[step]]").count(), 4, "{text}");
    for line in [
        "path = \"/__shop\"",
        "path = \"/api/cart?status=201\"",
        "expect_status = 201",
        "quantity = 2",
        "path = \"/api/items?page=2\"",
        "path = \"/login?redirect=/home\"",
        "password = \"p&w\"",
    ] {
        assert!(text.contains(line), "no {line:?} in\n{text}");
    }
    assert!(!text.contains("path = \"/home\""), "{text}");
    assert!(text.contains("\nresources = true\n"), "{text}");
    for resource in ["/__shop/style.css", "/__shop/app.js", "/__shop/logo.png"] {
        assert!(
            text.contains(&format!("#   {}{resource}", target.url())),
            "{text}"
        );
    }

    checks(&test, &text);
    let out = dir.path().join("r.xml");
    let o = run(bench_node()
        .arg("run")
        .arg(&test)
        .args(["-c", "2", "-D", "3"])
        .arg("-o")
        .arg(&out));
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let r = benchmaster::result::read::read_file(&out).unwrap();
    assert!(r.errors.is_empty(), "{:?}\n{text}", r.errors);
    let c = &r.cycles[0];
    assert_eq!(
        c.pages.failure + c.pages.error + c.requests.failure + c.requests.error,
        0
    );
    // Every step ran: the form's POST and its redirect too (two requests a journey at least
    // one more than the pages).
    assert!(c.steps.iter().all(|s| s.success > 0), "{:?}", c.steps);
    assert!(c.requests.success > c.pages.success, "{c:?}");
    // The page fetched its stylesheet, script and image (the favicon Chromium asked for by
    // itself is not in the page).
    let page = c.steps[0].resources;
    assert!(
        page.requests + page.cached >= 3 * c.steps[0].success,
        "{page:?}"
    );
}
