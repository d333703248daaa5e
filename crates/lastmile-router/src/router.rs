//! The router handle: listeners, table swaps, introspection and drain.

use std::collections::HashMap;
use std::convert::Infallible;
use std::fmt;
use std::hash::{BuildHasher, RandomState};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use http::{HeaderValue, Request, Response, StatusCode, header};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio::sync::{Notify, oneshot, watch};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

use crate::body::ProxyBody;
use crate::client_stream::ClientStream;
use crate::config::{ListenerConfig, RouterConfig};
use crate::connection_limits::{ConnectionLimits, ConnectionSlot, OVER_LIMIT};
use crate::http1::{self, Handoff};
use crate::proxy::{self, ConnCtx};
use crate::stats::{ReleaseStats, StatsRing};
use crate::table::{CompiledTable, RouteTable, UpstreamHealth};
use crate::upstream::{UpstreamState, tcp_connect};
use crate::{redirect, tls, websocket};

/// Drain phases carried by `Inner::drain`.
const RUNNING: u8 = 0;
pub(crate) const DRAINING: u8 = 1;
pub(crate) const GRACE_OVER: u8 = 2;
/// Period of the active health probe of ejected upstreams.
const PROBE_EVERY: Duration = Duration::from_millis(500);
/// Extra time after the grace for upgraded connections to write their close frames.
const CLOSE_LINGER: Duration = Duration::from_secs(1);

/// Upstream and release state that must outlive table swaps.
#[derive(Debug, Default)]
struct Registry {
    upstreams: HashMap<String, Weak<UpstreamState>>,
    stats: HashMap<String, Arc<StatsRing>>,
}

/// Shared state behind every `Router` clone.
pub(crate) struct Inner {
    pub(crate) config: RouterConfig,
    pub(crate) table: ArcSwap<CompiledTable>,
    registry: Mutex<Registry>,
    builder: auto::Builder<TokioExecutor>,
    /// RUNNING → DRAINING → GRACE_OVER; only moves forward.
    pub(crate) drain: watch::Sender<u8>,
    conns: AtomicUsize,
    upgraded: AtomicUsize,
    settled: Notify,
    health_started: AtomicBool,
    epoch: Instant,
    rng: AtomicU64,
    request_ids: AtomicU64,
    seed: u64,
    /// Mirror requests in flight (bounded by `mirror::MAX_IN_FLIGHT`).
    pub(crate) mirrors: AtomicUsize,
}

impl fmt::Debug for Inner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Inner")
            .field("config", &self.config)
            .field("connections", &self.conns.load(Relaxed))
            .field("upgraded", &self.upgraded.load(Relaxed))
            .finish_non_exhaustive()
    }
}

fn splitmix64(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// `n` as 16 lowercase hex digits.
fn hex16(n: u64) -> [u8; 16] {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut buf = [0u8; 16];
    for (i, b) in buf.iter_mut().enumerate() {
        *b = HEX[((n >> (60 - 4 * i)) & 0xf) as usize];
    }
    buf
}

impl Inner {
    /// Milliseconds since the router was made.
    pub(crate) fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    /// Milliseconds since the router was made at `at`.
    pub(crate) fn ms(&self, at: Instant) -> u64 {
        at.saturating_duration_since(self.epoch).as_millis() as u64
    }

    /// Second (since the router was made) that `at` falls in.
    pub(crate) fn sec(&self, at: Instant) -> u64 {
        at.saturating_duration_since(self.epoch).as_secs()
    }

    /// A fast, well-mixed random number (not for secrets).
    pub(crate) fn rand(&self) -> u64 {
        splitmix64(self.rng.fetch_add(0x9E37_79B9_7F4A_7C15, Relaxed))
    }

    /// 16 hex characters, unique per router, unpredictable across restarts.
    pub(crate) fn request_id(&self) -> HeaderValue {
        HeaderValue::from_bytes(&self.request_id_hex())
            .unwrap_or(HeaderValue::from_static("0000000000000000"))
    }

    /// 16 random lowercase hex digits (a new user's cohort key).
    pub(crate) fn random_hex(&self) -> [u8; 16] {
        hex16(splitmix64(self.rand() ^ self.seed))
    }

    /// The next request id as 16 lowercase hex digits.
    pub(crate) fn request_id_hex(&self) -> [u8; 16] {
        hex16(splitmix64(
            self.seed ^ self.request_ids.fetch_add(1, Relaxed),
        ))
    }

    fn settled_now(&self) -> bool {
        self.conns.load(Relaxed) == 0 && self.upgraded.load(Relaxed) == 0
    }

    /// Waits until no connection is open; false when `deadline` came first.
    async fn wait_settled(&self, deadline: tokio::time::Instant) -> bool {
        loop {
            let notified = self.settled.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.settled_now() {
                return true;
            }
            tokio::select! {
                _ = notified => {}
                _ = tokio::time::sleep_until(deadline) => return self.settled_now(),
            }
        }
    }
}

/// Counts an open client connection (or upgraded relay) for drain.
#[derive(Debug)]
pub(crate) struct Tracked {
    inner: Arc<Inner>,
    upgraded: bool,
}

impl Tracked {
    fn conn(inner: &Arc<Inner>) -> Tracked {
        inner.conns.fetch_add(1, Relaxed);
        Tracked {
            inner: inner.clone(),
            upgraded: false,
        }
    }

    pub(crate) fn upgraded(inner: &Arc<Inner>) -> Tracked {
        inner.upgraded.fetch_add(1, Relaxed);
        Tracked {
            inner: inner.clone(),
            upgraded: true,
        }
    }
}

impl Drop for Tracked {
    fn drop(&mut self) {
        let counter = if self.upgraded {
            &self.inner.upgraded
        } else {
            &self.inner.conns
        };
        counter.fetch_sub(1, Relaxed);
        if self.inner.settled_now() {
            self.inner.settled.notify_waiters();
        }
    }
}

/// The reverse proxy; cheap to clone (all clones share one state).
#[derive(Clone)]
pub struct Router {
    inner: Arc<Inner>,
}

impl fmt::Debug for Router {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.inner.fmt(f)
    }
}

