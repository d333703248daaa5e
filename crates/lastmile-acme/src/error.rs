use std::time::Duration;

use crate::problem::Problem;
use crate::storage::StorageError;
use crate::timestamp::format_wait;

/// Why getting a certificate failed. Every variant names the thing that failed and, where there
/// is one, what to do about it; server refusals carry the ACME problem document.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AcmeError {
    /// The configuration cannot work (bad directory URL, contact address, extra root).
    #[error("invalid ACME configuration: {0}")]
    Config(String),

    /// A requested host name cannot be put in a certificate validated over http-01.
    #[error("`{host}` cannot be put in a certificate: {reason}")]
    InvalidHost {
        /// The host name as given.
        host: String,
        /// What is wrong with it.
        reason: &'static str,
    },

    /// The ACME server could not be reached, or the exchange broke or timed out.
    #[error(
        "could not talk to the ACME server at {url}: {reason}; check the directory URL and that \
         this machine can reach it over HTTPS"
    )]
    Transport {
        /// The request's URL.
        url: String,
        /// What went wrong, with its causes.
        reason: String,
    },

    /// The ACME server answered something this client cannot use.
    #[error("the ACME server's answer from {url} cannot be used: {reason}")]
    Protocol {
        /// The request's URL.
        url: String,
        /// What was wrong with the answer.
        reason: String,
    },

    /// The ACME server refused a request and said why.
    #[error("the ACME server refused to {action}: {problem}{}", wait_hint(*retry_after))]
    Refused {
        /// What was asked, e.g. `create an order for hello.example`.
        action: String,
        /// The HTTP status of the refusal.
        status: u16,
        /// The server's problem document.
        problem: Problem,
        /// How long the server asked to wait before trying again (`Retry-After`), if it said.
        retry_after: Option<Duration>,
    },

    /// The ACME server tried to fetch the http-01 token for a host and failed.
    #[error(
        "the ACME server could not validate {host} over http-01: {problem}; make port 80 of \
         {host} reach lastmile's HTTP listener, which answers /.well-known/acme-challenge/"
    )]
    Validation {
        /// The host whose authorization failed.
        host: String,
        /// The server's problem document for the failed challenge.
        problem: Problem,
    },

    /// The ACME server offers no http-01 challenge for a host (e.g. a wildcard name).
    #[error(
        "the ACME server offers no http-01 challenge for {host} (it offers: {offered}); lastmile \
         only validates over http-01, so ask for names without wildcards"
    )]
    NoHttp01Challenge {
        /// The host of the authorization.
        host: String,
        /// The challenge types the server offered, comma-separated.
        offered: String,
    },

    /// The order itself went invalid (e.g. the CA refused to sign the request).
    #[error("the ACME server gave up on the order for {hosts}: {problem}")]
    OrderFailed {
        /// The order's host names, comma-separated.
        hosts: String,
        /// The order's problem document.
        problem: Problem,
    },

    /// A bounded wait ran out.
    #[error(
        "{what} did not finish within {}; the ACME server may be busy, try again later",
        format_wait(*after)
    )]
    Timeout {
        /// What was waited for.
        what: String,
        /// How long was waited.
        after: Duration,
    },

    /// The certificate storage failed.
    #[error("could not {operation} `{name}` in the certificate storage: {source}")]
    Storage {
        /// `load` or `save`.
        operation: &'static str,
        /// The storage entry.
        name: String,
        /// The storage's own error.
        #[source]
        source: StorageError,
    },

    /// A stored entry could not be read back (corrupt, or written by another program).
    #[error("the stored `{name}` cannot be read: {reason}; delete it to start afresh")]
    StoredUnreadable {
        /// The storage entry.
        name: String,
        /// What is wrong with it.
        reason: String,
    },

    /// The issued certificate does not fit what was asked (wrong key, missing names, bad PEM).
    #[error("the certificate from the ACME server cannot be used: {0}")]
    BadCertificate(String),

    /// Making a key or a signature failed (should not happen with a working crypto library).
    #[error("could not {0}")]
    Crypto(String),
}

impl AcmeError {
    /// The server's problem document, when the server refused something.
    pub fn problem(&self) -> Option<&Problem> {
        match self {
            AcmeError::Refused { problem, .. }
            | AcmeError::Validation { problem, .. }
            | AcmeError::OrderFailed { problem, .. } => Some(problem),
            _ => None,
        }
    }

    /// How long the server asked to wait before trying again, when it said.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            AcmeError::Refused { retry_after, .. } => *retry_after,
            _ => None,
        }
    }

    pub(crate) fn is_problem(&self, short: &str) -> bool {
        self.problem().is_some_and(|problem| problem.is(short))
    }

    pub(crate) fn protocol(url: &str, reason: impl Into<String>) -> AcmeError {
        AcmeError::Protocol {
            url: url.to_string(),
            reason: reason.into(),
        }
    }
}

fn wait_hint(retry_after: Option<Duration>) -> String {
    retry_after.map_or_else(String::new, |wait| {
        format!(
            "; it asks to wait {} before trying again",
            format_wait(wait)
        )
    })
}

/// An error and its causes on one line, for messages that cross the crate boundary as text.
pub(crate) fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}
