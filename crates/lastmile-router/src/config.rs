//! Router tuning knobs.

use std::collections::HashMap;
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use crate::challenge::ChallengeStore;
use crate::tls::TlsSettings;

/// Limits and timeouts of the data plane; `Default` gives production values.
#[derive(Debug, Clone)]
pub struct RouterConfig {
    /// Time a client has to send a complete request head (slowloris guard); default 10 s.
    pub header_read_timeout: Duration,
    /// Time allowed to open a TCP connection to an upstream; default 2 s.
    pub connect_timeout: Duration,
    /// Time allowed for an upstream's response headers to arrive, else 504; default 60 s.
    pub upstream_timeout: Duration,
    /// Largest request head accepted, else 431; default 64 KiB (at least 8 KiB is used).
    pub max_header_bytes: usize,
    /// How long an upstream that refused a connection stays ejected before it is probed; default 2 s.
    pub eject_for: Duration,
    /// When true, one line per request goes to stderr:
    /// `method path status ms release upstream request-id`; default false.
    pub access_log: bool,
    /// How much per-release history (1-second buckets) is kept for `Router::stats`; default 60 s.
    pub stats_window: Duration,
}

impl Default for RouterConfig {
    fn default() -> Self {
        RouterConfig {
            header_read_timeout: Duration::from_secs(10),
            connect_timeout: Duration::from_secs(2),
            upstream_timeout: Duration::from_secs(60),
            max_header_bytes: 64 * 1024,
            eject_for: Duration::from_secs(2),
            access_log: false,
            stats_window: Duration::from_secs(60),
        }
    }
}

/// Per-listener limits; `Default` gives production values. Each is documented with the status a
/// client gets when it trips the limit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Largest request body accepted, else 413 and the connection closes; default 10 MiB.
    /// A Content-Length above it is refused before anything is forwarded; a chunked (or h2)
    /// body is counted (decoded bytes) as it streams.
    pub max_body_bytes: u64,
    /// Most header fields in one request head, else 431; default 100 (at most 256 are read).
    pub max_headers: usize,
    /// Open client connections on the listener; further connections are closed at once after
    /// a 503 when the listener is full; default 10,000.
    pub max_connections: usize,
    /// Open client connections from one client IP; default 1,000.
    pub max_connections_per_ip: usize,
    /// Longest wait for the next byte of a request body, else 408 and close; default 30 s.
    pub body_read_timeout: Duration,
    /// Longest idle time of a keep-alive connection between requests; default 60 s.
    /// (HTTP/1.1 connections; h2 connections are not bounded by it yet.)
    pub idle_timeout: Duration,
    /// Longest time a client may take to accept the next part of a response (slow reader),
    /// after which the connection is closed; default 60 s. Each write is bounded on its own
    /// (HTTP/1.1 connections; h2 flow control is left to hyper).
    pub send_timeout: Duration,
    /// Optional per-client-IP request rate; requests above it get 429 with `Retry-After`,
    /// and the connection stays usable. IPv6 clients are counted per /64.
    pub rate_limit: Option<RateLimit>,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_body_bytes: 10 * 1024 * 1024,
            max_headers: 100,
            max_connections: 10_000,
            max_connections_per_ip: 1_000,
            body_read_timeout: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(60),
            send_timeout: Duration::from_secs(60),
            rate_limit: None,
        }
    }
}

/// A token bucket per client IP: `requests_per_second` sustained, bursts up to `burst`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    /// Sustained requests per second from one client IP.
    pub requests_per_second: u32,
    /// Requests one client IP may make at once above the sustained rate (bucket size; at
    /// least 1 is used).
    pub burst: u32,
}

/// How one listener serves: its limits, and optionally TLS, an HTTPS redirect and ACME answers.
#[derive(Debug, Clone, Default)]
pub struct ListenerConfig {
    /// Limits applied to every connection and request on the listener.
    pub limits: Limits,
    /// Terminate TLS (HTTPS) with these certificates; `None` serves plaintext HTTP. A TLS
    /// connection over a connection limit is closed before its handshake (no 503: no HTTP can
    /// be spoken yet).
    pub tls: Option<TlsSettings>,
    /// Answer every request with `308 Permanent Redirect` to HTTPS instead of proxying it
    /// (plaintext listeners only; ACME challenges set in `challenges` are still answered).
    pub redirect_https: Option<RedirectHttps>,
    /// Answer ACME HTTP-01 validation requests (`GET /.well-known/acme-challenge/{token}`) from
    /// this store instead of routing them; unknown tokens get 404.
    pub challenges: Option<ChallengeStore>,
}

/// Where a redirecting listener sends clients: `https://{host}{:port}{path and query}`, the
/// port left out when it is 443. One plaintext listener can redirect for several HTTPS
/// listeners on different ports: `ports` names the port of each host that has its own.
#[derive(Debug, Clone)]
pub struct RedirectHttps {
    /// Port of the HTTPS listener for hosts without an entry in `ports`; default 443.
    pub port: u16,
    /// The HTTPS port of particular hosts; can change while the listener serves.
    pub ports: RedirectPorts,
}

impl Default for RedirectHttps {
    fn default() -> Self {
        RedirectHttps {
            port: 443,
            ports: RedirectPorts::default(),
        }
    }
}

impl RedirectHttps {
    /// A redirect to `port` for every host.
    pub fn to_port(port: u16) -> RedirectHttps {
        RedirectHttps {
            port,
            ..RedirectHttps::default()
        }
    }

    /// The HTTPS port for `host` (a name or address without its port, any case).
    pub(crate) fn port_for(&self, host: &str) -> u16 {
        self.ports.get(host).unwrap_or(self.port)
    }
}

/// Host name → HTTPS port, shared by every clone (cheap to clone).
#[derive(Debug, Clone, Default)]
pub struct RedirectPorts(Arc<RwLock<HashMap<String, u16>>>);

impl RedirectPorts {
    /// Requests for `host` are redirected to `port`.
    pub fn set(&self, host: &str, port: u16) {
        let mut ports = self.0.write().unwrap_or_else(PoisonError::into_inner);
        ports.insert(host.to_ascii_lowercase(), port);
    }

    /// `host` goes back to the default port; true when it had its own.
    pub fn remove(&self, host: &str) -> bool {
        let mut ports = self.0.write().unwrap_or_else(PoisonError::into_inner);
        ports.remove(&host.to_ascii_lowercase()).is_some()
    }

    fn get(&self, host: &str) -> Option<u16> {
        let ports = self.0.read().unwrap_or_else(PoisonError::into_inner);
        if ports.is_empty() {
            return None;
        }
        ports.get(&host.to_ascii_lowercase()).copied()
    }
}
