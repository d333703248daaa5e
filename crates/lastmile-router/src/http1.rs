//! The HTTP/1.1 fast path: one client connection served on its own task. Heads are parsed with
//! httparse and rewritten into reused buffers, bodies are relayed by their framing, upstream
//! connections are plain pooled `TcpStream`s. No task, channel or header map per request.
//!
//! Framing is decided once, here, and written from that decision: `Content-Length` and
//! `Transfer-Encoding` are never copied from one hop to the next, and anything ambiguous — two
//! framings, two lengths, a coding other than `chunked`, bare LF, obs-fold, a second `Host` — is
//! refused before a byte goes upstream (RFC 9112 §6.3, §11.2). Upstream responses get the same
//! discipline; a connection whose response framing was in doubt is never pooled.

use std::io;
use std::mem::MaybeUninit;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio::time::Sleep;

use crate::challenge::ChallengeAnswer;
use crate::chunked::Chunked;
use crate::client_stream::ClientStream;
use crate::config::Limits;
use crate::policy::{self, ErrorKind, Field, classify};
use crate::prefixed::Prefixed;
use crate::proxy::ConnCtx;
use crate::router::{DRAINING, Inner};
use crate::table::{CompiledRoute, Steer};
use crate::upstream::{InFlight, UpstreamState, tcp_connect};

/// The HTTP/2 prior-knowledge preface: such connections go to hyper.
const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
/// Most header fields read from one head; `Limits::max_headers` (at most this) decides.
const MAX_HEADERS: usize = 256;
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
    /// Over the client's rate limit: answer 429 with this `Retry-After` (seconds).
    rate_limited: Option<u64>,
    /// The listener's `max_body_bytes` (a chunked body is counted as it streams).
    max_body: u64,
    /// The listener's `body_read_timeout`.
    body_timeout: Duration,
    /// The listener's `send_timeout`, for every write to the client.
    send_timeout: Duration,
}

enum Parsed {
    Partial,
    Done(usize, Box<Req>),
    Bad(ErrorKind),
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
    /// The upstream's response head was invalid or its framing ambiguous.
    BadResponse,
    /// The client went away mid-request (or stopped reading an interim response).
    Client,
    /// The client's body broke its framing (400), stalled (408) or grew too large (413).
    Body(ErrorKind),
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
        let mut idle = IdleTimer::new(self.ctx.config.limits.idle_timeout);
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
                                let mut answer = bare(code).to_vec();
                                // HSTS goes on every answer of a TLS listener that has it.
                                if let Some(v) = &self.io.hsts {
                                    insert_header(
                                        &mut answer,
                                        b"strict-transport-security",
                                        v.as_bytes(),
                                    );
                                }
                                let _ = self.io.client.write_all(&answer).await;
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
                        () = idle.elapsed() => return None,
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

/// `Limits::idle_timeout` between requests. One timer per connection, made on the first idle wait
/// and re-armed only when it fires early, so a busy keep-alive connection does not touch the
/// timer wheel on every request.
struct IdleTimer {
    timeout: Duration,
    sleep: Option<Pin<Box<Sleep>>>,
}

impl IdleTimer {
    fn new(timeout: Duration) -> IdleTimer {
        IdleTimer {
            timeout,
            sleep: None,
        }
    }

