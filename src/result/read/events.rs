//! The event layer of the result reader: quick-xml events as owned, position-stamped items,
//! typed attributes, and the error positions (line and byte) they carry.

use std::fmt;
use std::io::{self, BufRead, Read};
use std::sync::Arc;

use quick_xml::errors::Error as XmlError;
use quick_xml::events::Event;
use quick_xml::Reader;

use super::{Location, ReadError, MAX_COUNT};

/// Lines remembered for error positions; past this, errors give the byte only.
const MAX_LINES: usize = 1 << 22;

/// Passes bytes through and remembers where the newlines are, for error positions.
struct LineCounter<R> {
    inner: R,
    consumed: u64,
    newlines: Vec<u64>,
}

impl<R: BufRead> Read for LineCounter<R> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        let n = {
            let b = self.fill_buf()?;
            let n = b.len().min(out.len());
            out[..n].copy_from_slice(&b[..n]);
            n
        };
        self.consume(n);
        Ok(n)
    }
}

impl<R: BufRead> BufRead for LineCounter<R> {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        self.inner.fill_buf()
    }

    fn consume(&mut self, amt: usize) {
        // The bytes being consumed are still in the buffer: fill_buf does no I/O here.
        if let Ok(b) = self.inner.fill_buf() {
            let seen = &b[..amt.min(b.len())];
            for (i, _) in seen.iter().enumerate().filter(|(_, c)| **c == b'\n') {
                if self.newlines.len() < MAX_LINES {
                    self.newlines.push(self.consumed + i as u64);
                }
            }
        }
        self.consumed += amt as u64;
        self.inner.consume(amt);
    }
}

/// An element start with its attributes decoded.
pub(super) struct Elem {
    pub(super) name: String,
    pub(super) attrs: Vec<(String, String)>,
    /// Byte offset of its `<`.
    pub(super) pos: u64,
}

/// The events the grammar below needs; empty elements come as `Start` then `End`.
pub(super) enum Ev {
    Start(Elem),
    End,
    Text(String),
    Eof,
}

/// A streaming parser: the quick-xml reader, its buffer and the source's name.
pub(super) struct Parser<R> {
    xml: Reader<LineCounter<R>>,
    buf: Vec<u8>,
    source: Arc<str>,
}

impl<R: BufRead> Parser<R> {
    pub(super) fn new(r: R, source: &str) -> Self {
        let mut xml = Reader::from_reader(LineCounter {
            inner: r,
            consumed: 0,
            newlines: Vec::new(),
        });
        let config = xml.config_mut();
        config.expand_empty_elements = true;
        config.check_end_names = true;
        config.check_comments = true;
        Parser {
            xml,
            buf: Vec::new(),
            source: Arc::from(source),
        }
    }

    pub(super) fn at(&self, byte: u64) -> Location {
        let lc = self.xml.get_ref();
        let known = lc.newlines.len() < MAX_LINES || lc.newlines.last().is_some_and(|l| *l >= byte);
        let line = known.then(|| lc.newlines.partition_point(|n| *n < byte) as u64 + 1);
        Location {
            file: self.source.clone(),
            line,
            byte,
        }
    }

    fn xml_error(&self, e: XmlError) -> ReadError {
        let at = self.at(self.xml.error_position());
        match e {
            XmlError::Io(e) => ReadError::Io {
                file: self.source.to_string(),
                source: io::Error::new(e.kind(), e.to_string()),
            },
            // Every syntax error but a bad `<!` means the input ended inside some markup.
            XmlError::Syntax(s) if s != quick_xml::errors::SyntaxError::InvalidBangMarkup => {
                ReadError::Truncated {
                    at,
                    detail: s.to_string(),
                }
            }
            e => ReadError::Malformed {
                at,
                message: e.to_string(),
            },
        }
    }

    pub(super) fn invalid(&self, pos: u64, message: impl Into<String>) -> ReadError {
        ReadError::Invalid {
            at: self.at(pos),
            message: message.into(),
        }
    }

    /// Byte offset the reader has reached.
    pub(super) fn position(&self) -> u64 {
        self.xml.buffer_position()
    }

