//! The certificates of one app's TLS routes: read from files, or obtained
//! and renewed over ACME, handed to every host, and reported in `status`.
//!
//! The router only takes certificates and challenge answers as plain
//! configuration; this module owns where they come from. ACME accounts and
//! certificates (with their private keys) are sealed with the state
//! directory's secrets key before they touch the disk.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use anyhow::Context;
use lastmile_acme::{AcmeClient, AcmeConfig, AcmeEvent, CertManager, Certificate, Http01Responder};
use lastmile_host::{CertificateSpec, HostHandle};
use lastmile_spec::{Spec, TlsSource};
use lastmile_store::SecretBox;
use serde::{Deserialize, Serialize};

use crate::controller::{Progress, lock};

/// Where sealed ACME state lives inside the state directory.
const ACME_DIR: &str = "acme";

/// One certificate as `lastmile status` and the dashboard show it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct CertificateStatus {
    /// Host names it serves (empty: the listener's default certificate).
    pub hosts: Vec<String>,
    /// Environments whose routes serve it.
    pub environments: Vec<String>,
    /// Where it comes from.
    pub source: CertificateSource,
    /// Where it stands.
    pub state: CertificateState,
    /// End of validity of the certificate being served, RFC 3339 UTC.
    pub not_after: Option<String>,
    /// When it is renewed (ACME only), RFC 3339 UTC.
    pub renew_at: Option<String>,
    /// Serial of the certificate being served, lowercase hex.
    pub serial: Option<String>,
    /// Why the last attempt failed, for the user.
    pub error: Option<String>,
}

/// Where a served certificate comes from.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum CertificateSource {
    /// Files named in the spec (`tls.cert`, `tls.key`).
    Files,
    /// Obtained and renewed from an ACME CA.
    Acme,
}

/// Where a certificate stands.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum CertificateState {
    /// Being served.
    Valid,
    /// Being obtained.
    Pending,
    /// The last attempt failed; an older certificate may still be served.
    Failing,
    /// Past its end of validity.
    Expired,
}

impl CertificateState {
    /// The text shown and served (`valid`, `pending`, `failing`, `expired`).
    pub fn as_str(self) -> &'static str {
        match self {
            CertificateState::Valid => "valid",
            CertificateState::Pending => "pending",
            CertificateState::Failing => "failing",
            CertificateState::Expired => "expired",
        }
    }
}

impl CertificateSource {
    /// The text shown and served (`files`, `acme`).
    pub fn as_str(self) -> &'static str {
        match self {
            CertificateSource::Files => "files",
            CertificateSource::Acme => "acme",
        }
    }
}

/// What one ACME manager keeps a certificate for.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct AcmeKey {
    directory: String,
    email: Option<String>,
    ca: Option<PathBuf>,
    host: String,
}

impl AcmeKey {
    /// The key of a route's `acme` settings; `None` without a `host` (the
    /// spec refuses that, so nothing is issued for it).
    fn of(acme: &lastmile_spec::Acme, host: Option<&String>) -> Option<AcmeKey> {
        Some(AcmeKey {
            directory: acme.directory.clone(),
            email: acme.email.clone(),
            ca: acme.ca.clone(),
            host: host?.clone(),
        })
    }
}

/// The certificates of one app.
pub(crate) struct Edge {
    hosts: Vec<Arc<dyn HostHandle>>,
    state_dir: PathBuf,
    /// The key ACME state is sealed with.
    secret_key_file: PathBuf,
    progress: Arc<dyn Progress>,
    /// Keyed by the host names joined with `,` (or `*` for a default).
    status: Arc<Mutex<BTreeMap<String, CertificateStatus>>>,
    /// Renewal loops by what they renew.
    renewals: Mutex<BTreeMap<AcmeKey, tokio::task::JoinHandle<()>>>,
}

impl std::fmt::Debug for Edge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Edge")
            .field("state_dir", &self.state_dir)
            .finish_non_exhaustive()
    }
}

impl Drop for Edge {
    fn drop(&mut self) {
        for (_, task) in std::mem::take(&mut *lock(&self.renewals)) {
            task.abort();
        }
    }
}

impl Edge {
    pub(crate) fn new(
        hosts: Vec<Arc<dyn HostHandle>>,
        state_dir: &Path,
        secret_key_file: &Path,
        progress: Arc<dyn Progress>,
    ) -> Edge {
        Edge {
            hosts,
            state_dir: state_dir.to_path_buf(),
            secret_key_file: secret_key_file.to_path_buf(),
            progress,
            status: Arc::new(Mutex::new(BTreeMap::new())),
            renewals: Mutex::new(BTreeMap::new()),
        }
    }

