//! Every class of mistake, pinned as the text a user reads.
//!
//! Each snapshot holds the input and the rendered errors; read them when they
//! change: the caret must sit under the offending token and the hint must say
//! what to write instead.

use lastmile_spec::parse;

use crate::yaml;

/// Renders the errors for `lines`, asserting the first one has `code`.
fn rejected(code: &str, lines: &[&str]) -> String {
    let source = yaml(lines);
    let errors = match parse("lastmile.yaml", &source) {
        Ok((spec, _)) => panic!("expected {code}, but the spec was accepted: {spec:#?}"),
        Err(errors) => errors,
    };
    let codes: Vec<&str> = errors
        .diagnostics()
        .iter()
        .map(|diagnostic| diagnostic.code.as_str())
        .collect();
    assert!(codes.contains(&code), "expected {code}, got {codes:?}");
    let numbered: Vec<String> = source
        .lines()
        .enumerate()
        .map(|(index, line)| format!("{:>3} | {line}", index + 1))
        .collect();
    format!(
        "input:\n{}\n\n{}",
        numbered.join("\n"),
        errors.render(false)
    )
}

/// `rejects!(test_name, "spec::code", [yaml lines...]);` snapshots the errors.
macro_rules! rejects {
    ($name:ident, $code:literal, [$($line:literal),* $(,)?]) => {
        #[test]
        fn $name() {
            crate::snapshot!(insta::assert_snapshot!(rejected($code, &[$($line),*])));
        }
    };
}

// Syntax and shape.
rejects!(
    broken_yaml_syntax,
    "spec::syntax",
    [
        "app: hello",
        "pipeline:",
        "  steps: [ { name: build, run: make }",
    ]
);
rejects!(an_empty_file, "spec::empty", ["# nothing yet"]);
rejects!(a_list_at_the_top, "spec::wrong-type", ["- app: hello"]);
rejects!(
    missing_app_and_pipeline,
    "spec::missing-key",
    ["artifact: { paths: [out] }"]
);
rejects!(
    missing_run_in_a_step,
    "spec::missing-key",
    ["app: hello", "pipeline:", "  steps:", "    - name: build",]
);
rejects!(
    an_empty_step_list,
    "spec::empty",
    ["app: hello", "pipeline:", "  steps: []"]
);
rejects!(
    steps_given_as_a_map,
    "spec::wrong-type",
    ["app: hello", "pipeline:", "  steps:", "    build: make",]
);
rejects!(
    needs_given_as_a_string,
    "spec::wrong-type",
    [
        "app: hello",
        "pipeline:",
        "  steps:",
        "    - { name: build, run: make }",
        "    - { name: test, run: make test, needs: build }",
    ]
);
rejects!(
    a_duplicate_key_in_a_step,
    "spec::duplicate-key",
    [
        "app: hello",
        "pipeline:",
        "  steps:",
        "    - name: build",
        "      run: make",
        "      run: make all",
    ]
);

// Unknown keys, at every level.
rejects!(
    an_unknown_top_level_key,
    "spec::unknown-key",
    [
        "app: hello",
        "pipline:",
        "  steps: [{ name: build, run: make }]",
    ]
);
rejects!(
    an_unknown_key_in_a_step,
    "spec::unknown-key",
    [
        "app: hello",
        "pipeline:",
        "  steps:",
        "    - name: build",
        "      run: cargo build",
        "    - name: test",
        "      run: cargo test",
        "      nedds: [build]",
    ]
);
rejects!(
    an_unknown_key_in_health,
    "spec::unknown-key",
    [
        "app: hello",
        "pipeline: { steps: [{ name: build, run: make }] }",
        "service:",
        "  run: ./hello",
        "  health: { path: /healthz, intervall: 5s }",
    ]
);
rejects!(
    an_unknown_key_in_an_environment,
    "spec::unknown-key",
    [
        "app: hello",
        "pipeline: { steps: [{ name: build, run: make }] }",
        "environments:",
        "  production:",
        "    instance: 2",
    ]
);
rejects!(
    a_key_of_another_strategy,
    "spec::unknown-key",
    [
        "app: hello",
        "pipeline: { steps: [{ name: build, run: make }] }",
        "environments:",
        "  production:",
        "    strategy: { type: rolling, steps: [5, 100] }",
    ]
);
rejects!(
    an_unknown_key_in_a_route,
    "spec::unknown-key",
    [
        "app: hello",
        "pipeline: { steps: [{ name: build, run: make }] }",
        "environments:",
        "  production:",
        "    route: { listen: \":8080\", prefix: /api }",
    ]
);

// Steps and their graph.
rejects!(
    a_duplicate_step_name,
    "spec::duplicate-step",
    [
        "app: hello",
        "pipeline:",
        "  steps:",
        "    - name: build",
        "      run: make",
        "    - name: build",
        "      run: make again",
    ]
);
rejects!(
    an_unknown_need,
    "spec::unknown-need",
    [
        "app: hello",
        "pipeline:",
        "  steps:",
        "    - { name: build, run: make }",
        "    - { name: test, run: make test, needs: [biuld] }",
    ]
);
rejects!(
    a_step_needing_itself,
    "spec::self-need",
    [
        "app: hello",
        "pipeline:",
        "  steps:",
        "    - { name: build, run: make, needs: [build] }",
    ]
);
rejects!(
    a_cycle_of_three,
    "spec::cycle",
    [
        "app: hello",
        "pipeline:",
        "  steps:",
        "    - { name: a, run: echo a, needs: [c] }",
        "    - { name: b, run: echo b, needs: [a] }",
        "    - { name: c, run: echo c, needs: [b] }",
    ]
);
rejects!(
    a_whitespace_only_command,
    "spec::empty-command",
    [
        "app: hello",
        "pipeline:",
        "  steps:",
        "    - name: build",
        "      run: \"   \"",
    ]
);
rejects!(
    an_empty_service_command,
    "spec::empty-command",
    [
        "app: hello",
        "pipeline: { steps: [{ name: build, run: make }] }",
        "service:",
        "  run: \"\"",
    ]
);
rejects!(
    a_step_name_with_a_space,
    "spec::invalid-name",
    [
        "app: hello",
        "pipeline:",
        "  steps:",
        "    - { name: unit tests, run: make test }",
    ]
);
rejects!(
    an_uppercase_app_name,
    "spec::invalid-name",
    [
        "app: Hello_World",
        "pipeline: { steps: [{ name: build, run: make }] }",
    ]
);
rejects!(
    retries_out_of_range,
    "spec::out-of-range",
    [
        "app: hello",
        "pipeline:",
        "  steps:",
        "    - { name: build, run: make, retries: 11 }",
    ]
);
rejects!(
    an_invalid_env_var_name,
    "spec::invalid-env-name",
    [
        "app: hello",
        "pipeline:",
        "  steps:",
        "    - name: build",
        "      run: make",
        "      env: { RUST-LOG: debug }",
    ]
);
rejects!(
    an_invalid_secret_name,
    "spec::invalid-env-name",
    [
        "app: hello",
        "pipeline:",
        "  steps:",
        "    - name: deploy",
        "      run: ./deploy",
        "      secrets: [API_TOKEN, 9LIVES]",
    ]
);
rejects!(
    a_workdir_outside_the_workspace,
    "spec::invalid-path",
    [
        "app: hello",
        "pipeline:",
        "  steps:",
        "    - { name: build, run: make, workdir: ../elsewhere }",
    ]
);

