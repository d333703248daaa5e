#![allow(clippy::unwrap_used, reason = "a failed unwrap is a failed test")]

use std::fs;
use std::io::Write;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::Path;
use std::process::Command;

use crate::BlobStore;

use super::{PackageError, SelectionError, pack, select, unpack};

fn write(root: &Path, relative: &str, content: &str) {
    let path = root.join(relative);
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, content).unwrap();
}

fn set_mode(root: &Path, relative: &str, mode: u32) {
    fs::set_permissions(root.join(relative), fs::Permissions::from_mode(mode)).unwrap();
}

fn mode_of(path: &Path) -> u32 {
    fs::symlink_metadata(path).unwrap().permissions().mode() & 0o777
}

fn patterns(list: &[&str]) -> Vec<String> {
    list.iter().map(|pattern| (*pattern).to_owned()).collect()
}

/// A small app tree: a binary, data files, a nested dir, a symlink.
fn sample_tree(root: &Path) {
    write(root, "bin/app", "#!/bin/sh\necho hi\n");
    set_mode(root, "bin/app", 0o755);
    write(root, "static/index.html", "<h1>hi</h1>\n");
    write(root, "static/css/site.css", "body{}\n");
    symlink("index.html", root.join("static/home.html")).unwrap();
    fs::create_dir_all(root.join("static/empty")).unwrap();
}

fn store() -> (tempfile::TempDir, BlobStore) {
    let state = tempfile::tempdir().unwrap();
    let blobs = BlobStore::open(state.path()).unwrap();
    (state, blobs)
}

#[test]
fn same_tree_in_different_places_and_times_packs_to_the_same_id() {
    let (_state, blobs) = store();
    let first = tempfile::tempdir().unwrap();
    let second = tempfile::tempdir().unwrap();
    sample_tree(first.path());
    sample_tree(second.path());
    // Different timestamps, owners and group/other bits must not matter.
    let touched = Command::new("touch")
        .args(["-d", "2001-02-03 04:05:06"])
        .arg(second.path().join("static/index.html"))
        .arg(second.path().join("bin/app"))
        .status()
        .unwrap();
    assert!(touched.success());
    Command::new("chown")
        .args(["-R", "12345:54321"])
        .arg(second.path())
        .status()
        .unwrap();
    set_mode(second.path(), "static/css/site.css", 0o600);
    set_mode(second.path(), "bin/app", 0o700);

    let wanted = patterns(&["bin", "static"]);
    let one = pack(first.path(), &wanted, &blobs).unwrap();
    let two = pack(second.path(), &wanted, &blobs).unwrap();
    assert_eq!(one.id, two.id);
    assert_eq!(one.files, 4);
    assert_eq!(one.id.len(), 64);
    assert!(one.size > 0);
    assert_eq!(blobs.path(&one.id).map(|path| path.is_file()), Some(true));
}

#[test]
fn content_change_changes_the_id() {
    let (_state, blobs) = store();
    let root = tempfile::tempdir().unwrap();
    sample_tree(root.path());
    let before = pack(root.path(), &patterns(&["."]), &blobs).unwrap();
    write(root.path(), "static/css/site.css", "body{color:red}\n");
    let after = pack(root.path(), &patterns(&["."]), &blobs).unwrap();
    assert_ne!(before.id, after.id);
}

#[test]
fn exec_bit_changes_the_id() {
    let (_state, blobs) = store();
    let root = tempfile::tempdir().unwrap();
    sample_tree(root.path());
    let before = pack(root.path(), &patterns(&["bin"]), &blobs).unwrap();
    set_mode(root.path(), "bin/app", 0o644);
    let after = pack(root.path(), &patterns(&["bin"]), &blobs).unwrap();
    assert_ne!(before.id, after.id);
}

