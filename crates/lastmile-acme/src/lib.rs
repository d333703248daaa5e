//! Automatic TLS certificates for lastmile over ACME (RFC 8555), validated with http-01.
//!
//! [`AcmeClient`] speaks to one CA directory (Let's Encrypt by default) as one account: it
//! registers the account once and keeps its key and URL in a [`Storage`], orders a
//! certificate, publishes each http-01 key authorization through an [`Http01Responder`],
//! finalizes with a CSR for a fresh ECDSA P-256 key and downloads the chain as PEM. It
//! re-signs on `badNonce`, honours `Retry-After`, bounds every request and every order in time
//! and every response in size, and carries the CA's problem document in its errors.
//! [`CertManager`] keeps the certificate for a set of host names: it returns the stored one
//! while it is not due (so a restart does not ask again) and renews it in a background loop
//! at [`Certificate::renew_at`], retrying failures with exponential backoff.
//!
//! It does not serve anything: the caller answers `/.well-known/acme-challenge/` (the router's
//! challenge store implements [`Http01Responder`]) and installs each new certificate, given as
//! plain PEM, in its TLS listener. It does no dns-01 or tls-alpn-01 (so no wildcards), no
//! external account binding, no revocation, no logging (it reports [`AcmeEvent`]s), and
//! [`DirStorage`] does not encrypt. It depends on no other lastmile crate.
//!
//! ```no_run
//! use std::sync::Arc;
//! use lastmile_acme::{AcmeClient, AcmeConfig, CertManager, DirStorage, Http01Responder};
//!
//! struct Challenges; // the router's challenge store in the server
//! impl Http01Responder for Challenges {
//!     fn publish(&self, token: &str, key_authorization: &str) { /* serve it */ }
//!     fn withdraw(&self, token: &str) { /* stop serving it */ }
//! }
//!
//! # async fn example() -> Result<(), lastmile_acme::AcmeError> {
//! let config = AcmeConfig {
//!     email: Some("ops@example.com".to_string()),
//!     ..AcmeConfig::default()
//! };
//! let storage = Arc::new(DirStorage::new("/var/lib/lastmile/acme").expect("a directory"));
//! let client = Arc::new(AcmeClient::new(config, storage)?);
//! let manager = CertManager::new(client, vec!["app.example.com".to_string()], Arc::new(Challenges))?
//!     .on_event(|event| eprintln!("{event}"));
//! let certificate = manager.certificate().await?; // stored, or issued now
//! println!("serving {} until {:?}", certificate.serial, certificate.not_after);
//! manager
//!     .run(|renewed| println!("install {}", renewed.serial), std::future::pending())
//!     .await;
//! # Ok(())
//! # }
//! ```

#![forbid(unsafe_code)]

mod account_key;
mod certificate;
mod client;
mod config;
mod directory;
mod error;
mod manager;
#[cfg(feature = "pebble")]
pub mod pebble;
mod problem;
mod responder;
mod storage;
mod timestamp;
mod transport;
mod wire;

pub use certificate::Certificate;
pub use client::AcmeClient;
pub use config::{AcmeConfig, LETS_ENCRYPT_PRODUCTION, LETS_ENCRYPT_STAGING};
pub use error::AcmeError;
pub use manager::{AcmeEvent, CertManager, RequestReason, RetryPolicy};
pub use problem::{Problem, Subproblem};
pub use responder::Http01Responder;
pub use storage::{DirStorage, Storage, StorageError};
pub use timestamp::format_rfc3339;
