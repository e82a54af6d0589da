//! bench-master end to end: local nodes, virtual nodes behind a real sshd, `--check`,
//! `--min-nodes`, host keys, shell metacharacters, detach and attach (faults: see
//! `master_faults`). Loads go to 127.0.0.1 only and every run is bounded in time.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::sshd::{Sshd, ALIASES, CLOSED, STRANGER, VNODE_PREFIX};
use crate::util::{tempdir, write, write_script, Server};
use benchmaster::master::{self, Args, Config, Interrupt};
use clap::Parser;

/// A `bench-master` command.
pub(crate) fn bench_master() -> Command {
    Command::new(env!("CARGO_BIN_EXE_bench-master"))
}

/// A test definition hitting `url` with one step.
pub(crate) fn test_file(dir: &Path, url: &str) -> PathBuf {
    write(
        dir,
        "test.toml",
        &format!(
            "[test]\nname = \"master-test\"\nurl = \"{url}\"\n\n[bench]\ncycles = [1]\nduration = 1\n\
             cycle_time = 0.2\n\n[[step]]\nname = \"home\"\npath = \"/\"\n"
        ),
    )
}

/// A master run with its own workspaces in `dir`.
pub(crate) struct Bench {
    pub dir: PathBuf,
    pub workdir: PathBuf,
    pub node_workdir: PathBuf,
}

impl Bench {
    pub fn new(dir: &Path) -> Bench {
        Bench {
            dir: dir.to_owned(),
            workdir: dir.join("bench-output"),
            node_workdir: dir.join("node-ws"),
        }
    }

    /// `bench-master -w .. -x .. --ssh-config .. <extra>`.
    pub fn command(&self, sshd: Option<&Sshd>, extra: &[&str]) -> Command {
        let mut cmd = bench_master();
        cmd.current_dir(&self.dir)
            .arg("-w")
            .arg(&self.workdir)
            .arg("-x")
            .arg(&self.node_workdir);
        if let Some(sshd) = sshd {
            cmd.arg("--ssh-config").arg(&sshd.ssh_config);
        }
        cmd.args(extra).stdin(Stdio::null());
        cmd
    }

    /// Runs `bench-master NODES TEST` with local nodes only, requires it to succeed and
    /// returns the run directory.
    pub fn run_ok(&self, nodes: &Path, test: &Path) -> PathBuf {
        let out = self
            .command(None, &[])
            .arg(nodes)
            .arg(test)
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", text(&out));
        self.run_dir()
    }

    /// The only run directory of the workspace.
    pub fn run_dir(&self) -> PathBuf {
        let mut dirs: Vec<PathBuf> = std::fs::read_dir(&self.workdir)
            .unwrap()
            .map(|name| name.unwrap().path())
            .filter(|p| p.is_dir())
            .flat_map(|name| std::fs::read_dir(name).unwrap())
            .map(|e| e.unwrap().path())
            .filter(|p| p.is_dir())
            .collect();
        assert_eq!(dirs.len(), 1, "{dirs:?}");
        dirs.pop().unwrap()
    }
}

