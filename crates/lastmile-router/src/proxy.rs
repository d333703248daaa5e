//! The request path of hyper-served connections (h2): route, pick an instance, forward,
//! account. The policy (retries, hop-by-hop and forwarding headers, error answers) is
//! `policy`'s, shared with the HTTP/1.1 path; hyper and h2 do the framing.
//!
//! Limits: `max_headers` (431), `max_body_bytes` (413, by Content-Length up front and by counting
//! as the body streams), `body_read_timeout` (408) and `rate_limit` (429) apply per request.
//! `idle_timeout` and `send_timeout` are not enforced for h2 here: hyper's server builder has
//! no idle or write timeout, and the connection loop lives in `router.rs` (h2 keep-alive pings
//! could bound dead peers there).

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
use crate::limits::{LimitedBody, Tripped};
use crate::policy::{self, ErrorKind};
use crate::router::{Inner, Tracked};
use crate::table::{CompiledRoute, Steer};
use crate::upstream::{InFlight, UpstreamState};
use crate::websocket;

const X_FORWARDED_FOR: HeaderName = HeaderName::from_static(policy::X_FORWARDED_FOR);
const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static(policy::X_FORWARDED_PROTO);
const X_FORWARDED_HOST: HeaderName = HeaderName::from_static(policy::X_FORWARDED_HOST);
const X_REQUEST_ID: HeaderName = HeaderName::from_static(policy::X_REQUEST_ID);
const HTTP: HeaderValue = HeaderValue::from_static(policy::PROTO_HTTP);
const HTTPS: HeaderValue = HeaderValue::from_static(policy::PROTO_HTTPS);

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
    Connect(Request<LimitedBody>),
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
    let limits = &ctx.config.limits;
    let refusal = if req.headers().len() > limits.max_headers {
        Some(ErrorKind::HeadersTooLarge)
    } else if req.body().size_hint().lower() > limits.max_body_bytes {
        Some(ErrorKind::BodyTooLarge)
    } else {
        None
    };
    if let Some(kind) = refusal {
        let resp = simple(kind);
        access_log(&log, resp.status(), start, "-", "-");
        return Ok(resp);
    }
    if let Some(secs) = crate::limits::rate_limited(&ctx) {
        let mut resp = simple(ErrorKind::TooManyRequests);
        resp.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        access_log(&log, resp.status(), start, "-", "-");
        return Ok(resp);
    }
    let Some(route) = route else {
        let resp = simple(ErrorKind::NoRoute);
        access_log(&log, resp.status(), start, "-", "-");
        return Ok(resp);
    };
    let websocket = upgrade
        && req
            .headers()
            .get(header::UPGRADE)
            .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"websocket"));
    let retryable =
        policy::is_retryable_method(req.method().as_str().as_bytes()) && req.body().is_end_stream();
    let client_upgrade = upgrade.then(|| hyper::upgrade::on(&mut req));
    let (parts, body) = req.into_parts();
    let (body, tripped) = LimitedBody::new(body, limits.max_body_bytes, limits.body_read_timeout);
    let mut req = Request::from_parts(parts, body);
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
                return Ok(failure(inner, &up, ErrorKind::ConnectFailed, start, &log));
            }
            Err(SendError::Timeout) => {
                return Ok(failure(inner, &up, ErrorKind::UpstreamTimeout, start, &log));
            }
            Err(SendError::Failed) => {
                if let Some(kind) = body_refusal(&tripped) {
                    // The client's body broke a limit: its fault, not the release's.
                    let resp = simple(kind);
                    access_log(&log, resp.status(), start, &up.release, &up.id);
                    return Ok(resp);
                }
                return Ok(failure(inner, &up, ErrorKind::UpstreamFailed, start, &log));
            }
        }
    }
}

/// The answer for a request whose body stopped at a limit, if it did.
fn body_refusal(tripped: &Tripped) -> Option<ErrorKind> {
    if tripped.too_large() {
        Some(ErrorKind::BodyTooLarge)
    } else if tripped.timed_out() {
        Some(ErrorKind::RequestTimeout)
    } else {
        None
    }
}

