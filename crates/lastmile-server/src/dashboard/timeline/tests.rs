#![allow(clippy::unwrap_used, reason = "a failed unwrap is a failed test")]

use lastmile_store::Event;
use proptest::prelude::*;
use serde_json::{Value, json};

use super::*;

fn decision(id: i64, at: i64, data: Value) -> Event {
    Event {
        id,
        at,
        kind: "canary.decision".to_owned(),
        subject: "deployment/7".to_owned(),
        actor: "lastmile".to_owned(),
        data,
    }
}

#[allow(clippy::too_many_arguments)]
fn tick_data(
    phase: &str,
    percent: f64,
    decision: &str,
    reason: Option<&str>,
    canary: (u64, u64, f64),
    stable: (u64, u64, f64),
) -> Value {
    json!({
        "environment": "production",
        "phase": phase,
        "canary_percent": percent,
        "decision": decision,
        "reason": reason,
        "step_elapsed_ms": 1000,
        "analysis": {
            "canary": { "requests": canary.0, "errors": canary.1, "p95_ms": canary.2, "p99_ms": canary.2 },
            "stable": { "requests": stable.0, "errors": stable.1, "p95_ms": stable.2, "p99_ms": stable.2 },
            "errors": "undecided",
            "latency_failure": null,
        },
    })
}

/// Two passing ticks at 10%, two at 50%, the second of which aborts with a
/// reason that would break the markup if it were not escaped.
fn aborted_canary() -> Vec<Event> {
    let reason = r#"error rate 50.00% (9 of 18) <script>alert("x")</script> & more"#;
    vec![
        decision(
            1,
            10_000,
            tick_data("step-1", 10.0, "hold", None, (10, 0, 3.0), (90, 0, 2.5)),
        ),
        decision(
            2,
            11_000,
            tick_data(
                "step-1",
                10.0,
                "continue",
                None,
                (21, 0, 3.5),
                (190, 1, 2.6),
            ),
        ),
        decision(
            3,
            12_000,
            tick_data("step-2", 50.0, "hold", None, (8, 3, 4.0), (8, 0, 2.4)),
        ),
        decision(
            4,
            13_000,
            tick_data(
                "step-2",
                50.0,
                "abort",
                Some(reason),
                (18, 9, 4.2),
                (160, 0, 2.4),
            ),
        ),
    ]
}

#[test]
fn an_aborted_canary_draws_both_lines_its_steps_and_the_abort_with_its_reason() {
    let events = aborted_canary();
    let ticks = ticks(&events);
    assert_eq!(ticks.len(), 4);
    assert_eq!(ticks[0].at_ms, 0);
    assert_eq!(ticks[3].at_ms, 3000);
    assert_eq!(ticks[3].canary.error_percent, Some(50.0));
    let svg = svg(&ticks, Some("canary aborted: error rate 50.00%")).unwrap();
    assert!(!svg.contains("<script"), "{svg}");
    assert!(
        svg.contains("&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; more"),
        "{svg}"
    );
    assert_eq!(svg.matches("class=\"step\"").count(), 2, "{svg}");
    assert_eq!(svg.matches("class=\"abort\"").count(), 1, "{svg}");
    // Two panels, two lines each.
    assert_eq!(svg.matches("<path ").count(), 4, "{svg}");
    insta::assert_snapshot!(svg.replace('>', ">\n"));
}

#[test]
fn an_abort_between_ticks_marks_the_last_tick_with_the_deployment_reason() {
    let events: Vec<Event> = aborted_canary().into_iter().take(2).collect();
    let svg = svg(
        &ticks(&events),
        Some("canary aborted: aborted by `lastmile abort`"),
    )
    .unwrap();
    assert!(
        svg.contains("abort: canary aborted: aborted by `lastmile abort`"),
        "{svg}"
    );
    let promoted = super::svg(&ticks(&events), None).unwrap();
    assert!(!promoted.contains("class=\"abort\""), "{promoted}");
}

#[test]
fn no_decisions_draw_nothing() {
    let other = Event {
        kind: "deployment.started".to_owned(),
        ..decision(1, 0, json!({}))
    };
    assert!(svg(&ticks(&[other]), Some("failed")).is_none());
}

