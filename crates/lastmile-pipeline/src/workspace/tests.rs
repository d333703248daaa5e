#![allow(clippy::unwrap_used, reason = "a failed unwrap is a failed test")]

use std::fs;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::Path;
use std::process::Command;

use super::{WorkspaceError, in_place, prepare, untracked_note};

/// Runs git in `directory` with a fixed identity; panics on failure.
fn git(directory: &Path, arguments: &[&str]) -> String {
    let output = Command::new("git")
        .arg("-C")
        .arg(directory)
        .args([
            "-c",
            "user.name=Test",
            "-c",
            "user.email=test@example.invalid",
        ])
        .args([
            "-c",
            "init.defaultBranch=main",
            "-c",
            "commit.gpgsign=false",
        ])
        .args(arguments)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "git {arguments:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

fn write(root: &Path, relative: &str, content: &str) {
    let path = root.join(relative);
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, content).unwrap();
}

/// A repository with tracked, ignored and (after the commit) untracked files.
fn repository() -> tempfile::TempDir {
    let repo = tempfile::tempdir().unwrap();
    let root = repo.path();
    git(root, &["init", "-q"]);
    write(root, "lastmile.yaml", "app: demo\n");
    write(root, "src/main.rs", "fn main() {}\n");
    write(root, "build.sh", "#!/bin/sh\n");
    fs::set_permissions(root.join("build.sh"), fs::Permissions::from_mode(0o755)).unwrap();
    write(root, ".gitignore", "target/\n*.log\n");
    symlink("src/main.rs", root.join("entry.rs")).unwrap();
    write(root, "web/lastmile.yaml", "app: web\n");
    write(root, "web/index.html", "<p>hi</p>\n");
    git(root, &["add", "-A"]);
    git(root, &["commit", "-q", "-m", "initial"]);
    write(root, "target/debug/app", "binary");
    write(root, "debug.log", "log");
    write(root, "untracked.txt", "not added");
    repo
}

