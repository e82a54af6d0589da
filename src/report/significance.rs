//! Is a change between two runs real? A 95 % confidence interval for the change of one metric
//! of one cycle, by a seeded bootstrap over the whole seconds of both measured windows.
//!
//! Why a bootstrap rather than a Welch interval: one method covers every metric the diff
//! compares — a rate (mean of per-second counts), the error share (a ratio of sums) and latency
//! percentiles (of the seconds' histograms merged), none of which has a closed-form interval for
//! a *relative* change — and resampling whole seconds keeps what happens within a second
//! together (a slow second slows all its requests), so the interval is not as falsely narrow
//! as one that treated every request as independent. A plain percentile bootstrap is too
//! narrow on the few seconds of a short cycle, so the interval is Hesterberg's *expanded*
//! percentile interval: its tails are taken at Φ(−√(n/(n−1))·t₀.₉₇₅,ₙ₋₁) instead of 2.5 %
//! (statrs for the t and normal distributions), which gives a t interval's width at small n and
//! the usual percentile interval at large n. The generator is ChaCha8 with a fixed seed and a
//! fixed resample count: the same two runs always get the same interval.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;
use statrs::distribution::{ContinuousCDF, Normal, StudentsT};

/// Confidence level of every interval.
pub const CONFIDENCE: f64 = 0.95;
/// Bootstrap resamples per interval.
pub const RESAMPLES: usize = 2000;
/// Fewest whole seconds each window must have for an interval; with fewer there is none.
pub const MIN_SECONDS: usize = 3;
/// Seed of the resampling generator (any fixed value: reports must be reproducible).
const SEED: u64 = 0x6265_6e63_6820_6d73;

/// A confidence interval of a change: `low` ≤ `high`, in the change's unit (% or points).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Interval {
    pub low: f64,
    pub high: f64,
}

impl Interval {
    /// True when zero lies outside the interval: the change is significant.
    pub fn excludes_zero(&self) -> bool {
        self.low > 0.0 || self.high < 0.0
    }
}

/// A figure of a window computed from its seconds, each taken `times[i]` times (a resample).
pub trait Statistic {
    /// Seconds in the window.
    fn seconds(&self) -> usize;
    /// The figure of the window with second `i` counted `times[i]` times; `None` when it is
    /// undefined (nothing completed).
    fn of(&self, times: &[u32]) -> Option<f64>;
}

/// The mean of one per-second value (a rate, per second).
pub struct Mean(pub Vec<f64>);

impl Statistic for Mean {
    fn seconds(&self) -> usize {
        self.0.len()
    }

    fn of(&self, times: &[u32]) -> Option<f64> {
        let n: u32 = times.iter().sum();
        let sum: f64 = self.0.iter().zip(times).map(|(v, &t)| v * t as f64).sum();
        (n > 0).then(|| sum / n as f64)
    }
}

/// `part` over `whole` summed over the seconds, % (the error share of requests).
pub struct Share {
    /// Per second: (part, whole).
    pub seconds: Vec<(u64, u64)>,
}

impl Statistic for Share {
    fn seconds(&self) -> usize {
        self.seconds.len()
    }

    fn of(&self, times: &[u32]) -> Option<f64> {
        let (part, whole) = self
            .seconds
            .iter()
            .zip(times)
            .fold((0u64, 0u64), |(p, w), (&(sp, sw), &t)| {
                (p + sp * u64::from(t), w + sw * u64::from(t))
            });
        (whole > 0).then(|| part as f64 * 100.0 / whole as f64)
    }
}

/// A quantile of the seconds' latency histograms merged, ms.
pub struct Quantile {
    /// The quantile, 0-1.
    q: f64,
    /// Every latency value recorded in any second, µs, ascending.
    values: Vec<u64>,
    /// Per second: (index in `values`, count), the histogram's non-empty buckets.
    seconds: Vec<Vec<(u32, u64)>>,
}

impl Quantile {
    /// The `q` quantile of `seconds`' histograms, each given as (value µs, count) pairs.
    pub fn new(q: f64, seconds: Vec<Vec<(u64, u64)>>) -> Quantile {
        let mut values: Vec<u64> = seconds.iter().flatten().map(|&(v, _)| v).collect();
        values.sort_unstable();
        values.dedup();
        let seconds = seconds
            .into_iter()
            .map(|s| {
                s.into_iter()
                    .map(|(v, c)| (values.binary_search(&v).unwrap_or(0) as u32, c))
                    .collect()
            })
            .collect();
        Quantile { q, values, seconds }
    }
}

impl Statistic for Quantile {
    fn seconds(&self) -> usize {
        self.seconds.len()
    }

    fn of(&self, times: &[u32]) -> Option<f64> {
        let mut counts = vec![0u64; self.values.len()];
        for (second, &t) in self.seconds.iter().zip(times) {
            for &(i, c) in second {
                counts[i as usize] += c * u64::from(t);
            }
        }
        let total: u64 = counts.iter().sum();
        if total == 0 {
            return None;
        }
        // As HdrHistogram counts it: the value at rank ⌈q·total⌉ (at least the first).
        let rank = ((self.q * total as f64).ceil() as u64).clamp(1, total);
        let mut seen = 0;
        for (i, c) in counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                return Some(self.values[i] as f64 / 1000.0);
            }
        }
        None
    }
}