#[test]
fn a_long_canary_is_downsampled_and_keeps_its_worst_values() {
    let mut events = Vec::new();
    for index in 0..5000 {
        // One spike in the middle: it must survive the downsampling.
        let errors = if index == 2500 { 50 } else { 0 };
        let phase = if index < 2500 { "step-1" } else { "step-2" };
        events.push(decision(
            index + 1,
            index * 1000,
            tick_data(phase, 10.0, "hold", None, (100, errors, 5.0), (900, 0, 4.0)),
        ));
    }
    let all = ticks(&events);
    let points = downsample(&all, MAX_POINTS);
    assert!(points.len() <= MAX_POINTS, "{}", points.len());
    assert_eq!(points.last().unwrap().at_ms, all.last().unwrap().at_ms);
    let worst = points
        .iter()
        .filter_map(|tick| tick.canary.error_percent)
        .fold(0.0, f64::max);
    assert_eq!(worst, 50.0);
    let svg = svg(&all, None).unwrap();
    for line in svg.split("<path d=\"").skip(1) {
        let drawn = line.split('"').next().unwrap();
        let vertices = drawn.matches(['M', 'L']).count();
        assert!(vertices <= MAX_POINTS, "{vertices} points in a line");
    }
    assert!(svg.len() < 40_000, "{} bytes", svg.len());
}

#[test]
fn missing_fields_leave_gaps_instead_of_failing() {
    let events = vec![
        decision(
            1,
            0,
            json!({ "phase": "step-1", "analysis": { "canary": { "requests": 0, "errors": 0 } } }),
        ),
        decision(
            2,
            1000,
            json!({ "phase": "step-1", "analysis": "not an object" }),
        ),
        decision(3, 2000, json!(null)),
        decision(
            4,
            3000,
            json!({ "analysis": { "canary": { "requests": 10, "errors": 1, "p99_ms": "slow" }, "stable": { "p99_ms": 3.0 } } }),
        ),
    ];
    let ticks = ticks(&events);
    assert_eq!(ticks[0].canary.error_percent, None);
    assert_eq!(ticks[3].canary.error_percent, Some(10.0));
    assert_eq!(ticks[3].canary.p99_ms, None);
    assert_eq!(ticks[3].stable.p99_ms, Some(3.0));
    let svg = svg(&ticks, None).unwrap();
    assert!(svg.starts_with("<svg") && svg.ends_with("</svg>"));
}

#[test]
fn axis_ceilings_are_round_numbers() {
    for (value, nice) in [
        (0.0, 1.0),
        (0.3, 0.5),
        (1.0, 1.0),
        (1.2, 2.0),
        (2.2, 2.5),
        (3.0, 5.0),
        (7.0, 10.0),
        (180.0, 200.0),
        (f64::NAN, 1.0),
    ] {
        assert_eq!(nice_ceiling(value), nice, "{value}");
    }
}

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<f64>().prop_map(|number| json!(number)),
        any::<i64>().prop_map(Value::from),
        "[a-z<>&\"' ]{0,12}".prop_map(Value::from),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map(
                prop_oneof![
                    Just("analysis".to_owned()),
                    Just("canary".to_owned()),
                    Just("stable".to_owned()),
                    Just("requests".to_owned()),
                    Just("errors".to_owned()),
                    Just("p99_ms".to_owned()),
                    Just("phase".to_owned()),
                    Just("decision".to_owned()),
                    Just("reason".to_owned()),
                    Just("canary_percent".to_owned()),
                ],
                inner,
                0..5,
            )
            .prop_map(|map| Value::Object(map.into_iter().collect())),
        ]
    })
}

proptest! {
    #[test]
    fn any_event_data_renders_without_panicking(
        data in prop::collection::vec((any::<i64>(), json_value()), 0..20),
        failure in proptest::option::of("[ -~]{0,200}"),
    ) {
        let events: Vec<Event> = data
            .into_iter()
            .enumerate()
            .map(|(index, (at, data))| decision(index as i64 + 1, at, data))
            .collect();
        let drawn = svg(&ticks(&events), failure.as_deref());
        if let Some(svg) = drawn {
            prop_assert!(svg.starts_with("<svg") && svg.ends_with("</svg>"));
            prop_assert!(!svg.contains("<script"));
        }
    }
}
