use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::account_key::{AccountKey, Signer};
use crate::certificate::Certificate;
use crate::config::AcmeConfig;
use crate::directory::Directory;
use crate::error::AcmeError;
use crate::problem::Problem;
use crate::responder::{Http01Responder, PublishedTokens};
use crate::storage::Storage;
use crate::transport::{Response, Transport, checked_https_url};
use crate::wire::{Authorization, Order, Status, is_valid_token};

/// How often one request is re-signed after `badNonce` before giving up (RFC 8555 §6.5: the
/// error carries a fresh nonce, so each retry is one round trip).
const MAX_BAD_NONCE_RETRIES: usize = 10;
/// Unused nonces kept for the next requests.
const MAX_SPARE_NONCES: usize = 8;
/// Most names in one certificate (Let's Encrypt's limit).
const MAX_HOSTS: usize = 100;
/// First and longest pause between polls of an authorization or order.
const FIRST_POLL_DELAY: Duration = Duration::from_millis(250);
const MAX_POLL_DELAY: Duration = Duration::from_secs(5);
/// Longest `Retry-After` honoured while polling; the order deadline bounds it anyway.
const MAX_POLL_RETRY_AFTER: Duration = Duration::from_secs(60);

/// An ACME (RFC 8555) client for one CA directory and one account, validating over http-01.
///
/// The account is registered on first use and kept in the [`Storage`] (key and URL), so every
/// later run, and every client made over the same storage, reuses it. Creating a client does
/// not contact the CA.
pub struct AcmeClient {
    config: AcmeConfig,
    storage: Arc<dyn Storage>,
    transport: Transport,
    directory: tokio::sync::OnceCell<Directory>,
    account: tokio::sync::Mutex<Option<Arc<Account>>>,
    nonces: Mutex<Vec<String>>,
}

struct Account {
    key: AccountKey,
    url: String,
}

/// An http-01 challenge whose token is published and which the CA has yet to validate.
struct PendingChallenge {
    host: String,
    authorization_url: String,
    challenge_url: String,
}

/// What is stored for the account: the key always, the URL once the CA gave one.
#[derive(Serialize, Deserialize)]
struct AccountRecord {
    directory: String,
    /// PKCS#8 DER, base64.
    key: String,
    url: Option<String>,
}

impl AcmeClient {
    /// A client for `config.directory` keeping its account in `storage`.
    pub fn new(config: AcmeConfig, storage: Arc<dyn Storage>) -> Result<Self, AcmeError> {
        checked_https_url(&config.directory).map_err(|reason| {
            AcmeError::Config(format!(
                "directory: {reason}; ACME servers are reached over https"
            ))
        })?;
        if let Some(email) = &config.email {
            let valid = email.contains('@')
                && !email.starts_with('@')
                && !email.ends_with('@')
                && !email
                    .chars()
                    .any(|c| c.is_whitespace() || c.is_control() || c == ',');
            if !valid {
                return Err(AcmeError::Config(format!(
                    "email `{email}` is not a mail address like ops@example.com"
                )));
            }
        }
        let transport = Transport::new(&config.extra_roots, config.request_timeout)?;
        Ok(Self {
            config,
            storage,
            transport,
            directory: tokio::sync::OnceCell::new(),
            account: tokio::sync::Mutex::new(None),
            nonces: Mutex::new(Vec::new()),
        })
    }

    /// The configuration this client was made with.
    pub fn config(&self) -> &AcmeConfig {
        &self.config
    }

    /// The storage holding the account (and, through [`CertManager`](crate::CertManager), the
    /// certificates).
    pub fn storage(&self) -> &Arc<dyn Storage> {
        &self.storage
    }

    /// The account's URL at the CA, registering the account first if there is none yet.
    pub async fn account_url(&self) -> Result<String, AcmeError> {
        Ok(self.account().await?.url.clone())
    }

    /// Gets a certificate for `hosts` from the CA: a new order, an http-01 challenge per
    /// authorization published through `responder`, a CSR for a fresh ECDSA P-256 key, and the
    /// chain. Every published token is withdrawn whatever the outcome, cancellation included.
    /// Does not look at or write stored certificates; [`CertManager`](crate::CertManager) does.
    pub async fn issue(
        &self,
        hosts: &[String],
        responder: &dyn Http01Responder,
    ) -> Result<Certificate, AcmeError> {
        let hosts = normalize_hosts(hosts)?;
        let mut published = PublishedTokens::new(responder);
        let timeout = self.config.order_timeout;
        match tokio::time::timeout(timeout, self.issue_within(&hosts, &mut published)).await {
            Ok(result) => result,
            Err(_) => Err(AcmeError::Timeout {
                what: format!("the order for {}", hosts.join(", ")),
                after: timeout,
            }),
        }
    }