/// How a change is measured between a base and a new figure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// (new − base) / base, % (undefined when base is 0).
    Relative,
    /// new − base, in the figures' unit (percentage points for a share).
    Absolute,
}

impl Change {
    /// The change from `base` to `new`.
    pub fn of(self, base: f64, new: f64) -> Option<f64> {
        match self {
            Change::Relative => (base != 0.0).then(|| (new - base) * 100.0 / base.abs()),
            Change::Absolute => Some(new - base),
        }
    }
}

/// The [`CONFIDENCE`] interval of the change of a statistic from `base` to `new`, or `None` when
/// a window has fewer than [`MIN_SECONDS`] seconds or the change is mostly undefined.
pub fn interval(base: &dyn Statistic, new: &dyn Statistic, change: Change) -> Option<Interval> {
    let (nb, nn) = (base.seconds(), new.seconds());
    if nb.min(nn) < MIN_SECONDS {
        return None;
    }
    let mut rng = ChaCha8Rng::seed_from_u64(SEED);
    let (mut tb, mut tn) = (vec![0u32; nb], vec![0u32; nn]);
    let mut changes = Vec::with_capacity(RESAMPLES);
    for _ in 0..RESAMPLES {
        resample(&mut rng, &mut tb);
        resample(&mut rng, &mut tn);
        let c = base
            .of(&tb)
            .zip(new.of(&tn))
            .and_then(|(b, n)| change.of(b, n));
        changes.extend(c.filter(|c| c.is_finite()));
    }
    if changes.len() < RESAMPLES / 2 {
        return None;
    }
    changes.sort_by(f64::total_cmp);
    let tail = tail_share(nb.min(nn));
    Some(Interval {
        low: quantile(&changes, tail),
        high: quantile(&changes, 1.0 - tail),
    })
}

/// Draws `times.len()` seconds with replacement: `times[i]` is how often second `i` was drawn.
fn resample(rng: &mut ChaCha8Rng, times: &mut [u32]) {
    times.fill(0);
    let n = times.len();
    for _ in 0..n {
        times[rng.gen_range(0..n)] += 1;
    }
}

/// Share of resamples left out on each side for `n` seconds: Hesterberg's expanded percentile
/// interval, Φ(−√(n/(n−1))·t(1 − α/2, n − 1)).
fn tail_share(n: usize) -> f64 {
    let alpha = 1.0 - CONFIDENCE;
    let n = n as f64;
    let t = StudentsT::new(0.0, 1.0, n - 1.0)
        .expect("n ≥ MIN_SECONDS > 1 degrees of freedom")
        .inverse_cdf(1.0 - alpha / 2.0);
    Normal::standard().cdf(-(n / (n - 1.0)).sqrt() * t)
}

/// The `q` quantile of sorted `xs` (linear between neighbours).
fn quantile(xs: &[f64], q: f64) -> f64 {
    let pos = q * (xs.len() - 1) as f64;
    let (lo, hi) = (pos.floor() as usize, pos.ceil() as usize);
    xs[lo] + (xs[hi] - xs[lo]) * (pos - lo as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expanded_tails_narrow_to_the_percentile_interval_as_seconds_grow() {
        // t(0.975, 4) = 2.776, × √(5/4) = 3.10: Φ(−3.10) ≈ 0.001.
        assert!(
            (tail_share(5) - 0.00097).abs() < 0.0001,
            "{}",
            tail_share(5)
        );
        assert!((tail_share(1000) - 0.025).abs() < 0.0005);
    }

    #[test]
    fn a_shift_far_above_the_noise_is_significant_and_the_same_series_is_not() {
        let base: Vec<f64> = (0..20).map(|i| 100.0 + (i % 5) as f64).collect();
        let same = interval(&Mean(base.clone()), &Mean(base.clone()), Change::Relative).unwrap();
        assert!(!same.excludes_zero(), "{same:?}");
        assert!(same.low < 0.0 && same.high > 0.0);
        let slower: Vec<f64> = base.iter().map(|v| v * 0.7).collect();
        let worse = interval(&Mean(base.clone()), &Mean(slower), Change::Relative).unwrap();
        assert!(worse.excludes_zero() && worse.high < -25.0, "{worse:?}");
        // Seeded: the same inputs, the same interval.
        let again = interval(&Mean(base.clone()), &Mean(base), Change::Relative).unwrap();
        assert_eq!(same, again);
        assert_eq!(
            interval(&Mean(vec![1.0; 2]), &Mean(vec![1.0; 9]), Change::Relative),
            None
        );
    }

    #[test]
    fn quantiles_and_shares_of_resampled_seconds() {
        // 1, 1, 1, 2, 2, 5 ms: the median is the 3rd value, the 75th percentile the 5th.
        let seconds = vec![vec![(1000, 3), (5000, 1)], vec![(2000, 2)]];
        let q = Quantile::new(0.5, seconds.clone());
        assert_eq!(q.of(&[1, 1]), Some(1.0));
        assert_eq!(q.of(&[0, 2]), Some(2.0));
        assert_eq!(q.of(&[0, 0]), None);
        assert_eq!(Quantile::new(0.75, seconds).of(&[1, 1]), Some(2.0));
        let s = Share {
            seconds: vec![(1, 10), (0, 10)],
        };
        assert_eq!(s.of(&[1, 1]), Some(5.0));
        assert_eq!(s.of(&[0, 2]), Some(0.0));
    }
}
