//! lastmile-acme against the real ACME test server: Debian's `pebble`, with
//! `pebble-challtestsrv` as its DNS so every test host name resolves to 127.0.0.1, and a real
//! HTTP server on pebble's http-01 port answering the published tokens. Each test starts its
//! own pair on free ports; the processes are killed and reaped when the test ends, panics
//! included.

use std::collections::HashMap;
use std::fs;
use std::net::{TcpListener as StdTcpListener, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use lastmile_acme::{
    AcmeClient, AcmeConfig, AcmeError, AcmeEvent, CertManager, Certificate, DirStorage,
    Http01Responder, RetryPolicy, Storage, StorageError,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

const HOST: &str = "hello.lastmile.test";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issues_a_certificate_that_a_client_trusting_only_pebbles_root_accepts() {
    let challenges = ChallengeServer::start().await;
    let pebble = Pebble::start(PebbleOptions::validating_on(challenges.port)).await;
    let storage = TempStorage::new();
    let client = pebble.client(storage.shared());

    let hosts = vec![HOST.to_string(), "www.lastmile.test".to_string()];
    let certificate = client
        .issue(&hosts, &*challenges.tokens)
        .await
        .unwrap_or_else(|error| panic!("issuance failed: {error}\n{}", pebble.logs()));

    assert_eq!(certificate.hosts, hosts);
    assert!(
        certificate.chain_pem.matches("BEGIN CERTIFICATE").count() >= 2,
        "leaf and intermediate"
    );
    assert!(certificate.not_before <= SystemTime::now());
    assert!(certificate.not_after > SystemTime::now());
    assert!(
        !challenges.tokens.published().is_empty(),
        "pebble validated at least one token"
    );
    assert!(
        challenges.tokens.live().is_empty(),
        "every token withdrawn after the order"
    );
    for host in &hosts {
        serve_and_connect(&certificate, host, &pebble.root()).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_account_is_created_once_and_reused_through_storage() {
    let challenges = ChallengeServer::start().await;
    // Half of all nonces rejected: every issuance meets badNonce several times and must
    // re-sign with the fresh nonce from the error (RFC 8555 §6.5).
    let pebble = Pebble::start(PebbleOptions {
        nonce_reject_percent: Some(50),
        ..PebbleOptions::validating_on(challenges.port)
    })
    .await;
    let storage = TempStorage::new();
    let hosts = vec![HOST.to_string()];

    let first = pebble.client(storage.shared());
    first
        .issue(&hosts, &*challenges.tokens)
        .await
        .expect("first issuance");
    let account_url = first.account_url().await.expect("an account");
    let account_entries = storage.saved_names();
    assert_eq!(
        account_entries.len(),
        1,
        "one account entry: {account_entries:?}"
    );
    assert!(account_entries[0].starts_with("acme-account-"));

    let recording = Arc::new(RecordingStorage::new(storage.shared()));
    let second = pebble.client(recording.clone());
    let serial_before = second
        .issue(&hosts, &*challenges.tokens)
        .await
        .expect("second issuance")
        .serial;
    assert_eq!(
        second.account_url().await.expect("the account"),
        account_url
    );
    assert!(
        recording.saves().is_empty(),
        "the second client registered nothing: {:?}",
        recording.saves()
    );
    assert!(!serial_before.is_empty());

    // An account key stored without its URL (e.g. a crash right after registration) is found
    // again with onlyReturnExisting instead of registering a second account.
    let name = &account_entries[0];
    let mut record: serde_json::Value =
        serde_json::from_slice(&storage.inner.load(name).expect("load").expect("stored"))
            .expect("JSON");
    record["url"] = serde_json::Value::Null;
    storage
        .inner
        .save(name, record.to_string().as_bytes())
        .expect("save");
    let third = pebble.client(storage.shared());
    assert_eq!(
        third.account_url().await.expect("the account found again"),
        account_url
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stored_certificate_that_is_not_due_is_returned_without_asking_pebble() {
    let challenges = ChallengeServer::start().await;
    let mut pebble = Pebble::start(PebbleOptions::validating_on(challenges.port)).await;
    let storage = TempStorage::new();
    let issued = pebble
        .manager(storage.shared(), &challenges)
        .certificate()
        .await
        .expect("first certificate");

    pebble.stop();
    let events = EventLog::default();
    let manager = pebble
        .manager(storage.shared(), &challenges)
        .on_event(events.recorder());
    let again = manager
        .certificate()
        .await
        .expect("the stored certificate, pebble being down");
    assert_eq!(again.serial, issued.serial);
    assert_eq!(again, issued);
    let seen = events.lines();
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert!(
        seen[0].starts_with("certificate for hello.lastmile.test loaded from storage, expires "),
        "{seen:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_manager_renews_before_expiry_and_retries_while_pebble_is_down() {
    let challenges = ChallengeServer::start().await;
    let mut pebble = Pebble::start(PebbleOptions {
        // Renewal is due 10 s in; the margin to expiry leaves room for a busy machine.
        validity_seconds: Some(15),
        ..PebbleOptions::validating_on(challenges.port)
    })
    .await;
    let storage = TempStorage::new();
    let events = EventLog::default();
    let manager = Arc::new(
        pebble
            .manager(storage.shared(), &challenges)
            .with_retry(RetryPolicy {
                initial: Duration::from_millis(300),
                max: Duration::from_secs(2),
            })
            .on_event(events.recorder()),
    );
    let first = manager.certificate().await.expect("first certificate");
    let lifetime = first
        .not_after
        .duration_since(first.not_before)
        .expect("a window");
    assert!(
        lifetime <= Duration::from_secs(15),
        "pebble's short validity applies: {lifetime:?}"
    );

    let (installed, mut renewed) = mpsc::unbounded_channel::<(Certificate, SystemTime)>();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let loop_manager = Arc::clone(&manager);
    let renewal_loop = tokio::spawn(async move {
        loop_manager
            .run(
                move |certificate| {
                    let _ = installed.send((certificate.clone(), SystemTime::now()));
                },
                async {
                    let _ = stopped.await;
                },
            )
            .await;
    });

    let (second, installed_at) = next_within(&mut renewed, Duration::from_secs(20))
        .await
        .unwrap_or_else(|| panic!("no renewal: {:?}\n{}", events.lines(), pebble.logs()));
    assert_ne!(second.serial, first.serial);
    assert!(
        installed_at >= first.renew_at(),
        "not renewed before renew_at"
    );
    assert!(
        installed_at < first.not_after,
        "renewed while the old certificate was still valid"
    );

    pebble.stop();
    events
        .wait_for(
            "failed: could not talk to the ACME server",
            Duration::from_secs(20),
        )
        .await
        .unwrap_or_else(|| panic!("no failure while pebble was down: {:?}", events.lines()));
    pebble.launch().await;
    let (third, _) = next_within(&mut renewed, Duration::from_secs(20))
        .await
        .unwrap_or_else(|| {
            panic!(
                "no renewal after pebble came back: {:?}\n{}",
                events.lines(),
                pebble.logs()
            )
        });
    assert_ne!(third.serial, second.serial);
    serve_and_connect(&third, HOST, &pebble.root()).await;

    let lines = events.lines();
    let retried = lines
        .iter()
        .filter(|line| line.contains("; retrying in "))
        .count();
    assert!(retried >= 1, "{lines:?}");
    assert!(
        lines
            .iter()
            .any(|line| line.starts_with("certificate for hello.lastmile.test renewed (serial ")),
        "{lines:?}"
    );
    let stored = manager.certificate().await.expect("the stored renewal");
    assert_eq!(stored.serial, third.serial, "each renewal is saved");

    let _ = stop.send(());
    tokio::time::timeout(Duration::from_secs(5), renewal_loop)
        .await
        .expect("run returns once shutdown fires")
        .expect("run did not panic");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_validation_carries_pebbles_problem_and_withdraws_the_tokens() {
    // Nothing listens on pebble's http-01 port: the responder publishes, nobody serves.
    let unserved_port = free_tcp_port();
    let tokens = Arc::new(ChallengeTokens::default());
    let pebble = Pebble::start(PebbleOptions::validating_on(unserved_port)).await;
    let storage = TempStorage::new();
    let client = pebble.client(storage.shared());

    let error = client
        .issue(&[HOST.to_string()], &*tokens)
        .await
        .expect_err("validation cannot succeed");
    let message = error.to_string();
    assert!(matches!(error, AcmeError::Validation { .. }), "{message}");
    let problem = error.problem().expect("pebble's problem document");
    assert_eq!(problem.short_kind(), "connection", "{message}");
    assert!(
        message
            .starts_with("the ACME server could not validate hello.lastmile.test over http-01: "),
        "{message}"
    );
    assert!(
        message.contains(&problem.detail) && !problem.detail.is_empty(),
        "{message}"
    );
    assert!(
        message.contains(&format!("{unserved_port}")) || message.contains("refused"),
        "{message}"
    );
    assert!(
        message.contains("make port 80 of hello.lastmile.test reach lastmile's HTTP listener"),
        "{message}"
    );
    assert!(!tokens.published().is_empty(), "a token was published");
    assert!(
        tokens.live().is_empty(),
        "every published token was withdrawn"
    );
    assert_eq!(tokens.withdrawn(), tokens.published());
}

// ---------------------------------------------------------------------------------------------
// pebble and pebble-challtestsrv as child processes

#[derive(Clone, Copy)]
struct PebbleOptions {
    /// pebble's `httpPort`: where it fetches http-01 tokens.
    http_port: u16,
    /// `certificateValidityPeriod` in seconds; pebble's default (about five years) if `None`.
    validity_seconds: Option<u64>,
    /// `PEBBLE_WFE_NONCEREJECT`; pebble's default (5%) if `None`.
    nonce_reject_percent: Option<u8>,
}

impl PebbleOptions {
    fn validating_on(http_port: u16) -> Self {
        Self {
            http_port,
            validity_seconds: None,
            nonce_reject_percent: None,
        }
    }
}

struct Pebble {
    dir: tempfile::TempDir,
    options: PebbleOptions,
    listen_port: u16,
    management_port: u16,
    dns_port: u16,
    /// The CA that signed pebble's own HTTPS certificate (generated here; Debian ships none).
    listener_ca: CertificateDer<'static>,
    pebble: Option<ChildGuard>,
    _challtestsrv: ChildGuard,
    root: Option<CertificateDer<'static>>,
}

impl Pebble {
    async fn start(options: PebbleOptions) -> Pebble {
        for binary in ["pebble", "pebble-challtestsrv"] {
            let found = std::env::var_os("PATH")
                .map(|path| std::env::split_paths(&path).any(|dir| dir.join(binary).is_file()))
                .unwrap_or(false);
            assert!(
                found,
                "`{binary}` is not installed; these tests run the real ACME test server: \
                 run `apt-get install pebble` (Debian's pebble package ships both pebble and \
                 pebble-challtestsrv)"
            );
        }
        let dir = tempfile::tempdir().expect("a temporary directory");
        let (listener_ca, certificate_pem, key_pem) = listener_certificate();
        fs::write(dir.path().join("cert.pem"), certificate_pem).expect("write cert.pem");
        fs::write(dir.path().join("key.pem"), key_pem).expect("write key.pem");
        let listen_port = free_tcp_port();
        let management_port = free_tcp_port();
        let dns_port = free_udp_and_tcp_port();
        let mut config = serde_json::json!({
            "pebble": {
                "listenAddress": format!("127.0.0.1:{listen_port}"),
                "managementListenAddress": format!("127.0.0.1:{management_port}"),
                "certificate": dir.path().join("cert.pem"),
                "privateKey": dir.path().join("key.pem"),
                "httpPort": options.http_port,
                "tlsPort": free_tcp_port(),
                "ocspResponderURL": "",
                "externalAccountBindingRequired": false
            }
        });
        if let Some(seconds) = options.validity_seconds {
            config["pebble"]["certificateValidityPeriod"] = seconds.into();
        }
        fs::write(dir.path().join("pebble-config.json"), config.to_string()).expect("write config");

        let challtestsrv = ChildGuard::spawn(
            Command::new("pebble-challtestsrv").args([
                "-defaultIPv4",
                "127.0.0.1",
                "-defaultIPv6",
                "",
                "-dns01",
                &format!("127.0.0.1:{dns_port}"),
                "-http01",
                "",
                "-https01",
                "",
                "-tlsalpn01",
                "",
                "-management",
                &format!("127.0.0.1:{}", free_tcp_port()),
            ]),
            &dir.path().join("challtestsrv.log"),
        );
        let mut pebble = Pebble {
            dir,
            options,
            listen_port,
            management_port,
            dns_port,
            listener_ca,
            pebble: None,
            _challtestsrv: challtestsrv,
            root: None,
        };
        pebble.launch().await;
        pebble
    }

    /// Starts (or restarts) pebble on the same ports; it comes back with a new CA and no
    /// accounts, as pebble keeps everything in memory.
    async fn launch(&mut self) {
        let mut command = Command::new("pebble");
        command
            .arg("-config")
            .arg(self.dir.path().join("pebble-config.json"))
            .arg("-dnsserver")
            .arg(format!("127.0.0.1:{}", self.dns_port))
            .env("PEBBLE_VA_NOSLEEP", "1");
        if let Some(percent) = self.options.nonce_reject_percent {
            command.env("PEBBLE_WFE_NONCEREJECT", percent.to_string());
        }
        self.pebble = Some(ChildGuard::spawn(
            &mut command,
            &self.dir.path().join("pebble.log"),
        ));

        let deadline = Instant::now() + Duration::from_secs(15);
        let directory = self.directory();
        loop {
            match https_get(&directory, &self.listener_ca).await {
                Ok((200, _)) => break,
                outcome => {
                    assert!(
                        Instant::now() < deadline,
                        "pebble's directory {directory} did not answer within 15 s ({outcome:?})\n{}",
                        self.logs()
                    );
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
        let url = format!("https://127.0.0.1:{}/roots/0", self.management_port);
        let (status, body) = https_get(&url, &self.listener_ca)
            .await
            .expect("pebble's root");
        assert_eq!(status, 200, "{url}");
        self.root = Some(
            CertificateDer::from_pem_slice(&body)
                .expect("pebble's root is PEM")
                .into_owned(),
        );
    }

    fn stop(&mut self) {
        self.pebble = None;
    }

    fn directory(&self) -> String {
        format!("https://127.0.0.1:{}/dir", self.listen_port)
    }

    fn root(&self) -> CertificateDer<'static> {
        self.root.clone().expect("pebble was started")
    }

    fn client(&self, storage: Arc<dyn Storage>) -> AcmeClient {
        let config = AcmeConfig {
            email: Some("ops@lastmile.test".to_string()),
            extra_roots: vec![self.listener_ca.clone()],
            request_timeout: Duration::from_secs(5),
            order_timeout: Duration::from_secs(30),
            ..AcmeConfig::new(self.directory())
        };
        AcmeClient::new(config, storage).expect("a client")
    }

    fn manager(&self, storage: Arc<dyn Storage>, challenges: &ChallengeServer) -> CertManager {
        let responder: Arc<dyn Http01Responder> = challenges.tokens.clone();
        CertManager::new(
            Arc::new(self.client(storage)),
            vec![HOST.to_string()],
            responder,
        )
        .expect("a valid host name")
    }

    fn logs(&self) -> String {
        ["pebble.log", "challtestsrv.log"]
            .iter()
            .map(|name| {
                let text = fs::read_to_string(self.dir.path().join(name)).unwrap_or_default();
                let tail: Vec<&str> = text.lines().rev().take(30).collect();
                let tail: Vec<&str> = tail.into_iter().rev().collect();
                format!("--- {name} (last lines)\n{}", tail.join("\n"))
            })
            .collect::<Vec<_>>()
            .join("\n")
    }
}

/// A child process killed and reaped on drop, so a panicking test leaves nothing running.
struct ChildGuard(Child);

impl ChildGuard {
    fn spawn(command: &mut Command, log: &Path) -> ChildGuard {
        let out = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .expect("log file");
        let err = out.try_clone().expect("log file");
        let child = command
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .unwrap_or_else(|error| panic!("starting {command:?}: {error}"));
        ChildGuard(child)
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A CA and a leaf for 127.0.0.1 and localhost signed by it, for pebble's HTTPS listener.
fn listener_certificate() -> (CertificateDer<'static>, String, String) {
    let ca_key = rcgen::KeyPair::generate().expect("CA key");
    let mut ca_params = rcgen::CertificateParams::new(Vec::new()).expect("CA params");
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params.distinguished_name.push(
        rcgen::DnType::CommonName,
        "lastmile test CA for pebble's listener",
    );
    let ca = ca_params.self_signed(&ca_key).expect("CA certificate");
    let issuer = rcgen::Issuer::new(ca_params, ca_key);
    let key = rcgen::KeyPair::generate().expect("listener key");
    let params =
        rcgen::CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()])
            .expect("listener params");
    let leaf = params
        .signed_by(&key, &issuer)
        .expect("listener certificate");
    (
        ca.der().clone(),
        format!("{}{}", leaf.pem(), ca.pem()),
        key.serialize_pem(),
    )
}

fn free_tcp_port() -> u16 {
    StdTcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free port")
        .port()
}

/// A port free for both UDP and TCP, as pebble-challtestsrv's DNS listens on both.
fn free_udp_and_tcp_port() -> u16 {
    loop {
        let udp = UdpSocket::bind("127.0.0.1:0").expect("a UDP port");
        let port = udp.local_addr().expect("address").port();
        if StdTcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

/// A GET over HTTPS trusting only `root`, for pebble's directory and management endpoints.
async fn https_get(url: &str, root: &CertificateDer<'static>) -> Result<(u16, Vec<u8>), String> {
    let uri: http::Uri = url.parse().map_err(|error| format!("{error}"))?;
    let authority = uri.authority().ok_or("no authority")?.clone();
    let tcp = TcpStream::connect((authority.host(), authority.port_u16().unwrap_or(443)))
        .await
        .map_err(|error| error.to_string())?;
    let tls = tls_client(root)
        .connect(
            ServerName::try_from(authority.host().to_string())
                .map_err(|error| error.to_string())?,
            tcp,
        )
        .await
        .map_err(|error| error.to_string())?;
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
        .await
        .map_err(|error| error.to_string())?;
    let connection = tokio::spawn(connection);
    let request = http::Request::get(uri.path())
        .header(http::header::HOST, authority.as_str())
        .body(Empty::<Bytes>::new())
        .map_err(|error| error.to_string())?;
    let response = sender
        .send_request(request)
        .await
        .map_err(|error| error.to_string())?;
    let status = response.status().as_u16();
    let body = response
        .into_body()
        .collect()
        .await
        .map_err(|error| error.to_string())?;
    connection.abort();
    Ok((status, body.to_bytes().to_vec()))
}

fn tls_client(root: &CertificateDer<'static>) -> tokio_rustls::TlsConnector {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(root.clone()).expect("a usable root");
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("TLS versions")
    .with_root_certificates(roots)
    .with_no_client_auth();
    tokio_rustls::TlsConnector::from(Arc::new(config))
}

/// Serves `certificate` with tokio-rustls on 127.0.0.1 and connects as `host` with a client
/// trusting only `root`: the chain verifies, the key matches, a byte goes through.
async fn serve_and_connect(certificate: &Certificate, host: &str, root: &CertificateDer<'static>) {
    let chain: Vec<CertificateDer<'static>> =
        CertificateDer::pem_slice_iter(certificate.chain_pem.as_bytes())
            .collect::<Result<_, _>>()
            .expect("PEM chain");
    let key = PrivateKeyDer::from_pem_slice(certificate.key_pem.as_bytes()).expect("PEM key");
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("TLS versions")
    .with_no_client_auth()
    .with_single_cert(chain, key)
    .expect("the chain and its key");
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let address = listener.local_addr().expect("address");
    let server = tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.expect("accept");
        let mut tls = acceptor.accept(tcp).await.expect("server handshake");
        tls.write_all(b"!").await.expect("write");
        tls.shutdown().await.expect("close");
    });
    let tcp = TcpStream::connect(address).await.expect("connect");
    let mut tls = tls_client(root)
        .connect(ServerName::try_from(host.to_string()).expect("a name"), tcp)
        .await
        .unwrap_or_else(|error| {
            panic!("a client trusting only pebble's root refused {host}: {error}")
        });
    let mut byte = [0u8; 1];
    tls.read_exact(&mut byte).await.expect("read");
    assert_eq!(&byte, b"!");
    server.await.expect("server task");
}

// ---------------------------------------------------------------------------------------------
// the http-01 responder: a real HTTP server on pebble's httpPort

/// The tokens published by the client; implements the responder the client is given.
#[derive(Default)]
struct ChallengeTokens {
    live: Mutex<HashMap<String, String>>,
    published: Mutex<Vec<String>>,
    withdrawn: Mutex<Vec<String>>,
}

impl ChallengeTokens {
    fn live(&self) -> HashMap<String, String> {
        self.live.lock().expect("lock").clone()
    }
    fn published(&self) -> Vec<String> {
        self.published.lock().expect("lock").clone()
    }
    fn withdrawn(&self) -> Vec<String> {
        self.withdrawn.lock().expect("lock").clone()
    }
}

impl Http01Responder for ChallengeTokens {
    fn publish(&self, token: &str, key_authorization: &str) {
        self.live
            .lock()
            .expect("lock")
            .insert(token.to_string(), key_authorization.to_string());
        self.published.lock().expect("lock").push(token.to_string());
    }

    fn withdraw(&self, token: &str) {
        self.live.lock().expect("lock").remove(token);
        self.withdrawn.lock().expect("lock").push(token.to_string());
    }
}

/// A tiny HTTP/1.1 server answering `/.well-known/acme-challenge/<token>` from the tokens.
struct ChallengeServer {
    port: u16,
    tokens: Arc<ChallengeTokens>,
    task: tokio::task::JoinHandle<()>,
}

impl ChallengeServer {
    async fn start() -> ChallengeServer {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the challenge port");
        let port = listener.local_addr().expect("address").port();
        let tokens = Arc::new(ChallengeTokens::default());
        let served = Arc::clone(&tokens);
        let task = tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    continue;
                };
                let served = Arc::clone(&served);
                tokio::spawn(async move {
                    let service =
                        hyper::service::service_fn(move |request: http::Request<Incoming>| {
                            let answer = request
                                .uri()
                                .path()
                                .strip_prefix("/.well-known/acme-challenge/")
                                .and_then(|token| served.live().get(token).cloned());
                            async move {
                                let response = match answer {
                                    Some(key_authorization) => http::Response::new(Full::new(
                                        Bytes::from(key_authorization),
                                    )),
                                    None => {
                                        let mut response = http::Response::new(Full::new(
                                            Bytes::from_static(b"no such token"),
                                        ));
                                        *response.status_mut() = http::StatusCode::NOT_FOUND;
                                        response
                                    }
                                };
                                Ok::<_, std::convert::Infallible>(response)
                            }
                        });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(tcp), service)
                        .await;
                });
            }
        });
        ChallengeServer { port, tokens, task }
    }
}

impl Drop for ChallengeServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

// ---------------------------------------------------------------------------------------------
// storage and events

/// A `DirStorage` in a temporary directory.
struct TempStorage {
    _dir: tempfile::TempDir,
    path: PathBuf,
    inner: Arc<DirStorage>,
}

impl TempStorage {
    fn new() -> TempStorage {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let path = dir.path().join("acme");
        let inner = Arc::new(DirStorage::new(&path).expect("storage"));
        TempStorage {
            _dir: dir,
            path,
            inner,
        }
    }

    fn shared(&self) -> Arc<dyn Storage> {
        self.inner.clone()
    }

    fn saved_names(&self) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(&self.path)
            .expect("list storage")
            .map(|entry| {
                entry
                    .expect("entry")
                    .file_name()
                    .to_string_lossy()
                    .into_owned()
            })
            .collect();
        names.sort();
        names
    }
}

/// Passes everything to a real storage and remembers what was saved.
struct RecordingStorage {
    inner: Arc<dyn Storage>,
    saves: Mutex<Vec<String>>,
}

impl RecordingStorage {
    fn new(inner: Arc<dyn Storage>) -> Self {
        Self {
            inner,
            saves: Mutex::new(Vec::new()),
        }
    }
    fn saves(&self) -> Vec<String> {
        self.saves.lock().expect("lock").clone()
    }
}

impl Storage for RecordingStorage {
    fn load(&self, name: &str) -> Result<Option<Vec<u8>>, StorageError> {
        self.inner.load(name)
    }
    fn save(&self, name: &str, bytes: &[u8]) -> Result<(), StorageError> {
        self.saves.lock().expect("lock").push(name.to_string());
        self.inner.save(name, bytes)
    }
}

/// Every event's message, in order.
#[derive(Clone, Default)]
struct EventLog(Arc<Mutex<Vec<String>>>);

impl EventLog {
    fn recorder(&self) -> impl Fn(&AcmeEvent) + Send + Sync + 'static {
        let log = self.clone();
        move |event| log.0.lock().expect("lock").push(event.to_string())
    }

    fn lines(&self) -> Vec<String> {
        self.0.lock().expect("lock").clone()
    }

    /// Waits until an event from now on contains `needle`.
    async fn wait_for(&self, needle: &str, within: Duration) -> Option<String> {
        let from = self.lines().len();
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if let Some(line) = self.lines()[from..]
                .iter()
                .find(|line| line.contains(needle))
            {
                return Some(line.clone());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        None
    }
}

async fn next_within<T>(receiver: &mut mpsc::UnboundedReceiver<T>, within: Duration) -> Option<T> {
    tokio::time::timeout(within, receiver.recv())
        .await
        .ok()
        .flatten()
}
