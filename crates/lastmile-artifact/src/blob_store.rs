//! The content-addressed blob store: immutable files named by their id.

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::BlobError;

/// Distinguishes temp files made by one process within the same nanosecond.
static TEMP_COUNTER: AtomicU64 = AtomicU64::new(0);

/// Blobs under `<state_dir>/blobs/<first 2 hex>/<id>.tar.zst`.
///
/// The caller chooses the id (blake3 of the content it hashes); the store only
/// files it. A blob is never overwritten once committed.
#[derive(Debug, Clone)]
pub struct BlobStore {
    root: PathBuf,
    temp_dir: PathBuf,
}

impl BlobStore {
    /// Opens (creating if needed) the blob store under `state_dir`.
    pub fn open(state_dir: &Path) -> Result<BlobStore, BlobError> {
        let root = state_dir.join("blobs");
        let temp_dir = root.join("tmp");
        fs::create_dir_all(&temp_dir).map_err(BlobError::io("create the directory", &temp_dir))?;
        remove_orphaned_temp_files(&temp_dir);
        Ok(BlobStore { root, temp_dir })
    }

    /// Starts a new blob: a temp file to stream into, then `commit`.
    pub fn begin(&self) -> Result<PendingBlob, BlobError> {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let counter = TEMP_COUNTER.fetch_add(1, Ordering::Relaxed);
        let name = format!("{}-{nanos}-{counter}.tmp", std::process::id());
        let temp_path = self.temp_dir.join(name);
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&temp_path)
            .map_err(BlobError::io("create the temp file", &temp_path))?;
        Ok(PendingBlob {
            writer: Some(BufWriter::with_capacity(256 * 1024, file)),
            temp_path,
            root: self.root.clone(),
            bytes_written: 0,
        })
    }

    /// Where the blob lives, if it exists (None also for an invalid id).
    pub fn path(&self, id: &str) -> Option<PathBuf> {
        validate_id(id).ok()?;
        let path = blob_path(&self.root, id);
        path.is_file().then_some(path)
    }

    /// Opens a blob for reading.
    pub fn open_blob(&self, id: &str) -> Result<File, BlobError> {
        validate_id(id)?;
        let path = blob_path(&self.root, id);
        match File::open(&path) {
            Ok(file) => Ok(file),
            Err(error) if error.kind() == io::ErrorKind::NotFound => Err(BlobError::NotFound {
                id: id.to_owned(),
                path,
            }),
            Err(error) => Err(BlobError::io("open the blob", path)(error)),
        }
    }
}

/// A blob being written. Dropping it without `commit` deletes its temp file.
#[derive(Debug)]
pub struct PendingBlob {
    /// `None` only after `commit` took it.
    writer: Option<BufWriter<File>>,
    temp_path: PathBuf,
    root: PathBuf,
    bytes_written: u64,
}

impl PendingBlob {
    /// Bytes written so far.
    pub fn bytes_written(&self) -> u64 {
        self.bytes_written
    }

    /// The temp file it is written to until `commit`.
    pub(crate) fn temp_path(&self) -> &Path {
        &self.temp_path
    }

    /// Makes the blob durable and files it under `id`; returns its path.
    ///
    /// If a blob with that id already exists it is kept and this one is dropped.
    pub fn commit(mut self, id: &str) -> Result<PathBuf, BlobError> {
        validate_id(id)?;
        let writer = self
            .writer
            .take()
            .expect("writer is only taken here, and commit consumes self");
        let file = writer.into_inner().map_err(|error| {
            BlobError::io("write the temp file", &self.temp_path)(error.into_error())
        })?;
        file.sync_all()
            .map_err(BlobError::io("sync the temp file", &self.temp_path))?;
        drop(file);

        let destination = blob_path(&self.root, id);
        let directory = destination
            .parent()
            .expect("a blob path always has a fan-out directory");
        fs::create_dir_all(directory).map_err(BlobError::io("create the directory", directory))?;
        // A hard link fails if the destination exists, unlike rename, so two
        // writers of the same id can never replace each other's blob.
        match fs::hard_link(&self.temp_path, &destination) {
            Ok(()) => {}
            Err(error) if error.kind() == io::ErrorKind::AlreadyExists => {}
            Err(_) if destination.exists() => {}
            // Filesystems without hard links: fall back to rename after the check.
            Err(_) => fs::rename(&self.temp_path, &destination)
                .map_err(BlobError::io("move the blob into place", &destination))?,
        }
        // The directory entry must be durable too, or a crash could lose the blob.
        if let Ok(directory_handle) = File::open(directory) {
            let _ = directory_handle.sync_all();
        }
        // Drop removes the temp path (no-op if it was renamed away).
        Ok(destination)
    }
}

impl Write for PendingBlob {
    fn write(&mut self, buffer: &[u8]) -> io::Result<usize> {
        let writer = self
            .writer
            .as_mut()
            .expect("writer is present until commit consumes self");
        let written = writer.write(buffer)?;
        self.bytes_written += written as u64;
        Ok(written)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.writer
            .as_mut()
            .expect("writer is present until commit consumes self")
            .flush()
    }
}

impl Drop for PendingBlob {
    fn drop(&mut self) {
        // Close before unlinking so the file is really gone on every platform.
        drop(self.writer.take());
        let _ = fs::remove_file(&self.temp_path);
    }
}

/// Deletes temp files left by processes that died mid-write (their names
/// start with the writer's pid). Only where `/proc` tells live pids apart;
/// elsewhere they are left alone rather than risk a live writer's file.
fn remove_orphaned_temp_files(temp_dir: &Path) {
    let proc_root = Path::new("/proc");
    if !proc_root.join("self").exists() {
        return;
    }
    let Ok(entries) = fs::read_dir(temp_dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name.to_str().and_then(|name| name.split('-').next()) else {
            continue;
        };
        if pid.parse::<u32>().is_ok() && !proc_root.join(pid).exists() {
            let _ = fs::remove_file(entry.path());
        }
    }
}

fn blob_path(root: &Path, id: &str) -> PathBuf {
    root.join(&id[..2]).join(format!("{id}.tar.zst"))
}

/// Ids are 64 lowercase hex characters; anything else could escape the directory.
pub(crate) fn validate_id(id: &str) -> Result<(), BlobError> {
    let valid = id.len() == 64
        && id
            .bytes()
            .all(|byte| matches!(byte, b'0'..=b'9' | b'a'..=b'f'));
    if valid {
        Ok(())
    } else {
        Err(BlobError::InvalidId { id: id.to_owned() })
    }
}