#[test]
fn unpack_restores_files_modes_and_symlinks() {
    let (_state, blobs) = store();
    let root = tempfile::tempdir().unwrap();
    sample_tree(root.path());
    let long_name = format!("static/{}/{}.txt", "d".repeat(80), "f".repeat(90));
    write(root.path(), &long_name, "long path\n");
    let packed = pack(root.path(), &patterns(&["bin", "static"]), &blobs).unwrap();

    let dest = tempfile::tempdir().unwrap();
    let target = dest.path().join("release");
    let files = unpack(&blobs, &packed.id, &target).unwrap();
    assert_eq!(files, packed.files);
    assert_eq!(files, 5);
    assert_eq!(
        fs::read_to_string(target.join("bin/app")).unwrap(),
        "#!/bin/sh\necho hi\n"
    );
    assert_eq!(mode_of(&target.join("bin/app")), 0o755);
    assert_eq!(mode_of(&target.join("static/index.html")), 0o644);
    assert_eq!(
        fs::read_to_string(target.join(&long_name)).unwrap(),
        "long path\n"
    );
    assert_eq!(
        fs::read_link(target.join("static/home.html")).unwrap(),
        Path::new("index.html")
    );
    assert!(target.join("static/empty").is_dir());

    // Packing the unpacked tree gives the same artifact back.
    let again = pack(&target, &patterns(&["bin", "static"]), &blobs).unwrap();
    assert_eq!(again.id, packed.id);
}

#[test]
fn globs_select_matching_files_only() {
    let root = tempfile::tempdir().unwrap();
    write(root.path(), "src/main.rs", "");
    write(root.path(), "src/lib.rs", "");
    write(root.path(), "src/nested/deep.rs", "");
    write(root.path(), "src/notes.txt", "");
    write(root.path(), "target/out.rs", "");
    write(root.path(), ".git/config", "");
    write(root.path(), "docs/.git/x.rs", "");

    let relative = |pattern: &str| -> Vec<String> {
        select(root.path(), pattern)
            .unwrap()
            .into_iter()
            .map(|entry| entry.relative)
            .collect()
    };
    assert_eq!(relative("src/*.rs"), ["src/lib.rs", "src/main.rs"]);
    assert_eq!(
        relative("src/**/*.rs"),
        ["src/lib.rs", "src/main.rs", "src/nested/deep.rs"]
    );
    assert_eq!(
        relative("**/*.rs"),
        [
            "src/lib.rs",
            "src/main.rs",
            "src/nested/deep.rs",
            "target/out.rs"
        ]
    );
    assert_eq!(relative("src/nes*"), ["src/nested", "src/nested/deep.rs"]);
    assert_eq!(relative("./src/notes.txt"), ["src/notes.txt"]);
    assert!(relative("nothing/*.rs").is_empty());
}

#[test]
fn glob_patterns_pack_only_their_matches() {
    let (_state, blobs) = store();
    let root = tempfile::tempdir().unwrap();
    write(root.path(), "dist/app.js", "js");
    write(root.path(), "dist/app.js.map", "map");
    write(root.path(), "README.md", "readme");
    let packed = pack(root.path(), &patterns(&["dist/*.js", "*.md"]), &blobs).unwrap();
    assert_eq!(packed.files, 2);
    let dest = tempfile::tempdir().unwrap();
    unpack(&blobs, &packed.id, dest.path()).unwrap();
    assert!(dest.path().join("dist/app.js").is_file());
    assert!(dest.path().join("README.md").is_file());
    assert!(!dest.path().join("dist/app.js.map").exists());
}

#[test]
fn a_pattern_matching_nothing_is_an_error_naming_it() {
    let (_state, blobs) = store();
    let root = tempfile::tempdir().unwrap();
    write(root.path(), "dist/app.js", "js");
    let error = pack(root.path(), &patterns(&["dist", "build/*.bin"]), &blobs).unwrap_err();
    assert!(
        matches!(&error, PackageError::NothingMatched { pattern, .. } if pattern == "build/*.bin"),
        "{error:?}"
    );
    let message = error.to_string();
    assert!(message.contains("build/*.bin"), "{message}");
    assert!(
        message.contains(&root.path().display().to_string()),
        "{message}"
    );
}

