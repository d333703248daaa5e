//! `environments:`: deploy targets with their strategy, gates, route,
//! cohort, pins and notifications.

mod canary;
mod cohort;
mod gates;
mod route;

use std::collections::BTreeMap;
use std::time::Duration;

use super::{Problem, Reader};
use crate::model::{Canary, Environment, Gates, Notify, NotifyFormat, Promote, Strategy};
use crate::node::{Node, Value};
use crate::scalar;

const STRATEGIES: &[&str] = &["rolling", "blue-green", "recreate", "canary"];

/// Keys of an environment map.
const ENVIRONMENT_KEYS: &[&str] = &[
    "instances",
    "strategy",
    "gates",
    "route",
    "promote",
    "cohort",
    "pins",
    "notify",
];

pub(super) fn read_environments(reader: &mut Reader<'_>, node: &Node) -> Option<Vec<Environment>> {
    let entries = reader.entries(node, "`environments`")?;
    let mut environments = Vec::with_capacity(entries.len());
    let mut sites = Vec::with_capacity(entries.len());
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
            Some((environment, site)) => {
                environments.push(environment);
                sites.push(site);
            }
            None => complete = false,
        }
    }
    let routes: Vec<route::PlacedRoute<'_>> = environments
        .iter()
        .zip(&sites)
        .filter_map(|(environment, site)| {
            Some(route::PlacedRoute {
                environment: &environment.name,
                route: environment.route.as_ref()?,
                site: (*site)?,
            })
        })
        .collect();
    let errors_before = reader.diagnostics.len();
    route::check_listeners(reader, &routes);
    complete &= reader.diagnostics.len() == errors_before;
    complete.then_some(environments)
}

/// One environment, with where its route was written (for the checks across
/// environments).
fn read_environment(
    reader: &mut Reader<'_>,
    name: &str,
    node: &Node,
) -> Option<(Environment, Option<route::RouteSite>)> {
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
        cohort: None,
        pins: Vec::new(),
        notify: Vec::new(),
    };
    let mut route_site = None;
    // `staging:` with nothing under it means "all defaults".
    if node.value == Value::Null {
        return Some((environment, route_site));
    }
    let context = format!("environment `{name}`");
    let fields = reader.fields(node, &context, ENVIRONMENT_KEYS, &[])?;
    let mut complete = true;
    if let Some(value) = fields.get("instances") {
        match reader.count(value, "instances", 1, 1000) {
            Some(instances) => environment.instances = instances,
            None => complete = false,
        }
    }
    let mut strategy_known = true;
    if let Some(value) = fields.get("strategy") {
        match read_strategy(reader, value, name) {
            Some(strategy) => environment.strategy = strategy,
            None => {
                complete = false;
                strategy_known = false;
            }
        }
    }
    if let Some(value) = fields.get("gates") {
        match gates::read_gates(reader, value, name) {
            Some(gates) => environment.gates = gates,
            None => complete = false,
        }
    }
    if let Some(value) = fields.get("route") {
        match route::read_route(reader, value, name) {
            Some((route, site)) => {
                environment.route = Some(route);
                route_site = Some(site);
            }
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
    if let Some(value) = fields.get("cohort") {
        match cohort::read_cohort(reader, value, name) {
            Some(cohort) => environment.cohort = Some(cohort),
            None => complete = false,
        }
    }
    if let Some(value) = fields.get("pins") {
        match cohort::read_pins(reader, value, name) {
            Some(pins) => environment.pins = pins,
            None => complete = false,
        }
    }
    if let Some(value) = fields.get("notify") {
        match read_notify(reader, value) {
            Some(notify) => environment.notify = notify,
            None => complete = false,
        }
    }
    // Pins and cohorts choose between canary and stable; any other strategy
    // has one release taking traffic, so they would silently do nothing.
    if strategy_known && !matches!(environment.strategy, Strategy::Canary(_)) {
        let uses = environment.strategy.name();
        for (key, message) in [
            (
                "pins",
                format!("pins route to a canary; environment `{name}` uses {uses}"),
            ),
            (
                "cohort",
                format!(
                    "a cohort keeps each user on one side of a canary; environment `{name}` uses {uses}"
                ),
            ),
        ] {
            if let Some(key_node) = fields.key(key) {
                complete = false;
                reader.error(
                    key_node.place,
                    Problem::new("spec::canary-only", message, "needs a canary strategy").hint(
                        format!("set `strategy: canary` on `{name}`, or remove `{key}`"),
                    ),
                );
            }
        }
    }
    complete.then_some((environment, route_site))
}

fn default_strategy(kind: &str) -> Strategy {
    match kind {
        "blue-green" => Strategy::BlueGreen {
            rollback_window: Duration::from_secs(600),
        },
        "recreate" => Strategy::Recreate,
        "canary" => Strategy::Canary(Canary::default()),
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
        _ => canary::CANARY_KEYS,
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
        Strategy::Canary(canary) => match canary::read_canary(reader, &fields) {
            Some(read) => *canary = read,
            None => complete = false,
        },
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

fn read_notify(reader: &mut Reader<'_>, node: &Node) -> Option<Vec<Notify>> {
    let items = reader.list(node, "`notify` must be a list of endpoints", "write e.g. `notify: [{ url: \"https://hooks.slack.com/services/T0/B0/x\", format: slack }]`")?;
    let mut endpoints = Vec::with_capacity(items.len());
    let mut complete = true;
    for item in items {
        let Some(fields) = reader.fields(
            item,
            "a `notify` endpoint",
            &["url", "format", "timeout"],
            &[("url", "url: \"https://hooks.example.com/deploys\"")],
        ) else {
            complete = false;
            continue;
        };
        let url = fields.get("url").and_then(|value| {
            reader.http_url(value, "notify.url", "https://hooks.example.com/deploys")
        });
        let format = match fields.get("format") {
            Some(value) => reader
                .keyword(
                    value,
                    "notify format",
                    "spec::unknown-value",
                    &["json", "slack"],
                )
                .map(|format| match format {
                    "slack" => NotifyFormat::Slack,
                    _ => NotifyFormat::Json,
                }),
            None => Some(NotifyFormat::Json),
        };
        let timeout = match fields.get("timeout") {
            Some(value) => reader.positive_duration(value, "notify.timeout"),
            None => Some(Duration::from_secs(5)),
        };
        match (url, format, timeout) {
            (Some(url), Some(format), Some(timeout)) => endpoints.push(Notify {
                url,
                format,
                timeout,
            }),
            _ => complete = false,
        }
    }
    complete.then_some(endpoints)
}
