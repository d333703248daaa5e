//! Talking to a running `lastmile up` through its control API, or to a
//! `lastmile server` through its REST API (`--server URL`).
//!
//! `lastmile up` writes `up.json` into the state directory with its control
//! address; the API listens on loopback only and needs no token there. A
//! server needs a token: `LASTMILE_TOKEN`. The CLI is synchronous: each
//! call runs lastmile's HTTP client ([`lastmile_http::Client`]) on a small
//! runtime of its own, one request per connection, JSON in and out.

use std::net::{SocketAddr, ToSocketAddrs};
use std::path::Path;
use std::sync::OnceLock;
use std::time::Duration;

use anyhow::{Context, bail};
use lastmile_http::http::header::{AUTHORIZATION, CONTENT_TYPE};
use serde::Deserialize;

/// The longest wait for a connection to `lastmile up` or a server.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// The largest answer read (event lists and status reports stay far below).
const BODY_LIMIT: usize = 64 << 20;

/// What `lastmile up` records about itself in `<state>/up.json`.
#[derive(Debug, Deserialize)]
pub(crate) struct UpFile {
    pub(crate) pid: u32,
    pub(crate) control: SocketAddr,
}

/// The `--server` / `LASTMILE_SERVER` target, when one is given.
#[derive(Debug, Clone)]
pub(crate) struct Remote {
    /// As given: `http://host:port`.
    pub(crate) url: String,
    /// `--app` / `LASTMILE_APP`.
    pub(crate) app: Option<String>,
}

static REMOTE: OnceLock<Option<Remote>> = OnceLock::new();

/// Records `--server` and `--app` for the commands that talk to a server.
pub(crate) fn set_remote(server: Option<String>, app: Option<String>) {
    let _ = REMOTE.set(
        server
            .filter(|url| !url.trim().is_empty())
            .map(|url| Remote { url, app }),
    );
}

/// The server to talk to, when `--server` or `LASTMILE_SERVER` is set.
pub(crate) fn remote() -> Option<&'static Remote> {
    REMOTE.get().and_then(Option::as_ref)
}

/// A connection target: the control address of the running `up`, or a
/// server's API.
#[derive(Debug)]
pub(crate) struct Control {
    addr: SocketAddr,
    pid: u32,
    /// `http://HOST:PORT` or `https://HOST[:PORT]`: where requests go.
    base: String,
    /// `Bearer` token, for a server.
    token: Option<String>,
    /// `/api/v1/apps/NAME`: the un-scoped `/api/v1/…` paths of `up` are
    /// moved under it on a server.
    app_prefix: Option<String>,
    /// The server's URL, when this is one.
    server: Option<String>,
}

impl Control {
    /// A server's API for the app of `spec_dir` (or `--app`).
    pub(crate) fn remote_app(remote: &Remote, spec_dir: &Path) -> anyhow::Result<Control> {
        let app = match &remote.app {
            Some(app) => app.clone(),
            None => match lastmile_spec::load(spec_dir) {
                Ok(loaded) => loaded.spec.app,
                Err(_) => bail!(
                    "which app on {}? pass --app NAME (or LASTMILE_APP), or run in the directory of its lastmile.yaml",
                    remote.url
                ),
            },
        };
        let mut control = Control::server(&remote.url)?;
        control.app_prefix = Some(format!("/api/v1/apps/{app}"));
        Ok(control)
    }

    /// A server's API, for calls that are not about one app.
    pub(crate) fn server(url: &str) -> anyhow::Result<Control> {
        let (rest, secure) = if let Some(rest) = url.strip_prefix("http://") {
            (rest, false)
        } else if let Some(rest) = url.strip_prefix("https://") {
            (rest, true)
        } else {
            bail!("--server {url}: write it as https://HOST[:PORT] or http://HOST:PORT")
        };
        let host = rest.trim_end_matches('/').to_owned();
        let with_port = if host
            .rsplit_once(':')
            .is_some_and(|(_, port)| port.parse::<u16>().is_ok())
        {
            host.clone()
        } else {
            format!("{host}:{}", if secure { 443 } else { 80 })
        };
        let addr = with_port
            .to_socket_addrs()
            .with_context(|| format!("--server {url}: cannot resolve {host}"))?
            .next()
            .with_context(|| format!("--server {url}: {host} has no address"))?;
        if secure {
            // An unreadable LASTMILE_CA_FILE is said before any request.
            lastmile_http::default_tls_config()?;
        }
        let token = std::env::var("LASTMILE_TOKEN")
            .ok()
            .filter(|token| !token.trim().is_empty());
        Ok(Control {
            addr,
            pid: 0,
            base: format!("{}://{host}", if secure { "https" } else { "http" }),
            token,
            app_prefix: None,
            server: Some(url.to_owned()),
        })
    }

    /// `PUT path` with a JSON body.
    pub(crate) fn put(
        &self,
        path: &str,
        body: &serde_json::Value,
    ) -> anyhow::Result<serde_json::Value> {
        self.request("PUT", path, Some(body), Duration::from_secs(10))
    }

    /// The pid of the `lastmile up` this talks to; `None` for a server.
    pub(crate) fn up_pid(&self) -> Option<u32> {
        (self.server.is_none() && self.pid != 0).then_some(self.pid)
    }

