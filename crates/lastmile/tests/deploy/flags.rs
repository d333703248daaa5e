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

#[test]
fn flags_are_overridden_killed_and_reset_from_the_cli() {
    let app = App::new("rolling", 1, "v1");
    add_flags(&app);
    let up = app.up();

    let flag = flag_state(&app, "new-checkout");
    assert_eq!(flag["enabled"], true, "{flag}");
    assert_eq!(flag["override"], serde_json::Value::Null, "{flag}");

    // The kill switch.
    let output = app.lastmile(&["flag", "disable", "new-checkout"]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let flag = flag_state(&app, "new-checkout");
    assert_eq!(flag["enabled"], false, "{flag}");
    assert_eq!(flag["override"]["value"]["enabled"], false, "{flag}");
    assert!(
        flag["override"]["by"].as_str().unwrap().starts_with("local:"),
        "{flag}"
    );
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
    let output = app.lastmile(&["flag", "disable", "no-such-flag"]);
    assert!(!output.status.success());

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
