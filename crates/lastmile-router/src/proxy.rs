//! The request path: route, pick an instance, forward, account.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::time::Instant;

use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Method, Request, Response, StatusCode, Uri, Version};
use hyper::body::{Body, Incoming};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;

use crate::body::{Lease, ProxyBody};
use crate::config::ListenerConfig;
use crate::router::{Inner, Tracked};
use crate::table::{CompiledRoute, Steer};
use crate::upstream::{InFlight, UpstreamState};
use crate::websocket;

const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
const HTTP: HeaderValue = HeaderValue::from_static("http");
const HTTPS: HeaderValue = HeaderValue::from_static("https");

/// What every request on one client connection shares.
#[derive(Debug)]
pub(crate) struct ConnCtx {
    pub(crate) inner: Arc<Inner>,
    /// The accepting listener's limits and settings.
    pub(crate) config: Arc<ListenerConfig>,
    /// Address of the listener that accepted the connection.
    pub(crate) listener: SocketAddr,
    /// Local address of the connection itself.
    pub(crate) local: SocketAddr,
    /// The client's IP, ready for X-Forwarded-For.
    pub(crate) client_ip: HeaderValue,
    /// A first request head arrived (ends the pre-request slowloris guard).
    pub(crate) started: AtomicBool,
    /// The client connection is TLS (requests are forwarded with `X-Forwarded-Proto: https`).
    pub(crate) tls: bool,
    /// `Strict-Transport-Security` for every response (TLS listeners with HSTS).
    pub(crate) hsts: Option<Arc<HeaderValue>>,
}

/// Request facts kept only for the access log.
struct LogLine {
    method: Method,
    uri: Uri,
    request_id: HeaderValue,
}

/// Why a request could not be handed to an upstream.
// Large only because it hands the unsent request back; it lives on the stack briefly.
#[allow(clippy::large_enum_variant)]
enum SendError {
    /// No connection could be opened; the request was not sent and comes back.
    Connect(Request<Incoming>),
    /// The response headers did not arrive within `upstream_timeout`.
    Timeout,
    /// The connection failed after the request was (partly) sent.
    Failed,
}

/// hyper service entry point for one request.
pub(crate) async fn handle(
    ctx: Arc<ConnCtx>,
    mut req: Request<Incoming>,
) -> Result<Response<ProxyBody>, Infallible> {
    let start = Instant::now();
    if !ctx.started.load(Relaxed) {
        ctx.started.store(true, Relaxed);
    }
    let inner = &*ctx.inner;
    let route = {
        let table = inner.table.load();
        let host = request_host(&req);
        table
            .find(ctx.listener, ctx.local, host, req.uri().path())
            .cloned()
    };
    let upgrade = is_upgrade(&req);
    let request_id = prepare(&ctx, &mut req, upgrade);
    let log = inner.config.access_log.then(|| LogLine {
        method: req.method().clone(),
        uri: req.uri().clone(),
        request_id,
    });
    let Some(route) = route else {
        let resp = simple(StatusCode::NOT_FOUND, "no route\n");
        access_log(&log, resp.status(), start, "-", "-");
        return Ok(resp);
    };
    let websocket = upgrade
        && req
            .headers()
            .get(header::UPGRADE)
            .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"websocket"));
    let retryable = matches!(
        *req.method(),
        Method::GET | Method::HEAD | Method::OPTIONS | Method::PUT | Method::DELETE
    ) && req.body().is_end_stream();
    let client_upgrade = upgrade.then(|| hyper::upgrade::on(&mut req));
    let (steer, set_cookie) = if route.steers() {
        let pairs: Vec<(&[u8], &[u8])> = req
            .headers()
            .iter()
            .map(|(n, v)| (n.as_str().as_bytes(), v.as_bytes()))
            .collect();
        route.decide(pairs.iter().copied(), || inner.random_hex())
    } else {
        (Steer::Weighted, None)
    };

    let rand = inner.rand();
    let mut failed: Option<Arc<UpstreamState>> = None;
    loop {
        let pick_rand = if failed.is_some() {
            rand.rotate_left(29)
        } else {
            rand
        };
        let Some(up) = route
            .pick_steered(steer, pick_rand, failed.as_deref())
            .map(|(_, u)| u.clone())
        else {
            return Ok(no_instance(
                inner,
                &route,
                failed.as_deref(),
                rand,
                start,
                &log,
            ));
        };
        let lease = up.start();
        match send(inner, &up, req).await {
            Ok((resp, sender)) => {
                let mut resp = respond(
                    &ctx,
                    lease,
                    resp,
                    sender,
                    client_upgrade,
                    websocket,
                    start,
                    &log,
                );
                if let Some(v) = set_cookie.and_then(|c| HeaderValue::from_bytes(&c).ok())
                    && resp.status() != StatusCode::SWITCHING_PROTOCOLS
                {
                    resp.headers_mut().append(header::SET_COOKIE, v);
                }
                return Ok(resp);
            }
            Err(SendError::Connect(back)) => {
                up.eject(inner.now_ms());
                up.stats.connect_error(inner.sec(Instant::now()));
                drop(lease);
                if retryable && failed.is_none() {
                    failed = Some(up);
                    req = back;
                    continue;
                }
                return Ok(failure(
                    inner,
                    &up,
                    StatusCode::BAD_GATEWAY,
                    "upstream connect failed\n",
                    start,
                    &log,
                ));
            }
            Err(SendError::Timeout) => {
                return Ok(failure(
                    inner,
                    &up,
                    StatusCode::GATEWAY_TIMEOUT,
                    "upstream timeout\n",
                    start,
                    &log,
                ));
            }
            Err(SendError::Failed) => {
                return Ok(failure(
                    inner,
                    &up,
                    StatusCode::BAD_GATEWAY,
                    "upstream failed\n",
                    start,
                    &log,
                ));
            }
        }
    }
}