    /// Resolves once the connection has been idle (from now) for the timeout.
    async fn elapsed(&mut self) {
        let deadline = after(tokio::time::Instant::now(), self.timeout);
        let sleep = self
            .sleep
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
        loop {
            sleep.as_mut().await;
            // An earlier wait's deadline: the connection has not been idle that long.
            if tokio::time::Instant::now() >= deadline {
                return;
            }
            sleep.as_mut().reset(deadline);
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
fn bare(kind: ErrorKind) -> &'static [u8] {
    match kind {
        ErrorKind::HeadersTooLarge => b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-type: text/plain; charset=utf-8\r\ncontent-length: 32\r\nconnection: close\r\n\r\nrequest header fields too large\n",
        ErrorKind::BodyTooLarge => b"HTTP/1.1 413 Payload Too Large\r\ncontent-type: text/plain; charset=utf-8\r\ncontent-length: 23\r\nconnection: close\r\n\r\nrequest body too large\n",
        ErrorKind::NotImplemented => b"HTTP/1.1 501 Not Implemented\r\ncontent-type: text/plain; charset=utf-8\r\ncontent-length: 32\r\nconnection: close\r\n\r\ntransfer coding not implemented\n",
        _ => b"HTTP/1.1 400 Bad Request\r\ncontent-type: text/plain; charset=utf-8\r\ncontent-length: 12\r\nconnection: close\r\n\r\nbad request\n",
    }
}

fn is(name: &[u8], lit: &[u8]) -> bool {
    name.eq_ignore_ascii_case(lit)
}

/// The comma-separated tokens of a header value, trimmed.
pub(crate) fn tokens(v: &[u8]) -> impl Iterator<Item = &[u8]> {
    v.split(|b| *b == b',').map(|t| t.trim_ascii())
}

/// A Content-Length value: digits only. The list form (`5, 5`) is refused, not merged: RFC 9110
/// §8.6 allows either, and refusing leaves no room for two parsers to disagree.
fn parse_len(v: &[u8]) -> Option<u64> {
    if v.is_empty() || v.len() > 18 || !v.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(v.iter().fold(0u64, |n, d| n * 10 + u64::from(d - b'0')))
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

/// Appends `n` in decimal.
fn push_u64(out: &mut Vec<u8>, mut n: u64) {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[i..]);
}

/// The framing headers of a forwarded head, written from the router's own decision.
fn push_framing(out: &mut Vec<u8>, chunked: bool, content_length: Option<u64>) {
    if chunked {
        out.extend_from_slice(b"transfer-encoding: chunked\r\n");
    } else if let Some(n) = content_length {
        out.extend_from_slice(b"content-length: ");
        push_u64(out, n);
        out.extend_from_slice(b"\r\n");
    }
}

/// Some LF in `head` is not preceded by CR. httparse accepts bare LF line ends (RFC 9112 §2.2
/// lets a recipient), but a proxy that does forwards a message other hops may split elsewhere.
fn has_bare_lf(head: &[u8]) -> bool {
    let mut prev = 0u8;
    let mut bad = false;
    for &b in head {
        bad |= b == b'\n' && prev != b'\r';
        prev = b;
    }
    bad
}

/// `host [":" port]` of RFC 3986 (reg-name, IPv4 or bracketed IP literal): no whitespace,
/// userinfo, path or control bytes. Empty is allowed (a Host for a target without authority).
fn valid_host(v: &[u8]) -> bool {
    v.iter().all(|&b| {
        b.is_ascii_alphanumeric()
            || matches!(
                b,
                b'-' | b'.'
                    | b'_'
                    | b'~'
                    | b'%'
                    | b'!'
                    | b'$'
                    | b'&'
                    | b'\''
                    | b'('
                    | b')'
                    | b'*'
                    | b'+'
                    | b','
                    | b';'
                    | b'='
                    | b':'
                    | b'['
                    | b']'
            )
    })
}

/// A request head read and checked, before routing.
#[derive(Debug)]
struct Head<'b, 'h> {
    /// Bytes of the head in the client's buffer.
    len: usize,
    method: &'b str,
    http10: bool,
    headers: &'h [httparse::Header<'b>],
    /// The target in origin-form (an absolute-form target loses its scheme and authority).
    origin: &'b [u8],
    /// `origin` without its query (for routing).
    path: &'b [u8],
    /// The Host field, else the absolute-form authority.
    host: Option<&'b [u8]>,
    /// No Host field came: `host` (the authority) must be written as one.
    host_from_target: bool,
    content_length: Option<u64>,
    chunked: bool,
    close: bool,
    keep_alive: bool,
    upgrade: bool,
    websocket: bool,
    /// `Connection` names fields beyond close, keep-alive and upgrade.
    extra_listed: bool,
    request_id: Option<&'b [u8]>,
    expect: bool,
}

/// Reads a request head from `buf` and applies every framing and syntax rule; `Ok(None)` while
/// the head is incomplete. Nothing here depends on routes, so it can be tested (and fuzzed) alone.
fn parse_head<'b, 'h>(
    buf: &'b [u8],
    limit: usize,
    limits: &Limits,
    headers: &'h mut [MaybeUninit<httparse::Header<'b>>; MAX_HEADERS],
) -> Result<Option<Head<'b, 'h>>, ErrorKind> {
    let mut req = httparse::Request::new(&mut []);
    // Strict for requests: no whitespace before the colon, no obs-fold, no control bytes in
    // the request line or values (httparse rejects those); bare LF is checked below.
    let len = match httparse::ParserConfig::default()
        .parse_request_with_uninit_headers(&mut req, buf, headers)
    {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) if buf.len() >= limit => {
            return Err(ErrorKind::HeadersTooLarge);
        }
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(httparse::Error::TooManyHeaders) => return Err(ErrorKind::HeadersTooLarge),
        Err(_) => return Err(ErrorKind::BadRequest),
    };
    if len > limit {
        return Err(ErrorKind::HeadersTooLarge);
    }
    if has_bare_lf(&buf[..len]) {
        return Err(ErrorKind::BadRequest);
    }
    let httparse::Request {
        method,
        path,
        version,
        headers,
    } = req;
    let (Some(method), Some(target), Some(version)) = (method, path, version) else {
        return Err(ErrorKind::BadRequest);
    };
    let headers: &'h [httparse::Header<'b>] = headers;
    if headers.len() > limits.max_headers {
        return Err(ErrorKind::HeadersTooLarge);
    }
    let http10 = version == 0;

    let mut host: Option<&[u8]> = None;
    let mut content_length: Option<u64> = None;
    let mut transfer_encoding: Option<&[u8]> = None;
    let (mut close, mut keep_alive, mut conn_upgrade, mut extra_listed) =
        (false, false, false, false);
    let mut upgrade_value: Option<&[u8]> = None;
    let mut request_id: Option<&[u8]> = None;
    let mut expect = false;
    for h in headers {
        let v = h.value;
        match classify(h.name.as_bytes()) {
            Field::Host => {
                if host.is_some() || !valid_host(v) {
                    return Err(ErrorKind::BadRequest);
                }
                host = Some(v);
            }
            Field::ContentLength => {
                // Any second Content-Length is refused, equal or not (see `parse_len`).
                if content_length.is_some() {
                    return Err(ErrorKind::BadRequest);
                }
                content_length = Some(parse_len(v).ok_or(ErrorKind::BadRequest)?);
            }
            Field::TransferEncoding => {
                // A second field line stacks codings (`chunked, chunked`): not implemented.
                if transfer_encoding.is_some() {
                    return Err(ErrorKind::NotImplemented);
                }
                transfer_encoding = Some(v);
            }
            Field::Connection => {
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
            }
            Field::Upgrade => upgrade_value = Some(v),
            Field::XRequestId => {
                request_id.get_or_insert(v);
            }
            Field::Expect => expect = v.eq_ignore_ascii_case(b"100-continue"),
            _ => {}
        }
    }
    // Smuggling guards (RFC 9112 §6.1, §6.3): never both framings; no transfer coding in
    // HTTP/1.0; `chunked` alone is the one coding implemented.
    let chunked = match transfer_encoding {
        None => false,
        Some(_) if content_length.is_some() || http10 => return Err(ErrorKind::BadRequest),
        Some(v) if v.eq_ignore_ascii_case(b"chunked") => true,
        Some([]) => return Err(ErrorKind::BadRequest),
        Some(_) => return Err(ErrorKind::NotImplemented),
    };
    if content_length.is_some_and(|n| n > limits.max_body_bytes) {
        return Err(ErrorKind::BodyTooLarge);
    }
    // An `h2c` upgrade is never relayed: the tunnel it opens to one instance would carry
    // requests the router never sees, past its routes, limits and rate limit ("h2c smuggling";
    // RFC 9113 §3.1 retired it). Such a request is forwarded as a plain one.
    let h2c = upgrade_value.is_some_and(|v| tokens(v).any(|t| t.eq_ignore_ascii_case(b"h2c")));
    let upgrade = !http10 && conn_upgrade && upgrade_value.is_some() && !h2c;
    let websocket = upgrade && upgrade_value.is_some_and(|v| v.eq_ignore_ascii_case(b"websocket"));

    // Absolute-form targets become origin-form; their authority stands in for a missing Host
    // and must equal a present one (RFC 9112 §3.2.2).
    let mut origin = target.as_bytes();
    let scheme_len = if origin.len() >= 7 && origin[..7].eq_ignore_ascii_case(b"http://") {
        7
    } else if origin.len() >= 8 && origin[..8].eq_ignore_ascii_case(b"https://") {
        8
    } else {
        0
    };
    let mut host_from_target = false;
    if scheme_len > 0 {
        let rest = &origin[scheme_len..];
        let end = rest
            .iter()
            .position(|b| *b == b'/' || *b == b'?')
            .unwrap_or(rest.len());
        let authority = &rest[..end];
        if authority.is_empty() || !valid_host(authority) {
            return Err(ErrorKind::BadRequest);
        }
        match host {
            Some(h) if !h.eq_ignore_ascii_case(authority) => return Err(ErrorKind::BadRequest),
            Some(_) => {}
            None => {
                host = Some(authority);
                host_from_target = true;
            }
        }
        origin = &rest[end..];
        if origin.is_empty() {
            origin = b"/";
        }
    } else if !(origin.first() == Some(&b'/') || (origin == b"*" && method == "OPTIONS")) {
        // Authority-form (CONNECT) and anything else: not something the router forwards.
        return Err(ErrorKind::BadRequest);
    }
    // HTTP/1.1 requires Host (RFC 9112 §3.2).
    if host.is_none() && !http10 {
        return Err(ErrorKind::BadRequest);
    }
    let path = {
        let end = origin
            .iter()
            .position(|b| *b == b'?')
            .unwrap_or(origin.len());
        &origin[..end]
    };
    Ok(Some(Head {
        len,
        method,
        http10,
        headers,
        origin,
        path,
        host,
        host_from_target,
        content_length,
        chunked,
        close,
        keep_alive,
        upgrade,
        websocket,
        extra_listed,
        request_id,
        expect,
    }))
}

