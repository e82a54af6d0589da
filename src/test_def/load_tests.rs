//! Tests of loading test files: defaults, overrides, and every rejected input naming its place.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::*;

const HEAD: &str = "[test]\nname = \"t\"\nurl = \"http://127.0.0.1:8099\"\n";
const STEP: &str = "[[step]]\nname = \"home\"\npath = \"/\"\n";

/// A test file in its own temporary directory.
struct File {
    dir: tempfile::TempDir,
    path: PathBuf,
}

fn file(text: &str) -> File {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("test.toml");
    std::fs::write(&path, text).unwrap();
    File { dir, path }
}

fn load_text(text: &str) -> Result<TestPlan, TestDefError> {
    let f = file(text);
    load(&f.path, &Overrides::default())
}

/// The error for `text`, checked to start with `file:line:column: `.
fn error(text: &str, line: usize, column: usize) -> String {
    let f = file(text);
    let err = load(&f.path, &Overrides::default()).unwrap_err();
    let msg = err.to_string();
    let prefix = format!("{}:{line}:{column}: ", f.path.display());
    assert!(
        msg.starts_with(&prefix),
        "expected {prefix:?} at the start of {msg:?}"
    );
    assert!(!msg.contains('\n'), "one line: {msg:?}");
    msg[prefix.len()..].to_string()
}

#[test]
fn minimal_file_gets_defaults() {
    let plan = load_text(&format!("{HEAD}{STEP}")).unwrap();
    assert_eq!(plan.name, "t");
    assert_eq!(plan.url.as_str(), "http://127.0.0.1:8099/");
    let b = &plan.bench;
    assert_eq!(b.cycles, [1]);
    assert_eq!(b.duration, Duration::from_secs(10));
    assert_eq!(b.startup_delay, Duration::from_millis(10));
    assert_eq!(b.sleep_time_min, Duration::ZERO);
    assert_eq!(b.sleep_time_max, Duration::ZERO);
    assert_eq!(b.apdex_t, Duration::from_millis(1500));
    assert_eq!(b.ok_codes, [200, 301, 302, 303, 307]);
    assert_eq!(b.timeout, Duration::from_secs(30));
    assert!(!b.insecure);
    assert_eq!(plan.steps.len(), 1);
    assert_eq!(plan.steps[0].method, hyper::Method::GET);
    assert!(plan.service.is_none());
    assert!(plan.monitor_hosts.is_empty());
}

#[test]
fn peak_users_bound_a_nodes_worker_threads() {
    let closed = load_text(&format!("{HEAD}[bench]\ncycles = [2, 9, 4]\n{STEP}")).unwrap();
    assert_eq!(closed.bench.peak_users(), 9);
    let open = load_text(&format!(
        "{HEAD}[bench]\nrate = [500]\nmax_users = 3\n{STEP}"
    ))
    .unwrap();
    assert_eq!(open.bench.peak_users(), 3);
}

#[test]
fn bench_values_and_overrides() {
    let text = format!(
        "{HEAD}[bench]\ncycles = [2, 4]\nduration = 2.5\nsleep_time_min = 1\nsleep_time_max = 2\n\
         apdex_t = 0.5\nok_codes = 200\ninsecure = true\n{STEP}"
    );
    let f = file(&text);
    let plan = load(&f.path, &Overrides::default()).unwrap();
    assert_eq!(plan.bench.cycles, [2, 4]);
    assert_eq!(plan.bench.duration, Duration::from_millis(2500));
    assert_eq!(plan.bench.sleep_time_max, Duration::from_secs(2));
    assert_eq!(plan.bench.ok_codes, [200]);
    assert!(plan.bench.insecure);

    let overrides = Overrides {
        cycles: Some(vec![7]),
        duration: Some(Duration::from_secs(1)),
        url: Some("https://example.test:8443/base".parse().unwrap()),
        ..Default::default()
    };
    let plan = load(&f.path, &overrides).unwrap();
    assert_eq!(plan.bench.cycles, [7]);
    assert_eq!(plan.bench.duration, Duration::from_secs(1));
    assert_eq!(plan.url.as_str(), "https://example.test:8443/base");

    let bad = |o: Overrides| load(&f.path, &o).unwrap_err().to_string();
    let e = bad(Overrides {
        url: Some("ftp://x".parse().unwrap()),
        ..Overrides::default()
    });
    // A `Url` is spelled whole: `ftp://x/`.
    assert!(e.starts_with("-u: invalid URL `ftp://x/`"), "{e}");
    let e = bad(Overrides {
        cycles: Some(vec![3, 0]),
        ..Overrides::default()
    });
    assert!(e.starts_with("-c: "), "{e}");
    let e = bad(Overrides {
        duration: Some(Duration::ZERO),
        ..Overrides::default()
    });
    assert!(e.starts_with("-D: "), "{e}");
}

