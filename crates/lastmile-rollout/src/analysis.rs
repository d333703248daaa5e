//! Canary analysis on the router's own counters: is the canary worse than
//! stable over the same window?
//!
//! **Errors: Wald's sequential probability ratio test (SPRT).** Each canary
//! request is a Bernoulli trial (5xx or connection error = failure). The
//! test weighs two hypotheses about the canary's error rate `p`:
//!
//! - H0: `p = p0`, where `p0` is stable's rate over the same window,
//!   smoothed `(errors + 0.5) / (requests + 1)` and floored at 0.1% so a
//!   spotless stable does not make one canary error look damning;
//! - H1: `p = p1 = p0 + δ`, where `δ` is the spec's
//!   `max_error_rate_increase` (percentage points, default 1).
//!
//! After `n` canary requests with `e` failures the log-likelihood ratio is
//! `LLR = e·ln(p1/p0) + (n−e)·ln((1−p1)/(1−p0))`. The canary fails when
//! `LLR ≥ ln((1−β)/α)` and passes the error test when `LLR ≤ ln(β/(1−α))`,
//! with `α = 1 − confidence` (the false-alarm rate: a canary as good as
//! stable is rolled back with probability at most α) and `β = α` (the
//! chance of missing a canary that is really `δ` worse). With the defaults
//! (confidence 0.99, δ = 1 pp, stable at 0.1%) a canary failing half its
//! requests is caught after 2 failures, one at 2% after about 120 requests.
//! The test is sequential, so it may be looked at on every tick without
//! inflating α — unlike a fixed-sample test re-run each second.
//!
//! **Latency: the same test on exceedances of each judged quantile.** A
//! quantile of a few dozen requests is just their slowest one, so latency
//! is judged by counting, not by comparing two noisy quantiles. For the
//! quantile `q` (0.99 with `max_latency_ratio`, 0.95 with `max_p95_ratio`)
//! and its ratio `r`:
//!
//! - `t` is stable's `q`-quantile over the window and the threshold is
//!   `T = max(r·t, latency_floor_ms)`;
//! - H1, "the canary's `q`-quantile is at least `T`", means a canary
//!   request takes longer than `T` with probability `p1 = 1 − q`, whatever
//!   the shape of the distribution;
//! - H0, "the canary is like stable", means it does so as often as stable:
//!   `p0` is stable's share above `T`, smoothed `(e + 0.5) / (n + 1)` and
//!   floored at `p1 / 10` (see [`share_floor`]). When `p0 ≥ 0.9·p1` the two
//!   cannot be told apart and the quantile stays undecided;
//! - with `e` of the canary's `n` latency samples above `T`, the LLR and
//!   its bounds are the error test's, with the same `α = β`.
//!
//! No latency verdict is given before the canary has `min_requests`
//! latency samples (at least [`MIN_LATENCY_SAMPLES`]) and stable has
//! `max(min_requests, ⌈10 / (1 − q)⌉)` (1000 for p99, 200 for p95), so
//! stable's quantile rests on at least 10 requests above it. Latency
//! samples exclude each new instance's warm-up (the router's `WarmupRule`).
//! The absolute ceilings `max_p99_ms` and `max_p95_ms` fail a canary whose
//! measured quantile is above them, once it has those samples too.
//!
//! `p0` is re-estimated at each look and the window slides (at most the
//! router's 60 s), so α is an approximate bound here, not an exact one;
//! `bench/canary` measures the real false-alarm rate.

use serde::Serialize;

/// Fewest canary latency samples any latency verdict rests on, whatever
/// the step's `min_requests` says.
pub const MIN_LATENCY_SAMPLES: u64 = 20;

/// Lowest error rate assumed for stable (0.1%).
const STABLE_RATE_FLOOR: f64 = 0.001;

/// Requests above its quantile stable must have seen before the quantile
/// is trusted: stable needs `⌈STABLE_EXCEEDANCES / (1 − q)⌉` samples.
const STABLE_EXCEEDANCES: f64 = 10.0;

/// H0 this close to H1 (`p0 ≥ NOISE_RATIO · p1`) cannot be told apart.
const NOISE_RATIO: f64 = 0.9;

/// The quantiles judged, most extreme first: (q, name).
const QUANTILES: [(f64, &str); 2] = [(0.99, "p99"), (0.95, "p95")];