    /// The phases of one order (RFC 8555 §7.4), each its own method.
    async fn issue_within(
        &self,
        hosts: &[String],
        published: &mut PublishedTokens<'_>,
    ) -> Result<Certificate, AcmeError> {
        let (order_url, order) = self.new_order(hosts).await?;
        let challenges = self
            .publish_challenges(hosts, &order_url, &order, published)
            .await?;
        self.validate(&challenges).await?;
        self.finalize(hosts, &order_url).await
    }

    async fn new_order(&self, hosts: &[String]) -> Result<(String, Order), AcmeError> {
        let directory = self.directory().await?;
        let identifiers: Vec<_> = hosts
            .iter()
            .map(|host| json!({ "type": "dns", "value": host }))
            .collect();
        let payload = json!({ "identifiers": identifiers }).to_string();
        let created = self
            .post(
                &directory.new_order,
                Some(payload.as_bytes()),
                None,
                &format!("create an order for {}", hosts.join(", ")),
            )
            .await?;
        let order_url = created.location()?;
        let order: Order = created.json()?;
        if order.authorizations.is_empty() || order.authorizations.len() > MAX_HOSTS {
            return Err(AcmeError::protocol(
                &order_url,
                format!(
                    "the order lists {} authorizations",
                    order.authorizations.len()
                ),
            ));
        }
        Ok((order_url, order))
    }

    /// Reads each authorization and publishes the key authorization of its http-01 challenge;
    /// returns the challenges still to be validated (a CA may reuse a recent validation).
    async fn publish_challenges(
        &self,
        hosts: &[String],
        order_url: &str,
        order: &Order,
        published: &mut PublishedTokens<'_>,
    ) -> Result<Vec<PendingChallenge>, AcmeError> {
        let thumbprint = self.account().await?.key.thumbprint().to_string();
        let mut pending = Vec::new();
        for authorization_url in &order.authorizations {
            let authorization_url = checked_https_url(authorization_url)
                .map_err(|reason| AcmeError::protocol(order_url, reason))?;
            let authorization: Authorization = self
                .post_as_get(&authorization_url, "read an authorization")
                .await?
                .json()?;
            let host = authorization.identifier.value.to_ascii_lowercase();
            if !hosts.contains(&host) {
                let shown: String = host.chars().take(64).collect();
                return Err(AcmeError::protocol(
                    &authorization_url,
                    format!("an authorization for `{shown}`, which was not asked for"),
                ));
            }
            match authorization.status {
                Status::Valid => continue,
                Status::Pending => {}
                other => {
                    return Err(AcmeError::protocol(
                        &authorization_url,
                        format!("the authorization for {host} is {}", other.as_str()),
                    ));
                }
            }
            let challenge = authorization
                .challenges
                .iter()
                .find(|challenge| challenge.kind == "http-01")
                .ok_or_else(|| AcmeError::NoHttp01Challenge {
                    host: host.clone(),
                    offered: authorization
                        .challenges
                        .iter()
                        .map(|challenge| challenge.kind.as_str())
                        .collect::<Vec<_>>()
                        .join(", "),
                })?;
            if !is_valid_token(&challenge.token) {
                return Err(AcmeError::protocol(
                    &authorization_url,
                    "the http-01 token is not 16 to 256 base64url characters",
                ));
            }
            let challenge_url = checked_https_url(&challenge.url)
                .map_err(|reason| AcmeError::protocol(&authorization_url, reason))?;
            published.publish(
                &challenge.token,
                &format!("{}.{thumbprint}", challenge.token),
            );
            pending.push(PendingChallenge {
                host,
                authorization_url,
                challenge_url,
            });
        }
        Ok(pending)
    }

