//! The nodes file (pssh format): one node per line, `host[:port] [user]`, `[v6addr]:port`,
//! `user@host`, `#` comments and blank lines. The host `local` runs bench-node as a local
//! process, with no SSH at all. A host listed several times runs several node processes there.

use std::fmt;
use std::path::{Path, PathBuf};

/// Where one node runs.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum NodeHost {
    /// A local process on the master's machine (the host name `local`).
    Local,
    /// A host reached over SSH.
    Ssh(SshTarget),
}

/// An SSH destination as written in the nodes file. Host aliases are resolved by ssh itself
/// (`~/.ssh/config` or `--ssh-config`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SshTarget {
    /// Host name, alias or address (IPv6 without brackets).
    pub host: String,
    /// Port, when given; otherwise ssh's configuration decides.
    pub port: Option<u16>,
    /// User, when given; otherwise ssh's configuration decides.
    pub user: Option<String>,
}

impl fmt::Display for SshTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(user) = &self.user {
            write!(f, "{user}@")?;
        }
        match (self.host.contains(':'), self.port) {
            (true, Some(port)) => write!(f, "[{}]:{port}", self.host),
            (false, Some(port)) => write!(f, "{}:{port}", self.host),
            (_, None) => write!(f, "{}", self.host),
        }
    }
}

impl fmt::Display for NodeHost {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NodeHost::Local => f.write_str("local"),
            NodeHost::Ssh(target) => target.fmt(f),
        }
    }
}

/// One node of the run: a bench-node process on a host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    /// Node number, from 0, in file order.
    pub number: u32,
    /// Where it runs.
    pub host: NodeHost,
    /// Line of the nodes file it comes from (1-based; 0 when built in code).
    pub line: usize,
}

/// An unusable nodes file.
#[derive(Debug, thiserror::Error)]
pub enum NodesError {
    /// The file could not be read.
    #[error("cannot read nodes file {}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A line is not `host[:port] [user]`.
    #[error("{}:{line}: {message} (expected `host[:port] [user]`, `[v6addr]:port` or `local`)", path.display())]
    Syntax {
        path: PathBuf,
        line: usize,
        message: String,
    },
    /// No node at all.
    #[error("{}: no nodes (add a line such as `local` or `user@host`)", path.display())]
    Empty { path: PathBuf },
}

/// Reads and parses a nodes file.
pub fn load(path: &Path) -> Result<Vec<Node>, NodesError> {
    let text = std::fs::read_to_string(path).map_err(|source| NodesError::Read {
        path: path.to_owned(),
        source,
    })?;
    parse(&text, path)
}

/// Parses the text of a nodes file; `path` only names the file in errors.
pub fn parse(text: &str, path: &Path) -> Result<Vec<Node>, NodesError> {
    let mut nodes = Vec::new();
    for (index, raw) in text.lines().enumerate() {
        let line = index + 1;
        let content = raw.split('#').next().unwrap_or("").trim();
        if content.is_empty() {
            continue;
        }
        let host = parse_line(content).map_err(|message| NodesError::Syntax {
            path: path.to_owned(),
            line,
            message,
        })?;
        nodes.push(Node {
            number: nodes.len() as u32,
            host,
            line,
        });
    }
    if nodes.is_empty() {
        return Err(NodesError::Empty {
            path: path.to_owned(),
        });
    }
    Ok(nodes)
}

/// Parses one non-empty line without its comment.
fn parse_line(content: &str) -> Result<NodeHost, String> {
    let fields: Vec<&str> = content.split_whitespace().collect();
    if fields.len() > 2 {
        return Err(format!("too many fields ({}): `{content}`", fields.len()));
    }
    let mut spec = fields[0];
    let mut user = fields.get(1).map(|u| u.to_string());
    if let Some((u, rest)) = spec.rsplit_once('@') {
        if user.is_some() {
            return Err(format!("user given twice in `{content}`"));
        }
        if u.is_empty() {
            return Err("empty user before `@`".into());
        }
        user = Some(u.to_string());
        spec = rest;
    }
    let (host, port) = split_host_port(spec)?;
    if host == "local" {
        if port.is_some() || user.is_some() {
            return Err("`local` takes no port and no user".into());
        }
        return Ok(NodeHost::Local);
    }
    if let Some(user) = &user {
        check_word(user, "user")?;
    }
    check_word(&host, "host")?;
    Ok(NodeHost::Ssh(SshTarget { host, port, user }))
}

