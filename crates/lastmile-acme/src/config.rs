use std::time::Duration;

use rustls::pki_types::CertificateDer;

/// Let's Encrypt's production directory: real, publicly trusted certificates, strict rate limits.
pub const LETS_ENCRYPT_PRODUCTION: &str = "https://acme-v02.api.letsencrypt.org/directory";

/// Let's Encrypt's staging directory: untrusted certificates, generous rate limits; for trying
/// a set-up out before switching to [`LETS_ENCRYPT_PRODUCTION`].
pub const LETS_ENCRYPT_STAGING: &str = "https://acme-staging-v02.api.letsencrypt.org/directory";

/// Where and as whom certificates are asked for.
///
/// Registering an account agrees to the CA's terms of service (the directory's
/// `meta.termsOfService`), as every ACME client does on its user's behalf.
#[derive(Debug, Clone)]
pub struct AcmeConfig {
    /// The ACME directory URL (must be `https://`); defaults to [`LETS_ENCRYPT_PRODUCTION`].
    pub directory: String,
    /// Contact address given to the CA for expiry and incident mail; `None` registers without one.
    pub email: Option<String>,
    /// Roots trusted for the ACME server's own HTTPS in addition to Mozilla's (webpki-roots):
    /// a private CA, or pebble's listener in tests.
    pub extra_roots: Vec<CertificateDer<'static>>,
    /// Bound on each HTTP request to the ACME server, from connect to the last body byte.
    pub request_timeout: Duration,
    /// Bound on one whole issuance, from the new order to the downloaded chain, polling included.
    pub order_timeout: Duration,
}

impl AcmeConfig {
    /// A configuration for `directory` with no contact, no extra roots and default timeouts.
    pub fn new(directory: impl Into<String>) -> Self {
        Self {
            directory: directory.into(),
            ..Self::default()
        }
    }
}

impl Default for AcmeConfig {
    fn default() -> Self {
        Self {
            directory: LETS_ENCRYPT_PRODUCTION.to_string(),
            email: None,
            extra_roots: Vec::new(),
            request_timeout: Duration::from_secs(30),
            order_timeout: Duration::from_secs(180),
        }
    }
}
