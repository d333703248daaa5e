//! Errors of mirror operations.

use std::path::PathBuf;

/// Why a mirror operation failed; messages name the URL, commit or path and what to check.
#[derive(Debug, thiserror::Error)]
pub enum GitError {
    /// The first clone of the remote failed.
    #[error(
        "could not clone {url}: {message} (check that the URL is right, the host is reachable and the repository is readable without interactive credentials)"
    )]
    Clone {
        /// The remote URL.
        url: String,
        /// What git reported.
        message: String,
    },
    /// Fetching from the remote failed.
    #[error(
        "could not fetch {url}: {message} (check that the remote is reachable and still exists; the mirror keeps its previous refs)"
    )]
    Fetch {
        /// The remote URL.
        url: String,
        /// What git reported.
        message: String,
    },
    /// The commit is not in the mirror (or is not a full 40-hex sha of a commit).
    #[error(
        "unknown commit {sha}: give a full 40-hex commit sha that the mirror has fetched (fetch first if it was just pushed)"
    )]
    UnknownCommit {
        /// The sha as given.
        sha: String,
    },
    /// A filesystem operation failed.
    #[error("{}: {source} (check permissions and free space)", path.display())]
    Io {
        /// The path that was being read or written.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The `git` program is not on PATH.
    #[error("lastmile needs git on PATH: install it, e.g. apt-get install git")]
    NotInstalled,
    /// Anything else, with its explanation.
    #[error("{0}")]
    Other(String),
}

impl GitError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        GitError::Io {
            path: path.into(),
            source,
        }
    }
}
