//! Canary traffic controls end to end: sticky cohorts, pins and dark-launch mirroring, with real
//! listeners on 127.0.0.1:0 and hyper backends that answer with their own name.

#![allow(clippy::unwrap_used)]

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use lastmile_router::{
    Backend, CohortRule, KeySource, ListenerHandle, MirrorRule, PinRule, Route, RouteTable, Router,
    RouterConfig, Upstream, cohort_bucket,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Upper bound for anything a test waits on.
const LIMIT: Duration = Duration::from_secs(8);

/// What a backend saw.
#[derive(Default)]
struct Seen {
    gets: AtomicUsize,
    posts: AtomicUsize,
    /// Requests carrying `x-lastmile-mirror: 1`.
    marked: AtomicUsize,
    /// Bytes of request bodies received.
    body_bytes: AtomicUsize,
}

/// A hyper backend answering `name` with `status` after `delay`, counting what it receives.
async fn backend(name: &'static str, status: u16, delay: Duration) -> (SocketAddr, Arc<Seen>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = Arc::new(Seen::default());
    let counts = seen.clone();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let counts = counts.clone();
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(move |req: Request<Incoming>| {
                    let counts = counts.clone();
                    async move {
                        match req.method().as_str() {
                            "GET" => counts.gets.fetch_add(1, Ordering::SeqCst),
                            "POST" => counts.posts.fetch_add(1, Ordering::SeqCst),
                            _ => 0,
                        };
                        if req
                            .headers()
                            .get("x-lastmile-mirror")
                            .is_some_and(|v| v == "1")
                        {
                            counts.marked.fetch_add(1, Ordering::SeqCst);
                        }
                        let body = req.into_body().collect().await.unwrap().to_bytes();
                        counts.body_bytes.fetch_add(body.len(), Ordering::SeqCst);
                        if !delay.is_zero() {
                            tokio::time::sleep(delay).await;
                        }
                        Ok::<_, Infallible>(
                            Response::builder()
                                .status(status)
                                .body(Full::new(Bytes::from(name)))
                                .unwrap(),
                        )
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    (addr, seen)
}

struct Proxy {
    router: Router,
    addr: SocketAddr,
    _handle: ListenerHandle,
}

fn proxy() -> Proxy {
    let router = Router::new(RouterConfig::default());
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    let handle = router.serve(l).unwrap();
    Proxy {
        router,
        addr,
        _handle: handle,
    }
}

fn release(name: &str, weight: u32, addr: Option<SocketAddr>) -> Backend {
    Backend {
        release: name.into(),
        weight,
        instances: addr
            .map(|addr| Upstream {
                id: format!("{name}-0"),
                addr,
            })
            .into_iter()
            .collect(),
    }
}

fn route(p: &Proxy, backends: Vec<Backend>) -> Route {
    Route {
        name: "prod".into(),
        listen: p.addr,
        host: None,
        path_prefix: "/".into(),
        backends,
        cohort: None,
        pins: Vec::new(),
        mirror: None,
        warmup: Default::default(),
    }
}

fn publish(p: &Proxy, route: Route) {
    p.router.set_table(RouteTable {
        routes: vec![route],
    });
}

/// One exchange with `Connection: close`: (status, head, body).
async fn send(addr: SocketAddr, method: &str, headers: &str, body: &str) -> (u16, String, String) {
    tokio::time::timeout(LIMIT, async {
        let mut s = TcpStream::connect(addr).await.unwrap();
        let req = format!(
            "{method} / HTTP/1.1\r\nHost: app.example\r\n{headers}content-length: {}\r\n\
             Connection: close\r\n\r\n{body}",
            body.len()
        );
        s.write_all(req.as_bytes()).await.unwrap();
        let mut out = Vec::new();
        let _ = s.read_to_end(&mut out).await;
        let text = String::from_utf8_lossy(&out).to_string();
        let status = text.get(9..12).and_then(|s| s.parse().ok()).unwrap_or(0);
        let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
        (status, head.to_string(), body.to_string())
    })
    .await
    .expect("exchange timed out")
}

async fn get(addr: SocketAddr, headers: &str) -> String {
    let (status, _, body) = send(addr, "GET", headers, "").await;
    assert_eq!(status, 200, "body {body}");
    body
}

/// Waits until `f` holds (or fails the test after LIMIT).
async fn eventually(what: &str, mut f: impl FnMut() -> bool) {
    let until = Instant::now() + LIMIT;
    while !f() {
        assert!(Instant::now() < until, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn cohort_route(p: &Proxy, canary: (u32, SocketAddr), stable: (u32, SocketAddr)) -> Route {
    let mut r = route(
        p,
        vec![
            release("canary", canary.0, Some(canary.1)),
            release("stable", stable.0, Some(stable.1)),
        ],
    );
    r.cohort = Some(CohortRule {
        key: KeySource::Header("x-user".into()),
        salt: "prod".into(),
        set_cookie: None,
    });
    r
}

#[tokio::test]
async fn cohort_users_stay_on_the_canary_as_it_grows() {
    let (canary, _) = backend("canary", 200, Duration::ZERO).await;
    let (stable, _) = backend("stable", 200, Duration::ZERO).await;
    let p = proxy();

    let mut at10: HashMap<String, String> = HashMap::new();
    publish(&p, cohort_route(&p, (10, canary), (90, stable)));
    for i in 0..200 {
        let key = format!("user-{i}");
        let got = get(p.addr, &format!("x-user: {key}\r\n")).await;
        // The documented bucket rule, computed independently.
        let expect = if cohort_bucket("prod", &key) < 1000 {
            "canary"
        } else {
            "stable"
        };
        assert_eq!(got, expect, "{key}");
        at10.insert(key, got);
    }
    let share10 = at10.values().filter(|b| *b == "canary").count() as f64 / 2.0;
    assert!(
        (2.0..=18.0).contains(&share10),
        "canary share at 10: {share10}%"
    );

    publish(&p, cohort_route(&p, (50, canary), (50, stable)));
    let mut on_canary = 0;
    for (key, before) in &at10 {
        let now = get(p.addr, &format!("x-user: {key}\r\n")).await;
        if before == "canary" {
            assert_eq!(now, "canary", "{key} left the canary when it grew");
        }
        on_canary += usize::from(now == "canary");
    }
    let share50 = on_canary as f64 / 2.0;
    assert!(
        (42.0..=58.0).contains(&share50),
        "canary share at 50: {share50}%"
    );

    for key in ["user-3", "user-77", "user-150"] {
        let first = get(p.addr, &format!("x-user: {key}\r\n")).await;
        for _ in 0..20 {
            assert_eq!(get(p.addr, &format!("x-user: {key}\r\n")).await, first);
        }
    }
}

#[tokio::test]
async fn new_users_get_a_cookie_that_keeps_their_backend() {
    let (canary, _) = backend("canary", 200, Duration::ZERO).await;
    let (stable, _) = backend("stable", 200, Duration::ZERO).await;
    let p = proxy();
    let mut r = cohort_route(&p, (50, canary), (50, stable));
    r.cohort = Some(CohortRule {
        key: KeySource::Cookie("lm_user".into()),
        salt: "prod".into(),
        set_cookie: Some("lm_user".into()),
    });
    publish(&p, r);

    let mut seen = HashMap::new();
    for _ in 0..20 {
        let (status, head, first) = send(p.addr, "GET", "", "").await;
        assert_eq!(status, 200);
        let line = head
            .lines()
            .find_map(|l| l.strip_prefix("set-cookie: "))
            .unwrap_or_else(|| panic!("no set-cookie in {head}"));
        let (pair, attrs) = line.split_once("; ").unwrap();
        assert_eq!(attrs, "Path=/; Max-Age=31536000; SameSite=Lax");
        let id = pair.strip_prefix("lm_user=").unwrap();
        assert!(
            id.len() == 16 && id.bytes().all(|b| b.is_ascii_hexdigit()),
            "{id}"
        );
        let expect = if cohort_bucket("prod", id) < 5000 {
            "canary"
        } else {
            "stable"
        };
        assert_eq!(first, expect);
        for _ in 0..5 {
            let (status, head, again) = send(
                p.addr,
                "GET",
                &format!("cookie: theme=dark; {pair}\r\n"),
                "",
            )
            .await;
            assert_eq!(status, 200);
            assert_eq!(again, first, "cookie {pair} changed backend");
            assert!(
                !head.contains("set-cookie"),
                "a known user got a new cookie"
            );
        }
        *seen.entry(first).or_insert(0) += 1;
    }
    assert_eq!(seen.len(), 2, "20 new users all on one backend: {seen:?}");
}

#[tokio::test]
async fn pins_override_weights_and_fall_back_without_an_instance() {
    let (canary, _) = backend("canary", 200, Duration::ZERO).await;
    let (stable, _) = backend("stable", 200, Duration::ZERO).await;
    let p = proxy();
    let pins = vec![
        PinRule {
            key: KeySource::Header("x-canary".into()),
            value: "1".into(),
            release: "canary".into(),
        },
        PinRule {
            key: KeySource::Cookie("pin".into()),
            value: "stable".into(),
            release: "stable".into(),
        },
    ];

    // Canary at weight 0: only pinned requests reach it.
    let mut r = route(
        &p,
        vec![
            release("canary", 0, Some(canary)),
            release("stable", 100, Some(stable)),
        ],
    );
    r.pins = pins.clone();
    publish(&p, r);
    for _ in 0..10 {
        assert_eq!(get(p.addr, "x-canary: 1\r\n").await, "canary");
        assert_eq!(get(p.addr, "x-canary: 2\r\n").await, "stable");
        assert_eq!(get(p.addr, "").await, "stable");
    }

    // Canary at 100: the stable pin still reaches stable.
    let mut r = route(
        &p,
        vec![
            release("canary", 100, Some(canary)),
            release("stable", 0, Some(stable)),
        ],
    );
    r.pins = pins.clone();
    publish(&p, r);
    for _ in 0..10 {
        assert_eq!(get(p.addr, "cookie: a=b; pin=stable\r\n").await, "stable");
        assert_eq!(get(p.addr, "cookie: pin=other\r\n").await, "canary");
    }

    // The pinned release has no instance: the weights decide.
    let mut r = route(
        &p,
        vec![
            release("canary", 0, None),
            release("stable", 100, Some(stable)),
        ],
    );
    r.pins = pins;
    publish(&p, r);
    for _ in 0..10 {
        assert_eq!(get(p.addr, "x-canary: 1\r\n").await, "stable");
    }
}

/// Publishes `stable` at weight 100 and `shadow` at 0, copying `percent` of `methods` to shadow.
fn publish_mirror(
    p: &Proxy,
    stable: SocketAddr,
    shadow: SocketAddr,
    percent: f64,
    methods: &[&str],
) {
    let mut r = route(
        p,
        vec![
            release("stable", 100, Some(stable)),
            release("shadow", 0, Some(shadow)),
        ],
    );
    r.mirror = Some(MirrorRule {
        release: "shadow".into(),
        percent,
        methods: methods.iter().map(|m| m.to_string()).collect(),
    });
    publish(p, r);
}

#[tokio::test]
async fn mirror_copies_a_share_of_gets_only() {
    let (stable, stable_seen) = backend("stable", 200, Duration::ZERO).await;
    let (shadow, shadow_seen) = backend("shadow", 200, Duration::ZERO).await;
    let p = proxy();
    publish_mirror(&p, stable, shadow, 50.0, &["get"]);
    for _ in 0..400 {
        assert_eq!(get(p.addr, "").await, "stable");
    }
    for _ in 0..50 {
        let (status, _, body) = send(p.addr, "POST", "", "payload").await;
        assert_eq!((status, body.as_str()), (200, "stable"));
    }
    // Copies finish on their own tasks: wait until the mirror's stats stop moving.
    let mut last = usize::MAX;
    eventually("mirror copies to settle", || {
        let n = shadow_seen.gets.load(Ordering::SeqCst);
        let settled = n == last && n > 0;
        last = n;
        settled
    })
    .await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let copies = shadow_seen.gets.load(Ordering::SeqCst);
    assert!(
        (150..=250).contains(&copies),
        "{copies} of 400 GETs mirrored at 50%"
    );
    assert_eq!(shadow_seen.posts.load(Ordering::SeqCst), 0, "POST mirrored");
    assert_eq!(shadow_seen.marked.load(Ordering::SeqCst), copies);
    assert_eq!(stable_seen.gets.load(Ordering::SeqCst), 400);
    assert_eq!(stable_seen.marked.load(Ordering::SeqCst), 0);
    let stats = p.router.stats("shadow", Duration::from_secs(60));
    assert_eq!(stats.requests, copies as u64);
    assert_eq!(stats.latency.count(), copies as u64);
}

#[tokio::test]
async fn mirrored_posts_carry_their_body_when_configured() {
    let (stable, _) = backend("stable", 200, Duration::ZERO).await;
    let (shadow, shadow_seen) = backend("shadow", 200, Duration::ZERO).await;
    let p = proxy();
    publish_mirror(&p, stable, shadow, 100.0, &["GET", "POST"]);
    for _ in 0..10 {
        let (status, _, body) = send(p.addr, "POST", "", "payload").await;
        assert_eq!((status, body.as_str()), (200, "stable"));
    }
    eventually("10 mirrored POSTs", || {
        shadow_seen.posts.load(Ordering::SeqCst) == 10
    })
    .await;
    eventually("their bodies", || {
        shadow_seen.body_bytes.load(Ordering::SeqCst) == 70
    })
    .await;
}

#[tokio::test]
async fn a_slow_mirror_never_delays_users() {
    let (stable, _) = backend("stable", 200, Duration::ZERO).await;
    let (shadow, shadow_seen) = backend("shadow", 200, Duration::from_secs(2)).await;
    let p = proxy();
    publish_mirror(&p, stable, shadow, 100.0, &["GET"]);
    for i in 0..30 {
        let t = Instant::now();
        assert_eq!(get(p.addr, "").await, "stable");
        assert!(
            t.elapsed() < Duration::from_secs(1),
            "request {i} took {:?}",
            t.elapsed()
        );
    }
    eventually("the copies to arrive", || {
        shadow_seen.gets.load(Ordering::SeqCst) == 30
    })
    .await;
}

#[tokio::test]
async fn mirror_errors_show_in_its_stats_not_to_users() {
    let (stable, _) = backend("stable", 200, Duration::ZERO).await;
    let (shadow, _) = backend("shadow", 500, Duration::ZERO).await;
    let p = proxy();
    publish_mirror(&p, stable, shadow, 100.0, &["GET"]);
    for _ in 0..20 {
        assert_eq!(get(p.addr, "").await, "stable");
    }
    let window = Duration::from_secs(60);
    eventually("20 mirror 5xx", || {
        p.router.stats("shadow", window).status_5xx == 20
    })
    .await;
    let shadow_stats = p.router.stats("shadow", window);
    assert_eq!(shadow_stats.requests, 20);
    let stable_stats = p.router.stats("stable", window);
    assert_eq!((stable_stats.requests, stable_stats.status_5xx), (20, 0));
}

#[tokio::test]
async fn warm_up_answers_stay_out_of_the_window_latency_only() {
    let (app, _) = backend("app", 200, Duration::ZERO).await;
    let p = proxy();
    let warm_route = |backends| Route {
        warmup: lastmile_router::WarmupRule {
            requests: 5,
            duration: Duration::ZERO,
        },
        ..route(&p, backends)
    };
    publish(&p, warm_route(vec![release("app", 1, Some(app))]));
    for _ in 0..8 {
        assert_eq!(get(p.addr, "").await, "app");
    }
    let window = Duration::from_secs(60);
    let stats = p.router.stats("app", window);
    assert_eq!((stats.requests, stats.warmup_requests), (8, 5), "{stats:?}");
    assert_eq!(stats.latency.count(), 3, "{stats:?}");
    assert_eq!(
        (stats.requests_total, stats.duration_total.count),
        (8, 8),
        "the totals keep warm-up answers"
    );
    // A table swap keeps the instance's count: it is warm.
    publish(&p, warm_route(vec![release("app", 1, Some(app))]));
    assert_eq!(get(p.addr, "").await, "app");
    let stats = p.router.stats("app", window);
    assert_eq!((stats.warmup_requests, stats.latency.count()), (5, 4));
    // A new instance (another id) warms up again.
    let mut renamed = release("app", 1, Some(app));
    renamed.instances[0].id = "app-1".into();
    publish(&p, warm_route(vec![renamed]));
    for _ in 0..3 {
        assert_eq!(get(p.addr, "").await, "app");
    }
    let stats = p.router.stats("app", window);
    assert_eq!(
        (stats.requests, stats.warmup_requests),
        (12, 8),
        "{stats:?}"
    );
    assert_eq!(stats.latency.count(), 4);
}
