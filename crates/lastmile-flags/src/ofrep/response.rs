//! OFREP response bodies, serialized straight into one buffer per response.

use axum::body::Body;
use axum::response::Response;
use http::header::{CONTENT_TYPE, ETAG, WWW_AUTHENTICATE};
use http::{HeaderValue, StatusCode};
use serde::Serialize;

use crate::canary::CanaryLookup;
use crate::context::Context;
use crate::flag_set::FlagSet;

const JSON: HeaderValue = HeaderValue::from_static("application/json");

/// OFREP's `evaluationFailure` / `flagNotFound` (with a key) and
/// `bulkEvaluationFailure` (without).
#[derive(Serialize)]
struct Failure<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    key: Option<&'a str>,
    #[serde(rename = "errorCode")]
    error_code: &'a str,
    #[serde(rename = "errorDetails")]
    error_details: &'a str,
}

/// OFREP's `generalErrorResponse`, used for 401, 403, 405 and 415.
#[derive(Serialize)]
struct General<'a> {
    #[serde(rename = "errorDetails")]
    error_details: &'a str,
}

/// `value` as a JSON response with `status`.
pub(super) fn json(status: StatusCode, value: &impl Serialize) -> Response {
    let mut body = Vec::with_capacity(160);
    match serde_json::to_writer(&mut body, value) {
        Ok(()) => with_body(status, body),
        // Our bodies are maps with string keys and JSON values: serializing
        // them cannot fail. Should it ever, say so in the protocol's shape.
        Err(error) => {
            let details = format!("the answer could not be serialized: {error}");
            let mut body = Vec::new();
            let _ = serde_json::to_writer(
                &mut body,
                &General {
                    error_details: &details,
                },
            );
            with_body(StatusCode::INTERNAL_SERVER_ERROR, body)
        }
    }
}

fn with_body(status: StatusCode, body: Vec<u8>) -> Response {
    let mut response = Response::new(Body::from(body));
    *response.status_mut() = status;
    response.headers_mut().insert(CONTENT_TYPE, JSON);
    response
}

/// An error object: `{ key, errorCode, errorDetails }`, without `key` for
/// a bulk request.
pub(super) fn failure(
    status: StatusCode,
    key: Option<&str>,
    code: &str,
    details: &str,
) -> Response {
    json(
        status,
        &Failure {
            key,
            error_code: code,
            error_details: details,
        },
    )
}

/// A refusal of the request as a whole: `{ errorDetails }`.
pub(super) fn general(status: StatusCode, details: &str) -> Response {
    json(
        status,
        &General {
            error_details: details,
        },
    )
}

/// 401 (with the `WWW-Authenticate` challenge RFC 6750 asks for) or 403.
pub(super) fn auth(status: StatusCode, details: &str) -> Response {
    let mut response = json(
        status,
        &General {
            error_details: details,
        },
    );
    if status == StatusCode::UNAUTHORIZED {
        response
            .headers_mut()
            .insert(WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    }
    response
}

/// 304: the client's cached bulk answer is still right.
pub(super) fn not_modified(tag: &str) -> Response {
    let mut response = Response::new(Body::empty());
    *response.status_mut() = StatusCode::NOT_MODIFIED;
    if let Ok(value) = HeaderValue::from_str(tag) {
        response.headers_mut().insert(ETAG, value);
    }
    response
}

/// 200 `{ "flags": [...] }`: every flag of `flags` for `context`, each a
/// success object or a failure object with its key, tagged `tag`.
pub(super) fn bulk(
    flags: &FlagSet,
    context: &Context,
    canary: &dyn CanaryLookup,
    tag: &str,
) -> Response {
    let mut body = Vec::with_capacity(64 + 160 * flags.len());
    body.extend_from_slice(b"{\"flags\":[");
    for (index, key) in flags.keys().enumerate() {
        if index > 0 {
            body.push(b',');
        }
        let written = match flags.evaluate(key, context, canary) {
            Ok(evaluation) => serde_json::to_writer(&mut body, &evaluation),
            Err(error) => serde_json::to_writer(
                &mut body,
                &Failure {
                    key: Some(key),
                    error_code: error.code(),
                    error_details: &error.to_string(),
                },
            ),
        };
        if let Err(error) = written {
            return failure(
                StatusCode::INTERNAL_SERVER_ERROR,
                None,
                "GENERAL",
                &format!("flag `{key}` could not be serialized: {error}"),
            );
        }
    }
    body.extend_from_slice(b"]}");
    let mut response = with_body(StatusCode::OK, body);
    if let Ok(value) = HeaderValue::from_str(tag) {
        response.headers_mut().insert(ETAG, value);
    }
    response
}
