//! Splits: the documented bucket vectors, distribution, stickiness, the
//! targeting key requirement, and `follow_canary`.

use lastmile_flags::{Context, EvaluationError, NoCanary, Reason, bucket};

use crate::flag_set;

/// The vectors documented in docs/flags.md (checked against an independent
/// implementation of murmur3 when written).
#[test]
fn bucket_matches_the_documented_vectors() {
    assert_eq!(bucket("new-checkout", "user-1"), 631);
    assert_eq!(bucket("new-checkout", "user-2"), 789);
    assert_eq!(bucket("production", "user-1"), 3390);
    assert_eq!(bucket("checkout-canary", "alice@example.com"), 5640);
    assert_eq!(bucket("", ""), 7430);
}

/// Counts the variants served to `user-0` .. `user-9999`.
fn distribution(lines: &[&str], flag: &str) -> std::collections::BTreeMap<String, u32> {
    let set = flag_set(lines);
    let mut counts = std::collections::BTreeMap::new();
    for user in 0..10_000 {
        let context = Context::new().with_key(format!("user-{user}"));
        let answer = set.evaluate(flag, &context, &NoCanary).expect("evaluates");
        assert_eq!(answer.reason, Reason::Split);
        *counts.entry(answer.variant).or_insert(0) += 1;
    }
    counts
}

fn assert_near(counts: &std::collections::BTreeMap<String, u32>, variant: &str, percent: f64) {
    let share = f64::from(counts.get(variant).copied().unwrap_or(0)) / 100.0;
    assert!(
        (share - percent).abs() <= 1.5,
        "{variant}: {share}% served, {percent}% asked ({counts:?})"
    );
}

#[test]
fn rollouts_serve_their_percentages_within_one_and_a_half_points() {
    let counts = distribution(
        &["flags:", "  ten:", "    rollout: { on: 10, off: 90 }"],
        "ten",
    );
    assert_near(&counts, "on", 10.0);
    assert_near(&counts, "off", 90.0);
    let counts = distribution(
        &[
            "flags:",
            "  color:",
            "    type: string",
            "    variants: { blue: b, green: g, red: r }",
            "    default: blue",
            "    rollout: { blue: 33.3, green: 33.3, red: 33.4 }",
        ],
        "color",
    );
    for variant in ["blue", "green", "red"] {
        assert_near(&counts, variant, 33.3);
    }
    let counts = distribution(
        &["flags:", "  all:", "    rollout: { on: 100, off: 0 }"],
        "all",
    );
    assert_eq!(counts.get("on"), Some(&10_000));
}

#[test]
fn shares_are_laid_out_on_buckets_in_declared_order() {
    // new-checkout/user-1 is bucket 631: under 10% (1000) it gets the first share.
    let set = flag_set(&[
        "flags:",
        "  new-checkout:",
        "    rollout: { on: 10, off: 90 }",
    ]);
    let user = Context::new().with_key("user-1");
    assert_eq!(
        set.evaluate("new-checkout", &user, &NoCanary)
            .expect("ok")
            .variant,
        "on"
    );
    let set = flag_set(&[
        "flags:",
        "  new-checkout:",
        "    rollout: { off: 90, on: 10 }",
    ]);
    assert_eq!(
        set.evaluate("new-checkout", &user, &NoCanary)
            .expect("ok")
            .variant,
        "off"
    );
    let set = flag_set(&[
        "flags:",
        "  new-checkout:",
        "    rollout: { on: 6.31, off: 93.69 }",
    ]);
    assert_eq!(
        set.evaluate("new-checkout", &user, &NoCanary)
            .expect("ok")
            .variant,
        "off"
    );
    let set = flag_set(&[
        "flags:",
        "  new-checkout:",
        "    rollout: { on: 6.32, off: 93.68 }",
    ]);
    assert_eq!(
        set.evaluate("new-checkout", &user, &NoCanary)
            .expect("ok")
            .variant,
        "on"
    );
}