#[test]
fn tracked_files_are_copied_and_others_are_not() {
    let repo = repository();
    let destination = tempfile::tempdir().unwrap();
    let workspace = prepare(repo.path(), destination.path()).unwrap();
    let root = destination.path();

    assert_eq!(workspace.root, root);
    assert_eq!(workspace.files, 7);
    assert!(!workspace.dirty, "untracked files must not make it dirty");
    let head = git(repo.path(), &["rev-parse", "HEAD"]);
    assert_eq!(workspace.commit.as_deref(), Some(head.trim()));

    assert_eq!(
        fs::read_to_string(root.join("src/main.rs")).unwrap(),
        "fn main() {}\n"
    );
    assert!(root.join("web/index.html").is_file());
    assert!(root.join(".gitignore").is_file());
    assert!(!root.join("target").exists());
    assert!(!root.join("debug.log").exists());
    assert!(!root.join("untracked.txt").exists());
    assert!(!root.join(".git").exists());
    let mode = fs::metadata(root.join("build.sh"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o111, 0o111);
}

#[test]
fn untracked_files_left_out_are_named_and_ignored_ones_are_not() {
    let repo = repository();
    write(repo.path(), "web/draft.html", "not added");
    let destination = tempfile::tempdir().unwrap();
    let workspace = prepare(repo.path(), destination.path()).unwrap();
    assert_eq!(
        workspace.untracked,
        [Path::new("untracked.txt"), Path::new("web/draft.html")],
        "sorted, relative to the spec directory, without target/ and *.log"
    );
    let in_web = tempfile::tempdir().unwrap();
    let workspace = prepare(&repo.path().join("web"), in_web.path()).unwrap();
    assert_eq!(workspace.untracked, [Path::new("draft.html")]);
    assert!(in_place(repo.path()).untracked.is_empty());
}

#[test]
fn the_untracked_note_counts_every_file_and_names_the_first_five() {
    assert_eq!(untracked_note(&[]), None);
    assert_eq!(
        untracked_note(&["app.py".into()]).unwrap(),
        "1 untracked file is not in the run's workspace: app.py (git add it, or list it in .gitignore; --in-place runs in the directory itself)"
    );
    let many: Vec<std::path::PathBuf> = (1..=7).map(|n| format!("f{n}").into()).collect();
    assert_eq!(
        untracked_note(&many).unwrap(),
        "7 untracked files are not in the run's workspace: f1, f2, f3, f4, f5, … (git add them, or list them in .gitignore; --in-place runs in the directory itself)"
    );
}

#[test]
fn symlinks_are_kept_as_symlinks() {
    let repo = repository();
    let destination = tempfile::tempdir().unwrap();
    prepare(repo.path(), destination.path()).unwrap();
    let link = destination.path().join("entry.rs");
    assert!(
        fs::symlink_metadata(&link)
            .unwrap()
            .file_type()
            .is_symlink()
    );
    assert_eq!(fs::read_link(&link).unwrap(), Path::new("src/main.rs"));
}

#[test]
fn uncommitted_edits_are_included_and_mark_it_dirty() {
    let repo = repository();
    write(repo.path(), "src/main.rs", "fn main() { edited(); }\n");
    fs::remove_file(repo.path().join("web/index.html")).unwrap();
    let destination = tempfile::tempdir().unwrap();
    let workspace = prepare(repo.path(), destination.path()).unwrap();
    assert!(workspace.dirty);
    assert_eq!(workspace.files, 6);
    assert_eq!(
        fs::read_to_string(destination.path().join("src/main.rs")).unwrap(),
        "fn main() { edited(); }\n"
    );
    assert!(!destination.path().join("web/index.html").exists());
}

#[test]
fn a_spec_in_a_subdirectory_gets_only_its_files_at_the_root() {
    let repo = repository();
    let destination = tempfile::tempdir().unwrap();
    let workspace = prepare(&repo.path().join("web"), destination.path()).unwrap();
    assert_eq!(workspace.files, 2);
    assert!(destination.path().join("lastmile.yaml").is_file());
    assert!(destination.path().join("index.html").is_file());
    assert!(!destination.path().join("src").exists());
    // Edits elsewhere in the repository do not make this app dirty.
    write(repo.path(), "src/main.rs", "changed\n");
    let again = tempfile::tempdir().unwrap();
    assert!(
        !prepare(&repo.path().join("web"), again.path())
            .unwrap()
            .dirty
    );
}

#[test]
fn a_missing_destination_is_created_and_a_full_one_refused() {
    let repo = repository();
    let parent = tempfile::tempdir().unwrap();
    let destination = parent.path().join("run-1/workspace");
    prepare(repo.path(), &destination).unwrap();
    assert!(destination.join("lastmile.yaml").is_file());
    let error = prepare(repo.path(), &destination).unwrap_err();
    assert!(
        matches!(error, WorkspaceError::DestinationNotEmpty { .. }),
        "{error:?}"
    );
}

#[test]
fn a_repository_without_commits_still_works() {
    let repo = tempfile::tempdir().unwrap();
    git(repo.path(), &["init", "-q"]);
    write(repo.path(), "lastmile.yaml", "app: demo\n");
    git(repo.path(), &["add", "lastmile.yaml"]);
    let destination = tempfile::tempdir().unwrap();
    let workspace = prepare(repo.path(), destination.path()).unwrap();
    assert_eq!(workspace.commit, None);
    assert_eq!(workspace.files, 1);
}

#[test]
fn outside_a_repository_the_error_says_what_to_do() {
    let plain = tempfile::tempdir().unwrap();
    write(plain.path(), "lastmile.yaml", "app: demo\n");
    let destination = tempfile::tempdir().unwrap();
    let error = prepare(plain.path(), destination.path()).unwrap_err();
    assert!(
        matches!(error, WorkspaceError::NotARepository { .. }),
        "{error:?}"
    );
    let message = error.to_string();
    assert!(message.contains("git init"), "{message}");
    assert!(message.contains("--in-place"), "{message}");
}

#[test]
fn in_place_uses_the_directory_itself() {
    let repo = repository();
    let workspace = in_place(repo.path());
    assert_eq!(workspace.root, repo.path());
    let head = git(repo.path(), &["rev-parse", "HEAD"]);
    assert_eq!(workspace.commit.as_deref(), Some(head.trim()));
    assert!(workspace.dirty, "the untracked file is visible in place");

    let plain = tempfile::tempdir().unwrap();
    let workspace = in_place(plain.path());
    assert_eq!(workspace.commit, None);
    assert!(!workspace.dirty);
}

#[test]
fn messages_read_well() {
    let not_a_repository = WorkspaceError::NotARepository {
        spec_dir: "/home/me/app".into(),
    };
    insta::assert_snapshot!(not_a_repository, @"/home/me/app is not inside a git repository; run `git init` and commit, or pass --in-place to run in the directory itself");
    let not_empty = WorkspaceError::DestinationNotEmpty {
        destination: "/tmp/ws".into(),
    };
    insta::assert_snapshot!(not_empty, @"the workspace directory /tmp/ws is not empty; remove it or choose another");
}
