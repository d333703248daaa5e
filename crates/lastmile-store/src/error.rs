//! The one error type of the store: what failed, on which file, and what to do.

use std::path::PathBuf;

use crate::model::RunId;

/// Errors from the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A file or directory operation failed.
    #[error("could not {action} {}: {source}; check that the path exists and is writable", path.display())]
    Io {
        /// What was being done, as a verb phrase ("create the directory").
        action: &'static str,
        /// The file or directory involved.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// Another process holds a write lock on the database longer than the busy timeout.
    #[error(
        "the state database {} is locked by another process; wait for the other lastmile command to finish, then retry",
        path.display()
    )]
    Locked {
        /// The database file.
        path: PathBuf,
    },
    /// The database was written by a newer lastmile.
    #[error(
        "the state database {} was written by a newer lastmile (schema {found}, this build knows {known}); upgrade lastmile",
        path.display()
    )]
    SchemaTooNew {
        /// The database file.
        path: PathBuf,
        /// `user_version` found in the file.
        found: i64,
        /// Newest schema this build knows.
        known: i64,
    },
    /// Any other SQLite failure.
    #[error("the state database {} failed: {source}; if it persists, move the file aside and retry", path.display())]
    Sqlite {
        /// The database file.
        path: PathBuf,
        /// The underlying error.
        source: rusqlite::Error,
    },
    /// A row holds a value this build cannot read.
    #[error("the state database {} holds {what}; it may have been edited by hand or by a newer lastmile", path.display())]
    Corrupt {
        /// The database file.
        path: PathBuf,
        /// What was wrong, in words.
        what: String,
    },
    /// Another deployment of the environment has not finished.
    #[error(
        "environment `{environment}` already has a running deployment (#{deployment}); wait for it or let it fail, then retry"
    )]
    DeploymentRunning {
        /// The environment.
        environment: String,
        /// The running deployment.
        deployment: i64,
    },
    /// No deployment with that id.
    #[error("deployment #{deployment} does not exist")]
    DeploymentNotFound {
        /// The id asked for.
        deployment: i64,
    },
    /// No run with that id.
    #[error("run #{run} does not exist; `lastmile runs` lists the runs")]
    RunNotFound {
        /// The id asked for.
        run: RunId,
    },
    /// The run exists but has no step of that name.
    #[error("run #{run} has no step `{step}`; `lastmile runs {run}` lists its steps")]
    StepNotFound {
        /// The run.
        run: RunId,
        /// The step asked for.
        step: String,
    },
    /// A caller passed a status that makes no sense for the call.
    #[error(
        "{call} was given status `{status}`, which is not a final status; this is a bug in lastmile"
    )]
    NotFinal {
        /// The method called.
        call: &'static str,
        /// The status given.
        status: String,
    },
    /// `create_token` with a name another token has.
    #[error("a token named `{name}` exists; pick another name or revoke it")]
    TokenNameTaken {
        /// The name given.
        name: String,
    },
    /// `update_commit` on a commit never recorded.
    #[error("commit {sha} of app `{app}` has not been recorded; record it before updating it")]
    CommitNotFound {
        /// The app.
        app: String,
        /// The commit.
        sha: String,
    },
}

impl StoreError {
    /// Wraps an I/O error with the action and path it concerns.
    pub(crate) fn io(
        action: &'static str,
        path: impl Into<PathBuf>,
    ) -> impl FnOnce(std::io::Error) -> Self {
        let path = path.into();
        move |source| StoreError::Io {
            action,
            path,
            source,
        }
    }
}
