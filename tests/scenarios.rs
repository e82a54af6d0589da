//! Weighted scenarios against a real server that logs every request: the mix the server saw,
//! the per-scenario counts in the result and the report, and seeds that repeat a run's picks.

use benchmaster::result::read::read_file;

use crate::util::{bench_node, run, tempdir, write, LogServer};

/// Three scenarios of weights 6, 3 and 1; each execution's first request names its scenario.
fn mix_test(url: &str, bench: &str) -> String {
    format!(
        r#"
[test]
name = "mix"
url = "{url}"

[bench]
{bench}

[[scenario]]
name = "browse"
weight = 6
[[scenario.step]]
name = "home"
path = "/browse"

[[scenario]]
name = "search"
weight = 3
[[scenario.step]]
name = "home"
path = "/search"

[[scenario]]
name = "buy"
weight = 1
[[scenario.step]]
name = "cart"
path = "/buy"
[[scenario.step]]
name = "pay"
path = "/buy/pay"
"#
    )
}

#[test]
fn the_mix_holds_the_weights_over_10000_executions() {
    let server = LogServer::start();
    let dir = tempdir();
    // Paced (at most 500 executions/s a user) so as not to starve the tests beside it.
    let bench = "cycles = [24]\nduration = 30\nstartup_delay = 0\nsleep_time = 0.002\ntimeout = 5";
    let test = write(dir.path(), "t.toml", &mix_test(&server.url(), bench));
    let out = dir.path().join("r.xml");
    // Long enough for 10 000 executions on a slow machine; `-D` would cut it, not lengthen it.
    let o = run(bench_node()
        .arg("run")
        .arg(&test)
        .arg("-o")
        .arg(&out)
        .args(["-D", "4"]));
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));

    let log = server.requests();
    let count = |p: &str| log.iter().filter(|l| *l == p).count();
    let (browse, search, buy) = (count("/browse"), count("/search"), count("/buy"));
    let executions = browse + search + buy;
    assert!(executions >= 10_000, "only {executions} executions");
    // Every "buy" went on to pay: the scenario's steps ran in order, together.
    assert!(
        count("/buy/pay").abs_diff(buy) <= 24,
        "{buy} carts, {} pays",
        count("/buy/pay")
    );
    let share = |n: usize| n as f64 / executions as f64;
    for (name, n, weight) in [
        ("browse", browse, 0.6),
        ("search", search, 0.3),
        ("buy", buy, 0.1),
    ] {
        assert!(
            (share(n) - weight).abs() < 0.03,
            "{name}: {:.3} of {executions} executions, weight {weight}",
            share(n)
        );
    }
    eprintln!("server saw {browse} browse, {search} search, {buy} buy of {executions}");

    // The result counts tests per scenario, and names steps scenario/step.
    let r = read_file(&out).unwrap();
    let names: Vec<&str> = r.steps.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["browse/home", "search/home", "buy/cart", "buy/pay"]);
    let scenarios: Vec<(&str, u32)> = r
        .scenarios
        .iter()
        .map(|s| (s.name.as_str(), s.weight))
        .collect();
    assert_eq!(scenarios, [("browse", 6), ("search", 3), ("buy", 1)]);
    let c = &r.cycles[0];
    let sum: u64 = c.scenarios.iter().map(|s| s.total()).sum();
    assert_eq!(sum, c.tests.total());
    assert_eq!(c.scenarios[0].total(), c.steps[0].total());
    let in_window = c.tests.total() as f64;
    assert!((c.scenarios[2].total() as f64 / in_window - 0.1).abs() < 0.03);

    // The report and summary.json give tests per scenario beside the other tables.
    // Merged with a second node's copy: every scenario's figures add exactly.
    let second = dir.path().join("r2.xml");
    std::fs::copy(&out, &second).unwrap();
    let report = dir.path().join("report");
    let o = run(
        std::process::Command::new(env!("CARGO_BIN_EXE_bench-report"))
            .arg("-o")
            .arg(&report)
            .arg(&out)
            .arg(&second),
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(report.join("summary.json")).unwrap())
            .unwrap();
    let sc = &summary["cycles"][0]["scenarios"];
    assert_eq!(sc[2]["name"], "buy");
    assert_eq!(sc[2]["weight"], 1);
    assert_eq!(
        sc[2]["tests"]["total"].as_u64(),
        Some(2 * c.scenarios[2].total())
    );
    assert_eq!(
        sc[1]["tests"]["success"].as_u64(),
        Some(2 * c.scenarios[1].success)
    );
    assert!(sc[0]["tests"]["per_s"].as_f64().unwrap() > 0.0);
    assert!(
        (sc[0]["share_pct"].as_f64().unwrap() - 60.0).abs() < 3.0,
        "{sc}"
    );
    let html = std::fs::read_to_string(report.join("index.html")).unwrap();
    assert!(html.contains("id=\"scenarios\""));
    // Tera escapes `/` in HTML.
    assert!(html.contains("buy&#x2F;pay") || html.contains("buy/pay"));
}

/// The scenarios user 0 picked, in order, as the server saw them.
fn picks(seed: &str) -> Vec<String> {
    let server = LogServer::start();
    let dir = tempdir();
    let bench = format!("cycles = [1]\nduration = 0.5\ntimeout = 5\n{seed}");
    let test = write(dir.path(), "t.toml", &mix_test(&server.url(), &bench));
    let o = run(bench_node()
        .arg("run")
        .arg(&test)
        .arg("-o")
        .arg(dir.path().join("r.xml")));
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let mut log = server.requests();
    assert!(log.len() > 100, "{}", log.len());
    log.truncate(100);
    log
}

#[test]
fn a_seed_repeats_the_picks_of_a_run() {
    let a = picks("seed = 42");
    assert_eq!(a, picks("seed = 42"));
    assert_ne!(a, picks("seed = 43"));
    assert_ne!(picks(""), picks(""));
}
