//! What a checked-out work tree is on: its branch and HEAD commit.

use std::path::{Path, PathBuf};

use crate::error::GitError;
use crate::mirror::{CommitInfo, commit_info};
use crate::program::{self, Failure, git};

/// The checked-out state of the git work tree holding some directory.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct WorkTree {
    /// The top of the work tree (the directory holding `.git`).
    pub root: PathBuf,
    /// The branch HEAD names (`main`); `None` when HEAD is detached.
    pub branch: Option<String>,
    /// The commit HEAD points at; `None` on a branch with no commits yet.
    pub head: Option<CommitInfo>,
}

/// The work tree holding `dir` (or one of its parents), or `None` when `dir` is in none.
///
/// Reads only: no fetch, no index or status scan, so it is cheap enough to call on every
/// page view.
pub fn work_tree(dir: &Path) -> Result<Option<WorkTree>, GitError> {
    let dir = std::path::absolute(dir).map_err(|error| GitError::io(dir, error))?;
    // Looked up by hand, and git pointed at the `.git` found, so that git does not go on
    // searching the parents of a directory whose `.git` it cannot read.
    let Some(root) = dir
        .ancestors()
        .find(|ancestor| ancestor.join(".git").exists())
    else {
        return Ok(None);
    };
    let git_dir = root.join(".git");
    let unreadable = |what: &str, failure: Failure| {
        failure.into_error(|message| {
            GitError::Other(format!(
                "could not read {what} of the git repository in {}: {message} (check that `git -C {} log -1` works)",
                root.display(),
                root.display()
            ))
        })
    };
    let mut symbolic = git(Some(&git_dir));
    symbolic.args(["symbolic-ref", "--quiet", "HEAD"]);
    let reference = match program::run(symbolic, b"") {
        Ok(name) => Some(String::from_utf8_lossy(&name).trim().to_owned()),
        // 1: HEAD is detached.
        Err(failure) if failure.exited_with(1) => None,
        Err(failure) => return Err(unreadable("HEAD", failure)),
    };
    let commit = program::read_object(&git_dir, "HEAD")
        .map_err(|failure| unreadable("the HEAD commit", failure))?;
    let head = match (commit, &reference) {
        (Some(commit), _) if commit.kind == "commit" => Some(commit_info(
            &commit,
            root,
            "check the repository with `git fsck`",
        )?),
        (None, Some(reference))
            if !ref_exists(&git_dir, reference)
                .map_err(|failure| unreadable("HEAD", failure))? =>
        {
            // A branch with no commits yet.
            None
        }
        (_, _) => {
            return Err(GitError::Other(format!(
                "the HEAD commit of the git repository in {} is missing or not a commit (check the repository with `git fsck`)",
                root.display()
            )));
        }
    };
    Ok(Some(WorkTree {
        root: root.to_path_buf(),
        branch: reference.as_deref().map(shorten),
        head,
    }))
}

/// True when the ref `name` (`refs/heads/main`) exists, whether or not its commit does.
fn ref_exists(git_dir: &Path, name: &str) -> Result<bool, Failure> {
    let mut verify = git(Some(git_dir));
    // `name` came from symbolic-ref: it begins with refs/, never with a dash.
    verify.args(["rev-parse", "--quiet", "--verify", name]);
    match program::run(verify, b"") {
        Ok(_) => Ok(true),
        Err(failure) if failure.exited_with(1) => Ok(false),
        Err(failure) => Err(failure),
    }
}

/// A ref name as people say it: `main` for `refs/heads/main`.
fn shorten(name: &str) -> String {
    ["refs/heads/", "refs/tags/", "refs/remotes/", "refs/"]
        .iter()
        .find_map(|prefix| name.strip_prefix(prefix))
        .unwrap_or(name)
        .to_owned()
}
