//! Mirrors of real repositories made with the git CLI in temp dirs.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

use lastmile_git::{GitError, Head, Mirror};

#[path = "support/git.rs"]
mod support;
use support::git;

/// A work repository with `main` (two commits) and `feature` (one more), returned as (dir, main sha, feature sha).
fn source_repo(root: &Path) -> (std::path::PathBuf, String, String) {
    let src = root.join("src");
    std::fs::create_dir(&src).expect("mkdir");
    git(&src, &["init", "-q", "-b", "main"]);
    std::fs::write(src.join("a.txt"), "hello\n").expect("write");
    git(&src, &["add", "."]);
    git(&src, &["commit", "-q", "-m", "first"]);
    std::fs::write(src.join("a.txt"), "hello again\n").expect("write");
    git(&src, &["commit", "-q", "-am", "Second change\n\nbody text"]);
    let main = git(&src, &["rev-parse", "HEAD"]);
    git(&src, &["checkout", "-q", "-b", "feature"]);
    std::fs::write(src.join("b.txt"), "feature\n").expect("write");
    git(&src, &["add", "."]);
    git(&src, &["commit", "-q", "-m", "feature work"]);
    let feature = git(&src, &["rev-parse", "HEAD"]);
    git(&src, &["checkout", "-q", "main"]);
    (src, main, feature)
}

fn file_url(path: &Path) -> String {
    format!("file://{}", path.display())
}

#[test]
fn clone_fetch_sees_both_branches_and_new_commits() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let (src, main, feature) = source_repo(tmp.path());
    let mirror = Mirror::open_or_clone(&file_url(&src), &tmp.path().join("mirror")).expect("clone");
    let heads = mirror.fetch().expect("fetch");
    assert_eq!(
        heads,
        vec![
            Head {
                branch: "feature".into(),
                sha: feature.clone()
            },
            Head {
                branch: "main".into(),
                sha: main.clone()
            },
        ]
    );

    std::fs::write(src.join("c.txt"), "more\n").expect("write");
    git(&src, &["add", "."]);
    git(&src, &["commit", "-q", "-m", "third"]);
    let new_main = git(&src, &["rev-parse", "HEAD"]);
    assert_ne!(new_main, main);
    let heads = mirror.fetch().expect("fetch again");
    assert_eq!(heads[1].branch, "main");
    assert_eq!(heads[1].sha, new_main);
    assert_eq!(heads[0].sha, feature);
    // The fetched commit is in the mirror's object store and its branch ref moved.
    assert_eq!(mirror.commit(&new_main).expect("commit").subject, "third");
    let local = mirror.heads().expect("local heads");
    assert_eq!(local, heads);
}

#[test]
fn reopen_uses_existing_mirror_and_plain_paths_clone() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let (src, main, _) = source_repo(tmp.path());
    let dir = tmp.path().join("mirror");
    let plain = src.display().to_string();
    drop(Mirror::open_or_clone(&plain, &dir).expect("clone from plain path"));
    let again = Mirror::open_or_clone(&plain, &dir).expect("reopen");
    assert_eq!(again.commit(&main).expect("commit").sha, main);
    let heads = again.fetch().expect("fetch");
    assert_eq!(heads.len(), 2);

    // An existing empty directory (a fresh volume, say) is cloned into.
    let empty = tmp.path().join("empty");
    std::fs::create_dir(&empty).expect("mkdir");
    let mirror = Mirror::open_or_clone(&file_url(&src), &empty).expect("clone into empty dir");
    assert_eq!(mirror.fetch().expect("fetch"), heads);
}

#[test]
fn clone_of_missing_repository_names_the_url() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let url = file_url(&tmp.path().join("does-not-exist"));
    let err = Mirror::open_or_clone(&url, &tmp.path().join("mirror")).expect_err("must fail");
    assert!(matches!(err, GitError::Clone { .. }), "{err:?}");
    assert!(err.to_string().contains(&url), "{err}");
}

