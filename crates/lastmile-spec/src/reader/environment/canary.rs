//! The canary strategy: weight steps and pauses, analysis, dark launch.

use std::time::Duration;

use super::take;
use crate::model::{Canary, CanaryAnalysis, CanaryStep, Mirror, PrometheusCheck};
use crate::node::{Node, Value};
use crate::reader::{Fields, Problem, Reader};
use crate::scalar::did_you_mean;

/// Keys of a canary strategy map.
pub(super) const CANARY_KEYS: &[&str] = &[
    "type",
    "steps",
    "step_duration",
    "min_requests",
    "step_deadline",
    "max_error_rate_increase",
    "max_latency_ratio",
    "analysis",
    "mirror",
    "guard",
];

/// Keys of `analysis`.
const ANALYSIS_KEYS: &[&str] = &[
    "interval",
    "confidence",
    "max_p95_ratio",
    "max_p99_ms",
    "max_p95_ms",
    "latency_floor_ms",
    "warmup_requests",
    "warmup",
    "prometheus",
];

/// Methods a mirror may copy. `CONNECT` opens a tunnel and `TRACE` echoes
/// the request: neither has an answer worth comparing.
const MIRROR_METHODS: &[&str] = &["GET", "HEAD", "OPTIONS", "POST", "PUT", "PATCH", "DELETE"];

/// Reads a canary strategy's keys over the defaults.
pub(super) fn read_canary(reader: &mut Reader<'_>, fields: &Fields<'_>) -> Option<Canary> {
    let mut canary = Canary::default();
    let mut complete = true;
    if let Some(value) = fields
        .get("steps")
        .and_then(|value| take(&mut complete, canary_steps(reader, value)))
    {
        canary.steps = value;
    }
    if let Some(value) = fields.get("step_duration").and_then(|value| {
        take(
            &mut complete,
            reader.positive_duration(value, "step_duration"),
        )
    }) {
        canary.step_duration = value;
    }
    if let Some(value) = fields.get("min_requests").and_then(|value| {
        take(
            &mut complete,
            reader.integer(value, "min_requests", 0, 1_000_000_000),
        )
    }) {
        canary.min_requests = u64::try_from(value).unwrap_or_default();
    }
    if let Some(value) = fields.get("step_deadline").and_then(|value| {
        take(
            &mut complete,
            reader.positive_duration(value, "step_deadline"),
        )
    }) {
        canary.step_deadline = value;
    }
    if let Some(value) = fields.get("max_error_rate_increase").and_then(|value| {
        take(
            &mut complete,
            reader.percentage_number(value, "max_error_rate_increase", 0.0, 100.0),
        )
    }) {
        canary.max_error_rate_increase = value;
    }
    if let Some(value) = fields.get("max_latency_ratio").and_then(|value| {
        take(
            &mut complete,
            reader.number(value, "max_latency_ratio", 1.0, 100.0),
        )
    }) {
        canary.max_latency_ratio = value;
    }
    if let Some(value) = fields
        .get("analysis")
        .and_then(|value| take(&mut complete, read_analysis(reader, value)))
    {
        canary.analysis = value;
    }
    if let Some(value) = fields
        .get("mirror")
        .and_then(|value| take(&mut complete, read_mirror(reader, value)))
    {
        canary.mirror = Some(value);
    }
    if let Some(value) = fields
        .get("guard")
        .and_then(|value| take(&mut complete, reader.duration(value, "guard")))
    {
        canary.guard = value;
    }
    complete.then_some(canary)
}

