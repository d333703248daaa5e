//! Push webhooks from the three forges, signed and unsigned.

use hmac::{Hmac, Mac as _};
use http::{HeaderMap, HeaderName, HeaderValue};
use lastmile_git::webhook::{Provider, Push, WebhookError, verify};

const SECRET: &str = "s3cret";
const SHA: &str = "4b825dc642cb6eb9a060e54bf8d69288fbee4904";

fn sign(secret: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).expect("key");
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (k, v) in pairs {
        map.insert(
            HeaderName::from_bytes(k.as_bytes()).expect("name"),
            HeaderValue::from_str(v).expect("value"),
        );
    }
    map
}

fn github_body(git_ref: &str, after: &str) -> Vec<u8> {
    serde_json::json!({
        "ref": git_ref,
        "before": "0000000000000000000000000000000000000000",
        "after": after,
        "repository": {
            "full_name": "acme/app",
            "clone_url": "https://github.com/acme/app.git",
            "html_url": "https://github.com/acme/app",
            "ssh_url": "git@github.com:acme/app.git",
        },
    })
    .to_string()
    .into_bytes()
}

fn gitlab_body(git_ref: &str, after: &str) -> Vec<u8> {
    serde_json::json!({
        "object_kind": "push",
        "ref": git_ref,
        "after": after,
        "checkout_sha": after,
        "project": {
            "git_http_url": "https://gitlab.example.com/group/app.git",
            "git_ssh_url": "git@gitlab.example.com:group/app.git",
            "web_url": "https://gitlab.example.com/group/app",
            "path_with_namespace": "group/app",
        },
    })
    .to_string()
    .into_bytes()
}

fn github_headers(event: &str, body: &[u8], secret: &str) -> HeaderMap {
    let sig = format!("sha256={}", sign(secret, body));
    headers(&[("X-GitHub-Event", event), ("X-Hub-Signature-256", &sig)])
}

#[test]
fn github_signed_push_parses() {
    let body = github_body("refs/heads/main", SHA);
    let push = verify(&github_headers("push", &body, SECRET), &body, SECRET).expect("verified");
    assert_eq!(
        push,
        Push {
            provider: Provider::GitHub,
            repository_urls: vec![
                "https://github.com/acme/app.git".into(),
                "git@github.com:acme/app.git".into(),
                "https://github.com/acme/app".into(),
            ],
            repository_name: Some("acme/app".into()),
            branch: Some("main".into()),
            after: SHA.into(),
            deleted: false,
        }
    );
}

#[test]
fn github_wrong_and_missing_signature_are_unauthorized() {
    let body = github_body("refs/heads/main", SHA);
    let wrong = github_headers("push", &body, "other secret");
    assert!(matches!(
        verify(&wrong, &body, SECRET),
        Err(WebhookError::Unauthorized(_))
    ));
    let missing = headers(&[("X-GitHub-Event", "push")]);
    assert!(matches!(
        verify(&missing, &body, SECRET),
        Err(WebhookError::Unauthorized(_))
    ));
    // A body changed after signing fails.
    let good = github_headers("push", &body, SECRET);
    let tampered = github_body("refs/heads/evil", SHA);
    assert!(matches!(
        verify(&good, &tampered, SECRET),
        Err(WebhookError::Unauthorized(_))
    ));
    // An unsigned garbage body is refused before it is parsed (401, not 400).
    assert!(matches!(
        verify(&missing, b"not json", SECRET),
        Err(WebhookError::Unauthorized(_))
    ));
}

#[test]
fn empty_secret_never_verifies() {
    let body = github_body("refs/heads/main", SHA);
    let h = github_headers("push", &body, "");
    assert!(matches!(
        verify(&h, &body, ""),
        Err(WebhookError::Unauthorized(_))
    ));
    let gl = headers(&[("X-Gitlab-Event", "Push Hook"), ("X-Gitlab-Token", "")]);
    assert!(matches!(
        verify(&gl, &gitlab_body("refs/heads/main", SHA), ""),
        Err(WebhookError::Unauthorized(_))
    ));
}

#[test]
fn unknown_provider_is_unauthorized() {
    let body = github_body("refs/heads/main", SHA);
    let h = headers(&[(
        "X-Hub-Signature-256",
        &format!("sha256={}", sign(SECRET, &body)),
    )]);
    assert!(matches!(
        verify(&h, &body, SECRET),
        Err(WebhookError::Unauthorized(_))
    ));
}

