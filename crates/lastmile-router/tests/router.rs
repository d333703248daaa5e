//! End-to-end tests: real listeners on 127.0.0.1:0, real hyper/TCP backends inside the test.

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
use lastmile_router::{Backend, ListenerHandle, Route, RouteTable, Router, RouterConfig, Upstream};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Upper bound for anything a test waits on.
const LIMIT: Duration = Duration::from_secs(8);

/// A hyper HTTP/1.1 backend that answers `name|method|path|body` plus the forwarded headers.
/// `/slow` waits `x-delay-ms`, `/never` never answers, an Upgrade request gets 101 and an echo.
async fn backend(name: &'static str) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(move |req| answer(name, req));
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), svc)
                    .with_upgrades()
                    .await;
            });
        }
    });
    addr
}

async fn answer(
    name: &'static str,
    mut req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let headers = req.headers().clone();
    let h = |n: &str| {
        headers
            .get(n)
            .map(|v| v.to_str().unwrap().to_string())
            .unwrap_or_default()
    };
    if req.headers().contains_key("upgrade") {
        let on = hyper::upgrade::on(&mut req);
        tokio::spawn(async move {
            let up = TokioIo::new(on.await.unwrap());
            let (mut r, mut w) = tokio::io::split(up);
            let _ = tokio::io::copy(&mut r, &mut w).await;
        });
        return Ok(Response::builder()
            .status(101)
            .header("connection", "upgrade")
            .header("upgrade", h("upgrade"))
            .body(Full::new(Bytes::new()))
            .unwrap());
    }
    let info = format!(
        "{name}|{}|{}|xff={}|xfp={}|xfh={}|rid={}|conn={}",
        req.method(),
        req.uri().path(),
        h("x-forwarded-for"),
        h("x-forwarded-proto"),
        h("x-forwarded-host"),
        h("x-request-id"),
        h("connection"),
    );
    match req.uri().path() {
        "/slow" => {
            let ms: u64 = h("x-delay-ms").parse().unwrap_or(500);
            tokio::time::sleep(Duration::from_millis(ms)).await;
        }
        "/never" => std::future::pending::<()>().await,
        _ => {}
    }
    let body = req.into_body().collect().await.unwrap().to_bytes();
    let out = format!("{info}|body={}", String::from_utf8_lossy(&body));
    Ok(Response::builder()
        .header("x-backend", name)
        .body(Full::new(Bytes::from(out)))
        .unwrap())
}

/// An address nothing listens on.
fn dead_addr() -> SocketAddr {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap()
}

struct Proxy {
    router: Router,
    addr: SocketAddr,
    _handle: ListenerHandle,
}

fn proxy(config: RouterConfig) -> Proxy {
    let router = Router::new(config);
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    let handle = router.serve(l).unwrap();
    Proxy {
        router,
        addr,
        _handle: handle,
    }
}

fn upstream(id: &str, addr: SocketAddr) -> Upstream {
    Upstream {
        id: id.into(),
        addr,
    }
}

fn backend_of(release: &str, weight: u32, instances: Vec<Upstream>) -> Backend {
    Backend {
        release: release.into(),
        weight,
        instances,
    }
}

fn route(listen: SocketAddr, host: Option<&str>, prefix: &str, backends: Vec<Backend>) -> Route {
    Route {
        name: format!("{host:?}{prefix}"),
        listen,
        host: host.map(Into::into),
        path_prefix: prefix.into(),
        backends,
        cohort: None,
        pins: Vec::new(),
        mirror: None,
        warmup: Default::default(),
    }
}

fn single(p: &Proxy, release: &str, addrs: &[SocketAddr]) {
    let instances = addrs
        .iter()
        .enumerate()
        .map(|(i, a)| upstream(&format!("{release}-{i}"), *a))
        .collect();
    p.router.set_table(RouteTable {
        routes: vec![route(
            p.addr,
            None,
            "/",
            vec![backend_of(release, 1, instances)],
        )],
    });
}

/// One raw HTTP/1.1 exchange with `Connection: close`; returns (status, head, body).
async fn raw(addr: SocketAddr, request: &[u8]) -> (u16, String, String) {
    tokio::time::timeout(LIMIT, async {
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(request).await.unwrap();
        let mut out = Vec::new();
        let _ = s.read_to_end(&mut out).await;
        let text = String::from_utf8_lossy(&out).to_string();
        let status = text.get(9..12).and_then(|s| s.parse().ok()).unwrap_or(0);
        let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
        (status, head.to_string(), body.to_string())
    })
    .await
    .expect("raw exchange timed out")
}

async fn get(addr: SocketAddr, path: &str, extra: &str) -> (u16, String, String) {
    raw(
        addr,
        format!("GET {path} HTTP/1.1\r\nHost: app.example\r\n{extra}Connection: close\r\n\r\n")
            .as_bytes(),
    )
    .await
}

