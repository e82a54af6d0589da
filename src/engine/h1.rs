//! A lean HTTP/1.1 client codec on `httparse` (issue 16): request head serialisation, response
//! head parsing with limits, and body framing per RFC 9112 §6.3. Sans I/O: the caller reads into
//! a buffer of its own (shared per worker thread) and feeds the bytes; what must survive an await
//! (a partial head) stays with the caller, a body's bytes are handed out as they are decoded, and
//! the chunked decoder's state is a few words.

use bytes::Bytes;
use hyper::header::{HeaderName, HeaderValue, CONNECTION, CONTENT_LENGTH, TRANSFER_ENCODING};
use hyper::{HeaderMap, Method, StatusCode, Version};

use super::client::RequestError;
use crate::result::ErrorKind;

/// Longest response head accepted (status line, headers and the blank line), bytes.
pub(super) const MAX_HEAD: usize = 64 << 10;
/// Most response headers accepted.
pub(super) const MAX_HEADERS: usize = 100;
/// Longest trailer section of a chunked body accepted, bytes.
const MAX_TRAILERS: usize = 64 << 10;

fn protocol(message: String) -> RequestError {
    RequestError {
        kind: ErrorKind::Protocol,
        message,
    }
}

/// Appends the request line for the origin-form `target` (`path` and `query`) to `out`.
pub(super) fn request_line(out: &mut Vec<u8>, method: &Method, path: &str, query: Option<&str>) {
    out.extend_from_slice(method.as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(path.as_bytes());
    if let Some(q) = query {
        out.push(b'?');
        out.extend_from_slice(q.as_bytes());
    }
    out.extend_from_slice(b" HTTP/1.1\r\n");
}

/// Appends one header line to `out`.
#[inline]
pub(super) fn header(out: &mut Vec<u8>, name: &HeaderName, value: &HeaderValue) {
    out.extend_from_slice(name.as_str().as_bytes());
    out.extend_from_slice(b": ");
    out.extend_from_slice(value.as_bytes());
    out.extend_from_slice(b"\r\n");
}

/// Ends the request head in `out`: a Content-Length when the request has a body or its method
/// expects one (as hyper wrote it) and `has_length` says the headers set none, then the blank
/// line.
pub(super) fn end_head(out: &mut Vec<u8>, method: &Method, body_len: usize, has_length: bool) {
    let bodiless = matches!(
        *method,
        Method::GET
            | Method::HEAD
            | Method::DELETE
            | Method::OPTIONS
            | Method::TRACE
            | Method::CONNECT
    );
    if !has_length && (body_len > 0 || !bodiless) {
        use std::io::Write as _;
        let _ = write!(out, "content-length: {body_len}\r\n");
    }
    out.extend_from_slice(b"\r\n");
}

/// A parsed response head.
#[derive(Debug)]
pub(super) struct Head {
    pub status: StatusCode,
    pub version: Version,
    pub headers: HeaderMap,
    /// How its body is delimited (`Framing::None` for a 1xx interim answer).
    pub framing: Framing,
    /// The connection can take another request after this answer's body.
    pub keep_alive: bool,
}

impl Head {
    /// An interim answer (100 Continue, 103 Early Hints): skipped, the final one follows.
    pub fn is_interim(&self) -> bool {
        self.status.is_informational()
    }
}

/// How a response body is delimited (RFC 9112 §6.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Framing {
    /// No body: HEAD, 1xx, 204, 304.
    None,
    /// Content-Length bytes.
    Length(u64),
    /// Transfer-Encoding: chunked.
    Chunked,
    /// Read until the server closes (the connection is then not reusable).
    Close,
}

/// Header slots tried first: most answers have fewer headers, and every slot is zeroed
/// before each parse (httparse offers no uninitialised slots for responses).
const FEW_HEADERS: usize = 24;

