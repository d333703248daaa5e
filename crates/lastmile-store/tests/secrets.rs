//! Secrets: sealed by `SecretBox`, stored by `SqliteStore`, never in the clear.
#![allow(clippy::unwrap_used, reason = "a failed unwrap is a failed test")]

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::Arc;

use lastmile_store::{SecretBox, SecretBoxError, SqliteStore, Store, key_file_for};

fn open(state_dir: &Path) -> SqliteStore {
    SqliteStore::open(state_dir).unwrap().0
}

fn mode(path: &Path) -> u32 {
    fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[test]
fn the_key_file_is_created_private_and_reused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("keys").join("secrets.key");
    let first = SecretBox::open_or_create(&path).unwrap();
    assert_eq!(mode(&path), 0o600);
    assert_eq!(fs::read(&path).unwrap().len(), 32);
    // Nothing but the key is left in the directory.
    assert_eq!(fs::read_dir(path.parent().unwrap()).unwrap().count(), 1);

    let (nonce, ciphertext) = first.seal("hello/DATABASE_URL", b"postgres://x");
    assert_eq!(nonce.len(), 24);
    let second = SecretBox::open_or_create(&path).unwrap();
    assert_eq!(
        second
            .open("hello/DATABASE_URL", &nonce, &ciphertext)
            .unwrap(),
        b"postgres://x"
    );

    let other = SecretBox::open_or_create(&dir.path().join("other.key")).unwrap();
    let error = other
        .open("hello/DATABASE_URL", &nonce, &ciphertext)
        .unwrap_err();
    assert!(matches!(error, SecretBoxError::Decrypt), "{error}");
    assert!(
        error.to_string().contains("key file may have changed"),
        "{error}"
    );
}

#[test]
fn processes_racing_to_create_the_key_agree_on_one() {
    let dir = tempfile::tempdir().unwrap();
    let path = Arc::new(dir.path().join("secrets.key"));
    let boxes: Vec<SecretBox> = (0..8)
        .map(|_| {
            let path = Arc::clone(&path);
            std::thread::spawn(move || SecretBox::open_or_create(&path).unwrap())
        })
        .collect::<Vec<_>>()
        .into_iter()
        .map(|handle| handle.join().unwrap())
        .collect();
    let (nonce, ciphertext) = boxes[0].seal("a/b", b"same key");
    for secret_box in &boxes {
        assert_eq!(
            secret_box.open("a/b", &nonce, &ciphertext).unwrap(),
            b"same key"
        );
    }
    assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
}

#[test]
fn a_key_file_others_can_read_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("secrets.key");
    drop(SecretBox::open_or_create(&path).unwrap());
    fs::set_permissions(&path, fs::Permissions::from_mode(0o640)).unwrap();
    let error = SecretBox::open_or_create(&path).unwrap_err();
    assert!(
        matches!(error, SecretBoxError::Permissions { .. }),
        "{error}"
    );
    let message = error.to_string();
    assert!(
        message.contains(&format!("chmod 600 {}", path.display())),
        "{message}"
    );
    // Refused, not repaired or replaced.
    assert_eq!(mode(&path), 0o640);
}

#[test]
fn a_key_file_of_the_wrong_length_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("secrets.key");
    fs::write(&path, b"too short").unwrap();
    fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).unwrap();
    let error = SecretBox::open_or_create(&path).unwrap_err();
    assert!(
        matches!(error, SecretBoxError::KeyLength { len: 9, .. }),
        "{error}"
    );
    assert!(error.to_string().contains("secrets.key"), "{error}");
    assert_eq!(fs::read(&path).unwrap(), b"too short");
}