// Durations.
rejects!(
    a_bare_number_as_a_duration,
    "spec::invalid-duration",
    [
        "app: hello",
        "pipeline:",
        "  steps:",
        "    - { name: build, run: make, timeout: 10 }",
    ]
);
rejects!(
    a_duration_with_an_unknown_unit,
    "spec::invalid-duration",
    [
        "app: hello",
        "pipeline:",
        "  steps:",
        "    - { name: build, run: make, timeout: 10sec }",
    ]
);
rejects!(
    a_duration_in_words,
    "spec::invalid-duration",
    [
        "app: hello",
        "pipeline: { steps: [{ name: build, run: make }] }",
        "service:",
        "  run: ./hello",
        "  stop: { grace: ten seconds }",
    ]
);
rejects!(
    a_zero_health_interval,
    "spec::out-of-range",
    [
        "app: hello",
        "pipeline: { steps: [{ name: build, run: make }] }",
        "service:",
        "  run: ./hello",
        "  health: { path: /healthz, interval: 0s }",
    ]
);

// Environments and strategies.
rejects!(
    zero_instances,
    "spec::out-of-range",
    [
        "app: hello",
        "pipeline: { steps: [{ name: build, run: make }] }",
        "environments:",
        "  production: { instances: 0 }",
    ]
);
rejects!(
    a_misspelled_strategy,
    "spec::unknown-strategy",
    [
        "app: hello",
        "pipeline: { steps: [{ name: build, run: make }] }",
        "environments:",
        "  production: { strategy: bluegreen }",
    ]
);
rejects!(
    a_strategy_map_without_type,
    "spec::missing-key",
    [
        "app: hello",
        "pipeline: { steps: [{ name: build, run: make }] }",
        "environments:",
        "  production:",
        "    strategy: { steps: [5, 100] }",
    ]
);
rejects!(
    canary_steps_going_down,
    "spec::invalid-canary-steps",
    [
        "app: hello",
        "pipeline: { steps: [{ name: build, run: make }] }",
        "environments:",
        "  production:",
        "    strategy: { type: canary, steps: [1, 50, 25, 100] }",
    ]
);
rejects!(
    canary_steps_not_ending_at_100,
    "spec::invalid-canary-steps",
    [
        "app: hello",
        "pipeline: { steps: [{ name: build, run: make }] }",
        "environments:",
        "  production:",
        "    strategy: { type: canary, steps: [5, 25, 50] }",
    ]
);
rejects!(
    a_percentage_above_100,
    "spec::invalid-percent",
    [
        "app: hello",
        "pipeline: { steps: [{ name: build, run: make }] }",
        "environments:",
        "  production:",
        "    strategy: { type: canary, steps: [5, \"150%\"] }",
    ]
);
rejects!(
    a_percentage_that_is_not_a_number,
    "spec::invalid-percent",
    [
        "app: hello",
        "pipeline: { steps: [{ name: build, run: make }] }",
        "environments:",
        "  production:",
        "    strategy: { type: canary, steps: [\"5 pc\", 100] }",
    ]
);
rejects!(
    a_listen_address_without_a_port,
    "spec::invalid-address",
    [
        "app: hello",
        "pipeline: { steps: [{ name: build, run: make }] }",
        "environments:",
        "  production:",
        "    route: { listen: 127.0.0.1 }",
    ]
);
rejects!(
    a_listen_address_with_a_host_name,
    "spec::invalid-address",
    [
        "app: hello",
        "pipeline: { steps: [{ name: build, run: make }] }",
        "environments:",
        "  production:",
        "    route: { listen: \"example.com:8080\" }",
    ]
);
rejects!(
    a_port_out_of_range,
    "spec::invalid-port",
    [
        "app: hello",
        "pipeline: { steps: [{ name: build, run: make }] }",
        "environments:",
        "  production:",
        "    route: { listen: \"127.0.0.1:70000\" }",
    ]
);
rejects!(
    port_zero,
    "spec::invalid-port",
    [
        "app: hello",
        "pipeline: { steps: [{ name: build, run: make }] }",
        "environments:",
        "  production:",
        "    route: { listen: \":0\" }",
    ]
);
rejects!(
    a_duplicate_environment,
    "spec::duplicate-environment",
    [
        "app: hello",
        "pipeline: { steps: [{ name: build, run: make }] }",
        "environments:",
        "  production: { instances: 2 }",
        "  staging: {}",
        "  production: { instances: 3 }",
    ]
);
rejects!(
    an_unknown_approval_value,
    "spec::unknown-value",
    [
        "app: hello",
        "pipeline: { steps: [{ name: build, run: make }] }",
        "environments:",
        "  production:",
        "    gates: { approval: requried }",
    ]
);
rejects!(
    an_unknown_promote_value,
    "spec::unknown-value",
    [
        "app: hello",
        "pipeline: { steps: [{ name: build, run: make }] }",
        "environments:",
        "  production: { promote: automatic }",
    ]
);
rejects!(
    an_unknown_stop_signal,
    "spec::unknown-signal",
    [
        "app: hello",
        "pipeline: { steps: [{ name: build, run: make }] }",
        "service:",
        "  run: ./hello",
        "  stop: { signal: SIGTREM }",
    ]
);
rejects!(
    sigkill_as_the_stop_signal,
    "spec::unknown-signal",
    [
        "app: hello",
        "pipeline: { steps: [{ name: build, run: make }] }",
        "service:",
        "  run: ./hello",
        "  stop: { signal: KILL }",
    ]
);
rejects!(
    a_verify_status_out_of_range,
    "spec::out-of-range",
    [
        "app: hello",
        "pipeline: { steps: [{ name: build, run: make }] }",
        "environments:",
        "  production:",
        "    gates:",
        "      verify:",
        "        - { path: /healthz, status: 99 }",
    ]
);
rejects!(
    a_health_path_without_a_slash,
    "spec::invalid-path",
    [
        "app: hello",
        "pipeline: { steps: [{ name: build, run: make }] }",
        "service:",
        "  run: ./hello",
        "  health: { path: healthz }",
    ]
);

