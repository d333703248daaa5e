//! The REST API of `lastmile server`: apps, commits, runs and their logs
//! (live over SSE), artifacts, releases, environments, deployments and
//! their gates, events, DORA, secrets, tokens and webhooks; an OpenAPI
//! document of all of it at `/api/openapi.json`.
//!
//! Every call needs an API token (`Authorization: Bearer lmt_…`, or the
//! dashboard's cookie) whose role covers it: `viewer` reads, `deployer`
//! also changes deployments, `admin` also manages tokens and secrets.
//! Webhooks carry their own signature instead. Errors are JSON:
//! `{"code": "forbidden", "error": "…"}`. Every call that changes anything
//! is recorded in the event log with who made it.

mod openapi;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{
    ConnectInfo, FromRequestParts, MatchedPath, Path, Query, RawPathParams, Request, State,
};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::middleware::Next;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post, put};
use axum::{Extension, Json, Router};
use lastmile_store::{Role, Store, StoreError, hash_token};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::control::CanaryRequest;
use crate::error::ApiError;
use crate::request::{DeployRequest, RollbackRequest};
use crate::server::Server;
use crate::tokens::TokenError;
use lastmile_rollout::DeploymentOutcome;

pub(crate) use openapi::openapi_document;
pub use openapi::{Bounds, FieldType, ROUTES, RouteDoc};
use openapi::{DORA_DAYS, EVENT_AFTER, EVENT_LIMIT, LIST_LIMIT, RECORD_ID, STATUS_WINDOW};

/// Who is calling, as the token says.
#[derive(Debug, Clone)]
pub(crate) struct Principal {
    /// The token's name (for loopback calls to `lastmile up`, the person at
    /// the machine: `local:alice`).
    pub name: String,
    /// What it may do.
    pub role: Role,
}

/// The dashboard's login cookie.
pub(crate) const TOKEN_COOKIE: &str = "lastmile_token";

type ApiResult = Result<Json<Value>, ApiError>;
type Shared = State<Arc<Server>>;

/// The API routes, behind token auth; webhooks, `/healthz` and the OpenAPI
/// document are open.
pub(crate) fn routes(server: Arc<Server>) -> Router {
    routes_with(server, true)
}

/// The API routes; without `globals`, the ones `lastmile up`'s control API
/// already serves (`/metrics`, `/api/v1/dora`) are left out.
pub(crate) fn routes_with(server: Arc<Server>, globals: bool) -> Router {
    let mut protected = Router::new()
        .route("/api/v1/apps", get(apps))
        .route("/api/v1/apps/{app}", get(app_status))
        .route("/api/v1/apps/{app}/status", get(app_status))
        .route("/api/v1/apps/{app}/commits", get(commits))
        .route("/api/v1/apps/{app}/runs", get(runs))
        .route("/api/v1/apps/{app}/runs/{run}", get(run))
        .route("/api/v1/apps/{app}/runs/{run}/logs", get(run_logs))
        .route("/api/v1/apps/{app}/artifacts", get(artifacts))
        .route("/api/v1/apps/{app}/releases", get(releases))
        .route("/api/v1/apps/{app}/environments", get(environments))
        .route("/api/v1/apps/{app}/deployments", get(deployments))
        .route("/api/v1/apps/{app}/deployments/{id}", get(deployment))
        .route("/api/v1/apps/{app}/approvals", get(approvals))
        .route("/api/v1/apps/{app}/drift", get(drift))
        .route("/api/v1/apps/{app}/events", get(app_events))
        .route("/api/v1/apps/{app}/dora", get(app_dora))
        .route("/api/v1/apps/{app}/deploy", post(deploy))
        .route("/api/v1/apps/{app}/rollback", post(rollback))
        .route("/api/v1/apps/{app}/promote", post(promote))
        .route("/api/v1/apps/{app}/abort", post(abort))
        .route(
            "/api/v1/apps/{app}/environments/{env}/approve",
            post(approve),
        )
        .route(
            "/api/v1/apps/{app}/environments/{env}/rollback",
            post(rollback_env),
        )
        .route(
            "/api/v1/apps/{app}/environments/{env}/promote",
            post(promote_env),
        )
        .route(
            "/api/v1/apps/{app}/environments/{env}/abort",
            post(abort_env),
        )
        .route("/api/v1/apps/{app}/secrets", get(list_secrets))
        .route(
            "/api/v1/apps/{app}/secrets/{name}",
            put(set_secret).delete(delete_secret),
        )
        .route("/api/v1/tokens", get(list_tokens).post(create_token))
        .route("/api/v1/tokens/{name}", delete(revoke_token))
        .route("/api/v1/events", get(server_events))
        .route("/api/v1/whoami", get(whoami));
    if globals {
        protected = protected
            .route("/api/v1/dora", get(dora))
            .route("/metrics", get(metrics));
    }
    let protected = protected
        .route_layer(axum::middleware::from_fn(documented_parameters))
        .layer(axum::middleware::from_fn_with_state(
            server.clone(),
            authenticate,
        ));
    Router::new()
        .merge(protected)
        .route("/api/v1/webhooks/{app}", post(webhook))
        .route("/api/openapi.json", get(openapi))
        .route("/healthz", get(|| async { "ok\n" }))
        .layer(axum::middleware::from_fn(json_errors))
        .with_state(server)
}