#[test]
fn patterns_outside_the_root_are_refused() {
    let root = tempfile::tempdir().unwrap();
    for pattern in ["../etc", "/etc/passwd", "a/../../b"] {
        let error = select(root.path(), pattern).unwrap_err();
        assert!(
            matches!(error, SelectionError::OutsideRoot { .. }),
            "{pattern}: {error:?}"
        );
    }
}

#[test]
fn symlinks_are_not_followed_out_of_the_root() {
    let (_state, blobs) = store();
    let outside = tempfile::tempdir().unwrap();
    write(outside.path(), "secret.txt", "outside");
    let root = tempfile::tempdir().unwrap();
    write(root.path(), "app/run", "run");
    symlink(outside.path(), root.path().join("app/escape")).unwrap();
    let packed = pack(root.path(), &patterns(&["app"]), &blobs).unwrap();
    assert_eq!(packed.files, 2);
    let dest = tempfile::tempdir().unwrap();
    unpack(&blobs, &packed.id, dest.path()).unwrap();
    let link = dest.path().join("app/escape");
    assert!(
        fs::symlink_metadata(&link)
            .unwrap()
            .file_type()
            .is_symlink()
    );
    assert_eq!(fs::read_link(&link).unwrap(), outside.path());
}

#[test]
fn patterns_never_pass_through_a_symlinked_directory() {
    let outside = tempfile::tempdir().unwrap();
    write(outside.path(), "secret.txt", "outside");
    let root = tempfile::tempdir().unwrap();
    symlink(outside.path(), root.path().join("link")).unwrap();
    for pattern in ["link/secret.txt", "link/*.txt", "link/**"] {
        let error = select(root.path(), pattern).unwrap_err();
        assert!(
            matches!(error, SelectionError::ThroughSymlink { .. }),
            "{pattern}: {error:?}"
        );
    }
    // The link itself is selectable, and stays a link.
    let selected = select(root.path(), "link").unwrap();
    assert_eq!(selected.len(), 1);
    assert_eq!(selected[0].kind, super::EntryKind::Symlink);
}

#[test]
fn device_files_are_refused() {
    let (_state, blobs) = store();
    let root = tempfile::tempdir().unwrap();
    let fifo = root.path().join("pipe");
    let made = Command::new("mkfifo").arg(&fifo).status().unwrap();
    assert!(made.success());
    let error = pack(root.path(), &patterns(&["pipe"]), &blobs).unwrap_err();
    assert!(
        matches!(error, PackageError::UnsupportedFile { .. }),
        "{error:?}"
    );
    assert!(error.to_string().contains("named pipe"), "{error}");
}

/// Stores a hand-made tar stream as a blob, under its true id.
fn store_raw_tar(blobs: &BlobStore, tar_bytes: &[u8]) -> String {
    let id = blake3::hash(tar_bytes).to_hex().to_string();
    let mut encoder = zstd::Encoder::new(blobs.begin().unwrap(), 3).unwrap();
    encoder.write_all(tar_bytes).unwrap();
    encoder.finish().unwrap().commit(&id).unwrap();
    id
}

/// A one-entry tar whose name is written raw, bypassing the tar crate's own
/// checks (it refuses `..` when building).
fn tar_with_raw_entry(name: &[u8], entry_type: tar::EntryType, link: Option<&[u8]>) -> Vec<u8> {
    let mut header = tar::Header::new_old();
    header.as_old_mut().name[..name.len()].copy_from_slice(name);
    if let Some(link) = link {
        header.as_old_mut().linkname[..link.len()].copy_from_slice(link);
    }
    header.set_entry_type(entry_type);
    header.set_mode(0o644);
    header.set_size(if entry_type == tar::EntryType::Regular {
        4
    } else {
        0
    });
    header.set_cksum();
    let mut bytes = header.as_bytes().to_vec();
    if entry_type == tar::EntryType::Regular {
        let mut block = [0u8; 512];
        block[..4].copy_from_slice(b"evil");
        bytes.extend_from_slice(&block);
    }
    bytes.extend_from_slice(&[0u8; 1024]);
    bytes
}