#[test]
fn missing_file() {
    let err = load(Path::new("/nonexistent/x.toml"), &Overrides::default()).unwrap_err();
    assert!(matches!(err, TestDefError::Read { .. }));
    assert!(
        err.to_string()
            .starts_with("/nonexistent/x.toml: cannot read: "),
        "{err}"
    );
}

#[test]
fn toml_syntax_error() {
    let e = error(&format!("{HEAD}[bench\ncycles = [1]\n"), 4, 7);
    assert!(e.contains("invalid table header"), "{e}");
    let e = error("[test]\nname = \"t\nurl = \"x\"\n", 2, 10);
    assert!(!e.is_empty());
}

#[test]
fn unknown_keys() {
    let e = error(
        &format!("{HEAD}[bench]\ncycles = [1]\nduraton = 10\n{STEP}"),
        6,
        1,
    );
    assert!(
        e.starts_with("unknown key `duraton` in [bench] (expected one of "),
        "{e}"
    );
    assert!(e.contains("`duration`"), "{e}");
    let e = error(&format!("{HEAD}colour = 1\n{STEP}"), 4, 1);
    assert!(e.starts_with("unknown key `colour` in [test]"), "{e}");
    let e = error(
        &format!("{HEAD}{STEP}[[step]]\nname = \"b\"\npath = \"/\"\nmethd = \"GET\"\n"),
        10,
        1,
    );
    assert!(e.starts_with("unknown key `methd` in [[step]] #2"), "{e}");
    let e = error(
        &format!("{HEAD}{STEP}[[step.capture]]\nname = \"x\"\nregx = \"a\"\n"),
        9,
        1,
    );
    assert!(
        e.starts_with("unknown key `regx` in [[step]] #1 capture #1"),
        "{e}"
    );
    let e = error(&format!("{HEAD}{STEP}[extra]\n"), 7, 2);
    assert!(e.starts_with("unknown key `extra` at top level"), "{e}");
}

#[test]
fn missing_name_or_url() {
    let e = error(&format!("[test]\nurl = \"http://h\"\n{STEP}"), 1, 1);
    assert!(e.starts_with("missing key `name` in [test]"), "{e}");
    let e = error(&format!("[test]\nname = \"t\"\n{STEP}"), 1, 1);
    assert!(e.starts_with("missing key `url` in [test]"), "{e}");
    let e = error(STEP, 1, 1);
    assert!(e.contains("missing key `test`"), "{e}");
    let e = error(&format!("{HEAD}[[step]]\npath = \"/\"\n"), 4, 1);
    assert!(e.starts_with("missing key `name` in [[step]] #1"), "{e}");
    let e = error(
        &format!("{HEAD}[[step]]\nname = \" \"\npath = \"/\"\n"),
        5,
        8,
    );
    assert!(e.starts_with("[[step]] #1 name: must not be empty"), "{e}");
}

#[test]
fn bad_urls() {
    let e = error(
        &format!("[test]\nname = \"t\"\nurl = \"127.0.0.1:8099\"\n{STEP}"),
        3,
        7,
    );
    assert!(
        e.starts_with("[test] url: invalid URL `127.0.0.1:8099`"),
        "{e}"
    );
    let e = error(
        &format!("[test]\nname = \"t\"\nurl = \"ftp://h/\"\n{STEP}"),
        3,
        7,
    );
    assert!(e.contains("scheme must be http or https"), "{e}");
    let e = error(
        &format!("{HEAD}[[step]]\nname = \"s\"\nurl = \"http://\"\n"),
        6,
        7,
    );
    assert!(e.starts_with("[[step]] #1 \"s\" url: invalid URL"), "{e}");
    let e = error(
        &format!("{HEAD}[[step]]\nname = \"s\"\npath = \"http://h/x\"\n"),
        6,
        8,
    );
    assert!(e.contains("is a whole URL: write it as url ="), "{e}");
}