    /// The next event that matters (comments, processing instructions and the XML
    /// declaration are passed over).
    pub(super) fn next(&mut self) -> Result<Ev, ReadError> {
        loop {
            let pos = self.xml.buffer_position();
            let mut buf = std::mem::take(&mut self.buf);
            buf.clear();
            let converted = match self.xml.read_event_into(&mut buf) {
                Ok(ev) => convert(ev, pos),
                Err(e) => return Err(self.xml_error(e)),
            };
            self.buf = buf;
            return match converted {
                Ok(Some(ev)) => Ok(ev),
                Ok(None) => continue,
                Err(None) => Err(ReadError::Doctype { at: self.at(pos) }),
                Err(Some(message)) => Err(ReadError::Malformed {
                    at: self.at(pos),
                    message,
                }),
            };
        }
    }

    pub(super) fn truncated(&self) -> ReadError {
        ReadError::Truncated {
            at: self.at(self.xml.buffer_position()),
            detail: "end of file inside an element".to_string(),
        }
    }

    /// Consumes the rest of the current element, whatever it holds.
    pub(super) fn skip(&mut self) -> Result<(), ReadError> {
        let mut depth = 0usize;
        loop {
            match self.next()? {
                Ev::Start(_) => depth += 1,
                Ev::End if depth == 0 => return Ok(()),
                Ev::End => depth -= 1,
                Ev::Text(_) => {}
                Ev::Eof => return Err(self.truncated()),
            }
        }
    }

    /// The text of the current element, up to its end; child elements are skipped.
    pub(super) fn text(&mut self) -> Result<String, ReadError> {
        let mut text = String::new();
        loop {
            match self.next()? {
                Ev::Start(_) => self.skip()?,
                Ev::End => return Ok(text),
                Ev::Text(t) => text.push_str(&t),
                Ev::Eof => return Err(self.truncated()),
            }
        }
    }

    /// Calls `f` on each child element of the current element, up to its end. `f` must
    /// consume the child up to and including its end. Text between children is ignored.
    pub(super) fn children(
        &mut self,
        mut f: impl FnMut(&mut Self, Elem) -> Result<(), ReadError>,
    ) -> Result<(), ReadError> {
        loop {
            match self.next()? {
                Ev::Start(e) => f(self, e)?,
                Ev::End => return Ok(()),
                Ev::Text(_) => {}
                Ev::Eof => return Err(self.truncated()),
            }
        }
    }

    /// A required attribute.
    pub(super) fn attr<T: FromAttr>(&self, e: &Elem, name: &'static str) -> Result<T, ReadError> {
        self.opt_attr(e, name)?
            .ok_or_else(|| ReadError::MissingAttribute {
                at: self.at(e.pos),
                element: e.name.clone(),
                attribute: name,
            })
    }

    /// A required count: a whole number of at most [`MAX_COUNT`], so that sums over many
    /// nodes and cycles cannot overflow.
    pub(super) fn count(&self, e: &Elem, name: &'static str) -> Result<u64, ReadError> {
        self.attr::<Count>(e, name).map(|c| c.0)
    }

    /// An optional count attribute.
    pub(super) fn opt_count(&self, e: &Elem, name: &'static str) -> Result<Option<u64>, ReadError> {
        self.opt_attr::<Count>(e, name).map(|c| c.map(|c| c.0))
    }

    /// An optional attribute.
    pub(super) fn opt_attr<T: FromAttr>(
        &self,
        e: &Elem,
        name: &'static str,
    ) -> Result<Option<T>, ReadError> {
        let Some((_, v)) = e.attrs.iter().find(|(k, _)| k == name) else {
            return Ok(None);
        };
        T::from_attr(v)
            .map(Some)
            .map_err(|reason| ReadError::BadAttribute {
                at: self.at(e.pos),
                element: e.name.clone(),
                attribute: name,
                value: shorten(v),
                reason,
            })
    }
}