/// Writes the upstream's version of `head` into `out`: origin-form, HTTP/1.1, the client's
/// end-to-end fields, framing from the router's own decision, then the forwarding headers.
/// Returns the head's length.
fn write_head(
    head: &Head<'_, '_>,
    client_ip: &[u8],
    request_id: &[u8],
    tls: bool,
    out: &mut Vec<u8>,
) -> usize {
    out.clear();
    // The rewrite adds a few forwarding headers: one allocation for the whole head.
    out.reserve(head.len + 256);
    out.extend_from_slice(head.method.as_bytes());
    out.push(b' ');
    out.extend_from_slice(head.origin);
    out.extend_from_slice(b" HTTP/1.1\r\n");
    let mut xff_prev: Vec<&[u8]> = Vec::new();
    for h in head.headers {
        let name = h.name.as_bytes();
        let field = classify(name);
        if head.extra_listed
            && !head.upgrade
            && field.connection_may_remove()
            && listed(head.headers, name)
        {
            continue;
        }
        let forward = match field {
            Field::Other | Field::Host | Field::Expect => true,
            Field::Upgrade => head.upgrade,
            Field::XForwardedFor => {
                xff_prev.push(h.value);
                false
            }
            // Framing, hop-by-hop and forwarding fields: the router writes its own.
            _ => false,
        };
        if forward {
            push_header(out, name, h.value);
        }
    }
    if head.host_from_target
        && let Some(a) = head.host
    {
        push_header(out, b"host", a);
    }
    push_framing(out, head.chunked, head.content_length);
    if head.upgrade {
        out.extend_from_slice(b"connection: upgrade\r\n");
    }
    out.extend_from_slice(policy::X_FORWARDED_FOR.as_bytes());
    out.extend_from_slice(b": ");
    for prev in xff_prev {
        out.extend_from_slice(prev);
        out.extend_from_slice(b", ");
    }
    out.extend_from_slice(client_ip);
    out.extend_from_slice(b"\r\n");
    push_header(
        out,
        policy::X_FORWARDED_PROTO.as_bytes(),
        if tls {
            policy::PROTO_HTTPS.as_bytes()
        } else {
            policy::PROTO_HTTP.as_bytes()
        },
    );
    if let Some(h) = head.host {
        push_header(out, policy::X_FORWARDED_HOST.as_bytes(), h);
    }
    push_header(out, policy::X_REQUEST_ID.as_bytes(), request_id);
    out.extend_from_slice(b"\r\n");
    out.len()
}

