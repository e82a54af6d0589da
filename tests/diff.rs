//! `bench-report --diff` on real runs: two `bench-node run`s of the same server are the same on
//! every metric, a server slowed by 30 % is significantly worse (its interval shown), and
//! `--fail-if-worse` gates on it (exit codes 0, 4 and 2). Both runs of a pair go at the same
//! time against the built-in target on 127.0.0.1, so that the machine's load (other tests,
//! other builds) weighs on both alike; each lasts about 8 s. Runs of two scenarios and a data
//! file are compared (and followed by `--trend`) per scenario and per data file.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use benchmaster::report::{self, diff, ReportOptions};

use crate::util::{bench_node, run, tempdir, write, Server};

/// Users and measured seconds of each run: 6 users each waiting 30 or 39 ms per request make
/// ~150-200 requests a second, over 7 whole seconds. Delays of tens of ms keep the scheduler's
/// jitter on a loaded machine (a few ms) well below the 30 % the slow target adds.
const USERS: &str = "6";
const SECONDS: &str = "8";

/// `bench-node run` of one step at `path` of `url`, started (not waited for); writes `out`.
fn start_run(dir: &Path, name: &str, url: &str, path: &str) -> (std::process::Child, PathBuf) {
    let test = format!(
        "[test]\nname = \"diff\"\nurl = \"{url}\"\n\n[bench]\nstartup_delay = 0\n\n\
         [[step]]\nname = \"home\"\npath = '{path}'\n"
    );
    start_test(dir, name, &test, [USERS, SECONDS])
}

/// `bench-node run` of the test `text` (written as `name.toml` in `dir`) with `users` and
/// `seconds`, started; writes `name.xml`.
fn start_test(
    dir: &Path,
    name: &str,
    text: &str,
    [users, seconds]: [&str; 2],
) -> (std::process::Child, PathBuf) {
    let test = write(dir, &format!("{name}.toml"), text);
    let out = dir.join(format!("{name}.xml"));
    let child = bench_node()
        .arg("run")
        .arg(&test)
        .args(["-c", users, "-D", seconds, "-o"])
        .arg(&out)
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("bench-node starts");
    (child, out)
}

/// Two runs at the same time, against `base_path` and `new_path`; their result files.
fn two_runs(dir: &Path, url: &str, base_path: &str, new_path: &str) -> (PathBuf, PathBuf) {
    let (mut a, base) = start_run(dir, "base", url, base_path);
    let (mut b, new) = start_run(dir, "new", url, new_path);
    assert!(a.wait().unwrap().success(), "base run failed");
    assert!(b.wait().unwrap().success(), "new run failed");
    (base, new)
}

fn bench_report(args: &[&std::ffi::OsStr]) -> Output {
    run(Command::new(env!("CARGO_BIN_EXE_bench-report")).args(args))
}

/// `bench-report --diff BASE NEW -o DIR` and `extra` flags.
fn diff_cli(base: &Path, new: &Path, out: &Path, extra: &[&str]) -> Output {
    let mut args: Vec<&std::ffi::OsStr> = vec![
        "--diff".as_ref(),
        base.as_os_str(),
        new.as_os_str(),
        "-o".as_ref(),
        out.as_os_str(),
    ];
    args.extend(extra.iter().map(|a| std::ffi::OsStr::new(*a)));
    bench_report(&args)
}

fn compare(base: &Path, new: &Path) -> diff::Diff {
    let load = |p: &Path| {
        report::input::load(p, &ReportOptions::default())
            .unwrap()
            .summary
    };
    diff::compare(&load(base), &load(new))
}

