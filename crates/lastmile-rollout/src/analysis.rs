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
//! **Latency:** the canary's p95 and p99 over stable's, against
//! `max_p95_ratio` and `max_latency_ratio` (p99), once both sides have at
//! least [`MIN_LATENCY_SAMPLES`] requests; ratios are ignored while both
//! sides are under `latency_floor_ms` (sub-millisecond noise). Absolute
//! ceilings (`max_p95_ms`, `max_p99_ms`) apply on their own.

use serde::Serialize;

/// Requests each side needs before latency is judged.
pub const MIN_LATENCY_SAMPLES: u64 = 20;

/// Lowest error rate assumed for stable (0.1%).
const STABLE_RATE_FLOOR: f64 = 0.001;

/// One release's counters over the analysis window.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Sample {
    /// Requests answered.
    pub requests: u64,
    /// Of which failed (5xx or connection errors).
    pub errors: u64,
    /// 95th percentile latency, ms.
    pub p95_ms: f64,
    /// 99th percentile latency, ms.
    pub p99_ms: f64,
}

impl Sample {
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
    /// Canary p95 / stable p95 above this fails.
    pub max_p95_ratio: f64,
    /// Canary p99 / stable p99 above this fails.
    pub max_p99_ratio: f64,
    /// Absolute p95 ceiling, ms.
    pub max_p95_ms: Option<f64>,
    /// Absolute p99 ceiling, ms.
    pub max_p99_ms: Option<f64>,
    /// Ratios are ignored while both p99s are below this, ms.
    pub latency_floor_ms: f64,
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
        }
    }
}

/// What the error test concluded so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ErrorVerdict {
    /// The canary is worse than stable by at least δ (H1 accepted).
    Worse,
    /// The canary is no worse than stable (H0 accepted).
    NoWorse,
    /// Not enough evidence either way yet.
    Undecided,
}

/// One analysis: the numbers and what they mean.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Analysis {
    /// The canary's counters.
    pub canary: Sample,
    /// Stable's counters over the same window.
    pub stable: Sample,
    /// H0's rate (stable, smoothed and floored).
    pub p0: f64,
    /// H1's rate.
    pub p1: f64,
    /// The log-likelihood ratio.
    pub llr: f64,
    /// `ln((1−β)/α)`: at or above, the canary is worse.
    pub upper: f64,
    /// `ln(β/(1−α))`: at or below, it is no worse.
    pub lower: f64,
    /// The error test's verdict.
    pub errors: ErrorVerdict,
    /// Why latency fails the canary, if it does.
    pub latency_failure: Option<String>,
}

impl Analysis {
    /// Why the canary must be aborted, if it must.
    pub fn failure(&self) -> Option<String> {
        if self.errors == ErrorVerdict::Worse {
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
        self.latency_failure.clone()
    }
}

/// Compares `canary` with `stable` over the same window.
pub fn analyse(canary: Sample, stable: Sample, thresholds: &Thresholds) -> Analysis {
    let alpha = (1.0 - thresholds.confidence).clamp(1e-6, 0.5);
    let beta = alpha;
    let upper = ((1.0 - beta) / alpha).ln();
    let lower = (beta / (1.0 - alpha)).ln();
    let p0 = ((stable.errors as f64 + 0.5) / (stable.requests as f64 + 1.0))
        .clamp(STABLE_RATE_FLOOR, 0.9);
    let p1 = (p0 + thresholds.max_error_rate_increase / 100.0).min(0.999);
    let failures = canary.errors.min(canary.requests) as f64;
    let successes = canary.requests.saturating_sub(canary.errors) as f64;
    let llr = failures * (p1 / p0).ln() + successes * ((1.0 - p1) / (1.0 - p0)).ln();
    let errors = if llr >= upper {
        ErrorVerdict::Worse
    } else if llr <= lower {
        ErrorVerdict::NoWorse
    } else {
        ErrorVerdict::Undecided
    };
    Analysis {
        canary,
        stable,
        p0,
        p1,
        llr,
        upper,
        lower,
        errors,
        latency_failure: latency_failure(&canary, &stable, thresholds),
    }
}

fn latency_failure(canary: &Sample, stable: &Sample, thresholds: &Thresholds) -> Option<String> {
    if canary.requests < MIN_LATENCY_SAMPLES {
        return None;
    }
    if let Some(ceiling) = thresholds.max_p99_ms
        && canary.p99_ms > ceiling
    {
        return Some(format!(
            "p99 latency {:.1} ms is above the ceiling of {ceiling} ms",
            canary.p99_ms
        ));
    }
    if let Some(ceiling) = thresholds.max_p95_ms
        && canary.p95_ms > ceiling
    {
        return Some(format!(
            "p95 latency {:.1} ms is above the ceiling of {ceiling} ms",
            canary.p95_ms
        ));
    }
    if stable.requests < MIN_LATENCY_SAMPLES
        || (canary.p99_ms < thresholds.latency_floor_ms
            && stable.p99_ms < thresholds.latency_floor_ms)
    {
        return None;
    }
    let floor = thresholds.latency_floor_ms.max(0.001);
    let p99_ratio = canary.p99_ms / stable.p99_ms.max(floor);
    if p99_ratio > thresholds.max_p99_ratio {
        return Some(format!(
            "p99 latency {:.1} ms is {p99_ratio:.2}× stable's {:.1} ms (limit {}×)",
            canary.p99_ms, stable.p99_ms, thresholds.max_p99_ratio
        ));
    }
    let p95_ratio = canary.p95_ms / stable.p95_ms.max(floor);
    if p95_ratio > thresholds.max_p95_ratio {
        return Some(format!(
            "p95 latency {:.1} ms is {p95_ratio:.2}× stable's {:.1} ms (limit {}×)",
            canary.p95_ms, stable.p95_ms, thresholds.max_p95_ratio
        ));
    }
    None
}

#[cfg(test)]
mod tests;
