//! Streaming reader of result XML.
//!
//! Reads the format of `docs/RESULT-FORMAT.md` event by event with quick-xml's `Reader` (no
//! DOM). A `<!DOCTYPE` is refused, so no entity can be defined; only the five predefined
//! entities and numeric character references are expanded. Unknown elements inside known ones
//! are skipped, so that a newer writer of the same format version can add elements. No input
//! makes it panic: every problem is a [`ReadError`] naming the file, line and byte.

use std::fmt;
use std::fs::File;
use std::io::{self, BufRead, BufReader, Read};
use std::path::Path;
use std::sync::{Arc, OnceLock};

use base64::Engine as _;
use hdrhistogram::serialization::Deserializer;
use hdrhistogram::Histogram;
use quick_xml::errors::Error as XmlError;
use quick_xml::events::Event;
use quick_xml::Reader;

use super::model::*;
use super::write::ROOT;

/// Where in which file a problem was found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    /// The file (or other source) being read.
    pub file: Arc<str>,
    /// Line, from 1, when known.
    pub line: Option<u64>,
    /// Byte offset from the start of the file.
    pub byte: u64,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(l) => write!(f, "{}: line {l} (byte {})", self.file, self.byte),
            None => write!(f, "{}: byte {}", self.file, self.byte),
        }
    }
}

/// Why a result file could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// The file could not be opened or read.
    #[error("{file}: cannot read: {source}")]
    Io {
        file: String,
        #[source]
        source: io::Error,
    },
    /// Not well-formed XML.
    #[error("{at}: malformed XML: {message}")]
    Malformed { at: Location, message: String },
    /// The file ends before the root element closes.
    #[error(
        "{at}: the file ends before </{ROOT}> ({detail}); the node that wrote it was probably \
         killed, or the copy was cut short"
    )]
    Truncated { at: Location, detail: String },
    /// A format version this build does not read.
    #[error(
        "{at}: format {found} is not supported by this bench-report {}, which reads format {}",
        crate::VERSION,
        FORMAT_VERSION
    )]
    UnsupportedFormat { at: Location, found: String },
    /// A document type declaration, the door to entity definitions.
    #[error("{at}: <!DOCTYPE> is refused: a result file has no document type and no entities")]
    Doctype { at: Location },
    /// A required attribute is absent.
    #[error("{at}: <{element}> lacks the attribute `{attribute}`")]
    MissingAttribute {
        at: Location,
        element: String,
        attribute: &'static str,
    },
    /// An attribute's value is not what the format allows.
    #[error("{at}: <{element}> attribute `{attribute}` = {value:?}: {reason}")]
    BadAttribute {
        at: Location,
        element: String,
        attribute: &'static str,
        value: String,
        reason: &'static str,
    },
    /// A `<histogram>` does not hold a histogram of the format's bounds.
    #[error("{at}: <histogram> of <{element}>: {reason}")]
    BadHistogram {
        at: Location,
        element: String,
        reason: String,
    },
    /// Well-formed XML that is not a valid result (wrong root, missing element, ...).
    #[error("{at}: {message}")]
    Invalid { at: Location, message: String },
}

impl ReadError {
    /// Where the problem is, when it is inside the file.
    pub fn location(&self) -> Option<&Location> {
        match self {
            ReadError::Io { .. } => None,
            ReadError::Malformed { at, .. }
            | ReadError::Truncated { at, .. }
            | ReadError::UnsupportedFormat { at, .. }
            | ReadError::Doctype { at }
            | ReadError::MissingAttribute { at, .. }
            | ReadError::BadAttribute { at, .. }
            | ReadError::BadHistogram { at, .. }
            | ReadError::Invalid { at, .. } => Some(at),
        }
    }
}

/// Reads a result file.
pub fn read_file(path: &Path) -> Result<NodeResult, ReadError> {
    let file = File::open(path).map_err(|source| ReadError::Io {
        file: path.display().to_string(),
        source,
    })?;
    from_reader(BufReader::new(file), &path.display().to_string())
}