/// Sends `req` on a pooled connection, or on a new one when none is ready (or it just closed).
async fn send(
    inner: &Inner,
    up: &UpstreamState,
    mut req: Request<Incoming>,
) -> Result<(Response<Incoming>, SendRequest<Incoming>), SendError> {
    let timeout = inner.config.upstream_timeout;
    if let Some(mut sender) = up.take_idle() {
        match tokio::time::timeout(timeout, sender.try_send_request(req)).await {
            Ok(Ok(resp)) => return Ok((resp, sender)),
            // The pooled connection closed before the request went out: use a fresh one.
            Ok(Err(mut e)) => match e.take_message() {
                Some(back) => req = back,
                None => return Err(SendError::Failed),
            },
            Err(_) => return Err(SendError::Timeout),
        }
    }
    let mut sender = match up.connect(inner.config.connect_timeout).await {
        Ok(s) => s,
        Err(_) => return Err(SendError::Connect(req)),
    };
    match tokio::time::timeout(timeout, sender.try_send_request(req)).await {
        Ok(Ok(resp)) => Ok((resp, sender)),
        Ok(Err(_)) => Err(SendError::Failed),
        Err(_) => Err(SendError::Timeout),
    }
}

/// Turns the upstream's response into the client's, or starts the upgraded relay on 101.
#[allow(clippy::too_many_arguments)]
fn respond(
    ctx: &ConnCtx,
    lease: InFlight,
    mut resp: Response<Incoming>,
    sender: SendRequest<Incoming>,
    client_upgrade: Option<hyper::upgrade::OnUpgrade>,
    websocket: bool,
    start: Instant,
    log: &Option<LogLine>,
) -> Response<ProxyBody> {
    let inner = &*ctx.inner;
    let up = lease.up.clone();
    let status = resp.status();
    let now = Instant::now();
    up.stats
        .record(inner.sec(now), status.as_u16(), now - start);
    access_log(log, status, start, &up.release, &up.id);
    if status == StatusCode::SWITCHING_PROTOCOLS {
        let Some(client_upgrade) = client_upgrade else {
            return simple(
                StatusCode::BAD_GATEWAY,
                "upstream switched protocols unasked\n",
            );
        };
        let upstream_upgrade = hyper::upgrade::on(&mut resp);
        let tracked = Tracked::upgraded(&ctx.inner);
        let drain = inner.drain.subscribe();
        tokio::spawn(async move {
            let _tracked = tracked;
            // Kept until the upgrade completes so the upstream connection is not torn down early.
            let _sender = sender;
            let (Ok(client), Ok(upstream)) = tokio::join!(client_upgrade, upstream_upgrade) else {
                return;
            };
            websocket::relay(
                TokioIo::new(client),
                TokioIo::new(upstream),
                websocket,
                drain,
            )
            .await;
        });
        // Upgraded connections are not HTTP requests in flight.
        drop(lease);
        let (parts, _) = resp.into_parts();
        return Response::from_parts(parts, ProxyBody::empty());
    }
    strip_hop_by_hop(resp.headers_mut());
    let (parts, body) = resp.into_parts();
    Response::from_parts(
        parts,
        ProxyBody::Upstream {
            body,
            lease: Lease {
                in_flight: lease,
                sender: Some(sender),
                done: false,
            },
        },
    )
}

/// 503 (nothing healthy to try) or 502 (the retry found nothing either).
fn no_instance(
    inner: &Inner,
    route: &CompiledRoute,
    failed: Option<&UpstreamState>,
    rand: u64,
    start: Instant,
    log: &Option<LogLine>,
) -> Response<ProxyBody> {
    let (status, msg) = match failed {
        Some(_) => (StatusCode::BAD_GATEWAY, "upstream connect failed\n"),
        None => (StatusCode::SERVICE_UNAVAILABLE, "no healthy instance\n"),
    };
    let now = Instant::now();
    let charged = match failed {
        Some(up) => Some((&up.stats, up.release.as_str())),
        None => route
            .by_weight(rand)
            .map(|b| (&b.stats, b.release.as_str())),
    };
    if let Some((stats, _)) = charged {
        stats.record(inner.sec(now), status.as_u16(), now - start);
    }
    access_log(log, status, start, charged.map_or("-", |(_, r)| r), "-");
    simple(status, msg)
}