/// Parses a request head from `buf` and writes the upstream's version of it into `out`.
fn parse_request(buf: &[u8], limit: usize, ctx: &ConnCtx, out: &mut Vec<u8>) -> Parsed {
    let mut headers = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_HEADERS];
    let limits = &ctx.config.limits;
    let head = match parse_head(buf, limit, limits, &mut headers) {
        Ok(Some(head)) => head,
        Ok(None) => return Parsed::Partial,
        Err(kind) => return Parsed::Bad(kind),
    };
    let start = Instant::now();
    let route = {
        let table = ctx.inner.table.load();
        table
            .find(
                ctx.listener,
                ctx.local,
                head.host.and_then(|h| std::str::from_utf8(h).ok()),
                std::str::from_utf8(head.path).unwrap_or("/"),
            )
            .cloned()
    };
    let generated;
    let rid: &[u8] = match head.request_id {
        Some(v) => v,
        None => {
            generated = ctx.inner.request_id_hex();
            &generated
        }
    };
    let head_end = write_head(&head, ctx.client_ip.as_bytes(), rid, ctx.tls, out);
    let method = head.method;

    let (steer, set_cookie, mirror) = match route.as_deref() {
        Some(r) => {
            let pairs = head.headers.iter().map(|h| (h.name.as_bytes(), h.value));
            let (steer, cookie) = r.decide(pairs, || ctx.inner.random_hex());
            (steer, cookie, r.mirrors(method, || ctx.inner.rand()))
        }
        None => (Steer::Weighted, None, false),
    };

    let body = match (head.chunked, head.content_length) {
        (true, _) => Framing::Chunked(Chunked::new()),
        (false, Some(n)) if n > 0 => Framing::Length(n),
        _ => Framing::None,
    };
    let bodiless = matches!(body, Framing::None);
    let log = ctx.inner.config.access_log.then(|| Log {
        method: method.to_string(),
        path: String::from_utf8_lossy(head.path).into_owned(),
        request_id: String::from_utf8_lossy(rid).into_owned(),
    });
    Parsed::Done(
        head.len,
        Box::new(Req {
            route,
            body,
            keep_alive: if head.http10 {
                head.keep_alive && !head.close
            } else {
                !head.close
            },
            http10: head.http10,
            head_method: method == "HEAD",
            retryable: bodiless && policy::is_retryable_method(method.as_bytes()),
            replayable: bodiless,
            upgrade: head.upgrade,
            websocket: head.websocket,
            expect: head.expect,
            start,
            log,
            steer,
            set_cookie,
            mirror,
            head_end,
            hsts: ctx.hsts.clone(),
            rate_limited: crate::limits::rate_limited(ctx),
            max_body: limits.max_body_bytes,
            body_timeout: limits.body_read_timeout,
            send_timeout: limits.send_timeout,
        }),
    )
}

