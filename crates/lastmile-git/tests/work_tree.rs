//! Reading the branch and HEAD of work trees made with the git CLI in temp dirs.

use lastmile_git::{CommitInfo, work_tree};

#[path = "support/git.rs"]
mod support;
use support::git;

#[test]
fn a_directory_outside_any_repository_has_no_work_tree() {
    let dir = tempfile::tempdir().expect("tempdir");
    assert_eq!(work_tree(dir.path()).expect("reads"), None);
}

#[test]
fn a_fresh_repository_is_on_its_branch_with_no_commit() {
    let dir = tempfile::tempdir().expect("tempdir");
    git(dir.path(), &["init", "-q", "-b", "trunk"]);
    let tree = work_tree(dir.path()).expect("reads").expect("a work tree");
    assert_eq!(tree.branch.as_deref(), Some("trunk"));
    assert_eq!(tree.head, None);
}

#[test]
fn a_subdirectory_reports_the_branch_and_head_commit_of_its_work_tree() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path();
    git(root, &["init", "-q", "-b", "main"]);
    std::fs::create_dir(root.join("app")).expect("mkdir");
    std::fs::write(root.join("app/lastmile.yaml"), "app: hello\n").expect("write");
    git(root, &["add", "."]);
    git(
        root,
        &["commit", "-q", "-m", "Add the spec\n\nWith a body."],
    );
    let sha = git(root, &["rev-parse", "HEAD"]);

    let tree = work_tree(&root.join("app"))
        .expect("reads")
        .expect("a work tree");
    assert_eq!(tree.root, root);
    assert_eq!(tree.branch.as_deref(), Some("main"));
    assert_eq!(
        tree.head,
        Some(CommitInfo {
            sha: sha.clone(),
            time_ms: 1_700_000_123_000,
            author: "Ada Lovelace <ada@example.com>".to_owned(),
            subject: "Add the spec".to_owned(),
        })
    );

    // Detached: no branch, still the commit.
    git(root, &["checkout", "-q", "--detach"]);
    let detached = work_tree(root).expect("reads").expect("a work tree");
    assert_eq!(detached.branch, None);
    assert_eq!(detached.head.map(|head| head.sha), Some(sha));
}

#[test]
fn a_linked_worktree_reports_its_own_branch() {
    let dir = tempfile::tempdir().expect("tempdir");
    let main = dir.path().join("main");
    std::fs::create_dir(&main).expect("mkdir");
    git(&main, &["init", "-q", "-b", "main"]);
    git(&main, &["commit", "-q", "--allow-empty", "-m", "first"]);
    git(
        &main,
        &["worktree", "add", "-q", "-b", "topic", "../linked"],
    );
    git(
        &dir.path().join("linked"),
        &["commit", "-q", "--allow-empty", "-m", "On the topic"],
    );

    // Its `.git` is a file that points into the main repository.
    let linked = work_tree(&dir.path().join("linked"))
        .expect("reads")
        .expect("a work tree");
    assert_eq!(linked.branch.as_deref(), Some("topic"));
    assert_eq!(
        linked.head.map(|head| head.subject).as_deref(),
        Some("On the topic")
    );
    let main = work_tree(&main).expect("reads").expect("a work tree");
    assert_eq!(main.branch.as_deref(), Some("main"));
    assert_eq!(main.head.map(|head| head.subject).as_deref(), Some("first"));
}
