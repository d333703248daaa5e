#![allow(clippy::unwrap_used, reason = "a failed unwrap is a failed test")]

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use lastmile_spec::{Pipeline, Secrets, Spec, Step};

use super::{SecretError, resolve, resolve_with_warnings};

fn step(name: &str, secrets: &[&str]) -> Step {
    Step {
        name: name.to_owned(),
        run: "true".to_owned(),
        needs: Vec::new(),
        env: BTreeMap::new(),
        timeout: None,
        retries: 0,
        inputs: Vec::new(),
        outputs: Vec::new(),
        secrets: secrets.iter().map(|name| (*name).to_owned()).collect(),
        workdir: None,
    }
}

fn spec(file: Option<&str>, steps: Vec<Step>) -> Spec {
    Spec {
        app: "demo".to_owned(),
        pipeline: Pipeline { steps },
        artifact: None,
        service: None,
        secrets: Secrets {
            file: file.map(str::to_owned),
        },
        environments: Vec::new(),
        flags: Vec::new(),
        segments: Vec::new(),
        reserved_sections: Vec::new(),
    }
}

fn environment_of(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
    let map: BTreeMap<String, String> = pairs
        .iter()
        .map(|(name, value)| ((*name).to_owned(), (*value).to_owned()))
        .collect();
    move |name: &str| map.get(name).cloned()
}

fn write_private(path: &Path, text: &str) {
    fs::write(path, text).unwrap();
    fs::set_permissions(path, fs::Permissions::from_mode(0o600)).unwrap();
}

#[test]
fn environment_wins_over_the_file() {
    let dir = tempfile::tempdir().unwrap();
    write_private(
        &dir.path().join(".env"),
        "TOKEN=from-file\nOTHER=file-other\n",
    );
    let spec = spec(
        Some(".env"),
        vec![step("a", &["TOKEN"]), step("b", &["OTHER", "TOKEN"])],
    );
    let values = resolve(dir.path(), &spec, &environment_of(&[("TOKEN", "from-env")])).unwrap();
    assert_eq!(values.get("TOKEN").map(String::as_str), Some("from-env"));
    assert_eq!(values.get("OTHER").map(String::as_str), Some("file-other"));
    assert_eq!(values.len(), 2);
}

#[test]
fn only_referenced_names_are_returned() {
    let dir = tempfile::tempdir().unwrap();
    write_private(&dir.path().join(".env"), "USED=1\nUNUSED=2\n");
    let spec = spec(Some(".env"), vec![step("a", &["USED"])]);
    let values = resolve(dir.path(), &spec, &environment_of(&[])).unwrap();
    assert_eq!(values.keys().collect::<Vec<_>>(), ["USED"]);
}

#[test]
fn dotenv_syntax_is_understood() {
    let dir = tempfile::tempdir().unwrap();
    let text = concat!(
        "# a comment\n",
        "\n",
        "export EXPORTED=plain\n",
        "SPACED = spaced value  # trailing comment\n",
        "SINGLE='has # inside'\n",
        "SINGLE_LITERAL='a\\nb'\n",
        "DOUBLE=\"line one\\nline two\\t\\\"quoted\\\" \\\\ end\" # comment\n",
        "MULTI=\"-----BEGIN KEY-----\n",
        "abc\n",
        "-----END KEY-----\"\n",
        "EMPTY=\n",
        "HASH=value#kept\n",
        "exporter=not-an-export\n",
    );
    write_private(&dir.path().join("secrets.env"), text);
    let names = [
        "EXPORTED",
        "SPACED",
        "SINGLE",
        "SINGLE_LITERAL",
        "DOUBLE",
        "MULTI",
        "EMPTY",
        "HASH",
        "exporter",
    ];
    let spec = spec(Some("secrets.env"), vec![step("a", &names)]);
    let values = resolve(dir.path(), &spec, &environment_of(&[])).unwrap();
    let get = |name: &str| values.get(name).map(String::as_str);
    assert_eq!(get("EXPORTED"), Some("plain"));
    assert_eq!(get("SPACED"), Some("spaced value"));
    assert_eq!(get("SINGLE"), Some("has # inside"));
    assert_eq!(get("SINGLE_LITERAL"), Some("a\\nb"));
    assert_eq!(get("DOUBLE"), Some("line one\nline two\t\"quoted\" \\ end"));
    assert_eq!(
        get("MULTI"),
        Some("-----BEGIN KEY-----\nabc\n-----END KEY-----")
    );
    assert_eq!(get("EMPTY"), Some(""));
    assert_eq!(get("HASH"), Some("value#kept"));
    assert_eq!(get("exporter"), Some("not-an-export"));
}

#[test]
fn missing_names_are_all_listed_without_values() {
    let dir = tempfile::tempdir().unwrap();
    write_private(&dir.path().join(".env"), "PRESENT=super-secret-value\n");
    let spec = spec(
        Some(".env"),
        vec![
            step("a", &["PRESENT", "ZETA"]),
            step("b", &["ALPHA", "ZETA"]),
        ],
    );
    let error = resolve(dir.path(), &spec, &environment_of(&[])).unwrap_err();
    let SecretError::Missing { names, .. } = &error else {
        panic!("expected Missing, got {error:?}");
    };
    assert_eq!(names, &["ALPHA", "ZETA"]);
    let message = error.to_string();
    assert!(message.contains("ALPHA, ZETA"), "{message}");
    assert!(message.contains("process environment"), "{message}");
    assert!(message.contains(".env"), "{message}");
    assert!(!message.contains("super-secret-value"), "{message}");
}