    /// Tells the CA to fetch every token, then waits for each authorization's verdict.
    async fn validate(&self, challenges: &[PendingChallenge]) -> Result<(), AcmeError> {
        // Every token is served before the CA is told to look at any of them.
        for challenge in challenges {
            self.post(
                &challenge.challenge_url,
                Some(b"{}"),
                None,
                &format!("start the http-01 challenge for {}", challenge.host),
            )
            .await?;
        }
        for challenge in challenges {
            let authorization: Authorization = self
                .poll(
                    &challenge.authorization_url,
                    &format!("check the authorization for {}", challenge.host),
                    |a: &Authorization| !matches!(a.status, Status::Pending | Status::Processing),
                )
                .await?;
            if authorization.status != Status::Valid {
                let problem = authorization
                    .challenges
                    .iter()
                    .filter(|challenge| challenge.kind == "http-01")
                    .find_map(|challenge| challenge.error.as_ref().and_then(Problem::from_value))
                    .unwrap_or_else(|| {
                        Problem::unexplained(format!(
                            "the authorization became {} without saying why",
                            authorization.status.as_str()
                        ))
                    });
                return Err(AcmeError::Validation {
                    host: challenge.host.clone(),
                    problem,
                });
            }
        }
        Ok(())
    }

    /// Waits for the order to be ready, sends the CSR for a fresh key, waits for the
    /// certificate and downloads the chain.
    async fn finalize(&self, hosts: &[String], order_url: &str) -> Result<Certificate, AcmeError> {
        let names = hosts.join(", ");
        let order_failed = |order: &Order| AcmeError::OrderFailed {
            hosts: names.clone(),
            problem: order
                .error
                .as_ref()
                .and_then(Problem::from_value)
                .unwrap_or_else(|| {
                    Problem::unexplained(format!(
                        "the order became {} without saying why",
                        order.status.as_str()
                    ))
                }),
        };
        let order: Order = self
            .poll(order_url, "check the order", |order: &Order| {
                order.status != Status::Pending
            })
            .await?;
        match order.status {
            Status::Ready => {}
            Status::Valid => {
                return Err(AcmeError::protocol(
                    order_url,
                    "the order was valid before this client finalized it",
                ));
            }
            _ => return Err(order_failed(&order)),
        }
        let finalize_url = checked_https_url(&order.finalize)
            .map_err(|reason| AcmeError::protocol(order_url, reason))?;
        let (key_pem, public_key, csr) = certificate_request(hosts)?;
        let payload = json!({ "csr": URL_SAFE_NO_PAD.encode(csr) }).to_string();
        self.post(
            &finalize_url,
            Some(payload.as_bytes()),
            None,
            &format!("finalize the order for {names}"),
        )
        .await?;
        let order: Order = self
            .poll(order_url, "wait for the certificate", |order: &Order| {
                !matches!(order.status, Status::Ready | Status::Processing)
            })
            .await?;
        if order.status != Status::Valid {
            return Err(order_failed(&order));
        }
        let certificate_url = order
            .certificate
            .as_deref()
            .ok_or_else(|| {
                AcmeError::protocol(order_url, "a valid order without a certificate URL")
            })
            .and_then(|url| {
                checked_https_url(url).map_err(|reason| AcmeError::protocol(order_url, reason))
            })?;
        let chain = self
            .post(
                &certificate_url,
                None,
                Some("application/pem-certificate-chain"),
                "download the certificate",
            )
            .await?;
        let chain_pem = String::from_utf8(chain.body.to_vec())
            .map_err(|_| AcmeError::BadCertificate("the chain is not text".to_string()))?;
        Certificate::from_issued(hosts, chain_pem, key_pem, &public_key)
    }

    /// POST-as-GET (RFC 8555 §6.3).
    async fn post_as_get(&self, url: &str, action: &str) -> Result<Response, AcmeError> {
        self.post(url, None, None, action).await
    }

    /// Polls `url` until `done` says so, pausing as the server asks (`Retry-After`) or with a
    /// doubling delay; the order deadline in [`AcmeClient::issue`] bounds the whole.
    async fn poll<T: serde::de::DeserializeOwned>(
        &self,
        url: &str,
        action: &str,
        done: impl Fn(&T) -> bool,
    ) -> Result<T, AcmeError> {
        let mut delay = FIRST_POLL_DELAY;
        loop {
            let response = self.post_as_get(url, action).await?;
            let value: T = response.json()?;
            if done(&value) {
                return Ok(value);
            }
            let pause = response.retry_after().map_or(delay, |asked| {
                asked.clamp(FIRST_POLL_DELAY, MAX_POLL_RETRY_AFTER)
            });
            tokio::time::sleep(pause).await;
            delay = delay.saturating_mul(2).min(MAX_POLL_DELAY);
        }
    }

