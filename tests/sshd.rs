//! An OpenSSH server on a free loopback port for tests: generated host and user keys, its own
//! `sshd_config` (sshd's default `MaxStartups` and `MaxSessions` kept), and an ssh config that
//! maps node aliases to it. Killed on drop.

#![allow(dead_code)]

use std::fmt::Write as _;
use std::io::Read;
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Where sshd lives on Debian (`openssh-server`).
const SSHD: &str = "/usr/sbin/sshd";

/// Aliases of the test server the ssh config knows, all mapped to 127.0.0.1 and the server's
/// port, with the server's host key known.
pub const ALIASES: &[&str] = &["node-a", "node-b", "node-c", "node-d"];
/// Any alias starting with this (`vnode-7`) also reaches the test server with its key known:
/// as many distinct hosts as a test wants, all on one sshd.
pub const VNODE_PREFIX: &str = "vnode-";
/// Alias of the test server whose host key is not known (its own empty known_hosts file).
pub const STRANGER: &str = "stranger";
/// Alias of a loopback port where nothing listens.
pub const CLOSED: &str = "closed-node";

/// A running sshd and the client files that reach it.
pub struct Sshd {
    /// Temporary directory holding keys, configs and logs.
    pub dir: tempfile::TempDir,
    /// Address sshd listens on (127.0.0.1 unless started with [`Sshd::start_on`]).
    pub addr: Ipv4Addr,
    /// Port sshd listens on.
    pub port: u16,
    /// The ssh client config (`--ssh-config`).
    pub ssh_config: PathBuf,
    /// Known hosts file of the [`STRANGER`] alias (starts empty).
    pub stranger_known_hosts: PathBuf,
    /// User the tests log in as (the current user).
    pub user: String,
    child: Child,
}

/// A loopback port nobody listens on right now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("bind 127.0.0.1:0")
        .port()
}