#[test]
fn missing_file_is_fine_when_the_environment_has_everything() {
    let dir = tempfile::tempdir().unwrap();
    let spec = spec(Some("absent.env"), vec![step("a", &["TOKEN"])]);
    let values = resolve(dir.path(), &spec, &environment_of(&[("TOKEN", "t")])).unwrap();
    assert_eq!(values.get("TOKEN").map(String::as_str), Some("t"));
}

#[test]
fn missing_file_is_named_when_a_secret_is_missing() {
    let dir = tempfile::tempdir().unwrap();
    let spec = spec(Some("absent.env"), vec![step("a", &["TOKEN"])]);
    let error = resolve(dir.path(), &spec, &environment_of(&[])).unwrap_err();
    let message = error.to_string();
    assert!(matches!(error, SecretError::Missing { .. }), "{error:?}");
    assert!(message.contains("absent.env does not exist"), "{message}");
}

#[test]
fn no_file_configured_hints_at_secrets_file() {
    let dir = tempfile::tempdir().unwrap();
    let spec = spec(None, vec![step("a", &["TOKEN"])]);
    let message = resolve(dir.path(), &spec, &environment_of(&[]))
        .unwrap_err()
        .to_string();
    assert!(message.contains("secrets.file"), "{message}");
    assert!(message.contains("TOKEN"), "{message}");
}

#[test]
fn no_secrets_referenced_needs_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let spec = spec(Some("absent.env"), vec![step("a", &[])]);
    assert!(
        resolve(dir.path(), &spec, &environment_of(&[]))
            .unwrap()
            .is_empty()
    );
}

#[test]
fn home_relative_file_is_expanded() {
    let home = tempfile::tempdir().unwrap();
    let spec_dir = tempfile::tempdir().unwrap();
    fs::create_dir(home.path().join(".config")).unwrap();
    write_private(&home.path().join(".config/app.env"), "TOKEN=from-home\n");
    let spec = spec(Some("~/.config/app.env"), vec![step("a", &["TOKEN"])]);
    let home_text = home.path().to_str().unwrap();
    let values = resolve(
        spec_dir.path(),
        &spec,
        &environment_of(&[("HOME", home_text)]),
    )
    .unwrap();
    assert_eq!(values.get("TOKEN").map(String::as_str), Some("from-home"));

    let error = resolve(spec_dir.path(), &spec, &environment_of(&[])).unwrap_err();
    assert!(matches!(error, SecretError::NoHome { .. }), "{error:?}");
}

#[test]
fn absolute_file_path_is_used_as_is() {
    let elsewhere = tempfile::tempdir().unwrap();
    let path = elsewhere.path().join("abs.env");
    write_private(&path, "TOKEN=absolute\n");
    let spec = spec(Some(path.to_str().unwrap()), vec![step("a", &["TOKEN"])]);
    let spec_dir = tempfile::tempdir().unwrap();
    let values = resolve(spec_dir.path(), &spec, &environment_of(&[])).unwrap();
    assert_eq!(values.get("TOKEN").map(String::as_str), Some("absolute"));
}

#[test]
fn syntax_errors_name_the_line_but_not_the_value() {
    let dir = tempfile::tempdir().unwrap();
    for (text, line) in [
        ("OK=1\nthis-line-has-no-equals-sign-hunter2\n", 2),
        ("OK=1\n\n9BAD=hunter2\n", 3),
        ("QUOTED=\"hunter2 never closed\n", 1),
        ("AFTER='hunter2' trailing-hunter2\n", 1),
    ] {
        write_private(&dir.path().join(".env"), text);
        let spec = spec(Some(".env"), vec![step("a", &["OK"])]);
        let error = resolve(dir.path(), &spec, &environment_of(&[])).unwrap_err();
        let SecretError::Syntax { line: found, .. } = &error else {
            panic!("expected Syntax for {text:?}, got {error:?}");
        };
        assert_eq!(*found, line, "{text:?}");
        assert!(!error.to_string().contains("hunter2"), "{error}");
    }
}

#[test]
fn readable_by_others_gives_a_warning() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(".env");
    write_private(&path, "TOKEN=t\n");
    let spec = spec(Some(".env"), vec![step("a", &["TOKEN"])]);
    let resolved = resolve_with_warnings(dir.path(), &spec, &environment_of(&[])).unwrap();
    assert!(resolved.warnings.is_empty(), "{:?}", resolved.warnings);

    fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
    let resolved = resolve_with_warnings(dir.path(), &spec, &environment_of(&[])).unwrap();
    assert_eq!(resolved.warnings.len(), 1);
    assert!(
        resolved.warnings[0].contains("chmod 600"),
        "{:?}",
        resolved.warnings
    );
    assert_eq!(resolved.values.get("TOKEN").map(String::as_str), Some("t"));
}

#[test]
fn messages_read_well() {
    let missing = SecretError::Missing {
        names: vec!["ALPHA".to_owned(), "ZETA".to_owned()],
        looked: "the process environment and /app/.env".to_owned(),
        file: Some("/app/.env".into()),
    };
    insta::assert_snapshot!(missing, @"no value for secrets ALPHA, ZETA (looked in the process environment and /app/.env); export them in the environment or add `NAME=value` lines to /app/.env");
    let one = SecretError::Missing {
        names: vec!["TOKEN".to_owned()],
        looked: "the process environment".to_owned(),
        file: None,
    };
    insta::assert_snapshot!(one, @"no value for secret TOKEN (looked in the process environment); export it in the environment or name a dotenv file in `secrets.file` of lastmile.yaml");
    let syntax = SecretError::Syntax {
        path: "/app/.env".into(),
        line: 3,
        problem: "expected `=` after the name",
    };
    insta::assert_snapshot!(syntax, @r#"/app/.env:3: expected `=` after the name; lines must look like `NAME=value` (optionally `export NAME="value"`)"#);
}