#[test]
fn bad_cycles() {
    let e = error(&format!("{HEAD}[bench]\ncycles = [5, 0]\n{STEP}"), 5, 14);
    assert!(e.starts_with("[bench] cycles: cycle 2 has 0 users"), "{e}");
    let e = error(&format!("{HEAD}[bench]\ncycles = []\n{STEP}"), 5, 10);
    assert!(
        e.starts_with("[bench] cycles: the list of cycles is empty"),
        "{e}"
    );
    let e = error(&format!("{HEAD}[bench]\ncycles = [-1]\n{STEP}"), 5, 11);
    assert!(e.contains("cycle 1 has -1 users"), "{e}");
    let e = error(&format!("{HEAD}[bench]\ncycles = 5\n{STEP}"), 5, 10);
    assert!(e.starts_with("[bench] cycles: invalid type"), "{e}");
}

#[test]
fn bad_times_and_codes() {
    let e = error(&format!("{HEAD}[bench]\nduration = 0\n{STEP}"), 5, 12);
    assert!(
        e.starts_with("[bench] duration: 0 is not a valid time"),
        "{e}"
    );
    let e = error(&format!("{HEAD}[bench]\nstartup_delay = -1\n{STEP}"), 5, 17);
    assert!(e.starts_with("[bench] startup_delay:"), "{e}");
    let e = error(&format!("{HEAD}[bench]\ntimeout = \"30s\"\n{STEP}"), 5, 11);
    assert!(
        e.starts_with("[bench] timeout: invalid type: string"),
        "{e}"
    );
    let e = error(
        &format!("{HEAD}[bench]\nsleep_time_min = 2\nsleep_time_max = 1\n{STEP}"),
        6,
        18,
    );
    assert!(e.contains("below sleep_time_min"), "{e}");
    let e = error(
        &format!("{HEAD}[bench]\nok_codes = [200, 1000]\n{STEP}"),
        5,
        12,
    );
    assert!(e.contains("1000 is not an HTTP status code"), "{e}");
}

#[test]
fn no_steps() {
    let e = error(HEAD, 3, 30);
    assert!(e.starts_with("[[step]]: the test has no steps"), "{e}");
    let e = error(&format!("step = []\n{HEAD}"), 1, 8);
    assert!(e.contains("the list of steps is empty"), "{e}");
}

#[test]
fn step_target_rules() {
    let e = error(
        &format!("{HEAD}[[step]]\nname = \"s\"\npath = \"/\"\nurl = \"http://h/\"\n"),
        7,
        7,
    );
    assert!(
        e.starts_with("[[step]] #1 \"s\" url: give either path or url, not both"),
        "{e}"
    );
    let e = error(&format!("{HEAD}[[step]]\nname = \"s\"\n"), 4, 1);
    assert!(e.contains("needs a path"), "{e}");
    let e = error(&format!("{HEAD}{STEP}{STEP}"), 7, 1);
    assert!(e.contains("already used by step #1"), "{e}");
    let e = error(
        &format!("{HEAD}[[step]]\nname = \"s\"\npath = \"/\"\nmethod = \"G T\"\n"),
        7,
        10,
    );
    assert!(e.contains("invalid HTTP method"), "{e}");
}

#[test]
fn bad_regex_header_and_body() {
    let e = error(&format!("{HEAD}{STEP}regex = \"(unclosed\"\n"), 7, 9);
    assert!(
        e.starts_with("[[step]] #1 \"home\" regex: invalid regex \"(unclosed\""),
        "{e}"
    );
    let e = error(
        &format!("{HEAD}{STEP}headers = {{ \"Bad Name\" = \"x\" }}\n"),
        7,
        13,
    );
    assert!(
        e.starts_with("[[step]] #1 \"home\" headers: invalid header name \"Bad Name\""),
        "{e}"
    );
    let e = error(
        &format!("{HEAD}{STEP}headers = {{ X-A = \"a\\nb\" }}\n"),
        7,
        19,
    );
    assert!(e.contains("invalid header value"), "{e}");
    let e = error(
        &format!("{HEAD}{STEP}body = \"x\"\njson = {{ a = 1 }}\n"),
        8,
        8,
    );
    assert!(
        e.contains("give only one of body, form, json, body_file"),
        "{e}"
    );
    let e = error(&format!("{HEAD}{STEP}body_file = \"missing.bin\"\n"), 7, 13);
    assert!(
        e.starts_with("[[step]] #1 \"home\" body_file: cannot read \"missing.bin\""),
        "{e}"
    );
}

