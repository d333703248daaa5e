//! lastmile's one outbound HTTP client: webhooks and notifications, the
//! Prometheus queries of a canary, health checks and verification probes of
//! instances, the CLI's calls to `lastmile up` or a server, and the handover
//! between two `lastmile up` processes all go through [`Client`].
//!
//! It speaks HTTP/1.1 over plain TCP (`http://`) or rustls (`https://`),
//! one request per connection, with a connect timeout, a total timeout over
//! the whole exchange (body included) and a limit on the answer's body. TLS
//! trusts Mozilla's roots plus the PEM certificates of `LASTMILE_CA_FILE`
//! ([`default_tls_config`]), or what [`tls_config`] builds. A failure is an
//! [`Error`] that says what failed (resolving, connecting, TLS, a timeout,
//! the status, the body's size) and names the URL without its query or
//! user info, and never a header: secrets stay out of messages.
//!
//! It does not pool connections, speak HTTP/2, follow redirects or reach
//! Unix sockets.
//!
//! ```no_run
//! # async fn example() -> Result<(), lastmile_http::Error> {
//! use std::time::Duration;
//! let client = lastmile_http::Client::new().timeout(Duration::from_secs(5));
//! let answer = client
//!     .post_json("https://hooks.example.test/deploys", r#"{"event":"promoted"}"#)
//!     .await?
//!     .error_for_status()?;
//! println!("{} {}", answer.status, answer.text());
//! # Ok(())
//! # }
//! ```

#![forbid(unsafe_code)]

mod client;
mod error;
mod recorded;
mod target;
mod tls;

pub use client::{
    Client, DEFAULT_BODY_LIMIT, DEFAULT_CONNECT_TIMEOUT, DEFAULT_TIMEOUT, Request, Response,
};
pub use error::Error;
pub use tls::{CA_FILE_ENV, default_tls_config, tls_config, tls_config_with_roots};

/// The `http` crate's types that requests and responses are made of.
pub use http;
