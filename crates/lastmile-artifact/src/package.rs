//! Reproducible artifacts: the same files always pack to the same id.
//!
//! The tar stream carries only what the release needs to run — paths, file
//! contents, symlink targets and whether a file is executable — never
//! timestamps, owners or umask accidents, so two builds of one commit on two
//! machines produce one artifact. The id is the blake3 of that uncompressed
//! stream; the zstd-compressed bytes go straight into the blob store as the
//! tar is written, in one pass.

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};

use crate::{BlobError, BlobStore};
use globset::GlobBuilder;
use walkdir::WalkDir;

#[cfg(test)]
mod tests;

/// Directories never packed or hashed when a pattern walks into them: the
/// repository's own history and lastmile's state (which holds the blobs
/// being written).
pub(crate) const SKIPPED_DIRECTORIES: [&str; 2] = [".git", ".lastmile"];

/// zstd level: fast, and the ratio levels above 3 buy little for build output.
const COMPRESSION_LEVEL: i32 = 3;

/// Errors while packing or unpacking an artifact.
#[derive(Debug, thiserror::Error)]
pub enum PackageError {
    /// A pattern selected nothing.
    #[error(
        "`{pattern}` matches nothing under {}; check `artifact.paths` in lastmile.yaml and that the steps create it",
        root.display()
    )]
    NothingMatched {
        /// The pattern as written.
        pattern: String,
        /// The directory it is relative to.
        root: PathBuf,
    },
    /// A pattern could not be used.
    #[error(transparent)]
    Selection(#[from] SelectionError),
    /// A file that cannot be packed (device, FIFO, socket).
    #[error(
        "{} is a {kind}, which an artifact cannot hold; remove it or narrow `artifact.paths`",
        path.display()
    )]
    UnsupportedFile {
        /// The file.
        path: PathBuf,
        /// What it is.
        kind: &'static str,
    },
    /// Reading a file to pack failed.
    #[error("could not read {}: {source}; check that it exists and is readable", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: io::Error,
    },
    /// A file changed size while it was being packed.
    #[error(
        "{} changed while it was being packed; make sure no step is still writing to it, then retry",
        path.display()
    )]
    ChangedWhilePacking {
        /// The file.
        path: PathBuf,
    },
    /// Writing the compressed stream into the blob store failed.
    #[error(
        "could not write the artifact into the blob store: {source}; check free disk space under the state directory"
    )]
    Write {
        /// The underlying error.
        source: io::Error,
    },
    /// The blob store refused an operation.
    #[error(transparent)]
    Blob(#[from] BlobError),
    /// The artifact is not a readable zstd-compressed tar.
    #[error("artifact {id} is damaged ({source}); delete its blob and run the pipeline again")]
    Damaged {
        /// The artifact id.
        id: String,
        /// What the reader reported.
        source: io::Error,
    },
    /// The artifact's content does not hash to its id.
    #[error(
        "artifact {id} does not match its id (content hashes to {actual}); delete its blob and run the pipeline again"
    )]
    HashMismatch {
        /// The expected id.
        id: String,
        /// What the content hashed to.
        actual: String,
    },
    /// An entry would be written outside the destination.
    #[error(
        "artifact {id} holds the entry `{entry}`, which points outside the destination; refusing to unpack it"
    )]
    UnsafeEntry {
        /// The artifact id.
        id: String,
        /// The entry path as stored.
        entry: String,
    },
    /// An entry of a type lastmile never writes.
    #[error("artifact {id} holds `{entry}` of an unsupported type; it was not made by lastmile")]
    UnsupportedEntry {
        /// The artifact id.
        id: String,
        /// The entry path as stored.
        entry: String,
    },
    /// Creating a file in the destination failed.
    #[error("could not write {}: {source}; check that the destination is writable", path.display())]
    Unpack {
        /// The file being created.
        path: PathBuf,
        /// The underlying error.
        source: io::Error,
    },
}

/// A stored artifact.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Packed {
    /// blake3 hex of the uncompressed tar stream.
    pub id: String,
    /// Compressed size in bytes.
    pub size: u64,
    /// Files and symlinks packed (directories not counted).
    pub files: u64,
}

