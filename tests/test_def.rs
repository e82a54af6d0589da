//! test_def tests: the shipped examples load and describe themselves; bad files give one line.

use std::path::Path;
use std::time::Duration;

use benchmaster::test_def::{self, Body, CaptureSource, Overrides, Vars};

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
}

#[test]
fn overrides_replace_file_values() {
    let overrides = Overrides {
        cycles: Some(test_def::parse_cycles("2:3").unwrap()),
        duration: Some(Duration::from_secs(1)),
        url: Some("http://[::1]:9000/app".into()),
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