/// Keeps one listener accepting; dropping it stops accepting (open connections continue).
#[derive(Debug)]
pub struct ListenerHandle {
    addr: SocketAddr,
    _stop: oneshot::Sender<()>,
}

impl ListenerHandle {
    /// Address the listener is bound to.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Router {
    /// A router with an empty table (every request gets 404 until `set_table`).
    pub fn new(config: RouterConfig) -> Router {
        let mut builder = auto::Builder::new(TokioExecutor::new());
        builder
            .http1()
            .timer(TokioTimer::new())
            .header_read_timeout(config.header_read_timeout)
            // hyper refuses buffers below 8 KiB.
            .max_buf_size(config.max_header_bytes.max(8192))
            .keep_alive(true);
        builder
            .http2()
            .timer(TokioTimer::new())
            .max_header_list_size(u32::try_from(config.max_header_bytes).unwrap_or(u32::MAX));
        let seed = RandomState::new().hash_one(Instant::now());
        Router {
            inner: Arc::new(Inner {
                config,
                table: ArcSwap::from_pointee(CompiledTable::default()),
                registry: Mutex::new(Registry::default()),
                builder,
                drain: watch::Sender::new(RUNNING),
                conns: AtomicUsize::new(0),
                upgraded: AtomicUsize::new(0),
                settled: Notify::new(),
                health_started: AtomicBool::new(false),
                epoch: Instant::now(),
                rng: AtomicU64::new(seed.rotate_left(17)),
                request_ids: AtomicU64::new(0),
                seed,
                mirrors: AtomicUsize::new(0),
            }),
        }
    }

    /// Start accepting on an already-bound std listener (set nonblocking yourself); spawns on the
    /// current tokio runtime. Dropping the handle stops accepting on it (existing connections continue).
    pub fn serve(&self, listener: std::net::TcpListener) -> std::io::Result<ListenerHandle> {
        self.serve_with(listener, ListenerConfig::default())
    }

