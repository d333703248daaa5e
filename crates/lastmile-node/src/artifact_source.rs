//! Artifacts between the controller's blob store and a host's cache: the
//! store as an [`ArtifactSource`] (the controller's side), and
//! [`fetch`], which brings an artifact from a source into a host's cache
//! through the verified import (the host's side).

use std::path::{Path, PathBuf};

use lastmile_artifact::{BlobError, BlobStore, ImportError};
use lastmile_host::{ArtifactChunks, ArtifactSource, ArtifactSourceError, HostError};
use tokio::io::AsyncReadExt;

/// Bytes read from a blob per chunk.
const CHUNK_BYTES: usize = 256 * 1024;

/// Chunks in flight between the source and the file being written.
const CHUNKS_IN_FLIGHT: usize = 4;

/// A blob store as an [`ArtifactSource`]: what the controller serves
/// artifacts from. In `lastmile up` it is also the host's cache, so a
/// release's artifact is always there and nothing is copied.
#[derive(Debug, Clone)]
pub struct BlobStoreSource {
    blobs: BlobStore,
}

impl BlobStoreSource {
    /// Serves the artifacts of `blobs`.
    pub fn new(blobs: BlobStore) -> BlobStoreSource {
        BlobStoreSource { blobs }
    }

    /// Serves the artifacts of the blob store under `state_dir`.
    pub fn open(state_dir: &Path) -> Result<BlobStoreSource, BlobError> {
        BlobStore::open(state_dir).map(BlobStoreSource::new)
    }
}

#[async_trait::async_trait]
impl ArtifactSource for BlobStoreSource {
    async fn open(&self, id: &str) -> Result<Box<dyn ArtifactChunks>, ArtifactSourceError> {
        let file = self.blobs.open_blob(id).map_err(|error| match error {
            BlobError::NotFound { id, .. } => ArtifactSourceError::NotFound { id },
            BlobError::Io { .. } => ArtifactSourceError::Io {
                message: error.to_string(),
            },
            other => ArtifactSourceError::Other {
                message: other.to_string(),
            },
        })?;
        let size = file.metadata().ok().map(|metadata| metadata.len());
        Ok(Box::new(FileChunks {
            file: tokio::fs::File::from_std(file),
            size,
            id: id.to_owned(),
        }))
    }
}

/// A blob file read in chunks.
struct FileChunks {
    file: tokio::fs::File,
    size: Option<u64>,
    id: String,
}

#[async_trait::async_trait]
impl ArtifactChunks for FileChunks {
    fn size(&self) -> Option<u64> {
        self.size
    }

    async fn next_chunk(&mut self) -> Result<Option<Vec<u8>>, ArtifactSourceError> {
        let mut chunk = Vec::with_capacity(CHUNK_BYTES);
        let read = (&mut self.file)
            .take(CHUNK_BYTES as u64)
            .read_to_end(&mut chunk)
            .await
            .map_err(|error| ArtifactSourceError::Io {
                message: format!("could not read the blob of artifact {}: {error}", self.id),
            })?;
        Ok((read > 0).then_some(chunk))
    }
}

/// What the task writing an import is sent.
enum Piece {
    Chunk(Vec<u8>),
    /// The source has no more: check and file the blob.
    End,
}

/// Brings artifact `id` from `source` into `cache` through the verified
/// import, and answers its path there. Chunks are written by a blocking
/// task as they arrive, a few at most in memory. On any failure nothing
/// is kept; concurrent fetches of one id write separate temp files and the
/// first to finish files the blob.
pub(crate) async fn fetch(
    cache: &BlobStore,
    source: &dyn ArtifactSource,
    id: &str,
) -> Result<PathBuf, HostError> {
    let failed = |reason: String| HostError::ArtifactFetch {
        id: id.to_owned(),
        reason,
    };
    let mut chunks = source.open(id).await.map_err(|error| match error {
        ArtifactSourceError::NotFound { .. } => HostError::MissingArtifact { id: id.to_owned() },
        other => failed(other.to_string()),
    })?;
    let mut import = cache
        .import(id)
        .map_err(|error| failed(error.to_string()))?;

    let (sender, mut receiver) = tokio::sync::mpsc::channel(CHUNKS_IN_FLIGHT);
    let writer = tokio::task::spawn_blocking(move || -> Result<Option<PathBuf>, ImportError> {
        while let Some(piece) = receiver.blocking_recv() {
            match piece {
                Piece::Chunk(chunk) => import.write_chunk(&chunk)?,
                Piece::End => return import.finish().map(Some),
            }
        }
        // The sender gave up: dropping the import deletes its temp file.
        Ok(None)
    });

    let mut received: u64 = 0;
    let of_size = chunks
        .size()
        .map(|size| format!(" of {size}"))
        .unwrap_or_default();
    let pumped = async {
        while let Some(chunk) = chunks.next_chunk().await? {
            received += chunk.len() as u64;
            if sender.send(Piece::Chunk(chunk)).await.is_err() {
                // The writer stopped on an error, reported below.
                return Ok(());
            }
        }
        let _ = sender.send(Piece::End).await;
        Ok::<(), ArtifactSourceError>(())
    }
    .await;
    drop(sender);
    let written = writer
        .await
        .map_err(|error| failed(format!("writing it into the cache panicked: {error}")))?;

    match (pumped, written) {
        (Err(error), _) => Err(failed(format!(
            "its source failed after {received}{of_size} bytes: {error}"
        ))),
        (Ok(()), Ok(Some(path))) => Ok(path),
        (Ok(()), Err(ImportError::Mismatch { actual, .. })) => Err(HostError::ArtifactMismatch {
            id: id.to_owned(),
            actual,
        }),
        (Ok(()), Err(ImportError::Undecodable { source, .. })) => Err(failed(format!(
            "what was received ({received} bytes) is not a whole zstd-compressed artifact ({source})"
        ))),
        // The cache's own disk: the message says what to check.
        (Ok(()), Err(error)) => Err(failed(error.to_string())),
        (Ok(()), Ok(None)) => Err(failed(format!(
            "writing it into the cache stopped after {received} bytes"
        ))),
    }
}
