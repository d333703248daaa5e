//! `environments:`: deploy targets with their strategy, gates and route.

use std::collections::BTreeMap;
use std::time::Duration;

use super::service::http_path;
use super::{Problem, Reader};
use crate::model::{Environment, Gates, Promote, Route, Strategy, VerifyCheck};
use crate::node::{Node, Value};
use crate::scalar::{self, AddressError};

const STRATEGIES: &[&str] = &["rolling", "blue-green", "recreate", "canary"];

/// Default canary weights when `steps` is not given.
const DEFAULT_CANARY_STEPS: &[f64] = &[5.0, 25.0, 50.0, 100.0];

pub(super) fn read_environments(reader: &mut Reader<'_>, node: &Node) -> Option<Vec<Environment>> {
    let entries = reader.entries(node, "`environments`")?;
    let mut environments = Vec::with_capacity(entries.len());
    let mut first_lines: BTreeMap<String, usize> = BTreeMap::new();
    let mut complete = true;
    for (name, key, value) in entries {
        if !scalar::is_step_name(&name) {
            complete = false;
            reader.error(
                key.place,
                Problem::new("spec::invalid-name", format!("`{name}` is not a valid environment name"), "invalid name")
                    .hint("environment names use letters, digits, `-`, `_` and `.` only, e.g. `production`"),
            );
            continue;
        }
        if let Some(first_line) = first_lines.get(&name) {
            complete = false;
            reader.error(
                key.place,
                Problem::new(
                    "spec::duplicate-environment",
                    format!("environment `{name}` is defined twice (first on line {first_line})"),
                    "defined again",
                )
                .hint("merge the two definitions or rename one"),
            );
            continue;
        }
        first_lines.insert(name.clone(), key.place.line);
        match read_environment(reader, &name, value) {
            Some(environment) => environments.push(environment),
            None => complete = false,
        }
    }
    complete.then_some(environments)
}

fn read_environment(reader: &mut Reader<'_>, name: &str, node: &Node) -> Option<Environment> {
    let mut environment = Environment {
        name: name.to_owned(),
        instances: 1,
        strategy: Strategy::Rolling {
            batch: 1,
            max_surge: 1,
        },
        gates: Gates::default(),
        route: None,
        promote: Promote::Auto,
    };
    // `staging:` with nothing under it means "all defaults".
    if node.value == Value::Null {
        return Some(environment);
    }
    let context = format!("environment `{name}`");
    let fields = reader.fields(
        node,
        &context,
        &["instances", "strategy", "gates", "route", "promote"],
        &[],
    )?;
    let mut complete = true;
    if let Some(value) = fields.get("instances") {
        match reader.count(value, "instances", 1, 1000) {
            Some(instances) => environment.instances = instances,
            None => complete = false,
        }
    }
    if let Some(value) = fields.get("strategy") {
        match read_strategy(reader, value, name) {
            Some(strategy) => environment.strategy = strategy,
            None => complete = false,
        }
    }
    if let Some(value) = fields.get("gates") {
        match read_gates(reader, value, name) {
            Some(gates) => environment.gates = gates,
            None => complete = false,
        }
    }
    if let Some(value) = fields.get("route") {
        match read_route(reader, value, name) {
            Some(route) => environment.route = Some(route),
            None => complete = false,
        }
    }
    if let Some(value) = fields.get("promote") {
        match reader.keyword(
            value,
            "promote mode",
            "spec::unknown-value",
            &["auto", "manual"],
        ) {
            Some("manual") => environment.promote = Promote::Manual,
            Some(_) => environment.promote = Promote::Auto,
            None => complete = false,
        }
    }
    complete.then_some(environment)
}

fn default_strategy(kind: &str) -> Strategy {
    match kind {
        "blue-green" => Strategy::BlueGreen {
            rollback_window: Duration::from_secs(600),
        },
        "recreate" => Strategy::Recreate,
        "canary" => Strategy::Canary {
            steps: DEFAULT_CANARY_STEPS.to_vec(),
            step_duration: Duration::from_secs(30),
            min_requests: 100,
            step_deadline: Duration::from_secs(600),
            max_error_rate_increase: 1.0,
            max_latency_ratio: 1.5,
        },
        _ => Strategy::Rolling {
            batch: 1,
            max_surge: 1,
        },
    }
}

/// The keys a strategy map of this type accepts.
fn strategy_keys(kind: &str) -> &'static [&'static str] {
    match kind {
        "rolling" => &["type", "batch", "max_surge"],
        "blue-green" => &["type", "rollback_window"],
        "recreate" => &["type"],
        _ => &[
            "type",
            "steps",
            "step_duration",
            "min_requests",
            "step_deadline",
            "max_error_rate_increase",
            "max_latency_ratio",
        ],
    }
}