/// Refuses, before the handler runs, a path or query parameter the OpenAPI
/// document forbids (after authentication: a caller without a token learns
/// nothing from a 400).
async fn documented_parameters(request: Request, next: Next) -> Response {
    let (mut parts, body) = request.into_parts();
    let template = parts
        .extensions
        .get::<MatchedPath>()
        .map(|matched| matched.as_str().to_owned());
    if let Some(template) = template {
        let path = match RawPathParams::from_request_parts(&mut parts, &()).await {
            Ok(path) => path,
            Err(rejection) => {
                return ApiError::bad_request(format!(
                    "{}; path parameters are UTF-8 text, percent-encoded",
                    rejection.body_text()
                ))
                .into_response();
            }
        };
        let query = match Query::<Vec<(String, String)>>::try_from_uri(&parts.uri) {
            Ok(Query(query)) => query,
            Err(rejection) => {
                return ApiError::bad_request(rejection.body_text()).into_response();
            }
        };
        let path: Vec<(&str, &str)> = path.iter().collect();
        if let Err(refused) =
            openapi::check_parameters(parts.method.as_str(), &template, &path, &query)
        {
            return refused.into_response();
        }
    }
    next.run(Request::from_parts(parts, body)).await
}

/// Errors axum makes itself (a body that is not JSON, a missing field) in
/// the API's JSON error shape.
async fn json_errors(request: Request, next: Next) -> Response {
    let call = format!("{} {}", request.method(), request.uri().path());
    let response = next.run(request).await;
    let status = response.status();
    let is_json = response
        .headers()
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.starts_with("application/json"));
    if !(status.is_client_error() || status.is_server_error()) || is_json {
        return response;
    }
    let (parts, body) = response.into_parts();
    let allow = parts.headers.get(axum::http::header::ALLOW).cloned();
    let text = axum::body::to_bytes(body, 64 * 1024)
        .await
        .unwrap_or_default();
    let code = crate::error::code_of(status);
    let mut message = String::from_utf8_lossy(&text).trim().to_owned();
    if status.as_u16() == 415 {
        message.push_str("; send the body as JSON with `content-type: application/json`");
    }
    if status == StatusCode::METHOD_NOT_ALLOWED && message.is_empty() {
        let allowed = match allow.as_ref().and_then(|value| value.to_str().ok()) {
            Some(allowed) => format!("that path takes {allowed}"),
            None => "that path takes other methods".to_owned(),
        };
        message = format!(
            "no {call} in this API: {allowed}; GET /api/openapi.json lists every route with its methods"
        );
    }
    let mut answer = (status, Json(json!({ "code": code, "error": message }))).into_response();
    if let Some(allow) = allow {
        answer
            .headers_mut()
            .insert(axum::http::header::ALLOW, allow);
    }
    answer
}

