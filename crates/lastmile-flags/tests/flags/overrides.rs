//! Runtime overrides: kill switch, default and rollout, validated.

use std::collections::BTreeMap;

use lastmile_flags::{Context, NoCanary, Override, Reason};

use crate::flag_set;

const LINES: &[&str] = &[
    "flags:",
    "  new-checkout:",
    "    rules:",
    "      - when: [{ attribute: country, op: equals, value: SE }]",
    "        variant: on",
    "  color:",
    "    type: string",
    "    variants: { blue: b, red: r }",
    "    default: blue",
];

fn overrides(entries: &[(&str, Override)]) -> BTreeMap<String, Override> {
    entries
        .iter()
        .map(|(key, change)| ((*key).to_owned(), change.clone()))
        .collect()
}

#[test]
fn overrides_switch_off_change_the_default_and_split() {
    let spec = flag_set(LINES);
    let swede = Context::new().with_key("user-1").with("country", "SE");
    let set = spec
        .with_overrides(&overrides(&[
            (
                "new-checkout",
                Override {
                    enabled: Some(false),
                    ..Override::default()
                },
            ),
            (
                "color",
                Override {
                    default: Some("red".to_owned()),
                    ..Override::default()
                },
            ),
        ]))
        .expect("valid overrides");
    let answer = set.evaluate("new-checkout", &swede, &NoCanary).expect("ok");
    assert_eq!(
        (answer.variant.as_str(), answer.reason),
        ("off", Reason::Disabled)
    );
    let answer = set.evaluate("color", &swede, &NoCanary).expect("ok");
    assert_eq!(
        (answer.variant.as_str(), answer.reason),
        ("red", Reason::Static)
    );
    assert!(set.get("color").expect("present").overridden());
    // The original set is untouched.
    let answer = spec
        .evaluate("new-checkout", &swede, &NoCanary)
        .expect("ok");
    assert_eq!(answer.reason, Reason::TargetingMatch);

    // A rollout override applies to contexts no rule matched.
    let split = spec
        .with_overrides(&overrides(&[(
            "new-checkout",
            Override {
                rollout: Some(vec![("on".to_owned(), 100.0), ("off".to_owned(), 0.0)]),
                ..Override::default()
            },
        )]))
        .expect("valid");
    let dane = Context::new().with_key("user-1").with("country", "DK");
    let answer = split
        .evaluate("new-checkout", &dane, &NoCanary)
        .expect("ok");
    assert_eq!(
        (answer.variant.as_str(), answer.reason),
        ("on", Reason::Split)
    );
    // Overrides are relative to the spec: an empty map restores it.
    let restored = split.with_overrides(&BTreeMap::new()).expect("valid");
    let answer = restored
        .evaluate("new-checkout", &dane, &NoCanary)
        .expect("ok");
    assert_eq!(answer.reason, Reason::Default);
}

#[test]
fn invalid_overrides_are_refused_with_the_reason() {
    let set = flag_set(LINES);
    let refused = |key: &str, change: Override| {
        set.with_overrides(&overrides(&[(key, change)]))
            .expect_err("invalid override")
    };
    let message = refused("nope", Override::default());
    assert!(message.contains("no flag `nope`"), "{message}");
    let message = refused(
        "color",
        Override {
            default: Some("green".to_owned()),
            ..Override::default()
        },
    );
    assert!(message.contains("no variant `green`"), "{message}");
    let message = refused(
        "color",
        Override {
            rollout: Some(vec![("blue".to_owned(), 60.0), ("red".to_owned(), 30.0)]),
            ..Override::default()
        },
    );
    assert!(message.contains("add up to 90"), "{message}");
    let message = refused(
        "color",
        Override {
            rollout: Some(vec![("blue".to_owned(), 50.0), ("green".to_owned(), 50.0)]),
            ..Override::default()
        },
    );
    assert!(message.contains("variant `green`"), "{message}");
    let message = refused(
        "color",
        Override {
            rollout: Some(vec![("blue".to_owned(), 150.0), ("red".to_owned(), -50.0)]),
            ..Override::default()
        },
    );
    assert!(message.contains("0 to 100"), "{message}");
}

#[test]
fn overrides_deserialize_from_json() {
    let change: Override = serde_json::from_value(serde_json::json!({
        "enabled": false,
        "rollout": [["on", 10], ["off", 90]]
    }))
    .expect("valid JSON");
    assert_eq!(change.enabled, Some(false));
    assert_eq!(change.default, None);
    assert_eq!(
        change.rollout,
        Some(vec![("on".to_owned(), 10.0), ("off".to_owned(), 90.0)])
    );
}
