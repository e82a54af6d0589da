//! Fuzz target: the nodes file parser (`nodes::parse`) on arbitrary text.
//!
//! The parser must never panic. A node whose host and user are made of the characters host
//! names, addresses and user names hold must print back (`Display`) as a line that parses to
//! the same node. The parser also accepts stranger names (`[[a:b] x`, `[a:1]`), whose printed
//! form is ambiguous: known, reported in docs/RELIABILITY.md, and harmless because ssh is given
//! the host, port and user apart, never that text.
#![no_main]

use std::path::Path;

use benchmaster::nodes::{self, NodeHost};
use libfuzzer_sys::fuzz_target;

/// Characters of a host name, an IPv4 or IPv6 address (with a `%zone`), or a user name.
fn plain(word: &str) -> bool {
    !word.is_empty()
        && word
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | ':' | '%'))
}

fn round_trips(host: &NodeHost) -> bool {
    match host {
        NodeHost::Local => true,
        NodeHost::Ssh(t) => {
            let ambiguous = t.port.is_none() && t.host.matches(':').count() == 1;
            plain(&t.host) && t.user.as_deref().is_none_or(plain) && !ambiguous
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let Ok(parsed) = nodes::parse(&text, Path::new("fuzz.pssh")) else {
        return;
    };
    for node in parsed.iter().filter(|n| round_trips(&n.host)) {
        let line = node.host.to_string();
        let again = nodes::parse(&line, Path::new("again.pssh"))
            .unwrap_or_else(|e| panic!("{:?} printed as `{line}`, which fails: {e}", node.host));
        assert_eq!(again.len(), 1, "`{line}`");
        assert_eq!(again[0].host, node.host, "`{line}` reads back differently");
    }
});
