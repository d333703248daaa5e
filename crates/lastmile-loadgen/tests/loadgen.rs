//! The load generator against small servers written here (real sockets on 127.0.0.1:0), each
//! misbehaving in one way, over plain TCP and over TLS with certificates from a test CA, and
//! against the real `hello` example when it has been built.

use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use lastmile_loadgen::{LoadConfig, LoadGen, Report, TlsTarget};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;

// The same frame code the load generator uses, for the echo server's side.
#[path = "../src/frame.rs"]
#[allow(dead_code, unreachable_pub)]
mod frame;

/// How the test server answers.
#[derive(Debug, Clone, Copy)]
enum Http {
    /// This status and body, with a content-length.
    Length(u16, &'static str),
    /// This status and body, chunked.
    Chunked(u16, &'static str),
    /// 200, then closes the connection without saying so (a keep-alive race every time).
    CloseSilently(&'static str),
    /// Half a response head, then closes.
    CutShort,
    /// Reads the request and never answers.
    Silent,
}

/// How the test server treats a WebSocket.
#[derive(Debug, Clone, Copy)]
enum Ws {
    /// Echoes until the client closes.
    Echo,
    /// Echoes this many messages, then closes with this code.
    CloseAfter(u32, u16),
    /// Echoes this many messages, then drops the TCP connection.
    DropAfter(u32),
}

/// What the server saw.
#[derive(Debug, Default)]
struct Seen {
    connections: AtomicU64,
    /// Close frames from clients, with code 1000.
    client_closes: AtomicU64,
    /// `Host` headers of requests and upgrades.
    hosts: Mutex<BTreeSet<String>>,
    /// TLS only: completed handshakes by certificate generation (see [`ServerCertificate`]).
    handshakes: watch::Sender<BTreeMap<u32, u64>>,
    /// TLS only: handshakes that resumed an earlier session instead of a full one.
    resumed: AtomicU64,
    /// TLS only: handshakes the client broke off, e.g. after rejecting the certificate.
    handshakes_failed: AtomicU64,
    /// TLS only: server names (SNI) and ALPN protocols clients asked for.
    server_names: Mutex<BTreeSet<String>>,
    alpn: Mutex<BTreeSet<String>>,
}

impl Seen {
    fn hosts(&self) -> BTreeSet<String> {
        self.hosts.lock().expect("hosts").clone()
    }

    /// Waits until `generation` has served `count` completed handshakes.
    async fn wait_for_handshakes(&self, generation: u32, count: u64) {
        let mut handshakes = self.handshakes.subscribe();
        let reached = handshakes.wait_for(|by_generation| {
            by_generation.get(&generation).copied().unwrap_or(0) >= count
        });
        tokio::time::timeout(Duration::from_secs(10), reached)
            .await
            .unwrap_or_else(|_| {
                panic!(
                    "{count} handshakes with certificate {generation} within 10s: {:?}",
                    self.handshakes.borrow()
                )
            })
            .expect("the sender lives in self");
    }
}

/// Writes and flushes: TLS holds written bytes back until flushed.
async fn send_all<S: AsyncWrite + Unpin>(stream: &mut S, bytes: &[u8]) -> io::Result<()> {
    stream.write_all(bytes).await?;
    stream.flush().await
}

async fn server(http: Http, ws: Ws) -> (SocketAddr, Arc<Seen>) {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind 127.0.0.1:0");
    let addr = listener.local_addr().expect("local address");
    let seen = Arc::new(Seen::default());
    let counting = Arc::clone(&seen);
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            counting.connections.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(serve(stream, http, ws, Arc::clone(&counting)));
        }
    });
    (addr, seen)
}

