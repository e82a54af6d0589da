//! The mux's line protocol: `bench-node mux -- DIR...` runs a host's nodes as its children and
//! carries their stdin, stdout, stderr and exit codes over its own stdio, so that one SSH channel
//! serves all the nodes of a host. Every remote command starts the user's login shell and its rc
//! files (0.01-0.5 s of CPU on a node, measured 0.35 s here): a host carrying 32 virtual nodes
//! then costs one command, not 32. The node's half is [`crate::node::mux`], the master's
//! [`crate::master::mux`].
//!
//! Master → mux: first the nodes' files, each a line `put <i> <len> <path>` (`*` for `<i>`:
//! the same file for every node, written once and hard-linked) followed by its `<len>` bytes,
//! then `go`, after which the mux starts the nodes. So the one command that starts the mux
//! also deploys the test: a host costs one remote command (one login shell) for the whole run
//! once bench-node is there. Then a line each: `<i> <word>` (a line for node i's stdin),
//! `<i> close` (close node i's stdin), `ping` (the master is alive, every [`HEARTBEAT`]). The
//! end of the input, or no line for [`WATCHDOG`] (the master was killed, or its host cut off),
//! closes every node's stdin: a node that no longer hears its master stops by itself, unless it
//! was detached.
//!
//! Mux → master: `<i> o <line>` and `<i> e <line>` (a line of node i's stdout or stderr); once
//! node i ended, its result file, when there is one of at most [`MAX_RESULT`] bytes, as
//! `<i> r <base64>` lines of [`RESULT_CHUNK`] bytes each and `<i> f <size>` (complete, that
//! many bytes; one node's result at a time), so that collecting costs no command of its own;
//! then `<i> x <code>` (`-` when a signal killed it). The mux ends when every node has ended.

use std::time::Duration;

use super::control::Command;
pub use super::lines::MAX_LINE;

/// How often the master says it is alive.
pub const HEARTBEAT: Duration = Duration::from_secs(1);
/// Silence after which the mux takes the master for gone.
pub const WATCHDOG: Duration = Duration::from_secs(10);

/// The arguments of `bench-node` for the node in `dir`: run its test with its configuration,
/// JSON progress on stdout, waiting for the master's `start`. No pid file: a mux's nodes share
/// its process, whose pid each one's `ready` line gives; a node run as a process of its own
/// adds one ([`crate::master::deploy::DeployedNode::command`]).
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
        "--progress-log".into(),
        f(crate::protocol::progress::LOG_FILE),
    ]
}

/// Room for a frame's head (`<i> o `) on top of the line it carries: the mux's lines are at
/// most this much longer than the nodes' ([`MAX_LINE`]).
pub const FRAME_HEAD: usize = 32;
/// Longest line of the mux to the master (its newline not counted). The mux cuts its nodes'
/// lines at [`MAX_LINE`] + 1 bytes, so a longer one means a broken or hostile mux.
pub const MAX_FRAME: usize = MAX_LINE + FRAME_HEAD;

/// Largest result file a mux carries back; the master fetches a larger one itself.
pub const MAX_RESULT: usize = 64 << 20;
/// Bytes of a result carried by one `r` frame (its line holds 4/3 of that in base64).
pub const RESULT_CHUNK: usize = 48 * 1024;

const CLOSE: &str = "close";
const PING: &str = "ping";
const PUT: &str = "put";
/// The line after the files: start the nodes.
pub const GO: &str = "go";

/// A file for the nodes' directories, sent before [`GO`]: its line, then `len` bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Put {
    /// The node whose directory gets it; `None`: every node's.
    pub node: Option<usize>,
    /// Its size in bytes.
    pub len: u64,
    /// Where, relative to the node's directory (no `..`, no root, no newline).
    pub path: String,
}

impl Put {
    /// The line announcing the file, its newline included.
    pub fn line(&self) -> String {
        let node = self.node.map_or("*".to_string(), |i| i.to_string());
        format!("{PUT} {node} {} {}\n", self.len, self.path)
    }

    /// The file a line announces; `None` for anything else, and for a path that leaves the
    /// node's directory.
    pub fn parse(line: &[u8]) -> Option<Put> {
        let line = std::str::from_utf8(line).ok()?;
        let line = line.strip_suffix('\n').unwrap_or(line);
        let mut parts = line.splitn(4, ' ');
        if parts.next()? != PUT {
            return None;
        }
        let node = match parts.next()? {
            "*" => None,
            i => Some(i.parse().ok()?),
        };
        let len = parts.next()?.parse().ok()?;
        let path = parts.next()?.to_string();
        let inside = std::path::Path::new(&path)
            .components()
            .all(|c| matches!(c, std::path::Component::Normal(_)));
        (inside && !path.is_empty()).then_some(Put { node, len, path })
    }
}

/// A line of the master to the mux.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ToMux {
    /// `<i> <word>`: a command for node i's stdin.
    Say(usize, Command),
    /// `<i> close`: close node i's stdin.
    Close(usize),
    /// `ping`: the master is alive.
    Ping,
}

impl ToMux {
    /// The line, its newline included.
    pub fn line(&self) -> String {
        match self {
            ToMux::Say(i, command) => format!("{i} {command}\n"),
            ToMux::Close(i) => format!("{i} {CLOSE}\n"),
            ToMux::Ping => format!("{PING}\n"),
        }
    }

    /// What a line of the master says; `None` for anything else.
    pub fn parse(line: &[u8]) -> Option<ToMux> {
        let line = std::str::from_utf8(line).ok()?.trim();
        if line == PING {
            return Some(ToMux::Ping);
        }
        let (node, word) = line.split_once(' ')?;
        let node = node.parse().ok()?;
        if word == CLOSE {
            return Some(ToMux::Close(node));
        }
        Command::parse(word).map(|command| ToMux::Say(node, command))
    }
}