    /// Like [`Router::serve`], with the listener's own limits and, when set, TLS termination,
    /// an HTTPS redirect or ACME challenge answers. Fails when TLS and `redirect_https` are
    /// both set (a redirect is served over plaintext HTTP).
    pub fn serve_with(
        &self,
        listener: std::net::TcpListener,
        config: ListenerConfig,
    ) -> std::io::Result<ListenerHandle> {
        if tokio::runtime::Handle::try_current().is_err() {
            return Err(std::io::Error::other(
                "Router::serve must be called inside a tokio runtime (call it from async code)",
            ));
        }
        let kind = match (&config.tls, &config.redirect_https) {
            (Some(_), Some(_)) => {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::InvalidInput,
                    "a listener cannot both terminate TLS and redirect to HTTPS; set `tls` on \
                     the HTTPS listener and `redirect_https` on a separate plaintext one",
                ));
            }
            (Some(settings), None) => {
                let server = tls::server_config(settings).map_err(std::io::Error::other)?;
                ListenerKind::Tls(TlsAcceptor::from(server))
            }
            (None, Some(_)) => ListenerKind::Redirect,
            (None, None) => ListenerKind::Plain,
        };
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let listener = tokio::net::TcpListener::from_std(listener)?;
        self.start_health();
        let (stop_tx, stop_rx) = oneshot::channel();
        let state = Arc::new(ListenerState {
            hsts: config
                .tls
                .as_ref()
                .and_then(|t| t.hsts)
                .map(|h| Arc::new(h.to_header())),
            connections: Arc::new(ConnectionLimits::new(
                config.limits.max_connections,
                config.limits.max_connections_per_ip,
            )),
            config: Arc::new(config),
            addr,
            kind,
        });
        tokio::spawn(accept_loop(self.inner.clone(), state, listener, stop_rx));
        Ok(ListenerHandle {
            addr,
            _stop: stop_tx,
        })
    }

    /// Atomic swap (ArcSwap). No lock on the request path.
    pub fn set_table(&self, table: RouteTable) {
        let window = self.inner.config.stats_window;
        let mut reg = match self.inner.registry.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        let Registry { upstreams, stats } = &mut *reg;
        let compiled = CompiledTable::compile(&table, upstreams, stats, &|| StatsRing::new(window));
        self.inner.table.store(Arc::new(compiled));
        upstreams.retain(|_, w| w.strong_count() > 0);
    }

    /// Sums of the last `window` (at most `stats_window`) of one release; zeros when unknown.
    pub fn stats(&self, release: &str, window: Duration) -> ReleaseStats {
        let ring = match self.inner.registry.lock() {
            Ok(g) => g.stats.get(release).cloned(),
            Err(poisoned) => poisoned.into_inner().stats.get(release).cloned(),
        };
        match ring {
            Some(r) => r.sum(self.inner.sec(Instant::now()), window),
            None => ReleaseStats::default(),
        }
    }

    /// HTTP requests currently in flight to this upstream id (NOT counting upgraded/WebSocket connections).
    pub fn in_flight(&self, upstream_id: &str) -> usize {
        let table = self.inner.table.load();
        if let Some(u) = table.upstreams.iter().find(|u| u.id == upstream_id) {
            return u.in_flight();
        }
        // Removed from the table but maybe still finishing requests.
        let reg = match self.inner.registry.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        reg.upstreams
            .get(upstream_id)
            .and_then(Weak::upgrade)
            .map_or(0, |u| u.in_flight())
    }

    /// Load and passive-health state of every upstream of the current table.
    pub fn upstream_health(&self) -> Vec<UpstreamHealth> {
        self.inner
            .table
            .load()
            .upstreams
            .iter()
            .map(|u| UpstreamHealth {
                id: u.id.clone(),
                addr: u.addr,
                release: u.release.clone(),
                in_flight: u.in_flight(),
                ejected: u.is_ejected(),
            })
            .collect()
    }

    /// Graceful drain of the whole router: stop accepting on every listener, close idle keep-alive
    /// connections gracefully (hyper graceful shutdown), let in-flight requests finish; upgraded
    /// (WebSocket) connections are kept until `grace` ends, then closed (WebSocket: close frame 1001).
    /// Returns when everything is closed or `grace` passed (plus at most 1 s for close frames).
    pub async fn drain(&self, grace: Duration) {
        let inner = &self.inner;
        inner.drain.send_if_modified(|s| {
            let first = *s == RUNNING;
            if first {
                *s = DRAINING;
            }
            first
        });
        let deadline = tokio::time::Instant::now() + grace;
        if inner.wait_settled(deadline).await {
            return;
        }
        inner.drain.send_replace(GRACE_OVER);
        inner
            .wait_settled(tokio::time::Instant::now() + CLOSE_LINGER)
            .await;
    }

    /// Starts the active health probe once, on the runtime of the first `serve`.
    fn start_health(&self) {
        if self.inner.health_started.swap(true, Relaxed) {
            return;
        }
        let weak = Arc::downgrade(&self.inner);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(PROBE_EVERY);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let Some(inner) = weak.upgrade() else { return };
                let now = inner.now_ms();
                let eject_ms = inner.config.eject_for.as_millis() as u64;
                let due: Vec<Arc<UpstreamState>> = inner
                    .table
                    .load()
                    .upstreams
                    .iter()
                    .filter(|u| u.probe_due(now, eject_ms))
                    .cloned()
                    .collect();
                let timeout = inner.config.connect_timeout;
                drop(inner);
                for u in due {
                    if tcp_connect(u.addr, timeout).await.is_ok() {
                        u.readmit();
                    }
                }
            }
        });
    }
}

