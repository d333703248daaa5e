//! Shared state of one upstream instance: load, passive health and its keep-alive pool.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use crate::limits::LimitedBody;
use crate::stats::StatsRing;
use crate::table::WarmupRule;

/// Idle connections kept per upstream; more are closed when they become idle.
const MAX_IDLE: usize = 512;

/// Load, health and pooled connections of one upstream; shared across table swaps.
pub(crate) struct UpstreamState {
    pub(crate) id: String,
    pub(crate) addr: SocketAddr,
    pub(crate) release: String,
    pub(crate) stats: Arc<StatsRing>,
    in_flight: AtomicUsize,
    ejected: AtomicBool,
    /// Milliseconds since the router's epoch when the upstream was last ejected.
    ejected_at_ms: AtomicU64,
    /// The route's warm-up rule (set at every compile; the counts below survive it).
    warmup_requests: AtomicU64,
    warmup_ms: AtomicU64,
    /// Answers so far; stops counting once past `warmup_requests`, the only thing it is for.
    answered: AtomicU64,
    /// Milliseconds since the router's epoch of the first answer, plus one; 0 before it.
    first_answer_ms: AtomicU64,
    /// Keep-alive connections; the lock is held for a push or a short scan only.
    idle: Mutex<Vec<SendRequest<LimitedBody>>>,
    /// Keep-alive plain connections of the HTTP/1.1 fast path (most recently used last).
    streams: Mutex<Vec<TcpStream>>,
}

impl std::fmt::Debug for UpstreamState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UpstreamState")
            .field("id", &self.id)
            .field("addr", &self.addr)
            .field("in_flight", &self.in_flight())
            .field("ejected", &self.is_ejected())
            .finish()
    }
}

impl UpstreamState {
    pub(crate) fn new(
        id: String,
        addr: SocketAddr,
        release: String,
        stats: Arc<StatsRing>,
    ) -> Self {
        UpstreamState {
            id,
            addr,
            release,
            stats,
            in_flight: AtomicUsize::new(0),
            ejected: AtomicBool::new(false),
            ejected_at_ms: AtomicU64::new(0),
            warmup_requests: AtomicU64::new(0),
            warmup_ms: AtomicU64::new(0),
            answered: AtomicU64::new(0),
            first_answer_ms: AtomicU64::new(0),
            idle: Mutex::new(Vec::new()),
            streams: Mutex::new(Vec::new()),
        }
    }

    /// Takes the route's warm-up rule; what the upstream has answered so far still counts.
    pub(crate) fn set_warmup(&self, rule: &WarmupRule) {
        self.warmup_requests.store(rule.requests, Relaxed);
        self.warmup_ms.store(
            rule.duration.as_millis().min(u128::from(u64::MAX)) as u64,
            Relaxed,
        );
    }

    /// Records one answer (the upstream's or the router's on its behalf) at `now_ms` since the
    /// router's epoch, in the release's stats; a warm-up answer stays out of the window latency.
    pub(crate) fn record(&self, now_ms: u64, status: u16, latency: Duration) {
        let warm_up = self.warming_up(now_ms);
        self.stats.record(now_ms / 1000, status, latency, warm_up);
    }

    /// Whether an answer at `now_ms` is still warm-up: fewer than `warmup_requests` answers
    /// before it, or less than `warmup_ms` since the first one. Once warm, only loads.
    fn warming_up(&self, now_ms: u64) -> bool {
        let mut first = self.first_answer_ms.load(Relaxed);
        if first == 0 {
            first = match self
                .first_answer_ms
                .compare_exchange(0, now_ms + 1, Relaxed, Relaxed)
            {
                Ok(_) => now_ms + 1,
                Err(stored) => stored,
            };
        }
        let by_time = now_ms.saturating_sub(first - 1) < self.warmup_ms.load(Relaxed);
        let limit = self.warmup_requests.load(Relaxed);
        let by_count =
            self.answered.load(Relaxed) < limit && self.answered.fetch_add(1, Relaxed) < limit;
        by_count || by_time
    }

