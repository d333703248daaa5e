//! TLS termination, the HTTPS redirect and ACME HTTP-01 answers, end to end: real listeners on
//! 127.0.0.1:0, certificates from a test CA made with rcgen, clients that trust only that CA.

#![allow(clippy::unwrap_used)]

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use lastmile_router::{
    Backend, CertStore, ChallengeStore, CohortRule, Hsts, KeySource, ListenerConfig,
    ListenerHandle, MirrorRule, PinRule, RedirectHttps, Route, RouteTable, Router, RouterConfig,
    TlsError, TlsSettings, Upstream,
};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

/// Upper bound for anything a test waits on.
const LIMIT: Duration = Duration::from_secs(8);

// ---------------------------------------------------------------------------------------------
// Certificates

/// A test certificate authority.
struct Pki {
    issuer: Issuer<'static, KeyPair>,
    root: CertificateDer<'static>,
}

/// A server certificate (alone in its chain) and its key.
struct Leaf {
    chain_pem: String,
    key_pem: String,
    der: Vec<u8>,
}

impl Pki {
    fn new() -> Pki {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(DnType::CommonName, "lastmile test CA");
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let key = KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        Pki {
            root: cert.der().clone(),
            issuer: Issuer::new(params, key),
        }
    }

    fn leaf(&self, names: &[&str]) -> Leaf {
        let sans: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        let mut params = CertificateParams::new(sans).unwrap();
        params.distinguished_name.push(DnType::CommonName, names[0]);
        params.use_authority_key_identifier_extension = true;
        params
            .extended_key_usages
            .push(ExtendedKeyUsagePurpose::ServerAuth);
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        Leaf {
            chain_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            der: cert.der().to_vec(),
        }
    }
}

fn store_with(entries: &[(&[&str], &Leaf)]) -> CertStore {
    let store = CertStore::new();
    for (hosts, leaf) in entries {
        store
            .set(
                hosts.iter(),
                leaf.chain_pem.as_bytes(),
                leaf.key_pem.as_bytes(),
            )
            .unwrap();
    }
    store
}

// ---------------------------------------------------------------------------------------------
// Clients

/// The real webpki verifier (trusting only the test CA) that also records the certificate the
/// server presented, so a test can tell which one it got even when the name does not match.
#[derive(Debug)]
struct RecordingVerifier {
    verifier: Arc<WebPkiServerVerifier>,
    seen: Arc<Mutex<Option<Vec<u8>>>>,
}

impl ServerCertVerifier for RecordingVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        *self.seen.lock().unwrap() = Some(end_entity.to_vec());
        self.verifier
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.verifier.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.verifier.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.verifier.supported_verify_schemes()
    }
}

/// A TLS client trusting only the test CA.
struct Client {
    connector: TlsConnector,
    seen: Arc<Mutex<Option<Vec<u8>>>>,
}

const H2: &[u8] = b"h2";
const HTTP11: &[u8] = b"http/1.1";
const BOTH: &[&rustls::SupportedProtocolVersion] =
    &[&rustls::version::TLS13, &rustls::version::TLS12];

fn client(
    pki: &Pki,
    alpn: &[&[u8]],
    versions: &[&'static rustls::SupportedProtocolVersion],
) -> Client {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut roots = RootCertStore::empty();
    roots.add(pki.root.clone()).unwrap();
    let verifier = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .build()
        .unwrap();
    let seen = Arc::new(Mutex::new(None));
    let mut config = ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(versions)
        .unwrap()
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(RecordingVerifier {
            verifier,
            seen: seen.clone(),
        }))
        .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Client {
        connector: TlsConnector::from(Arc::new(config)),
        seen,
    }
}

impl Client {
    /// Connects to `addr` as `name` (an IP address sends no SNI).
    async fn connect(&self, addr: SocketAddr, name: &str) -> std::io::Result<TlsStream<TcpStream>> {
        *self.seen.lock().unwrap() = None;
        let server_name = ServerName::try_from(name.to_string()).unwrap();
        tokio::time::timeout(LIMIT, async {
            let tcp = TcpStream::connect(addr).await?;
            self.connector.connect(server_name, tcp).await
        })
        .await
        .expect("TLS connect timed out")
    }

    /// The certificate the server presented in the last handshake.
    fn served(&self) -> Vec<u8> {
        self.seen
            .lock()
            .unwrap()
            .clone()
            .expect("no certificate was presented")
    }
}

type Sender = hyper::client::conn::http1::SendRequest<Full<Bytes>>;

/// An HTTP/1.1 hyper client connection over `tls`; the connection task is returned too.
async fn http1_over(
    tls: TlsStream<TcpStream>,
) -> (Sender, tokio::task::JoinHandle<Result<(), hyper::Error>>) {
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
        .await
        .unwrap();
    (sender, tokio::spawn(conn))
}

/// One GET; returns (status, headers, body).
async fn get(sender: &mut Sender, host: &str, path: &str) -> (u16, http::HeaderMap, String) {
    let req = Request::get(path)
        .header("host", host)
        .body(Full::new(Bytes::new()))
        .unwrap();
    let resp = tokio::time::timeout(LIMIT, sender.send_request(req))
        .await
        .expect("request timed out")
        .unwrap();
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    (status, headers, String::from_utf8_lossy(&body).to_string())
}

// ---------------------------------------------------------------------------------------------
// Backend and router