/// A frame of the mux to the master: one line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Frame<'a> {
    /// `<i> o <line>`: a line of node i's stdout (without its newline; bytes as they came).
    Stdout(usize, &'a [u8]),
    /// `<i> e <line>`: a line of node i's stderr.
    Stderr(usize, &'a [u8]),
    /// `<i> r <base64>`: a piece of node i's result file.
    Result(usize, &'a [u8]),
    /// `<i> f <size>`: node i's result file is complete, of this many bytes.
    ResultEnd(usize, u64),
    /// `<i> x <code>`: node i ended with this exit code (`-`: killed by a signal).
    Exit(usize, Option<i32>),
}

impl<'a> Frame<'a> {
    /// The frame as a line: `<i> <kind> <payload>\n` (a line's own newline is not doubled).
    pub fn encode(&self) -> Vec<u8> {
        let (i, kind, payload): (usize, u8, std::borrow::Cow<'_, [u8]>) = match *self {
            Frame::Stdout(i, line) => (i, b'o', line.into()),
            Frame::Stderr(i, line) => (i, b'e', line.into()),
            Frame::Result(i, piece) => (i, b'r', piece.into()),
            Frame::ResultEnd(i, size) => (i, b'f', size.to_string().into_bytes().into()),
            Frame::Exit(i, code) => {
                let code = code.map_or("-".to_string(), |c| c.to_string());
                (i, b'x', code.into_bytes().into())
            }
        };
        let payload = payload.strip_suffix(b"\n").unwrap_or(&payload);
        let mut f = format!("{i} {} ", kind as char).into_bytes();
        f.extend_from_slice(payload);
        f.push(b'\n');
        f
    }

    /// The frame a line holds (its newline, if any, not part of the payload); `None` for
    /// anything else.
    pub fn decode(line: &'a [u8]) -> Option<Frame<'a>> {
        let line = line.strip_suffix(b"\n").unwrap_or(line);
        let mut parts = line.splitn(3, |b| *b == b' ');
        let i = std::str::from_utf8(parts.next()?).ok()?.parse().ok()?;
        let kind = parts.next()?;
        let payload = parts.next()?;
        match kind {
            b"o" => Some(Frame::Stdout(i, payload)),
            b"e" => Some(Frame::Stderr(i, payload)),
            b"r" => Some(Frame::Result(i, payload)),
            b"f" => Some(Frame::ResultEnd(
                i,
                std::str::from_utf8(payload).ok()?.parse().ok()?,
            )),
            b"x" if payload == b"-" => Some(Frame::Exit(i, None)),
            b"x" => {
                let code = std::str::from_utf8(payload).ok()?.parse().ok()?;
                Some(Frame::Exit(i, Some(code)))
            }
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::control::tests::every_command;

    #[test]
    fn frames_keep_their_bytes() {
        assert_eq!(Frame::Stdout(3, b"a \xff b\n").encode(), b"3 o a \xff b\n");
        assert_eq!(Frame::Exit(0, None).encode(), b"0 x -\n");
        assert_eq!(Frame::Exit(12, Some(130)).encode(), b"12 x 130\n");
    }

    #[test]
    fn every_frame_and_every_line_to_the_mux_round_trips() {
        let frames = [
            Frame::Stdout(3, b"a \xff b"),
            Frame::Stdout(0, b""),
            Frame::Stderr(7, b"warn ing \x00"),
            Frame::Exit(1, None),
            Frame::Exit(2, Some(-1)),
            Frame::Exit(12, Some(130)),
            Frame::Result(4, b"PHJlc3VsdC8+"),
            Frame::ResultEnd(4, 9),
        ];
        for f in frames {
            // A variant added and not listed here fails to compile.
            match f {
                Frame::Stdout(..)
                | Frame::Stderr(..)
                | Frame::Result(..)
                | Frame::ResultEnd(..)
                | Frame::Exit(..) => {}
            }
            assert_eq!(Frame::decode(&f.encode()), Some(f), "{f:?}");
        }
        for bad in [
            &b"ping\n"[..],
            b"x o a",
            b"1 q a",
            b"1 x",
            b"1 x nine",
            b"1 o",
            b"1 f many",
        ] {
            assert_eq!(Frame::decode(bad), None, "{bad:?}");
        }
        let mut lines = vec![ToMux::Ping, ToMux::Close(4)];
        lines.extend(every_command().into_iter().map(|c| ToMux::Say(2, c)));
        for l in lines {
            match l {
                ToMux::Say(..) | ToMux::Close(_) | ToMux::Ping => {}
            }
            assert_eq!(ToMux::parse(l.line().as_bytes()), Some(l), "{l:?}");
        }
        for bad in [&b"pong\n"[..], b"1 jump", b"x close", b"1", b"\xff close"] {
            assert_eq!(ToMux::parse(bad), None, "{bad:?}");
        }
        for put in [
            Put {
                node: None,
                len: 12,
                path: "test.toml".into(),
            },
            Put {
                node: Some(3),
                len: 0,
                path: "data/a b.csv".into(),
            },
        ] {
            assert_eq!(
                Put::parse(put.line().as_bytes()),
                Some(put.clone()),
                "{put:?}"
            );
        }
        for bad in [
            &b"put * 1 ../x\n"[..],
            b"put * 1 /etc/passwd",
            b"put * 1 a/../../b",
            b"put x 1 a",
            b"put * -1 a",
            b"put * 1 ",
            b"go",
        ] {
            assert_eq!(Put::parse(bad), None, "{bad:?}");
        }
    }
}