/// Packs the files `patterns` select under `root` into the blob store.
pub fn pack(root: &Path, patterns: &[String], blobs: &BlobStore) -> Result<Packed, PackageError> {
    let mut selected = BTreeMap::new();
    for pattern in patterns {
        let matches = select(root, pattern)?;
        if matches.is_empty() {
            return Err(PackageError::NothingMatched {
                pattern: pattern.clone(),
                root: root.to_path_buf(),
            });
        }
        for entry in matches {
            selected.insert(entry.relative.clone(), entry);
        }
    }

    let pending = blobs.begin()?;
    let encoder = zstd::Encoder::new(pending, COMPRESSION_LEVEL)
        .map_err(|source| PackageError::Write { source })?;
    let mut builder = tar::Builder::new(HashingWriter {
        inner: encoder,
        hasher: blake3::Hasher::new(),
    });
    let mut files = 0;
    for entry in selected.values() {
        if append_entry(&mut builder, entry)? {
            files += 1;
        }
    }
    let hashing = builder
        .into_inner()
        .map_err(|source| PackageError::Write { source })?;
    let id = hashing.hasher.finalize().to_hex().to_string();
    let pending = hashing
        .inner
        .finish()
        .map_err(|source| PackageError::Write { source })?;
    let size = pending.bytes_written();
    pending.commit(&id)?;
    Ok(Packed { id, size, files })
}

/// Appends one entry with normalized metadata; true when it counts as a file.
fn append_entry<W: Write>(
    builder: &mut tar::Builder<W>,
    entry: &Selected,
) -> Result<bool, PackageError> {
    let write_error = |source| PackageError::Write { source };
    let mut header = tar::Header::new_gnu();
    header.set_mtime(0);
    header.set_uid(0);
    header.set_gid(0);
    header
        .set_username("")
        .and_then(|()| header.set_groupname(""))
        .map_err(write_error)?;
    match entry.kind {
        EntryKind::Directory => {
            header.set_entry_type(tar::EntryType::Directory);
            header.set_mode(0o755);
            header.set_size(0);
            builder
                .append_data(&mut header, &entry.relative, io::empty())
                .map_err(write_error)?;
            Ok(false)
        }
        EntryKind::Symlink => {
            let target = fs::read_link(&entry.path).map_err(|source| PackageError::Read {
                path: entry.path.clone(),
                source,
            })?;
            header.set_entry_type(tar::EntryType::Symlink);
            header.set_mode(0o777);
            header.set_size(0);
            builder
                .append_link(&mut header, &entry.relative, &target)
                .map_err(write_error)?;
            Ok(true)
        }
        EntryKind::File => {
            let read_error = |source| PackageError::Read {
                path: entry.path.clone(),
                source,
            };
            let file = File::open(&entry.path).map_err(read_error)?;
            let metadata = file.metadata().map_err(read_error)?;
            let executable = metadata.permissions().mode() & 0o111 != 0;
            header.set_entry_type(tar::EntryType::Regular);
            header.set_mode(if executable { 0o755 } else { 0o644 });
            header.set_size(metadata.len());
            let mut reader = ExactReader {
                inner: file.take(metadata.len()),
                remaining: metadata.len(),
            };
            match builder.append_data(&mut header, &entry.relative, &mut reader) {
                Ok(()) => Ok(true),
                Err(error)
                    if reader.remaining != 0 && error.kind() == io::ErrorKind::UnexpectedEof =>
                {
                    Err(PackageError::ChangedWhilePacking {
                        path: entry.path.clone(),
                    })
                }
                Err(error) => Err(write_error(error)),
            }
        }
        EntryKind::Unsupported(kind) => Err(PackageError::UnsupportedFile {
            path: entry.path.clone(),
            kind,
        }),
    }
}