    /// A POST signed by the account (`kid`). If the CA no longer knows the account (its state
    /// was reset), the account is looked up or registered again with the same key, once.
    async fn post(
        &self,
        url: &str,
        payload: Option<&[u8]>,
        accept: Option<&str>,
        action: &str,
    ) -> Result<Response, AcmeError> {
        let account = self.account().await?;
        match self
            .signed_post(
                &account.key,
                Signer::Kid(&account.url),
                url,
                payload,
                accept,
                action,
            )
            .await
        {
            Err(error) if error.is_problem("accountDoesNotExist") => {
                self.forget_account(&account).await?;
                let account = self.account().await?;
                self.signed_post(
                    &account.key,
                    Signer::Kid(&account.url),
                    url,
                    payload,
                    accept,
                    action,
                )
                .await
            }
            other => other,
        }
    }

    async fn signed_post(
        &self,
        key: &AccountKey,
        signer: Signer<'_>,
        url: &str,
        payload: Option<&[u8]>,
        accept: Option<&str>,
        action: &str,
    ) -> Result<Response, AcmeError> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            let nonce = self.nonce().await?;
            let body = key.sign(url, &nonce, signer, payload)?;
            let response = self.transport.post_jose(url, body, accept).await?;
            if let Some(nonce) = response.nonce() {
                self.keep_nonce(nonce);
            }
            if response.is_success() {
                return Ok(response);
            }
            let problem = response.problem();
            if problem.is("badNonce") && attempt < MAX_BAD_NONCE_RETRIES {
                continue;
            }
            return Err(AcmeError::Refused {
                action: action.to_string(),
                status: response.status,
                problem,
                retry_after: response.retry_after(),
            });
        }
    }

    async fn nonce(&self) -> Result<String, AcmeError> {
        if let Some(nonce) = self
            .nonces
            .lock()
            .expect("nonce pool lock is never poisoned")
            .pop()
        {
            return Ok(nonce);
        }
        let directory = self.directory().await?;
        let response = self.transport.head(&directory.new_nonce).await?;
        if !response.is_success() {
            return Err(AcmeError::Refused {
                action: "hand out a nonce".to_string(),
                status: response.status,
                problem: response.problem(),
                retry_after: response.retry_after(),
            });
        }
        response.nonce().ok_or_else(|| {
            AcmeError::protocol(&directory.new_nonce, "no usable Replay-Nonce header")
        })
    }

    fn keep_nonce(&self, nonce: String) {
        let mut nonces = self
            .nonces
            .lock()
            .expect("nonce pool lock is never poisoned");
        if nonces.len() >= MAX_SPARE_NONCES {
            nonces.remove(0);
        }
        nonces.push(nonce);
    }

    async fn directory(&self) -> Result<&Directory, AcmeError> {
        self.directory
            .get_or_try_init(|| async {
                let url = &self.config.directory;
                let response = self.transport.get(url).await?;
                if !response.is_success() {
                    return Err(AcmeError::Refused {
                        action: "serve its directory".to_string(),
                        status: response.status,
                        problem: response.problem(),
                        retry_after: response.retry_after(),
                    });
                }
                Directory::parse(&response.body).map_err(|reason| {
                    AcmeError::protocol(url, format!("{reason}; is this an ACME directory URL?"))
                })
            })
            .await
    }

    fn account_storage_name(&self) -> String {
        format!(
            "acme-account-{}.json",
            short_hash(self.config.directory.as_bytes())
        )
    }

    /// The account, from memory, from storage, or registered now (in that order).
    async fn account(&self) -> Result<Arc<Account>, AcmeError> {
        let mut slot = self.account.lock().await;
        if let Some(account) = slot.as_ref() {
            return Ok(Arc::clone(account));
        }
        let name = self.account_storage_name();
        let stored = load(&*self.storage, &name)?;
        let (key, url) = match stored {
            Some(bytes) => {
                let unreadable = |reason: String| AcmeError::StoredUnreadable {
                    name: name.clone(),
                    reason,
                };
                let record: AccountRecord = serde_json::from_slice(&bytes)
                    .map_err(|error| unreadable(error.to_string()))?;
                let pkcs8 = STANDARD
                    .decode(&record.key)
                    .map_err(|error| unreadable(format!("key: {error}")))?;
                let key = AccountKey::from_pkcs8(&pkcs8).map_err(unreadable)?;
                (key, record.url)
            }
            None => {
                let key = AccountKey::generate()?;
                // The key is saved before the CA hears of it, so an account is never created
                // whose key was lost.
                self.save_account(&key, None)?;
                (key, None)
            }
        };
        let url = match url {
            Some(url) => url,
            None => {
                let url = self.register(&key).await?;
                self.save_account(&key, Some(&url))?;
                url
            }
        };
        let account = Arc::new(Account { key, url });
        *slot = Some(Arc::clone(&account));
        Ok(account)
    }

    /// Drops a cached account URL the CA no longer knows, in memory and in storage.
    async fn forget_account(&self, stale: &Account) -> Result<(), AcmeError> {
        let mut slot = self.account.lock().await;
        if slot
            .as_ref()
            .is_some_and(|account| account.url == stale.url)
        {
            *slot = None;
            self.save_account(&stale.key, None)?;
        }
        Ok(())
    }

    fn save_account(&self, key: &AccountKey, url: Option<&str>) -> Result<(), AcmeError> {
        let record = AccountRecord {
            directory: self.config.directory.clone(),
            key: STANDARD.encode(key.pkcs8()),
            url: url.map(str::to_string),
        };
        let bytes =
            serde_json::to_vec_pretty(&record).expect("the account record is plain strings");
        let name = self.account_storage_name();
        self.storage
            .save(&name, &bytes)
            .map_err(|source| AcmeError::Storage {
                operation: "save",
                name,
                source,
            })
    }

    /// Finds the account for `key` (`onlyReturnExisting`), registering it if the CA has none.
    async fn register(&self, key: &AccountKey) -> Result<String, AcmeError> {
        let directory = self.directory().await?;
        if directory.external_account_required {
            return Err(AcmeError::Config(format!(
                "{} requires external account binding, which lastmile does not support; use a CA \
                 that does not (e.g. Let's Encrypt)",
                self.config.directory
            )));
        }
        let lookup = json!({ "onlyReturnExisting": true }).to_string();
        match self
            .signed_post(
                key,
                Signer::Jwk,
                &directory.new_account,
                Some(lookup.as_bytes()),
                None,
                "look up the account",
            )
            .await
        {
            Ok(found) => return found.location(),
            Err(error) if error.is_problem("accountDoesNotExist") => {}
            Err(error) => return Err(error),
        }
        let mut payload = json!({ "termsOfServiceAgreed": true });
        if let Some(email) = &self.config.email {
            payload["contact"] = json!([format!("mailto:{email}")]);
        }
        let created = self
            .signed_post(
                key,
                Signer::Jwk,
                &directory.new_account,
                Some(payload.to_string().as_bytes()),
                None,
                "register an account",
            )
            .await?;
        created.location()
    }
}

