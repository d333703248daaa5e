//! The HTTP/1.1 fast path: one client connection served on its own task. Heads are parsed with
//! httparse and rewritten into reused buffers, bodies are relayed by their framing, upstream
//! connections are plain pooled `TcpStream`s. No task, channel or header map per request.

use std::io;
use std::mem::MaybeUninit;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Instant;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio::time::Sleep;

use crate::challenge::ChallengeAnswer;
use crate::chunked::Chunked;
use crate::client_stream::ClientStream;
use crate::prefixed::Prefixed;
use crate::proxy::ConnCtx;
use crate::router::{DRAINING, Inner};
use crate::table::{CompiledRoute, Steer};
use crate::upstream::{InFlight, UpstreamState, tcp_connect};

/// The HTTP/2 prior-knowledge preface: such connections go to hyper.
const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
/// Most headers accepted in one head (hyper's default too).
const MAX_HEADERS: usize = 100;
/// Read buffer size of each side.
const BUF: usize = 16 * 1024;
/// Largest upstream response head accepted.
const MAX_RESPONSE_HEAD: usize = 256 * 1024;
/// Upper bound on discarding client bytes before closing after an error.
const LINGER: std::time::Duration = std::time::Duration::from_secs(1);

/// What the connection becomes when it stops being plain HTTP/1.1.
#[derive(Debug)]
pub(crate) enum Handoff<S> {
    /// HTTP/2 prior knowledge: hyper serves it (the peeked bytes come first).
    H2c(Prefixed<S>),
    /// A 101 went to the client: relay bytes both ways.
    Upgrade {
        client: Prefixed<S>,
        upstream: Prefixed<TcpStream>,
        websocket: bool,
    },
}

/// A byte buffer with a consumed prefix, filled from a stream. It owns no memory until the first
/// read and gives it back with `release`, so idle connections cost almost nothing.
#[derive(Debug, Default)]
struct Buf {
    /// Filled bytes are `data[start..]`; the spare capacity is read into without zeroing.
    data: Vec<u8>,
    start: usize,
}

impl Buf {
    fn bytes(&self) -> &[u8] {
        &self.data[self.start..]
    }

    fn len(&self) -> usize {
        self.data.len() - self.start
    }

    fn is_empty(&self) -> bool {
        self.start == self.data.len()
    }

    fn consume(&mut self, n: usize) {
        self.start += n;
        if self.start >= self.data.len() {
            self.clear();
        }
    }

    fn clear(&mut self) {
        self.start = 0;
        self.data.clear();
    }

    /// Gives the memory of an empty buffer back (an idle connection keeps none).
    fn release(&mut self) {
        if self.is_empty() && self.data.capacity() > 0 {
            self.start = 0;
            pool_put(std::mem::take(&mut self.data));
        }
    }

    fn take_rest(&mut self) -> Vec<u8> {
        let v = self.bytes().to_vec();
        self.clear();
        v
    }

    /// Current capacity (at least `BUF` once memory is needed).
    fn capacity(&self) -> usize {
        self.data.capacity().max(BUF)
    }

    /// Reads once more; allocates `BUF` on first use, compacts, then grows up to `max` when full.
    async fn fill<R: AsyncRead + Unpin>(&mut self, r: &mut R, max: usize) -> io::Result<usize> {
        if self.data.capacity() == 0 {
            self.data = pool_take();
        }
        if self.data.len() == self.data.capacity() {
            if self.start > 0 {
                self.data.drain(..self.start);
                self.start = 0;
            } else if self.data.len() < max {
                let n = (self.data.capacity() * 2).min(max);
                self.data.reserve_exact(n - self.data.len());
            } else {
                return Err(io::Error::other("buffer full"));
            }
        }
        // Reads into the spare capacity (there is some, so `Vec` does not reallocate).
        r.read_buf(&mut self.data).await
    }
}

/// Buffers kept per thread for reuse, so that a busy connection going idle after every response
/// does not pay a 16 KiB malloc and free per request.
const POOL: usize = 64;

