//! The content-addressed blob store, on real files.
#![allow(clippy::unwrap_used, reason = "a failed unwrap is a failed test")]

use std::io::{Read, Write};
use std::path::Path;

use lastmile_artifact::{BlobError, BlobStore};

fn id_of(content: &[u8]) -> String {
    blake3::hash(content).to_hex().to_string()
}

fn temp_files(state_dir: &Path) -> Vec<std::path::PathBuf> {
    std::fs::read_dir(state_dir.join("blobs/tmp"))
        .expect("tmp dir exists")
        .map(|entry| entry.expect("readable entry").path())
        .collect()
}

#[test]
fn committed_blob_exists_and_reads_back() {
    let state = tempfile::tempdir().unwrap();
    let blobs = BlobStore::open(state.path()).unwrap();
    let content = b"hello, tar".repeat(100_000);
    let id = id_of(&content);
    assert_eq!(blobs.path(&id), None);

    let mut pending = blobs.begin().unwrap();
    pending.write_all(&content).unwrap();
    assert_eq!(pending.bytes_written(), content.len() as u64);
    let path = pending.commit(&id).unwrap();

    assert_eq!(
        path,
        state
            .path()
            .join("blobs")
            .join(&id[..2])
            .join(format!("{id}.tar.zst"))
    );
    assert_eq!(blobs.path(&id), Some(path));
    let mut read_back = Vec::new();
    blobs
        .open_blob(&id)
        .unwrap()
        .read_to_end(&mut read_back)
        .unwrap();
    assert_eq!(read_back, content);
    assert!(temp_files(state.path()).is_empty());
}

#[test]
fn duplicate_commit_keeps_the_first_blob_and_no_temp_file() {
    let state = tempfile::tempdir().unwrap();
    let blobs = BlobStore::open(state.path()).unwrap();
    let id = id_of(b"first");

    let mut first = blobs.begin().unwrap();
    first.write_all(b"first").unwrap();
    let first_path = first.commit(&id).unwrap();

    let mut second = blobs.begin().unwrap();
    second.write_all(b"something else").unwrap();
    let second_path = second.commit(&id).unwrap();

    assert_eq!(first_path, second_path);
    assert_eq!(std::fs::read(&first_path).unwrap(), b"first");
    let fan_out = std::fs::read_dir(first_path.parent().unwrap())
        .unwrap()
        .count();
    assert_eq!(fan_out, 1);
    assert!(temp_files(state.path()).is_empty());
}

#[test]
fn dropped_pending_blob_leaves_no_temp_file() {
    let state = tempfile::tempdir().unwrap();
    let blobs = BlobStore::open(state.path()).unwrap();
    let mut pending = blobs.begin().unwrap();
    pending.write_all(&[7u8; 1_000_000]).unwrap();
    assert_eq!(temp_files(state.path()).len(), 1);
    drop(pending);
    assert!(temp_files(state.path()).is_empty());
}

#[test]
fn bad_ids_are_rejected_and_leave_nothing_behind() {
    let state = tempfile::tempdir().unwrap();
    let blobs = BlobStore::open(state.path()).unwrap();
    let upper = id_of(b"x").to_uppercase();
    for bad in [
        "",
        "abc",
        "../../etc/passwd",
        upper.as_str(),
        &format!("{}0", id_of(b"x")),
    ] {
        let mut pending = blobs.begin().unwrap();
        pending.write_all(b"x").unwrap();
        let error = pending.commit(bad).unwrap_err();
        assert!(
            matches!(error, BlobError::InvalidId { .. }),
            "{bad}: {error}"
        );
        assert_eq!(blobs.path(bad), None);
        assert!(matches!(
            blobs.open_blob(bad),
            Err(BlobError::InvalidId { .. })
        ));
    }
    assert!(temp_files(state.path()).is_empty());
    let entries: Vec<_> = std::fs::read_dir(state.path().join("blobs"))
        .unwrap()
        .collect();
    assert_eq!(entries.len(), 1, "only blobs/tmp");
}

#[test]
fn missing_blob_error_names_the_id() {
    let state = tempfile::tempdir().unwrap();
    let blobs = BlobStore::open(state.path()).unwrap();
    let id = id_of(b"never stored");
    let error = blobs.open_blob(&id).unwrap_err();
    assert!(matches!(error, BlobError::NotFound { .. }));
    assert!(error.to_string().contains(&id), "{error}");
}

#[test]
fn blobs_survive_reopening_the_store() {
    let state = tempfile::tempdir().unwrap();
    let id = id_of(b"durable");
    {
        let blobs = BlobStore::open(state.path()).unwrap();
        let mut pending = blobs.begin().unwrap();
        pending.write_all(b"durable").unwrap();
        pending.commit(&id).unwrap();
    }
    let blobs = BlobStore::open(state.path()).unwrap();
    assert!(blobs.path(&id).is_some());
}

#[test]
fn temp_files_of_dead_writers_are_removed_on_open() {
    if !Path::new("/proc/self").exists() {
        return;
    }
    let state = tempfile::tempdir().unwrap();
    let blobs = BlobStore::open(state.path()).unwrap();
    let mut live = blobs.begin().unwrap();
    live.write_all(b"still writing").unwrap();

    let mut finished = std::process::Command::new("true").spawn().unwrap();
    let dead_pid = finished.id();
    finished.wait().unwrap();
    let orphan = state.path().join(format!("blobs/tmp/{dead_pid}-1-0.tmp"));
    std::fs::write(&orphan, b"half a blob").unwrap();
    assert_eq!(temp_files(state.path()).len(), 2);

    BlobStore::open(state.path()).unwrap();
    assert!(!orphan.exists());
    assert_eq!(
        temp_files(state.path()).len(),
        1,
        "this process's temp file is kept"
    );
    live.commit(&id_of(b"still writing")).unwrap();
}
