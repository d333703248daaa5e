//! Cache keys: one hash of everything that can change what a step does.
//!
//! A step with `inputs` is skipped when an earlier success had the same key.
//! The key covers the command, its working directory, its environment, the
//! secrets it sees (hashed, never stored), the outputs it promises, every
//! file its input globs match (path, exec bit, content) and the keys of the
//! steps it depends on.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use lastmile_artifact::{EntryKind, Selected, SelectionError, select};
use lastmile_spec::Step;

#[cfg(test)]
mod tests;

/// Changes whenever the key's layout changes, so old entries stop matching
/// instead of matching by accident.
const FORMAT_VERSION: &[u8] = b"lastmile-cache-key-v1";

/// Errors while computing a cache key.
#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    /// An input pattern could not be used.
    #[error("input of step `{step}`: {source}")]
    Input {
        /// The step.
        step: String,
        /// What was wrong with the pattern.
        source: SelectionError,
    },
    /// An input file could not be read.
    #[error("could not read {} (an input of step `{step}`): {source}; check its permissions", path.display())]
    Read {
        /// The step.
        step: String,
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: io::Error,
    },
}

/// The step's cache key, or `None` when the step cannot be cached.
///
/// `None` when the step has no `inputs`, and when any dependency's key is
/// `None`: an uncacheable dependency may have produced different files this
/// time, and nothing in this step's key would notice, so reusing an old
/// result downstream of it would be unsafe. An input glob that matches no
/// file is not an error; the empty match is part of the key.
pub fn step_key(
    spec_dir: &Path,
    step: &Step,
    secret_values: &BTreeMap<String, String>,
    dependency_keys: &[Option<String>],
) -> Result<Option<String>, CacheError> {
    if step.inputs.is_empty() || dependency_keys.iter().any(Option::is_none) {
        return Ok(None);
    }
    let mut key = KeyHasher::default();
    key.field(FORMAT_VERSION);
    key.field(step.run.as_bytes());
    match &step.workdir {
        Some(workdir) => {
            key.count(1);
            key.field(workdir.as_bytes());
        }
        None => key.count(0),
    }

    key.count(step.env.len());
    for (name, value) in &step.env {
        key.field(name.as_bytes());
        key.field(value.as_bytes());
    }

    // A secret's value changes the key without ever being stored in it.
    let secret_names: BTreeSet<&String> = step.secrets.iter().collect();
    key.count(secret_names.len());
    for name in secret_names {
        key.field(name.as_bytes());
        match secret_values.get(name) {
            Some(value) => {
                key.count(1);
                key.field(blake3::hash(value.as_bytes()).as_bytes());
            }
            None => key.count(0),
        }
    }

    key.count(step.outputs.len());
    for pattern in &step.outputs {
        key.field(pattern.as_bytes());
    }

    key.count(step.inputs.len());
    for pattern in &step.inputs {
        key.field(pattern.as_bytes());
    }
    let files = input_files(spec_dir, step)?;
    key.count(files.len());
    for (relative, entry) in &files {
        key.field(relative.as_bytes());
        let read_error = |source| CacheError::Read {
            step: step.name.clone(),
            path: entry.path.clone(),
            source,
        };
        match entry.kind {
            EntryKind::Symlink => {
                let target = std::fs::read_link(&entry.path).map_err(read_error)?;
                key.field(b"symlink");
                key.field(target.as_os_str().as_encoded_bytes());
            }
            EntryKind::File => {
                let mut file = File::open(&entry.path).map_err(read_error)?;
                let mode = file.metadata().map_err(read_error)?.permissions().mode();
                key.field(if mode & 0o111 != 0 {
                    b"executable"
                } else {
                    b"file"
                });
                let mut content = blake3::Hasher::new();
                io::copy(&mut file, &mut content).map_err(read_error)?;
                key.field(content.finalize().as_bytes());
            }
            // Only files and symlinks are collected below.
            EntryKind::Directory | EntryKind::Unsupported(_) => {}
        }
    }

    key.count(dependency_keys.len());
    for dependency in dependency_keys.iter().flatten() {
        key.field(dependency.as_bytes());
    }
    Ok(Some(key.finish()))
}

/// Files and symlinks the step's input globs match, by relative path.
fn input_files(spec_dir: &Path, step: &Step) -> Result<BTreeMap<String, Selected>, CacheError> {
    let mut files = BTreeMap::new();
    for pattern in &step.inputs {
        let selected = select(spec_dir, pattern).map_err(|source| CacheError::Input {
            step: step.name.clone(),
            source,
        })?;
        for entry in selected {
            // Directories contribute through the files under them; devices
            // and pipes have no content to hash.
            if matches!(entry.kind, EntryKind::File | EntryKind::Symlink) {
                files.insert(entry.relative.clone(), entry);
            }
        }
    }
    Ok(files)
}

/// blake3 over length-prefixed fields, so no two different sequences of
/// fields can produce the same byte stream.
#[derive(Default)]
struct KeyHasher {
    hasher: blake3::Hasher,
}

impl KeyHasher {
    fn field(&mut self, bytes: &[u8]) {
        self.hasher.update(&(bytes.len() as u64).to_le_bytes());
        self.hasher.update(bytes);
    }

    fn count(&mut self, count: usize) {
        self.hasher.update(&(count as u64).to_le_bytes());
    }

    fn finish(&self) -> String {
        self.hasher.finalize().to_hex().to_string()
    }
}
