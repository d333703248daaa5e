//! TLS termination: per-listener settings and the rustls server configuration built from them.
//!
//! Certificates come from outside (a file, an ACME client) through a [`CertStore`]; the router
//! never obtains them itself. Only TLS 1.2 and 1.3 are offered, with ALPN `h2` then `http/1.1`.

mod cert_store;
mod error;

use std::sync::Arc;
use std::time::Duration;

use http::HeaderValue;
use rustls::ServerConfig;
use rustls::crypto::CryptoProvider;

pub use cert_store::CertStore;
pub use error::TlsError;

/// ALPN protocol names, most preferred first.
pub(crate) const ALPN_H2: &[u8] = b"h2";
const ALPN_HTTP11: &[u8] = b"http/1.1";

/// How a TLS listener terminates TLS.
#[derive(Debug, Clone)]
pub struct TlsSettings {
    /// The certificates served, chosen per handshake by SNI; changes apply to new handshakes.
    pub certificates: CertStore,
    /// `Strict-Transport-Security` added to every response; `None` sends no such header.
    pub hsts: Option<Hsts>,
}

impl TlsSettings {
    /// TLS with these certificates and no HSTS.
    pub fn new(certificates: CertStore) -> TlsSettings {
        TlsSettings {
            certificates,
            hsts: None,
        }
    }
}

/// HTTP Strict Transport Security (RFC 6797): browsers that saw it use HTTPS only, for `max_age`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hsts {
    /// How long browsers remember to use HTTPS only (`max-age`, whole seconds).
    pub max_age: Duration,
    /// The rule covers every subdomain too (`includeSubDomains`).
    pub include_subdomains: bool,
    /// Consent to browser preload lists (`preload`; the lists also want a `max_age` of at least
    /// a year and `include_subdomains`).
    pub preload: bool,
}

impl Hsts {
    /// The header value, e.g. `max-age=31536000; includeSubDomains; preload`.
    pub fn header_value(&self) -> String {
        let mut v = format!("max-age={}", self.max_age.as_secs());
        if self.include_subdomains {
            v.push_str("; includeSubDomains");
        }
        if self.preload {
            v.push_str("; preload");
        }
        v
    }

    pub(crate) fn to_header(self) -> HeaderValue {
        HeaderValue::from_str(&self.header_value()).expect("digits and ASCII words only")
    }
}

/// The one crypto provider of the router (aws-lc-rs), independent of any process default.
pub(crate) fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

/// The rustls configuration of a TLS listener: TLS 1.2 and 1.3 only, certificates by SNI from
/// the store, ALPN `h2` preferred over `http/1.1`.
pub(crate) fn server_config(settings: &TlsSettings) -> Result<Arc<ServerConfig>, TlsError> {
    let mut config = ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(TlsError::Config)?
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(settings.certificates.clone()));
    config.alpn_protocols = vec![ALPN_H2.to_vec(), ALPN_HTTP11.to_vec()];
    Ok(Arc::new(config))
}

#[cfg(test)]
mod tests;
