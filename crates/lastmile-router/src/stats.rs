//! Per-release traffic statistics: a ring of 1-second buckets updated with
//! atomics for the sliding window the canary analysis reads, and beside it
//! running totals since the router started, which only ever grow (what a
//! Prometheus counter or histogram must be).
//!
//! An answer from an instance still warming up (its route's `WarmupRule`) counts
//! everywhere except in the window's latency histogram: a new process's first slow
//! answers say nothing about the release, while its errors do.

use std::fmt;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering::Relaxed};
use std::time::Duration;

/// Sub-buckets per power of two (16 → about 6 % relative precision).
const SUB_BITS: u32 = 4;
const SUB: usize = 1 << SUB_BITS;
/// Octaves above the linear range: values up to 2^27 µs (about 134 s).
const OCTAVES: usize = 23;
/// Number of latency buckets in every histogram.
const BUCKETS: usize = SUB + OCTAVES * SUB;

/// Upper bounds, in seconds, of the cumulative request-duration buckets
/// ([`DurationTotals::buckets`]): Prometheus's default bounds with three more
/// below 5 ms, where a local router's answers sit.
pub const DURATION_BUCKET_BOUNDS_SECONDS: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// [`DURATION_BUCKET_BOUNDS_SECONDS`] in microseconds, what the hot path compares.
const DURATION_BOUNDS_US: [u64; 14] = [
    500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000, 1_000_000,
    2_500_000, 5_000_000, 10_000_000,
];

/// Index of the log-linear bucket that holds `us` microseconds.
fn bucket_of(us: u64) -> usize {
    if us < SUB as u64 {
        return us as usize;
    }
    let log = 63 - us.leading_zeros();
    let sub = ((us >> (log - SUB_BITS)) as usize) & (SUB - 1);
    (SUB + (log - SUB_BITS) as usize * SUB + sub).min(BUCKETS - 1)
}

/// Representative value (middle of the bucket) in microseconds.
fn bucket_value(idx: usize) -> f64 {
    if idx < SUB {
        return idx as f64;
    }
    let octave = (idx - SUB) / SUB;
    let sub = (idx - SUB) % SUB;
    let low = ((SUB + sub) as u64) << octave;
    let width = 1u64 << octave;
    low as f64 + width as f64 / 2.0
}

/// Latency distribution of proxied requests (time until the response headers were ready).
#[derive(Clone, Default)]
pub struct LatencyHistogram {
    counts: Vec<u64>,
    total: u64,
}

impl LatencyHistogram {
    /// The `q` quantile (0.0..=1.0) in milliseconds; 0.0 when empty.
    pub fn quantile(&self, q: f64) -> f64 {
        if self.total == 0 {
            return 0.0;
        }
        let target = ((q.clamp(0.0, 1.0) * self.total as f64).ceil() as u64).max(1);
        let mut seen = 0;
        for (idx, c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= target {
                return bucket_value(idx) / 1000.0;
            }
        }
        bucket_value(BUCKETS - 1) / 1000.0
    }

    /// Number of recorded samples.
    pub fn count(&self) -> u64 {
        self.total
    }

    /// The non-empty buckets, ascending: (representative value in milliseconds, samples).
    pub fn buckets(&self) -> impl Iterator<Item = (f64, u64)> + '_ {
        self.counts
            .iter()
            .enumerate()
            .filter(|(_, count)| **count > 0)
            .map(|(idx, count)| (bucket_value(idx) / 1000.0, *count))
    }

    fn add(&mut self, idx: usize, n: u64) {
        if self.counts.is_empty() {
            self.counts = vec![0; BUCKETS];
        }
        self.counts[idx] += n;
        self.total += n;
    }
}

impl fmt::Debug for LatencyHistogram {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LatencyHistogram")
            .field("count", &self.total)
            .field("p50_ms", &self.quantile(0.5))
            .field("p99_ms", &self.quantile(0.99))
            .finish()
    }
}

