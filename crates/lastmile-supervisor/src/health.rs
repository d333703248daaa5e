//! A minimal HTTP/1.0 `GET` that only looks at the status line.

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

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
pub(crate) async fn check(
    addr: SocketAddr,
    path: &str,
    limit: Duration,
) -> Result<(), ProbeFailure> {
    match tokio::time::timeout(limit, probe(addr, path)).await {
        Ok(result) => result,
        Err(_) => Err(ProbeFailure::NoAnswer(limit)),
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

async fn probe(addr: SocketAddr, path: &str) -> Result<(), ProbeFailure> {
    let path = request_path(path);
    let mut stream = TcpStream::connect(addr).await.map_err(failure)?;
    let request =
        format!("GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\nUser-Agent: {USER_AGENT}\r\n\r\n");
    stream
        .write_all(request.as_bytes())
        .await
        .map_err(failure)?;
    let mut head = Vec::with_capacity(256);
    let mut chunk = [0u8; 256];
    loop {
        if let Some(end) = head.iter().position(|b| *b == b'\n') {
            head.truncate(end);
            break;
        }
        if head.len() > 4096 {
            head.truncate(64);
            return Err(ProbeFailure::NotHttp(
                String::from_utf8_lossy(&head).into_owned(),
            ));
        }
        let read = stream.read(&mut chunk).await.map_err(failure)?;
        if read == 0 {
            if head.is_empty() {
                return Err(ProbeFailure::Closed);
            }
            break;
        }
        head.extend_from_slice(&chunk[..read]);
    }
    status_of(&String::from_utf8_lossy(&head))
}

/// Judges a status line: 2xx and 3xx are healthy.
fn status_of(line: &str) -> Result<(), ProbeFailure> {
    let line = line.trim_end();
    let mut words = line.split_whitespace();
    let protocol = words.next().unwrap_or_default();
    let code = words.next().and_then(|word| word.parse::<u16>().ok());
    match code {
        Some(code) if protocol.starts_with("HTTP/") => {
            if (200..400).contains(&code) {
                Ok(())
            } else {
                Err(ProbeFailure::Status(code))
            }
        }
        _ => Err(ProbeFailure::NotHttp(line.chars().take(64).collect())),
    }
}

fn failure(error: io::Error) -> ProbeFailure {
    match error.kind() {
        io::ErrorKind::ConnectionRefused => ProbeFailure::Refused,
        io::ErrorKind::ConnectionReset | io::ErrorKind::ConnectionAborted => ProbeFailure::Reset,
        io::ErrorKind::UnexpectedEof | io::ErrorKind::BrokenPipe => ProbeFailure::Closed,
        _ => ProbeFailure::Io(error.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_lines_are_judged_by_their_code() {
        let cases: &[(&str, Result<(), ProbeFailure>)] = &[
            ("HTTP/1.0 200 OK", Ok(())),
            ("HTTP/1.1 204 No Content\r", Ok(())),
            ("HTTP/1.1 302 Found", Ok(())),
            ("HTTP/1.1 404 Not Found", Err(ProbeFailure::Status(404))),
            ("HTTP/1.0 503", Err(ProbeFailure::Status(503))),
            (
                "SSH-2.0-OpenSSH_9.2",
                Err(ProbeFailure::NotHttp("SSH-2.0-OpenSSH_9.2".to_owned())),
            ),
            (
                "HTTP/1.1 abc",
                Err(ProbeFailure::NotHttp("HTTP/1.1 abc".to_owned())),
            ),
            ("", Err(ProbeFailure::NotHttp(String::new()))),
        ];
        for (line, expected) in cases {
            assert_eq!(&status_of(line), expected, "{line:?}");
        }
    }
}
