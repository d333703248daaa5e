//! What can go wrong with one request, each naming the URL without its
//! user info and query, and never a header.

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use http::StatusCode;

/// Why a request got no usable answer. `target` is the URL as
/// `scheme://host[:port]/path`.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The URL cannot be requested.
    #[error("{url}: {reason}")]
    InvalidUrl {
        /// The URL without user info and query.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The TLS settings cannot be built (an unreadable or bad CA file).
    #[error("TLS settings: {reason}")]
    TlsConfig {
        /// What is wrong, naming the file.
        reason: String,
    },
    /// The host name does not resolve.
    #[error("{target}: cannot resolve {host}: {error}")]
    Dns {
        /// The URL.
        target: String,
        /// The name that did not resolve.
        host: String,
        /// As the resolver words it (in the message, so not a `source`).
        error: io::Error,
    },
    /// No TCP connection (refused, unreachable, …).
    #[error("{target}: cannot connect to {addr}: {error}")]
    Connect {
        /// The URL.
        target: String,
        /// The address tried last.
        addr: SocketAddr,
        /// As the OS words it; its kind tells refused from the rest.
        error: io::Error,
    },
    /// Resolving and connecting took longer than the connect timeout.
    #[error("{target}: no connection within {limit:?}")]
    ConnectTimeout {
        /// The URL.
        target: String,
        /// The connect timeout.
        limit: Duration,
    },
    /// The TLS handshake failed (an untrusted certificate, a wrong name, …).
    #[error("{target}: TLS handshake failed: {reason}")]
    Tls {
        /// The URL.
        target: String,
        /// As rustls words it.
        reason: String,
    },
    /// The whole exchange, body included, took longer than the timeout.
    #[error("{target}: no complete answer within {limit:?}")]
    Timeout {
        /// The URL.
        target: String,
        /// The total timeout.
        limit: Duration,
    },
    /// The peer closed the connection before sending a byte of answer.
    #[error("{target}: the connection was closed without an answer")]
    Closed {
        /// The URL.
        target: String,
    },
    /// The peer reset the connection before sending a byte of answer.
    #[error("{target}: the connection was reset before an answer")]
    Reset {
        /// The URL.
        target: String,
    },
    /// The connection ended after part of an answer.
    #[error("{target}: the connection ended before the answer was complete")]
    Incomplete {
        /// The URL.
        target: String,
    },
    /// What came back is not an HTTP answer.
    #[error("{target}: answered {answer:?}, which is not HTTP")]
    NotHttp {
        /// The URL.
        target: String,
        /// Its first line, cut to 64 characters.
        answer: String,
    },
    /// The body is larger than the client's limit.
    #[error("{target}: the answer's body is larger than {limit} bytes")]
    BodyTooLarge {
        /// The URL.
        target: String,
        /// The client's body limit.
        limit: usize,
    },
    /// The answer's status is not 2xx ([`Response::error_for_status`](crate::Response::error_for_status)).
    #[error("{target} answered {}", status.as_u16())]
    Status {
        /// The URL.
        target: String,
        /// The status.
        status: StatusCode,
    },
    /// Any other failure to send the request or read the answer.
    #[error("{target}: {reason}")]
    Protocol {
        /// The URL.
        target: String,
        /// What failed.
        reason: String,
    },
}

impl Error {
    /// The status of a [`Error::Status`].
    pub fn status(&self) -> Option<StatusCode> {
        match self {
            Error::Status { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// Whether this is one of the two timeouts.
    pub fn is_timeout(&self) -> bool {
        matches!(self, Error::Timeout { .. } | Error::ConnectTimeout { .. })
    }
}

/// `error` and its sources, joined by `: `.
pub(crate) fn chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.ends_with(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}
