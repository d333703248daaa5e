#![allow(clippy::unwrap_used, reason = "a failed unwrap is a failed test")]

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use lastmile_spec::Step;

use super::step_key;

fn step(inputs: &[&str]) -> Step {
    Step {
        name: "build".to_owned(),
        run: "make".to_owned(),
        needs: Vec::new(),
        env: BTreeMap::from([("MODE".to_owned(), "release".to_owned())]),
        timeout: None,
        retries: 0,
        inputs: inputs.iter().map(|pattern| (*pattern).to_owned()).collect(),
        outputs: vec!["dist".to_owned()],
        secrets: vec!["TOKEN".to_owned()],
        workdir: None,
    }
}

fn secrets(value: &str) -> BTreeMap<String, String> {
    BTreeMap::from([("TOKEN".to_owned(), value.to_owned())])
}

fn write(root: &Path, relative: &str, content: &str) {
    let path = root.join(relative);
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, content).unwrap();
}

fn project() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "src/main.c", "int main() {}\n");
    write(dir.path(), "src/util/helper.c", "void helper() {}\n");
    write(dir.path(), "Makefile", "all:\n");
    write(dir.path(), "README.md", "readme\n");
    dir
}

fn key(dir: &Path, step: &Step) -> String {
    step_key(
        dir,
        step,
        &secrets("s3cret"),
        &[Some("dependency".to_owned())],
    )
    .unwrap()
    .unwrap()
}

#[test]
fn key_is_stable_across_calls() {
    let dir = project();
    let step = step(&["src/**/*.c", "Makefile"]);
    let first = key(dir.path(), &step);
    assert_eq!(first.len(), 64);
    assert_eq!(first, key(dir.path(), &step));
}

#[test]
fn no_inputs_means_no_key() {
    let dir = project();
    let key = step_key(dir.path(), &step(&[]), &secrets("s"), &[]).unwrap();
    assert_eq!(key, None);
}

#[test]
fn an_uncacheable_dependency_makes_the_step_uncacheable() {
    let dir = project();
    let step = step(&["src"]);
    let keys = [Some("a".to_owned()), None];
    assert_eq!(
        step_key(dir.path(), &step, &secrets("s"), &keys).unwrap(),
        None
    );
}

#[test]
fn input_changes_change_the_key() {
    let dir = project();
    let step = step(&["src/**/*.c", "Makefile"]);
    let mut seen = vec![key(dir.path(), &step)];
    let expect_new = |label: &str, seen: &mut Vec<String>| {
        let current = key(dir.path(), &step);
        assert!(!seen.contains(&current), "{label} did not change the key");
        seen.push(current);
    };
    write(dir.path(), "src/main.c", "int main() { return 1; }\n");
    expect_new("content", &mut seen);
    write(dir.path(), "src/util/new.c", "\n");
    expect_new("a new matching file", &mut seen);
    fs::rename(
        dir.path().join("src/util/new.c"),
        dir.path().join("src/util/renamed.c"),
    )
    .unwrap();
    expect_new("a rename", &mut seen);
    fs::set_permissions(
        dir.path().join("Makefile"),
        fs::Permissions::from_mode(0o755),
    )
    .unwrap();
    expect_new("the exec bit", &mut seen);
    fs::remove_file(dir.path().join("src/util/renamed.c")).unwrap();
    expect_new("a removed file", &mut seen);
}

#[test]
fn unrelated_files_do_not_change_the_key() {
    let dir = project();
    let step = step(&["src/**/*.c", "Makefile"]);
    let before = key(dir.path(), &step);
    write(dir.path(), "README.md", "changed\n");
    write(dir.path(), "src/notes.txt", "not a .c file\n");
    write(dir.path(), ".lastmile/state.db", "state");
    assert_eq!(before, key(dir.path(), &step));
}

#[test]
fn directory_inputs_recurse_but_skip_git_and_state() {
    let dir = project();
    let step = step(&["."]);
    let before = key(dir.path(), &step);
    write(dir.path(), ".git/index", "git");
    write(dir.path(), ".lastmile/runs.db", "db");
    assert_eq!(before, key(dir.path(), &step));
    write(dir.path(), "src/util/deeper/more.c", "\n");
    assert_ne!(before, key(dir.path(), &step));
}

#[test]
fn step_definition_changes_change_the_key() {
    let dir = project();
    let base = step(&["src"]);
    let base_key = key(dir.path(), &base);
    let mut variants = Vec::new();

    let mut changed = base.clone();
    changed.run = "make all".to_owned();
    variants.push(("command", changed));
    let mut changed = base.clone();
    changed.env.insert("MODE".to_owned(), "debug".to_owned());
    variants.push(("env value", changed));
    let mut changed = base.clone();
    changed.env.insert("EXTRA".to_owned(), String::new());
    variants.push(("env name", changed));
    let mut changed = base.clone();
    changed.workdir = Some("src".to_owned());
    variants.push(("workdir", changed));
    let mut changed = base.clone();
    changed.outputs.push("more".to_owned());
    variants.push(("outputs", changed));
    let mut changed = base.clone();
    changed.inputs.push("missing/*.h".to_owned());
    variants.push(("an input pattern matching nothing", changed));

    let mut keys = vec![base_key.clone()];
    for (label, variant) in variants {
        let variant_key = key(dir.path(), &variant);
        assert!(
            !keys.contains(&variant_key),
            "{label} did not change the key"
        );
        keys.push(variant_key);
    }

    let other_secret = step_key(
        dir.path(),
        &base,
        &secrets("other"),
        &[Some("dependency".to_owned())],
    );
    assert_ne!(other_secret.unwrap().unwrap(), base_key, "secret value");
    let other_dependency = step_key(
        dir.path(),
        &base,
        &secrets("s3cret"),
        &[Some("changed".to_owned())],
    );
    assert_ne!(
        other_dependency.unwrap().unwrap(),
        base_key,
        "dependency key"
    );
}

#[test]
fn the_key_never_contains_the_secret() {
    let dir = project();
    let value = "0123456789abcdef0123";
    let key = step_key(dir.path(), &step(&["src"]), &secrets(value), &[])
        .unwrap()
        .unwrap();
    assert!(!key.contains(value));
}

#[test]
fn env_fields_cannot_collide_by_concatenation() {
    let dir = project();
    let mut first = step(&["src"]);
    first.env = BTreeMap::from([("AB".to_owned(), "C".to_owned())]);
    let mut second = step(&["src"]);
    second.env = BTreeMap::from([("A".to_owned(), "BC".to_owned())]);
    assert_ne!(key(dir.path(), &first), key(dir.path(), &second));
}