    /// The certificates, for `status`.
    pub(crate) fn status(&self) -> Vec<CertificateStatus> {
        let now = rfc3339(SystemTime::now());
        lock(&self.status)
            .values()
            .cloned()
            .map(|certificate| expired_by(certificate, &now))
            .collect()
    }

    /// Hands every certificate at hand to the hosts before their listeners
    /// serve: certificate files (a missing or bad file is an error that
    /// names it) and ACME certificates stored by an earlier run, so a
    /// restart serves HTTPS at once without asking the CA again.
    pub(crate) async fn install(&self, spec: &Spec, spec_dir: &Path) -> anyhow::Result<()> {
        for environment in &spec.environments {
            let Some(route) = &environment.route else {
                continue;
            };
            let Some(tls) = &route.tls else { continue };
            let hosts: Vec<String> = route.host.iter().cloned().collect();
            match tls.source.relative_to(spec_dir) {
                TlsSource::Files { cert, key } => {
                    let chain_pem = std::fs::read_to_string(&cert).with_context(|| {
                        format!(
                            "environment `{}`: cannot read route.tls.cert {}; check the path (relative to the directory of lastmile.yaml)",
                            environment.name,
                            cert.display()
                        )
                    })?;
                    let key_pem = std::fs::read_to_string(&key).with_context(|| {
                        format!(
                            "environment `{}`: cannot read route.tls.key {}; check the path (relative to the directory of lastmile.yaml)",
                            environment.name,
                            key.display()
                        )
                    })?;
                    let validity = leaf_validity(&chain_pem);
                    self.serve(&CertificateSpec {
                        hosts: hosts.clone(),
                        chain_pem,
                        key_pem,
                    })
                    .await
                    .with_context(|| {
                        format!(
                            "environment `{}`: route.tls.cert {} with key {}",
                            environment.name,
                            cert.display(),
                            key.display()
                        )
                    })?;
                    let (state, not_after, serial) = match validity {
                        Some((not_after, serial)) => (
                            if not_after <= SystemTime::now() {
                                CertificateState::Expired
                            } else {
                                CertificateState::Valid
                            },
                            Some(rfc3339(not_after)),
                            Some(serial),
                        ),
                        None => (CertificateState::Valid, None, None),
                    };
                    self.record(
                        &hosts,
                        &environment.name,
                        CertificateStatus {
                            hosts: hosts.clone(),
                            environments: Vec::new(),
                            source: CertificateSource::Files,
                            state,
                            not_after,
                            renew_at: None,
                            serial,
                            error: None,
                        },
                    );
                }
                TlsSource::Acme(acme) => {
                    let Some(key) = AcmeKey::of(&acme, route.host.as_ref()) else {
                        continue;
                    };
                    let manager = self.manager(&key)?;
                    let stored = manager.stored_certificate().map_err(|error| {
                        anyhow::anyhow!(
                            "environment `{}`: cannot read the stored certificate for {}: {error}",
                            environment.name,
                            key.host
                        )
                    })?;
                    let status = match &stored {
                        Some(certificate) => {
                            self.serve(&spec_of(certificate)).await?;
                            served(certificate)
                        }
                        None => CertificateStatus {
                            hosts: hosts.clone(),
                            environments: Vec::new(),
                            source: CertificateSource::Acme,
                            state: CertificateState::Pending,
                            not_after: None,
                            renew_at: None,
                            serial: None,
                            error: None,
                        },
                    };
                    self.record(&hosts, &environment.name, status);
                }
            }
        }
        Ok(())
    }

