//! Outbound HTTP for notifications, gate webhooks and Prometheus queries:
//! a small HTTP/1.1 client over tokio, `http://` and `https://` (rustls
//! with the Mozilla roots; `LASTMILE_CA_FILE` adds PEM roots for a private
//! CA).

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use lastmile_spec::{Notify, NotifyFormat};

/// Answers larger than this are cut (webhook replies are small).
const MAX_ANSWER: u64 = 1 << 20;

/// Extra trusted roots (PEM), for webhooks behind a private CA.
const CA_FILE_ENV: &str = "LASTMILE_CA_FILE";

/// What an outbound request got back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Answer {
    /// HTTP status.
    pub status: u16,
    /// Body, lossily decoded.
    pub body: String,
}

/// `http(s)://host[:port]/path?query` split up.
struct Target {
    tls: bool,
    host: String,
    authority: String,
    host_port: String,
    path: String,
}

fn parse(url: &str) -> Result<Target, String> {
    let (tls, rest) = if let Some(rest) = url.strip_prefix("https://") {
        (true, rest)
    } else if let Some(rest) = url.strip_prefix("http://") {
        (false, rest)
    } else {
        return Err(format!("{url}: not an http:// or https:// URL"));
    };
    let (authority, path) = match rest.find('/') {
        Some(at) => (&rest[..at], &rest[at..]),
        None => (rest, "/"),
    };
    if authority.is_empty() {
        return Err(format!("{url}: no host"));
    }
    let (host, host_port) = match authority.rsplit_once(':') {
        Some((host, port)) if port.parse::<u16>().is_ok() => (host, authority.to_string()),
        _ => (
            authority,
            format!("{authority}:{}", if tls { 443 } else { 80 }),
        ),
    };
    Ok(Target {
        tls,
        host: host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string(),
        authority: authority.to_string(),
        host_port,
        path: path.to_string(),
    })
}

/// The TLS client settings: Mozilla's roots plus `LASTMILE_CA_FILE`.
/// Also what the CLI uses to reach a server over https.
pub fn tls_config() -> Result<Arc<rustls::ClientConfig>, String> {
    static CONFIG: OnceLock<Result<Arc<rustls::ClientConfig>, String>> = OnceLock::new();
    CONFIG
        .get_or_init(|| {
            let extra = match std::env::var_os(CA_FILE_ENV) {
                Some(path) => std::fs::read(&path).map_err(|error| {
                    format!(
                        "cannot read {CA_FILE_ENV}={}: {error}",
                        path.to_string_lossy()
                    )
                })?,
                None => Vec::new(),
            };
            client_config(&extra)
        })
        .clone()
}

/// Client settings trusting Mozilla's roots and the PEM certificates in
/// `extra_pem`.
fn client_config(extra_pem: &[u8]) -> Result<Arc<rustls::ClientConfig>, String> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    for certificate in CertificateDer::pem_slice_iter(extra_pem) {
        let certificate =
            certificate.map_err(|error| format!("a certificate in {CA_FILE_ENV}: {error}"))?;
        roots
            .add(certificate)
            .map_err(|error| format!("a certificate in {CA_FILE_ENV}: {error}"))?;
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|error| format!("TLS settings: {error}"))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

async fn exchange(
    method: &str,
    url: &str,
    body: Option<&Value>,
    tls: Option<Arc<rustls::ClientConfig>>,
) -> Result<Answer, String> {
    let target = parse(url)?;
    let stream = tokio::net::TcpStream::connect(&target.host_port)
        .await
        .map_err(|error| format!("{url}: cannot connect: {error}"))?;
    let _ = stream.set_nodelay(true);
    if !target.tls {
        return talk(stream, method, url, &target, body).await;
    }
    let config = match tls {
        Some(config) => config,
        None => tls_config()?,
    };
    let name = rustls::pki_types::ServerName::try_from(target.host.clone())
        .map_err(|error| format!("{url}: {error}"))?;
    let stream = tokio_rustls::TlsConnector::from(config)
        .connect(name, stream)
        .await
        .map_err(|error| format!("{url}: TLS: {error}"))?;
    talk(stream, method, url, &target, body).await
}