/// A latency histogram: `(milliseconds, requests)` pairs, ascending by
/// milliseconds, without empty buckets. Built from the router's window
/// histogram (bucket middles, about 6% apart); histograms of several hosts
/// merge by adding the counts of equal values.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Latencies {
    buckets: Vec<(f64, u64)>,
    count: u64,
}

impl Latencies {
    /// Sorts and merges `counts`; negative, non-finite and empty entries are
    /// dropped (a remote host's numbers are outside input).
    pub fn from_counts(counts: impl IntoIterator<Item = (f64, u64)>) -> Latencies {
        let mut sorted: Vec<(f64, u64)> = counts
            .into_iter()
            .filter(|(ms, requests)| ms.is_finite() && *ms >= 0.0 && *requests > 0)
            .collect();
        sorted.sort_by(|a, b| a.0.total_cmp(&b.0));
        let mut buckets: Vec<(f64, u64)> = Vec::with_capacity(sorted.len());
        for (ms, requests) in sorted {
            match buckets.last_mut() {
                Some(last) if last.0 == ms => last.1 = last.1.saturating_add(requests),
                _ => buckets.push((ms, requests)),
            }
        }
        let count = buckets
            .iter()
            .fold(0u64, |sum, (_, requests)| sum.saturating_add(*requests));
        Latencies { buckets, count }
    }

    /// Adds `other`'s samples (another host's histogram of the same release).
    pub fn merge(&mut self, other: &Latencies) {
        *self = Latencies::from_counts(self.buckets.iter().chain(&other.buckets).copied());
    }

    /// Samples in the histogram.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// The `(milliseconds, requests)` pairs, ascending.
    pub fn buckets(&self) -> &[(f64, u64)] {
        &self.buckets
    }

    /// The `q` quantile (0.0..=1.0) in milliseconds: the value of the first
    /// bucket at which `⌈q·count⌉` samples are reached; 0 when empty.
    pub fn quantile(&self, q: f64) -> f64 {
        if self.count == 0 {
            return 0.0;
        }
        let q = if q.is_nan() { 0.5 } else { q.clamp(0.0, 1.0) };
        let target = ((q * self.count as f64).ceil() as u64).max(1);
        let mut seen = 0u64;
        for (ms, requests) in &self.buckets {
            seen = seen.saturating_add(*requests);
            if seen >= target {
                return *ms;
            }
        }
        self.buckets.last().map_or(0.0, |(ms, _)| *ms)
    }

    /// Samples that took longer than `ms`.
    pub fn above(&self, ms: f64) -> u64 {
        let first = self.buckets.partition_point(|(value, _)| *value <= ms);
        self.buckets[first..]
            .iter()
            .fold(0u64, |sum, (_, requests)| sum.saturating_add(*requests))
    }
}

/// One release's counters over the analysis window.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Sample {
    /// Requests answered.
    pub requests: u64,
    /// Of which failed (5xx or connection errors).
    pub errors: u64,
    /// Of the requests, those answered by instances still warming up: in
    /// `requests` and `errors`, not in the latency.
    pub warmup_requests: u64,
    /// Requests whose latency is judged (the histogram's count).
    pub latency_samples: u64,
    /// Median latency, ms.
    pub p50_ms: f64,
    /// 95th percentile latency, ms.
    pub p95_ms: f64,
    /// 99th percentile latency, ms.
    pub p99_ms: f64,
    /// The latency histogram; not serialized (events are written every tick).
    #[serde(skip)]
    pub latencies: Latencies,
}

impl Sample {
    /// A sample with its quantiles read from `latencies`.
    pub fn new(requests: u64, errors: u64, warmup_requests: u64, latencies: Latencies) -> Sample {
        Sample {
            requests,
            errors,
            warmup_requests,
            latency_samples: latencies.count(),
            p50_ms: latencies.quantile(0.50),
            p95_ms: latencies.quantile(0.95),
            p99_ms: latencies.quantile(0.99),
            latencies,
        }
    }

    /// Adds another host's counters of the same release.
    pub fn merge(&mut self, other: &Sample) {
        let mut latencies = std::mem::take(&mut self.latencies);
        latencies.merge(&other.latencies);
        *self = Sample::new(
            self.requests.saturating_add(other.requests),
            self.errors.saturating_add(other.errors),
            self.warmup_requests.saturating_add(other.warmup_requests),
            latencies,
        );
    }