/// Unpacks artifact `id` into `dest` (created if needed); returns the number
/// of files and symlinks written.
///
/// Entries with absolute paths or `..`, and entries that would be written
/// through a symlink, are refused. The content is checked against `id` once
/// the whole stream has been read.
pub fn unpack(blobs: &BlobStore, id: &str, dest: &Path) -> Result<u64, PackageError> {
    let blob = blobs.open_blob(id)?;
    let damaged = |source| PackageError::Damaged {
        id: id.to_owned(),
        source,
    };
    let decoder = zstd::Decoder::new(blob).map_err(damaged)?;
    let mut archive = tar::Archive::new(HashingReader {
        inner: decoder,
        hasher: blake3::Hasher::new(),
    });
    fs::create_dir_all(dest).map_err(|source| PackageError::Unpack {
        path: dest.to_path_buf(),
        source,
    })?;

    let mut files = 0;
    for entry in archive.entries().map_err(damaged)? {
        let mut entry = entry.map_err(damaged)?;
        let stored = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
        let unsafe_entry = || PackageError::UnsafeEntry {
            id: id.to_owned(),
            entry: stored.clone(),
        };
        let relative = safe_relative_path(&entry.path_bytes()).ok_or_else(unsafe_entry)?;
        if relative.as_os_str().is_empty() {
            continue;
        }
        prepare_parents(dest, &relative).map_err(|problem| match problem {
            ParentProblem::Symlink => unsafe_entry(),
            ParentProblem::Io(path, source) => PackageError::Unpack { path, source },
        })?;
        let target = dest.join(&relative);
        let unpack_error = |source| PackageError::Unpack {
            path: target.clone(),
            source,
        };
        let mode = entry.header().mode().map_err(damaged)? & 0o777;
        match entry.header().entry_type() {
            tar::EntryType::Directory => {
                match fs::symlink_metadata(&target) {
                    Ok(existing) if existing.is_dir() => {}
                    Ok(_) => return Err(unsafe_entry()),
                    Err(_) => fs::create_dir(&target).map_err(unpack_error)?,
                }
                fs::set_permissions(&target, fs::Permissions::from_mode(mode))
                    .map_err(unpack_error)?;
            }
            tar::EntryType::Regular | tar::EntryType::Continuous => {
                remove_existing_file(&target).map_err(unpack_error)?;
                let mut file = File::create_new(&target).map_err(unpack_error)?;
                io::copy(&mut entry, &mut file).map_err(unpack_error)?;
                file.set_permissions(fs::Permissions::from_mode(mode))
                    .map_err(unpack_error)?;
                files += 1;
            }
            tar::EntryType::Symlink => {
                let link = entry
                    .link_name()
                    .map_err(damaged)?
                    .ok_or_else(|| damaged(io::Error::other("a symlink entry has no target")))?
                    .into_owned();
                remove_existing_file(&target).map_err(unpack_error)?;
                std::os::unix::fs::symlink(&link, &target).map_err(unpack_error)?;
                files += 1;
            }
            _ => {
                return Err(PackageError::UnsupportedEntry {
                    id: id.to_owned(),
                    entry: stored,
                });
            }
        }
    }

    // The tar reader stops at the end-of-archive marker; hash what follows
    // too, so the whole stream is compared with the id.
    let mut reader = archive.into_inner();
    io::copy(&mut reader, &mut io::sink()).map_err(damaged)?;
    let actual = reader.hasher.finalize().to_hex().to_string();
    if actual != id {
        return Err(PackageError::HashMismatch {
            id: id.to_owned(),
            actual,
        });
    }
    Ok(files)
}

/// The entry path as a plain relative path, or None if it is absolute or
/// climbs with `..`.
fn safe_relative_path(bytes: &[u8]) -> Option<PathBuf> {
    let mut relative = PathBuf::new();
    for component in Path::new(OsStr::from_bytes(bytes)).components() {
        match component {
            Component::Normal(part) => relative.push(part),
            Component::CurDir => {}
            Component::ParentDir | Component::RootDir | Component::Prefix(_) => return None,
        }
    }
    Some(relative)
}

enum ParentProblem {
    Symlink,
    Io(PathBuf, io::Error),
}

/// Creates the parent directories of `relative` under `dest`, refusing to go
/// through a symlink (an earlier entry could point one outside `dest`).
fn prepare_parents(dest: &Path, relative: &Path) -> Result<(), ParentProblem> {
    let mut current = dest.to_path_buf();
    let Some(parent) = relative.parent() else {
        return Ok(());
    };
    for part in parent.components() {
        current.push(part);
        match fs::symlink_metadata(&current) {
            Ok(metadata) if metadata.file_type().is_symlink() => {
                return Err(ParentProblem::Symlink);
            }
            Ok(metadata) if metadata.is_dir() => {}
            Ok(_) => {
                return Err(ParentProblem::Io(
                    current,
                    io::Error::other("a file is in the way of a directory"),
                ));
            }
            Err(error) if error.kind() == io::ErrorKind::NotFound => {
                fs::create_dir(&current)
                    .map_err(|source| ParentProblem::Io(current.clone(), source))?;
            }
            Err(error) => return Err(ParentProblem::Io(current, error)),
        }
    }
    Ok(())
}

