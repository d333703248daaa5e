//! Per-request limits that need state: the per-client-IP token bucket of `Limits::rate_limit`,
//! and the request body wrapper of the hyper path (h2) that enforces `max_body_bytes` and
//! `body_read_timeout` while a body streams. The HTTP/1.1 path enforces the body limits in its
//! own relay loop (`http1`).

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicU8, Ordering::Relaxed};
use std::sync::{Arc, LazyLock, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use hyper::body::{Body, Frame, Incoming, SizeHint};
use tokio::time::Sleep;

use crate::config::RateLimit;
use crate::proxy::ConnCtx;

/// Shards of the bucket table (fewer threads wait on one lock).
const SHARDS: usize = 16;
/// Client IPs tracked per shard; beyond it idle buckets, then the least recently used one, go.
const PER_SHARD: usize = 4096;

/// One client's bucket.
#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    last: Instant,
}

/// Buckets are per listener and client: an IPv4 address, or an IPv6 /64 (one host's usual
/// allocation, so that rotating addresses inside it does not multiply the rate).
type Key = (SocketAddr, u128);

/// Token buckets of every client IP, bounded to `SHARDS * PER_SHARD` entries.
#[derive(Debug)]
pub(crate) struct RateLimiter {
    shards: Box<[Mutex<HashMap<Key, Bucket>>]>,
    hasher: RandomState,
}

/// The router's buckets. One table for all listeners (keyed by listener address), because a
/// listener's state lives with its accept loop; entries of a closed listener age out like any.
static BUCKETS: LazyLock<RateLimiter> = LazyLock::new(RateLimiter::new);

impl RateLimiter {
    pub(crate) fn new() -> RateLimiter {
        RateLimiter {
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
            hasher: RandomState::new(),
        }
    }

    /// Takes a token for `client` on `listener`; `Err(seconds)` says when one will be there.
    /// The bucket holds `burst` tokens (at least one) and refills at `requests_per_second`.
    pub(crate) fn check(
        &self,
        listener: SocketAddr,
        client: IpAddr,
        limit: RateLimit,
        now: Instant,
    ) -> Result<(), u64> {
        let key = (listener, client_key(client));
        let shard = &self.shards[self.hasher.hash_one(key) as usize % SHARDS];
        let mut buckets = match shard.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        let capacity = f64::from(limit.burst.max(1));
        let rate = f64::from(limit.requests_per_second);
        if let Some(b) = buckets.get_mut(&key) {
            let elapsed = now.saturating_duration_since(b.last).as_secs_f64();
            b.tokens = (b.tokens + elapsed * rate).min(capacity);
            b.last = now;
            if b.tokens >= 1.0 {
                b.tokens -= 1.0;
                return Ok(());
            }
            return Err(retry_after(b.tokens, rate));
        }
        if buckets.len() >= PER_SHARD {
            evict(&mut buckets, now, capacity, rate);
        }
        buckets.insert(
            key,
            Bucket {
                tokens: capacity - 1.0,
                last: now,
            },
        );
        Ok(())
    }

    #[cfg(test)]
    fn tracked(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.lock().map_or(0, |g| g.len()))
            .sum()
    }
}

/// Whole seconds until a bucket holding `tokens` has one (at least 1).
fn retry_after(tokens: f64, rate: f64) -> u64 {
    if rate <= 0.0 {
        // Never refills: tell the client to come back much later.
        return 3600;
    }
    (((1.0 - tokens) / rate).ceil() as u64).max(1)
}

/// Makes room in a full shard, down to three quarters of it so that the cost is paid once per
/// `PER_SHARD / 4` new clients: buckets that refilled completely are the same as no bucket; when
/// too few have, the least recently used go.
fn evict(buckets: &mut HashMap<Key, Bucket>, now: Instant, capacity: f64, rate: f64) {
    if rate > 0.0 {
        let full_after = Duration::from_secs_f64(capacity / rate);
        buckets.retain(|_, b| now.saturating_duration_since(b.last) < full_after);
    }
    let keep = PER_SHARD * 3 / 4;
    if buckets.len() > keep {
        let mut by_age: Vec<(Instant, Key)> = buckets.iter().map(|(k, b)| (b.last, *k)).collect();
        let cut = by_age.len() - keep;
        by_age.select_nth_unstable_by_key(cut, |e| e.0);
        for (_, k) in &by_age[..cut] {
            buckets.remove(k);
        }
    }
}

fn client_key(ip: IpAddr) -> u128 {
    match ip.to_canonical() {
        IpAddr::V4(v4) => u128::from(u32::from(v4)),
        // The /64 prefix, tagged so it cannot collide with an IPv4 key.
        IpAddr::V6(v6) => (u128::from(v6) & !u128::from(u64::MAX)) | 1,
    }
}