fn canary_steps(reader: &mut Reader<'_>, node: &Node) -> Option<Vec<CanaryStep>> {
    let items = reader.list(
        node,
        "canary `steps` must be a list of percentages",
        "write e.g. `steps: [1, 5, 25, 50, 100]`",
    )?;
    if items.is_empty() {
        reader.error(
            node.place,
            Problem::new(
                "spec::invalid-canary-steps",
                "canary `steps` is empty",
                "no steps",
            )
            .hint("write e.g. `steps: [1, 5, 25, 50, 100]`"),
        );
        return None;
    }
    let mut steps = Vec::with_capacity(items.len());
    let mut previous: Option<f64> = None;
    let mut complete = true;
    for item in items {
        // A word is `pause` or a mistake; anything else should be a number.
        if let Value::Text(text) = &item.value
            && text.trim_start().starts_with(char::is_alphabetic)
        {
            if text != "pause" {
                complete = false;
                let hint = match did_you_mean(text, ["pause"]) {
                    Some(suggestion) => format!(
                        "did you mean `{suggestion}`? a step is a percentage such as 25, or `pause`"
                    ),
                    None => "a step is a percentage such as 25, or `pause` to wait for a person"
                        .to_owned(),
                };
                reader.error(
                    item.place,
                    Problem::new(
                        "spec::invalid-canary-steps",
                        format!("unknown canary step `{text}`"),
                        "not a step",
                    )
                    .hint(hint),
                );
                continue;
            }
            if steps.last() == Some(&CanaryStep::Pause) {
                complete = false;
                reader.error(
                    item.place,
                    Problem::new(
                        "spec::invalid-canary-steps",
                        "two `pause` steps in a row; the second waits again at the same weight",
                        "second pause",
                    )
                    .hint("remove one `pause`: a pause already holds until the rollout is resumed"),
                );
                continue;
            }
            steps.push(CanaryStep::Pause);
            continue;
        }
        let Some(percent) = reader.percent(item, "steps") else {
            complete = false;
            continue;
        };
        if let Some(previous) = previous.filter(|previous| percent <= *previous) {
            complete = false;
            reader.error(
                item.place,
                Problem::new(
                    "spec::invalid-canary-steps",
                    format!("canary weight {percent} does not increase on the previous {previous}"),
                    "not above the previous weight",
                )
                .hint("list traffic percentages in ascending order, e.g. `[1, 5, 25, 50, 100]`"),
            );
        }
        previous = Some(percent);
        steps.push(CanaryStep::Weight(percent));
    }
    if let (Some(last), Some(last_node)) = (steps.last(), items.last())
        && complete
    {
        let found = match last {
            CanaryStep::Weight(weight) if *weight < 100.0 => Some(weight.to_string()),
            CanaryStep::Weight(_) => None,
            CanaryStep::Pause => Some("`pause`".to_owned()),
        };
        if let Some(found) = found {
            reader.error(
                last_node.place,
                Problem::new(
                    "spec::invalid-canary-steps",
                    format!(
                        "the last canary step is {found}; the last step must be 100 so the canary can be promoted"
                    ),
                    "last step",
                )
                .hint("end `steps` with 100"),
            );
            return None;
        }
    }
    complete.then_some(steps)
}

fn read_analysis(reader: &mut Reader<'_>, node: &Node) -> Option<CanaryAnalysis> {
    let fields = reader.fields(node, "the canary `analysis`", ANALYSIS_KEYS, &[])?;
    let mut analysis = CanaryAnalysis::default();
    let mut complete = true;
    if let Some(value) = fields.get("interval").and_then(|value| {
        take(
            &mut complete,
            reader.duration_between(
                value,
                "analysis.interval",
                Duration::from_millis(100),
                Duration::from_secs(60),
            ),
        )
    }) {
        analysis.interval = value;
    }
    if let Some(value) = fields.get("confidence").and_then(|value| {
        take(
            &mut complete,
            reader.number(value, "analysis.confidence", 0.5, 0.9999),
        )
    }) {
        analysis.confidence = value;
    }
    if let Some(value) = fields.get("max_p95_ratio").and_then(|value| {
        take(
            &mut complete,
            reader.number(value, "analysis.max_p95_ratio", 1.0, 100.0),
        )
    }) {
        analysis.max_p95_ratio = value;
    }
    for (key, slot) in [
        ("max_p99_ms", &mut analysis.max_p99_ms),
        ("max_p95_ms", &mut analysis.max_p95_ms),
    ] {
        if let Some(value) = fields.get(key).and_then(|value| {
            take(
                &mut complete,
                reader.number_where(
                    value,
                    &format!("analysis.{key}"),
                    |value| value > 0.0,
                    "above 0",
                    "write a latency in milliseconds above 0, e.g. `250`",
                ),
            )
        }) {
            *slot = Some(value);
        }
    }
    if let Some(value) = fields.get("latency_floor_ms").and_then(|value| {
        take(
            &mut complete,
            reader.number_where(
                value,
                "analysis.latency_floor_ms",
                |value| value >= 0.0,
                "at least 0",
                "write a latency in milliseconds, e.g. `5`, or `0` to compare latencies at any level",
            ),
        )
    }) {
        analysis.latency_floor_ms = value;
    }
    if let Some(value) = fields.get("warmup_requests").and_then(|value| {
        take(
            &mut complete,
            reader.integer(value, "analysis.warmup_requests", 0, 10_000),
        )
    }) {
        analysis.warmup_requests = u64::try_from(value).unwrap_or_default();
    }
    if let Some(value) = fields.get("warmup").and_then(|value| {
        take(
            &mut complete,
            reader.duration_between(
                value,
                "analysis.warmup",
                Duration::ZERO,
                Duration::from_secs(600),
            ),
        )
    }) {
        analysis.warmup = value;
    }
    if let Some(value) = fields
        .get("prometheus")
        .and_then(|value| take(&mut complete, read_prometheus(reader, value)))
    {
        analysis.prometheus = Some(value);
    }
    complete.then_some(analysis)
}

