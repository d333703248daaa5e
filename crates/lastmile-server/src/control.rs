//! The control API of a running `lastmile up`: what `lastmile status`,
//! `deploy`, `rollback`, `promote`, `abort`, `restart` and `down` talk to.
//!
//! It listens on loopback only, where it needs no token (the banner says
//! so); binding it anywhere else is refused until token auth arrives with
//! the server.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;

use crate::up::Controller;

/// `POST /api/v1/deploy`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeployRequest {
    /// Environment name.
    pub environment: String,
    /// Release id (or unique prefix) to deploy; the newest release when
    /// absent.
    #[serde(default, deserialize_with = "present_text")]
    pub release: Option<String>,
    /// Artifact to make a release of first (from a `lastmile run` the CLI
    /// just did), with the run that built it.
    #[serde(default)]
    pub artifact: Option<ArtifactRef>,
    /// Who approves it, for environments with `gates.approval: required`.
    #[serde(default, deserialize_with = "present_text")]
    pub approved_by: Option<String>,
}

/// An artifact and the run that produced it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ArtifactRef {
    /// Content address.
    pub id: String,
    /// Pipeline run id.
    pub run_id: i64,
}

/// `POST /api/v1/promote` and `POST /api/v1/abort`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CanaryRequest {
    /// Environment name.
    pub environment: String,
}

/// `POST /api/v1/rollback`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RollbackRequest {
    /// Environment name.
    pub environment: String,
    /// Release to go back to; the previous one when absent.
    #[serde(default, deserialize_with = "present_text")]
    pub to: Option<String>,
}

/// An optional text field that, when present, is a non-empty string: the
/// document types these fields as strings of at least one character, and
/// an empty release prefix would match every release. A missing field is
/// `None` (through `#[serde(default)]`); `null` and `""` are refused.
pub(crate) fn present_text<'de, D>(deserializer: D) -> Result<Option<String>, D::Error>
where
    D: serde::Deserializer<'de>,
{
    use serde::de::Error;
    match Option::<String>::deserialize(deserializer)? {
        None => Err(D::Error::custom(
            "null is not a value here; leave the field out to use its default, or give a non-empty string",
        )),
        Some(text) if text.trim().is_empty() => Err(D::Error::custom(
            "an empty string is not a value here; leave the field out to use its default, or give a non-empty string",
        )),
        Some(text) => Ok(Some(text)),
    }
}

/// An error as the API returns it: a status and `{"error": "..."}`.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    message: String,
}

impl ApiError {
    /// 400: the request names something that does not exist or is invalid.
    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError {
            status: StatusCode::BAD_REQUEST,
            message: message.into(),
        }
    }

    /// 401: no token, or one that is not valid.
    pub fn unauthorized(message: impl Into<String>) -> ApiError {
        ApiError {
            status: StatusCode::UNAUTHORIZED,
            message: message.into(),
        }
    }

    /// 404: no such thing.
    pub fn not_found(message: impl Into<String>) -> ApiError {
        ApiError {
            status: StatusCode::NOT_FOUND,
            message: message.into(),
        }
    }

    /// 403: a gate forbids it until someone acts.
    pub fn forbidden(message: impl Into<String>) -> ApiError {
        ApiError {
            status: StatusCode::FORBIDDEN,
            message: message.into(),
        }
    }

    /// 409: the request conflicts with what is running (a deployment in
    /// progress).
    pub fn conflict(message: impl Into<String>) -> ApiError {
        ApiError {
            status: StatusCode::CONFLICT,
            message: message.into(),
        }
    }

    /// The message, for callers that are not HTTP.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// 500 with the full error chain.
    pub fn internal(error: &anyhow::Error) -> ApiError {
        ApiError {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            message: format!("{error:#}"),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (
            self.status,
            Json(serde_json::json!({ "error": self.message, "code": code_of(self.status) })),
        )
            .into_response()
    }
}

/// The machine-readable code of an error status.
pub(crate) fn code_of(status: StatusCode) -> &'static str {
    match status.as_u16() {
        400 | 415 | 422 => "bad_request",
        401 => "unauthorized",
        403 => "forbidden",
        404 => "not_found",
        405 => "method_not_allowed",
        409 => "conflict",
        _ => "internal",
    }
}

/// Runs a deployment or rollback in its own task: a client that hangs up
/// (or a browser that navigates away) drops the handler, and must not
/// cancel it half-way, leaving the environment held by a deployment
/// nobody drives.
pub(crate) async fn detached(
    work: impl std::future::Future<Output = Result<serde_json::Value, ApiError>> + Send + 'static,
) -> Result<serde_json::Value, ApiError> {
    match tokio::spawn(work).await {
        Ok(result) => result,
        Err(error) => Err(ApiError::internal(&anyhow::anyhow!(
            "the deployment task failed: {error}"
        ))),
    }
}

type ApiResult = Result<Json<serde_json::Value>, ApiError>;

/// The API's routes over a controller.
pub fn routes(controller: Arc<Controller>) -> Router {
    Router::new()
        .route("/api/v1/status", get(status))
        .route("/api/v1/deploy", post(deploy))
        .route("/api/v1/rollback", post(rollback))
        .route("/api/v1/dora", get(dora))
        .route("/metrics", get(metrics))
        .route("/api/v1/flags", get(list_flags))
        .route(
            "/api/v1/flags/{key}",
            post(override_flag).delete(reset_flag),
        )
        .route("/api/v1/promote", post(promote))
        .route("/api/v1/abort", post(abort))
        .route("/api/v1/restart", post(restart))
        .route("/api/v1/shutdown", post(shutdown))
        .route("/api/v1/handover/ready", post(handover_ready))
        .with_state(controller.clone())
        // OFREP for the apps' OpenFeature clients: loopback, so no token,
        // like the rest of this API.
        .merge(lastmile_flags::ofrep_router(
            controller.flags().clone(),
            lastmile_flags::OfrepConfig::default(),
        ))
}

