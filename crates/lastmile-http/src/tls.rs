//! The one TLS client configuration: Mozilla's roots plus extra CAs.

use std::sync::{Arc, OnceLock};

use rustls::ClientConfig;
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;

use crate::Error;

/// The environment variable naming a PEM file of extra trusted roots, for
/// servers behind a private CA.
pub const CA_FILE_ENV: &str = "LASTMILE_CA_FILE";

/// Mozilla's roots plus those of `LASTMILE_CA_FILE`, built once per process.
/// What a [`Client`](crate::Client) uses unless given other settings.
pub fn default_tls_config() -> Result<Arc<ClientConfig>, Error> {
    static CONFIG: OnceLock<Result<Arc<ClientConfig>, String>> = OnceLock::new();
    CONFIG
        .get_or_init(|| {
            let extra = match std::env::var_os(CA_FILE_ENV) {
                Some(path) => std::fs::read(&path).map_err(|error| {
                    format!(
                        "cannot read {CA_FILE_ENV}={}: {error}",
                        path.to_string_lossy()
                    )
                })?,
                None => Vec::new(),
            };
            tls_config(&extra).map_err(|error| match error {
                Error::TlsConfig { reason } => format!("{CA_FILE_ENV}: {reason}"),
                error => error.to_string(),
            })
        })
        .clone()
        .map_err(|reason| Error::TlsConfig { reason })
}

/// Settings trusting Mozilla's roots and the PEM certificates in
/// `extra_ca_pem` (empty for none).
pub fn tls_config(extra_ca_pem: &[u8]) -> Result<Arc<ClientConfig>, Error> {
    let extra = CertificateDer::pem_slice_iter(extra_ca_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|error| Error::TlsConfig {
            reason: format!("a certificate does not read as PEM: {error}"),
        })?;
    tls_config_with_roots(&extra)
}

/// Settings trusting Mozilla's roots and `extra_roots`; offers ALPN
/// `http/1.1`, the only protocol the client speaks.
pub fn tls_config_with_roots(
    extra_roots: &[CertificateDer<'static>],
) -> Result<Arc<ClientConfig>, Error> {
    let mut roots = rustls::RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    for (index, root) in extra_roots.iter().enumerate() {
        roots.add(root.clone()).map_err(|error| Error::TlsConfig {
            reason: format!("extra root #{index} is not a usable CA certificate: {error}"),
        })?;
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|error| Error::TlsConfig {
            reason: error.to_string(),
        })?
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}