#[test]
fn bad_captures() {
    let cap = |body: &str| format!("{HEAD}{STEP}[[step.capture]]\n{body}");
    let e = error(&cap("name = \"x\"\nregex = \"a\"\nheader = \"b\"\n"), 7, 1);
    assert!(
        e.contains("give exactly one of regex, json (a pointer) or header"),
        "{e}"
    );
    let e = error(&cap("name = \"user\"\nheader = \"b\"\n"), 8, 8);
    assert!(e.contains("`user` is a built-in template value"), "{e}");
    let e = error(&cap("name = \"a-b\"\nheader = \"b\"\n"), 8, 8);
    assert!(e.contains("cannot be used in templates"), "{e}");
    let e = error(&cap("name = \"x\"\njson = \"a/b\"\n"), 9, 8);
    assert!(e.contains("is not a JSON pointer"), "{e}");
    let e = error(&cap("name = \"x\"\nregex = \"[\"\n"), 9, 9);
    assert!(e.contains("invalid regex"), "{e}");
    let e = error(&cap("name = \"x\"\nheader = \"a b\"\n"), 9, 10);
    assert!(e.contains("invalid header name"), "{e}");
}

#[test]
fn templates_only_use_known_names() {
    // A name captured by an earlier step is known; the same name in the capturing step is not.
    let text = format!("{HEAD}[[step]]\nname = \"a\"\npath = \"/{{{{ tok }}}}\"\n");
    let e = error(&text, 6, 8);
    assert!(
        e.starts_with("[[step]] #1 \"a\" path: unknown name `tok`"),
        "{e}"
    );
    let text = format!(
        "{HEAD}[[step]]\nname = \"a\"\npath = \"/\"\ncapture = [{{ name = \"tok\", regex = \"(o)\" }}]\n\
         [[step]]\nname = \"b\"\npath = \"/{{{{ tok }}}}/{{{{ user }}}}\"\n\
         headers = {{ X-T = \"{{{{ tok }}}}\" }}\nform = {{ f = \"{{{{ tok }}}}{{{{ nope }}}}\" }}\n"
    );
    let e = error(&text, 12, 14);
    assert!(
        e.starts_with("[[step]] #2 \"b\" form.f: unknown name `nope`"),
        "{e}"
    );
    let e = error(
        &format!("{HEAD}{STEP}json = {{ a = [\"{{{{ x }}}}\"] }}\n"),
        7,
        8,
    );
    assert!(
        e.starts_with("[[step]] #1 \"home\" json: unknown name `x`"),
        "{e}"
    );
    let e = error(&format!("{HEAD}{STEP}body = \"{{{{ user\"\n"), 7, 8);
    assert!(e.contains("invalid template"), "{e}");
}

#[test]
fn steps_compile_bodies_checks_and_captures() {
    let f = file(&format!(
        "{HEAD}[[step]]\nname = \"a\"\nmethod = \"post\"\npath = \"/x\"\nbody_file = \"data.bin\"\n\
         contains = [\"a\", \"b\"]\nnot_contains = \"c\"\nregex = \"d+\"\nexpect_status = [201, 202]\n\
         [[step.capture]]\nname = \"t\"\njson = \"/t\"\n\
         [[step]]\nname = \"b\"\nurl = \"https://other/{{{{ t }}}}\"\nform = {{ z = \"1\", a = \"{{{{ t }}}}\" }}\n"
    ));
    std::fs::write(f.dir.path().join("data.bin"), b"\x00\x01").unwrap();
    let plan = load(&f.path, &Overrides::default()).unwrap();
    let a = &plan.steps[0];
    assert_eq!(a.method, hyper::Method::POST);
    assert!(matches!(&a.body, Some(Body::File { bytes, .. }) if &bytes[..] == b"\x00\x01"));
    assert_eq!(a.checks.len(), 4);
    assert_eq!(a.expect_status.as_deref(), Some(&[201, 202][..]));
    assert!(matches!(&a.captures[0].source, CaptureSource::JsonPointer(p) if p == "/t"));
    let b = &plan.steps[1];
    let mut vars = Vars::default();
    vars.captured.insert("t".into(), "v".into());
    assert_eq!(b.url(&plan.url, &vars).unwrap().as_str(), "https://other/v");
    let (_, body) = b.body.as_ref().unwrap().render(&vars);
    // Form fields keep the order they were written in.
    assert_eq!(&body[..], b"z=1&a=v");
    assert!(plan.describe().contains("capture t from json \"/t\""));
}