#[test]
fn a_url_that_git_would_read_as_an_option_is_refused() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let marker = tmp.path().join("ran");
    let url = format!("--upload-pack=touch {}", marker.display());
    let dir = tmp.path().join("mirror");
    let err = Mirror::open_or_clone(&url, &dir).expect_err("must be refused");
    assert!(err.to_string().contains("begins with '-'"), "{err}");
    assert!(!marker.exists(), "no command ran");
    assert!(!dir.exists(), "nothing was cloned");

    // Nor is an existing mirror fetched from such a URL.
    let (src, _, _) = source_repo(tmp.path());
    drop(Mirror::open_or_clone(&file_url(&src), &dir).expect("clone"));
    let err = Mirror::open_or_clone("-oProxyCommand=x", &dir).expect_err("must be refused");
    assert!(err.to_string().contains("begins with '-'"), "{err}");
}

/// Runs the test named `name` of this binary again, alone, with PATH set to an empty
/// directory and LASTMILE_GIT_TEST_NO_GIT set to a scratch directory.
fn rerun_without_git(name: &str) {
    let tmp = tempfile::tempdir().expect("tempdir");
    let empty = tmp.path().join("empty-path");
    std::fs::create_dir(&empty).expect("mkdir");
    let out = Command::new(std::env::current_exe().expect("test binary"))
        .args([name, "--exact", "--test-threads=1"])
        .env("PATH", &empty)
        .env("LASTMILE_GIT_TEST_NO_GIT", tmp.path())
        .output()
        .expect("the test binary runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("1 passed"),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn without_git_on_path_the_error_says_to_install_it() {
    let Some(scratch) = std::env::var_os("LASTMILE_GIT_TEST_NO_GIT") else {
        return rerun_without_git("without_git_on_path_the_error_says_to_install_it");
    };
    let scratch = Path::new(&scratch);
    let expected = "lastmile needs git on PATH: install it, e.g. apt-get install git";
    let err = Mirror::open_or_clone("https://git.example.com/app.git", &scratch.join("mirror"))
        .expect_err("no git");
    assert!(matches!(err, GitError::NotInstalled), "{err:?}");
    assert_eq!(err.to_string(), expected);
    assert!(!scratch.join("mirror").exists(), "nothing is left behind");

    std::fs::create_dir(scratch.join(".git")).expect("mkdir");
    let err = lastmile_git::work_tree(scratch).expect_err("no git");
    assert_eq!(err.to_string(), expected);
}

#[test]
fn non_repository_directory_is_refused() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let (src, _, _) = source_repo(tmp.path());
    let dir = tmp.path().join("junk");
    std::fs::create_dir(&dir).expect("mkdir");
    std::fs::write(dir.join("x"), "x").expect("write");
    let err = Mirror::open_or_clone(&file_url(&src), &dir).expect_err("must fail");
    assert!(err.to_string().contains("remove it"), "{err}");
}

#[test]
fn commit_metadata() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let (src, main, _) = source_repo(tmp.path());
    let mirror = Mirror::open_or_clone(&file_url(&src), &tmp.path().join("mirror")).expect("clone");
    let info = mirror.commit(&main).expect("commit");
    assert_eq!(info.sha, main);
    assert_eq!(info.time_ms, 1_700_000_123_000);
    assert_eq!(info.author, "Ada Lovelace <ada@example.com>");
    assert_eq!(info.subject, "Second change");

    let unknown = "0123456789abcdef0123456789abcdef01234567";
    assert!(matches!(
        mirror.commit(unknown),
        Err(GitError::UnknownCommit { .. })
    ));
    assert!(matches!(
        mirror.commit(&main[..12]),
        Err(GitError::UnknownCommit { .. })
    ));
    assert!(matches!(
        mirror.commit("not a sha at all, not a sha at all, not."),
        Err(GitError::UnknownCommit { .. })
    ));
}

