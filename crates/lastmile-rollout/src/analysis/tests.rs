#![allow(clippy::unwrap_used, reason = "a failed unwrap is a failed test")]

use super::*;

fn sample(requests: u64, errors: u64) -> Sample {
    Sample {
        requests,
        errors,
        p95_ms: 2.0,
        p99_ms: 3.0,
    }
}

/// A small deterministic generator, so the simulations below are
/// repeatable.
struct XorShift(u64);

impl XorShift {
    fn uniform(&mut self) -> f64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// Runs a canary with error rate `canary_rate` beside a stable with
/// `stable_rate` at 20 stable requests per canary request, looking after
/// every canary request; returns the canary requests it took to fail, or
/// `None` when `budget` requests passed without failing.
fn requests_to_fail(
    random: &mut XorShift,
    canary_rate: f64,
    stable_rate: f64,
    budget: u64,
) -> Option<u64> {
    let thresholds = Thresholds::default();
    let (mut canary, mut stable) = (Sample::default(), Sample::default());
    for request in 1..=budget {
        canary.requests += 1;
        if random.uniform() < canary_rate {
            canary.errors += 1;
        }
        for _ in 0..20 {
            stable.requests += 1;
            if random.uniform() < stable_rate {
                stable.errors += 1;
            }
        }
        if analyse(canary, stable, &thresholds).errors == ErrorVerdict::Worse {
            return Some(request);
        }
    }
    None
}

#[test]
fn a_clean_canary_is_no_worse_and_a_failing_one_is_worse() {
    let thresholds = Thresholds::default();
    let clean = analyse(sample(2000, 1), sample(20000, 20), &thresholds);
    assert_eq!(clean.errors, ErrorVerdict::NoWorse, "{clean:?}");
    assert_eq!(clean.failure(), None);
    let failing = analyse(sample(10, 5), sample(200, 0), &thresholds);
    assert_eq!(failing.errors, ErrorVerdict::Worse, "{failing:?}");
    let message = failing.failure().unwrap();
    assert!(message.contains("50.00% (5 of 10)"), "{message}");
    let early = analyse(sample(3, 0), sample(60, 0), &thresholds);
    assert_eq!(early.errors, ErrorVerdict::Undecided, "{early:?}");
}

#[test]
fn half_failing_canaries_are_caught_within_a_handful_of_requests() {
    let mut random = XorShift(0x9E37_79B9_7F4A_7C15);
    let mut took: Vec<u64> = (0..200)
        .map(|_| requests_to_fail(&mut random, 0.5, 0.001, 100).expect("caught"))
        .collect();
    took.sort_unstable();
    assert!(took[100] <= 8, "median {} requests", took[100]);
    assert!(took[199] <= 30, "worst {} requests", took[199]);
}

#[test]
fn a_canary_two_points_worse_is_caught() {
    let mut random = XorShift(42);
    let mut caught = Vec::new();
    for _ in 0..200 {
        caught.extend(requests_to_fail(&mut random, 0.02, 0.001, 5000));
    }
    assert!(caught.len() >= 196, "caught only {} of 200", caught.len());
    caught.sort_unstable();
    let median = caught[caught.len() / 2];
    assert!((40..=600).contains(&median), "median {median} requests");
}

#[test]
fn good_canaries_are_rarely_rolled_back() {
    // α = 1%: looking after every request must not inflate it much.
    let mut random = XorShift(7);
    let runs = 1000;
    let false_alarms = (0..runs)
        .filter(|_| requests_to_fail(&mut random, 0.001, 0.001, 3000).is_some())
        .count();
    assert!(
        false_alarms <= 20,
        "{false_alarms} false alarms in {runs} runs"
    );
}

#[test]
fn latency_needs_samples_respects_the_floor_and_ceilings() {
    let thresholds = Thresholds {
        max_p99_ms: Some(500.0),
        ..Thresholds::default()
    };
    let slow = |requests, p99_ms| Sample {
        requests,
        errors: 0,
        p95_ms: p99_ms * 0.8,
        p99_ms,
    };
    // Too few canary requests: no verdict.
    assert_eq!(
        latency_failure(&slow(5, 400.0), &slow(100, 10.0), &thresholds),
        None
    );
    // 4× stable.
    let failure = latency_failure(&slow(50, 40.0), &slow(100, 10.0), &thresholds).unwrap();
    assert!(
        failure.contains("p99 latency 40.0 ms is 4.00× stable's 10.0 ms"),
        "{failure}"
    );
    // Both under the floor: a ratio of 3 means nothing.
    assert_eq!(
        latency_failure(&slow(50, 0.9), &slow(100, 0.3), &thresholds),
        None
    );
    // Absolute ceiling, whatever stable does.
    let failure = latency_failure(&slow(50, 600.0), &slow(100, 590.0), &thresholds).unwrap();
    assert!(failure.contains("above the ceiling of 500 ms"), "{failure}");
}
