//! Continuous HTTP and WebSocket load against one address, counting every failure, so a
//! zero-downtime test can assert that a deploy, a rollback or a restart cost nothing.
//!
//! HTTP workers send `GET` requests at a paced total rate; half of them reuse a keep-alive
//! connection, half open a new connection per request. WebSocket workers keep `ws://target/ws`
//! open, send a text message every 100 ms and expect it echoed. The HTTP/1.1 and WebSocket
//! clients are written here over tokio's `TcpStream`: small, and strict about what counts as
//! a failure. This is not a benchmark tool (no HTTP/2, no TLS, no request bodies) and it does
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

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;

mod frame;
mod http;
mod report;
mod websocket;

pub use report::Report;

use report::Recorder;

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
    /// # Panics
    ///
    /// Outside a tokio runtime context; enter one first (`runtime.enter()`).
    pub fn start(config: LoadConfig) -> LoadGen {
        let recorder = Arc::new(Recorder::new());
        let (stop, stopped) = watch::channel(false);
        let connections = config.connections.max(1);
        // Each worker's share of the rate, spread evenly over the period so requests do not
        // arrive in bursts of `connections`.
        let period =
            Duration::from_secs_f64(f64::from(connections) / f64::from(config.rate.max(1)));
        let config = Arc::new(config);
        let mut workers = Vec::new();
        for index in 0..connections {
            let keep_alive = index % 2 == 0;
            let first_tick = period.mul_f64(f64::from(index) / f64::from(connections));
            workers.push(tokio::spawn(http::worker(
                Arc::clone(&config),
                keep_alive,
                period,
                first_tick,
                Arc::clone(&recorder),
                stopped.clone(),
            )));
        }
        for index in 0..config.websockets {
            workers.push(tokio::spawn(websocket::worker(
                Arc::clone(&config),
                index,
                Arc::clone(&recorder),
                stopped.clone(),
            )));
        }
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

/// Resolves once the stop flag is set, or the [`LoadGen`] is gone. Returns nothing, so no
/// borrow of the channel outlives it inside a `select!`.
async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|stopped| *stopped).await;
}
