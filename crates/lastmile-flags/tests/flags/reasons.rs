//! Why a variant was served: STATIC, TARGETING_MATCH, SPLIT, DISABLED, DEFAULT,
//! rule order, segments, and the OFREP errors.

use lastmile_flags::{Context, EvaluationError, FlagSet, NoCanary, Reason};
use serde_json::json;

use crate::flag_set;

const CHECKOUT: &[&str] = &[
    "segments:",
    "  beta-testers:",
    "    - { attribute: email, op: ends_with, value: \"@example.com\" }",
    "    - { attribute: beta, op: equals, value: true }",
    "flags:",
    "  new-checkout:",
    "    rules:",
    "      - when: [{ attribute: country, op: in, value: [SE, NO] }]",
    "        variant: on",
    "      - when: [{ attribute: country, op: equals, value: SE }]",
    "        variant: off",
    "      - segment: beta-testers",
    "        when: [{ attribute: plan, op: not_equals, value: free }]",
    "        variant: on",
    "  color:",
    "    type: string",
    "    variants: { blue: \"#00f\", red: \"#f00\" }",
    "    default: red",
    "  killed:",
    "    enabled: false",
    "    default: off",
    "    rules:",
    "      - when: [{ attribute: country, op: equals, value: SE }]",
    "        variant: on",
    "    rollout: { on: 100, off: 0 }",
];

fn checkout() -> FlagSet {
    flag_set(CHECKOUT)
}

#[test]
fn a_flag_without_rules_or_rollout_is_static() {
    let answer = checkout()
        .evaluate("color", &Context::new(), &NoCanary)
        .expect("evaluates");
    assert_eq!(answer.key, "color");
    assert_eq!(answer.variant, "red");
    assert_eq!(answer.value, json!("#f00"));
    assert_eq!(answer.reason, Reason::Static);
    assert!(answer.metadata.is_empty());
}

#[test]
fn the_first_matching_rule_wins() {
    let set = checkout();
    // SE matches rules 1 and 2; rule 1 comes first.
    let answer = set
        .evaluate(
            "new-checkout",
            &Context::new().with("country", "SE"),
            &NoCanary,
        )
        .expect("evaluates");
    assert_eq!(
        (answer.variant.as_str(), answer.reason),
        ("on", Reason::TargetingMatch)
    );
    assert_eq!(answer.value, json!(true));
    assert_eq!(answer.metadata.get("rule"), Some(&json!(1)));
}

#[test]
fn a_segment_rule_needs_every_segment_condition_and_its_own() {
    let set = checkout();
    let member = Context::new()
        .with("email", "ann@example.com")
        .with("beta", true)
        .with("plan", "pro");
    let answer = set
        .evaluate("new-checkout", &member, &NoCanary)
        .expect("evaluates");
    assert_eq!(
        (answer.variant.as_str(), answer.reason),
        ("on", Reason::TargetingMatch)
    );
    assert_eq!(answer.metadata.get("rule"), Some(&json!(3)));
    for outsider in [
        member.clone().with("beta", false),
        member.clone().with("email", "ann@example.org"),
        member.clone().with("plan", "free"),
    ] {
        let answer = set
            .evaluate("new-checkout", &outsider, &NoCanary)
            .expect("evaluates");
        assert_eq!(
            (answer.variant.as_str(), answer.reason),
            ("off", Reason::Default)
        );
    }
}

#[test]
fn no_matching_rule_and_no_rollout_is_default() {
    let answer = checkout()
        .evaluate(
            "new-checkout",
            &Context::new().with("country", "DK"),
            &NoCanary,
        )
        .expect("evaluates");
    assert_eq!(
        (answer.variant.as_str(), answer.reason),
        ("off", Reason::Default)
    );
    assert_eq!(answer.value, json!(false));
}

#[test]
fn a_disabled_flag_serves_its_default_whatever_the_rules() {
    let answer = checkout()
        .evaluate("killed", &Context::new().with("country", "SE"), &NoCanary)
        .expect("evaluates");
    assert_eq!(
        (answer.variant.as_str(), answer.reason),
        ("off", Reason::Disabled)
    );
    // No targeting key needed either: the rollout never runs.
    assert!(answer.metadata.is_empty());
}

#[test]
fn unknown_flags_and_bad_contexts_have_ofrep_error_codes() {
    let set = checkout();
    let missing = set
        .evaluate("nope", &Context::new(), &NoCanary)
        .expect_err("unknown");
    assert_eq!(missing, EvaluationError::FlagNotFound);
    assert_eq!(missing.code(), "FLAG_NOT_FOUND");
    assert_eq!(
        EvaluationError::TargetingKeyMissing.code(),
        "TARGETING_KEY_MISSING"
    );
    assert_eq!(EvaluationError::General("x".to_owned()).code(), "GENERAL");

    let context = Context::from_json(&json!({ "targetingKey": "u-1", "country": "SE", "age": 30 }))
        .expect("valid context");
    assert_eq!(context.targeting_key.as_deref(), Some("u-1"));
    assert_eq!(context.attributes.get("age"), Some(&json!(30)));
    assert!(!context.attributes.contains_key("targetingKey"));
    assert_eq!(Context::from_json(&json!(null)), Ok(Context::new()));
    for bad in [json!({ "targetingKey": 7 }), json!([1, 2])] {
        let error = Context::from_json(&bad).expect_err("invalid");
        assert_eq!(error.code(), "INVALID_CONTEXT", "{bad}");
    }
}

#[test]
fn reasons_and_evaluations_serialize_as_ofrep() {
    assert_eq!(
        serde_json::to_value(Reason::TargetingMatch).ok(),
        Some(json!("TARGETING_MATCH"))
    );
    assert_eq!(Reason::Split.to_string(), "SPLIT");
    let answer = checkout()
        .evaluate("color", &Context::new(), &NoCanary)
        .expect("evaluates");
    assert_eq!(
        serde_json::to_value(&answer).ok(),
        Some(
            json!({ "key": "color", "value": "#f00", "variant": "red", "reason": "STATIC", "metadata": {} })
        )
    );
}

#[test]
fn keys_and_lookup_describe_the_set() {
    let set = checkout();
    assert_eq!(
        set.keys().collect::<Vec<_>>(),
        ["color", "killed", "new-checkout"]
    );
    assert_eq!(set.len(), 3);
    let killed = set.get("killed").expect("present");
    assert!(!killed.enabled() && !killed.overridden());
    assert_eq!(killed.default_variant(), "off");
    assert_eq!(killed.flag_type(), lastmile_spec::FlagType::Boolean);
    assert!(set.get("nope").is_none());
    assert!(FlagSet::empty().is_empty());
}

#[test]
fn a_definition_that_skipped_validation_reports_general() {
    let (spec, _) = lastmile_spec::parse(
        "lastmile.yaml",
        "app: a\npipeline: { steps: [{ name: b, run: c }] }\nflags:\n  f: { default: off }\n",
    )
    .expect("valid");
    let mut flags = spec.flags.clone();
    flags[0].default = "missing".to_owned();
    let set = FlagSet::new(&flags, &[]);
    let error = set
        .evaluate("f", &Context::new(), &NoCanary)
        .expect_err("broken");
    assert_eq!(error.code(), "GENERAL");
    assert!(error.to_string().contains("`missing`"), "{error}");
}