#[test]
fn github_ping_is_ignored() {
    let body = br#"{"zen":"Keep it logically awesome.","hook_id":1}"#;
    let h = github_headers("ping", body, SECRET);
    assert!(matches!(
        verify(&h, body, SECRET),
        Err(WebhookError::Ignored(_))
    ));
    // But an unsigned ping is still unauthorized.
    let h = github_headers("ping", body, "wrong");
    assert!(matches!(
        verify(&h, body, SECRET),
        Err(WebhookError::Unauthorized(_))
    ));
}

#[test]
fn tag_push_has_no_branch_and_delete_is_flagged() {
    let body = github_body("refs/tags/v1.0", SHA);
    let push = verify(&github_headers("push", &body, SECRET), &body, SECRET).expect("verified");
    assert_eq!(push.branch, None);
    assert!(!push.deleted);

    let zero = "0000000000000000000000000000000000000000";
    let body = github_body("refs/heads/gone", zero);
    let push = verify(&github_headers("push", &body, SECRET), &body, SECRET).expect("verified");
    assert_eq!(push.branch.as_deref(), Some("gone"));
    assert!(push.deleted);
}

#[test]
fn signed_garbage_is_bad_payload() {
    let body = b"{\"ref\": 5}";
    let h = github_headers("push", body, SECRET);
    assert!(matches!(
        verify(&h, body, SECRET),
        Err(WebhookError::BadPayload(_))
    ));
    let body = b"not json";
    let h = github_headers("push", body, SECRET);
    assert!(matches!(
        verify(&h, body, SECRET),
        Err(WebhookError::BadPayload(_))
    ));
}

#[test]
fn gitea_is_detected_before_github_headers() {
    let body = github_body("refs/heads/main", SHA);
    let sig = sign(SECRET, &body);
    // Gitea sends X-GitHub-Event too, but no X-Hub-Signature-256 of ours.
    let h = headers(&[
        ("X-Gitea-Event", "push"),
        ("X-GitHub-Event", "push"),
        ("X-Gitea-Signature", &sig),
    ]);
    let push = verify(&h, &body, SECRET).expect("verified");
    assert_eq!(push.provider, Provider::Gitea);
    assert_eq!(push.branch.as_deref(), Some("main"));
    assert_eq!(push.repository_name.as_deref(), Some("acme/app"));

    let wrong = headers(&[
        ("X-Gitea-Event", "push"),
        ("X-GitHub-Event", "push"),
        ("X-Gitea-Signature", &sign("nope", &body)),
    ]);
    assert!(matches!(
        verify(&wrong, &body, SECRET),
        Err(WebhookError::Unauthorized(_))
    ));
    let missing = headers(&[("X-Gitea-Event", "push"), ("X-GitHub-Event", "push")]);
    assert!(matches!(
        verify(&missing, &body, SECRET),
        Err(WebhookError::Unauthorized(_))
    ));
}

#[test]
fn gitlab_token_push_parses() {
    let body = gitlab_body("refs/heads/release/2", SHA);
    let h = headers(&[("X-Gitlab-Event", "Push Hook"), ("X-Gitlab-Token", SECRET)]);
    let push = verify(&h, &body, SECRET).expect("verified");
    assert_eq!(
        push,
        Push {
            provider: Provider::GitLab,
            repository_urls: vec![
                "https://gitlab.example.com/group/app.git".into(),
                "git@gitlab.example.com:group/app.git".into(),
                "https://gitlab.example.com/group/app".into(),
            ],
            repository_name: Some("group/app".into()),
            branch: Some("release/2".into()),
            after: SHA.into(),
            deleted: false,
        }
    );

    let wrong = headers(&[("X-Gitlab-Event", "Push Hook"), ("X-Gitlab-Token", "s3cre")]);
    assert!(matches!(
        verify(&wrong, &body, SECRET),
        Err(WebhookError::Unauthorized(_))
    ));
    let missing = headers(&[("X-Gitlab-Event", "Push Hook")]);
    assert!(matches!(
        verify(&missing, &body, SECRET),
        Err(WebhookError::Unauthorized(_))
    ));
    let other = headers(&[("X-Gitlab-Event", "Issue Hook"), ("X-Gitlab-Token", SECRET)]);
    assert!(matches!(
        verify(&other, &body, SECRET),
        Err(WebhookError::Ignored(_))
    ));
    let tag_body = gitlab_body("refs/tags/v2", SHA);
    let tag = headers(&[
        ("X-Gitlab-Event", "Tag Push Hook"),
        ("X-Gitlab-Token", SECRET),
    ]);
    assert_eq!(verify(&tag, &tag_body, SECRET).expect("tag").branch, None);
}
