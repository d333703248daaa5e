//! Feature flags in `lastmile up`: runtime overrides from the CLI, recorded
//! with who, shown as drift from lastmile.yaml, and reset.

use super::*;

fn add_flags(app: &App) {
    let path = app.dir.path().join("lastmile.yaml");
    let mut spec = std::fs::read_to_string(&path).unwrap();
    spec.push_str(
        r#"flags:
  new-checkout:
    rules:
      - when: [ { attribute: country, op: in, value: [SE, NO] } ]
        variant: on
    rollout: { on: 10, off: 90 }
  banner:
    type: string
    variants: { plain: "hello", festive: "hello!!" }
    default: plain
"#,
    );
    std::fs::write(&path, spec).unwrap();
}

fn flag_state(app: &App, key: &str) -> serde_json::Value {
    let list = app.must(&["flag", "list", "--json"]);
    list["flags"]
        .as_array()
        .unwrap()
        .iter()
        .find(|flag| flag["key"] == key)
        .cloned()
        .unwrap_or_else(|| panic!("no flag {key} in {list}"))
}

/// `POST /ofrep/v1/evaluate/flags/{key}` on the running `lastmile up`.
fn evaluate(app: &App, key: &str, context: &str) -> serde_json::Value {
    let control = app.control_addr();
    let body = format!(r#"{{"context":{context}}}"#);
    let answer = exchange(
        &control,
        &format!(
            "POST /ofrep/v1/evaluate/flags/{key} HTTP/1.1\r\nhost: {control}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
            body.len()
        ),
    );
    let (_, body) = answer.split_once("\r\n\r\n").unwrap();
    serde_json::from_str(body).unwrap_or_else(|_| panic!("not JSON: {answer}"))
}

#[test]
fn flags_are_served_over_ofrep_and_a_kill_switch_applies_to_the_next_request() {
    let app = App::new("rolling", 1, "v1");
    add_flags(&app);
    let up = app.up();
    let swedish = r#"{"targetingKey":"user-1","country":"SE"}"#;
    let answer = evaluate(&app, "new-checkout", swedish);
    assert_eq!(answer["value"], true, "{answer}");
    assert_eq!(answer["reason"], "TARGETING_MATCH", "{answer}");
    let answer = evaluate(&app, "banner", "{}");
    assert_eq!(answer["value"], "hello", "{answer}");
    assert_eq!(answer["reason"], "STATIC", "{answer}");
    let answer = evaluate(&app, "nope", "{}");
    assert_eq!(answer["errorCode"], "FLAG_NOT_FOUND", "{answer}");

    assert!(
        app.lastmile(&["flag", "disable", "new-checkout"])
            .status
            .success()
    );
    let answer = evaluate(&app, "new-checkout", swedish);
    assert_eq!(answer["value"], false, "{answer}");
    assert_eq!(answer["reason"], "DISABLED", "{answer}");
    assert!(
        up.log().contains("/ofrep/v1/evaluate/flags"),
        "{}",
        up.log()
    );
    drop(up);
}

#[test]
fn flags_are_overridden_killed_and_reset_from_the_cli() {
    let app = App::new("rolling", 1, "v1");
    add_flags(&app);
    let up = app.up();

    let flag = flag_state(&app, "new-checkout");
    assert_eq!(flag["enabled"], true, "{flag}");
    assert_eq!(flag["override"], serde_json::Value::Null, "{flag}");

    // The kill switch, from a shell with neither $USER nor $LOGNAME (a
    // container, cron): the override still names someone.
    let output = app
        .command(&["flag", "disable", "new-checkout"])
        .env_remove("USER")
        .env_remove("LOGNAME")
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let flag = flag_state(&app, "new-checkout");
    assert_eq!(flag["enabled"], false, "{flag}");
    assert_eq!(flag["override"]["value"]["enabled"], false, "{flag}");
    let by = flag["override"]["by"].as_str().unwrap();
    assert!(by.starts_with("local:") && by != "local:unknown", "{flag}");
    let listed = String::from_utf8_lossy(&app.lastmile(&["flag", "list"]).stdout).into_owned();
    assert!(listed.contains("KILLED"), "{listed}");

    // A rollout override keeps the kill switch (overrides merge).
    let output = app.lastmile(&["flag", "rollout", "new-checkout", "on=50", "off=50"]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let flag = flag_state(&app, "new-checkout");
    assert_eq!(flag["enabled"], false, "{flag}");
    assert_eq!(flag["override"]["value"]["rollout"][0][1], 50.0, "{flag}");

    // Bad overrides are refused with the reason.
    let output = app.lastmile(&["flag", "rollout", "new-checkout", "on=50", "off=40"]);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("100"), "{stderr}");
    let output = app.lastmile(&["flag", "set", "banner", "gaudy"]);
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("no variant `gaudy`"));
    // A flag the spec does not declare is refused by disable and reset
    // alike, naming the closest declared flag.
    for action in ["disable", "reset"] {
        let output = app.lastmile(&["flag", action, "new-chekout"]);
        assert_eq!(output.status.code(), Some(2), "flag {action}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            stderr.contains("no flag `new-chekout`")
                && stderr.contains("did you mean `new-checkout`?")
                && stderr.contains("`banner`"),
            "flag {action}: {stderr}"
        );
    }

    // Reset: back to lastmile.yaml.
    let output = app.lastmile(&["flag", "reset", "new-checkout"]);
    assert!(output.status.success());
    let flag = flag_state(&app, "new-checkout");
    assert_eq!(flag["enabled"], true, "{flag}");
    assert_eq!(flag["override"], serde_json::Value::Null, "{flag}");
    let status = app.status().unwrap();
    assert_eq!(status["flags"].as_array().unwrap().len(), 2, "{status}");
    drop(up);
}

