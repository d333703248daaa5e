//! One HTTPS request at a time to the ACME server: a fresh connection per request (an
//! issuance makes a dozen), HTTP/1.1, a timeout over the whole exchange and a cap on the body.

use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http::header::{ACCEPT, CONNECTION, CONTENT_TYPE, HOST, LOCATION, RETRY_AFTER, USER_AGENT};
use http::{HeaderMap, Method, Request, Uri};
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::rt::TokioIo;
use rustls::pki_types::{CertificateDer, ServerName};
use serde::de::DeserializeOwned;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use crate::error::{AcmeError, error_chain};
use crate::problem::Problem;

/// Largest response body read from an ACME server; a certificate chain is a few KiB.
const MAX_BODY_BYTES: usize = 1024 * 1024;
/// Longest URL accepted from (or given to) an ACME server.
const MAX_URL_BYTES: usize = 2048;
/// Longest `Replay-Nonce` accepted.
const MAX_NONCE_BYTES: usize = 256;
/// Longest wait a `Retry-After` may ask for; beyond that it is taken as this.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(24 * 3600);

pub(crate) struct Transport {
    tls: TlsConnector,
    timeout: Duration,
}

/// A response with its body fully read.
pub(crate) struct Response {
    pub(crate) url: String,
    pub(crate) status: u16,
    headers: HeaderMap,
    pub(crate) body: Bytes,
}