impl fmt::Debug for AcmeClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AcmeClient")
            .field("directory", &self.config.directory)
            .field("email", &self.config.email)
            .finish_non_exhaustive()
    }
}

pub(crate) fn load(storage: &dyn Storage, name: &str) -> Result<Option<Vec<u8>>, AcmeError> {
    storage.load(name).map_err(|source| AcmeError::Storage {
        operation: "load",
        name: name.to_string(),
        source,
    })
}

/// The first 6 bytes of SHA-256 in hex: enough to tell directories or host sets apart in a
/// storage name.
pub(crate) fn short_hash(bytes: &[u8]) -> String {
    aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, bytes).as_ref()[..6]
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

/// A fresh P-256 key (PKCS#8 PEM and raw public key) and a CSR naming `hosts`.
fn certificate_request(hosts: &[String]) -> Result<(String, Vec<u8>, Vec<u8>), AcmeError> {
    let crypto = |what: &str, error: rcgen::Error| AcmeError::Crypto(format!("{what}: {error}"));
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)
        .map_err(|error| crypto("generate a certificate key", error))?;
    let mut params = rcgen::CertificateParams::new(hosts.to_vec())
        .map_err(|error| crypto("describe the certificate", error))?;
    params.distinguished_name = rcgen::DistinguishedName::new();
    let csr = params
        .serialize_request(&key)
        .map_err(|error| crypto("make the certificate request", error))?;
    Ok((
        key.serialize_pem(),
        key.public_key_raw().to_vec(),
        csr.der().to_vec(),
    ))
}

