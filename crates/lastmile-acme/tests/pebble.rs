//! lastmile-acme against the real ACME test server: Debian's `pebble`, with
//! `pebble-challtestsrv` as its DNS so every test host name resolves to 127.0.0.1, and a real
//! HTTP server on pebble's http-01 port answering the published tokens. Each test starts its
//! own pair on free ports; the processes are killed and reaped when the test ends, panics
//! included.

use std::collections::HashMap;
use std::fs;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use lastmile_acme::pebble::{Pebble, PebbleOptions, free_tcp_port, tls_client};
use lastmile_acme::{
    AcmeError, AcmeEvent, CertManager, Certificate, DirStorage, Http01Responder, RetryPolicy,
    Storage, StorageError,
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
    let issued = manager(&pebble, storage.shared(), &challenges)
        .certificate()
        .await
        .expect("first certificate");

    pebble.stop();
    let events = EventLog::default();
    let manager = manager(&pebble, storage.shared(), &challenges).on_event(events.recorder());
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
        manager(&pebble, storage.shared(), &challenges)
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

/// A manager of `pebble` answering challenges with `challenges`.
fn manager(
    pebble: &Pebble,
    storage: Arc<dyn Storage>,
    challenges: &ChallengeServer,
) -> CertManager {
    let responder: Arc<dyn Http01Responder> = challenges.tokens.clone();
    CertManager::new(
        Arc::new(pebble.client(storage)),
        vec![HOST.to_string()],
        responder,
    )
    .expect("a valid host name")
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
