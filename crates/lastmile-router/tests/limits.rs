//! Per-request limits (`ListenerConfig::limits`), each tripped through a real router on
//! 127.0.0.1:0 and each also met from just under the limit. Timeouts are small; assertions on
//! elapsed time are generous, and nothing sleeps to "wait": tests wait for conditions.

#![allow(clippy::unwrap_used)]

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use lastmile_router::{
    Backend, Limits, ListenerConfig, ListenerHandle, RateLimit, Route, RouteTable, Router,
    RouterConfig, Upstream,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Upper bound for anything a test waits on.
const LIMIT: Duration = Duration::from_secs(8);
/// The small timeouts the limit tests configure.
const SHORT: Duration = Duration::from_millis(200);

/// What the backend saw.
#[derive(Debug, Default)]
struct Seen {
    /// Request heads that arrived.
    started: AtomicUsize,
    /// Bodies that ended in an error (the router gave up on the upstream connection).
    broken_bodies: AtomicUsize,
}

/// A hyper backend: answers `len=<body bytes>`; `/big` answers with 32 MiB.
async fn backend() -> (SocketAddr, Arc<Seen>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = Arc::new(Seen::default());
    let s2 = seen.clone();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let seen = s2.clone();
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(move |req| answer(seen.clone(), req));
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    (addr, seen)
}

async fn answer(
    seen: Arc<Seen>,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    seen.started.fetch_add(1, Ordering::SeqCst);
    if req.uri().path() == "/big" {
        return Ok(Response::new(Full::new(Bytes::from(vec![b'x'; 32 << 20]))));
    }
    let body = match req.into_body().collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => {
            seen.broken_bodies.fetch_add(1, Ordering::SeqCst);
            Bytes::new()
        }
    };
    Ok(Response::new(Full::new(Bytes::from(format!(
        "len={}",
        body.len()
    )))))
}

struct Proxy {
    router: Router,
    addr: SocketAddr,
    _handle: ListenerHandle,
}

fn proxy(limits: Limits, backend: SocketAddr) -> Proxy {
    let router = Router::new(RouterConfig::default());
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    let handle = router
        .serve_with(
            l,
            ListenerConfig {
                limits,
                ..ListenerConfig::default()
            },
        )
        .unwrap();
    router.set_table(RouteTable {
        routes: vec![Route {
            name: "all".into(),
            listen: addr,
            host: None,
            path_prefix: "/".into(),
            backends: vec![Backend {
                release: "r1".into(),
                weight: 1,
                instances: vec![Upstream {
                    id: "b1".into(),
                    addr: backend,
                }],
            }],
            cohort: None,
            pins: Vec::new(),
            mirror: None,
            warmup: Default::default(),
        }],
    });
    Proxy {
        router,
        addr,
        _handle: handle,
    }
}

/// One response off `s` (Content-Length framed): (status, head, body).
async fn response(s: &mut TcpStream, buf: &mut Vec<u8>) -> Option<(u16, String, String)> {
    let mut chunk = [0u8; 8192];
    let read = async {
        loop {
            if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&buf[..end]).to_string();
                let len: usize = head
                    .to_ascii_lowercase()
                    .lines()
                    .find_map(|l| {
                        l.strip_prefix("content-length:")
                            .map(|v| v.trim().parse().unwrap())
                    })
                    .unwrap_or(0);
                if buf.len() >= end + 4 + len {
                    let body = String::from_utf8_lossy(&buf[end + 4..end + 4 + len]).to_string();
                    buf.drain(..end + 4 + len);
                    return Some((head.get(9..12)?.parse().ok()?, head, body));
                }
            }
            match s.read(&mut chunk).await {
                Ok(0) | Err(_) => return None,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
    };
    tokio::time::timeout(LIMIT, read)
        .await
        .expect("no response in time")
}