#[test]
fn traversal_entries_are_refused() {
    let (_state, blobs) = store();
    for name in [
        &b"../evil.txt"[..],
        b"a/../../evil.txt",
        b"/tmp/evil-absolute.txt",
    ] {
        let id = store_raw_tar(
            &blobs,
            &tar_with_raw_entry(name, tar::EntryType::Regular, None),
        );
        let parent = tempfile::tempdir().unwrap();
        let dest = parent.path().join("dest");
        let error = unpack(&blobs, &id, &dest).unwrap_err();
        assert!(
            matches!(error, PackageError::UnsafeEntry { .. }),
            "{error:?}"
        );
        assert!(!parent.path().join("evil.txt").exists());
    }
    assert!(!Path::new("/tmp/evil-absolute.txt").exists());
}

#[test]
fn writing_through_an_unpacked_symlink_is_refused() {
    let (_state, blobs) = store();
    let outside = tempfile::tempdir().unwrap();
    let mut tar_bytes = tar_with_raw_entry(
        b"link",
        tar::EntryType::Symlink,
        Some(outside.path().to_str().unwrap().as_bytes()),
    );
    tar_bytes.truncate(tar_bytes.len() - 1024);
    let second = tar_with_raw_entry(b"link/evil.txt", tar::EntryType::Regular, None);
    tar_bytes.extend_from_slice(&second);
    let id = store_raw_tar(&blobs, &tar_bytes);
    let dest = tempfile::tempdir().unwrap();
    let error = unpack(&blobs, &id, dest.path()).unwrap_err();
    assert!(
        matches!(error, PackageError::UnsafeEntry { .. }),
        "{error:?}"
    );
    assert!(!outside.path().join("evil.txt").exists());
}

#[test]
fn content_that_does_not_match_its_id_is_reported() {
    let (_state, blobs) = store();
    let tar_bytes = tar_with_raw_entry(b"file.txt", tar::EntryType::Regular, None);
    let wrong_id = blake3::hash(b"something else").to_hex().to_string();
    let mut encoder = zstd::Encoder::new(blobs.begin().unwrap(), 3).unwrap();
    encoder.write_all(&tar_bytes).unwrap();
    encoder.finish().unwrap().commit(&wrong_id).unwrap();
    let dest = tempfile::tempdir().unwrap();
    let error = unpack(&blobs, &wrong_id, dest.path()).unwrap_err();
    assert!(
        matches!(error, PackageError::HashMismatch { .. }),
        "{error:?}"
    );
}

#[test]
fn messages_read_well() {
    let nothing = PackageError::NothingMatched {
        pattern: "dist/*.js".to_owned(),
        root: "/work/run-3".into(),
    };
    insta::assert_snapshot!(nothing, @"`dist/*.js` matches nothing under /work/run-3; check `artifact.paths` in lastmile.yaml and that the steps create it");
    let outside = PackageError::from(SelectionError::OutsideRoot {
        pattern: "../secrets".to_owned(),
        root: "/work/run-3".into(),
    });
    insta::assert_snapshot!(outside, @"`../secrets` points outside /work/run-3; patterns must be relative paths without `..`");
    let fifo = PackageError::UnsupportedFile {
        path: "/work/run-3/dist/pipe".into(),
        kind: "named pipe",
    };
    insta::assert_snapshot!(fifo, @"/work/run-3/dist/pipe is a named pipe, which an artifact cannot hold; remove it or narrow `artifact.paths`");
}
