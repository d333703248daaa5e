//! What the API answers: a JSON schema for every successful answer, the
//! component schemas they share (one per record: a field added to a record
//! is added here once), and the OpenAPI links between operations.
//!
//! Records the server writes itself are closed (`additionalProperties:
//! false`): a field the document does not name fails the schemathesis run,
//! so the document cannot fall behind. Parts copied from `lastmile.yaml`
//! (a strategy's settings) or free-form by design (an event's `data`, a
//! deployment step's `detail`) stay open.

use serde_json::{Map, Value, json};

use super::{DEPLOYMENT_STATUSES, ROLES, RUN_STATUSES, STRATEGIES};

fn text() -> Value {
    json!({ "type": "string" })
}

fn integer() -> Value {
    json!({ "type": "integer" })
}

fn count() -> Value {
    json!({ "type": "integer", "minimum": 0 })
}

fn number() -> Value {
    json!({ "type": "number" })
}

fn boolean() -> Value {
    json!({ "type": "boolean" })
}

/// Milliseconds since the Unix epoch (UTC).
fn millis() -> Value {
    json!({ "type": "integer", "description": "Milliseconds since the Unix epoch (UTC)." })
}

fn reference(name: &str) -> Value {
    json!({ "$ref": format!("#/components/schemas/{name}") })
}

fn list(items: Value) -> Value {
    json!({ "type": "array", "items": items })
}

fn one_of(values: &[&str]) -> Value {
    json!({ "type": "string", "enum": values })
}

/// `schema` or `null`.
fn nullable(schema: Value) -> Value {
    match schema.get("type").and_then(Value::as_str) {
        Some(kind) if schema.get("enum").is_none() => {
            let mut schema = schema.clone();
            schema["type"] = json!([kind, "null"]);
            schema
        }
        _ => json!({ "anyOf": [schema, { "type": "null" }] }),
    }
}

/// An object with exactly these fields, all present (optional values are
/// `null`, never left out).
fn record(fields: &[(&str, Value)]) -> Value {
    let mut properties = Map::new();
    for (name, schema) in fields {
        properties.insert((*name).to_owned(), schema.clone());
    }
    let required: Vec<&str> = fields.iter().map(|(name, _)| *name).collect();
    json!({ "type": "object", "required": required, "properties": properties, "additionalProperties": false })
}

/// An object with at least these fields.
fn open_record(fields: &[(&str, Value)]) -> Value {
    let mut schema = record(fields);
    schema["additionalProperties"] = json!(true);
    schema
}

/// An object whose values all follow `values` (a map by name).
fn map_of(values: Value) -> Value {
    json!({ "type": "object", "additionalProperties": values })
}

