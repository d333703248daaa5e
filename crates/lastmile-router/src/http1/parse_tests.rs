//! Request head parsing: examples, the static error answers, and property tests (arbitrary bytes
//! and mutations of valid requests never panic, give one verdict, and what the router forwards
//! reads back the same way).

use std::mem::MaybeUninit;

use proptest::prelude::*;

use super::{Head, MAX_HEADERS, bare, error_response, parse_head, write_head};
use crate::config::Limits;
use crate::policy::ErrorKind;

/// What a head means for framing and routing, comparable across parses.
type Meaning = (
    usize,
    String,
    Vec<u8>,
    Option<Vec<u8>>,
    Option<u64>,
    bool,
    bool,
);

fn meaning(h: &Head<'_, '_>) -> Meaning {
    (
        h.len,
        h.method.to_string(),
        h.origin.to_vec(),
        h.host.map(<[u8]>::to_vec),
        h.content_length,
        h.chunked,
        h.close,
    )
}

/// Parses `buf`; on success also returns the head the router would forward.
fn parse(buf: &[u8]) -> Result<Option<(Meaning, Vec<u8>)>, ErrorKind> {
    let mut headers = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_HEADERS];
    let limits = Limits::default();
    let head = parse_head(buf, 64 * 1024, &limits, &mut headers)?;
    Ok(head.map(|h| {
        let mut out = Vec::new();
        write_head(&h, b"127.0.0.1", b"0123456789abcdef", false, &mut out);
        (meaning(&h), out)
    }))
}

fn status(buf: &[u8]) -> u16 {
    match parse(buf) {
        Ok(Some(_)) => 200,
        Ok(None) => 0,
        Err(kind) => kind.status(),
    }
}

#[test]
fn h2c_upgrades_are_forwarded_as_plain_requests() {
    let forwarded = |buf: &[u8]| match parse(buf) {
        Ok(Some((_, out))) => String::from_utf8_lossy(&out).to_ascii_lowercase(),
        other => panic!("{other:?}"),
    };
    let ws = forwarded(
        b"GET / HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n",
    );
    assert!(
        ws.contains("\r\nupgrade: websocket\r\n") && ws.contains("\r\nconnection: upgrade\r\n"),
        "{ws}"
    );
    for upgrade in ["h2c", "H2C", "foo, h2c"] {
        let head = format!(
            "GET / HTTP/1.1\r\nHost: x\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: {upgrade}\r\nHTTP2-Settings: AAMAAABkAAQCAAAAAAIAAAAA\r\n\r\n"
        );
        let out = forwarded(head.as_bytes());
        assert!(!out.contains("upgrade"), "{upgrade}: {out}");
        assert!(!out.contains("http2-settings"), "{upgrade}: {out}");
    }
}