    pub(crate) fn in_flight(&self) -> usize {
        self.in_flight.load(Relaxed)
    }

    pub(crate) fn is_ejected(&self) -> bool {
        self.ejected.load(Relaxed)
    }

    /// Takes the upstream out of rotation (passive health) and drops its idle connections.
    pub(crate) fn eject(&self, now_ms: u64) {
        self.ejected_at_ms.store(now_ms, Relaxed);
        self.ejected.store(true, Relaxed);
        if let Ok(mut idle) = self.idle.lock() {
            idle.clear();
        }
        if let Ok(mut streams) = self.streams.lock() {
            streams.clear();
        }
    }

    /// The most recently pooled plain connection, if any.
    pub(crate) fn take_stream(&self) -> Option<TcpStream> {
        self.streams.lock().ok()?.pop()
    }

    /// Pools a plain connection whose last response was read completely.
    pub(crate) fn put_stream(&self, stream: TcpStream) {
        if self.is_ejected() {
            return;
        }
        if let Ok(mut streams) = self.streams.lock()
            && streams.len() < MAX_IDLE
        {
            streams.push(stream);
        }
    }

    /// Ejected at least `eject_for_ms` ago, so due for a probe.
    pub(crate) fn probe_due(&self, now_ms: u64, eject_for_ms: u64) -> bool {
        self.is_ejected() && now_ms.saturating_sub(self.ejected_at_ms.load(Relaxed)) >= eject_for_ms
    }

    pub(crate) fn readmit(&self) {
        self.ejected.store(false, Relaxed);
    }

    /// Counts a request in flight until the guard drops.
    pub(crate) fn start(self: &Arc<Self>) -> InFlight {
        self.in_flight.fetch_add(1, Relaxed);
        InFlight { up: self.clone() }
    }

    /// A pooled connection that can take a request now, if any.
    pub(crate) fn take_idle(&self) -> Option<SendRequest<LimitedBody>> {
        let mut idle = self.idle.lock().ok()?;
        let mut i = idle.len();
        while i > 0 {
            i -= 1;
            if idle[i].is_closed() {
                idle.swap_remove(i);
            } else if idle[i].is_ready() {
                return Some(idle.swap_remove(i));
            }
        }
        None
    }

    /// Returns a connection whose response was read completely.
    pub(crate) fn put_idle(&self, sender: SendRequest<LimitedBody>) {
        if sender.is_closed() || self.is_ejected() {
            return;
        }
        if let Ok(mut idle) = self.idle.lock()
            && idle.len() < MAX_IDLE
        {
            idle.push(sender);
        }
    }

    /// Opens a new HTTP/1.1 connection (with upgrade support) to the upstream.
    pub(crate) async fn connect(
        &self,
        timeout: Duration,
    ) -> std::io::Result<SendRequest<LimitedBody>> {
        let stream = tcp_connect(self.addr, timeout).await?;
        let (sender, conn) = hyper::client::conn::http1::Builder::new()
            .handshake(TokioIo::new(stream))
            .await
            .map_err(std::io::Error::other)?;
        tokio::spawn(async move {
            // Errors surface on the request that was in flight; nothing to add here.
            let _ = conn.with_upgrades().await;
        });
        Ok(sender)
    }
}

/// TCP connect with a deadline and Nagle off.
pub(crate) async fn tcp_connect(addr: SocketAddr, timeout: Duration) -> std::io::Result<TcpStream> {
    let stream = match tokio::time::timeout(timeout, TcpStream::connect(addr)).await {
        Ok(r) => r?,
        Err(_) => {
            return Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "connect timed out",
            ));
        }
    };
    stream.set_nodelay(true)?;
    Ok(stream)
}

/// One request in flight to an upstream; decrements the counter on drop.
#[derive(Debug)]
pub(crate) struct InFlight {
    pub(crate) up: Arc<UpstreamState>,
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.up.in_flight.fetch_sub(1, Relaxed);
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests;
