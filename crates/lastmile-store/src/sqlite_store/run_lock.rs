//! OS file locks that tell a live run's owner from a dead one.
//!
//! The process that creates a run holds an exclusive lock on
//! `locks/run-<id>.lock` until it finishes the run. The OS drops the lock when
//! the process dies, however it dies, so a lock that can be taken means the
//! owner is gone.

use std::fs::{File, TryLockError};
use std::path::{Path, PathBuf};

use crate::StoreError;
use crate::model::RunId;

/// Where the lock file of a run lives.
pub(crate) fn lock_path(locks_dir: &Path, run: RunId) -> PathBuf {
    locks_dir.join(format!("run-{run}.lock"))
}

/// What probing a run's lock found.
pub(crate) enum Owner {
    /// Some process (maybe this one) holds the lock.
    Alive,
    /// Nobody held it; we hold it now, until the file is dropped.
    Gone(File),
}

/// Creates the lock file of a new run and locks it.
pub(crate) fn acquire(locks_dir: &Path, run: RunId) -> Result<File, StoreError> {
    let path = lock_path(locks_dir, run);
    match probe(&path)? {
        Owner::Gone(file) => Ok(file),
        Owner::Alive => Err(StoreError::Io {
            action: "lock the new run's lock file",
            path,
            source: std::io::Error::new(
                std::io::ErrorKind::WouldBlock,
                "another process holds it; remove stale files from the locks directory",
            ),
        }),
    }
}

/// Tries to take the lock at `path` without waiting.
pub(crate) fn probe(path: &Path) -> Result<Owner, StoreError> {
    let file = File::options()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .map_err(StoreError::io("open the run lock file", path))?;
    match file.try_lock() {
        Ok(()) => Ok(Owner::Gone(file)),
        Err(TryLockError::WouldBlock) => Ok(Owner::Alive),
        Err(TryLockError::Error(error)) => {
            Err(StoreError::io("lock the run lock file", path)(error))
        }
    }
}
