//! A clean workspace: the repository's tracked files, copied fresh.
//!
//! Steps run on exactly what git tracks, so a build never depends on an
//! untracked leftover or an ignored cache on the developer's disk. Files are
//! copied from the working tree rather than checked out from `HEAD`, so a
//! developer's uncommitted edits are tested before they commit; `dirty` says
//! when that happened, and `commit` names the commit they started from.
//!
//! lastmile shells out to `git` (argument lists, never a shell), which honours
//! the user's own configuration, sparse checkouts and worktrees.

use std::ffi::OsStr;
use std::fs;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

#[cfg(test)]
mod tests;

/// Errors while preparing a workspace.
#[derive(Debug, thiserror::Error)]
pub enum WorkspaceError {
    /// `git` could not be started.
    #[error(
        "could not run `git`: {source}; install git (for example `apt-get install git`) or pass --in-place to run in the directory itself"
    )]
    GitMissing {
        /// Why it could not start.
        source: io::Error,
    },
    /// The spec directory is not inside a git repository.
    #[error("{} is not inside a git repository; run `git init` and commit, or pass --in-place to run in the directory itself", spec_dir.display())]
    NotARepository {
        /// The spec directory.
        spec_dir: PathBuf,
    },
    /// A git command failed.
    #[error("`git {command}` failed in {}: {stderr}; fix the repository or pass --in-place to run in the directory itself", directory.display())]
    Git {
        /// The arguments, for the message.
        command: String,
        /// Where it ran.
        directory: PathBuf,
        /// What git printed.
        stderr: String,
    },
    /// The destination already holds files.
    #[error("the workspace directory {} is not empty; remove it or choose another", destination.display())]
    DestinationNotEmpty {
        /// The destination.
        destination: PathBuf,
    },
    /// Copying a file failed.
    #[error("could not copy {} to {}: {source}; check free disk space and permissions", from.display(), to.display())]
    Copy {
        /// Source path.
        from: PathBuf,
        /// Destination path.
        to: PathBuf,
        /// The underlying error.
        source: io::Error,
    },
}

/// Where a run's steps execute, and which source it holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Workspace {
    /// Directory the steps run in (corresponds to the spec directory).
    pub root: PathBuf,
    /// `HEAD` commit of the repository, when there is one.
    pub commit: Option<String>,
    /// Files and symlinks copied (0 for an in-place workspace: nothing was copied).
    pub files: u64,
    /// True when the source differs from `commit` (uncommitted changes).
    pub dirty: bool,
    /// Files under the spec directory that git does not track and does not
    /// ignore, relative to it, sorted: left out of the copy, so a step that
    /// needs one fails. Empty for an in-place workspace (the steps see them).
    pub untracked: Vec<PathBuf>,
}

/// Copies the tracked files under `spec_dir`, as they are in the working tree,
/// into `destination` (created if missing, must be empty).
///
/// Relative paths under `spec_dir`, modes and symlinks are kept; tracked files
/// deleted from the working tree are skipped; untracked and ignored files are
/// left out, and the untracked ones that `.gitignore` does not cover are
/// named in `untracked`. `dirty` reflects tracked changes only, since
/// untracked files never reach the workspace.
pub fn prepare(spec_dir: &Path, destination: &Path) -> Result<Workspace, WorkspaceError> {
    ensure_repository(spec_dir)?;
    let listing = git(spec_dir, &["ls-files", "-z", "--cached", "--", "."])?;
    let untracked = git(
        spec_dir,
        &[
            "ls-files",
            "-z",
            "--others",
            "--exclude-standard",
            "--",
            ".",
        ],
    )?;
    let mut untracked: Vec<PathBuf> = untracked
        .stdout
        .split(|byte| *byte == 0)
        .filter(|relative| !relative.is_empty())
        .map(|relative| PathBuf::from(OsStr::from_bytes(relative)))
        .collect();
    untracked.sort();
    let status = git(
        spec_dir,
        &["status", "--porcelain", "--untracked-files=no", "--", "."],
    )?;
    let commit = head_commit(spec_dir);

    match fs::read_dir(destination) {
        Ok(mut entries) => {
            if entries.next().is_some() {
                return Err(WorkspaceError::DestinationNotEmpty {
                    destination: destination.to_path_buf(),
                });
            }
        }
        Err(error) if error.kind() == io::ErrorKind::NotFound => {
            fs::create_dir_all(destination).map_err(|source| WorkspaceError::Copy {
                from: spec_dir.to_path_buf(),
                to: destination.to_path_buf(),
                source,
            })?;
        }
        Err(source) => {
            return Err(WorkspaceError::Copy {
                from: spec_dir.to_path_buf(),
                to: destination.to_path_buf(),
                source,
            });
        }
    }

    let mut files = 0;
    // `ls-files` may list a path more than once (merge conflict stages).
    let mut previous: Option<&[u8]> = None;
    for relative in listing.stdout.split(|byte| *byte == 0) {
        if relative.is_empty() || previous == Some(relative) {
            continue;
        }
        previous = Some(relative);
        let relative = Path::new(OsStr::from_bytes(relative));
        if copy_entry(&spec_dir.join(relative), &destination.join(relative))? {
            files += 1;
        }
    }
    Ok(Workspace {
        root: destination.to_path_buf(),
        commit,
        files,
        dirty: !status.stdout.is_empty(),
        untracked,
    })
}

