//! Finding and opening a spec directory's state (`.lastmile/`).

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use lastmile_artifact::BlobStore;
use lastmile_store::SqliteStore;

/// The state directory for a spec directory: `--state-dir` /
/// `LASTMILE_STATE_DIR` when given, else `.lastmile/` beside lastmile.yaml.
/// The result is absolute, so paths printed from it work from any directory.
pub(crate) fn state_dir(explicit: Option<&Path>, spec_dir: &Path) -> PathBuf {
    let dir = match explicit {
        Some(dir) => dir.to_path_buf(),
        None => spec_dir.join(".lastmile"),
    };
    std::path::absolute(&dir).unwrap_or(dir)
}

/// Opens the store for writing, creating it when missing; says which runs a
/// crashed lastmile left behind.
pub(crate) fn open_for_writing(state_dir: &Path) -> anyhow::Result<(SqliteStore, BlobStore)> {
    let (store, report) = SqliteStore::open(state_dir)
        .with_context(|| format!("cannot open the state in {}", state_dir.display()))?;
    for run in &report.interrupted_runs {
        eprintln!(
            "{} run #{run} was interrupted (the lastmile process running it stopped); marked interrupted",
            crate::output::warn("note:")
        );
    }
    let blobs = BlobStore::open(state_dir)
        .with_context(|| format!("cannot open the artifact store in {}", state_dir.display()))?;
    Ok((store, blobs))
}

/// Opens existing state for reading; a missing state directory is an error
/// that says how to create one.
pub(crate) fn open_existing(
    explicit: Option<&Path>,
    dir: &Path,
) -> anyhow::Result<(SqliteStore, BlobStore)> {
    let spec_dir = if dir.is_file() {
        dir.parent().unwrap_or(Path::new("."))
    } else {
        dir
    };
    let state_dir = state_dir(explicit, spec_dir);
    if !state_dir.join("lastmile.db").exists() {
        bail!(
            "no lastmile state in {}: nothing has run here yet; run `lastmile run {}` first, \
             or pass --dir / --state-dir to point at another project",
            state_dir.display(),
            spec_dir.display()
        );
    }
    open_for_writing(&state_dir)
}

/// Where `lastmile up` keeps the key that seals the secrets and ACME state
/// of `state_dir`: `explicit` (`--secret-key-file`,
/// `LASTMILE_SECRET_KEY_FILE`), an existing `state_dir/secret.key`, else the
/// user's data directory, so the key is not inside the repository.
pub(crate) fn secret_key_file(state_dir: &Path, explicit: Option<&Path>) -> PathBuf {
    let explicit =
        explicit.map(|file| std::path::absolute(file).unwrap_or_else(|_| file.to_path_buf()));
    let from_environment = |name: &str| {
        std::env::var_os(name)
            .map(PathBuf::from)
            .filter(|path| path.is_absolute())
    };
    let data_home = from_environment("XDG_DATA_HOME")
        .or_else(|| from_environment("HOME").map(|home| home.join(".local/share")));
    lastmile_store::key_file_for(state_dir, explicit.as_deref(), data_home.as_deref())
}
