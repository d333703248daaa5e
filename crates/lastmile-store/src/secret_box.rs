//! `SecretBox`: seals secret values with a key kept in a file apart from
//! the database, so the database alone never reveals them.

use std::fmt;
use std::fs::{self, OpenOptions};
use std::io::{ErrorKind, Read, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};

/// Key length in bytes.
const KEY_LEN: usize = 32;
/// XChaCha20 nonce length: long enough to draw at random for every seal.
const NONCE_LEN: usize = 24;

/// Errors from `SecretBox`.
#[derive(Debug, thiserror::Error)]
pub enum SecretBoxError {
    /// Reading or writing the key file failed.
    #[error("could not {action} the secrets key file {}: {source}; check that the directory exists and is writable", path.display())]
    Io {
        /// What was being done ("read", "create").
        action: &'static str,
        /// The key file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The key file can be read by other users.
    #[error("the secrets key file {} is accessible to group or others (mode {mode:o}); run `chmod 600 {}`", path.display(), path.display())]
    Permissions {
        /// The key file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// The key file does not hold exactly 32 bytes.
    #[error("the secrets key file {} holds {len} bytes, not 32; restore it from a backup (a new key cannot open existing secrets)", path.display())]
    KeyLength {
        /// The key file.
        path: PathBuf,
        /// Its length.
        len: usize,
    },
    /// Authentication failed: another key, another secret's name, or altered bytes.
    #[error(
        "could not decrypt the secret: the key file may have changed since it was set, or the stored value was altered; restore the old key file or set the secret again"
    )]
    Decrypt,
}

/// Seals and opens secret values with XChaCha20-Poly1305. Its `Debug`
/// shows the key file's path, never the key.
pub struct SecretBox {
    cipher: XChaCha20Poly1305,
    path: PathBuf,
}

impl fmt::Debug for SecretBox {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter
            .debug_struct("SecretBox")
            .field("key_file", &self.path)
            .finish_non_exhaustive()
    }
}

impl SecretBox {
    /// Reads the 32-byte key at `path`, or creates it (random, mode 0600,
    /// appearing whole or not at all) when missing. A key file group or
    /// others can access is refused.
    pub fn open_or_create(path: &Path) -> Result<SecretBox, SecretBoxError> {
        let key = match read_key(path)? {
            Some(key) => key,
            None => create_key(path)?,
        };
        Ok(SecretBox {
            cipher: XChaCha20Poly1305::new(&key.into()),
            path: path.to_path_buf(),
        })
    }

    /// The key file.
    pub fn key_path(&self) -> &Path {
        &self.path
    }

    /// Encrypts with a fresh random 24-byte nonce, returning `(nonce,
    /// ciphertext)`. `aad` (use `"app/name"`) binds the ciphertext to its
    /// secret, so it cannot be copied under another name and still open.
    ///
    /// # Panics
    ///
    /// If the system random source fails (no safe nonce can be made).
    pub fn seal(&self, aad: &str, plaintext: &[u8]) -> (Vec<u8>, Vec<u8>) {
        let mut nonce = [0_u8; NONCE_LEN];
        getrandom::fill(&mut nonce)
            .unwrap_or_else(|error| panic!("the system random source failed: {error}"));
        let ciphertext = self
            .cipher
            .encrypt(
                XNonce::from_slice(&nonce),
                Payload {
                    msg: plaintext,
                    aad: aad.as_bytes(),
                },
            )
            // Only inputs beyond ~256 GiB make this fail.
            .unwrap_or_else(|_| {
                panic!("a secret of {} bytes is too large to seal", plaintext.len())
            });
        (nonce.to_vec(), ciphertext)
    }

    /// Decrypts what `seal` returned for the same `aad`. A different key,
    /// `aad`, nonce or altered bytes give `SecretBoxError::Decrypt`.
    pub fn open(
        &self,
        aad: &str,
        nonce: &[u8],
        ciphertext: &[u8],
    ) -> Result<Vec<u8>, SecretBoxError> {
        if nonce.len() != NONCE_LEN {
            return Err(SecretBoxError::Decrypt);
        }
        self.cipher
            .decrypt(
                XNonce::from_slice(nonce),
                Payload {
                    msg: ciphertext,
                    aad: aad.as_bytes(),
                },
            )
            .map_err(|_| SecretBoxError::Decrypt)
    }
}

/// The key file's name in a state directory: where earlier versions of
/// `lastmile up` kept it, and where `lastmile server` keeps it.
pub const STATE_DIR_KEY_FILE: &str = "secret.key";