async fn serve<S: AsyncRead + AsyncWrite + Unpin>(stream: S, http: Http, ws: Ws, seen: Arc<Seen>) {
    let mut stream = BufReader::new(stream);
    loop {
        let mut head = String::new();
        loop {
            let mut line = String::new();
            match stream.read_line(&mut line).await {
                Ok(0) | Err(_) => return,
                Ok(_) if line == "\r\n" => break,
                Ok(_) => head.push_str(&line),
            }
        }
        let lower = head.to_ascii_lowercase();
        if let Some(host) = head.lines().find_map(|line| {
            let (name, value) = line.split_once(':')?;
            name.eq_ignore_ascii_case("host").then(|| value.trim())
        }) {
            seen.hosts.lock().expect("hosts").insert(host.to_string());
        }
        if lower.contains("upgrade: websocket") {
            let key = head
                .lines()
                .find_map(|line| {
                    let (name, value) = line.split_once(':')?;
                    name.eq_ignore_ascii_case("sec-websocket-key")
                        .then(|| value.trim())
                })
                .unwrap_or_default();
            let response = format!(
                "HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\nconnection: Upgrade\r\nsec-websocket-accept: {}\r\n\r\n",
                frame::accept_key(key)
            );
            if send_all(stream.get_mut(), response.as_bytes())
                .await
                .is_ok()
            {
                websocket(stream, ws, &seen).await;
            }
            return;
        }
        let close = lower.contains("connection: close");
        let response = match http {
            Http::Length(status, body) => format!(
                "HTTP/1.1 {status} X\r\ncontent-length: {}\r\n{}\r\n{body}",
                body.len(),
                if close { "connection: close\r\n" } else { "" }
            ),
            Http::Chunked(status, body) => {
                let (first, second) = body.split_at(body.len() / 2);
                format!(
                    "HTTP/1.1 {status} X\r\ntransfer-encoding: chunked\r\n\r\n{:x};ext=1\r\n{first}\r\n{:x}\r\n{second}\r\n0\r\nx-trailer: t\r\n\r\n",
                    first.len(),
                    second.len()
                )
            }
            Http::CloseSilently(body) => {
                format!(
                    "HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n{body}",
                    body.len()
                )
            }
            Http::CutShort => "HTTP/1.1 200 OK\r\ncontent-le".to_string(),
            Http::Silent => {
                tokio::time::sleep(Duration::from_secs(30)).await;
                return;
            }
        };
        if send_all(stream.get_mut(), response.as_bytes())
            .await
            .is_err()
        {
            return;
        }
        if close || matches!(http, Http::CloseSilently(_) | Http::CutShort) {
            return;
        }
    }
}

/// The server side of a WebSocket: echoes, then behaves as `ws` says.
async fn websocket<S: AsyncRead + AsyncWrite + Unpin>(
    mut stream: BufReader<S>,
    ws: Ws,
    seen: &Seen,
) {
    let mut echoed = 0u32;
    loop {
        match ws {
            Ws::CloseAfter(limit, code) if echoed >= limit => {
                let close = frame::encode(frame::OP_CLOSE, &frame::close_payload(code, ""), None);
                let _ = send_all(stream.get_mut(), &close).await;
                // Wait for the client's answering close, then end the connection.
                while let Ok(frame) = frame::read_frame(&mut stream).await {
                    if frame.opcode == frame::OP_CLOSE {
                        break;
                    }
                }
                return;
            }
            Ws::DropAfter(limit) if echoed >= limit => return,
            _ => {}
        }
        let Ok(frame) = frame::read_frame(&mut stream).await else {
            return;
        };
        assert!(frame.opcode == frame::OP_CLOSE || frame.fin);
        let reply = match frame.opcode {
            frame::OP_TEXT | frame::OP_BINARY => {
                echoed += 1;
                frame::encode(frame.opcode, &frame.payload, None)
            }
            frame::OP_PING => frame::encode(frame::OP_PONG, &frame.payload, None),
            frame::OP_CLOSE => {
                if frame.close_code() == Some(1000) {
                    seen.client_closes.fetch_add(1, Ordering::SeqCst);
                }
                let close = frame::encode(
                    frame::OP_CLOSE,
                    &frame.payload[..2.min(frame.payload.len())],
                    None,
                );
                let _ = send_all(stream.get_mut(), &close).await;
                return;
            }
            _ => continue,
        };
        if send_all(stream.get_mut(), &reply).await.is_err() {
            return;
        }
    }
}

