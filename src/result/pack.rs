//! Histograms packed in HdrHistogram's V2 + deflate format, byte for byte as hdrhistogram's
//! `V2DeflateSerializer` writes them (the reader is `read::histogram`), with one compressor
//! kept per thread. The serializer makes a new compressor, about 300 KB of deflate state, for
//! every histogram: 66 µs each on our machine against 15 µs reusing one, and at a node's end,
//! when a result packs a dozen of them, that was a third of the node's work.

use std::cell::RefCell;

use flate2::{Compress, Compression, FlushCompress, Status};
use hdrhistogram::serialization::{Serializer as _, V2Serializer};
use hdrhistogram::Histogram;

/// Cookie of a V2 + deflate histogram, and of the V2 histogram inside it.
pub(crate) const V2_DEFLATE_COOKIE: u32 = 0x1c84_9314;
pub(crate) const V2_COOKIE: u32 = 0x1c84_9313;

/// What packing needs, kept between histograms.
struct Packer {
    v2: V2Serializer,
    /// zlib at deflate's default level, as the serializer uses.
    deflate: Compress,
    raw: Vec<u8>,
}

thread_local! {
    static PACKER: RefCell<Packer> = RefCell::new(Packer {
        v2: V2Serializer::new(),
        deflate: Compress::new(Compression::default(), true),
        raw: Vec::new(),
    });
}

/// `h` in V2 + deflate: the cookie, the compressed length (both big-endian u32), then the
/// zlib stream of its V2 encoding.
pub fn v2_deflate(h: &Histogram<u64>) -> Vec<u8> {
    PACKER.with_borrow_mut(|p| {
        p.raw.clear();
        p.v2.serialize(h, &mut p.raw)
            .expect("a u64 histogram serialises into memory");
        p.deflate.reset();
        let mut out = Vec::with_capacity(8 + p.raw.len() / 2 + 64);
        out.extend_from_slice(&V2_DEFLATE_COOKIE.to_be_bytes());
        out.extend_from_slice(&[0; 4]);
        loop {
            let read = p.deflate.total_in() as usize;
            let status = p
                .deflate
                .compress_vec(&p.raw[read..], &mut out, FlushCompress::Finish)
                .expect("deflating into memory cannot fail");
            if status == Status::StreamEnd {
                break;
            }
            out.reserve(out.capacity().max(64));
        }
        let len = u32::try_from(out.len() - 8).expect("a packed histogram is under 4 GiB");
        out[4..8].copy_from_slice(&len.to_be_bytes());
        out
    })
}

#[cfg(test)]
mod tests {
    use hdrhistogram::serialization::{Serializer as _, V2DeflateSerializer};

    use super::*;
    use crate::result::latency::new_interval_histogram;
    use crate::result::model::new_histogram;

    #[test]
    fn packs_exactly_as_the_serializer_does_histogram_after_histogram() {
        let mut wide = new_histogram();
        let mut interval = new_interval_histogram();
        // From a lone value to values spread from 1 µs to an hour (the encoding's worst case),
        // packed one after the other on one compressor.
        let mut x = 7u64;
        for n in [1u64, 10, 1000, 50_000] {
            for _ in 0..n {
                x = x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
                let v = 1 + (x >> 11) % 3_600_000_000;
                wide.record(v).unwrap();
                interval.record(v).unwrap();
            }
            for h in [&wide, &interval] {
                let mut theirs = Vec::new();
                V2DeflateSerializer::new()
                    .serialize(h, &mut theirs)
                    .unwrap();
                assert_eq!(v2_deflate(h), theirs, "{n} values, sigfig {}", h.sigfig());
            }
        }
    }
}