/// Sends `req` on a pooled connection, or on a new one when none is ready (or it just closed).
async fn send(
    inner: &Inner,
    up: &UpstreamState,
    mut req: Request<LimitedBody>,
) -> Result<(Response<Incoming>, SendRequest<LimitedBody>), SendError> {
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
    sender: SendRequest<LimitedBody>,
    client_upgrade: Option<hyper::upgrade::OnUpgrade>,
    websocket: bool,
    start: Instant,
    log: &Option<LogLine>,
) -> Response<ProxyBody> {
    let inner = &*ctx.inner;
    let up = lease.up.clone();
    let status = resp.status();
    if status != StatusCode::SWITCHING_PROTOCOLS && !framing_is_unambiguous(resp.headers()) {
        // hyper read it one way (Transfer-Encoding wins, equal lengths merge); the upstream may
        // have meant another. The connection goes with `sender` and `resp`, never pooled.
        return failure(inner, &up, ErrorKind::BadResponse, start, log);
    }
    let now = Instant::now();
    up.record(inner.ms(now), status.as_u16(), now - start);
    access_log(log, status, start, &up.release, &up.id);
    if status == StatusCode::SWITCHING_PROTOCOLS {
        let Some(client_upgrade) = client_upgrade else {
            return simple(ErrorKind::SwitchedUnasked);
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
    let kind = match failed {
        Some(_) => ErrorKind::ConnectFailed,
        None => ErrorKind::NoHealthyInstance,
    };
    let status = status_of(kind);
    let now = Instant::now();
    let charged = match failed {
        Some(up) => Some((&up.stats, up.release.as_str())),
        None => route
            .by_weight(rand)
            .map(|b| (&b.stats, b.release.as_str())),
    };
    if let Some((stats, _)) = charged {
        stats.record(inner.sec(now), status.as_u16(), now - start, false);
    }
    access_log(log, status, start, charged.map_or("-", |(_, r)| r), "-");
    simple(kind)
}

/// A router-made error charged to `up`'s release.
fn failure(
    inner: &Inner,
    up: &UpstreamState,
    kind: ErrorKind,
    start: Instant,
    log: &Option<LogLine>,
) -> Response<ProxyBody> {
    let status = status_of(kind);
    let now = Instant::now();
    up.record(inner.ms(now), status.as_u16(), now - start);
    access_log(log, status, start, &up.release, &up.id);
    simple(kind)
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

fn status_of(kind: ErrorKind) -> StatusCode {
    StatusCode::from_u16(kind.status()).unwrap_or(StatusCode::BAD_GATEWAY)
}

/// A router-made answer from the policy's error table.
fn simple(kind: ErrorKind) -> Response<ProxyBody> {
    let mut resp = Response::new(ProxyBody::text(kind.message()));
    *resp.status_mut() = status_of(kind);
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    resp
}

/// Host header, or the HTTP/2 authority.
fn request_host<B>(req: &Request<B>) -> Option<&str> {
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
fn is_upgrade<B>(req: &Request<B>) -> bool {
    req.version() == Version::HTTP_11
        && req.headers().contains_key(header::UPGRADE)
        && req.headers().get_all(header::CONNECTION).iter().any(|v| {
            v.as_bytes()
                .split(|b| *b == b',')
                .any(|t| t.trim_ascii().eq_ignore_ascii_case(b"upgrade"))
        })
}

/// Rewrites the request for an HTTP/1.1 upstream; returns the request id it carries.
fn prepare<B>(ctx: &ConnCtx, req: &mut Request<B>, upgrade: bool) -> HeaderValue {
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

/// The same response framing rules as the HTTP/1.1 path (`http1::parse_response`): at most one
/// of Content-Length (one field, digits only) or Transfer-Encoding (exactly `chunked`).
fn framing_is_unambiguous(h: &HeaderMap) -> bool {
    let mut lengths = h.get_all(header::CONTENT_LENGTH).iter();
    let mut codings = h.get_all(header::TRANSFER_ENCODING).iter();
    match (lengths.next(), codings.next()) {
        (None, None) => true,
        (Some(len), None) => {
            let len = len.as_bytes().trim_ascii();
            lengths.next().is_none() && !len.is_empty() && len.iter().all(u8::is_ascii_digit)
        }
        (None, Some(coding)) => {
            codings.next().is_none()
                && coding
                    .as_bytes()
                    .trim_ascii()
                    .eq_ignore_ascii_case(b"chunked")
        }
        (Some(_), Some(_)) => false,
    }
}

/// Removes the headers that describe one hop (RFC 9110 §7.6.1), including those `Connection`
/// names — except the ones the policy protects (Host, framing, Expect, forwarding headers).
fn strip_hop_by_hop(h: &mut HeaderMap) {
    if h.contains_key(header::CONNECTION) {
        let listed: Vec<HeaderName> = h
            .get_all(header::CONNECTION)
            .iter()
            .flat_map(|v| v.as_bytes().split(|b| *b == b','))
            .map(<[u8]>::trim_ascii)
            .filter(|t| !t.is_empty() && policy::classify(t).connection_may_remove())
            .filter_map(|t| HeaderName::from_bytes(t).ok())
            .collect();
        for name in listed {
            h.remove(name);
        }
        h.remove(header::CONNECTION);
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

#[cfg(test)]
mod tests {
    use http::header::{HeaderMap, HeaderValue};

    use super::{framing_is_unambiguous, strip_hop_by_hop};

    #[test]
    fn ambiguous_response_framing_is_refused() {
        let framing = |pairs: &[(&'static str, &'static str)]| {
            let mut h = HeaderMap::new();
            for (n, v) in pairs {
                h.append(*n, HeaderValue::from_static(v));
            }
            framing_is_unambiguous(&h)
        };
        assert!(framing(&[]));
        assert!(framing(&[("content-length", "5")]));
        assert!(framing(&[("transfer-encoding", "chunked")]));
        assert!(!framing(&[
            ("content-length", "5"),
            ("content-length", "5")
        ]));
        assert!(!framing(&[("content-length", "5, 5")]));
        assert!(!framing(&[
            ("content-length", "5"),
            ("transfer-encoding", "chunked")
        ]));
        assert!(!framing(&[("transfer-encoding", "gzip, chunked")]));
        assert!(!framing(&[
            ("transfer-encoding", "chunked"),
            ("transfer-encoding", "chunked")
        ]));
    }

    #[test]
    fn connection_cannot_strip_host_or_framing() {
        let mut h = HeaderMap::new();
        h.insert("host", HeaderValue::from_static("x"));
        h.insert("content-length", HeaderValue::from_static("5"));
        h.insert("x-forwarded-for", HeaderValue::from_static("10.0.0.1"));
        h.insert("x-a", HeaderValue::from_static("1"));
        h.insert("x-b", HeaderValue::from_static("2"));
        h.insert("proxy-authorization", HeaderValue::from_static("secret"));
        h.append(
            "connection",
            HeaderValue::from_static("host, content-length, x-forwarded-for, x-a"),
        );
        h.append("connection", HeaderValue::from_static("keep-alive, x-b"));
        strip_hop_by_hop(&mut h);
        let mut names: Vec<&str> = h.keys().map(|k| k.as_str()).collect();
        names.sort_unstable();
        assert_eq!(names, ["content-length", "host", "x-forwarded-for"]);
    }
}
