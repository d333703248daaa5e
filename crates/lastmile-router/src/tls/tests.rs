use std::sync::Arc;

use rcgen::{CertificateParams, KeyPair};

use super::cert_store::CertStore;
use super::{Hsts, TlsError};

/// A self-signed certificate for `names` and its key, as PEM.
fn self_signed(names: &[&str]) -> (String, String) {
    let sans: Vec<String> = names.iter().map(|n| n.to_string()).collect();
    let params = CertificateParams::new(sans).expect("valid names");
    let key = KeyPair::generate().expect("a key");
    let cert = params.self_signed(&key).expect("signed");
    (cert.pem(), key.serialize_pem())
}

fn chosen(store: &CertStore, sni: Option<&str>) -> Option<Vec<u8>> {
    store.choose(sni).map(|k| k.cert[0].to_vec())
}

fn der_of(pem: &str) -> Vec<u8> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    CertificateDer::from_pem_slice(pem.as_bytes())
        .expect("PEM")
        .to_vec()
}

#[test]
fn exact_names_win_over_wildcards_and_the_oldest_host_is_the_default() {
    let store = CertStore::new();
    assert!(store.is_empty() && chosen(&store, Some("a.example")).is_none());
    let (wild, wild_key) = self_signed(&["*.example"]);
    let (exact, exact_key) = self_signed(&["a.example"]);
    store
        .set(["*.example"], wild.as_bytes(), wild_key.as_bytes())
        .expect("wildcard");
    store
        .set(
            ["a.example", "b.example"],
            exact.as_bytes(),
            exact_key.as_bytes(),
        )
        .expect("exact");
    assert_eq!(chosen(&store, Some("a.example")), Some(der_of(&exact)));
    assert_eq!(chosen(&store, Some("A.Example.")), Some(der_of(&exact)));
    assert_eq!(chosen(&store, Some("c.example")), Some(der_of(&wild)));
    // Unknown names and no SNI: the wildcard was set first, so it is the default.
    assert_eq!(chosen(&store, Some("other.test")), Some(der_of(&wild)));
    assert_eq!(chosen(&store, None), Some(der_of(&wild)));
    // Renewing the oldest host keeps it the default.
    let (renewed, renewed_key) = self_signed(&["*.example"]);
    store
        .set(["*.example"], renewed.as_bytes(), renewed_key.as_bytes())
        .expect("renewal");
    assert_eq!(chosen(&store, None), Some(der_of(&renewed)));
    assert!(store.remove("*.example"));
    assert_eq!(chosen(&store, Some("c.example")), Some(der_of(&exact)));
    assert_eq!(chosen(&store, None), Some(der_of(&exact)));
    assert_eq!(store.hosts(), vec!["a.example", "b.example"]);
    // Clones share the store.
    let clone = store.clone();
    assert!(clone.remove("a.example") && clone.remove("b.example"));
    assert!(store.is_empty());
    assert!(!store.remove("not a name"));
}

#[test]
fn only_dns_names_and_leading_wildcards_are_hosts() {
    let (pem, key) = self_signed(&["a.example"]);
    let store = CertStore::new();
    for bad in [
        "",
        "*",
        "*.",
        "a.*.example",
        "a..example",
        "-a.example",
        "a b",
        "é.example",
    ] {
        let err = store.set([bad], pem.as_bytes(), key.as_bytes());
        assert!(
            matches!(err, Err(TlsError::InvalidHost(_))),
            "{bad:?}: {err:?}"
        );
    }
    for good in [
        "localhost",
        "a.example",
        "*.a.example",
        "x_y.example",
        "A.EXAMPLE.",
    ] {
        assert!(
            store.set([good], pem.as_bytes(), key.as_bytes()).is_ok(),
            "{good}"
        );
    }
}

#[test]
fn error_messages_say_what_to_give() {
    let (pem, key) = self_signed(&["a.example"]);
    let (_, other_key) = self_signed(&["b.example"]);
    let store = CertStore::new();
    let message = |r: Result<(), TlsError>| r.map_or_else(|e| e.to_string(), |()| String::new());
    insta::assert_snapshot!(
        message(store.set(["a.example"], pem.as_bytes(), other_key.as_bytes())),
        @"the private key does not belong to the certificate (their public keys differ); give the key the certificate was issued for"
    );
    insta::assert_snapshot!(
        message(store.set(["a.example"], b"", key.as_bytes())),
        @"the certificate chain holds no `-----BEGIN CERTIFICATE-----` block; give the server certificate first, then its intermediates"
    );
    insta::assert_snapshot!(
        message(store.set(["a.example"], pem.as_bytes(), b"")),
        @"the private key is not valid PEM (no items found); give one `-----BEGIN PRIVATE KEY-----` (PKCS#8), `-----BEGIN RSA PRIVATE KEY-----` or `-----BEGIN EC PRIVATE KEY-----` block"
    );
    insta::assert_snapshot!(
        message(store.set(["a.example/x"], pem.as_bytes(), key.as_bytes())),
        @"`a.example/x` is not a host name a certificate can be chosen for; give a DNS name such as `example.com` or a wildcard such as `*.example.com`"
    );
    insta::assert_snapshot!(
        message(store.set(Vec::<&str>::new(), pem.as_bytes(), key.as_bytes())),
        @"no host names given for the certificate; give at least one (`example.com`, `*.example.com`), or use `CertStore::set_default` for the certificate of clients without a matching name"
    );
}

#[test]
fn hsts_values_follow_rfc_6797() {
    let mut hsts = Hsts {
        max_age: std::time::Duration::from_secs(600),
        include_subdomains: false,
        preload: false,
    };
    assert_eq!(hsts.header_value(), "max-age=600");
    hsts.include_subdomains = true;
    hsts.preload = true;
    assert_eq!(
        hsts.header_value(),
        "max-age=600; includeSubDomains; preload"
    );
    assert_eq!(hsts.to_header(), "max-age=600; includeSubDomains; preload");
}

#[test]
fn the_server_config_offers_h2_then_http11() {
    let config = super::server_config(&super::TlsSettings::new(CertStore::new())).expect("config");
    assert_eq!(
        config.alpn_protocols,
        vec![b"h2".to_vec(), b"http/1.1".to_vec()]
    );
    assert!(Arc::strong_count(&config) == 1);
}
