//! The mux's line protocol: `bench-node mux -- DIR...` runs a host's nodes as its children and
//! carries their stdin, stdout, stderr and exit codes over its own stdio, so that one SSH channel
//! serves all the nodes of a host. Every remote command starts the user's login shell and its rc
//! files (0.01-0.5 s of CPU on a node, measured 0.35 s here): a host carrying 32 virtual nodes
//! then costs one command, not 32. The node's half is [`crate::node::mux`], the master's
//! [`crate::master::mux`].
//!
//! Master → mux, a line each: `<i> <word>` (a line for node i's stdin), `<i> close` (close
//! node i's stdin), `ping` (the master is alive, every [`HEARTBEAT`]). The end of the input, or
//! no line for [`WATCHDOG`] (the master was killed, or its host cut off), closes every node's
//! stdin: a node that no longer hears its master stops by itself, unless it was detached.
//!
//! Mux → master: `<i> o <line>` and `<i> e <line>` (a line of node i's stdout or stderr), then
//! `<i> x <code>` once node i ended (`-` when a signal killed it). The mux ends when every node
//! has ended.

use std::time::Duration;

/// How often the master says it is alive.
pub const HEARTBEAT: Duration = Duration::from_secs(1);
/// Silence after which the mux takes the master for gone.
pub const WATCHDOG: Duration = Duration::from_secs(10);

/// The arguments of `bench-node` for the node in `dir`: run its test with its configuration,
/// JSON progress on stdout, waiting for the master's `start`.
pub fn node_args(dir: &str) -> Vec<String> {
    let f = |name: &str| format!("{dir}/{name}");
    vec![
        "run".into(),
        f("test.toml"),
        "--node".into(),
        f("node.toml"),
        "-o".into(),
        f("result.xml"),
        "--progress".into(),
        "json".into(),
        "--wait-start".into(),
        "--pid-file".into(),
        f("pid"),
    ]
}

/// `<i> <kind> <line>\n`.
pub fn frame(i: usize, kind: u8, line: &[u8]) -> Vec<u8> {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    let mut f = format!("{i} {} ", kind as char).into_bytes();
    f.extend_from_slice(line);
    f.push(b'\n');
    f
}

/// `<i> x <code>\n`: node i ended (`-`: killed by a signal).
pub fn exit_frame(i: usize, code: Option<i32>) -> Vec<u8> {
    let code = code.map_or("-".to_string(), |c| c.to_string());
    frame(i, b'x', code.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_keep_their_bytes() {
        assert_eq!(frame(3, b'o', b"a \xff b\n"), b"3 o a \xff b\n");
        assert_eq!(exit_frame(0, None), b"0 x -\n");
        assert_eq!(exit_frame(12, Some(130)), b"12 x 130\n");
    }
}