fn text(o: &Output) -> String {
    format!(
        "status {:?}\nstdout:\n{}\nstderr:\n{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[test]
fn two_runs_of_the_same_server_are_the_same_on_every_metric() {
    let server = Server::start();
    let dir = tempdir();
    let (base, new) = two_runs(dir.path(), &server.url(), "/?delay_ms=30", "/?delay_ms=30");
    let d = compare(&base, &new);
    assert_eq!(d.levels.len(), 1);
    // Every metric, each with its interval (the percentiles' from the seconds' histograms).
    for delta in &d.levels[0].deltas {
        assert!(delta.interval.is_some(), "no interval: {delta:?}");
        assert_eq!(delta.verdict, diff::Verdict::Same, "{delta:?}");
    }
    let rps = &d.levels[0].deltas[1];
    let ci = rps.interval.expect("the runs have per-second series");
    assert!(ci.low < 0.0 && ci.high > 0.0, "{ci:?}");
    let out = dir.path().join("diff");
    let o = diff_cli(&base, &new, &out, &["--fail-if-worse", "5%"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(text(&o).contains("no metric is significantly worse"));
    let html = std::fs::read_to_string(out.join("index.html")).unwrap();
    assert!(html.contains("95 % interval"), "no interval column");
}

#[test]
fn a_server_slowed_by_30_pct_is_significantly_worse_and_fails_the_gate() {
    let server = Server::start();
    let dir = tempdir();
    let (base, new) = two_runs(dir.path(), &server.url(), "/?delay_ms=30", "/?delay_ms=39");
    let d = compare(&base, &new);
    let deltas = &d.levels[0].deltas;
    // Rates fall by about 23 % (30 → 39 ms a request), the median rises by about 30 %; the
    // tail, where a loaded machine's jitter lives, rises too or is not told apart.
    for (i, name) in [(0, "SPPS"), (1, "RPS"), (2, "p50 (ms)")] {
        assert_eq!(deltas[i].metric, name);
        assert_eq!(deltas[i].verdict, diff::Verdict::Worse, "{:?}", deltas[i]);
    }
    let p50 = deltas[2].interval.expect("an interval for p50");
    assert!(p50.low > 10.0, "{p50:?}");
    for tail in &deltas[3..5] {
        assert_ne!(tail.verdict, diff::Verdict::Better, "{tail:?}");
    }
    let rps = deltas[1].interval.expect("an interval for RPS");
    assert!(rps.high < 0.0 && rps.low > -60.0, "{rps:?}");
    assert_eq!(
        deltas[5].verdict,
        diff::Verdict::Same,
        "no errors either way"
    );
    assert_eq!(d.verdicts[1].verdict, diff::Verdict::Worse);
    assert!(
        d.verdicts[1].text.contains("RPS is worse: −") && d.verdicts[1].text.contains("interval"),
        "{}",
        d.verdicts[1].text
    );

    let out = dir.path().join("diff");
    let o = diff_cli(&base, &new, &out, &["--fail-if-worse", "5%"]);
    assert_eq!(o.status.code(), Some(4), "{}", text(&o));
    let said = text(&o);
    assert!(
        said.contains("worse by more than 5 %: RPS at 6 users: −") && said.contains("interval"),
        "{said}"
    );
    let html = std::fs::read_to_string(out.join("index.html")).unwrap();
    assert!(
        html.contains("RPS is worse"),
        "verdict missing from the page"
    );
    // A gate wider than the change passes; the same runs the other way round are better.
    let o = diff_cli(&base, &new, &out, &["--fail-if-worse", "500%"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let o = diff_cli(&new, &base, &out, &["--fail-if-worse", "5%"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert_eq!(
        compare(&new, &base).verdicts[1].verdict,
        diff::Verdict::Better
    );
}

#[test]
fn fail_if_worse_takes_a_percentage_of_zero_or_more() {
    let dir = tempdir();
    let (a, b) = (dir.path().join("a.xml"), dir.path().join("b.xml"));
    let out = dir.path().join("diff");
    for (bad, says) in [
        ("5", "give a percentage such as 5%"),
        ("-3%", "must be 0% or more"),
        ("five%", "not a number"),
    ] {
        let o = diff_cli(&a, &b, &out, &["--fail-if-worse", bad]);
        assert_eq!(o.status.code(), Some(2), "{bad}: {}", text(&o));
        assert!(text(&o).contains(says), "{bad}: {}", text(&o));
    }
    // Without --diff it means nothing.
    let o = bench_report(&[a.as_os_str(), "--fail-if-worse".as_ref(), "5%".as_ref()]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
}

/// A test of two scenarios, `browse` (20 ms answers) and `buy` (answers of `buy_delay_ms`),
/// each execution taking one row of a `unique` data file of `rows` rows that stops the users
/// when they run out.
fn mix_test(dir: &Path, name: &str, url: &str, buy_delay_ms: u32, rows: usize) -> String {
    let csv: String = std::iter::once("login\n".to_string())
        .chain((0..rows).map(|i| format!("user{i}\n")))
        .collect();
    write(dir, &format!("{name}.csv"), &csv);
    format!(
        r#"[test]
name = "mix"
url = "{url}"

[bench]
startup_delay = 0
seed = 1

[[data]]
name = "account"
file = "{name}.csv"
order = "unique"
on_end = "stop"

[[scenario]]
name = "browse"
weight = 1
[[scenario.step]]
name = "home"
path = "/?delay_ms=20&who={{{{ account.login }}}}"

[[scenario]]
name = "buy"
weight = 1
[[scenario.step]]
name = "pay"
path = "/?delay_ms={buy_delay_ms}&who={{{{ account.login }}}}"
"#
    )
}

#[test]
fn scenarios_and_data_files_are_compared_and_followed() {
    let server = Server::start();
    let dir = tempdir();
    let d = dir.path();
    // The new build's `buy` answers in 80 ms instead of 20; its data file has 60 rows, which
    // run out, where the base's 100 000 do not.
    let base_test = mix_test(d, "base", &server.url(), 20, 100_000);
    let new_test = mix_test(d, "new", &server.url(), 80, 60);
    let (mut a, base) = start_test(d, "base", &base_test, ["4", "3"]);
    let (mut b, new) = start_test(d, "new", &new_test, ["4", "3"]);
    assert!(a.wait().unwrap().success(), "base run failed");
    assert!(b.wait().unwrap().success(), "new run failed");

    let diff = compare(&base, &new);
    let scenarios = &diff.levels[0].scenarios;
    let names: Vec<&str> = scenarios.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["browse", "buy"]);
    let metrics: Vec<&str> = scenarios[1].deltas.iter().map(|d| d.metric).collect();
    assert_eq!(metrics, ["STPS", "error %", "test p95 (ms)"]);
    let (browse_p95, buy_p95) = (&scenarios[0].deltas[2], &scenarios[1].deltas[2]);
    assert_eq!(buy_p95.verdict, diff::Verdict::Worse, "{buy_p95:?}");
    assert!(buy_p95.change_pct.unwrap() > 100.0, "{buy_p95:?}");
    assert!(
        browse_p95.change_pct.unwrap().abs() < buy_p95.change_pct.unwrap() / 2.0,
        "browse {browse_p95:?}, buy {buy_p95:?}"
    );
    assert!(diff.unmatched_scenarios.is_empty());
    let data = &diff.data;
    assert_eq!(data.len(), 1);
    let (b_data, n_data) = (
        data[0].base.as_ref().unwrap(),
        data[0].new.as_ref().unwrap(),
    );
    assert_eq!((b_data.rows, n_data.rows), (100_000, 60));
    assert_eq!(n_data.used, 60, "every row used, once");
    assert!(b_data.used > 60, "{b_data:?}");
    assert!(
        b_data.ran_out_s.is_none() && n_data.ran_out_s.is_some(),
        "{data:?}"
    );

    let out = d.join("diff");
    let o = diff_cli(&base, &new, &out, &[]);
    assert!(o.status.success(), "{}", text(&o));
    let html = std::fs::read_to_string(out.join("index.html")).unwrap();
    assert!(
        html.contains("<h2>Scenarios</h2>") && html.contains("test p95 (ms)"),
        "{html}"
    );
    // The new run's rows ran out on its one node; the base's did not.
    assert!(
        html.contains("<h2>Data files</h2>") && html.contains(" s (1 node)</td>"),
        "{html}"
    );

    // The trend follows each scenario and the data file's rows run by run.
    let load = |p: &Path| report::input::load(p, &ReportOptions::default()).unwrap();
    let t = report::trend::trend(&[load(&base), load(&new)]);
    assert!(t.has_scenarios && t.has_data);
    let cell = |run: usize| t.runs[run].cells[0].as_ref().unwrap();
    let buy = |run: usize| cell(run).scenarios[1].clone();
    assert_eq!(buy(0).name, "buy");
    assert!(
        buy(1).p95_ms > 2.0 * buy(0).p95_ms,
        "{:?} {:?}",
        buy(0),
        buy(1)
    );
    assert_eq!(t.runs[1].data[0].used, 60);
    let out = d.join("trend");
    let o = bench_report(&[
        "--trend".as_ref(),
        base.as_os_str(),
        new.as_os_str(),
        "-o".as_ref(),
        out.as_os_str(),
    ]);
    assert!(o.status.success(), "{}", text(&o));
    let html = std::fs::read_to_string(out.join("index.html")).unwrap();
    assert!(
        html.contains("<h2>Scenarios</h2>") && html.contains(">buy<"),
        "{html}"
    );
    assert!(
        html.contains("<h2>Data files</h2>") && html.contains(">account<"),
        "{html}"
    );
}
