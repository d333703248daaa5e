//! Certificates by host name, swapped atomically while the listener runs.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use arc_swap::ArcSwap;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

use super::{TlsError, provider};

/// The certificates of TLS listeners, chosen per handshake by the client's SNI name; cheap to
/// clone (clones share one store).
///
/// A name is matched exactly first (`app.example.com`), then by a one-label wildcard
/// (`*.example.com` covers `a.example.com`, not `example.com` nor `a.b.example.com`).
/// Clients that send no SNI name (old clients, access by IP address) or a name no certificate
/// covers get the *default* certificate: the one given to [`CertStore::set_default`], else the
/// certificate of the oldest host still in the store. Serving a certificate the client will
/// reject for its name lets it report a clear name mismatch, where refusing the handshake
/// would leave an opaque failure; and it keeps a single-certificate setup working for clients
/// that reach it by IP. A store with no certificate at all refuses handshakes.
///
/// Changes are atomic and apply to new handshakes only: connections already open keep the
/// certificate they were made with and are never closed by a change.
#[derive(Clone, Default)]
pub struct CertStore {
    shared: Arc<ArcSwap<Certificates>>,
}

/// One snapshot of the store.
#[derive(Clone, Default)]
struct Certificates {
    exact: HashMap<String, Entry>,
    /// Keyed by the name after `*.`.
    wildcard: HashMap<String, Entry>,
    /// Set by `set_default`.
    explicit_default: Option<Arc<CertifiedKey>>,
    /// What unmatched clients get: `explicit_default`, else the oldest host's certificate.
    fallback: Option<Arc<CertifiedKey>>,
    /// Order of first insertion, to find the oldest host.
    next_seq: u64,
}

#[derive(Clone)]
struct Entry {
    /// When the host name was first added (kept when its certificate is replaced).
    seq: u64,
    key: Arc<CertifiedKey>,
}

/// A validated, lowercase host name.
enum HostName {
    Exact(String),
    /// `*.` + this name.
    Wildcard(String),
}

impl HostName {
    fn parse(host: &str) -> Result<HostName, TlsError> {
        let invalid = || TlsError::InvalidHost(host.to_string());
        let lower = host.trim().trim_end_matches('.').to_ascii_lowercase();
        let (wildcard, name) = match lower.strip_prefix("*.") {
            Some(rest) => (true, rest),
            None => (false, lower.as_str()),
        };
        let label_ok = |l: &str| {
            (1..=63).contains(&l.len())
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        };
        if name.is_empty() || name.len() > 253 || !name.split('.').all(label_ok) {
            return Err(invalid());
        }
        Ok(if wildcard {
            HostName::Wildcard(name.to_string())
        } else {
            HostName::Exact(name.to_string())
        })
    }
}

impl Certificates {
    fn map<'a>(&'a mut self, name: &'a HostName) -> (&'a mut HashMap<String, Entry>, &'a str) {
        match name {
            HostName::Exact(n) => (&mut self.exact, n),
            HostName::Wildcard(n) => (&mut self.wildcard, n),
        }
    }

    fn insert(&mut self, name: &HostName, key: &Arc<CertifiedKey>) {
        let seq = self.next_seq;
        let (map, n) = self.map(name);
        let entry = map.entry(n.to_string()).or_insert_with(|| Entry {
            seq,
            key: key.clone(),
        });
        entry.key = key.clone();
        self.next_seq += 1;
    }

    fn refresh_fallback(&mut self) {
        self.fallback = self.explicit_default.clone().or_else(|| {
            self.exact
                .values()
                .chain(self.wildcard.values())
                .min_by_key(|e| e.seq)
                .map(|e| e.key.clone())
        });
    }

    fn lookup(&self, name: &str) -> Option<&Arc<CertifiedKey>> {
        if let Some(e) = self.exact.get(name) {
            return Some(&e.key);
        }
        let (_, parent) = name.split_once('.')?;
        self.wildcard.get(parent).map(|e| &e.key)
    }
}