#[test]
fn a_user_keeps_their_variant_across_rebuilds() {
    let lines = [
        "flags:",
        "  sticky:",
        "    rules:",
        "      - when: [{ attribute: country, op: equals, value: SE }]",
        "        rollout: { on: 50, off: 50 }",
        "    rollout: { on: 25, off: 75 }",
    ];
    let first = flag_set(&lines);
    let second = flag_set(&lines);
    let mut on = 0;
    for user in 0..2_000 {
        for country in ["SE", "DK"] {
            let context = Context::new()
                .with_key(format!("user-{user}"))
                .with("country", country);
            let a = first
                .evaluate("sticky", &context, &NoCanary)
                .expect("evaluates");
            let b = second
                .evaluate("sticky", &context, &NoCanary)
                .expect("evaluates");
            assert_eq!(a, b);
            on += u32::from(a.variant == "on");
        }
    }
    // Both rules actually split: neither all on nor all off.
    assert!(on > 500 && on < 2_000, "{on}");
}

#[test]
fn a_rollout_without_a_targeting_key_is_an_error() {
    let set = flag_set(&[
        "flags:",
        "  f:",
        "    rules:",
        "      - when: [{ attribute: country, op: equals, value: SE }]",
        "        rollout: { on: 50, off: 50 }",
    ]);
    let error = set
        .evaluate("f", &Context::new().with("country", "SE"), &NoCanary)
        .expect_err("no key");
    assert_eq!(error, EvaluationError::TargetingKeyMissing);
    // A context the splitting rule does not match needs no key.
    let answer = set
        .evaluate("f", &Context::new().with("country", "DK"), &NoCanary)
        .expect("evaluates");
    assert_eq!(answer.reason, Reason::Default);
}

#[test]
fn follow_canary_serves_on_to_exactly_the_canary_cohort() {
    let set = flag_set(&[
        "flags:",
        "  checkout-canary:",
        "    rollout: { follow_canary: production }",
    ]);
    // The canary holds 25% of production's buckets.
    let lookup = |environment: &str| (environment == "production").then_some(2_500);
    let mut on = 0;
    for user in 0..10_000 {
        let key = format!("user-{user}");
        let answer = set
            .evaluate(
                "checkout-canary",
                &Context::new().with_key(key.as_str()),
                &lookup,
            )
            .expect("evaluates");
        assert_eq!(answer.reason, Reason::Split);
        let on_canary = bucket("production", &key) < 2_500;
        assert_eq!(answer.variant == "on", on_canary, "{key}");
        on += u32::from(on_canary);
    }
    assert!((2_350..=2_650).contains(&on), "{on}");
    // No canary running: everyone gets the default.
    let user = Context::new().with_key("user-1");
    let answer = set
        .evaluate("checkout-canary", &user, &NoCanary)
        .expect("evaluates");
    assert_eq!(
        (answer.variant.as_str(), answer.reason),
        ("off", Reason::Split)
    );
    // production/user-1 is bucket 3390.
    let at = |buckets: u32| move |_: &str| Some(buckets);
    assert_eq!(
        set.evaluate("checkout-canary", &user, &at(3_390))
            .expect("ok")
            .variant,
        "off"
    );
    assert_eq!(
        set.evaluate("checkout-canary", &user, &at(3_391))
            .expect("ok")
            .variant,
        "on"
    );
    assert_eq!(
        set.evaluate("checkout-canary", &Context::new(), &at(10_000)),
        Err(EvaluationError::TargetingKeyMissing)
    );
}

#[test]
fn follow_canary_on_a_string_flag_serves_the_first_variant() {
    let set = flag_set(&[
        "flags:",
        "  banner:",
        "    type: string",
        "    variants: { new: \"Try the new checkout\", old: \"\" }",
        "    default: old",
        "    rollout: { follow_canary: production }",
    ]);
    let everyone = |_: &str| Some(10_000);
    let answer = set
        .evaluate("banner", &Context::new().with_key("u"), &everyone)
        .expect("evaluates");
    assert_eq!(answer.variant, "new");
}
