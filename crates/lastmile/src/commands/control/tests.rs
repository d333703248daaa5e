#![allow(clippy::unwrap_used)]

use serde_json::json;

use super::last_deployment_lines;

#[test]
fn status_says_how_each_environments_last_deployment_ended_and_why() {
    let releases = crate::output::Releases::from_pairs(&[
        (
            "1111111111111111111111111111111111111111111111111111111111111111",
            "v1",
        ),
        (
            "2222222222222222222222222222222222222222222222222222222222222222",
            "v2",
        ),
    ]);
    let analysis = json!({
        "canary": { "requests": 18, "errors": 9, "p95_ms": 3.9, "p99_ms": 4.2 },
        "stable": { "requests": 160, "errors": 0, "p95_ms": 2.0, "p99_ms": 2.4 },
        "errors": "worse",
        "latency_failure": null,
    });
    let cases = [
        (
            "aborted canary",
            json!({
                "id": 7, "started_at": 0, "outcome": "failed", "strategy": "canary",
                "from_release": "1111111111111111111111111111111111111111111111111111111111111111",
                "to_release": "2222222222222222222222222222222222222222222222222222222222222222",
                "reason": "canary aborted: error rate 50.00% (9 of 18) against stable's 0.00% (0 of 160): the sequential test says it is at least 1.00 points worse (LLR 31.20 ≥ 4.60)",
                "analysis": analysis,
            }),
        ),
        (
            "instance never ready",
            json!({
                "id": 3, "started_at": 0, "outcome": "failed", "strategy": "blue-green", "from_release": null,
                "to_release": "3333333333333333333333333333333333333333333333333333333333333333",
                "reason": "instance production.33333333.0 did not become ready within 10s", "analysis": null,
            }),
        ),
        (
            "promoted canary",
            json!({
                "id": 8, "started_at": 0, "outcome": "succeeded", "strategy": "canary",
                "from_release": "1111111111111111111111111111111111111111111111111111111111111111",
                "to_release": "2222222222222222222222222222222222222222222222222222222222222222",
                "reason": null, "analysis": analysis,
            }),
        ),
        ("never deployed", json!(null)),
    ];
    let mut shown = String::new();
    for (name, last) in cases {
        shown.push_str(&format!("{name}:\n"));
        let last: Option<lastmile_server::report::LastDeployment> =
            serde_json::from_value(last).unwrap();
        for line in last_deployment_lines(last.as_ref(), &releases) {
            shown.push_str(&line);
            shown.push('\n');
        }
    }
    insta::assert_snapshot!(shown);
}
