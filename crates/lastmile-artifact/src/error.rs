//! The blob store's errors: what failed, on which file, and what to do.

use std::path::PathBuf;

/// Errors from the blob store.
#[derive(Debug, thiserror::Error)]
pub enum BlobError {
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
    /// A blob id is not 64 lowercase hex characters.
    #[error("`{id}` is not a blob id (64 lowercase hex characters); this is a bug in lastmile")]
    InvalidId {
        /// The id given.
        id: String,
    },
    /// No blob with that id in the store.
    #[error("blob {id} is not in the store at {}; rebuild it with `lastmile build`", path.display())]
    NotFound {
        /// The id asked for.
        id: String,
        /// Where it was expected.
        path: PathBuf,
    },
}

impl BlobError {
    /// Wraps an I/O error with the action and path it concerns.
    pub(crate) fn io(
        action: &'static str,
        path: impl Into<PathBuf>,
    ) -> impl FnOnce(std::io::Error) -> Self {
        let path = path.into();
        move |source| BlobError::Io {
            action,
            path,
            source,
        }
    }
}
