//! Dark launch: fire-and-forget copies of user requests to a mirror release.
//!
//! A copy runs on its own task with its own (pooled) upstream connection; its response is read
//! and discarded. The user's exchange never waits for it: a copy is made only when the whole
//! request is already in memory, and at most `MAX_IN_FLIGHT` copies run at once (more are
//! dropped). Copies count in the mirror release's stats exactly like user traffic.

use std::mem::MaybeUninit;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Instant;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::chunked::Chunked;
use crate::http1::{Framing, tokens};
use crate::router::Inner;
use crate::table::{CompiledBackend, least_loaded};
use crate::upstream::{UpstreamState, tcp_connect};

/// Most mirror requests in flight per router; beyond it copies are dropped.
pub(crate) const MAX_IN_FLIGHT: usize = 256;
/// Largest response head read from a mirror.
const MAX_HEAD: usize = 64 * 1024;
/// Header marking a copy, so the mirror (and its logs) can tell it from user traffic.
const MARK: &[u8] = b"x-lastmile-mirror: 1\r\n\r\n";

/// Frees a mirror slot on drop.
struct Slot(Arc<Inner>);

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.mirrors.fetch_sub(1, Relaxed);
    }
}

/// Copies the request in `request` (rewritten head of `head_end` bytes, then the whole body) to
/// an instance of `backend`, on a task of its own.
pub(crate) fn spawn(
    inner: &Arc<Inner>,
    backend: &CompiledBackend,
    request: &[u8],
    head_end: usize,
    head_method: bool,
) {
    if inner.mirrors.fetch_add(1, Relaxed) >= MAX_IN_FLIGHT {
        inner.mirrors.fetch_sub(1, Relaxed);
        return;
    }
    let slot = Slot(inner.clone());
    let Some(up) = least_loaded(backend, inner.rand(), None).cloned() else {
        // Charged like a user request that finds no instance.
        let now = Instant::now();
        backend
            .stats
            .record(inner.sec(now), 503, std::time::Duration::ZERO, false);
        return;
    };
    let Some(head) = request.get(..head_end.saturating_sub(2)) else {
        return;
    };
    let mut copy = Vec::with_capacity(request.len() + MARK.len());
    copy.extend_from_slice(head);
    copy.extend_from_slice(MARK);
    copy.extend_from_slice(&request[head_end..]);
    tokio::spawn(async move {
        let inner = &*slot.0;
        let start = Instant::now();
        let _lease = up.start();
        let deadline = tokio::time::Instant::from_std(start)
            .checked_add(inner.config.upstream_timeout)
            .unwrap_or_else(|| tokio::time::Instant::now() + std::time::Duration::from_secs(86400));
        let mut answered = false;
        let run = exchange(inner, &up, &copy, head_method, start, &mut answered);
        if tokio::time::timeout_at(deadline, run).await.is_err() && !answered {
            up.record(inner.ms(Instant::now()), 504, start.elapsed());
        }
    });
}

/// Sends `copy`, records the response status, then reads and discards the body.
async fn exchange(
    inner: &Inner,
    up: &UpstreamState,
    copy: &[u8],
    head_method: bool,
    start: Instant,
    answered: &mut bool,
) {
    let record = |status: u16| {
        let now = Instant::now();
        up.record(inner.ms(now), status, now - start);
    };
    let mut pooled = up.take_stream();
    loop {
        let (mut s, reused) = match pooled.take() {
            Some(s) => (s, true),
            None => match tcp_connect(up.addr, inner.config.connect_timeout).await {
                Ok(s) => (s, false),
                Err(_) => {
                    up.eject(inner.now_ms());
                    up.stats.connect_error(inner.sec(Instant::now()));
                    *answered = true;
                    return record(502);
                }
            },
        };
        if s.write_all(copy).await.is_err() {
            if reused {
                continue;
            }
            *answered = true;
            return record(502);
        }
        let mut buf = Vec::with_capacity(4096);
        let head = loop {
            match read_head(&mut s, &mut buf, head_method).await {
                Ok(Some(h)) if (100..200).contains(&h.status) => buf.drain(..h.len).for_each(drop),
                Ok(Some(h)) => break Some(h),
                // Closed before any byte: a stale pooled connection; the copy can be sent again.
                Ok(None) if reused => break None,
                Ok(None) | Err(()) => {
                    *answered = true;
                    return record(502);
                }
            }
        };
        let Some(head) = head else { continue };
        *answered = true;
        record(head.status);
        buf.drain(..head.len);
        if discard(&mut s, buf, head.body).await && head.reusable {
            up.put_stream(s);
        }
        return;
    }
}