/// A flag that follows the canary is on for exactly the users the router
/// sends to the canary release: the same cohort hash on both sides.
#[test]
fn a_flag_following_the_canary_is_on_for_exactly_the_canary_users() {
    let strategy = "{ type: canary, steps: [30, pause, 100], step_duration: 1s, min_requests: 1, max_latency_ratio: 100, analysis: { max_p95_ratio: 100, latency_floor_ms: 2000 } }";
    let app = App::new(strategy, 1, "v1");
    let up = app.up();
    app.write_spec(strategy, 1, "v2", "");
    let path = app.dir.path().join("lastmile.yaml");
    let spec = std::fs::read_to_string(&path).unwrap().replace(
        "    route:",
        "    cohort: { header: x-user-id }\n    route:",
    ) + "flags:\n  checkout-canary:\n    rollout: { follow_canary: production }\n";
    std::fs::write(&path, spec).unwrap();
    let load = Load::start(&app);
    let deploy = app.start_deploy();
    wait_for("the canary to pause at 30%", || {
        app.status()
            .is_ok_and(|status| status["environments"][0]["deployment"]["phase"] == "step-2-paused")
    });
    // The flags read the canary's share once a second.
    std::thread::sleep(Duration::from_millis(1500));
    let mut on_canary = 0;
    for user in 0..200 {
        let key = format!("user-{user}");
        let routed = app
            .get_with("/", &format!("x-user-id: {key}\r\n"))
            .contains("hello v2");
        let flag = evaluate(
            &app,
            "checkout-canary",
            &format!(r#"{{"targetingKey":"{key}"}}"#),
        );
        assert_eq!(
            flag["value"], routed,
            "{key}: flag {flag} but routed to the canary: {routed}"
        );
        on_canary += usize::from(routed);
    }
    assert!(
        (30..=90).contains(&on_canary),
        "{on_canary} of 200 users on the canary at 30%"
    );
    app.must(&["promote", "production"]);
    let outcome = outcome_of(deploy);
    assert_eq!(outcome["status"], "succeeded", "{outcome}");
    let report = load.stop();
    assert_eq!(report.failed, 0, "{report:#?}");
    drop(up);
}