async fn talk(
    mut stream: impl AsyncRead + AsyncWrite + Unpin,
    method: &str,
    url: &str,
    target: &Target,
    body: Option<&Value>,
) -> Result<Answer, String> {
    let payload = body.map(Value::to_string).unwrap_or_default();
    let mut request = format!(
        "{method} {} HTTP/1.1\r\nhost: {}\r\nuser-agent: lastmile\r\nconnection: close\r\naccept: application/json\r\n",
        target.path, target.authority
    );
    if body.is_some() {
        request.push_str(&format!(
            "content-type: application/json\r\ncontent-length: {}\r\n",
            payload.len()
        ));
    }
    request.push_str("\r\n");
    request.push_str(&payload);
    stream
        .write_all(request.as_bytes())
        .await
        .map_err(|error| format!("{url}: cannot send: {error}"))?;
    let mut raw = Vec::new();
    // A TLS peer that closes without close_notify still sent its answer.
    if let Err(error) = (&mut stream).take(MAX_ANSWER).read_to_end(&mut raw).await
        && raw.is_empty()
    {
        return Err(format!("{url}: cannot read the answer: {error}"));
    }
    let text = String::from_utf8_lossy(&raw);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| format!("{url}: not an HTTP answer"))?;
    let chunked = head.lines().any(|line| {
        let line = line.to_ascii_lowercase();
        line.starts_with("transfer-encoding:") && line.contains("chunked")
    });
    Ok(Answer {
        status,
        body: if chunked {
            dechunk(body)
        } else {
            body.to_string()
        },
    })
}

/// Joins a chunked body (enough for small JSON answers).
fn dechunk(body: &str) -> String {
    let mut out = String::new();
    let mut rest = body;
    while let Some((size, after)) = rest.split_once("\r\n") {
        let Ok(size) = usize::from_str_radix(size.split(';').next().unwrap_or("").trim(), 16)
        else {
            break;
        };
        if size == 0 || after.len() < size {
            break;
        }
        out.push_str(&after[..size]);
        rest = after[size..].trim_start_matches("\r\n");
    }
    out
}

/// POSTs JSON; a non-2xx answer is an error.
pub(crate) async fn post_json(
    url: &str,
    body: &Value,
    timeout: Duration,
) -> Result<Answer, String> {
    let answer = tokio::time::timeout(timeout, exchange("POST", url, Some(body), None))
        .await
        .map_err(|_| format!("{url}: no answer within {} ms", timeout.as_millis()))??;
    if !(200..300).contains(&answer.status) {
        return Err(format!("{url} answered {}", answer.status));
    }
    Ok(answer)
}

/// GETs a URL.
pub(crate) async fn get(url: &str, timeout: Duration) -> Result<Answer, String> {
    tokio::time::timeout(timeout, exchange("GET", url, None, None))
        .await
        .map_err(|_| format!("{url}: no answer within {} ms", timeout.as_millis()))?
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
    use super::*;

    #[test]
    fn urls_are_split_by_scheme_host_and_path() {
        let target = parse("http://127.0.0.1:9000/hooks/a?x=1").expect("parses");
        assert_eq!(target.host_port, "127.0.0.1:9000");
        assert_eq!(target.path, "/hooks/a?x=1");
        let target = parse("http://example.test").expect("parses");
        assert_eq!(target.host_port, "example.test:80");
        assert_eq!(target.path, "/");
        let target = parse("https://hooks.example.test/services/x").expect("parses");
        assert!(target.tls);
        assert_eq!(target.host_port, "hooks.example.test:443");
        assert_eq!(target.host, "hooks.example.test");
        let error = parse("ftp://example.test/").err().expect("refused");
        assert!(error.contains("not an http:// or https:// URL"), "{error}");
    }

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
        let trusting = client_config(certificate.pem().as_bytes()).expect("config");
        let answer = exchange(
            "POST",
            &url,
            Some(&json!({ "event": "promoted" })),
            Some(trusting),
        )
        .await
        .expect("posted over TLS");
        assert_eq!(answer.status, 204);
        let untrusting = client_config(b"").expect("config");
        let error = exchange("POST", &url, Some(&json!({})), Some(untrusting))
            .await
            .expect_err("an unknown CA is refused");
        assert!(error.contains("TLS"), "{error}");
        let bodies = server.await.expect("server");
        assert_eq!(bodies, [r#"{"event":"promoted"}"#]);
    }

    #[test]
    fn chunked_bodies_are_joined() {
        assert_eq!(
            dechunk("5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"),
            "hello world"
        );
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
