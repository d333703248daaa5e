//! Unpacked releases on disk: atomic preparation and pruning.

use std::collections::BTreeSet;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::SystemTime;

use crate::error::SupervisorError;

/// Present in a release dir only once it was filled completely.
pub(crate) const MARKER: &str = ".lastmile-complete";

/// Prefix of work dirs that are not (yet or any more) releases.
const TMP_PREFIX: &str = ".tmp-";

/// Returns the complete release dir, filling it through a temp dir first if needed.
pub(crate) fn prepare<E: std::fmt::Display>(
    releases: &Path,
    release_id: &str,
    fill: impl FnOnce(&Path) -> Result<(), E>,
) -> Result<PathBuf, SupervisorError> {
    let dir = releases.join(release_id);
    if is_complete(&dir) {
        return Ok(dir);
    }
    let tmp = TempDir::create(releases, release_id)?;
    fill(&tmp.path).map_err(|error| SupervisorError::Fill {
        release_id: release_id.to_owned(),
        message: error.to_string(),
    })?;
    let marker = tmp.path.join(MARKER);
    fs::File::create(&marker)
        .and_then(|file| file.sync_all())
        .map_err(SupervisorError::io(&marker))?;
    if dir.exists() {
        // An incomplete dir not made by us (no marker): replace it.
        fs::remove_dir_all(&dir).map_err(SupervisorError::io(&dir))?;
    }
    match fs::rename(&tmp.path, &dir) {
        Ok(()) => {
            tmp.keep();
            Ok(dir)
        }
        // Another process may have installed it meanwhile; theirs is as good as ours.
        Err(_) if is_complete(&dir) => Ok(dir),
        Err(source) => Err(SupervisorError::Io { path: dir, source }),
    }
}

fn is_complete(dir: &Path) -> bool {
    dir.join(MARKER).is_file()
}

/// Removes release dirs beyond the newest `keep`, sparing protected and live ones.
pub(crate) fn prune(
    releases: &Path,
    keep: usize,
    protect: &[&str],
    live: &BTreeSet<String>,
) -> Result<Vec<String>, SupervisorError> {
    let mut found: Vec<(SystemTime, String)> = Vec::new();
    for entry in fs::read_dir(releases).map_err(SupervisorError::io(releases))? {
        let entry = entry.map_err(SupervisorError::io(releases))?;
        let Ok(name) = entry.file_name().into_string() else {
            continue;
        };
        if name.starts_with('.') {
            continue;
        }
        let metadata = entry
            .metadata()
            .map_err(SupervisorError::io(entry.path()))?;
        if metadata.is_dir() {
            found.push((metadata.modified().unwrap_or(SystemTime::UNIX_EPOCH), name));
        }
    }
    found.sort_by(|a, b| b.cmp(a));
    let mut removed = Vec::new();
    for (_, name) in found.into_iter().skip(keep) {
        if protect.contains(&name.as_str()) || live.contains(&name) {
            continue;
        }
        // Renamed away first so no half-deleted dir ever looks like a release.
        let dir = releases.join(&name);
        let trash = unused_tmp_path(releases, &format!("del-{name}"));
        fs::rename(&dir, &trash).map_err(SupervisorError::io(&dir))?;
        fs::remove_dir_all(&trash).map_err(SupervisorError::io(&trash))?;
        removed.push(name);
    }
    removed.sort();
    Ok(removed)
}

/// Removes `.tmp-*` dirs left by a crash mid-fill or mid-prune.
pub(crate) fn remove_leftovers(releases: &Path) {
    let Ok(entries) = fs::read_dir(releases) else {
        return;
    };
    for entry in entries.flatten() {
        if entry.file_name().to_string_lossy().starts_with(TMP_PREFIX) {
            let _ = fs::remove_dir_all(entry.path());
        }
    }
}

fn unused_tmp_path(releases: &Path, what: &str) -> PathBuf {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    releases.join(format!("{TMP_PREFIX}{what}-{}-{n}", std::process::id()))
}

/// A temp dir removed on drop unless kept (so a failed or panicking fill leaves nothing).
struct TempDir {
    path: PathBuf,
    keep: bool,
}

impl TempDir {
    fn create(releases: &Path, release_id: &str) -> Result<Self, SupervisorError> {
        loop {
            let path = unused_tmp_path(releases, release_id);
            match fs::create_dir(&path) {
                Ok(()) => return Ok(Self { path, keep: false }),
                // A leftover of an earlier process with the same pid: try the next name.
                Err(error) if error.kind() == io::ErrorKind::AlreadyExists => {}
                Err(source) => return Err(SupervisorError::Io { path, source }),
            }
        }
    }

    fn keep(mut self) {
        self.keep = true;
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if !self.keep {
            let _ = fs::remove_dir_all(&self.path);
        }
    }
}