/// Durations of every answered request since the router started, as a
/// Prometheus histogram: cumulative counts that never fall.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DurationTotals {
    /// (upper bound in seconds, requests that took at most that long), one
    /// pair per [`DURATION_BUCKET_BOUNDS_SECONDS`], ascending; empty for a
    /// release the router has never seen.
    pub buckets: Vec<(f64, u64)>,
    /// All requests counted, including those slower than the last bound.
    pub count: u64,
    /// Sum of their durations, in seconds.
    pub sum_seconds: f64,
}

/// Sums over a time window of one release's traffic, and its totals since
/// the router started.
#[derive(Debug, Clone, Default)]
pub struct ReleaseStats {
    /// Requests answered (by the upstream or by the router on its behalf).
    pub requests: u64,
    /// Answers with a 5xx status, including the router's own 502/503/504.
    pub status_5xx: u64,
    /// Failed connection attempts to this release's instances.
    pub connect_errors: u64,
    /// Latency of the answered requests, warm-up answers left out.
    pub latency: LatencyHistogram,
    /// Answers from instances still warming up: in `requests`, `status_5xx` and the
    /// totals, not in `latency`.
    pub warmup_requests: u64,
    /// Requests answered since the router started (never falls).
    pub requests_total: u64,
    /// 5xx answers since the router started (never falls).
    pub status_5xx_total: u64,
    /// Failed connection attempts since the router started (never falls).
    pub connect_errors_total: u64,
    /// Durations of the answered requests since the router started.
    pub duration_total: DurationTotals,
}

/// Running totals of one release since the router started; only ever added to.
struct Totals {
    requests: AtomicU64,
    status_5xx: AtomicU64,
    connect_errors: AtomicU64,
    duration_sum_us: AtomicU64,
    /// Requests per duration bucket (not cumulative; the last slot is above
    /// every bound), made cumulative when read.
    durations: [AtomicU64; DURATION_BOUNDS_US.len() + 1],
}

impl Totals {
    fn new() -> Totals {
        Totals {
            requests: AtomicU64::new(0),
            status_5xx: AtomicU64::new(0),
            connect_errors: AtomicU64::new(0),
            duration_sum_us: AtomicU64::new(0),
            durations: std::array::from_fn(|_| AtomicU64::new(0)),
        }
    }

    fn record(&self, status: u16, us: u64) {
        self.requests.fetch_add(1, Relaxed);
        if status >= 500 {
            self.status_5xx.fetch_add(1, Relaxed);
        }
        self.duration_sum_us.fetch_add(us, Relaxed);
        // First bound at or above the duration: `le` means "at most".
        let slot = DURATION_BOUNDS_US.partition_point(|&bound| bound < us);
        self.durations[slot].fetch_add(1, Relaxed);
    }

    /// Copies the totals into `out`. The counters are read one by one while
    /// requests go on, so the bucket counts and `count` are computed from the
    /// same reads (the +Inf bucket always equals `count`).
    fn read_into(&self, out: &mut ReleaseStats) {
        out.requests_total = self.requests.load(Relaxed);
        out.status_5xx_total = self.status_5xx.load(Relaxed);
        out.connect_errors_total = self.connect_errors.load(Relaxed);
        let mut cumulative = 0;
        let mut buckets = Vec::with_capacity(DURATION_BOUNDS_US.len());
        for (bound, slot) in DURATION_BUCKET_BOUNDS_SECONDS.iter().zip(&self.durations) {
            cumulative += slot.load(Relaxed);
            buckets.push((*bound, cumulative));
        }
        let above = self.durations[DURATION_BOUNDS_US.len()].load(Relaxed);
        out.duration_total = DurationTotals {
            buckets,
            count: cumulative + above,
            sum_seconds: self.duration_sum_us.load(Relaxed) as f64 / 1_000_000.0,
        };
    }
}

/// One second of traffic.
struct Bucket {
    /// The second (since the router's epoch) plus one this bucket holds; 0 = never used.
    tag: AtomicU64,
    requests: AtomicU64,
    status_5xx: AtomicU64,
    connect_errors: AtomicU64,
    warmup_requests: AtomicU64,
    latency: Box<[AtomicU32]>,
}