/// Parses an upstream response head from `buf`; writes the client's version into `out`.
/// `Err` means the response cannot be forwarded safely (502, and the connection is not reused):
/// invalid syntax, obs-fold, two or non-numeric Content-Lengths, Content-Length with
/// Transfer-Encoding, or a transfer coding other than `chunked`.
fn parse_response(
    buf: &[u8],
    req: &Req,
    close_client: bool,
    out: &mut Vec<u8>,
) -> Result<Option<(usize, Resp)>, ()> {
    let mut headers = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_HEADERS];
    let mut resp = httparse::Response::new(&mut []);
    // Whitespace between a field name and its colon is read past: RFC 9112 §5.1 asks a proxy
    // to remove it, which the rewrite below does. obs-fold is refused (§5.2 allows answering 502
    // instead of unfolding). Bare LF line ends are read (§2.2) because the head is rewritten
    // with CRLF; the client never sees them.
    let head_len = match httparse::ParserConfig::default()
        .allow_spaces_after_header_name_in_responses(true)
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
    let mut transfer_encoding = false;
    let (mut close, mut keep_alive, mut extra_listed) = (false, false, false);
    for h in headers {
        match classify(h.name.as_bytes()) {
            Field::ContentLength => {
                if content_length.is_some() {
                    return Err(());
                }
                content_length = Some(parse_len(h.value).ok_or(())?);
            }
            Field::TransferEncoding => {
                if transfer_encoding || !h.value.eq_ignore_ascii_case(b"chunked") {
                    return Err(());
                }
                transfer_encoding = true;
            }
            Field::Connection => {
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
            _ => {}
        }
    }
    // Both framings, or a coding in an HTTP/1.0 response (RFC 9112 §6.1: faulty framing).
    if transfer_encoding && (content_length.is_some() || version == 0) {
        return Err(());
    }
    let interim = (100..200).contains(&status);
    let bodiless_status = interim || status == 204;
    let body = if bodiless_status || status == 304 || req.head_method {
        Framing::None
    } else if transfer_encoding {
        Framing::Chunked(Chunked::response())
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
        // The listener's own HSTS replaces the upstream's.
        if req.hsts.is_some() && is(name, b"strict-transport-security") {
            continue;
        }
        let field = classify(name);
        if extra_listed && field.connection_may_remove() && listed(headers, name) {
            continue;
        }
        // Framing is written below from the router's decision; hop-by-hop fields stay here.
        let forward = field != Field::ContentLength && !field.is_hop_by_hop();
        if forward {
            push_header(out, name, h.value);
        }
    }
    if !bodiless_status {
        // A HEAD or 304 answer keeps the length (or coding) it describes; a body is framed
        // as it will be relayed (decoded for HTTP/1.0, which then ends with the connection).
        let chunked = transfer_encoding && !req.http10;
        push_framing(out, chunked, content_length);
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

/// A router-made response with a short text body (and `Retry-After` for a 429).
fn error_response(out: &mut Vec<u8>, kind: ErrorKind, close: bool, retry_after: Option<u64>) {
    let msg = kind.message();
    out.clear();
    out.extend_from_slice(
        format!(
            "HTTP/1.1 {} {}\r\ncontent-type: text/plain; charset=utf-8\r\n\
             content-length: {}\r\n{}",
            kind.status(),
            kind.reason(),
            msg.len(),
            if close { "connection: close\r\n" } else { "" },
        )
        .as_bytes(),
    );
    if let Some(secs) = retry_after {
        out.extend_from_slice(b"retry-after: ");
        push_u64(out, secs);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(msg.as_bytes());
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

/// Bounds of one body relay.
#[derive(Debug, Clone, Copy)]
struct Bounds {
    /// Longest wait for the next bytes from the source.
    read: Option<Duration>,
    /// Longest time one write to the destination may take.
    write: Option<Duration>,
    /// Most chunk data bytes (a Content-Length was checked when the head was read).
    max: u64,
}

impl Bounds {
    /// Upstream to client: the client must keep reading.
    fn to_client(send_timeout: Duration) -> Bounds {
        Bounds {
            read: None,
            write: Some(send_timeout),
            max: u64::MAX,
        }
    }
}

/// Writes all of `data`, within `limit` when there is one.
async fn write_bounded<D>(dst: &mut D, data: &[u8], limit: Option<Duration>) -> Result<(), Broken>
where
    D: tokio::io::AsyncWrite + Unpin,
{
    let r = match limit {
        None => dst.write_all(data).await,
        Some(d) => match tokio::time::timeout(d, dst.write_all(data)).await {
            Ok(r) => r,
            Err(_) => return Err(Broken::Dst),
        },
    };
    r.map_err(|_| Broken::Dst)
}

/// Relays a body from `src` (bytes already in `buf` first) to `dst` by its framing; bytes `src`
/// sent beyond the body stay in `buf`.
async fn relay_body<S, D>(
    src: &mut S,
    buf: &mut Buf,
    dst: &mut D,
    framing: &mut Framing,
    decode: bool,
    bounds: Bounds,
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
                    write_bounded(dst, &buf.bytes()[..take], bounds.write).await?;
                    buf.consume(take);
                    *n -= take as u64;
                }
                Framing::Chunked(c) => {
                    let data = buf.bytes();
                    let used = if decode {
                        let mut spans = Vec::new();
                        let used = c
                            .feed(data, |a, b| spans.push((a, b)))
                            .map_err(|_| Broken::SrcInvalid)?;
                        if c.data_len() > bounds.max {
                            return Err(Broken::TooLarge);
                        }
                        for (a, b) in spans {
                            write_bounded(dst, &data[a..b], bounds.write).await?;
                        }
                        used
                    } else {
                        let used = c.feed(data, |_, _| {}).map_err(|_| Broken::SrcInvalid)?;
                        if c.data_len() > bounds.max {
                            return Err(Broken::TooLarge);
                        }
                        write_bounded(dst, &data[..used], bounds.write).await?;
                        used
                    };
                    buf.consume(used);
                }
                Framing::Eof => {
                    write_bounded(dst, buf.bytes(), bounds.write).await?;
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
        let r = match bounds.read {
            None => buf.fill(src, cap).await,
            Some(d) => match tokio::time::timeout(d, buf.fill(src, cap)).await {
                Ok(r) => r,
                Err(_) => return Err(Broken::SrcTimeout),
            },
        };
        match r {
            Ok(0) if matches!(framing, Framing::Eof) => return Ok(()),
            Ok(0) | Err(_) => return Err(Broken::SrcClosed),
            Ok(_) => {}
        }
    }
}

/// How a relay failed.
enum Broken {
    /// The source closed (or failed) before the body ended.
    SrcClosed,
    /// The source broke the body's framing.
    SrcInvalid,
    /// The source sent nothing for `Bounds::read`.
    SrcTimeout,
    /// More chunk data than `Bounds::max`.
    TooLarge,
    /// The destination failed or did not take a write within `Bounds::write`.
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
        // A chunked body's buffered part is checked before anything goes upstream.
        if !req.replayable && !matches!(req.body, Framing::None) {
            let data = self.rbuf.bytes();
            let complete = match &req.body {
                Framing::Length(n) => (data.len() as u64 >= *n).then_some(*n as usize),
                Framing::Chunked(_) => {
                    let mut probe = Chunked::new();
                    match probe.feed(data, |_, _| {}) {
                        Err(_) => return self.refuse(&req, ErrorKind::BadRequest).await,
                        Ok(_) if probe.data_len() > req.max_body => {
                            return self.refuse(&req, ErrorKind::BodyTooLarge).await;
                        }
                        Ok(used) if probe.is_done() => Some(used),
                        Ok(_) => None,
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
        // Unread body bytes would be taken for the next request: only a whole one keeps it.
        let close_unread = !req.keep_alive || draining || !req.replayable;
        if let Some(secs) = req.rate_limited {
            access_log(&req.log, 429, req.start, "-", "-");
            error_response(
                &mut self.resp,
                ErrorKind::TooManyRequests,
                close_unread,
                Some(secs),
            );
            return self.send_error(&req, close_unread).await;
        }
        let Some(route) = req.route.take() else {
            access_log(&req.log, 404, req.start, "-", "-");
            return self.error(&req, ErrorKind::NoRoute, close_unread).await;
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
                let kind = match failed {
                    Some(_) => ErrorKind::ConnectFailed,
                    None => ErrorKind::NoHealthyInstance,
                };
                let status = kind.status();
                let now = Instant::now();
                let charged = match &failed {
                    Some(up) => Some((&up.stats, up.release.as_str())),
                    None => route
                        .by_weight(rand)
                        .map(|b| (&b.stats, b.release.as_str())),
                };
                if let Some((stats, _)) = charged {
                    stats.record(inner.sec(now), status, now - req.start, false);
                }
                access_log(
                    &req.log,
                    status,
                    req.start,
                    charged.map_or("-", |(_, r)| r),
                    "-",
                );
                return self.error(&req, kind, close_unread).await;
            };
            let lease = up.start();
            let close_client = !req.keep_alive || draining;
            let kind = match self.send(inner, &up, &mut req, close_client).await {
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
                    ErrorKind::ConnectFailed
                }
                Err(SendError::Timeout) => ErrorKind::UpstreamTimeout,
                Err(SendError::Failed) => ErrorKind::UpstreamFailed,
                Err(SendError::BadResponse) => ErrorKind::BadResponse,
                Err(SendError::Body(kind)) => {
                    // The client's fault, not the release's: logged, not counted.
                    access_log(&req.log, kind.status(), req.start, &up.release, &up.id);
                    return self.refuse(&req, kind).await;
                }
                Err(SendError::Client) => return Flow::Close,
            };
            let status = kind.status();
            let now = Instant::now();
            up.record(inner.ms(now), status, now - req.start);
            access_log(&req.log, status, req.start, &up.release, &up.id);
            // The request body may be partly unread: only a bodiless exchange keeps the connection.
            let close = close_client || !matches!(req.body, Framing::None);
            return self.error(&req, kind, close).await;
        }
    }

    /// Answers with a router-made error.
    async fn error(&mut self, req: &Req, kind: ErrorKind, close: bool) -> Flow {
        error_response(&mut self.resp, kind, close, None);
        self.send_error(req, close).await
    }

    /// Answers a request the router will not (or no longer) forward, and closes.
    async fn refuse(&mut self, req: &Req, kind: ErrorKind) -> Flow {
        self.error(req, kind, true).await
    }

    /// Writes the error response in `resp`.
    async fn send_error(&mut self, req: &Req, close: bool) -> Flow {
        if let Some(v) = &self.hsts {
            insert_header(&mut self.resp, b"strict-transport-security", v.as_bytes());
        }
        if write_bounded(&mut self.client, &self.resp, Some(req.send_timeout))
            .await
            .is_err()
        {
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
                    Err(HeadError::Invalid) => return Err(SendError::BadResponse),
                    Err(_) => return Err(SendError::Failed),
                };
                if (100..200).contains(&resp.status) && resp.status != 101 {
                    if !req.http10
                        && write_bounded(&mut self.client, &self.resp, Some(req.send_timeout))
                            .await
                            .is_err()
                    {
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

    /// Streams the rest of the request body from the client to `s`, within the body limits.
    async fn send_body(&mut self, s: &mut TcpStream, req: &mut Req) -> Result<(), SendError> {
        let bounds = Bounds {
            read: Some(req.body_timeout),
            write: None,
            max: req.max_body,
        };
        match relay_body(
            &mut self.client,
            &mut self.rbuf,
            s,
            &mut req.body,
            false,
            bounds,
        )
        .await
        {
            Ok(()) => {
                req.body = Framing::None;
                Ok(())
            }
            Err(Broken::SrcClosed) => Err(SendError::Client),
            Err(Broken::SrcInvalid) => Err(SendError::Body(ErrorKind::BadRequest)),
            Err(Broken::SrcTimeout) => Err(SendError::Body(ErrorKind::RequestTimeout)),
            Err(Broken::TooLarge) => Err(SendError::Body(ErrorKind::BodyTooLarge)),
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
                _ if got_any => return Err(HeadError::Broken),
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
        if resp.status == 101 && !req.upgrade {
            let kind = ErrorKind::SwitchedUnasked;
            let now = Instant::now();
            up.record(inner.ms(now), kind.status(), now - req.start);
            access_log(&req.log, kind.status(), req.start, &up.release, &up.id);
            drop(lease);
            return self.refuse(req, kind).await;
        }
        // The body bytes that came with the head go in the same write; framing broken there is
        // still a 502, since nothing was sent to the client yet.
        if !take_buffered(&mut self.ubuf, &mut resp.body, resp.decode, &mut self.resp) {
            let kind = ErrorKind::BadResponse;
            let now = Instant::now();
            up.record(inner.ms(now), kind.status(), now - req.start);
            access_log(&req.log, kind.status(), req.start, &up.release, &up.id);
            drop(lease);
            return self.refuse(req, kind).await;
        }
        let now = Instant::now();
        up.record(inner.ms(now), resp.status, now - req.start);
        access_log(&req.log, resp.status, req.start, &up.release, &up.id);
        if resp.status == 101 {
            // Upgraded connections are not HTTP requests in flight.
            drop(lease);
            if write_bounded(&mut self.client, &self.resp, Some(req.send_timeout))
                .await
                .is_err()
            {
                return Flow::Close;
            }
            let rest = self.ubuf.take_rest();
            return Flow::Upgrade(Prefixed::new(rest, s), req.websocket);
        }
        if write_bounded(&mut self.client, &self.resp, Some(req.send_timeout))
            .await
            .is_err()
        {
            return Flow::Close;
        }
        if !body_done(&resp.body) {
            match relay_body(
                &mut s,
                &mut self.ubuf,
                &mut self.client,
                &mut resp.body,
                resp.decode,
                Bounds::to_client(req.send_timeout),
            )
            .await
            {
                Ok(()) => {}
                // A truncated body can only be signalled by closing; the upstream connection
                // (mid-body, or with broken framing) is dropped, never pooled.
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
    /// The connection ended (or failed) inside the head.
    Broken,
    /// The head is invalid or its framing ambiguous.
    Invalid,
    Timeout,
}

/// A pooled connection the upstream has not closed (checked without blocking).
fn looks_alive(s: &TcpStream) -> bool {
    let mut probe = [0u8; 1];
    matches!(s.try_read(&mut probe), Err(e) if e.kind() == io::ErrorKind::WouldBlock)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::panic)]
mod parse_tests;

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