thread_local! {
    static BUFS: std::cell::RefCell<Vec<Vec<u8>>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// An empty buffer of capacity `BUF` (pooled when one is free).
fn pool_take() -> Vec<u8> {
    BUFS.with(|p| p.borrow_mut().pop())
        .unwrap_or_else(|| Vec::with_capacity(BUF))
}

/// Keeps `v` for reuse when it has the standard size and the pool has room; frees it otherwise.
fn pool_put(mut v: Vec<u8>) {
    if v.capacity() != BUF {
        return;
    }
    v.clear();
    BUFS.with(|p| {
        let mut p = p.borrow_mut();
        if p.len() < POOL {
            p.push(v);
        }
    });
}

/// How a body is delimited.
#[derive(Debug)]
pub(crate) enum Framing {
    None,
    Length(u64),
    Chunked(Chunked),
    /// Until the sender closes (responses only).
    Eof,
}

/// Request facts kept only for the access log.
#[derive(Debug)]
struct Log {
    method: String,
    path: String,
    request_id: String,
}

/// A parsed, rewritten request head.
#[derive(Debug)]
struct Req {
    route: Option<Arc<CompiledRoute>>,
    body: Framing,
    keep_alive: bool,
    http10: bool,
    head_method: bool,
    /// Idempotent and bodiless: may go to another instance after a connect failure.
    retryable: bool,
    /// The whole request (head and body) sits in `Io::head`: it can be sent again.
    replayable: bool,
    upgrade: bool,
    websocket: bool,
    expect: bool,
    start: Instant,
    log: Option<Log>,
    /// Pin, cohort bucket or weighted: how the backend is chosen.
    steer: Steer,
    /// `Set-Cookie` value giving a new user their cohort key.
    set_cookie: Option<Vec<u8>>,
    /// A copy goes to the route's mirror release (if the body is in memory).
    mirror: bool,
    /// Length of the rewritten head in `Io::head` (a buffered body follows it).
    head_end: usize,
    /// `Strict-Transport-Security` added to the response (TLS listeners with HSTS).
    hsts: Option<Arc<http::HeaderValue>>,
}

enum Parsed {
    Partial,
    Done(usize, Box<Req>),
    Bad(u16),
}

/// A parsed upstream response head; the client's head is in `Io::resp`.
#[derive(Debug)]
struct Resp {
    status: u16,
    body: Framing,
    /// The upstream connection can serve another request once the body is read.
    reusable: bool,
    /// The client connection closes after this response.
    close: bool,
    /// Chunked upstream body, HTTP/1.0 client: send only the chunk data.
    decode: bool,
}

/// Why a request got no upstream response.
enum SendError {
    Connect,
    Timeout,
    Failed,
    /// The client went away (or broke its body framing) mid-request.
    Client,
}

/// What to do with the client connection after one exchange.
enum Flow {
    Keep,
    Close,
    /// Close, but first read what the client still sends so our last response is not reset.
    Linger,
    Upgrade(Prefixed<TcpStream>, bool),
}

/// Buffers and streams of one client connection.
#[derive(Debug)]
struct Io<S> {
    client: S,
    rbuf: Buf,
    ubuf: Buf,
    /// The rewritten request head (and the whole body when it was already buffered).
    head: Vec<u8>,
    /// The client's response head (and the start of the body).
    resp: Vec<u8>,
    /// Upstream response deadline, made on first use and re-armed lazily (it may fire early,
    /// never late).
    timer: Option<Pin<Box<Sleep>>>,
    drain: watch::Receiver<u8>,
    /// The router drains: answer with `Connection: close`, take no new request.
    draining: bool,
    /// `Strict-Transport-Security` for router-made responses (TLS listeners with HSTS).
    hsts: Option<Arc<http::HeaderValue>>,
}

/// One HTTP/1.1 client connection.
#[derive(Debug)]
pub(crate) struct Conn<S> {
    ctx: Arc<ConnCtx>,
    io: Io<S>,
}

impl<S: ClientStream> Conn<S> {
    pub(crate) fn new(ctx: Arc<ConnCtx>, client: S) -> Conn<S> {
        let drain = ctx.inner.drain.subscribe();
        let hsts = ctx.hsts.clone();
        // Nothing is allocated until the client sends something (see `Io::idle`).
        Conn {
            ctx,
            io: Io {
                client,
                rbuf: Buf::default(),
                ubuf: Buf::default(),
                head: Vec::new(),
                resp: Vec::new(),
                timer: None,
                drain,
                draining: false,
                hsts,
            },
        }
    }

    /// Serves requests until the connection closes or becomes something else.
    pub(crate) async fn run(mut self) -> Option<Handoff<S>> {
        let inner = self.ctx.inner.clone();
        let head_timeout = inner.config.header_read_timeout;
        let limit = inner.config.max_header_bytes.max(8192);
        let rmax = limit + BUF;
        // The first request's clock starts at accept; later ones at their first byte.
        let mut head_deadline = Some(after(tokio::time::Instant::now(), head_timeout));
        let mut first = true;
        loop {
            let (head_len, req) = loop {
                if !self.io.rbuf.is_empty() {
                    let data = self.io.rbuf.bytes();
                    let preface_prefix = first && PREFACE.starts_with(&data[..data.len().min(24)]);
                    if preface_prefix && data.len() >= PREFACE.len() {
                        let rest = self.io.rbuf.take_rest();
                        return Some(Handoff::H2c(Prefixed::new(rest, self.io.client)));
                    }
                    if !preface_prefix {
                        match parse_request(data, limit, &self.ctx, &mut self.io.head) {
                            Parsed::Partial => {}
                            Parsed::Done(n, req) => break (n, req),
                            Parsed::Bad(code) => {
                                let _ = self.io.client.write_all(bare(code)).await;
                                linger(&mut self.io.client).await;
                                return None;
                            }
                        }
                    }
                }
                self.io.idle();
                if self.io.rbuf.is_empty() && head_deadline.is_none() {
                    // Idle keep-alive connection: drain closes it.
                    if self.io.draining() {
                        // A FIN for TCP; for TLS also the close_notify clients expect.
                        let _ = self.io.client.shutdown().await;
                        return None;
                    }
                    tokio::select! {
                        biased;
                        r = read_more(&mut self.io.client, &mut self.io.rbuf, rmax) => match r {
                            Ok(0) | Err(_) => return None,
                            Ok(_) => {}
                        },
                        _ = self.io.drain.changed() => {
                            self.io.draining = *self.io.drain.borrow_and_update() >= DRAINING;
                        }
                    }
                } else {
                    let deadline = *head_deadline
                        .get_or_insert_with(|| after(tokio::time::Instant::now(), head_timeout));
                    match tokio::time::timeout_at(
                        deadline,
                        read_more(&mut self.io.client, &mut self.io.rbuf, rmax),
                    )
                    .await
                    {
                        Ok(Ok(0)) | Ok(Err(_)) | Err(_) => return None,
                        Ok(Ok(_)) => {}
                    }
                }
            };
            first = false;
            head_deadline = None;
            // ACME HTTP-01 validation is answered by the listener itself, never proxied.
            if let Some(challenges) = &self.ctx.config.challenges
                && let Some(answer) = challenges.answer_head(&self.io.rbuf.bytes()[..head_len])
            {
                self.io.rbuf.consume(head_len);
                let close = !req.keep_alive || !matches!(req.body, Framing::None);
                // Boxed: its state stays out of every connection's future.
                if !Box::pin(answer_challenge(&mut self.io, answer, close)).await {
                    return None;
                }
                continue;
            }
            // Boxed: its state lives only while a request does, not in every idle connection.
            match Box::pin(self.io.exchange(&inner, head_len, *req)).await {
                // TLS streams buffer: the response must be out before waiting for the client.
                Flow::Keep => {
                    if self.io.client.flush().await.is_err() {
                        return None;
                    }
                }
                Flow::Close => {
                    let _ = self.io.client.shutdown().await;
                    return None;
                }
                Flow::Linger => {
                    linger(&mut self.io.client).await;
                    return None;
                }
                Flow::Upgrade(upstream, websocket) => {
                    if self.io.client.flush().await.is_err() {
                        return None;
                    }
                    let rest = self.io.rbuf.take_rest();
                    return Some(Handoff::Upgrade {
                        client: Prefixed::new(rest, self.io.client),
                        upstream,
                        websocket,
                    });
                }
            }
        }
    }
}

/// Reads more of the client's bytes; an empty buffer gets memory only once the socket is readable.
async fn read_more(client: &mut impl ClientStream, buf: &mut Buf, max: usize) -> io::Result<usize> {
    if buf.is_empty() {
        client.wait_readable().await?;
    }
    buf.fill(client, max).await
}

/// `at + d`, saturating at about a year for huge configured timeouts.
fn after(at: tokio::time::Instant, d: std::time::Duration) -> tokio::time::Instant {
    at.checked_add(d)
        .unwrap_or_else(|| at + std::time::Duration::from_secs(365 * 86400))
}

/// Sends FIN, then reads (and drops) what the client still sends for a moment, so that closing
/// with unread bytes does not reset the connection before the client read our response.
async fn linger<S: ClientStream>(client: &mut S) {
    let _ = client.shutdown().await;
    // On the heap: an array here would sit in every connection's future, idle or not.
    let mut sink = vec![0u8; 4096];
    let _ = tokio::time::timeout(LINGER, async {
        let mut total = 0usize;
        while total < 1 << 20 {
            match client.read(&mut sink).await {
                Ok(0) | Err(_) => return,
                Ok(n) => total += n,
            }
        }
    })
    .await;
}

/// Writes an ACME challenge answer; false when the connection is to close (and now closed).
async fn answer_challenge<S: ClientStream>(
    io: &mut Io<S>,
    answer: ChallengeAnswer,
    close: bool,
) -> bool {
    let close = close || io.draining();
    let written = io.client.write_all(&answer.http1(close)).await.is_ok();
    if !written || close || io.client.flush().await.is_err() {
        linger(&mut io.client).await;
        return false;
    }
    true
}

/// Responses for heads the router cannot read at all (the connection closes).
fn bare(code: u16) -> &'static [u8] {
    match code {
        431 => b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
        _ => b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
    }
}

