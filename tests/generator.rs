//! `[generator]`: a program as the load generator, run by bench-node and bench-master against
//! the built-in target on 127.0.0.1: merged counts equal what the target served, a program
//! that dies or prints bad lines is named, SIGTERM then SIGKILL end a cycle.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use benchmaster::result::read::read_file;
use benchmaster::result::{ErrorGroup, NodeResult};

use crate::master::{merged_requests, summary, text, users, Bench};
use crate::util::{bench_node, run, tempdir, write, Server};

/// A generator test hitting `url` with `[generator]` `body` (command, steps, files).
fn generator_test(dir: &Path, url: &str, cycles: &str, duration: f64, body: &str) -> PathBuf {
    write(
        dir,
        "test.toml",
        &format!(
            "[test]\nname = \"gen\"\nurl = \"{url}\"\n\n[bench]\ncycles = [{cycles}]\n\
             duration = {duration}\ncycle_time = 0.2\n\n[generator]\n{body}"
        ),
    )
}

/// Runs `bench-node run TEST -o OUT`, which must succeed, and reads its result.
fn run_node(test: &Path, out: &Path) -> NodeResult {
    let output = run(bench_node().arg("run").arg(test).arg("-o").arg(out));
    assert!(output.status.success(), "{}", text(&output));
    read_file(out).unwrap()
}

/// Every operation the node recorded, in windows or outside them.
fn operations(r: &NodeResult) -> u64 {
    r.cycles
        .iter()
        .map(|c| c.requests.total() + c.outside.requests)
        .sum()
}

/// The error group whose detail starts with `detail`.
fn group<'a>(r: &'a NodeResult, detail: &str) -> &'a ErrorGroup {
    r.errors
        .iter()
        .find(|g| g.detail.starts_with(detail))
        .unwrap_or_else(|| panic!("no group {detail:?} in {:#?}", r.errors))
}

#[test]
fn a_python_generator_on_two_local_nodes_is_merged_in_the_report() {
    let server = Server::start();
    let dir = tempdir();
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/generator/put_objects.py");
    std::fs::copy(example, dir.path().join("put_objects.py")).unwrap();
    let test = generator_test(
        dir.path(),
        &server.url(),
        "1, 2",
        // Windows long enough that Python is up and running in them on a busy machine.
        3.0,
        "command = [\"python3\", \"put_objects.py\", \"--size\", \"1KiB\"]\n\
         steps = [\"put\", \"get\"]\n",
    );
    let nodes = write(dir.path(), "nodes", "local\nlocal\n");
    let b = Bench::new(dir.path());
    let run_dir = b.run_ok(&nodes, &test);
    let s = summary(&run_dir);
    assert_eq!(users(&s), [2, 4]);
    let served = server.count();
    assert!(served > 100, "{served}");
    assert_eq!(merged_requests(&s), served, "{s:#}");
    // No error group: every program stopped on SIGTERM (none was killed), none died.
    assert_eq!(s["errors"].as_array().unwrap().len(), 0, "{s:#}");
    // Both nodes made load, and each ran the copy of the program deployed beside its test.
    for node in s["nodes_detail"].as_array().unwrap() {
        assert!(node["requests"].as_u64().unwrap() > 0, "{node:#}");
    }
    let run_id = run_dir.strip_prefix(&b.workdir).unwrap();
    for node in ["node0", "node1"] {
        let copy = b
            .node_workdir
            .join(run_id)
            .join(node)
            .join("put_objects.py");
        assert!(copy.is_file(), "{copy:?}");
        let result = read_file(&run_dir.join(format!("results/{node}.xml"))).unwrap();
        let steps: Vec<&str> = result.steps.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(steps, ["put", "get"]);
        assert_eq!(result.steps[0].method, "program");
        // Latency over time, per step, from the same recorder.
        let intervals = &result.latency.intervals;
        assert!(intervals.len() >= 2, "{:?}", result.latency);
        assert!(intervals.iter().all(|i| i.steps.len() == 2));
        let put = result.cycles[1].steps[0].success;
        let get = result.cycles[1].steps[1].success;
        assert!(put > 0 && put.abs_diff(get) <= 4, "put {put} get {get}");
    }
    let html = std::fs::read_to_string(run_dir.join("report/index.html")).unwrap();
    assert!(
        html.contains("put_objects.py"),
        "the report names the program"
    );
}

