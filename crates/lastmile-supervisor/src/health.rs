//! A minimal HTTP/1.0 `GET` that only looks at the status line.

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::event::fmt_duration;

/// `Ok` if `GET path` on `addr` answers 2xx within `limit`, else why not.
pub(crate) async fn check(addr: SocketAddr, path: &str, limit: Duration) -> Result<(), String> {
    match tokio::time::timeout(limit, probe(addr, path)).await {
        Ok(result) => result,
        Err(_) => Err(format!("no answer within {}", fmt_duration(limit))),
    }
}

async fn probe(addr: SocketAddr, path: &str) -> Result<(), String> {
    let path = if path.starts_with('/') {
        path.to_owned()
    } else {
        format!("/{path}")
    };
    let mut stream = TcpStream::connect(addr).await.map_err(reason)?;
    let request = format!("GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n");
    stream.write_all(request.as_bytes()).await.map_err(reason)?;
    let mut head = Vec::with_capacity(256);
    let mut chunk = [0u8; 256];
    loop {
        if let Some(end) = head.iter().position(|b| *b == b'\n') {
            head.truncate(end);
            break;
        }
        if head.len() > 4096 {
            return Err("status line longer than 4 KiB".to_owned());
        }
        let read = stream.read(&mut chunk).await.map_err(reason)?;
        if read == 0 {
            if head.is_empty() {
                return Err("connection closed without a response".to_owned());
            }
            break;
        }
        head.extend_from_slice(&chunk[..read]);
    }
    let line = String::from_utf8_lossy(&head);
    let line = line.trim_end();
    let mut words = line.split_whitespace();
    let protocol = words.next().unwrap_or_default();
    let code = words.next().and_then(|word| word.parse::<u16>().ok());
    match code {
        Some(code) if protocol.starts_with("HTTP/") => {
            if (200..300).contains(&code) {
                Ok(())
            } else {
                Err(format!("GET {path} answered {code}"))
            }
        }
        _ => Err(format!("malformed status line {line:?}")),
    }
}

fn reason(error: io::Error) -> String {
    match error.kind() {
        io::ErrorKind::ConnectionRefused => "connection refused".to_owned(),
        io::ErrorKind::ConnectionReset => "connection reset".to_owned(),
        _ => error.to_string(),
    }
}
