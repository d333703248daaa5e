//! The OpenAPI 3.1 document, made from one table of routes so the document
//! and the API cannot drift apart: a test calls every route in the table.

use serde_json::{Map, Value, json};

/// One documented route.
#[derive(Debug, Clone, Copy)]
pub struct RouteDoc {
    /// `GET`, `POST`, `PUT` or `DELETE`.
    pub method: &'static str,
    /// Path with `{parameters}`.
    pub path: &'static str,
    /// What it does.
    pub summary: &'static str,
    /// Role it needs (`none` for open routes).
    pub role: &'static str,
    /// Request body fields as (name, JSON type, required, description).
    pub body: &'static [(&'static str, &'static str, bool, &'static str)],
    /// Query parameters as (name, JSON type, description).
    pub query: &'static [(&'static str, &'static str, &'static str)],
}

const LIMIT: &[(&str, &str, &str)] = &[(
    "limit",
    "integer",
    "At most this many, 1-1000 (default 50).",
)];
const ENV_BODY: &[(&str, &str, bool, &str)] =
    &[("environment", "string", true, "Environment name.")];

macro_rules! route {
    ($method:literal, $path:literal, $role:literal, $summary:literal) => {
        route!($method, $path, $role, $summary, &[], &[])
    };
    ($method:literal, $path:literal, $role:literal, $summary:literal, $body:expr, $query:expr) => {
        RouteDoc {
            method: $method,
            path: $path,
            summary: $summary,
            role: $role,
            body: $body,
            query: $query,
        }
    };
}