/// Binds the control API; refuses any address that is not loopback.
pub async fn bind(addr: SocketAddr) -> anyhow::Result<tokio::net::TcpListener> {
    if !addr.ip().is_loopback() {
        anyhow::bail!(
            "the control API of `lastmile up` listens on loopback only (it has no token auth); {addr} is not loopback"
        );
    }
    tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|error| anyhow::anyhow!("cannot listen on {addr} for the control API: {error}"))
}

/// `GET /api/v1/status?window_s=N`: stats over the last N seconds (default 60).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StatusQuery {
    /// Seconds of router stats, 1..=60.
    #[serde(default)]
    pub window_s: Option<u64>,
}

async fn status(
    State(controller): State<Arc<Controller>>,
    axum::extract::Query(query): axum::extract::Query<StatusQuery>,
) -> ApiResult {
    let window = std::time::Duration::from_secs(query.window_s.unwrap_or(60).clamp(1, 60));
    controller
        .status(window)
        .await
        .map(|status| Json(serde_json::json!(status)))
}

async fn deploy(
    State(controller): State<Arc<Controller>>,
    Json(request): Json<DeployRequest>,
) -> ApiResult {
    detached(async move { controller.deploy(request).await })
        .await
        .map(Json)
}

async fn rollback(
    State(controller): State<Arc<Controller>>,
    Json(request): Json<RollbackRequest>,
) -> ApiResult {
    detached(async move { controller.rollback(request).await })
        .await
        .map(Json)
}

/// `POST /api/v1/flags/{key}`: fields left out keep their current value.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FlagOverrideRequest {
    /// `false` is the kill switch.
    #[serde(default)]
    pub enabled: Option<bool>,
    /// New default variant.
    #[serde(default)]
    pub default: Option<String>,
    /// New rollout: variant names with percentages adding up to 100.
    #[serde(default)]
    pub rollout: Option<Vec<(String, f64)>>,
    /// Who asks (recorded in the event log).
    pub actor: String,
}

/// `DELETE /api/v1/flags/{key}?actor=…`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ActorQuery {
    /// Who asks.
    pub actor: String,
}

/// `GET /api/v1/dora?days=N` (default 30).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DoraQuery {
    /// Window in days, 1..=365.
    #[serde(default)]
    pub days: Option<u32>,
}

async fn dora(
    State(controller): State<Arc<Controller>>,
    axum::extract::Query(query): axum::extract::Query<DoraQuery>,
) -> ApiResult {
    controller
        .dora(query.days.unwrap_or(30).clamp(1, 365))
        .map(Json)
}

/// `GET /metrics`: Prometheus text format.
async fn metrics(State(controller): State<Arc<Controller>>) -> Response {
    match controller.metrics().await {
        Ok(text) => (
            [(
                axum::http::header::CONTENT_TYPE,
                lastmile_monitor::PROMETHEUS_CONTENT_TYPE,
            )],
            text,
        )
            .into_response(),
        Err(error) => error.into_response(),
    }
}

async fn list_flags(State(controller): State<Arc<Controller>>) -> ApiResult {
    Ok(Json(controller.list_flags()))
}

async fn override_flag(
    State(controller): State<Arc<Controller>>,
    axum::extract::Path(key): axum::extract::Path<String>,
    Json(request): Json<FlagOverrideRequest>,
) -> ApiResult {
    let change = lastmile_flags::Override {
        enabled: request.enabled,
        default: request.default,
        rollout: request.rollout,
    };
    controller
        .override_flag(&key, &change, &request.actor)
        .map(Json)
}

async fn reset_flag(
    State(controller): State<Arc<Controller>>,
    axum::extract::Path(key): axum::extract::Path<String>,
    axum::extract::Query(query): axum::extract::Query<ActorQuery>,
) -> ApiResult {
    controller.reset_flag(&key, &query.actor).map(Json)
}

async fn promote(
    State(controller): State<Arc<Controller>>,
    Json(request): Json<CanaryRequest>,
) -> ApiResult {
    controller.promote(&request.environment).map(Json)
}

async fn abort(
    State(controller): State<Arc<Controller>>,
    Json(request): Json<CanaryRequest>,
) -> ApiResult {
    controller.abort(&request.environment).map(Json)
}

async fn restart(State(controller): State<Arc<Controller>>) -> ApiResult {
    controller.restart().await.map(Json)
}

/// Answers what is about to stop (instances, listeners, the longest it may
/// take), then stops.
async fn shutdown(State(controller): State<Arc<Controller>>) -> ApiResult {
    // A stop that reached a process handing over, or already draining
    // after a restart, would stop nothing that serves.
    if controller.handing_over() {
        return Err(ApiError::conflict(
            "a restart is handing over to a new process; \
             run `lastmile down` again once `lastmile restart` has returned",
        ));
    }
    let plan = controller.shutdown_plan().await;
    controller.request_shutdown();
    Ok(Json(plan))
}

async fn handover_ready(State(controller): State<Arc<Controller>>) -> ApiResult {
    controller.handover_ready();
    Ok(Json(serde_json::json!({ "draining": true })))
}