pub(crate) fn text(out: &Output) -> String {
    format!(
        "status {:?}\n--- stdout\n{}\n--- stderr\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

pub(crate) fn summary(run_dir: &Path) -> serde_json::Value {
    let path = run_dir.join("report/summary.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path:?}: {e}"));
    serde_json::from_str(&text).unwrap()
}

/// Requests the merged report counts, inside and outside the measured windows.
pub(crate) fn merged_requests(summary: &serde_json::Value) -> u64 {
    summary["cycles"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["requests"]["total"].as_u64().unwrap() + c["outside_window"].as_u64().unwrap())
        .sum()
}

pub(crate) fn users(summary: &serde_json::Value) -> Vec<u64> {
    summary["cycles"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["users"].as_u64().unwrap())
        .collect()
}

pub(crate) fn failed_names(summary: &serde_json::Value) -> Vec<String> {
    summary["failed_nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["name"].as_str().unwrap().to_string())
        .collect()
}

pub(crate) fn count_files(dir: &Path) -> usize {
    std::fs::read_dir(dir).map_or(0, |d| d.count())
}

/// Waits until `path` holds `needle` (at most `limit`).
pub(crate) fn wait_for(path: &Path, needle: &str, limit: Duration) -> String {
    let deadline = Instant::now() + limit;
    loop {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        if text.contains(needle) {
            return text;
        }
        assert!(Instant::now() < deadline, "{path:?} never held {needle:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Waits for a child with a deadline; kills it and panics on timeout.
pub(crate) fn wait_bounded(child: &mut Child, limit: Duration) -> std::process::ExitStatus {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("bench-master did not end within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// bench-node processes (nodes and the `mux` carrying an SSH host's nodes) whose command line
/// mentions `needle`.
pub(crate) fn bench_nodes_running(needle: &str) -> Vec<String> {
    let out = Command::new("ps")
        .args(["-eo", "pid,args"])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.contains("bench-node") && l.contains(needle) && !l.contains(" ps "))
        .map(str::to_string)
        .collect()
}

/// Nodes among [`bench_nodes_running`]: a `bench-node run` process is one, a `mux` carries
/// one in-process node per directory it names.
pub(crate) fn nodes_running(needle: &str) -> usize {
    bench_nodes_running(needle)
        .iter()
        .map(|l| match l.split_once("bench-node mux ") {
            Some((_, dirs)) => dirs
                .split_whitespace()
                .filter(|d| !d.starts_with('-'))
                .count(),
            None => usize::from(l.contains("bench-node run ")),
        })
        .sum()
}

#[test]
fn local_nodes_need_no_sshd() {
    let server = Server::start();
    let dir = tempdir();
    let b = Bench::new(dir.path());
    let test = test_file(dir.path(), &server.url());
    let nodes = write(dir.path(), "nodes", "# two local processes\nlocal\nlocal\n");
    let out = b
        .command(None, &["-c", "1:2", "-D", "1"])
        .arg(&nodes)
        .arg(&test)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let run_dir = b.run_dir();
    let report = String::from_utf8_lossy(&out.stdout).trim().to_string();
    assert!(
        Path::new(&report).ends_with("report/index.html"),
        "{report}"
    );
    assert!(Path::new(&report).exists());
    for sub in ["out", "err", "results"] {
        assert_eq!(count_files(&run_dir.join(sub)), 2, "{sub}");
    }
    let s = summary(&run_dir);
    assert_eq!(users(&s), [2, 4]);
    assert_eq!(merged_requests(&s), server.count());
}

#[test]
fn every_file_the_test_names_reaches_the_nodes() {
    let server = Server::start();
    let dir = tempdir();
    let b = Bench::new(dir.path());
    std::fs::create_dir(dir.path().join("data")).unwrap();
    let payload = b"\x00payload\xff\n";
    std::fs::write(dir.path().join("data/payload.bin"), payload).unwrap();
    let test = write(
        dir.path(),
        "test.toml",
        &format!(
            "[test]\nname = \"files\"\nurl = \"{}\"\n\n[bench]\ncycles = [1]\nduration = 1\n\n\
             [[step]]\nname = \"upload\"\nmethod = \"post\"\npath = \"/\"\n\
             body_file = \"data/payload.bin\"\n",
            server.url()
        ),
    );
    let nodes = write(dir.path(), "nodes", "local\nlocal\n");
    // Without the file beside their test, the nodes cannot load it and the run fails.
    let run_dir = b.run_ok(&nodes, &test);
    let run_id = run_dir.strip_prefix(&b.workdir).unwrap();
    for node in ["node0", "node1"] {
        let copy = b
            .node_workdir
            .join(run_id)
            .join(node)
            .join("data/payload.bin");
        assert_eq!(std::fs::read(&copy).unwrap(), payload, "{copy:?}");
    }
    let s = summary(&run_dir);
    assert!(merged_requests(&s) > 0);
    assert_eq!(merged_requests(&s), server.count());
}

#[test]
fn rates_run_the_open_model_on_every_node() {
    let server = Server::start();
    let dir = tempdir();
    let b = Bench::new(dir.path());
    let test = test_file(dir.path(), &server.url());
    let nodes = write(dir.path(), "nodes", "local\nlocal\n");
    let out = b
        .command(None, &["-r", "20:40", "-D", "1"])
        .arg(&nodes)
        .arg(&test)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let run_dir = b.run_dir();
    let s = summary(&run_dir);
    // Cycles are executions per second, per node: 2 nodes at 20 then 40.
    assert_eq!(users(&s), [40, 80]);
    assert_eq!(merged_requests(&s), server.count());
    // Each cycle's window is 1 s at the node's rate: 2 × (20 + 40) executions, give or take the
    // edges of the windows.
    let in_windows: u64 = s["cycles"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["requests"]["total"].as_u64().unwrap())
        .sum();
    assert!((110..=130).contains(&in_windows), "{in_windows}");
    let xml = std::fs::read_to_string(run_dir.join("results/node1.xml")).unwrap();
    assert!(xml.contains("model=\"open\""), "{xml}");
    // -c and -r do not mix.
    let out = b
        .command(None, &["-r", "20", "-c", "2"])
        .arg(&nodes)
        .arg(&test)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
}

/// A host that holds a bench-node of the same version but an older protocol revision (what an
/// earlier build printed: no "(protocol N)") gets the master's own: the run succeeds and the
/// binary on the host is the master's afterwards. Fails when the version check ignores the
/// protocol revision (the stale script would be kept and no node would get ready).
#[test]
fn a_bench_node_of_an_older_protocol_on_the_host_is_replaced() {
    let sshd = Sshd::start();
    let server = Server::start();
    let dir = tempdir();
    let b = Bench::new(dir.path());
    let test = test_file(dir.path(), &server.url());
    std::fs::create_dir_all(&b.node_workdir).unwrap();
    let stale = format!(
        "#!/bin/sh\n[ \"$1\" = --version ] && echo 'bench-node {}' && exit 0\nexit 1\n",
        benchmaster::VERSION
    );
    write_script(&b.node_workdir, "bench-node", &stale);
    let nodes = write(dir.path(), "nodes", &format!("{}\n", ALIASES[0]));
    let out = b
        .command(Some(&sshd), &["-c", "1", "-D", "1"])
        .arg(&nodes)
        .arg(&test)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}\n{}", text(&out), sshd.log());
    let version = Command::new(b.node_workdir.join("bench-node"))
        .arg("--version")
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&version.stdout).trim(),
        format!("bench-node {}", benchmaster::NODE_VERSION)
    );
    assert_eq!(merged_requests(&summary(&b.run_dir())), server.count());
}

/// Two sshds of one machine, logging in as one user whose sessions start in different
/// directories (as the homes of two users do): a relative node workspace lies apart on each,
/// so each gets its own bench-node upload. Fails when one upload is shared by machine alone
/// (the other host is then left without a bench-node and refused).
#[test]
fn every_home_on_one_machine_gets_its_own_upload() {
    let dir = tempdir();
    let homes = [dir.path().join("home one"), dir.path().join("home two")];
    let hosts = homes.clone().map(|home| {
        std::fs::create_dir(&home).unwrap();
        let quoted = shell_escape::unix::escape(home.to_string_lossy()).into_owned();
        Sshd::start_with(&format!(
            "ForceCommand cd {quoted} && eval \"$SSH_ORIGINAL_COMMAND\"\n"
        ))
    });
    let server = Server::start();
    let mut b = Bench::new(dir.path());
    b.node_workdir = PathBuf::from("node-ws");
    let test = test_file(dir.path(), &server.url());
    let config = write(
        dir.path(),
        "ssh_config",
        &(hosts[0].host_block("home-one") + &hosts[1].host_block("home-two")),
    );
    let nodes = write(dir.path(), "nodes", "home-one\nhome-two\n");
    let out = b
        .command(None, &["-c", "1", "-D", "1"])
        .arg("--ssh-config")
        .arg(&config)
        .arg(&nodes)
        .arg(&test)
        .output()
        .unwrap();
    let logs = || format!("{}\n{}", hosts[0].log(), hosts[1].log());
    assert!(out.status.success(), "{}\n{}", text(&out), logs());
    for home in &homes {
        assert!(
            home.join("node-ws/bench-node").exists(),
            "{}",
            home.display()
        );
    }
    let s = summary(&b.run_dir());
    assert_eq!(users(&s), [2]);
    assert_eq!(merged_requests(&s), server.count());
}

#[test]
fn four_virtual_nodes_over_ssh() {
    let sshd = Sshd::start();
    let server = Server::start();
    let dir = tempdir();
    let b = Bench::new(dir.path());
    let test = test_file(dir.path(), &server.url());
    let nodes = write(dir.path(), "nodes", &format!("{}\n", ALIASES.join("\n")));
    let started = Instant::now();
    let out = b
        .command(Some(&sshd), &["-c", "1:2", "-D", "1", "-n", "ssh run"])
        .arg(&nodes)
        .arg(&test)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}\n{}", text(&out), sshd.log());
    eprintln!("4 ssh nodes: {:?}", started.elapsed());
    // The master uploaded its own bench-node into the node workspace.
    assert!(b.node_workdir.join("bench-node").exists());
    let run_dir = b.run_dir();
    assert!(run_dir.parent().unwrap().ends_with("ssh run"));
    for sub in ["out", "err", "results"] {
        assert_eq!(count_files(&run_dir.join(sub)), 4, "{sub}");
    }
    assert!(run_dir.join("report/index.html").exists());
    let s = summary(&run_dir);
    assert_eq!(users(&s), [4, 8]);
    assert_eq!(merged_requests(&s), server.count());
    let state: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run_dir.join("run.json")).unwrap()).unwrap();
    let skew = state["start_skew_ms"].as_f64().unwrap();
    eprintln!("start skew (master's view): {skew:.1} ms");
    assert!(skew < 100.0, "start skew {skew} ms");

    // A second run with the same name gets its own directory.
    let out = b
        .command(
            Some(&sshd),
            &["-c", "1", "-D", "1", "-n", "ssh run", "--num-nodes", "1"],
        )
        .arg(&nodes)
        .arg(&test)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(count_files(&b.workdir.join("ssh run")), 2);
}

