//! Router tuning knobs.

use std::time::Duration;

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