/// The owned [`Ev`] for a quick-xml event; `None` for events passed over. The error is
/// `Some(message)` for malformed content, `None` for a DOCTYPE.
fn convert(ev: Event<'_>, pos: u64) -> Result<Option<Ev>, Option<String>> {
    let m = |e: &dyn fmt::Display| Some(e.to_string());
    match ev {
        Event::Start(e) => {
            let qname = e.name();
            let name = std::str::from_utf8(qname.as_ref()).map_err(|e| m(&e))?;
            let mut attrs = Vec::new();
            for a in e.attributes() {
                let a = a.map_err(|e| m(&e))?;
                let key = std::str::from_utf8(a.key.as_ref()).map_err(|e| m(&e))?;
                let value = a.unescape_value().map_err(|e| m(&e))?;
                xml_chars(&value)?;
                attrs.push((key.to_string(), value.into_owned()));
            }
            Ok(Some(Ev::Start(Elem {
                name: name.to_string(),
                attrs,
                pos,
            })))
        }
        Event::End(_) => Ok(Some(Ev::End)),
        Event::Text(t) => {
            let text = t.unescape().map_err(|e| m(&e))?;
            xml_chars(&text)?;
            Ok(Some(Ev::Text(text.into_owned())))
        }
        Event::CData(c) => {
            let text = c.decode().map_err(|e| m(&e))?;
            xml_chars(&text)?;
            Ok(Some(Ev::Text(text.into_owned())))
        }
        Event::DocType(_) => Err(None),
        Event::Eof => Ok(Some(Ev::Eof)),
        Event::Empty(_) | Event::Comment(_) | Event::Decl(_) | Event::PI(_) => Ok(None),
    }
}

/// Refuses characters XML 1.0 forbids (control characters but tab, LF and CR), raw or written
/// as character references: the writer never emits them, and they would reach terminals.
fn xml_chars(s: &str) -> Result<(), Option<String>> {
    match s.chars().find(|c| !crate::result::write::is_xml_char(*c)) {
        None => Ok(()),
        Some(c) => Err(Some(format!(
            "character U+{:04X} is not allowed in XML 1.0",
            c as u32
        ))),
    }
}

/// At most 80 characters of `s`, for error messages.
pub(super) fn shorten(s: &str) -> String {
    match s.char_indices().nth(80) {
        Some((i, _)) => format!("{}...", &s[..i]),
        None => s.to_string(),
    }
}

/// A type an attribute value parses into; the error says what was expected.
pub(super) trait FromAttr: Sized {
    fn from_attr(s: &str) -> Result<Self, &'static str>;
}

macro_rules! int_attr {
    ($($t:ty => $why:literal),*) => {$(
        impl FromAttr for $t {
            fn from_attr(s: &str) -> Result<Self, &'static str> {
                s.parse().map_err(|_| $why)
            }
        }
    )*};
}
int_attr!(
    u16 => "expected a whole number from 0 to 65535",
    u32 => "expected a whole number from 0 to 4294967295",
    u64 => "expected a whole number from 0 to 18446744073709551615"
);

impl FromAttr for f64 {
    fn from_attr(s: &str) -> Result<Self, &'static str> {
        match s.parse::<f64>() {
            Ok(v) if v.is_finite() => Ok(v),
            _ => Err("expected a finite decimal number"),
        }
    }
}

impl FromAttr for bool {
    fn from_attr(s: &str) -> Result<Self, &'static str> {
        match s {
            "true" => Ok(true),
            "false" => Ok(false),
            _ => Err("expected `true` or `false`"),
        }
    }
}

impl FromAttr for String {
    fn from_attr(s: &str) -> Result<Self, &'static str> {
        Ok(s.to_string())
    }
}

/// A word of a closed vocabulary ([`crate::words`]): the error lists the words allowed.
macro_rules! word_attr {
    ($($t:ty),*) => {$(
        impl FromAttr for $t {
            fn from_attr(s: &str) -> Result<Self, &'static str> {
                s.parse::<$t>().map_err(|_| <$t>::EXPECTED)
            }
        }
    )*};
}
word_attr!(
    crate::result::ErrorKind,
    crate::result::ModelKind,
    crate::result::HostRole,
    crate::result::DataOrder,
    crate::result::OnEnd
);

/// A count, at most [`MAX_COUNT`].
struct Count(u64);

impl FromAttr for Count {
    fn from_attr(s: &str) -> Result<Self, &'static str> {
        match s.parse::<u64>() {
            Ok(v) if v <= MAX_COUNT => Ok(Count(v)),
            _ => Err("expected a whole number from 0 to 9007199254740992"),
        }
    }
}

/// Whitespace (a byte order mark included) between elements.
pub(super) fn is_blank(t: &str) -> bool {
    t.trim_start_matches('\u{feff}').trim().is_empty()
}

/// A space-separated list of whole numbers.
pub(super) struct List<T>(pub(super) Vec<T>);

impl<T: FromAttr> FromAttr for List<T> {
    fn from_attr(s: &str) -> Result<Self, &'static str> {
        s.split_whitespace()
            .map(T::from_attr)
            .collect::<Result<_, _>>()
            .map(List)
            .map_err(|_| "expected whole numbers separated by spaces")
    }
}