    /// Errors over requests, 0 without requests.
    pub fn error_rate(&self) -> f64 {
        if self.requests == 0 {
            0.0
        } else {
            self.errors as f64 / self.requests as f64
        }
    }
}

/// The limits analysis judges against (from the spec).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Thresholds {
    /// δ: how many percentage points worse than stable is a failure.
    pub max_error_rate_increase: f64,
    /// 1 − α.
    pub confidence: f64,
    /// The p95 slowdown (canary over stable) the latency test must catch.
    pub max_p95_ratio: f64,
    /// The p99 slowdown (canary over stable) the latency test must catch.
    pub max_p99_ratio: f64,
    /// Absolute p95 ceiling, ms.
    pub max_p95_ms: Option<f64>,
    /// Absolute p99 ceiling, ms.
    pub max_p99_ms: Option<f64>,
    /// The latency threshold is never below this, ms.
    pub latency_floor_ms: f64,
    /// Latency samples the canary needs before latency is judged (the
    /// phase's `min_requests`; at least [`MIN_LATENCY_SAMPLES`] apply).
    pub min_requests: u64,
}

impl Default for Thresholds {
    fn default() -> Thresholds {
        Thresholds {
            max_error_rate_increase: 1.0,
            confidence: 0.99,
            max_p95_ratio: 1.5,
            max_p99_ratio: 1.5,
            max_p95_ms: None,
            max_p99_ms: None,
            latency_floor_ms: 5.0,
            min_requests: 100,
        }
    }
}

/// What a test concluded so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Verdict {
    /// The canary is worse than stable by at least the effect size (H1 accepted).
    Worse,
    /// The canary is no worse than stable (H0 accepted).
    NoWorse,
    /// Not enough evidence either way yet.
    Undecided,
}

/// The latency test of one quantile: the numbers and what they mean.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LatencyTest {
    /// `p99` or `p95`.
    pub name: &'static str,
    /// The quantile, 0.99 or 0.95.
    pub quantile: f64,
    /// The canary's measured quantile, ms.
    pub canary_ms: f64,
    /// Stable's measured quantile, ms.
    pub stable_ms: f64,
    /// The slowdown to catch (`max_latency_ratio` or `max_p95_ratio`).
    pub ratio: f64,
    /// `max(ratio × stable_ms, latency_floor_ms)`: what counts as slow.
    pub threshold_ms: f64,
    /// The absolute ceiling on the canary's quantile, if any.
    pub ceiling_ms: Option<f64>,
    /// Canary latency samples above the threshold.
    pub canary_above: u64,
    /// Canary latency samples.
    pub canary_samples: u64,
    /// Stable latency samples above the threshold.
    pub stable_above: u64,
    /// Stable latency samples.
    pub stable_samples: u64,
    /// H0's share above the threshold (stable's, smoothed and floored).
    pub p0: f64,
    /// H1's share above the threshold, `1 − quantile`.
    pub p1: f64,
    /// The log-likelihood ratio (0 until both sides have enough samples).
    pub llr: f64,
    /// What the test concluded.
    pub verdict: Verdict,
    /// The verdict in plain words, with the numbers behind it.
    pub why: String,
}

/// One analysis: the numbers and what they mean.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Analysis {
    /// The canary's counters.
    pub canary: Sample,
    /// Stable's counters over the same window.
    pub stable: Sample,
    /// The error test's H0 rate (stable, smoothed and floored).
    pub p0: f64,
    /// The error test's H1 rate.
    pub p1: f64,
    /// The error test's log-likelihood ratio.
    pub llr: f64,
    /// `ln((1−β)/α)`: at or above, the canary is worse (both tests).
    pub upper: f64,
    /// `ln(β/(1−α))`: at or below, it is no worse (both tests).
    pub lower: f64,
    /// The error test's verdict.
    pub errors: Verdict,
    /// The latency test of each judged quantile, p99 first.
    pub latency: Vec<LatencyTest>,
}

