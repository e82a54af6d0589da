//! A lean HTTP/1.1 client codec on `httparse` (issue 16): request head serialisation, response
//! head parsing with limits, and body framing per RFC 9112 §6.3. Sans I/O: the caller reads into
//! a buffer of its own (shared per worker thread) and feeds the bytes; what must survive an await
//! (a partial head) stays with the caller, a body's bytes are handed out as they are decoded, and
//! the chunked decoder's state is a few words.

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

/// Appends the request head to `out`: request line with the origin-form `target`, then
/// `headers` (Host among them), then a Content-Length when the request has a body or its method
/// expects one (as hyper wrote it) and `headers` set none.
pub(super) fn write_head(
    out: &mut Vec<u8>,
    method: &Method,
    target: &str,
    headers: &HeaderMap,
    body_len: usize,
) {
    out.extend_from_slice(method.as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(target.as_bytes());
    out.extend_from_slice(b" HTTP/1.1\r\n");
    for (name, value) in headers {
        out.extend_from_slice(name.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    let bodiless = matches!(
        *method,
        Method::GET
            | Method::HEAD
            | Method::DELETE
            | Method::OPTIONS
            | Method::TRACE
            | Method::CONNECT
    );
    if !headers.contains_key(CONTENT_LENGTH) && (body_len > 0 || !bodiless) {
        out.extend_from_slice(b"content-length: ");
        out.extend_from_slice(body_len.to_string().as_bytes());
        out.extend_from_slice(b"\r\n");
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

/// Parses a response head at the start of `buf`: `None` while incomplete, else the head and the
/// bytes it took. `head` tells the request was HEAD (its answer has no body). An error for a
/// head over [`MAX_HEAD`] bytes or [`MAX_HEADERS`] headers, malformed, or with contradicting
/// framing (Content-Length and Transfer-Encoding, differing Content-Lengths).
pub(super) fn parse_head(buf: &[u8], head: bool) -> Result<Option<(Head, usize)>, RequestError> {
    let mut slots = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut response = httparse::Response::new(&mut slots);
    let parsed = match response.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => {
            if buf.len() > MAX_HEAD {
                return Err(protocol(format!(
                    "response head longer than {} KiB",
                    MAX_HEAD >> 10
                )));
            }
            return Ok(None);
        }
        Err(httparse::Error::TooManyHeaders) => {
            return Err(protocol(format!(
                "response head has more than {MAX_HEADERS} headers"
            )))
        }
        Err(e) => return Err(protocol(format!("malformed response head: {e}"))),
    };
    if parsed > MAX_HEAD {
        return Err(protocol(format!(
            "response head longer than {} KiB",
            MAX_HEAD >> 10
        )));
    }
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
    let mut headers = HeaderMap::with_capacity(response.headers.len());
    for h in response.headers.iter() {
        let name = HeaderName::from_bytes(h.name.as_bytes())
            .map_err(|_| protocol(format!("bad response header name {:?}", h.name)))?;
        let value = HeaderValue::from_bytes(h.value)
            .map_err(|_| protocol(format!("bad value of response header {}", h.name)))?;
        headers.append(name, value);
    }
    let framing = framing(&headers, status, head)?;
    let keep_alive = framing != Framing::Close && keeps_alive(&headers, version);
    Ok(Some((
        Head {
            status,
            version,
            headers,
            framing,
            keep_alive,
        },
        parsed,
    )))
}

/// True when the Connection header lets the connection stay open after this answer.
fn keeps_alive(headers: &HeaderMap, version: Version) -> bool {
    let has = |token: &str| {
        headers.get_all(CONNECTION).iter().any(|v| {
            v.to_str()
                .is_ok_and(|s| s.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
        })
    };
    if version == Version::HTTP_10 {
        has("keep-alive")
    } else {
        !has("close")
    }
}

/// The body's framing (RFC 9112 §6.3).
fn framing(headers: &HeaderMap, status: StatusCode, head: bool) -> Result<Framing, RequestError> {
    if head
        || status.is_informational()
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED
    {
        return Ok(Framing::None);
    }
    let mut te = headers.get_all(TRANSFER_ENCODING).iter().peekable();
    if te.peek().is_some() {
        if headers.contains_key(CONTENT_LENGTH) {
            return Err(protocol(
                "response has both Content-Length and Transfer-Encoding".to_string(),
            ));
        }
        let last = te
            .filter_map(|v| v.to_str().ok())
            .flat_map(|s| s.split(','))
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .last();
        return Ok(match last {
            Some(t) if t.eq_ignore_ascii_case("chunked") => Framing::Chunked,
            _ => Framing::Close,
        });
    }
    let mut length = None;
    for value in headers.get_all(CONTENT_LENGTH) {
        for part in value.as_bytes().split(|&b| b == b',') {
            let part = part.trim_ascii();
            let n = std::str::from_utf8(part)
                .ok()
                .filter(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
                .and_then(|s| s.parse::<u64>().ok())
                .ok_or_else(|| {
                    protocol(format!(
                        "bad Content-Length {:?}",
                        String::from_utf8_lossy(part)
                    ))
                })?;
            match length {
                Some(m) if m != n => {
                    return Err(protocol(format!(
                        "response has differing Content-Length values {m} and {n}"
                    )))
                }
                _ => length = Some(n),
            }
        }
    }
    Ok(length.map_or(Framing::Close, Framing::Length))
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
    /// after it; the way the client reads (partial heads kept, interim answers skipped).
    fn read(chunks: &[&[u8]], head: bool) -> Result<(Head, Vec<u8>, Vec<u8>), RequestError> {
        let mut pending = Vec::new();
        let mut parsed: Option<(Head, Body)> = None;
        let mut body = Vec::new();
        let mut rest = Vec::new();
        let mut feed = |input: &[u8],
                        parsed: &mut Option<(Head, Body)>,
                        pending: &mut Vec<u8>|
         -> Result<(), RequestError> {
            pending.extend_from_slice(input);
            loop {
                match parsed {
                    None => match parse_head(pending, head)? {
                        None => return Ok(()),
                        Some((h, n)) => {
                            pending.drain(..n);
                            if !h.is_interim() {
                                let b = Body::new(h.framing);
                                *parsed = Some((h, b));
                            }
                        }
                    },
                    Some((_, b)) if b.is_done() => {
                        rest.append(pending);
                        return Ok(());
                    }
                    Some((_, b)) => {
                        let n = b.decode(pending, |d| {
                            body.extend_from_slice(d);
                            Ok(())
                        })?;
                        pending.drain(..n);
                        if !b.is_done() {
                            return Ok(());
                        }
                    }
                }
            }
        };
        for chunk in chunks {
            feed(chunk, &mut parsed, &mut pending)?;
        }
        match parsed {
            Some((h, mut b)) => {
                b.end()?;
                Ok((h, body, rest))
            }
            None => Err(RequestError {
                kind: ErrorKind::Reset,
                message: "closed before a complete head".to_string(),
            }),
        }
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
        let mut headers = HeaderMap::new();
        headers.insert("host", HeaderValue::from_static("localhost:8080"));
        headers.insert("user-agent", HeaderValue::from_static("t"));
        let mut out = Vec::new();
        write_head(&mut out, &Method::GET, "/a?b=c", &headers, 0);
        assert_eq!(
            out,
            b"GET /a?b=c HTTP/1.1\r\nhost: localhost:8080\r\nuser-agent: t\r\n\r\n"
        );
        out.clear();
        write_head(&mut out, &Method::POST, "/", &headers, 0);
        assert!(out.ends_with(b"content-length: 0\r\n\r\n"));
        out.clear();
        write_head(&mut out, &Method::PUT, "/", &headers, 12);
        assert!(out.ends_with(b"content-length: 12\r\n\r\n"));
    }
}
