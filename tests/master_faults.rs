//! bench-master under faults (issue 6's fault matrix, master side): a node unreachable at
//! start, a node whose sshd stops mid-run, a remote bench-node killed, a node cut off from the
//! network (its own network namespace), the master interrupted or killed, a results directory
//! that cannot be written, a truncated result, a run failing before it starts with a service
//! up. Each test states its bound, prints its figure, and checks that no bench-node is left.
//! Loads go to 127.0.0.1 or the test's own namespace only; every run is bounded in time.

use std::io::{BufRead, BufReader, Read};
use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::master::{
    bench_nodes_running, count_files, failed_names, merged_requests, nodes_running, summary,
    test_file, users, wait_for, wait_run_dir, Bench,
};
use crate::sshd::{Sshd, ALIASES, CLOSED};
use crate::util::{peak_rss_kib, tempdir, write, write_script, Server};
use benchmaster::engine::target::Target;

/// A running bench-master whose output is read as it comes, each line with its arrival time.
struct Master {
    child: Child,
    started: Instant,
    stderr: Arc<Mutex<Vec<(Instant, String)>>>,
    stdout: Arc<Mutex<String>>,
    readers: Vec<std::thread::JoinHandle<()>>,
}

impl Master {
    fn spawn(mut cmd: Command) -> Master {
        let started = Instant::now();
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = Arc::new(Mutex::new(Vec::new()));
        let stdout = Arc::new(Mutex::new(String::new()));
        let err = BufReader::new(child.stderr.take().unwrap());
        let lines = stderr.clone();
        let mut readers = vec![std::thread::spawn(move || {
            for line in err.lines().map_while(Result::ok) {
                lines.lock().unwrap().push((Instant::now(), line));
            }
        })];
        let mut out = child.stdout.take().unwrap();
        let text = stdout.clone();
        readers.push(std::thread::spawn(move || {
            let mut s = String::new();
            let _ = out.read_to_string(&mut s);
            text.lock().unwrap().push_str(&s);
        }));
        Master {
            child,
            started,
            stderr,
            stdout,
            readers,
        }
    }

    fn pid(&self) -> String {
        self.child.id().to_string()
    }

    /// When a line of stderr holding every one of `needles` arrived.
    fn seen(&self, needles: &[&str]) -> Option<Instant> {
        self.stderr
            .lock()
            .unwrap()
            .iter()
            .find(|(_, l)| needles.iter().all(|n| l.contains(n)))
            .map(|(t, _)| *t)
    }

