//! `parse` returns an answer, never a panic, whatever it is given, and every
//! error it returns has a place and a hint.

use proptest::prelude::*;

use lastmile_spec::parse;

/// Keys from every level of the schema, plus a few strangers.
const KEYS: &[&str] = &[
    "app",
    "pipeline",
    "steps",
    "name",
    "run",
    "needs",
    "env",
    "timeout",
    "retries",
    "inputs",
    "outputs",
    "secrets",
    "workdir",
    "artifact",
    "paths",
    "service",
    "health",
    "path",
    "interval",
    "healthy_threshold",
    "unhealthy_threshold",
    "start_timeout",
    "stop",
    "signal",
    "grace",
    "environments",
    "production",
    "instances",
    "strategy",
    "type",
    "batch",
    "max_surge",
    "rollback_window",
    "step_duration",
    "min_requests",
    "step_deadline",
    "max_error_rate_increase",
    "max_latency_ratio",
    "gates",
    "approval",
    "verify",
    "status",
    "body_contains",
    "route",
    "listen",
    "host",
    "path_prefix",
    "tls",
    "cert",
    "key",
    "acme",
    "email",
    "directory",
    "ca",
    "redirect_from",
    "hsts",
    "max_age",
    "include_subdomains",
    "preload",
    "limits",
    "max_body",
    "max_headers",
    "max_connections",
    "max_connections_per_ip",
    "body_timeout",
    "idle_timeout",
    "send_timeout",
    "rate_limit",
    "per_second",
    "burst",
    "promote",
    "analysis",
    "confidence",
    "max_p95_ratio",
    "max_p99_ms",
    "latency_floor_ms",
    "warmup_requests",
    "warmup",
    "prometheus",
    "query",
    "max",
    "mirror",
    "percent",
    "methods",
    "duration",
    "guard",
    "cohort",
    "header",
    "cookie",
    "set_cookie",
    "pins",
    "value",
    "to",
    "notify",
    "url",
    "format",
    "webhooks",
    "before",
    "after",
    "rollback",
    "file",
    "flags",
    "segments",
    "variants",
    "default",
    "enabled",
    "rules",
    "when",
    "segment",
    "variant",
    "rollout",
    "follow_canary",
    "attribute",
    "op",
    "monitor",
    "drills",
    "hosts",
    "nedds",
    "",
];

const SCALARS: &[&str] = &[
    "build",
    "test",
    "10s",
    "10",
    "-1",
    "0",
    "1.5",
    "100",
    "5%",
    "150%",
    "canary",
    "pause",
    "GET",
    "get",
    "slack",
    "https://hooks.example/x",
    "http://",
    "x-user-id",
    "0.9999",
    "rolling",
    "blue-green",
    "recreate",
    "required",
    "manual",
    "SIGTERM",
    "KILL",
    ":8080",
    ":0",
    "127.0.0.1:70000",
    "[::1]:1",
    "/healthz",
    "~",
    "true",
    "\"\"",
    "'  '",
    "1m30s",
    "semver_gte",
    "2.1.0-rc.1",
    "in",
    "on",
    "off",
    "é",
    "*missing",
    "&anchor x",
    "!!binary aGk=",
    "99999999999999999999999999999",
    ":443",
    ":80",
    "0.0.0.0:443",
    "hello.example.com",
    "*.example.com",
    "203.0.113.7",
    "ops@example.com",
    "ops@",
    "https://acme-v02.api.letsencrypt.org/directory",
    "certs/hello.pem",
    "10MiB",
    "1.5 GB",
    "10mb",
    "0B",
    "99999999999999999999TiB",
    "365d",
    "false",
    "{}",
    "{ acme: {} }",
    "{ cert: a.pem, key: b.pem }",
    "{ per_second: 50, burst: 100 }",
    "grüße",
    "\"Köln 5%\"",
    "http://:9090/metrics",
    "\"[::1]\"",
    ".nan",
    "-.inf",
    "99%",
    "/health z",
];

/// A YAML-ish document: nested maps and lists of schema keys and odd scalars.
fn document() -> impl Strategy<Value = String> {
    let scalar = proptest::sample::select(SCALARS).prop_map(str::to_owned);
    let tree = scalar.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..5)
                .prop_map(|items| format!("[{}]", items.join(", "))),
            proptest::collection::vec((proptest::sample::select(KEYS), inner), 0..6).prop_map(
                |entries| {
                    let body: Vec<String> = entries
                        .iter()
                        .map(|(key, value)| format!("{key}: {value}"))
                        .collect();
                    format!("{{{}}}", body.join(", "))
                }
            ),
        ]
    });
    proptest::collection::vec((proptest::sample::select(KEYS), tree), 0..8).prop_map(|entries| {
        entries
            .iter()
            .map(|(key, value)| format!("{key}: {value}\n"))
            .collect::<String>()
    })
}

