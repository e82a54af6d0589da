//! Latency over time: per interval of the run and per step, a latency histogram, kept packed
//! (HdrHistogram V2 + deflate, as written in the result XML) so that a long run stays small, and
//! [`LatencySum`], the one exact merge of them (a node's seconds into its intervals, the
//! nodes' series into the run's).

use std::collections::BTreeMap;
use std::fmt;

use base64::Engine as _;
use hdrhistogram::Histogram;

use super::model::HISTOGRAM_MAX_US;
use super::read::decode_interval_bytes;

/// Significant decimal digits of interval histograms (1 % relative precision): enough for a
/// time chart, and a tenth of a cycle histogram's size (26 KiB decoded, a few hundred bytes
/// packed for a typical second).
pub const INTERVAL_SIGFIG: u8 = 2;

/// Most intervals a run's plan is cut into: runs up to this many seconds get 1-s intervals,
/// longer ones intervals of whole seconds so that the plan holds at most this many.
pub const MAX_INTERVALS: u32 = 600;

/// A new, empty interval histogram in µs (1 µs to [`HISTOGRAM_MAX_US`], [`INTERVAL_SIGFIG`]
/// digits); every interval histogram has these bounds, so they add exactly.
pub fn new_interval_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, HISTOGRAM_MAX_US, INTERVAL_SIGFIG)
        .expect("fixed histogram bounds are valid")
}

/// Length of one interval, s, for a run planned to last `planned_s` seconds: 1 up to
/// [`MAX_INTERVALS`] s, then the fewest whole seconds that keep the plan within that many.
pub fn interval_for(planned_s: f64) -> u32 {
    let intervals = (planned_s.max(0.0) / f64::from(MAX_INTERVALS)).ceil();
    (intervals as u32).max(1)
}

/// An interval histogram kept packed: HdrHistogram V2 + deflate bytes (empty for an empty
/// histogram). Made only by [`Packed::pack`] or from checked bytes, so it always unpacks.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct Packed(Vec<u8>);

impl fmt::Debug for Packed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Packed({} bytes)", self.0.len())
    }
}

impl Packed {
    /// Packs `h`, an interval histogram ([`new_interval_histogram`]'s bounds).
    pub fn pack(h: &Histogram<u64>) -> Packed {
        if h.is_empty() {
            return Packed::default();
        }
        Packed(crate::result::pack::v2_deflate(h))
    }

    /// Checks and keeps V2 + deflate `bytes` (empty: an empty histogram).
    pub fn from_bytes(bytes: Vec<u8>) -> Result<Packed, String> {
        if !bytes.is_empty() {
            decode_interval_bytes(&bytes)?;
        }
        Ok(Packed(bytes))
    }

    /// Checks and keeps standard base64 of V2 + deflate bytes (whitespace ignored).
    pub fn from_base64(text: &str) -> Result<Packed, String> {
        let b64: String = text.chars().filter(|c| !c.is_ascii_whitespace()).collect();
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(b64.as_bytes())
            .map_err(|e| format!("bad base64: {e}"))?;
        Packed::from_bytes(bytes)
    }

    /// Standard base64 with padding; empty for an empty histogram.
    pub fn to_base64(&self) -> String {
        base64::engine::general_purpose::STANDARD.encode(&self.0)
    }

    /// The histogram.
    pub fn unpack(&self) -> Histogram<u64> {
        if self.0.is_empty() {
            return new_interval_histogram();
        }
        decode_interval_bytes(&self.0).expect("packed bytes were checked when made")
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Size packed, bytes.
    pub fn len(&self) -> usize {
        self.0.len()
    }
}

/// Latency per interval of the run, per step: what the report's "latency over time" charts
/// draw. Beside the per-second series ([`super::SecondSample`]) rather than in it, as an
/// interval may span several seconds.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct LatencySeries {
    /// Length of every interval, s (0 when the result holds none: an older file).
    pub interval_s: u32,
    /// Intervals in which at least one page completed, in order.
    pub intervals: Vec<LatencyInterval>,
}

/// The pages that completed in one interval.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct LatencyInterval {
    /// Interval number: it spans `[index × interval_s, (index + 1) × interval_s)` s of the run.
    pub index: u32,
    /// Per step, in the order of the result's steps: latency of the pages (successes and
    /// failures, as in [`super::Counts`]) that completed in the interval, µs.
    pub steps: Vec<Packed>,
}

impl LatencyInterval {
    /// All pages: the sum of the steps.
    pub fn pages(&self) -> Histogram<u64> {
        let mut all = new_interval_histogram();
        for s in self.steps.iter().filter(|s| !s.is_empty()) {
            all.add(s.unpack())
                .expect("interval histograms share bounds");
        }
        all
    }
}

/// Interval histograms being added up, exactly: the open intervals are held unpacked, the
/// sealed ones packed. A node adds its seconds and seals each interval once it has passed; the
/// report adds the nodes' series and seals at the end.
#[derive(Debug, Clone)]
pub struct LatencySum {
    interval_s: u32,
    steps: usize,
    /// Interval number → per step, its histogram so far (None: no page yet).
    open: BTreeMap<u32, Vec<Option<Histogram<u64>>>>,
    sealed: Vec<LatencyInterval>,
}

impl LatencySum {
    /// A sum of intervals of `interval_s` seconds (at least 1) over `steps` steps.
    pub fn new(interval_s: u32, steps: usize) -> LatencySum {
        LatencySum {
            interval_s: interval_s.max(1),
            steps,
            open: BTreeMap::new(),
            sealed: Vec::new(),
        }
    }