impl Bucket {
    fn new() -> Bucket {
        Bucket {
            tag: AtomicU64::new(0),
            requests: AtomicU64::new(0),
            status_5xx: AtomicU64::new(0),
            connect_errors: AtomicU64::new(0),
            warmup_requests: AtomicU64::new(0),
            latency: (0..BUCKETS).map(|_| AtomicU32::new(0)).collect(),
        }
    }
}

/// Ring of per-second buckets of one release, and its totals; lock free.
pub(crate) struct StatsRing {
    buckets: Box<[Bucket]>,
    totals: Totals,
}

impl fmt::Debug for StatsRing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StatsRing")
            .field("seconds", &self.buckets.len())
            .finish()
    }
}

impl StatsRing {
    pub(crate) fn new(window: Duration) -> StatsRing {
        let secs = window.as_secs().max(1) as usize + 1;
        StatsRing {
            buckets: (0..secs).map(|_| Bucket::new()).collect(),
            totals: Totals::new(),
        }
    }

    /// The bucket of second `sec`, recycled (zeroed) when it still holds an older second.
    fn bucket(&self, sec: u64) -> &Bucket {
        let b = &self.buckets[(sec % self.buckets.len() as u64) as usize];
        let tag = sec + 1;
        let cur = b.tag.load(Relaxed);
        if cur != tag && cur < tag && b.tag.compare_exchange(cur, tag, Relaxed, Relaxed).is_ok() {
            b.requests.store(0, Relaxed);
            b.status_5xx.store(0, Relaxed);
            b.connect_errors.store(0, Relaxed);
            b.warmup_requests.store(0, Relaxed);
            for c in b.latency.iter() {
                c.store(0, Relaxed);
            }
        }
        b
    }

    /// Records one answered request; a `warm_up` answer stays out of the window's latency.
    pub(crate) fn record(&self, sec: u64, status: u16, latency: Duration, warm_up: bool) {
        let us = latency.as_micros() as u64;
        let b = self.bucket(sec);
        b.requests.fetch_add(1, Relaxed);
        if status >= 500 {
            b.status_5xx.fetch_add(1, Relaxed);
        }
        if warm_up {
            b.warmup_requests.fetch_add(1, Relaxed);
        } else {
            b.latency[bucket_of(us)].fetch_add(1, Relaxed);
        }
        self.totals.record(status, us);
    }

    /// Records one failed connection attempt.
    pub(crate) fn connect_error(&self, sec: u64) {
        self.bucket(sec).connect_errors.fetch_add(1, Relaxed);
        self.totals.connect_errors.fetch_add(1, Relaxed);
    }