#[test]
fn absurd_values_do_not_panic() {
    let text = format!(
        "{HEAD}[bench]\ncycles = [4000000000, 4000000000]\nduration = 1e19\nstartup_delay = 1e19\n\
         cycle_time = 1e19\n{STEP}"
    );
    let plan = load_text(&text).unwrap();
    assert_eq!(plan.expected_duration(), Duration::MAX);
    assert!(plan.describe().contains("expected"));
    let e = error(&format!("{HEAD}[bench]\nduration = 1e300\n{STEP}"), 5, 12);
    assert!(e.contains("is not a valid time"), "{e}");
    let e = error(&format!("{HEAD}[bench]\ntimeout = nan\n{STEP}"), 5, 11);
    assert!(e.contains("is not a valid time"), "{e}");
}

#[test]
fn the_plan_lists_every_file_the_test_names_once() {
    let step = |name: &str, file: &str| {
        format!("[[step]]\nname = \"{name}\"\nmethod = \"post\"\npath = \"/\"\nbody_file = \"{file}\"\n")
    };
    let f = file(&format!(
        "{HEAD}{}{STEP}{}{}",
        step("a", "data/a.bin"),
        step("b", "b.json"),
        step("c", "data/a.bin")
    ));
    std::fs::create_dir(f.dir.path().join("data")).unwrap();
    std::fs::write(f.dir.path().join("data/a.bin"), b"a").unwrap();
    std::fs::write(f.dir.path().join("b.json"), b"{}").unwrap();
    let plan = load(&f.path, &Overrides::default()).unwrap();
    assert_eq!(
        plan.files(),
        [Path::new("data/a.bin"), Path::new("b.json")],
        "relative to the test, in order, each once"
    );
    let f = file(&format!("{HEAD}{STEP}"));
    let plan = load(&f.path, &Overrides::default()).unwrap();
    assert!(plan.files().is_empty());
}

const SCENARIOS: &str = "[[scenario]]\nname = \"browse\"\nweight = 8\n\
[[scenario.step]]\nname = \"home\"\npath = \"/\"\n\
[[scenario.step]]\nname = \"list\"\npath = \"/list\"\n\n\
[[scenario]]\nname = \"buy\"\nweight = 2\n\
[[scenario.step]]\nname = \"home\"\npath = \"/\"\n\
[[scenario.step.capture]]\nname = \"token\"\nregex = \"t=(\\\\w+)\"\n\
[[scenario.step]]\nname = \"pay\"\npath = \"/pay?t={{ token }}\"\n";

#[test]
fn scenarios_name_their_steps_and_keep_their_weights() {
    let plan = load_text(&format!("{HEAD}[bench]\nseed = 42\n{SCENARIOS}")).unwrap();
    let names: Vec<&str> = plan.steps.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["browse/home", "browse/list", "buy/home", "buy/pay"]);
    let s = plan.scenarios.recorded();
    assert_eq!(
        (s[0].name.as_str(), s[0].weight, s[0].steps.clone()),
        ("browse", 8, 0..2)
    );
    assert_eq!(
        (s[1].name.as_str(), s[1].weight, s[1].steps.clone()),
        ("buy", 2, 2..4)
    );
    assert_eq!(plan.bench.seed, Some(42));
    // Top-level steps are one implicit scenario, not counted apart.
    let plan = load_text(&format!("{HEAD}{STEP}")).unwrap();
    assert!(plan.scenarios.recorded().is_empty());
    assert_eq!(plan.scenarios.all()[0].steps, 0..1);
    assert_eq!(plan.bench.seed, None);
}

