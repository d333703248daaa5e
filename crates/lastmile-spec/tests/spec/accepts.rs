//! Valid specs: the documented example, every field, defaults, reserved
//! sections and loading from disk.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use lastmile_spec::{
    Acme, Canary, CanaryAnalysis, CanaryStep, Cohort, CohortKey, HealthCheck, Hsts,
    LETS_ENCRYPT_DIRECTORY, LoadError, Mirror, Notify, NotifyFormat, Pin, PinTarget,
    PrometheusCheck, Promote, RateLimit, RouteLimits, SPEC_FILE, Severity, StopPolicy, StopSignal,
    Strategy, TlsSource, VerifyCheck, Webhook, Webhooks, load, parse, parse_duration,
    render_warnings,
};

use crate::yaml;

const EXAMPLE: &str = "\
app: hello
pipeline:
  steps:
    - name: build
      run: cargo build --release -p hello
    - name: test
      run: cargo test -p hello
      needs: [build]
artifact:
  paths: [target/release/hello]
service:
  run: ./target/release/hello      # listens on $PORT
  health: { path: /healthz }
environments:
  production: { instances: 2, strategy: blue-green }
";

#[test]
fn the_documented_example_parses_with_defaults_filled_in() {
    let (spec, warnings) = parse("lastmile.yaml", EXAMPLE).expect("the example is valid");
    assert!(warnings.is_empty());
    assert_eq!(spec.app, "hello");
    let names: Vec<&str> = spec
        .pipeline
        .steps
        .iter()
        .map(|step| step.name.as_str())
        .collect();
    assert_eq!(names, ["build", "test"]);
    let test = spec.step("test").expect("test step");
    assert_eq!(test.needs, ["build"]);
    assert_eq!(test.retries, 0);
    assert_eq!(test.timeout, None);
    assert_eq!(test.workdir, None);
    assert!(test.env.is_empty() && test.inputs.is_empty() && test.outputs.is_empty());
    assert_eq!(
        spec.artifact.expect("artifact").paths,
        ["target/release/hello"]
    );
    let service = spec.service.expect("service");
    assert_eq!(service.run, "./target/release/hello");
    assert_eq!(
        service.health,
        HealthCheck {
            path: "/healthz".to_owned(),
            interval: Duration::from_secs(1),
            timeout: Duration::from_secs(2),
            healthy_threshold: 1,
            unhealthy_threshold: 3,
            start_timeout: Duration::from_secs(60),
        }
    );
    assert_eq!(
        service.stop,
        StopPolicy {
            signal: StopSignal::Sigterm,
            grace: Duration::from_secs(30)
        }
    );
    assert_eq!(spec.secrets.file, None);
    let production = &spec.environments[0];
    assert_eq!(production.name, "production");
    assert_eq!(production.instances, 2);
    assert_eq!(
        production.strategy,
        Strategy::BlueGreen {
            rollback_window: Duration::from_secs(600)
        }
    );
    assert_eq!(production.promote, Promote::Auto);
    assert!(!production.gates.approval_required);
    assert_eq!(production.route, None);
}

#[test]
fn an_environment_with_nothing_under_it_takes_every_default() {
    let source = yaml(&[
        "app: hello",
        "pipeline: { steps: [{ name: build, run: make }] }",
        "environments:",
        "  staging:",
        "  production: {}",
    ]);
    let (spec, _) = parse("lastmile.yaml", &source).expect("valid");
    for environment in &spec.environments {
        assert_eq!(environment.instances, 1);
        assert_eq!(
            environment.strategy,
            Strategy::Rolling {
                batch: 1,
                max_surge: 1
            }
        );
        assert_eq!(environment.promote, Promote::Auto);
    }
    let names: Vec<&str> = spec
        .environments
        .iter()
        .map(|env| env.name.as_str())
        .collect();
    assert_eq!(names, ["staging", "production"], "file order is kept");
}

#[test]
fn a_bare_canary_gets_the_documented_defaults() {
    let source = yaml(&[
        "app: hello",
        "pipeline: { steps: [{ name: build, run: make }] }",
        "environments: { production: { strategy: canary } }",
    ]);
    let (spec, _) = parse("lastmile.yaml", &source).expect("valid");
    assert_eq!(
        spec.environments[0].strategy,
        Strategy::Canary(Canary {
            steps: weights(&[1.0, 5.0, 25.0, 50.0, 100.0]),
            step_duration: Duration::from_secs(30),
            min_requests: 100,
            step_deadline: Duration::from_secs(600),
            max_error_rate_increase: 1.0,
            max_latency_ratio: 1.5,
            analysis: CanaryAnalysis {
                interval: Duration::from_secs(1),
                confidence: 0.99,
                max_p95_ratio: 1.5,
                max_p99_ms: None,
                max_p95_ms: None,
                latency_floor_ms: 5.0,
                warmup_requests: 20,
                warmup: Duration::ZERO,
                prometheus: None,
            },
            mirror: None,
            guard: Duration::ZERO,
        })
    );
    let production = &spec.environments[0];
    assert_eq!(production.cohort, None);
    assert!(production.pins.is_empty() && production.notify.is_empty());
    assert_eq!(production.gates.webhooks, Webhooks::default());
}

/// Canary steps that are all weights.
fn weights(percents: &[f64]) -> Vec<CanaryStep> {
    percents.iter().copied().map(CanaryStep::Weight).collect()
}