#[test]
fn materialize_writes_files_modes_symlinks_and_skips_submodules() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let src = tmp.path().join("src");
    std::fs::create_dir_all(src.join("bin")).expect("mkdir");
    std::fs::create_dir_all(src.join("sub/deep")).expect("mkdir");
    git(&src, &["init", "-q", "-b", "main"]);
    std::fs::write(src.join("a.txt"), "content of a\n").expect("write");
    std::fs::write(src.join("bin/run.sh"), "#!/bin/sh\necho hi\n").expect("write");
    std::fs::set_permissions(src.join("bin/run.sh"), PermissionsExt::from_mode(0o755))
        .expect("chmod");
    std::fs::write(src.join("sub/deep/d.txt"), "deep\n").expect("write");
    std::os::unix::fs::symlink("a.txt", src.join("link")).expect("symlink");
    git(&src, &["add", "."]);
    // A gitlink (submodule entry) pointing at some commit.
    git(
        &src,
        &[
            "update-index",
            "--add",
            "--cacheinfo",
            "160000,0123456789abcdef0123456789abcdef01234567,vendor/lib",
        ],
    );
    git(&src, &["commit", "-q", "-m", "tree"]);
    let sha = git(&src, &["rev-parse", "HEAD"]);

    let mirror = Mirror::open_or_clone(&file_url(&src), &tmp.path().join("mirror")).expect("clone");
    let dest = tmp.path().join("out/app");
    let count = mirror.materialize(&sha, &dest).expect("materialize");
    assert_eq!(count, 4);
    assert_eq!(
        std::fs::read_to_string(dest.join("a.txt")).expect("read"),
        "content of a\n"
    );
    assert_eq!(
        std::fs::read_to_string(dest.join("sub/deep/d.txt")).expect("read"),
        "deep\n"
    );
    let mode = |p: &str| {
        std::fs::metadata(dest.join(p))
            .expect("stat")
            .permissions()
            .mode()
            & 0o777
    };
    assert_eq!(mode("bin/run.sh"), 0o755);
    assert_eq!(mode("a.txt"), 0o644);
    let link = std::fs::symlink_metadata(dest.join("link")).expect("lstat");
    assert!(link.file_type().is_symlink());
    assert_eq!(
        std::fs::read_link(dest.join("link")).expect("readlink"),
        Path::new("a.txt")
    );
    assert!(
        dest.join("vendor").exists(),
        "parent dir of the gitlink is kept"
    );
    assert!(!dest.join("vendor/lib").exists(), "submodules are skipped");

    // The destination must be empty.
    let err = mirror.materialize(&sha, &dest).expect_err("non-empty dest");
    assert!(err.to_string().contains("not empty"), "{err}");
    // An empty existing directory is fine.
    let empty = tmp.path().join("empty");
    std::fs::create_dir(&empty).expect("mkdir");
    assert_eq!(mirror.materialize(&sha, &empty).expect("materialize"), 4);
}

#[test]
fn materialize_writes_the_stored_bytes_whatever_gitattributes_say() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let src = tmp.path().join("src");
    std::fs::create_dir(&src).expect("mkdir");
    git(&src, &["init", "-q", "-b", "main"]);
    // What `git archive` or a checkout would act on: left out, substituted, CRLF.
    std::fs::write(
        src.join(".gitattributes"),
        "ignored.txt export-ignore\nsubst.txt export-subst\n*.txt text eol=crlf\n",
    )
    .expect("write");
    std::fs::write(src.join("ignored.txt"), "kept\n").expect("write");
    std::fs::write(src.join("subst.txt"), "$Format:%H$\n").expect("write");
    git(&src, &["add", "."]);
    git(&src, &["commit", "-q", "-m", "attributes"]);
    let sha = git(&src, &["rev-parse", "HEAD"]);

    let mirror = Mirror::open_or_clone(&file_url(&src), &tmp.path().join("mirror")).expect("clone");
    let dest = tmp.path().join("out");
    assert_eq!(mirror.materialize(&sha, &dest).expect("materialize"), 3);
    assert_eq!(
        std::fs::read(dest.join("ignored.txt")).expect("read"),
        b"kept\n"
    );
    assert_eq!(
        std::fs::read(dest.join("subst.txt")).expect("read"),
        b"$Format:%H$\n"
    );
}

#[test]
fn materialize_unknown_sha_errors() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let (src, _, _) = source_repo(tmp.path());
    let mirror = Mirror::open_or_clone(&file_url(&src), &tmp.path().join("mirror")).expect("clone");
    let dest = tmp.path().join("out");
    let err = mirror
        .materialize("0123456789abcdef0123456789abcdef01234567", &dest)
        .expect_err("unknown");
    assert!(matches!(err, GitError::UnknownCommit { .. }), "{err:?}");
    assert!(!dest.exists(), "nothing is created for an unknown commit");
}