/// A test certificate authority: its root, and the key that signs server certificates.
struct TestCa {
    root: CertificateDer<'static>,
    issuer: rcgen::Issuer<'static, rcgen::KeyPair>,
}

impl TestCa {
    /// A new CA; distinct names keep two CAs apart even when their keys are compared last.
    fn new(name: &str) -> TestCa {
        let key = rcgen::KeyPair::generate().expect("a CA key");
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("CA params");
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, name);
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params.key_usages = vec![
            rcgen::KeyUsagePurpose::KeyCertSign,
            rcgen::KeyUsagePurpose::DigitalSignature,
        ];
        let root = params.self_signed(&key).expect("a CA certificate");
        TestCa {
            root: root.der().clone(),
            issuer: rcgen::Issuer::new(params, key),
        }
    }

    /// A server's TLS settings with a fresh key and a certificate for `name` signed by this CA.
    fn server_config(&self, name: &str) -> Arc<rustls::ServerConfig> {
        let key = rcgen::KeyPair::generate().expect("a server key");
        let params = rcgen::CertificateParams::new(vec![name.to_string()]).expect("params");
        let certificate = params
            .signed_by(&key, &self.issuer)
            .expect("a server certificate");
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("TLS versions")
            .with_no_client_auth()
            .with_single_cert(
                vec![certificate.der().clone()],
                PrivateKeyDer::try_from(key.serialize_der()).expect("a DER key"),
            )
            .expect("server TLS settings");
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Arc::new(config)
    }

    /// Load settings that trust only this CA and ask for `localhost`.
    fn trusted_by(&self, target: SocketAddr) -> LoadConfig {
        LoadConfig {
            tls: Some(TlsTarget::new("localhost", vec![self.root.clone()])),
            ..config(target)
        }
    }
}

/// The certificate a TLS test server presents to the next connection; swappable mid-run.
struct ServerCertificate {
    /// A generation number, so handshakes can be counted per certificate.
    current: Mutex<(u32, TlsAcceptor)>,
}

impl ServerCertificate {
    fn new(config: Arc<rustls::ServerConfig>) -> Arc<ServerCertificate> {
        Arc::new(ServerCertificate {
            current: Mutex::new((1, TlsAcceptor::from(config))),
        })
    }

    /// Presents `config` from the next connection on; returns the new generation.
    fn swap(&self, config: Arc<rustls::ServerConfig>) -> u32 {
        let mut current = self.current.lock().expect("certificate");
        *current = (current.0 + 1, TlsAcceptor::from(config));
        current.0
    }

    fn current(&self) -> (u32, TlsAcceptor) {
        self.current.lock().expect("certificate").clone()
    }
}

/// The test server behind TLS, presenting whatever `certificate` holds when a client connects.
async fn tls_server(
    http: Http,
    ws: Ws,
    certificate: Arc<ServerCertificate>,
) -> (SocketAddr, Arc<Seen>) {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind 127.0.0.1:0");
    let addr = listener.local_addr().expect("local address");
    let seen = Arc::new(Seen::default());
    let counting = Arc::clone(&seen);
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            counting.connections.fetch_add(1, Ordering::SeqCst);
            let (generation, acceptor) = certificate.current();
            let seen = Arc::clone(&counting);
            tokio::spawn(async move {
                let Ok(stream) = acceptor.accept(stream).await else {
                    seen.handshakes_failed.fetch_add(1, Ordering::SeqCst);
                    return;
                };
                let session = stream.get_ref().1;
                if session.handshake_kind() == Some(rustls::HandshakeKind::Resumed) {
                    seen.resumed.fetch_add(1, Ordering::SeqCst);
                }
                if let Some(name) = session.server_name() {
                    seen.server_names
                        .lock()
                        .expect("names")
                        .insert(name.to_string());
                }
                if let Some(protocol) = session.alpn_protocol() {
                    let protocol = String::from_utf8_lossy(protocol).into_owned();
                    seen.alpn.lock().expect("alpn").insert(protocol);
                }
                seen.handshakes.send_modify(|by_generation| {
                    *by_generation.entry(generation).or_default() += 1;
                });
                serve(stream, http, ws, seen).await;
            });
        }
    });
    (addr, seen)
}