    /// Length of an interval, s.
    pub fn interval_s(&self) -> u32 {
        self.interval_s
    }

    /// Adds `h`, pages of `step` that completed during second `second` of the run.
    pub fn add_second(&mut self, second: u32, step: usize, h: &Histogram<u64>) {
        self.add(second / self.interval_s, step, h);
    }

    /// Adds `h` into interval `index` of `step` (a step past the known ones is ignored).
    fn add(&mut self, index: u32, step: usize, h: &Histogram<u64>) {
        if h.is_empty() || step >= self.steps {
            return;
        }
        let steps = self.steps;
        let slot = &mut self.open.entry(index).or_insert_with(|| vec![None; steps])[step];
        slot.get_or_insert_with(new_interval_histogram)
            .add(h)
            .expect("interval histograms share bounds");
    }

    /// Adds another series (a node's), whose second 0 is second `offset_s` of this sum's run.
    /// Intervals of another length are placed by their start.
    pub fn add_series(&mut self, other: &LatencySeries, offset_s: u32) {
        for iv in &other.intervals {
            let start = iv.index.saturating_mul(other.interval_s.max(1));
            let index = start.saturating_add(offset_s) / self.interval_s;
            for (step, p) in iv.steps.iter().enumerate() {
                if !p.is_empty() {
                    self.add(index, step, &p.unpack());
                }
            }
        }
    }

    /// Packs every open interval before number `index`: they take no more pages.
    pub fn seal_before(&mut self, index: u32) {
        let keep = self.open.split_off(&index);
        let done = std::mem::replace(&mut self.open, keep);
        for (index, steps) in done {
            let steps = steps
                .iter()
                .map(|h| h.as_ref().map(Packed::pack).unwrap_or_default())
                .collect();
            self.sealed.push(LatencyInterval { index, steps });
        }
    }

    /// The series, every interval sealed.
    pub fn finish(mut self) -> LatencySeries {
        self.seal_before(u32::MAX);
        let mut intervals = self.sealed;
        intervals.sort_by_key(|iv| iv.index);
        LatencySeries {
            interval_s: self.interval_s,
            intervals,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hist(values: &[u64]) -> Histogram<u64> {
        let mut h = new_interval_histogram();
        for v in values {
            h.record(*v).unwrap();
        }
        h
    }

    #[test]
    fn intervals_are_one_second_up_to_ten_minutes_then_coarser() {
        assert_eq!(interval_for(0.0), 1);
        assert_eq!(interval_for(600.0), 1);
        assert_eq!(interval_for(601.0), 2);
        assert_eq!(interval_for(1800.0), 3);
        assert_eq!(interval_for(86_400.0), 144);
    }

    #[test]
    fn packed_round_trips_and_bad_bytes_are_refused() {
        let h = hist(&[100, 200, 300_000]);
        let p = Packed::pack(&h);
        assert!(!p.is_empty() && p.len() < 200, "{} bytes", p.len());
        assert_eq!(Packed::from_base64(&p.to_base64()).unwrap().unpack(), h);
        assert!(Packed::from_base64("AAAA").is_err());
        // A cycle histogram (3 digits) is not an interval histogram.
        let mut cycle = crate::result::new_histogram();
        cycle.record(5).unwrap();
        let text = crate::result::write::encode_histogram(&cycle).unwrap();
        assert!(Packed::from_base64(&text).is_err());
        assert!(Packed::from_base64("").unwrap().is_empty());
    }

    #[test]
    fn a_ten_minute_run_of_five_steps_holds_one_interval_unpacked() {
        let mut sum = LatencySum::new(interval_for(600.0), 5);
        let mut h = new_interval_histogram();
        for v in 0..200u64 {
            h.record(800 + v * v).unwrap();
        }
        for second in 0..600 {
            for step in 0..5 {
                sum.add_second(second, step, &h);
            }
            sum.seal_before((second + 1) / sum.interval_s());
            assert!(
                sum.open.len() <= 1,
                "second {second}: {} open",
                sum.open.len()
            );
        }
        let series = sum.finish();
        let packed: usize = series
            .intervals
            .iter()
            .flat_map(|iv| iv.steps.iter().map(Packed::len))
            .sum();
        assert_eq!(series.intervals.len(), 600);
        // 3 000 histograms of 200 values: a few hundred bytes each, not 26 KiB.
        assert!(packed < 3000 * 500, "{packed} bytes packed");
    }

    #[test]
    fn seconds_add_into_intervals_and_series_merge_exactly() {
        let mut a = LatencySum::new(2, 2);
        a.add_second(0, 0, &hist(&[10]));
        a.add_second(1, 0, &hist(&[20]));
        a.add_second(3, 1, &hist(&[30]));
        a.seal_before(1);
        let a = a.finish();
        assert_eq!(a.interval_s, 2);
        assert_eq!(a.intervals.len(), 2);
        assert_eq!(a.intervals[0].steps[0].unpack().len(), 2);
        assert!(a.intervals[0].steps[1].is_empty());
        assert_eq!(a.intervals[1].index, 1);
        let mut sum = LatencySum::new(2, 2);
        sum.add_series(&a, 0);
        sum.add_series(&a, 0);
        let sum = sum.finish();
        let mut twice = a.intervals[1].pages();
        twice.add(a.intervals[1].pages()).unwrap();
        assert_eq!(sum.intervals[1].pages(), twice);
        assert_eq!(sum.intervals[0].steps[0].unpack().len(), 4);
    }
}