/// A mirror response head.
struct Head {
    status: u16,
    len: usize,
    body: Framing,
    reusable: bool,
}

/// Reads until `buf` holds a whole response head; `Ok(None)` when the connection closed first
/// without sending anything.
async fn read_head(
    s: &mut TcpStream,
    buf: &mut Vec<u8>,
    head_method: bool,
) -> Result<Option<Head>, ()> {
    loop {
        if !buf.is_empty() {
            if let Some(h) = parse(buf, head_method)? {
                return Ok(Some(h));
            }
            if buf.len() >= MAX_HEAD {
                return Err(());
            }
        }
        buf.reserve(4096);
        match s.read_buf(buf).await {
            Ok(0) if buf.is_empty() => return Ok(None),
            Ok(0) | Err(_) => return Err(()),
            Ok(_) => {}
        }
    }
}

fn parse(buf: &[u8], head_method: bool) -> Result<Option<Head>, ()> {
    let mut headers = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; 100];
    let mut resp = httparse::Response::new(&mut []);
    // The same framing rules as user responses (`http1::parse_response`): this connection may
    // be pooled and later carry user traffic, so its framing must not be in doubt.
    let len = match httparse::ParserConfig::default()
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
    let (mut length, mut chunked, mut te, mut close) = (None, false, false, version == 0);
    for h in resp.headers.iter() {
        let name = h.name.as_bytes();
        if name.eq_ignore_ascii_case(b"content-length") {
            let v = std::str::from_utf8(h.value).map_err(|_| ())?;
            if length.is_some() || !v.bytes().all(|b| b.is_ascii_digit()) {
                return Err(());
            }
            length = Some(v.parse::<u64>().map_err(|_| ())?);
        } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
            if te || !h.value.eq_ignore_ascii_case(b"chunked") || length.is_some() {
                return Err(());
            }
            te = true;
            chunked = true;
        } else if name.eq_ignore_ascii_case(b"connection") {
            if tokens(h.value).any(|t| t.eq_ignore_ascii_case(b"close")) {
                close = true;
            } else if tokens(h.value).any(|t| t.eq_ignore_ascii_case(b"keep-alive")) {
                close = false;
            }
        }
    }
    if te && length.is_some() {
        return Err(());
    }
    let body = if (100..200).contains(&status) || status == 204 || status == 304 || head_method {
        Framing::None
    } else if te {
        if chunked {
            Framing::Chunked(Chunked::response())
        } else {
            Framing::Eof
        }
    } else {
        match length {
            Some(0) => Framing::None,
            Some(n) => Framing::Length(n),
            None => Framing::Eof,
        }
    };
    let reusable = !close && !matches!(body, Framing::Eof) && status != 101;
    Ok(Some(Head {
        status,
        len,
        body,
        reusable,
    }))
}

/// Reads the body to its end and drops it; true when it ended cleanly with nothing extra.
async fn discard(s: &mut TcpStream, mut buf: Vec<u8>, mut body: Framing) -> bool {
    loop {
        match &mut body {
            Framing::None => return buf.is_empty(),
            Framing::Length(n) => {
                let take = (*n).min(buf.len() as u64);
                *n -= take;
                if *n == 0 {
                    return buf.len() as u64 == take;
                }
            }
            Framing::Chunked(c) => match c.feed(&buf, |_, _| {}) {
                Ok(used) if c.is_done() => return used == buf.len(),
                Ok(_) => {}
                Err(_) => return false,
            },
            Framing::Eof => {}
        }
        buf.clear();
        if buf.capacity() < 4096 {
            buf.reserve(4096);
        }
        match s.read_buf(&mut buf).await {
            Ok(0) => return false,
            Ok(_) => {}
            Err(_) => return false,
        }
    }
}