#[test]
fn check_reports_good_and_unreachable_nodes() {
    let sshd = Sshd::start();
    let dir = tempdir();
    let b = Bench::new(dir.path());
    let nodes = write(
        dir.path(),
        "nodes",
        &format!("{}\n{CLOSED}\nlocal\n", ALIASES[0]),
    );
    let out = b
        .command(Some(&sshd), &["--check"])
        .arg(&nodes)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    let line = |host: &str| {
        stdout
            .lines()
            .find(|l| l.starts_with(host))
            .unwrap_or_else(|| panic!("no line for {host}: {stdout}"))
            .to_string()
    };
    let good = line(ALIASES[0]);
    assert!(
        good.contains(" ok ") && good.contains("arch=") && good.contains("cores="),
        "{good}"
    );
    assert!(good.contains("bench-node missing"), "{good}");
    let bad = line(CLOSED);
    assert!(
        bad.contains("UNREACHABLE") && bad.contains("Connection refused"),
        "{bad}"
    );
    assert!(line("local").contains(&format!("bench-node {}", benchmaster::VERSION)));
    assert!(stdout.contains("2 of 3 hosts reachable"), "{stdout}");
}

#[test]
fn min_nodes_lets_a_run_go_on_without_a_closed_port() {
    let sshd = Sshd::start();
    let server = Server::start();
    let dir = tempdir();
    let b = Bench::new(dir.path());
    let test = test_file(dir.path(), &server.url());
    let nodes = write(
        dir.path(),
        "nodes",
        &format!("{}\n{CLOSED}\n{}\n", ALIASES[0], ALIASES[1]),
    );
    // Without --min-nodes, every node is needed.
    let out = b
        .command(Some(&sshd), &[])
        .arg(&nodes)
        .arg(&test)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("Connection refused"), "{}", text(&out));
    // The nodes that were reached hear the master go before any start: none sends a request.
    std::thread::sleep(std::time::Duration::from_millis(300));
    assert_eq!(
        server.count(),
        0,
        "a run given up before its start sent requests"
    );

    std::fs::remove_dir_all(&b.workdir).unwrap();
    let out = b
        .command(Some(&sshd), &["--min-nodes", "2"])
        .arg(&nodes)
        .arg(&test)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    let s = summary(&b.run_dir());
    assert_eq!(failed_names(&s), ["node1"]);
    assert_eq!(users(&s), [2]);
    assert_eq!(merged_requests(&s), server.count());
}

