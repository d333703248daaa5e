//! Verified import: an artifact's blob received from elsewhere (another
//! host's store) enters the store only if its content hashes to its id.

use std::io::{self, Write};
use std::path::PathBuf;

use crate::blob_store::validate_id;
use crate::{BlobError, BlobStore, PendingBlob};

#[cfg(test)]
mod tests;

/// Why an import was refused. The store keeps nothing of a refused import.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// The blob store refused an operation (the id, the temp file, the commit).
    #[error(transparent)]
    Blob(#[from] BlobError),
    /// Writing the temp file failed.
    #[error("could not write {}: {source}; check free disk space under the state directory", path.display())]
    Write {
        /// The temp file.
        path: PathBuf,
        /// The underlying error.
        source: io::Error,
    },
    /// The bytes are not a zstd stream, or it ends in the middle of a frame.
    #[error(
        "the bytes received for artifact {id} are not a whole zstd-compressed artifact ({source}); nothing was kept: import it again from an intact copy"
    )]
    Undecodable {
        /// The artifact id.
        id: String,
        /// What the decoder reported.
        source: io::Error,
    },
    /// The content hashes to another id.
    #[error(
        "the bytes received for artifact {expected} hash to {actual}; nothing was kept: import it again from an intact copy"
    )]
    Mismatch {
        /// The id asked for.
        expected: String,
        /// What the content hashes to.
        actual: String,
    },
}

/// An artifact's blob being imported: every chunk goes to a temp file in
/// the store and, decompressed, to a blake3 hasher. [`Import::finish`] files
/// it under its id only when the hash equals the id; dropping it unfinished
/// deletes the temp file.
pub struct Import {
    id: String,
    pending: PendingBlob,
    /// Decompresses into the hasher: the id is the blake3 of the
    /// uncompressed tar stream (see `pack`), not of the blob's bytes.
    content: zstd::stream::write::Decoder<'static, blake3::Hasher>,
}

impl std::fmt::Debug for Import {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("Import")
            .field("id", &self.id)
            .field("pending", &self.pending)
            .finish_non_exhaustive()
    }
}

impl BlobStore {
    /// Starts importing the blob of artifact `id` (as [`crate::pack`] wrote
    /// it): its bytes go through [`Import::write_chunk`], then
    /// [`Import::finish`]. Concurrent imports of one id each write their own
    /// temp file; the first to finish files the blob, the others keep it.
    pub fn import(&self, id: &str) -> Result<Import, ImportError> {
        validate_id(id)?;
        let content =
            zstd::stream::write::Decoder::new(blake3::Hasher::new()).map_err(|source| {
                ImportError::Undecodable {
                    id: id.to_owned(),
                    source,
                }
            })?;
        Ok(Import {
            id: id.to_owned(),
            pending: self.begin()?,
            content,
        })
    }
}

impl Import {
    /// Bytes received so far.
    pub fn bytes_received(&self) -> u64 {
        self.pending.bytes_written()
    }

    /// Takes the next bytes of the blob.
    pub fn write_chunk(&mut self, chunk: &[u8]) -> Result<(), ImportError> {
        self.pending
            .write_all(chunk)
            .map_err(|source| ImportError::Write {
                path: self.pending.temp_path().to_path_buf(),
                source,
            })?;
        self.content
            .write_all(chunk)
            .map_err(|source| ImportError::Undecodable {
                id: self.id.clone(),
                source,
            })
    }

    /// Checks the content against the id and, if it matches, makes the
    /// blob durable (fsync) and files it under its id; returns its path.
    pub fn finish(self) -> Result<PathBuf, ImportError> {
        let Import {
            id,
            pending,
            content,
        } = self;
        let hasher = content
            .finish()
            .map_err(|source| ImportError::Undecodable {
                id: id.clone(),
                source,
            })?;
        let actual = hasher.finalize().to_hex().to_string();
        if actual != id {
            // `pending` is dropped: its temp file goes.
            return Err(ImportError::Mismatch {
                expected: id,
                actual,
            });
        }
        Ok(pending.commit(&id)?)
    }
}
