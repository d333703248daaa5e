//! The OpenAPI 3.1 document, made from one table of routes so the document
//! and the API cannot drift apart: a test calls every route in the table,
//! and the handlers parse integers with the same [`Bounds`] the document
//! states.
//!
//! The document is public (no token), so it names no app or environment
//! of this server: their path parameters carry the naming rules of
//! `lastmile.yaml` as a `pattern` instead of an `enum`.
//!
//! Path and query parameters are checked against this table before a
//! handler runs ([`check_parameters`]), so a value the document forbids is
//! refused whatever the handler would have made of it.

mod answers;

use std::collections::HashMap;
use std::sync::{LazyLock, Mutex, PoisonError};

use serde_json::{Map, Value, json};

use crate::error::ApiError;

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
    /// Request body fields as (name, type, required, description).
    pub body: &'static [(&'static str, FieldType, bool, &'static str)],
    /// Query parameters as (name, type, description).
    pub query: &'static [(&'static str, FieldType, &'static str)],
    /// Media types of a successful answer.
    pub answers: &'static [&'static str],
}

/// What a parameter or body field holds.
#[derive(Debug, Clone, Copy)]
pub enum FieldType {
    /// Any string of at least one character.
    Text,
    /// Any string, the empty one included.
    AnyText,
    /// A string matching this regular expression.
    Pattern(&'static str),
    /// One of these strings.
    OneOf(&'static [&'static str]),
    /// A whole number within bounds.
    Integer(Bounds),
}

/// The range of an integer parameter; handlers parse with it, so the
/// document's `minimum`/`maximum` are what the API enforces.
#[derive(Debug, Clone, Copy)]
pub struct Bounds {
    /// Smallest value accepted.
    pub minimum: i64,
    /// Largest value accepted.
    pub maximum: i64,
    /// Value when the parameter is absent.
    pub default: Option<i64>,
}

impl Bounds {
    /// `text` as a number within bounds (the default when absent), or a
    /// 400 that says the range in words.
    pub fn parse(&self, name: &str, text: Option<&str>) -> Result<i64, ApiError> {
        let Some(text) = text else {
            return self.default.ok_or_else(|| {
                ApiError::bad_request(format!("`{name}` is required: {}", self.describe()))
            });
        };
        // Digits only: `+5` or ` 5` is not what the schema's integer means.
        let valid = text.strip_prefix('-').unwrap_or(text);
        let number = (!valid.is_empty() && valid.bytes().all(|b| b.is_ascii_digit()))
            .then(|| text.parse::<i64>().ok())
            .flatten()
            .filter(|number| (self.minimum..=self.maximum).contains(number));
        number.ok_or_else(|| {
            ApiError::bad_request(format!(
                "`{name}` must be {}; got `{}`",
                self.describe(),
                text.chars().take(40).collect::<String>()
            ))
        })
    }

    /// `a whole number from 1 to 1000 (default 50)`.
    fn describe(&self) -> String {
        let range = if self.maximum == i64::MAX {
            format!("a whole number of at least {}", self.minimum)
        } else {
            format!("a whole number from {} to {}", self.minimum, self.maximum)
        };
        match self.default {
            Some(default) => format!("{range} (default {default})"),
            None => range,
        }
    }
}

/// What [`FieldType::Text`] must contain: something other than white space.
const NOT_BLANK: &str = "\\S";

/// Whether `text` matches `pattern`, compiled once per pattern.
fn matches(pattern: &'static str, text: &str) -> bool {
    static COMPILED: LazyLock<Mutex<HashMap<&'static str, regex::Regex>>> =
        LazyLock::new(|| Mutex::new(HashMap::new()));
    let mut compiled = COMPILED.lock().unwrap_or_else(PoisonError::into_inner);
    compiled
        .entry(pattern)
        .or_insert_with(|| {
            regex::Regex::new(pattern)
                .expect("the document's patterns are valid (a test compiles each)")
        })
        .is_match(text)
}