/// The component schemas of `#/components/schemas`.
pub(super) fn components() -> Value {
    let tier = one_of(&["elite", "high", "medium", "low", "unknown"]);
    json!({
        "Error": {
            "type": "object",
            "required": ["code", "error"],
            "additionalProperties": false,
            "properties": {
                "code": one_of(&["bad_request", "unauthorized", "forbidden", "not_found", "method_not_allowed", "no_route", "conflict", "internal"]),
                "error": { "type": "string", "description": "What went wrong and what to do." },
            },
        },
        "Role": { "type": "string", "enum": ROLES, "description": "What a token may do." },
        "RunStatus": { "type": "string", "enum": RUN_STATUSES },
        "DeploymentStatus": { "type": "string", "enum": DEPLOYMENT_STATUSES },
        "Strategy": { "type": "string", "enum": STRATEGIES, "description": "`environments.<name>.strategy.type` of lastmile.yaml." },
        "DeploymentKind": { "type": "string", "enum": STRATEGIES.iter().chain(&["rollback"]).collect::<Vec<_>>(), "description": "The strategy a deployment ran with, or `rollback`." },
        "Commit": record(&[
            ("app", text()),
            ("sha", text()),
            ("branch", text()),
            ("committed_at", millis()),
            ("author", text()),
            ("subject", text()),
            ("seen_at", millis()),
            ("source", one_of(&["poll", "webhook"])),
            ("status", one_of(&["seen", "running", "built", "failed", "deployed", "rolled-back"])),
            ("run_id", nullable(integer())),
            ("release_id", nullable(text())),
            ("error", nullable(text())),
        ]),
        "Run": record(&[
            ("id", integer()),
            ("app", text()),
            ("spec_dir", text()),
            ("commit", nullable(text())),
            ("status", reference("RunStatus")),
            ("started_at", millis()),
            ("finished_at", nullable(millis())),
            ("artifact_id", nullable(text())),
            ("reason", nullable(text())),
        ]),
        "Step": record(&[
            ("run_id", integer()),
            ("name", text()),
            ("status", one_of(&["pending", "running", "succeeded", "failed", "timedout", "cached", "skipped", "cancelled", "interrupted"])),
            ("attempts", count()),
            ("exit_code", nullable(integer())),
            ("started_at", nullable(millis())),
            ("finished_at", nullable(millis())),
            ("cache_key", nullable(text())),
        ]),
        "LogLine": record(&[
            ("step", text()),
            ("line", record(&[
                ("at", millis()),
                ("attempt", count()),
                ("stream", one_of(&["stdout", "stderr", "system"])),
                ("text", text()),
            ])),
        ]),
        "Artifact": record(&[
            ("id", text()),
            ("size", count()),
            ("files", count()),
            ("app", text()),
            ("run_id", nullable(integer())),
            ("created_at", millis()),
        ]),
        "Release": record(&[
            ("id", text()),
            ("app", text()),
            ("version", text()),
            ("artifact_id", text()),
            ("run_id", nullable(integer())),
            ("created_at", millis()),
        ]),
        // The one description of a deployment: lists, `GET …/deployments/{id}`,
        // the status's running deployment and recent ones all use it.
        "Deployment": record(&[
            ("id", integer()),
            ("environment", text()),
            ("from_release", nullable(text())),
            ("to_release", text()),
            ("strategy", reference("DeploymentKind")),
            ("status", reference("DeploymentStatus")),
            ("phase", text()),
            ("started_at", millis()),
            ("finished_at", nullable(millis())),
            ("reason", nullable(text())),
            ("analysis", json!({ "type": ["object", "null"], "description": "The last canary analysis before the end (the `analysis` of the last `canary.decision` event: `canary` and `stable` samples, the error and latency verdicts); null for strategies without analysis. Open: more fields may appear." })),
        ]),
        "DeploymentStep": record(&[
            ("seq", integer()),
            ("at", millis()),
            ("phase", text()),
            ("detail", { let mut detail = json!({ "type": "object" }); detail["description"] = json!("What the step did (weights, instances, analysis), by phase."); detail }),
        ]),
        "DeploymentOutcome": record(&[
            ("deployment", { let mut id = nullable(integer()); id["description"] = json!("The deployment's id; null when the environment already served the release (`noop`)."); id }),
            ("noop", { let mut noop = boolean(); noop["description"] = json!("True when the environment already served the release, so nothing moved and no deployment was recorded."); noop }),
            ("environment", text()),
            ("status", reference("DeploymentStatus")),
            ("from_release", nullable(text())),
            ("from_version", nullable(text())),
            ("to_release", text()),
            ("to_version", text()),
            ("duration_ms", count()),
            ("switched_after_ms", nullable(count())),
            ("error", nullable(text())),
            ("analysis", json!({ "type": ["object", "null"], "description": "The last canary analysis before the end (the `analysis` of the last `canary.decision` event: `canary` and `stable` samples, the error and latency verdicts); null for strategies without analysis. Open: more fields may appear." })),
            ("last_lines", list(text())),
        ]),
        "Approval": record(&[
            ("environment", text()),
            ("release", text()),
            ("version", text()),
            ("commit", nullable(text())),
            ("since_ms", millis()),
        ]),
        "Event": record(&[
            ("id", integer()),
            ("at", millis()),
            ("kind", text()),
            ("subject", text()),
            ("actor", text()),
            ("data", json!({ "description": "What happened, by kind." })),
        ]),
        "Token": record(&[
            ("id", integer()),
            ("name", text()),
            ("role", reference("Role")),
            ("created_at", millis()),
            ("created_by", text()),
            ("last_used_at", nullable(millis())),
            ("revoked_at", nullable(millis())),
        ]),
        "Secret": record(&[
            ("app", text()),
            ("name", text()),
            ("updated_at", millis()),
            ("updated_by", text()),
        ]),
        "DoraReport": record(&[
            ("environment", text()),
            ("window_days", number()),
            ("deployments", count()),
            ("deployment_frequency_per_day", number()),
            ("lead_time_median_hours", nullable(number())),
            ("change_failure_rate", nullable(json!({ "type": "number", "minimum": 0, "maximum": 1 }))),
            ("recovery_time_median_hours", nullable(number())),
            ("tiers", record(&[
                ("deployment_frequency", tier.clone()),
                ("lead_time", tier.clone()),
                ("change_failure_rate", tier.clone()),
                ("recovery_time", tier),
            ])),
        ]),
        "AppDora": record(&[("days", count()), ("environments", list(reference("DoraReport")))]),
        "Environment": record(&[
            ("name", text()),
            ("listen", nullable(text())),
            ("tls", boolean()),
            ("strategy", open_record(&[("type", reference("Strategy"))])),
            ("instances", count()),
            ("current_release", nullable(text())),
            ("previous_release", nullable(text())),
            ("weights", list(record(&[
                ("release", text()),
                ("weight", count()),
                ("percent", json!({ "type": "number", "minimum": 0, "maximum": 100 })),
            ]))),
            ("deployment", nullable(reference("Deployment"))),
            ("last_deployment", nullable(record(&[
                ("id", integer()),
                ("outcome", reference("DeploymentStatus")),
                ("strategy", reference("DeploymentKind")),
                ("from_release", nullable(text())),
                ("to_release", text()),
                ("started_at", millis()),
                ("finished_at", nullable(millis())),
                ("reason", nullable(text())),
                ("analysis", json!({ "type": ["object", "null"], "description": "The last canary analysis before the end (the `analysis` of the last `canary.decision` event: `canary` and `stable` samples, the error and latency verdicts); null for strategies without analysis. Open: more fields may appear." })),
            ]))),
        ]),
        "Instance": record(&[
            ("instance_id", text()),
            ("environment", text()),
            ("release_id", text()),
            ("index", count()),
            ("addr", text()),
            ("state", one_of(&["starting", "ready", "unhealthy", "restarting", "crash-loop", "stopping", "stopped"])),
            ("restarts", count()),
            ("pid", nullable(count())),
            ("leader_pid", nullable(count())),
            ("main_pid", nullable(count())),
        ]),
        "ReleaseStats": record(&[
            ("release", text()),
            ("requests", count()),
            ("errors_5xx", count()),
            ("connect_errors", count()),
            ("p50_ms", number()),
            ("p95_ms", number()),
            ("p99_ms", number()),
            ("requests_total", count()),
            ("errors_5xx_total", count()),
            ("connect_errors_total", count()),
            ("latency_buckets", list(record(&[("le_seconds", number()), ("requests", count())]))),
            ("latency_count", count()),
            ("latency_sum_seconds", number()),
            ("latency_window", list(record(&[("ms", number()), ("requests", count())]))),
            ("latency_samples", count()),
            ("warmup_requests", count()),
        ]),
        "Certificate": record(&[
            ("hosts", list(text())),
            ("environments", list(text())),
            ("source", one_of(&["files", "acme"])),
            ("state", one_of(&["valid", "pending", "failing", "expired"])),
            ("not_after", nullable(text())),
            ("renew_at", nullable(text())),
            ("serial", nullable(text())),
            ("error", nullable(text())),
        ]),
        "Flag": record(&[
            ("key", text()),
            ("type", text()),
            ("enabled", boolean()),
            ("default", text()),
            ("rules", count()),
            ("rollout", json!({ "description": "The rollout of lastmile.yaml: variant and percent pairs, or null." })),
            ("override", nullable(record(&[
                ("value", json!({ "type": "object" })),
                ("by", text()),
                ("at", millis()),
            ]))),
        ]),
        "AppStatus": record(&[
            ("app", text()),
            ("flags", list(reference("Flag"))),
            ("deployments", list(reference("Deployment"))),
            ("pid", count()),
            ("control", nullable(text())),
            ("environments", list(reference("Environment"))),
            ("instances", list(reference("Instance"))),
            ("releases", list(reference("Release"))),
            ("stats", list(reference("ReleaseStats"))),
            ("certificates", list(reference("Certificate"))),
        ]),
    })
}