/// Every route of the API.
pub const ROUTES: &[RouteDoc] = &[
    route!(
        "GET",
        "/api/v1/apps",
        "viewer",
        "Apps with each environment's live release, health, pending approvals and drift."
    ),
    route!(
        "GET",
        "/api/v1/apps/{app}",
        "viewer",
        "One app's live status: environments, weights, instances, per-release traffic."
    ),
    route!(
        "GET",
        "/api/v1/apps/{app}/status",
        "viewer",
        "Same as GET /api/v1/apps/{app} (what `lastmile status --server` reads)."
    ),
    route!(
        "GET",
        "/api/v1/apps/{app}/commits",
        "viewer",
        "Commits the watcher has seen, newest first, with what became of each.",
        &[],
        LIMIT
    ),
    route!(
        "GET",
        "/api/v1/apps/{app}/runs",
        "viewer",
        "Pipeline runs, newest first.",
        &[],
        LIMIT
    ),
    route!(
        "GET",
        "/api/v1/apps/{app}/runs/{run}",
        "viewer",
        "One run with its steps."
    ),
    route!(
        "GET",
        "/api/v1/apps/{app}/runs/{run}/logs",
        "viewer",
        "Step logs; with `Accept: text/event-stream`, live as server-sent events (`line`, then `end`).",
        &[],
        &[("step", "string", "Only this step's lines.")]
    ),
    route!(
        "GET",
        "/api/v1/apps/{app}/artifacts",
        "viewer",
        "Artifacts, newest first.",
        &[],
        LIMIT
    ),
    route!(
        "GET",
        "/api/v1/apps/{app}/releases",
        "viewer",
        "Releases, newest first.",
        &[],
        LIMIT
    ),
    route!(
        "GET",
        "/api/v1/apps/{app}/environments",
        "viewer",
        "Environments with their live release, weights and pending approvals."
    ),
    route!(
        "GET",
        "/api/v1/apps/{app}/deployments",
        "viewer",
        "Deployments, newest first.",
        &[],
        LIMIT
    ),
    route!(
        "GET",
        "/api/v1/apps/{app}/deployments/{id}",
        "viewer",
        "One deployment with its steps."
    ),
    route!(
        "GET",
        "/api/v1/apps/{app}/approvals",
        "viewer",
        "Deployments waiting for approval."
    ),
    route!(
        "GET",
        "/api/v1/apps/{app}/drift",
        "viewer",
        "Environments whose actual state differs from the desired one."
    ),
    route!(
        "GET",
        "/api/v1/apps/{app}/events",
        "viewer",
        "The app's event log (audit), oldest first.",
        &[],
        &[
            ("after", "integer", "Only events with a greater id."),
            ("limit", "integer", "At most this many (default 500).")
        ]
    ),
    route!(
        "GET",
        "/api/v1/apps/{app}/dora",
        "viewer",
        "DORA figures per environment with their tiers.",
        &[],
        &[("days", "integer", "Window in days, 1-365 (default 30).")]
    ),
    route!(
        "POST",
        "/api/v1/apps/{app}/deploy",
        "deployer",
        "Deploys a release the server built (the newest when none is named) and waits for the outcome.",
        &[
            ("environment", "string", true, "Environment name."),
            (
                "release",
                "string",
                false,
                "Release id, unique prefix or version."
            ),
            (
                "approved_by",
                "string",
                false,
                "Present to approve a gated environment; the token's name is recorded."
            )
        ],
        &[]
    ),
    route!(
        "POST",
        "/api/v1/apps/{app}/rollback",
        "deployer",
        "Rolls an environment back.",
        &[
            ("environment", "string", true, "Environment name."),
            (
                "to",
                "string",
                false,
                "Release to go back to (default: the previous one)."
            )
        ],
        &[]
    ),
    route!(
        "POST",
        "/api/v1/apps/{app}/promote",
        "deployer",
        "Resumes a paused canary or skips its remaining steps.",
        ENV_BODY,
        &[]
    ),
    route!(
        "POST",
        "/api/v1/apps/{app}/abort",
        "deployer",
        "Aborts a running canary: all traffic back to stable.",
        ENV_BODY,
        &[]
    ),
    route!(
        "POST",
        "/api/v1/apps/{app}/environments/{env}/approve",
        "deployer",
        "Approves the deployment waiting for this environment; it starts in the background."
    ),
    route!(
        "POST",
        "/api/v1/apps/{app}/environments/{env}/rollback",
        "deployer",
        "Rolls this environment back.",
        &[(
            "to",
            "string",
            false,
            "Release to go back to (default: the previous one)."
        )],
        &[]
    ),
    route!(
        "POST",
        "/api/v1/apps/{app}/environments/{env}/promote",
        "deployer",
        "Promotes this environment's canary."
    ),
    route!(
        "POST",
        "/api/v1/apps/{app}/environments/{env}/abort",
        "deployer",
        "Aborts this environment's canary."
    ),
    route!(
        "GET",
        "/api/v1/apps/{app}/secrets",
        "admin",
        "Names of the app's secrets (never their values)."
    ),
    route!(
        "PUT",
        "/api/v1/apps/{app}/secrets/{name}",
        "admin",
        "Stores a secret, encrypted at rest.",
        &[(
            "value",
            "string",
            true,
            "The value; never returned or logged."
        )],
        &[]
    ),
    route!(
        "DELETE",
        "/api/v1/apps/{app}/secrets/{name}",
        "admin",
        "Deletes a secret."
    ),
    route!(
        "GET",
        "/api/v1/tokens",
        "admin",
        "API tokens (never the tokens themselves)."
    ),
    route!(
        "POST",
        "/api/v1/tokens",
        "admin",
        "Creates a token; the answer shows it once.",
        &[
            (
                "name",
                "string",
                true,
                "Who uses it; recorded as the actor of its calls."
            ),
            ("role", "string", true, "viewer, deployer or admin.")
        ],
        &[]
    ),
    route!(
        "DELETE",
        "/api/v1/tokens/{name}",
        "admin",
        "Revokes a token."
    ),
    route!(
        "GET",
        "/api/v1/events",
        "viewer",
        "The server's own event log (tokens, secrets, refused webhooks).",
        &[],
        &[
            ("after", "integer", "Only events with a greater id."),
            ("limit", "integer", "At most this many (default 500).")
        ]
    ),
    route!(
        "GET",
        "/api/v1/dora",
        "viewer",
        "DORA figures of every app.",
        &[],
        &[("days", "integer", "Window in days, 1-365 (default 30).")]
    ),
    route!(
        "GET",
        "/api/v1/whoami",
        "viewer",
        "The calling token's name and role."
    ),
    route!(
        "GET",
        "/metrics",
        "viewer",
        "Prometheus text: runs, deployments, rollbacks, DORA, router traffic by app and release."
    ),
    route!(
        "POST",
        "/api/v1/webhooks/{app}",
        "none",
        "Push webhook from GitHub (X-Hub-Signature-256), Gitea (X-Gitea-Signature) or GitLab (X-Gitlab-Token); a verified push to a watched branch starts a build at once."
    ),
    route!("GET", "/api/openapi.json", "none", "This document."),
    route!("GET", "/healthz", "none", "Liveness of the server."),
];