/// Removes a file or symlink already at `path`, so an entry replaces it
/// instead of writing through it.
fn remove_existing_file(path: &Path) -> io::Result<()> {
    match fs::symlink_metadata(path) {
        Ok(metadata) if metadata.is_dir() => Err(io::Error::other("a directory is in the way")),
        Ok(_) => fs::remove_file(path),
        Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(error) => Err(error),
    }
}

/// Hashes everything written through it.
struct HashingWriter<W> {
    inner: W,
    hasher: blake3::Hasher,
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buffer: &[u8]) -> io::Result<usize> {
        let written = self.inner.write(buffer)?;
        self.hasher.update(&buffer[..written]);
        Ok(written)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Hashes everything read through it.
struct HashingReader<R> {
    inner: R,
    hasher: blake3::Hasher,
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buffer: &mut [u8]) -> io::Result<usize> {
        let read = self.inner.read(buffer)?;
        self.hasher.update(&buffer[..read]);
        Ok(read)
    }
}

/// Yields exactly the size recorded in the tar header; a file that shrank
/// leaves `remaining` above zero (and fails the append) instead of silently
/// producing a corrupt archive.
struct ExactReader<R> {
    inner: R,
    remaining: u64,
}

impl<R: Read> Read for ExactReader<R> {
    fn read(&mut self, buffer: &mut [u8]) -> io::Result<usize> {
        if self.remaining == 0 {
            return Ok(0);
        }
        let read = self.inner.read(buffer)?;
        if read == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the file shrank while being packed",
            ));
        }
        self.remaining -= read as u64;
        Ok(read)
    }
}

/// Errors while turning a pattern into paths.
#[derive(Debug, thiserror::Error)]
pub enum SelectionError {
    /// The pattern is not a valid glob.
    #[error("`{pattern}` is not a valid glob ({source}); fix the pattern in lastmile.yaml")]
    InvalidGlob {
        /// The pattern.
        pattern: String,
        /// What globset reported.
        source: globset::Error,
    },
    /// The pattern is absolute or climbs out with `..`.
    #[error("`{pattern}` points outside {}; patterns must be relative paths without `..`", root.display())]
    OutsideRoot {
        /// The pattern.
        pattern: String,
        /// The directory patterns are relative to.
        root: PathBuf,
    },
    /// The pattern's directory part goes through a symlink.
    #[error("`{pattern}` goes through the symlink {}; name the directory it points to instead", link.display())]
    ThroughSymlink {
        /// The pattern.
        pattern: String,
        /// The symlink on the way.
        link: PathBuf,
    },
    /// A directory could not be listed.
    #[error("could not read {}: {source}; check its permissions", path.display())]
    Walk {
        /// The path being read.
        path: PathBuf,
        /// The underlying error.
        source: io::Error,
    },
    /// A path that is not UTF-8 (patterns and ids are text).
    #[error("{} has a name that is not UTF-8; rename it", path.display())]
    NotUtf8 {
        /// The path.
        path: PathBuf,
    },
}

/// What kind of filesystem entry a pattern selected (symlinks never followed).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryKind {
    /// A directory.
    Directory,
    /// A regular file.
    File,
    /// A symbolic link, kept as a link.
    Symlink,
    /// A device, FIFO or socket, named.
    Unsupported(&'static str),
}

/// One entry a pattern selected.
#[derive(Debug, Clone)]
pub struct Selected {
    /// Path relative to the root, `/`-separated.
    pub relative: String,
    /// Path on disk.
    pub path: PathBuf,
    /// What it is.
    pub kind: EntryKind,
}