fn read_strategy(reader: &mut Reader<'_>, node: &Node, environment: &str) -> Option<Strategy> {
    if !matches!(node.value, Value::Map(_)) {
        let kind = reader.keyword(node, "strategy", "spec::unknown-strategy", STRATEGIES)?;
        return Some(default_strategy(kind));
    }
    let type_node = match &node.value {
        Value::Map(pairs) => pairs.iter().find_map(|(key, value)| {
            matches!(&key.value, Value::Text(text) if text == "type").then_some(value)
        }),
        _ => None,
    };
    let Some(type_node) = type_node else {
        reader.missing(
            node,
            &format!("the strategy of environment `{environment}`"),
            "type",
            "type: canary",
        );
        return None;
    };
    let kind = reader.keyword(type_node, "strategy", "spec::unknown-strategy", STRATEGIES)?;
    let allowed = strategy_keys(kind);
    let context = format!("the {kind} strategy of environment `{environment}`");
    let belongs_elsewhere = |key: &str| {
        STRATEGIES
            .iter()
            .find(|other| **other != kind && strategy_keys(other).contains(&key))
            .map(|other| format!("`{key}` belongs to the {other} strategy"))
    };
    let fields = reader.fields_with_note(node, &context, allowed, &[], &belongs_elsewhere)?;
    let mut strategy = default_strategy(kind);
    let mut complete = true;
    match &mut strategy {
        Strategy::Rolling { batch, max_surge } => {
            if let Some(value) = fields
                .get("batch")
                .and_then(|value| take(&mut complete, reader.count(value, "batch", 1, 1000)))
            {
                *batch = value;
            }
            if let Some(value) = fields
                .get("max_surge")
                .and_then(|value| take(&mut complete, reader.count(value, "max_surge", 0, 1000)))
            {
                *max_surge = value;
            }
        }
        Strategy::BlueGreen { rollback_window } => {
            if let Some(value) = fields
                .get("rollback_window")
                .and_then(|value| take(&mut complete, reader.duration(value, "rollback_window")))
            {
                *rollback_window = value;
            }
        }
        Strategy::Recreate => {}
        Strategy::Canary {
            steps,
            step_duration,
            min_requests,
            step_deadline,
            max_error_rate_increase,
            max_latency_ratio,
        } => {
            if let Some(value) = fields
                .get("steps")
                .and_then(|value| take(&mut complete, canary_steps(reader, value)))
            {
                *steps = value;
            }
            if let Some(value) = fields.get("step_duration").and_then(|value| {
                take(
                    &mut complete,
                    reader.positive_duration(value, "step_duration"),
                )
            }) {
                *step_duration = value;
            }
            if let Some(value) = fields.get("min_requests").and_then(|value| {
                take(
                    &mut complete,
                    reader.integer(value, "min_requests", 0, 1_000_000_000),
                )
            }) {
                *min_requests = u64::try_from(value).unwrap_or_default();
            }
            if let Some(value) = fields.get("step_deadline").and_then(|value| {
                take(
                    &mut complete,
                    reader.positive_duration(value, "step_deadline"),
                )
            }) {
                *step_deadline = value;
            }
            if let Some(value) = fields.get("max_error_rate_increase").and_then(|value| {
                take(
                    &mut complete,
                    reader.number(value, "max_error_rate_increase", 0.0, 100.0),
                )
            }) {
                *max_error_rate_increase = value;
            }
            if let Some(value) = fields.get("max_latency_ratio").and_then(|value| {
                take(
                    &mut complete,
                    reader.number(value, "max_latency_ratio", 1.0, 1000.0),
                )
            }) {
                *max_latency_ratio = value;
            }
        }
    }
    complete.then_some(strategy)
}

/// Passes `value` through, noting in `complete` when it is missing.
fn take<T>(complete: &mut bool, value: Option<T>) -> Option<T> {
    if value.is_none() {
        *complete = false;
    }
    value
}