type Client = hyper_util::client::legacy::Client<
    hyper_util::client::legacy::connect::HttpConnector,
    Full<Bytes>,
>;

fn client() -> Client {
    hyper_util::client::legacy::Client::builder(TokioExecutor::new()).build_http()
}

async fn fetch(c: &Client, addr: SocketAddr, path: &str) -> (u16, String) {
    let req = Request::get(format!("http://{addr}{path}"))
        .body(Full::new(Bytes::new()))
        .unwrap();
    let resp = tokio::time::timeout(LIMIT, c.request(req))
        .await
        .expect("request timed out")
        .unwrap();
    let status = resp.status().as_u16();
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8_lossy(&body).to_string())
}

#[tokio::test]
async fn proxies_get_and_post_with_body() {
    let b = backend("b1").await;
    let p = proxy(RouterConfig::default());
    single(&p, "r1", &[b]);
    let (status, _, body) = get(p.addr, "/hello", "").await;
    assert_eq!(status, 200, "{body}");
    assert!(body.starts_with("b1|GET|/hello|"), "{body}");
    let (status, _, body) = raw(
        p.addr,
        b"POST /submit HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello",
    )
    .await;
    assert_eq!(status, 200);
    assert!(
        body.starts_with("b1|POST|/submit|") && body.ends_with("body=hello"),
        "{body}"
    );
    // Keep-alive client, many requests over pooled upstream connections.
    let c = client();
    for i in 0..50 {
        let (s, body) = fetch(&c, p.addr, &format!("/k{i}")).await;
        assert_eq!(s, 200);
        assert!(body.contains(&format!("|/k{i}|")));
    }
}

#[tokio::test]
async fn forwarded_headers_and_request_id_reach_the_backend() {
    let b = backend("b1").await;
    let p = proxy(RouterConfig::default());
    single(&p, "r1", &[b]);
    let (_, _, body) = get(p.addr, "/", "X-Forwarded-For: 10.1.1.1\r\n").await;
    assert!(body.contains("|xff=10.1.1.1, 127.0.0.1|"), "{body}");
    assert!(body.contains("|xfp=http|"), "{body}");
    assert!(body.contains("|xfh=app.example|"), "{body}");
    // Hop-by-hop Connection header is not forwarded.
    assert!(body.contains("|conn=|"), "{body}");
    let rid = body
        .split("|rid=")
        .nth(1)
        .unwrap()
        .split('|')
        .next()
        .unwrap();
    assert_eq!(rid.len(), 16, "{body}");
    assert!(rid.bytes().all(|b| b.is_ascii_hexdigit()), "{body}");
    let (_, _, body2) = get(p.addr, "/", "").await;
    assert!(
        !body2.contains(&format!("rid={rid}")),
        "request ids repeat: {body2}"
    );
    let (_, _, body) = get(p.addr, "/", "X-Request-Id: keep-me\r\n").await;
    assert!(body.contains("|rid=keep-me|"), "{body}");
}

#[tokio::test]
async fn weighted_split_roughly_matches() {
    let (a, b) = (backend("a").await, backend("b").await);
    let p = proxy(RouterConfig::default());
    p.router.set_table(RouteTable {
        routes: vec![route(
            p.addr,
            None,
            "/",
            vec![
                backend_of("stable", 80, vec![upstream("a1", a)]),
                backend_of("canary", 20, vec![upstream("b1", b)]),
                backend_of("off", 0, vec![upstream("z1", dead_addr())]),
            ],
        )],
    });
    let c = client();
    let mut to_b = 0;
    for _ in 0..1000 {
        let (s, body) = fetch(&c, p.addr, "/").await;
        assert_eq!(s, 200, "{body}");
        if body.starts_with("b|") {
            to_b += 1;
        }
    }
    assert!((120..=280).contains(&to_b), "canary got {to_b}/1000");
    let stats = p.router.stats("canary", Duration::from_secs(60));
    assert_eq!(stats.requests, to_b);
    assert_eq!(
        p.router.stats("stable", Duration::from_secs(60)).requests,
        1000 - to_b
    );
    assert_eq!(
        p.router
            .stats("off", Duration::from_secs(60))
            .connect_errors,
        0
    );
}

#[tokio::test]
async fn no_instances_is_503_and_no_route_is_404() {
    let p = proxy(RouterConfig::default());
    let (status, _, body) = get(p.addr, "/", "").await;
    assert_eq!(status, 404, "{body}");
    p.router.set_table(RouteTable {
        routes: vec![route(p.addr, None, "/", vec![backend_of("r1", 1, vec![])])],
    });
    let (status, _, body) = get(p.addr, "/", "").await;
    assert_eq!(status, 503);
    assert!(body.contains("no healthy instance"), "{body}");
    let s = p.router.stats("r1", Duration::from_secs(60));
    assert_eq!((s.requests, s.status_5xx), (1, 1));
}