/// Parses a PEM chain and key and checks that they belong together.
fn certified_key(chain_pem: &[u8], key_pem: &[u8]) -> Result<Arc<CertifiedKey>, TlsError> {
    let chain = CertificateDer::pem_slice_iter(chain_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(TlsError::CertificatePem)?;
    if chain.is_empty() {
        return Err(TlsError::NoCertificate);
    }
    let key = PrivateKeyDer::from_pem_slice(key_pem).map_err(TlsError::KeyPem)?;
    let signing_key = provider()
        .key_provider
        .load_private_key(key)
        .map_err(TlsError::UnsupportedKey)?;
    let certified = CertifiedKey::new(chain, signing_key);
    match certified.keys_match() {
        // A key that cannot tell its public half is taken on trust (the handshake will fail
        // loudly for clients if it is wrong).
        Ok(()) | Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::Unknown)) => {
            Ok(Arc::new(certified))
        }
        Err(rustls::Error::InconsistentKeys(_)) => Err(TlsError::KeyMismatch),
        Err(e) => Err(TlsError::BadCertificate(e)),
    }
}

impl CertStore {
    /// An empty store (handshakes are refused until a certificate is set).
    pub fn new() -> CertStore {
        CertStore::default()
    }

    /// Serves the certificate chain `chain_pem` (server certificate first, then intermediates)
    /// with the private key `key_pem` for each of `hosts` (DNS names or `*.` wildcards),
    /// replacing what those names had. Nothing changes when an error is returned.
    pub fn set<I>(&self, hosts: I, chain_pem: &[u8], key_pem: &[u8]) -> Result<(), TlsError>
    where
        I: IntoIterator,
        I::Item: AsRef<str>,
    {
        let names = hosts
            .into_iter()
            .map(|h| HostName::parse(h.as_ref()))
            .collect::<Result<Vec<_>, _>>()?;
        if names.is_empty() {
            return Err(TlsError::NoHosts);
        }
        let key = certified_key(chain_pem, key_pem)?;
        self.update(|c| {
            for name in &names {
                c.insert(name, &key);
            }
        });
        Ok(())
    }

    /// Serves this chain and key to clients whose SNI name matches no host (or who send none).
    pub fn set_default(&self, chain_pem: &[u8], key_pem: &[u8]) -> Result<(), TlsError> {
        let key = certified_key(chain_pem, key_pem)?;
        self.update(|c| c.explicit_default = Some(key.clone()));
        Ok(())
    }

    /// Forgets the certificate set by `set_default` (the oldest host's serves unmatched clients).
    pub fn clear_default(&self) {
        self.update(|c| c.explicit_default = None);
    }

    /// Stops serving a certificate for `host` (as given to `set`); false when it had none.
    pub fn remove(&self, host: &str) -> bool {
        let Ok(name) = HostName::parse(host) else {
            return false;
        };
        let mut removed = false;
        self.update(|c| {
            let (map, n) = c.map(&name);
            removed = map.remove(n).is_some();
        });
        removed
    }

    /// The host names that have a certificate, sorted (wildcards as `*.example.com`).
    pub fn hosts(&self) -> Vec<String> {
        let certs = self.shared.load();
        let mut hosts: Vec<String> = certs
            .exact
            .keys()
            .cloned()
            .chain(certs.wildcard.keys().map(|n| format!("*.{n}")))
            .collect();
        hosts.sort();
        hosts
    }

    /// No certificate at all: TLS handshakes are refused.
    pub fn is_empty(&self) -> bool {
        self.shared.load().fallback.is_none()
    }

    /// Applies `change` to a copy of the current snapshot and swaps it in.
    fn update(&self, mut change: impl FnMut(&mut Certificates)) {
        self.shared.rcu(|current| {
            let mut next = Certificates::clone(current);
            change(&mut next);
            next.refresh_fallback();
            next
        });
    }

    /// The certificate for a handshake whose client sent `server_name`.
    pub(super) fn choose(&self, server_name: Option<&str>) -> Option<Arc<CertifiedKey>> {
        let certs = self.shared.load();
        if let Some(name) = server_name {
            let lower;
            let mut name = name.strip_suffix('.').unwrap_or(name);
            if name.bytes().any(|b| b.is_ascii_uppercase()) {
                lower = name.to_ascii_lowercase();
                name = &lower;
            }
            if let Some(key) = certs.lookup(name) {
                return Some(key.clone());
            }
        }
        certs.fallback.clone()
    }
}

impl ResolvesServerCert for CertStore {
    fn resolve(&self, client_hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.choose(client_hello.server_name())
    }
}

impl fmt::Debug for CertStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let certs = self.shared.load();
        f.debug_struct("CertStore")
            .field("hosts", &self.hosts())
            .field("default", &certs.explicit_default.is_some())
            .finish()
    }
}