/// Parses a response head at the start of `buf`: `None` while incomplete, else the head and the
/// bytes it took. `head` tells the request was HEAD (its answer has no body). An error for a
/// head over [`MAX_HEAD`] bytes or [`MAX_HEADERS`] headers, malformed, or with contradicting
/// framing (Content-Length and Transfer-Encoding, differing Content-Lengths).
pub(super) fn parse_head(buf: &[u8], head: bool) -> Result<Option<(Head, usize)>, RequestError> {
    let mut few = [httparse::EMPTY_HEADER; FEW_HEADERS];
    match parse_in(buf, head, &mut few) {
        Err(httparse::Error::TooManyHeaders) => {}
        done => return done.unwrap_or_else(|e| Err(malformed(e))),
    }
    let mut slots = [httparse::EMPTY_HEADER; MAX_HEADERS];
    match parse_in(buf, head, &mut slots) {
        Err(httparse::Error::TooManyHeaders) => Err(protocol(format!(
            "response head has more than {MAX_HEADERS} headers"
        ))),
        done => done.unwrap_or_else(|e| Err(malformed(e))),
    }
}

fn malformed(e: httparse::Error) -> RequestError {
    protocol(format!("malformed response head: {e}"))
}

/// [`parse_head`] with these header slots; httparse's own error apart (too many headers for
/// the slots is not yet an error of the answer's).
#[allow(clippy::type_complexity)]
fn parse_in<'b>(
    buf: &'b [u8],
    head: bool,
    slots: &mut [httparse::Header<'b>],
) -> Result<Result<Option<(Head, usize)>, RequestError>, httparse::Error> {
    let mut response = httparse::Response::new(slots);
    let too_long = || {
        Err(protocol(format!(
            "response head longer than {} KiB",
            MAX_HEAD >> 10
        )))
    };
    let parsed = match response.parse(buf)? {
        httparse::Status::Complete(n) if n > MAX_HEAD => return Ok(too_long()),
        httparse::Status::Complete(n) => n,
        httparse::Status::Partial if buf.len() > MAX_HEAD => return Ok(too_long()),
        httparse::Status::Partial => return Ok(Ok(None)),
    };
    Ok(head_of(&response, buf, parsed, head).map(|h| Some((h, parsed))))
}

/// The head of a parsed `response` whose `parsed` bytes start `buf`.
fn head_of(
    response: &httparse::Response<'_, '_>,
    buf: &[u8],
    parsed: usize,
    head: bool,
) -> Result<Head, RequestError> {
    let code = response.code.unwrap_or_default();
    let status =
        StatusCode::from_u16(code).map_err(|_| protocol(format!("bad response status {code}")))?;
    if status == StatusCode::SWITCHING_PROTOCOLS {
        return Err(protocol(
            "unexpected 101 Switching Protocols (no upgrade was asked for)".to_string(),
        ));
    }
    let version = if response.version == Some(0) {
        Version::HTTP_10
    } else {
        Version::HTTP_11
    };
    // The values share one copy of the head (one allocation, not one per header); the
    // framing headers are read on the way, not looked up in the map afterwards.
    let shared = Bytes::copy_from_slice(&buf[..parsed]);
    let mut headers = HeaderMap::with_capacity(response.headers.len());
    let mut framers = Framers::default();
    for h in response.headers.iter() {
        let name = HeaderName::from_bytes(h.name.as_bytes())
            .map_err(|_| protocol(format!("bad response header name {:?}", h.name)))?;
        let at = h.value.as_ptr() as usize - buf.as_ptr() as usize;
        let value = HeaderValue::from_maybe_shared(shared.slice(at..at + h.value.len()))
            .map_err(|_| protocol(format!("bad value of response header {}", h.name)))?;
        framers.note(&name, h.value);
        headers.append(name, value);
    }
    let framing = framers.framing(status, head)?;
    let keep_alive = framing != Framing::Close
        && if version == Version::HTTP_10 {
            framers.keep_alive
        } else {
            !framers.close
        };
    Ok(Head {
        status,
        version,
        headers,
        framing,
        keep_alive,
    })
}

/// What the headers that frame a body and end a connection said.
#[derive(Default)]
struct Framers {
    /// A Transfer-Encoding came, and whether its last coding is chunked.
    transfer_encoding: Option<bool>,
    /// The Content-Length, or why it is bad.
    length: Option<Result<u64, String>>,
    /// `Connection: close` and `Connection: keep-alive` tokens.
    close: bool,
    keep_alive: bool,
}