#[tokio::test]
async fn host_and_path_prefix_select_the_route() {
    let (root, api, other) = (
        backend("root").await,
        backend("api").await,
        backend("other").await,
    );
    let p = proxy(RouterConfig::default());
    p.router.set_table(RouteTable {
        routes: vec![
            route(
                p.addr,
                None,
                "/",
                vec![backend_of("root", 1, vec![upstream("root", root)])],
            ),
            route(
                p.addr,
                None,
                "/api",
                vec![backend_of("api", 1, vec![upstream("api", api)])],
            ),
            route(
                p.addr,
                Some("Other.Example"),
                "/",
                vec![backend_of("other", 1, vec![upstream("other", other)])],
            ),
            route(
                p.addr,
                Some("only.example"),
                "/x",
                vec![backend_of("x", 1, vec![upstream("x", other)])],
            ),
        ],
    });
    let (_, _, body) = get(p.addr, "/", "").await;
    assert!(body.starts_with("root|"), "{body}");
    let (_, _, body) = get(p.addr, "/api/v1", "").await;
    assert!(body.starts_with("api|"), "{body}");
    let req = b"GET /api HTTP/1.1\r\nHost: other.EXAMPLE:8080\r\nConnection: close\r\n\r\n";
    let (_, _, body) = raw(p.addr, req).await;
    assert!(
        body.starts_with("api|"),
        "longest prefix wins over host: {body}"
    );
    let req = b"GET /z HTTP/1.1\r\nHost: other.EXAMPLE:8080\r\nConnection: close\r\n\r\n";
    let (_, _, body) = raw(p.addr, req).await;
    assert!(body.starts_with("other|"), "{body}");
    // A route of another listener never matches.
    let p2 = proxy(RouterConfig::default());
    p2.router.set_table(RouteTable {
        routes: vec![route(
            p.addr,
            None,
            "/",
            vec![backend_of("root", 1, vec![upstream("root", root)])],
        )],
    });
    let (status, _, _) = get(p2.addr, "/", "").await;
    assert_eq!(status, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn table_swap_under_load_has_no_failures() {
    let (old, new) = (backend("old").await, backend("new").await);
    let p = proxy(RouterConfig::default());
    single(&p, "v1", &[old]);
    let failures = Arc::new(AtomicUsize::new(0));
    let seen_new = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for _ in 0..4 {
        let (addr, failures, seen_new) = (p.addr, failures.clone(), seen_new.clone());
        tasks.push(tokio::spawn(async move {
            let c = client();
            let end = Instant::now() + Duration::from_millis(800);
            while Instant::now() < end {
                let (s, body) = fetch(&c, addr, "/").await;
                if s != 200 {
                    failures.fetch_add(1, Ordering::Relaxed);
                } else if body.starts_with("new|") {
                    seen_new.fetch_add(1, Ordering::Relaxed);
                }
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    single(&p, "v2", &[new]);
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(failures.load(Ordering::Relaxed), 0);
    assert!(seen_new.load(Ordering::Relaxed) > 0);
}

#[tokio::test]
async fn refused_connection_is_retried_on_another_instance() {
    let good = backend("good").await;
    let dead = dead_addr();
    let p = proxy(RouterConfig::default());
    p.router.set_table(RouteTable {
        routes: vec![route(
            p.addr,
            None,
            "/",
            vec![
                backend_of("bad", 1, vec![upstream("dead", dead)]),
                backend_of("good", 1, vec![upstream("good", good)]),
            ],
        )],
    });
    let c = client();
    for _ in 0..20 {
        let (s, body) = fetch(&c, p.addr, "/").await;
        assert_eq!(s, 200, "{body}");
        assert!(body.starts_with("good|"));
    }
    let bad = p.router.stats("bad", Duration::from_secs(60));
    assert_eq!(
        bad.connect_errors, 1,
        "ejected after the first refusal: {bad:?}"
    );
    let health = p.router.upstream_health();
    assert!(
        health
            .iter()
            .any(|h| h.id == "dead" && h.ejected && h.release == "bad"),
        "{health:?}"
    );
    assert!(health.iter().any(|h| h.id == "good" && !h.ejected));
    // A POST with a body is not retried: 502 when its only instance refuses.
    let p2 = proxy(RouterConfig::default());
    single(&p2, "solo", &[dead_addr()]);
    let (s, _, _) = raw(
        p2.addr,
        b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nConnection: close\r\n\r\nhi",
    )
    .await;
    assert_eq!(s, 502);
    let solo = p2.router.stats("solo", Duration::from_secs(60));
    assert_eq!(
        (solo.requests, solo.status_5xx, solo.connect_errors),
        (1, 1, 1)
    );
}

#[tokio::test]
async fn ejected_instance_returns_after_probe() {
    let spare = dead_addr();
    let good = backend("good").await;
    let p = proxy(RouterConfig {
        eject_for: Duration::from_millis(100),
        ..RouterConfig::default()
    });
    single(&p, "r", &[spare, good]);
    let c = client();
    // Least-outstanding with random ties sends some request to the dead one soon.
    let mut tries = 0;
    while !p
        .router
        .upstream_health()
        .iter()
        .any(|h| h.addr == spare && h.ejected)
    {
        assert_eq!(fetch(&c, p.addr, "/").await.0, 200);
        tries += 1;
        assert!(tries < 200, "dead instance never tried");
    }
    // Something now listens there again: the probe re-admits it.
    let _back = std::net::TcpListener::bind(spare).unwrap();
    let end = Instant::now() + LIMIT;
    while p.router.upstream_health().iter().any(|h| h.ejected) {
        assert!(Instant::now() < end, "never re-admitted");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn oversized_header_gets_431() {
    let b = backend("b1").await;
    let p = proxy(RouterConfig::default());
    single(&p, "r1", &[b]);
    let big = "a".repeat(100 * 1024);
    let (status, head, _) = get(p.addr, "/", &format!("X-Big: {big}\r\n")).await;
    assert_eq!(status, 431, "{head}");
    // Just under the limit still passes.
    let ok = "a".repeat(40 * 1024);
    let (status, _, _) = get(p.addr, "/", &format!("X-Big: {ok}\r\n")).await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn garbage_request_line_gets_400() {
    let p = proxy(RouterConfig::default());
    let (status, head, _) = raw(p.addr, b"THIS IS NOT HTTP AT ALL\r\n\r\n").await;
    assert_eq!(status, 400, "{head}");
}

#[tokio::test]
async fn slow_header_sender_is_disconnected() {
    let p = proxy(RouterConfig {
        header_read_timeout: Duration::from_millis(300),
        ..RouterConfig::default()
    });
    let mut s = TcpStream::connect(p.addr).await.unwrap();
    s.write_all(b"GET / HTTP/1.1\r\nHost: slow.example\r\nX-A: 1\r\n")
        .await
        .unwrap();
    let start = Instant::now();
    let mut buf = Vec::new();
    let r = tokio::time::timeout(LIMIT, s.read_to_end(&mut buf)).await;
    assert!(
        r.is_ok(),
        "connection still open after {:?}",
        start.elapsed()
    );
    assert!(start.elapsed() < Duration::from_secs(5));
    // Fewer bytes than the HTTP/2 preface, then silence: closed too.
    let mut s = TcpStream::connect(p.addr).await.unwrap();
    s.write_all(b"GET / HT").await.unwrap();
    let r = tokio::time::timeout(LIMIT, s.read_to_end(&mut buf)).await;
    assert!(r.is_ok(), "short-prefix connection still open");
}

#[tokio::test]
async fn silent_upstream_gets_504() {
    let b = backend("b1").await;
    let p = proxy(RouterConfig {
        upstream_timeout: Duration::from_millis(300),
        ..RouterConfig::default()
    });
    single(&p, "r1", &[b]);
    let (status, _, body) = get(p.addr, "/never", "").await;
    assert_eq!(status, 504, "{body}");
    let s = p.router.stats("r1", Duration::from_secs(60));
    assert_eq!((s.requests, s.status_5xx), (1, 1));
    assert!(s.latency.quantile(0.5) >= 250.0, "{:?}", s.latency);
}

#[tokio::test]
async fn upgrade_relays_raw_bytes() {
    let b = backend("b1").await;
    let p = proxy(RouterConfig::default());
    single(&p, "r1", &[b]);
    let mut s = TcpStream::connect(p.addr).await.unwrap();
    s.write_all(b"GET /ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n")
        .await
        .unwrap();
    let head = read_head(&mut s).await;
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    s.write_all(b"ping-pong").await.unwrap();
    let mut buf = [0u8; 9];
    tokio::time::timeout(LIMIT, s.read_exact(&mut buf))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(&buf, b"ping-pong");
    assert_eq!(
        p.router.in_flight("r1-0"),
        0,
        "upgraded connections are not in flight"
    );
}

async fn read_head(s: &mut TcpStream) -> String {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        let n = tokio::time::timeout(LIMIT, s.read(&mut byte))
            .await
            .unwrap()
            .unwrap();
        assert!(
            n > 0,
            "closed during head: {}",
            String::from_utf8_lossy(&head)
        );
        head.push(byte[0]);
    }
    String::from_utf8_lossy(&head).to_string()
}

#[tokio::test]
async fn in_flight_rises_during_a_slow_request() {
    let b = backend("b1").await;
    let p = proxy(RouterConfig::default());
    single(&p, "r1", &[b]);
    let addr = p.addr;
    let slow = tokio::spawn(async move { get(addr, "/slow", "x-delay-ms: 600\r\n").await });
    let end = Instant::now() + LIMIT;
    while p.router.in_flight("r1-0") == 0 {
        assert!(Instant::now() < end);
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(p.router.upstream_health()[0].in_flight, 1);
    assert_eq!(slow.await.unwrap().0, 200);
    assert_eq!(p.router.in_flight("r1-0"), 0);
    assert_eq!(p.router.in_flight("unknown"), 0);
}

#[tokio::test]
async fn drain_finishes_in_flight_and_refuses_new_connections() {
    let b = backend("b1").await;
    let p = proxy(RouterConfig::default());
    single(&p, "r1", &[b]);
    // An idle keep-alive connection must not hold the drain up.
    let mut idle = TcpStream::connect(p.addr).await.unwrap();
    idle.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let _ = read_head(&mut idle).await;
    let addr = p.addr;
    let slow = tokio::spawn(async move { get(addr, "/slow", "x-delay-ms: 700\r\n").await });
    while p.router.in_flight("r1-0") == 0 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let router = p.router.clone();
    let start = Instant::now();
    let drain = tokio::spawn(async move { router.drain(Duration::from_secs(5)).await });
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(
        TcpStream::connect(p.addr).await.is_err(),
        "still accepting during drain"
    );
    let (status, _, body) = slow.await.unwrap();
    assert_eq!(status, 200, "{body}");
    tokio::time::timeout(LIMIT, drain).await.unwrap().unwrap();
    assert!(
        start.elapsed() < Duration::from_secs(4),
        "drain waited for the idle connection"
    );
}

#[tokio::test]
async fn stats_count_requests_and_5xx() {
    let b = backend("b1").await;
    let p = proxy(RouterConfig {
        upstream_timeout: Duration::from_millis(200),
        ..RouterConfig::default()
    });
    single(&p, "r1", &[b]);
    for _ in 0..5 {
        assert_eq!(get(p.addr, "/", "").await.0, 200);
    }
    assert_eq!(get(p.addr, "/never", "").await.0, 504);
    let s = p.router.stats("r1", Duration::from_secs(10));
    assert_eq!((s.requests, s.status_5xx, s.connect_errors), (6, 1, 0));
    assert_eq!(s.latency.count(), 6);
    assert!(s.latency.quantile(0.99) >= s.latency.quantile(0.5));
    assert_eq!(
        (s.requests_total, s.status_5xx_total, s.connect_errors_total),
        (6, 1, 0)
    );
    assert_eq!(s.duration_total.count, 6);
    // The 504 waited for the 200 ms upstream timeout.
    assert!(
        s.duration_total.sum_seconds >= 0.2,
        "{:?}",
        s.duration_total
    );
    assert_eq!(s.duration_total.buckets.last().map(|b| b.1), Some(6));
    assert_eq!(p.router.stats("nope", Duration::from_secs(10)).requests, 0);
}

#[tokio::test]
async fn h2c_prior_knowledge_is_served() {
    let b = backend("b1").await;
    let p = proxy(RouterConfig::default());
    single(&p, "r1", &[b]);
    let stream = TcpStream::connect(p.addr).await.unwrap();
    let (mut sender, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
            .await
            .unwrap();
    tokio::spawn(conn);
    let req = Request::get(format!("http://h2.example:{}/over-h2", p.addr.port()))
        .body(Full::new(Bytes::new()))
        .unwrap();
    let resp = tokio::time::timeout(LIMIT, sender.send_request(req))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(resp.status(), 200);
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    let body = String::from_utf8_lossy(&body);
    assert!(body.starts_with("b1|GET|/over-h2|"), "{body}");
    assert!(
        body.contains(&format!("|xfh=h2.example:{}|", p.addr.port())),
        "{body}"
    );
}

/// A raw TCP WebSocket-ish upstream: answers 101, sends the `frames`, then ends as `end` says.
async fn ws_upstream(frames: &'static [u8], end: WsEnd) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let Ok((mut s, _)) = listener.accept().await else {
            return;
        };
        let _ = read_head(&mut s).await;
        s.write_all(b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n")
            .await
            .unwrap();
        s.write_all(frames).await.unwrap();
        match end {
            // Like a kill -9: the kernel resets the connection.
            WsEnd::Reset => {
                s.set_zero_linger().unwrap();
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            WsEnd::Eof => tokio::time::sleep(Duration::from_millis(50)).await,
            WsEnd::Never => std::future::pending::<()>().await,
        }
    });
    addr
}

#[derive(Clone, Copy)]
enum WsEnd {
    Reset,
    Eof,
    Never,
}

/// Opens a WebSocket through the proxy.
async fn ws_session(p: &Proxy) -> TcpStream {
    let mut s = TcpStream::connect(p.addr).await.unwrap();
    s.write_all(
        b"GET /ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
          Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
    )
    .await
    .unwrap();
    let head = read_head(&mut s).await;
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    s
}

async fn read_all(s: &mut TcpStream) -> Vec<u8> {
    let mut out = Vec::new();
    tokio::time::timeout(LIMIT, s.read_to_end(&mut out))
        .await
        .expect("no EOF")
        .unwrap();
    out
}

#[tokio::test]
async fn vanished_websocket_upstream_sends_close_1012() {
    for end in [WsEnd::Reset, WsEnd::Eof] {
        let up = ws_upstream(&[0x81, 2, b'h', b'i', 0x82, 126, 0, 3, 1, 2, 3], end).await;
        let p = proxy(RouterConfig::default());
        single(&p, "r1", &[up]);
        let mut s = ws_session(&p).await;
        let got = read_all(&mut s).await;
        assert_eq!(
            got,
            [
                0x81, 2, b'h', b'i', 0x82, 126, 0, 3, 1, 2, 3, 0x88, 0x02, 0x03, 0xF4
            ]
        );
    }
}

#[tokio::test]
async fn websocket_close_from_upstream_is_not_doubled() {
    let up = ws_upstream(&[0x81, 1, b'x', 0x88, 2, 0x03, 0xE8], WsEnd::Eof).await;
    let p = proxy(RouterConfig::default());
    single(&p, "r1", &[up]);
    let mut s = ws_session(&p).await;
    assert_eq!(read_all(&mut s).await, [0x81, 1, b'x', 0x88, 2, 0x03, 0xE8]);
}

#[tokio::test]
async fn drain_grace_end_closes_websockets_with_1001() {
    let up = ws_upstream(&[0x81, 2, b'o', b'k'], WsEnd::Never).await;
    let p = proxy(RouterConfig::default());
    single(&p, "r1", &[up]);
    let mut s = ws_session(&p).await;
    let mut first = [0u8; 4];
    tokio::time::timeout(LIMIT, s.read_exact(&mut first))
        .await
        .unwrap()
        .unwrap();
    let start = Instant::now();
    tokio::time::timeout(LIMIT, p.router.drain(Duration::from_millis(300)))
        .await
        .unwrap();
    assert!(
        start.elapsed() >= Duration::from_millis(300),
        "drain did not keep the WebSocket"
    );
    assert_eq!(read_all(&mut s).await, [0x88, 0x02, 0x03, 0xE9]);
}

/// A raw TCP upstream: for each request on a connection it reads the head and the raw body
/// (Content-Length, or chunked up to `0\r\n\r\n`), counts it, and writes `reply(request)`.
/// With `close_after`, each connection is closed that long after its first response.
async fn raw_upstream(
    reply: fn(&[u8]) -> Vec<u8>,
    close_after: Option<Duration>,
) -> (SocketAddr, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let served = Arc::new(AtomicUsize::new(0));
    let count = served.clone();
    tokio::spawn(async move {
        loop {
            let Ok((mut s, _)) = listener.accept().await else {
                return;
            };
            let count = count.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                loop {
                    let Some(n) = read_request(&mut s, &mut buf).await else {
                        return;
                    };
                    let req: Vec<u8> = buf.drain(..n).collect();
                    count.fetch_add(1, Ordering::Relaxed);
                    if s.write_all(&reply(&req)).await.is_err() {
                        return;
                    }
                    if let Some(d) = close_after {
                        tokio::time::sleep(d).await;
                        return;
                    }
                }
            });
        }
    });
    (addr, served)
}

/// Reads one whole request into `buf`; returns its length (None at EOF).
async fn read_request(s: &mut TcpStream, buf: &mut Vec<u8>) -> Option<usize> {
    let mut chunk = [0u8; 4096];
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
            let body_start = end + 4;
            if head.contains("transfer-encoding: chunked") {
                if let Some(p) = buf[body_start..].windows(5).position(|w| w == b"0\r\n\r\n") {
                    return Some(body_start + p + 5);
                }
            } else {
                let len: usize = head
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length:"))
                    .map_or(0, |v| v.trim().parse().unwrap());
                if buf.len() >= body_start + len {
                    return Some(body_start + len);
                }
            }
        }
        let n = s.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// The body of a raw request (after the head).
fn body_of(req: &[u8]) -> &[u8] {
    let end = req.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    &req[end + 4..]
}

/// Chunked response whose body is the request body rewrapped in odd chunks, with a trailer.
fn chunked_echo(req: &[u8]) -> Vec<u8> {
    let body = body_of(req);
    let mut out = b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n".to_vec();
    for part in body.chunks(7) {
        out.extend_from_slice(format!("{:x};x=y\r\n", part.len()).as_bytes());
        out.extend_from_slice(part);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"0\r\nx-trailer: t\r\n\r\n");
    out
}

const CHUNKED_REQUEST_BODY: &[u8] =
    b"5\r\nhello\r\n1a;ext\r\n abcdefghijklmnopqrstuvwxy\r\n0\r\n\r\n";

#[tokio::test]
async fn chunked_bodies_are_relayed_byte_exact() {
    let (up, _) = raw_upstream(chunked_echo, None).await;
    let p = proxy(RouterConfig::default());
    single(&p, "r1", &[up]);
    let mut req =
        b"POST /c HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
            .to_vec();
    req.extend_from_slice(CHUNKED_REQUEST_BODY);
    let (status, head, body) = raw(p.addr, &req).await;
    assert_eq!(status, 200, "{head}");
    assert!(
        head.to_ascii_lowercase()
            .contains("transfer-encoding: chunked"),
        "{head}"
    );
    // The upstream saw the request body verbatim and echoed it in 7-byte chunks, passed verbatim.
    let mut want = Vec::new();
    for part in CHUNKED_REQUEST_BODY.chunks(7) {
        want.extend_from_slice(format!("{:x};x=y\r\n", part.len()).as_bytes());
        want.extend_from_slice(part);
        want.extend_from_slice(b"\r\n");
    }
    want.extend_from_slice(b"0\r\nx-trailer: t\r\n\r\n");
    assert_eq!(body.as_bytes(), &want[..]);
    // A chunked body sent in pieces, slowly, reaches a hyper backend intact.
    let b = backend("b1").await;
    single(&p, "r2", &[b]);
    let mut s = TcpStream::connect(p.addr).await.unwrap();
    s.write_all(
        b"POST /s HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n",
    )
    .await
    .unwrap();
    for piece in CHUNKED_REQUEST_BODY.chunks(4) {
        s.write_all(piece).await.unwrap();
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let got = String::from_utf8(read_all(&mut s).await).unwrap();
    assert!(
        got.ends_with("body=hello abcdefghijklmnopqrstuvwxy"),
        "{got}"
    );
}

fn ok_keep_alive(req: &[u8]) -> Vec<u8> {
    let body = format!("seen {} bytes", body_of(req).len());
    format!(
        "HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

#[tokio::test]
async fn pooled_connection_closed_while_idle_is_retried() {
    // Every upstream connection serves one request, then the upstream closes it while idle.
    let (up, served) = raw_upstream(ok_keep_alive, Some(Duration::from_millis(10))).await;
    let p = proxy(RouterConfig::default());
    single(&p, "r1", &[up]);
    let c = client();
    for i in 0..10 {
        let (s, body) = fetch(&c, p.addr, "/").await;
        assert_eq!(s, 200, "request {i}: {body}");
        // A POST with a complete body is resent as well.
        let req = Request::post(format!("http://{}/p", p.addr))
            .body(Full::new(Bytes::from_static(b"12345")))
            .unwrap();
        let resp = tokio::time::timeout(LIMIT, c.request(req))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(resp.status(), 200);
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(&body[..], b"seen 5 bytes");
        tokio::time::sleep(Duration::from_millis(40)).await;
    }
    assert_eq!(served.load(Ordering::Relaxed), 20);
    let s = p.router.stats("r1", Duration::from_secs(60));
    assert_eq!((s.requests, s.status_5xx, s.connect_errors), (20, 0, 0));
}

#[tokio::test]
async fn connection_close_and_http10_clients_are_closed_after_the_response() {
    let b = backend("b1").await;
    let (chunked_up, _) = raw_upstream(chunked_echo, None).await;
    let p = proxy(RouterConfig::default());
    p.router.set_table(RouteTable {
        routes: vec![
            route(
                p.addr,
                None,
                "/",
                vec![backend_of("r1", 1, vec![upstream("b1", b)])],
            ),
            route(
                p.addr,
                None,
                "/chunked",
                vec![backend_of("r2", 1, vec![upstream("c1", chunked_up)])],
            ),
        ],
    });
    // Keep-alive first, then Connection: close on the same connection: both answered, then EOF.
    let mut s = TcpStream::connect(p.addr).await.unwrap();
    s.write_all(b"GET /one HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let head = read_head(&mut s).await;
    assert!(
        !head.to_ascii_lowercase().contains("connection: close"),
        "{head}"
    );
    let len: usize = head
        .to_ascii_lowercase()
        .lines()
        .find_map(|l| {
            l.strip_prefix("content-length:")
                .map(|v| v.trim().parse().unwrap())
        })
        .unwrap();
    let mut body = vec![0u8; len];
    s.read_exact(&mut body).await.unwrap();
    s.write_all(b"GET /two HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let rest = String::from_utf8(read_all(&mut s).await).unwrap();
    assert!(
        rest.to_ascii_lowercase().contains("connection: close"),
        "{rest}"
    );
    assert!(rest.contains("b1|GET|/two|"), "{rest}");
    // HTTP/1.0 without keep-alive: answered, then closed.
    let (status, head, body) = raw(p.addr, b"GET /ten HTTP/1.0\r\nHost: x\r\n\r\n").await;
    assert_eq!(status, 200, "{head}");
    assert!(body.starts_with("b1|GET|/ten|"), "{body}");
    // HTTP/1.0 and a chunked upstream body: decoded, delimited by the close.
    let mut req = b"POST /chunked HTTP/1.0\r\nHost: x\r\nContent-Length: 11\r\n\r\n".to_vec();
    req.extend_from_slice(b"hello world");
    let (status, head, body) = raw(p.addr, &req).await;
    assert_eq!(status, 200, "{head}");
    assert!(!head.to_ascii_lowercase().contains("chunked"), "{head}");
    assert_eq!(body, "hello world");
}

fn until_eof(_: &[u8]) -> Vec<u8> {
    b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\n\r\nno length, ends with the connection"
        .to_vec()
}

#[tokio::test]
async fn response_without_length_is_read_to_eof() {
    let (up, _) = raw_upstream(until_eof, Some(Duration::ZERO)).await;
    let p = proxy(RouterConfig::default());
    single(&p, "r1", &[up]);
    for _ in 0..3 {
        let mut s = TcpStream::connect(p.addr).await.unwrap();
        // A keep-alive request: the proxy must still close to end the body.
        s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        let got = String::from_utf8(read_all(&mut s).await).unwrap();
        assert!(got.starts_with("HTTP/1.1 200"), "{got}");
        assert!(
            got.ends_with("\r\n\r\nno length, ends with the connection"),
            "{got}"
        );
    }
}

#[tokio::test]
async fn expect_100_continue_is_passed_through() {
    let b = backend("b1").await;
    let p = proxy(RouterConfig::default());
    single(&p, "r1", &[b]);
    let mut s = TcpStream::connect(p.addr).await.unwrap();
    s.write_all(
        b"POST /e HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nExpect: 100-continue\r\nConnection: close\r\n\r\n",
    )
    .await
    .unwrap();
    let interim = read_head(&mut s).await;
    assert!(interim.starts_with("HTTP/1.1 100"), "{interim}");
    s.write_all(b"hello").await.unwrap();
    let got = String::from_utf8(read_all(&mut s).await).unwrap();
    assert!(got.starts_with("HTTP/1.1 200"), "{got}");
    assert!(got.ends_with("|body=hello"), "{got}");
}

#[tokio::test]
async fn pipelined_requests_are_answered_in_order() {
    let b = backend("b1").await;
    let p = proxy(RouterConfig::default());
    single(&p, "r1", &[b]);
    let mut s = TcpStream::connect(p.addr).await.unwrap();
    s.write_all(
        b"GET /p1 HTTP/1.1\r\nHost: x\r\n\r\n\
          POST /p2 HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc\
          GET /p3 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .await
    .unwrap();
    let got = String::from_utf8(read_all(&mut s).await).unwrap();
    let at = |needle: &str| {
        got.find(needle)
            .unwrap_or_else(|| panic!("{needle} missing: {got}"))
    };
    assert!(at("b1|GET|/p1|") < at("b1|POST|/p2|"), "{got}");
    assert!(at("b1|POST|/p2|") < at("b1|GET|/p3|"), "{got}");
    assert!(got.contains("|body=abc"), "{got}");
    assert_eq!(got.matches("HTTP/1.1 200").count(), 3, "{got}");
}

#[tokio::test]
async fn keep_alive_request_in_flight_at_drain_gets_connection_close() {
    let b = backend("b1").await;
    let p = proxy(RouterConfig::default());
    single(&p, "r1", &[b]);
    let mut s = TcpStream::connect(p.addr).await.unwrap();
    s.write_all(b"GET /slow HTTP/1.1\r\nHost: x\r\nx-delay-ms: 300\r\n\r\n")
        .await
        .unwrap();
    while p.router.in_flight("r1-0") == 0 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let router = p.router.clone();
    let drain = tokio::spawn(async move { router.drain(Duration::from_secs(5)).await });
    let got = String::from_utf8(read_all(&mut s).await).unwrap();
    assert!(got.starts_with("HTTP/1.1 200"), "{got}");
    assert!(
        got.to_ascii_lowercase().contains("connection: close"),
        "{got}"
    );
    tokio::time::timeout(LIMIT, drain).await.unwrap().unwrap();
}

/// An instance that accepts a connection and drops it without a byte of
/// answer (killed, or closing its listener while stopping): an idempotent
/// request goes to another instance instead of failing.
#[tokio::test]
async fn a_fresh_connection_dropped_unanswered_is_retried_elsewhere() {
    let good = backend("good").await;
    let dropping = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let dropping_addr = dropping.local_addr().unwrap();
    let accepted = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = accepted.clone();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = dropping.accept().await else {
                return;
            };
            counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            // Read nothing, answer nothing: the connection ends at once.
            drop(stream);
        }
    });
    let p = proxy(RouterConfig::default());
    p.router.set_table(RouteTable {
        routes: vec![route(
            p.addr,
            None,
            "/",
            vec![
                backend_of("dying", 1, vec![upstream("dying", dropping_addr)]),
                backend_of("good", 1, vec![upstream("good", good)]),
            ],
        )],
    });
    for _ in 0..20 {
        let (status, _, body) = get(p.addr, "/", "").await;
        assert_eq!(status, 200, "{body}");
        assert!(body.starts_with("good|"), "{body}");
    }
    assert!(
        accepted.load(std::sync::atomic::Ordering::SeqCst) > 0,
        "no request reached the dying instance"
    );
}
