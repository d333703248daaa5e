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