#[test]
fn unknown_host_key_is_refused_unless_accepted() {
    let sshd = Sshd::start();
    let dir = tempdir();
    let b = Bench::new(dir.path());
    let nodes = write(dir.path(), "nodes", &format!("{STRANGER}\n"));
    let out = b
        .command(Some(&sshd), &["--check"])
        .arg(&nodes)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    assert!(
        text(&out).contains("Host key verification failed"),
        "{}",
        text(&out)
    );
    assert_eq!(
        std::fs::read_to_string(&sshd.stranger_known_hosts).unwrap(),
        ""
    );

    let out = b
        .command(Some(&sshd), &["--check", "--accept-new-host-keys"])
        .arg(&nodes)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let known = std::fs::read_to_string(&sshd.stranger_known_hosts).unwrap();
    assert!(
        known.contains(&format!("[127.0.0.1]:{}", sshd.port)),
        "{known}"
    );
}

#[test]
fn shell_metacharacters_run_nothing() {
    let sshd = Sshd::start();
    let server = Server::start();
    let dir = tempdir();
    let mut b = Bench::new(dir.path());
    b.node_workdir = dir.path().join("node ws; touch PWNED-x");
    let test = test_file(dir.path(), &server.url());
    let nodes = write(
        dir.path(),
        "nodes",
        &format!(
            "{}\nnode-a;touch${{IFS}}PWNED-host\n$(touch PWNED-sub)\n",
            ALIASES[0]
        ),
    );
    let name = "run 'quoted' \"double\"; $(touch PWNED-name) `touch PWNED-tick`";
    let out = b
        .command(Some(&sshd), &["--min-nodes", "1", "-n", name])
        .arg(&nodes)
        .arg(&test)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    let s = summary(&b.run_dir());
    assert_eq!(failed_names(&s), ["node1", "node2"]);
    let home = std::env::var("HOME").unwrap_or_else(|_| "/root".into());
    for place in [
        dir.path(),
        Path::new(&home),
        Path::new("/tmp"),
        Path::new("/"),
    ] {
        for entry in std::fs::read_dir(place).unwrap() {
            let name = entry.unwrap().file_name();
            assert!(
                !name.to_string_lossy().starts_with("PWNED"),
                "{place:?}/{name:?} was created"
            );
        }
    }
    assert!(b.node_workdir.join("bench-node").exists());
}

