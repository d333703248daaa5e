//! What a deployment or rollback ended as, for the API and the CLI.

use serde::Serialize;

use lastmile_store::DeploymentStatus;

/// The end of one deployment.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DeploymentOutcome {
    /// The deployment's id in the store; `None` when nothing had to change
    /// (`noop`), so no deployment was recorded.
    pub deployment: Option<i64>,
    /// True when the environment already served the release: nothing moved.
    pub noop: bool,
    /// The environment.
    pub environment: String,
    /// How it ended.
    pub status: DeploymentStatus,
    /// What the environment served before.
    pub from_release: Option<String>,
    /// The version label of `from_release` (`v1`).
    pub from_version: Option<String>,
    /// What it was moved to.
    pub to_release: String,
    /// The version label of `to_release` (`v2`).
    pub to_version: String,
    /// Wall time from start to end.
    pub duration_ms: u64,
    /// Time from start until all traffic was on the new release (the rest
    /// is draining and stopping the old one).
    pub switched_after_ms: Option<u64>,
    /// Why it failed (the same text the deployment record keeps as its
    /// `reason`).
    pub error: Option<String>,
    /// The last canary analysis (the `analysis` of its last
    /// `canary.decision`), when the strategy analysed anything.
    pub analysis: Option<serde_json::Value>,
    /// The failing instance's last output lines, when one failed to start.
    pub last_lines: Vec<String>,
    /// The canary was aborted (by its analysis, its deadline or `lastmile
    /// abort`): traffic went back to stable. Not in the JSON, whose `error`
    /// says so in words.
    #[serde(skip)]
    pub aborted: bool,
}

/// What a deploy of the release an environment already serves says, in
/// `lastmile up` and `lastmile deploy` alike:
/// `staging already serves v1 (fd97e584); nothing to do`.
pub fn unchanged_line(environment: &str, release_label: &str) -> String {
    format!("{environment} already serves {release_label}; nothing to do")
}

/// The key numbers of a canary analysis (as its `canary.decision` event or
/// a deployment record keeps it) in one line for people:
/// `canary 18 requests, 9 errors (50.00%), p99 4.2 ms · stable 160 requests,
/// 0 errors (0.00%), p99 2.4 ms · error test: worse`.
///
/// It reads only `canary` and `stable` (`requests`, `errors`, `p99_ms`),
/// `errors` (the error test's verdict), the `why` of each latency test whose
/// `verdict` is `worse` (and `latency_failure` of older records), and leaves
/// out what is missing; `None` when neither side is there.
pub fn analysis_numbers(analysis: &serde_json::Value) -> Option<String> {
    let side = |name: &str| {
        let sample = analysis.get(name)?.as_object()?;
        let count = |field: &str| sample.get(field).and_then(serde_json::Value::as_u64);
        let mut parts = Vec::new();
        if let Some(requests) = count("requests") {
            parts.push(format!(
                "{requests} request{}",
                if requests == 1 { "" } else { "s" }
            ));
            if let Some(errors) = count("errors") {
                let percent = if requests == 0 {
                    0.0
                } else {
                    errors as f64 * 100.0 / requests as f64
                };
                parts.push(format!(
                    "{errors} error{} ({percent:.2}%)",
                    if errors == 1 { "" } else { "s" }
                ));
            }
        }
        if let Some(p99) = sample.get("p99_ms").and_then(serde_json::Value::as_f64) {
            parts.push(format!("p99 {p99:.1} ms"));
        }
        (!parts.is_empty()).then(|| format!("{name} {}", parts.join(", ")))
    };
    let mut line: Vec<String> = ["canary", "stable"].into_iter().filter_map(side).collect();
    if line.is_empty() {
        return None;
    }
    if let Some(verdict) = analysis.get("errors").and_then(serde_json::Value::as_str) {
        line.push(format!("error test: {verdict}"));
    }
    if let Some(latency) = analysis
        .get("latency_failure")
        .and_then(serde_json::Value::as_str)
    {
        // Records written before the per-quantile latency tests.
        line.push(format!("latency: {latency}"));
    }
    // The per-quantile latency tests: each one that failed the canary says why.
    let tests = analysis
        .get("latency")
        .and_then(serde_json::Value::as_array);
    for test in tests.into_iter().flatten() {
        if test.get("verdict").and_then(serde_json::Value::as_str) == Some("worse")
            && let Some(why) = test.get("why").and_then(serde_json::Value::as_str)
        {
            line.push(why.to_string());
        }
    }
    Some(line.join(" · "))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::analysis_numbers;

    #[test]
    fn analysis_numbers_read_as_one_line_and_skip_what_is_missing() {
        let cases = [
            (
                json!({
                    "canary": { "requests": 18, "errors": 9, "p95_ms": 3.9, "p99_ms": 4.2 },
                    "stable": { "requests": 160, "errors": 0, "p99_ms": 2.4 },
                    "errors": "worse",
                    "latency_failure": null,
                }),
                Some(
                    "canary 18 requests, 9 errors (50.00%), p99 4.2 ms · stable 160 requests, 0 errors (0.00%), p99 2.4 ms · error test: worse",
                ),
            ),
            (
                json!({
                    "canary": { "requests": 1, "errors": 1 },
                    "stable": { "requests": 0, "errors": 0 },
                    "latency_failure": "p99 latency 80.0 ms is 20.00× stable's 4.0 ms (limit 1.5×)",
                }),
                Some(
                    "canary 1 request, 1 error (100.00%) · stable 0 requests, 0 errors (0.00%) · latency: p99 latency 80.0 ms is 20.00× stable's 4.0 ms (limit 1.5×)",
                ),
            ),
            (
                json!({
                    "canary": { "requests": 300, "errors": 0, "p99_ms": 150.0 },
                    "stable": { "requests": 2000, "errors": 1, "p99_ms": 70.0 },
                    "errors": "no-worse",
                    "latency": [
                        { "name": "p99", "verdict": "undecided", "why": "p99 latency undecided: 300 of the 1000 stable latency samples" },
                        { "name": "p95", "verdict": "worse", "why": "p95 latency: 40 of 300 canary requests (13%) took over 90.0 ms" },
                    ],
                }),
                Some(
                    "canary 300 requests, 0 errors (0.00%), p99 150.0 ms · stable 2000 requests, 1 error (0.05%), p99 70.0 ms · error test: no-worse · p95 latency: 40 of 300 canary requests (13%) took over 90.0 ms",
                ),
            ),
            (json!({ "canary": {}, "errors": "undecided" }), None),
            (json!({ "errors": "worse" }), None),
            (json!("not an object"), None),
            (json!(null), None),
        ];
        for (analysis, expected) in cases {
            assert_eq!(
                analysis_numbers(&analysis).as_deref(),
                expected,
                "{analysis}"
            );
        }
    }
}
