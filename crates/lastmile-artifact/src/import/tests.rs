#![allow(clippy::unwrap_used, reason = "a failed unwrap is a failed test")]

use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};

use crate::{BlobError, BlobStore, pack, unpack};

use super::ImportError;

/// A store holding two artifacts; their ids and blob bytes.
struct Source {
    _state: tempfile::TempDir,
    artifacts: Vec<(String, Vec<u8>)>,
}

fn source() -> Source {
    let state = tempfile::tempdir().unwrap();
    let blobs = BlobStore::open(state.path()).unwrap();
    let artifacts = ["one", "two"]
        .into_iter()
        .map(|content| {
            let app = tempfile::tempdir().unwrap();
            // Big enough to span many chunks, and not all alike.
            let text: String = (0..4000)
                .map(|line| format!("{content} {line}\n"))
                .collect();
            fs::write(app.path().join("app.txt"), text).unwrap();
            let packed = pack(app.path(), &["app.txt".to_owned()], &blobs).unwrap();
            let mut bytes = Vec::new();
            blobs
                .open_blob(&packed.id)
                .unwrap()
                .read_to_end(&mut bytes)
                .unwrap();
            (packed.id, bytes)
        })
        .collect();
    Source {
        _state: state,
        artifacts,
    }
}

/// Every file under the store's `blobs/` (temp files included).
fn files_under(state: &Path) -> Vec<PathBuf> {
    walkdir::WalkDir::new(state.join("blobs"))
        .into_iter()
        .map(|entry| entry.unwrap())
        .filter(|entry| entry.file_type().is_file())
        .map(|entry| entry.path().to_path_buf())
        .collect()
}

fn empty_store() -> (tempfile::TempDir, BlobStore) {
    let state = tempfile::tempdir().unwrap();
    let blobs = BlobStore::open(state.path()).unwrap();
    (state, blobs)
}

#[test]
fn an_import_whose_content_hashes_to_its_id_is_filed_under_it() {
    let source = source();
    let (id, bytes) = &source.artifacts[0];
    let (state, blobs) = empty_store();

    let mut import = blobs.import(id).unwrap();
    for chunk in bytes.chunks(1000) {
        import.write_chunk(chunk).unwrap();
    }
    assert_eq!(import.bytes_received(), bytes.len() as u64);
    let path = import.finish().unwrap();

    assert_eq!(blobs.path(id), Some(path.clone()));
    assert_eq!(&fs::read(&path).unwrap(), bytes, "the blob as it was sent");
    assert_eq!(files_under(state.path()), vec![path], "no temp file left");
    let release = tempfile::tempdir().unwrap();
    assert_eq!(unpack(&blobs, id, release.path()).unwrap(), 1);
    assert!(release.path().join("app.txt").is_file());
}

#[test]
fn an_import_of_other_content_is_refused_naming_both_digests_and_leaves_nothing() {
    let source = source();
    let (expected, _) = &source.artifacts[0];
    let (other, other_bytes) = &source.artifacts[1];
    let (state, blobs) = empty_store();

    let mut import = blobs.import(expected).unwrap();
    for chunk in other_bytes.chunks(1000) {
        import.write_chunk(chunk).unwrap();
    }
    let error = import.finish().unwrap_err();

    match &error {
        ImportError::Mismatch {
            expected: named,
            actual,
        } => {
            assert_eq!(named, expected);
            assert_eq!(actual, other);
        }
        other => panic!("expected a mismatch, got {other:?}"),
    }
    let message = error.to_string();
    assert!(
        message.contains(expected.as_str()) && message.contains(other.as_str()),
        "{message}"
    );
    assert_eq!(blobs.path(expected), None);
    assert_eq!(files_under(state.path()), Vec::<PathBuf>::new());
}

#[test]
fn an_import_broken_off_midway_leaves_nothing() {
    let source = source();
    let (id, bytes) = &source.artifacts[0];
    let (state, blobs) = empty_store();
    let half = &bytes[..bytes.len() / 2];

    // The sender failed: the import is dropped unfinished.
    let mut import = blobs.import(id).unwrap();
    import.write_chunk(half).unwrap();
    assert_eq!(files_under(state.path()).len(), 1, "the temp file");
    drop(import);
    assert_eq!(files_under(state.path()), Vec::<PathBuf>::new());

    // The stream just ended early: finishing says so.
    let mut import = blobs.import(id).unwrap();
    import.write_chunk(half).unwrap();
    let error = import.finish().unwrap_err();
    assert!(
        matches!(&error, ImportError::Undecodable { id: named, .. } if named == id),
        "{error:?}"
    );
    assert_eq!(blobs.path(id), None);
    assert_eq!(files_under(state.path()), Vec::<PathBuf>::new());
}

#[test]
fn bytes_that_are_no_zstd_stream_fail_as_they_arrive_and_leave_nothing() {
    let source = source();
    let (id, bytes) = &source.artifacts[0];
    let (state, blobs) = empty_store();

    let mut import = blobs.import(id).unwrap();
    let garbage: Vec<u8> = bytes.iter().map(|byte| !byte).collect();
    let error = import.write_chunk(&garbage[..1000]).unwrap_err();
    assert!(
        matches!(error, ImportError::Undecodable { .. }),
        "{error:?}"
    );
    drop(import);
    assert_eq!(blobs.path(id), None);
    assert_eq!(files_under(state.path()), Vec::<PathBuf>::new());
}

#[test]
fn an_import_under_something_that_is_no_id_is_refused_before_any_write() {
    let (state, blobs) = empty_store();
    let error = blobs.import("../../etc/passwd").unwrap_err();
    assert!(
        matches!(error, ImportError::Blob(BlobError::InvalidId { .. })),
        "{error:?}"
    );
    assert_eq!(files_under(state.path()), Vec::<PathBuf>::new());
}

#[test]
fn refused_imports_say_what_arrived_and_that_nothing_was_kept() {
    let mismatch = ImportError::Mismatch {
        expected: "a".repeat(64),
        actual: "b".repeat(64),
    };
    insta::assert_snapshot!(mismatch, @"the bytes received for artifact aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa hash to bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb; nothing was kept: import it again from an intact copy");
    let undecodable = ImportError::Undecodable {
        id: "a".repeat(64),
        source: std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "incomplete frame"),
    };
    insta::assert_snapshot!(undecodable, @"the bytes received for artifact aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa are not a whole zstd-compressed artifact (incomplete frame); nothing was kept: import it again from an intact copy");
}