fn is(name: &[u8], lit: &[u8]) -> bool {
    name.eq_ignore_ascii_case(lit)
}

/// The comma-separated tokens of a header value, trimmed.
pub(crate) fn tokens(v: &[u8]) -> impl Iterator<Item = &[u8]> {
    v.split(|b| *b == b',').map(|t| t.trim_ascii())
}

fn parse_len(v: &[u8]) -> Option<u64> {
    if v.is_empty() || v.len() > 18 || !v.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(v.iter().fold(0u64, |n, d| n * 10 + u64::from(d - b'0')))
}

/// The final transfer coding is chunked.
pub(crate) fn last_is_chunked(v: &[u8]) -> bool {
    tokens(v)
        .filter(|t| !t.is_empty())
        .last()
        .is_some_and(|t| is(t, b"chunked"))
}

/// A header that `Connection` names (only looked up when `Connection` lists extra names).
fn listed(headers: &[httparse::Header<'_>], name: &[u8]) -> bool {
    headers
        .iter()
        .filter(|h| is(h.name.as_bytes(), b"connection"))
        .any(|h| tokens(h.value).any(|t| is(t, name)))
}

fn push_header(out: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    out.extend_from_slice(name);
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

/// Parses a request head from `buf` and writes the upstream's version of it into `out`.
fn parse_request(buf: &[u8], limit: usize, ctx: &ConnCtx, out: &mut Vec<u8>) -> Parsed {
    let mut headers = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut []);
    let head_len = match httparse::ParserConfig::default().parse_request_with_uninit_headers(
        &mut req,
        buf,
        &mut headers,
    ) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => {
            return if buf.len() >= limit {
                Parsed::Bad(431)
            } else {
                Parsed::Partial
            };
        }
        Err(httparse::Error::TooManyHeaders) => return Parsed::Bad(431),
        Err(_) => return Parsed::Bad(400),
    };
    if head_len > limit {
        return Parsed::Bad(431);
    }
    let start = Instant::now();
    let (Some(method), Some(target), Some(version)) = (req.method, req.path, req.version) else {
        return Parsed::Bad(400);
    };
    let http10 = version == 0;
    let headers: &[httparse::Header<'_>] = req.headers;

    let mut host: Option<&[u8]> = None;
    let mut content_length: Option<u64> = None;
    let mut te = false;
    let mut chunked = false;
    let (mut close, mut keep_alive, mut conn_upgrade, mut extra_listed) =
        (false, false, false, false);
    let mut upgrade_value: Option<&[u8]> = None;
    let mut request_id: Option<&[u8]> = None;
    let mut expect = false;
    for h in headers {
        let name = h.name.as_bytes();
        let v = h.value;
        if is(name, b"host") {
            host.get_or_insert(v);
        } else if is(name, b"content-length") {
            let Some(n) = parse_len(v) else {
                return Parsed::Bad(400);
            };
            if content_length.is_some_and(|m| m != n) {
                return Parsed::Bad(400);
            }
            content_length = Some(n);
        } else if is(name, b"transfer-encoding") {
            te = true;
            chunked = last_is_chunked(v);
        } else if is(name, b"connection") {
            for t in tokens(v) {
                if is(t, b"close") {
                    close = true;
                } else if is(t, b"keep-alive") {
                    keep_alive = true;
                } else if is(t, b"upgrade") {
                    conn_upgrade = true;
                } else if !t.is_empty() {
                    extra_listed = true;
                }
            }
        } else if is(name, b"upgrade") {
            upgrade_value = Some(v);
        } else if is(name, b"x-request-id") {
            request_id.get_or_insert(v);
        } else if is(name, b"expect") {
            expect = v.eq_ignore_ascii_case(b"100-continue");
        }
    }
    // Smuggling guards: a coding other than chunked, or both framings, or chunked in 1.0.
    if te && (!chunked || content_length.is_some() || http10) {
        return Parsed::Bad(400);
    }
    let upgrade = !http10 && conn_upgrade && upgrade_value.is_some();
    let websocket = upgrade && upgrade_value.is_some_and(|v| v.eq_ignore_ascii_case(b"websocket"));

    // Absolute-form targets become origin-form; their authority stands in for a missing Host.
    let mut authority: Option<&[u8]> = None;
    let mut origin = target.as_bytes();
    let scheme_len = if origin.len() >= 7 && origin[..7].eq_ignore_ascii_case(b"http://") {
        7
    } else if origin.len() >= 8 && origin[..8].eq_ignore_ascii_case(b"https://") {
        8
    } else {
        0
    };
    if scheme_len > 0 {
        let rest = &origin[scheme_len..];
        let end = rest
            .iter()
            .position(|b| *b == b'/' || *b == b'?')
            .unwrap_or(rest.len());
        authority = Some(&rest[..end]);
        origin = &rest[end..];
    }
    let origin_path: &[u8] = if origin.is_empty() { b"/" } else { origin };
    let path_only = {
        let end = origin_path
            .iter()
            .position(|b| *b == b'?')
            .unwrap_or(origin_path.len());
        &origin_path[..end]
    };
    let route_host = host.or(authority);
    let route = {
        let table = ctx.inner.table.load();
        table
            .find(
                ctx.listener,
                ctx.local,
                route_host.and_then(|h| std::str::from_utf8(h).ok()),
                std::str::from_utf8(path_only).unwrap_or("/"),
            )
            .cloned()
    };

    out.clear();
    // The rewrite adds a few forwarding headers: one allocation for the whole head.
    out.reserve(head_len + 256);
    out.extend_from_slice(method.as_bytes());
    out.push(b' ');
    if origin_path.first() == Some(&b'?') {
        out.push(b'/');
    }
    out.extend_from_slice(origin_path);
    out.extend_from_slice(b" HTTP/1.1\r\n");
    let mut xff_prev: Vec<&[u8]> = Vec::new();
    for h in headers {
        let name = h.name.as_bytes();
        let skip = match name.len() {
            2 => is(name, b"te"),
            7 => is(name, b"trailer") || (!upgrade && is(name, b"upgrade")),
            10 => is(name, b"connection") || is(name, b"keep-alive"),
            12 => is(name, b"x-request-id"),
            15 if is(name, b"x-forwarded-for") => {
                xff_prev.push(h.value);
                true
            }
            16 => is(name, b"x-forwarded-host"),
            17 => is(name, b"transfer-encoding") || is(name, b"x-forwarded-proto"),
            _ => false,
        } || (name.len() > 6 && is(&name[..6], b"proxy-"))
            || (extra_listed && !upgrade && listed(headers, name));
        if !skip {
            push_header(out, name, h.value);
        }
    }
    if host.is_none()
        && let Some(a) = authority
    {
        push_header(out, b"host", a);
    }
    if chunked {
        out.extend_from_slice(b"transfer-encoding: chunked\r\n");
    }
    if upgrade {
        out.extend_from_slice(b"connection: upgrade\r\n");
    }
    out.extend_from_slice(b"x-forwarded-for: ");
    for prev in xff_prev {
        out.extend_from_slice(prev);
        out.extend_from_slice(b", ");
    }
    out.extend_from_slice(ctx.client_ip.as_bytes());
    out.extend_from_slice(if ctx.tls {
        &b"\r\nx-forwarded-proto: https\r\n"[..]
    } else {
        b"\r\nx-forwarded-proto: http\r\n"
    });
    if let Some(h) = route_host {
        push_header(out, b"x-forwarded-host", h);
    }
    let generated;
    let rid: &[u8] = match request_id {
        Some(v) => v,
        None => {
            generated = ctx.inner.request_id_hex();
            &generated
        }
    };
    push_header(out, b"x-request-id", rid);
    out.extend_from_slice(b"\r\n");
    let head_end = out.len();

    let (steer, set_cookie, mirror) = match route.as_deref() {
        Some(r) => {
            let pairs = headers.iter().map(|h| (h.name.as_bytes(), h.value));
            let (steer, cookie) = r.decide(pairs, || ctx.inner.random_hex());
            (steer, cookie, r.mirrors(method, || ctx.inner.rand()))
        }
        None => (Steer::Weighted, None, false),
    };

    let body = match (chunked, content_length) {
        (true, _) => Framing::Chunked(Chunked::new()),
        (false, Some(n)) if n > 0 => Framing::Length(n),
        _ => Framing::None,
    };
    let bodiless = matches!(body, Framing::None);
    let log = ctx.inner.config.access_log.then(|| Log {
        method: method.to_string(),
        path: String::from_utf8_lossy(path_only).into_owned(),
        request_id: String::from_utf8_lossy(rid).into_owned(),
    });
    Parsed::Done(
        head_len,
        Box::new(Req {
            route,
            body,
            keep_alive: if http10 { keep_alive && !close } else { !close },
            http10,
            head_method: method == "HEAD",
            retryable: bodiless && matches!(method, "GET" | "HEAD" | "OPTIONS" | "PUT" | "DELETE"),
            replayable: bodiless,
            upgrade,
            websocket,
            expect,
            start,
            log,
            steer,
            set_cookie,
            mirror,
            head_end,
            hsts: ctx.hsts.clone(),
        }),
    )
}

/// Parses an upstream response head from `buf`; writes the client's version into `out`.
fn parse_response(
    buf: &[u8],
    req: &Req,
    close_client: bool,
    out: &mut Vec<u8>,
) -> Result<Option<(usize, Resp)>, ()> {
    let mut headers = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_HEADERS];
    let mut resp = httparse::Response::new(&mut []);
    let head_len = match httparse::ParserConfig::default()
        .allow_spaces_after_header_name_in_responses(true)
        .allow_obsolete_multiline_headers_in_responses(true)
        .parse_response_with_uninit_headers(&mut resp, buf, &mut headers)
    {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(_) => return Err(()),
    };
    let (Some(version), Some(status)) = (resp.version, resp.code) else {
        return Err(());
    };
    let reason = resp.reason.unwrap_or("");
    let headers: &[httparse::Header<'_>] = resp.headers;
    out.clear();
    out.reserve(head_len + 64);
    out.extend_from_slice(b"HTTP/1.1 ");
    out.extend_from_slice(&[
        b'0' + (status / 100 % 10) as u8,
        b'0' + (status / 10 % 10) as u8,
        b'0' + (status % 10) as u8,
        b' ',
    ]);
    out.extend_from_slice(reason.as_bytes());
    out.extend_from_slice(b"\r\n");
    if status == 101 {
        // The switch itself: Connection and Upgrade are the point.
        for h in headers {
            push_header(out, h.name.as_bytes(), h.value);
        }
        out.extend_from_slice(b"\r\n");
        return Ok(Some((
            head_len,
            Resp {
                status,
                body: Framing::None,
                reusable: false,
                close: true,
                decode: false,
            },
        )));
    }

    let mut content_length: Option<u64> = None;
    let (mut te, mut chunked, mut close, mut keep_alive, mut extra_listed) =
        (false, false, false, false, false);
    for h in headers {
        let name = h.name.as_bytes();
        if is(name, b"content-length") {
            match parse_len(h.value) {
                Some(n) if content_length.is_none_or(|m| m == n) => content_length = Some(n),
                _ => return Err(()),
            }
        } else if is(name, b"transfer-encoding") {
            te = true;
            chunked = last_is_chunked(h.value);
        } else if is(name, b"connection") {
            for t in tokens(h.value) {
                if is(t, b"close") {
                    close = true;
                } else if is(t, b"keep-alive") {
                    keep_alive = true;
                } else if !t.is_empty() {
                    extra_listed = true;
                }
            }
        }
    }
    let interim = (100..200).contains(&status);
    let body = if interim || status == 204 || status == 304 || req.head_method {
        Framing::None
    } else if te {
        if chunked {
            Framing::Chunked(Chunked::new())
        } else {
            Framing::Eof
        }
    } else {
        match content_length {
            Some(0) => Framing::None,
            Some(n) => Framing::Length(n),
            None => Framing::Eof,
        }
    };
    let decode = req.http10 && matches!(body, Framing::Chunked(_));
    let eof = matches!(body, Framing::Eof);
    let reusable = !eof && !close && (version == 1 || keep_alive);
    let close_client = !interim && (close_client || eof || decode || !req.keep_alive);

    for h in headers {
        let name = h.name.as_bytes();
        let skip = match name.len() {
            2 => is(name, b"te"),
            7 => is(name, b"upgrade"),
            10 => is(name, b"connection") || is(name, b"keep-alive"),
            14 => te && is(name, b"content-length"),
            17 => decode && is(name, b"transfer-encoding"),
            25 => req.hsts.is_some() && is(name, b"strict-transport-security"),
            _ => false,
        } || (name.len() > 6 && is(&name[..6], b"proxy-"))
            || (extra_listed && listed(headers, name));
        if !skip {
            push_header(out, name, h.value);
        }
    }
    if !interim {
        if let Some(c) = &req.set_cookie {
            push_header(out, b"set-cookie", c);
        }
        if let Some(v) = &req.hsts {
            push_header(out, b"strict-transport-security", v.as_bytes());
        }
        if close_client {
            out.extend_from_slice(b"connection: close\r\n");
        } else if req.http10 {
            out.extend_from_slice(b"connection: keep-alive\r\n");
        }
    }
    out.extend_from_slice(b"\r\n");
    Ok(Some((
        head_len,
        Resp {
            status,
            body,
            reusable,
            close: close_client,
            decode,
        },
    )))
}

/// A router-made response with a short text body.
fn error_response(out: &mut Vec<u8>, status: u16, msg: &str, close: bool) {
    let reason = http::StatusCode::from_u16(status)
        .ok()
        .and_then(|s| s.canonical_reason())
        .unwrap_or("");
    out.clear();
    out.extend_from_slice(
        format!(
            "HTTP/1.1 {status} {reason}\r\ncontent-type: text/plain; charset=utf-8\r\n\
             content-length: {}\r\n{}\r\n{msg}",
            msg.len(),
            if close { "connection: close\r\n" } else { "" },
        )
        .as_bytes(),
    );
}

/// Inserts a header line right after the status line of the response in `out`.
fn insert_header(out: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    let Some(at) = out.windows(2).position(|w| w == b"\r\n") else {
        return;
    };
    let mut line = Vec::with_capacity(name.len() + value.len() + 4);
    push_header(&mut line, name, value);
    out.splice(at + 2..at + 2, line);
}

fn access_log(log: &Option<Log>, status: u16, start: Instant, release: &str, upstream: &str) {
    if let Some(l) = log {
        let ms = start.elapsed().as_secs_f64() * 1000.0;
        eprintln!(
            "{} {} {} {:.1} {} {} {}",
            l.method, l.path, status, ms, release, upstream, l.request_id
        );
    }
}

/// Relays a body from `src` (bytes already in `buf` first) to `dst` by its framing; bytes `src`
/// sent beyond the body stay in `buf`.
async fn relay_body<S, D>(
    src: &mut S,
    buf: &mut Buf,
    dst: &mut D,
    framing: &mut Framing,
    decode: bool,
) -> Result<(), Broken>
where
    S: AsyncRead + Unpin,
    D: tokio::io::AsyncWrite + Unpin,
{
    loop {
        if !buf.is_empty() {
            match framing {
                Framing::None => return Ok(()),
                Framing::Length(n) => {
                    let take = (*n).min(buf.len() as u64) as usize;
                    dst.write_all(&buf.bytes()[..take])
                        .await
                        .map_err(|_| Broken::Dst)?;
                    buf.consume(take);
                    *n -= take as u64;
                }
                Framing::Chunked(c) => {
                    let data = buf.bytes();
                    let used = if decode {
                        let mut spans = Vec::new();
                        let used = c
                            .feed(data, |a, b| spans.push((a, b)))
                            .map_err(|_| Broken::Src)?;
                        for (a, b) in spans {
                            dst.write_all(&data[a..b]).await.map_err(|_| Broken::Dst)?;
                        }
                        used
                    } else {
                        let used = c.feed(data, |_, _| {}).map_err(|_| Broken::Src)?;
                        dst.write_all(&data[..used])
                            .await
                            .map_err(|_| Broken::Dst)?;
                        used
                    };
                    buf.consume(used);
                }
                Framing::Eof => {
                    dst.write_all(buf.bytes()).await.map_err(|_| Broken::Dst)?;
                    buf.clear();
                }
            }
        }
        if body_done(framing) {
            return Ok(());
        }
        // A TLS destination may hold what was written; it must go out before `src` is awaited.
        dst.flush().await.map_err(|_| Broken::Dst)?;
        let cap = buf.capacity();
        match buf.fill(src, cap).await {
            Ok(0) if matches!(framing, Framing::Eof) => return Ok(()),
            Ok(0) | Err(_) => return Err(Broken::Src),
            Ok(_) => {}
        }
    }
}

/// Which side of a relay failed.
enum Broken {
    Src,
    Dst,
}

/// Puts the body bytes already buffered behind the head into `out` (for one write).
fn take_buffered(buf: &mut Buf, framing: &mut Framing, decode: bool, out: &mut Vec<u8>) -> bool {
    let data = buf.bytes();
    let used = match framing {
        Framing::None => 0,
        Framing::Length(n) => {
            let take = (*n).min(data.len() as u64) as usize;
            *n -= take as u64;
            out.extend_from_slice(&data[..take]);
            take
        }
        Framing::Chunked(c) => {
            let r = if decode {
                c.feed(data, |a, b| out.extend_from_slice(&data[a..b]))
            } else {
                c.feed(data, |_, _| {})
            };
            let Ok(used) = r else { return false };
            if !decode {
                out.extend_from_slice(&data[..used]);
            }
            used
        }
        Framing::Eof => {
            out.extend_from_slice(data);
            data.len()
        }
    };
    buf.consume(used);
    true
}

/// The body has been relayed to its end (never for `Eof`, which ends when the sender closes).
fn body_done(framing: &Framing) -> bool {
    match framing {
        Framing::None => true,
        Framing::Length(n) => *n == 0,
        Framing::Chunked(c) => c.is_done(),
        Framing::Eof => false,
    }
}

impl<S: ClientStream> Io<S> {
    /// Between requests (nothing buffered): gives the buffers' memory back, so that an idle
    /// keep-alive connection holds only its socket and task.
    fn idle(&mut self) {
        if self.rbuf.is_empty() {
            self.rbuf.release();
            self.ubuf.release();
            self.head = Vec::new();
            self.resp = Vec::new();
        }
    }

    fn draining(&mut self) -> bool {
        if !self.draining && self.drain.has_changed().unwrap_or(false) {
            self.draining = *self.drain.borrow_and_update() >= DRAINING;
        }
        self.draining
    }

    /// Routes, forwards and answers one request whose head (`head_len` bytes) is in `rbuf`.
    async fn exchange(&mut self, inner: &Arc<Inner>, head_len: usize, mut req: Req) -> Flow {
        let draining = self.draining();
        self.rbuf.consume(head_len);
        // A body that is already complete in the buffer travels with the head (and can be resent).
        if !req.replayable && !matches!(req.body, Framing::None) {
            let data = self.rbuf.bytes();
            let complete = match &req.body {
                Framing::Length(n) => (data.len() as u64 >= *n).then_some(*n as usize),
                Framing::Chunked(_) => {
                    let mut probe = Chunked::new();
                    match probe.feed(data, |_, _| {}) {
                        Ok(used) if probe.is_done() => Some(used),
                        Ok(_) => None,
                        Err(_) => return self.error(400, "bad chunked body\n", true).await,
                    }
                }
                _ => None,
            };
            if let Some(n) = complete {
                self.head.extend_from_slice(&data[..n]);
                self.rbuf.consume(n);
                req.body = Framing::None;
                req.replayable = true;
            }
        }
        let Some(route) = req.route.take() else {
            access_log(&req.log, 404, req.start, "-", "-");
            return self
                .error(
                    404,
                    "no route\n",
                    !req.keep_alive || draining || !req.replayable,
                )
                .await;
        };
        // Only a request that is whole in memory can be copied without the user waiting.
        if req.mirror
            && req.replayable
            && !req.upgrade
            && let Some(backend) = route.mirror_backend()
        {
            crate::mirror::spawn(inner, backend, &self.head, req.head_end, req.head_method);
        }
        let rand = inner.rand();
        let mut failed: Option<Arc<UpstreamState>> = None;
        loop {
            let pick_rand = if failed.is_some() {
                rand.rotate_left(29)
            } else {
                rand
            };
            let Some(up) = route
                .pick_steered(req.steer, pick_rand, failed.as_deref())
                .map(|(_, u)| u.clone())
            else {
                let (status, msg) = match failed {
                    Some(_) => (502, "upstream connect failed\n"),
                    None => (503, "no healthy instance\n"),
                };
                let now = Instant::now();
                let charged = match &failed {
                    Some(up) => Some((&up.stats, up.release.as_str())),
                    None => route
                        .by_weight(rand)
                        .map(|b| (&b.stats, b.release.as_str())),
                };
                if let Some((stats, _)) = charged {
                    stats.record(inner.sec(now), status, now - req.start);
                }
                access_log(
                    &req.log,
                    status,
                    req.start,
                    charged.map_or("-", |(_, r)| r),
                    "-",
                );
                let close = !req.keep_alive || draining || !req.replayable;
                return self.error(status, msg, close).await;
            };
            let lease = up.start();
            let close_client = !req.keep_alive || draining;
            let (status, msg) = match self.send(inner, &up, &mut req, close_client).await {
                Ok((stream, resp)) => {
                    return self.respond(inner, lease, stream, resp, &req).await;
                }
                Err(SendError::Connect) => {
                    up.eject(inner.now_ms());
                    up.stats.connect_error(inner.sec(Instant::now()));
                    drop(lease);
                    if req.retryable && failed.is_none() {
                        failed = Some(up);
                        continue;
                    }
                    (502, "upstream connect failed\n")
                }
                Err(SendError::Timeout) => (504, "upstream timeout\n"),
                Err(SendError::Failed) => (502, "upstream failed\n"),
                Err(SendError::Client) => return Flow::Close,
            };
            let now = Instant::now();
            up.stats.record(inner.sec(now), status, now - req.start);
            access_log(&req.log, status, req.start, &up.release, &up.id);
            // The request body may be partly unread: only a bodiless exchange keeps the connection.
            let close = close_client || !matches!(req.body, Framing::None);
            return self.error(status, msg, close).await;
        }
    }

    async fn error(&mut self, status: u16, msg: &str, close: bool) -> Flow {
        error_response(&mut self.resp, status, msg, close);
        if let Some(v) = &self.hsts {
            insert_header(&mut self.resp, b"strict-transport-security", v.as_bytes());
        }
        if self.client.write_all(&self.resp).await.is_err() {
            return Flow::Close;
        }
        if close { Flow::Linger } else { Flow::Keep }
    }

    /// Gets the request to an upstream connection and reads the response head.
    async fn send(
        &mut self,
        inner: &Inner,
        up: &UpstreamState,
        req: &mut Req,
        close_client: bool,
    ) -> Result<(TcpStream, Resp), SendError> {
        let mut pooled = up.take_stream();
        if !req.replayable && pooled.as_ref().is_some_and(|s| !looks_alive(s)) {
            // Cannot resend a streamed body: do not gamble on a connection that closed while idle.
            pooled = None;
        }
        let deadline = after(
            tokio::time::Instant::from_std(req.start),
            inner.config.upstream_timeout,
        );
        loop {
            let (mut s, reused) = match pooled.take() {
                Some(s) => (s, true),
                None => match tcp_connect(up.addr, inner.config.connect_timeout).await {
                    Ok(s) => (s, false),
                    Err(_) => return Err(SendError::Connect),
                },
            };
            let stale_retry = reused && req.replayable;
            self.ubuf.clear();
            if s.write_all(&self.head).await.is_err() {
                if stale_retry {
                    continue;
                }
                // A fresh connection the upstream dropped before reading
                // anything: it is going away (killed, or closing its
                // listener); like a refused connect, another instance may
                // take an idempotent request.
                return Err(if reused {
                    SendError::Failed
                } else {
                    SendError::Connect
                });
            }
            let mut body_pending = !matches!(req.body, Framing::None);
            if body_pending && !req.expect {
                self.send_body(&mut s, req).await?;
                body_pending = false;
            }
            loop {
                let resp = match self
                    .read_head(&mut s, deadline, req, close_client || body_pending)
                    .await
                {
                    Ok(r) => r,
                    Err(HeadError::Empty) if stale_retry => break,
                    // Not one byte of answer on a fresh connection: the
                    // instance died or was stopping; treated as a failed
                    // connect, so an idempotent request goes elsewhere.
                    Err(HeadError::Empty) if !reused && !body_pending => {
                        return Err(SendError::Connect);
                    }
                    Err(HeadError::Timeout) => return Err(SendError::Timeout),
                    Err(_) => return Err(SendError::Failed),
                };
                if (100..200).contains(&resp.status) && resp.status != 101 {
                    if !req.http10 && self.client.write_all(&self.resp).await.is_err() {
                        return Err(SendError::Client);
                    }
                    if resp.status == 100 && body_pending {
                        self.send_body(&mut s, req).await?;
                        body_pending = false;
                    }
                    continue;
                }
                let mut resp = resp;
                if body_pending {
                    // Answered without the body: neither side's framing can be trusted any more.
                    resp.reusable = false;
                    resp.close = true;
                }
                return Ok((s, resp));
            }
        }
    }

    /// Streams the rest of the request body from the client to `s`.
    async fn send_body(&mut self, s: &mut TcpStream, req: &mut Req) -> Result<(), SendError> {
        match relay_body(&mut self.client, &mut self.rbuf, s, &mut req.body, false).await {
            Ok(()) => {
                req.body = Framing::None;
                Ok(())
            }
            Err(Broken::Src) => Err(SendError::Client),
            Err(Broken::Dst) => Err(SendError::Failed),
        }
    }

    /// Reads one response head into `ubuf` and builds the client's head in `resp`.
    async fn read_head(
        &mut self,
        s: &mut TcpStream,
        deadline: tokio::time::Instant,
        req: &Req,
        close_client: bool,
    ) -> Result<Resp, HeadError> {
        let mut got_any = !self.ubuf.is_empty();
        loop {
            if !self.ubuf.is_empty() {
                // Drain may have begun while the upstream worked: this response is the last.
                let close_client = close_client || self.draining();
                match parse_response(self.ubuf.bytes(), req, close_client, &mut self.resp) {
                    Ok(Some((n, resp))) => {
                        self.ubuf.consume(n);
                        return Ok(resp);
                    }
                    Ok(None) if self.ubuf.len() < MAX_RESPONSE_HEAD => {}
                    _ => return Err(HeadError::Invalid),
                }
            }
            let timer = self
                .timer
                .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
            let r = tokio::select! {
                biased;
                r = self.ubuf.fill(s, MAX_RESPONSE_HEAD) => r,
                () = timer.as_mut() => {
                    if tokio::time::Instant::now() >= deadline {
                        return Err(HeadError::Timeout);
                    }
                    timer.as_mut().reset(deadline);
                    continue;
                }
            };
            match r {
                Ok(n) if n > 0 => got_any = true,
                _ if got_any => return Err(HeadError::Invalid),
                _ => return Err(HeadError::Empty),
            }
        }
    }

    /// Writes the response head and relays its body; pools the upstream connection when clean.
    async fn respond(
        &mut self,
        inner: &Inner,
        lease: InFlight,
        mut s: TcpStream,
        mut resp: Resp,
        req: &Req,
    ) -> Flow {
        let up = &lease.up;
        let now = Instant::now();
        up.stats
            .record(inner.sec(now), resp.status, now - req.start);
        access_log(&req.log, resp.status, req.start, &up.release, &up.id);
        if resp.status == 101 {
            if !req.upgrade {
                drop(lease);
                return self
                    .error(502, "upstream switched protocols unasked\n", true)
                    .await;
            }
            // Upgraded connections are not HTTP requests in flight.
            drop(lease);
            if self.client.write_all(&self.resp).await.is_err() {
                return Flow::Close;
            }
            let rest = self.ubuf.take_rest();
            return Flow::Upgrade(Prefixed::new(rest, s), req.websocket);
        }
        if !take_buffered(&mut self.ubuf, &mut resp.body, resp.decode, &mut self.resp) {
            return Flow::Close;
        }
        if self.client.write_all(&self.resp).await.is_err() {
            return Flow::Close;
        }
        if !body_done(&resp.body) {
            match relay_body(
                &mut s,
                &mut self.ubuf,
                &mut self.client,
                &mut resp.body,
                resp.decode,
            )
            .await
            {
                Ok(()) => {}
                // A truncated body can only be signalled by closing.
                Err(_) => return Flow::Close,
            }
        }
        if resp.reusable && self.ubuf.is_empty() {
            up.put_stream(s);
        }
        self.ubuf.clear();
        drop(lease);
        if !resp.close {
            Flow::Keep
        } else if self.rbuf.is_empty() && matches!(req.body, Framing::None) {
            Flow::Close
        } else {
            // The client may still be sending (an unsent body, pipelined requests).
            Flow::Linger
        }
    }
}

/// Why no response head came.
enum HeadError {
    /// The connection ended before any byte of response (safe to resend).
    Empty,
    Invalid,
    Timeout,
}

/// A pooled connection the upstream has not closed (checked without blocking).
fn looks_alive(s: &TcpStream) -> bool {
    let mut probe = [0u8; 1];
    matches!(s.try_read(&mut probe), Err(e) if e.kind() == io::ErrorKind::WouldBlock)
}

#[cfg(test)]
mod tests {
    use super::{BUF, Buf};

    #[tokio::test]
    async fn buffers_hold_no_memory_until_read_and_after_release() {
        let mut b = Buf::default();
        assert_eq!(b.data.capacity(), 0);
        let mut src: &[u8] = b"GET / HTTP/1.1\r\n\r\n";
        assert_eq!(b.fill(&mut src, BUF).await.ok(), Some(18));
        assert_eq!(b.bytes(), b"GET / HTTP/1.1\r\n\r\n");
        // Not empty: release keeps the bytes.
        b.release();
        assert_eq!(b.len(), 18);
        b.consume(18);
        b.release();
        assert_eq!(b.data.capacity(), 0);
    }

    #[tokio::test]
    async fn full_buffers_compact_then_grow_up_to_the_limit() {
        let big = vec![b'x'; BUF * 3];
        let mut src: &[u8] = &big;
        let mut b = Buf::default();
        while b.len() < BUF {
            assert!(b.fill(&mut src, BUF * 2).await.is_ok_and(|n| n > 0));
        }
        b.consume(10);
        // Full with a consumed prefix: compacts instead of growing.
        assert!(b.fill(&mut src, BUF * 2).await.is_ok_and(|n| n == 10));
        assert_eq!(b.data.capacity(), BUF);
        while b.len() < BUF * 2 {
            assert!(b.fill(&mut src, BUF * 2).await.is_ok_and(|n| n > 0));
        }
        assert!(b.fill(&mut src, BUF * 2).await.is_err());
        assert_eq!(b.bytes().len(), BUF * 2);
    }
}
