//! What can be wrong with certificates and keys handed to the router.

use rustls::pki_types::pem;

/// A certificate, key or host name the router cannot serve; each message says what to give instead.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsError {
    /// The certificate chain is not PEM.
    #[error(
        "the certificate chain is not valid PEM ({0}); give the server certificate, then its \
         intermediates, each as a `-----BEGIN CERTIFICATE-----` block"
    )]
    CertificatePem(#[source] pem::Error),
    /// The chain PEM holds no certificate.
    #[error(
        "the certificate chain holds no `-----BEGIN CERTIFICATE-----` block; give the server \
         certificate first, then its intermediates"
    )]
    NoCertificate,
    /// The first certificate is not a readable X.509 certificate.
    #[error(
        "the server certificate cannot be read ({0}); give an X.509 certificate in PEM form, the \
         server's own certificate first"
    )]
    BadCertificate(#[source] rustls::Error),
    /// The key PEM holds no usable private key block.
    #[error(
        "the private key is not valid PEM ({0}); give one `-----BEGIN PRIVATE KEY-----` \
         (PKCS#8), `-----BEGIN RSA PRIVATE KEY-----` or `-----BEGIN EC PRIVATE KEY-----` block"
    )]
    KeyPem(#[source] pem::Error),
    /// The key is of a kind the crypto provider cannot sign with.
    #[error(
        "the private key cannot be used for TLS ({0}); use an ECDSA P-256 or P-384, Ed25519 or \
         RSA (2048 bits or more) key"
    )]
    UnsupportedKey(#[source] rustls::Error),
    /// The key belongs to another certificate.
    #[error(
        "the private key does not belong to the certificate (their public keys differ); give the \
         key the certificate was issued for"
    )]
    KeyMismatch,
    /// A host name that is neither a DNS name nor a `*.` wildcard.
    #[error(
        "`{0}` is not a host name a certificate can be chosen for; give a DNS name such as \
         `example.com` or a wildcard such as `*.example.com`"
    )]
    InvalidHost(String),
    /// `CertStore::set` got no host names.
    #[error(
        "no host names given for the certificate; give at least one (`example.com`, \
         `*.example.com`), or use `CertStore::set_default` for the certificate of clients \
         without a matching name"
    )]
    NoHosts,
    /// rustls refused the listener's configuration.
    #[error(
        "the TLS configuration cannot be built ({0}); this is a bug in lastmile, please report it"
    )]
    Config(#[source] rustls::Error),
}