/// Block-style documents, so indentation errors are exercised too.
fn block_document() -> impl Strategy<Value = String> {
    proptest::collection::vec(
        (
            0usize..4,
            proptest::bool::ANY,
            proptest::sample::select(KEYS),
            proptest::sample::select(SCALARS),
        ),
        0..16,
    )
    .prop_map(|lines| {
        lines
            .iter()
            .map(|(depth, item, key, value)| {
                let dash = if *item { "- " } else { "" };
                format!("{}{dash}{key}: {value}\n", "  ".repeat(*depth))
            })
            .collect()
    })
}

/// Valid routes with TLS and limits whose words the mutation test replaces, so
/// nearly-valid TLS and limits sections are exercised, not only random ones.
const SEEDS: &[&str] = &[
    "app: hello\npipeline: { steps: [{ name: build, run: make }] }\nenvironments:\n  production:\n    route:\n      listen: \":443\"\n      host: hello.example.com\n      tls:\n        acme: { email: ops@example.com, directory: \"https://localhost:14000/dir\", ca: root.pem }\n        redirect_from: \":5002\"\n        hsts: { max_age: 365d, include_subdomains: true, preload: true }\n      limits:\n        max_body: 10MiB\n        max_headers: 100\n        max_connections: 10000\n        max_connections_per_ip: 1000\n        body_timeout: 30s\n        idle_timeout: 60s\n        send_timeout: 60s\n        rate_limit: { per_second: 50, burst: 100 }\n",
    "app: hello\npipeline: { steps: [{ name: build, run: make }] }\nenvironments:\n  staging: { route: { listen: \":443\", host: a.example.com, tls: { cert: a.pem, key: a-key.pem, redirect_from: \":80\", hsts: true }, limits: &l { max_body: 1MiB } } }\n  production: { route: { listen: \":443\", host: b.example.com, tls: { acme: {} }, limits: *l } }\n",
];

#[test]
fn the_seeds_are_valid_specs() {
    for seed in SEEDS {
        if let Err(errors) = parse("lastmile.yaml", seed) {
            panic!("{}", errors.render(false));
        }
    }
}

fn check_never_panics(source: &str) {
    match parse("lastmile.yaml", source) {
        Ok((_, warnings)) => {
            let _ = lastmile_spec::render_warnings("lastmile.yaml", source, &warnings, false);
        }
        Err(errors) => {
            assert!(!errors.diagnostics().is_empty(), "an error always says why");
            for diagnostic in errors.diagnostics() {
                assert!(
                    diagnostic.hint.is_some(),
                    "every error has a hint: {diagnostic:?}"
                );
                if diagnostic.code == "spec::too-large" {
                    // A limit of the whole file has no place in it.
                    assert_eq!(
                        (diagnostic.line, diagnostic.column),
                        (0, 0),
                        "{diagnostic:?}"
                    );
                } else {
                    assert!(
                        diagnostic.line >= 1 && diagnostic.column >= 1,
                        "{diagnostic:?}"
                    );
                }
            }
            let rendered = errors.render(false);
            // The human header and --json name the same place, in characters.
            for diagnostic in errors.diagnostics() {
                if diagnostic.line == 0 {
                    continue;
                }
                let place = format!("lastmile.yaml:{}:{}]", diagnostic.line, diagnostic.column);
                assert!(
                    rendered.contains(&place),
                    "{place} for {diagnostic:?} in\n{rendered}"
                );
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
        check_never_panics(&String::from_utf8_lossy(&bytes));
    }

    #[test]
    fn yaml_shaped_documents_never_panic(source in document()) {
        check_never_panics(&source);
    }

    #[test]
    fn block_documents_never_panic(source in block_document()) {
        check_never_panics(&source);
    }

    #[test]
    fn mutated_seeds_never_panic(
        seed in proptest::sample::select(SEEDS),
        edits in proptest::collection::vec((any::<proptest::sample::Index>(), proptest::sample::select(SCALARS)), 1..4),
        cut in any::<proptest::sample::Index>(),
        truncate in proptest::bool::ANY,
    ) {
        let mut source = seed.to_owned();
        for (at, replacement) in edits {
            // Replace one word with an odd scalar, keeping UTF-8 boundaries.
            let words: Vec<(usize, &str)> = source
                .match_indices(|character: char| character.is_alphanumeric())
                .collect();
            let Some(&(start, _)) = words.get(at.index(words.len().max(1))) else { continue };
            let end = source[start..]
                .find(|character: char| !(character.is_alphanumeric() || character == '_'))
                .map_or(source.len(), |length| start + length);
            source.replace_range(start..end, replacement);
        }
        if truncate && !source.is_empty() {
            let mut at = cut.index(source.len());
            while !source.is_char_boundary(at) {
                at -= 1;
            }
            source.truncate(at);
        }
        check_never_panics(&source);
    }
}