/// A router-made error charged to `up`'s release.
fn failure(
    inner: &Inner,
    up: &UpstreamState,
    status: StatusCode,
    msg: &'static str,
    start: Instant,
    log: &Option<LogLine>,
) -> Response<ProxyBody> {
    let now = Instant::now();
    up.stats
        .record(inner.sec(now), status.as_u16(), now - start);
    access_log(log, status, start, &up.release, &up.id);
    simple(status, msg)
}

fn access_log(
    log: &Option<LogLine>,
    status: StatusCode,
    start: Instant,
    release: &str,
    upstream: &str,
) {
    if let Some(l) = log {
        let ms = start.elapsed().as_secs_f64() * 1000.0;
        let rid = String::from_utf8_lossy(l.request_id.as_bytes());
        eprintln!(
            "{} {} {} {:.1} {} {} {}",
            l.method,
            l.uri.path(),
            status.as_u16(),
            ms,
            release,
            upstream,
            rid
        );
    }
}

fn simple(status: StatusCode, msg: &'static str) -> Response<ProxyBody> {
    let mut resp = Response::new(ProxyBody::text(msg));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    resp
}

/// Host header, or the HTTP/2 authority.
fn request_host(req: &Request<Incoming>) -> Option<&str> {
    match req
        .headers()
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
    {
        Some(h) => Some(h),
        None => req.uri().authority().map(|a| a.as_str()),
    }
}

/// An HTTP/1.1 `Connection: upgrade` request with an `Upgrade` header.
fn is_upgrade(req: &Request<Incoming>) -> bool {
    req.version() == Version::HTTP_11
        && req.headers().contains_key(header::UPGRADE)
        && req.headers().get_all(header::CONNECTION).iter().any(|v| {
            v.as_bytes()
                .split(|b| *b == b',')
                .any(|t| t.trim_ascii().eq_ignore_ascii_case(b"upgrade"))
        })
}

/// Rewrites the request for an HTTP/1.1 upstream; returns the request id it carries.
fn prepare(ctx: &ConnCtx, req: &mut Request<Incoming>, upgrade: bool) -> HeaderValue {
    if req.version() != Version::HTTP_11 || req.uri().scheme().is_some() {
        // HTTP/2 (or absolute-form): the upstream wants origin-form and a Host header.
        if let Some(auth) = req.uri().authority()
            && !req.headers().contains_key(header::HOST)
            && let Ok(v) = HeaderValue::from_str(auth.as_str())
        {
            req.headers_mut().insert(header::HOST, v);
        }
        if req.uri().scheme().is_some() {
            let pq = req.uri().path_and_query().map_or("/", |p| p.as_str());
            if let Ok(u) = Uri::try_from(pq) {
                *req.uri_mut() = u;
            }
        }
        *req.version_mut() = Version::HTTP_11;
    }
    let h = req.headers_mut();
    if !upgrade {
        strip_hop_by_hop(h);
    }
    let xff = match h.get(&X_FORWARDED_FOR) {
        Some(prev) => {
            let ip = ctx.client_ip.as_bytes();
            let mut v = Vec::with_capacity(prev.len() + 2 + ip.len());
            v.extend_from_slice(prev.as_bytes());
            v.extend_from_slice(b", ");
            v.extend_from_slice(ip);
            HeaderValue::from_bytes(&v).unwrap_or_else(|_| ctx.client_ip.clone())
        }
        None => ctx.client_ip.clone(),
    };
    h.insert(X_FORWARDED_FOR, xff);
    h.insert(X_FORWARDED_PROTO, if ctx.tls { HTTPS } else { HTTP });
    if let Some(host) = h.get(header::HOST).cloned() {
        h.insert(X_FORWARDED_HOST, host);
    }
    match h.get(&X_REQUEST_ID) {
        Some(id) => id.clone(),
        None => {
            let id = ctx.inner.request_id();
            h.insert(X_REQUEST_ID, id.clone());
            id
        }
    }
}

/// Removes the headers that describe one hop (RFC 9110 §7.6.1), including those `Connection` names.
fn strip_hop_by_hop(h: &mut HeaderMap) {
    if let Some(conn) = h.remove(header::CONNECTION)
        && let Ok(s) = conn.to_str()
    {
        for token in s.split(',') {
            let token = token.trim();
            if !token.is_empty() {
                h.remove(token);
            }
        }
        // Further Connection headers (rare) go too.
        while h.remove(header::CONNECTION).is_some() {}
    }
    h.remove("keep-alive");
    h.remove(header::TE);
    h.remove(header::TRAILER);
    h.remove(header::TRANSFER_ENCODING);
    h.remove(header::UPGRADE);
    if h.keys().any(|k| k.as_str().starts_with("proxy-")) {
        let names: Vec<HeaderName> = h
            .keys()
            .filter(|k| k.as_str().starts_with("proxy-"))
            .cloned()
            .collect();
        for n in names {
            h.remove(n);
        }
    }
}