#[test]
fn fetch_follows_force_pushes_and_drops_deleted_branches() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let (src, main, _) = source_repo(tmp.path());
    let mirror = Mirror::open_or_clone(&file_url(&src), &tmp.path().join("mirror")).expect("clone");
    assert_eq!(mirror.fetch().expect("fetch").len(), 2);

    // Rewrite main (not a fast-forward) and delete feature.
    git(&src, &["reset", "-q", "--hard", "HEAD~1"]);
    std::fs::write(src.join("a.txt"), "rewritten\n").expect("write");
    git(&src, &["commit", "-q", "-am", "rewritten"]);
    let rewritten = git(&src, &["rev-parse", "HEAD"]);
    git(&src, &["branch", "-q", "-D", "feature"]);

    let heads = mirror.fetch().expect("fetch after force push");
    assert_eq!(
        heads,
        vec![Head {
            branch: "main".into(),
            sha: rewritten.clone()
        }]
    );
    assert_ne!(rewritten, main);
    let dest = tmp.path().join("out");
    mirror.materialize(&rewritten, &dest).expect("materialize");
    assert_eq!(
        std::fs::read_to_string(dest.join("a.txt")).expect("read"),
        "rewritten\n"
    );
}

#[test]
fn a_kept_branch_gives_way_to_a_new_branch_under_its_name() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let (src, _, feature) = source_repo(tmp.path());
    let mirror = Mirror::open_or_clone(&file_url(&src), &tmp.path().join("mirror")).expect("clone");
    assert_eq!(mirror.fetch().expect("fetch").len(), 2);

    // `feature` is deleted and `feature/x` made: both names cannot exist at once.
    git(&src, &["branch", "-q", "-D", "feature"]);
    git(&src, &["branch", "-q", "feature/x", &feature]);
    let heads = mirror.fetch().expect("fetch after the rename");
    assert_eq!(
        heads
            .iter()
            .map(|head| head.branch.as_str())
            .collect::<Vec<_>>(),
        ["feature/x", "main"]
    );
    assert_eq!(mirror.heads().expect("local heads"), heads);
    // A branch deleted without such a clash stays in the mirror.
    git(&src, &["branch", "-q", "-D", "feature/x"]);
    assert_eq!(mirror.fetch().expect("fetch").len(), 1);
    assert_eq!(mirror.heads().expect("local heads"), heads);
}

#[test]
fn materialize_refuses_escaping_names_and_leaves_nothing_behind() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let src = tmp.path().join("src");
    std::fs::create_dir(&src).expect("mkdir");
    git(&src, &["init", "-q", "-b", "main"]);
    // Plumbing builds a tree that porcelain refuses: sub/.. is a file.
    let blob = git_stdin(&src, &["hash-object", "-w", "--stdin"], "evil\n");
    let sub = git_stdin(&src, &["mktree"], &format!("100644 blob {blob}\t..\n"));
    let root = git_stdin(
        &src,
        &["mktree"],
        &format!("100644 blob {blob}\ta.txt\n040000 tree {sub}\tsub\n"),
    );
    let commit = git(&src, &["commit-tree", &root, "-m", "evil"]);
    git(&src, &["update-ref", "refs/heads/main", &commit]);

    let mirror = Mirror::open_or_clone(&file_url(&src), &tmp.path().join("mirror")).expect("clone");
    let dest = tmp.path().join("out");
    let err = mirror
        .materialize(&commit, &dest)
        .expect_err("escaping name");
    assert!(err.to_string().contains("escape"), "{err}");
    assert!(!dest.exists(), "the half-written tree is removed");
    assert!(!tmp.path().join("evil").exists());

    let existing = tmp.path().join("existing");
    std::fs::create_dir(&existing).expect("mkdir");
    mirror
        .materialize(&commit, &existing)
        .expect_err("escaping name");
    assert!(existing.exists(), "a directory the caller made is kept");
    assert_eq!(
        std::fs::read_dir(&existing).expect("read_dir").count(),
        0,
        "but emptied"
    );
}

fn git_stdin(dir: &Path, args: &[&str], input: &str) -> String {
    use std::io::Write as _;
    let mut child = Command::new("git")
        .args(args)
        .current_dir(dir)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("git runs");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(input.as_bytes())
        .expect("write stdin");
    let out = child.wait_with_output().expect("git finishes");
    assert!(out.status.success(), "git {args:?} failed");
    String::from_utf8(out.stdout)
        .expect("utf-8")
        .trim()
        .to_string()
}
