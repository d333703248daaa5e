//! HTTPS and `wss://`: what to trust and what name to ask for ([`TlsTarget`]), and the
//! connector that wraps each new TCP connection in a full TLS handshake.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;

use rustls::client::Resumption;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, RootCertStore};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

use crate::connector::{self, ConnectFailure, Connector};
use crate::http::describe_io;
use crate::report::FailureKind;

/// Speak TLS to the target: how to verify it and what name to ask for.
///
/// Only HTTP/1.1 is spoken over it (this client has no HTTP/2), so `alpn` should not offer
/// `h2`: a server that picks it would fail every request.
#[derive(Debug, Clone)]
pub struct TlsTarget {
    /// Name sent as SNI and checked against the server's certificate; also the `Host` header
    /// (with the target's port) unless [`LoadConfig::host`](crate::LoadConfig::host) is set.
    pub server_name: String,
    /// The only trusted root certificates, e.g. a test CA's or pebble's root; the system's
    /// roots are never consulted.
    pub roots: Vec<CertificateDer<'static>>,
    /// ALPN protocols offered, most preferred first; `http/1.1` by default, empty for none.
    pub alpn: Vec<Vec<u8>>,
}

impl TlsTarget {
    /// Trusts `roots` only, asks for `server_name`, and offers ALPN `http/1.1`.
    pub fn new(server_name: impl Into<String>, roots: Vec<CertificateDer<'static>>) -> TlsTarget {
        TlsTarget {
            server_name: server_name.into(),
            roots,
            alpn: vec![b"http/1.1".to_vec()],
        }
    }
}

/// Wraps each new TCP connection in TLS.
#[derive(Debug)]
pub(crate) struct TlsConnector {
    config: Arc<ClientConfig>,
    server_name: ServerName<'static>,
}

impl TlsConnector {
    /// The connector for `target`, or why its settings cannot work.
    ///
    /// Session resumption is off: every new connection makes a full handshake and verifies
    /// the certificate, so a renewal or a certificate swap on the server is really exercised.
    pub(crate) fn new(target: &TlsTarget) -> Result<TlsConnector, String> {
        let server_name = ServerName::try_from(target.server_name.clone()).map_err(|_| {
            format!(
                "TlsTarget::server_name {:?} is neither a DNS name nor an IP address; set it to \
                 a name the server's certificate is for",
                target.server_name
            )
        })?;
        if target.roots.is_empty() {
            return Err(
                "TlsTarget::roots is empty, so no server certificate can be trusted; \
                        add the root certificate of the CA that signed the server's"
                    .to_string(),
            );
        }
        let mut roots = RootCertStore::empty();
        for (index, root) in target.roots.iter().enumerate() {
            roots.add(root.clone()).map_err(|error| {
                format!("TlsTarget::roots[{index}] is not a usable root certificate: {error}")
            })?;
        }
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let mut config = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|error| format!("the TLS provider cannot be used: {error}"))?
            .with_root_certificates(roots)
            .with_no_client_auth();
        config.alpn_protocols = target.alpn.clone();
        config.resumption = Resumption::disabled();
        Ok(TlsConnector {
            config: Arc::new(config),
            server_name,
        })
    }
}

impl Connector for TlsConnector {
    type Stream = TlsStream<TcpStream>;

    async fn connect(&self, target: SocketAddr) -> Result<TlsStream<TcpStream>, ConnectFailure> {
        let stream = connector::tcp(target).await?;
        tokio_rustls::TlsConnector::from(Arc::clone(&self.config))
            .connect(self.server_name.clone(), stream)
            .await
            .map_err(|error| ConnectFailure {
                reason: describe_handshake(&self.server_name, &error),
                kind: FailureKind::Tls,
            })
    }
}

/// Stands in for a [`TlsConnector`] whose [`TlsTarget`] cannot work: every connection fails
/// with the reason, so the report says what to fix instead of the load refusing to start.
#[derive(Debug)]
pub(crate) struct UnusableTls {
    pub(crate) reason: String,
}

impl Connector for UnusableTls {
    type Stream = TcpStream;

    fn connect(
        &self,
        _target: SocketAddr,
    ) -> impl Future<Output = Result<TcpStream, ConnectFailure>> + Send {
        std::future::ready(Err(ConnectFailure {
            reason: format!("TLS configuration: {}", self.reason),
            kind: FailureKind::Tls,
        }))
    }
}

/// Names the handshake and, when rustls says why it failed, that reason.
fn describe_handshake(server_name: &ServerName<'_>, error: &io::Error) -> String {
    let server_name = server_name.to_str();
    let rustls_error = error
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>());
    match rustls_error {
        Some(rustls::Error::InvalidCertificate(certificate)) => {
            let hint = match certificate {
                rustls::CertificateError::UnknownIssuer => {
                    " (it is not signed by any of TlsTarget::roots)"
                }
                _ => "",
            };
            format!(
                "TLS handshake with {server_name} failed: server certificate rejected: \
                 {certificate}{hint}"
            )
        }
        Some(other) => format!("TLS handshake with {server_name} failed: {other}"),
        None => format!(
            "TLS handshake with {server_name} failed: {}",
            describe_io(error)
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unusable_settings_say_what_to_fix() {
        let error = TlsConnector::new(&TlsTarget::new("not a name!", Vec::new()))
            .expect_err("an invalid server name");
        assert!(
            error.contains("neither a DNS name nor an IP address"),
            "{error}"
        );
        let error =
            TlsConnector::new(&TlsTarget::new("localhost", Vec::new())).expect_err("no roots");
        assert!(error.contains("TlsTarget::roots is empty"), "{error}");
        let error = TlsConnector::new(&TlsTarget::new(
            "localhost",
            vec![CertificateDer::from(b"not DER".to_vec())],
        ))
        .expect_err("a root that is not a certificate");
        assert!(error.contains("TlsTarget::roots[0]"), "{error}");
    }

    #[test]
    fn certificate_rejections_name_the_cause() {
        let name = ServerName::try_from("localhost").expect("a DNS name");
        let unknown = io::Error::other(rustls::Error::InvalidCertificate(
            rustls::CertificateError::UnknownIssuer,
        ));
        assert_eq!(
            describe_handshake(&name, &unknown),
            "TLS handshake with localhost failed: server certificate rejected: UnknownIssuer \
             (it is not signed by any of TlsTarget::roots)"
        );
        let eof = io::Error::new(io::ErrorKind::UnexpectedEof, "tls handshake eof");
        assert_eq!(
            describe_handshake(&name, &eof),
            "TLS handshake with localhost failed: connection closed early"
        );
    }
}