/// What one listener does with its connections, fixed at `serve_with`.
#[derive(Debug)]
struct ListenerState {
    config: Arc<ListenerConfig>,
    addr: SocketAddr,
    kind: ListenerKind,
    /// `Strict-Transport-Security` value of a TLS listener with HSTS.
    hsts: Option<Arc<HeaderValue>>,
    connections: Arc<ConnectionLimits>,
}

enum ListenerKind {
    /// Plaintext HTTP/1.1 (fast path) and h2c.
    Plain,
    /// TLS, then HTTP/1.1 (fast path) or h2 as ALPN says.
    Tls(TlsAcceptor),
    /// Plaintext, served by hyper; every request is redirected to HTTPS (`redirect_https`).
    Redirect,
}

impl fmt::Debug for ListenerKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ListenerKind::Plain => f.write_str("Plain"),
            ListenerKind::Tls(_) => f.write_str("Tls"),
            ListenerKind::Redirect => f.write_str("Redirect"),
        }
    }
}

async fn accept_loop(
    inner: Arc<Inner>,
    state: Arc<ListenerState>,
    listener: tokio::net::TcpListener,
    mut stop: oneshot::Receiver<()>,
) {
    let mut drain = inner.drain.subscribe();
    if *drain.borrow_and_update() != RUNNING {
        return;
    }
    loop {
        tokio::select! {
            biased;
            _ = &mut stop => return,
            _ = drain.changed() => return,
            r = listener.accept() => match r {
                Ok((stream, peer)) => match state.connections.admit(peer.ip()) {
                    Some(slot) => spawn_connection(&inner, &state, stream, peer, slot),
                    None => refuse(stream, matches!(state.kind, ListenerKind::Tls(_))),
                },
                // Out of file descriptors or similar: back off instead of spinning.
                Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
            },
        }
    }
}

/// Closes a connection over a limit without spawning anything. A plaintext client first gets a
/// short 503; a TLS client is closed before its handshake, where no HTTP can be spoken yet.
fn refuse(stream: TcpStream, tls: bool) {
    if !tls {
        let _ = stream.try_write(OVER_LIMIT);
        // What the client already sent is read, so that closing does not reset the connection
        // (a reset can destroy the 503 before the client reads it).
        let mut sink = [0u8; 2048];
        for _ in 0..8 {
            if !matches!(stream.try_read(&mut sink), Ok(n) if n > 0) {
                break;
            }
        }
    }
}

fn spawn_connection(
    inner: &Arc<Inner>,
    state: &Arc<ListenerState>,
    stream: TcpStream,
    peer: SocketAddr,
    slot: ConnectionSlot,
) {
    let _ = stream.set_nodelay(true);
    let local = stream.local_addr().unwrap_or(state.addr);
    let client_ip = HeaderValue::from_str(&peer.ip().to_string())
        .unwrap_or(HeaderValue::from_static("unknown"));
    let ctx = Arc::new(ConnCtx {
        inner: inner.clone(),
        config: state.config.clone(),
        listener: state.addr,
        local,
        client_ip,
        started: AtomicBool::new(false),
        tls: matches!(state.kind, ListenerKind::Tls(_)),
        hsts: state.hsts.clone(),
    });
    let tracked = Tracked::conn(inner);
    match &state.kind {
        ListenerKind::Plain => {
            tokio::spawn(serve_client(ctx, stream, tracked, slot));
        }
        ListenerKind::Redirect => {
            tokio::spawn(async move {
                let _slot = slot;
                serve_hyper(ctx, stream, tracked).await;
            });
        }
        ListenerKind::Tls(acceptor) => {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Some(stream) = handshake(&ctx, &acceptor, stream).await else {
                    return;
                };
                if stream.get_ref().1.alpn_protocol() == Some(tls::ALPN_H2) {
                    let _slot = slot;
                    serve_hyper(ctx, stream, tracked).await;
                } else {
                    serve_client(ctx, stream, tracked, slot).await;
                }
            });
        }
    }
}

