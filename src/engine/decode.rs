//! Compressed answers (`Content-Encoding: gzip` or `br`) decoded as their body arrives, before
//! checks and captures see it: flate2 for gzip, brotli-decompressor for br, each writing into a
//! sink that keeps the first bytes the step needs, counts the rest and refuses more than
//! [`MAX_DECODED`], so neither a large answer nor a decompression bomb holds memory.

use std::io::{self, Write};

use bytes::{Bytes, BytesMut};
use hyper::header::{HeaderValue, CONTENT_ENCODING};
use hyper::HeaderMap;

use super::client::RequestError;
use crate::result::ErrorKind;

/// What every request asks for unless `compression = false` (or the step sets the header).
pub const ACCEPT_ENCODING: HeaderValue = HeaderValue::from_static("gzip, br");

/// Most bytes one answer may decode to (64 MiB): past it the request is an error of kind
/// `decode`, however few bytes came over the wire.
pub const MAX_DECODED: u64 = 64 << 20;

/// Internal buffer of the brotli writer, bytes.
const BR_BUFFER: usize = 8 << 10;

/// A decoder for the answer's `Content-Encoding`, or `None` when it names none (or one this
/// client does not decode, or several: such a body is kept as it came).
pub(super) fn for_answer(headers: &HeaderMap, keep: usize) -> Option<Decoder> {
    // A scan of the few response headers costs less than a hashed lookup.
    let (_, value) = headers.iter().find(|(n, _)| *n == CONTENT_ENCODING)?;
    let sink = Sink {
        kept: BytesMut::new(),
        keep,
        len: 0,
    };
    let coding = value.as_bytes().trim_ascii();
    let decoder = if coding.eq_ignore_ascii_case(b"gzip") || coding.eq_ignore_ascii_case(b"x-gzip")
    {
        Decoder::Gzip(Box::new(flate2::write::GzDecoder::new(sink)))
    } else if coding.eq_ignore_ascii_case(b"br") {
        Decoder::Br(Box::new(brotli_decompressor::DecompressorWriter::new(
            sink, BR_BUFFER,
        )))
    } else {
        return None;
    };
    Some(decoder)
}

/// A body being decoded (boxed: the decoders' state is large, and most answers have none).
pub(super) enum Decoder {
    Gzip(Box<flate2::write::GzDecoder<Sink>>),
    Br(Box<brotli_decompressor::DecompressorWriter<Sink>>),
}

impl Decoder {
    /// Decodes the next bytes of the body as they came over the wire.
    pub(super) fn write(&mut self, wire: &[u8]) -> Result<(), RequestError> {
        let (written, coding) = match self {
            Decoder::Gzip(d) => (d.write_all(wire), "gzip"),
            Decoder::Br(d) => (d.write_all(wire), "br"),
        };
        written.map_err(|e| decode_error(coding, &e))
    }

    /// The end of the body: the decoded bytes kept and their whole length, or an error when
    /// the compressed stream stopped short.
    pub(super) fn finish(self) -> Result<(Bytes, u64), RequestError> {
        let sink = match self {
            Decoder::Gzip(mut d) => d
                .try_finish()
                .map_err(|e| decode_error("gzip", &e))
                .and_then(|()| (*d).finish().map_err(|e| decode_error("gzip", &e)))?,
            Decoder::Br(mut d) => {
                d.close().map_err(|e| decode_error("br", &e))?;
                (*d).into_inner()
                    .map_err(|_| decode_error("br", &io::Error::other("unfinished")))?
            }
        };
        Ok((sink.kept.freeze(), sink.len))
    }
}

/// The decoded bytes: the first `keep` kept, all counted, at most [`MAX_DECODED`].
pub(super) struct Sink {
    kept: BytesMut,
    keep: usize,
    /// Decoded bytes so far.
    len: u64,
}