/// Where the key that seals the secrets and ACME state of `state_dir`
/// lives, so that it is not inside the project's repository:
///
/// 1. `explicit` (`--secret-key-file`, `LASTMILE_SECRET_KEY_FILE`) when given;
/// 2. `state_dir/secret.key` when it exists (made by an earlier version, or
///    asked for with 1.), so what it sealed still opens;
/// 3. `data_home/lastmile/keys/<hash of the state directory's canonical
///    path>.key` (`data_home` is `$XDG_DATA_HOME`, else `~/.local/share`);
/// 4. `state_dir/secret.key` when there is no data home (no `$HOME`).
pub fn key_file_for(
    state_dir: &Path,
    explicit: Option<&Path>,
    data_home: Option<&Path>,
) -> PathBuf {
    if let Some(explicit) = explicit {
        return explicit.to_path_buf();
    }
    let in_state_dir = state_dir.join(STATE_DIR_KEY_FILE);
    if in_state_dir.exists() {
        return in_state_dir;
    }
    let Some(data_home) = data_home else {
        return in_state_dir;
    };
    let canonical = fs::canonicalize(state_dir).unwrap_or_else(|_| state_dir.to_path_buf());
    let hash = blake3::hash(canonical.as_os_str().as_encoded_bytes());
    data_home
        .join("lastmile")
        .join("keys")
        .join(format!("{}.key", &hash.to_hex()[..32]))
}

/// The key, if the file exists; checked for mode and length.
fn read_key(path: &Path) -> Result<Option<[u8; KEY_LEN]>, SecretBoxError> {
    let io = |action| {
        move |source| SecretBoxError::Io {
            action,
            path: path.to_path_buf(),
            source,
        }
    };
    let mut file = match fs::File::open(path) {
        Ok(file) => file,
        Err(error) if error.kind() == ErrorKind::NotFound => return Ok(None),
        Err(error) => return Err(io("open")(error)),
    };
    let mode = file.metadata().map_err(io("inspect"))?.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(SecretBoxError::Permissions {
            path: path.to_path_buf(),
            mode,
        });
    }
    let mut bytes = Vec::with_capacity(KEY_LEN);
    // One byte more than a key, to tell "too long" without reading a huge file.
    (&mut file)
        .take(KEY_LEN as u64 + 1)
        .read_to_end(&mut bytes)
        .map_err(io("read"))?;
    let key: [u8; KEY_LEN] =
        bytes
            .as_slice()
            .try_into()
            .map_err(|_| SecretBoxError::KeyLength {
                path: path.to_path_buf(),
                len: bytes.len(),
            })?;
    Ok(Some(key))
}

/// Writes a random key to a private temporary file, then links it into
/// place: no reader ever sees a partial key, and if another process created
/// the key first, its key wins and is returned.
fn create_key(path: &Path) -> Result<[u8; KEY_LEN], SecretBoxError> {
    let io = |action| {
        move |source| SecretBoxError::Io {
            action,
            path: path.to_path_buf(),
            source,
        }
    };
    if let Some(parent) = path
        .parent()
        .filter(|parent| !parent.as_os_str().is_empty())
    {
        // Private: the directory of keys names every project that has one.
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(parent)
            .map_err(io("create the directory of"))?;
    }
    let mut key = [0_u8; KEY_LEN];
    getrandom::fill(&mut key)
        .map_err(|error| io("generate")(std::io::Error::other(error.to_string())))?;

    // A random name, not the pid: threads of one process may race here too.
    let mut suffix = [0_u8; 8];
    getrandom::fill(&mut suffix)
        .map_err(|error| io("generate")(std::io::Error::other(error.to_string())))?;
    let mut temporary = path.as_os_str().to_owned();
    temporary.push(format!(".{}.tmp", hex::encode(suffix)));
    let temporary = PathBuf::from(temporary);
    let written = (|| {
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&temporary)?;
        file.write_all(&key)?;
        file.sync_all()
    })();
    if let Err(error) = written {
        let _ = fs::remove_file(&temporary);
        return Err(io("create")(error));
    }
    // `hard_link` fails if the key exists, unlike `rename`, which would
    // replace a key that may already have sealed secrets.
    let linked = fs::hard_link(&temporary, path);
    let _ = fs::remove_file(&temporary);
    match linked {
        Ok(()) => Ok(key),
        Err(error) if error.kind() == ErrorKind::AlreadyExists => match read_key(path)? {
            Some(theirs) => Ok(theirs),
            None => Err(io("create")(error)),
        },
        Err(error) => Err(io("create")(error)),
    }
}
