//! Every operator, on matching, non-matching and mistyped attributes.

use lastmile_flags::{Context, NoCanary, Reason};
use serde_json::{Value, json};

use crate::flag_set;

/// Whether one condition `op`/`value` holds for `attribute` (absent: `None`).
fn holds(op: &str, value: &str, attribute: Option<Value>) -> bool {
    let condition = format!("{{ attribute: a, op: {op}, value: {value} }}");
    let set = flag_set(&[
        "flags:",
        "  f:",
        "    rules:",
        &format!("      - when: [{condition}]"),
        "        variant: on",
    ]);
    let mut context = Context::new().with_key("k");
    if let Some(attribute) = attribute {
        context = context.with("a", attribute);
    }
    let answer = set.evaluate("f", &context, &NoCanary).expect("evaluates");
    match answer.reason {
        Reason::TargetingMatch => true,
        Reason::Default => false,
        other => panic!("unexpected reason {other:?}"),
    }
}

#[test]
fn equals_and_not_equals_compare_same_typed_values() {
    assert!(holds("equals", "SE", Some(json!("SE"))));
    assert!(!holds("equals", "SE", Some(json!("NO"))));
    assert!(holds("equals", "3", Some(json!(3))));
    assert!(holds("equals", "3", Some(json!(3.0))));
    assert!(holds("equals", "true", Some(json!(true))));
    assert!(
        !holds("equals", "\"3\"", Some(json!(3))),
        "text is not a number"
    );
    assert!(holds("not_equals", "SE", Some(json!("NO"))));
    assert!(!holds("not_equals", "SE", Some(json!("SE"))));
    assert!(
        !holds("not_equals", "SE", Some(json!(7))),
        "a mismatched type is false"
    );
    assert!(
        !holds("not_equals", "SE", None),
        "an absent attribute is false"
    );
}

#[test]
fn in_and_not_in_test_membership() {
    assert!(holds("in", "[SE, NO]", Some(json!("NO"))));
    assert!(!holds("in", "[SE, NO]", Some(json!("DK"))));
    assert!(holds("in", "[1, 2, 3]", Some(json!(2))));
    assert!(
        !holds("in", "[SE, NO]", Some(json!(["SE"]))),
        "a list is no scalar"
    );
    assert!(holds("not_in", "[SE, NO]", Some(json!("DK"))));
    assert!(!holds("not_in", "[SE, NO]", Some(json!("SE"))));
    assert!(
        !holds("not_in", "[SE, NO]", Some(json!(5))),
        "a mismatched type is false"
    );
    assert!(!holds("not_in", "[SE, NO]", None));
}

#[test]
fn string_operators_need_a_string() {
    assert!(holds("starts_with", "\"+46\"", Some(json!("+46 70 123"))));
    assert!(!holds("starts_with", "\"+46\"", Some(json!("+47 70 123"))));
    assert!(holds(
        "ends_with",
        "\"@example.com\"",
        Some(json!("ann@example.com"))
    ));
    assert!(!holds(
        "ends_with",
        "\"@example.com\"",
        Some(json!("ann@example.org"))
    ));
    assert!(holds("contains", "beta", Some(json!("v2-beta-3"))));
    assert!(!holds("contains", "beta", Some(json!("v2-rc-3"))));
    assert!(
        !holds("contains", "\"1\"", Some(json!(1))),
        "a number is not text"
    );
}

#[test]
fn number_operators_need_a_number() {
    assert!(holds("lt", "18", Some(json!(17))));
    assert!(!holds("lt", "18", Some(json!(18))));
    assert!(holds("lte", "18", Some(json!(18))));
    assert!(!holds("lte", "18", Some(json!(18.5))));
    assert!(holds("gt", "0.5", Some(json!(0.75))));
    assert!(!holds("gt", "0.5", Some(json!(0.5))));
    assert!(holds("gte", "18", Some(json!(18))));
    assert!(!holds("gte", "18", Some(json!(-3))));
    assert!(
        !holds("gte", "18", Some(json!("30"))),
        "text is not a number"
    );
    assert!(!holds("gte", "18", Some(json!(null))));
}

#[test]
fn semver_operators_order_prereleases_per_semver_2() {
    assert!(holds("semver_eq", "\"2.1.0\"", Some(json!("2.1.0"))));
    assert!(holds(
        "semver_eq",
        "\"2.1.0\"",
        Some(json!("2.1.0+build.7"))
    ));
    assert!(!holds("semver_eq", "\"2.1.0\"", Some(json!("2.1.0-rc.1"))));
    assert!(holds("semver_gte", "\"2.1.0\"", Some(json!("2.1.0"))));
    assert!(
        holds("semver_gte", "\"2.1.0\"", Some(json!("2.10.0"))),
        "numeric, not textual"
    );
    assert!(
        !holds("semver_gte", "\"2.1.0\"", Some(json!("2.1.0-rc.1"))),
        "a prerelease is below its release"
    );
    assert!(holds(
        "semver_gt",
        "\"2.1.0-beta.2\"",
        Some(json!("2.1.0-beta.11"))
    ));
    assert!(holds(
        "semver_gt",
        "\"2.1.0-alpha\"",
        Some(json!("2.1.0-alpha.1"))
    ));
    assert!(holds(
        "semver_lt",
        "\"2.1.0-beta\"",
        Some(json!("2.1.0-alpha.beta"))
    ));
    assert!(holds(
        "semver_lt",
        "\"1.0.0-rc.1\"",
        Some(json!("1.0.0-beta.11"))
    ));
    assert!(holds("semver_lte", "\"1.0.0\"", Some(json!("1.0.0"))));
    assert!(!holds("semver_lte", "\"1.0.0\"", Some(json!("1.0.1"))));
    assert!(
        !holds("semver_gte", "\"2.1.0\"", Some(json!("v3.0.0"))),
        "not a version: false"
    );
    assert!(!holds("semver_gte", "\"2.1.0\"", Some(json!(3))));
}

#[test]
fn the_targeting_key_is_an_attribute_too() {
    let set = flag_set(&[
        "flags:",
        "  f:",
        "    rules:",
        "      - when: [{ attribute: targetingKey, op: starts_with, value: \"staff-\" }]",
        "        variant: on",
    ]);
    let staff = set.evaluate("f", &Context::new().with_key("staff-7"), &NoCanary);
    assert_eq!(staff.expect("evaluates").variant, "on");
    let user = set.evaluate("f", &Context::new().with_key("user-7"), &NoCanary);
    assert_eq!(user.expect("evaluates").variant, "off");
}
