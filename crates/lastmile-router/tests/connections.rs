//! Open-connection limits at accept, end to end: per listener and per client IP, with real
//! sockets on 127.0.0.1:0 (and 127.0.0.2 as a second client IP).

#![allow(clippy::unwrap_used)]

use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use lastmile_router::{
    Backend, Limits, ListenerConfig, ListenerHandle, Route, RouteTable, Router, RouterConfig,
    Upstream,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket, TcpStream};

/// Upper bound for anything a test waits on.
const LIMIT: Duration = Duration::from_secs(8);

/// A hyper backend answering `ok`; an Upgrade request gets 101 and an echo.
async fn backend() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(answer);
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), svc)
                    .with_upgrades()
                    .await;
            });
        }
    });
    addr
}

async fn answer(mut req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
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
            .header("upgrade", "echo")
            .body(Full::new(Bytes::new()))
            .unwrap());
    }
    Ok(Response::new(Full::new(Bytes::from_static(b"ok"))))
}

struct Proxy {
    addr: SocketAddr,
    _router: Router,
    _handle: ListenerHandle,
}

/// A router with one listener limited by `limits`, routing everything to a backend.
async fn proxy(limits: Limits) -> Proxy {
    let b = backend().await;
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
                    id: "r1-0".into(),
                    addr: b,
                }],
            }],
            cohort: None,
            pins: Vec::new(),
            mirror: None,
            warmup: Default::default(),
        }],
    });
    Proxy {
        addr,
        _router: router,
        _handle: handle,
    }
}

/// A connection from the client IP `from`.
async fn connect_from(from: &str, to: SocketAddr) -> TcpStream {
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind(format!("{from}:0").parse().unwrap()).unwrap();
    socket.connect(to).await.unwrap()
}

/// What the server sends on `s` until it closes or a whole response arrived.
async fn response(s: &mut TcpStream) -> String {
    let mut out = Vec::new();
    let mut buf = [0u8; 1024];
    tokio::time::timeout(LIMIT, async {
        loop {
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => out.extend_from_slice(&buf[..n]),
            }
            let text = String::from_utf8_lossy(&out);
            if let Some((head, body)) = text.split_once("\r\n\r\n") {
                let len = head
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length: "))
                    .and_then(|v| v.trim().parse::<usize>().ok())
                    .unwrap_or(0);
                if body.len() >= len {
                    return;
                }
            }
        }
    })
    .await
    .expect("no response and no close");
    String::from_utf8_lossy(&out).to_string()
}

/// One keep-alive GET on `s`; the response text.
async fn keep_alive_get(s: &mut TcpStream) -> String {
    s.write_all(b"GET / HTTP/1.1\r\nHost: app.example\r\n\r\n")
        .await
        .unwrap();
    response(s).await
}

/// A connection over the limit: a 503 with `Connection: close`, then the close.
async fn assert_refused(mut s: TcpStream) {
    let text = response(&mut s).await;
    assert!(
        text.starts_with("HTTP/1.1 503 Service Unavailable\r\n"),
        "{text}"
    );
    assert!(text.contains("\r\nconnection: close\r\n"), "{text}");
    let mut rest = Vec::new();
    let closed = tokio::time::timeout(LIMIT, s.read_to_end(&mut rest)).await;
    assert!(
        matches!(closed, Ok(Ok(0)) | Ok(Err(_))),
        "not closed: {closed:?}"
    );
}

/// Waits until a new connection from `from` is served again.
async fn wait_admitted(from: &str, to: SocketAddr) -> TcpStream {
    let end = Instant::now() + LIMIT;
    loop {
        let mut s = connect_from(from, to).await;
        if keep_alive_get(&mut s).await.starts_with("HTTP/1.1 200") {
            return s;
        }
        assert!(Instant::now() < end, "{from} was never admitted again");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn a_full_listener_answers_503_and_takes_connections_again_once_one_closes() {
    let p = proxy(Limits {
        max_connections: 2,
        ..Limits::default()
    })
    .await;
    let mut first = connect_from("127.0.0.1", p.addr).await;
    let mut second = connect_from("127.0.0.1", p.addr).await;
    assert!(keep_alive_get(&mut first).await.starts_with("HTTP/1.1 200"));
    assert!(
        keep_alive_get(&mut second)
            .await
            .starts_with("HTTP/1.1 200")
    );
    assert_refused(connect_from("127.0.0.1", p.addr).await).await;
    // Another client IP is refused too: the listener is full.
    assert_refused(connect_from("127.0.0.2", p.addr).await).await;
    // Open connections keep working.
    assert!(keep_alive_get(&mut first).await.starts_with("HTTP/1.1 200"));
    drop(first);
    let mut third = wait_admitted("127.0.0.2", p.addr).await;
    assert_refused(connect_from("127.0.0.1", p.addr).await).await;
    assert!(keep_alive_get(&mut third).await.starts_with("HTTP/1.1 200"));
    assert!(
        keep_alive_get(&mut second)
            .await
            .starts_with("HTTP/1.1 200")
    );
}

#[tokio::test]
async fn the_per_ip_limit_counts_each_client_ip_alone() {
    let p = proxy(Limits {
        max_connections: 100,
        max_connections_per_ip: 1,
        ..Limits::default()
    })
    .await;
    let mut one = connect_from("127.0.0.1", p.addr).await;
    assert!(keep_alive_get(&mut one).await.starts_with("HTTP/1.1 200"));
    assert_refused(connect_from("127.0.0.1", p.addr).await).await;
    let mut two = connect_from("127.0.0.2", p.addr).await;
    assert!(keep_alive_get(&mut two).await.starts_with("HTTP/1.1 200"));
    assert_refused(connect_from("127.0.0.2", p.addr).await).await;
    drop(one);
    let _again = wait_admitted("127.0.0.1", p.addr).await;
    assert!(keep_alive_get(&mut two).await.starts_with("HTTP/1.1 200"));
}

#[tokio::test]
async fn upgraded_connections_hold_their_place_until_they_close() {
    let p = proxy(Limits {
        max_connections: 1,
        ..Limits::default()
    })
    .await;
    let mut ws = connect_from("127.0.0.1", p.addr).await;
    ws.write_all(b"GET /ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n")
        .await
        .unwrap();
    let head = response(&mut ws).await;
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    ws.write_all(b"ping").await.unwrap();
    let mut echo = [0u8; 4];
    tokio::time::timeout(LIMIT, ws.read_exact(&mut echo))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(&echo, b"ping");
    assert_refused(connect_from("127.0.0.1", p.addr).await).await;
    drop(ws);
    let _next = wait_admitted("127.0.0.1", p.addr).await;
}