/// Reads until the router closes; true when it did within `LIMIT`.
async fn closed(s: &mut TcpStream) -> bool {
    let mut sink = vec![0u8; 1 << 16];
    tokio::time::timeout(LIMIT, async {
        loop {
            match s.read(&mut sink).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await
    .is_ok()
}

/// Waits until `cond` holds (checked every few milliseconds, at most `LIMIT`).
async fn until(mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(start.elapsed() < LIMIT, "condition not reached in time");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

fn limits() -> Limits {
    Limits {
        max_body_bytes: 100,
        max_headers: 10,
        body_read_timeout: SHORT,
        idle_timeout: SHORT,
        send_timeout: SHORT,
        ..Limits::default()
    }
}

fn post(len: usize) -> Vec<u8> {
    let mut r =
        format!("POST /p HTTP/1.1\r\nHost: x\r\nContent-Length: {len}\r\n\r\n").into_bytes();
    r.extend(std::iter::repeat_n(b'a', len));
    r
}

fn chunked(sizes: &[usize]) -> Vec<u8> {
    let mut r = b"POST /c HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
    for &n in sizes {
        r.extend_from_slice(format!("{n:x}\r\n").as_bytes());
        r.extend(std::iter::repeat_n(b'a', n));
        r.extend_from_slice(b"\r\n");
    }
    r.extend_from_slice(b"0\r\n\r\n");
    r
}

#[tokio::test]
async fn content_length_over_max_body_is_413_before_forwarding() {
    let (up, seen) = backend().await;
    let p = proxy(limits(), up);
    let mut s = TcpStream::connect(p.addr).await.unwrap();
    let mut buf = Vec::new();
    // Just under (equal): forwarded.
    s.write_all(&post(100)).await.unwrap();
    let (status, _, body) = response(&mut s, &mut buf).await.unwrap();
    assert_eq!((status, body.as_str()), (200, "len=100"));
    // One byte over: refused, nothing forwarded, closed.
    s.write_all(&post(101)).await.unwrap();
    let (status, head, _) = response(&mut s, &mut buf).await.unwrap();
    assert_eq!(status, 413, "{head}");
    assert!(head.contains("connection: close"), "{head}");
    assert!(closed(&mut s).await);
    assert_eq!(seen.started.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn chunked_body_over_max_body_is_413() {
    let (up, seen) = backend().await;
    let p = proxy(limits(), up);
    // Just under (100 bytes in two chunks): forwarded.
    let mut s = TcpStream::connect(p.addr).await.unwrap();
    let mut buf = Vec::new();
    s.write_all(&chunked(&[60, 40])).await.unwrap();
    let (status, _, body) = response(&mut s, &mut buf).await.unwrap();
    assert_eq!((status, body.as_str()), (200, "len=100"));
    // Whole and over: refused before anything is forwarded.
    s.write_all(&chunked(&[60, 41])).await.unwrap();
    let (status, head, _) = response(&mut s, &mut buf).await.unwrap();
    assert_eq!(status, 413, "{head}");
    assert!(closed(&mut s).await);
    assert_eq!(seen.started.load(Ordering::SeqCst), 1);
    // Growing past the limit while it streams: 413, and the upstream connection is dropped.
    let mut s = TcpStream::connect(p.addr).await.unwrap();
    let body = chunked(&[60, 41]);
    let split = body.len() - 50;
    s.write_all(&body[..split]).await.unwrap();
    until(|| seen.started.load(Ordering::SeqCst) == 2).await;
    s.write_all(&body[split..]).await.unwrap();
    let (status, head, _) = response(&mut s, &mut Vec::new()).await.unwrap();
    assert_eq!(status, 413, "{head}");
    assert!(closed(&mut s).await);
    until(|| seen.broken_bodies.load(Ordering::SeqCst) == 1).await;
    // The next request still works (on a fresh upstream connection).
    let mut s = TcpStream::connect(p.addr).await.unwrap();
    s.write_all(&post(3)).await.unwrap();
    let (status, _, body) = response(&mut s, &mut Vec::new()).await.unwrap();
    assert_eq!((status, body.as_str()), (200, "len=3"));
}

fn with_headers(n: usize) -> Vec<u8> {
    // Host is one of the `n` fields.
    let mut r = b"GET / HTTP/1.1\r\nHost: x\r\n".to_vec();
    for i in 1..n {
        r.extend_from_slice(format!("x-h{i}: {i}\r\n").as_bytes());
    }
    r.extend_from_slice(b"\r\n");
    r
}

#[tokio::test]
async fn more_header_fields_than_max_headers_is_431() {
    let (up, _) = backend().await;
    let p = proxy(limits(), up);
    let mut s = TcpStream::connect(p.addr).await.unwrap();
    let mut buf = Vec::new();
    s.write_all(&with_headers(10)).await.unwrap();
    let (status, head, _) = response(&mut s, &mut buf).await.unwrap();
    assert_eq!(status, 200, "{head}");
    s.write_all(&with_headers(11)).await.unwrap();
    let (status, head, _) = response(&mut s, &mut buf).await.unwrap();
    assert_eq!(status, 431, "{head}");
    assert!(closed(&mut s).await);
    // Beyond what the parser reads at all (256): 431 as well.
    let p = proxy(
        Limits {
            max_headers: 1000,
            ..limits()
        },
        up,
    );
    let mut s = TcpStream::connect(p.addr).await.unwrap();
    s.write_all(&with_headers(300)).await.unwrap();
    let (status, head, _) = response(&mut s, &mut Vec::new()).await.unwrap();
    assert_eq!(status, 431, "{head}");
}

#[tokio::test]
async fn stalled_body_is_408_and_a_steady_one_is_not() {
    let (up, _) = backend().await;
    let p = proxy(limits(), up);
    // Gaps shorter than the timeout: served.
    let mut s = TcpStream::connect(p.addr).await.unwrap();
    let req = post(30);
    let (head, body) = req.split_at(req.len() - 30);
    s.write_all(head).await.unwrap();
    for part in body.chunks(10) {
        tokio::time::sleep(SHORT / 4).await;
        s.write_all(part).await.unwrap();
    }
    let (status, _, body) = response(&mut s, &mut Vec::new()).await.unwrap();
    assert_eq!((status, body.as_str()), (200, "len=30"));
    // Half a body, then nothing: 408 and close.
    let mut s = TcpStream::connect(p.addr).await.unwrap();
    let start = Instant::now();
    s.write_all(&req[..req.len() - 15]).await.unwrap();
    let (status, head, _) = response(&mut s, &mut Vec::new()).await.unwrap();
    assert_eq!(status, 408, "{head}");
    assert!(start.elapsed() >= SHORT / 2, "{:?}", start.elapsed());
    assert!(closed(&mut s).await);
}

#[tokio::test]
async fn idle_keep_alive_connection_is_closed() {
    let (up, _) = backend().await;
    let p = proxy(limits(), up);
    let mut s = TcpStream::connect(p.addr).await.unwrap();
    let mut buf = Vec::new();
    s.write_all(b"GET /1 HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    assert_eq!(response(&mut s, &mut buf).await.unwrap().0, 200);
    // Back within the idle timeout: still open.
    tokio::time::sleep(SHORT / 4).await;
    s.write_all(b"GET /2 HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    assert_eq!(response(&mut s, &mut buf).await.unwrap().0, 200);
    // Then idle: the router closes.
    let idle_from = Instant::now();
    assert!(closed(&mut s).await);
    let idle = idle_from.elapsed();
    assert!(idle >= SHORT / 2 && idle < LIMIT, "{idle:?}");
}

#[tokio::test]
async fn slow_reader_is_cut_off_after_send_timeout() {
    let (up, _) = backend().await;
    let p = proxy(limits(), up);
    // A client that does not read: the router's writes stall, then it gives up.
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let mut s = socket.connect(p.addr).await.unwrap();
    s.write_all(b"GET /big HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    until(|| p.router.in_flight("b1") == 1).await;
    until(|| p.router.in_flight("b1") == 0).await;
    let mut got = 0usize;
    let mut sink = vec![0u8; 1 << 16];
    tokio::time::timeout(LIMIT, async {
        loop {
            match s.read(&mut sink).await {
                Ok(0) | Err(_) => return,
                Ok(n) => got += n,
            }
        }
    })
    .await
    .unwrap();
    assert!(got < 32 << 20, "the whole body arrived ({got} bytes)");
    // A client that keeps reading gets all of it.
    let mut s = TcpStream::connect(p.addr).await.unwrap();
    s.write_all(b"GET /big HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut all = Vec::new();
    tokio::time::timeout(LIMIT, s.read_to_end(&mut all))
        .await
        .unwrap()
        .unwrap();
    assert!(all.ends_with(&[b'x'; 1024]));
    assert!(all.len() > 32 << 20);
}

#[tokio::test]
async fn rate_limit_answers_429_and_keeps_the_connection() {
    let (up, seen) = backend().await;
    let p = proxy(
        Limits {
            rate_limit: Some(RateLimit {
                requests_per_second: 1,
                burst: 2,
            }),
            ..limits()
        },
        up,
    );
    let mut s = TcpStream::connect(p.addr).await.unwrap();
    let mut buf = Vec::new();
    // The burst: served.
    for _ in 0..2 {
        s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        assert_eq!(response(&mut s, &mut buf).await.unwrap().0, 200);
    }
    // Over it: 429 with Retry-After, the connection stays usable (a whole body is skipped).
    for req in [&b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"[..], &post(5)] {
        s.write_all(req).await.unwrap();
        let (status, head, _) = response(&mut s, &mut buf).await.unwrap();
        assert_eq!(status, 429, "{head}");
        assert!(
            head.to_ascii_lowercase().contains("retry-after: 1"),
            "{head}"
        );
        assert!(!head.contains("connection: close"), "{head}");
    }
    assert_eq!(seen.started.load(Ordering::SeqCst), 2);
    // Another client IP would have its own bucket; here, a token comes back within a second.
    let start = Instant::now();
    loop {
        s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        if response(&mut s, &mut buf).await.unwrap().0 == 200 {
            break;
        }
        assert!(start.elapsed() < LIMIT);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// An h2 (prior knowledge) client connection to the router.
async fn h2(addr: SocketAddr) -> hyper::client::conn::http2::SendRequest<Full<Bytes>> {
    let tcp = TcpStream::connect(addr).await.unwrap();
    let (sender, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tcp))
            .await
            .unwrap();
    tokio::spawn(conn);
    sender
}

async fn h2_send(
    sender: &mut hyper::client::conn::http2::SendRequest<Full<Bytes>>,
    req: Request<Full<Bytes>>,
) -> (u16, hyper::HeaderMap) {
    let resp = tokio::time::timeout(LIMIT, sender.send_request(req))
        .await
        .unwrap()
        .unwrap();
    (resp.status().as_u16(), resp.headers().clone())
}

#[tokio::test]
async fn h2_requests_get_the_same_limits() {
    let (up, _) = backend().await;
    let p = proxy(
        Limits {
            rate_limit: Some(RateLimit {
                requests_per_second: 1,
                burst: 4,
            }),
            ..limits()
        },
        up,
    );
    let mut c = h2(p.addr).await;
    let uri = format!("http://{}/p", p.addr);
    let post = |n: usize| {
        Request::post(&uri)
            .body(Full::new(Bytes::from(vec![b'a'; n])))
            .unwrap()
    };
    assert_eq!(h2_send(&mut c, post(100)).await.0, 200);
    assert_eq!(h2_send(&mut c, post(101)).await.0, 413);
    let mut many = Request::get(&uri);
    for i in 0..10 {
        many = many.header(format!("x-h{i}"), "1");
    }
    assert_eq!(
        h2_send(&mut c, many.body(Full::new(Bytes::new())).unwrap())
            .await
            .0,
        431
    );
    // Refused heads (413, 431) take no token: the 200 took one, so three more pass, then 429.
    let mut statuses = Vec::new();
    for _ in 0..4 {
        let (status, headers) = h2_send(&mut c, post(1)).await;
        if status == 429 {
            assert_eq!(headers.get("retry-after").unwrap(), "1");
        }
        statuses.push(status);
    }
    assert!(statuses.contains(&429), "{statuses:?}");
}

/// A request body fed through a channel (no length known up front).
struct ChannelBody(tokio::sync::mpsc::Receiver<Bytes>);

impl hyper::body::Body for ChannelBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<hyper::body::Frame<Bytes>, Infallible>>> {
        self.get_mut()
            .0
            .poll_recv(cx)
            .map(|b| b.map(|b| Ok(hyper::body::Frame::data(b))))
    }
}

#[tokio::test]
async fn h2_streamed_bodies_are_counted_and_timed() {
    let (up, seen) = backend().await;
    let p = proxy(limits(), up);
    let tcp = TcpStream::connect(p.addr).await.unwrap();
    let (mut c, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tcp))
            .await
            .unwrap();
    tokio::spawn(conn);
    let uri = format!("http://{}/p", p.addr);
    // Just under: 100 bytes in two pieces.
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    let req = Request::post(&uri).body(ChannelBody(rx)).unwrap();
    tx.send(Bytes::from(vec![b'a'; 60])).await.unwrap();
    tx.send(Bytes::from(vec![b'a'; 40])).await.unwrap();
    drop(tx);
    let resp = tokio::time::timeout(LIMIT, c.send_request(req))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(resp.status(), 200);
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(&body[..], b"len=100");
    // Growing past the limit: 413.
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    let req = Request::post(&uri).body(ChannelBody(rx)).unwrap();
    tx.send(Bytes::from(vec![b'a'; 60])).await.unwrap();
    let pending = tokio::spawn(c.send_request(req));
    until(|| seen.started.load(Ordering::SeqCst) == 2).await;
    tx.send(Bytes::from(vec![b'a'; 41])).await.unwrap();
    let resp = tokio::time::timeout(LIMIT, pending)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(resp.status(), 413);
    drop(tx);
    // Stalled: 408.
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    let req = Request::post(&uri).body(ChannelBody(rx)).unwrap();
    tx.send(Bytes::from(vec![b'a'; 10])).await.unwrap();
    let start = Instant::now();
    let resp = tokio::time::timeout(LIMIT, c.send_request(req))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(resp.status(), 408);
    assert!(start.elapsed() >= SHORT / 2, "{:?}", start.elapsed());
    drop(tx);
}