fn read_prometheus(reader: &mut Reader<'_>, node: &Node) -> Option<PrometheusCheck> {
    let fields = reader.fields(
        node,
        "`analysis.prometheus`",
        &["url", "query", "max"],
        &[
            ("url", "url: \"http://127.0.0.1:9090\""),
            ("query", "query: sum(rate(errors_total[1m]))"),
            ("max", "max: 0.01"),
        ],
    )?;
    let url = fields.get("url").and_then(|value| {
        reader.http_url(value, "analysis.prometheus.url", "http://127.0.0.1:9090")
    });
    let query = fields.get("query").and_then(|value| {
        reader.non_empty_text(
            value,
            "analysis.prometheus.query",
            "write a PromQL expression, e.g. `sum(rate(errors_total[1m]))`",
        )
    });
    let max = fields.get("max").and_then(|value| {
        reader.number_where(
            value,
            "analysis.prometheus.max",
            f64::is_finite,
            "a finite number",
            "write the highest acceptable value of the query, e.g. `0.01`",
        )
    });
    Some(PrometheusCheck {
        url: url?,
        query: query?,
        max: max?,
    })
}

fn read_mirror(reader: &mut Reader<'_>, node: &Node) -> Option<Mirror> {
    let fields = reader.fields(
        node,
        "the canary `mirror`",
        &["percent", "methods", "duration", "min_requests"],
        &[("percent", "percent: 10")],
    )?;
    let percent = fields.get("percent").and_then(|value| {
        reader.percentage_where(
            value,
            "mirror.percent",
            |value| value > 0.0 && value <= 100.0,
            "above 0 and at most 100",
            "write the percent of requests to copy, e.g. `10` or \"2.5%\"",
        )
    });
    let methods = match fields.get("methods") {
        Some(value) => mirror_methods(reader, value),
        None => Some(vec!["GET".to_owned(), "HEAD".to_owned()]),
    };
    let duration = match fields.get("duration") {
        Some(value) => reader.positive_duration(value, "mirror.duration"),
        None => Some(Duration::from_secs(60)),
    };
    let min_requests = match fields.get("min_requests") {
        Some(value) => reader
            .integer(value, "mirror.min_requests", 0, 1_000_000_000)
            .and_then(|value| u64::try_from(value).ok()),
        None => Some(100),
    };
    Some(Mirror {
        percent: percent?,
        methods: methods?,
        duration: duration?,
        min_requests: min_requests?,
    })
}

fn mirror_methods(reader: &mut Reader<'_>, node: &Node) -> Option<Vec<String>> {
    let written = reader.string_list(node, "mirror.methods", "methods: [GET, HEAD]")?;
    if written.is_empty() {
        reader.error(
            node.place,
            Problem::new(
                "spec::empty",
                "`mirror.methods` is empty, so nothing would be mirrored",
                "empty list",
            )
            .hint("list the methods to copy, e.g. `methods: [GET, HEAD]`, or remove the key for that default"),
        );
        return None;
    }
    let mut methods: Vec<String> = Vec::with_capacity(written.len());
    let mut complete = true;
    for (method, place) in written {
        if !MIRROR_METHODS.contains(&method.as_str()) {
            complete = false;
            let upper = method.to_ascii_uppercase();
            let suggestion = if MIRROR_METHODS.contains(&upper.as_str()) {
                Some(upper)
            } else {
                let lower: Vec<String> = MIRROR_METHODS
                    .iter()
                    .map(|known| known.to_ascii_lowercase())
                    .collect();
                did_you_mean(&method, lower.iter().map(String::as_str)).map(str::to_ascii_uppercase)
            };
            let valid = MIRROR_METHODS.join(", ");
            let hint = match suggestion {
                Some(suggestion) => {
                    format!("did you mean `{suggestion}`? methods are uppercase: {valid}")
                }
                None => format!("methods that can be mirrored: {valid}"),
            };
            reader.error(
                place,
                Problem::new(
                    "spec::unknown-value",
                    format!("unknown HTTP method `{method}` in `mirror.methods`"),
                    "unknown method",
                )
                .hint(hint),
            );
            continue;
        }
        if methods.contains(&method) {
            complete = false;
            reader.error(
                place,
                Problem::new(
                    "spec::duplicate-key",
                    format!("`{method}` is listed twice in `mirror.methods`"),
                    "listed again",
                )
                .hint("list each method once"),
            );
            continue;
        }
        methods.push(method);
    }
    complete.then_some(methods)
}
