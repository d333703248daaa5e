//! The OFREP router over a real socket: every reason, every error code with
//! its status, bulk ETags and 304, bearer auth, malformed requests, the kill
//! switch, and a real OpenFeature SDK (Python, OFREP provider) as client.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use lastmile_flags::{
    BUCKETS, CanaryLookup, FlagSet, FlagSource, OfrepConfig, Override, ofrep_router,
};
use serde_json::{Value, json};

const SPEC: &str = r##"app: shop
pipeline: { steps: [{ name: build, run: make }] }
environments:
  production: { strategy: canary }
flags:
  color:
    type: string
    variants: { blue: "#00f", red: "#f00" }
    default: red
  new-checkout:
    rules:
      - when: [{ attribute: country, op: in, value: [SE, NO] }]
        variant: on
      - when: [{ attribute: plan, op: equals, value: free }]
        variant: off
  banner:
    type: string
    variants: { plain: "plain", festive: "festive" }
    default: plain
    rules:
      - when: [{ attribute: country, op: equals, value: SE }]
        variant: festive
  half:
    rollout: { on: 50, off: 50 }
  killed:
    enabled: false
    rules:
      - when: [{ attribute: country, op: equals, value: SE }]
        variant: on
  canary-path:
    rollout: { follow_canary: production }
  broken:
    type: string
    variants: { blue: "#00f" }
    default: blue
"##;

/// Every user is on production's canary.
#[derive(Debug)]
struct WholeCanary;

impl CanaryLookup for WholeCanary {
    fn canary_buckets(&self, environment: &str) -> Option<u32> {
        (environment == "production").then_some(BUCKETS)
    }
}

/// The flags in force, swappable as a store would swap them.
#[derive(Debug)]
struct TestSource {
    state: Mutex<(FlagSet, u64)>,
}

impl TestSource {
    fn new(flags: FlagSet) -> Arc<TestSource> {
        Arc::new(TestSource {
            state: Mutex::new((flags, 1)),
        })
    }

    fn replace(&self, flags: FlagSet) {
        let mut state = self.state.lock().expect("source lock");
        let version = state.1 + 1;
        *state = (flags, version);
    }

    fn flags(&self) -> FlagSet {
        self.state.lock().expect("source lock").0.clone()
    }
}

impl FlagSource for TestSource {
    fn snapshot(&self) -> (FlagSet, u64) {
        self.state.lock().expect("source lock").clone()
    }

    fn canary(&self) -> &dyn CanaryLookup {
        &WholeCanary
    }
}

/// The spec's flags, `broken` given a default variant it does not have
/// (what a definition that skipped validation looks like).
fn flags() -> FlagSet {
    let (mut spec, _) = match lastmile_spec::parse("lastmile.yaml", SPEC) {
        Ok(parsed) => parsed,
        Err(errors) => panic!("{}", errors.render(false)),
    };
    for flag in &mut spec.flags {
        if flag.key == "broken" {
            flag.default = "purple".to_owned();
        }
    }
    FlagSet::new(&spec.flags, &spec.segments)
}

/// The router served on 127.0.0.1:0 by its own runtime; dropping it stops
/// the server.
struct Server {
    addr: SocketAddr,
    _runtime: tokio::runtime::Runtime,
}

fn serve(source: Arc<TestSource>, token: Option<&str>) -> Server {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    let listener = runtime
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .expect("bind 127.0.0.1:0");
    let addr = listener.local_addr().expect("local addr");
    let router = ofrep_router(
        source,
        OfrepConfig {
            token: token.map(str::to_owned),
        },
    );
    runtime.spawn(async move { axum::serve(listener, router).await });
    Server {
        addr,
        _runtime: runtime,
    }
}

/// One HTTP response as read off the socket.
#[derive(Debug)]
struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl Reply {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(header, _)| header.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }

    fn json(&self) -> Value {
        assert_eq!(
            self.header("content-type"),
            Some("application/json"),
            "{self:?}"
        );
        serde_json::from_str(&self.body).unwrap_or_else(|error| panic!("{error}: {self:?}"))
    }
}