#[test]
fn tampered_bytes_and_another_secrets_name_do_not_open() {
    let dir = tempfile::tempdir().unwrap();
    let secret_box = SecretBox::open_or_create(&dir.path().join("secrets.key")).unwrap();
    let (nonce, ciphertext) = secret_box.seal("hello/TOKEN", b"s3cret");
    assert_eq!(
        secret_box.open("hello/TOKEN", &nonce, &ciphertext).unwrap(),
        b"s3cret"
    );

    let mut flipped = ciphertext.clone();
    flipped[0] ^= 1;
    let mut other_nonce = nonce.clone();
    other_nonce[23] ^= 1;
    for (aad, nonce, ciphertext) in [
        ("hello/TOKEN", &nonce, &flipped),
        ("hello/OTHER", &nonce, &ciphertext),
        ("other/TOKEN", &nonce, &ciphertext),
        ("hello/TOKEN", &other_nonce, &ciphertext),
        ("hello/TOKEN", &nonce[..12].to_vec(), &ciphertext),
        (
            "hello/TOKEN",
            &nonce,
            &ciphertext[..ciphertext.len() - 1].to_vec(),
        ),
    ] {
        let result = secret_box.open(aad, nonce, ciphertext);
        assert!(
            matches!(result, Err(SecretBoxError::Decrypt)),
            "{aad}: {result:?}"
        );
    }
    // Fresh nonces: sealing the same value twice gives different bytes.
    let (nonce_again, ciphertext_again) = secret_box.seal("hello/TOKEN", b"s3cret");
    assert_ne!(nonce, nonce_again);
    assert_ne!(ciphertext, ciphertext_again);
}

#[test]
fn debug_shows_the_path_not_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("secrets.key");
    let secret_box = SecretBox::open_or_create(&path).unwrap();
    let key = fs::read(&path).unwrap();
    let debug = format!("{secret_box:?} {secret_box:#?}");
    assert!(debug.contains("secrets.key"), "{debug}");
    let key_hex: String = key.iter().map(|byte| format!("{byte:02x}")).collect();
    assert!(!debug.contains(&key_hex), "{debug}");
    assert!(!debug.contains(&format!("{key:?}")[1..20]), "{debug}");
    assert!(!debug.contains(&format!("{:?}", &key[..4])[1..]), "{debug}");
}

#[test]
fn secrets_round_trip_through_the_store_without_their_values() {
    let state = tempfile::tempdir().unwrap();
    let store = open(state.path());
    let secret_box = SecretBox::open_or_create(&state.path().join("secrets.key")).unwrap();
    let value = b"postgres://user:hunter2@db/app";

    let (nonce, ciphertext) = secret_box.seal("hello/DATABASE_URL", value);
    store
        .put_secret("hello", "DATABASE_URL", &nonce, &ciphertext, "local:alice")
        .unwrap();
    let (api_nonce, api_ciphertext) = secret_box.seal("hello/API_KEY", b"k-123");
    store
        .put_secret(
            "hello",
            "API_KEY",
            &api_nonce,
            &api_ciphertext,
            "local:alice",
        )
        .unwrap();
    store
        .put_secret(
            "other",
            "API_KEY",
            &api_nonce,
            &api_ciphertext,
            "local:alice",
        )
        .unwrap();

    let (stored_nonce, stored_ciphertext) =
        store.get_secret("hello", "DATABASE_URL").unwrap().unwrap();
    assert_eq!(
        secret_box
            .open("hello/DATABASE_URL", &stored_nonce, &stored_ciphertext)
            .unwrap(),
        value
    );
    assert!(store.get_secret("hello", "MISSING").unwrap().is_none());

    // Replacing keeps one row, with the new value and who set it.
    let (nonce, ciphertext) = secret_box.seal("hello/DATABASE_URL", b"sqlite://new");
    store
        .put_secret("hello", "DATABASE_URL", &nonce, &ciphertext, "local:bob")
        .unwrap();
    let (stored_nonce, stored_ciphertext) =
        store.get_secret("hello", "DATABASE_URL").unwrap().unwrap();
    assert_eq!(
        secret_box
            .open("hello/DATABASE_URL", &stored_nonce, &stored_ciphertext)
            .unwrap(),
        b"sqlite://new"
    );
    let listed = store.list_secrets("hello").unwrap();
    let names: Vec<_> = listed.iter().map(|secret| secret.name.as_str()).collect();
    assert_eq!(names, ["API_KEY", "DATABASE_URL"]);
    assert_eq!(listed[1].updated_by, "local:bob");
    assert_eq!(listed[1].app, "hello");

    assert!(
        store
            .delete_secret("hello", "API_KEY", "local:bob")
            .unwrap()
    );
    assert!(
        !store
            .delete_secret("hello", "API_KEY", "local:bob")
            .unwrap()
    );
    assert_eq!(store.list_secrets("hello").unwrap().len(), 1);
    assert_eq!(store.list_secrets("other").unwrap().len(), 1);

    let events = store.list_events(0, 100).unwrap();
    let kinds: Vec<_> = events.iter().map(|event| event.kind.as_str()).collect();
    assert_eq!(
        kinds,
        [
            "secret.set",
            "secret.set",
            "secret.set",
            "secret.set",
            "secret.deleted"
        ]
    );
    assert_eq!(events[0].subject, "secret/hello/DATABASE_URL");
    assert_eq!(
        events[0].data,
        serde_json::json!({ "app": "hello", "name": "DATABASE_URL" })
    );
    let all = serde_json::to_string(&events).unwrap();
    for leaked in ["hunter2", "sqlite://new", "k-123"] {
        assert!(!all.contains(leaked), "{all}");
    }

    // The database file itself holds no value in the clear.
    drop(store);
    let mut bytes = Vec::new();
    for entry in fs::read_dir(state.path()).unwrap() {
        let path = entry.unwrap().path();
        if path.is_file() {
            bytes.extend(fs::read(path).unwrap());
        }
    }
    let text = String::from_utf8_lossy(&bytes);
    assert!(text.contains("DATABASE_URL"), "the scan reads the database");
    assert!(!text.contains("hunter2") && !text.contains("sqlite://new"));
}