#[test]
fn a_generator_that_crashes_mid_cycle_is_named_in_the_report() {
    let server = Server::start();
    let dir = tempdir();
    write(
        dir.path(),
        "crash.py",
        "import json, sys, time\n\
         for i in range(5):\n    print(json.dumps({\"step\": \"op\", \"ms\": 1.5}), flush=True)\n\
         time.sleep(0.3)\n\
         print('crashing on purpose', file=sys.stderr, flush=True)\n\
         sys.exit(3)\n",
    );
    let test = generator_test(
        dir.path(),
        &server.url(),
        "1",
        // Room for Python to start on a busy machine: it must die inside the window.
        4.0,
        "command = [\"python3\", \"crash.py\"]\nsteps = [\"op\"]\n",
    );
    let nodes = write(dir.path(), "nodes", "local\n");
    let b = Bench::new(dir.path());
    let run_dir = b.run_ok(&nodes, &test);
    let s = summary(&run_dir);
    let errors = s["errors"].as_array().unwrap();
    let died = errors
        .iter()
        .find(|e| e["detail"].as_str().unwrap().contains("died"))
        .unwrap_or_else(|| panic!("{s:#}"));
    assert_eq!(
        died["detail"],
        "the program died before its window ended (exit status: 3)"
    );
    assert_eq!(died["count"], 1);
    assert_eq!(s["cycles"][0]["requests"]["total"], 5, "{s:#}");
    let html = std::fs::read_to_string(run_dir.join("report/index.html")).unwrap();
    assert!(
        html.contains("the program died before its window ended (exit status: 3)"),
        "named in the report"
    );
    // Its stderr is in the node's err log.
    let err = std::fs::read_to_string(run_dir.join("err/node0.log")).unwrap();
    assert!(err.contains("crashing on purpose"), "{err}");
}

#[test]
fn bad_lines_are_named_with_their_line_number() {
    let server = Server::start();
    let dir = tempdir();
    write(
        dir.path(),
        "bad.sh",
        "echo '{\"step\":\"op\",\"ms\":2}'\n\
         echo 'not json at all'\n\
         echo '{\"step\":\"nope\",\"ms\":2}'\n\
         echo ''\n\
         echo '{\"step\":\"op\",\"ms\":-4}'\n\
         echo '{\"step\":\"op\",\"ms\":3,\"error\":\"HTTP 503\",\"kind\":\"status\"}'\n\
         head -c 1100000 /dev/zero | tr '\\0' x; echo\n\
         echo '{\"step\":\"op\",\"ms\":2}'\n\
         exec sleep 30\n",
    );
    let test = generator_test(
        dir.path(),
        &server.url(),
        "1",
        1.0,
        "command = [\"sh\", \"bad.sh\"]\nsteps = [\"op\"]\n",
    );
    let r = run_node(&test, &dir.path().join("r.xml"));
    let c = &r.cycles[0];
    // Lines 1 and 8 succeeded, line 6 failed; the bad ones are no operations.
    assert_eq!((c.requests.success, c.requests.failure), (2, 1));
    assert_eq!(operations(&r), 3);
    let sample = |detail: &str| group(&r, detail).samples[0].body.clone();
    assert!(sample("bad output line: not a JSON object").starts_with("line 2: "));
    assert!(sample("bad output line: unknown step")
        .starts_with("line 3: step \"nope\" is not declared in [generator] steps (op): "));
    assert!(sample("bad output line: bad ms").starts_with("line 5: \"ms\" is -4"));
    assert!(sample("bad output line: longer than 1 MiB").starts_with("line 7: longer than 1 MiB"));
    let failed = group(&r, "HTTP 503");
    assert_eq!((failed.step.as_str(), failed.count), ("op", 1));
    assert!(failed.samples[0].body.starts_with("line 6: "));
    assert!(failed.samples[0].url.contains("bad.sh"));
}

/// Whether process `pid` still exists (a zombie counts as gone).
fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| !s.contains(") Z "))
        .unwrap_or(false)
}

#[test]
fn a_program_ignoring_sigterm_is_killed_after_5_s_and_the_run_goes_on() {
    let server = Server::start();
    let dir = tempdir();
    // The script and the child it leaves behind both ignore SIGTERM; the child holds stdout.
    write(
        dir.path(),
        "stubborn.sh",
        "trap '' TERM\n\
         sleep 300 &\n\
         echo $$ $! >> pids\n\
         while :; do echo '{\"step\":\"op\",\"ms\":1}'; sleep 0.1; done\n",
    );
    let test = generator_test(
        dir.path(),
        &server.url(),
        "1, 1",
        1.0,
        "command = [\"sh\", \"stubborn.sh\"]\nsteps = [\"op\"]\n",
    );
    let started = Instant::now();
    let r = run_node(&test, &dir.path().join("r.xml"));
    let took = started.elapsed();
    // Two cycles of 1 s, each followed by 5 s of SIGTERM ignored.
    assert!(took >= Duration::from_secs(11), "{took:?}");
    assert!(took < Duration::from_secs(20), "{took:?}");
    assert_eq!(r.cycles.len(), 2);
    for c in &r.cycles {
        assert!(c.requests.success >= 3, "{c:#?}");
        // What it printed while ignoring SIGTERM counts outside the window.
        assert!(c.outside.requests >= 20, "{c:#?}");
    }
    let killed = group(&r, "the program ignored SIGTERM for 5 s and was killed");
    assert_eq!(killed.count, 2);
    let pids = std::fs::read_to_string(dir.path().join("pids")).unwrap();
    let pids: Vec<u32> = pids
        .split_whitespace()
        .map(|p| p.parse().unwrap())
        .collect();
    assert_eq!(pids.len(), 4, "{pids:?}");
    for pid in pids {
        assert!(
            !alive(pid),
            "process {pid} of the program group is left running"
        );
    }
}

