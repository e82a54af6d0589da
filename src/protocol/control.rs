//! The master's words to a running node, one a line on the node's stdin (see
//! [`crate::node::control`]): `start` (start now), `start AT` (start at Unix time AT, in ms, so
//! that nodes reached one after the other still start together), `stop`, `detach`. Spelled and
//! parsed here only.

use std::fmt;

const START: &str = "start";
const STOP: &str = "stop";
const DETACH: &str = "detach";

/// One word of the master to a node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    /// Start the run: at once (`None`), or at this Unix time in ms.
    Start(Option<u64>),
    /// Stop the run, write the result and end.
    Stop,
    /// Keep running when the master goes away (the end of stdin no longer stops the node).
    Detach,
}

impl Command {
    /// The command as a line, its newline included.
    pub fn line(&self) -> String {
        format!("{self}\n")
    }

    /// The command a line says (surrounding whitespace ignored); `None` for any other line. A
    /// `start` whose time cannot be read starts at once, as a plain `start`.
    pub fn parse(line: &str) -> Option<Command> {
        let mut words = line.split_whitespace();
        let command = match (words.next()?, words.next()) {
            (START, None) => Command::Start(None),
            (START, Some(at)) => Command::Start(at.parse().ok()),
            (STOP, None) => Command::Stop,
            (DETACH, None) => Command::Detach,
            _ => return None,
        };
        words.next().is_none().then_some(command)
    }
}

impl fmt::Display for Command {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Command::Start(None) => f.write_str(START),
            Command::Start(Some(at_ms)) => write!(f, "{START} {at_ms}"),
            Command::Stop => f.write_str(STOP),
            Command::Detach => f.write_str(DETACH),
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// One of each variant; the match fails to compile when a variant is added and not listed.
    pub(crate) fn every_command() -> Vec<Command> {
        let all = vec![
            Command::Start(None),
            Command::Start(Some(1_767_225_600_123)),
            Command::Stop,
            Command::Detach,
        ];
        for c in &all {
            match c {
                Command::Start(_) | Command::Stop | Command::Detach => {}
            }
        }
        all
    }

    #[test]
    fn every_command_round_trips() {
        for c in every_command() {
            assert_eq!(Command::parse(&c.line()), Some(c), "{c}");
        }
        assert_eq!(
            Command::parse("  start 42 \r\n"),
            Some(Command::Start(Some(42)))
        );
        assert_eq!(Command::parse("start soon"), Some(Command::Start(None)));
        for other in ["", "ping", "stop now", "starts", "start 1 2", "close"] {
            assert_eq!(Command::parse(other), None, "{other:?}");
        }
    }
}