impl FieldType {
    /// Refuses `value` for the parameter `name` unless the document allows it.
    fn check(&self, name: &str, value: &str) -> Result<(), ApiError> {
        let shown: String = value.chars().take(40).collect();
        let refused = |rule: String| {
            Err(ApiError::bad_request(format!(
                "`{name}` must be {rule}; got `{shown}`"
            )))
        };
        match self {
            FieldType::AnyText => Ok(()),
            FieldType::Text if matches(NOT_BLANK, value) => Ok(()),
            FieldType::Text => refused("a string that is not empty or blank".to_owned()),
            FieldType::Pattern(pattern) if matches(pattern, value) => Ok(()),
            FieldType::Pattern(pattern) => refused(format!("a string matching `{pattern}`")),
            FieldType::OneOf(values) if values.contains(&value) => Ok(()),
            FieldType::OneOf(values) => refused(format!("one of {}", values.join(", "))),
            FieldType::Integer(bounds) => bounds.parse(name, Some(value)).map(|_| ()),
        }
    }

    fn schema(&self) -> Value {
        match self {
            FieldType::Text => json!({ "type": "string", "minLength": 1, "pattern": NOT_BLANK }),
            FieldType::AnyText => json!({ "type": "string" }),
            FieldType::Pattern(pattern) => json!({ "type": "string", "pattern": pattern }),
            FieldType::OneOf(values) => json!({ "type": "string", "enum": values }),
            FieldType::Integer(bounds) => {
                let mut schema = json!({ "type": "integer", "format": "int64", "minimum": bounds.minimum, "maximum": bounds.maximum });
                if let Some(default) = bounds.default {
                    schema["default"] = json!(default);
                }
                schema
            }
        }
    }
}

/// `limit` of the lists of commits, runs, artifacts, releases, deployments.
pub(crate) const LIST_LIMIT: Bounds = Bounds {
    minimum: 1,
    maximum: 1000,
    default: Some(50),
};
/// `limit` of the event logs.
pub(crate) const EVENT_LIMIT: Bounds = Bounds {
    minimum: 1,
    maximum: 5000,
    default: Some(500),
};
/// `after` of the event logs: an event id (ids start at 1).
pub(crate) const EVENT_AFTER: Bounds = Bounds {
    minimum: 0,
    maximum: i64::MAX,
    default: Some(0),
};
/// `days` of the DORA window.
pub(crate) const DORA_DAYS: Bounds = Bounds {
    minimum: 1,
    maximum: 365,
    default: Some(30),
};
/// `window_s` of an app's status: seconds of router traffic (the router
/// keeps 60).
pub(crate) const STATUS_WINDOW: Bounds = Bounds {
    minimum: 1,
    maximum: 60,
    default: Some(60),
};
/// A run or deployment id in a path.
pub(crate) const RECORD_ID: Bounds = Bounds {
    minimum: 1,
    maximum: i64::MAX,
    default: None,
};

/// App names, as `lastmile.yaml`'s `app:` allows them.
const APP_NAME: FieldType = FieldType::Pattern("^[a-z][a-z0-9-]{0,62}$");
/// Environment and step names, as `lastmile.yaml` allows them.
const ENVIRONMENT_NAME: FieldType = FieldType::Pattern("^[A-Za-z0-9_.-]+$");
/// Secret names: environment variable names in capitals, as `lastmile
/// secret set` and the server take them.
const SECRET_NAME: FieldType = FieldType::Pattern("^[A-Z_][A-Z0-9_]*$");
/// Token names, as `lastmile token create` allows them.
const TOKEN_NAME: FieldType = FieldType::Pattern("^[A-Za-z0-9_.@-]{1,64}$");
/// Token roles.
pub(crate) const ROLES: &[&str] = &["viewer", "deployer", "admin"];
/// Run statuses, as runs report them.
const RUN_STATUSES: &[&str] = &["running", "succeeded", "failed", "cancelled", "interrupted"];
/// Deployment statuses, as deployments report them.
const DEPLOYMENT_STATUSES: &[&str] = &["running", "succeeded", "failed", "rolled-back"];
/// Deployment strategies of `lastmile.yaml`.
const STRATEGIES: &[&str] = &["rolling", "blue-green", "recreate", "canary"];

