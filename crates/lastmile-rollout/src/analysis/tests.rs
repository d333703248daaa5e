#![allow(clippy::unwrap_used, reason = "a failed unwrap is a failed test")]

use proptest::prelude::*;

use super::*;

fn sample(requests: u64, errors: u64) -> Sample {
    Sample::new(requests, errors, 0, Latencies::default())
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

    /// Exponential with mean `mean`.
    fn exponential(&mut self, mean: f64) -> f64 {
        -mean * (1.0 - self.uniform()).ln()
    }

    /// Standard normal (Box–Muller).
    fn normal(&mut self) -> f64 {
        let radius = (-2.0 * (1.0 - self.uniform()).ln()).sqrt();
        radius * (std::f64::consts::TAU * self.uniform()).cos()
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
        if analyse(&canary, &stable, &thresholds).errors == Verdict::Worse {
            return Some(request);
        }
    }
    None
}

#[test]
fn a_clean_canary_is_no_worse_and_a_failing_one_is_worse() {
    let thresholds = Thresholds::default();
    let clean = analyse(&sample(2000, 1), &sample(20000, 20), &thresholds);
    assert_eq!(clean.errors, Verdict::NoWorse, "{clean:?}");
    assert_eq!(clean.failure(), None);
    let failing = analyse(&sample(10, 5), &sample(200, 0), &thresholds);
    assert_eq!(failing.errors, Verdict::Worse, "{failing:?}");
    let message = failing.failure().unwrap();
    assert!(message.contains("50.00% (5 of 10)"), "{message}");
    let early = analyse(&sample(3, 0), &sample(60, 0), &thresholds);
    assert_eq!(early.errors, Verdict::Undecided, "{early:?}");
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

// Latency.

/// The router's window histogram: 16 buckets per power of two of
/// microseconds (`lastmile-router`'s `stats.rs`), so the simulations see
/// the same quantisation as the real analysis.
const SUB_BITS: u32 = 4;
const SUB: usize = 1 << SUB_BITS;
const BUCKETS: usize = SUB + 23 * SUB;

fn bucket_of(ms: f64) -> usize {
    let us = (ms * 1000.0) as u64;
    if us < SUB as u64 {
        return us as usize;
    }
    let log = 63 - us.leading_zeros();
    let sub = ((us >> (log - SUB_BITS)) as usize) & (SUB - 1);
    (SUB + (log - SUB_BITS) as usize * SUB + sub).min(BUCKETS - 1)
}

fn bucket_ms(idx: usize) -> f64 {
    if idx < SUB {
        return idx as f64 / 1000.0;
    }
    let octave = (idx - SUB) / SUB;
    let sub = (idx - SUB) % SUB;
    let low = ((SUB + sub) as u64) << octave;
    (low as f64 + (1u64 << octave) as f64 / 2.0) / 1000.0
}

/// Latencies as the router would count them.
struct Histogram([u64; BUCKETS]);

impl Histogram {
    fn new() -> Histogram {
        Histogram([0; BUCKETS])
    }

    fn add(&mut self, ms: f64) {
        self.0[bucket_of(ms)] += 1;
    }

    fn latencies(&self) -> Latencies {
        Latencies::from_counts(
            self.0
                .iter()
                .enumerate()
                .map(|(idx, requests)| (bucket_ms(idx), *requests)),
        )
    }

    fn sample(&self) -> Sample {
        let latencies = self.latencies();
        Sample::new(latencies.count(), 0, 0, latencies)
    }
}

/// A latency distribution, in ms.
type Draw = fn(&mut XorShift) -> f64;

/// A service at about 60 ms p99: 50 ms plus exponential jitter.
fn sixty_ms_service(random: &mut XorShift) -> f64 {
    50.0 + random.exponential(2.2)
}

/// A heavy tail: log-normal, median 20 ms, σ 0.6 (p99 about 81 ms).
fn heavy_tail(random: &mut XorShift) -> f64 {
    20.0 * (0.6 * random.normal()).exp()
}

/// A local service well under the floor: 0.4 ms plus jitter.
fn sub_millisecond(random: &mut XorShift) -> f64 {
    0.4 + random.exponential(0.2)
}

/// A cache: 90% hits at about 2 ms, misses at about 40 ms.
fn cache(random: &mut XorShift) -> f64 {
    if random.uniform() < 0.9 {
        2.0 + random.exponential(0.3)
    } else {
        40.0 + 5.0 * random.normal().abs()
    }
}

fn heavy_tail_one_and_a_half_times(random: &mut XorShift) -> f64 {
    1.5 * heavy_tail(random)
}

fn sixty_ms_service_plus_thirty(random: &mut XorShift) -> f64 {
    sixty_ms_service(random) + 30.0
}

fn sixty_ms_service_twice_as_slow(random: &mut XorShift) -> f64 {
    2.0 * sixty_ms_service(random)
}

fn cache_with_slower_misses(random: &mut XorShift) -> f64 {
    if random.uniform() < 0.9 {
        2.0 + random.exponential(0.3)
    } else {
        70.0 + 5.0 * random.normal().abs()
    }
}

/// One canary step at 10% weight (9 stable requests per canary request),
/// looked at every `look_every` canary requests: the canary latency
/// samples at the first latency failure, or `None` after `budget` samples.
fn samples_to_fail(
    random: &mut XorShift,
    stable: Draw,
    canary: Draw,
    budget: u64,
    look_every: u64,
) -> Option<u64> {
    let thresholds = Thresholds::default();
    let (mut canary_histogram, mut stable_histogram) = (Histogram::new(), Histogram::new());
    for request in 1..=budget {
        canary_histogram.add(canary(random));
        for _ in 0..9 {
            stable_histogram.add(stable(random));
        }
        if request % look_every == 0 {
            let analysis = analyse(
                &canary_histogram.sample(),
                &stable_histogram.sample(),
                &thresholds,
            );
            if analysis.failure().is_some() {
                return Some(request);
            }
        }
    }
    None
}

#[test]
fn a_canary_like_stable_is_almost_never_judged_slower() {
    // Each run is a step looked at every 10 canary requests up to 1500:
    // 150 looks a run, 15 000 per distribution. α = 1% per quantile test,
    // so at most 2% of runs may fail on average; allow three standard
    // deviations above that.
    let runs = 100u32;
    let alpha = 1.0 - Thresholds::default().confidence;
    let expected = 2.0 * alpha * f64::from(runs);
    let bound = (expected + 3.0 * expected.sqrt()).ceil() as usize;
    let table: [(&str, Draw); 4] = [
        ("60 ms service", sixty_ms_service),
        ("heavy tail", heavy_tail),
        ("sub-millisecond", sub_millisecond),
        ("cache hits and misses", cache),
    ];
    for (seed, (name, draw)) in (1u64..).zip(table) {
        let mut random = XorShift(seed * 0x9E37_79B9);
        let false_alarms = (0..runs)
            .filter(|_| samples_to_fail(&mut random, draw, draw, 1500, 10).is_some())
            .count();
        println!("{name}: {false_alarms} false alarms in {runs} runs of 150 looks (bound {bound})");
        assert!(
            false_alarms <= bound,
            "{name}: {false_alarms} false alarms in {runs} runs (bound {bound})"
        );
    }
}

#[test]
fn slower_canaries_are_caught_within_a_few_hundred_requests() {
    // (name, stable, canary, most misses of 100, highest median samples)
    let table: [(&str, Draw, Draw, usize, u64); 4] = [
        (
            "p99 1.5× on a heavy tail",
            heavy_tail,
            heavy_tail_one_and_a_half_times,
            5,
            600,
        ),
        (
            "+30 ms on a 60 ms service",
            sixty_ms_service,
            sixty_ms_service_plus_thirty,
            5,
            600,
        ),
        (
            "twice as slow",
            sixty_ms_service,
            sixty_ms_service_twice_as_slow,
            0,
            100,
        ),
        (
            "slower cache misses",
            cache,
            cache_with_slower_misses,
            0,
            100,
        ),
    ];
    for (seed, (name, stable, canary, most_misses, highest_median)) in (11u64..).zip(table) {
        let mut random = XorShift(seed * 0x2545_F491);
        let mut caught: Vec<u64> = Vec::new();
        for _ in 0..100 {
            caught.extend(samples_to_fail(&mut random, stable, canary, 3000, 5));
        }
        caught.sort_unstable();
        let misses = 100 - caught.len();
        let median = caught.get(caught.len() / 2).copied().unwrap_or(u64::MAX);
        println!(
            "{name}: caught {} of 100, median {median} canary samples",
            caught.len()
        );
        assert!(misses <= most_misses, "{name}: missed {misses} of 100");
        assert!(
            median <= highest_median,
            "{name}: median {median} canary samples"
        );
    }
}

/// `requests` latencies at `ms` each.
fn flat(requests: u64, ms: f64) -> Sample {
    let latencies = Latencies::from_counts([(ms, requests)]);
    Sample::new(requests, 0, 0, latencies)
}

/// A stable side with most requests at `ms` and a 2% tail at 1.2×.
fn stable_at(requests: u64, ms: f64) -> Sample {
    let tail = requests / 50;
    let latencies = Latencies::from_counts([(ms, requests - tail), (ms * 1.2, tail)]);
    Sample::new(requests, 0, 0, latencies)
}

#[test]
fn no_latency_verdict_before_min_requests_however_wild() {
    // (case, canary, stable, min_requests)
    let table = [
        // The case: decided at 27 canary requests.
        (
            "27 requests, 2.1×",
            flat(27, 10.5),
            stable_at(3000, 3.8),
            100,
        ),
        (
            "35 requests, 3.2×",
            flat(35, 104.4),
            stable_at(3000, 32.3),
            100,
        ),
        (
            "99 requests, 100×",
            flat(99, 1000.0),
            stable_at(3000, 10.0),
            100,
        ),
        (
            "19 requests, min_requests 0",
            flat(19, 1000.0),
            stable_at(3000, 10.0),
            0,
        ),
        (
            "stable too thin for p99",
            flat(500, 1000.0),
            stable_at(150, 10.0),
            100,
        ),
    ];
    for (case, canary, stable, min_requests) in table {
        let thresholds = Thresholds {
            min_requests,
            ..Thresholds::default()
        };
        let analysis = analyse(&canary, &stable, &thresholds);
        assert_eq!(analysis.failure(), None, "{case}: {analysis:#?}");
        for test in &analysis.latency {
            assert_eq!(test.verdict, Verdict::Undecided, "{case}: {test:#?}");
            assert!(test.why.contains("undecided"), "{case}: {}", test.why);
        }
    }
    // With the samples, the same wild canary fails.
    let analysis = analyse(
        &flat(100, 1000.0),
        &stable_at(3000, 10.0),
        &Thresholds::default(),
    );
    assert!(analysis.failure().is_some(), "{analysis:#?}");
}

#[test]
fn the_floor_keeps_sub_millisecond_noise_out() {
    let thresholds = Thresholds::default();
    // 3× stable, but all under the 5 ms floor: no exceedance, no worse.
    let analysis = analyse(&flat(2000, 0.9), &stable_at(20_000, 0.3), &thresholds);
    assert_eq!(analysis.failure(), None, "{analysis:#?}");
    let p99 = &analysis.latency[0];
    assert_eq!(p99.threshold_ms, 5.0);
    assert_eq!(p99.verdict, Verdict::NoWorse, "{p99:#?}");
    // 5% of answers above the floor: slower, and the message says the
    // floor set the threshold.
    let canary = Sample::new(
        2000,
        0,
        0,
        Latencies::from_counts([(0.9, 1900), (8.0, 100)]),
    );
    let analysis = analyse(&canary, &stable_at(20_000, 0.3), &thresholds);
    let failure = analysis.failure().unwrap();
    assert!(
        failure.contains("took over 5.0 ms (the latency floor"),
        "{failure}"
    );
}

#[test]
fn ceilings_apply_once_the_canary_has_its_samples() {
    let thresholds = Thresholds {
        max_p99_ms: Some(500.0),
        max_p95_ms: Some(300.0),
        ..Thresholds::default()
    };
    // Too few samples: no verdict, even far above the ceiling.
    let few = analyse(&flat(50, 900.0), &stable_at(5000, 890.0), &thresholds);
    assert_eq!(few.failure(), None, "{few:#?}");
    // Enough: the ceiling fails it though stable is as slow (stable's
    // own count is not needed for a ceiling).
    let enough = analyse(&flat(150, 600.0), &stable_at(150, 590.0), &thresholds);
    let failure = enough.failure().unwrap();
    assert!(
        failure.contains(
            "p99 latency 600.0 ms over 150 canary requests is above the ceiling of 500 ms"
        ),
        "{failure}"
    );
    // Under the p99 ceiling, over the p95 one.
    let canary = Sample::new(
        200,
        0,
        0,
        Latencies::from_counts([(100.0, 180), (400.0, 20)]),
    );
    let p95 = analyse(&canary, &stable_at(5000, 390.0), &thresholds);
    let failure = p95.failure().unwrap();
    assert!(failure.starts_with("p95 latency 400.0 ms"), "{failure}");
}

#[test]
fn every_latency_verdict_reads_plainly() {
    let stable = Sample::new(
        2092,
        0,
        0,
        Latencies::from_counts([(40.0, 1500), (50.0, 560), (60.0, 30), (100.0, 2)]),
    );
    let slow_tail = Sample::new(
        230,
        0,
        5,
        Latencies::from_counts([(40.0, 150), (50.0, 60), (60.0, 6), (120.0, 14)]),
    );
    let like_stable = Sample::new(
        2092,
        0,
        0,
        Latencies::from_counts([(40.0, 1500), (50.0, 562), (60.0, 30)]),
    );
    let one_slow = Sample::new(
        230,
        0,
        0,
        Latencies::from_counts([(40.0, 170), (50.0, 59), (120.0, 1)]),
    );
    let noisy_stable = Sample::new(
        2000,
        0,
        0,
        Latencies::from_counts([(1.0, 1975), (1.5, 5), (9.0, 20)]),
    );
    let cases = [
        (
            "slow tail",
            slow_tail.clone(),
            stable.clone(),
            Thresholds::default(),
        ),
        (
            "like stable",
            like_stable,
            stable.clone(),
            Thresholds::default(),
        ),
        (
            "one slow request",
            one_slow,
            stable.clone(),
            Thresholds::default(),
        ),
        (
            "27 requests",
            flat(27, 10.5),
            stable_at(3000, 3.8),
            Thresholds::default(),
        ),
        (
            "stable too thin",
            flat(300, 50.0),
            stable_at(400, 40.0),
            Thresholds::default(),
        ),
        (
            "under the floor",
            Sample::new(500, 0, 0, Latencies::from_counts([(1.0, 480), (8.0, 20)])),
            stable_at(20_000, 1.0),
            Thresholds::default(),
        ),
        (
            "noisy stable",
            flat(500, 1.0),
            noisy_stable,
            Thresholds {
                latency_floor_ms: 1.4,
                ..Thresholds::default()
            },
        ),
        (
            "ceiling",
            flat(150, 600.0),
            stable.clone(),
            Thresholds {
                max_p99_ms: Some(500.0),
                ..Thresholds::default()
            },
        ),
    ];
    let mut text = String::new();
    for (case, canary, stable, thresholds) in cases {
        let analysis = analyse(&canary, &stable, &thresholds);
        text.push_str(&format!("{case}:\n"));
        for test in &analysis.latency {
            text.push_str(&format!("  {}\n", test.why));
        }
        text.push_str(&format!(
            "  failure: {}\n",
            analysis.failure().unwrap_or_else(|| "none".to_string())
        ));
    }
    insta::assert_snapshot!(text);
}

#[test]
fn histograms_merge_across_hosts() {
    let one = Latencies::from_counts([(2.0, 3), (1.0, 1), (f64::NAN, 9), (-1.0, 2), (4.0, 0)]);
    let two = Latencies::from_counts([(2.0, 1), (8.0, 4)]);
    assert_eq!(one.buckets(), &[(1.0, 1), (2.0, 3)]);
    let mut merged = one.clone();
    merged.merge(&two);
    assert_eq!(merged.buckets(), &[(1.0, 1), (2.0, 4), (8.0, 4)]);
    assert_eq!(merged.count(), 9);
    assert_eq!(merged.quantile(0.5), 2.0);
    assert_eq!(merged.quantile(0.99), 8.0);
    assert_eq!(merged.above(2.0), 4);
    assert_eq!(merged.above(0.0), 9);
    let mut host = Sample::new(10, 1, 2, one);
    host.merge(&Sample::new(5, 0, 1, two));
    assert_eq!(
        (
            host.requests,
            host.errors,
            host.warmup_requests,
            host.latency_samples
        ),
        (15, 1, 3, 9)
    );
    assert_eq!(host.p99_ms, 8.0);
    // Events carry the numbers, not the histogram.
    let json = serde_json::to_value(&host).unwrap();
    assert_eq!(json["latency_samples"], 9);
    assert!(json.get("latencies").is_none(), "{json}");
}

fn histogram() -> impl Strategy<Value = Latencies> {
    prop::collection::vec((prop::num::f64::ANY, any::<u64>()), 0..40)
        .prop_map(Latencies::from_counts)
}

proptest! {
    #[test]
    fn analyse_never_panics_nor_gives_nan(
        canary in histogram(),
        stable in histogram(),
        requests in any::<(u64, u64, u64, u64)>(),
        min_requests in 0u64..5000,
        confidence in 0.5f64..0.9999,
        floor in prop::num::f64::ANY,
        ratio in prop::num::f64::ANY,
    ) {
        let canary = Sample::new(requests.0, requests.1, 0, canary);
        let stable = Sample::new(requests.2, requests.3, 0, stable);
        let thresholds = Thresholds {
            confidence,
            latency_floor_ms: floor,
            max_p99_ratio: ratio,
            min_requests,
            ..Thresholds::default()
        };
        let analysis = analyse(&canary, &stable, &thresholds);
        prop_assert!(!analysis.llr.is_nan() && analysis.p0.is_finite() && analysis.p1.is_finite());
        for test in &analysis.latency {
            prop_assert!(!test.llr.is_nan(), "{test:?}");
            prop_assert!(test.p0.is_finite() && test.p0 > 0.0 && test.p0 < 1.0, "{test:?}");
            prop_assert!(!test.threshold_ms.is_nan(), "{test:?}");
            prop_assert!(!test.why.is_empty());
            if test.verdict == Verdict::Worse {
                prop_assert!(analysis.failure().is_some());
            }
        }
    }
}