impl Framers {
    fn note(&mut self, name: &HeaderName, value: &[u8]) {
        let tokens = || {
            value
                .split(|&b| b == b',')
                .map(<[u8]>::trim_ascii)
                .filter(|t| !t.is_empty())
        };
        if name == CONNECTION {
            for t in tokens() {
                self.close |= t.eq_ignore_ascii_case(b"close");
                self.keep_alive |= t.eq_ignore_ascii_case(b"keep-alive");
            }
        } else if name == TRANSFER_ENCODING {
            let last = tokens()
                .next_back()
                .map(|t| t.eq_ignore_ascii_case(b"chunked"));
            self.transfer_encoding = last.or(self.transfer_encoding).or(Some(false));
        } else if name == CONTENT_LENGTH && !matches!(self.length, Some(Err(_))) {
            for part in value.split(|&b| b == b',').map(<[u8]>::trim_ascii) {
                let n = std::str::from_utf8(part)
                    .ok()
                    .filter(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
                    .and_then(|s| s.parse::<u64>().ok())
                    .ok_or_else(|| {
                        format!("bad Content-Length {:?}", String::from_utf8_lossy(part))
                    });
                self.length = Some(match (self.length.take(), n) {
                    (_, Err(e)) => Err(e),
                    (Some(Ok(m)), Ok(n)) if m != n => Err(format!(
                        "response has differing Content-Length values {m} and {n}"
                    )),
                    (_, Ok(n)) => Ok(n),
                });
                if matches!(self.length, Some(Err(_))) {
                    break;
                }
            }
        }
    }

    /// The body's framing (RFC 9112 §6.3).
    fn framing(&self, status: StatusCode, head: bool) -> Result<Framing, RequestError> {
        if head
            || status.is_informational()
            || status == StatusCode::NO_CONTENT
            || status == StatusCode::NOT_MODIFIED
        {
            return Ok(Framing::None);
        }
        if let Some(chunked) = self.transfer_encoding {
            if self.length.is_some() {
                return Err(protocol(
                    "response has both Content-Length and Transfer-Encoding".to_string(),
                ));
            }
            return Ok(if chunked {
                Framing::Chunked
            } else {
                Framing::Close
            });
        }
        match &self.length {
            None => Ok(Framing::Close),
            Some(Ok(n)) => Ok(Framing::Length(*n)),
            Some(Err(e)) => Err(protocol(e.clone())),
        }
    }
}

/// A body being read: what remains of it. A few words, kept across awaits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Body {
    /// Bytes still due of a Content-Length body.
    Length(u64),
    /// Until the server closes.
    Close,
    /// A chunked body.
    Chunked(Chunk),
    /// Complete.
    Done,
}

/// Where a chunked body's decoder stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Chunk {
    /// In a chunk-size line's hex digits: the size so far and whether a digit came.
    Size(u64, bool),
    /// After the size (extensions, spaces): until the line feed.
    SizeEnd(u64),
    /// In a chunk's data: bytes still due.
    Data(u64),
    /// After a chunk's data: its CR LF.
    DataEnd(bool),
    /// At a trailer line's start (after the last chunk): trailer bytes read so far.
    TrailerStart(usize),
    /// Within a trailer line (read and discarded).
    Trailer(usize),
    /// The blank line's CR came: its LF is due.
    TrailerEnd,
}

impl Body {
    /// The reading of a body framed so.
    pub fn new(framing: Framing) -> Body {
        match framing {
            Framing::None | Framing::Length(0) => Body::Done,
            Framing::Length(n) => Body::Length(n),
            Framing::Chunked => Body::Chunked(Chunk::Size(0, false)),
            Framing::Close => Body::Close,
        }
    }

    pub fn is_done(&self) -> bool {
        *self == Body::Done
    }

    /// Decodes from `input`, handing each piece of body data to `data`; returns the bytes
    /// consumed (fewer than `input` only when the body completed: the rest is beyond it).
    pub fn decode(
        &mut self,
        input: &[u8],
        mut data: impl FnMut(&[u8]) -> Result<(), RequestError>,
    ) -> Result<usize, RequestError> {
        let mut at = 0;
        while at < input.len() {
            match self {
                Body::Done => break,
                Body::Close => {
                    data(&input[at..])?;
                    at = input.len();
                }
                Body::Length(due) => {
                    let n = (*due).min((input.len() - at) as u64) as usize;
                    data(&input[at..at + n])?;
                    at += n;
                    *due -= n as u64;
                    if *due == 0 {
                        *self = Body::Done;
                    }
                }
                Body::Chunked(Chunk::Data(due)) => {
                    let n = (*due).min((input.len() - at) as u64) as usize;
                    data(&input[at..at + n])?;
                    at += n;
                    *due -= n as u64;
                    if *due == 0 {
                        *self = Body::Chunked(Chunk::DataEnd(false));
                    }
                }
                Body::Chunked(chunk) => {
                    let byte = input[at];
                    at += 1;
                    match chunked_byte(*chunk, byte)? {
                        Some(next) => *chunk = next,
                        None => *self = Body::Done,
                    }
                }
            }
        }
        Ok(at)
    }

