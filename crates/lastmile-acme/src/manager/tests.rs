use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::*;
use crate::problem::{Problem, Subproblem};

fn at(seconds: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(seconds)
}

fn problem(kind: &str, detail: &str) -> Problem {
    Problem {
        kind: format!("urn:ietf:params:acme:error:{kind}"),
        detail: detail.to_string(),
        status: Some(400),
        subproblems: Vec::new(),
    }
}

/// Every error and event message, as the server will log them and a user will read them.
#[test]
fn every_message_a_user_reads() {
    let hosts = vec!["app.example.com".to_string(), "www.example.com".to_string()];
    let errors = [
        AcmeError::Config("email `ops` is not a mail address like ops@example.com".to_string()),
        AcmeError::InvalidHost {
            host: "*.example.com".to_string(),
            reason: "wildcards need dns-01 validation, which lastmile does not do",
        },
        AcmeError::Transport {
            url: "https://acme-v02.api.letsencrypt.org/directory".to_string(),
            reason:
                "connecting to acme-v02.api.letsencrypt.org:443: Connection refused (os error 111)"
                    .to_string(),
        },
        AcmeError::Protocol {
            url: "https://ca.example/order/1".to_string(),
            reason: "no Location header".to_string(),
        },
        AcmeError::Refused {
            action: "create an order for app.example.com".to_string(),
            status: 429,
            problem: problem(
                "rateLimited",
                "too many certificates already issued for example.com",
            ),
            retry_after: Some(Duration::from_secs(3600)),
        },
        AcmeError::Validation {
            host: "app.example.com".to_string(),
            problem: problem(
                "connection",
                "198.51.100.7: Fetching http://app.example.com/.well-known/acme-challenge/abc: Connection refused",
            ),
        },
        AcmeError::NoHttp01Challenge {
            host: "app.example.com".to_string(),
            offered: "dns-01, tls-alpn-01".to_string(),
        },
        AcmeError::OrderFailed {
            hosts: "app.example.com, bad.example.com".to_string(),
            problem: Problem {
                subproblems: vec![Subproblem {
                    kind: "urn:ietf:params:acme:error:rejectedIdentifier".to_string(),
                    detail: "policy forbids issuing for this name".to_string(),
                    identifier: Some("bad.example.com".to_string()),
                }],
                ..problem("rejectedIdentifier", "some identifiers were rejected")
            },
        },
        AcmeError::Timeout {
            what: "the order for app.example.com".to_string(),
            after: Duration::from_secs(180),
        },
        AcmeError::Storage {
            operation: "save",
            name: "acme-account-0a1b2c3d4e5f.json".to_string(),
            source: "the secret store is locked".into(),
        },
        AcmeError::StoredUnreadable {
            name: "acme-account-0a1b2c3d4e5f.json".to_string(),
            reason: "key: not a P-256 PKCS#8 key".to_string(),
        },
        AcmeError::BadCertificate("the leaf does not name www.example.com".to_string()),
        AcmeError::Crypto("generate an account key".to_string()),
    ];
    let events = [
        AcmeEvent::Reused {
            hosts: hosts.clone(),
            not_after: at(1_796_169_600),
            renew_at: at(1_790_985_600),
        },
        AcmeEvent::Requesting {
            hosts: hosts.clone(),
            reason: RequestReason::NoCertificate,
        },
        AcmeEvent::Requesting {
            hosts: hosts.clone(),
            reason: RequestReason::RenewalDue {
                not_after: at(1_796_169_600),
            },
        },
        AcmeEvent::Requesting {
            hosts: hosts.clone(),
            reason: RequestReason::StoredUnreadable {
                reason: "expected value at line 1 column 1".to_string(),
            },
        },
        AcmeEvent::Requesting {
            hosts: hosts.clone(),
            reason: RequestReason::Retry,
        },
        AcmeEvent::Issued {
            hosts: hosts.clone(),
            serial: "5f930410142bba39".to_string(),
            not_after: at(1_796_169_600),
            renew_at: at(1_790_985_600),
            replaces: None,
        },
        AcmeEvent::Issued {
            hosts: hosts.clone(),
            serial: "6dfad17d57866f75".to_string(),
            not_after: at(1_796_169_600),
            renew_at: at(1_790_985_600),
            replaces: Some("5f930410142bba39".to_string()),
        },
        AcmeEvent::Failed {
            hosts: hosts.clone(),
            error: AcmeError::Transport {
                url: "https://acme-v02.api.letsencrypt.org/acme/new-order".to_string(),
                reason: "no complete answer within 30s".to_string(),
            },
            retry_in: Some(Duration::from_secs(120)),
        },
    ];
    let mut text = String::new();
    for error in &errors {
        text.push_str(&format!("error: {error}\n"));
    }
    for event in &events {
        text.push_str(&format!("event: {event}\n"));
    }
    insta::assert_snapshot!(text);
}

/// A manager whose CA cannot be reached (nothing listens on 127.0.0.1:9), so any attempt to
/// ask it shows as a transport error.
fn unreachable_manager(
    storage: Arc<dyn crate::Storage>,
) -> (CertManager, Arc<std::sync::Mutex<Vec<String>>>) {
    let config = crate::AcmeConfig {
        request_timeout: Duration::from_secs(2),
        ..crate::AcmeConfig::new("https://127.0.0.1:9/dir")
    };
    let client = Arc::new(AcmeClient::new(config, storage).expect("a client"));
    let events = Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen = Arc::clone(&events);
    let manager = CertManager::new(
        client,
        vec!["app.example.com".to_string()],
        Arc::new(NoChallenges),
    )
    .expect("a valid host")
    .on_event(move |event| seen.lock().expect("lock").push(event.to_string()));
    (manager, events)
}

/// Never asked: these tests stop before any challenge.
struct NoChallenges;

impl Http01Responder for NoChallenges {
    fn publish(&self, _: &str, _: &str) {}
    fn withdraw(&self, _: &str) {}
}

#[tokio::test]
async fn a_failing_storage_is_an_error_not_a_reason_to_ask_the_ca() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let path = dir.path().join("acme");
    let storage = Arc::new(crate::DirStorage::new(&path).expect("storage"));
    // The storage directory replaced by a file: every read fails with ENOTDIR, not NotFound.
    std::fs::remove_dir(&path).expect("remove the directory");
    std::fs::write(&path, b"").expect("a file in its place");
    let (manager, events) = unreachable_manager(storage);

    let error = manager.certificate().await.expect_err("the storage fails");
    assert!(
        matches!(
            error,
            AcmeError::Storage {
                operation: "load",
                ..
            }
        ),
        "{error}"
    );
    assert!(
        events.lock().expect("lock").is_empty(),
        "the CA was not asked"
    );
}

#[tokio::test]
async fn an_unreadable_stored_certificate_is_replaced() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let storage = Arc::new(crate::DirStorage::new(dir.path()).expect("storage"));
    let (manager, events) = unreachable_manager(storage.clone());
    crate::Storage::save(&*storage, &manager.storage_name(), b"{ not json").expect("save");

    let error = manager
        .certificate()
        .await
        .expect_err("the CA is unreachable");
    assert!(matches!(error, AcmeError::Transport { .. }), "{error}");
    let events = events.lock().expect("lock");
    assert_eq!(events.len(), 1, "{events:?}");
    assert!(
        events[0].starts_with(
            "requesting a certificate for app.example.com (the stored one cannot be read: "
        ),
        "{events:?}"
    );
}
