//! The OFREP request extractor: authentication, content type and the
//! `{ "context": {...} }` body, every failure kept as data so the handler
//! answers in the protocol's JSON instead of axum's plain-text rejections.

use std::sync::Arc;

use axum::extract::{FromRequest, Request};
use bytes::Bytes;
use http::header::CONTENT_TYPE;
use http::{HeaderMap, HeaderValue};
use serde::Deserialize;

use super::Shared;
use super::auth::Refusal;
use crate::context::Context;
use crate::error::EvaluationError;

/// An OFREP request as read: the evaluation context, or why there is none.
pub(super) struct OfrepRequest {
    pub(super) outcome: Result<Context, Rejected>,
}

/// Why a request was refused before evaluation.
#[derive(Debug)]
pub(super) enum Rejected {
    /// No bearer token (401).
    Unauthorized(&'static str),
    /// The wrong bearer token (403).
    Forbidden(&'static str),
    /// The body is in a `Content-Encoding` this server does not decode (415).
    Encoding(String),
    /// The body is not a JSON request object (400 `PARSE_ERROR`).
    Parse(String),
    /// The context is not a valid context (400 `INVALID_CONTEXT`).
    Evaluation(EvaluationError),
}

/// The request body; fields other than `context` are ignored, as OpenAPI
/// objects allow additional properties.
#[derive(Deserialize)]
struct Envelope {
    #[serde(default)]
    context: serde_json::Value,
}

impl FromRequest<Arc<Shared>> for OfrepRequest {
    type Rejection = std::convert::Infallible;

    async fn from_request(request: Request, shared: &Arc<Shared>) -> Result<Self, Self::Rejection> {
        // Authentication comes first: an unauthenticated caller learns
        // nothing about what is wrong with its body.
        if let Some(token) = &shared.token {
            match token.check(request.headers()) {
                Ok(()) => {}
                Err(Refusal::Missing) => {
                    return Ok(refused(Rejected::Unauthorized(
                        "this OFREP endpoint needs `Authorization: Bearer <token>`",
                    )));
                }
                Err(Refusal::Wrong) => {
                    return Ok(refused(Rejected::Forbidden(
                        "the bearer token is not the one this OFREP endpoint accepts",
                    )));
                }
            }
        }
        if let Some(encoding) = unsupported_encoding(request.headers()) {
            return Ok(refused(Rejected::Encoding(format!(
                "the body's Content-Encoding `{encoding}` is not supported; send the JSON body uncompressed, without Content-Encoding"
            ))));
        }
        let json_declared = declares_json(request.headers());
        let body = match Bytes::from_request(request, shared).await {
            Ok(body) => body,
            Err(rejection) => {
                return Ok(refused(Rejected::Parse(format!(
                    "the request body could not be read: {}",
                    rejection.body_text()
                ))));
            }
        };
        Ok(OfrepRequest {
            outcome: parse(&body, json_declared),
        })
    }
}

fn refused(rejected: Rejected) -> OfrepRequest {
    OfrepRequest {
        outcome: Err(rejected),
    }
}

/// Reads a request body. The OpenAPI document does not mark the request
/// body required, so an empty body is an empty context; a non-empty one
/// must be declared `application/json` and be `{ "context": {...} }`.
fn parse(body: &[u8], json_declared: Option<bool>) -> Result<Context, Rejected> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Context::new());
    }
    match json_declared {
        Some(true) => {}
        Some(false) => {
            return Err(Rejected::Parse(
                "the request body must be JSON; send `Content-Type: application/json`".into(),
            ));
        }
        None => {
            return Err(Rejected::Parse(
                "the request has a body but no Content-Type; send `Content-Type: application/json`"
                    .into(),
            ));
        }
    }
    let envelope: Envelope = serde_json::from_slice(body).map_err(|error| {
        Rejected::Parse(format!(
            "the request body is not an OFREP request (`{{\"context\": {{...}}}}`): {error}"
        ))
    })?;
    Context::from_json(&envelope.context).map_err(Rejected::Evaluation)
}

/// The first `Content-Encoding` other than `identity`, if any: a body in
/// one would be read as if it were plain.
fn unsupported_encoding(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(http::header::CONTENT_ENCODING)
        .iter()
        .flat_map(|value| {
            String::from_utf8_lossy(value.as_bytes())
                .split(',')
                .map(|coding| coding.trim().to_owned())
                .collect::<Vec<_>>()
        })
        .find(|coding| !coding.is_empty() && !coding.eq_ignore_ascii_case("identity"))
}

/// `Some(true)` for `application/json` or a `+json` type (parameters such
/// as `charset` allowed), `Some(false)` for another type, `None` without.
fn declares_json(headers: &HeaderMap) -> Option<bool> {
    let value: &HeaderValue = headers.get(CONTENT_TYPE)?;
    let Ok(value) = value.to_str() else {
        return Some(false);
    };
    let essence = value.split(';').next().unwrap_or("").trim();
    Some(
        essence.eq_ignore_ascii_case("application/json")
            || essence
                .get(essence.len().saturating_sub(5)..)
                .is_some_and(|suffix| suffix.eq_ignore_ascii_case("+json")),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(content_type: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(CONTENT_TYPE, content_type.parse().expect("header value"));
        headers
    }

    #[test]
    fn json_content_types() {
        assert_eq!(declares_json(&headers("application/json")), Some(true));
        assert_eq!(
            declares_json(&headers("Application/JSON; charset=utf-8")),
            Some(true)
        );
        assert_eq!(
            declares_json(&headers("application/merge-patch+json")),
            Some(true)
        );
        assert_eq!(declares_json(&headers("text/plain")), Some(false));
        assert_eq!(declares_json(&headers("json")), Some(false));
        assert_eq!(declares_json(&HeaderMap::new()), None);
    }

    #[test]
    fn an_empty_body_is_an_empty_context_whatever_its_type() {
        assert_eq!(parse(b"", None).ok(), Some(Context::new()));
        assert_eq!(parse(b" \n", Some(false)).ok(), Some(Context::new()));
    }
}