/// A hyper HTTP/1.1 backend answering `name|method|path|xfp=…|xfh=…`; an Upgrade request gets
/// 101 and an echo.
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
    let header = |n: &str| {
        req.headers()
            .get(n)
            .map(|v| v.to_str().unwrap().to_string())
            .unwrap_or_default()
    };
    if req.headers().contains_key("upgrade") {
        let upgrade = header("upgrade");
        let on = hyper::upgrade::on(&mut req);
        tokio::spawn(async move {
            let up = TokioIo::new(on.await.unwrap());
            let (mut r, mut w) = tokio::io::split(up);
            let _ = tokio::io::copy(&mut r, &mut w).await;
        });
        return Ok(Response::builder()
            .status(101)
            .header("connection", "upgrade")
            .header("upgrade", upgrade)
            .body(Full::new(Bytes::new()))
            .unwrap());
    }
    if req.uri().path() == "/big" {
        // 4 MiB: more than socket buffers and rustls hold, so the relay meets backpressure.
        return Ok(Response::new(Full::new(Bytes::from(vec![b'x'; 4 << 20]))));
    }
    let info = format!(
        "{name}|{}|{}|xfp={}|xfh={}",
        req.method(),
        req.uri().path(),
        header("x-forwarded-proto"),
        header("x-forwarded-host"),
    );
    Ok(Response::new(Full::new(Bytes::from(info))))
}

/// A listener of `router` with `config`.
fn listen(router: &Router, config: ListenerConfig) -> (SocketAddr, ListenerHandle) {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    (addr, router.serve_with(l, config).unwrap())
}

fn route(listen: SocketAddr, prefix: &str, backends: Vec<Backend>) -> Route {
    Route {
        name: format!("{listen}{prefix}"),
        listen,
        host: None,
        path_prefix: prefix.into(),
        backends,
        cohort: None,
        pins: Vec::new(),
        mirror: None,
        warmup: Default::default(),
    }
}

fn release(name: &str, weight: u32, addr: SocketAddr) -> Backend {
    Backend {
        release: name.into(),
        weight,
        instances: vec![Upstream {
            id: format!("{name}-0"),
            addr,
        }],
    }
}

/// Every listener in `listens` routes `/` to the backend at `to`.
fn route_all(router: &Router, listens: &[SocketAddr], to: SocketAddr) {
    router.set_table(RouteTable {
        routes: listens
            .iter()
            .map(|l| route(*l, "/", vec![release("r1", 1, to)]))
            .collect(),
    });
}

fn tls_config(store: &CertStore) -> ListenerConfig {
    ListenerConfig {
        tls: Some(TlsSettings::new(store.clone())),
        ..ListenerConfig::default()
    }
}

/// A router with one TLS listener for `store`, routing to a fresh backend.
struct Edge {
    router: Router,
    addr: SocketAddr,
    _handle: ListenerHandle,
}

async fn tls_edge(store: &CertStore, config: RouterConfig) -> Edge {
    let b = backend("b1").await;
    let router = Router::new(config);
    let (addr, handle) = listen(&router, tls_config(store));
    route_all(&router, &[addr], b);
    Edge {
        router,
        addr,
        _handle: handle,
    }
}

async fn read_head<R: AsyncRead + Unpin>(s: &mut R) -> String {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        let n = tokio::time::timeout(LIMIT, s.read(&mut byte))
            .await
            .expect("head timed out")
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

// ---------------------------------------------------------------------------------------------
// TLS

#[tokio::test]
async fn https_http11_requests_are_proxied_with_forwarded_proto_https() {
    let pki = Pki::new();
    let leaf = pki.leaf(&["app.example"]);
    let store = store_with(&[(&["app.example"], &leaf)]);
    let edge = tls_edge(&store, RouterConfig::default()).await;
    let c = client(&pki, &[HTTP11], BOTH);
    let tls = c.connect(edge.addr, "app.example").await.unwrap();
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(HTTP11));
    let (mut sender, _conn) = http1_over(tls).await;
    // Two requests on one connection: keep-alive works over TLS.
    for path in ["/one", "/two"] {
        let (status, _, body) = get(&mut sender, "app.example", path).await;
        assert_eq!(status, 200, "{body}");
        assert!(body.starts_with(&format!("b1|GET|{path}|")), "{body}");
        assert!(body.contains("|xfp=https|"), "{body}");
        assert!(body.contains("|xfh=app.example"), "{body}");
    }
}

#[tokio::test]
async fn pipelined_requests_and_large_bodies_work_over_tls() {
    let pki = Pki::new();
    let leaf = pki.leaf(&["app.example"]);
    let store = store_with(&[(&["app.example"], &leaf)]);
    let edge = tls_edge(&store, RouterConfig::default()).await;
    let c = client(&pki, &[HTTP11], BOTH);
    // Two requests in one TLS record: the second is decrypted with the first and sits in
    // rustls, not in the socket, while the first is answered.
    let mut tls = c.connect(edge.addr, "app.example").await.unwrap();
    tls.write_all(b"GET /p1 HTTP/1.1\r\nHost: a\r\n\r\nGET /p2 HTTP/1.1\r\nHost: a\r\n\r\n")
        .await
        .unwrap();
    for path in ["/p1", "/p2"] {
        let head = read_head(&mut tls).await;
        let len: usize = head
            .lines()
            .find_map(|l| {
                l.strip_prefix("content-length: ")
                    .map(|v| v.parse().unwrap())
            })
            .unwrap();
        let mut body = vec![0u8; len];
        tokio::time::timeout(LIMIT, tls.read_exact(&mut body))
            .await
            .unwrap()
            .unwrap();
        let body = String::from_utf8_lossy(&body);
        assert!(body.starts_with(&format!("b1|GET|{path}|")), "{body}");
    }
    let (mut sender, _conn) = http1_over(c.connect(edge.addr, "app.example").await.unwrap()).await;
    for _ in 0..2 {
        let (status, _, body) = get(&mut sender, "app.example", "/big").await;
        assert_eq!(status, 200);
        assert_eq!(body.len(), 4 << 20);
        assert!(body.bytes().all(|b| b == b'x'));
    }
}