const EVERY_FIELD: &str = "\
app: shop-api
pipeline:
  steps:
    - name: build
      run: cargo build --release
      env: { RUST_LOG: debug, JOBS: 4, VERBOSE: true, RATIO: 1.10, COLOR: no, FAST: on }
      timeout: 1m30s
      retries: 2
      inputs: [Cargo.toml, Cargo.lock, \"src/**\"]
      outputs: [target/release/shop]
      workdir: server
    - name: publish
      run: ./publish.sh
      needs: [build]
      secrets: [REGISTRY_TOKEN]
artifact:
  paths: [target/release/shop, static]
secrets:
  file: .env.secrets
service:
  run: ./target/release/shop
  env: { PROFILE: prod }
  health:
    path: /ready
    interval: 500ms
    timeout: 1s
    healthy_threshold: 2
    unhealthy_threshold: 5
    start_timeout: 2m
  stop: { signal: INT, grace: 10s }
environments:
  staging:
    instances: 1
    strategy: { type: rolling, batch: 2, max_surge: 0 }
    route: { listen: \":8080\" }
  preview:
    strategy: { type: recreate }
    route: { listen: \"[::1]:8082\", path_prefix: /preview }
  production:
    instances: 4
    strategy:
      type: canary
      steps: [1, \"5%\", 25, 50, 100]
      step_duration: 1m
      min_requests: 500
      step_deadline: 15m
      max_error_rate_increase: 0.5
      max_latency_ratio: 1.2
    gates:
      approval: required
      verify:
        - path: /healthz
        - { path: /version, status: 200, body_contains: shop }
        - { run: ./smoke.sh, timeout: 30s }
    route: { listen: \"127.0.0.1:8081\", host: shop.example.com, path_prefix: /api }
    promote: manual
";

#[test]
fn a_spec_using_every_field_reads_every_value() {
    let (spec, warnings) = parse("lastmile.yaml", EVERY_FIELD).expect("valid");
    assert!(warnings.is_empty());
    let build = spec.step("build").expect("build");
    let env: BTreeMap<&str, &str> = build
        .env
        .iter()
        .map(|(key, value)| (key.as_str(), value.as_str()))
        .collect();
    assert_eq!(
        env,
        BTreeMap::from([
            ("COLOR", "no"),
            ("FAST", "on"),
            ("JOBS", "4"),
            ("RATIO", "1.10"),
            ("RUST_LOG", "debug"),
            ("VERBOSE", "true"),
        ]),
        "scalars are kept as written"
    );
    assert_eq!(build.timeout, Some(Duration::from_secs(90)));
    assert_eq!(build.retries, 2);
    assert_eq!(build.inputs, ["Cargo.toml", "Cargo.lock", "src/**"]);
    assert_eq!(build.outputs, ["target/release/shop"]);
    assert_eq!(build.workdir.as_deref(), Some("server"));
    assert_eq!(
        spec.step("publish").expect("publish").secrets,
        ["REGISTRY_TOKEN"]
    );
    assert_eq!(spec.secrets.file.as_deref(), Some(".env.secrets"));
    let service = spec.service.expect("service");
    assert_eq!(service.env.get("PROFILE").map(String::as_str), Some("prod"));
    assert_eq!(service.health.path, "/ready");
    assert_eq!(service.health.interval, Duration::from_millis(500));
    assert_eq!(service.health.timeout, Duration::from_secs(1));
    assert_eq!(service.health.healthy_threshold, 2);
    assert_eq!(service.health.unhealthy_threshold, 5);
    assert_eq!(service.health.start_timeout, Duration::from_secs(120));
    assert_eq!(
        service.stop,
        StopPolicy {
            signal: StopSignal::Sigint,
            grace: Duration::from_secs(10)
        }
    );

    let [staging, preview, production] = &spec.environments[..] else {
        panic!("three environments: {:?}", spec.environments);
    };
    assert_eq!(
        staging.strategy,
        Strategy::Rolling {
            batch: 2,
            max_surge: 0
        }
    );
    let staging_route = staging.route.as_ref().expect("route");
    assert_eq!(
        staging_route.listen,
        "0.0.0.0:8080".parse().expect("address")
    );
    assert_eq!(staging_route.path_prefix, "/");
    assert_eq!(staging_route.host, None);
    assert_eq!(preview.strategy, Strategy::Recreate);
    let preview_route = preview.route.as_ref().expect("route");
    assert_eq!(preview_route.listen, "[::1]:8082".parse().expect("address"));
    assert_eq!(preview_route.path_prefix, "/preview");
    assert_eq!(production.instances, 4);
    assert_eq!(
        production.strategy,
        Strategy::Canary(Canary {
            steps: weights(&[1.0, 5.0, 25.0, 50.0, 100.0]),
            step_duration: Duration::from_secs(60),
            min_requests: 500,
            step_deadline: Duration::from_secs(900),
            max_error_rate_increase: 0.5,
            max_latency_ratio: 1.2,
            ..Canary::default()
        })
    );
    assert!(production.gates.approval_required);
    assert_eq!(
        production.gates.verify,
        [
            VerifyCheck {
                path: Some("/healthz".to_owned()),
                run: None,
                status: 200,
                body_contains: None,
                timeout: Duration::from_secs(10),
            },
            VerifyCheck {
                path: Some("/version".to_owned()),
                run: None,
                status: 200,
                body_contains: Some("shop".to_owned()),
                timeout: Duration::from_secs(10),
            },
            VerifyCheck {
                path: None,
                run: Some("./smoke.sh".to_owned()),
                status: 200,
                body_contains: None,
                timeout: Duration::from_secs(30),
            },
        ]
    );
    let route = production.route.as_ref().expect("route");
    assert_eq!(route.host.as_deref(), Some("shop.example.com"));
    assert_eq!(route.path_prefix, "/api");
    assert_eq!(production.promote, Promote::Manual);
}

/// The full canary environment shown in docs/spec.md.
const PROGRESSIVE: &str = "\
app: shop-api
pipeline:
  steps: [{ name: build, run: make }]
environments:
  production:
    instances: 4
    strategy:
      type: canary
      steps: [pause, 1, 5, pause, 25, 50, 100]
      step_duration: 2m
      min_requests: 500
      max_error_rate_increase: 0.5
      max_latency_ratio: 1.3
      analysis:
        interval: 500ms
        confidence: 0.995
        max_p95_ratio: 1.25
        max_p99_ms: 800
        max_p95_ms: \"400\"
        latency_floor_ms: 2
        warmup_requests: 50
        warmup: 5s
        prometheus:
          url: http://127.0.0.1:9090
          query: sum(rate(checkout_failures_total[1m]))
          max: 0.5
      mirror: { percent: 20, methods: [GET, HEAD, OPTIONS], duration: 5m, min_requests: 1000 }
      guard: 10m
    cohort: { header: X-User-Id, set_cookie: lastmile-cohort }
    pins:
      - { header: x-canary, value: \"1\", to: canary }
      - { cookie: beta, value: \"no\", to: stable }
    gates:
      approval: required
      webhooks:
        before: https://ci.example.com/hooks/freeze-check
        after: { url: \"https://ci.example.com/hooks/deployed\", timeout: 30s }
        rollback: { url: \"http://127.0.0.1:7000/rollback\" }
    notify:
      - { url: \"https://hooks.slack.com/services/T0/B0/x\", format: slack }
      - { url: \"https://events.example.com/deploys\", timeout: 2s }
";

#[test]
fn a_full_progressive_delivery_environment_reads_every_value() {
    let (spec, warnings) = parse("lastmile.yaml", PROGRESSIVE).expect("valid");
    assert!(warnings.is_empty());
    let production = &spec.environments[0];
    let Strategy::Canary(canary) = &production.strategy else {
        panic!("a canary: {:?}", production.strategy);
    };
    assert_eq!(
        *canary,
        Canary {
            steps: vec![
                CanaryStep::Pause,
                CanaryStep::Weight(1.0),
                CanaryStep::Weight(5.0),
                CanaryStep::Pause,
                CanaryStep::Weight(25.0),
                CanaryStep::Weight(50.0),
                CanaryStep::Weight(100.0),
            ],
            step_duration: Duration::from_secs(120),
            min_requests: 500,
            step_deadline: Duration::from_secs(600),
            max_error_rate_increase: 0.5,
            max_latency_ratio: 1.3,
            analysis: CanaryAnalysis {
                interval: Duration::from_millis(500),
                confidence: 0.995,
                max_p95_ratio: 1.25,
                max_p99_ms: Some(800.0),
                max_p95_ms: Some(400.0),
                latency_floor_ms: 2.0,
                warmup_requests: 50,
                warmup: Duration::from_secs(5),
                prometheus: Some(PrometheusCheck {
                    url: "http://127.0.0.1:9090".to_owned(),
                    query: "sum(rate(checkout_failures_total[1m]))".to_owned(),
                    max: 0.5,
                }),
            },
            mirror: Some(Mirror {
                percent: 20.0,
                methods: vec!["GET".to_owned(), "HEAD".to_owned(), "OPTIONS".to_owned()],
                duration: Duration::from_secs(300),
                min_requests: 1000,
            }),
            guard: Duration::from_secs(600),
        }
    );
    assert_eq!(
        canary.weights().collect::<Vec<_>>(),
        [1.0, 5.0, 25.0, 50.0, 100.0]
    );
    assert_eq!(
        production.cohort,
        Some(Cohort {
            key: CohortKey::Header("x-user-id".to_owned()),
            set_cookie: Some("lastmile-cohort".to_owned()),
        }),
        "header names are lowercased"
    );
    assert_eq!(
        production.pins,
        [
            Pin {
                key: CohortKey::Header("x-canary".to_owned()),
                value: "1".to_owned(),
                to: PinTarget::Canary,
            },
            Pin {
                key: CohortKey::Cookie("beta".to_owned()),
                value: "no".to_owned(),
                to: PinTarget::Stable,
            },
        ]
    );
    assert!(production.gates.approval_required);
    assert_eq!(
        production.gates.webhooks,
        Webhooks {
            before: Some(Webhook {
                url: "https://ci.example.com/hooks/freeze-check".to_owned(),
                timeout: Duration::from_secs(10),
            }),
            after: Some(Webhook {
                url: "https://ci.example.com/hooks/deployed".to_owned(),
                timeout: Duration::from_secs(30),
            }),
            rollback: Some(Webhook {
                url: "http://127.0.0.1:7000/rollback".to_owned(),
                timeout: Duration::from_secs(10),
            }),
        }
    );
    assert_eq!(
        production.notify,
        [
            Notify {
                url: "https://hooks.slack.com/services/T0/B0/x".to_owned(),
                format: NotifyFormat::Slack,
                timeout: Duration::from_secs(5),
            },
            Notify {
                url: "https://events.example.com/deploys".to_owned(),
                format: NotifyFormat::Json,
                timeout: Duration::from_secs(2),
            },
        ]
    );
}

#[test]
fn the_progressive_delivery_example_in_the_docs_is_valid() {
    let docs = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/spec.md"))
        .expect("docs/spec.md");
    let (_, after) = docs
        .split_once("A full progressive-delivery environment")
        .expect("the example's heading");
    let block = after
        .split("```yaml\n")
        .nth(1)
        .and_then(|rest| rest.split("```").next())
        .expect("a yaml block");
    let source =
        format!("app: shop\npipeline: {{ steps: [{{ name: build, run: make }}] }}\n{block}");
    let (spec, warnings) = parse("lastmile.yaml", &source).expect("the docs example is valid");
    assert!(warnings.is_empty());
    let production = &spec.environments[0];
    assert!(matches!(production.strategy, Strategy::Canary(_)));
    assert!(production.cohort.is_some() && production.pins.len() == 2);
}

#[test]
fn a_mirror_alone_takes_its_defaults_even_on_the_first_environment() {
    let source = yaml(&[
        "app: hello",
        "pipeline: { steps: [{ name: build, run: make }] }",
        "environments:",
        "  production:",
        "    strategy: { type: canary, steps: [100], mirror: { percent: \"2.5%\" } }",
        "    cohort: { cookie: uid }",
    ]);
    let (spec, _) = parse("lastmile.yaml", &source).expect("valid");
    let Strategy::Canary(canary) = &spec.environments[0].strategy else {
        panic!("a canary");
    };
    assert_eq!(canary.steps, [CanaryStep::Weight(100.0)]);
    assert_eq!(
        canary.mirror,
        Some(Mirror {
            percent: 2.5,
            methods: vec!["GET".to_owned(), "HEAD".to_owned()],
            duration: Duration::from_secs(60),
            min_requests: 100,
        })
    );
    assert_eq!(
        spec.environments[0].cohort,
        Some(Cohort {
            key: CohortKey::Cookie("uid".to_owned()),
            set_cookie: None,
        })
    );
}

#[test]
fn a_canary_serializes_with_its_type_and_pauses_as_words() {
    let source = yaml(&[
        "app: hello",
        "pipeline: { steps: [{ name: build, run: make }] }",
        "environments:",
        "  production:",
        "    strategy: { type: canary, steps: [pause, 10, 100] }",
        "    pins: [{ cookie: beta, value: \"1\", to: canary }]",
    ]);
    let (spec, _) = parse("lastmile.yaml", &source).expect("valid");
    let json = serde_json::to_value(&spec.environments[0]).expect("serializes");
    assert_eq!(json["strategy"]["type"], "canary");
    assert_eq!(
        json["strategy"]["steps"],
        serde_json::json!(["pause", 10.0, 100.0])
    );
    assert_eq!(json["strategy"]["analysis"]["confidence"], 0.99);
    assert_eq!(
        json["pins"],
        serde_json::json!([{ "key": { "cookie": "beta" }, "value": "1", "to": "canary" }])
    );
}

#[test]
fn reserved_sections_are_recorded_with_a_plain_warning() {
    let source = yaml(&[
        "app: hello",
        "pipeline: { steps: [{ name: build, run: make }] }",
        "monitor: [anything, { at: all }]",
        "drills: ~",
        "hosts: { web-1: { address: 10.0.0.1 } }",
    ]);
    let (spec, warnings) = parse("lastmile.yaml", &source).expect("valid with warnings");
    let recorded: Vec<(&str, usize)> = spec
        .reserved_sections
        .iter()
        .map(|section| (section.name.as_str(), section.line))
        .collect();
    assert_eq!(recorded, [("monitor", 3), ("drills", 4), ("hosts", 5)]);
    assert_eq!(spec.reserved("hosts").map(|section| section.line), Some(5));
    assert!(
        warnings
            .iter()
            .all(|warning| warning.severity == Severity::Warning)
    );
    assert_eq!(warnings.len(), 3);
    crate::snapshot!(insta::assert_snapshot!(render_warnings(
        "lastmile.yaml",
        &source,
        &warnings,
        false
    )));
}

#[test]
fn load_takes_a_directory_or_the_file_and_returns_absolute_paths() {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(dir.path().join(SPEC_FILE), EXAMPLE).expect("write spec");
    let from_dir = load(dir.path()).expect("loads from the directory");
    let from_file = load(&dir.path().join(SPEC_FILE)).expect("loads the file");
    assert_eq!(from_dir.spec, from_file.spec);
    assert!(from_dir.file.is_absolute() && from_dir.dir.is_absolute());
    assert_eq!(from_dir.file, from_file.file);
    assert_eq!(from_dir.dir, from_file.dir);
    assert_eq!(
        from_dir.file.file_name().and_then(|name| name.to_str()),
        Some(SPEC_FILE)
    );
}

#[test]
fn load_without_a_spec_names_the_directory_and_the_fix() {
    let dir = tempfile::tempdir().expect("temp dir");
    let error = load(dir.path()).expect_err("no spec there");
    assert!(matches!(error, LoadError::NotFound { .. }));
    let message = error.to_string();
    assert!(message.contains(SPEC_FILE), "{message}");
    assert!(
        message.contains(&dir.path().display().to_string()),
        "{message}"
    );
    let help = miette::Diagnostic::help(&error)
        .map(|help| help.to_string())
        .unwrap_or_default();
    assert!(help.contains("`lastmile check examples/hello`"), "{help}");
    assert!(help.contains("create lastmile.yaml there"), "{help}");
    // Worded for the command the user ran.
    let for_up = error.suggesting("lastmile up examples/hello");
    let help = miette::Diagnostic::help(&for_up)
        .map(|help| help.to_string())
        .unwrap_or_default();
    assert!(help.contains("`lastmile up examples/hello`"), "{help}");
    assert!(!help.contains("lastmile check"), "{help}");
    match for_up {
        LoadError::NotFound { file, .. } => assert_eq!(file, dir.path().join(SPEC_FILE)),
        other => panic!("{other:?}"),
    }
}

#[test]
fn load_reports_an_invalid_spec_with_the_file_path() {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(dir.path().join(SPEC_FILE), "app: hello\n").expect("write spec");
    let Err(LoadError::Invalid(errors)) = load(dir.path()) else {
        panic!("expected an invalid spec");
    };
    let diagnostic = &errors.diagnostics()[0];
    assert_eq!(
        diagnostic.file,
        dir.path().join(SPEC_FILE).display().to_string()
    );
    assert_eq!((diagnostic.line, diagnostic.column), (1, 1));
}

#[test]
fn durations_parse_through_the_public_function() {
    assert_eq!(parse_duration("1m30s"), Ok(Duration::from_secs(90)));
    assert!(
        parse_duration("90")
            .expect_err("no unit")
            .contains("\"90s\"")
    );
}

#[test]
fn anchors_and_merge_keys_share_settings_between_steps() {
    let source = yaml(&[
        "app: hello",
        "pipeline:",
        "  steps:",
        "    - &rust",
        "      name: build",
        "      run: cargo build",
        "      env: { CARGO_TARGET_DIR: target }",
        "      timeout: 5m",
        "    - <<: *rust",
        "      name: test",
        "      run: cargo test",
        "      needs: [build]",
    ]);
    let (spec, _) = parse("lastmile.yaml", &source).expect("valid");
    let test = spec.step("test").expect("test step");
    assert_eq!(test.run, "cargo test");
    assert_eq!(test.timeout, Some(Duration::from_secs(300)));
    assert_eq!(
        test.env.get("CARGO_TARGET_DIR").map(String::as_str),
        Some("target")
    );
}

#[test]
fn an_error_inside_a_merged_map_points_at_the_merge() {
    let source = yaml(&[
        "app: hello",
        "pipeline:",
        "  steps:",
        "    - &rust { name: build, run: cargo build, timeout: 5 }",
        "    - <<: *rust",
        "      name: test",
    ]);
    let errors = parse("lastmile.yaml", &source).expect_err("bare number");
    let places: Vec<(usize, &str)> = errors
        .diagnostics()
        .iter()
        .map(|diagnostic| (diagnostic.line, diagnostic.code.as_str()))
        .collect();
    assert_eq!(
        places,
        [(4, "spec::invalid-duration"), (5, "spec::invalid-duration")]
    );
}

const FLAGS: &str = "\
app: hello
pipeline: { steps: [{ name: build, run: make }] }
environments:
  production:
    strategy: canary
segments:
  beta-testers:
    - { attribute: email, op: ends_with, value: \"@example.com\" }
    - { attribute: plan, op: not_in, value: [free, 3, true] }
flags:
  new-checkout:
    type: boolean
    variants: { on: true, off: false }
    default: off
    enabled: true
    rules:
      - when: [ { attribute: country, op: in, value: [SE, NO] } ]
        variant: on
      - segment: beta-testers
        variant: on
      - when: [ { attribute: app_version, op: semver_gte, value: \"2.1.0\" } ]
        rollout: { on: 25, off: 75 }
    rollout: { on: 10, off: 90 }
  checkout-canary:
    rollout: { follow_canary: production }
  quiet:
  button-color:
    type: string
    variants: { blue: \"#00f\", green: \"#0f0\", red: \"#f00\" }
    default: blue
    enabled: false
    rules:
      - when:
          - { attribute: age, op: gte, value: 18 }
          - { attribute: score, op: lt, value: 0.5 }
        segment: beta-testers
        rollout: { blue: 33.3, green: 33.3, red: 33.4 }
  limits:
    type: object
    variants: { small: { requests: 10, burst: [1, 2] }, large: { requests: 100 } }
    default: small
  ratio:
    type: number
    variants: { low: 1, high: 2.5 }
    default: high
";

#[test]
fn flags_and_segments_are_read_with_their_defaults() {
    use lastmile_spec::{Condition, FlagRule, FlagType, Operator, Rollout, Serve, Variant};
    use serde_json::json;

    let (spec, warnings) = parse("lastmile.yaml", FLAGS).expect("the flags example is valid");
    assert!(warnings.is_empty(), "{warnings:?}");
    assert!(spec.reserved("flags").is_none());
    let segment = spec.segment("beta-testers").expect("segment");
    assert_eq!(
        segment.conditions,
        [
            Condition {
                attribute: "email".to_owned(),
                op: Operator::EndsWith,
                value: json!("@example.com"),
            },
            Condition {
                attribute: "plan".to_owned(),
                op: Operator::NotIn,
                value: json!(["free", 3, true]),
            },
        ]
    );
    let keys: Vec<&str> = spec.flags.iter().map(|flag| flag.key.as_str()).collect();
    assert_eq!(
        keys,
        [
            "new-checkout",
            "checkout-canary",
            "quiet",
            "button-color",
            "limits",
            "ratio"
        ]
    );
    let checkout = spec.flag("new-checkout").expect("new-checkout");
    assert_eq!(checkout.kind, FlagType::Boolean);
    assert_eq!(checkout.default, "off");
    assert!(checkout.enabled);
    assert_eq!(checkout.rules.len(), 3);
    assert_eq!(
        checkout.rules[1],
        FlagRule {
            when: Vec::new(),
            segment: Some("beta-testers".to_owned()),
            serve: Serve::Variant("on".to_owned()),
        }
    );
    assert_eq!(
        checkout.rules[2].serve,
        Serve::Rollout(Rollout::Split(vec![
            ("on".to_owned(), 25.0),
            ("off".to_owned(), 75.0)
        ]))
    );
    assert_eq!(
        checkout.rollout,
        Some(Rollout::Split(vec![
            ("on".to_owned(), 10.0),
            ("off".to_owned(), 90.0)
        ]))
    );
    // Omitted variants and default: a boolean flag, on/off, off by default.
    let canary = spec.flag("checkout-canary").expect("checkout-canary");
    assert_eq!(
        canary.variants,
        [
            Variant {
                name: "on".to_owned(),
                value: json!(true)
            },
            Variant {
                name: "off".to_owned(),
                value: json!(false)
            },
        ]
    );
    assert_eq!(canary.default, "off");
    assert_eq!(
        canary.rollout,
        Some(Rollout::FollowCanary("production".to_owned()))
    );
    assert_eq!(canary.on_variant().map(|v| v.name.as_str()), Some("on"));
    let quiet = spec.flag("quiet").expect("quiet");
    assert!(quiet.rules.is_empty() && quiet.rollout.is_none() && quiet.enabled);
    let color = spec.flag("button-color").expect("button-color");
    assert_eq!(color.kind, FlagType::String);
    assert!(!color.enabled);
    assert_eq!(color.rules[0].when[0].value, json!(18));
    assert_eq!(color.rules[0].when[1].value, json!(0.5));
    assert_eq!(
        spec.flag("limits").expect("limits").variants[0].value,
        json!({ "requests": 10, "burst": [1, 2] })
    );
    assert_eq!(
        spec.flag("ratio").expect("ratio").variants[1].value,
        json!(2.5)
    );
    let serialized = serde_json::to_value(&spec).expect("serializes");
    assert_eq!(serialized["flags"][0]["type"], json!("boolean"));
    assert_eq!(
        serialized["flags"][0]["rules"][0]["when"][0]["op"],
        json!("in")
    );
}

/// The routes of a spec whose `environments:` section is `lines`, in order.
fn routes(lines: &[&str]) -> Vec<lastmile_spec::Route> {
    let mut all = vec![
        "app: hello",
        "pipeline: { steps: [{ name: build, run: make }] }",
        "environments:",
    ];
    all.extend_from_slice(lines);
    let (spec, warnings) = parse("lastmile.yaml", &yaml(&all)).expect("valid");
    assert!(warnings.is_empty());
    spec.environments
        .into_iter()
        .map(|environment| environment.route.expect("a route"))
        .collect()
}

fn address(text: &str) -> std::net::SocketAddr {
    text.parse().expect("an address")
}

#[test]
fn a_route_without_tls_or_limits_is_plain_http_with_router_defaults() {
    let route = &routes(&["  production: { route: { listen: \":8080\" } }"])[0];
    assert_eq!(route.tls, None);
    assert_eq!(route.limits, RouteLimits::default());
    let serialized = serde_json::to_value(route).expect("serializes");
    assert_eq!(serialized["tls"], serde_json::Value::Null);
    assert_eq!(serialized["limits"]["max_body"], serde_json::Value::Null);
}

#[test]
fn tls_from_certificate_files_keeps_the_paths_as_written() {
    let route = &routes(&[
        "  production:",
        "    route:",
        "      listen: \":443\"",
        "      host: hello.example.com",
        "      tls: { cert: certs/hello.pem, key: /etc/lastmile/hello-key.pem }",
    ])[0];
    let tls = route.tls.as_ref().expect("tls");
    assert_eq!(
        tls.source,
        TlsSource::Files {
            cert: PathBuf::from("certs/hello.pem"),
            key: PathBuf::from("/etc/lastmile/hello-key.pem"),
        }
    );
    // Without ACME there is no plaintext listener unless one is asked for.
    assert_eq!(tls.redirect_from, None);
    assert_eq!(tls.hsts, None);
    assert_eq!(
        tls.source.relative_to(Path::new("/srv/hello")),
        TlsSource::Files {
            cert: PathBuf::from("/srv/hello/certs/hello.pem"),
            key: PathBuf::from("/etc/lastmile/hello-key.pem"),
        }
    );
    let serialized = serde_json::to_value(tls).expect("serializes");
    assert_eq!(serialized["source"]["type"], serde_json::json!("files"));
    assert_eq!(
        serialized["source"]["cert"],
        serde_json::json!("certs/hello.pem")
    );
}

#[test]
fn tls_files_with_a_redirect_and_hsts_true() {
    let route = &routes(&[
        "  production:",
        "    route:",
        "      listen: \"127.0.0.1:8443\"",
        "      tls: { cert: site.pem, key: site-key.pem, redirect_from: \"127.0.0.1:8080\", hsts: true }",
    ])[0];
    let tls = route.tls.as_ref().expect("tls");
    assert_eq!(tls.redirect_from, Some(address("127.0.0.1:8080")));
    assert_eq!(
        tls.hsts,
        Some(Hsts {
            max_age: Duration::from_secs(365 * 86_400),
            include_subdomains: false,
            preload: false,
        })
    );
}

#[test]
fn acme_alone_takes_lets_encrypt_and_a_redirect_from_port_80() {
    let route = &routes(&[
        "  production:",
        "    route: { listen: \":443\", host: hello.example.com, tls: { acme: {} } }",
    ])[0];
    let tls = route.tls.as_ref().expect("tls");
    assert_eq!(
        tls.source,
        TlsSource::Acme(Acme {
            email: None,
            directory: "https://acme-v02.api.letsencrypt.org/directory".to_owned(),
            ca: None,
        })
    );
    assert_eq!(
        LETS_ENCRYPT_DIRECTORY,
        "https://acme-v02.api.letsencrypt.org/directory"
    );
    assert_eq!(tls.redirect_from, Some(address("0.0.0.0:80")));
    let serialized = serde_json::to_value(tls).expect("serializes");
    assert_eq!(
        serialized["source"],
        serde_json::json!({
            "type": "acme",
            "email": null,
            "directory": LETS_ENCRYPT_DIRECTORY,
            "ca": null,
        })
    );
    assert_eq!(serialized["redirect_from"], serde_json::json!("0.0.0.0:80"));
    // `acme:` with nothing under it means the same.
    let bare = &routes(&[
        "  production:",
        "    route:",
        "      listen: \":443\"",
        "      host: hello.example.com",
        "      tls:",
        "        acme:",
    ])[0];
    assert_eq!(bare.tls, route.tls);
}

#[test]
fn acme_redirects_from_port_80_on_the_listen_address_unless_told_otherwise() {
    let all = routes(&[
        "  staging:",
        "    route: { listen: \"127.0.0.1:8443\", host: staging.example.com, tls: { acme: {} } }",
        "  production:",
        "    route:",
        "      listen: \"[::1]:443\"",
        "      host: hello.example.com",
        "      tls:",
        "        acme:",
        "          email: ops@example.com",
        "          directory: https://localhost:14000/dir",
        "          ca: certs/pebble-root.pem",
        "        redirect_from: \"[::1]:5002\"",
        "        hsts: { max_age: 2d, include_subdomains: true }",
    ]);
    let staging = all[0].tls.as_ref().expect("tls");
    assert_eq!(staging.redirect_from, Some(address("127.0.0.1:80")));
    let production = all[1].tls.as_ref().expect("tls");
    assert_eq!(
        production.source,
        TlsSource::Acme(Acme {
            email: Some("ops@example.com".to_owned()),
            directory: "https://localhost:14000/dir".to_owned(),
            ca: Some(PathBuf::from("certs/pebble-root.pem")),
        })
    );
    assert_eq!(
        production.source.relative_to(Path::new("/srv/hello")),
        TlsSource::Acme(Acme {
            email: Some("ops@example.com".to_owned()),
            directory: "https://localhost:14000/dir".to_owned(),
            ca: Some(PathBuf::from("/srv/hello/certs/pebble-root.pem")),
        })
    );
    assert_eq!(production.redirect_from, Some(address("[::1]:5002")));
    assert_eq!(
        production.hsts,
        Some(Hsts {
            max_age: Duration::from_secs(2 * 86_400),
            include_subdomains: true,
            preload: false,
        })
    );
}

#[test]
fn hsts_false_sends_no_header_and_preload_with_its_requirements_is_accepted() {
    let all = routes(&[
        "  staging:",
        "    route: { listen: \":8443\", tls: { cert: a.pem, key: a-key.pem, hsts: false } }",
        "  production:",
        "    route:",
        "      listen: \":443\"",
        "      tls:",
        "        cert: b.pem",
        "        key: b-key.pem",
        "        hsts: { max_age: 730d, include_subdomains: true, preload: true }",
    ]);
    assert_eq!(all[0].tls.as_ref().expect("tls").hsts, None);
    assert_eq!(
        all[1].tls.as_ref().expect("tls").hsts,
        Some(Hsts {
            max_age: Duration::from_secs(730 * 86_400),
            include_subdomains: true,
            preload: true,
        })
    );
}

#[test]
fn every_limit_is_read_and_unset_ones_stay_router_defaults() {
    let all = routes(&[
        "  production:",
        "    route:",
        "      listen: \":8080\"",
        "      limits:",
        "        max_body: 10MiB",
        "        max_headers: 256",
        "        max_connections: 10000",
        "        max_connections_per_ip: 1000",
        "        body_timeout: 30s",
        "        idle_timeout: 1m",
        "        send_timeout: 1h",
        "        rate_limit: { per_second: 50, burst: 100 }",
        "  staging:",
        "    route: { listen: \":8081\", limits: { max_body: 512KB, rate_limit: { per_second: 5 } } }",
    ]);
    assert_eq!(
        all[0].limits,
        RouteLimits {
            max_body: Some(10 * 1024 * 1024),
            max_headers: Some(256),
            max_connections: Some(10_000),
            max_connections_per_ip: Some(1000),
            body_timeout: Some(Duration::from_secs(30)),
            idle_timeout: Some(Duration::from_secs(60)),
            send_timeout: Some(Duration::from_secs(3600)),
            rate_limit: Some(RateLimit {
                per_second: 50,
                burst: 100
            }),
        }
    );
    // `burst` defaults to `per_second`.
    assert_eq!(
        all[1].limits,
        RouteLimits {
            max_body: Some(512_000),
            rate_limit: Some(RateLimit {
                per_second: 5,
                burst: 5
            }),
            ..RouteLimits::default()
        }
    );
}

#[test]
fn sizes_take_every_documented_unit() {
    for (written, bytes) in [
        ("1B", 1),
        ("64KB", 64_000),
        ("64KiB", 65_536),
        ("2MB", 2_000_000),
        ("\"1.5 MiB\"", 1_572_864),
        ("1GB", 1_000_000_000),
        ("1GiB", 1 << 30),
        ("1TiB", 1 << 40),
    ] {
        let line = format!(
            "  production: {{ route: {{ listen: \":8080\", limits: {{ max_body: {written} }} }} }}"
        );
        assert_eq!(
            routes(&[&line])[0].limits.max_body,
            Some(bytes),
            "{written}"
        );
    }
}

#[test]
fn environments_may_share_a_tls_listener_with_their_own_hosts_and_certificates() {
    let all = routes(&[
        "  staging:",
        "    route:",
        "      listen: \":443\"",
        "      host: staging.example.com",
        "      tls: { acme: { email: ops@example.com } }",
        "      limits: &edge { max_body: 1MiB }",
        "  production:",
        "    route:",
        "      listen: \":443\"",
        "      host: hello.example.com",
        "      tls: { cert: certs/hello.pem, key: certs/hello-key.pem, redirect_from: \":80\" }",
        "      limits: *edge",
        "  preview:",
        "    route:",
        "      listen: \":443\"",
        "      host: hello.example.com",
        "      path_prefix: /preview",
        "      tls: { cert: certs/hello.pem, key: certs/hello-key.pem, redirect_from: \":80\" }",
        "      limits: { max_body: 1MiB }",
    ]);
    assert_eq!(all.len(), 3);
    assert!(
        all.iter()
            .all(|route| route.limits.max_body == Some(1 << 20))
    );
}

#[test]
fn the_https_example_in_the_docs_is_valid() {
    let docs = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/spec.md"))
        .expect("docs/spec.md");
    let (_, after) = docs
        .split_once("An HTTPS route")
        .expect("the example's heading");
    let block = after
        .split("```yaml\n")
        .nth(1)
        .and_then(|rest| rest.split("```").next())
        .expect("a yaml block");
    let source =
        format!("app: hello\npipeline: {{ steps: [{{ name: build, run: make }}] }}\n{block}");
    let (spec, warnings) = parse("lastmile.yaml", &source).expect("the docs example is valid");
    assert!(warnings.is_empty());
    let production = spec
        .environments
        .iter()
        .find(|environment| environment.name == "production")
        .and_then(|environment| environment.route.as_ref())
        .expect("a production route");
    let tls = production.tls.as_ref().expect("tls");
    assert!(matches!(tls.source, TlsSource::Acme(_)));
    assert!(tls.hsts.is_some() && production.limits.rate_limit.is_some());
}

#[test]
fn the_route_example_in_the_docs_is_valid_and_serves_https() {
    let docs = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/spec.md"))
        .expect("docs/spec.md");
    let (_, after) = docs.split_once("### `route`").expect("the route section");
    let block = after
        .split("```yaml\n")
        .nth(1)
        .and_then(|rest| rest.split("```").next())
        .expect("a yaml block");
    let source =
        format!("app: hello\npipeline: {{ steps: [{{ name: build, run: make }}] }}\n{block}");
    let (spec, _) = parse("lastmile.yaml", &source).expect("the docs example is valid");
    let production = spec
        .environments
        .iter()
        .find(|environment| environment.name == "production")
        .and_then(|environment| environment.route.as_ref())
        .expect("a production route");
    assert_eq!(production.listen, address("0.0.0.0:443"));
    assert!(production.tls.is_some());
}

#[test]
fn https_listeners_may_share_one_redirect_listener() {
    let all = routes(&[
        "  staging:",
        "    route: { listen: \":8443\", host: staging.example.com, tls: { acme: {} } }",
        "  production:",
        "    route: { listen: \":443\", host: hello.example.com, tls: { acme: {} } }",
    ]);
    let redirects: Vec<_> = all
        .iter()
        .map(|route| route.tls.as_ref().and_then(|tls| tls.redirect_from))
        .collect();
    assert_eq!(
        redirects,
        [Some(address("0.0.0.0:80")), Some(address("0.0.0.0:80"))]
    );
}
