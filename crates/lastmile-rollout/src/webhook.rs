//! Outbound HTTP for notifications, gate webhooks and Prometheus queries:
//! a small HTTP/1.1 client over tokio, `http://` only.
//!
//! TLS is not in this build: an `https://` URL is refused with a message
//! that says so (a local relay such as a sidecar proxy bridges it).

use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use lastmile_spec::{Notify, NotifyFormat};

/// Answers larger than this are cut (webhook replies are small).
const MAX_ANSWER: u64 = 1 << 20;

/// What an outbound request got back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Answer {
    /// HTTP status.
    pub status: u16,
    /// Body, lossily decoded.
    pub body: String,
}

/// `http://host[:port]/path?query` split up.
struct Target {
    authority: String,
    host_port: String,
    path: String,
}

fn parse(url: &str) -> Result<Target, String> {
    if url.starts_with("https://") {
        return Err(format!(
            "{url}: https is not supported by this build yet; point it at an http:// relay"
        ));
    }
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| format!("{url}: not an http:// URL"))?;
    let (authority, path) = match rest.find('/') {
        Some(at) => (&rest[..at], &rest[at..]),
        None => (rest, "/"),
    };
    if authority.is_empty() {
        return Err(format!("{url}: no host"));
    }
    let host_port = if authority
        .rsplit_once(':')
        .is_some_and(|(_, port)| port.parse::<u16>().is_ok())
    {
        authority.to_string()
    } else {
        format!("{authority}:80")
    };
    Ok(Target {
        authority: authority.to_string(),
        host_port,
        path: path.to_string(),
    })
}

async fn exchange(method: &str, url: &str, body: Option<&Value>) -> Result<Answer, String> {
    let target = parse(url)?;
    let mut stream = tokio::net::TcpStream::connect(&target.host_port)
        .await
        .map_err(|error| format!("{url}: cannot connect: {error}"))?;
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
    stream
        .take(MAX_ANSWER)
        .read_to_end(&mut raw)
        .await
        .map_err(|error| format!("{url}: cannot read the answer: {error}"))?;
    let text = String::from_utf8_lossy(&raw);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| format!("{url}: not an HTTP answer"))?;
    let chunked = head.lines().any(|line| {
        line.to_ascii_lowercase().starts_with("transfer-encoding:")
            && line.to_ascii_lowercase().contains("chunked")
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
    let answer = tokio::time::timeout(timeout, exchange("POST", url, Some(body)))
        .await
        .map_err(|_| format!("{url}: no answer within {} ms", timeout.as_millis()))??;
    if !(200..300).contains(&answer.status) {
        return Err(format!("{url} answered {}", answer.status));
    }
    Ok(answer)
}

/// GETs a URL.
pub(crate) async fn get(url: &str, timeout: Duration) -> Result<Answer, String> {
    tokio::time::timeout(timeout, exchange("GET", url, None))
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
    fn urls_are_split_and_https_is_refused_with_a_reason() {
        let target = parse("http://127.0.0.1:9000/hooks/a?x=1").expect("parses");
        assert_eq!(target.host_port, "127.0.0.1:9000");
        assert_eq!(target.path, "/hooks/a?x=1");
        let target = parse("http://example.test").expect("parses");
        assert_eq!(target.host_port, "example.test:80");
        assert_eq!(target.path, "/");
        let error = parse("https://hooks.slack.com/x").err().expect("refused");
        assert!(error.contains("https is not supported"), "{error}");
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