/// The TLS handshake, bounded by `header_read_timeout` like a request head (a client that
/// never sends its ClientHello is closed then) and cut short by the end of a drain's grace.
async fn handshake(
    ctx: &ConnCtx,
    acceptor: &TlsAcceptor,
    stream: TcpStream,
) -> Option<TlsStream<TcpStream>> {
    let mut grace = ctx.inner.drain.subscribe();
    let timeout = ctx.inner.config.header_read_timeout;
    tokio::select! {
        r = tokio::time::timeout(timeout, acceptor.accept(stream)) => r.ok()?.ok(),
        _ = grace.wait_for(|s| *s >= GRACE_OVER) => None,
    }
}

/// Serves a client connection with the HTTP/1.1 fast path, then what it became (h2c, upgrade).
async fn serve_client<S: ClientStream>(
    ctx: Arc<ConnCtx>,
    stream: S,
    tracked: Tracked,
    slot: ConnectionSlot,
) {
    let mut grace = ctx.inner.drain.subscribe();
    let handoff = tokio::select! {
        biased;
        h = http1::Conn::new(ctx.clone(), stream).run() => h,
        // In-flight HTTP requests end with the grace.
        _ = grace.wait_for(|s| *s >= GRACE_OVER) => return,
    };
    if let Some(handoff) = handoff {
        // Boxed: these rare states would otherwise enlarge every connection's task.
        Box::pin(serve_handoff(ctx, handoff, tracked, slot)).await;
    }
}

/// Serves what an HTTP/1.1 connection became: h2c with hyper, or an upgraded relay. The
/// connection keeps its place under the listener's limits until it closes.
async fn serve_handoff<S: ClientStream>(
    ctx: Arc<ConnCtx>,
    handoff: Handoff<S>,
    tracked: Tracked,
    _slot: ConnectionSlot,
) {
    match handoff {
        Handoff::H2c(io) => serve_hyper(ctx, io, tracked).await,
        Handoff::Upgrade {
            client,
            upstream,
            websocket,
        } => {
            let _upgraded = Tracked::upgraded(&ctx.inner);
            drop(tracked);
            let drain = ctx.inner.drain.subscribe();
            websocket::relay(client, upstream, websocket, drain).await;
        }
    }
}

/// One request served by hyper: ACME challenge answers and HTTPS redirects first, else the
/// proxy; on a TLS listener with HSTS the header goes on every response.
async fn hyper_request(
    ctx: Arc<ConnCtx>,
    req: Request<Incoming>,
) -> Result<Response<ProxyBody>, Infallible> {
    let local = match &ctx.config.challenges {
        Some(challenges) => challenges.answer_request(&req),
        None => None,
    };
    let local = local.or_else(|| {
        ctx.config
            .redirect_https
            .as_ref()
            .map(|r| redirect::response(&req, r))
    });
    let mut resp = match local {
        Some(resp) => {
            if !ctx.started.load(Relaxed) {
                ctx.started.store(true, Relaxed);
            }
            resp
        }
        None => proxy::handle(ctx.clone(), req).await?,
    };
    if let Some(v) = &ctx.hsts
        && resp.status() != StatusCode::SWITCHING_PROTOCOLS
    {
        resp.headers_mut()
            .insert(header::STRICT_TRANSPORT_SECURITY, HeaderValue::clone(v));
    }
    Ok(resp)
}

/// Serves an HTTP/2 connection (prior knowledge, or ALPN `h2` over TLS) with hyper; also every
/// connection of a redirecting listener.
async fn serve_hyper<S>(ctx: Arc<ConnCtx>, io: S, tracked: Tracked)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let _tracked = tracked;
    let mut drain = ctx.inner.drain.subscribe();
    let svc_ctx = ctx.clone();
    let svc = service_fn(move |req| hyper_request(svc_ctx.clone(), req));
    let conn = ctx
        .inner
        .builder
        .serve_connection_with_upgrades(TokioIo::new(io), svc);
    tokio::pin!(conn);
    let mut graceful = false;
    // A client that sends the preface and then stalls is bounded like a slow HTTP/1.1 head.
    let first = tokio::time::sleep(ctx.inner.config.header_read_timeout);
    tokio::pin!(first);
    let mut first_armed = true;
    loop {
        let phase = *drain.borrow_and_update();
        if phase >= GRACE_OVER {
            return;
        }
        if phase >= DRAINING && !graceful {
            conn.as_mut().graceful_shutdown();
            graceful = true;
        }
        tokio::select! {
            _ = conn.as_mut() => return,
            _ = first.as_mut(), if first_armed => {
                if !ctx.started.load(Relaxed) {
                    return;
                }
                first_armed = false;
            }
            r = drain.changed() => if r.is_err() {
                let _ = conn.as_mut().await;
                return;
            },
        }
    }
}
