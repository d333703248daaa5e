use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use serde::{Deserialize, Serialize};
use x509_parser::extensions::GeneralName;

use crate::error::AcmeError;

/// Most certificates accepted in one chain (leaf and intermediates).
const MAX_CHAIN_CERTIFICATES: usize = 10;

/// An issued certificate with its private key, as the router takes it (PEM), and the validity
/// window that decides when to renew. Serializable for [`Storage`](crate::Storage).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Certificate {
    /// The host names it covers, in the order they were asked for.
    pub hosts: Vec<String>,
    /// The leaf followed by the intermediates, PEM, as the CA sent it.
    pub chain_pem: String,
    /// The leaf's private key (ECDSA P-256), PKCS#8 PEM.
    pub key_pem: String,
    /// Start of validity (the leaf's `notBefore`).
    #[serde(with = "unix_seconds")]
    pub not_before: SystemTime,
    /// End of validity (the leaf's `notAfter`).
    #[serde(with = "unix_seconds")]
    pub not_after: SystemTime,
    /// The leaf's serial number, lowercase hex.
    pub serial: String,
}

impl Certificate {
    /// When to renew: two thirds into the validity window (day 60 of Let's Encrypt's 90), which
    /// leaves a third of the lifetime for retries.
    pub fn renew_at(&self) -> SystemTime {
        let lifetime = self
            .not_after
            .duration_since(self.not_before)
            .unwrap_or(Duration::ZERO);
        // Divided first: a stored window near the end of time must not overflow.
        self.not_before + lifetime / 3 * 2
    }

    /// Whether it is time to renew at `now`.
    pub fn is_due(&self, now: SystemTime) -> bool {
        now >= self.renew_at()
    }

    /// Builds the certificate from what the CA sent, checking that the leaf carries the key
    /// that was asked to be certified and covers every host.
    pub(crate) fn from_issued(
        hosts: &[String],
        chain_pem: String,
        key_pem: String,
        public_key: &[u8],
    ) -> Result<Certificate, AcmeError> {
        let bad = |reason: String| AcmeError::BadCertificate(reason);
        let chain: Vec<CertificateDer<'static>> =
            CertificateDer::pem_slice_iter(chain_pem.as_bytes())
                .take(MAX_CHAIN_CERTIFICATES + 1)
                .collect::<Result<_, _>>()
                .map_err(|error| bad(format!("the chain is not PEM: {error}")))?;
        if chain.is_empty() || chain.len() > MAX_CHAIN_CERTIFICATES {
            return Err(bad(format!(
                "the chain holds {} certificates, expected 1 to {MAX_CHAIN_CERTIFICATES}",
                chain.len()
            )));
        }
        let (_, leaf) = x509_parser::parse_x509_certificate(&chain[0])
            .map_err(|error| bad(format!("the leaf is not X.509: {error}")))?;
        if leaf.public_key().subject_public_key.data.as_ref() != public_key {
            return Err(bad(
                "the leaf certifies a different key than the one sent".into()
            ));
        }
        let names: Vec<String> = match leaf.subject_alternative_name() {
            Ok(Some(extension)) => extension
                .value
                .general_names
                .iter()
                .filter_map(|name| match name {
                    GeneralName::DNSName(name) => Some(name.to_ascii_lowercase()),
                    _ => None,
                })
                .collect(),
            _ => Vec::new(),
        };
        if let Some(missing) = hosts.iter().find(|host| !names.contains(host)) {
            return Err(bad(format!("the leaf does not name {missing}")));
        }
        let validity = leaf.validity();
        let not_before = from_unix(validity.not_before.timestamp());
        let not_after = from_unix(validity.not_after.timestamp());
        if not_after <= not_before {
            return Err(bad("the leaf's validity window is empty".into()));
        }
        let serial = leaf
            .raw_serial()
            .iter()
            .map(|byte| format!("{byte:02x}"))
            .collect();
        Ok(Certificate {
            hosts: hosts.to_vec(),
            chain_pem,
            key_pem,
            not_before,
            not_after,
            serial,
        })
    }

    pub(crate) fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec_pretty(self).expect("a certificate is plain strings and integers")
    }

    pub(crate) fn from_json(bytes: &[u8]) -> Result<Certificate, String> {
        let certificate: Certificate =
            serde_json::from_slice(bytes).map_err(|error| error.to_string())?;
        if certificate.not_after <= certificate.not_before {
            return Err("its validity window is empty".to_string());
        }
        if !certificate
            .chain_pem
            .contains("-----BEGIN CERTIFICATE-----")
            || !certificate.key_pem.contains("PRIVATE KEY-----")
        {
            return Err("it holds no PEM certificate or key".to_string());
        }
        Ok(certificate)
    }
}

/// Leaves the private key out, so a certificate can be logged.
impl fmt::Debug for Certificate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Certificate")
            .field("hosts", &self.hosts)
            .field("serial", &self.serial)
            .field("not_before", &crate::timestamp::format_utc(self.not_before))
            .field("not_after", &crate::timestamp::format_utc(self.not_after))
            .field("chain_pem", &format_args!("{} bytes", self.chain_pem.len()))
            .field("key_pem", &"(redacted)")
            .finish()
    }
}

fn from_unix(seconds: i64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(u64::try_from(seconds).unwrap_or(0))
}

/// Times stored as whole seconds since the Unix epoch, readable in the stored JSON.
mod unix_seconds {
    use std::time::{Duration, SystemTime, UNIX_EPOCH};

    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(
        time: &SystemTime,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        let seconds = time
            .duration_since(UNIX_EPOCH)
            .map_or(0, |since| since.as_secs());
        serializer.serialize_u64(seconds)
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<SystemTime, D::Error> {
        let seconds = u64::deserialize(deserializer)?;
        UNIX_EPOCH
            .checked_add(Duration::from_secs(seconds))
            .ok_or_else(|| serde::de::Error::custom("time out of range"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn certificate(not_before: u64, not_after: u64) -> Certificate {
        Certificate {
            hosts: vec!["hello.test".to_string()],
            chain_pem: "-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----\n".to_string(),
            key_pem: "-----BEGIN PRIVATE KEY-----\n-----END PRIVATE KEY-----\n".to_string(),
            not_before: UNIX_EPOCH + Duration::from_secs(not_before),
            not_after: UNIX_EPOCH + Duration::from_secs(not_after),
            serial: "01".to_string(),
        }
    }

    #[test]
    fn renews_two_thirds_into_the_lifetime() {
        let ninety_days = certificate(0, 90 * 86_400);
        assert_eq!(
            ninety_days.renew_at(),
            UNIX_EPOCH + Duration::from_secs(60 * 86_400)
        );
        assert!(!ninety_days.is_due(UNIX_EPOCH + Duration::from_secs(60 * 86_400 - 1)));
        assert!(ninety_days.is_due(UNIX_EPOCH + Duration::from_secs(60 * 86_400)));
    }

    #[test]
    fn round_trips_through_stored_json_and_debug_hides_the_key() {
        let original = certificate(1_000, 4_000);
        let back = Certificate::from_json(&original.to_json()).expect("reads back");
        assert_eq!(back, original);
        assert!(!format!("{original:?}").contains("PRIVATE KEY"));
        assert!(Certificate::from_json(&certificate(4_000, 1_000).to_json()).is_err());
        assert!(Certificate::from_json(b"{}").is_err());
    }
}
