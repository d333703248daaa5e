//! Outbound HTTP for notifications, gate webhooks and Prometheus queries,
//! through lastmile's one client ([`lastmile_http::Client`]): `http://`
//! and `https://` (Mozilla's roots; `LASTMILE_CA_FILE` adds PEM roots for a
//! private CA).

use std::time::Duration;

use lastmile_http::http::header::ACCEPT;
use lastmile_http::{Client, Response};
use serde_json::{Value, json};

use lastmile_spec::{Notify, NotifyFormat};

/// Answers larger than this are cut (webhook replies are small).
const MAX_ANSWER: usize = 1 << 20;

/// The client for one outbound call: the whole exchange within `timeout`.
fn client(timeout: Duration) -> Client {
    Client::new()
        .timeout(timeout)
        .connect_timeout(timeout.min(lastmile_http::DEFAULT_CONNECT_TIMEOUT))
        .body_limit(MAX_ANSWER)
}

/// `method url` with `body` as JSON; the answer's body is cut at
/// [`MAX_ANSWER`].
async fn exchange(
    client: &Client,
    method: &str,
    url: &str,
    body: Option<&Value>,
) -> Result<Response, String> {
    let mut request = lastmile_http::http::Request::builder()
        .method(method)
        .uri(url)
        .header(ACCEPT, "application/json");
    if body.is_some() {
        request = request.header("content-type", "application/json");
    }
    let request = request
        .body(body.map(Value::to_string).unwrap_or_default().into())
        .map_err(|error| format!("{url}: {error}"))?;
    client
        .send_prefix(request)
        .await
        .map_err(|error| error.to_string())
}

/// POSTs JSON; a non-2xx answer is an error.
pub(crate) async fn post_json(
    url: &str,
    body: &Value,
    timeout: Duration,
) -> Result<Response, String> {
    exchange(&client(timeout), "POST", url, Some(body))
        .await?
        .error_for_status()
        .map_err(|error| error.to_string())
}

/// GETs a URL.
pub(crate) async fn get(url: &str, timeout: Duration) -> Result<Response, String> {
    exchange(&client(timeout), "GET", url, None).await
}

/// One notification: what happened, where, to which release.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub(crate) struct Notification {
    /// `started`, `step`, `promoted`, `aborted`, `rolled-back`, `failed`, `succeeded`.
    pub event: &'static str,
    /// Environment.
    pub environment: String,
    /// The release moving in.
    pub release: String,
    /// Its version label.
    pub version: String,
    /// The release it replaces.
    pub from: Option<String>,
    /// Canary share of traffic, when it changed.
    pub percent: Option<f64>,
    /// Why (abort reasons, failures).
    pub reason: Option<String>,
    /// Deployment id.
    pub deployment: i64,
}

impl Notification {
    /// The body for one `notify` target.
    pub(crate) fn body(&self, format: NotifyFormat) -> Value {
        match format {
            NotifyFormat::Json => json!(self),
            NotifyFormat::Slack => {
                let mut text = format!(
                    "lastmile · {} · {} {}",
                    self.environment, self.version, self.event
                );
                if let Some(percent) = self.percent {
                    text.push_str(&format!(" ({percent}% of traffic)"));
                }
                if let Some(reason) = &self.reason {
                    text.push_str(&format!(": {reason}"));
                }
                json!({ "text": text })
            }
        }
    }
}

/// Sends `notification` to every target, each on its own task so a slow
/// receiver never holds a deployment back. Returns the tasks' outcomes
/// through `report` (for the event log).
pub(crate) fn send(
    targets: &[Notify],
    notification: Notification,
    report: impl Fn(&str, Result<(), String>) + Send + Sync + Clone + 'static,
) {
    for target in targets {
        let url = target.url.clone();
        let body = notification.body(target.format);
        let timeout = target.timeout;
        let report = report.clone();
        tokio::spawn(async move {
            let result = post_json(&url, &body, timeout).await.map(|_| ());
            report(&url, result);
        });
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    /// A real TLS server with a certificate from a test CA: the client
    /// posts to it over https when it trusts that CA, and refuses when it
    /// does not.
    #[tokio::test]
    async fn https_webhooks_are_posted_over_tls() {
        use tokio_rustls::rustls;
        let key = rcgen::KeyPair::generate().expect("key");
        let params = rcgen::CertificateParams::new(vec!["localhost".to_string()]).expect("params");
        let certificate = params.self_signed(&key).expect("certificate");
        let server_config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::aws_lc_rs::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_no_client_auth()
        .with_single_cert(
            vec![certificate.der().clone()],
            rustls::pki_types::PrivateKeyDer::try_from(key.serialize_der()).expect("key der"),
        )
        .expect("server config");
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(server_config));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let server = tokio::spawn(async move {
            let mut bodies = Vec::new();
            for _ in 0..2 {
                let (tcp, _) = listener.accept().await.expect("accept");
                let Ok(mut tls) = acceptor.accept(tcp).await else {
                    continue;
                };
                let mut request = Vec::new();
                let mut buffer = [0u8; 4096];
                loop {
                    let read = tls.read(&mut buffer).await.expect("read");
                    request.extend_from_slice(&buffer[..read]);
                    let text = String::from_utf8_lossy(&request);
                    if let Some((head, body)) = text.split_once("\r\n\r\n") {
                        let length: usize = head
                            .lines()
                            .find_map(|line| line.strip_prefix("content-length: "))
                            .and_then(|value| value.trim().parse().ok())
                            .unwrap_or(0);
                        if body.len() >= length {
                            bodies.push(body.to_string());
                            break;
                        }
                    }
                    if read == 0 {
                        break;
                    }
                }
                tls.write_all(b"HTTP/1.1 204 No Content\r\nconnection: close\r\n\r\n")
                    .await
                    .expect("answer");
                let _ = tls.shutdown().await;
            }
            bodies
        });
        let url = format!("https://localhost:{port}/hook");
        let trusting = lastmile_http::tls_config(certificate.pem().as_bytes()).expect("config");
        let answer = exchange(
            &client(Duration::from_secs(5)).tls(trusting),
            "POST",
            &url,
            Some(&json!({ "event": "promoted" })),
        )
        .await
        .expect("posted over TLS");
        assert_eq!(answer.status, 204);
        let untrusting = lastmile_http::tls_config(b"").expect("config");
        let error = exchange(
            &client(Duration::from_secs(5)).tls(untrusting),
            "POST",
            &url,
            Some(&json!({})),
        )
        .await
        .expect_err("an unknown CA is refused");
        assert!(error.contains("TLS"), "{error}");
        let bodies = server.await.expect("server");
        assert_eq!(bodies, [r#"{"event":"promoted"}"#]);
    }

    #[test]
    fn slack_bodies_are_one_line_of_text() {
        let notification = Notification {
            event: "aborted",
            environment: "production".into(),
            release: "abc".into(),
            version: "v3".into(),
            from: Some("def".into()),
            percent: Some(5.0),
            reason: Some("error rate 50%".into()),
            deployment: 7,
        };
        assert_eq!(
            notification.body(NotifyFormat::Slack)["text"],
            "lastmile · production · v3 aborted (5% of traffic): error rate 50%"
        );
        assert_eq!(notification.body(NotifyFormat::Json)["event"], "aborted");
    }
}
