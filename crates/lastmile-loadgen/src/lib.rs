//! Continuous HTTP and WebSocket load against one address, counting every failure, so a
//! zero-downtime test can assert that a deploy, a rollback or a restart cost nothing.
//!
//! HTTP workers send `GET` requests at a paced total rate; half of them reuse a keep-alive
//! connection, half open a new connection per request. WebSocket workers keep `ws://target/ws`
//! open, send a text message every 100 ms and expect it echoed. The HTTP/1.1 and WebSocket
//! clients are written here, generic over the stream: small, and strict about what counts as
//! a failure.
//!
//! With [`LoadConfig::tls`] set, the same load runs as `https://` and `wss://` over rustls,
//! trusting only the roots given (a test CA's, or pebble's). Session resumption is off, so
//! every new connection makes a full handshake and verifies the certificate the server holds
//! *now*: a renewal or a certificate swap mid-run is really exercised. A failed handshake or a
//! rejected certificate is a failed request (or a dropped WebSocket) whose description says
//! why, also counted in [`Report::tls_failed`].
//!
//! This is not a benchmark tool (no HTTP/2, over TLS or not; no request bodies) and it does
//! not judge latency: it only reports it.
//!
//! ```no_run
//! # async fn example() {
//! use lastmile_loadgen::{LoadConfig, LoadGen};
//!
//! let load = LoadGen::start(LoadConfig {
//!     target: "127.0.0.1:8080".parse().unwrap(),
//!     ..LoadConfig::default()
//! });
//! // ... deploy something ...
//! let report = load.stop().await;
//! assert_eq!(report.failed, 0, "{report:#?}");
//! # }
//! ```
//!
//! Over TLS, through a router that terminates it for `app.test`:
//!
//! ```no_run
//! # async fn example(test_ca: rustls::pki_types::CertificateDer<'static>) {
//! use lastmile_loadgen::{LoadConfig, LoadGen, TlsTarget};
//!
//! let load = LoadGen::start(LoadConfig {
//!     target: "127.0.0.1:8443".parse().unwrap(),
//!     tls: Some(TlsTarget::new("app.test", vec![test_ca])),
//!     ..LoadConfig::default()
//! });
//! # }
//! ```

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;

mod connector;
mod frame;
mod http;
mod report;
mod tls;
mod websocket;

pub use report::Report;
pub use tls::TlsTarget;

use connector::{Connector, PlainConnector};
use report::Recorder;
use tls::{TlsConnector, UnusableTls};

/// What load to generate, and where.
#[derive(Debug, Clone)]
pub struct LoadConfig {
    /// Address to send requests to.
    pub target: SocketAddr,
    /// Requests per second, in total across the HTTP workers.
    pub rate: u32,
    /// Concurrent HTTP workers: half keep their connection alive, half close it each time.
    pub connections: u32,
    /// WebSockets to keep open on `/ws`, each echoing a message every 100 ms.
    pub websockets: u32,
    /// Path requested by the HTTP workers.
    pub path: String,
    /// A request not answered within this long counts as failed.
    pub request_timeout: Duration,
    /// Speak TLS (`https://`, `wss://`) instead of plain HTTP; `None` for plain.
    pub tls: Option<TlsTarget>,
    /// `Host` header sent as is; `None` sends the TLS server name and the target's port, or
    /// without TLS the target address. Routes match on it.
    pub host: Option<String>,
}

impl Default for LoadConfig {
    fn default() -> LoadConfig {
        LoadConfig {
            target: SocketAddr::from((Ipv4Addr::LOCALHOST, 8080)),
            rate: 200,
            connections: 16,
            websockets: 2,
            path: "/".to_string(),
            request_timeout: Duration::from_secs(5),
            tls: None,
            host: None,
        }
    }
}

impl LoadConfig {
    /// The `Host` header every request and WebSocket upgrade carries.
    pub(crate) fn host_header(&self) -> String {
        match (&self.host, &self.tls) {
            (Some(host), _) => host.clone(),
            (None, Some(tls)) if tls.server_name.parse::<Ipv6Addr>().is_ok() => {
                format!("[{}]:{}", tls.server_name, self.target.port())
            }
            (None, Some(tls)) => format!("{}:{}", tls.server_name, self.target.port()),
            (None, None) => self.target.to_string(),
        }
    }
}

/// A running load generator; [`LoadGen::stop`] ends it and returns the totals.
#[derive(Debug)]
pub struct LoadGen {
    recorder: Arc<Recorder>,
    stop: watch::Sender<bool>,
    workers: Vec<JoinHandle<()>>,
}

impl LoadGen {
    /// Starts the workers on the current tokio runtime and returns at once.
    ///
    /// [`TlsTarget`] settings that cannot work (no roots, a root that is not a certificate, a
    /// server name that is neither a DNS name nor an IP address) do not stop the start: every
    /// request and WebSocket then fails with `TLS configuration: ` and what to fix.
    ///
    /// # Panics
    ///
    /// Outside a tokio runtime context; enter one first (`runtime.enter()`).
    pub fn start(config: LoadConfig) -> LoadGen {
        let recorder = Arc::new(Recorder::new());
        let (stop, stopped) = watch::channel(false);
        let workers = match config.tls.as_ref().map(TlsConnector::new) {
            None => spawn_workers(config, PlainConnector, &recorder, &stopped),
            Some(Ok(tls)) => spawn_workers(config, tls, &recorder, &stopped),
            Some(Err(reason)) => spawn_workers(config, UnusableTls { reason }, &recorder, &stopped),
        };
        LoadGen {
            recorder,
            stop,
            workers,
        }
    }

    /// Stops the workers, closes WebSockets cleanly (client close 1000), and returns the totals.
    ///
    /// Requests already sent are allowed to finish (each bounded by `request_timeout`).
    pub async fn stop(self) -> Report {
        let _ = self.stop.send(true);
        for worker in self.workers {
            // A worker that panicked has already recorded what it could.
            let _ = worker.await;
        }
        self.recorder.snapshot()
    }

    /// A snapshot of the totals so far.
    pub fn report(&self) -> Report {
        self.recorder.snapshot()
    }
}

/// Spawns the HTTP and WebSocket workers, all opening connections through `connector`.
fn spawn_workers<C: Connector>(
    config: LoadConfig,
    connector: C,
    recorder: &Arc<Recorder>,
    stopped: &watch::Receiver<bool>,
) -> Vec<JoinHandle<()>> {
    let connections = config.connections.max(1);
    // Each worker's share of the rate, spread evenly over the period so requests do not
    // arrive in bursts of `connections`.
    let period = Duration::from_secs_f64(f64::from(connections) / f64::from(config.rate.max(1)));
    let config = Arc::new(config);
    let connector = Arc::new(connector);
    let mut workers = Vec::new();
    for index in 0..connections {
        let keep_alive = index % 2 == 0;
        let first_tick = period.mul_f64(f64::from(index) / f64::from(connections));
        workers.push(tokio::spawn(http::worker(
            Arc::clone(&config),
            Arc::clone(&connector),
            keep_alive,
            period,
            first_tick,
            Arc::clone(recorder),
            stopped.clone(),
        )));
    }
    for index in 0..config.websockets {
        workers.push(tokio::spawn(websocket::worker(
            Arc::clone(&config),
            Arc::clone(&connector),
            index,
            Arc::clone(recorder),
            stopped.clone(),
        )));
    }
    workers
}

/// Resolves once the stop flag is set, or the [`LoadGen`] is gone. Returns nothing, so no
/// borrow of the channel outlives it inside a `select!`.
async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|stopped| *stopped).await;
}
