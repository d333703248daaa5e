//! End-to-end tests: real listeners on 127.0.0.1:0, real hyper/TCP backends inside the test.

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
