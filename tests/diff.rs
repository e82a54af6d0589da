//! `bench-report --diff` on real runs: two `bench-node run`s of the same server are the same on
//! every metric, a server slowed by 30 % is significantly worse (its interval shown), and
//! `--fail-if-worse` gates on it (exit codes 0, 4 and 2). Both runs of a pair go at the same
//! time against the built-in target on 127.0.0.1, so that the machine's load (other tests,
//! other builds) weighs on both alike; each lasts about 8 s.

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
    let test = write(
        dir,
        &format!("{name}.toml"),
        &format!(
            "[test]\nname = \"diff\"\nurl = \"{url}\"\n\n[bench]\nstartup_delay = 0\n\n\
             [[step]]\nname = \"home\"\npath = '{path}'\n"
        ),
    );
    let out = dir.join(format!("{name}.xml"));
    let child = bench_node()
        .arg("run")
        .arg(&test)
        .args(["-c", USERS, "-D", SECONDS, "-o"])
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
