//! Errors of the test definition stage, each naming the file, line and key at fault.

use std::ops::Range;
use std::path::{Path, PathBuf};

/// Why a test definition, a node configuration or a command-line override was rejected.
///
/// Display is one line a user can act on, e.g.
/// `examples/x.toml:12:1: unknown key `duraton` in [bench] (expected one of ...)`.
#[derive(Debug, thiserror::Error)]
pub enum TestDefError {
    /// The file could not be read (missing, unreadable, not UTF-8).
    #[error("{}: cannot read: {error}", path.display())]
    Read {
        /// File that was asked for.
        path: PathBuf,
        /// What the system said.
        error: std::io::Error,
    },
    /// Something wrong at a place in a file: TOML syntax, an unknown or missing key, a value of
    /// the wrong type, or an invalid value (bad URL, cycle of 0, bad regex...).
    #[error("{}:{line}:{column}: {message}", path.display())]
    At {
        /// File at fault.
        path: PathBuf,
        /// Line, from 1.
        line: usize,
        /// Column, from 1, in characters.
        column: usize,
        /// Where in the document, e.g. `[bench] duration` or `[[step]] #2 "login" path`.
        key: String,
        /// The whole explanation, key included.
        message: String,
    },
    /// A command-line override (`-c`, `-D`, `-u`) is invalid.
    #[error("{option}: {message}")]
    Override {
        /// The option, e.g. `-u`.
        option: String,
        /// What is wrong with its value.
        message: String,
    },
    /// A cycles list such as `-c 5:10:20` is invalid.
    #[error("invalid cycles `{text}`: {message}")]
    Cycles {
        /// The text as given.
        text: String,
        /// What is wrong with it.
        message: String,
    },
}

/// A loaded file's text, to turn byte spans into `file:line:column` errors.
pub(crate) struct Source<'a> {
    pub(crate) path: &'a Path,
    pub(crate) text: &'a str,
}

impl Source<'_> {
    /// Line and column (both from 1) of byte offset `at`.
    pub(crate) fn line_col(&self, at: usize) -> (usize, usize) {
        let at = at.min(self.text.len());
        let at = (0..=at)
            .rev()
            .find(|i| self.text.is_char_boundary(*i))
            .unwrap_or(0);
        let before = &self.text[..at];
        let line = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        let column = before[line_start..].chars().count() + 1;
        (line, column)
    }

    /// An error at `span` about `key`; `message` is prefixed with the key.
    pub(crate) fn error(
        &self,
        span: Range<usize>,
        key: &str,
        message: impl AsRef<str>,
    ) -> TestDefError {
        let message = if key.is_empty() {
            message.as_ref().to_string()
        } else {
            format!("{key}: {}", message.as_ref())
        };
        self.raw_error(span, key, message)
    }

    /// An error at `span` whose `message` is already complete.
    pub(crate) fn raw_error(&self, span: Range<usize>, key: &str, message: String) -> TestDefError {
        let (line, column) = self.line_col(span.start);
        TestDefError::At {
            path: self.path.to_path_buf(),
            line,
            column,
            key: key.to_string(),
            message,
        }
    }
}

/// Reads a file as UTF-8 text.
pub(crate) fn read_text(path: &Path) -> Result<String, TestDefError> {
    std::fs::read_to_string(path).map_err(|error| TestDefError::Read {
        path: path.to_path_buf(),
        error,
    })
}

/// Turns a serde/TOML error into one line naming the place and the key.
///
/// `section` is the human name of the table the error happened in (`[bench]`, `[[step]] #2`),
/// `field` the key inside it when serde knows it.
pub(crate) fn from_toml(
    src: &Source<'_>,
    err: &toml::de::Error,
    section: &str,
    field: Option<&str>,
) -> TestDefError {
    let span = err.span().unwrap_or(0..0);
    let raw = err
        .message()
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join(": ");
    let in_section = if section.is_empty() {
        "at top level".to_string()
    } else {
        format!("in {section}")
    };
    let (key, message) = if let Some(rest) = raw.strip_prefix("unknown field ") {
        let (name, expected) = match rest.split_once(", expected ") {
            Some((name, expected)) => (name, format!(" (expected {expected})")),
            None => (rest, String::new()),
        };
        let name = name.trim();
        let key = format!("{section} {}", name.trim_matches('`'))
            .trim()
            .to_string();
        (key, format!("unknown key {name} {in_section}{expected}"))
    } else if let Some(rest) = raw.strip_prefix("missing field ") {
        let name = rest.trim().trim_matches('`');
        let key = format!("{section} {name}").trim().to_string();
        (key, format!("missing key `{name}` {in_section}"))
    } else {
        let key = match field {
            Some(f) => format!("{section} {f}").trim().to_string(),
            None => section.to_string(),
        };
        let message = if key.is_empty() {
            raw
        } else {
            format!("{key}: {raw}")
        };
        (key, message)
    };
    src.raw_error(span, &key, message)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_and_column_count_from_one() {
        let src = Source {
            path: Path::new("t.toml"),
            text: "a = 1\nbé = 2\n",
        };
        assert_eq!(src.line_col(0), (1, 1));
        assert_eq!(src.line_col(6), (2, 1));
        // Column counts characters, not bytes.
        assert_eq!(src.line_col(10), (2, 4));
        assert_eq!(src.line_col(1000), (3, 1));
    }
}