// Progressive delivery: canary steps, analysis, mirror, cohort, pins,
// notifications and webhooks.
rejects!(
    a_canary_weight_that_does_not_increase_across_a_pause,
    "spec::invalid-canary-steps",
    [
        "app: hello",
        "pipeline: { steps: [{ name: build, run: make }] }",
        "environments:",
        "  production:",
        "    strategy: { type: canary, steps: [25, pause, 5, 100] }",
    ]
);
rejects!(
    a_canary_weight_of_zero,
    "spec::invalid-percent",
    [
        "app: hello",
        "pipeline: { steps: [{ name: build, run: make }] }",
        "environments:",
        "  production:",
        "    strategy: { type: canary, steps: [0, 50, 100] }",
    ]
);
rejects!(
    canary_steps_ending_in_a_pause,
    "spec::invalid-canary-steps",
    [
        "app: hello",
        "pipeline: { steps: [{ name: build, run: make }] }",
        "environments:",
        "  production:",
        "    strategy: { type: canary, steps: [5, 100, pause] }",
    ]
);
rejects!(
    two_pauses_in_a_row,
    "spec::invalid-canary-steps",
    [
        "app: hello",
        "pipeline: { steps: [{ name: build, run: make }] }",
        "environments:",
        "  production:",
        "    strategy: { type: canary, steps: [5, pause, pause, 100] }",
    ]
);
rejects!(
    a_misspelled_pause,
    "spec::invalid-canary-steps",
    [
        "app: hello",
        "pipeline: { steps: [{ name: build, run: make }] }",
        "environments:",
        "  production:",
        "    strategy: { type: canary, steps: [5, pasue, 100] }",
    ]
);
rejects!(
    an_unknown_word_in_canary_steps,
    "spec::invalid-canary-steps",
    [
        "app: hello",
        "pipeline: { steps: [{ name: build, run: make }] }",
        "environments:",
        "  production:",
        "    strategy: { type: canary, steps: [five, 100] }",
    ]
);
rejects!(
    a_confidence_out_of_range,
    "spec::out-of-range",
    [
        "app: hello",
        "pipeline: { steps: [{ name: build, run: make }] }",
        "environments:",
        "  production:",
        "    strategy:",
        "      type: canary",
        "      analysis: { confidence: 0.999999 }",
    ]
);
rejects!(
    a_p95_ratio_below_1,
    "spec::out-of-range",
    [
        "app: hello",
        "pipeline: { steps: [{ name: build, run: make }] }",
        "environments:",
        "  production:",
        "    strategy:",
        "      type: canary",
        "      analysis: { max_p95_ratio: 0.9 }",
    ]
);
rejects!(
    a_latency_ratio_above_100,
    "spec::out-of-range",
    [
        "app: hello",
        "pipeline: { steps: [{ name: build, run: make }] }",
        "environments:",
        "  production:",
        "    strategy: { type: canary, max_latency_ratio: 150 }",
    ]
);
rejects!(
    an_analysis_interval_too_short,
    "spec::out-of-range",
    [
        "app: hello",
        "pipeline: { steps: [{ name: build, run: make }] }",
        "environments:",
        "  production:",
        "    strategy:",
        "      type: canary",
        "      analysis: { interval: 50ms }",
    ]
);
rejects!(
    a_p99_ceiling_of_zero,
    "spec::out-of-range",
    [
        "app: hello",
        "pipeline: { steps: [{ name: build, run: make }] }",
        "environments:",
        "  production:",
        "    strategy:",
        "      type: canary",
        "      analysis: { max_p99_ms: 0 }",
    ]
);
rejects!(
    a_warmup_of_too_many_requests,
    "spec::out-of-range",
    [
        "app: hello",
        "pipeline: { steps: [{ name: build, run: make }] }",
        "environments:",
        "  production:",
        "    strategy:",
        "      type: canary",
        "      analysis: { warmup_requests: 20000 }",
    ]
);
rejects!(
    a_fractional_warmup_request_count,
    "spec::wrong-type",
    [
        "app: hello",
        "pipeline: { steps: [{ name: build, run: make }] }",
        "environments:",
        "  production:",
        "    strategy:",
        "      type: canary",
        "      analysis: { warmup_requests: 2.5 }",
    ]
);
rejects!(
    a_warmup_longer_than_ten_minutes,
    "spec::out-of-range",
    [
        "app: hello",
        "pipeline: { steps: [{ name: build, run: make }] }",
        "environments:",
        "  production:",
        "    strategy:",
        "      type: canary",
        "      analysis: { warmup: 1h }",
    ]
);
rejects!(
    a_warmup_without_a_unit,
    "spec::invalid-duration",
    [
        "app: hello",
        "pipeline: { steps: [{ name: build, run: make }] }",
        "environments:",
        "  production:",
        "    strategy:",
        "      type: canary",
        "      analysis: { warmup: 30 }",
    ]
);
rejects!(
    a_misspelled_warmup_key,
    "spec::unknown-key",
    [
        "app: hello",
        "pipeline: { steps: [{ name: build, run: make }] }",
        "environments:",
        "  production:",
        "    strategy:",
        "      type: canary",
        "      analysis: { warmup_request: 50 }",
    ]
);
rejects!(
    a_misspelled_analysis_key,
    "spec::unknown-key",
    [
        "app: hello",
        "pipeline: { steps: [{ name: build, run: make }] }",
        "environments:",
        "  production:",
        "    strategy:",
        "      type: canary",
        "      analysis: { confidance: 0.95 }",
    ]
);
rejects!(
    a_prometheus_check_without_a_query,
    "spec::missing-key",
    [
        "app: hello",
        "pipeline: { steps: [{ name: build, run: make }] }",
        "environments:",
        "  production:",
        "    strategy:",
        "      type: canary",
        "      analysis:",
        "        prometheus: { url: \"http://127.0.0.1:9090\", max: 0.01 }",
    ]
);
rejects!(
    a_prometheus_url_without_a_scheme,
    "spec::invalid-url",
    [
        "app: hello",
        "pipeline: { steps: [{ name: build, run: make }] }",
        "environments:",
        "  production:",
        "    strategy:",
        "      type: canary",
        "      analysis:",
        "        prometheus: { url: \"127.0.0.1:9090\", query: up, max: 1 }",
    ]
);
rejects!(
    a_mirror_percent_of_zero,
    "spec::out-of-range",
    [
        "app: hello",
        "pipeline: { steps: [{ name: build, run: make }] }",
        "environments:",
        "  production:",
        "    strategy:",
        "      type: canary",
        "      mirror: { percent: 0 }",
    ]
);
rejects!(
    a_mirror_without_a_percent,
    "spec::missing-key",
    [
        "app: hello",
        "pipeline: { steps: [{ name: build, run: make }] }",
        "environments:",
        "  production:",
        "    strategy:",
        "      type: canary",
        "      mirror: { duration: 2m }",
    ]
);
rejects!(
    a_lowercase_mirror_method,
    "spec::unknown-value",
    [
        "app: hello",
        "pipeline: { steps: [{ name: build, run: make }] }",
        "environments:",
        "  production:",
        "    strategy:",
        "      type: canary",
        "      mirror: { percent: 10, methods: [GET, post] }",
    ]
);
rejects!(
    an_unknown_mirror_method,
    "spec::unknown-value",
    [
        "app: hello",
        "pipeline: { steps: [{ name: build, run: make }] }",
        "environments:",
        "  production:",
        "    strategy:",
        "      type: canary",
        "      mirror: { percent: 10, methods: [GET, CONNECT] }",
    ]
);
rejects!(
    a_mirror_in_a_rolling_strategy,
    "spec::unknown-key",
    [
        "app: hello",
        "pipeline: { steps: [{ name: build, run: make }] }",
        "environments:",
        "  production:",
        "    strategy: { type: rolling, mirror: { percent: 10 } }",
    ]
);
rejects!(
    pins_on_a_rolling_environment,
    "spec::canary-only",
    [
        "app: hello",
        "pipeline: { steps: [{ name: build, run: make }] }",
        "environments:",
        "  production:",
        "    pins: [{ header: x-canary, value: \"1\", to: canary }]",
    ]
);
rejects!(
    a_cohort_on_a_blue_green_environment,
    "spec::canary-only",
    [
        "app: hello",
        "pipeline: { steps: [{ name: build, run: make }] }",
        "environments:",
        "  production:",
        "    strategy: blue-green",
        "    cohort: { cookie: uid }",
    ]
);
rejects!(
    a_cohort_with_a_header_and_a_cookie,
    "spec::conflicting-keys",
    [
        "app: hello",
        "pipeline: { steps: [{ name: build, run: make }] }",
        "environments:",
        "  production:",
        "    strategy: canary",
        "    cohort: { header: x-user-id, cookie: uid }",
    ]
);
rejects!(
    a_cohort_without_a_key,
    "spec::missing-key",
    [
        "app: hello",
        "pipeline: { steps: [{ name: build, run: make }] }",
        "environments:",
        "  production:",
        "    strategy: canary",
        "    cohort: { set_cookie: lastmile-cohort }",
    ]
);
rejects!(
    a_cohort_header_with_a_space,
    "spec::invalid-name",
    [
        "app: hello",
        "pipeline: { steps: [{ name: build, run: make }] }",
        "environments:",
        "  production:",
        "    strategy: canary",
        "    cohort: { header: x user id }",
    ]
);
rejects!(
    a_pin_to_an_unknown_side,
    "spec::unknown-value",
    [
        "app: hello",
        "pipeline: { steps: [{ name: build, run: make }] }",
        "environments:",
        "  production:",
        "    strategy: canary",
        "    pins:",
        "      - { cookie: beta, value: \"yes\", to: canery }",
    ]
);
rejects!(
    the_same_pin_twice,
    "spec::duplicate-key",
    [
        "app: hello",
        "pipeline: { steps: [{ name: build, run: make }] }",
        "environments:",
        "  production:",
        "    strategy: canary",
        "    pins:",
        "      - { header: X-Canary, value: \"1\", to: canary }",
        "      - { header: x-canary, value: \"1\", to: stable }",
    ]
);
rejects!(
    a_notify_url_without_a_scheme,
    "spec::invalid-url",
    [
        "app: hello",
        "pipeline: { steps: [{ name: build, run: make }] }",
        "environments:",
        "  production:",
        "    notify: [{ url: hooks.example.com/deploys }]",
    ]
);
rejects!(
    an_unknown_notify_format,
    "spec::unknown-value",
    [
        "app: hello",
        "pipeline: { steps: [{ name: build, run: make }] }",
        "environments:",
        "  production:",
        "    notify: [{ url: \"https://hooks.example/x\", format: slak }]",
    ]
);
rejects!(
    a_webhook_that_is_not_a_url,
    "spec::invalid-url",
    [
        "app: hello",
        "pipeline: { steps: [{ name: build, run: make }] }",
        "environments:",
        "  production:",
        "    gates:",
        "      webhooks: { before: ./check-freeze.sh }",
    ]
);
rejects!(
    an_unknown_webhook_moment,
    "spec::unknown-key",
    [
        "app: hello",
        "pipeline: { steps: [{ name: build, run: make }] }",
        "environments:",
        "  production:",
        "    gates:",
        "      webhooks: { befor: \"https://ci.example/freeze\" }",
    ]
);