    /// Starts one background loop per ACME certificate of `environments`
    /// not yet looked after: it obtains the certificate when none is
    /// stored, renews it at two thirds of its lifetime, retries failures
    /// with backoff, and installs each new certificate on every host; the
    /// old one serves until then. Called once those environments' routes
    /// are set, because the CA's HTTP-01 validation reaches the route's
    /// redirect listener: an environment not deployed yet has none bound,
    /// and asking the CA then would only collect failed validations.
    pub(crate) fn start_renewals(
        &self,
        spec: &Spec,
        spec_dir: &Path,
        environments: &[&str],
    ) -> anyhow::Result<()> {
        for environment in &spec.environments {
            if !environments.contains(&environment.name.as_str()) {
                continue;
            }
            let Some(route) = &environment.route else {
                continue;
            };
            let Some(tls) = &route.tls else { continue };
            let TlsSource::Acme(acme) = tls.source.relative_to(spec_dir) else {
                continue;
            };
            let Some(key) = AcmeKey::of(&acme, route.host.as_ref()) else {
                continue;
            };
            let mut renewals = lock(&self.renewals);
            if renewals.get(&key).is_some_and(|task| !task.is_finished()) {
                continue;
            }
            let manager = self.manager(&key)?;
            let hosts = self.hosts.clone();
            let status = self.status.clone();
            let progress = self.progress.clone();
            let names = vec![key.host.clone()];
            let task = tokio::spawn(async move {
                manager
                    .run(
                        |certificate| {
                            // Installed from a task: `run` calls back synchronously.
                            let spec = spec_of(certificate);
                            let hosts = hosts.clone();
                            let status = status.clone();
                            let progress = progress.clone();
                            let served = served(certificate);
                            let names = names.clone();
                            tokio::spawn(async move {
                                for host in &hosts {
                                    if let Err(error) = host.set_certificate(&spec).await {
                                        progress.warn(&format!(
                                            "host {} refused the certificate for {}: {error}",
                                            host.name(),
                                            names.join(", ")
                                        ));
                                        return;
                                    }
                                }
                                update(&status, &names, |entry| {
                                    *entry = CertificateStatus {
                                        environments: std::mem::take(&mut entry.environments),
                                        ..served
                                    };
                                });
                            });
                        },
                        std::future::pending(),
                    )
                    .await;
            });
            renewals.insert(key, task);
        }
        Ok(())
    }

    /// Hands `certificate` to every host.
    async fn serve(&self, certificate: &CertificateSpec) -> anyhow::Result<()> {
        for host in &self.hosts {
            host.set_certificate(certificate)
                .await
                .map_err(|error| anyhow::anyhow!("{error}"))?;
        }
        Ok(())
    }

    fn record(&self, hosts: &[String], environment: &str, status: CertificateStatus) {
        let mut table = lock(&self.status);
        let entry = table.entry(status_key(hosts)).or_insert(status.clone());
        let mut environments = std::mem::take(&mut entry.environments);
        if !environments.iter().any(|name| name == environment) {
            environments.push(environment.to_string());
        }
        *entry = CertificateStatus {
            environments,
            ..status
        };
    }

    /// A manager for `key`, its state sealed in the state directory.
    fn manager(&self, key: &AcmeKey) -> anyhow::Result<CertManager> {
        let storage = SealedStorage::open(&self.state_dir, &self.secret_key_file)?;
        let mut config = AcmeConfig::new(key.directory.clone());
        config.email = key.email.clone();
        if let Some(ca) = &key.ca {
            let pem = std::fs::read(ca).with_context(|| {
                format!(
                    "cannot read route.tls.acme.ca {}; check the path (relative to the directory of lastmile.yaml)",
                    ca.display()
                )
            })?;
            use rustls::pki_types::pem::PemObject;
            for root in rustls::pki_types::CertificateDer::pem_slice_iter(&pem) {
                config.extra_roots.push(root.with_context(|| {
                    format!(
                        "route.tls.acme.ca {} holds no PEM certificate",
                        ca.display()
                    )
                })?);
            }
        }
        let client = AcmeClient::new(config, Arc::new(storage))
            .map_err(|error| anyhow::anyhow!("cannot set up ACME for {}: {error}", key.host))?;
        let responder = Arc::new(HostsResponder {
            hosts: self.hosts.clone(),
        });
        let status = self.status.clone();
        let progress = self.progress.clone();
        let names = vec![key.host.clone()];
        let manager =
            CertManager::new(Arc::new(client), names.clone(), responder).map_err(|error| {
                anyhow::anyhow!("cannot keep a certificate for {}: {error}", key.host)
            })?;
        Ok(manager.on_event(move |event| match event {
            AcmeEvent::Failed { error, .. } => {
                progress.warn(&event.to_string());
                let message = error.to_string();
                update(&status, &names, |entry| {
                    entry.state = CertificateState::Failing;
                    entry.error = Some(message.clone());
                });
            }
            _ => progress.line(&event.to_string()),
        }))
    }
}

/// Answers HTTP-01 challenges on every host's plaintext listeners: the CA
/// may reach any host the name points at.
struct HostsResponder {
    hosts: Vec<Arc<dyn HostHandle>>,
}