/// The run directory, once the master created it.
pub(crate) fn wait_run_dir(b: &Bench) -> PathBuf {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(mut names) = std::fs::read_dir(&b.workdir) {
            if let Some(Ok(name)) = names.find(|n| n.as_ref().is_ok_and(|n| n.path().is_dir())) {
                if let Some(Ok(run)) = std::fs::read_dir(name.path()).unwrap().next() {
                    return run.path();
                }
            }
        }
        assert!(Instant::now() < deadline, "no run directory");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Runs `nodes` (one line each) through the test sshd for one 1 s cycle of 1 user per node;
/// returns the run's wall time and the master's start skew.
fn timed_run(sshd: &Sshd, lines: &[String]) -> (Duration, f64) {
    let server = Server::start();
    let dir = tempdir();
    let b = Bench::new(dir.path());
    let test = test_file(dir.path(), &server.url());
    let nodes = write(dir.path(), "nodes", &(lines.join("\n") + "\n"));
    let started = Instant::now();
    let out = b
        .command(Some(sshd), &["-c", "1", "-D", "1"])
        .arg(&nodes)
        .arg(&test)
        .output()
        .unwrap();
    let took = started.elapsed();
    assert!(out.status.success(), "{}\n{}", text(&out), sshd.log());
    let run_dir = b.run_dir();
    assert_eq!(count_files(&run_dir.join("results")), lines.len());
    let s = summary(&run_dir);
    assert_eq!(users(&s), [lines.len() as u64]);
    assert_eq!(merged_requests(&s), server.count());
    let state: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run_dir.join("run.json")).unwrap()).unwrap();
    (took, state["start_skew_ms"].as_f64().unwrap())
}