/// Entries `pattern` selects under `root`, sorted by relative path.
///
/// A pattern without glob characters is a path: a file selects itself, a
/// directory itself and everything under it, a missing path nothing. A glob
/// (`*` stays within one directory, `**` crosses them) selects every match and
/// everything under matched directories. Walks skip `.git` and `.lastmile`.
///
/// [`pack`] selects `artifact.paths` with it; the pipeline's cache keys select
/// a step's `inputs` with it too, so both read a pattern the same way.
pub fn select(root: &Path, pattern: &str) -> Result<Vec<Selected>, SelectionError> {
    let trimmed = pattern.trim_end_matches('/');
    let trimmed = trimmed.strip_prefix("./").unwrap_or(trimmed);
    let components: Vec<&str> = trimmed
        .split('/')
        .filter(|part| !part.is_empty() && *part != ".")
        .collect();
    if pattern.starts_with('/') || components.contains(&"..") {
        return Err(SelectionError::OutsideRoot {
            pattern: pattern.to_owned(),
            root: root.to_path_buf(),
        });
    }
    let is_glob = |part: &&str| part.contains(['*', '?', '[', '{', '\\']);
    let literal_length = components.iter().take_while(|part| !is_glob(part)).count();
    let base_relative = components[..literal_length].join("/");
    let base = root.join(&base_relative);

    // The OS would follow a symlink in the middle of the path, possibly out of
    // root; only a plain path's last component may be one (it is kept as a link).
    let followed = if literal_length == components.len() {
        literal_length.saturating_sub(1)
    } else {
        literal_length
    };
    let mut current = root.to_path_buf();
    for part in &components[..followed] {
        current.push(part);
        if fs::symlink_metadata(&current).is_ok_and(|metadata| metadata.file_type().is_symlink()) {
            return Err(SelectionError::ThroughSymlink {
                pattern: pattern.to_owned(),
                link: current,
            });
        }
    }

    let mut selected = Vec::new();
    let Ok(base_metadata) = fs::symlink_metadata(&base) else {
        return Ok(selected);
    };
    if literal_length == components.len() {
        // A plain path: itself, and everything under it if it is a directory.
        if !base_relative.is_empty() {
            selected.push(Selected {
                relative: base_relative.clone(),
                path: base.clone(),
                kind: kind_of(base_metadata.file_type()),
            });
        }
        if base_metadata.is_dir() {
            walk(root, &base, &mut |entry| {
                selected.push(entry);
                Ok(())
            })?;
        }
        return Ok(selected);
    }
    if !base_metadata.is_dir() {
        return Ok(selected);
    }
    let glob = GlobBuilder::new(&components.join("/"))
        .literal_separator(true)
        .build()
        .map_err(|source| SelectionError::InvalidGlob {
            pattern: pattern.to_owned(),
            source,
        })?
        .compile_matcher();
    let mut matched_directories: Vec<String> = Vec::new();
    walk(root, &base, &mut |entry| {
        // The walk is depth first in name order, so a matched directory's
        // descendants come right after it.
        while let Some(last) = matched_directories.last() {
            if entry.relative.starts_with(last.as_str())
                && entry.relative.as_bytes().get(last.len()) == Some(&b'/')
            {
                break;
            }
            matched_directories.pop();
        }
        let inside_match = !matched_directories.is_empty();
        if inside_match || glob.is_match(&entry.relative) {
            if entry.kind == EntryKind::Directory {
                matched_directories.push(entry.relative.clone());
            }
            selected.push(entry);
        }
        Ok(())
    })?;
    Ok(selected)
}

/// Visits everything below `directory` (not itself), depth first in name
/// order, without following symlinks or entering skipped directories.
fn walk(
    root: &Path,
    directory: &Path,
    visit: &mut dyn FnMut(Selected) -> Result<(), SelectionError>,
) -> Result<(), SelectionError> {
    let entries = WalkDir::new(directory)
        .min_depth(1)
        .follow_links(false)
        .sort_by_file_name()
        .into_iter()
        .filter_entry(|entry| {
            !(entry.file_type().is_dir()
                && SKIPPED_DIRECTORIES
                    .iter()
                    .any(|skipped| entry.file_name() == OsStr::new(skipped)))
        });
    for entry in entries {
        let entry = entry.map_err(|error| {
            let path = error.path().unwrap_or(directory).to_path_buf();
            SelectionError::Walk {
                path,
                source: error.into(),
            }
        })?;
        let relative = entry
            .path()
            .strip_prefix(root)
            .expect("walkdir yields paths below the directory it walks, which is below root");
        let relative = relative
            .to_str()
            .ok_or_else(|| SelectionError::NotUtf8 {
                path: entry.path().to_path_buf(),
            })?
            .to_owned();
        visit(Selected {
            relative,
            path: entry.path().to_path_buf(),
            kind: kind_of(entry.file_type()),
        })?;
    }
    Ok(())
}

fn kind_of(file_type: fs::FileType) -> EntryKind {
    if file_type.is_symlink() {
        EntryKind::Symlink
    } else if file_type.is_dir() {
        EntryKind::Directory
    } else if file_type.is_file() {
        EntryKind::File
    } else if file_type.is_block_device() || file_type.is_char_device() {
        EntryKind::Unsupported("device file")
    } else if file_type.is_fifo() {
        EntryKind::Unsupported("named pipe")
    } else if file_type.is_socket() {
        EntryKind::Unsupported("socket")
    } else {
        EntryKind::Unsupported("special file")
    }
}
