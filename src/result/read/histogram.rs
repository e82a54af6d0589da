//! Decoding of `<histogram>` text, checked before hdrhistogram sees it.

use std::io::Read;
use std::sync::OnceLock;

use base64::Engine as _;
use hdrhistogram::serialization::Deserializer;
use hdrhistogram::Histogram;

use super::MAX_COUNT;
use crate::result::latency::new_interval_histogram;
use crate::result::model::new_histogram;

use crate::result::pack::{V2_COOKIE, V2_DEFLATE_COOKIE};
/// Bytes of a V2 header, cookie included.
const V2_HEADER: usize = 40;

/// (lowest, highest, significant digits, longest V2 encoding) of histograms like `h`.
fn bounds_of(h: Histogram<u64>) -> (u64, u64, u8, usize) {
    // Each count takes at most 9 bytes as a varint.
    (
        h.low(),
        h.high(),
        h.sigfig(),
        V2_HEADER + 9 * h.distinct_values(),
    )
}

/// The bounds of the format's cycle histograms ([`new_histogram`]).
fn format_bounds() -> (u64, u64, u8, usize) {
    static BOUNDS: OnceLock<(u64, u64, u8, usize)> = OnceLock::new();
    *BOUNDS.get_or_init(|| bounds_of(new_histogram()))
}

/// The bounds of the format's interval histograms ([`new_interval_histogram`]).
fn interval_bounds() -> (u64, u64, u8, usize) {
    static BOUNDS: OnceLock<(u64, u64, u8, usize)> = OnceLock::new();
    *BOUNDS.get_or_init(|| bounds_of(new_interval_histogram()))
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
    decode_bytes(&bytes, format_bounds())
}

/// Decodes the V2 + deflate bytes of an interval histogram ([`new_interval_histogram`]'s
/// bounds), checked as [`decode_histogram`] checks a cycle's.
pub fn decode_interval_bytes(bytes: &[u8]) -> Result<Histogram<u64>, String> {
    decode_bytes(bytes, interval_bounds())
}

/// Decodes V2 + deflate bytes of a histogram that must have `bounds` (see [`bounds_of`]).
fn decode_bytes(bytes: &[u8], bounds: (u64, u64, u8, usize)) -> Result<Histogram<u64>, String> {
    if bytes.len() < 8 || be_u32(bytes, 0) != V2_DEFLATE_COOKIE {
        return Err("not an HdrHistogram in V2 + deflate format (wrong cookie)".to_string());
    }
    let compressed_len = be_u32(bytes, 4) as usize;
    if compressed_len != bytes.len() - 8 {
        return Err(format!(
            "the header announces {compressed_len} compressed bytes but {} follow",
            bytes.len() - 8
        ));
    }
    let (low, high, sigfig, max_len) = bounds;
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
pub(super) fn check_counts(mut payload: &[u8]) -> Result<(), String> {
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