/// The listener's rate limit for this connection's client: `None` when the request may go on
/// (or no limit is set), else the `Retry-After` seconds of the 429.
pub(crate) fn rate_limited(ctx: &ConnCtx) -> Option<u64> {
    let limit = ctx.config.limits.rate_limit?;
    let ip: IpAddr = ctx.client_ip.to_str().ok()?.parse().ok()?;
    BUCKETS.check(ctx.listener, ip, limit, Instant::now()).err()
}

/// Why a request body stopped on the hyper path.
#[derive(Debug, thiserror::Error)]
pub(crate) enum BodyError {
    #[error("request body is larger than the listener's max_body_bytes")]
    TooLarge,
    #[error("no request body bytes arrived for the listener's body_read_timeout")]
    TimedOut,
    #[error(transparent)]
    Client(hyper::Error),
}

/// Which limit a [`LimitedBody`] hit (shared with the request handler, which picks the status).
#[derive(Debug, Clone, Default)]
pub(crate) struct Tripped(Arc<AtomicU8>);

impl Tripped {
    const TOO_LARGE: u8 = 1;
    const TIMED_OUT: u8 = 2;

    pub(crate) fn too_large(&self) -> bool {
        self.0.load(Relaxed) == Self::TOO_LARGE
    }

    pub(crate) fn timed_out(&self) -> bool {
        self.0.load(Relaxed) == Self::TIMED_OUT
    }
}

/// A client's request body (hyper path) that ends in an error once it exceeds `max` bytes or
/// no frame came for `read_timeout`.
#[derive(Debug)]
pub(crate) struct LimitedBody {
    inner: Incoming,
    remaining: u64,
    read_timeout: Duration,
    /// Armed on the first wait for a frame, re-armed after each frame.
    timer: Option<Pin<Box<Sleep>>>,
    tripped: Tripped,
}

impl LimitedBody {
    pub(crate) fn new(inner: Incoming, max: u64, read_timeout: Duration) -> (LimitedBody, Tripped) {
        let tripped = Tripped::default();
        (
            LimitedBody {
                inner,
                remaining: max,
                read_timeout,
                timer: None,
                tripped: tripped.clone(),
            },
            tripped,
        )
    }
}

impl Body for LimitedBody {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        let this = self.get_mut();
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    let n = data.len() as u64;
                    if n > this.remaining {
                        this.tripped.0.store(Tripped::TOO_LARGE, Relaxed);
                        return Poll::Ready(Some(Err(BodyError::TooLarge)));
                    }
                    this.remaining -= n;
                }
                if let Some(t) = &mut this.timer {
                    t.as_mut()
                        .reset(tokio::time::Instant::now() + this.read_timeout);
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(BodyError::Client(e)))),
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => {
                let timeout = this.read_timeout;
                let timer = this
                    .timer
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)));
                if timer.as_mut().poll(cx).is_ready() {
                    this.tripped.0.store(Tripped::TIMED_OUT, Relaxed);
                    return Poll::Ready(Some(Err(BodyError::TimedOut)));
                }
                Poll::Pending
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::net::{IpAddr, Ipv4Addr, SocketAddr};
    use std::time::{Duration, Instant};

    use super::{PER_SHARD, RateLimiter, SHARDS};
    use crate::config::RateLimit;

    const LISTENER: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 80);

    #[test]
    fn bucket_allows_burst_then_refills_at_the_rate() {
        let rl = RateLimiter::new();
        let limit = RateLimit {
            requests_per_second: 2,
            burst: 3,
        };
        let ip = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1));
        let t0 = Instant::now();
        for _ in 0..3 {
            assert_eq!(rl.check(LISTENER, ip, limit, t0), Ok(()));
        }
        assert_eq!(rl.check(LISTENER, ip, limit, t0), Err(1));
        // Another client has its own bucket.
        let other = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2));
        assert_eq!(rl.check(LISTENER, other, limit, t0), Ok(()));
        // Half a second later one token is back (2 per second).
        let t1 = t0 + Duration::from_millis(500);
        assert_eq!(rl.check(LISTENER, ip, limit, t1), Ok(()));
        assert!(rl.check(LISTENER, ip, limit, t1).is_err());
        // IPv6 addresses of one /64 share a bucket.
        let a: IpAddr = "2001:db8::1".parse().unwrap_or(ip);
        let b: IpAddr = "2001:db8::2".parse().unwrap_or(ip);
        let one = RateLimit {
            requests_per_second: 1,
            burst: 1,
        };
        assert_eq!(rl.check(LISTENER, a, one, t0), Ok(()));
        assert!(rl.check(LISTENER, b, one, t0).is_err());
    }

    #[test]
    fn memory_stays_bounded_under_many_clients() {
        let rl = RateLimiter::new();
        let limit = RateLimit {
            requests_per_second: 1,
            burst: 1,
        };
        let t0 = Instant::now();
        for i in 0..(SHARDS * PER_SHARD * 2) as u32 {
            let ip = IpAddr::V4(Ipv4Addr::from(i));
            assert_eq!(rl.check(LISTENER, ip, limit, t0), Ok(()));
        }
        assert!(rl.tracked() <= SHARDS * PER_SHARD);
    }
}