rejects!(
    a_verify_check_with_a_path_and_a_command,
    "spec::conflicting-keys",
    [
        "app: hello",
        "pipeline: { steps: [{ name: build, run: make }] }",
        "environments:",
        "  production:",
        "    gates:",
        "      verify:",
        "        - { path: /healthz, run: ./smoke.sh }",
    ]
);
rejects!(
    a_verify_check_with_neither_path_nor_command,
    "spec::missing-key",
    [
        "app: hello",
        "pipeline: { steps: [{ name: build, run: make }] }",
        "environments:",
        "  production:",
        "    gates:",
        "      verify:",
        "        - { status: 204 }",
    ]
);
rejects!(
    a_status_on_a_command_check,
    "spec::conflicting-keys",
    [
        "app: hello",
        "pipeline: { steps: [{ name: build, run: make }] }",
        "environments:",
        "  production:",
        "    gates:",
        "      verify:",
        "        - { run: ./smoke.sh, status: 200, timeout: 0s }",
    ]
);

#[test]
fn every_error_is_reported_in_one_pass() {
    let source = yaml(&[
        "app: Hello",
        "pipeline:",
        "  steps:",
        "    - name: build",
        "      run: make",
        "      timeout: 10",
        "    - name: test",
        "      run: make test",
        "      nedds: [build]",
        "      needs: [biuld]",
        "environments:",
        "  production: { instances: 0, route: { listen: \":70000\" } }",
    ]);
    let errors = parse("lastmile.yaml", &source).expect_err("six mistakes");
    let codes: Vec<&str> = errors
        .diagnostics()
        .iter()
        .map(|diagnostic| diagnostic.code.as_str())
        .collect();
    assert_eq!(
        codes,
        [
            "spec::invalid-name",
            "spec::invalid-duration",
            "spec::unknown-key",
            "spec::unknown-need",
            "spec::out-of-range",
            "spec::invalid-port",
        ]
    );
    crate::snapshot!(insta::assert_json_snapshot!(errors.diagnostics()));
}

#[test]
fn errors_are_a_miette_diagnostic_with_every_error_related() {
    let errors = parse(
        "lastmile.yaml",
        &yaml(&["app: Hello", "pipeline: { steps: [] }"]),
    )
    .expect_err("two mistakes");
    let related = miette::Diagnostic::related(&errors).map_or(0, Iterator::count);
    assert_eq!(related, 2);
    assert_eq!(
        errors.to_string(),
        "lastmile.yaml is not a valid lastmile spec: 2 errors"
    );
}

