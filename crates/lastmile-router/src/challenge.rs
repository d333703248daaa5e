//! ACME HTTP-01 answers: `GET /.well-known/acme-challenge/{token}` is answered by the listener
//! itself with the key authorization an ACME client stored for the token.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::Bytes;
use http::{HeaderValue, Request, Response, StatusCode, header};

use crate::body::ProxyBody;

/// Path prefix of HTTP-01 validation requests (RFC 8555 §8.3).
const PREFIX: &str = "/.well-known/acme-challenge/";

/// Key authorizations by ACME token, answered to HTTP-01 validation requests; cheap to clone
/// (clones share one store). The router only answers; obtaining certificates is the ACME
/// client's job, which puts a token before asking the CA to validate and removes it after.
#[derive(Clone, Default)]
pub struct ChallengeStore {
    tokens: Arc<Mutex<HashMap<String, Bytes>>>,
}

impl fmt::Debug for ChallengeStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChallengeStore")
            .field("tokens", &self.lock().len())
            .finish()
    }
}

/// What a validation request gets: 200 with the key authorization, or 404 for an unknown token.
#[derive(Debug)]
pub(crate) struct ChallengeAnswer {
    key_authorization: Option<Bytes>,
    /// A HEAD request: the same head, no body.
    head: bool,
}

impl ChallengeStore {
    /// An empty store.
    pub fn new() -> ChallengeStore {
        ChallengeStore::default()
    }

    /// Answers `GET /.well-known/acme-challenge/{token}` with `key_authorization` (replacing
    /// an earlier answer for the token).
    pub fn put(&self, token: impl Into<String>, key_authorization: impl Into<String>) {
        let value = Bytes::from(key_authorization.into());
        self.lock().insert(token.into(), value);
    }

    /// Stops answering `token`; false when it was not there.
    pub fn remove(&self, token: &str) -> bool {
        self.lock().remove(token).is_some()
    }

    /// The key authorization stored for `token`.
    pub fn get(&self, token: &str) -> Option<String> {
        self.lock()
            .get(token)
            .map(|v| String::from_utf8_lossy(v).into_owned())
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<String, Bytes>> {
        match self.tokens.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    /// The answer for a request with this method and path, or `None` when it is no validation
    /// request (it is then served as usual).
    fn answer(&self, method: &[u8], path: &[u8]) -> Option<ChallengeAnswer> {
        let head = method == b"HEAD";
        if method != b"GET" && !head {
            return None;
        }
        let token = path.strip_prefix(PREFIX.as_bytes())?;
        let token = match token.iter().position(|b| *b == b'?') {
            Some(end) => &token[..end],
            None => token,
        };
        let key_authorization = std::str::from_utf8(token)
            .ok()
            .and_then(|t| self.lock().get(t).cloned());
        Some(ChallengeAnswer {
            key_authorization,
            head,
        })
    }

    /// The answer for a complete HTTP/1.x request head (only its request line is looked at).
    pub(crate) fn answer_head(&self, head: &[u8]) -> Option<ChallengeAnswer> {
        let line_end = head.iter().position(|b| *b == b'\r' || *b == b'\n')?;
        let mut parts = head[..line_end].split(|b| *b == b' ');
        let method = parts.next()?;
        let target = parts.next()?;
        self.answer(method, target)
    }

    /// The answer for a request served by hyper (HTTP/2, or a redirecting listener).
    pub(crate) fn answer_request<B>(&self, req: &Request<B>) -> Option<Response<ProxyBody>> {
        let answer = self.answer(
            req.method().as_str().as_bytes(),
            req.uri().path().as_bytes(),
        )?;
        let (status, body) = answer.status_and_body();
        let mut resp = Response::new(if answer.head {
            ProxyBody::empty()
        } else {
            ProxyBody::Full(Some(body.clone()))
        });
        *resp.status_mut() = status;
        let h = resp.headers_mut();
        h.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
        h.insert(header::CONTENT_LENGTH, HeaderValue::from(body.len()));
        Some(resp)
    }
}

/// Body of the 404 for unknown tokens.
const UNKNOWN: Bytes = Bytes::from_static(b"unknown ACME challenge token\n");

impl ChallengeAnswer {
    fn status_and_body(&self) -> (StatusCode, Bytes) {
        match &self.key_authorization {
            Some(v) => (StatusCode::OK, v.clone()),
            None => (StatusCode::NOT_FOUND, UNKNOWN),
        }
    }

    /// The HTTP/1.1 response bytes (status line, headers, body).
    pub(crate) fn http1(&self, close: bool) -> Vec<u8> {
        let (status, body) = self.status_and_body();
        let reason = status.canonical_reason().unwrap_or("");
        let mut out = format!(
            "HTTP/1.1 {} {reason}\r\ncontent-type: text/plain\r\ncontent-length: {}\r\n{}\r\n",
            status.as_u16(),
            body.len(),
            if close { "connection: close\r\n" } else { "" },
        )
        .into_bytes();
        if !self.head {
            out.extend_from_slice(&body);
        }
        out
    }
}
