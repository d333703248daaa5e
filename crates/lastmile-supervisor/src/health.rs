//! One health probe: `GET path` on an instance, judged by its status alone.

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use lastmile_http::Error;
use lastmile_http::http::Version;
use lastmile_http::http::header::{HOST, USER_AGENT as USER_AGENT_HEADER};

use crate::event::fmt_duration;

/// The `User-Agent` of every probe, so an app's access log shows who asked.
pub(crate) const USER_AGENT: &str = "lastmile-health-check";

/// Why one health probe failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProbeFailure {
    /// The app answered with a status that is neither 2xx nor 3xx.
    Status(u16),
    /// Nothing accepted the connection on the instance's port.
    Refused,
    /// The connection was reset before an answer came.
    Reset,
    /// The connection was closed before a status line came.
    Closed,
    /// No status line within the probe's time limit.
    NoAnswer(Duration),
    /// Something answered that is not an HTTP status line.
    NotHttp(String),
    /// Any other I/O error, as the OS words it.
    Io(String),
}

impl fmt::Display for ProbeFailure {
    /// What the probe got: `answered 503`, `connection refused`, …
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Status(code) => write!(f, "answered {code}"),
            Self::Refused => write!(f, "connection refused"),
            Self::Reset => write!(f, "connection reset before an answer"),
            Self::Closed => write!(f, "connection closed without an answer"),
            Self::NoAnswer(limit) => write!(f, "no answer within {}", fmt_duration(*limit)),
            Self::NotHttp(line) => write!(f, "answered {line:?} (not HTTP)"),
            Self::Io(error) => write!(f, "{error}"),
        }
    }
}

/// `Ok` if `GET path` on `addr` answers 2xx or 3xx within `limit`, else why not.
/// Only the answer's head is read.
pub(crate) async fn check(
    addr: SocketAddr,
    path: &str,
    limit: Duration,
) -> Result<(), ProbeFailure> {
    let request = lastmile_http::http::Request::get(format!("http://{addr}{}", request_path(path)))
        // HTTP/1.0, as probes always were: an app's access log shows them so.
        .version(Version::HTTP_10)
        .header(HOST, "127.0.0.1")
        .header(USER_AGENT_HEADER, USER_AGENT)
        .body(Default::default())
        .map_err(|error| ProbeFailure::Io(format!("cannot request {path:?}: {error}")))?;
    let client = lastmile_http::Client::new()
        .connect_timeout(limit)
        .timeout(limit);
    match client.status(request).await {
        Ok(status) if status.is_success() || status.is_redirection() => Ok(()),
        Ok(status) => Err(ProbeFailure::Status(status.as_u16())),
        Err(error) => Err(failure(error, limit)),
    }
}

/// `path` as requested: with a leading `/`.
pub(crate) fn request_path(path: &str) -> String {
    if path.starts_with('/') {
        path.to_owned()
    } else {
        format!("/{path}")
    }
}

fn failure(error: Error, limit: Duration) -> ProbeFailure {
    match error {
        Error::Connect { error, .. } if error.kind() == io::ErrorKind::ConnectionRefused => {
            ProbeFailure::Refused
        }
        Error::Connect { error, .. } => ProbeFailure::Io(error.to_string()),
        Error::ConnectTimeout { .. } | Error::Timeout { .. } => ProbeFailure::NoAnswer(limit),
        Error::Reset { .. } => ProbeFailure::Reset,
        Error::Closed { .. } | Error::Incomplete { .. } => ProbeFailure::Closed,
        Error::NotHttp { answer, .. } => ProbeFailure::NotHttp(answer),
        error => ProbeFailure::Io(error.to_string()),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    /// Each way a real server on 127.0.0.1 answers, and what the probe
    /// makes of it.
    #[tokio::test]
    async fn probes_are_judged_by_what_the_server_does() {
        let limit = Duration::from_millis(500);
        let cases: &[(&str, Option<&str>, Result<(), ProbeFailure>)] = &[
            ("200", Some("HTTP/1.0 200 OK\r\n\r\n"), Ok(())),
            ("204", Some("HTTP/1.1 204 No Content\r\n\r\n"), Ok(())),
            (
                "302",
                Some("HTTP/1.1 302 Found\r\nlocation: /\r\ncontent-length: 0\r\n\r\n"),
                Ok(()),
            ),
            (
                "404",
                Some("HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n"),
                Err(ProbeFailure::Status(404)),
            ),
            (
                "503",
                Some("HTTP/1.0 503\r\n\r\n"),
                Err(ProbeFailure::Status(503)),
            ),
            (
                "not HTTP",
                Some("SSH-2.0-OpenSSH_9.2\r\n"),
                Err(ProbeFailure::NotHttp("SSH-2.0-OpenSSH_9.2".to_owned())),
            ),
            ("closed", Some(""), Err(ProbeFailure::Closed)),
            ("silent", None, Err(ProbeFailure::NoAnswer(limit))),
        ];
        for (name, answer, expected) in cases {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            let answer = answer.map(str::to_owned);
            let server = tokio::spawn(async move {
                let (mut stream, _) = listener.accept().await.unwrap();
                let mut request = Vec::new();
                while !request.ends_with(b"\r\n\r\n") {
                    let mut byte = [0u8; 1];
                    if stream.read(&mut byte).await.unwrap() == 0 {
                        break;
                    }
                    request.push(byte[0]);
                }
                match answer {
                    Some(answer) => stream.write_all(answer.as_bytes()).await.unwrap(),
                    None => std::future::pending().await,
                }
                String::from_utf8(request).unwrap()
            });
            assert_eq!(&check(addr, "healthz", limit).await, expected, "{name}");
            if answer_was_given(expected) {
                let request = server.await.unwrap().to_lowercase();
                assert!(
                    request.starts_with("get /healthz http/1.0\r\n"),
                    "{request}"
                );
                assert!(
                    request.contains("user-agent: lastmile-health-check\r\n"),
                    "{request}"
                );
            } else {
                server.abort();
            }
        }
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let dead = listener.local_addr().unwrap();
        drop(listener);
        assert_eq!(
            check(dead, "/healthz", limit).await,
            Err(ProbeFailure::Refused)
        );
    }

    fn answer_was_given(expected: &Result<(), ProbeFailure>) -> bool {
        !matches!(expected, Err(ProbeFailure::NoAnswer(_)))
    }
}