#[test]
fn bad_scenarios_are_refused_with_their_place() {
    let e = error(&format!("{HEAD}{STEP}{SCENARIOS}"), 7, 1);
    assert!(e.contains("either top-level [[step]]s"), "{e}");
    let e = error(
        &format!("{HEAD}[[scenario]]\nname = \"a\"\nweight = 0\n[[scenario.step]]\nname = \"h\"\npath = \"/\"\n"),
        6,
        10,
    );
    assert!(
        e.starts_with("[[scenario]] #1 weight: 0 is not a weight"),
        "{e}"
    );
    let e = error(&format!("{HEAD}[[scenario]]\nname = \"a\"\n"), 4, 1);
    assert!(e.contains("has no steps"), "{e}");
    let e = error(
        &format!(
            "{HEAD}[[scenario]]\nname = \"a/b\"\n[[scenario.step]]\nname = \"h\"\npath = \"/\"\n"
        ),
        5,
        8,
    );
    assert!(e.contains("without `/`"), "{e}");
    // A capture is seen only by the later steps of its own scenario.
    let text = format!(
        "{HEAD}[[scenario]]\nname = \"a\"\n[[scenario.step]]\nname = \"h\"\npath = \"/\"\n\
         [[scenario.step.capture]]\nname = \"tok\"\nregex = \"x\"\n\
         [[scenario]]\nname = \"b\"\n[[scenario.step]]\nname = \"h\"\npath = \"/{{{{ tok }}}}\"\n"
    );
    let e = error(&text, 16, 8);
    assert!(e.contains("unknown name `tok`"), "{e}");
    let e = error(
        &format!("{HEAD}[[scenario]]\nname = \"a\"\nwieght = 1\n"),
        6,
        1,
    );
    assert!(e.contains("[[scenario]] #1"), "{e}");
    let e = error(&format!("{HEAD}[bench]\nseed = -1\n{STEP}"), 5, 8);
    assert!(e.starts_with("[bench] seed"), "{e}");
}

#[test]
fn http_versions_default_to_1_1_and_steps_override_the_test() {
    let plan = load_text(&format!("{HEAD}{STEP}")).unwrap();
    assert_eq!(plan.steps[0].http, HttpVersion::Http1);
    assert_eq!(plan.streams, 1);
    let text = format!(
        "{HEAD}http = \"2\"\nstreams = 8\n{STEP}[[step]]\nname = \"b\"\npath = \"/b\"\nhttp = \"2\"\n"
    );
    let plan = load_text(&text).unwrap();
    assert_eq!(plan.steps[0].http, HttpVersion::Http2);
    assert_eq!(plan.streams, 8);
    let text = format!(
        "{HEAD}http = \"2\"\n{STEP}[[step]]\nname = \"b\"\npath = \"/b\"\nhttp = \"auto\"\n"
    );
    let plan = load_text(&text).unwrap();
    assert_eq!(plan.steps[0].http, HttpVersion::Http2);
    assert_eq!(plan.steps[1].http, HttpVersion::Auto);
    assert!(plan.describe().contains("[http auto]"));
}

#[test]
fn bad_protocol_keys_name_their_place() {
    let m = error(&format!("{HEAD}http = \"3\"\n{STEP}"), 4, 8);
    assert!(
        m.contains("[test] http") && m.contains("\"3\"") && m.contains("1.1 2 auto"),
        "{m}"
    );
    let m = error(&format!("{HEAD}{STEP}http = \"h2\"\n"), 7, 8);
    assert!(m.contains("http") && m.contains("\"h2\""), "{m}");
    let m = error(&format!("{HEAD}http = \"2\"\nstreams = 0\n{STEP}"), 5, 11);
    assert!(m.contains("streams") && m.contains("1 to 128"), "{m}");
    let m = error(
        &format!("{HEAD}http = \"2\"\nstreams = 1000\n{STEP}"),
        5,
        11,
    );
    assert!(m.contains("1000"), "{m}");
    // Several streams share one HTTP/2 connection: every step must speak HTTP/2.
    let m = error(&format!("{HEAD}streams = 4\n{STEP}"), 4, 11);
    assert!(
        m.contains("http = \\\"2\\\"") || m.contains("http = \"2\""),
        "{m}"
    );
    assert!(m.contains("\"home\""), "{m}");
}