#[tokio::test]
async fn a_client_without_alpn_gets_http11() {
    let pki = Pki::new();
    let leaf = pki.leaf(&["app.example"]);
    let store = store_with(&[(&["app.example"], &leaf)]);
    let edge = tls_edge(&store, RouterConfig::default()).await;
    let c = client(&pki, &[], BOTH);
    let tls = c.connect(edge.addr, "app.example").await.unwrap();
    assert_eq!(tls.get_ref().1.alpn_protocol(), None);
    let (mut sender, _conn) = http1_over(tls).await;
    let (status, _, body) = get(&mut sender, "app.example", "/plain").await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("|xfp=https|"), "{body}");
}

#[tokio::test]
async fn alpn_h2_is_negotiated_and_served_over_h2() {
    let pki = Pki::new();
    let leaf = pki.leaf(&["app.example"]);
    let store = store_with(&[(&["app.example"], &leaf)]);
    let edge = tls_edge(&store, RouterConfig::default()).await;
    let c = client(&pki, &[H2, HTTP11], BOTH);
    let tls = c.connect(edge.addr, "app.example").await.unwrap();
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(H2), "h2 is preferred");
    let (mut sender, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tls))
            .await
            .unwrap();
    tokio::spawn(conn);
    for path in ["/over-h2", "/again"] {
        let req = Request::get(format!("https://app.example{path}"))
            .body(Full::new(Bytes::new()))
            .unwrap();
        let resp = tokio::time::timeout(LIMIT, sender.send_request(req))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(resp.status(), 200);
        assert_eq!(resp.version(), http::Version::HTTP_2);
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        let body = String::from_utf8_lossy(&body);
        assert!(body.starts_with(&format!("b1|GET|{path}|")), "{body}");
        assert!(body.contains("|xfp=https|"), "{body}");
    }
}

#[tokio::test]
async fn sni_chooses_the_certificate_and_other_clients_get_the_default() {
    let pki = Pki::new();
    let first = pki.leaf(&["a.example"]);
    let wildcard = pki.leaf(&["*.b.example"]);
    let store = store_with(&[(&["a.example"], &first), (&["*.b.example"], &wildcard)]);
    let edge = tls_edge(&store, RouterConfig::default()).await;
    let c = client(&pki, &[HTTP11], BOTH);

    c.connect(edge.addr, "a.example").await.unwrap();
    assert!(c.served() == first.der, "a.example got another certificate");
    c.connect(edge.addr, "x.b.example").await.unwrap();
    assert!(
        c.served() == wildcard.der,
        "the wildcard covers x.b.example"
    );
    c.connect(edge.addr, "X.B.Example").await.unwrap();
    assert!(
        c.served() == wildcard.der,
        "names are matched case-insensitively"
    );

    // Unknown name, and no SNI at all (an IP address): the default, here the oldest host's.
    // The client then rightly refuses the name.
    assert!(c.connect(edge.addr, "unknown.example").await.is_err());
    assert!(
        c.served() == first.der,
        "unknown name did not get the default"
    );
    assert!(c.connect(edge.addr, "y.z.b.example").await.is_err());
    assert!(c.served() == first.der, "a wildcard covers one label only");
    assert!(c.connect(edge.addr, "127.0.0.1").await.is_err());
    assert!(c.served() == first.der, "no SNI did not get the default");

    // An explicit default wins.
    let fallback = pki.leaf(&["fallback.example", "127.0.0.1"]);
    store
        .set_default(fallback.chain_pem.as_bytes(), fallback.key_pem.as_bytes())
        .unwrap();
    c.connect(edge.addr, "127.0.0.1").await.unwrap();
    assert!(
        c.served() == fallback.der,
        "the explicit default was not served"
    );
    assert!(c.connect(edge.addr, "unknown.example").await.is_err());
    assert!(c.served() == fallback.der);
    assert_eq!(store.hosts(), vec!["*.b.example", "a.example"]);
}

#[tokio::test]
async fn a_store_without_certificates_refuses_handshakes() {
    let pki = Pki::new();
    let store = CertStore::new();
    let edge = tls_edge(&store, RouterConfig::default()).await;
    let c = client(&pki, &[HTTP11], BOTH);
    assert!(c.connect(edge.addr, "app.example").await.is_err());
    // A certificate arriving later (an ACME client finishing) is used at once.
    let leaf = pki.leaf(&["app.example"]);
    store
        .set(
            ["app.example"],
            leaf.chain_pem.as_bytes(),
            leaf.key_pem.as_bytes(),
        )
        .unwrap();
    c.connect(edge.addr, "app.example").await.unwrap();
    assert!(c.served() == leaf.der);
    assert!(store.remove("app.example"));
    assert!(!store.remove("app.example"));
    assert!(store.is_empty());
    assert!(c.connect(edge.addr, "app.example").await.is_err());
}

