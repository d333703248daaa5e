use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use crate::certificate::Certificate;
use crate::client::{AcmeClient, load, normalize_hosts, short_hash};
use crate::error::AcmeError;
use crate::responder::Http01Responder;
use crate::timestamp::{format_utc, format_wait};

/// Longest single sleep while waiting for a renewal time: the wall clock is looked at again
/// after this, so a suspended machine or a clock step does not make renewal late.
const MAX_SLEEP: Duration = Duration::from_secs(600);

/// How failed attempts are retried by [`CertManager::run`]: `initial`, doubling up to `max`. A
/// `Retry-After` from the CA (e.g. a rate limit) is waited out even when longer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Pause after the first failure.
    pub initial: Duration,
    /// Longest pause between attempts.
    pub max: Duration,
}

impl Default for RetryPolicy {
    /// One minute, doubling to one hour.
    fn default() -> Self {
        Self {
            initial: Duration::from_secs(60),
            max: Duration::from_secs(3600),
        }
    }
}

/// What a [`CertManager`] did, for the caller to log. `Display` gives a one-line message.
#[derive(Debug)]
#[non_exhaustive]
pub enum AcmeEvent {
    /// A stored certificate is still good and is used without asking the CA.
    Reused {
        /// Its host names.
        hosts: Vec<String>,
        /// When it expires.
        not_after: SystemTime,
        /// When it will be renewed.
        renew_at: SystemTime,
    },
    /// The CA is being asked for a certificate.
    Requesting {
        /// The host names asked for.
        hosts: Vec<String>,
        /// Why.
        reason: RequestReason,
    },
    /// A new certificate was issued and saved.
    Issued {
        /// Its host names.
        hosts: Vec<String>,
        /// Its serial, lowercase hex.
        serial: String,
        /// When it expires.
        not_after: SystemTime,
        /// When it will be renewed.
        renew_at: SystemTime,
        /// The serial of the certificate it replaces, when it is a renewal.
        replaces: Option<String>,
    },
    /// An attempt of [`CertManager::run`] failed, or a certificate was issued but could not be
    /// saved.
    Failed {
        /// The host names.
        hosts: Vec<String>,
        /// Why.
        error: AcmeError,
        /// When [`CertManager::run`] tries again; `None` when the caller decides.
        retry_in: Option<Duration>,
    },
}

/// Why a [`CertManager`] asks the CA.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum RequestReason {
    /// No certificate is stored for these host names.
    NoCertificate,
    /// The stored certificate reached its renewal time.
    RenewalDue {
        /// When it expires.
        not_after: SystemTime,
    },
    /// The stored entry could not be read, so a new certificate replaces it.
    StoredUnreadable {
        /// What is wrong with it.
        reason: String,
    },
    /// The previous attempt failed.
    Retry,
}

impl fmt::Display for AcmeEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AcmeEvent::Reused {
                hosts,
                not_after,
                renew_at,
            } => write!(
                f,
                "certificate for {} loaded from storage, expires {}, renewal at {}",
                hosts.join(", "),
                format_utc(*not_after),
                format_utc(*renew_at)
            ),
            AcmeEvent::Requesting { hosts, reason } => {
                let why = match reason {
                    RequestReason::NoCertificate => "none is stored".to_string(),
                    RequestReason::RenewalDue { not_after } => {
                        format!(
                            "renewal is due, the current one expires {}",
                            format_utc(*not_after)
                        )
                    }
                    RequestReason::StoredUnreadable { reason } => {
                        format!("the stored one cannot be read: {reason}")
                    }
                    RequestReason::Retry => "retrying after a failure".to_string(),
                };
                write!(
                    f,
                    "requesting a certificate for {} ({why})",
                    hosts.join(", ")
                )
            }
            AcmeEvent::Issued {
                hosts,
                serial,
                not_after,
                renew_at,
                replaces,
            } => write!(
                f,
                "certificate for {} {} (serial {serial}), expires {}, renewal at {}",
                hosts.join(", "),
                if replaces.is_some() {
                    "renewed"
                } else {
                    "issued"
                },
                format_utc(*not_after),
                format_utc(*renew_at)
            ),
            AcmeEvent::Failed {
                hosts,
                error,
                retry_in,
            } => {
                write!(f, "certificate for {} failed: {error}", hosts.join(", "))?;
                if let Some(retry_in) = retry_in {
                    write!(f, "; retrying in {}", format_wait(*retry_in))?;
                }
                Ok(())
            }
        }
    }
}

