//! API tokens on a real SQLite file: create, look up by hash, revoke.
#![allow(clippy::unwrap_used, reason = "a failed unwrap is a failed test")]

use std::path::Path;

use lastmile_store::{Role, SqliteStore, Store, StoreError, generate_token, hash_token};

fn open(state_dir: &Path) -> SqliteStore {
    SqliteStore::open(state_dir).unwrap().0
}

#[test]
fn generated_tokens_have_the_prefix_and_256_random_bits() {
    let first = generate_token();
    let second = generate_token();
    assert_ne!(first, second);
    for token in [&first, &second] {
        let body = token.strip_prefix("lmt_").unwrap();
        assert_eq!(body.len(), 43, "{token}");
        assert!(
            body.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'),
            "{token}"
        );
    }
    let hash = hash_token(&first);
    assert_eq!(hash.len(), 64);
    assert!(hash.chars().all(|c| matches!(c, '0'..='9' | 'a'..='f')));
    assert_eq!(hash, hash_token(&first));
    assert_ne!(hash, hash_token(&second));
    // A known SHA-256 vector, so the hash is the one documented.
    assert_eq!(
        hash_token("abc"),
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    );
}

#[test]
fn roles_parse_print_and_order() {
    for (text, role) in [
        ("viewer", Role::Viewer),
        ("deployer", Role::Deployer),
        ("admin", Role::Admin),
    ] {
        assert_eq!(text.parse::<Role>().unwrap(), role);
        assert_eq!(role.to_string(), text);
        assert_eq!(serde_json::to_value(role).unwrap(), text);
    }
    assert!(Role::Viewer < Role::Deployer && Role::Deployer < Role::Admin);
    let error = "root".parse::<Role>().unwrap_err().to_string();
    for word in ["root", "viewer", "deployer", "admin"] {
        assert!(error.contains(word), "{error}");
    }
}

#[test]
fn a_token_is_found_by_its_hash_until_revoked() {
    let state = tempfile::tempdir().unwrap();
    let store = open(state.path());
    let token = generate_token();
    let hash = hash_token(&token);

    let created = store
        .create_token("ci", Role::Deployer, &hash, "local:alice")
        .unwrap();
    assert_eq!(created.name, "ci");
    assert_eq!(created.role, Role::Deployer);
    assert_eq!(created.created_by, "local:alice");
    assert_eq!(created.last_used_at, None);
    assert_eq!(created.revoked_at, None);

    let found = store.token_by_hash(&hash).unwrap().unwrap();
    assert_eq!(found.id, created.id);
    assert_eq!(found.role, Role::Deployer);
    assert!(
        store
            .token_by_hash(&hash_token("lmt_guess"))
            .unwrap()
            .is_none()
    );
    // The token itself is not its hash.
    assert!(store.token_by_hash(&token).unwrap().is_none());

    assert_eq!(store.list_tokens().unwrap().len(), 1);
    assert!(store.revoke_token("ci", "local:bob").unwrap());
    assert!(!store.revoke_token("ci", "local:bob").unwrap());
    assert!(!store.revoke_token("nobody", "local:bob").unwrap());
    assert!(store.token_by_hash(&hash).unwrap().is_none());
    let listed = store.list_tokens().unwrap();
    assert_eq!(listed.len(), 1);
    assert!(listed[0].revoked_at.is_some());

    let events = store.list_events(0, 100).unwrap();
    let kinds: Vec<_> = events.iter().map(|event| event.kind.as_str()).collect();
    assert_eq!(kinds, ["token.created", "token.revoked"]);
    assert_eq!(events[0].subject, "token/ci");
    assert_eq!(events[0].actor, "local:alice");
    assert_eq!(events[1].actor, "local:bob");
    let all = serde_json::to_string(&events).unwrap();
    assert!(!all.contains(&hash), "{all}");
    assert!(!all.contains(&token), "{all}");
}

#[test]
fn a_taken_name_is_refused_until_the_token_is_revoked() {
    let state = tempfile::tempdir().unwrap();
    let store = open(state.path());
    let first = hash_token(&generate_token());
    store
        .create_token("ci", Role::Viewer, &first, "local:alice")
        .unwrap();
    let error = store
        .create_token(
            "ci",
            Role::Admin,
            &hash_token(&generate_token()),
            "local:alice",
        )
        .unwrap_err();
    assert!(
        matches!(&error, StoreError::TokenNameTaken { name } if name == "ci"),
        "{error}"
    );
    assert_eq!(
        error.to_string(),
        "a token named `ci` exists; pick another name or revoke it"
    );
    assert_eq!(store.list_events(0, 100).unwrap().len(), 1);

    store.revoke_token("ci", "local:alice").unwrap();
    let second = hash_token(&generate_token());
    let again = store
        .create_token("ci", Role::Admin, &second, "local:alice")
        .unwrap();
    assert_eq!(again.role, Role::Admin);
    assert!(store.token_by_hash(&first).unwrap().is_none());
    assert_eq!(store.token_by_hash(&second).unwrap().unwrap().id, again.id);
    assert_eq!(store.list_tokens().unwrap().len(), 1);
}

#[test]
fn use_is_noted_at_most_once_a_minute() {
    let state = tempfile::tempdir().unwrap();
    let store = open(state.path());
    let hash = hash_token(&generate_token());
    store
        .create_token("ci", Role::Viewer, &hash, "local:alice")
        .unwrap();
    let before = lastmile_store::now_millis();
    let first = store
        .token_by_hash(&hash)
        .unwrap()
        .unwrap()
        .last_used_at
        .unwrap();
    assert!(first >= before);
    assert_eq!(
        store.list_tokens().unwrap()[0].last_used_at,
        Some(first),
        "stored, not just returned"
    );
    let second = store.token_by_hash(&hash).unwrap().unwrap().last_used_at;
    assert_eq!(second, Some(first));

    // Two minutes ago, as far as the row knows: the next use rewrites it.
    let connection = rusqlite::Connection::open(state.path().join("lastmile.db")).unwrap();
    connection
        .execute("UPDATE tokens SET last_used_at = ?1", [first - 120_000])
        .unwrap();
    let third = store
        .token_by_hash(&hash)
        .unwrap()
        .unwrap()
        .last_used_at
        .unwrap();
    assert!(third >= first, "{third} < {first}");
    // Use is not an event.
    assert_eq!(store.list_events(0, 100).unwrap().len(), 1);
}

#[test]
fn an_unknown_role_in_the_database_cannot_be_written() {
    let state = tempfile::tempdir().unwrap();
    drop(open(state.path()));
    let connection = rusqlite::Connection::open(state.path().join("lastmile.db")).unwrap();
    let error = connection
        .execute(
            "INSERT INTO tokens (name, role, hash, created_at, created_by) VALUES ('x', 'root', 'h', 0, 'me')",
            [],
        )
        .unwrap_err();
    assert!(error.to_string().contains("CHECK"), "{error}");
}