#[test]
fn thirty_two_virtual_nodes_on_one_stock_sshd() {
    let sshd = Sshd::start();
    let (one, _) = timed_run(&sshd, &[ALIASES[0].to_string()]);
    // One host carrying 32 nodes: more channels than sshd's MaxSessions 10 per connection.
    let same: Vec<String> = (0..32).map(|_| ALIASES[0].to_string()).collect();
    let (shared, skew_shared) = timed_run(&sshd, &same);
    // 32 distinct hosts on one sshd: more connects at once than its MaxStartups 10.
    let distinct: Vec<String> = (0..32).map(|i| format!("{VNODE_PREFIX}{i}")).collect();
    let (many, skew_many) = timed_run(&sshd, &distinct);
    eprintln!(
        "1 node: {one:?}; 32 nodes on one host: {shared:?} (skew {skew_shared:.1} ms); \
         32 hosts on one sshd: {many:?} (skew {skew_many:.1} ms)"
    );
    // 32 debug-build nodes (and, on 32 hosts, 32 muxes and 32 ssh connections) share 2 cores
    // here with the other tests: their wake-up alone takes tens to hundreds of ms. The skew
    // bound of the issue (100 ms on loopback) is checked with 4 nodes above; release builds
    // measure 20-40 ms with 32 (scripts/bench-orchestration.sh).
    assert!(skew_shared < 1000.0 && skew_many < 1000.0);
}

/// Two hosts, each its own stock sshd with its own host key, carrying 12 nodes each (more than
/// sshd's MaxSessions 10 per connection): every node ends with its result, and each host is
/// reached by one connection and one remote command for the whole run (deploy, start and the
/// results through its mux), as each sshd's log says.
#[test]
fn two_sshds_carry_their_nodes_with_one_command_per_host() {
    let hosts = [Sshd::start(), Sshd::start()];
    let server = Server::start();
    let dir = tempdir();
    let b = Bench::new(dir.path());
    let test = test_file(dir.path(), &server.url());
    let config = write(
        dir.path(),
        "ssh_config",
        &(hosts[0].host_block("host-one") + &hosts[1].host_block("host-two")),
    );
    let lines: Vec<&str> = (0..24)
        .map(|i| if i % 2 == 0 { "host-one" } else { "host-two" })
        .collect();
    let nodes = write(dir.path(), "nodes", &(lines.join("\n") + "\n"));
    let out = b
        .command(
            None,
            &["-c", "1", "-D", "1", "-s", env!("CARGO_BIN_EXE_bench-node")],
        )
        .arg("--ssh-config")
        .arg(&config)
        .arg(&nodes)
        .arg(&test)
        .output()
        .unwrap();
    let logs = || format!("{}\n{}", hosts[0].log(), hosts[1].log());
    assert!(out.status.success(), "{}\n{}", text(&out), logs());
    let run_dir = b.run_dir();
    assert_eq!(count_files(&run_dir.join("results")), 24);
    let s = summary(&run_dir);
    assert!(failed_names(&s).is_empty(), "{s}");
    assert_eq!(users(&s), [24]);
    assert_eq!(merged_requests(&s), server.count());
    for sshd in &hosts {
        assert_eq!(sshd.sessions(), (1, 1), "{}", sshd.log());
    }
}