    fn describe(&self) -> String {
        match &self.server {
            Some(url) => format!("the server at {url}"),
            None => "`lastmile up`".to_owned(),
        }
    }

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
            base: format!("http://{}", up.control),
            token: None,
            app_prefix: None,
            server: None,
        })
    }

    /// `GET path`, parsed as JSON.
    pub(crate) fn get(&self, path: &str) -> anyhow::Result<serde_json::Value> {
        self.request("GET", path, None, Duration::from_secs(10))
    }

    /// The app's status (`GET /api/v1/status`), with the router's counters
    /// over the last `window_s` seconds (60 when `None`).
    pub(crate) fn status(
        &self,
        window_s: Option<u32>,
    ) -> anyhow::Result<lastmile_server::report::StatusReport> {
        let path = match window_s {
            Some(seconds) => format!("/api/v1/status?window_s={seconds}"),
            None => "/api/v1/status".to_owned(),
        };
        let answer = self.get(&path)?;
        serde_json::from_value(answer).map_err(|error| {
            anyhow::anyhow!(
                "the status answer does not read as this lastmile's status ({error}); is the controller the same version as this CLI?"
            )
        })
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
        let scoped;
        let path = match (&self.app_prefix, path.strip_prefix("/api/v1")) {
            (Some(prefix), Some(rest)) => {
                scoped = format!("{prefix}{rest}");
                scoped.as_str()
            }
            _ => path,
        };
        let mut request = lastmile_http::http::Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.base))
            .header(CONTENT_TYPE, "application/json");
        if let Some(token) = &self.token {
            request = request.header(AUTHORIZATION, format!("Bearer {token}"));
        }
        let body = body
            .map(serde_json::to_vec)
            .transpose()?
            .unwrap_or_default();
        let request = request
            .body(body.into())
            .with_context(|| format!("cannot make a request for {path:?}"))?;
        let client = lastmile_http::Client::new()
            .connect_timeout(CONNECT_TIMEOUT)
            .timeout(timeout)
            .body_limit(BODY_LIMIT);
        let answer = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .context("cannot start the HTTP client")?
            .block_on(client.send(request))
            .map_err(|error| self.failure(error))?;
        let status = answer.status.as_u16();
        let body = answer.text();
        let value: serde_json::Value = if body.trim().is_empty() {
            serde_json::Value::Null
        } else {
            serde_json::from_str(&body)
                .with_context(|| format!("{} answered non-JSON: {body}", self.describe()))?
        };
        if !(200..300).contains(&status) {
            let message = value
                .get("error")
                .and_then(|error| error.as_str())
                .unwrap_or(&body)
                .to_string();
            if status == 401 && self.server.is_some() && self.token.is_none() {
                bail!("{message} (LASTMILE_TOKEN is not set)");
            }
            bail!("{message}");
        }
        Ok(value)
    }

    /// A request that got no answer, said as what the user can do about it.
    fn failure(&self, error: lastmile_http::Error) -> anyhow::Error {
        use lastmile_http::Error;
        let context = match &error {
            Error::Dns { .. } | Error::Connect { .. } | Error::ConnectTimeout { .. } => {
                match &self.server {
                    Some(url) => format!("the server at {url} does not answer on {}", self.addr),
                    None => format!(
                        "`lastmile up` (pid {}) does not answer on {}: it may have stopped; start it again with `lastmile up`",
                        self.pid, self.addr
                    ),
                }
            }
            Error::Closed { .. } | Error::Reset { .. } => {
                return anyhow::anyhow!(
                    "{} closed the connection without answering (did it stop or crash? \
                     its output says why; `lastmile status` shows whether it still runs)",
                    self.describe()
                );
            }
            Error::Tls { .. } => format!(
                "cannot talk TLS with {} (for a private CA, name its PEM certificates in {})",
                self.describe(),
                lastmile_http::CA_FILE_ENV
            ),
            Error::TlsConfig { .. } | Error::InvalidUrl { .. } => return error.into(),
            _ => format!(
                "no complete answer from {} on {}",
                self.describe(),
                self.addr
            ),
        };
        anyhow::Error::new(error).context(context)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::io::Read;

    use super::*;

    /// A `lastmile up` that dies with the request in hand (it accepts, then
    /// closes): the error says so, not that the answer was malformed.
    #[test]
    fn a_connection_closed_without_an_answer_is_said_as_such() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let closer = std::thread::spawn(move || {
            let (mut stream, _) = listener.accept().unwrap();
            // Read a part of the request, then hang up without a byte of
            // answer: the unread rest makes the close a reset, which must
            // read the same as a plain close.
            let mut head = [0u8; 8];
            let _ = stream.read_exact(&mut head);
        });
        let control = Control {
            addr,
            pid: 4242,
            base: format!("http://{addr}"),
            token: None,
            app_prefix: None,
            server: None,
        };
        let error = control
            .post(
                "/api/v1/shutdown",
                &serde_json::json!({}),
                Duration::from_secs(5),
            )
            .unwrap_err();
        closer.join().unwrap();
        let message = format!("{error:#}");
        assert!(
            message.contains("`lastmile up` closed the connection without answering"),
            "{message}"
        );
    }
}