type EventCallback = Arc<dyn Fn(&AcmeEvent) + Send + Sync>;

/// Keeps one certificate for a set of host names: reuses the stored one while it is not due,
/// otherwise asks the CA; [`CertManager::run`] renews it in the background.
pub struct CertManager {
    client: Arc<AcmeClient>,
    hosts: Vec<String>,
    responder: Arc<dyn Http01Responder>,
    retry: RetryPolicy,
    on_event: EventCallback,
}

impl CertManager {
    /// A manager for `hosts`, asking `client`'s CA and answering challenges through
    /// `responder`. Certificates are kept in the client's storage. Fails if a host name cannot
    /// be validated over http-01 (wildcards, IP addresses, malformed names).
    pub fn new(
        client: Arc<AcmeClient>,
        hosts: Vec<String>,
        responder: Arc<dyn Http01Responder>,
    ) -> Result<Self, AcmeError> {
        Ok(Self {
            client,
            hosts: normalize_hosts(&hosts)?,
            responder,
            retry: RetryPolicy::default(),
            on_event: Arc::new(|_| {}),
        })
    }

    /// Retries failed attempts in [`CertManager::run`] with `retry` instead of the default.
    pub fn with_retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    /// Calls `on_event` for every attempt, success and failure.
    pub fn on_event(mut self, on_event: impl Fn(&AcmeEvent) + Send + Sync + 'static) -> Self {
        self.on_event = Arc::new(on_event);
        self
    }

    /// The host names this manager keeps a certificate for, lowercased and without duplicates.
    pub fn hosts(&self) -> &[String] {
        &self.hosts
    }

    /// The certificate to serve now: the stored one when present and not due (the CA is not
    /// contacted, so a restart does not ask again), else a new one, saved before it is returned.
    /// A failure is returned (not also reported as [`AcmeEvent::Failed`]).
    pub async fn certificate(&self) -> Result<Certificate, AcmeError> {
        let stored = self.stored()?;
        if let Stored::Current(certificate) = &stored {
            if !certificate.is_due(SystemTime::now()) {
                self.emit(AcmeEvent::Reused {
                    hosts: certificate.hosts.clone(),
                    not_after: certificate.not_after,
                    renew_at: certificate.renew_at(),
                });
                return Ok(certificate.clone());
            }
        }
        let (reason, previous) = stored.into_reason();
        self.obtain(reason, previous.as_ref()).await
    }

    /// The stored certificate for these host names, due for renewal or not, without contacting
    /// the CA: what a restarted process serves at once while [`CertManager::run`] renews it.
    /// `None` when none is stored or the stored one is unusable (`run` then obtains a new one);
    /// an error when the storage itself cannot be read.
    pub fn stored_certificate(&self) -> Result<Option<Certificate>, AcmeError> {
        Ok(match self.stored()? {
            Stored::Current(certificate) => Some(certificate),
            Stored::Missing | Stored::Unreadable(_) => None,
        })
    }

    /// Renews in the background until `shutdown` completes: sleeps until the current
    /// certificate's [`Certificate::renew_at`] (at once if there is none or it is due), asks
    /// the CA, saves the new certificate and hands it to `on_certificate`, which installs it;
    /// until then the caller keeps serving the old one. Failures are retried per the
    /// [`RetryPolicy`]. Runs on the caller's runtime and leaves no task behind when it returns.
    pub async fn run(
        &self,
        on_certificate: impl Fn(&Certificate),
        shutdown: impl Future<Output = ()>,
    ) {
        tokio::select! {
            () = shutdown => {}
            () = self.renew_forever(&on_certificate) => {}
        }
    }

    async fn renew_forever(&self, on_certificate: &impl Fn(&Certificate)) {
        let mut backoff = self.retry.initial;
        let mut current: Option<Certificate> = None;
        let mut reason = None;
        loop {
            match self.stored() {
                Ok(Stored::Current(certificate)) => current = Some(certificate),
                Ok(other) => reason = Some(other.into_reason().0),
                Err(error) => {
                    backoff = self.failed(error, backoff).await;
                    continue;
                }
            }
            break;
        }
        loop {
            let why = match (reason.take(), &current) {
                (Some(reason), _) => reason,
                (None, Some(certificate)) => {
                    sleep_until(certificate.renew_at()).await;
                    RequestReason::RenewalDue {
                        not_after: certificate.not_after,
                    }
                }
                (None, None) => RequestReason::NoCertificate,
            };
            match self.obtain(why, current.as_ref()).await {
                Ok(certificate) => {
                    on_certificate(&certificate);
                    current = Some(certificate);
                    backoff = self.retry.initial;
                }
                Err(error) => {
                    backoff = self.failed(error, backoff).await;
                    reason = Some(RequestReason::Retry);
                }
            }
        }
    }