/// Starts a run of a local and an ssh node through the library and detaches from it once
/// both report progress.
pub(crate) fn start_detached(
    sshd: &Sshd,
    b: &Bench,
    test: &Path,
    seconds: &str,
) -> master::Outcome {
    let nodes = write(&b.dir, "nodes", &format!("{}\nlocal\n", ALIASES[0]));
    let args = Args::try_parse_from([
        "bench-master",
        "-w",
        b.workdir.to_str().unwrap(),
        "-x",
        b.node_workdir.to_str().unwrap(),
        "--ssh-config",
        sshd.ssh_config.to_str().unwrap(),
        // This test runs the library, not the binary: name the bench-node to run.
        "-s",
        env!("CARGO_BIN_EXE_bench-node"),
        "-c",
        "1",
        "-D",
        seconds,
        nodes.to_str().unwrap(),
        test.to_str().unwrap(),
    ])
    .unwrap();
    let config = Config::try_from(args).unwrap();
    let workdir = b.workdir.clone();
    let detach = async move {
        let b = Bench {
            dir: PathBuf::new(),
            workdir,
            node_workdir: PathBuf::new(),
        };
        let run_dir = tokio::task::spawn_blocking(move || wait_run_dir(&b))
            .await
            .unwrap();
        for n in 0..2 {
            let log = run_dir.join(format!("out/node{n}.log"));
            tokio::task::spawn_blocking(move || {
                wait_for(&log, "\"progress\"", Duration::from_secs(60))
            })
            .await
            .unwrap();
        }
        Interrupt::Detach
    };
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let outcome = runtime.block_on(master::run(config, detach)).unwrap();
    drop(runtime);
    assert!(outcome.detached && outcome.report.is_none());
    let needle = b.node_workdir.to_string_lossy().into_owned();
    assert_eq!(
        nodes_running(&needle),
        2,
        "detached nodes keep running: {:?}",
        bench_nodes_running(&needle)
    );
    outcome
}