// Feature flags and segments.
rejects!(
    an_unknown_operator,
    "spec::unknown-operator",
    [
        "app: hello",
        "pipeline: { steps: [{ name: build, run: make }] }",
        "segments:",
        "  staff:",
        "    - { attribute: email, op: ends-with, value: \"@example.com\" }",
    ]
);
rejects!(
    rollout_percentages_that_do_not_add_up,
    "spec::rollout-sum",
    [
        "app: hello",
        "pipeline: { steps: [{ name: build, run: make }] }",
        "flags:",
        "  new-checkout:",
        "    rollout: { on: 10, off: 85 }",
    ]
);
rejects!(
    a_rule_rollout_over_100,
    "spec::rollout-sum",
    [
        "app: hello",
        "pipeline: { steps: [{ name: build, run: make }] }",
        "flags:",
        "  color:",
        "    type: string",
        "    variants: { blue: b, green: g }",
        "    default: blue",
        "    rules:",
        "      - when: [{ attribute: country, op: equals, value: SE }]",
        "        rollout: { blue: 60, green: 50 }",
    ]
);
rejects!(
    a_missing_segment,
    "spec::unknown-segment",
    [
        "app: hello",
        "pipeline: { steps: [{ name: build, run: make }] }",
        "segments:",
        "  beta-testers:",
        "    - { attribute: beta, op: equals, value: true }",
        "flags:",
        "  new-checkout:",
        "    rules:",
        "      - segment: beta-tester",
        "        variant: on",
    ]
);
rejects!(
    a_rule_naming_a_missing_variant,
    "spec::unknown-variant",
    [
        "app: hello",
        "pipeline: { steps: [{ name: build, run: make }] }",
        "flags:",
        "  new-checkout:",
        "    rules:",
        "      - when: [{ attribute: country, op: in, value: [SE, NO] }]",
        "        variant: onn",
    ]
);
rejects!(
    a_default_naming_a_missing_variant,
    "spec::unknown-variant",
    [
        "app: hello",
        "pipeline: { steps: [{ name: build, run: make }] }",
        "flags:",
        "  color:",
        "    type: string",
        "    variants: { blue: b, green: g }",
        "    default: red",
    ]
);
rejects!(
    a_string_flag_without_a_default,
    "spec::missing-key",
    [
        "app: hello",
        "pipeline: { steps: [{ name: build, run: make }] }",
        "flags:",
        "  color:",
        "    type: string",
        "    variants: { blue: b, green: g }",
    ]
);
rejects!(
    a_variant_of_the_wrong_type,
    "spec::variant-type",
    [
        "app: hello",
        "pipeline: { steps: [{ name: build, run: make }] }",
        "flags:",
        "  limit:",
        "    type: number",
        "    variants: { low: 10, high: \"50\" }",
        "    default: low",
    ]
);
rejects!(
    a_rule_with_neither_variant_nor_rollout,
    "spec::missing-key",
    [
        "app: hello",
        "pipeline: { steps: [{ name: build, run: make }] }",
        "flags:",
        "  new-checkout:",
        "    rules:",
        "      - when: [{ attribute: country, op: equals, value: SE }]",
    ]
);
rejects!(
    a_rule_with_neither_when_nor_segment,
    "spec::missing-key",
    [
        "app: hello",
        "pipeline: { steps: [{ name: build, run: make }] }",
        "flags:",
        "  new-checkout:",
        "    rules:",
        "      - variant: on",
    ]
);
rejects!(
    follow_canary_naming_a_missing_environment,
    "spec::unknown-environment",
    [
        "app: hello",
        "pipeline: { steps: [{ name: build, run: make }] }",
        "environments:",
        "  production: { strategy: canary }",
        "flags:",
        "  checkout-canary:",
        "    rollout: { follow_canary: prodution }",
    ]
);
rejects!(
    follow_canary_on_a_rolling_environment,
    "spec::canary-only",
    [
        "app: hello",
        "pipeline: { steps: [{ name: build, run: make }] }",
        "environments:",
        "  staging: { strategy: rolling }",
        "  production: { strategy: canary }",
        "flags:",
        "  checkout-canary:",
        "    rollout: { follow_canary: staging }",
    ]
);
rejects!(
    an_unknown_key_in_a_flag,
    "spec::unknown-key",
    [
        "app: hello",
        "pipeline: { steps: [{ name: build, run: make }] }",
        "flags:",
        "  new-checkout:",
        "    enabeld: false",
    ]
);
rejects!(
    an_unknown_key_in_a_condition,
    "spec::unknown-key",
    [
        "app: hello",
        "pipeline: { steps: [{ name: build, run: make }] }",
        "flags:",
        "  new-checkout:",
        "    rules:",
        "      - when: [{ attribute: country, operator: in, value: [SE] }]",
        "        variant: on",
    ]
);
rejects!(
    in_with_a_single_value,
    "spec::wrong-type",
    [
        "app: hello",
        "pipeline: { steps: [{ name: build, run: make }] }",
        "segments:",
        "  nordics:",
        "    - { attribute: country, op: in, value: SE }",
    ]
);
rejects!(
    lt_with_a_string,
    "spec::wrong-type",
    [
        "app: hello",
        "pipeline: { steps: [{ name: build, run: make }] }",
        "segments:",
        "  adults:",
        "    - { attribute: age, op: gte, value: \"18\" }",
    ]
);
rejects!(
    an_invalid_semantic_version,
    "spec::invalid-version",
    [
        "app: hello",
        "pipeline: { steps: [{ name: build, run: make }] }",
        "segments:",
        "  recent:",
        "    - { attribute: app_version, op: semver_gte, value: 2.1 }",
    ]
);
rejects!(
    an_invalid_flag_key,
    "spec::invalid-name",
    [
        "app: hello",
        "pipeline: { steps: [{ name: build, run: make }] }",
        "flags:",
        "  new checkout: { default: off }",
    ]
);
rejects!(
    a_misspelled_follow_canary,
    "spec::unknown-key",
    [
        "app: hello",
        "pipeline: { steps: [{ name: build, run: make }] }",
        "environments:",
        "  production: { strategy: canary }",
        "flags:",
        "  checkout-canary:",
        "    rollout:",
        "      follow-canary: production",
    ]
);