/// POSTs `body` to `path` with `headers` over a fresh connection.
fn post(addr: SocketAddr, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Reply {
    send(addr, "POST", path, headers, body)
}

/// Sends `method` `path` with `headers` and `body` over a fresh connection.
fn send(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Reply {
    let mut stream = TcpStream::connect(addr).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    let mut request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    stream.write_all(request.as_bytes()).expect("write head");
    stream.write_all(body).expect("write body");
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).expect("read reply");
    let raw = String::from_utf8(raw).expect("UTF-8 reply");
    let (head, body) = raw.split_once("\r\n\r\n").expect("a complete reply");
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|line| line.split(' ').nth(1))
        .and_then(|code| code.parse().ok())
        .expect("status line");
    let headers = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(name, value)| (name.to_owned(), value.trim().to_owned()))
        .collect();
    Reply {
        status,
        headers,
        body: body.to_owned(),
    }
}

const JSON: (&str, &str) = ("Content-Type", "application/json");

/// Request headers, name and value.
type Headers<'a> = &'a [(&'a str, &'a str)];

/// Evaluates flag `key` for `context` (a JSON object text).
fn evaluate(server: &Server, key: &str, context: &str) -> Reply {
    let body = format!("{{\"context\": {context}}}");
    post(
        server.addr,
        &format!("/ofrep/v1/evaluate/flags/{key}"),
        &[JSON],
        body.as_bytes(),
    )
}

fn bulk(server: &Server, context: &str, extra: &[(&str, &str)]) -> Reply {
    let body = format!("{{\"context\": {context}}}");
    let mut headers = vec![JSON];
    headers.extend_from_slice(extra);
    post(
        server.addr,
        "/ofrep/v1/evaluate/flags",
        &headers,
        body.as_bytes(),
    )
}