    /// The server closed the connection: fine for a body read to close (then complete), else an
    /// error (the answer stopped short).
    pub fn end(&mut self) -> Result<(), RequestError> {
        match self {
            Body::Done => Ok(()),
            Body::Close => {
                *self = Body::Done;
                Ok(())
            }
            _ => Err(RequestError {
                kind: ErrorKind::Reset,
                message: "connection closed before the response body ended".to_string(),
            }),
        }
    }
}

/// Where one answer's parts go as they are read: its final head, then its body's data.
pub(super) trait Sink {
    /// The final head (interim answers are skipped), before any of its body.
    fn head(&mut self, head: &Head);
    /// The next piece of decoded body data (chunk framing removed; content coding kept).
    fn data(&mut self, data: &[u8]) -> Result<(), RequestError>;
}

/// One answer being read from the bytes of successive reads. Only a head cut across reads is
/// copied (into `partial`); everything else is handled in the caller's read buffer.
pub(super) struct Answer {
    /// The request was HEAD: the answer has no body.
    head_request: bool,
    /// The start of a head whose end has not come yet.
    partial: Vec<u8>,
    head: Option<Head>,
    body: Body,
    /// Some byte of the answer came (a reused connection that ends before any is retried).
    started: bool,
    /// Bytes came after the answer's end: the connection is out of step.
    beyond: bool,
}

impl Answer {
    pub fn new(head_request: bool) -> Answer {
        Answer {
            head_request,
            partial: Vec::new(),
            head: None,
            body: Body::Done,
            started: false,
            beyond: false,
        }
    }

    /// Feeds one read's bytes; true when the answer is complete (bytes after its end make
    /// [`Answer::reusable`] false).
    pub fn feed(&mut self, input: &[u8], sink: &mut impl Sink) -> Result<bool, RequestError> {
        self.started |= !input.is_empty();
        if self.partial.is_empty() {
            return self.feed_whole(input, sink);
        }
        let mut joined = std::mem::take(&mut self.partial);
        joined.extend_from_slice(input);
        self.feed_whole(&joined, sink)
    }

    fn feed_whole(&mut self, buf: &[u8], sink: &mut impl Sink) -> Result<bool, RequestError> {
        let mut at = 0;
        loop {
            if self.head.is_none() {
                let Some((head, n)) = parse_head(&buf[at..], self.head_request)? else {
                    self.partial.extend_from_slice(&buf[at..]);
                    return Ok(false);
                };
                at += n;
                if head.is_interim() {
                    continue;
                }
                sink.head(&head);
                self.body = Body::new(head.framing);
                self.head = Some(head);
            }
            if !self.body.is_done() {
                at += self.body.decode(&buf[at..], |d| sink.data(d))?;
            }
            if self.body.is_done() {
                self.beyond = at < buf.len();
                return Ok(true);
            }
            return Ok(false);
        }
    }

    /// The server closed the connection: complete for a body read to close, else an error.
    pub fn end(&mut self) -> Result<(), RequestError> {
        if self.head.is_none() {
            return Err(RequestError {
                kind: ErrorKind::Reset,
                message: "connection closed before a complete response head".to_string(),
            });
        }
        self.body.end()
    }

    /// Some byte of the answer came.
    pub fn started(&self) -> bool {
        self.started
    }

    /// The connection can take the next request: the head allowed it and nothing came beyond
    /// the answer.
    pub fn reusable(&self) -> bool {
        !self.beyond && self.head.as_ref().is_some_and(|h| h.keep_alive)
    }

    /// The final head, once read.
    pub fn into_head(self) -> Option<Head> {
        self.head
    }
}

