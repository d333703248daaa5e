//! The totals a load run produces, and the shared recorder the workers write them to.

use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// How many failure descriptions a report keeps; the count goes on.
const MAX_FAILURES: usize = 20;
/// How many bytes of a body identify it in `by_body`.
const BODY_KEY_BYTES: usize = 64;

/// Totals of a load run, so far or final.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Report {
    /// Completed requests, whatever their status.
    pub requests: u64,
    /// Requests answered with a 2xx status.
    pub ok: u64,
    /// Connect errors, TLS handshake failures, resets, timeouts, malformed responses and
    /// non-2xx statuses.
    pub failed: u64,
    /// HTTP requests and WebSocket opens whose TLS handshake failed, a rejected server
    /// certificate included; each also counts in `failed` or `ws_dropped`.
    pub tls_failed: u64,
    /// The first 20 failure descriptions (HTTP and WebSocket), each with its time offset.
    pub failures: Vec<String>,
    /// Response body (first 64 bytes, trimmed) to count: shows which release answered.
    pub by_body: BTreeMap<String, u64>,
    /// WebSocket handshakes that succeeded.
    pub ws_opened: u64,
    /// WebSocket messages echoed back intact.
    pub ws_messages: u64,
    /// WebSockets the server closed with 1001 (going away) or 1012 (service restart).
    pub ws_closed_clean: u64,
    /// WebSockets that ended without a close frame, lost or garbled an echo, or failed to open.
    pub ws_dropped: u64,
    /// Slowest completed request, in milliseconds.
    pub max_latency_ms: f64,
    /// 99th percentile latency of completed requests, in milliseconds.
    pub p99_latency_ms: f64,
}

/// What kind of failure a request or a WebSocket met.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FailureKind {
    /// The TLS handshake failed or the server's certificate was rejected.
    Tls,
    /// Anything else: connect errors, resets, timeouts, malformed responses.
    Other,
}

/// Where workers record outcomes; `snapshot` turns it into a [`Report`].
#[derive(Debug)]
pub(crate) struct Recorder {
    started: Instant,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    report: Report,
    latencies_ms: Vec<f64>,
}

impl Recorder {
    pub(crate) fn new() -> Recorder {
        Recorder {
            started: Instant::now(),
            state: Mutex::new(State::default()),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A worker that panicked mid-update leaves counters that are still worth reporting.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// A completed request: any status, with its body and latency.
    pub(crate) fn response(&self, status: u16, body: &[u8], latency: Duration, what: &str) {
        let latency_ms = latency.as_secs_f64() * 1000.0;
        let key = String::from_utf8_lossy(&body[..body.len().min(BODY_KEY_BYTES)])
            .trim()
            .to_string();
        let failure =
            (!(200..300).contains(&status)).then(|| format!("{what}: status {status} ({key})"));
        let mut state = self.lock();
        state.report.requests += 1;
        state.latencies_ms.push(latency_ms);
        *state.report.by_body.entry(key).or_default() += 1;
        match failure {
            None => state.report.ok += 1,
            Some(description) => {
                state.report.failed += 1;
                self.describe(&mut state, &description);
            }
        }
    }

    /// A request that got no usable response.
    pub(crate) fn request_failed(&self, description: &str, kind: FailureKind) {
        let mut state = self.lock();
        state.report.failed += 1;
        if kind == FailureKind::Tls {
            state.report.tls_failed += 1;
        }
        self.describe(&mut state, description);
    }

    pub(crate) fn ws_opened(&self) {
        self.lock().report.ws_opened += 1;
    }

    pub(crate) fn ws_message(&self) {
        self.lock().report.ws_messages += 1;
    }

    pub(crate) fn ws_closed_clean(&self) {
        self.lock().report.ws_closed_clean += 1;
    }

    /// A WebSocket that failed to open, or ended badly.
    pub(crate) fn ws_dropped(&self, description: &str, kind: FailureKind) {
        let mut state = self.lock();
        state.report.ws_dropped += 1;
        if kind == FailureKind::Tls {
            state.report.tls_failed += 1;
        }
        self.describe(&mut state, description);
    }

    fn describe(&self, state: &mut State, description: &str) {
        if state.report.failures.len() < MAX_FAILURES {
            let offset = self.started.elapsed().as_secs_f64();
            state
                .report
                .failures
                .push(format!("{offset:.1}s: {description}"));
        }
    }

    pub(crate) fn snapshot(&self) -> Report {
        let state = self.lock();
        let mut report = state.report.clone();
        let mut latencies = state.latencies_ms.clone();
        drop(state);
        latencies.sort_by(f64::total_cmp);
        if let Some(max) = latencies.last() {
            report.max_latency_ms = *max;
            // Nearest rank: the smallest value with at least 99% of samples at or below it.
            let rank = (latencies.len() as f64 * 0.99).ceil() as usize;
            report.p99_latency_ms = latencies[rank.clamp(1, latencies.len()) - 1];
        }
        report
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_statuses_bodies_and_percentiles() {
        let recorder = Recorder::new();
        for ms in 1..=100 {
            recorder.response(200, b"hello from v1\n", Duration::from_millis(ms), "GET /");
        }
        recorder.response(
            503,
            b"  busy  ",
            Duration::from_millis(500),
            "GET / on a new connection",
        );
        recorder.request_failed(
            "GET / on a new connection: connection refused",
            FailureKind::Other,
        );
        recorder.request_failed(
            "GET / on a new connection: TLS handshake with localhost failed",
            FailureKind::Tls,
        );
        recorder.ws_dropped("WebSocket 0: handshake failed", FailureKind::Tls);
        recorder.ws_dropped("WebSocket 1: no echo within 2s", FailureKind::Other);
        let report = recorder.snapshot();
        assert_eq!((report.requests, report.ok, report.failed), (101, 100, 3));
        assert_eq!((report.ws_dropped, report.tls_failed), (2, 2));
        assert_eq!(report.by_body["hello from v1"], 100);
        assert_eq!(report.by_body["busy"], 1);
        assert_eq!(report.max_latency_ms, 500.0);
        assert_eq!(report.p99_latency_ms, 100.0);
        assert_eq!(report.failures.len(), 5);
        assert!(report.failures[0].ends_with("GET / on a new connection: status 503 (busy)"));
        assert!(
            report.failures[1].starts_with("0.0s: "),
            "{:?}",
            report.failures
        );
    }

    #[test]
    fn keeps_only_the_first_failures() {
        let recorder = Recorder::new();
        for i in 0..50 {
            recorder.request_failed(&format!("failure {i}"), FailureKind::Other);
        }
        let report = recorder.snapshot();
        assert_eq!(report.failed, 50);
        assert_eq!(report.failures.len(), MAX_FAILURES);
        assert!(report.failures[0].ends_with("failure 0"));
    }
}