/// `{ "<name>": [items] }`.
fn listing(name: &str, items: &str) -> Value {
    record(&[(name, list(reference(items)))])
}

/// The schema of a successful JSON answer of `method path`; `None` for a
/// route this table does not know (a test asks for every route).
pub(super) fn answer(method: &str, path: &str) -> Option<Value> {
    Some(match (method, path) {
        ("GET", "/api/v1/apps") => record(&[(
            "apps",
            list(record(&[
                ("name", text()),
                ("repo", text()),
                ("branches", list(text())),
                ("last_commit", nullable(reference("Commit"))),
                ("last_error", nullable(text())),
                ("drift", map_of(text())),
                ("pending", nullable(list(reference("Approval")))),
                ("status", nullable(reference("AppStatus"))),
            ])),
        )]),
        ("GET", "/api/v1/apps/{app}" | "/api/v1/apps/{app}/status") => {
            let mut status = components()["AppStatus"].clone();
            status["properties"]["approvals"] = list(reference("Approval"));
            status["properties"]["drift"] = map_of(text());
            let required = status["required"]
                .as_array_mut()
                .expect("a record lists its required fields");
            required.push(json!("approvals"));
            required.push(json!("drift"));
            status
        }
        ("GET", "/api/v1/apps/{app}/commits") => listing("commits", "Commit"),
        ("GET", "/api/v1/apps/{app}/runs") => listing("runs", "Run"),
        ("GET", "/api/v1/apps/{app}/runs/{run}") => record(&[
            ("run", reference("Run")),
            ("steps", list(reference("Step"))),
        ]),
        ("GET", "/api/v1/apps/{app}/runs/{run}/logs") => listing("lines", "LogLine"),
        ("GET", "/api/v1/apps/{app}/artifacts") => listing("artifacts", "Artifact"),
        ("GET", "/api/v1/apps/{app}/releases") => listing("releases", "Release"),
        ("GET", "/api/v1/apps/{app}/environments") => record(&[
            ("environments", list(reference("Environment"))),
            ("approvals", list(reference("Approval"))),
        ]),
        ("GET", "/api/v1/apps/{app}/deployments") => listing("deployments", "Deployment"),
        ("GET", "/api/v1/apps/{app}/deployments/{id}") => record(&[
            ("deployment", reference("Deployment")),
            ("steps", list(reference("DeploymentStep"))),
        ]),
        ("GET", "/api/v1/apps/{app}/approvals") => listing("approvals", "Approval"),
        ("GET", "/api/v1/apps/{app}/drift") => {
            record(&[("drift", map_of(text())), ("self_heal", boolean())])
        }
        ("GET", "/api/v1/apps/{app}/events" | "/api/v1/events") => listing("events", "Event"),
        ("GET", "/api/v1/apps/{app}/dora") => reference("AppDora"),
        ("GET", "/api/v1/dora") => {
            record(&[("days", count()), ("apps", map_of(reference("AppDora")))])
        }
        (
            "POST",
            "/api/v1/apps/{app}/deploy"
            | "/api/v1/apps/{app}/rollback"
            | "/api/v1/apps/{app}/environments/{env}/rollback",
        ) => reference("DeploymentOutcome"),
        (
            "POST",
            "/api/v1/apps/{app}/promote" | "/api/v1/apps/{app}/environments/{env}/promote",
        ) => record(&[
            ("environment", text()),
            ("promote", json!({ "const": true })),
        ]),
        ("POST", "/api/v1/apps/{app}/abort" | "/api/v1/apps/{app}/environments/{env}/abort") => {
            record(&[("environment", text()), ("abort", json!({ "const": true }))])
        }
        ("POST", "/api/v1/apps/{app}/environments/{env}/approve") => record(&[
            ("app", text()),
            ("environment", text()),
            ("release", text()),
            ("version", text()),
            ("approved_by", text()),
            ("deploying", json!({ "const": true })),
        ]),
        ("GET", "/api/v1/apps/{app}/secrets") => listing("secrets", "Secret"),
        ("PUT", "/api/v1/apps/{app}/secrets/{name}") => record(&[
            ("app", text()),
            ("name", text()),
            ("stored", json!({ "const": true })),
        ]),
        ("DELETE", "/api/v1/apps/{app}/secrets/{name}") => {
            record(&[("app", text()), ("name", text()), ("deleted", boolean())])
        }
        ("GET", "/api/v1/tokens") => listing("tokens", "Token"),
        ("POST", "/api/v1/tokens") => record(&[
            (
                "token",
                json!({ "type": "string", "pattern": "^lmt_", "description": "The token itself, shown this once." }),
            ),
            ("record", reference("Token")),
            ("note", text()),
        ]),
        ("DELETE", "/api/v1/tokens/{name}") => {
            record(&[("name", text()), ("revoked", json!({ "const": true }))])
        }
        ("GET", "/api/v1/whoami") => record(&[("name", text()), ("role", reference("Role"))]),
        ("POST", "/api/v1/webhooks/{app}") => json!({ "oneOf": [
            record(&[
                ("accepted", json!({ "const": true })),
                ("triggered", boolean()),
                ("branch", nullable(text())),
                ("after", nullable(text())),
            ]),
            record(&[
                ("accepted", json!({ "const": false })),
                ("ignored", text()),
            ]),
        ] }),
        ("GET", "/api/openapi.json") => json!({
            "type": "object",
            "required": ["openapi", "info", "paths"],
            "properties": {
                "openapi": { "const": "3.1.0" },
                "info": { "type": "object" },
                "paths": { "type": "object" },
            },
        }),
        _ => return None,
    })
}

