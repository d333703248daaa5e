//! Talking to a running `lastmile up` through its control API.
//!
//! `lastmile up` writes `up.json` into the state directory with its control
//! address; the API listens on loopback only and needs no token there. The
//! client is a small blocking HTTP/1.1 client: one request per connection,
//! JSON in and out.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::time::Duration;

use anyhow::{Context, bail};
use serde::Deserialize;

/// What `lastmile up` records about itself in `<state>/up.json`.
#[derive(Debug, Deserialize)]
pub(crate) struct UpFile {
    pub(crate) pid: u32,
    pub(crate) control: SocketAddr,
}

/// A connection target: the control address of the running `up`.
#[derive(Debug)]
pub(crate) struct Control {
    addr: SocketAddr,
    pid: u32,
}

impl Control {
    /// Finds the running `lastmile up` for a state directory.
    pub(crate) fn find(state_dir: &Path) -> anyhow::Result<Control> {
        let path = state_dir.join("up.json");
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => bail!(
                "no `lastmile up` is running for {}: start one with `lastmile up` in that directory",
                state_dir.parent().unwrap_or(state_dir).display()
            ),
            Err(error) => {
                return Err(error).with_context(|| format!("cannot read {}", path.display()));
            }
        };
        let up: UpFile = serde_json::from_str(&text).with_context(|| {
            format!(
                "{} is damaged; stop lastmile up and start it again",
                path.display()
            )
        })?;
        Ok(Control {
            addr: up.control,
            pid: up.pid,
        })
    }

    /// `GET path`, parsed as JSON.
    pub(crate) fn get(&self, path: &str) -> anyhow::Result<serde_json::Value> {
        self.request("GET", path, None, Duration::from_secs(10))
    }

    /// `POST path` with a JSON body; long operations (deploys) may take
    /// minutes, so the timeout is the caller's.
    pub(crate) fn post(
        &self,
        path: &str,
        body: &serde_json::Value,
        timeout: Duration,
    ) -> anyhow::Result<serde_json::Value> {
        self.request("POST", path, Some(body), timeout)
    }

    /// `DELETE path`.
    pub(crate) fn delete(&self, path: &str) -> anyhow::Result<serde_json::Value> {
        self.request("DELETE", path, None, Duration::from_secs(10))
    }

    fn request(
        &self,
        method: &str,
        path: &str,
        body: Option<&serde_json::Value>,
        timeout: Duration,
    ) -> anyhow::Result<serde_json::Value> {
        let mut stream = TcpStream::connect_timeout(&self.addr, Duration::from_secs(3)).with_context(|| {
            format!(
                "`lastmile up` (pid {}) does not answer on {}: it may have stopped; start it again with `lastmile up`",
                self.pid, self.addr
            )
        })?;
        stream.set_read_timeout(Some(timeout))?;
        let body = body
            .map(serde_json::to_vec)
            .transpose()?
            .unwrap_or_default();
        let head = format!(
            "{method} {path} HTTP/1.1\r\nhost: {}\r\nconnection: close\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
            self.addr,
            body.len()
        );
        stream.write_all(head.as_bytes())?;
        stream.write_all(&body)?;
        let mut response = Vec::new();
        stream
            .read_to_end(&mut response)
            .with_context(|| format!("no complete answer from `lastmile up` on {}", self.addr))?;
        let text = String::from_utf8_lossy(&response);
        let (head, body) = text
            .split_once("\r\n\r\n")
            .context("malformed answer from `lastmile up`")?;
        let status: u16 = head
            .split_whitespace()
            .nth(1)
            .and_then(|code| code.parse().ok())
            .context("malformed status line from `lastmile up`")?;
        let value: serde_json::Value = if body.trim().is_empty() {
            serde_json::Value::Null
        } else {
            serde_json::from_str(body)
                .with_context(|| format!("`lastmile up` answered non-JSON: {body}"))?
        };
        if !(200..300).contains(&status) {
            let message = value
                .get("error")
                .and_then(|error| error.as_str())
                .unwrap_or(body)
                .to_string();
            bail!("{message}");
        }
        Ok(value)
    }
}