impl HostsResponder {
    fn set(&self, token: &str, answer: Option<&str>) {
        // The ACME client calls this synchronously and asks the CA to
        // validate right after, so the answer must be in place on return.
        // A runtime shutting down drops the client's token guard outside any runtime: the
        // hosts go with it, so there is nothing left to withdraw from.
        let Ok(handle) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let hosts = self.hosts.clone();
        let (token, answer) = (token.to_string(), answer.map(str::to_string));
        let set = async move {
            for host in &hosts {
                if let Err(error) = host.set_challenge(&token, answer.as_deref()).await {
                    eprintln!(
                        "host {} cannot {} ACME challenge answer: {error}",
                        host.name(),
                        if answer.is_some() {
                            "publish the"
                        } else {
                            "withdraw the"
                        }
                    );
                }
            }
        };
        match handle.runtime_flavor() {
            tokio::runtime::RuntimeFlavor::MultiThread => {
                tokio::task::block_in_place(|| handle.block_on(set));
            }
            // A single-threaded runtime cannot block its only thread: the answer is set
            // from a task, which the CA's first validation attempt may precede.
            _ => {
                handle.spawn(set);
            }
        }
    }
}

impl Http01Responder for HostsResponder {
    fn publish(&self, token: &str, key_authorization: &str) {
        self.set(token, Some(key_authorization));
    }

    fn withdraw(&self, token: &str) {
        self.set(token, None);
    }
}

/// ACME state (account keys, certificates and their keys) sealed with the
/// app's secrets key, one file per name.
#[derive(Debug)]
struct SealedStorage {
    dir: PathBuf,
    secret_box: SecretBox,
}

impl SealedStorage {
    fn open(state_dir: &Path, secret_key_file: &Path) -> anyhow::Result<SealedStorage> {
        let dir = state_dir.join(ACME_DIR);
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("cannot create {}", dir.display()))?;
        let secret_box = SecretBox::open_or_create(secret_key_file)?;
        Ok(SealedStorage { dir, secret_box })
    }

    fn path(&self, name: &str) -> std::io::Result<PathBuf> {
        let safe = !name.is_empty()
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
            && !name.starts_with('.');
        if !safe {
            return Err(std::io::Error::other(format!(
                "ACME storage name {name:?} is not a plain file name"
            )));
        }
        Ok(self.dir.join(format!("{name}.sealed")))
    }
}

impl lastmile_acme::Storage for SealedStorage {
    fn load(&self, name: &str) -> Result<Option<Vec<u8>>, lastmile_acme::StorageError> {
        let path = self.path(name)?;
        let bytes = match std::fs::read(&path) {
            Ok(bytes) => bytes,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(error) => return Err(error.into()),
        };
        let Some((nonce, ciphertext)) = bytes.split_at_checked(24) else {
            return Err(format!("{} is truncated", path.display()).into());
        };
        match self
            .secret_box
            .open(&format!("acme/{name}"), nonce, ciphertext)
        {
            Ok(bytes) => Ok(Some(bytes)),
            // Sealed under another key: `secret.key` was lost or replaced. What the file held
            // cannot be used again, so it counts as absent and is obtained anew (a new account,
            // a new certificate) instead of failing every deploy until the file is deleted.
            Err(lastmile_store::SecretBoxError::Decrypt) => Ok(None),
            Err(error) => Err(error.into()),
        }
    }

    fn save(&self, name: &str, bytes: &[u8]) -> Result<(), lastmile_acme::StorageError> {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let path = self.path(name)?;
        let (nonce, ciphertext) = self.secret_box.seal(&format!("acme/{name}"), bytes);
        // Written beside and renamed: a crash leaves the old file or the new one, never half.
        let temporary = path.with_extension("sealed.tmp");
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&temporary)?;
        file.write_all(&nonce)?;
        file.write_all(&ciphertext)?;
        file.sync_all()?;
        std::fs::rename(&temporary, &path)?;
        Ok(())
    }
}

fn spec_of(certificate: &Certificate) -> CertificateSpec {
    CertificateSpec {
        hosts: certificate.hosts.clone(),
        chain_pem: certificate.chain_pem.clone(),
        key_pem: certificate.key_pem.clone(),
    }
}

fn served(certificate: &Certificate) -> CertificateStatus {
    CertificateStatus {
        hosts: certificate.hosts.clone(),
        environments: Vec::new(),
        source: CertificateSource::Acme,
        state: if certificate.not_after <= SystemTime::now() {
            CertificateState::Expired
        } else {
            CertificateState::Valid
        },
        not_after: Some(rfc3339(certificate.not_after)),
        renew_at: Some(rfc3339(certificate.renew_at())),
        serial: Some(certificate.serial.clone()),
        error: None,
    }
}