impl Analysis {
    /// Why the canary must be aborted, if it must.
    pub fn failure(&self) -> Option<String> {
        if self.errors == Verdict::Worse {
            return Some(format!(
                "error rate {:.2}% ({} of {}) against stable's {:.2}% ({} of {}): the sequential test says it is at least {:.2} points worse (LLR {:.2} ≥ {:.2})",
                self.canary.error_rate() * 100.0,
                self.canary.errors,
                self.canary.requests,
                self.stable.error_rate() * 100.0,
                self.stable.errors,
                self.stable.requests,
                (self.p1 - self.p0) * 100.0,
                self.llr,
                self.upper
            ));
        }
        self.latency
            .iter()
            .find(|test| test.verdict == Verdict::Worse)
            .map(|test| test.why.clone())
    }

    /// One line on where the latency tests stand, for progress output.
    pub fn latency_summary(&self) -> String {
        let parts: Vec<String> = self
            .latency
            .iter()
            .map(|test| match test.verdict {
                Verdict::Worse => format!("{} worse", test.name),
                Verdict::NoWorse => format!("{} no worse", test.name),
                Verdict::Undecided => format!("{} undecided", test.name),
            })
            .collect();
        parts.join(", ")
    }
}

/// `α`, and the SPRT's bounds `(upper, lower)`, from the confidence.
fn bounds(confidence: f64) -> (f64, f64) {
    let confidence = if confidence.is_nan() {
        0.99
    } else {
        confidence
    };
    let alpha = (1.0 - confidence).clamp(1e-6, 0.5);
    let beta = alpha;
    (((1.0 - beta) / alpha).ln(), (beta / (1.0 - alpha)).ln())
}

/// The lowest share above the threshold H0 may claim for stable: a tenth
/// of H1's. Stable's tail beyond `r·t` is estimated from few requests
/// (often none are there), and slow answers come in bursts (a pause of one
/// process slows several requests at once); without this floor two slow
/// canary requests in a hundred would already fail a good canary.
pub fn share_floor(p1: f64) -> f64 {
    (p1 / 10.0).max(1e-4)
}

/// Compares `canary` with `stable` over the same window.
pub fn analyse(canary: &Sample, stable: &Sample, thresholds: &Thresholds) -> Analysis {
    let (upper, lower) = bounds(thresholds.confidence);
    let p0 = ((stable.errors as f64 + 0.5) / (stable.requests as f64 + 1.0))
        .clamp(STABLE_RATE_FLOOR, 0.9);
    let increase = thresholds.max_error_rate_increase / 100.0;
    let increase = if increase.is_finite() {
        increase.max(0.0)
    } else {
        0.01
    };
    let p1 = (p0 + increase).min(0.999);
    let failures = canary.errors.min(canary.requests) as f64;
    let successes = canary.requests.saturating_sub(canary.errors) as f64;
    let llr = if p1 > p0 {
        failures * (p1 / p0).ln() + successes * ((1.0 - p1) / (1.0 - p0)).ln()
    } else {
        0.0
    };
    let errors = if llr >= upper {
        Verdict::Worse
    } else if llr <= lower {
        Verdict::NoWorse
    } else {
        Verdict::Undecided
    };
    let latency = QUANTILES
        .iter()
        .map(|&(quantile, name)| {
            let (ratio, ceiling_ms) = if quantile >= 0.99 {
                (thresholds.max_p99_ratio, thresholds.max_p99_ms)
            } else {
                (thresholds.max_p95_ratio, thresholds.max_p95_ms)
            };
            latency_test(
                name,
                quantile,
                ratio,
                ceiling_ms,
                canary,
                stable,
                thresholds,
                (upper, lower),
            )
        })
        .collect();
    Analysis {
        canary: canary.clone(),
        stable: stable.clone(),
        p0,
        p1,
        llr,
        upper,
        lower,
        errors,
        latency,
    }
}