// route.tls and route.limits.
rejects!(
    an_unknown_key_in_tls,
    "spec::unknown-key",
    [
        "app: hello",
        "pipeline: { steps: [{ name: build, run: make }] }",
        "environments:",
        "  production:",
        "    route:",
        "      listen: \":443\"",
        "      host: hello.example.com",
        "      tls: { acme: {}, redirect: \":80\" }",
    ]
);
rejects!(
    an_unknown_key_in_acme,
    "spec::unknown-key",
    [
        "app: hello",
        "pipeline: { steps: [{ name: build, run: make }] }",
        "environments:",
        "  production:",
        "    route:",
        "      listen: \":443\"",
        "      host: hello.example.com",
        "      tls: { acme: { emial: ops@example.com } }",
    ]
);
rejects!(
    an_unknown_key_in_hsts,
    "spec::unknown-key",
    [
        "app: hello",
        "pipeline: { steps: [{ name: build, run: make }] }",
        "environments:",
        "  production:",
        "    route:",
        "      listen: \":443\"",
        "      tls: { cert: site.pem, key: site-key.pem, hsts: { max-age: 1d } }",
    ]
);
rejects!(
    an_unknown_key_in_limits,
    "spec::unknown-key",
    [
        "app: hello",
        "pipeline: { steps: [{ name: build, run: make }] }",
        "environments:",
        "  production:",
        "    route:",
        "      listen: \":8080\"",
        "      limits: { max_body_size: 1MiB }",
    ]
);
rejects!(
    an_unknown_key_in_a_rate_limit,
    "spec::unknown-key",
    [
        "app: hello",
        "pipeline: { steps: [{ name: build, run: make }] }",
        "environments:",
        "  production:",
        "    route:",
        "      listen: \":8080\"",
        "      limits: { rate_limit: { per_second: 10, bursts: 20 } }",
    ]
);
rejects!(
    tls_with_files_and_acme,
    "spec::conflicting-keys",
    [
        "app: hello",
        "pipeline: { steps: [{ name: build, run: make }] }",
        "environments:",
        "  production:",
        "    route:",
        "      listen: \":443\"",
        "      host: hello.example.com",
        "      tls:",
        "        cert: certs/hello.pem",
        "        key: certs/hello-key.pem",
        "        acme: { email: ops@example.com }",
    ]
);
rejects!(
    tls_without_a_certificate_source,
    "spec::missing-key",
    [
        "app: hello",
        "pipeline: { steps: [{ name: build, run: make }] }",
        "environments:",
        "  production:",
        "    route:",
        "      listen: \":443\"",
        "      tls: { hsts: true }",
    ]
);
rejects!(
    a_cert_without_a_key,
    "spec::missing-key",
    [
        "app: hello",
        "pipeline: { steps: [{ name: build, run: make }] }",
        "environments:",
        "  production:",
        "    route:",
        "      listen: \":443\"",
        "      tls: { cert: certs/hello.pem }",
    ]
);
rejects!(
    a_key_without_a_cert,
    "spec::missing-key",
    [
        "app: hello",
        "pipeline: { steps: [{ name: build, run: make }] }",
        "environments:",
        "  production:",
        "    route:",
        "      listen: \":443\"",
        "      tls: { key: certs/hello-key.pem }",
    ]
);
rejects!(
    an_empty_cert_path,
    "spec::empty",
    [
        "app: hello",
        "pipeline: { steps: [{ name: build, run: make }] }",
        "environments:",
        "  production:",
        "    route:",
        "      listen: \":443\"",
        "      tls: { cert: \"\", key: certs/hello-key.pem }",
    ]
);
rejects!(
    acme_without_a_host,
    "spec::acme-host",
    [
        "app: hello",
        "pipeline: { steps: [{ name: build, run: make }] }",
        "environments:",
        "  production:",
        "    route:",
        "      listen: \":443\"",
        "      tls: { acme: { email: ops@example.com } }",
    ]
);
rejects!(
    acme_for_an_ip_address,
    "spec::acme-host",
    [
        "app: hello",
        "pipeline: { steps: [{ name: build, run: make }] }",
        "environments:",
        "  production:",
        "    route:",
        "      listen: \":443\"",
        "      host: 203.0.113.7",
        "      tls: { acme: {} }",
    ]
);
rejects!(
    acme_for_a_wildcard_host,
    "spec::acme-host",
    [
        "app: hello",
        "pipeline: { steps: [{ name: build, run: make }] }",
        "environments:",
        "  production:",
        "    route:",
        "      listen: \":443\"",
        "      host: \"*.example.com\"",
        "      tls: { acme: {} }",
    ]
);
rejects!(
    acme_for_a_host_that_is_not_a_dns_name,
    "spec::acme-host",
    [
        "app: hello",
        "pipeline: { steps: [{ name: build, run: make }] }",
        "environments:",
        "  production:",
        "    route:",
        "      listen: \":443\"",
        "      host: hello_world.example.com",
        "      tls: { acme: {} }",
    ]
);
rejects!(
    an_acme_directory_over_plain_http,
    "spec::invalid-url",
    [
        "app: hello",
        "pipeline: { steps: [{ name: build, run: make }] }",
        "environments:",
        "  production:",
        "    route:",
        "      listen: \":443\"",
        "      host: hello.example.com",
        "      tls: { acme: { directory: \"http://localhost:14000/dir\" } }",
    ]
);
rejects!(
    an_acme_email_that_is_not_an_address,
    "spec::invalid-email",
    [
        "app: hello",
        "pipeline: { steps: [{ name: build, run: make }] }",
        "environments:",
        "  production:",
        "    route:",
        "      listen: \":443\"",
        "      host: hello.example.com",
        "      tls: { acme: { email: \"Ops Team <ops@example.com>\" } }",
    ]
);
rejects!(
    a_redirect_from_the_listen_address,
    "spec::redirect-conflict",
    [
        "app: hello",
        "pipeline: { steps: [{ name: build, run: make }] }",
        "environments:",
        "  production:",
        "    route:",
        "      listen: \":443\"",
        "      tls: { cert: site.pem, key: site-key.pem, redirect_from: \"0.0.0.0:443\" }",
    ]
);
rejects!(
    acme_on_port_80_without_another_redirect,
    "spec::redirect-conflict",
    [
        "app: hello",
        "pipeline: { steps: [{ name: build, run: make }] }",
        "environments:",
        "  production:",
        "    route:",
        "      listen: \":80\"",
        "      host: hello.example.com",
        "      tls: { acme: {} }",
    ]
);
rejects!(
    a_redirect_from_that_is_not_an_address,
    "spec::invalid-address",
    [
        "app: hello",
        "pipeline: { steps: [{ name: build, run: make }] }",
        "environments:",
        "  production:",
        "    route:",
        "      listen: \":443\"",
        "      tls: { cert: site.pem, key: site-key.pem, redirect_from: http }",
    ]
);
rejects!(
    a_redirect_from_another_environments_listener,
    "spec::redirect-conflict",
    [
        "app: hello",
        "pipeline: { steps: [{ name: build, run: make }] }",
        "environments:",
        "  staging:",
        "    route: { listen: \":80\" }",
        "  production:",
        "    route:",
        "      listen: \":443\"",
        "      host: hello.example.com",
        "      tls: { acme: { email: ops@example.com } }",
    ]
);
rejects!(
    hsts_given_as_a_duration,
    "spec::wrong-type",
    [
        "app: hello",
        "pipeline: { steps: [{ name: build, run: make }] }",
        "environments:",
        "  production:",
        "    route:",
        "      listen: \":443\"",
        "      tls: { cert: site.pem, key: site-key.pem, hsts: 365d }",
    ]
);
rejects!(
    hsts_include_subdomains_as_a_word,
    "spec::wrong-type",
    [
        "app: hello",
        "pipeline: { steps: [{ name: build, run: make }] }",
        "environments:",
        "  production:",
        "    route:",
        "      listen: \":443\"",
        "      tls: { cert: site.pem, key: site-key.pem, hsts: { include_subdomains: yes } }",
    ]
);
rejects!(
    hsts_preload_without_subdomains,
    "spec::hsts-preload",
    [
        "app: hello",
        "pipeline: { steps: [{ name: build, run: make }] }",
        "environments:",
        "  production:",
        "    route:",
        "      listen: \":443\"",
        "      tls: { cert: site.pem, key: site-key.pem, hsts: { max_age: 30d, preload: true } }",
    ]
);
rejects!(
    a_max_body_of_zero,
    "spec::out-of-range",
    [
        "app: hello",
        "pipeline: { steps: [{ name: build, run: make }] }",
        "environments:",
        "  production:",
        "    route: { listen: \":8080\", limits: { max_body: 0B } }",
    ]
);
rejects!(
    a_max_body_without_a_unit,
    "spec::invalid-size",
    [
        "app: hello",
        "pipeline: { steps: [{ name: build, run: make }] }",
        "environments:",
        "  production:",
        "    route: { listen: \":8080\", limits: { max_body: 1048576 } }",
    ]
);
rejects!(
    a_max_body_with_a_guessed_unit,
    "spec::invalid-size",
    [
        "app: hello",
        "pipeline: { steps: [{ name: build, run: make }] }",
        "environments:",
        "  production:",
        "    route: { listen: \":8080\", limits: { max_body: 10mb } }",
    ]
);
rejects!(
    a_max_body_above_a_tebibyte,
    "spec::out-of-range",
    [
        "app: hello",
        "pipeline: { steps: [{ name: build, run: make }] }",
        "environments:",
        "  production:",
        "    route: { listen: \":8080\", limits: { max_body: 2TiB } }",
    ]
);
rejects!(
    zero_max_headers,
    "spec::out-of-range",
    [
        "app: hello",
        "pipeline: { steps: [{ name: build, run: make }] }",
        "environments:",
        "  production:",
        "    route: { listen: \":8080\", limits: { max_headers: 0 } }",
    ]
);
rejects!(
    max_headers_above_256,
    "spec::out-of-range",
    [
        "app: hello",
        "pipeline: { steps: [{ name: build, run: make }] }",
        "environments:",
        "  production:",
        "    route: { listen: \":8080\", limits: { max_headers: 1000 } }",
    ]
);
rejects!(
    more_connections_per_ip_than_in_all,
    "spec::conflicting-limits",
    [
        "app: hello",
        "pipeline: { steps: [{ name: build, run: make }] }",
        "environments:",
        "  production:",
        "    route:",
        "      listen: \":8080\"",
        "      limits: { max_connections: 100, max_connections_per_ip: 500 }",
    ]
);
rejects!(
    a_body_timeout_too_short,
    "spec::out-of-range",
    [
        "app: hello",
        "pipeline: { steps: [{ name: build, run: make }] }",
        "environments:",
        "  production:",
        "    route: { listen: \":8080\", limits: { body_timeout: 1ms } }",
    ]
);
rejects!(
    an_idle_timeout_as_a_bare_number,
    "spec::invalid-duration",
    [
        "app: hello",
        "pipeline: { steps: [{ name: build, run: make }] }",
        "environments:",
        "  production:",
        "    route: { listen: \":8080\", limits: { idle_timeout: 60 } }",
    ]
);
rejects!(
    a_rate_limit_of_zero_per_second,
    "spec::out-of-range",
    [
        "app: hello",
        "pipeline: { steps: [{ name: build, run: make }] }",
        "environments:",
        "  production:",
        "    route: { listen: \":8080\", limits: { rate_limit: { per_second: 0 } } }",
    ]
);
rejects!(
    a_rate_limit_burst_of_zero,
    "spec::out-of-range",
    [
        "app: hello",
        "pipeline: { steps: [{ name: build, run: make }] }",
        "environments:",
        "  production:",
        "    route: { listen: \":8080\", limits: { rate_limit: { per_second: 10, burst: 0 } } }",
    ]
);
rejects!(
    a_rate_limit_without_per_second,
    "spec::missing-key",
    [
        "app: hello",
        "pipeline: { steps: [{ name: build, run: make }] }",
        "environments:",
        "  production:",
        "    route: { listen: \":8080\", limits: { rate_limit: { burst: 10 } } }",
    ]
);
rejects!(
    plain_and_tls_on_one_listener,
    "spec::listener-conflict",
    [
        "app: hello",
        "pipeline: { steps: [{ name: build, run: make }] }",
        "environments:",
        "  staging:",
        "    route: { listen: \":443\", host: staging.example.com }",
        "  production:",
        "    route:",
        "      listen: \":443\"",
        "      host: hello.example.com",
        "      tls: { acme: {} }",
    ]
);
rejects!(
    two_redirects_for_one_listener,
    "spec::listener-conflict",
    [
        "app: hello",
        "pipeline: { steps: [{ name: build, run: make }] }",
        "environments:",
        "  staging:",
        "    route:",
        "      listen: \":443\"",
        "      host: staging.example.com",
        "      tls: { acme: {} }",
        "  production:",
        "    route:",
        "      listen: \":443\"",
        "      host: hello.example.com",
        "      tls: { acme: {}, redirect_from: \":8080\" }",
    ]
);
rejects!(
    two_certificates_for_one_host_on_one_listener,
    "spec::listener-conflict",
    [
        "app: hello",
        "pipeline: { steps: [{ name: build, run: make }] }",
        "environments:",
        "  staging:",
        "    route: { listen: \":443\", tls: { cert: a.pem, key: a-key.pem } }",
        "  production:",
        "    route:",
        "      listen: \":443\"",
        "      host: hello.example.com",
        "      path_prefix: /shop",
        "      tls: { cert: b.pem, key: b-key.pem }",
    ]
);
rejects!(
    different_limits_on_one_listener,
    "spec::listener-conflict",
    [
        "app: hello",
        "pipeline: { steps: [{ name: build, run: make }] }",
        "environments:",
        "  staging:",
        "    route: { listen: \":8080\", host: staging.example.com, limits: { max_body: 1MiB } }",
        "  production:",
        "    route:",
        "      listen: \":8080\"",
        "      host: hello.example.com",
        "      limits: { max_body: 10MiB, max_headers: 50 }",
    ]
);
rejects!(
    two_redirects_that_collide,
    "spec::redirect-conflict",
    [
        "app: hello",
        "pipeline: { steps: [{ name: build, run: make }] }",
        "environments:",
        "  staging:",
        "    route: { listen: \"127.0.0.1:8443\", host: staging.example.com, tls: { acme: {} } }",
        "  production:",
        "    route: { listen: \":443\", host: hello.example.com, tls: { acme: {} } }",
    ]
);
rejects!(
    every_route_tls_and_limits_error_is_reported_in_one_pass,
    "spec::invalid-email",
    [
        "app: hello",
        "pipeline: { steps: [{ name: build, run: make }] }",
        "environments:",
        "  production:",
        "    route:",
        "      listen: \":443\"",
        "      host: hello.example.com",
        "      tls:",
        "        acme: { email: ops, directory: \"ftp://ca.example.com\" }",
        "        redirect_from: \":443\"",
        "        hsts: { preload: maybe }",
        "      limits: { max_body: 10M, max_headers: 300, rate_limit: { per_second: 0 } }",
    ]
);