/// The raw bytes of a ClientHello offering only `version` (no supported_versions extension, as
/// TLS 1.0 and 1.1 stacks send it), with SNI `app.example`, suites and signature schemes the
/// server has: the version is the only thing wrong with it.
fn legacy_client_hello(version: [u8; 2]) -> Vec<u8> {
    let name = b"app.example";
    let mut sni = vec![0x00, 0x00]; // extension type server_name
    let list_len = name.len() + 3;
    sni.extend_from_slice(&((list_len + 2) as u16).to_be_bytes());
    sni.extend_from_slice(&(list_len as u16).to_be_bytes());
    sni.push(0); // host_name
    sni.extend_from_slice(&(name.len() as u16).to_be_bytes());
    sni.extend_from_slice(name);
    // signature_algorithms: ecdsa_secp256r1_sha256, rsa_pss_rsae_sha256, rsa_pkcs1_sha256.
    sni.extend_from_slice(&[
        0x00, 0x0d, 0x00, 0x08, 0x00, 0x06, 0x04, 0x03, 0x08, 0x04, 0x04, 0x01,
    ]);
    // supported_groups: x25519, secp256r1; ec_point_formats: uncompressed.
    sni.extend_from_slice(&[0x00, 0x0a, 0x00, 0x06, 0x00, 0x04, 0x00, 0x1d, 0x00, 0x17]);
    sni.extend_from_slice(&[0x00, 0x0b, 0x00, 0x02, 0x01, 0x00]);
    let mut body = Vec::new();
    body.extend_from_slice(&version);
    body.extend_from_slice(&[7u8; 32]); // random
    body.push(0); // session id
    // ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, ECDHE_RSA_WITH_AES_128_GCM_SHA256.
    body.extend_from_slice(&[0x00, 0x04, 0xc0, 0x2b, 0xc0, 0x2f]);
    body.extend_from_slice(&[0x01, 0x00]); // null compression
    body.extend_from_slice(&(sni.len() as u16).to_be_bytes());
    body.extend_from_slice(&sni);
    let mut handshake = vec![0x01]; // ClientHello
    handshake.extend_from_slice(&(body.len() as u32).to_be_bytes()[1..]);
    handshake.extend_from_slice(&body);
    let mut record = vec![0x16, 0x03, 0x01];
    record.extend_from_slice(&(handshake.len() as u16).to_be_bytes());
    record.extend_from_slice(&handshake);
    record
}

#[tokio::test]
async fn only_tls12_and_tls13_are_accepted() {
    let pki = Pki::new();
    let leaf = pki.leaf(&["app.example"]);
    let store = store_with(&[(&["app.example"], &leaf)]);
    let edge = tls_edge(&store, RouterConfig::default()).await;
    for (version, name) in [([3, 1], "TLS 1.0"), ([3, 2], "TLS 1.1")] {
        let mut s = TcpStream::connect(edge.addr).await.unwrap();
        s.write_all(&legacy_client_hello(version)).await.unwrap();
        let mut reply = Vec::new();
        let _ = tokio::time::timeout(LIMIT, s.read_to_end(&mut reply))
            .await
            .expect("the server neither answered nor closed");
        // An alert record (content type 21): fatal (2), protocol_version (70). No ServerHello.
        assert_eq!(reply.first(), Some(&0x15), "{name}: {reply:?}");
        assert_eq!(reply.get(5..7), Some(&[2u8, 70][..]), "{name}: {reply:?}");
    }
    for (versions, want) in [
        (
            &[&rustls::version::TLS12][..],
            rustls::ProtocolVersion::TLSv1_2,
        ),
        (
            &[&rustls::version::TLS13][..],
            rustls::ProtocolVersion::TLSv1_3,
        ),
    ] {
        let c = client(&pki, &[HTTP11], versions);
        let tls = c.connect(edge.addr, "app.example").await.unwrap();
        assert_eq!(tls.get_ref().1.protocol_version(), Some(want));
        let (mut sender, _conn) = http1_over(tls).await;
        assert_eq!(get(&mut sender, "app.example", "/").await.0, 200);
    }
}

#[tokio::test]
async fn a_certificate_swap_keeps_open_connections_and_serves_new_handshakes() {
    let pki = Pki::new();
    let old = pki.leaf(&["app.example"]);
    let store = store_with(&[(&["app.example"], &old)]);
    let edge = tls_edge(&store, RouterConfig::default()).await;
    let c = client(&pki, &[HTTP11], BOTH);
    let tls = c.connect(edge.addr, "app.example").await.unwrap();
    assert!(c.served() == old.der);
    let (mut sender, conn) = http1_over(tls).await;
    assert_eq!(get(&mut sender, "app.example", "/before").await.0, 200);

    let new = pki.leaf(&["app.example"]);
    store
        .set(
            ["app.example"],
            new.chain_pem.as_bytes(),
            new.key_pem.as_bytes(),
        )
        .unwrap();
    let (status, _, body) = get(&mut sender, "app.example", "/after").await;
    assert_eq!(status, 200, "{body}");
    assert!(
        !conn.is_finished(),
        "the open connection was closed by the swap"
    );

    let c2 = client(&pki, &[HTTP11], BOTH);
    let tls = c2.connect(edge.addr, "app.example").await.unwrap();
    assert!(
        c2.served() == new.der,
        "a new handshake got the old certificate"
    );
    let (mut sender2, _conn2) = http1_over(tls).await;
    assert_eq!(get(&mut sender2, "app.example", "/new").await.0, 200);
}

