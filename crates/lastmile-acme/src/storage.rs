use std::fmt;
use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// The error a [`Storage`] implementation returns; its message is shown to the user.
pub type StorageError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Where the account key and URL, certificates and their private keys are kept between runs.
///
/// Entries are opaque bytes under short names made of `[A-Za-z0-9._+-]`. They include private
/// keys, so a real deployment stores them encrypted (the server implements this trait with its
/// secret store). Calls are short and blocking; they are made from async code.
pub trait Storage: Send + Sync {
    /// The bytes saved under `name`, or `None` if nothing was saved.
    fn load(&self, name: &str) -> Result<Option<Vec<u8>>, StorageError>;

    /// Saves `bytes` under `name`, replacing what was there; durable when it returns.
    fn save(&self, name: &str, bytes: &[u8]) -> Result<(), StorageError>;
}

/// A [`Storage`] of plain files in one directory, each readable by the owner only (0600).
///
/// It does **not** encrypt: anyone who can read the directory as its owner (or root, or a
/// backup) has the private keys. For tests and simple single-machine use.
pub struct DirStorage {
    dir: PathBuf,
}

impl DirStorage {
    /// Uses `dir`, creating it (0700) if it does not exist.
    pub fn new(dir: impl Into<PathBuf>) -> io::Result<Self> {
        let dir = dir.into();
        let mut builder = fs::DirBuilder::new();
        builder.recursive(true);
        #[cfg(unix)]
        std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
        builder.create(&dir)?;
        Ok(Self { dir })
    }

    /// The directory the files are in.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn path(&self, name: &str) -> io::Result<PathBuf> {
        let valid = !name.is_empty()
            && name.len() <= 200
            && !name.starts_with('.')
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '+' | '-'));
        if valid {
            Ok(self.dir.join(name))
        } else {
            Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("`{name}` is not a storage name (letters, digits, `._+-`)"),
            ))
        }
    }
}

impl fmt::Debug for DirStorage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DirStorage")
            .field("dir", &self.dir)
            .finish()
    }
}

impl Storage for DirStorage {
    fn load(&self, name: &str) -> Result<Option<Vec<u8>>, StorageError> {
        match fs::read(self.path(name)?) {
            Ok(bytes) => Ok(Some(bytes)),
            Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(error) => Err(error.into()),
        }
    }

    fn save(&self, name: &str, bytes: &[u8]) -> Result<(), StorageError> {
        let path = self.path(name)?;
        // Write beside and rename, so a crash leaves the old entry or the new one, never half.
        let temporary = self.dir.join(format!(".{name}.tmp"));
        // A leftover from a crash may have other permissions; the mode applies only on creation.
        let _ = fs::remove_file(&temporary);
        let mut options = fs::OpenOptions::new();
        options.write(true).create(true).truncate(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let mut file = options.open(&temporary)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        drop(file);
        fs::rename(&temporary, &path)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn saves_owner_only_files_and_reads_them_back() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let storage = DirStorage::new(dir.path().join("acme")).expect("storage");
        assert_eq!(storage.load("acme-account-1.json").expect("load"), None);
        storage.save("acme-account-1.json", b"first").expect("save");
        storage
            .save("acme-account-1.json", b"second")
            .expect("replace");
        assert_eq!(
            storage.load("acme-account-1.json").expect("load"),
            Some(b"second".to_vec())
        );
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode =
                |path: &Path| fs::metadata(path).expect("metadata").permissions().mode() & 0o777;
            assert_eq!(mode(&storage.dir().join("acme-account-1.json")), 0o600);
            assert_eq!(mode(storage.dir()), 0o700);
        }
        let names: Vec<_> = fs::read_dir(storage.dir()).expect("list").collect();
        assert_eq!(names.len(), 1, "no temporary file is left behind");
    }

    #[test]
    fn names_cannot_leave_the_directory() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let storage = DirStorage::new(dir.path()).expect("storage");
        for name in ["../escape", "a/b", "", ".hidden", "white space"] {
            assert!(storage.save(name, b"x").is_err(), "{name:?}");
            assert!(storage.load(name).is_err(), "{name:?}");
        }
    }
}