fn config(target: SocketAddr) -> LoadConfig {
    LoadConfig {
        target,
        websockets: 0,
        ..LoadConfig::default()
    }
}

/// Runs the load for `duration` and returns the final report.
async fn run(config: LoadConfig, duration: Duration) -> Report {
    let load = LoadGen::start(config);
    tokio::time::sleep(duration).await;
    load.stop().await
}

fn has_failure(report: &Report, text: &str) -> bool {
    report.failures.iter().any(|failure| failure.contains(text))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn all_requests_succeed_at_200_per_second() {
    let (addr, seen) = server(Http::Length(200, "hello v1\n"), Ws::Echo).await;
    let report = run(config(addr), Duration::from_secs(1)).await;
    assert!(report.requests >= 150, "{report:#?}");
    assert_eq!(report.failed, 0, "{report:#?}");
    assert_eq!(report.ok, report.requests, "{report:#?}");
    assert_eq!(
        report.by_body.get("hello v1"),
        Some(&report.requests),
        "{report:#?}"
    );
    assert!(report.max_latency_ms >= report.p99_latency_ms && report.p99_latency_ms > 0.0);
    // Half the workers reuse their connection, so far fewer connections than requests.
    let connections = seen.connections.load(Ordering::SeqCst);
    assert!(
        connections > 8,
        "the closing workers open one per request: {connections}"
    );
    assert!(
        connections < report.requests * 3 / 4,
        "{connections} for {} requests",
        report.requests
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chunked_responses_are_read_whole() {
    let (addr, _) = server(Http::Chunked(200, "hello chunked\n"), Ws::Echo).await;
    let report = run(
        LoadConfig {
            rate: 50,
            ..config(addr)
        },
        Duration::from_millis(500),
    )
    .await;
    assert!(report.requests > 0, "{report:#?}");
    assert_eq!(report.failed, 0, "{report:#?}");
    assert_eq!(
        report.by_body.get("hello chunked"),
        Some(&report.requests),
        "{report:#?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_errors_count_as_failed() {
    let (addr, _) = server(Http::Length(500, "boom"), Ws::Echo).await;
    let report = run(
        LoadConfig {
            rate: 50,
            ..config(addr)
        },
        Duration::from_millis(500),
    )
    .await;
    assert!(report.requests > 0, "{report:#?}");
    assert_eq!(report.ok, 0, "{report:#?}");
    assert_eq!(report.failed, report.requests, "{report:#?}");
    assert!(
        has_failure(&report, "GET / on a new connection: status 500 (boom)"),
        "{report:#?}"
    );
    assert_eq!(report.failures.len(), 20.min(report.failed as usize));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_listening_is_connection_refused() {
    let addr = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.local_addr().expect("address")
    };
    let config = LoadConfig {
        rate: 50,
        websockets: 1,
        ..config(addr)
    };
    let report = run(config, Duration::from_millis(500)).await;
    assert_eq!(report.requests, 0, "{report:#?}");
    assert!(report.failed > 0, "{report:#?}");
    assert!(
        has_failure(&report, "GET / on a new connection: connect to"),
        "{report:#?}"
    );
    assert!(has_failure(&report, "connection refused"), "{report:#?}");
    assert!(
        report.ws_dropped > 0 && report.ws_opened == 0,
        "{report:#?}"
    );
    assert!(
        has_failure(&report, "WebSocket 0: handshake failed"),
        "{report:#?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_keep_alive_closes_are_retried_not_failed() {
    // Every response is the connection's last, without a `connection: close` to say so: each
    // reused connection hits the race, and the retry on a new one must hide it.
    let (addr, seen) = server(Http::CloseSilently("ok"), Ws::Echo).await;
    let config = LoadConfig {
        rate: 100,
        connections: 4,
        ..config(addr)
    };
    let report = run(config, Duration::from_millis(700)).await;
    assert!(report.requests >= 20, "{report:#?}");
    assert_eq!(report.failed, 0, "{report:#?}");
    // Proof that the race happened: more connections than requests' worth of new ones.
    assert!(
        seen.connections.load(Ordering::SeqCst) >= report.requests,
        "{report:#?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn responses_cut_short_count_as_failed() {
    let (addr, _) = server(Http::CutShort, Ws::Echo).await;
    let report = run(
        LoadConfig {
            rate: 50,
            ..config(addr)
        },
        Duration::from_millis(400),
    )
    .await;
    assert_eq!(report.requests, 0, "{report:#?}");
    assert!(report.failed > 0, "{report:#?}");
    assert!(
        has_failure(&report, "in the middle of the response head"),
        "{report:#?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unanswered_requests_time_out() {
    let (addr, _) = server(Http::Silent, Ws::Echo).await;
    let config = LoadConfig {
        rate: 20,
        connections: 2,
        request_timeout: Duration::from_millis(200),
        ..config(addr)
    };
    let report = run(config, Duration::from_millis(600)).await;
    assert!(report.failed > 0, "{report:#?}");
    assert!(
        has_failure(&report, "no response within 200ms"),
        "{report:#?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_echoes_are_counted_and_closed_with_1000() {
    let (addr, seen) = server(Http::Length(200, "ok"), Ws::Echo).await;
    let config = LoadConfig {
        rate: 10,
        connections: 2,
        websockets: 2,
        ..config(addr)
    };
    let report = run(config, Duration::from_millis(1000)).await;
    assert_eq!(report.ws_opened, 2, "{report:#?}");
    assert!(report.ws_messages >= 10, "{report:#?}");
    assert_eq!(
        (report.ws_dropped, report.ws_closed_clean),
        (0, 0),
        "{report:#?}"
    );
    assert_eq!(
        seen.client_closes.load(Ordering::SeqCst),
        2,
        "each socket closes with 1000"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn going_away_closes_are_clean_and_reconnect() {
    let (addr, _) = server(Http::Length(200, "ok"), Ws::CloseAfter(2, 1001)).await;
    let config = LoadConfig {
        rate: 10,
        connections: 2,
        websockets: 1,
        ..config(addr)
    };
    let report = run(config, Duration::from_millis(1000)).await;
    assert!(report.ws_closed_clean >= 1, "{report:#?}");
    assert!(
        report.ws_opened >= 2,
        "reconnects after a clean close: {report:#?}"
    );
    assert_eq!(report.ws_dropped, 0, "{report:#?}");
    assert_eq!(report.failed, 0, "{report:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn other_close_codes_count_as_dropped() {
    let (addr, _) = server(Http::Length(200, "ok"), Ws::CloseAfter(1, 1011)).await;
    let config = LoadConfig {
        rate: 10,
        connections: 2,
        websockets: 1,
        ..config(addr)
    };
    let report = run(config, Duration::from_millis(500)).await;
    assert!(
        report.ws_dropped >= 1 && report.ws_closed_clean == 0,
        "{report:#?}"
    );
    assert!(
        has_failure(&report, "server closed with code 1011"),
        "{report:#?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropped_websocket_connections_are_counted() {
    let (addr, _) = server(Http::Length(200, "ok"), Ws::DropAfter(2)).await;
    let config = LoadConfig {
        rate: 10,
        connections: 2,
        websockets: 1,
        ..config(addr)
    };
    let report = run(config, Duration::from_millis(1000)).await;
    assert!(report.ws_dropped >= 1, "{report:#?}");
    assert_eq!(report.ws_closed_clean, 0, "{report:#?}");
    assert!(
        has_failure(&report, "connection ended without a close frame"),
        "{report:#?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn report_is_a_live_snapshot() {
    let (addr, _) = server(Http::Length(200, "ok"), Ws::Echo).await;
    let load = LoadGen::start(LoadConfig {
        rate: 100,
        ..config(addr)
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let early = load.report();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let later = load.report();
    let last = load.stop().await;
    assert!(
        early.requests > 0 && later.requests > early.requests,
        "{early:#?} {later:#?}"
    );
    assert!(last.requests >= later.requests);
    let json = serde_json_like(&last);
    assert!(json.contains("requests"), "{json}");
}

/// Debug output stands in for JSON here: the crate derives `Serialize`, checked at compile time.
fn serde_json_like(report: &Report) -> String {
    fn assert_serialize<T: serde::Serialize>(_: &T) {}
    assert_serialize(report);
    format!("{report:?}")
}

/// examples/hello, built here (in its own target directory, whatever the
/// workspace uses) so that the test never depends on another having built
/// it first.
fn hello_binary() -> PathBuf {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../examples/hello");
    let status = Command::new(env!("CARGO"))
        .args(["build", "--release", "--locked", "--quiet"])
        .env("CARGO_TARGET_DIR", root.join("target"))
        .current_dir(&root)
        .status()
        .expect("cargo builds hello");
    assert!(status.success(), "examples/hello builds");
    root.join("target/release/hello")
}

/// The hello example, killed on drop.
struct Hello {
    child: Child,
}

impl Drop for Hello {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_hello_serves_load_and_says_going_away_on_sigterm() {
    let binary = hello_binary();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free port")
        .port();
    let mut hello = Hello {
        child: Command::new(&binary)
            .env("PORT", port.to_string())
            .env("HELLO_VERSION", "vtest")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start hello"),
    };
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let deadline = Instant::now() + Duration::from_secs(5);
    while TcpStream::connect(addr).await.is_err() {
        assert!(Instant::now() < deadline, "hello never listened on {addr}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let load = LoadGen::start(LoadConfig {
        target: addr,
        websockets: 2,
        ..LoadConfig::default()
    });
    tokio::time::sleep(Duration::from_millis(800)).await;
    let before = load.report();
    assert!(before.requests > 50, "{before:#?}");
    assert_eq!((before.failed, before.ws_dropped), (0, 0), "{before:#?}");
    assert_eq!(before.ws_opened, 2, "{before:#?}");
    assert!(before.ws_messages > 0, "{before:#?}");
    assert_eq!(
        before.by_body.get("hello from hello vtest"),
        Some(&before.requests)
    );

    let pid = hello.child.id().to_string();
    let status = Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("run kill");
    assert!(status.success());
    let deadline = Instant::now() + Duration::from_secs(5);
    while load.report().ws_closed_clean < 2 {
        assert!(
            Instant::now() < deadline,
            "no going-away close: {:#?}",
            load.report()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let exit = loop {
        if let Some(exit) = hello.child.try_wait().expect("wait for hello") {
            break exit;
        }
        assert!(
            Instant::now() < deadline,
            "hello did not exit after SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(
        exit.success(),
        "hello exits 0 after a graceful stop: {exit}"
    );
    let after = load.stop().await;
    assert_eq!(after.ws_closed_clean, 2, "{after:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn host_header_can_be_overridden() {
    let (addr, seen) = server(Http::Length(200, "ok"), Ws::Echo).await;
    let config = LoadConfig {
        rate: 20,
        connections: 2,
        websockets: 1,
        host: Some("app.test".to_string()),
        ..config(addr)
    };
    let report = run(config, Duration::from_millis(400)).await;
    assert!(report.requests > 0 && report.ws_opened == 1, "{report:#?}");
    assert_eq!(report.failed, 0, "{report:#?}");
    assert_eq!(seen.hosts(), BTreeSet::from(["app.test".to_string()]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_and_wss_load_counts_no_failures() {
    let ca = TestCa::new("lastmile loadgen test CA");
    let certificate = ServerCertificate::new(ca.server_config("localhost"));
    let (addr, seen) = tls_server(Http::Length(200, "hello tls\n"), Ws::Echo, certificate).await;
    let config = LoadConfig {
        websockets: 2,
        ..ca.trusted_by(addr)
    };
    let report = run(config, Duration::from_secs(1)).await;
    assert!(report.requests >= 150, "{report:#?}");
    assert_eq!((report.failed, report.tls_failed), (0, 0), "{report:#?}");
    assert_eq!(
        report.by_body.get("hello tls"),
        Some(&report.requests),
        "{report:#?}"
    );
    assert_eq!(report.ws_opened, 2, "{report:#?}");
    assert!(report.ws_messages >= 10, "{report:#?}");
    assert_eq!(report.ws_dropped, 0, "{report:#?}");
    assert_eq!(
        seen.client_closes.load(Ordering::SeqCst),
        2,
        "each wss socket closes with 1000"
    );
    // The closing workers make a full handshake per request; none resumes a session.
    let handshakes = seen.handshakes.borrow().get(&1).copied().unwrap_or(0);
    assert!(handshakes > 8, "{handshakes} handshakes");
    assert_eq!(seen.resumed.load(Ordering::SeqCst), 0, "resumed handshakes");
    assert_eq!(seen.handshakes_failed.load(Ordering::SeqCst), 0);
    assert_eq!(
        *seen.server_names.lock().expect("names"),
        BTreeSet::from(["localhost".to_string()])
    );
    assert_eq!(
        *seen.alpn.lock().expect("alpn"),
        BTreeSet::from(["http/1.1".to_string()])
    );
    assert_eq!(
        seen.hosts(),
        BTreeSet::from([format!("localhost:{}", addr.port())])
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_tls_closes_are_retried_not_failed() {
    // As over plain TCP, but the server also skips TLS close_notify: the client sees the
    // connection end mid-record, before any response byte, and must retry rather than fail.
    let ca = TestCa::new("lastmile loadgen test CA");
    let certificate = ServerCertificate::new(ca.server_config("localhost"));
    let (addr, seen) = tls_server(Http::CloseSilently("ok"), Ws::Echo, certificate).await;
    let config = LoadConfig {
        rate: 100,
        connections: 4,
        ..ca.trusted_by(addr)
    };
    let report = run(config, Duration::from_millis(700)).await;
    assert!(report.requests >= 20, "{report:#?}");
    assert_eq!((report.failed, report.tls_failed), (0, 0), "{report:#?}");
    assert!(
        seen.connections.load(Ordering::SeqCst) >= report.requests,
        "{report:#?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certificates_from_an_untrusted_ca_fail_every_request_with_the_tls_reason() {
    let trusted = TestCa::new("trusted test CA");
    let untrusted = TestCa::new("untrusted test CA");
    let certificate = ServerCertificate::new(untrusted.server_config("localhost"));
    let (addr, seen) = tls_server(Http::Length(200, "ok"), Ws::Echo, certificate).await;
    let config = LoadConfig {
        rate: 50,
        websockets: 1,
        ..trusted.trusted_by(addr)
    };
    let report = run(config, Duration::from_millis(500)).await;
    assert_eq!((report.requests, report.ok), (0, 0), "{report:#?}");
    assert!(report.failed >= 10, "{report:#?}");
    assert!(
        report.ws_dropped >= 1 && report.ws_opened == 0,
        "{report:#?}"
    );
    assert_eq!(
        report.tls_failed,
        report.failed + report.ws_dropped,
        "{report:#?}"
    );
    assert!(
        has_failure(
            &report,
            "GET / on a new connection: TLS handshake with localhost failed: server certificate \
             rejected: UnknownIssuer (it is not signed by any of TlsTarget::roots)"
        ),
        "{report:#?}"
    );
    assert!(
        has_failure(
            &report,
            "WebSocket 0: handshake failed: TLS handshake with localhost failed: server \
             certificate rejected: UnknownIssuer"
        ),
        "{report:#?}"
    );
    assert!(
        seen.handshakes.borrow().is_empty(),
        "no handshake completed"
    );
    assert!(seen.handshakes_failed.load(Ordering::SeqCst) > 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certificates_for_another_name_are_rejected() {
    let ca = TestCa::new("lastmile loadgen test CA");
    let certificate = ServerCertificate::new(ca.server_config("localhost"));
    let (addr, _) = tls_server(Http::Length(200, "ok"), Ws::Echo, certificate).await;
    let config = LoadConfig {
        rate: 20,
        connections: 2,
        tls: Some(TlsTarget::new("app.test", vec![ca.root.clone()])),
        ..config(addr)
    };
    let report = run(config, Duration::from_millis(300)).await;
    assert_eq!(report.requests, 0, "{report:#?}");
    assert!(report.failed > 0, "{report:#?}");
    assert_eq!(report.tls_failed, report.failed, "{report:#?}");
    assert!(
        has_failure(
            &report,
            "TLS handshake with app.test failed: server certificate rejected: certificate not \
             valid for name \"app.test\"; certificate is only valid for DnsName(\"localhost\")"
        ),
        "{report:#?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unusable_tls_settings_fail_every_request_with_what_to_fix() {
    let (addr, seen) = server(Http::Length(200, "ok"), Ws::Echo).await;
    let config = LoadConfig {
        rate: 20,
        connections: 2,
        websockets: 1,
        tls: Some(TlsTarget::new("localhost", Vec::new())),
        ..config(addr)
    };
    let report = run(config, Duration::from_millis(300)).await;
    assert_eq!(report.requests, 0, "{report:#?}");
    assert!(report.failed > 0 && report.ws_dropped > 0, "{report:#?}");
    assert_eq!(
        report.tls_failed,
        report.failed + report.ws_dropped,
        "{report:#?}"
    );
    assert!(
        has_failure(
            &report,
            "GET / on a new connection: TLS configuration: TlsTarget::roots is empty"
        ),
        "{report:#?}"
    );
    assert_eq!(seen.connections.load(Ordering::SeqCst), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_certificate_swapped_mid_run_costs_nothing() {
    let ca = TestCa::new("lastmile loadgen test CA");
    let certificate = ServerCertificate::new(ca.server_config("localhost"));
    let (addr, seen) =
        tls_server(Http::Length(200, "ok"), Ws::Echo, Arc::clone(&certificate)).await;
    let load = LoadGen::start(LoadConfig {
        websockets: 1,
        ..ca.trusted_by(addr)
    });
    seen.wait_for_handshakes(1, 20).await;
    // A renewal: a new key and certificate from the same CA, for new connections only.
    let renewed = certificate.swap(ca.server_config("localhost"));
    seen.wait_for_handshakes(renewed, 20).await;
    let report = load.stop().await;
    assert!(report.requests >= 40, "{report:#?}");
    assert_eq!((report.failed, report.tls_failed), (0, 0), "{report:#?}");
    assert_eq!(report.ws_dropped, 0, "{report:#?}");
    assert_eq!(seen.resumed.load(Ordering::SeqCst), 0, "resumed handshakes");
}