/// Runs `bench-master <flag> RUN_DIR` to its end (bounded).
fn master_on(flag: &str, run_dir: &Path) -> Output {
    let mut child = bench_master()
        .arg(flag)
        .arg(run_dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_bounded(&mut child, Duration::from_secs(60));
    child.wait_with_output().unwrap()
}

#[test]
fn detached_nodes_keep_running_and_attach_collects_them() {
    let sshd = Sshd::start();
    let server = Server::start();
    let dir = tempdir();
    let b = Bench::new(dir.path());
    let test = test_file(dir.path(), &server.url());
    let outcome = start_detached(&sshd, &b, &test, "5");
    let out = master_on("--attach", &outcome.run_dir);
    assert!(out.status.success(), "{}", text(&out));
    let s = summary(&outcome.run_dir);
    assert_eq!(s["nodes"].as_u64(), Some(2), "{s}");
    assert!(!s["interrupted"].as_bool().unwrap(), "{s}");
    assert_eq!(merged_requests(&s), server.count());
    let needle = b.node_workdir.to_string_lossy().into_owned();
    assert_eq!(bench_nodes_running(&needle), Vec::<String>::new());
}

#[test]
fn stop_ends_a_detached_run_and_reports_it() {
    let sshd = Sshd::start();
    let server = Server::start();
    let dir = tempdir();
    let b = Bench::new(dir.path());
    let test = test_file(dir.path(), &server.url());
    let outcome = start_detached(&sshd, &b, &test, "120");
    let started = Instant::now();
    let out = master_on("--stop", &outcome.run_dir);
    assert!(out.status.success(), "{}", text(&out));
    assert!(started.elapsed() < Duration::from_secs(30));
    let s = summary(&outcome.run_dir);
    assert_eq!(s["nodes"].as_u64(), Some(2), "{s}");
    assert!(s["interrupted"].as_bool().unwrap(), "{s}");
    let needle = b.node_workdir.to_string_lossy().into_owned();
    assert_eq!(bench_nodes_running(&needle), Vec::<String>::new());
}

#[test]
fn service_over_ssh_and_monitored_hosts() {
    let sshd = Sshd::start();
    let dir = tempdir();
    let b = Bench::new(dir.path());
    let port = crate::util::closed_port();
    let url = format!("http://127.0.0.1:{port}");
    let test = write(
        dir.path(),
        "test.toml",
        &format!(
            "[test]\nname = \"service-test\"\nurl = \"{url}\"\n\n[bench]\ncycles = [1]\n\
             duration = 3\n\n[[step]]\nname = \"home\"\npath = \"/\"\n\n\
             [monitor]\nhosts = [\"{a}\", \"local\", \"{a}\"]\n\n\
             [service]\nhost = \"{a}\"\ncommand = [\"{node}\", \"target\", \"--listen\", \
             \"127.0.0.1:{port}\"]\nready_url = \"{url}/\"\n",
            a = ALIASES[0],
            node = env!("CARGO_BIN_EXE_bench-node"),
        ),
    );
    let nodes = write(dir.path(), "nodes", "local\n");
    let out = b
        .command(Some(&sshd), &[])
        .arg(&nodes)
        .arg(&test)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let s = summary(&b.run_dir());
    assert!(
        s["cycles"][0]["requests"]["success"].as_u64().unwrap() > 0,
        "{s}"
    );
    // The service was stopped after the run.
    assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_err());
    // One sampler per host, its samples in the results.
    let xml = std::fs::read_to_string(b.run_dir().join("results/node0.xml")).unwrap();
    for host in [ALIASES[0], "local"] {
        let tag = format!("host=\"{host}\" role=\"monitor\"");
        assert_eq!(xml.matches(&tag).count(), 1, "{tag}");
    }
}

#[test]
fn a_changed_host_key_is_refused_even_when_accepting_new_ones() {
    let sshd = Sshd::start();
    let dir = tempdir();
    let b = Bench::new(dir.path());
    let nodes = write(dir.path(), "nodes", &format!("{STRANGER}\n"));
    // Record a key for the host that is not its key: what a man in the middle would present.
    let other = dir.path().join("other_host_key");
    let made = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(&other)
        .output()
        .unwrap();
    assert!(made.status.success());
    let public = std::fs::read_to_string(other.with_extension("pub")).unwrap();
    let key: Vec<&str> = public.split_whitespace().take(2).collect();
    std::fs::write(
        &sshd.stranger_known_hosts,
        format!("[127.0.0.1]:{} {} {}\n", sshd.port, key[0], key[1]),
    )
    .unwrap();
    let out = b
        .command(Some(&sshd), &["--check", "--accept-new-host-keys"])
        .arg(&nodes)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    assert!(
        text(&out).contains("Host key verification failed")
            || text(&out).contains("HOST IDENTIFICATION HAS CHANGED"),
        "{}",
        text(&out)
    );
}

#[test]
fn a_run_name_cannot_leave_the_workspace() {
    let server = Server::start();
    let dir = tempdir();
    let b = Bench::new(dir.path());
    let test = test_file(dir.path(), &server.url());
    let nodes = write(dir.path(), "nodes", "local\n");
    for name in ["../../escaped", "..", "a/../../b", "/tmp/abs"] {
        let out = b
            .command(None, &["-n", name, "-D", "1"])
            .arg(&nodes)
            .arg(&test)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "-n {name}: {}", text(&out));
        assert!(text(&out).contains(name), "-n {name}: {}", text(&out));
    }
    assert_eq!(server.count(), 0, "nothing ran");
    assert!(!dir.path().join("escaped").exists());
    assert!(!dir.path().parent().unwrap().join("escaped").exists());
    assert!(!b.workdir.exists() || std::fs::read_dir(&b.workdir).unwrap().count() == 0);
}