    /// Reports a failed attempt, waits `backoff` (or longer if the CA asked) and returns the
    /// next backoff.
    async fn failed(&self, error: AcmeError, backoff: Duration) -> Duration {
        let retry_in = error
            .retry_after()
            .map_or(backoff, |asked| asked.max(backoff));
        self.emit(AcmeEvent::Failed {
            hosts: self.hosts.clone(),
            error,
            retry_in: Some(retry_in),
        });
        tokio::time::sleep(retry_in).await;
        backoff.saturating_mul(2).min(self.retry.max)
    }

    /// Asks the CA and saves the result. A certificate that could not be saved is still
    /// returned (it is valid and the CA's rate limits make asking again costly); the failure
    /// is reported as an event.
    async fn obtain(
        &self,
        reason: RequestReason,
        previous: Option<&Certificate>,
    ) -> Result<Certificate, AcmeError> {
        self.emit(AcmeEvent::Requesting {
            hosts: self.hosts.clone(),
            reason,
        });
        let certificate = self.client.issue(&self.hosts, &*self.responder).await?;
        let name = self.storage_name();
        if let Err(source) = self.client.storage().save(&name, &certificate.to_json()) {
            self.emit(AcmeEvent::Failed {
                hosts: self.hosts.clone(),
                error: AcmeError::Storage {
                    operation: "save",
                    name,
                    source,
                },
                retry_in: None,
            });
        }
        self.emit(AcmeEvent::Issued {
            hosts: certificate.hosts.clone(),
            serial: certificate.serial.clone(),
            not_after: certificate.not_after,
            renew_at: certificate.renew_at(),
            replaces: previous.map(|previous| previous.serial.clone()),
        });
        Ok(certificate)
    }

    /// What the storage holds for these hosts; `Err` only when the storage itself fails (then
    /// nothing is issued, so a broken storage does not spend the CA's rate limits).
    fn stored(&self) -> Result<Stored, AcmeError> {
        let name = self.storage_name();
        Ok(match load(&**self.client.storage(), &name)? {
            None => Stored::Missing,
            Some(bytes) => match Certificate::from_json(&bytes) {
                Ok(certificate) if same_hosts(&certificate.hosts, &self.hosts) => {
                    Stored::Current(certificate)
                }
                Ok(_) => Stored::Unreadable("it is for other host names".to_string()),
                Err(reason) => Stored::Unreadable(reason),
            },
        })
    }

    /// `acme-certificate-<first host>-<hash of all>.json`: readable, bounded in length, and
    /// the same whatever the order of the host names.
    fn storage_name(&self) -> String {
        let mut sorted = self.hosts.clone();
        sorted.sort();
        let first: String = self.hosts[0].chars().take(64).collect();
        format!(
            "acme-certificate-{first}-{}.json",
            short_hash(sorted.join(",").as_bytes())
        )
    }

    fn emit(&self, event: AcmeEvent) {
        (self.on_event)(&event);
    }
}

impl fmt::Debug for CertManager {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CertManager")
            .field("hosts", &self.hosts)
            .field("retry", &self.retry)
            .field("client", &self.client)
            .finish_non_exhaustive()
    }
}

enum Stored {
    Current(Certificate),
    Missing,
    Unreadable(String),
}

impl Stored {
    fn into_reason(self) -> (RequestReason, Option<Certificate>) {
        match self {
            Stored::Current(certificate) => (
                RequestReason::RenewalDue {
                    not_after: certificate.not_after,
                },
                Some(certificate),
            ),
            Stored::Missing => (RequestReason::NoCertificate, None),
            Stored::Unreadable(reason) => (RequestReason::StoredUnreadable { reason }, None),
        }
    }
}

fn same_hosts(stored: &[String], wanted: &[String]) -> bool {
    let mut stored = stored.to_vec();
    let mut wanted = wanted.to_vec();
    stored.sort();
    wanted.sort();
    stored == wanted
}

async fn sleep_until(at: SystemTime) {
    while let Ok(remaining) = at.duration_since(SystemTime::now()) {
        if remaining.is_zero() {
            return;
        }
        tokio::time::sleep(remaining.min(MAX_SLEEP)).await;
    }
}

#[cfg(test)]
mod tests;