impl Write for Sink {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.len += buf.len() as u64;
        if self.len > MAX_DECODED {
            return Err(io::Error::new(io::ErrorKind::FileTooLarge, TooLarge));
        }
        let room = self.keep.saturating_sub(self.kept.len());
        self.kept.extend_from_slice(&buf[..room.min(buf.len())]);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// The sink's refusal past [`MAX_DECODED`].
#[derive(Debug)]
struct TooLarge;

impl std::fmt::Display for TooLarge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "decodes to more than {} MiB", MAX_DECODED >> 20)
    }
}

impl std::error::Error for TooLarge {}

/// The request's error for a body that does not decode. The detail is fixed per cause (not
/// the decoder's own words, which name offsets), so that error groups stay few.
fn decode_error(coding: &str, e: &io::Error) -> RequestError {
    let why = if e.get_ref().is_some_and(|inner| inner.is::<TooLarge>()) {
        TooLarge.to_string()
    } else if e.kind() == io::ErrorKind::UnexpectedEof || e.to_string().contains("unfinished") {
        "ends before its compressed stream does".to_string()
    } else {
        "is not valid compressed data".to_string()
    };
    RequestError {
        kind: ErrorKind::Decode,
        message: format!("Content-Encoding: {coding} body {why}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(coding: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(CONTENT_ENCODING, HeaderValue::from_str(coding).unwrap());
        h
    }

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    /// Feeds `wire` in pieces of `piece` bytes.
    fn decode(
        coding: &str,
        wire: &[u8],
        keep: usize,
        piece: usize,
    ) -> Result<(Bytes, u64), RequestError> {
        let mut d = for_answer(&headers(coding), keep).expect("a known coding");
        for chunk in wire.chunks(piece) {
            d.write(chunk)?;
        }
        d.finish()
    }

    #[test]
    fn gzip_decodes_in_pieces_and_keeps_only_its_share() {
        let text = b"hello compressed world ".repeat(1000);
        let wire = gzip(&text);
        let (kept, len) = decode("gzip", &wire, 100, 7).unwrap();
        assert_eq!(len, text.len() as u64);
        assert_eq!(&kept[..], &text[..100]);
    }

    #[test]
    fn corrupt_and_truncated_gzip_are_decode_errors() {
        let wire = gzip(&b"abc".repeat(5000));
        let e = decode("gzip", &wire[..wire.len() / 2], 10, 64).unwrap_err();
        assert_eq!(e.kind, ErrorKind::Decode);
        assert!(e.message.contains("ends before"), "{}", e.message);
        let mut bad = wire.clone();
        bad[20] ^= 0xff;
        bad[21] ^= 0xff;
        let e = decode("gzip", &bad, 10, 64).unwrap_err();
        assert_eq!(e.kind, ErrorKind::Decode, "{}", e.message);
        let e = decode("br", b"this is not brotli at all", 10, 64).unwrap_err();
        assert_eq!(e.kind, ErrorKind::Decode, "{}", e.message);
    }

    #[test]
    fn a_bomb_stops_at_the_cap() {
        // 80 MiB of zeros: about 80 KiB of gzip.
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        let zeros = vec![0u8; 1 << 20];
        for _ in 0..80 {
            e.write_all(&zeros).unwrap();
        }
        let wire = e.finish().unwrap();
        assert!(wire.len() < 200 << 10, "{} bytes of gzip", wire.len());
        let e = decode("gzip", &wire, 10, 16 << 10).unwrap_err();
        assert_eq!(e.kind, ErrorKind::Decode);
        assert!(e.message.contains("more than 64 MiB"), "{}", e.message);
    }

    #[test]
    fn other_codings_are_left_as_they_came() {
        assert!(for_answer(&headers("zstd"), 10).is_none());
        assert!(for_answer(&headers("gzip, br"), 10).is_none());
        assert!(for_answer(&HeaderMap::new(), 10).is_none());
        assert!(for_answer(&headers(" GZIP "), 10).is_some());
    }
}
