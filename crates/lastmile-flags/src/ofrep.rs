//! The server side of the OpenFeature Remote Evaluation Protocol (OFREP v1)
//! as an axum router: any OpenFeature SDK with an OFREP provider can
//! evaluate lastmile's flags over HTTP.
//!
//! Routes (paths, bodies and statuses as in open-feature/protocol's
//! `service/openapi.yaml`):
//!
//! - `POST /ofrep/v1/evaluate/flags/{key}`: `{ "context": {...} }` →
//!   200 `{ key, value, reason, variant, metadata }`; 404
//!   `{ key, errorCode: FLAG_NOT_FOUND, errorDetails }`; 400
//!   `{ key, errorCode, errorDetails }` for `PARSE_ERROR`,
//!   `TARGETING_KEY_MISSING`, `INVALID_CONTEXT` and `GENERAL`.
//! - `POST /ofrep/v1/evaluate/flags`: every flag → 200
//!   `{ "flags": [ success or failure objects ] }` with an `ETag`; 304 with
//!   no body when `If-None-Match` names it; 400 `{ errorCode, errorDetails }`
//!   when the request itself is malformed.
//! - 401 / 403 `{ errorDetails }` when a token is configured and the request
//!   has no `Authorization: Bearer` / the wrong one.
//! - 405 `{ errorDetails }` (with `Allow: POST`) for any other method, and
//!   415 `{ errorDetails }` for a body in a `Content-Encoding` other than
//!   `identity`: every refusal is the protocol's JSON, never an empty body.

mod auth;
mod etag;
mod request;
mod response;

use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, State};
use axum::response::Response;
use axum::routing::post;
use http::{HeaderMap, StatusCode};

use crate::canary::CanaryLookup;
use crate::flag_set::FlagSet;

use self::auth::Token;
use self::request::{OfrepRequest, Rejected};

/// Where the OFREP router reads the flags in force, per request.
pub trait FlagSource: Send + Sync + 'static {
    /// The flags in force now and a version that changes whenever they
    /// change (bulk ETags are built from it).
    fn snapshot(&self) -> (FlagSet, u64);
    /// Where `follow_canary` reads the canary's share of cohort buckets.
    fn canary(&self) -> &dyn CanaryLookup;
}

/// How the OFREP router authenticates callers.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OfrepConfig {
    /// `Some(token)`: every request needs `Authorization: Bearer <token>`
    /// (401 without one, 403 with another); `None`: no authentication.
    pub token: Option<String>,
}

/// What every handler shares: the flag source and the expected token.
struct Shared {
    source: Arc<dyn FlagSource>,
    token: Option<Token>,
}

/// The OFREP routes (`POST /ofrep/v1/evaluate/flags/{key}` and
/// `POST /ofrep/v1/evaluate/flags`) over `source`; merge or nest it into
/// a larger router, or serve it alone.
pub fn ofrep_router(source: Arc<dyn FlagSource>, config: OfrepConfig) -> Router {
    let shared = Arc::new(Shared {
        source,
        token: config.token.map(Token::new),
    });
    Router::new()
        .route(
            "/ofrep/v1/evaluate/flags/{key}",
            post(evaluate_one).fallback(method_not_allowed),
        )
        .route(
            "/ofrep/v1/evaluate/flags",
            post(evaluate_all).fallback(method_not_allowed),
        )
        .with_state(shared)
}

async fn evaluate_one(
    State(shared): State<Arc<Shared>>,
    key: Result<Path<String>, axum::extract::rejection::PathRejection>,
    request: OfrepRequest,
) -> Response {
    let key = match key {
        Ok(Path(key)) => key,
        Err(rejection) => {
            // Only a key that is not valid UTF-8 once percent-decoded gets here.
            return response::failure(
                StatusCode::BAD_REQUEST,
                Some(""),
                "PARSE_ERROR",
                &format!("the flag key in the path is unreadable: {rejection}"),
            );
        }
    };
    let context = match request.outcome {
        Ok(context) => context,
        Err(rejected) => return rejected_response(rejected, Some(&key)),
    };
    let (flags, _version) = shared.source.snapshot();
    match flags.evaluate(&key, &context, shared.source.canary()) {
        Ok(evaluation) => response::json(StatusCode::OK, &evaluation),
        Err(error) => {
            let status = match error {
                crate::EvaluationError::FlagNotFound => StatusCode::NOT_FOUND,
                _ => StatusCode::BAD_REQUEST,
            };
            response::failure(status, Some(&key), error.code(), &error.to_string())
        }
    }
}

async fn evaluate_all(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    request: OfrepRequest,
) -> Response {
    let context = match request.outcome {
        Ok(context) => context,
        Err(rejected) => return rejected_response(rejected, None),
    };
    let (flags, version) = shared.source.snapshot();
    let tag = etag::etag(version, &context);
    if etag::none_match_hits(&headers, &tag) {
        return response::not_modified(&tag);
    }
    response::bulk(&flags, &context, shared.source.canary(), &tag)
}

/// 405 in the protocol's general error shape: evaluation is POST only.
async fn method_not_allowed(method: http::Method) -> Response {
    let mut response = response::general(
        StatusCode::METHOD_NOT_ALLOWED,
        &format!(
            "OFREP evaluates flags with POST, not {method}; send `POST` with `{{\"context\": {{...}}}}`"
        ),
    );
    response
        .headers_mut()
        .insert(http::header::ALLOW, http::HeaderValue::from_static("POST"));
    response
}

/// The response to a request refused before any flag was evaluated; `key`
/// is the single flag's key (bulk failures carry none).
fn rejected_response(rejected: Rejected, key: Option<&str>) -> Response {
    match rejected {
        Rejected::Unauthorized(details) => response::auth(StatusCode::UNAUTHORIZED, details),
        Rejected::Forbidden(details) => response::auth(StatusCode::FORBIDDEN, details),
        Rejected::Encoding(details) => {
            response::general(StatusCode::UNSUPPORTED_MEDIA_TYPE, &details)
        }
        Rejected::Parse(details) => {
            response::failure(StatusCode::BAD_REQUEST, key, "PARSE_ERROR", &details)
        }
        Rejected::Evaluation(error) => response::failure(
            StatusCode::BAD_REQUEST,
            key,
            error.code(),
            &error.to_string(),
        ),
    }
}