// Found by the single-fault corpus: each pins one class that read wrong.
rejects!(
    a_percent_sign_on_a_latency,
    "spec::wrong-type",
    [
        "app: hello",
        "pipeline: { steps: [{ name: build, run: make }] }",
        "environments:",
        "  production:",
        "    strategy:",
        "      type: canary",
        "      analysis: { max_p99_ms: 5% }",
    ]
);
rejects!(
    a_percent_sign_on_a_latency_ratio,
    "spec::wrong-type",
    [
        "app: hello",
        "pipeline: { steps: [{ name: build, run: make }] }",
        "environments:",
        "  production:",
        "    strategy: { type: canary, max_latency_ratio: 2% }",
    ]
);
rejects!(
    a_percent_sign_on_a_confidence,
    "spec::wrong-type",
    [
        "app: hello",
        "pipeline: { steps: [{ name: build, run: make }] }",
        "environments:",
        "  production:",
        "    strategy:",
        "      type: canary",
        "      analysis: { confidence: 99% }",
    ]
);
rejects!(
    a_prometheus_url_without_a_host,
    "spec::invalid-url",
    [
        "app: hello",
        "pipeline: { steps: [{ name: build, run: make }] }",
        "environments:",
        "  production:",
        "    strategy:",
        "      type: canary",
        "      analysis:",
        "        prometheus: { url: \"http://:9090/metrics\", query: up, max: 1 }",
    ]
);
rejects!(
    a_listen_address_that_is_ipv6_without_a_port,
    "spec::invalid-address",
    [
        "app: hello",
        "pipeline: { steps: [{ name: build, run: make }] }",
        "environments:",
        "  production:",
        "    route: { listen: \"[::1]\" }",
    ]
);
rejects!(
    instances_too_large_for_any_integer,
    "spec::out-of-range",
    [
        "app: hello",
        "pipeline: { steps: [{ name: build, run: make }] }",
        "environments:",
        "  production: { instances: 99999999999999999999999 }",
    ]
);
rejects!(
    a_health_path_with_a_space,
    "spec::invalid-path",
    [
        "app: hello",
        "pipeline: { steps: [{ name: build, run: make }] }",
        "service:",
        "  run: ./server",
        "  health: { path: /health z }",
    ]
);
rejects!(
    a_rollout_naming_a_missing_variant_beside_the_close_one,
    "spec::unknown-variant",
    [
        "app: hello",
        "pipeline: { steps: [{ name: build, run: make }] }",
        "flags:",
        "  new-checkout:",
        "    rollout: { on: 10, onn: 90 }",
    ]
);
rejects!(
    a_confidence_of_nan,
    "spec::out-of-range",
    [
        "app: hello",
        "pipeline: { steps: [{ name: build, run: make }] }",
        "environments:",
        "  production:",
        "    strategy:",
        "      type: canary",
        "      analysis: { confidence: .nan }",
    ]
);