impl Transport {
    pub(crate) fn new(
        extra_roots: &[CertificateDer<'static>],
        timeout: Duration,
    ) -> Result<Self, AcmeError> {
        // lastmile's one TLS client configuration: Mozilla's roots, these extra
        // roots (pebble's, in tests), ALPN http/1.1.
        let config =
            lastmile_http::tls_config_with_roots(extra_roots).map_err(|error| match error {
                lastmile_http::Error::TlsConfig { reason } => AcmeError::Config(reason),
                error => AcmeError::Config(error.to_string()),
            })?;
        Ok(Self {
            tls: TlsConnector::from(config),
            timeout,
        })
    }

    pub(crate) async fn get(&self, url: &str) -> Result<Response, AcmeError> {
        self.send(Method::GET, url, None, None).await
    }

    pub(crate) async fn head(&self, url: &str) -> Result<Response, AcmeError> {
        self.send(Method::HEAD, url, None, None).await
    }

    /// POSTs a JWS (`application/jose+json`), asking for `accept` if given.
    pub(crate) async fn post_jose(
        &self,
        url: &str,
        body: Vec<u8>,
        accept: Option<&str>,
    ) -> Result<Response, AcmeError> {
        self.send(Method::POST, url, Some(body), accept).await
    }

    async fn send(
        &self,
        method: Method,
        url: &str,
        body: Option<Vec<u8>>,
        accept: Option<&str>,
    ) -> Result<Response, AcmeError> {
        match tokio::time::timeout(self.timeout, self.exchange(method, url, body, accept)).await {
            Ok(result) => result,
            Err(_) => Err(AcmeError::Transport {
                url: url.to_string(),
                reason: format!("no complete answer within {:?}", self.timeout),
            }),
        }
    }

    async fn exchange(
        &self,
        method: Method,
        url: &str,
        body: Option<Vec<u8>>,
        accept: Option<&str>,
    ) -> Result<Response, AcmeError> {
        let transport_error = |reason: String| AcmeError::Transport {
            url: url.to_string(),
            reason,
        };
        let uri = parse_https_url(url).map_err(|reason| AcmeError::Config(reason.to_string()))?;
        let authority = uri
            .authority()
            .ok_or_else(|| AcmeError::Config(format!("{url} has no host")))?;
        let host = authority
            .host()
            .trim_start_matches('[')
            .trim_end_matches(']');
        let port = authority.port_u16().unwrap_or(443);
        let server_name = ServerName::try_from(host.to_string())
            .map_err(|_| AcmeError::Config(format!("{url} has no valid host name")))?;

        let tcp = TcpStream::connect((host, port))
            .await
            .map_err(|error| transport_error(format!("connecting to {host}:{port}: {error}")))?;
        let tls = self
            .tls
            .connect(server_name, tcp)
            .await
            .map_err(|error| transport_error(format!("TLS with {host}:{port}: {error}")))?;
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
            .await
            .map_err(|error| transport_error(error_chain(&error)))?;
        // The connection task ends with the exchange: it is aborted when this function returns
        // or is dropped (timeout), so nothing outlives the request.
        let connection = AbortOnDrop(tokio::spawn(connection));

        let path = uri.path_and_query().map_or("/", |path| path.as_str());
        let mut request = Request::builder()
            .method(method)
            .uri(path)
            .header(HOST, authority.as_str())
            .header(
                USER_AGENT,
                concat!("lastmile-acme/", env!("CARGO_PKG_VERSION")),
            )
            .header(CONNECTION, "close");
        if body.is_some() {
            request = request.header(CONTENT_TYPE, "application/jose+json");
        }
        if let Some(accept) = accept {
            request = request.header(ACCEPT, accept);
        }
        let request = request
            .body(Full::new(Bytes::from(body.unwrap_or_default())))
            .map_err(|error| transport_error(format!("building the request: {error}")))?;
        let response = sender
            .send_request(request)
            .await
            .map_err(|error| transport_error(error_chain(&error)))?;
        let (parts, body) = response.into_parts();
        let body = Limited::new(body, MAX_BODY_BYTES)
            .collect()
            .await
            .map_err(|error| {
                if error.is::<http_body_util::LengthLimitError>() {
                    AcmeError::protocol(url, format!("body larger than {MAX_BODY_BYTES} bytes"))
                } else {
                    transport_error(format!("reading the body: {error}"))
                }
            })?
            .to_bytes();
        drop(connection);
        Ok(Response {
            url: url.to_string(),
            status: parts.status.as_u16(),
            headers: parts.headers,
            body,
        })
    }
}

struct AbortOnDrop<T>(tokio::task::JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl Response {
    pub(crate) fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// The `Replay-Nonce`, if present and made of base64url characters (RFC 8555 §6.5.1).
    pub(crate) fn nonce(&self) -> Option<String> {
        let value = self.headers.get("replay-nonce")?.to_str().ok()?;
        let valid = !value.is_empty()
            && value.len() <= MAX_NONCE_BYTES
            && value
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        valid.then(|| value.to_string())
    }

    /// The `Location` header as an https URL.
    pub(crate) fn location(&self) -> Result<String, AcmeError> {
        let value = self
            .headers
            .get(LOCATION)
            .and_then(|value| value.to_str().ok())
            .ok_or_else(|| AcmeError::protocol(&self.url, "no Location header"))?;
        checked_https_url(value)
            .map_err(|reason| AcmeError::protocol(&self.url, format!("Location header: {reason}")))
    }

    /// `Retry-After` as a duration from now: delay-seconds or an HTTP date.
    pub(crate) fn retry_after(&self) -> Option<Duration> {
        let value = self.headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
        let wait = if let Ok(seconds) = value.parse::<u64>() {
            Duration::from_secs(seconds)
        } else {
            let at = crate::timestamp::parse_http_date(value)?;
            at.duration_since(SystemTime::now())
                .unwrap_or(Duration::ZERO)
        };
        Some(wait.min(MAX_RETRY_AFTER))
    }

    /// The server's problem document (or one made from the status when it sent none).
    pub(crate) fn problem(&self) -> Problem {
        Problem::parse(&self.body).unwrap_or_else(|| Problem::without_document(self.status))
    }

    pub(crate) fn json<T: DeserializeOwned>(&self) -> Result<T, AcmeError> {
        serde_json::from_slice(&self.body)
            .map_err(|error| AcmeError::protocol(&self.url, format!("unexpected JSON: {error}")))
    }
}

/// `url` if it is an absolute https URL of sane length, else why not.
pub(crate) fn checked_https_url(url: &str) -> Result<String, String> {
    parse_https_url(url).map(|_| url.to_string())
}

fn parse_https_url(url: &str) -> Result<Uri, String> {
    if url.len() > MAX_URL_BYTES {
        return Err(format!("URL longer than {MAX_URL_BYTES} bytes"));
    }
    let uri: Uri = url
        .parse()
        .map_err(|error| format!("`{url}` is not a URL: {error}"))?;
    if uri.scheme_str() != Some("https") {
        return Err(format!("`{url}` is not an https:// URL"));
    }
    match uri.authority() {
        Some(authority) if !authority.host().is_empty() => Ok(uri),
        _ => Err(format!("`{url}` has no host")),
    }
}
