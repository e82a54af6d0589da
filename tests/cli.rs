//! The three commands' command lines: the run flags bench-master and bench-node share, shell
//! completions and man pages.

use std::io::Write;
use std::process::{Command, Stdio};

use crate::util::{run, tempdir, write};

/// The three commands, each with flags of its own that its completions must offer.
const COMMANDS: [(&str, &str, &[&str]); 3] = [
    (
        env!("CARGO_BIN_EXE_bench-master"),
        "bench-master",
        &["--node-workdir", "--min-nodes", "--cycles", "--duration"],
    ),
    (
        env!("CARGO_BIN_EXE_bench-node"),
        "bench-node",
        &["--wait-start", "--pid-file", "--cycles", "--idle-timeout"],
    ),
    (
        env!("CARGO_BIN_EXE_bench-report"),
        "bench-report",
        &["--skip-bad", "--trend", "--templates"],
    ),
];

fn stdout(cmd: &mut Command) -> String {
    let o = run(cmd);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8(o.stdout).unwrap()
}

#[test]
fn completions_offer_each_commands_own_flags() {
    for (exe, name, flags) in COMMANDS {
        for shell in ["bash", "zsh", "fish"] {
            let script = stdout(Command::new(exe).args(["--completions", shell]));
            assert!(script.contains(name), "{name} {shell}");
            for flag in flags {
                // fish writes `-l node-workdir`, the others `--node-workdir`.
                let fish = format!("-l {}", flag.trim_start_matches("--"));
                assert!(
                    script.contains(flag) || (shell == "fish" && script.contains(&fish)),
                    "{name} {shell} lacks {flag}"
                );
            }
        }
    }
    let o = run(Command::new(COMMANDS[0].0).args(["--completions", "tcsh"]));
    assert_eq!(o.status.code(), Some(2));
}

#[test]
fn man_pages_are_roff_and_render() {
    let has_man = Command::new("man").arg("--version").output().is_ok();
    for (exe, name, flags) in COMMANDS {
        let page = stdout(Command::new(exe).arg("--man"));
        assert!(
            page.lines().any(|l| l.starts_with(".TH ")),
            "{name}: {page}"
        );
        assert!(page.contains(&format!(".TH {name} 1")), "{name}");
        // Every flag is documented, those of bench-node's subcommands in their own pages.
        for flag in flags {
            assert!(
                page.contains(&flag.replace('-', "\\-")),
                "{name} lacks {flag}"
            );
        }
        if !has_man {
            continue;
        }
        let mut man = Command::new("man")
            .args(["-l", "-"])
            .env("MANPAGER", "cat")
            .env("MANWIDTH", "100")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        man.stdin
            .take()
            .unwrap()
            .write_all(page.as_bytes())
            .unwrap();
        let o = man.wait_with_output().unwrap();
        let text = String::from_utf8_lossy(&o.stdout);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        assert!(
            text.contains("NAME") && text.contains(name),
            "{name}: {text}"
        );
        assert!(text.contains(flags[0]), "{name}: {text}");
        assert!(
            !text.contains(".TH"),
            "{name}: roff left unrendered: {text}"
        );
    }
}

#[test]
fn both_commands_take_the_same_run_flags() {
    let dir = tempdir();
    let nodes = write(dir.path(), "nodes", "local\n");
    let test = dir.path().join("missing.toml");
    let master = |flags: &[&str]| {
        run(Command::new(COMMANDS[0].0)
            .arg(&nodes)
            .arg(&test)
            .args(flags)
            .current_dir(dir.path()))
    };
    let node = |flags: &[&str]| {
        run(Command::new(COMMANDS[1].0)
            .arg("run")
            .arg(&test)
            .args(flags)
            .current_dir(dir.path()))
    };
    // `,` between cycles and `5m` are taken by both: the first flag refused is the bad URL,
    // with one message.
    for flags in [
        &["-c", "5,10", "-D", "5m", "-u", "ftp://x"][..],
        &["-r", "10:20", "-D", "90s", "-u", "ftp://x"],
        &["-c", "5:10", "-D", "2.5", "-u", "ftp://x"],
    ] {
        let (m, n) = (master(flags), node(flags));
        let m_err = String::from_utf8_lossy(&m.stderr);
        let n_err = String::from_utf8_lossy(&n.stderr);
        assert_eq!(m.status.code(), Some(2), "{m_err}");
        assert_eq!(n.status.code(), Some(2), "{n_err}");
        let m_msg = m_err.trim().strip_prefix("bench-master: ").unwrap();
        let n_msg = n_err.trim().strip_prefix("bench-node: ").unwrap();
        assert!(m_msg.starts_with("-u `ftp://x`: "), "{m_msg}");
        assert_eq!(m_msg, n_msg);
    }
    for (flags, start) in [
        (
            &["-c", "5:x"][..],
            "-c `5:x`: cycle 2 `x` is not a positive whole number",
        ),
        (&["-D", "soon"], "-D `soon`: expected seconds"),
        (&["-r", "0"], "-r `0`: cycle 1 has 0 executions per second"),
    ] {
        let (m, n) = (master(flags), node(flags));
        let m_err = String::from_utf8_lossy(&m.stderr);
        let n_err = String::from_utf8_lossy(&n.stderr);
        assert_eq!((m.status.code(), n.status.code()), (Some(2), Some(2)));
        assert_eq!(m_err.lines().count(), 1, "{m_err}");
        assert!(
            m_err.starts_with(&format!("bench-master: {start}")),
            "{m_err}"
        );
        assert!(
            n_err.starts_with(&format!("bench-node: {start}")),
            "{n_err}"
        );
    }
    // The same help text on both.
    let help = |exe: &str, sub: &[&str]| stdout(Command::new(exe).args(sub).arg("--help"));
    let (m, n) = (help(COMMANDS[0].0, &[]), help(COMMANDS[1].0, &["run"]));
    for needle in ["`:` separates cycles; `,` is accepted too", "(`90s`, `5m`)"] {
        assert!(m.contains(needle) && n.contains(needle), "{needle}");
    }
}

/// A reader that went away (`bench-node check t.toml | head`) ends bench-node's output quietly:
/// no panic on the broken pipe, exit 0.
#[test]
fn check_into_a_closed_pipe_does_not_panic() {
    let full = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/full.toml");
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_bench-node"))
        .args(["check", full])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // The reading end closed before bench-node writes: its write meets a broken pipe.
    drop(child.stdout.take());
    let o = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(o.status.success(), "{:?} {stderr}", o.status);
}