/// The OpenAPI 3.1 document of [`ROUTES`].
pub fn openapi_document() -> Value {
    let mut paths = Map::new();
    for route in ROUTES {
        let mut parameters: Vec<Value> = route
            .path
            .split('/')
            .filter_map(|segment| segment.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
            .map(|name| {
                let kind = if name == "run" || name == "id" {
                    "integer"
                } else {
                    "string"
                };
                json!({ "name": name, "in": "path", "required": true, "schema": { "type": kind } })
            })
            .collect();
        for (name, kind, description) in route.query {
            parameters.push(json!({ "name": name, "in": "query", "required": false, "description": description, "schema": { "type": kind } }));
        }
        let mut operation = json!({
            "summary": route.summary,
            "operationId": operation_id(route),
            "parameters": parameters,
            "x-lastmile-role": route.role,
            "responses": {
                "200": { "description": "Success.", "content": { "application/json": { "schema": { "type": "object" } } } },
                "default": { "description": "An error.", "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Error" } } } },
            },
        });
        if route.role == "none" {
            operation["security"] = json!([]);
        }
        if !route.body.is_empty() {
            let mut properties = Map::new();
            let mut required = Vec::new();
            for (name, kind, needed, description) in route.body {
                properties.insert(
                    (*name).to_owned(),
                    json!({ "type": kind, "description": description }),
                );
                if *needed {
                    required.push(json!(name));
                }
            }
            operation["requestBody"] = json!({
                "required": !required.is_empty(),
                "content": { "application/json": { "schema": {
                    "type": "object", "properties": properties, "required": required, "additionalProperties": false,
                } } },
            });
        }
        let entry = paths
            .entry(route.path.to_owned())
            .or_insert_with(|| Value::Object(Map::new()));
        entry[route.method.to_lowercase()] = operation;
    }
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "lastmile server API",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Every call needs `Authorization: Bearer <token>` (made with `lastmile token create --role R`) unless its security is empty. Roles: viewer reads; deployer also deploys, approves, promotes, aborts and rolls back; admin also manages tokens and secrets.",
        },
        "components": {
            "securitySchemes": { "token": { "type": "http", "scheme": "bearer" } },
            "schemas": { "Error": {
                "type": "object",
                "required": ["code", "error"],
                "properties": {
                    "code": { "type": "string", "enum": ["bad_request", "unauthorized", "forbidden", "not_found", "no_route", "conflict", "internal"] },
                    "error": { "type": "string", "description": "What went wrong and what to do." },
                },
            } },
        },
        "security": [{ "token": [] }],
        "paths": paths,
    })
}

fn operation_id(route: &RouteDoc) -> String {
    let mut id = route.method.to_lowercase();
    for segment in route
        .path
        .split('/')
        .filter(|s| !s.is_empty() && *s != "api" && *s != "v1")
    {
        let segment = segment.trim_matches(|c| c == '{' || c == '}');
        id.push('_');
        id.push_str(&segment.replace(['.', '-'], "_"));
    }
    id
}
