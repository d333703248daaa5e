//! Why a supervisor operation failed.

use std::io;
use std::path::PathBuf;

use crate::not_ready::NotReady;

/// Errors of [`crate::Supervisor`]; each message names the thing and what to do.
#[derive(Debug, thiserror::Error)]
pub enum SupervisorError {
    /// The instance exited, timed out or was stopped before it became ready; it was
    /// removed. The message says what was probed, what answered and what to change; the
    /// instance's output is in [`NotReady::output`] (see [`NotReady::report`]).
    #[error("{0}")]
    NotReady(Box<NotReady>),
    /// The task watching a starting instance ended without deciding (the runtime is
    /// shutting down).
    #[error(
        "instance {instance_id} was abandoned while it started: lastmile is shutting down; \
         start it again once lastmile runs"
    )]
    Abandoned {
        /// Instance name.
        instance_id: String,
    },
    /// `sh -c command` could not be spawned.
    #[error(
        "could not spawn instance {instance_id} (`sh -c {command}`): {source}; \
         check that its workdir exists and `sh` is on PATH"
    )]
    Spawn {
        /// Instance name.
        instance_id: String,
        /// The command that was to run.
        command: String,
        /// The underlying error.
        source: io::Error,
    },
    /// A file or directory of the supervisor could not be used.
    #[error("I/O error on {}: {source}; check permissions and free space", path.display())]
    Io {
        /// The path concerned.
        path: PathBuf,
        /// The underlying error.
        source: io::Error,
    },
    /// The `fill` callback of `prepare_release` failed; nothing was installed.
    #[error(
        "filling release {release_id} failed: {message}; nothing was installed, \
         fix the artifact and prepare it again"
    )]
    Fill {
        /// Release id.
        release_id: String,
        /// The callback's error.
        message: String,
    },
    /// An instance with this id is already supervised.
    #[error("instance {instance_id} is already running; stop it first or use another instance_id")]
    AlreadyRunning {
        /// Instance name.
        instance_id: String,
    },
    /// An id cannot be used as a file name.
    #[error(
        "invalid {kind} id {id:?}: use letters, digits, '.', '-', '_' and do not start with '.'"
    )]
    InvalidId {
        /// `instance` or `release`.
        kind: &'static str,
        /// The rejected id.
        id: String,
    },
    /// No free local port could be reserved.
    #[error("could not reserve a port on 127.0.0.1: {source}; check the loopback interface")]
    Port {
        /// The underlying error.
        source: io::Error,
    },
}

impl SupervisorError {
    pub(crate) fn io(path: impl Into<PathBuf>) -> impl FnOnce(io::Error) -> Self {
        let path = path.into();
        move |source| Self::Io { path, source }
    }
}

/// Ids become file names: keep them to a safe alphabet.
pub(crate) fn check_id(kind: &'static str, id: &str) -> Result<(), SupervisorError> {
    let ok = !id.is_empty()
        && !id.starts_with('.')
        && id.len() <= 200
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'));
    if ok {
        Ok(())
    } else {
        Err(SupervisorError::InvalidId {
            kind,
            id: id.to_owned(),
        })
    }
}