    /// Sums the buckets of the last `window` seconds ending at `now_sec`,
    /// with the totals since the ring was made.
    pub(crate) fn sum(&self, now_sec: u64, window: Duration) -> ReleaseStats {
        let secs = window.as_secs().max(1).min(self.buckets.len() as u64);
        let mut out = ReleaseStats::default();
        for b in self.buckets.iter() {
            let tag = b.tag.load(Relaxed);
            if tag == 0 {
                continue;
            }
            let sec = tag - 1;
            if sec > now_sec || now_sec - sec >= secs {
                continue;
            }
            out.requests += b.requests.load(Relaxed);
            out.status_5xx += b.status_5xx.load(Relaxed);
            out.connect_errors += b.connect_errors.load(Relaxed);
            out.warmup_requests += b.warmup_requests.load(Relaxed);
            for (idx, c) in b.latency.iter().enumerate() {
                let n = c.load(Relaxed);
                if n > 0 {
                    out.latency.add(idx, n as u64);
                }
            }
        }
        self.totals.read_into(&mut out);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_monotonic_and_close() {
        let mut last = 0;
        for us in [
            0u64, 1, 15, 16, 17, 40, 100, 999, 1000, 12345, 1_000_000, 60_000_000,
        ] {
            let idx = bucket_of(us);
            assert!(idx >= last, "{us}");
            last = idx;
            let v = bucket_value(idx);
            assert!(
                (v - us as f64).abs() <= us as f64 * 0.07 + 1.0,
                "{us} -> {v}"
            );
        }
    }

    #[test]
    fn window_sums_recent_seconds_only() {
        let ring = StatsRing::new(Duration::from_secs(10));
        ring.record(5, 200, Duration::from_millis(2), false);
        ring.record(9, 503, Duration::from_millis(4), false);
        ring.connect_error(9);
        let s = ring.sum(9, Duration::from_secs(2));
        assert_eq!((s.requests, s.status_5xx, s.connect_errors), (1, 1, 1));
        let s = ring.sum(9, Duration::from_secs(10));
        assert_eq!(s.requests, 2);
        assert!(
            (s.latency.quantile(0.5) - 2.0).abs() < 0.2,
            "{:?}",
            s.latency
        );
        // Second 20 reuses slot 9 of an 11-slot ring only after zeroing it.
        ring.record(20, 200, Duration::from_millis(1), false);
        assert_eq!(ring.sum(20, Duration::from_secs(1)).requests, 1);
    }

    #[test]
    fn duration_bounds_agree_in_both_units() {
        for (us, seconds) in DURATION_BOUNDS_US
            .iter()
            .zip(DURATION_BUCKET_BOUNDS_SECONDS)
        {
            assert_eq!(*us, (seconds * 1_000_000.0).round() as u64);
        }
    }

    #[test]
    fn totals_keep_growing_after_the_window_forgets() {
        let ring = StatsRing::new(Duration::from_secs(10));
        ring.record(1, 200, Duration::from_micros(400), false);
        ring.record(1, 502, Duration::from_millis(1), false);
        ring.record(2, 200, Duration::from_millis(30), false);
        ring.record(3, 200, Duration::from_secs(20), false);
        ring.connect_error(3);
        // Long after the window: the window is empty, the totals are not.
        let s = ring.sum(100, Duration::from_secs(10));
        assert_eq!((s.requests, s.status_5xx, s.connect_errors), (0, 0, 0));
        assert_eq!(
            (s.requests_total, s.status_5xx_total, s.connect_errors_total),
            (4, 1, 1)
        );
        let durations = &s.duration_total;
        assert_eq!(durations.count, 4);
        assert!(
            (durations.sum_seconds - 20.0314).abs() < 1e-9,
            "{durations:?}"
        );
        let at = |le: f64| {
            durations
                .buckets
                .iter()
                .find(|(bound, _)| *bound == le)
                .map(|(_, n)| *n)
        };
        // `le` is "at most": exactly 1 ms falls in the 0.001 bucket.
        assert_eq!(at(0.0005), Some(1));
        assert_eq!(at(0.001), Some(2));
        assert_eq!(at(0.025), Some(2));
        assert_eq!(at(0.05), Some(3));
        assert_eq!(at(10.0), Some(3));
        assert_eq!(
            durations.buckets.len(),
            DURATION_BUCKET_BOUNDS_SECONDS.len()
        );
    }

    #[test]
    fn warm_up_answers_count_everywhere_but_the_window_latency() {
        let ring = StatsRing::new(Duration::from_secs(10));
        // A new instance's first answers: slow, one a crash.
        ring.record(1, 200, Duration::from_millis(900), true);
        ring.record(1, 502, Duration::from_millis(800), true);
        for _ in 0..10 {
            ring.record(2, 200, Duration::from_millis(10), false);
        }
        let s = ring.sum(2, Duration::from_secs(10));
        assert_eq!((s.requests, s.status_5xx, s.warmup_requests), (12, 1, 2));
        assert_eq!(s.latency.count(), 10, "{:?}", s.latency);
        assert!(s.latency.quantile(1.0) < 11.0, "{:?}", s.latency);
        let buckets: Vec<(f64, u64)> = s.latency.buckets().collect();
        assert_eq!(buckets.len(), 1, "{buckets:?}");
        assert!(
            (buckets[0].0 - 10.0).abs() < 0.7 && buckets[0].1 == 10,
            "{buckets:?}"
        );
        // The since-start totals and the Prometheus histogram keep them.
        assert_eq!((s.requests_total, s.status_5xx_total), (12, 1));
        assert_eq!(s.duration_total.count, 12);
        assert!(s.duration_total.sum_seconds > 1.7, "{:?}", s.duration_total);
        // A recycled second forgets its warm-up count too.
        let later = ring.sum(30, Duration::from_secs(10));
        assert_eq!(later.warmup_requests, 0);
    }
}