/// The rendered errors of `source` (too big to echo), asserting one `code`.
fn rejected_without_input(code: &str, source: &str) -> String {
    let errors = match parse("lastmile.yaml", source) {
        Ok((spec, _)) => panic!("expected {code}, but the spec was accepted: {spec:#?}"),
        Err(errors) => errors,
    };
    let codes: Vec<&str> = errors
        .diagnostics()
        .iter()
        .map(|diagnostic| diagnostic.code.as_str())
        .collect();
    assert_eq!(codes, [code]);
    let diagnostic = &errors.diagnostics()[0];
    assert_eq!((diagnostic.line, diagnostic.column), (0, 0), "no place");
    errors.render(false)
}

#[test]
fn a_spec_with_too_many_values() {
    let mut source = String::from("app: hello\npipeline:\n  steps:\n");
    for index in 0..130_000 {
        source.push_str(&format!("    - {{ name: s{index}, run: x }}\n"));
    }
    crate::snapshot!(insta::assert_snapshot!(rejected_without_input(
        "spec::too-large",
        &source
    )));
}

#[test]
fn an_alias_bomb() {
    let mut source = String::from(
        "app: hello\npipeline: { steps: [{ name: a, run: x }] }\nx0: &x0 [a, a, a, a, a, a, a, a, a, a]\n",
    );
    for level in 1..9 {
        let previous = format!("*x{}", level - 1);
        let items = [previous.as_str(); 10].join(", ");
        source.push_str(&format!("x{level}: &x{level} [{items}]\n"));
    }
    crate::snapshot!(insta::assert_snapshot!(rejected_without_input(
        "spec::too-large",
        &source
    )));
}

#[test]
fn columns_count_characters_in_text_and_data_alike() {
    let source = yaml(&[
        "app: hello",
        "pipeline:",
        "  steps:",
        "    - { name: build, run: \"echo grüße aus Köln\", retries: 99 }",
    ]);
    let errors = parse("lastmile.yaml", &source).expect_err("retries 99 is out of range");
    let diagnostic = &errors.diagnostics()[0];
    let expected = "    - { name: build, run: \"echo grüße aus Köln\", retries: "
        .chars()
        .count()
        + 1;
    assert_eq!((diagnostic.line, diagnostic.column), (4, expected));
    let rendered = errors.render(false);
    assert!(
        rendered.contains(&format!("lastmile.yaml:4:{expected}]")),
        "the header names the same column as --json: {rendered}"
    );
    crate::snapshot!(insta::assert_snapshot!(rendered));
}

#[test]
fn a_file_that_is_not_utf8_names_the_first_bad_byte() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut bytes =
        b"app: hello\npipeline: { steps: [{ name: build, run: \"echo gr\xC3\xBC\xC3\x9Fe ".to_vec();
    bytes.extend_from_slice(b"K\xF6ln\" }] }\n");
    std::fs::write(dir.path().join("lastmile.yaml"), &bytes).expect("write spec");
    let Err(lastmile_spec::LoadError::Invalid(errors)) = lastmile_spec::load(dir.path()) else {
        panic!("a Latin-1 byte is refused with a place");
    };
    let diagnostic = &errors.diagnostics()[0];
    assert_eq!(diagnostic.code, "spec::not-utf8");
    let expected = "pipeline: { steps: [{ name: build, run: \"echo grüße K"
        .chars()
        .count()
        + 1;
    assert_eq!((diagnostic.line, diagnostic.column), (2, expected));
    let rendered = errors
        .render(false)
        .replace(&dir.path().display().to_string(), "DIR");
    crate::snapshot!(insta::assert_snapshot!(rendered));
}

#[test]
fn five_thousand_errors_all_render() {
    let mut source = String::from("app: hello\npipeline:\n  steps:\n");
    for index in 0..5000 {
        source.push_str(&format!("    - {{ name: s{index}, run: x, rn: y }}\n"));
    }
    let errors = parse("lastmile.yaml", &source).expect_err("every step has an unknown key");
    assert_eq!(errors.diagnostics().len(), 5000);
    // Every error is shown, none capped: rendering looks each one's line up
    // in an index instead of re-reading the file (5000 took 3.7 s that way,
    // 0.06 s now, in a debug build).
    let rendered = errors.render(false);
    assert_eq!(rendered.matches("spec::unknown-key").count(), 5000);
    let last = "    - { name: s4999, run: x, ".chars().count() + 1;
    assert!(
        rendered.contains(&format!("lastmile.yaml:5003:{last}]")),
        "the last one has its place"
    );
}
