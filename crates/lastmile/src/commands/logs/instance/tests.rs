#![allow(clippy::unwrap_used)]

use std::io::Write;

use super::*;

fn append(path: &Path, text: &str) {
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap();
    file.write_all(text.as_bytes()).unwrap();
}

#[test]
fn a_tail_reads_rotated_files_first_then_follows_across_a_rotation() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("staging.abc.0.log");
    append(&dir.path().join("staging.abc.0.log.2"), "oldest\n");
    append(&dir.path().join("staging.abc.0.log.1"), "older\n");
    append(&log, "current\nhalf a ");
    let mut tail = Tail::new(log.clone());
    assert_eq!(tail.rotated_lines(), ["oldest", "older"]);
    assert_eq!(tail.new_lines(), ["current"]);
    assert!(tail.new_lines().is_empty());

    // The supervisor's rotation: the last write to the old file, a rename,
    // then a new file.
    append(&log, "line\n");
    std::fs::rename(&log, dir.path().join("staging.abc.0.log.1")).unwrap();
    append(&log, "after the rotation\n");
    assert_eq!(tail.new_lines(), ["half a line", "after the rotation"]);

    // Truncated in place: read again from the start.
    std::fs::write(&log, "fresh\n").unwrap();
    assert_eq!(tail.new_lines(), ["fresh"]);
}

#[test]
fn known_instances_are_the_log_files_newest_first() {
    let dir = tempfile::tempdir().unwrap();
    append(&dir.path().join("staging.abc.0.log"), "x\n");
    append(&dir.path().join("staging.abc.0.log.1"), "x\n");
    let newer = dir.path().join("staging.def.0.log");
    append(&newer, "x\n");
    let later = SystemTime::now() + Duration::from_secs(60);
    File::options()
        .append(true)
        .open(&newer)
        .unwrap()
        .set_modified(later)
        .unwrap();
    assert_eq!(
        known_instances(dir.path()),
        ["staging.def.0", "staging.abc.0"]
    );
}