#[test]
fn websocket_keys_are_checked() {
    let ws = "[[step]]\nname = \"chat\"\nwebsocket = \"/ws\"\n";
    let plan = load_text(&format!(
        "{HEAD}{ws}send = \"hi {{{{ user }}}}\"\nexpect = \"hi\"\nregex = \"^hi [0-9]+$\"\ncontains = \"h\"\n"
    ))
    .unwrap();
    let step = &plan.steps[0];
    let w = step.websocket.as_ref().unwrap();
    assert!(matches!(w.send, Some(WsMessage::Text(_))));
    assert!(w.waits() && w.awaited(b"hi 3") && !w.awaited(b"hi you") && !w.awaited(b"ho 3"));
    // The regex is what is awaited; `contains` still checks the awaited message.
    assert_eq!(step.checks.len(), 1);
    let plan = load_text(&format!("{HEAD}{ws}send_binary = \"AAEC/w==\"\n")).unwrap();
    match &plan.steps[0].websocket.as_ref().unwrap().send {
        Some(WsMessage::Binary(b)) => assert_eq!(&b[..], [0, 1, 2, 255]),
        other => panic!("{other:?}"),
    }
    let m = error(&format!("{HEAD}{STEP}send = \"hi\"\n"), 7, 8);
    assert!(m.contains("`send` is for WebSocket steps"), "{m}");
    let m = error(&format!("{HEAD}{STEP}expect = \"hi\"\n"), 7, 10);
    assert!(m.contains("`expect`"), "{m}");
    let m = error(&format!("{HEAD}{ws}path = \"/x\"\n"), 7, 8);
    assert!(m.contains("no `path`"), "{m}");
    let m = error(&format!("{HEAD}{ws}method = \"POST\"\n"), 7, 10);
    assert!(m.contains("no `method`"), "{m}");
    let m = error(
        &format!("{HEAD}{ws}send = \"a\"\nsend_binary = \"AA==\"\n"),
        8,
        15,
    );
    assert!(m.contains("not both"), "{m}");
    let m = error(&format!("{HEAD}{ws}send_binary = \"%%%\"\n"), 7, 15);
    assert!(m.contains("base64"), "{m}");
    let m = error(
        &format!("{HEAD}[[step]]\nname = \"c\"\nwebsocket = \"ftp://x/ws\"\n"),
        6,
        13,
    );
    assert!(!m.is_empty());
    let m = error(
        &format!("{HEAD}http = \"2\"\nstreams = 2\n[[step]]\nname = \"c\"\nwebsocket = \"/ws\"\n"),
        5,
        11,
    );
    assert!(m.contains("WebSocket"), "{m}");
}

const GENERATOR: &str = "[generator]\ncommand = [\"python3\", \"./gen.py\", \"--size\", \"1\"]\n\
                         steps = [\"put\", \"get\"]\n";

#[test]
fn a_generator_test_has_declared_steps_and_deploys_its_files() {
    let f = file(&format!(
        "{HEAD}[bench]\ncycles = [2, 4]\nduration = 3\n{GENERATOR}files = [\"data/keys.txt\"]\n"
    ));
    std::fs::create_dir(f.dir.path().join("data")).unwrap();
    std::fs::write(f.dir.path().join("data/keys.txt"), b"k").unwrap();
    std::fs::write(f.dir.path().join("gen.py"), b"print()").unwrap();
    let plan = load(&f.path, &Overrides::default()).unwrap();
    let g = plan.generator.as_ref().unwrap();
    assert_eq!(g.command, ["python3", "./gen.py", "--size", "1"]);
    assert_eq!(plan.step_names(), ["put", "get"]);
    assert!(plan.steps.is_empty());
    assert_eq!(plan.bench.cycles, [2, 4]);
    // The window opens when the program starts.
    assert_eq!(plan.bench.startup_delay, Duration::ZERO);
    // `files`, then the command's words naming a file beside the test (`.` dropped).
    assert_eq!(
        plan.files(),
        [Path::new("data/keys.txt"), Path::new("gen.py")]
    );
    assert!(plan
        .describe()
        .contains("generator python3 ./gen.py --size 1"));
    assert!(plan.describe().contains("steps     2 reported: put, get"));
    // Thresholds name the declared steps.
    let t = "[[threshold]]\nmetric = \"p95\"\nstep = \"get\"\nmax = \"1s\"\n";
    let plan = load_text(&format!("{HEAD}{GENERATOR}{t}")).unwrap();
    assert_eq!(plan.thresholds.len(), 1);
    let m = error(
        &format!("{HEAD}{GENERATOR}{}", t.replace("get", "post")),
        9,
        8,
    );
    assert!(m.contains("(the steps are put, get)"), "{m}");
    // A generator runs users per cycle, never a rate.
    let o = Overrides {
        rates: Some(vec![5]),
        ..Overrides::default()
    };
    let err = load(&f.path, &o).unwrap_err().to_string();
    assert!(err.contains("-r") && err.contains("[generator]"), "{err}");
}