/// The sequential test on exceedances of one quantile (see the module doc).
#[allow(clippy::too_many_arguments)]
fn latency_test(
    name: &'static str,
    quantile: f64,
    ratio: f64,
    ceiling_ms: Option<f64>,
    canary: &Sample,
    stable: &Sample,
    thresholds: &Thresholds,
    (upper, lower): (f64, f64),
) -> LatencyTest {
    let ratio = if ratio.is_finite() {
        ratio.max(1.0)
    } else {
        1.0
    };
    let floor = if thresholds.latency_floor_ms.is_finite() {
        thresholds.latency_floor_ms.max(0.0)
    } else {
        0.0
    };
    let canary_ms = canary.latencies.quantile(quantile);
    let stable_ms = stable.latencies.quantile(quantile);
    let threshold_ms = (ratio * stable_ms).max(floor);
    let p1 = 1.0 - quantile;
    let canary_samples = canary.latencies.count();
    let stable_samples = stable.latencies.count();
    let stable_above = stable.latencies.above(threshold_ms);
    let canary_above = canary.latencies.above(threshold_ms);
    let p0 =
        ((stable_above as f64 + 0.5) / (stable_samples as f64 + 1.0)).clamp(share_floor(p1), 0.999);
    let mut test = LatencyTest {
        name,
        quantile,
        canary_ms,
        stable_ms,
        ratio,
        threshold_ms,
        ceiling_ms: ceiling_ms.filter(|ceiling| ceiling.is_finite()),
        canary_above,
        canary_samples,
        stable_above,
        stable_samples,
        p0,
        p1,
        llr: 0.0,
        verdict: Verdict::Undecided,
        why: String::new(),
    };
    let canary_needed = thresholds.min_requests.max(MIN_LATENCY_SAMPLES);
    if canary_samples < canary_needed {
        test.why = format!(
            "{name} latency undecided: {canary_samples} of the {canary_needed} canary latency samples it needs (warm-up answers left out)"
        );
        return test;
    }
    if let Some(ceiling) = test.ceiling_ms
        && canary_ms > ceiling
    {
        test.verdict = Verdict::Worse;
        test.why = format!(
            "{name} latency {canary_ms:.1} ms over {canary_samples} canary requests is above the ceiling of {ceiling} ms"
        );
        return test;
    }
    let stable_needed = thresholds
        .min_requests
        .max((STABLE_EXCEEDANCES / p1).ceil() as u64);
    if stable_samples < stable_needed {
        test.why = format!(
            "{name} latency undecided: {stable_samples} of the {stable_needed} stable latency samples its {name} must rest on"
        );
        return test;
    }
    if p0 >= NOISE_RATIO * p1 {
        test.why = format!(
            "{name} latency undecided: {} of stable's own requests take over {threshold_ms:.1} ms, about the {} a canary {ratio}× slower would have, so the two cannot be told apart",
            percent(stable_above, stable_samples),
            percent_text(p1),
        );
        return test;
    }
    let above = canary_above.min(canary_samples) as f64;
    let below = canary_samples.saturating_sub(canary_above) as f64;
    test.llr = above * (p1 / p0).ln() + below * ((1.0 - p1) / (1.0 - p0)).ln();
    let slow = if ratio * stable_ms >= floor {
        format!("{ratio}× stable's {name} of {stable_ms:.1} ms")
    } else {
        format!("the latency floor; {ratio}× stable's {name} of {stable_ms:.1} ms is below it")
    };
    let claim = if ratio * stable_ms >= floor {
        format!("at least {ratio}× stable's")
    } else {
        format!("above {threshold_ms:.1} ms")
    };
    if test.llr >= upper {
        test.verdict = Verdict::Worse;
        test.why = format!(
            "{name} latency: {canary_above} of {canary_samples} canary requests ({}) took over {threshold_ms:.1} ms ({slow}), against {} of stable's {stable_samples}; the sequential test says the canary's {name} is {claim} (LLR {:.2} ≥ {upper:.2})",
            percent(canary_above, canary_samples),
            percent(stable_above, stable_samples),
            test.llr,
        );
    } else if test.llr <= lower {
        test.verdict = Verdict::NoWorse;
        test.why = format!(
            "{name} latency no worse: {canary_above} of {canary_samples} canary requests took over {threshold_ms:.1} ms ({slow}) (LLR {:.2} ≤ {lower:.2})",
            test.llr,
        );
    } else {
        test.why = format!(
            "{name} latency undecided: {canary_above} of {canary_samples} canary requests took over {threshold_ms:.1} ms ({slow}) (LLR {:.2}, between {lower:.2} and {upper:.2})",
            test.llr,
        );
    }
    test
}

/// `part` of `whole` as a percentage with two significant decimals.
fn percent(part: u64, whole: u64) -> String {
    if whole == 0 {
        return "0%".to_string();
    }
    percent_text(part as f64 / whole as f64)
}

/// A share as a percentage: `6.1%`, `0.10%`.
fn percent_text(share: f64) -> String {
    let value = share * 100.0;
    if value >= 1.0 {
        format!("{value:.1}%")
    } else {
        format!("{value:.2}%")
    }
}

#[cfg(test)]
mod tests;
