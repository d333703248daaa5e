//! The control API of a running `lastmile up`: what `lastmile status`,
//! `deploy`, `rollback`, `promote`, `abort`, `restart` and `down` talk to.
//!
//! It listens on loopback only, where it needs no token (the banner says
//! so); binding it anywhere else is refused until token auth arrives with
//! the server.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;

use crate::controller::Controller;
use crate::error::ApiError;
use crate::request::{DeployRequest, RollbackRequest};

/// `POST /api/v1/promote` and `POST /api/v1/abort`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct CanaryRequest {
    /// Environment name.
    pub environment: String,
}

/// Runs a deployment or rollback in its own task: a client that hangs up
/// (or a browser that navigates away) drops the handler, and must not
/// cancel it half-way, leaving the environment held by a deployment
/// nobody drives.
pub(crate) async fn detached<T: Send + 'static>(
    work: impl std::future::Future<Output = Result<T, ApiError>> + Send + 'static,
) -> Result<T, ApiError> {
    match tokio::spawn(work).await {
        Ok(result) => result,
        Err(error) => Err(ApiError::internal_message(format!(
            "the deployment task failed: {error}"
        ))),
    }
}

type ApiResult = Result<Json<serde_json::Value>, ApiError>;

/// The API's routes over a controller.
pub(crate) fn routes(controller: Arc<Controller>) -> Router {
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
        .with_state(controller.clone())
        // OFREP for the apps' OpenFeature clients: loopback, so no token,
        // like the rest of this API.
        .merge(lastmile_flags::ofrep_router(
            controller.flags().clone(),
            lastmile_flags::OfrepConfig::default(),
        ))
}

/// Binds the control API; refuses any address that is not loopback.
pub(crate) async fn bind(addr: SocketAddr) -> anyhow::Result<tokio::net::TcpListener> {
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
pub(crate) struct StatusQuery {
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
        .map(|outcome| Json(serde_json::json!(outcome)))
}

async fn rollback(
    State(controller): State<Arc<Controller>>,
    Json(request): Json<RollbackRequest>,
) -> ApiResult {
    detached(async move { controller.rollback(request).await })
        .await
        .map(|outcome| Json(serde_json::json!(outcome)))
}

/// `POST /api/v1/flags/{key}`: fields left out keep their current value.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FlagOverrideRequest {
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
pub(crate) struct ActorQuery {
    /// Who asks.
    pub actor: String,
}

/// `GET /api/v1/dora?days=N` (default 30).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct DoraQuery {
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