#[test]
fn a_generator_refuses_steps_pacing_and_bad_declarations() {
    let m = error(&format!("{HEAD}{GENERATOR}{STEP}"), 7, 1);
    assert!(m.contains("either [[step]]s or a [generator]"), "{m}");
    let scenario = "[[scenario]]\nname = \"a\"\n[[scenario.step]]\nname = \"h\"\npath = \"/\"\n";
    let m = error(&format!("{HEAD}{GENERATOR}{scenario}"), 7, 1);
    assert!(
        m.starts_with("[[scenario]]: a test is either [[scenario]]s or a [generator]"),
        "{m}"
    );
    let m = error(
        &format!("{HEAD}[bench]\nsleep_time = 1\n{GENERATOR}"),
        5,
        14,
    );
    assert!(
        m.starts_with("[bench] sleep_time: applies to [[step]]s"),
        "{m}"
    );
    let m = error(&format!("{HEAD}[bench]\nrate = 5\n{GENERATOR}"), 5, 8);
    assert!(m.starts_with("[bench] rate:"), "{m}");
    let m = error(
        &format!("{HEAD}[generator]\ncommand = []\nsteps = [\"a\"]\n"),
        5,
        11,
    );
    assert!(m.starts_with("[generator] command:"), "{m}");
    let m = error(
        &format!("{HEAD}[generator]\ncommand = [\"x\"]\nsteps = [\"a\", \"a\"]\n"),
        6,
        15,
    );
    assert!(m.contains("\"a\" is declared twice"), "{m}");
    let m = error(
        &format!("{HEAD}[generator]\ncommand = [\"x\"]\nsteps = []\n"),
        6,
        9,
    );
    assert!(m.starts_with("[generator] steps: declare"), "{m}");
    let m = error(
        &format!("{HEAD}[generator]\ncommand = [\"x\"]\nsteps = [\"a\"]\nfiles = [\"../x\"]\n"),
        7,
        10,
    );
    assert!(m.contains("not inside the test's directory"), "{m}");
    let m = error(
        &format!("{HEAD}[generator]\ncommand = [\"x\"]\nsteps = [\"a\"]\nfiles = [\"no.py\"]\n"),
        7,
        10,
    );
    assert!(m.contains("\"no.py\" is not a file"), "{m}");
    let m = error(
        &format!("{HEAD}[generator]\ncommand = [\"x\"]\nsteps = [\"a\"]\nstep = 1\n"),
        7,
        1,
    );
    assert!(m.contains("unknown key `step` in [generator]"), "{m}");
}

#[test]
fn resources_keys_and_their_default() {
    let plan = load_text(&format!("{HEAD}{STEP}")).unwrap();
    assert_eq!(plan.bench.resources, Resources::Off);
    assert_eq!(plan.bench.resource_connections, 6);
    assert_eq!(plan.steps[0].resources, Resources::Off);
    // [bench] sets the default; a step says otherwise.
    let text = format!(
        "{HEAD}[bench]\nresources = true\nresource_connections = 2\n{STEP}\
         [[step]]\nname = \"all\"\npath = \"/a\"\nresources = \"all\"\n\
         [[step]]\nname = \"none\"\npath = \"/n\"\nresources = false\n\
         [[step]]\nname = \"ws\"\nwebsocket = \"/ws\"\n"
    );
    let plan = load_text(&text).unwrap();
    assert_eq!(plan.bench.resource_connections, 2);
    let set: Vec<Resources> = plan.steps.iter().map(|s| s.resources).collect();
    use Resources::*;
    assert_eq!(set, [SameOrigin, All, Off, Off]);
}

#[test]
fn bad_resources_keys() {
    let e = error(
        &format!("{HEAD}[bench]\nresources = \"some\"\n{STEP}"),
        5,
        13,
    );
    assert!(
        e.starts_with("[bench] resources: \"some\" is not a resources setting"),
        "{e}"
    );
    let e = error(&format!("{HEAD}{STEP}resources = 1\n"), 7, 13);
    assert!(
        e.starts_with("[[step]] #1 \"home\" resources: 1 is not"),
        "{e}"
    );
    let e = error(
        &format!("{HEAD}[bench]\nresource_connections = 0\n{STEP}"),
        5,
        24,
    );
    assert!(e.contains("0 is not a connection count"), "{e}");
    let e = error(
        &format!("{HEAD}[[step]]\nname = \"ws\"\nwebsocket = \"/ws\"\nresources = true\n"),
        7,
        13,
    );
    assert!(e.contains("a WebSocket step has no page"), "{e}");
}