/// Answer for paths no route matches: JSON like every other error.
pub(crate) async fn no_route(method: Method, uri: axum::http::Uri) -> Response {
    (
        StatusCode::NOT_FOUND,
        Json(json!({
            "code": "no_route",
            "error": format!("no {method} {} in this API; GET /api/openapi.json lists every route", uri.path()),
        })),
    )
        .into_response()
}

/// The role a call needs.
pub(crate) fn required_role(method: &Method, path: &str) -> Role {
    if path.starts_with("/api/v1/tokens") || path.contains("/secrets") {
        return Role::Admin;
    }
    if method == Method::GET || method == Method::HEAD {
        Role::Viewer
    } else {
        Role::Deployer
    }
}

/// The token in a request: bearer header first, then the dashboard cookie.
pub(crate) fn token_of(headers: &HeaderMap) -> Option<String> {
    if let Some(value) = headers.get(axum::http::header::AUTHORIZATION)
        && let Ok(value) = value.to_str()
        && let Some(token) = value.strip_prefix("Bearer ")
    {
        return Some(token.trim().to_owned());
    }
    let cookies = headers.get(axum::http::header::COOKIE)?.to_str().ok()?;
    cookies.split(';').find_map(|pair| {
        let (name, value) = pair.trim().split_once('=')?;
        (name == TOKEN_COOKIE).then(|| value.to_owned())
    })
}

/// Who calls, from the token (or loopback in `lastmile up`); `None` when
/// the request carries no valid token.
pub(crate) fn principal_of(
    server: &Server,
    headers: &HeaderMap,
    peer: Option<SocketAddr>,
) -> Option<Principal> {
    if let Some(token) = token_of(headers)
        && let Ok(Some(record)) = server.store().token_by_hash(&hash_token(&token))
    {
        return Some(Principal {
            name: record.name,
            role: record.role,
        });
    }
    if let Some(actor) = &server.loopback_actor
        && peer.is_some_and(|peer| peer.ip().is_loopback())
    {
        return Some(Principal {
            name: actor.clone(),
            role: Role::Admin,
        });
    }
    None
}

async fn authenticate(State(server): Shared, mut request: Request, next: Next) -> Response {
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let peer = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(addr)| *addr);
    let Some(principal) = principal_of(&server, request.headers(), peer) else {
        return ApiError::unauthorized(
            "this call needs an API token: send `Authorization: Bearer <token>`; an admin creates one with `lastmile token create --role viewer|deployer|admin`",
        )
        .into_response();
    };
    let needed = required_role(&method, &path);
    if principal.role < needed {
        return ApiError::forbidden(format!(
            "token `{}` has role {}, and {method} {path} needs {needed}",
            principal.name, principal.role
        ))
        .into_response();
    }
    request.extensions_mut().insert(principal.clone());
    let response = next.run(request).await;
    if method != Method::GET && method != Method::HEAD {
        record_call(&server, &principal, &method, &path, response.status());
    }
    response
}

/// The audit record of a call that changes something: in the app's event
/// log when the call is about one app, else in the server's.
fn record_call(
    server: &Server,
    principal: &Principal,
    method: &Method,
    path: &str,
    status: StatusCode,
) {
    let data = json!({ "method": method.as_str(), "path": path, "status": status.as_u16(), "role": principal.role });
    let app = path
        .strip_prefix("/api/v1/apps/")
        .and_then(|rest| rest.split('/').next())
        .and_then(|name| server.app_store(name).ok());
    let subject = path.trim_start_matches("/api/v1/");
    let result = match app {
        Some(store) => store.record_event("api.call", subject, &principal.name, &data),
        None => server
            .store()
            .record_event("api.call", subject, &principal.name, &data),
    };
    if let Err(error) = result {
        eprintln!(
            "lastmile: cannot record {method} {path} by {} in the event log: {error}",
            principal.name
        );
    }
}