/// Reads a result document from `r`; `source` names it in errors (usually the file's path).
pub fn from_reader<R: BufRead>(r: R, source: &str) -> Result<NodeResult, ReadError> {
    let mut p = Parser::new(r, source);
    let result = p.document()?;
    Ok(result)
}

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
struct Elem {
    name: String,
    attrs: Vec<(String, String)>,
    /// Byte offset of its `<`.
    pos: u64,
}

/// The events the grammar below needs; empty elements come as `Start` then `End`.
enum Ev {
    Start(Elem),
    End,
    Text(String),
    Eof,
}

struct Parser<R> {
    xml: Reader<LineCounter<R>>,
    buf: Vec<u8>,
    source: Arc<str>,
}

impl<R: BufRead> Parser<R> {
    fn new(r: R, source: &str) -> Self {
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

    fn at(&self, byte: u64) -> Location {
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

    fn invalid(&self, pos: u64, message: impl Into<String>) -> ReadError {
        ReadError::Invalid {
            at: self.at(pos),
            message: message.into(),
        }
    }

    /// The next event that matters (comments, processing instructions and the XML
    /// declaration are passed over).
    fn next(&mut self) -> Result<Ev, ReadError> {
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

    fn truncated(&self) -> ReadError {
        ReadError::Truncated {
            at: self.at(self.xml.buffer_position()),
            detail: "end of file inside an element".to_string(),
        }
    }

    /// Consumes the rest of the current element, whatever it holds.
    fn skip(&mut self) -> Result<(), ReadError> {
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
    fn text(&mut self) -> Result<String, ReadError> {
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
    fn children(
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
    fn attr<T: FromAttr>(&self, e: &Elem, name: &'static str) -> Result<T, ReadError> {
        self.opt_attr(e, name)?
            .ok_or_else(|| ReadError::MissingAttribute {
                at: self.at(e.pos),
                element: e.name.clone(),
                attribute: name,
            })
    }

    /// A required count: a whole number of at most [`MAX_COUNT`], so that sums over many
    /// nodes and cycles cannot overflow.
    fn count(&self, e: &Elem, name: &'static str) -> Result<u64, ReadError> {
        self.attr::<Count>(e, name).map(|c| c.0)
    }

    /// An optional attribute.
    fn opt_attr<T: FromAttr>(&self, e: &Elem, name: &'static str) -> Result<Option<T>, ReadError> {
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

    /// The whole document.
    fn document(&mut self) -> Result<NodeResult, ReadError> {
        let root = loop {
            match self.next()? {
                Ev::Start(e) if e.name == ROOT => break e,
                Ev::Start(e) => {
                    return Err(self.invalid(
                        e.pos,
                        format!(
                            "not a Bench Master result: the root element is <{}>, not <{ROOT}>",
                            shorten(&e.name)
                        ),
                    ))
                }
                Ev::Text(t) if is_blank(&t) => {}
                Ev::Text(_) => {
                    return Err(
                        self.invalid(0, "not a Bench Master result: text before the root element")
                    )
                }
                Ev::End => return Err(self.invalid(0, "not a Bench Master result")),
                Ev::Eof if self.xml.buffer_position() == 0 => {
                    return Err(self.invalid(0, "the file is empty"))
                }
                Ev::Eof => return Err(self.truncated()),
            }
        };
        let result = self.root(root)?;
        // Only whitespace and comments may follow the root.
        loop {
            let pos = self.xml.buffer_position();
            match self.next()? {
                Ev::Eof => return Ok(result),
                Ev::Text(t) if is_blank(&t) => {}
                _ => return Err(self.invalid(pos, format!("content after </{ROOT}>"))),
            }
        }
    }

    fn root(&mut self, root: Elem) -> Result<NodeResult, ReadError> {
        // The version first: a newer format may differ in every other respect.
        let format: String = self.attr(&root, "format")?;
        if format != FORMAT_VERSION.to_string() {
            return Err(ReadError::UnsupportedFormat {
                at: self.at(root.pos),
                found: shorten(&format),
            });
        }
        let mut r = NodeResult {
            format_version: FORMAT_VERSION,
            tool_version: self.attr(&root, "tool-version")?,
            started_unix_ms: self.attr(&root, "started-unix-ms")?,
            finished_unix_ms: 0,
            interrupted: false,
            node: NodeInfo::default(),
            test: TestInfo::default(),
            config: BenchConfig::default(),
            steps: Vec::new(),
            cycles: Vec::new(),
            series: Vec::new(),
            errors: Vec::new(),
            resources: Vec::new(),
        };
        let mut seen: Vec<&'static str> = Vec::new();
        let mut cycle_pos = Vec::new();
        self.children(|p, e| {
            let once = [
                "node", "test", "config", "steps", "cycles", "series", "errors", "end",
            ];
            if let Some(name) = once.iter().find(|n| **n == e.name) {
                if seen.contains(name) {
                    return Err(p.invalid(e.pos, format!("<{name}> appears twice")));
                }
                seen.push(name);
            }
            match e.name.as_str() {
                "node" => {
                    r.node = NodeInfo {
                        number: p.attr(&e, "number")?,
                        count: p.attr(&e, "count")?,
                        host: p.attr(&e, "host")?,
                        run: p.attr(&e, "run")?,
                        start_delay_ms: p.attr(&e, "start-delay-ms")?,
                    };
                    p.skip()
                }
                "test" => {
                    r.test.name = p.attr(&e, "name")?;
                    r.test.url = p.attr(&e, "url")?;
                    r.test.description = p.text()?;
                    Ok(())
                }
                "config" => {
                    r.config = p.config(&e)?;
                    p.skip()
                }
                "steps" => p.children(|p, e| {
                    if e.name != "step" {
                        return p.skip();
                    }
                    p.expect_index(&e, r.steps.len())?;
                    r.steps.push(StepInfo {
                        name: p.attr(&e, "name")?,
                        method: p.attr(&e, "method")?,
                        target: p.attr(&e, "target")?,
                    });
                    p.skip()
                }),
                "cycles" => p.children(|p, e| {
                    if e.name != "cycle" {
                        return p.skip();
                    }
                    cycle_pos.push(e.pos);
                    r.cycles.push(p.cycle(e)?);
                    Ok(())
                }),
                "series" => p.children(|p, e| {
                    if e.name == "s" {
                        r.series.push(p.second(&e)?);
                    }
                    p.skip()
                }),
                "errors" => p.children(|p, e| {
                    if e.name != "group" {
                        return p.skip();
                    }
                    r.errors.push(p.error_group(e)?);
                    Ok(())
                }),
                "resources" => {
                    let h = p.resources(e)?;
                    r.resources.push(h);
                    Ok(())
                }
                "end" => {
                    r.interrupted = p.attr(&e, "interrupted")?;
                    r.finished_unix_ms = p.attr(&e, "finished-unix-ms")?;
                    p.skip()
                }
                _ => p.skip(),
            }
        })?;
        for required in ["node", "test", "config", "steps", "cycles", "end"] {
            if !seen.contains(&required) {
                return Err(self.invalid(root.pos, format!("<{ROOT}> lacks <{required}>")));
            }
        }
        for (c, pos) in r.cycles.iter().zip(cycle_pos) {
            if c.steps.len() != r.steps.len() {
                return Err(self.invalid(
                    pos,
                    format!(
                        "<cycle index=\"{}\"> has figures for {} steps, but the test has {}",
                        c.index,
                        c.steps.len(),
                        r.steps.len()
                    ),
                ));
            }
        }
        Ok(r)
    }

    /// Checks that the `index` attribute of a list item is its position.
    fn expect_index(&self, e: &Elem, expected: usize) -> Result<(), ReadError> {
        let index: u64 = self.attr(e, "index")?;
        if index != expected as u64 {
            return Err(self.invalid(
                e.pos,
                format!(
                    "<{} index=\"{index}\"> is out of order: expected index {expected}",
                    e.name
                ),
            ));
        }
        Ok(())
    }

    fn config(&self, e: &Elem) -> Result<BenchConfig, ReadError> {
        Ok(BenchConfig {
            cycles: self.attr::<List<u32>>(e, "cycles")?.0,
            duration_s: self.attr(e, "duration-s")?,
            startup_delay_s: self.attr(e, "startup-delay-s")?,
            sleep_time_min_s: self.attr(e, "sleep-time-min-s")?,
            sleep_time_max_s: self.attr(e, "sleep-time-max-s")?,
            sleep_time_s: self.attr(e, "sleep-time-s")?,
            cycle_time_s: self.attr(e, "cycle-time-s")?,
            apdex_t_s: self.attr(e, "apdex-t-s")?,
            ok_codes: self.attr::<List<u16>>(e, "ok-codes")?.0,
            timeout_s: self.attr(e, "timeout-s")?,
            model: self.attr(e, "model")?,
        })
    }

    fn cycle(&mut self, e: Elem) -> Result<CycleResult, ReadError> {
        let mut c = CycleResult {
            index: self.attr(&e, "index")?,
            users: self.attr(&e, "users")?,
            window_start_ms: self.attr(&e, "window-start-ms")?,
            window_s: self.attr(&e, "window-s")?,
            dropped: self.count(&e, "dropped")?,
            ..CycleResult::default()
        };
        let mut seen = Vec::new();
        self.children(|p, e| match e.name.as_str() {
            "tests" | "pages" | "requests" => {
                if seen.contains(&e.name) {
                    return Err(p.invalid(e.pos, format!("<{}> appears twice", e.name)));
                }
                seen.push(e.name.clone());
                let counts = p.counts(e)?;
                match seen.last().map(String::as_str) {
                    Some("tests") => c.tests = counts,
                    Some("pages") => c.pages = counts,
                    _ => c.requests = counts,
                }
                Ok(())
            }
            "step" => {
                p.expect_index(&e, c.steps.len())?;
                c.steps.push(p.counts(e)?);
                Ok(())
            }
            "outside" => {
                c.outside = Outside {
                    tests: p.count(&e, "tests")?,
                    pages: p.count(&e, "pages")?,
                    requests: p.count(&e, "requests")?,
                };
                p.skip()
            }
            _ => p.skip(),
        })?;
        for required in ["tests", "pages", "requests"] {
            if !seen.iter().any(|s| s == required) {
                return Err(self.invalid(e.pos, format!("<cycle> lacks <{required}>")));
            }
        }
        Ok(c)
    }

    fn counts(&mut self, e: Elem) -> Result<Counts, ReadError> {
        let mut c = Counts {
            success: self.count(&e, "success")?,
            failure: self.count(&e, "failure")?,
            error: self.count(&e, "error")?,
            bytes: self.count(&e, "bytes")?,
            latency: new_histogram(),
        };
        let mut found = false;
        self.children(|p, h| {
            if h.name != "histogram" {
                return p.skip();
            }
            if found {
                return Err(p.invalid(h.pos, format!("<{}> has two histograms", e.name)));
            }
            found = true;
            let text = p.text()?;
            c.latency = decode_histogram(&text).map_err(|reason| ReadError::BadHistogram {
                at: p.at(h.pos),
                element: e.name.clone(),
                reason,
            })?;
            Ok(())
        })?;
        Ok(c)
    }

    fn second(&self, e: &Elem) -> Result<SecondSample, ReadError> {
        Ok(SecondSample {
            second: self.attr(e, "t")?,
            cycle: self.opt_attr(e, "cycle")?,
            users: self.attr(e, "users")?,
            tests_ok: self.count(e, "tests")?,
            pages_ok: self.count(e, "pages")?,
            requests: self.count(e, "requests")?,
            failures: self.count(e, "failures")?,
            errors: self.count(e, "errors")?,
        })
    }

    fn error_group(&mut self, e: Elem) -> Result<ErrorGroup, ReadError> {
        let mut g = ErrorGroup {
            step: self.attr(&e, "step")?,
            kind: self.attr(&e, "kind")?,
            detail: self.attr(&e, "detail")?,
            count: self.count(&e, "count")?,
            samples: Vec::new(),
        };
        self.children(|p, s| {
            if s.name != "sample" {
                return p.skip();
            }
            let url = p.attr(&s, "url")?;
            let status = p.opt_attr(&s, "status")?;
            let at_ms = p.attr(&s, "at-ms")?;
            let body = p.text()?;
            g.samples.push(ErrorSample {
                url,
                status,
                at_ms,
                body,
            });
            Ok(())
        })?;
        Ok(g)
    }

    fn resources(&mut self, e: Elem) -> Result<HostResources, ReadError> {
        let mut h = HostResources {
            host: self.attr(&e, "host")?,
            role: self.attr(&e, "role")?,
            samples: Vec::new(),
        };
        self.children(|p, r| {
            if r.name == "r" {
                h.samples.push(ResourceSample {
                    at_ms: p.attr(&r, "at-ms")?,
                    cpu_pct: p.attr(&r, "cpu-pct")?,
                    load1: p.attr(&r, "load1")?,
                    mem_used_kib: p.attr(&r, "mem-used-kib")?,
                    mem_total_kib: p.attr(&r, "mem-total-kib")?,
                    net_rx_bps: p.attr(&r, "net-rx-bps")?,
                    net_tx_bps: p.attr(&r, "net-tx-bps")?,
                });
            }
            p.skip()
        })?;
        Ok(h)
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
                attrs.push((key.to_string(), value.into_owned()));
            }
            Ok(Some(Ev::Start(Elem {
                name: name.to_string(),
                attrs,
                pos,
            })))
        }
        Event::End(_) => Ok(Some(Ev::End)),
        Event::Text(t) => Ok(Some(Ev::Text(
            t.unescape().map_err(|e| m(&e))?.into_owned(),
        ))),
        Event::CData(c) => Ok(Some(Ev::Text(c.decode().map_err(|e| m(&e))?.into_owned()))),
        Event::DocType(_) => Err(None),
        Event::Eof => Ok(Some(Ev::Eof)),
        Event::Empty(_) | Event::Comment(_) | Event::Decl(_) | Event::PI(_) => Ok(None),
    }
}

/// At most 80 characters of `s`, for error messages.
fn shorten(s: &str) -> String {
    match s.char_indices().nth(80) {
        Some((i, _)) => format!("{}...", &s[..i]),
        None => s.to_string(),
    }
}

/// A type an attribute value parses into; the error says what was expected.
trait FromAttr: Sized {
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

/// Largest count a reader accepts (2^53, some 9 × 10^15): more than any run makes, small
/// enough that adding up millions of them cannot overflow.
pub const MAX_COUNT: u64 = 1 << 53;

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
fn is_blank(t: &str) -> bool {
    t.trim_start_matches('\u{feff}').trim().is_empty()
}

/// A space-separated list of whole numbers.
struct List<T>(Vec<T>);

impl<T: FromAttr> FromAttr for List<T> {
    fn from_attr(s: &str) -> Result<Self, &'static str> {
        s.split_whitespace()
            .map(T::from_attr)
            .collect::<Result<_, _>>()
            .map(List)
            .map_err(|_| "expected whole numbers separated by spaces")
    }
}

/// Cookie of a V2 + deflate histogram, and of the V2 histogram inside it.
const V2_DEFLATE_COOKIE: u32 = 0x1c84_9314;
const V2_COOKIE: u32 = 0x1c84_9313;
/// Bytes of a V2 header, cookie included.
const V2_HEADER: usize = 40;

/// (lowest, highest, significant digits, longest V2 encoding) of the format's histograms.
fn format_bounds() -> (u64, u64, u8, usize) {
    static BOUNDS: OnceLock<(u64, u64, u8, usize)> = OnceLock::new();
    *BOUNDS.get_or_init(|| {
        let h = new_histogram();
        // Each count takes at most 9 bytes as a varint.
        (
            h.low(),
            h.high(),
            h.sigfig(),
            V2_HEADER + 9 * h.distinct_values(),
        )
    })
}

fn be_u32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

fn be_u64(b: &[u8], at: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    u64::from_be_bytes(a)
}

/// Decodes the text of a `<histogram>`: base64 of an HdrHistogram in V2 + deflate format with
/// the format's bounds; empty text is an empty histogram. The header and the counts are checked
/// before hdrhistogram sees them, so that no input can make it allocate without bound or panic.
pub fn decode_histogram(text: &str) -> Result<Histogram<u64>, String> {
    let b64: String = text.chars().filter(|c| !c.is_ascii_whitespace()).collect();
    if b64.is_empty() {
        return Ok(new_histogram());
    }
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(b64.as_bytes())
        .map_err(|e| format!("bad base64: {e}"))?;
    if bytes.len() < 8 || be_u32(&bytes, 0) != V2_DEFLATE_COOKIE {
        return Err("not an HdrHistogram in V2 + deflate format (wrong cookie)".to_string());
    }
    let compressed_len = be_u32(&bytes, 4) as usize;
    if compressed_len != bytes.len() - 8 {
        return Err(format!(
            "the header announces {compressed_len} compressed bytes but {} follow",
            bytes.len() - 8
        ));
    }
    let (low, high, sigfig, max_len) = format_bounds();
    let mut raw = Vec::new();
    flate2::read::ZlibDecoder::new(&bytes[8..])
        .take(max_len as u64 + 1)
        .read_to_end(&mut raw)
        .map_err(|e| format!("cannot inflate: {e}"))?;
    if raw.len() > max_len {
        return Err(format!("inflates to more than {max_len} bytes"));
    }
    if raw.len() < V2_HEADER || be_u32(&raw, 0) != V2_COOKIE {
        return Err("the inflated data is not a V2 histogram".to_string());
    }
    let payload_len = be_u32(&raw, 4) as usize;
    if payload_len != raw.len() - V2_HEADER {
        return Err("the V2 payload length does not match the data".to_string());
    }
    if be_u32(&raw, 8) != 0 || be_u64(&raw, 32) != 1.0f64.to_bits() {
        return Err("uses HdrHistogram features this format does not".to_string());
    }
    let (h_sigfig, h_low, h_high) = (be_u32(&raw, 12), be_u64(&raw, 16), be_u64(&raw, 24));
    if (h_sigfig, h_low, h_high) != (u32::from(sigfig), low, high) {
        return Err(format!(
            "bounds {h_low}..{h_high} µs with {h_sigfig} digits differ from the format's \
             {low}..{high} µs with {sigfig} digits"
        ));
    }
    check_counts(&raw[V2_HEADER..])?;
    Deserializer::new()
        .deserialize::<u64, _>(&mut &raw[..])
        .map_err(|e| format!("cannot decode: {e}"))
}

/// Checks the V2 payload (zig-zag LEB128 varints, negative for runs of zeros) for the one
/// value hdrhistogram cannot negate, for a truncated last varint, and for a total over
/// [`MAX_COUNT`].
fn check_counts(mut payload: &[u8]) -> Result<(), String> {
    let mut total: u64 = 0;
    while !payload.is_empty() {
        let mut value: u64 = 0;
        let mut used = 0;
        for (i, b) in payload.iter().enumerate().take(9) {
            used = i + 1;
            if i == 8 {
                value |= u64::from(*b) << 56;
                break;
            }
            value |= u64::from(b & 0x7f) << (7 * i);
            if b & 0x80 == 0 {
                break;
            }
        }
        let last = payload[used - 1];
        if used < 9 && last & 0x80 != 0 {
            return Err("the counts end inside a number".to_string());
        }
        let decoded = ((value >> 1) as i64) ^ -((value & 1) as i64);
        if decoded == i64::MIN {
            return Err("a count is out of range".to_string());
        }
        if decoded > 0 {
            total = total.saturating_add(decoded as u64);
            if total > MAX_COUNT {
                return Err(format!("holds more than {MAX_COUNT} values"));
            }
        }
        payload = &payload[used..];
    }
    Ok(())
}

#[cfg(test)]
#[path = "xml_tests.rs"]
mod tests;
