//! What a checked-out work tree is on: its branch and HEAD commit.

use std::path::{Path, PathBuf};

use crate::error::GitError;
use crate::mirror::{CommitInfo, commit_info};

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
    // Looked up by hand rather than with gix's discovery, whose error does not tell "no
    // repository here" apart from "a repository that cannot be read".
    let Some(root) = dir
        .ancestors()
        .find(|ancestor| ancestor.join(".git").exists())
    else {
        return Ok(None);
    };
    let unreadable = |what: &str, message: String| {
        GitError::Other(format!(
            "could not read {what} of the git repository in {}: {message} (check that `git -C {} log -1` works)",
            root.display(),
            root.display()
        ))
    };
    let repo =
        gix::open(root).map_err(|error| unreadable("the configuration", error.to_string()))?;
    let head = repo
        .head()
        .map_err(|error| unreadable("HEAD", error.to_string()))?;
    let branch = head.referent_name().map(|name| name.shorten().to_string());
    let head = if head.is_unborn() {
        None
    } else {
        let commit = repo
            .head_commit()
            .map_err(|error| unreadable("the HEAD commit", error.to_string()))?;
        Some(commit_info(
            &commit,
            root,
            "check the repository with `git fsck`",
        )?)
    };
    Ok(Some(WorkTree {
        root: root.to_path_buf(),
        branch,
        head,
    }))
}
