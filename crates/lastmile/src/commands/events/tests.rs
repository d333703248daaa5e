use serde_json::{Value, json};

use super::{Concerning, event_line};
use crate::output::Releases;

const STABLE: &str = "1111111111111111111111111111111111111111111111111111111111111111";
const CANARY: &str = "2222222222222222222222222222222222222222222222222222222222222222";

fn event(id: i64, kind: &str, subject: &str, actor: &str, data: Value) -> Value {
    // 2026-11-22 05:40:00Z, a second per event.
    json!({ "id": id, "at": 1_795_326_000_000_i64 + id * 1000, "kind": kind, "subject": subject, "actor": actor, "data": data })
}

/// A canary of production that is aborted, with a staging deploy and a
/// flag change in between.
fn log() -> Vec<Value> {
    let analysis = |canary: (u64, u64, f64), stable: (u64, u64, f64), verdict: &str| {
        json!({
            "canary": { "requests": canary.0, "errors": canary.1, "p95_ms": canary.2, "p99_ms": canary.2 },
            "stable": { "requests": stable.0, "errors": stable.1, "p95_ms": stable.2, "p99_ms": stable.2 },
            "p0": 0.001, "p1": 0.011, "llr": 0.5, "upper": 4.6, "lower": -4.6,
            "errors": verdict, "latency_failure": null,
        })
    };
    vec![
        event(
            1,
            "deployment.started",
            "deployment/7",
            "local:alice",
            json!({ "environment": "production", "from": STABLE, "to": CANARY, "strategy": "canary" }),
        ),
        event(
            2,
            "deployment.started",
            "deployment/8",
            "local:alice",
            json!({ "environment": "staging", "from": null, "to": CANARY, "strategy": "rolling" }),
        ),
        event(
            3,
            "canary.decision",
            "deployment/7",
            "lastmile",
            json!({
                "environment": "production", "phase": "step-1", "canary_percent": 10.0, "decision": "hold",
                "reason": null, "step_elapsed_ms": 1000, "analysis": analysis((4, 0, 3.1), (40, 0, 2.8), "undecided"),
            }),
        ),
        event(
            4,
            "flag.overridden",
            "flag/new-checkout",
            "local:bob",
            json!({ "enabled": false }),
        ),
        event(
            5,
            "canary.decision",
            "deployment/7",
            "lastmile",
            json!({
                "environment": "production", "phase": "step-2", "canary_percent": 2.5, "decision": "abort",
                "reason": "error rate 50.00% (9 of 18) against stable's 0.00% (0 of 160)", "step_elapsed_ms": 3000,
                "analysis": analysis((18, 9, 4.2), (160, 0, 2.4), "worse"),
            }),
        ),
        event(
            6,
            "notification.sent",
            "deployment/7",
            "lastmile",
            json!({ "url": "http://hooks.internal/x", "event": "aborted", "error": null }),
        ),
        event(
            7,
            "environment.changed",
            "environment/production",
            "lastmile",
            json!({ "name": "production", "current_release": STABLE, "previous_release": null, "weights": [[STABLE, 100]], "warm_until": null }),
        ),
        event(
            8,
            "deployment.finished",
            "deployment/7",
            "local:alice",
            json!({
                "environment": "production", "status": "failed",
                "reason": "canary aborted: error rate 50.00% (9 of 18) against stable's 0.00% (0 of 160)",
                "analysis": analysis((18, 9, 4.2), (160, 0, 2.4), "worse"),
            }),
        ),
        event(
            9,
            "deployment.finished",
            "deployment/3",
            "lastmile",
            json!({ "status": "failed", "error": "failed; traffic restored to the previous release" }),
        ),
        event(
            10,
            "api.call",
            "apps/hello/environments/production/rollback",
            "ci",
            json!({ "method": "POST", "path": "/api/v1/apps/hello/environments/production/rollback", "status": 200, "role": "deployer" }),
        ),
        event(
            11,
            "canary.decision",
            "deployment/12",
            "lastmile",
            json!({ "phase": "dark", "decision": "hold", "analysis": "not an object" }),
        ),
        event(12, "odd", "x", "lastmile", json!(["a list"])),
        json!({ "id": 13 }),
    ]
}

#[test]
fn events_read_as_one_line_each() {
    let releases = Releases::from_pairs(&[(STABLE, "v1"), (CANARY, "v2")]);
    let lines: Vec<String> = log()
        .iter()
        .map(|event| event_line(event, &releases))
        .collect();
    insta::assert_snapshot!(lines.join("\n"));
}

#[test]
fn an_environment_gets_its_own_events_and_those_of_its_deployments() {
    let mut production = Concerning::new(Some("production"));
    let ids: Vec<i64> = log()
        .iter()
        .filter(|event| production.admits(event))
        .map(|event| event["id"].as_i64().unwrap_or_default())
        .collect();
    assert_eq!(ids, [1, 3, 5, 6, 7, 8, 10]);
    let mut staging = Concerning::new(Some("staging"));
    let ids: Vec<i64> = log()
        .iter()
        .filter(|event| staging.admits(event))
        .map(|event| event["id"].as_i64().unwrap_or_default())
        .collect();
    assert_eq!(ids, [2]);
    // An environment whose name is a prefix of another's is not confused with it.
    let mut prod = Concerning::new(Some("prod"));
    assert!(!log().iter().any(|event| prod.admits(event)));
    let mut every = Concerning::new(None);
    assert!(log().iter().all(|event| every.admits(event)));
}