#[tokio::test]
async fn hsts_is_sent_on_every_response_only_when_configured() {
    let pki = Pki::new();
    let leaf = pki.leaf(&["app.example"]);
    let store = store_with(&[(&["app.example"], &leaf)]);
    let b = backend("b1").await;
    let router = Router::new(RouterConfig::default());
    let hsts = Hsts {
        max_age: Duration::from_secs(31_536_000),
        include_subdomains: true,
        preload: false,
    };
    let (with, _h1) = listen(
        &router,
        ListenerConfig {
            tls: Some(TlsSettings {
                certificates: store.clone(),
                hsts: Some(hsts),
            }),
            ..ListenerConfig::default()
        },
    );
    let (without, _h2) = listen(&router, tls_config(&store));
    // Only /app is routed: /other gets the router's own 404.
    router.set_table(RouteTable {
        routes: [with, without]
            .iter()
            .map(|l| route(*l, "/app", vec![release("r1", 1, b)]))
            .collect(),
    });
    let want = "max-age=31536000; includeSubDomains";
    assert_eq!(hsts.header_value(), want);
    for (addr, expected) in [(with, Some(want)), (without, None)] {
        let c = client(&pki, &[HTTP11], BOTH);
        let (mut sender, _conn) = http1_over(c.connect(addr, "app.example").await.unwrap()).await;
        for (path, status) in [("/app", 200), ("/other", 404)] {
            let (got, headers, _) = get(&mut sender, "app.example", path).await;
            assert_eq!(got, status);
            let sts: Vec<_> = headers
                .get_all("strict-transport-security")
                .iter()
                .map(|v| v.to_str().unwrap())
                .collect();
            assert_eq!(
                sts,
                expected.into_iter().collect::<Vec<_>>(),
                "{path} on {addr}"
            );
        }
        // The same over h2.
        let c = client(&pki, &[H2], BOTH);
        let tls = c.connect(addr, "app.example").await.unwrap();
        let (mut h2, conn) =
            hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tls))
                .await
                .unwrap();
        tokio::spawn(conn);
        for path in ["/app", "/other"] {
            let req = Request::get(format!("https://app.example{path}"))
                .body(Full::new(Bytes::new()))
                .unwrap();
            let resp = h2.send_request(req).await.unwrap();
            let sts = resp
                .headers()
                .get("strict-transport-security")
                .map(|v| v.to_str().unwrap().to_string());
            assert_eq!(sts.as_deref(), expected, "h2 {path} on {addr}");
        }
    }
    // A head the router refuses outright (two Hosts) gets its 400 with the header too.
    let c = client(&pki, &[HTTP11], BOTH);
    let mut tls = c.connect(with, "app.example").await.unwrap();
    tls.write_all(b"GET /app HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n")
        .await
        .unwrap();
    let head = read_head(&mut tls).await;
    assert!(head.starts_with("HTTP/1.1 400 "), "{head}");
    assert!(
        head.contains(&format!("\r\nstrict-transport-security: {want}\r\n")),
        "{head}"
    );
}

#[tokio::test]
async fn websocket_upgrade_over_tls_relays_both_ways() {
    let pki = Pki::new();
    let leaf = pki.leaf(&["app.example"]);
    let store = store_with(&[(&["app.example"], &leaf)]);
    let edge = tls_edge(&store, RouterConfig::default()).await;
    let c = client(&pki, &[HTTP11], BOTH);
    let mut tls = c.connect(edge.addr, "app.example").await.unwrap();
    tls.write_all(
        b"GET /ws HTTP/1.1\r\nHost: app.example\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
          Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
    )
    .await
    .unwrap();
    let head = read_head(&mut tls).await;
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    for message in [&b"ping-pong"[..], b"and back again"] {
        tls.write_all(message).await.unwrap();
        let mut echo = vec![0u8; message.len()];
        tokio::time::timeout(LIMIT, tls.read_exact(&mut echo))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(echo, message);
    }
    assert_eq!(
        edge.router.in_flight("r1-0"),
        0,
        "upgraded connections are not in flight"
    );
}