/// The chunked decoder's step over one framing byte (not chunk data); `None` once the body
/// ended.
fn chunked_byte(chunk: Chunk, byte: u8) -> Result<Option<Chunk>, RequestError> {
    let bad = |what: &str| {
        Err(protocol(format!(
            "bad chunked body: {what} (byte {:?})",
            byte as char
        )))
    };
    Ok(Some(match chunk {
        Chunk::Size(size, digits) => match (byte as char).to_digit(16) {
            Some(d) => {
                if size > u64::MAX >> 4 {
                    return Err(protocol(
                        "bad chunked body: chunk size overflows".to_string(),
                    ));
                }
                Chunk::Size(size << 4 | d as u64, true)
            }
            None if !digits => return bad("chunk size expected"),
            None => match byte {
                b'\n' => after_size(size),
                b';' | b' ' | b'\t' | b'\r' => Chunk::SizeEnd(size),
                _ => return bad("unexpected character after the chunk size"),
            },
        },
        Chunk::SizeEnd(size) => match byte {
            b'\n' => after_size(size),
            _ => Chunk::SizeEnd(size),
        },
        Chunk::Data(_) => unreachable!("chunk data is not decoded byte by byte"),
        Chunk::DataEnd(false) => match byte {
            b'\r' => Chunk::DataEnd(true),
            b'\n' => Chunk::Size(0, false),
            _ => return bad("CR LF expected after chunk data"),
        },
        Chunk::DataEnd(true) => match byte {
            b'\n' => Chunk::Size(0, false),
            _ => return bad("LF expected after chunk data"),
        },
        Chunk::TrailerStart(n) => match byte {
            b'\r' => Chunk::TrailerEnd,
            b'\n' => return Ok(None),
            _ => Chunk::Trailer(n + 1),
        },
        Chunk::Trailer(n) => {
            if n > MAX_TRAILERS {
                return Err(protocol(format!(
                    "chunked body's trailers longer than {} KiB",
                    MAX_TRAILERS >> 10
                )));
            }
            match byte {
                b'\n' => Chunk::TrailerStart(n + 1),
                _ => Chunk::Trailer(n + 1),
            }
        }
        Chunk::TrailerEnd => match byte {
            b'\n' => return Ok(None),
            _ => return bad("LF expected after the trailers"),
        },
    }))
}