#[test]
fn examples() {
    assert_eq!(status(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"), 200);
    assert_eq!(status(b"GET / HTTP/1.1\r\nHost: x\r\n"), 0);
    assert_eq!(status(b"GET / HTTP/1.0\r\n\r\n"), 200);
    assert_eq!(status(b"GET / HTTP/1.1\r\n\r\n"), 400);
    assert_eq!(status(b"GET / HTTP/1.1\nHost: x\n\n"), 400);
    assert_eq!(
        status(b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n"),
        501
    );
    assert_eq!(
        status(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999\r\n\r\n"),
        413
    );
    let mut many = b"GET / HTTP/1.1\r\nHost: x\r\n".to_vec();
    for i in 0..Limits::default().max_headers {
        many.extend_from_slice(format!("x-{i}: 1\r\n").as_bytes());
    }
    many.extend_from_slice(b"\r\n");
    assert_eq!(status(&many), 431);
    // The forwarded head of the smuggling exploit carries the router's own length.
    let Ok(Some((_, out))) = parse(
        b"POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nConnection: content-length, x-a\r\nX-A: 1\r\nX-B: 2\r\n\r\n",
    ) else {
        panic!("refused");
    };
    let out = String::from_utf8_lossy(&out).to_string();
    assert!(
        out.starts_with("POST /a HTTP/1.1\r\nHost: x\r\nX-B: 2\r\ncontent-length: 3\r\n"),
        "{out}"
    );
    assert!(!out.to_ascii_lowercase().contains("x-a:"), "{out}");
    assert!(!out.to_ascii_lowercase().contains("connection"), "{out}");
    // Absolute form: origin-form upstream, the authority becomes the Host.
    let Ok(Some((_, out))) = parse(b"GET http://h:8/p?q HTTP/1.1\r\n\r\n") else {
        panic!("refused");
    };
    let out = String::from_utf8_lossy(&out).to_string();
    assert!(
        out.starts_with("GET /p?q HTTP/1.1\r\nhost: h:8\r\n"),
        "{out}"
    );
}

/// What httparse lets through on its own, so that the checks on top of it stay justified: it
/// accepts bare LF line ends (rejected by `has_bare_lf`) and obs-text in values, and rejects
/// control bytes, obs-fold and whitespace before the colon in requests.
#[test]
fn httparse_leniency_is_what_the_extra_checks_assume() {
    let httparse_ok = |buf: &[u8]| {
        let mut headers = [httparse::EMPTY_HEADER; 8];
        matches!(
            httparse::Request::new(&mut headers).parse(buf),
            Ok(httparse::Status::Complete(_))
        )
    };
    assert!(httparse_ok(b"GET / HTTP/1.1\nHost: x\n\n"));
    assert!(httparse_ok(b"GET / HTTP/1.1\r\nHost: x\nA: 1\r\n\r\n"));
    assert!(httparse_ok(b"GET / HTTP/1.1\r\nHost: x\r\nA: \xff\r\n\r\n"));
    assert!(!httparse_ok(
        b"GET / HTTP/1.1\r\nHost: x\r\nA: a\x0bb\r\n\r\n"
    ));
    assert!(!httparse_ok(
        b"GET / HTTP/1.1\r\nHost: x\r\nA: a\r\n b\r\n\r\n"
    ));
    assert!(!httparse_ok(b"GET / HTTP/1.1\r\nHost : x\r\n\r\n"));
    assert!(!httparse_ok(
        b"GET / HTTP/1.1\r\nHost: x\r\nA: a\rb\r\n\r\n"
    ));
    // And the router refuses what httparse took.
    assert_eq!(status(b"GET / HTTP/1.1\nHost: x\n\n"), 400);
    assert_eq!(status(b"GET / HTTP/1.1\r\nHost: x\nA: 1\r\n\r\n"), 400);
    assert_eq!(status(b"GET / HTTP/1.1\r\nHost: x\r\nA: \xff\r\n\r\n"), 200);
}

#[test]
fn static_answers_match_the_error_table() {
    for kind in [
        ErrorKind::BadRequest,
        ErrorKind::HeadersTooLarge,
        ErrorKind::BodyTooLarge,
        ErrorKind::NotImplemented,
    ] {
        let mut made = Vec::new();
        error_response(&mut made, kind, true, None);
        assert_eq!(
            String::from_utf8_lossy(bare(kind)),
            String::from_utf8_lossy(&made)
        );
    }
}

/// A valid request to mutate.
fn valid_request() -> impl Strategy<Value = Vec<u8>> {
    (
        prop_oneof![Just("GET"), Just("POST"), Just("PUT")],
        "/[a-z0-9/?=&]{0,12}",
        proptest::option::of(0u64..100),
        any::<bool>(),
        proptest::collection::vec(("x-[a-z]{1,6}", "[ -~]{0,12}"), 0..4),
        proptest::option::of("(close|keep-alive|x-a|content-length|host)"),
    )
        .prop_map(|(method, path, length, chunked, extra, connection)| {
            let mut r = format!("{method} {path} HTTP/1.1\r\nHost: example\r\n");
            match (length, chunked) {
                (_, true) => r.push_str("Transfer-Encoding: chunked\r\n"),
                (Some(n), false) => r.push_str(&format!("Content-Length: {n}\r\n")),
                (None, false) => {}
            }
            for (n, v) in extra {
                r.push_str(&format!("{n}: {}\r\n", v.trim()));
            }
            if let Some(c) = connection {
                r.push_str(&format!("Connection: {c}\r\n"));
            }
            r.push_str("\r\n");
            r.into_bytes()
        })
}

#[derive(Debug, Clone)]
enum Mutation {
    Insert(usize, u8),
    Remove(usize),
    Replace(usize, u8),
}

fn mutate(mut r: Vec<u8>, mutations: &[Mutation]) -> Vec<u8> {
    for m in mutations {
        match *m {
            Mutation::Insert(at, b) => {
                let at = at % (r.len() + 1);
                r.insert(at, b);
            }
            Mutation::Remove(at) if !r.is_empty() => {
                let at = at % r.len();
                r.remove(at);
            }
            Mutation::Replace(at, b) if !r.is_empty() => {
                let at = at % r.len();
                r[at] = b;
            }
            _ => {}
        }
    }
    r
}

/// Bytes that matter to HTTP syntax, so that mutations hit the interesting cases often.
fn interesting_byte() -> impl Strategy<Value = u8> {
    prop_oneof![
        Just(b'\r'),
        Just(b'\n'),
        Just(b' '),
        Just(b'\t'),
        Just(b':'),
        Just(b','),
        Just(0x0b),
        Just(0),
        any::<u8>(),
    ]
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<usize>(), interesting_byte()).prop_map(|(a, b)| Mutation::Insert(a, b)),
        any::<usize>().prop_map(Mutation::Remove),
        (any::<usize>(), interesting_byte()).prop_map(|(a, b)| Mutation::Replace(a, b)),
    ]
}

/// What the router forwards must read back with the same meaning (and be forwarded the same).
fn check_round_trip(buf: &[u8]) -> Result<(), TestCaseError> {
    let first = parse(buf);
    prop_assert_eq!(&first, &parse(buf), "not deterministic");
    if let Ok(Some((m, out))) = first {
        let again = parse(&out);
        let Ok(Some((m2, out2))) = again else {
            return Err(TestCaseError::fail(format!(
                "forwarded head refused: {again:?}: {:?}",
                String::from_utf8_lossy(&out)
            )));
        };
        // Same method, target, host and framing; length and Connection differ by design.
        prop_assert_eq!(
            (&m.1, &m.2, &m.3, m.4, m.5),
            (&m2.1, &m2.2, &m2.3, m2.4, m2.5)
        );
        prop_assert!(!m2.6, "forwarded head asks to close");
        // Forwarding is idempotent apart from the appended X-Forwarded-For hop.
        let strip = |h: &[u8]| {
            String::from_utf8_lossy(h)
                .lines()
                .filter(|l| !l.starts_with("x-forwarded-for"))
                .map(str::to_string)
                .collect::<Vec<_>>()
        };
        prop_assert_eq!(strip(&out), strip(&out2));
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..300)) {
        check_round_trip(&data)?;
    }

    #[test]
    fn mutated_requests_round_trip(
        request in valid_request(),
        mutations in proptest::collection::vec(mutation(), 0..4),
    ) {
        let buf = mutate(request, &mutations);
        check_round_trip(&buf)?;
    }
}
