use proptest::prelude::*;

use super::*;
use crate::directory::Directory;
use crate::wire::{Authorization, Order};

#[test]
fn problem_documents_read_as_the_server_wrote_them() {
    struct Case {
        body: &'static str,
        kind: &'static str,
        shown: &'static str,
    }
    let cases = [
        Case {
            body: r#"{"type":"urn:ietf:params:acme:error:connection","detail":"127.0.0.1: Connection refused","status":400}"#,
            kind: "connection",
            shown: "127.0.0.1: Connection refused (connection)",
        },
        Case {
            body: r#"{"type":"urn:ietf:params:acme:error:badNonce"}"#,
            kind: "badNonce",
            shown: "badNonce",
        },
        Case {
            body: r#"{"detail":"no type"}"#,
            kind: "about:blank",
            shown: "no type (about:blank)",
        },
        Case {
            body: r#"{"type":"urn:ietf:params:acme:error:rejectedIdentifier","detail":"some names refused",
                "subproblems":[{"type":"urn:ietf:params:acme:error:rejectedIdentifier","detail":"blocked",
                "identifier":{"type":"dns","value":"bad.example"}},{"detail":"x"},7]}"#,
            kind: "rejectedIdentifier",
            shown: "some names refused (rejectedIdentifier); bad.example: blocked (rejectedIdentifier); (no identifier): x (about:blank)",
        },
        Case {
            body: "{\"type\":42,\"detail\":\"line\\nbreak\\u0007\",\"status\":99999}",
            kind: "about:blank",
            shown: "line break  (about:blank)",
        },
    ];
    for case in cases {
        let problem = Problem::parse(case.body.as_bytes()).expect(case.body);
        assert_eq!(problem.short_kind(), case.kind, "{}", case.body);
        assert_eq!(problem.to_string(), case.shown, "{}", case.body);
    }
    assert_eq!(Problem::parse(b"[]"), None);
    assert_eq!(Problem::parse(b"<html>"), None);
    let long = format!(r#"{{"detail":"{}"}}"#, "x".repeat(5000));
    let problem = Problem::parse(long.as_bytes()).expect("a long detail");
    assert_eq!(
        problem.detail.chars().count(),
        1025,
        "cut at 1024 characters plus an ellipsis"
    );
}

#[test]
fn directories_need_https_urls_for_nonce_account_and_order() {
    let good = r#"{"newNonce":"https://ca.test/nonce","newAccount":"https://ca.test/acct",
        "newOrder":"https://ca.test/order","keyChange":"https://ca.test/key","meta":{"termsOfService":"https://ca.test/tos"}}"#;
    let directory = Directory::parse(good.as_bytes()).expect("a directory");
    assert_eq!(directory.new_order, "https://ca.test/order");
    assert!(!directory.external_account_required);

    let cases: [(&str, &str); 6] = [
        ("not json", "not JSON"),
        ("[]", "not a JSON object"),
        (
            r#"{"newAccount":"https://a.test/","newOrder":"https://a.test/"}"#,
            "no `newNonce` URL",
        ),
        (
            r#"{"newNonce":"http://a.test/n","newAccount":"https://a.test/","newOrder":"https://a.test/"}"#,
            "`newNonce`: `http://a.test/n` is not an https:// URL",
        ),
        (
            r#"{"newNonce":"https://a.test/n","newAccount":7,"newOrder":"https://a.test/"}"#,
            "no `newAccount` URL",
        ),
        (
            r#"{"newNonce":"https://a.test/n","newAccount":"https://a.test/a","newOrder":"https:///x"}"#,
            "`newOrder`",
        ),
    ];
    for (body, expected) in cases {
        let error = Directory::parse(body.as_bytes()).expect_err(body);
        assert!(error.contains(expected), "{body}: {error}");
    }
    let eab = r#"{"newNonce":"https://a.test/n","newAccount":"https://a.test/a","newOrder":"https://a.test/o",
        "meta":{"externalAccountRequired":true}}"#;
    assert!(
        Directory::parse(eab.as_bytes())
            .expect("a directory")
            .external_account_required
    );
}

proptest! {
    #[test]
    fn arbitrary_bytes_never_panic_the_parsers(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = Problem::parse(&bytes);
        let _ = Directory::parse(&bytes);
        let _ = serde_json::from_slice::<Order>(&bytes);
        let _ = serde_json::from_slice::<Authorization>(&bytes);
        let _ = crate::Certificate::from_json(&bytes);
        let text = String::from_utf8_lossy(&bytes).into_owned();
        let _ = crate::timestamp::parse_http_date(&text);
        let _ = crate::Certificate::from_issued(&["a.example".to_string()], text, String::new(), b"");
    }

    #[test]
    fn arbitrary_json_never_panics_the_parsers(value in json_value()) {
        let bytes = value.to_string().into_bytes();
        let _ = Problem::parse(&bytes);
        let _ = Problem::from_value(&value);
        let _ = Directory::parse(&bytes);
        let _ = serde_json::from_slice::<Order>(&bytes);
        let _ = serde_json::from_slice::<Authorization>(&bytes);
    }
}

/// JSON values biased towards the keys the parsers look at, so the generator reaches them.
fn json_value() -> impl Strategy<Value = Value> {
    let key = prop_oneof![
        Just("type".to_string()),
        Just("detail".to_string()),
        Just("status".to_string()),
        Just("subproblems".to_string()),
        Just("identifier".to_string()),
        Just("value".to_string()),
        Just("newNonce".to_string()),
        Just("newAccount".to_string()),
        Just("newOrder".to_string()),
        Just("meta".to_string()),
        Just("externalAccountRequired".to_string()),
        Just("authorizations".to_string()),
        Just("challenges".to_string()),
        Just("token".to_string()),
        Just("url".to_string()),
        Just("error".to_string()),
        ".{0,8}",
    ];
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        ".{0,40}".prop_map(Value::from),
        Just(Value::from("https://ca.test/x")),
        Just(Value::from("urn:ietf:params:acme:error:badNonce")),
        Just(Value::from("valid")),
    ];
    leaf.prop_recursive(4, 64, 8, move |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..8).prop_map(Value::from),
            proptest::collection::btree_map(key.clone(), inner, 0..8)
                .prop_map(|map| Value::Object(map.into_iter().collect())),
        ]
    })
}