fn after_size(size: u64) -> Chunk {
    if size == 0 {
        Chunk::TrailerStart(0)
    } else {
        Chunk::Data(size)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What one answer read from `chunks` gives: the final head, its body, and the bytes left
    /// after it (reported as a flag by [`Answer`]: here `b"NEXT"` or nothing).
    fn read(chunks: &[&[u8]], head: bool) -> Result<(Head, Vec<u8>, Vec<u8>), RequestError> {
        struct Collect(Vec<u8>, u32);
        impl Sink for Collect {
            fn head(&mut self, _: &Head) {
                self.1 += 1;
            }
            fn data(&mut self, data: &[u8]) -> Result<(), RequestError> {
                self.0.extend_from_slice(data);
                Ok(())
            }
        }
        let mut answer = Answer::new(head);
        let mut sink = Collect(Vec::new(), 0);
        let mut complete = false;
        for chunk in chunks {
            if !complete {
                complete = answer.feed(chunk, &mut sink)?;
            } else if !chunk.is_empty() {
                answer.beyond = true;
            }
        }
        if !complete {
            answer.end()?;
        }
        assert!(sink.1 <= 1, "one final head");
        let rest = if answer.beyond {
            b"NEXT".to_vec()
        } else {
            Vec::new()
        };
        let h = answer.into_head().unwrap();
        Ok((h, sink.0, rest))
    }

    /// `wire` read whole, split at every position into two reads, and byte by byte: all give
    /// the same.
    fn every_split(wire: &[u8], head: bool) -> Result<(Head, Vec<u8>, Vec<u8>), RequestError> {
        let whole = read(&[wire], head);
        for i in 0..=wire.len() {
            let split = read(&[&wire[..i], &wire[i..]], head);
            assert_eq!(
                format!("{:?}", split.as_ref().map(|(h, b, r)| (h.status, b, r))),
                format!("{:?}", whole.as_ref().map(|(h, b, r)| (h.status, b, r))),
                "split at {i}"
            );
        }
        let bytes: Vec<&[u8]> = wire.chunks(1).collect();
        let one = read(&bytes, head);
        assert_eq!(
            format!("{:?}", one.as_ref().map(|(h, b, r)| (h.status, b, r))),
            format!("{:?}", whole.as_ref().map(|(h, b, r)| (h.status, b, r))),
            "byte by byte"
        );
        whole
    }

    #[test]
    fn content_length() {
        let (h, body, rest) = every_split(
            b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhelloNEXT",
            false,
        )
        .unwrap();
        assert_eq!(h.status, 200);
        assert_eq!(h.framing, Framing::Length(5));
        assert!(h.keep_alive);
        assert_eq!(body, b"hello");
        assert_eq!(rest, b"NEXT");
    }

    #[test]
    fn chunked_with_extensions_and_trailers() {
        let wire = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n\
            5;name=value\r\nhello\r\n1A\r\nabcdefghijklmnopqrstuvwxyz\r\n0\r\nX-Trailer: 1\r\nY: 2\r\n\r\nNEXT";
        let (h, body, rest) = every_split(wire, false).unwrap();
        assert_eq!(h.framing, Framing::Chunked);
        assert!(h.keep_alive);
        assert_eq!(body, b"helloabcdefghijklmnopqrstuvwxyz");
        assert_eq!(rest, b"NEXT");
    }

    #[test]
    fn chunked_without_trailers() {
        let wire = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n";
        let (_, body, rest) = every_split(wire, false).unwrap();
        assert_eq!(body, b"abc");
        assert!(rest.is_empty());
    }

    #[test]
    fn bad_chunk_size() {
        let wire = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n";
        let e = every_split(wire, false).unwrap_err();
        assert_eq!(e.kind, ErrorKind::Protocol);
        assert!(e.message.contains("chunk size"), "{}", e.message);
    }

    #[test]
    fn chunk_size_overflow() {
        let wire =
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1ffffffffffffffff\r\nabc\r\n";
        let e = every_split(wire, false).unwrap_err();
        assert_eq!(e.kind, ErrorKind::Protocol);
        assert!(e.message.contains("overflows"), "{}", e.message);
    }

    #[test]
    fn read_to_close() {
        let (h, body, _) = every_split(b"HTTP/1.1 200 OK\r\n\r\nall of it", false).unwrap();
        assert_eq!(h.framing, Framing::Close);
        assert!(!h.keep_alive);
        assert_eq!(body, b"all of it");
    }

    #[test]
    fn no_body_for_head_204_304() {
        let (h, body, rest) =
            every_split(b"HTTP/1.1 200 OK\r\nContent-Length: 50\r\n\r\nNEXT", true).unwrap();
        assert_eq!(h.framing, Framing::None);
        assert!(h.keep_alive);
        assert!(body.is_empty());
        assert_eq!(rest, b"NEXT");
        for status in ["204 No Content", "304 Not Modified"] {
            let wire = format!("HTTP/1.1 {status}\r\nContent-Length: 50\r\n\r\nNEXT");
            let (h, body, rest) = every_split(wire.as_bytes(), false).unwrap();
            assert_eq!(h.framing, Framing::None);
            assert!(body.is_empty());
            assert_eq!(rest, b"NEXT");
        }
    }

    #[test]
    fn interim_answers_skipped() {
        let wire =
            b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a.css>\r\n\r\n\
            HTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\nok";
        let (h, body, _) = every_split(wire, false).unwrap();
        assert_eq!(h.status, 201);
        assert_eq!(body, b"ok");
        assert!(!h.headers.contains_key("link"));
    }

    #[test]
    fn connection_close_and_http10() {
        let (h, ..) = every_split(
            b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n",
            false,
        )
        .unwrap();
        assert!(!h.keep_alive);
        let (h, ..) = every_split(b"HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n", false).unwrap();
        assert!(!h.keep_alive);
        assert_eq!(h.version, Version::HTTP_10);
        let (h, ..) = every_split(
            b"HTTP/1.0 200 OK\r\nConnection: Keep-Alive\r\nContent-Length: 0\r\n\r\n",
            false,
        )
        .unwrap();
        assert!(h.keep_alive);
    }

    #[test]
    fn contradicting_framing() {
        let e = every_split(
            b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n",
            false,
        )
        .unwrap_err();
        assert_eq!(e.kind, ErrorKind::Protocol);
        assert!(e
            .message
            .contains("both Content-Length and Transfer-Encoding"));
        let e = every_split(
            b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd",
            false,
        )
        .unwrap_err();
        assert!(
            e.message.contains("differing Content-Length"),
            "{}",
            e.message
        );
        // The same value twice is one length.
        let (_, body, _) = every_split(
            b"HTTP/1.1 200 OK\r\nContent-Length: 3, 3\r\nContent-Length: 3\r\n\r\nabc",
            false,
        )
        .unwrap();
        assert_eq!(body, b"abc");
        let e = read(&[b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n"], false).unwrap_err();
        assert!(e.message.contains("bad Content-Length"), "{}", e.message);
    }

    #[test]
    fn truncated_body() {
        let e =
            every_split(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc", false).unwrap_err();
        assert_eq!(e.kind, ErrorKind::Reset);
        let e = every_split(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab",
            false,
        )
        .unwrap_err();
        assert_eq!(e.kind, ErrorKind::Reset);
    }

    #[test]
    fn head_limits() {
        let mut long = b"HTTP/1.1 200 OK\r\nX-Long: ".to_vec();
        long.resize(MAX_HEAD + 10, b'a');
        let e = read(&[&long], false).unwrap_err();
        assert_eq!(e.kind, ErrorKind::Protocol);
        assert!(e.message.contains("longer than 64 KiB"), "{}", e.message);
        // More than the first try's slots, fewer than the limit: parsed on the second try.
        let mut some = b"HTTP/1.1 200 OK\r\n".to_vec();
        for i in 0..FEW_HEADERS * 2 {
            some.extend_from_slice(format!("X-{i}: v\r\n").as_bytes());
        }
        some.extend_from_slice(b"Content-Length: 2\r\n\r\nok");
        let (h, body, _) = every_split(&some, false).unwrap();
        assert_eq!(h.headers.len(), FEW_HEADERS * 2 + 1);
        assert_eq!(body, b"ok");
        let mut many = b"HTTP/1.1 200 OK\r\n".to_vec();
        for i in 0..=MAX_HEADERS {
            many.extend_from_slice(format!("X-{i}: v\r\n").as_bytes());
        }
        many.extend_from_slice(b"\r\n");
        let e = read(&[&many], false).unwrap_err();
        assert_eq!(e.kind, ErrorKind::Protocol);
        assert!(e.message.contains("more than 100 headers"), "{}", e.message);
        let e = read(&[b"HTTP/1.1 abc\r\n\r\n"], false).unwrap_err();
        assert!(
            e.message.contains("malformed response head"),
            "{}",
            e.message
        );
    }

    #[test]
    fn request_head() {
        let mut out = Vec::new();
        request_line(&mut out, &Method::GET, "/a", Some("b=c"));
        header(
            &mut out,
            &hyper::header::HOST,
            &HeaderValue::from_static("localhost:8080"),
        );
        end_head(&mut out, &Method::GET, 0, false);
        assert_eq!(out, b"GET /a?b=c HTTP/1.1\r\nhost: localhost:8080\r\n\r\n");
        out.clear();
        request_line(&mut out, &Method::POST, "/", None);
        end_head(&mut out, &Method::POST, 0, false);
        assert_eq!(out, b"POST / HTTP/1.1\r\ncontent-length: 0\r\n\r\n");
        out.clear();
        end_head(&mut out, &Method::PUT, 12, false);
        assert_eq!(out, b"content-length: 12\r\n\r\n");
        out.clear();
        end_head(&mut out, &Method::PUT, 12, true);
        assert_eq!(out, b"\r\n");
    }

    #[test]
    fn header_values_share_the_head() {
        let wire = b"HTTP/1.1 200 OK\r\nServer: x\r\nX-Two: a b \r\nContent-Length: 0\r\n\r\n";
        let (h, n) = parse_head(wire, false).unwrap().unwrap();
        assert_eq!(n, wire.len());
        assert_eq!(h.headers["server"], "x");
        assert_eq!(h.headers["x-two"], "a b");
        assert_eq!(h.framing, Framing::Length(0));
    }
}