fn canary_steps(reader: &mut Reader<'_>, node: &Node) -> Option<Vec<f64>> {
    let Value::List(items) = &node.value else {
        reader.error(
            node.place,
            Problem::new(
                "spec::wrong-type",
                format!(
                    "canary `steps` must be a list of percentages, found {}",
                    node.value.kind()
                ),
                "expected a list",
            )
            .hint("write e.g. `steps: [1, 5, 25, 50, 100]`"),
        );
        return None;
    };
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
                    format!("canary steps must go up, but {percent}% comes after {previous}%"),
                    "not above the previous step",
                )
                .hint("list traffic percentages in ascending order, e.g. `[1, 5, 25, 50, 100]`"),
            );
        }
        previous = Some(percent);
        steps.push(percent);
    }
    if let (Some(last), Some(last_node)) = (previous, items.last())
        && complete
        && last < 100.0
    {
        reader.error(
            last_node.place,
            Problem::new(
                "spec::invalid-canary-steps",
                format!("the last canary step is {last}%; it must be 100% so the release ends with all traffic"),
                "last step",
            )
            .hint("add 100 at the end of `steps`"),
        );
        return None;
    }
    complete.then_some(steps)
}

fn read_gates(reader: &mut Reader<'_>, node: &Node, environment: &str) -> Option<Gates> {
    let fields = reader.fields(
        node,
        &format!("the gates of environment `{environment}`"),
        &["approval", "verify"],
        &[],
    )?;
    let approval_required = match fields.get("approval") {
        Some(value) => Some(
            reader.keyword(
                value,
                "approval gate",
                "spec::unknown-value",
                &["required", "none"],
            )? == "required",
        ),
        None => Some(false),
    };
    let verify = match fields.get("verify") {
        Some(value) => read_verify(reader, value),
        None => Some(Vec::new()),
    };
    Some(Gates {
        approval_required: approval_required?,
        verify: verify?,
    })
}

fn read_verify(reader: &mut Reader<'_>, node: &Node) -> Option<Vec<VerifyCheck>> {
    let Value::List(items) = &node.value else {
        reader.error(
            node.place,
            Problem::new(
                "spec::wrong-type",
                format!(
                    "`verify` must be a list of checks, found {}",
                    node.value.kind()
                ),
                "expected a list",
            )
            .hint("write e.g. `verify: [{ path: /healthz, status: 200 }]`"),
        );
        return None;
    };
    let mut checks = Vec::with_capacity(items.len());
    let mut complete = true;
    for item in items {
        let Some(fields) = reader.fields(
            item,
            "a `verify` check",
            &["path", "status", "body_contains"],
            &[("path", "path: /healthz")],
        ) else {
            complete = false;
            continue;
        };
        let path = fields
            .get("path")
            .and_then(|value| http_path(reader, value, "verify.path"));
        let status = match fields.get("status") {
            Some(value) => reader
                .integer(value, "verify.status", 100, 599)
                .and_then(|status| u16::try_from(status).ok()),
            None => Some(200),
        };
        let body_contains = match fields.get("body_contains") {
            Some(value) => reader.text(value, "verify.body_contains").map(Some),
            None => Some(None),
        };
        match (path, status, body_contains) {
            (Some(path), Some(status), Some(body_contains)) => checks.push(VerifyCheck {
                path,
                status,
                body_contains,
            }),
            _ => complete = false,
        }
    }
    complete.then_some(checks)
}

fn read_route(reader: &mut Reader<'_>, node: &Node, environment: &str) -> Option<Route> {
    let fields = reader.fields(
        node,
        &format!("the route of environment `{environment}`"),
        &["listen", "host", "path_prefix"],
        &[("listen", "listen: \"127.0.0.1:8080\"")],
    )?;
    let listen = fields.get("listen").and_then(|value| {
        let text = reader.text(value, "route.listen")?;
        match scalar::parse_address(&text) {
            Ok(address) => Some(address),
            Err(AddressError::Port(message)) => {
                reader.error(
                    value.place,
                    Problem::new(
                        "spec::invalid-port",
                        format!("invalid port in `route.listen`: {message}"),
                        "bad port",
                    )
                    .hint("write a port from 1 to 65535, e.g. \"127.0.0.1:8080\""),
                );
                None
            }
            Err(AddressError::Address(message)) => {
                reader.error(
                    value.place,
                    Problem::new(
                        "spec::invalid-address",
                        format!("invalid address in `route.listen`: {message}"),
                        "bad address",
                    )
                    .hint("write \"127.0.0.1:8080\", \":8080\" (all interfaces) or \"[::1]:8080\""),
                );
                None
            }
        }
    });
    let host = match fields.get("host") {
        Some(value) => reader
            .non_empty_text(
                value,
                "route.host",
                "write a host name such as `example.com`, or remove `host` to match any",
            )
            .map(Some),
        None => Some(None),
    };
    let path_prefix = match fields.get("path_prefix") {
        Some(value) => http_path(reader, value, "route.path_prefix"),
        None => Some("/".to_owned()),
    };
    Some(Route {
        listen: listen?,
        host: host?,
        path_prefix: path_prefix?,
    })
}