/// `certificate` as of `now` (RFC 3339): one recorded `valid` whose end of
/// validity has passed since is `expired` (a certificate file is read only
/// at deploy and start, and an ACME one may fail to renew).
fn expired_by(mut certificate: CertificateStatus, now: &str) -> CertificateStatus {
    // Fixed-width UTC timestamps (`rfc3339`) order as text.
    if certificate.state == CertificateState::Valid
        && certificate
            .not_after
            .as_deref()
            .is_some_and(|not_after| not_after <= now)
    {
        certificate.state = CertificateState::Expired;
    }
    certificate
}

fn status_key(hosts: &[String]) -> String {
    if hosts.is_empty() {
        "*".to_string()
    } else {
        hosts.join(",")
    }
}

fn update(
    status: &Mutex<BTreeMap<String, CertificateStatus>>,
    hosts: &[String],
    change: impl FnOnce(&mut CertificateStatus),
) {
    if let Some(entry) = lock(status).get_mut(&status_key(hosts)) {
        change(entry);
    }
}

/// The leaf's `notAfter` and serial, when the chain's first PEM block parses.
fn leaf_validity(chain_pem: &str) -> Option<(SystemTime, String)> {
    use rustls::pki_types::pem::PemObject;
    let leaf = rustls::pki_types::CertificateDer::pem_slice_iter(chain_pem.as_bytes())
        .next()?
        .ok()?;
    let (_, parsed) = x509_parser::parse_x509_certificate(&leaf).ok()?;
    let seconds = u64::try_from(parsed.validity().not_after.timestamp()).ok()?;
    let serial = parsed
        .raw_serial()
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect();
    Some((
        SystemTime::UNIX_EPOCH + Duration::from_secs(seconds),
        serial,
    ))
}

/// `time` as `2026-12-02T03:27:44Z`.
pub(crate) fn rfc3339(time: SystemTime) -> String {
    lastmile_acme::format_rfc3339(time)
}

#[cfg(test)]
mod tests {
    use super::{
        CertificateSource, CertificateState, CertificateStatus, SealedStorage, expired_by, rfc3339,
    };
    use lastmile_acme::Storage;
    use std::time::{Duration, SystemTime};

    #[test]
    fn a_valid_certificate_past_its_end_is_reported_expired() {
        let status = |state, not_after: Option<&str>| CertificateStatus {
            hosts: vec!["app.example".to_string()],
            environments: Vec::new(),
            source: CertificateSource::Files,
            state,
            not_after: not_after.map(str::to_string),
            renew_at: None,
            serial: None,
            error: None,
        };
        let now = "2026-12-02T03:27:44Z";
        let state = |state, not_after| expired_by(status(state, not_after), now).state;
        use CertificateState::{Expired, Failing, Pending, Valid};
        assert_eq!(state(Valid, Some("2026-12-02T03:27:45Z")), Valid);
        assert_eq!(state(Valid, Some("2026-12-02T03:27:44Z")), Expired);
        assert_eq!(state(Valid, Some("2025-01-01T00:00:00Z")), Expired);
        assert_eq!(state(Failing, Some("2025-01-01T00:00:00Z")), Failing);
        assert_eq!(state(Pending, None), Pending);
        assert_eq!(state(Valid, None), Valid);
    }

    #[test]
    fn sealed_state_under_a_lost_key_counts_as_absent() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let key = dir.path().join("secret.key");
        let storage = SealedStorage::open(dir.path(), &key).expect("storage");
        storage.save("acme-account-1.json", b"key").expect("save");
        assert_eq!(
            storage.load("acme-account-1.json").expect("load"),
            Some(b"key".to_vec())
        );
        std::fs::remove_file(dir.path().join("secret.key")).expect("lose the key");
        let storage = SealedStorage::open(dir.path(), &key).expect("storage with a new key");
        assert_eq!(storage.load("acme-account-1.json").expect("load"), None);
        assert_eq!(storage.load("acme-never-saved.json").expect("load"), None);
    }

    #[test]
    fn rfc3339_names_the_utc_date_and_time() {
        let at = |seconds: u64| rfc3339(SystemTime::UNIX_EPOCH + Duration::from_secs(seconds));
        assert_eq!(at(0), "1970-01-01T00:00:00Z");
        assert_eq!(at(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(at(1_796_182_064), "2026-12-02T03:27:44Z");
    }
}
