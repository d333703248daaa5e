//! lastmile's data plane: an HTTP reverse proxy on hyper that the controller steers by swapping
//! a [`RouteTable`].
//!
//! It accepts HTTP/1.1 and h2c (prior knowledge), routes by listener, Host and longest path
//! prefix, splits traffic between releases by weight, sends each request to the least-loaded
//! healthy instance over pooled keep-alive HTTP/1.1, ejects instances that refuse connections
//! (retrying idempotent requests once elsewhere), relays upgrades (WebSocket) and drains
//! gracefully. Canary controls steer within a route: pins send requests with a given key to a
//! given release, sticky cohorts keep each user on one backend as weights change
//! ([`cohort_bucket`]), and mirroring copies a share of requests (HTTP/1.1 clients only) to a
//! dark release without the user waiting. It keeps per-release request/5xx/latency figures for
//! rollout decisions, leaving each new instance's warm-up answers out of the latency ([`WarmupRule`]). It does not cache, rewrite paths or talk HTTP/2 (or TLS) to upstreams.
//!
//! A listener may terminate TLS ([`TlsSettings`]: TLS 1.2 and 1.3, ALPN `h2` then `http/1.1`,
//! optional HSTS) with certificates chosen by SNI from a [`CertStore`] that can be changed while
//! it serves; redirect plaintext HTTP to HTTPS ([`RedirectHttps`]); answer ACME HTTP-01
//! validation from a [`ChallengeStore`]; and cap open connections in total and per client IP
//! ([`Limits`]). The router takes certificates and challenge answers as plain values: getting
//! them (ACME) is another crate's job.
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! use lastmile_router::{
//!     Backend, CertStore, ListenerConfig, Route, RouteTable, Router, RouterConfig, TlsSettings,
//!     Upstream, WarmupRule,
//! };
//! let router = Router::new(RouterConfig::default());
//! let listener = std::net::TcpListener::bind("127.0.0.1:8080")?;
//! let listen = listener.local_addr()?;
//! let _handle = router.serve(listener)?;
//! router.set_table(RouteTable {
//!     routes: vec![Route {
//!         name: "web".into(),
//!         listen,
//!         host: None,
//!         path_prefix: "/".into(),
//!         backends: vec![Backend {
//!             release: "r1".into(),
//!             weight: 1,
//!             instances: vec![Upstream { id: "web-1".into(), addr: "127.0.0.1:9000".parse().unwrap() }],
//!         }],
//!         cohort: None,
//!         pins: Vec::new(),
//!         mirror: None,
//!         // The first 20 answers of each instance stay out of the latency the canary judges.
//!         warmup: WarmupRule { requests: 20, duration: std::time::Duration::ZERO },
//!     }],
//! });
//! // HTTPS on another port, with a certificate given as PEM (e.g. from an ACME client).
//! # let (chain_pem, key_pem) = (Vec::<u8>::new(), Vec::<u8>::new());
//! let certificates = CertStore::new();
//! certificates.set(["app.example.com"], &chain_pem, &key_pem).expect("a valid certificate");
//! let https = std::net::TcpListener::bind("127.0.0.1:8443")?;
//! let _tls = router.serve_with(https, ListenerConfig {
//!     tls: Some(TlsSettings::new(certificates)),
//!     ..ListenerConfig::default()
//! })?;
//! router.drain(std::time::Duration::from_secs(10)).await;
//! # Ok(()) }
//! ```

mod body;
mod challenge;
mod chunked;
mod client_stream;
mod cohort;
mod config;
mod connection_limits;
mod http1;
mod limits;
mod mirror;
mod policy;
mod prefixed;
mod proxy;
mod redirect;
mod router;
mod stats;
mod table;
mod tls;
mod upstream;
mod websocket;

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

pub use challenge::ChallengeStore;
pub use cohort::cohort_bucket;
pub use config::{Limits, ListenerConfig, RateLimit, RedirectHttps, RedirectPorts, RouterConfig};
pub use router::{ListenerHandle, Router};
pub use stats::{DURATION_BUCKET_BOUNDS_SECONDS, DurationTotals, LatencyHistogram, ReleaseStats};
pub use table::{
    Backend, CohortRule, KeySource, MirrorRule, PinRule, Route, RouteTable, Upstream,
    UpstreamHealth, WarmupRule,
};
pub use tls::{CertStore, Hsts, TlsError, TlsSettings};

/// `lastmile proxy`: serve `listener` (with `config`: limits, TLS) with one static backend until
/// `shutdown` resolves, then drain (grace 10s). The caller binds, so it knows
/// the address (port 0 included) before anything is served.
pub async fn run_static_proxy(
    listener: std::net::TcpListener,
    backend: SocketAddr,
    config: ListenerConfig,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let listen = listener.local_addr()?;
    let router = Router::new(RouterConfig::default());
    router.set_table(RouteTable {
        routes: vec![Route {
            name: "static".into(),
            listen,
            host: None,
            path_prefix: String::new(),
            backends: vec![Backend {
                release: "static".into(),
                weight: 1,
                instances: vec![Upstream {
                    id: "static-0".into(),
                    addr: backend,
                }],
            }],
            cohort: None,
            pins: Vec::new(),
            mirror: None,
            warmup: WarmupRule::default(),
        }],
    });
    let handle = router.serve_with(listener, config)?;
    shutdown.await;
    drop(handle);
    router.drain(Duration::from_secs(10)).await;
    Ok(())
}