/// Lowercases, drops one trailing dot and duplicates, and rejects what http-01 cannot validate.
pub(crate) fn normalize_hosts(hosts: &[String]) -> Result<Vec<String>, AcmeError> {
    if hosts.is_empty() {
        return Err(AcmeError::Config(
            "no host names to get a certificate for".to_string(),
        ));
    }
    if hosts.len() > MAX_HOSTS {
        return Err(AcmeError::Config(format!(
            "{} host names; one certificate holds at most {MAX_HOSTS}",
            hosts.len()
        )));
    }
    let mut normalized: Vec<String> = Vec::with_capacity(hosts.len());
    for host in hosts {
        let name = host.trim().to_ascii_lowercase();
        let name = name.strip_suffix('.').unwrap_or(&name).to_string();
        let invalid = |reason| AcmeError::InvalidHost {
            host: host.clone(),
            reason,
        };
        if name.contains('*') {
            return Err(invalid(
                "wildcards need dns-01 validation, which lastmile does not do",
            ));
        }
        if name.parse::<std::net::IpAddr>().is_ok() {
            return Err(invalid("IP addresses are not supported; use a DNS name"));
        }
        if name.is_empty() || name.len() > 253 {
            return Err(invalid("a host name is 1 to 253 characters"));
        }
        if !name.contains('.') {
            return Err(invalid(
                "a public CA only certifies names with a dot, like app.example.com",
            ));
        }
        let labels_valid = name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        });
        if !labels_valid {
            return Err(invalid(
                "each dot-separated label is 1 to 63 letters, digits or inner hyphens",
            ));
        }
        if !normalized.contains(&name) {
            normalized.push(name);
        }
    }
    Ok(normalized)
}

#[cfg(test)]
mod tests {
    use super::*;
    use x509_parser::prelude::FromDer;

    fn hosts(names: &[&str]) -> Vec<String> {
        names.iter().map(|name| name.to_string()).collect()
    }

    #[test]
    fn host_names_are_normalized_and_checked() {
        assert_eq!(
            normalize_hosts(&hosts(&["Hello.Example.", "hello.example", "www.example"]))
                .expect("valid"),
            hosts(&["hello.example", "www.example"])
        );
        for bad in [
            "*.example",
            "127.0.0.1",
            "localhost",
            "a..b",
            "-a.example",
            "a_b.example",
            "",
        ] {
            assert!(
                matches!(
                    normalize_hosts(&hosts(&[bad])),
                    Err(AcmeError::InvalidHost { .. })
                ),
                "{bad:?}"
            );
        }
        assert!(matches!(normalize_hosts(&[]), Err(AcmeError::Config(_))));
    }

    #[test]
    fn the_csr_names_the_hosts_and_carries_the_key() {
        let names = hosts(&["a.example", "b.example"]);
        let (key_pem, public_key, csr) = certificate_request(&names).expect("a CSR");
        assert!(key_pem.contains("BEGIN PRIVATE KEY"));
        let (_, request) =
            x509_parser::certification_request::X509CertificationRequest::from_der(&csr)
                .expect("DER CSR");
        assert_eq!(
            request
                .certification_request_info
                .subject_pki
                .subject_public_key
                .data
                .as_ref(),
            public_key.as_slice()
        );
    }

    #[test]
    fn a_client_needs_an_https_directory_and_a_mail_address() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let storage: Arc<dyn Storage> =
            Arc::new(crate::DirStorage::new(dir.path()).expect("a storage directory"));
        assert!(matches!(
            AcmeClient::new(
                AcmeConfig::new("http://ca.example/dir"),
                Arc::clone(&storage)
            ),
            Err(AcmeError::Config(_))
        ));
        let config = AcmeConfig {
            email: Some("not a mail".to_string()),
            ..AcmeConfig::default()
        };
        assert!(matches!(
            AcmeClient::new(config, Arc::clone(&storage)),
            Err(AcmeError::Config(_))
        ));
        assert!(AcmeClient::new(AcmeConfig::default(), storage).is_ok());
    }
}