#[test]
fn a_generator_that_cannot_start_fails_before_any_load() {
    let dir = tempdir();
    let test = generator_test(
        dir.path(),
        "http://127.0.0.1:9/",
        "1",
        1.0,
        "command = [\"no-such-program-anywhere\"]\nsteps = [\"op\"]\n",
    );
    let out = run(bench_node()
        .arg("run")
        .arg(&test)
        .arg("-o")
        .arg(dir.path().join("r.xml")));
    assert!(!out.status.success(), "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("cannot run the generator: the generator's program \"no-such-program-anywhere\" is on no directory of PATH"),
        "{err}"
    );
}

#[test]
fn the_shipped_generator_examples_load_and_the_shell_one_counts_what_was_served() {
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/generator");
    let check = run(bench_node().arg("check").arg(examples.join("test.toml")));
    assert!(check.status.success(), "{}", text(&check));
    let plan = String::from_utf8_lossy(&check.stdout);
    assert!(
        plan.contains("generator python3 put_objects.py --size 4KiB"),
        "{plan}"
    );
    assert!(plan.contains("files     put_objects.py"), "{plan}");
    let server = Server::start();
    let dir = tempdir();
    let out = dir.path().join("r.xml");
    let node = run(bench_node()
        .arg("run")
        .arg(examples.join("shell.toml"))
        .args(["-c", "2", "-D", "2", "-u"])
        .arg(server.url())
        .arg("-o")
        .arg(&out));
    assert!(node.status.success(), "{}", text(&node));
    let r = read_file(&out).unwrap();
    // Some requests in the window, however busy the machine (curl starts once per request).
    assert!(r.cycles[0].requests.success > 0, "{:#?}", r.cycles[0]);
    assert_eq!(r.cycles[0].users, 2);
    // What the script was doing at SIGTERM is lost with its curl: at most one per user.
    let served = server.count();
    assert!(
        served >= operations(&r) && served <= operations(&r) + 2,
        "{served}"
    );
    assert!(r.errors.is_empty(), "{:#?}", r.errors);
}

/// Keys that only the engine's own users read do nothing with a generator: `bench-node check`
/// refuses each, naming the key and its line, instead of running a test that ignores it.
#[test]
fn keys_that_do_nothing_with_a_generator_are_refused_at_check() {
    let dir = tempdir();
    write(dir.path(), "rows.csv", "user\na\n");
    let generator = "[generator]\ncommand = [\"true\"]\nsteps = [\"op\"]\n";
    let cases = [
        ("[test] http", "http = \"2\"\n", ""),
        ("[test] streams", "streams = 4\n", ""),
        ("[bench] seed", "", "seed = 7\n"),
        ("[bench] resources", "", "resources = true\n"),
        ("[bench] compression", "", "compression = false\n"),
        (
            "[[data]]",
            "",
            "\n[[data]]\nname = \"row\"\nfile = \"rows.csv\"\n",
        ),
        (
            "[[step]]",
            "",
            "\n[[step]]\nname = \"home\"\npath = \"/\"\n",
        ),
    ];
    for (key, in_test, after_bench) in cases {
        let test = write(
            dir.path(),
            "test.toml",
            &format!(
                "[test]\nname = \"gen\"\nurl = \"http://127.0.0.1:1\"\n{in_test}\n[bench]\n\
                 cycles = [1]\nduration = 1\n{after_bench}\n{generator}"
            ),
        );
        let out = run(bench_node().arg("check").arg(&test));
        assert!(!out.status.success(), "{key}: {}", text(&out));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("test.toml:") && err.contains(key) && err.contains("[generator]"),
            "{key}: {err}"
        );
        assert!(!err.contains("panicked"), "{err}");
    }
    // The same test without them passes.
    let test = write(
        dir.path(),
        "test.toml",
        &format!(
            "[test]\nname = \"gen\"\nurl = \"http://127.0.0.1:1\"\n\n[bench]\ncycles = [1]\n\
             duration = 1\napdex_t = 0.5\n\n{generator}"
        ),
    );
    let out = run(bench_node().arg("check").arg(&test));
    assert!(out.status.success(), "{}", text(&out));
}