#[tokio::test]
async fn mirroring_works_for_http11_over_tls() {
    let pki = Pki::new();
    let leaf = pki.leaf(&["app.example"]);
    let store = store_with(&[(&["app.example"], &leaf)]);
    let stable = backend("stable").await;
    let shadow = backend("shadow").await;
    let router = Router::new(RouterConfig::default());
    let (addr, _handle) = listen(&router, tls_config(&store));
    let mut r = route(
        addr,
        "/",
        vec![release("stable", 1, stable), release("shadow", 0, shadow)],
    );
    r.mirror = Some(MirrorRule {
        release: "shadow".into(),
        percent: 100.0,
        methods: vec!["GET".into()],
    });
    router.set_table(RouteTable { routes: vec![r] });
    let c = client(&pki, &[HTTP11], BOTH);
    let (mut sender, _conn) = http1_over(c.connect(addr, "app.example").await.unwrap()).await;
    for _ in 0..5 {
        let (status, _, body) = get(&mut sender, "app.example", "/m").await;
        assert_eq!(status, 200);
        assert!(body.starts_with("stable|"), "{body}");
    }
    let end = Instant::now() + LIMIT;
    while router.stats("shadow", Duration::from_secs(30)).requests < 5 {
        assert!(Instant::now() < end, "the mirror did not get the 5 copies");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn pins_and_cohort_cookies_work_over_tls_on_http11_and_h2() {
    let pki = Pki::new();
    let leaf = pki.leaf(&["app.example"]);
    let store = store_with(&[(&["app.example"], &leaf)]);
    let stable = backend("stable").await;
    let canary = backend("canary").await;
    let router = Router::new(RouterConfig::default());
    let (addr, _handle) = listen(&router, tls_config(&store));
    let mut r = route(
        addr,
        "/",
        vec![release("stable", 1, stable), release("canary", 0, canary)],
    );
    r.pins = vec![PinRule {
        key: KeySource::Header("x-tester".into()),
        value: "alice".into(),
        release: "canary".into(),
    }];
    r.cohort = Some(CohortRule {
        key: KeySource::Cookie("uid".into()),
        salt: "prod".into(),
        set_cookie: Some("uid".into()),
    });
    router.set_table(RouteTable { routes: vec![r] });
    let request = |pinned: bool| {
        let mut b = Request::get("https://app.example/p").header("host", "app.example");
        if pinned {
            b = b.header("x-tester", "alice");
        }
        b.body(Full::new(Bytes::new())).unwrap()
    };
    let c = client(&pki, &[HTTP11], BOTH);
    let (mut h1, _conn) = http1_over(c.connect(addr, "app.example").await.unwrap()).await;
    let c2 = client(&pki, &[H2], BOTH);
    let (mut h2, conn) = hyper::client::conn::http2::handshake(
        TokioExecutor::new(),
        TokioIo::new(c2.connect(addr, "app.example").await.unwrap()),
    )
    .await
    .unwrap();
    tokio::spawn(conn);
    for pinned in [true, false] {
        let want = if pinned { "canary|" } else { "stable|" };
        let resp = h1.send_request(request(pinned)).await.unwrap();
        let cookie = resp.headers().get("set-cookie").cloned();
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        assert!(
            body.starts_with(want.as_bytes()),
            "h1 pinned={pinned}: {body:?}"
        );
        let resp = h2.send_request(request(pinned)).await.unwrap();
        let h2_cookie = resp.headers().get("set-cookie").cloned();
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        assert!(
            body.starts_with(want.as_bytes()),
            "h2 pinned={pinned}: {body:?}"
        );
        if !pinned {
            // A new user gets a cohort key over either protocol.
            for c in [cookie, h2_cookie] {
                let c = c.expect("no cohort cookie");
                assert!(c.to_str().unwrap().starts_with("uid="), "{c:?}");
            }
        }
    }
}

#[tokio::test]
async fn a_client_that_never_sends_a_client_hello_is_closed_at_the_header_timeout() {
    let pki = Pki::new();
    let leaf = pki.leaf(&["app.example"]);
    let store = store_with(&[(&["app.example"], &leaf)]);
    let edge = tls_edge(
        &store,
        RouterConfig {
            header_read_timeout: Duration::from_millis(300),
            ..RouterConfig::default()
        },
    )
    .await;
    let start = Instant::now();
    let mut s = TcpStream::connect(edge.addr).await.unwrap();
    let mut buf = [0u8; 16];
    let r = tokio::time::timeout(LIMIT, s.read(&mut buf))
        .await
        .expect("the silent client was not closed");
    assert!(matches!(r, Ok(0) | Err(_)), "{r:?}");
    let waited = start.elapsed();
    assert!(
        waited >= Duration::from_millis(250),
        "closed too early: {waited:?}"
    );
    assert!(
        waited < Duration::from_secs(3),
        "closed too late: {waited:?}"
    );
}

#[tokio::test]
async fn drain_closes_idle_tls_connections() {
    let pki = Pki::new();
    let leaf = pki.leaf(&["app.example"]);
    let store = store_with(&[(&["app.example"], &leaf)]);
    let edge = tls_edge(&store, RouterConfig::default()).await;
    let c = client(&pki, &[HTTP11], BOTH);
    let (mut sender, conn) = http1_over(c.connect(edge.addr, "app.example").await.unwrap()).await;
    assert_eq!(get(&mut sender, "app.example", "/").await.0, 200);
    let c2 = client(&pki, &[H2], BOTH);
    let (mut h2, h2_conn) = hyper::client::conn::http2::handshake(
        TokioExecutor::new(),
        TokioIo::new(c2.connect(edge.addr, "app.example").await.unwrap()),
    )
    .await
    .unwrap();
    let h2_conn = tokio::spawn(h2_conn);
    let req = Request::get("https://app.example/")
        .body(Full::new(Bytes::new()))
        .unwrap();
    assert_eq!(h2.send_request(req).await.unwrap().status(), 200);

    let start = Instant::now();
    tokio::time::timeout(LIMIT, edge.router.drain(Duration::from_secs(5)))
        .await
        .unwrap();
    assert!(
        start.elapsed() < Duration::from_secs(3),
        "drain waited for idle TLS connections"
    );
    // Both client connections see the server close them (close_notify / GOAWAY).
    tokio::time::timeout(LIMIT, conn)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    tokio::time::timeout(LIMIT, h2_conn)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
}

#[tokio::test]
async fn a_tls_listener_over_its_connection_limit_closes_before_the_handshake() {
    let pki = Pki::new();
    let leaf = pki.leaf(&["app.example"]);
    let store = store_with(&[(&["app.example"], &leaf)]);
    let b = backend("b1").await;
    let router = Router::new(RouterConfig::default());
    let mut config = tls_config(&store);
    config.limits.max_connections = 1;
    let (addr, _handle) = listen(&router, config);
    route_all(&router, &[addr], b);
    let c = client(&pki, &[HTTP11], BOTH);
    let (mut sender, conn) = http1_over(c.connect(addr, "app.example").await.unwrap()).await;
    assert_eq!(get(&mut sender, "app.example", "/").await.0, 200);
    assert!(
        c.connect(addr, "app.example").await.is_err(),
        "a second connection got in"
    );
    drop(sender);
    let _ = tokio::time::timeout(LIMIT, conn).await.unwrap();
    // The place is freed once the first connection is closed.
    let end = Instant::now() + LIMIT;
    loop {
        if let Ok(tls) = c.connect(addr, "app.example").await {
            let (mut sender, _conn) = http1_over(tls).await;
            assert_eq!(get(&mut sender, "app.example", "/").await.0, 200);
            break;
        }
        assert!(Instant::now() < end, "the place was never freed");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[test]
fn bad_certificates_and_keys_are_refused_with_a_hint() {
    let pki = Pki::new();
    let leaf = pki.leaf(&["app.example"]);
    let other = pki.leaf(&["other.example"]);
    let store = CertStore::new();
    let (chain, key) = (leaf.chain_pem.as_bytes(), leaf.key_pem.as_bytes());
    let err = store
        .set(["app.example"], chain, other.key_pem.as_bytes())
        .unwrap_err();
    assert!(matches!(err, TlsError::KeyMismatch), "{err}");
    let err = store
        .set(["app.example"], b"not pem at all", key)
        .unwrap_err();
    assert!(matches!(err, TlsError::NoCertificate), "{err}");
    let broken = "-----BEGIN CERTIFICATE-----\n%%%%\n-----END CERTIFICATE-----\n";
    let err = store
        .set(["app.example"], broken.as_bytes(), key)
        .unwrap_err();
    assert!(matches!(err, TlsError::CertificatePem(_)), "{err}");
    let err = store.set(["app.example"], chain, chain).unwrap_err();
    assert!(matches!(err, TlsError::KeyPem(_)), "{err}");
    let err = store.set(["bad host!"], chain, key).unwrap_err();
    assert!(matches!(err, TlsError::InvalidHost(_)), "{err}");
    let err = store.set(Vec::<String>::new(), chain, key).unwrap_err();
    assert!(matches!(err, TlsError::NoHosts), "{err}");
    assert!(store.is_empty(), "a failed set changed the store");
    store.set(["APP.example."], chain, key).unwrap();
    assert_eq!(store.hosts(), vec!["app.example"]);
}

// ---------------------------------------------------------------------------------------------
// Redirect and ACME challenges

/// Raw HTTP/1.1 requests on one connection; returns each response's head.
async fn exchanges(addr: SocketAddr, requests: &[&str]) -> Vec<String> {
    let mut s = TcpStream::connect(addr).await.unwrap();
    let mut heads = Vec::new();
    for r in requests {
        s.write_all(r.as_bytes()).await.unwrap();
        let head = read_head(&mut s).await;
        // Bodies here are short and carry a content-length.
        let len: usize = head
            .lines()
            .find_map(|l| {
                l.to_ascii_lowercase()
                    .strip_prefix("content-length: ")
                    .map(|v| v.trim().parse().unwrap())
            })
            .unwrap_or(0);
        let mut body = vec![0u8; len];
        tokio::time::timeout(LIMIT, s.read_exact(&mut body))
            .await
            .unwrap()
            .unwrap();
        heads.push(format!("{head}{}", String::from_utf8_lossy(&body)));
    }
    heads
}

fn location(head: &str) -> Option<&str> {
    head.lines().find_map(|l| {
        l.split_once(':')
            .filter(|(n, _)| n.eq_ignore_ascii_case("location"))
            .map(|(_, v)| v.trim())
    })
}

fn redirecting(
    router: &Router,
    port: u16,
    challenges: Option<ChallengeStore>,
) -> (SocketAddr, ListenerHandle) {
    listen(
        router,
        ListenerConfig {
            redirect_https: Some(RedirectHttps::to_port(port)),
            challenges,
            ..ListenerConfig::default()
        },
    )
}

#[tokio::test]
async fn one_redirect_listener_sends_each_host_to_its_own_https_port() {
    let router = Router::new(RouterConfig::default());
    let redirect = RedirectHttps::to_port(443);
    redirect.ports.set("Staging.Example.com", 8443);
    let (addr, _h) = listen(
        &router,
        ListenerConfig {
            redirect_https: Some(redirect.clone()),
            ..ListenerConfig::default()
        },
    );
    let ask = |host: &'static str| async move {
        let request = format!("GET /x HTTP/1.1\r\nHost: {host}\r\n\r\n");
        let heads = exchanges(addr, &[request.as_str()]).await;
        location(&heads[0]).map(str::to_string)
    };
    assert_eq!(
        ask("staging.example.com:80").await.as_deref(),
        Some("https://staging.example.com:8443/x")
    );
    assert_eq!(
        ask("hello.example.com").await.as_deref(),
        Some("https://hello.example.com/x")
    );
    // The map changes while the listener serves.
    redirect.ports.set("hello.example.com", 9443);
    assert!(redirect.ports.remove("staging.example.com"));
    assert_eq!(
        ask("hello.example.com").await.as_deref(),
        Some("https://hello.example.com:9443/x")
    );
    assert_eq!(
        ask("staging.example.com").await.as_deref(),
        Some("https://staging.example.com/x")
    );
}

#[tokio::test]
async fn redirect_answers_308_with_the_exact_location() {
    let router = Router::new(RouterConfig::default());
    let (default_port, _h1) = redirecting(&router, 443, None);
    let (other_port, _h2) = redirecting(&router, 8443, None);
    let cases = [
        (
            default_port,
            "GET / HTTP/1.1\r\nHost: example.com\r\n\r\n",
            "https://example.com/",
        ),
        (
            default_port,
            "GET /a/b?x=1&y=%20 HTTP/1.1\r\nHost: example.com:8080\r\n\r\n",
            "https://example.com/a/b?x=1&y=%20",
        ),
        (
            default_port,
            "POST /form HTTP/1.1\r\nHost: Shop.Example\r\nContent-Length: 3\r\n\r\nabc",
            "https://Shop.Example/form",
        ),
        (
            default_port,
            "GET /v6 HTTP/1.1\r\nHost: [::1]:80\r\n\r\n",
            "https://[::1]/v6",
        ),
        (
            other_port,
            "GET /p?q HTTP/1.1\r\nHost: example.com\r\n\r\n",
            "https://example.com:8443/p?q",
        ),
        (
            other_port,
            "GET http://abs.example:81/x HTTP/1.1\r\nHost: ignored.example\r\n\r\n",
            "https://abs.example:8443/x",
        ),
    ];
    for (addr, request, want) in cases {
        // Twice on one connection: the redirect closes nothing.
        let heads = exchanges(addr, &[request, request]).await;
        for head in heads {
            assert!(
                head.starts_with("HTTP/1.1 308 Permanent Redirect\r\n"),
                "{request:?}: {head}"
            );
            assert_eq!(location(&head), Some(want), "{request:?}: {head}");
            assert!(
                !head.to_ascii_lowercase().contains("connection: close"),
                "{head}"
            );
        }
    }
}

#[tokio::test]
async fn redirect_refuses_bad_hosts_with_400() {
    let router = Router::new(RouterConfig::default());
    let (addr, _h) = redirecting(&router, 443, None);
    for request in [
        "GET / HTTP/1.1\r\nHost: evil.example\rSet-Cookie: a=b\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: user@evil.example\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: evil.example/path\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: two words\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: example.com:99999x\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: \"quoted\"\r\n\r\n",
        "GET / HTTP/1.0\r\n\r\n",
    ] {
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(request.as_bytes()).await.unwrap();
        let mut out = Vec::new();
        let _ = tokio::time::timeout(LIMIT, async {
            // Read the head (and whatever else comes) until the server closes or a head is in.
            let mut buf = [0u8; 1024];
            loop {
                match s.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => out.extend_from_slice(&buf[..n]),
                }
                if out.windows(4).any(|w| w == b"\r\n\r\n") {
                    break;
                }
            }
        })
        .await;
        let text = String::from_utf8_lossy(&out).to_string();
        assert!(
            text.starts_with("HTTP/1.1 400") || text.starts_with("HTTP/1.0 400"),
            "{request:?}: {text}"
        );
        assert!(location(&text).is_none(), "{request:?}: {text}");
        assert!(
            !text.to_ascii_lowercase().contains("set-cookie"),
            "{request:?}: {text}"
        );
    }
    // A bare LF ends the Host line (lenient HTTP/1.1 parsing): what follows is a header of the
    // request, never part of the redirect.
    let heads = exchanges(
        addr,
        &["GET / HTTP/1.1\r\nHost: evil.example\nSet-Cookie: a=b\r\n\r\n"],
    )
    .await;
    assert_eq!(
        location(&heads[0]),
        Some("https://evil.example/"),
        "{}",
        heads[0]
    );
    assert!(
        !heads[0].to_ascii_lowercase().contains("set-cookie"),
        "{}",
        heads[0]
    );
}

#[tokio::test]
async fn acme_challenges_are_answered_on_redirecting_and_plain_listeners() {
    let challenges = ChallengeStore::new();
    challenges.put("tok-123_ABC", "tok-123_ABC.thumbprint");
    let b = backend("b1").await;
    let router = Router::new(RouterConfig::default());
    let (redirect, _h1) = redirecting(&router, 443, Some(challenges.clone()));
    let (plain, _h2) = listen(
        &router,
        ListenerConfig {
            challenges: Some(challenges.clone()),
            ..ListenerConfig::default()
        },
    );
    route_all(&router, &[plain], b);
    let known = "GET /.well-known/acme-challenge/tok-123_ABC HTTP/1.1\r\nHost: app.example\r\n\r\n";
    let unknown = "GET /.well-known/acme-challenge/nope HTTP/1.1\r\nHost: app.example\r\n\r\n";
    let other = "GET /app HTTP/1.1\r\nHost: app.example\r\n\r\n";
    for addr in [redirect, plain] {
        let heads = exchanges(addr, &[known, unknown, other, known]).await;
        for i in [0, 3] {
            assert!(heads[i].starts_with("HTTP/1.1 200 OK\r\n"), "{}", heads[i]);
            assert!(
                heads[i]
                    .to_ascii_lowercase()
                    .contains("content-type: text/plain\r\n"),
                "{}",
                heads[i]
            );
            assert!(
                heads[i].ends_with("\r\n\r\ntok-123_ABC.thumbprint"),
                "{}",
                heads[i]
            );
        }
        assert!(heads[1].starts_with("HTTP/1.1 404"), "{}", heads[1]);
        if addr == redirect {
            assert!(heads[2].starts_with("HTTP/1.1 308"), "{}", heads[2]);
        } else {
            assert!(heads[2].starts_with("HTTP/1.1 200"), "{}", heads[2]);
            assert!(
                heads[2].ends_with("b1|GET|/app|xfp=http|xfh=app.example"),
                "{}",
                heads[2]
            );
        }
    }
    assert!(challenges.remove("tok-123_ABC"));
    let heads = exchanges(plain, &[known]).await;
    assert!(heads[0].starts_with("HTTP/1.1 404"), "{}", heads[0]);
}

#[tokio::test]
async fn tls_and_redirect_on_one_listener_is_refused() {
    let router = Router::new(RouterConfig::default());
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let err = router
        .serve_with(
            l,
            ListenerConfig {
                tls: Some(TlsSettings::new(CertStore::new())),
                redirect_https: Some(RedirectHttps::default()),
                ..ListenerConfig::default()
            },
        )
        .unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput);
}