fn run(cmd: &mut Command) {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn current_user() -> String {
    let out = Command::new("id").arg("-un").output().expect("id -un");
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

impl Sshd {
    /// True when sshd is installed (`apt-get install openssh-server`).
    pub fn available() -> bool {
        Path::new(SSHD).exists()
    }

    /// Starts sshd on 127.0.0.1 and waits until it greets.
    pub fn start() -> Sshd {
        Sshd::start_on(Ipv4Addr::LOCALHOST, None)
    }

    /// Starts sshd listening on `addr`, inside network namespace `netns` when given (`ip netns
    /// exec`), and waits until it greets.
    pub fn start_on(addr: Ipv4Addr, netns: Option<&str>) -> Sshd {
        Sshd::launch(addr, netns, "")
    }

    /// Starts sshd on 127.0.0.1 with `extra` lines at the end of its `sshd_config`.
    pub fn start_with(extra: &str) -> Sshd {
        Sshd::launch(Ipv4Addr::LOCALHOST, None, extra)
    }

    fn launch(addr: Ipv4Addr, netns: Option<&str>, extra: &str) -> Sshd {
        assert!(
            Self::available(),
            "{SSHD} is missing: apt-get install -y openssh-server"
        );
        // Privilege separation directory sshd insists on when run as root.
        let _ = std::fs::create_dir_all("/run/sshd");
        let dir = tempfile::Builder::new()
            .prefix("bm-sshd")
            .tempdir()
            .expect("tempdir");
        let d = dir.path();
        let host_key = d.join("host_key");
        let user_key = d.join("id_ed25519");
        for key in [&host_key, &user_key] {
            run(Command::new("ssh-keygen")
                .args([
                    "-q",
                    "-t",
                    "ed25519",
                    "-N",
                    "",
                    "-C",
                    "bench-master-test",
                    "-f",
                ])
                .arg(key));
        }
        std::fs::copy(user_key.with_extension("pub"), d.join("authorized_keys")).unwrap();
        let host_pub = std::fs::read_to_string(host_key.with_extension("pub")).unwrap();
        let host_pub: Vec<&str> = host_pub.split_whitespace().take(2).collect();

        let port = free_port();
        let sshd_config = d.join("sshd_config");
        // sshd's defaults are kept for MaxStartups (10:30:100) and MaxSessions (10): the master
        // must cope with them. VERBOSE logs every remote command ("Starting session: command").
        std::fs::write(
            &sshd_config,
            format!(
                "Port {port}\nListenAddress {addr}\nHostKey {hk}\nAuthorizedKeysFile {ak}\n\
                 PasswordAuthentication no\nKbdInteractiveAuthentication no\n\
                 PubkeyAuthentication yes\nPermitRootLogin prohibit-password\nStrictModes no\n\
                 UsePAM no\nPidFile none\nLogLevel VERBOSE\n{extra}",
                hk = host_key.display(),
                ak = d.join("authorized_keys").display(),
            ),
        )
        .unwrap();

        let known_hosts = d.join("known_hosts");
        std::fs::write(
            &known_hosts,
            format!("[{addr}]:{port} {} {}\n", host_pub[0], host_pub[1]),
        )
        .unwrap();
        let stranger_known_hosts = d.join("stranger_known_hosts");
        std::fs::write(&stranger_known_hosts, "").unwrap();

        let user = current_user();
        let mut cfg = String::new();
        let common = |cfg: &mut String, port: u16, kh: &Path| {
            let _ = write!(
                cfg,
                "  HostName {addr}\n  Port {port}\n  User {user}\n  IdentityFile {id}\n  \
                 IdentitiesOnly yes\n  UserKnownHostsFile {kh}\n  GlobalKnownHostsFile /dev/null\n  \
                 LogLevel ERROR\n",
                id = user_key.display(),
                kh = kh.display(),
            );
        };
        let _ = writeln!(cfg, "Host {} {VNODE_PREFIX}*", ALIASES.join(" "));
        common(&mut cfg, port, &known_hosts);
        let _ = writeln!(cfg, "Host {STRANGER}");
        common(&mut cfg, port, &stranger_known_hosts);
        let _ = writeln!(cfg, "Host {CLOSED}");
        common(&mut cfg, free_port(), &known_hosts);
        let ssh_config = d.join("ssh_config");
        std::fs::write(&ssh_config, cfg).unwrap();

        let mut command = match netns {
            Some(ns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", ns, SSHD]);
                c
            }
            None => Command::new(SSHD),
        };
        let child = command
            .arg("-D")
            .arg("-f")
            .arg(&sshd_config)
            .arg("-E")
            .arg(d.join("sshd.log"))
            .stdin(Stdio::null())
            .spawn()
            .expect("start sshd");
        let sshd = Sshd {
            dir,
            addr,
            port,
            ssh_config,
            stranger_known_hosts,
            user,
            child,
        };
        sshd.wait_greeting();
        sshd
    }

    /// Waits (at most 10 s) until sshd sends its version line.
    fn wait_greeting(&self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Ok(mut stream) = TcpStream::connect((self.addr, self.port)) {
                stream
                    .set_read_timeout(Some(Duration::from_secs(2)))
                    .unwrap();
                let mut buf = [0u8; 4];
                if stream.read_exact(&mut buf).is_ok() && &buf == b"SSH-" {
                    return;
                }
            }
            assert!(
                Instant::now() < deadline,
                "sshd did not start: {}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// An ssh config `Host` block mapping `alias` to this server (its key known), to combine
    /// several servers in one `--ssh-config` file.
    pub fn host_block(&self, alias: &str) -> String {
        let d = self.dir.path();
        format!(
            "Host {alias}\n  HostName {}\n  Port {}\n  User {}\n  IdentityFile {}\n  \
             IdentitiesOnly yes\n  UserKnownHostsFile {}\n  GlobalKnownHostsFile /dev/null\n  \
             LogLevel ERROR\n",
            self.addr,
            self.port,
            self.user,
            d.join("id_ed25519").display(),
            d.join("known_hosts").display(),
        )
    }

    /// Adds `alias` for 127.0.0.1:`port` (with this server's key known) to the ssh config: a
    /// port where something else, or nothing, answers.
    pub fn add_alias(&self, alias: &str, port: u16) {
        let block = self
            .host_block(alias)
            .replace(&format!("HostName {}", self.addr), "HostName 127.0.0.1")
            .replace(&format!("Port {}", self.port), &format!("Port {port}"));
        let mut cfg = std::fs::read_to_string(&self.ssh_config).unwrap();
        // ssh takes the first value it finds: the new block goes first.
        cfg.insert_str(0, &block);
        std::fs::write(&self.ssh_config, cfg).unwrap();
    }

    /// Stops the server and every connection it serves (its session processes), as when a
    /// node's sshd goes down; the programs those sessions started are left to notice.
    pub fn kill_all(&mut self) {
        let sshd = |pid: &u32| process_name(*pid).is_some_and(|n| n.starts_with("sshd"));
        let sessions: Vec<u32> = descendants(self.child.id())
            .into_iter()
            .filter(|pid| *pid != self.child.id() && sshd(pid))
            .collect();
        let _ = self.child.kill();
        for pid in &sessions {
            // SAFETY: kill(2) on a pid read from /proc; a pid gone meanwhile is ESRCH.
            unsafe { libc::kill(*pid as libc::pid_t, libc::SIGKILL) };
        }
        let _ = self.child.wait();
        // Returns once they are dead (a zombie has closed its sockets), so that the client's
        // side of each connection is closed when this returns.
        let alive = |pid: &u32| {
            std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
                let state = stat
                    .rsplit_once(')')
                    .and_then(|(_, r)| r.split_whitespace().next());
                state != Some("Z") && state != Some("X")
            })
        };
        let deadline = Instant::now() + Duration::from_secs(2);
        while sessions.iter().any(alive) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// The server's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("sshd.log")).unwrap_or_default()
    }

    /// Connections accepted and remote commands started so far, from the log.
    pub fn sessions(&self) -> (usize, usize) {
        let log = self.log();
        (
            log.matches("Accepted publickey").count(),
            log.matches("Starting session: command").count(),
        )
    }

    /// Runs `ssh -F <config> <alias> <args...>` and returns its output.
    pub fn ssh(&self, alias: &str, args: &[&str]) -> std::process::Output {
        Command::new("ssh")
            .arg("-F")
            .arg(&self.ssh_config)
            .args(["-o", "BatchMode=yes", alias])
            .args(args)
            .output()
            .expect("run ssh")
    }
}

/// `comm` of a process.
fn process_name(pid: u32) -> Option<String> {
    std::fs::read_to_string(format!("/proc/{pid}/comm"))
        .ok()
        .map(|s| s.trim().to_string())
}

/// Every process below `pid`, from /proc.
pub fn descendants(pid: u32) -> Vec<u32> {
    let mut parent_of = Vec::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(p) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{p}/stat")) else {
            continue;
        };
        // `pid (comm) state ppid ...`: comm may hold spaces, so read after its `)`.
        let ppid = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().nth(1))
            .and_then(|v| v.parse::<u32>().ok());
        if let Some(ppid) = ppid {
            parent_of.push((p, ppid));
        }
    }
    let mut found = vec![pid];
    let mut i = 0;
    while i < found.len() {
        let parent = found[i];
        found.extend(
            parent_of
                .iter()
                .filter(|(_, pp)| *pp == parent)
                .map(|(p, _)| *p),
        );
        i += 1;
    }
    found.remove(0);
    found
}

impl Drop for Sshd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn sshd_accepts_known_alias_and_refuses_stranger() {
    let sshd = Sshd::start();
    let out = sshd.ssh(ALIASES[1], &["echo", "hello"]);
    assert!(
        out.status.success(),
        "{} / {}",
        String::from_utf8_lossy(&out.stderr),
        sshd.log()
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "hello");
    let out = sshd.ssh(STRANGER, &["true"]);
    assert!(!out.status.success(), "an unknown host key must be refused");
    let out = sshd.ssh(CLOSED, &["true"]);
    assert!(!out.status.success());
}