    /// Waits for the master to end (panics when it runs `limit` more); returns its status,
    /// how long it ran and its whole output.
    fn wait(mut self, limit: Duration) -> (ExitStatus, Duration, String) {
        let deadline = Instant::now() + limit;
        let status = loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                break status;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                panic!(
                    "bench-master did not end within {limit:?}:\n{}",
                    self.text()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        let took = self.started.elapsed();
        for r in self.readers.drain(..) {
            let _ = r.join();
        }
        (status, took, self.text())
    }

    fn text(&self) -> String {
        let err: Vec<String> = self
            .stderr
            .lock()
            .unwrap()
            .iter()
            .map(|(_, l)| l.clone())
            .collect();
        format!(
            "--- stdout\n{}--- stderr\n{}",
            self.stdout.lock().unwrap(),
            err.join("\n")
        )
    }
}

/// Waits until no bench-node process mentions `needle` (panics past `limit`); returns how
/// long that took.
fn wait_no_bench_node(needle: &str, limit: Duration) -> Duration {
    let started = Instant::now();
    loop {
        let left = bench_nodes_running(needle);
        if left.is_empty() {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < limit,
            "bench-node still running after {limit:?}: {left:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The pid a node announced in its first (`ready`) line.
fn node_pid(run_dir: &Path, node: u32) -> String {
    let log = wait_for(
        &run_dir.join(format!("out/node{node}.log")),
        "\"progress\"",
        Duration::from_secs(60),
    );
    let ready: serde_json::Value = serde_json::from_str(log.lines().next().unwrap()).unwrap();
    ready["pid"].as_u64().unwrap().to_string()
}

/// Waits until every listed node reports progress (they run).
fn wait_running(run_dir: &Path, nodes: &[u32]) {
    for n in nodes {
        wait_for(
            &run_dir.join(format!("out/node{n}.log")),
            "\"progress\"",
            Duration::from_secs(60),
        );
    }
}

fn kill(signal: &str, pid: &str) {
    assert!(Command::new("kill")
        .args([&format!("-{signal}"), pid])
        .status()
        .unwrap()
        .success());
}

/// A test definition against `url` with a short request timeout (a cut-off node's requests
/// end quickly).
fn short_timeout_test(dir: &Path, url: &str) -> PathBuf {
    write(
        dir,
        "test.toml",
        &format!(
            "[test]\nname = \"fault-test\"\nurl = \"{url}\"\n\n[bench]\ncycles = [1]\n\
             duration = 1\ncycle_time = 0\ntimeout = 2\nsleep_time_min = 0.05\n\
             sleep_time_max = 0.05\n\n[[step]]\nname = \"home\"\npath = \"/\"\n"
        ),
    )
}

/// A loopback port that accepts connections and never says a word (an SSH server that hangs).
struct SilentPort {
    port: u16,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl SilentPort {
    fn start() -> SilentPort {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut held = Vec::new();
            while !flag.load(Ordering::SeqCst) {
                if let Ok((stream, _)) = listener.accept() {
                    held.push(stream);
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        });
        SilentPort {
            port,
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for SilentPort {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Bound: a host that refuses or never answers is given up within --connect-timeout; the run
/// goes on with the others (--min-nodes) and ends on time: within its 2 s cycle + 30 s (deploy
/// of a debug bench-node on a loaded CI machine included).
#[test]
fn nodes_unreachable_at_start_are_named_and_the_others_run() {
    let sshd = Sshd::start();
    let silent = SilentPort::start();
    sshd.add_alias("silent-node", silent.port);
    let server = Server::start();
    let dir = tempdir();
    let b = Bench::new(dir.path());
    let test = test_file(dir.path(), &server.url());
    let nodes = write(
        dir.path(),
        "nodes",
        &format!("{}\n{CLOSED}\nsilent-node\n", ALIASES[0]),
    );
    let mut cmd = b.command(
        Some(&sshd),
        &["--min-nodes", "1", "--connect-timeout", "2", "-D", "2"],
    );
    cmd.arg(&nodes).arg(&test);
    let (status, took, out) = Master::spawn(cmd).wait(Duration::from_secs(40));
    eprintln!("FIGURE unreachable at start (refused + silent, --connect-timeout 2, -D 2): run ended in {took:.1?}");
    assert_eq!(status.code(), Some(3), "{out}");
    assert!(out.contains("Connection refused"), "{out}");
    assert!(out.contains("timed out"), "{out}");
    let s = summary(&b.run_dir());
    assert_eq!(failed_names(&s), ["node1", "node2"]);
    assert_eq!(users(&s), [1]);
    assert_eq!(merged_requests(&s), server.count());
    assert!(took < Duration::from_secs(32), "{took:?}");
    let needle = b.node_workdir.to_string_lossy().into_owned();
    wait_no_bench_node(&needle, Duration::from_secs(5));
}

/// Bound: the node is failed within 5 s of its sshd going down (its channel breaks), the run
/// ends on time (8 s cycle + 30 s) with the other node's results, and the orphaned node stops
/// by itself (its stdin closed) within 5 s.
#[test]
fn a_node_whose_sshd_stops_mid_run_is_failed_and_stops_by_itself() {
    let sshd = Sshd::start();
    let mut second = Sshd::start();
    let server = Server::start();
    let dir = tempdir();
    let b = Bench::new(dir.path());
    let test = test_file(dir.path(), &server.url());
    // One config for both servers: `second` first (ssh takes the first value it meets).
    let config = write(
        dir.path(),
        "ssh_config",
        &(second.host_block("second") + &std::fs::read_to_string(&sshd.ssh_config).unwrap()),
    );
    let nodes = write(dir.path(), "nodes", &format!("{}\nsecond\n", ALIASES[0]));
    let mut cmd = b.command(None, &["--ssh-config", config.to_str().unwrap(), "-D", "8"]);
    cmd.arg(&nodes).arg(&test);
    let master = Master::spawn(cmd);
    let run_dir = wait_run_dir(&b);
    wait_running(&run_dir, &[0, 1]);
    let stopped = Instant::now();
    second.kill_all();
    let needle = format!("{}/", b.node_workdir.display());
    let orphan = "node1/";
    let left = || {
        bench_nodes_running(&needle)
            .into_iter()
            .filter(|l| l.contains(orphan))
            .count()
    };
    let deadline = Instant::now() + Duration::from_secs(5);
    while left() > 0 {
        assert!(
            Instant::now() < deadline,
            "node1 still runs after its sshd stopped"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let orphan_ended = stopped.elapsed();
    let noticed = master.seen(&["node1", "failed"]);
    let (status, took, out) = master.wait(Duration::from_secs(60));
    let noticed = noticed
        .or_else(|| Some(Instant::now()))
        .unwrap()
        .duration_since(stopped);
    eprintln!(
        "FIGURE sshd stopped mid-run (-D 8): node failed {noticed:.1?} after, its bench-node \
         ended {orphan_ended:.1?} after, run ended in {took:.1?}"
    );
    assert_eq!(status.code(), Some(3), "{out}");
    assert!(noticed < Duration::from_secs(5), "{noticed:?}\n{out}");
    let s = summary(&run_dir);
    assert_eq!(failed_names(&s), ["node1"]);
    assert_eq!(s["nodes"].as_u64(), Some(1), "{s}");
    assert!(took < Duration::from_secs(38), "{took:?}");
    wait_no_bench_node(&b.node_workdir.to_string_lossy(), Duration::from_secs(5));
}

/// Bound: a remote bench-node killed with SIGKILL is failed within 2 s (its exit comes through
/// its host's channel); the run ends on time (4 s cycle + 30 s) with the others in full.
#[test]
fn a_remote_bench_node_killed_mid_run_is_failed_and_the_run_ends_on_time() {
    let sshd = Sshd::start();
    let server = Server::start();
    let dir = tempdir();
    let b = Bench::new(dir.path());
    let test = test_file(dir.path(), &server.url());
    let nodes = write(
        dir.path(),
        "nodes",
        &format!("{}\n", ALIASES[..3].join("\n")),
    );
    let mut cmd = b.command(Some(&sshd), &["-c", "1", "-D", "4"]);
    cmd.arg(&nodes).arg(&test);
    let master = Master::spawn(cmd);
    let run_dir = wait_run_dir(&b);
    let pid = node_pid(&run_dir, 1);
    let killed = Instant::now();
    kill("KILL", &pid);
    let noticed = loop {
        if let Some(t) = master.seen(&["node1", "failed"]) {
            break t.duration_since(killed);
        }
        assert!(killed.elapsed() < Duration::from_secs(20), "never noticed");
        std::thread::sleep(Duration::from_millis(50));
    };
    let (status, took, out) = master.wait(Duration::from_secs(60));
    eprintln!("FIGURE remote bench-node SIGKILL (-D 4): failed {noticed:.2?} after, run ended in {took:.1?}");
    assert_eq!(status.code(), Some(3), "{out}");
    assert!(noticed < Duration::from_secs(2), "{noticed:?}");
    let s = summary(&run_dir);
    assert_eq!(failed_names(&s), ["node1"]);
    assert_eq!(count_files(&run_dir.join("results")), 2);
    assert_eq!(s["nodes"].as_u64(), Some(2), "{s}");
    assert!(took < Duration::from_secs(34), "{took:?}");
    wait_no_bench_node(&b.node_workdir.to_string_lossy(), Duration::from_secs(5));
}

/// A network namespace joined to the host by a veth pair with addresses of its own; removed
/// (with its link) on drop.
struct Netns {
    name: String,
    host_if: String,
    /// The host's end (where the test's target listens).
    outer: Ipv4Addr,
    /// The namespace's end (where its sshd listens).
    inner: Ipv4Addr,
}

impl Netns {
    fn create() -> Netns {
        static COUNT: AtomicU32 = AtomicU32::new(0);
        let k = COUNT.fetch_add(1, Ordering::SeqCst);
        let id = std::process::id() % 10_000;
        let name = format!("bm-{id}-{k}");
        let host_if = format!("bmh{id}x{k}");
        let peer = format!("bmn{id}x{k}");
        let (a, b) = ((id % 250) as u8, (4 * (k % 60)) as u8);
        let outer = Ipv4Addr::new(10, 231, a, b + 1);
        let inner = Ipv4Addr::new(10, 231, a, b + 2);
        let ns = Netns {
            name,
            host_if,
            outer,
            inner,
        };
        let ip = |args: &[&str]| {
            let out = Command::new("ip")
                .args(args)
                .output()
                .expect("ip (iproute2)");
            assert!(
                out.status.success(),
                "ip {args:?}: {} (network namespaces need root and iproute2)",
                String::from_utf8_lossy(&out.stderr)
            );
        };
        let n = ns.name.as_str();
        ip(&["netns", "add", n]);
        ip(&[
            "link",
            "add",
            &ns.host_if,
            "type",
            "veth",
            "peer",
            "name",
            &peer,
        ]);
        ip(&["link", "set", &peer, "netns", n]);
        ip(&["addr", "add", &format!("{outer}/30"), "dev", &ns.host_if]);
        ip(&["link", "set", &ns.host_if, "up"]);
        ip(&[
            "netns",
            "exec",
            n,
            "ip",
            "addr",
            "add",
            &format!("{inner}/30"),
            "dev",
            &peer,
        ]);
        ip(&["netns", "exec", n, "ip", "link", "set", &peer, "up"]);
        ip(&["netns", "exec", n, "ip", "link", "set", "lo", "up"]);
        ns
    }

    /// Takes the host's end of the link down: the namespace is cut off.
    fn cut(&self) {
        let status = Command::new("ip")
            .args(["link", "set", &self.host_if, "down"])
            .status()
            .unwrap();
        assert!(status.success());
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["link", "del", &self.host_if])
            .status();
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}

/// The built-in target on `addr` (port 0), on its own thread; it counts what it receives.
fn target_on(addr: Ipv4Addr) -> Target {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let (target, listener) = Target::bind(SocketAddr::from((addr, 0))).await.unwrap();
            tx.send(target.clone()).unwrap();
            target.serve(listener, None, std::future::pending()).await;
        });
    });
    rx.recv().unwrap()
}

/// Bound: a node whose network link goes down mid-run is failed within 15 s (SSH keepalives
/// every 2 s, or 10 s of silence), the run ends on time (12 s cycle + 30 s) with the others'
/// results, and the cut-off node stops by itself within 25 s (its mux hears no heartbeat for
/// 10 s, then its requests time out after 2 s).
#[test]
fn a_node_cut_off_mid_run_is_failed_and_stops_by_itself() {
    let ns = Netns::create();
    let mut inner = Sshd::start_on(ns.inner, Some(&ns.name));
    let sshd = Sshd::start();
    let target = target_on(ns.outer);
    let dir = tempdir();
    let b = Bench::new(dir.path());
    let test = short_timeout_test(dir.path(), &format!("http://{}", target.addr));
    let config = write(
        dir.path(),
        "ssh_config",
        &(inner.host_block("cut-node") + &std::fs::read_to_string(&sshd.ssh_config).unwrap()),
    );
    let nodes = write(
        dir.path(),
        "nodes",
        &format!("{}\n{}\ncut-node\n", ALIASES[0], ALIASES[1]),
    );
    let mut cmd = b.command(
        None,
        &["--ssh-config", config.to_str().unwrap(), "-D", "12"],
    );
    cmd.arg(&nodes).arg(&test);
    let master = Master::spawn(cmd);
    let run_dir = wait_run_dir(&b);
    wait_running(&run_dir, &[0, 1, 2]);
    std::thread::sleep(Duration::from_secs(1));
    let cut = Instant::now();
    ns.cut();
    let needle = format!("{}/", b.node_workdir.display());
    let cut_node = |l: &String| l.contains("node2");
    let mut cut_node_ended = None;
    let mut noticed = None;
    while cut_node_ended.is_none() || noticed.is_none() {
        if noticed.is_none() {
            noticed = master
                .seen(&["node2", "failed"])
                .map(|t| t.duration_since(cut));
        }
        if cut_node_ended.is_none() && !bench_nodes_running(&needle).iter().any(cut_node) {
            cut_node_ended = Some(cut.elapsed());
        }
        assert!(
            cut.elapsed() < Duration::from_secs(25),
            "after 25 s: noticed {noticed:?}, cut-off node ended {cut_node_ended:?}: {:?}\n{}",
            bench_nodes_running(&needle),
            master.text()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let (noticed, cut_node_ended) = (noticed.unwrap(), cut_node_ended.unwrap());
    let (status, took, out) = master.wait(Duration::from_secs(60));
    eprintln!(
        "FIGURE node cut off mid-run (-D 12): failed {noticed:.1?} after the cut, its \
         bench-node ended {cut_node_ended:.1?} after, run ended in {took:.1?}"
    );
    assert_eq!(status.code(), Some(3), "{out}");
    assert!(noticed < Duration::from_secs(15), "{noticed:?}");
    let s = summary(&run_dir);
    assert_eq!(failed_names(&s), ["node2"]);
    assert_eq!(s["nodes"].as_u64(), Some(2), "{s}");
    assert!(took < Duration::from_secs(42), "{took:?}");
    wait_no_bench_node(&b.node_workdir.to_string_lossy(), Duration::from_secs(5));
    inner.kill_all();
}

/// Bound: SIGINT (not on a terminal) or SIGTERM stops every node; the master still reports
/// what they measured, within 15 s, and no bench-node is left.
fn master_signal_stops_every_node(signal: &str) {
    let sshd = Sshd::start();
    let server = Server::start();
    let dir = tempdir();
    let b = Bench::new(dir.path());
    let test = test_file(dir.path(), &server.url());
    let nodes = write(
        dir.path(),
        "nodes",
        &format!("{}\n{}\nlocal\n", ALIASES[0], ALIASES[1]),
    );
    let mut cmd = b.command(Some(&sshd), &["-c", "1", "-D", "60"]);
    cmd.arg(&nodes).arg(&test);
    let master = Master::spawn(cmd);
    let run_dir = wait_run_dir(&b);
    wait_running(&run_dir, &[0, 1, 2]);
    let needle = b.node_workdir.to_string_lossy().into_owned();
    assert_eq!(nodes_running(&needle), 3);
    let sent = Instant::now();
    kill(signal, &master.pid());
    let (status, _, out) = master.wait(Duration::from_secs(30));
    let took = sent.elapsed();
    eprintln!("FIGURE master SIG{signal} (-D 60): master ended {took:.1?} after, with a report");
    assert!(status.success(), "{out}");
    assert!(took < Duration::from_secs(15), "{took:?}");
    // Stopped nodes still report what they measured.
    let s = summary(&run_dir);
    assert!(s["interrupted"].as_bool().unwrap(), "{s}");
    assert_eq!(s["nodes"].as_u64(), Some(3));
    wait_no_bench_node(&needle, Duration::from_secs(2));
}

#[test]
fn sigint_stops_every_node_and_reports() {
    master_signal_stops_every_node("INT");
}

#[test]
fn sigterm_stops_every_node_and_reports() {
    master_signal_stops_every_node("TERM");
}

/// ssh processes whose command line names `config` (the master's connections).
fn ssh_processes(config: &Path) -> Vec<String> {
    let out = Command::new("ps")
        .args(["-eo", "pid,args"])
        .output()
        .unwrap();
    let config = config.to_string_lossy();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.contains("ssh ") && l.contains(config.as_ref()) && !l.contains(" ps "))
        .map(str::to_string)
        .collect()
}

/// Bound: after the master is killed with SIGKILL, every node, local or remote, stops by
/// itself within 5 s (its stdin closes), and the master's SSH connections end within 20 s.
#[test]
fn after_sigkill_of_the_master_the_nodes_stop_by_themselves() {
    let sshd = Sshd::start();
    let server = Server::start();
    let dir = tempdir();
    let b = Bench::new(dir.path());
    let test = test_file(dir.path(), &server.url());
    let nodes = write(
        dir.path(),
        "nodes",
        &format!("{}\n{}\n{}\nlocal\n", ALIASES[0], ALIASES[0], ALIASES[1]),
    );
    let mut cmd = b.command(Some(&sshd), &["-c", "1", "-D", "60"]);
    cmd.arg(&nodes).arg(&test);
    let master = Master::spawn(cmd);
    let run_dir = wait_run_dir(&b);
    wait_running(&run_dir, &[0, 1, 2, 3]);
    let needle = b.node_workdir.to_string_lossy().into_owned();
    assert_eq!(nodes_running(&needle), 4);
    kill("KILL", &master.pid());
    let killed = Instant::now();
    let (status, _, _) = master.wait(Duration::from_secs(5));
    assert_eq!(status.code(), None);
    let nodes_gone = wait_no_bench_node(&needle, Duration::from_secs(5));
    let deadline = killed + Duration::from_secs(20);
    while !ssh_processes(&sshd.ssh_config).is_empty() {
        assert!(
            Instant::now() < deadline,
            "ssh left: {:?}",
            ssh_processes(&sshd.ssh_config)
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let ssh_gone = killed.elapsed();
    eprintln!(
        "FIGURE master SIGKILL (-D 60): every bench-node gone {nodes_gone:.1?} after, the \
         master's ssh connections {ssh_gone:.1?} after"
    );
    // Each node wrote what it measured before stopping.
    for n in 0..4 {
        let results: Vec<PathBuf> = std::fs::read_dir(
            b.node_workdir.join(
                run_dir
                    .strip_prefix(&b.workdir)
                    .unwrap()
                    .join(format!("node{n}")),
            ),
        )
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.ends_with("result.xml"))
        .collect();
        assert_eq!(results.len(), 1, "node{n}");
    }
}

/// Mounts a read-only tmpfs on a directory (root only); unmounted on drop.
struct ReadOnly(PathBuf);

impl ReadOnly {
    fn mount(dir: &Path) -> ReadOnly {
        std::fs::create_dir_all(dir).unwrap();
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", "ro,size=1m", "tmpfs"])
            .arg(dir)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "mount: {} (needs root)",
            String::from_utf8_lossy(&out.stderr)
        );
        ReadOnly(dir.to_owned())
    }
}

impl Drop for ReadOnly {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// Bound: a workspace that cannot be written stops the master before anything is deployed
/// (under 2 s); a results directory that becomes read-only mid-run is a clear error naming
/// it once the nodes ended (run length + 10 s), their results kept on the nodes.
#[test]
fn an_unwritable_results_directory_is_a_clear_error() {
    let server = Server::start();
    let dir = tempdir();
    let test = test_file(dir.path(), &server.url());
    let nodes = write(dir.path(), "nodes", "local\nlocal\n");

    // The workspace itself is read-only: nothing starts.
    let ro = ReadOnly::mount(&dir.path().join("ro"));
    let mut b = Bench::new(dir.path());
    b.workdir = ro.0.join("ws");
    let mut cmd = b.command(None, &["-D", "1"]);
    cmd.arg(&nodes).arg(&test);
    let (status, took, out) = Master::spawn(cmd).wait(Duration::from_secs(10));
    assert_eq!(status.code(), Some(1), "{out}");
    assert!(
        out.contains(&ro.0.join("ws").display().to_string()),
        "{out}"
    );
    assert!(out.contains("Read-only file system"), "{out}");
    assert!(!b.node_workdir.exists(), "nothing was deployed");
    assert!(took < Duration::from_secs(2), "{took:?}");
    let at_start = took;

    // The results directory turns read-only while the nodes run.
    let b = Bench::new(dir.path());
    let mut cmd = b.command(None, &["-D", "3"]);
    cmd.arg(&nodes).arg(&test);
    let master = Master::spawn(cmd);
    let run_dir = wait_run_dir(&b);
    wait_running(&run_dir, &[0, 1]);
    let results = run_dir.join("results");
    let _ro = ReadOnly::mount(&results);
    let (status, took, out) = master.wait(Duration::from_secs(30));
    eprintln!(
        "FIGURE results not writable: at start, error in {at_start:.2?}; mid-run (-D 3), \
         error after {took:.1?}"
    );
    assert_eq!(status.code(), Some(1), "{out}");
    assert!(
        out.contains(&format!(
            "cannot write the results into {}: Read-only file system",
            results.display()
        )),
        "{out}"
    );
    assert!(took < Duration::from_secs(15), "{took:?}");
    wait_no_bench_node(&b.node_workdir.to_string_lossy(), Duration::from_secs(2));
    let node_dir = b
        .node_workdir
        .join(run_dir.strip_prefix(&b.workdir).unwrap());
    for n in 0..2 {
        assert!(node_dir.join(format!("node{n}/result.xml")).exists());
    }
}

/// A bench-node in `dir` (named `name`) that runs the real one, then runs the shell command
/// `edit` on node1's result file (its path appended), as a fault on node1's host would.
fn node1_result_then(dir: &Path, name: &str, edit: &str) -> PathBuf {
    write_script(
        dir,
        name,
        &format!(
            "#!/bin/sh\n'{}' \"$@\"\nrc=$?\nfor a; do\n  case \"$a\" in\n    \
             */node1/result.xml) {edit} \"$a\" ;;\n  esac\ndone\nexit $rc\n",
            env!("CARGO_BIN_EXE_bench-node")
        ),
    )
}

/// Bound: a truncated result is set aside and named; the report is built from the others in
/// the run's usual time.
#[test]
fn a_truncated_result_is_named_and_the_report_built_from_the_others() {
    let server = Server::start();
    let dir = tempdir();
    let b = Bench::new(dir.path());
    let test = test_file(dir.path(), &server.url());
    let nodes = write(dir.path(), "nodes", "local\nlocal\nlocal\n");
    // node1's result cut as a full disk or a lost connection would.
    let wrapper = node1_result_then(dir.path(), "bench-node-truncating", "truncate -s 300");
    let mut cmd = b.command(None, &["-D", "1", "-s", wrapper.to_str().unwrap()]);
    cmd.arg(&nodes).arg(&test);
    let (status, took, out) = Master::spawn(cmd).wait(Duration::from_secs(30));
    eprintln!("FIGURE truncated result (-D 1): run and report in {took:.1?}");
    assert_eq!(status.code(), Some(3), "{out}");
    let run_dir = b.run_dir();
    let s = summary(&run_dir);
    assert_eq!(failed_names(&s), ["node1"]);
    let reason = s["failed_nodes"][0]["reason"].as_str().unwrap();
    assert!(reason.contains("unreadable"), "{reason}");
    assert!(run_dir.join("results/node1.xml.bad").exists());
    assert_eq!(s["nodes"].as_u64(), Some(2), "{s}");
    assert!(out.contains("node1") && out.contains("unreadable"), "{out}");
    assert!(took < Duration::from_secs(20), "{took:?}");
}

/// A node whose result is readable but of another test (its step renamed, as a node left
/// with an old test file would write): the merge leaves it out and names it in the report,
/// built from the other nodes, each result file read once.
#[test]
fn a_result_of_another_test_is_left_out_and_named() {
    let server = Server::start();
    let dir = tempdir();
    let b = Bench::new(dir.path());
    let test = test_file(dir.path(), &server.url());
    let nodes = write(dir.path(), "nodes", "local\nlocal\nlocal\n");
    let wrapper = node1_result_then(
        dir.path(),
        "bench-node-other-test",
        "sed -i 's/<step index=\"0\" name=\"[^\"]*\"/<step index=\"0\" name=\"elsewhere\"/'",
    );
    let mut cmd = b.command(None, &["-D", "1", "-s", wrapper.to_str().unwrap()]);
    cmd.arg(&nodes).arg(&test);
    let (status, _, out) = Master::spawn(cmd).wait(Duration::from_secs(30));
    assert!(status.success(), "{out}");
    let run_dir = b.run_dir();
    let changed = std::fs::read_to_string(run_dir.join("results/node1.xml")).unwrap();
    assert!(
        changed.contains("name=\"elsewhere\""),
        "the wrapper renamed the step"
    );
    let s = summary(&run_dir);
    assert_eq!(s["nodes"].as_u64(), Some(2), "{s}");
    let skipped = s["skipped"].as_array().unwrap();
    assert_eq!(skipped.len(), 1, "{s}");
    assert!(
        skipped[0]["path"].as_str().unwrap().ends_with("node1.xml"),
        "{s}"
    );
    assert!(
        skipped[0]["reason"].as_str().unwrap().contains("elsewhere"),
        "{s}"
    );
    let html = std::fs::read_to_string(run_dir.join("report/index.html")).unwrap();
    assert!(
        html.contains("node1.xml"),
        "the report names the file left out"
    );
}

/// Processes whose command line holds `needle`.
fn processes(needle: &str) -> Vec<String> {
    let out = Command::new("ps")
        .args(["-eo", "pid,args"])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.contains(needle) && !l.contains(" ps "))
        .map(str::to_string)
        .collect()
}

/// Bound: when no node can be deployed, the master stops the `[service]` it started and ends
/// within 10 s; the service's port is closed and its process gone. The same when the master
/// is interrupted while it waits for the service to answer.
#[test]
fn the_service_is_stopped_when_the_run_fails_before_it_starts() {
    let dir = tempdir();
    let b = Bench::new(dir.path());
    let port = crate::util::closed_port();
    let url = format!("http://127.0.0.1:{port}");
    let test = write(
        dir.path(),
        "test.toml",
        &format!(
            "[test]\nname = \"service-fails\"\nurl = \"{url}\"\n\n[bench]\ncycles = [1]\n\
             duration = 1\n\n[[step]]\nname = \"home\"\npath = \"/\"\n\n\
             [service]\ncommand = [\"{node}\", \"target\", \"--listen\", \"127.0.0.1:{port}\"]\n\
             ready_url = \"{url}/\"\n",
            node = env!("CARGO_BIN_EXE_bench-node"),
        ),
    );
    let nodes = write(dir.path(), "nodes", "local\n");
    // The deploy fails: no bench-node at the path given.
    let mut cmd = b.command(None, &["-s", "/nonexistent/bench-node"]);
    cmd.arg(&nodes).arg(&test);
    let (status, took, out) = Master::spawn(cmd).wait(Duration::from_secs(30));
    eprintln!("FIGURE deploy failure with a [service]: master ended in {took:.1?}");
    assert_eq!(status.code(), Some(1), "{out}");
    assert!(out.contains("service:") && out.contains("answers"), "{out}");
    assert!(out.contains("/nonexistent/bench-node"), "{out}");
    assert!(took < Duration::from_secs(10), "{took:?}");
    assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_err());
    let listen = format!("127.0.0.1:{port}");
    assert_eq!(bench_nodes_running(&listen), Vec::<String>::new());

    // A service that never answers, and a Ctrl+C while the master waits for it.
    let nap = format!("{}.{:03}", 60, std::process::id() % 1000);
    let test = write(
        dir.path(),
        "test.toml",
        &format!(
            "[test]\nname = \"service-waits\"\nurl = \"{url}\"\n\n[bench]\ncycles = [1]\n\
             duration = 1\n\n[[step]]\nname = \"home\"\npath = \"/\"\n\n\
             [service]\ncommand = [\"sleep\", \"{nap}\"]\nready_url = \"{url}/\"\n"
        ),
    );
    let mut cmd = b.command(None, &[]);
    cmd.arg(&nodes).arg(&test);
    let master = Master::spawn(cmd);
    let deadline = Instant::now() + Duration::from_secs(10);
    while master.seen(&["service:", "sleep"]).is_none() {
        assert!(Instant::now() < deadline, "{}", master.text());
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(processes(&format!("sleep {nap}")).len(), 1);
    let sent = Instant::now();
    kill("INT", &master.pid());
    let (status, _, out) = master.wait(Duration::from_secs(15));
    let took = sent.elapsed();
    eprintln!("FIGURE Ctrl+C while waiting for the [service]: master ended {took:.1?} after");
    assert_eq!(status.code(), Some(1), "{out}");
    assert!(out.contains("interrupted"), "{out}");
    assert!(took < Duration::from_secs(10), "{took:?}");
    assert_eq!(processes(&format!("sleep {nap}")), Vec::<String>::new());
}

#[test]
fn a_service_that_exits_before_it_is_ready_is_a_clear_error() {
    let dir = tempdir();
    let b = Bench::new(dir.path());
    let port = crate::util::closed_port();
    let url = format!("http://127.0.0.1:{port}");
    let test = write(
        dir.path(),
        "test.toml",
        &format!(
            "[test]\nname = \"service-exits\"\nurl = \"{url}\"\n\n[bench]\ncycles = [1]\n\
             duration = 1\n\n[[step]]\nname = \"home\"\npath = \"/\"\n\n\
             [service]\ncommand = [\"false\"]\nready_url = \"{url}/\"\n"
        ),
    );
    let nodes = write(dir.path(), "nodes", "local\n");
    let mut cmd = b.command(None, &[]);
    cmd.arg(&nodes).arg(&test);
    let (status, took, out) = Master::spawn(cmd).wait(Duration::from_secs(30));
    eprintln!("FIGURE service exiting at once: master ended in {took:.1?}");
    assert_eq!(status.code(), Some(1), "{out}");
    assert!(out.contains("exited before"), "{out}");
    assert!(!out.contains("panicked"), "{out}");
    assert!(took < Duration::from_secs(10), "{took:?}");
}

/// A `bench-node` for `-s PATH` that prints one endless line (1 GB, no newline) where node0
/// (local) or an SSH host's mux should run, and is the real one everywhere else.
fn endless_bench_node(dir: &Path) -> PathBuf {
    write_script(
        dir,
        "bench-node-endless",
        &format!(
            "#!/bin/sh\nendless() {{ head -c 1000000000 /dev/zero | tr '\\0' a; exit 0; }}\n\
             case \"$1\" in\n  mux) endless ;;\n  run) case \"$*\" in */node0/*) endless ;; esac ;;\n\
             esac\nexec '{}' \"$@\"\n",
            env!("CARGO_BIN_EXE_bench-node")
        ),
    )
}

/// Bound: a node that sends the master one endless line (1 GB without a newline) — a local
/// node, and the mux of an SSH host — is failed for it and named within the run's time, the
/// other node's results are reported, and the master's memory stays bounded: its peak RSS
/// stays under 200 MB (its lines are cut at 1 MiB; unbounded, it holds the whole gigabyte).
#[test]
fn a_node_sending_an_endless_line_is_failed_and_the_master_stays_small() {
    const PEAK_LIMIT_KIB: u64 = 200 * 1024;
    let sshd = Sshd::start();
    let server = Server::start();
    let dir = tempdir();
    let b = Bench::new(dir.path());
    let test = test_file(dir.path(), &server.url());
    let nodes = write(
        dir.path(),
        "nodes",
        &format!("local\nlocal\n{}\n", ALIASES[0]),
    );
    let wrapper = endless_bench_node(dir.path());
    let wrapper = wrapper.to_str().unwrap();
    let mut cmd = b.command(Some(&sshd), &["--min-nodes", "1", "-D", "2", "-s", wrapper]);
    cmd.arg(&nodes).arg(&test);
    let master = Master::spawn(cmd);
    let pid = master.child.id();
    // The master's peak RSS, sampled while it runs; past the limit it is killed at once.
    let watcher = std::thread::spawn(move || {
        let mut peak = 0;
        while let Some(kib) = peak_rss_kib(pid) {
            peak = peak.max(kib);
            if peak > PEAK_LIMIT_KIB {
                kill("KILL", &pid.to_string());
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        peak
    });
    let (status, took, out) = master.wait(Duration::from_secs(60));
    let peak = watcher.join().unwrap();
    eprintln!(
        "FIGURE endless line (local node + SSH mux, -D 2): run ended in {took:.1?}, master's \
         peak RSS {} MiB",
        peak / 1024
    );
    assert!(peak < PEAK_LIMIT_KIB, "peak RSS {peak} KiB\n{out}");
    assert_eq!(status.code(), Some(3), "{out}");
    for node in [
        "node0 (local) failed",
        &format!("node2 ({}) failed", ALIASES[0]),
    ] {
        assert!(
            out.lines()
                .any(|l| l.contains(node) && l.contains("line longer than 1048576 bytes")),
            "{node}\n{out}"
        );
    }
    let run_dir = b.run_dir();
    let s = summary(&run_dir);
    assert_eq!(failed_names(&s), ["node0", "node2"]);
    for f in s["failed_nodes"].as_array().unwrap() {
        let reason = f["reason"].as_str().unwrap();
        assert!(reason.contains("line longer than"), "{reason}");
    }
    let state = std::fs::read_to_string(run_dir.join("run.json")).unwrap();
    assert_eq!(state.matches("line longer than").count(), 2, "{state}");
    assert_eq!(s["nodes"].as_u64(), Some(1), "{s}");
    assert_eq!(merged_requests(&s), server.count());
    assert!(took < Duration::from_secs(30), "{took:?}");
    let started = Instant::now();
    while !processes("bench-node-endless").is_empty() {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "{:?}",
            processes("bench-node-endless")
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}
