//! A test harness for the real ACME test server, Debian's `pebble` (feature `pebble`): pebble
//! and `pebble-challtestsrv` (its DNS, resolving every name to 127.0.0.1) as child processes on
//! free loopback ports, with a generated certificate for pebble's own HTTPS listener. For this
//! crate's tests and for end-to-end tests of lastmile; not for production use.

use std::fs;
use std::net::{TcpListener as StdTcpListener, UdpSocket};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::net::TcpStream;

use crate::{AcmeClient, AcmeConfig, Storage};

#[derive(Debug, Clone, Copy)]
pub struct PebbleOptions {
    /// pebble's `httpPort`: where it fetches http-01 tokens.
    pub http_port: u16,
    /// `certificateValidityPeriod` in seconds; pebble's default (about five years) if `None`.
    pub validity_seconds: Option<u64>,
    /// `PEBBLE_WFE_NONCEREJECT`; pebble's default (5%) if `None`.
    pub nonce_reject_percent: Option<u8>,
}

impl PebbleOptions {
    /// pebble's defaults, validating http-01 on `http_port`.
    pub fn validating_on(http_port: u16) -> Self {
        Self {
            http_port,
            validity_seconds: None,
            nonce_reject_percent: None,
        }
    }
}

/// pebble and pebble-challtestsrv running on free loopback ports; both are killed and reaped on
/// drop.
#[derive(Debug)]
pub struct Pebble {
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
    /// Starts both, waits until pebble's directory answers, and fetches pebble's root.
    ///
    /// # Panics
    ///
    /// When pebble is not installed (saying how to install it) or does not come up.
    pub async fn start(options: PebbleOptions) -> Pebble {
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
    pub async fn launch(&mut self) {
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

    /// Stops pebble (its test DNS keeps running); `launch` starts it again.
    pub fn stop(&mut self) {
        self.pebble = None;
    }

    /// The ACME directory URL.
    pub fn directory(&self) -> String {
        format!("https://127.0.0.1:{}/dir", self.listen_port)
    }

    /// The root that signs the certificates pebble issues (new at every launch).
    pub fn root(&self) -> CertificateDer<'static> {
        self.root.clone().expect("pebble was started")
    }

    /// The CA of pebble's own HTTPS listener, which an ACME client must trust.
    pub fn listener_ca(&self) -> CertificateDer<'static> {
        self.listener_ca.clone()
    }

    /// [`Pebble::listener_ca`] as PEM, for a file a spec's `route.tls.acme.ca` names.
    pub fn listener_ca_pem(&self) -> String {
        use base64::Engine as _;
        let body = base64::engine::general_purpose::STANDARD.encode(self.listener_ca.as_ref());
        let mut pem = String::from("-----BEGIN CERTIFICATE-----\n");
        for line in body.as_bytes().chunks(64) {
            pem.push_str(&String::from_utf8_lossy(line));
            pem.push('\n');
        }
        pem.push_str("-----END CERTIFICATE-----\n");
        pem
    }

    /// A client of this pebble with short timeouts, trusting its HTTPS listener.
    pub fn client(&self, storage: Arc<dyn Storage>) -> AcmeClient {
        let config = AcmeConfig {
            email: Some("ops@lastmile.test".to_string()),
            extra_roots: vec![self.listener_ca.clone()],
            request_timeout: Duration::from_secs(5),
            order_timeout: Duration::from_secs(30),
            ..AcmeConfig::new(self.directory())
        };
        AcmeClient::new(config, storage).expect("a client")
    }

    /// The last lines of both logs, for assertion messages.
    pub fn logs(&self) -> String {
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
#[derive(Debug)]
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

/// A free loopback TCP port (bound and released).
pub fn free_tcp_port() -> u16 {
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
pub async fn https_get(
    url: &str,
    root: &CertificateDer<'static>,
) -> Result<(u16, Vec<u8>), String> {
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

/// A TLS client that trusts only `root`.
pub fn tls_client(root: &CertificateDer<'static>) -> tokio_rustls::TlsConnector {
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