/// The spec directory itself as the workspace (`--in-place`); `commit` and
/// `dirty` come from git when the directory is in a repository, and `dirty`
/// counts untracked files here, since the steps will see them.
pub fn in_place(spec_dir: &Path) -> Workspace {
    let commit = head_commit(spec_dir);
    let dirty = git(spec_dir, &["status", "--porcelain", "--", "."])
        .map(|status| !status.stdout.is_empty())
        .unwrap_or(false);
    Workspace {
        root: spec_dir.to_path_buf(),
        commit,
        files: 0,
        dirty,
        untracked: Vec::new(),
    }
}

/// Most untracked files a note names; the rest are counted.
const UNTRACKED_NAMED: usize = 5;

/// The note that says which untracked files a clean workspace left out and
/// what to do, or `None` when it left none out: `3 untracked files are not
/// in the run's workspace: app.py, lib.py, … (git add them, …)`.
pub fn untracked_note(untracked: &[PathBuf]) -> Option<String> {
    if untracked.is_empty() {
        return None;
    }
    let mut names: Vec<String> = untracked
        .iter()
        .take(UNTRACKED_NAMED)
        .map(|path| path.display().to_string())
        .collect();
    if untracked.len() > UNTRACKED_NAMED {
        names.push("…".to_owned());
    }
    let (files, are) = if untracked.len() == 1 {
        ("file is", "it")
    } else {
        ("files are", "them")
    };
    Some(format!(
        "{} untracked {files} not in the run's workspace: {} (git add {are}, or list {are} in .gitignore; --in-place runs in the directory itself)",
        untracked.len(),
        names.join(", ")
    ))
}

/// Copies one tracked path; false when it is missing from the working tree
/// or is a directory (a submodule, whose files git does not list here).
fn copy_entry(from: &Path, to: &Path) -> Result<bool, WorkspaceError> {
    let copy_error = |source| WorkspaceError::Copy {
        from: from.to_path_buf(),
        to: to.to_path_buf(),
        source,
    };
    let metadata = match fs::symlink_metadata(from) {
        Ok(metadata) => metadata,
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(false),
        Err(source) => return Err(copy_error(source)),
    };
    if metadata.is_dir() {
        return Ok(false);
    }
    if let Some(parent) = to.parent() {
        fs::create_dir_all(parent).map_err(copy_error)?;
    }
    if metadata.file_type().is_symlink() {
        let target = fs::read_link(from).map_err(copy_error)?;
        std::os::unix::fs::symlink(target, to).map_err(copy_error)?;
    } else {
        // std::fs::copy keeps the permission bits and uses copy_file_range.
        fs::copy(from, to).map_err(copy_error)?;
    }
    Ok(true)
}

/// Checks that `spec_dir` is inside a work tree, with the error that says
/// what to do when it is not.
fn ensure_repository(spec_dir: &Path) -> Result<(), WorkspaceError> {
    match git(spec_dir, &["rev-parse", "--show-toplevel"]) {
        Ok(_) => Ok(()),
        Err(WorkspaceError::Git { stderr, .. }) if stderr.contains("not a git repository") => {
            Err(WorkspaceError::NotARepository {
                spec_dir: spec_dir.to_path_buf(),
            })
        }
        Err(error) => Err(error),
    }
}

/// `HEAD`'s sha, or None outside a repository or before the first commit.
fn head_commit(spec_dir: &Path) -> Option<String> {
    let output = git(spec_dir, &["rev-parse", "--verify", "--quiet", "HEAD"]).ok()?;
    let sha = String::from_utf8_lossy(&output.stdout).trim().to_owned();
    (!sha.is_empty()).then_some(sha)
}

/// Runs git in `directory`; a non-zero exit becomes [`WorkspaceError::Git`].
fn git(directory: &Path, arguments: &[&str]) -> Result<Output, WorkspaceError> {
    let output = Command::new("git")
        .arg("-C")
        .arg(directory)
        .args(arguments)
        // Variables a surrounding git hook may set would point every command
        // at another repository.
        .env_remove("GIT_DIR")
        .env_remove("GIT_WORK_TREE")
        .env_remove("GIT_INDEX_FILE")
        .env_remove("GIT_PREFIX")
        // Messages are matched ("not a git repository"), so keep them English.
        .env("LC_ALL", "C")
        .output()
        .map_err(|source| WorkspaceError::GitMissing { source })?;
    if output.status.success() {
        Ok(output)
    } else {
        Err(WorkspaceError::Git {
            command: arguments.join(" "),
            directory: directory.to_path_buf(),
            stderr: String::from_utf8_lossy(&output.stderr).trim().to_owned(),
        })
    }
}