fn internal(error: impl std::error::Error) -> ApiError {
    ApiError::internal(&error)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Limit {
    #[serde(default)]
    limit: Option<String>,
}

impl Limit {
    /// The limit, within the bounds the document states.
    fn get(&self) -> Result<usize, ApiError> {
        let limit = LIST_LIMIT.parse("limit", self.limit.as_deref())?;
        Ok(usize::try_from(limit).unwrap_or(usize::MAX))
    }
}

/// A run or deployment id from the path, within the document's bounds.
fn record_id(name: &str, text: &str) -> Result<i64, ApiError> {
    RECORD_ID.parse(name, Some(text))
}

async fn apps(State(server): Shared) -> ApiResult {
    Ok(Json(json!(server.overview().await)))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct StatusWindow {
    #[serde(default)]
    window_s: Option<String>,
}

async fn app_status(
    State(server): Shared,
    Path(app): Path<String>,
    Query(window): Query<StatusWindow>,
) -> ApiResult {
    let seconds = STATUS_WINDOW.parse("window_s", window.window_s.as_deref())?;
    let controller = server.controller(&app)?;
    let mut status = controller
        .status(Duration::from_secs(u64::try_from(seconds).unwrap_or(60)))
        .await?;
    status.approvals = Some(server.pending(&app)?);
    status.drift = Some(server.drift(&app)?);
    Ok(Json(json!(status)))
}

async fn commits(
    State(server): Shared,
    Path(app): Path<String>,
    Query(limit): Query<Limit>,
) -> ApiResult {
    Ok(Json(
        json!({ "commits": server.commits(&app, limit.get()?)? }),
    ))
}

async fn runs(
    State(server): Shared,
    Path(app): Path<String>,
    Query(limit): Query<Limit>,
) -> ApiResult {
    let store = server.app_store(&app)?;
    Ok(Json(
        json!({ "runs": store.list_runs(limit.get()?).map_err(internal)? }),
    ))
}

async fn run(State(server): Shared, Path((app, run)): Path<(String, String)>) -> ApiResult {
    let run = record_id("run", &run)?;
    let store = server.app_store(&app)?;
    let record = store
        .get_run(run)
        .map_err(internal)?
        .ok_or_else(|| ApiError::not_found(format!("app `{app}` has no run #{run}")))?;
    let steps = store.list_steps(run).map_err(internal)?;
    Ok(Json(json!({ "run": record, "steps": steps })))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct LogQuery {
    #[serde(default)]
    step: Option<String>,
}

/// Step logs: JSON, or a live SSE stream (`Accept: text/event-stream`)
/// that ends with an `end` event when the run has finished.
async fn run_logs(
    State(server): Shared,
    Path((app, run)): Path<(String, String)>,
    Query(query): Query<LogQuery>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let run = record_id("run", &run)?;
    let store = server.app_store(&app)?;
    if store.get_run(run).map_err(internal)?.is_none() {
        return Err(ApiError::not_found(format!(
            "app `{app}` has no run #{run}"
        )));
    }
    let wants_stream = headers
        .get(axum::http::header::ACCEPT)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|accept| accept.contains("text/event-stream"));
    if !wants_stream {
        let lines = store
            .read_logs(run, query.step.as_deref())
            .map_err(internal)?;
        let lines: Vec<Value> = lines
            .into_iter()
            .map(|(step, line)| json!({ "step": step, "line": line }))
            .collect();
        return Ok(Json(json!({ "lines": lines })).into_response());
    }
    let (sender, receiver) =
        tokio::sync::mpsc::channel::<Result<SseEvent, std::convert::Infallible>>(64);
    tokio::spawn(async move {
        let mut sent = 0usize;
        loop {
            let finished = store
                .get_run(run)
                .ok()
                .flatten()
                .is_none_or(|run| run.finished_at.is_some());
            let lines = store
                .read_logs(run, query.step.as_deref())
                .unwrap_or_default();
            for (step, line) in lines.iter().skip(sent) {
                let data = json!({ "step": step, "line": line }).to_string();
                if sender
                    .send(Ok(SseEvent::default().event("line").data(data)))
                    .await
                    .is_err()
                {
                    return;
                }
            }
            sent = lines.len();
            if finished {
                let status = store.get_run(run).ok().flatten().map(|run| run.status);
                let _ = sender
                    .send(Ok(SseEvent::default()
                        .event("end")
                        .data(json!({ "status": status }).to_string())))
                    .await;
                return;
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    });
    let stream = futures_util::stream::unfold(receiver, |mut receiver| async move {
        receiver.recv().await.map(|item| (item, receiver))
    });
    Ok(Sse::new(stream)
        .keep_alive(KeepAlive::default())
        .into_response())
}

async fn artifacts(
    State(server): Shared,
    Path(app): Path<String>,
    Query(limit): Query<Limit>,
) -> ApiResult {
    let store = server.app_store(&app)?;
    Ok(Json(
        json!({ "artifacts": store.list_artifacts(limit.get()?).map_err(internal)? }),
    ))
}

async fn releases(
    State(server): Shared,
    Path(app): Path<String>,
    Query(limit): Query<Limit>,
) -> ApiResult {
    let store = server.app_store(&app)?;
    Ok(Json(
        json!({ "releases": store.list_releases(limit.get()?).map_err(internal)? }),
    ))
}

async fn environments(State(server): Shared, Path(app): Path<String>) -> ApiResult {
    let controller = server.controller(&app)?;
    let status = controller.status(Duration::from_secs(60)).await?;
    Ok(Json(
        json!({ "environments": status.environments, "approvals": server.pending(&app)? }),
    ))
}

async fn deployments(
    State(server): Shared,
    Path(app): Path<String>,
    Query(limit): Query<Limit>,
) -> ApiResult {
    let store = server.app_store(&app)?;
    Ok(Json(
        json!({ "deployments": store.list_deployments(limit.get()?).map_err(internal)? }),
    ))
}

async fn deployment(State(server): Shared, Path((app, id)): Path<(String, String)>) -> ApiResult {
    let id = record_id("id", &id)?;
    let store = server.app_store(&app)?;
    let record = store
        .get_deployment(id)
        .map_err(internal)?
        .ok_or_else(|| ApiError::not_found(format!("app `{app}` has no deployment #{id}")))?;
    let steps = store.deployment_steps(id).map_err(internal)?;
    Ok(Json(json!({ "deployment": record, "steps": steps })))
}

async fn approvals(State(server): Shared, Path(app): Path<String>) -> ApiResult {
    Ok(Json(json!({ "approvals": server.pending(&app)? })))
}

async fn drift(State(server): Shared, Path(app): Path<String>) -> ApiResult {
    Ok(Json(
        json!({ "drift": server.drift(&app)?, "self_heal": server.app(&app)?.config().self_heal }),
    ))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct EventQuery {
    #[serde(default)]
    after: Option<String>,
    #[serde(default)]
    limit: Option<String>,
}

impl EventQuery {
    /// `after` and `limit`, within the bounds the document states.
    fn get(&self) -> Result<(i64, usize), ApiError> {
        let after = EVENT_AFTER.parse("after", self.after.as_deref())?;
        let limit = EVENT_LIMIT.parse("limit", self.limit.as_deref())?;
        Ok((after, usize::try_from(limit).unwrap_or(usize::MAX)))
    }
}

async fn app_events(
    State(server): Shared,
    Path(app): Path<String>,
    Query(query): Query<EventQuery>,
) -> ApiResult {
    let (after, limit) = query.get()?;
    let store = server.app_store(&app)?;
    let events = store.list_events(after, limit).map_err(internal)?;
    Ok(Json(json!({ "events": events })))
}

async fn server_events(State(server): Shared, Query(query): Query<EventQuery>) -> ApiResult {
    let (after, limit) = query.get()?;
    let events = server.store().list_events(after, limit).map_err(internal)?;
    Ok(Json(json!({ "events": events })))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DoraQuery {
    #[serde(default)]
    days: Option<String>,
}

impl DoraQuery {
    /// The window in days, within the bounds the document states.
    fn get(&self) -> Result<u32, ApiError> {
        let days = DORA_DAYS.parse("days", self.days.as_deref())?;
        Ok(u32::try_from(days).unwrap_or(u32::MAX))
    }
}

async fn app_dora(
    State(server): Shared,
    Path(app): Path<String>,
    Query(query): Query<DoraQuery>,
) -> ApiResult {
    let days = query.get()?;
    let controller = server.controller(&app)?;
    controller.dora(days).map(Json)
}

async fn dora(State(server): Shared, Query(query): Query<DoraQuery>) -> ApiResult {
    let days = query.get()?;
    let mut apps = serde_json::Map::new();
    for name in server.apps().keys() {
        if let Ok(controller) = server.controller(name) {
            apps.insert(name.clone(), controller.dora(days)?);
        }
    }
    Ok(Json(json!({ "days": days, "apps": apps })))
}

async fn deploy(
    State(server): Shared,
    Path(app): Path<String>,
    Extension(principal): Extension<Principal>,
    Json(mut request): Json<DeployRequest>,
) -> ApiResult {
    if request.artifact.is_some() {
        return Err(ApiError::bad_request(
            "a server builds its own artifacts from git; deploy a release it made (`release`), or push a commit",
        ));
    }
    if request.approved_by.is_some() {
        // The approver is whoever holds the token, not what the body says.
        request.approved_by = Some(principal.name.clone());
    }
    let controller = server.controller(&app)?;
    detached(async move { controller.deploy(request).await }).await
}

/// A deployment or rollback in its own task (see [`crate::control::detached`]),
/// its outcome as JSON.
async fn detached(
    work: impl std::future::Future<Output = Result<DeploymentOutcome, ApiError>> + Send + 'static,
) -> ApiResult {
    crate::control::detached(work)
        .await
        .map(|outcome| Json(json!(outcome)))
}

async fn rollback(
    State(server): Shared,
    Path(app): Path<String>,
    Json(request): Json<RollbackRequest>,
) -> ApiResult {
    let controller = server.controller(&app)?;
    detached(async move { controller.rollback(request).await }).await
}

async fn promote(
    State(server): Shared,
    Path(app): Path<String>,
    Json(request): Json<CanaryRequest>,
) -> ApiResult {
    server
        .controller(&app)?
        .promote(&request.environment)
        .map(Json)
}

async fn abort(
    State(server): Shared,
    Path(app): Path<String>,
    Json(request): Json<CanaryRequest>,
) -> ApiResult {
    server
        .controller(&app)?
        .abort(&request.environment)
        .map(Json)
}

async fn approve(
    State(server): Shared,
    Path((app, env)): Path<(String, String)>,
    Extension(principal): Extension<Principal>,
) -> ApiResult {
    server.approve(&app, &env, &principal.name).map(Json)
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RollbackTo {
    #[serde(default, deserialize_with = "crate::request::present_text")]
    to: Option<String>,
}

async fn rollback_env(
    State(server): Shared,
    Path((app, env)): Path<(String, String)>,
    body: Option<Json<RollbackTo>>,
) -> ApiResult {
    let to = body.and_then(|Json(body)| body.to);
    let controller = server.controller(&app)?;
    let request = RollbackRequest {
        environment: env,
        to,
    };
    detached(async move { controller.rollback(request).await }).await
}

async fn promote_env(State(server): Shared, Path((app, env)): Path<(String, String)>) -> ApiResult {
    server.controller(&app)?.promote(&env).map(Json)
}

async fn abort_env(State(server): Shared, Path((app, env)): Path<(String, String)>) -> ApiResult {
    server.controller(&app)?.abort(&env).map(Json)
}

async fn list_secrets(State(server): Shared, Path(app): Path<String>) -> ApiResult {
    server.app(&app)?;
    let secrets = server.store().list_secrets(&app).map_err(internal)?;
    Ok(Json(json!({ "secrets": secrets })))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SecretValue {
    value: String,
}

async fn set_secret(
    State(server): Shared,
    Path((app, name)): Path<(String, String)>,
    Extension(principal): Extension<Principal>,
    Json(body): Json<SecretValue>,
) -> ApiResult {
    server.set_secret(&app, &name, &body.value, &principal.name)?;
    Ok(Json(json!({ "app": app, "name": name, "stored": true })))
}

async fn delete_secret(
    State(server): Shared,
    Path((app, name)): Path<(String, String)>,
    Extension(principal): Extension<Principal>,
) -> ApiResult {
    server.app(&app)?;
    let deleted = server
        .store()
        .delete_secret(&app, &name, &principal.name)
        .map_err(internal)?;
    Ok(Json(
        json!({ "app": app, "name": name, "deleted": deleted }),
    ))
}

async fn list_tokens(State(server): Shared) -> ApiResult {
    Ok(Json(
        json!({ "tokens": server.store().list_tokens().map_err(internal)? }),
    ))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NewToken {
    name: String,
    role: String,
}

async fn create_token(
    State(server): Shared,
    Extension(principal): Extension<Principal>,
    Json(body): Json<NewToken>,
) -> ApiResult {
    let role: Role = body
        .role
        .parse()
        .map_err(|error: lastmile_store::UnknownRole| ApiError::bad_request(error.to_string()))?;
    let (record, token) =
        crate::tokens::create(server.store().as_ref(), &body.name, role, &principal.name).map_err(
            |error| match error {
                TokenError::InvalidName(_) => ApiError::bad_request(error.to_string()),
                TokenError::Store(StoreError::TokenNameTaken { .. }) => {
                    ApiError::conflict(error.to_string())
                }
                TokenError::Store(error) => internal(error),
            },
        )?;
    Ok(Json(
        json!({ "token": token, "record": record, "note": "shown once; store it now" }),
    ))
}

async fn revoke_token(
    State(server): Shared,
    Path(name): Path<String>,
    Extension(principal): Extension<Principal>,
) -> ApiResult {
    let revoked = server
        .store()
        .revoke_token(&name, &principal.name)
        .map_err(internal)?;
    if !revoked {
        return Err(ApiError::not_found(format!(
            "no active token named `{name}`"
        )));
    }
    Ok(Json(json!({ "name": name, "revoked": true })))
}

async fn whoami(Extension(principal): Extension<Principal>) -> ApiResult {
    Ok(Json(
        json!({ "name": principal.name, "role": principal.role }),
    ))
}

async fn webhook(
    State(server): Shared,
    Path(app): Path<String>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> ApiResult {
    server.webhook(&app, &headers, &body).map(Json)
}

async fn openapi() -> Json<Value> {
    Json(openapi_document())
}

async fn metrics(State(server): Shared) -> Response {
    let mut texts = Vec::new();
    for name in server.apps().keys() {
        if let Ok(controller) = server.controller(name) {
            match controller.metrics().await {
                Ok(text) => texts.push((name.clone(), text)),
                Err(error) => return error.into_response(),
            }
        }
    }
    (
        [(
            axum::http::header::CONTENT_TYPE,
            lastmile_monitor::PROMETHEUS_CONTENT_TYPE,
        )],
        crate::metrics_merge::merge(&texts),
    )
        .into_response()
}