#[test]
fn a_new_key_lives_in_the_data_home_and_an_existing_one_in_the_state_dir_is_kept() {
    let project = tempfile::tempdir().unwrap();
    let data_home = tempfile::tempdir().unwrap();
    let state_dir = project.path().join(".lastmile");
    open(&state_dir);

    // Fresh: outside the project, named after the state directory, private.
    let key = key_file_for(&state_dir, None, Some(data_home.path()));
    assert!(
        key.starts_with(data_home.path().join("lastmile/keys")),
        "{key:?}"
    );
    assert!(!key.starts_with(project.path()), "{key:?}");
    let secrets = SecretBox::open_or_create(&key).unwrap();
    assert_eq!(mode(&key), 0o600);
    assert_eq!(mode(key.parent().unwrap()), 0o700);
    assert_eq!(mode(&data_home.path().join("lastmile")), 0o700);
    let (nonce, sealed) = secrets.seal("demo/TOKEN", b"hunter2");
    // The same state directory finds the same key, by any path to it.
    let through_dot = project.path().join(".").join(".lastmile");
    assert_eq!(
        key_file_for(&through_dot, None, Some(data_home.path())),
        key
    );
    let other = tempfile::tempdir().unwrap();
    assert_ne!(
        key_file_for(other.path(), None, Some(data_home.path())),
        key
    );
    assert_eq!(
        SecretBox::open_or_create(&key_file_for(&state_dir, None, Some(data_home.path())))
            .unwrap()
            .open("demo/TOKEN", &nonce, &sealed)
            .unwrap(),
        b"hunter2"
    );

    // A key an earlier version made in the state directory stays in use,
    // so what it sealed still opens.
    let old_state = tempfile::tempdir().unwrap();
    let old_key = old_state.path().join("secret.key");
    let old_box = SecretBox::open_or_create(&old_key).unwrap();
    let (nonce, sealed) = old_box.seal("demo/TOKEN", b"older");
    let found = key_file_for(old_state.path(), None, Some(data_home.path()));
    assert_eq!(found, old_key);
    assert_eq!(
        SecretBox::open_or_create(&found)
            .unwrap()
            .open("demo/TOKEN", &nonce, &sealed)
            .unwrap(),
        b"older"
    );

    // Asked for, anywhere; without a data home, the state directory.
    let asked = project.path().join("elsewhere.key");
    assert_eq!(
        key_file_for(&state_dir, Some(&asked), Some(data_home.path())),
        asked
    );
    assert_eq!(
        key_file_for(&state_dir, None, None),
        state_dir.join("secret.key")
    );
}

#[test]
fn a_state_directory_the_store_creates_ignores_itself_in_git() {
    let project = tempfile::tempdir().unwrap();
    let state_dir = project.path().join(".lastmile");
    open(&state_dir);
    assert_eq!(
        fs::read_to_string(state_dir.join(".gitignore")).unwrap(),
        "# lastmile's state: never committed\n*\n"
    );
    // One the user made is left as it is.
    let own = project.path().join("own");
    fs::create_dir(&own).unwrap();
    open(&own);
    assert!(!own.join(".gitignore").exists());
}