/// A link to `operation` (an operation id) filling its parameters.
fn link(operation: &str, parameters: Value) -> Value {
    json!({ "operationId": operation, "parameters": parameters })
}

/// The OpenAPI links of a successful answer of `method path`: where the
/// values it returns can be used next, so a stateful client (schemathesis)
/// walks from a list to its items and from a creation to its deletion.
pub(super) fn links(
    method: &str,
    path: &str,
    operations: &[(&str, &str, String)],
) -> Map<String, Value> {
    let mut links = Map::new();
    let mut add = |name: String, target: &str, parameters: Value| {
        if let Some((_, _, id)) = operations
            .iter()
            .find(|(m, p, _)| format!("{m} {p}") == target)
        {
            links.insert(name, link(id, parameters));
        }
    };
    match (method, path) {
        // From the list of apps to everything about the first one.
        ("GET", "/api/v1/apps") => {
            for (target_method, target_path, id) in operations {
                let app_scoped = target_path
                    .strip_prefix("/api/v1/apps/{app}")
                    .is_some_and(|rest| !rest.contains('{'));
                if app_scoped {
                    add(
                        format!("app_{id}"),
                        &format!("{target_method} {target_path}"),
                        json!({ "app": "$response.body#/apps/0/name" }),
                    );
                }
            }
        }
        // From an app's environments to the actions on the first one.
        ("GET", "/api/v1/apps/{app}/environments") => {
            for action in ["approve", "rollback", "promote", "abort"] {
                add(
                    format!("environment_{action}"),
                    &format!("POST /api/v1/apps/{{app}}/environments/{{env}}/{action}"),
                    json!({ "app": "$request.path.app", "env": "$response.body#/environments/0/name" }),
                );
            }
        }
        ("GET", "/api/v1/apps/{app}/runs") => {
            for target in [
                "/api/v1/apps/{app}/runs/{run}",
                "/api/v1/apps/{app}/runs/{run}/logs",
            ] {
                add(
                    format!(
                        "run{}",
                        target
                            .rsplit_once("{run}")
                            .map_or("", |(_, rest)| rest)
                            .replace('/', "_")
                    ),
                    &format!("GET {target}"),
                    json!({ "app": "$request.path.app", "run": "$response.body#/runs/0/id" }),
                );
            }
        }
        ("GET", "/api/v1/apps/{app}/deployments") => add(
            "deployment".to_owned(),
            "GET /api/v1/apps/{app}/deployments/{id}",
            json!({ "app": "$request.path.app", "id": "$response.body#/deployments/0/id" }),
        ),
        ("GET", "/api/v1/apps/{app}/secrets") => add(
            "delete_secret".to_owned(),
            "DELETE /api/v1/apps/{app}/secrets/{name}",
            json!({ "app": "$request.path.app", "name": "$response.body#/secrets/0/name" }),
        ),
        ("PUT", "/api/v1/apps/{app}/secrets/{name}") => add(
            "delete_secret".to_owned(),
            "DELETE /api/v1/apps/{app}/secrets/{name}",
            json!({ "app": "$request.path.app", "name": "$request.path.name" }),
        ),
        ("POST", "/api/v1/tokens") => add(
            "revoke_token".to_owned(),
            "DELETE /api/v1/tokens/{name}",
            json!({ "name": "$response.body#/record/name" }),
        ),
        _ => {}
    }
    links
}