const JSON: &[&str] = &["application/json"];
const LIMIT: &[(&str, FieldType, &str)] = &[(
    "limit",
    FieldType::Integer(LIST_LIMIT),
    "At most this many, 1-1000 (default 50).",
)];
const EVENTS: &[(&str, FieldType, &str)] = &[
    (
        "after",
        FieldType::Integer(EVENT_AFTER),
        "Only events with a greater id.",
    ),
    (
        "limit",
        FieldType::Integer(EVENT_LIMIT),
        "At most this many, 1-5000 (default 500).",
    ),
];
const DAYS: &[(&str, FieldType, &str)] = &[(
    "days",
    FieldType::Integer(DORA_DAYS),
    "Window in days, 1-365 (default 30).",
)];
const WINDOW: &[(&str, FieldType, &str)] = &[(
    "window_s",
    FieldType::Integer(STATUS_WINDOW),
    "Seconds of router traffic in `stats`, 1-60 (default 60).",
)];
const ENV_BODY: &[(&str, FieldType, bool, &str)] =
    &[("environment", ENVIRONMENT_NAME, true, "Environment name.")];

macro_rules! route {
    ($method:literal, $path:literal, $role:literal, $summary:literal) => {
        route!($method, $path, $role, $summary, &[], &[])
    };
    ($method:literal, $path:literal, $role:literal, $summary:literal, $body:expr, $query:expr) => {
        route!($method, $path, $role, $summary, $body, $query, JSON)
    };
    ($method:literal, $path:literal, $role:literal, $summary:literal, $body:expr, $query:expr, $answers:expr) => {
        RouteDoc {
            method: $method,
            path: $path,
            summary: $summary,
            role: $role,
            body: $body,
            query: $query,
            answers: $answers,
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
        "One app's live status: environments, weights, instances, per-release traffic.",
        &[],
        WINDOW
    ),
    route!(
        "GET",
        "/api/v1/apps/{app}/status",
        "viewer",
        "Same as GET /api/v1/apps/{app} (what `lastmile status --server` and `lastmile watch --server` read).",
        &[],
        WINDOW
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
        &[("step", ENVIRONMENT_NAME, "Only this step's lines.")],
        &["application/json", "text/event-stream"]
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
        EVENTS
    ),
    route!(
        "GET",
        "/api/v1/apps/{app}/dora",
        "viewer",
        "DORA figures per environment with their tiers.",
        &[],
        DAYS
    ),
    route!(
        "POST",
        "/api/v1/apps/{app}/deploy",
        "deployer",
        "Deploys a release the server built (the newest when none is named) and waits for the outcome.",
        &[
            ("environment", ENVIRONMENT_NAME, true, "Environment name."),
            (
                "release",
                FieldType::Text,
                false,
                "Release id, unique prefix or version."
            ),
            (
                "approved_by",
                FieldType::Text,
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
            ("environment", ENVIRONMENT_NAME, true, "Environment name."),
            (
                "to",
                FieldType::Text,
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
            FieldType::Text,
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
            FieldType::AnyText,
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
                TOKEN_NAME,
                true,
                "Who uses it; recorded as the actor of its calls."
            ),
            (
                "role",
                FieldType::OneOf(ROLES),
                true,
                "viewer, deployer or admin."
            )
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
        EVENTS
    ),
    route!(
        "GET",
        "/api/v1/dora",
        "viewer",
        "DORA figures of every app.",
        &[],
        DAYS
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
        "Prometheus text: runs, deployments, rollbacks, DORA, router traffic by app and release.",
        &[],
        &[],
        &["text/plain"]
    ),
    route!(
        "POST",
        "/api/v1/webhooks/{app}",
        "none",
        "Push webhook from GitHub (X-Hub-Signature-256), Gitea (X-Gitea-Signature) or GitLab (X-Gitlab-Token); a verified push to a watched branch starts a build at once."
    ),
    route!("GET", "/api/openapi.json", "none", "This document."),
    route!(
        "GET",
        "/healthz",
        "none",
        "Liveness of the server: `ok`.",
        &[],
        &[],
        &["text/plain"]
    ),
];

/// The type of the path parameter `name` of the route `path`.
fn path_parameter(path: &str, name: &str) -> FieldType {
    match name {
        "run" | "id" => FieldType::Integer(RECORD_ID),
        "app" => APP_NAME,
        "env" => ENVIRONMENT_NAME,
        "name" if path.starts_with("/api/v1/tokens/") => TOKEN_NAME,
        "name" => SECRET_NAME,
        _ => FieldType::Text,
    }
}

/// Refuses a request to the documented route `method template` whose path
/// parameters (decoded) or query parameters the document forbids; a query
/// parameter the route does not take is refused too. Routes the table does
/// not know pass.
pub(crate) fn check_parameters(
    method: &str,
    template: &str,
    path: &[(&str, &str)],
    query: &[(String, String)],
) -> Result<(), ApiError> {
    let method = if method == "HEAD" { "GET" } else { method };
    let Some(route) = ROUTES
        .iter()
        .find(|route| route.method == method && route.path == template)
    else {
        return Ok(());
    };
    for (name, value) in path {
        path_parameter(route.path, name).check(name, value)?;
    }
    for (name, value) in query {
        let Some((_, kind, _)) = route.query.iter().find(|(known, _, _)| known == name) else {
            let known: Vec<&str> = route.query.iter().map(|(known, _, _)| *known).collect();
            return Err(ApiError::bad_request(if known.is_empty() {
                format!("unknown query parameter `{name}`: {method} {template} takes none")
            } else {
                format!(
                    "unknown query parameter `{name}`: {method} {template} takes {}",
                    known.join(", ")
                )
            }));
        };
        kind.check(name, value)?;
    }
    Ok(())
}

/// The OpenAPI 3.1 document of [`ROUTES`].
pub(crate) fn openapi_document() -> Value {
    let operations: Vec<(&str, &str, String)> = ROUTES
        .iter()
        .map(|route| (route.method, route.path, operation_id(route)))
        .collect();
    let mut paths = Map::new();
    for route in ROUTES {
        let mut parameters: Vec<Value> = route
            .path
            .split('/')
            .filter_map(|segment| segment.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
            .map(|name| {
                let schema = path_parameter(route.path, name).schema();
                json!({ "name": name, "in": "path", "required": true, "schema": schema })
            })
            .collect();
        for (name, kind, description) in route.query {
            parameters.push(json!({ "name": name, "in": "query", "required": false, "description": description, "schema": kind.schema() }));
        }
        let mut content = Map::new();
        for media_type in route.answers {
            let schema = match *media_type {
                "application/json" => answers::answer(route.method, route.path)
                    .unwrap_or_else(|| json!({ "type": "object" })),
                _ => json!({ "type": "string" }),
            };
            content.insert((*media_type).to_owned(), json!({ "schema": schema }));
        }
        let mut success = json!({ "description": "Success.", "content": content });
        let links = answers::links(route.method, route.path, &operations);
        if !links.is_empty() {
            success["links"] = Value::Object(links);
        }
        let mut operation = json!({
            "summary": route.summary,
            "operationId": operation_id(route),
            "parameters": parameters,
            "x-lastmile-role": route.role,
            "responses": {
                "200": success,
                "default": { "description": "An error: the status says which, the body what to do.", "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Error" } } } },
            },
        });
        if route.role == "none" {
            operation["security"] = json!([]);
        }
        if !route.body.is_empty() {
            let mut properties = Map::new();
            let mut required = Vec::new();
            for (name, kind, needed, description) in route.body {
                let mut schema = kind.schema();
                schema["description"] = json!(description);
                properties.insert((*name).to_owned(), schema);
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
            "description": "Every call needs `Authorization: Bearer <token>` (made with `lastmile token create --role R`) unless its security is empty. Roles: viewer reads; deployer also deploys, approves, promotes, aborts and rolls back; admin also manages tokens and secrets. This document is public, so it names none of the server's apps or environments: `app` and `env` carry the naming rules of `lastmile.yaml` as a pattern; GET /api/v1/apps and GET /api/v1/apps/{app}/environments list the real ones.",
        },
        "components": {
            "securitySchemes": { "token": { "type": "http", "scheme": "bearer" } },
            "schemas": answers::components(),
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

#[cfg(test)]
mod tests;