/// Splits `host`, `host:port`, `[v6]:port`, `[v6]` or a bare IPv6 address.
fn split_host_port(spec: &str) -> Result<(String, Option<u16>), String> {
    if let Some(rest) = spec.strip_prefix('[') {
        let (host, after) = rest
            .split_once(']')
            .ok_or_else(|| format!("missing `]` in `{spec}`"))?;
        if host.is_empty() {
            return Err("empty address in `[]`".into());
        }
        return match after {
            "" => Ok((host.to_string(), None)),
            _ => match after.strip_prefix(':') {
                Some(port) => Ok((host.to_string(), Some(parse_port(port)?))),
                None => Err(format!("unexpected `{after}` after `]`")),
            },
        };
    }
    match spec.matches(':').count() {
        0 => Ok((spec.to_string(), None)),
        1 => {
            let (host, port) = spec.split_once(':').expect("one colon");
            if host.is_empty() {
                return Err(format!("empty host in `{spec}`"));
            }
            Ok((host.to_string(), Some(parse_port(port)?)))
        }
        // Several colons without brackets: a bare IPv6 address.
        _ => Ok((spec.to_string(), None)),
    }
}

fn parse_port(text: &str) -> Result<u16, String> {
    match text.parse::<u16>() {
        Ok(port) if port > 0 => Ok(port),
        _ => Err(format!("bad port `{text}` (1-65535)")),
    }
}

/// Refuses names ssh would read as options or that cannot name a host or user.
fn check_word(word: &str, what: &str) -> Result<(), String> {
    if word.starts_with('-') {
        return Err(format!("{what} `{word}` starts with `-`"));
    }
    if word.chars().any(|c| c.is_control()) {
        return Err(format!("{what} `{word}` holds a control character"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hosts(text: &str) -> Vec<String> {
        parse(text, Path::new("n"))
            .unwrap()
            .iter()
            .map(|n| format!("{}#{}", n.host, n.line))
            .collect()
    }

    #[test]
    fn parses_pssh_forms() {
        let text = "# cluster\n\nlocal\nnode1\nnode2:2222 bench\nbench@node3\n[::1]:22\n::1\n\
                    node1   # again\n";
        assert_eq!(
            hosts(text),
            [
                "local#3",
                "node1#4",
                "bench@node2:2222#5",
                "bench@node3#6",
                "[::1]:22#7",
                "::1#8",
                "node1#9"
            ]
        );
        let nodes = parse(text, Path::new("n")).unwrap();
        assert_eq!(nodes[6].number, 6);
        assert_eq!(
            nodes[2].host,
            NodeHost::Ssh(SshTarget {
                host: "node2".into(),
                port: Some(2222),
                user: Some("bench".into())
            })
        );
    }

    #[test]
    fn errors_name_file_and_line() {
        let err = parse("local\nhost:99999\n", Path::new("nodes.pssh")).unwrap_err();
        let text = err.to_string();
        assert!(text.starts_with("nodes.pssh:2: bad port `99999`"), "{text}");
        for bad in [
            "a b c",
            "local:22",
            "local root",
            "-oProxyCommand=x",
            "[::1",
            "h:",
        ] {
            assert!(parse(bad, Path::new("n")).is_err(), "{bad}");
        }
        assert!(matches!(
            parse("# nothing\n", Path::new("n")),
            Err(NodesError::Empty { .. })
        ));
    }
}