#[test]
fn every_reason_in_the_success_shape() {
    let server = serve(TestSource::new(flags()), None);
    let cases = [
        ("color", r#"{}"#, json!("#f00"), "red", "STATIC"),
        (
            "new-checkout",
            r#"{"country": "SE"}"#,
            json!(true),
            "on",
            "TARGETING_MATCH",
        ),
        (
            "new-checkout",
            r#"{"country": "DK"}"#,
            json!(false),
            "off",
            "DEFAULT",
        ),
        (
            "killed",
            r#"{"country": "SE"}"#,
            json!(false),
            "off",
            "DISABLED",
        ),
        (
            "canary-path",
            r#"{"targetingKey": "user-1"}"#,
            json!(true),
            "on",
            "SPLIT",
        ),
    ];
    for (key, context, value, variant, reason) in cases {
        let reply = evaluate(&server, key, context);
        assert_eq!(reply.status, 200, "{key} {context}: {reply:?}");
        let body = reply.json();
        assert_eq!(body["key"], json!(key), "{body}");
        assert_eq!(body["value"], value, "{key} {context}: {body}");
        assert_eq!(body["variant"], json!(variant), "{key} {context}: {body}");
        assert_eq!(body["reason"], json!(reason), "{key} {context}: {body}");
        assert!(body["metadata"].is_object(), "{body}");
    }
    // The whole body, exactly: rule numbers travel in metadata.
    let reply = evaluate(&server, "new-checkout", r#"{"country": "NO"}"#);
    assert_eq!(
        reply.json(),
        json!({"key": "new-checkout", "value": true, "variant": "on",
               "reason": "TARGETING_MATCH", "metadata": {"rule": 1}})
    );
    // A split is sticky per targeting key and both shares get users.
    let variants: Vec<Value> = (0..40)
        .map(|user| {
            let context = format!(r#"{{"targetingKey": "user-{user}"}}"#);
            let body = evaluate(&server, "half", &context).json();
            assert_eq!(body["reason"], json!("SPLIT"), "{body}");
            assert_eq!(body, evaluate(&server, "half", &context).json());
            body["value"].clone()
        })
        .collect();
    assert!(variants.contains(&json!(true)) && variants.contains(&json!(false)));
}

#[test]
fn every_error_code_with_its_status() {
    let server = serve(TestSource::new(flags()), None);
    let cases = [
        ("nope", r#"{}"#, 404, "FLAG_NOT_FOUND"),
        ("half", r#"{"country": "SE"}"#, 400, "TARGETING_KEY_MISSING"),
        ("color", r#"{"targetingKey": 7}"#, 400, "INVALID_CONTEXT"),
        (
            "color",
            r#"["not", "an", "object"]"#,
            400,
            "INVALID_CONTEXT",
        ),
        ("color", r#"5"#, 400, "INVALID_CONTEXT"),
        ("broken", r#"{}"#, 400, "GENERAL"),
    ];
    for (key, context, status, code) in cases {
        let reply = evaluate(&server, key, context);
        assert_eq!(reply.status, status, "{key} {context}: {reply:?}");
        let body = reply.json();
        assert_eq!(body["key"], json!(key), "{body}");
        assert_eq!(body["errorCode"], json!(code), "{key} {context}: {body}");
        assert!(
            body["errorDetails"].as_str().is_some_and(|d| !d.is_empty()),
            "{body}"
        );
        assert_eq!(body.as_object().map(|o| o.len()), Some(3), "{body}");
    }
    let reply = evaluate(&server, "nope", "{}");
    assert!(
        reply.json()["errorDetails"]
            .as_str()
            .is_some_and(|d| d.contains("flags:")),
        "the details name the fix: {reply:?}"
    );
}

#[test]
fn malformed_requests_get_the_protocol_json_and_a_400() {
    let server = serve(TestSource::new(flags()), None);
    let single = "/ofrep/v1/evaluate/flags/color";
    let bulk_path = "/ofrep/v1/evaluate/flags";
    let huge = format!("{{\"context\": {{\"blob\": \"{}\"}}}}", "x".repeat(3 << 20));
    let cases: Vec<(Headers<'_>, &[u8], &str)> = vec![
        (&[JSON], b"{\"context\": ", "PARSE_ERROR"),
        (&[JSON], b"not json", "PARSE_ERROR"),
        (&[JSON], b"[1, 2]", "PARSE_ERROR"),
        (&[JSON], b"\"context\"", "PARSE_ERROR"),
        (&[JSON], b"{\"context\": {}} trailing", "PARSE_ERROR"),
        (&[JSON], b"\xff\xfe", "PARSE_ERROR"),
        (
            &[("Content-Type", "text/plain")],
            b"{\"context\": {}}",
            "PARSE_ERROR",
        ),
        (
            &[("Content-Type", "application/x-www-form-urlencoded")],
            b"context=1",
            "PARSE_ERROR",
        ),
        (&[], b"{\"context\": {}}", "PARSE_ERROR"),
        (&[JSON], huge.as_bytes(), "PARSE_ERROR"),
        (&[JSON], b"{\"context\": [1]}", "INVALID_CONTEXT"),
        (&[JSON], b"{\"context\": \"user-1\"}", "INVALID_CONTEXT"),
    ];
    for (headers, body, code) in &cases {
        let shown = String::from_utf8_lossy(&body[..body.len().min(40)]).into_owned();
        let reply = post(server.addr, single, headers, body);
        assert_eq!(reply.status, 400, "{headers:?} {shown}: {reply:?}");
        let json = reply.json();
        assert_eq!(
            json["errorCode"],
            json!(code),
            "{headers:?} {shown}: {json}"
        );
        assert_eq!(json["key"], json!("color"), "{json}");
        assert!(json["errorDetails"].is_string(), "{json}");

        let reply = post(server.addr, bulk_path, headers, body);
        assert_eq!(reply.status, 400, "bulk {headers:?} {shown}: {reply:?}");
        let json = reply.json();
        assert_eq!(json["errorCode"], json!(code), "bulk {shown}: {json}");
        assert!(
            json.get("key").is_none(),
            "bulk failures carry no key: {json}"
        );
        assert!(reply.header("etag").is_none(), "{reply:?}");
    }
    // The request body is optional in the OpenAPI document: none, `{}` and a
    // null context are all the empty context.
    for (headers, body) in [
        (&[][..], &b""[..]),
        (&[JSON][..], &b"{}"[..]),
        (&[JSON][..], &b"{\"context\": null}"[..]),
        (
            &[("Content-Type", "application/json; charset=utf-8")][..],
            &b"{\"context\": {}, \"extra\": 1}"[..],
        ),
    ] {
        let reply = post(server.addr, single, headers, body);
        assert_eq!(reply.status, 200, "{reply:?}");
        assert_eq!(reply.json()["reason"], json!("STATIC"));
        let reply = post(server.addr, bulk_path, headers, body);
        assert_eq!(reply.status, 200, "{reply:?}");
    }
    // A key percent-decoding to invalid UTF-8 is a parse error, not a 500.
    let reply = post(server.addr, "/ofrep/v1/evaluate/flags/%FF", &[JSON], b"{}");
    assert_eq!(reply.status, 400, "{reply:?}");
    assert_eq!(reply.json()["errorCode"], json!("PARSE_ERROR"));
}

#[test]
fn bulk_evaluates_every_flag_with_an_etag_and_304() {
    let source = TestSource::new(flags());
    let server = serve(source.clone(), None);
    let context = r#"{"targetingKey": "user-1", "country": "SE"}"#;
    let reply = bulk(&server, context, &[]);
    assert_eq!(reply.status, 200, "{reply:?}");
    let tag = reply.header("etag").expect("an ETag").to_owned();
    assert!(tag.starts_with('"') && tag.ends_with('"'), "{tag}");
    let body = reply.json();
    let listed: BTreeMap<String, Value> = body["flags"]
        .as_array()
        .expect("flags array")
        .iter()
        .map(|flag| (flag["key"].as_str().expect("key").to_owned(), flag.clone()))
        .collect();
    assert_eq!(
        listed.keys().map(String::as_str).collect::<Vec<_>>(),
        source.flags().keys().collect::<Vec<_>>()
    );
    assert_eq!(listed["new-checkout"]["reason"], json!("TARGETING_MATCH"));
    assert_eq!(listed["banner"]["value"], json!("festive"));
    assert_eq!(listed["killed"]["reason"], json!("DISABLED"));
    assert_eq!(listed["color"]["reason"], json!("STATIC"));
    assert_eq!(listed["half"]["reason"], json!("SPLIT"));
    assert_eq!(listed["broken"]["errorCode"], json!("GENERAL"));
    assert!(listed["broken"]["errorDetails"].is_string());

    // Without a key the split flag fails inline; the others still answer.
    let keyless = bulk(&server, r#"{"country": "SE"}"#, &[]);
    assert_eq!(keyless.status, 200);
    let keyless_body = keyless.json();
    let half = keyless_body["flags"]
        .as_array()
        .and_then(|flags| flags.iter().find(|flag| flag["key"] == json!("half")))
        .expect("half listed");
    assert_eq!(half["errorCode"], json!("TARGETING_KEY_MISSING"), "{half}");

    // Same context (other spacing and key order): same tag, 304, no body.
    let same = r#"{ "country":"SE","targetingKey":"user-1" }"#;
    let again = bulk(&server, same, &[]);
    assert_eq!(again.header("etag"), Some(tag.as_str()));
    let cached = bulk(&server, same, &[("If-None-Match", &tag)]);
    assert_eq!(cached.status, 304, "{cached:?}");
    assert_eq!(cached.body, "");
    assert_eq!(cached.header("etag"), Some(tag.as_str()));
    let weak = format!("\"other\", W/{tag}");
    assert_eq!(bulk(&server, same, &[("If-None-Match", &weak)]).status, 304);

    // Another context: another tag, so the first one's cache does not apply.
    let other = bulk(
        &server,
        r#"{"targetingKey": "user-2", "country": "SE"}"#,
        &[("If-None-Match", &tag)],
    );
    assert_eq!(other.status, 200, "{other:?}");
    assert_ne!(other.header("etag"), Some(tag.as_str()));
    assert_ne!(keyless.header("etag"), Some(tag.as_str()));

    // New flags: the old tag no longer matches and the answer is fresh.
    let mut overrides = BTreeMap::new();
    overrides.insert(
        "new-checkout".to_owned(),
        Override {
            enabled: Some(false),
            ..Override::default()
        },
    );
    source.replace(source.flags().with_overrides(&overrides).expect("override"));
    let changed = bulk(&server, context, &[("If-None-Match", &tag)]);
    assert_eq!(changed.status, 200, "{changed:?}");
    assert_ne!(changed.header("etag"), Some(tag.as_str()));
    assert!(changed.body.contains("DISABLED"));
}

/// Every refusal is the protocol's JSON: another method gets a 405 with
/// `Allow: POST`, a compressed (or otherwise encoded) body a 415, never an
/// empty body nor a plain-text one.
#[test]
fn other_methods_and_encoded_bodies_are_refused_in_json() {
    let server = serve(TestSource::new(flags()), None);
    for path in ["/ofrep/v1/evaluate/flags/color", "/ofrep/v1/evaluate/flags"] {
        for method in ["GET", "PUT", "DELETE", "PATCH"] {
            let reply = send(server.addr, method, path, &[], b"");
            assert_eq!(reply.status, 405, "{method} {path}: {reply:?}");
            assert_eq!(reply.header("allow"), Some("POST"), "{reply:?}");
            let json = reply.json();
            assert!(
                json["errorDetails"]
                    .as_str()
                    .is_some_and(|details| details.contains("POST")),
                "{json}"
            );
        }
        for encoding in ["gzip", "br", "identity, gzip"] {
            let reply = post(
                server.addr,
                path,
                &[JSON, ("Content-Encoding", encoding)],
                b"{\"context\": {}}",
            );
            assert_eq!(reply.status, 415, "{encoding} {path}: {reply:?}");
            let json = reply.json();
            assert!(
                json["errorDetails"]
                    .as_str()
                    .is_some_and(|details| details.contains("Content-Encoding")),
                "{json}"
            );
        }
        // `identity` is no encoding at all.
        let reply = post(
            server.addr,
            path,
            &[JSON, ("Content-Encoding", "identity")],
            b"{\"context\": {}}",
        );
        assert_eq!(reply.status, 200, "{path}: {reply:?}");
    }
}

#[test]
fn a_token_is_required_when_configured() {
    let server = serve(TestSource::new(flags()), Some("s3cret"));
    for path in ["/ofrep/v1/evaluate/flags/color", "/ofrep/v1/evaluate/flags"] {
        let reply = post(server.addr, path, &[JSON], b"{}");
        assert_eq!(reply.status, 401, "{path}: {reply:?}");
        assert_eq!(reply.header("www-authenticate"), Some("Bearer"));
        assert!(reply.json()["errorDetails"].is_string());

        // Authentication is checked before the body is read.
        let reply = post(server.addr, path, &[JSON], b"{not json");
        assert_eq!(reply.status, 401, "{path}: {reply:?}");

        for wrong in [
            "Basic czNjcmV0",
            "Bearer",
            "Bearer s3cre",
            "Bearer s3cret2",
            "Bearer S3CRET",
        ] {
            let reply = post(server.addr, path, &[JSON, ("Authorization", wrong)], b"{}");
            let expected = if wrong.starts_with("Bearer ") {
                403
            } else {
                401
            };
            assert_eq!(reply.status, expected, "{path} {wrong}: {reply:?}");
            assert!(reply.json()["errorDetails"].is_string());
        }
        let reply = post(
            server.addr,
            path,
            &[JSON, ("Authorization", "Bearer s3cret")],
            b"{}",
        );
        assert_eq!(reply.status, 200, "{path}: {reply:?}");
        let reply = post(
            server.addr,
            path,
            &[JSON, ("authorization", "bearer s3cret")],
            b"{}",
        );
        assert_eq!(reply.status, 200, "{path}: {reply:?}");
    }
}

#[test]
fn the_kill_switch_applies_to_the_very_next_request() {
    let source = TestSource::new(flags());
    let server = serve(source.clone(), None);
    let context = r#"{"targetingKey": "user-1", "country": "SE"}"#;
    let before = evaluate(&server, "new-checkout", context).json();
    assert_eq!(before["reason"], json!("TARGETING_MATCH"));
    assert_eq!(before["value"], json!(true));

    let mut overrides = BTreeMap::new();
    overrides.insert(
        "new-checkout".to_owned(),
        Override {
            enabled: Some(false),
            ..Override::default()
        },
    );
    source.replace(source.flags().with_overrides(&overrides).expect("override"));
    let after = evaluate(&server, "new-checkout", context).json();
    assert_eq!(after["reason"], json!("DISABLED"), "{after}");
    assert_eq!(after["value"], json!(false));

    source.replace(
        source
            .flags()
            .with_overrides(&BTreeMap::new())
            .expect("reset"),
    );
    let back = evaluate(&server, "new-checkout", context).json();
    assert_eq!(back["reason"], json!("TARGETING_MATCH"), "{back}");
}

/// A child process killed and reaped when dropped.
struct Reaped(Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn the_openfeature_python_sdk_with_the_ofrep_provider_agrees() {
    let server = serve(TestSource::new(flags()), Some("py-token"));
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/ofrep_client.py");
    let child = Command::new("python3")
        .arg(script)
        .arg(format!("http://{}", server.addr))
        .arg("py-token")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3 runs (scripts/test installs it)");
    let mut child = Reaped(child);
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = child.0.try_wait().expect("wait for python3") {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "the OpenFeature client did not finish in 30 s"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut stdout = String::new();
    let mut stderr = String::new();
    if let Some(mut out) = child.0.stdout.take() {
        out.read_to_string(&mut stdout).expect("stdout");
    }
    if let Some(mut err) = child.0.stderr.take() {
        err.read_to_string(&mut stderr).expect("stderr");
    }
    assert_ne!(
        status.code(),
        Some(3),
        "the OpenFeature Python SDK is not installed ({}); run scripts/test, which installs \
         openfeature-sdk and openfeature-provider-ofrep",
        stderr.trim()
    );
    assert!(status.success(), "ofrep_client.py failed: {stderr}");
    let results: Value =
        serde_json::from_str(&stdout).unwrap_or_else(|error| panic!("{error}: {stdout}\n{stderr}"));

    let boolean = &results["boolean"];
    assert_eq!(boolean["value"], json!(true), "{results}");
    assert_eq!(boolean["variant"], json!("on"));
    assert_eq!(boolean["reason"], json!("TARGETING_MATCH"));
    assert_eq!(boolean["error_code"], Value::Null);
    assert_eq!(boolean["metadata"], json!({"rule": 1}));

    let targeted = &results["string_targeted"];
    assert_eq!(targeted["value"], json!("festive"), "{results}");
    assert_eq!(targeted["reason"], json!("TARGETING_MATCH"));
    let untargeted = &results["string_untargeted"];
    assert_eq!(untargeted["value"], json!("plain"), "{results}");
    assert_eq!(untargeted["reason"], json!("DEFAULT"));

    let missing = &results["missing"];
    assert_eq!(missing["value"], json!("fallback"), "{results}");
    assert_eq!(missing["error_code"], json!("FLAG_NOT_FOUND"));
    assert_eq!(missing["reason"], json!("ERROR"));

    let keyless = &results["split_without_key"];
    assert_eq!(keyless["value"], json!(false), "{results}");
    assert_eq!(keyless["error_code"], json!("TARGETING_KEY_MISSING"));

    let wrong_token = &results["wrong_token"];
    assert_eq!(wrong_token["value"], json!(false), "{results}");
    assert_eq!(wrong_token["error_code"], json!("GENERAL"));
    assert_eq!(wrong_token["error_message"], json!("forbidden"));
}
