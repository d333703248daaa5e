//! Verification and parsing of push webhooks from GitHub, Gitea and GitLab.
//!
//! The signature (or token) is checked before the body is parsed, so an unauthenticated
//! sender cannot make the server parse anything.

use hmac::{Hmac, Mac as _};
use http::HeaderMap;
use serde_json::Value;
use sha2::Sha256;
use subtle::ConstantTimeEq as _;

/// Which forge sent it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum Provider {
    /// github.com or GitHub Enterprise.
    GitHub,
    /// Gitea or Forgejo.
    Gitea,
    /// gitlab.com or self-hosted GitLab.
    GitLab,
}

/// A verified push.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Push {
    /// Which forge sent it.
    pub provider: Provider,
    /// Every URL the payload gives for the repository (clone_url, ssh_url, html_url, git_http_url, ...), to match against configured repos.
    pub repository_urls: Vec<String>,
    /// Full name ("owner/repo", GitLab "path_with_namespace") when given.
    pub repository_name: Option<String>,
    /// Branch name without refs/heads/; None for tag pushes.
    pub branch: Option<String>,
    /// The new head sha ("after"); all-zero for a deleted branch → `deleted: true`.
    pub after: String,
    /// True when the push deleted the ref.
    pub deleted: bool,
}

/// Why a webhook request was not turned into a [`Push`].
#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    /// Missing or wrong signature/token → the server answers 401.
    #[error(
        "webhook not authorized: {0} (check that the webhook secret configured on the forge equals the one lastmile uses)"
    )]
    Unauthorized(String),
    /// Not a push event (ping, etc.) → 202 and nothing triggered.
    #[error("webhook ignored: {0} (only push events trigger a deploy)")]
    Ignored(String),
    /// Unparseable → 400.
    #[error(
        "webhook payload unusable: {0} (send the forge's JSON push payload, content type application/json)"
    )]
    BadPayload(String),
}

type HmacSha256 = Hmac<Sha256>;

/// Detects the provider from headers (GitHub: `X-GitHub-Event` + `X-Hub-Signature-256: sha256=<hex HMAC-SHA256(secret, body)>`;
/// Gitea: `X-Gitea-Event` + `X-Gitea-Signature: <hex HMAC-SHA256>` (checked first, as Gitea also sends X-GitHub-Event);
/// GitLab: `X-Gitlab-Event: Push Hook` + `X-Gitlab-Token: <secret>` compared in constant time),
/// verifies BEFORE parsing the body, then parses the push. Unknown provider → Unauthorized.
/// An empty secret never verifies (Unauthorized).
pub fn verify(headers: &HeaderMap, body: &[u8], secret: &str) -> Result<Push, WebhookError> {
    let (provider, event) = if let Some(event) = header(headers, "x-gitea-event")? {
        (Provider::Gitea, event)
    } else if let Some(event) = header(headers, "x-github-event")? {
        (Provider::GitHub, event)
    } else if let Some(event) = header(headers, "x-gitlab-event")? {
        (Provider::GitLab, event)
    } else {
        return Err(WebhookError::Unauthorized(
            "no X-GitHub-Event, X-Gitea-Event or X-Gitlab-Event header, so the sender is unknown"
                .into(),
        ));
    };
    if secret.is_empty() {
        return Err(WebhookError::Unauthorized(
            "no webhook secret is configured, so no request can be verified".into(),
        ));
    }
    match provider {
        Provider::GitHub => {
            let signature = header(headers, "x-hub-signature-256")?.ok_or_else(|| {
                WebhookError::Unauthorized("the X-Hub-Signature-256 header is missing".into())
            })?;
            let hex_sig = signature.strip_prefix("sha256=").ok_or_else(|| {
                WebhookError::Unauthorized(
                    "X-Hub-Signature-256 does not start with \"sha256=\"".into(),
                )
            })?;
            check_hmac(secret, body, hex_sig, "X-Hub-Signature-256")?;
        }
        Provider::Gitea => {
            let signature = header(headers, "x-gitea-signature")?.ok_or_else(|| {
                WebhookError::Unauthorized("the X-Gitea-Signature header is missing".into())
            })?;
            check_hmac(secret, body, signature, "X-Gitea-Signature")?;
        }
        Provider::GitLab => {
            let token = header(headers, "x-gitlab-token")?.ok_or_else(|| {
                WebhookError::Unauthorized("the X-Gitlab-Token header is missing".into())
            })?;
            if !bool::from(token.as_bytes().ct_eq(secret.as_bytes())) {
                return Err(WebhookError::Unauthorized(
                    "X-Gitlab-Token does not match".into(),
                ));
            }
        }
    }
    let is_push = match provider {
        Provider::GitHub | Provider::Gitea => event == "push",
        Provider::GitLab => event == "Push Hook" || event == "Tag Push Hook",
    };
    if !is_push {
        return Err(WebhookError::Ignored(format!(
            "{provider:?} event {event:?} is not a push"
        )));
    }
    parse(provider, body)
}

fn header<'h>(headers: &'h HeaderMap, name: &str) -> Result<Option<&'h str>, WebhookError> {
    match headers.get(name) {
        None => Ok(None),
        Some(value) => value.to_str().map(|v| Some(v.trim())).map_err(|_| {
            WebhookError::Unauthorized(format!("the {name} header is not readable text"))
        }),
    }
}

fn check_hmac(secret: &str, body: &[u8], hex_sig: &str, name: &str) -> Result<(), WebhookError> {
    let expected = hex::decode(hex_sig)
        .map_err(|_| WebhookError::Unauthorized(format!("{name} is not hex")))?;
    let mut mac = HmacSha256::new_from_slice(secret.as_bytes())
        .map_err(|_| WebhookError::Unauthorized("the secret cannot key an HMAC".into()))?;
    mac.update(body);
    // verify_slice compares in constant time.
    mac.verify_slice(&expected)
        .map_err(|_| WebhookError::Unauthorized(format!("{name} does not match the body")))
}

fn parse(provider: Provider, body: &[u8]) -> Result<Push, WebhookError> {
    let payload: Value = serde_json::from_slice(body)
        .map_err(|e| WebhookError::BadPayload(format!("the body is not JSON: {e}")))?;
    let text = |v: &Value, key: &str| v.get(key).and_then(Value::as_str).map(str::to_string);
    let git_ref = text(&payload, "ref")
        .ok_or_else(|| WebhookError::BadPayload("no \"ref\" string in the payload".into()))?;
    let after = text(&payload, "after")
        .ok_or_else(|| WebhookError::BadPayload("no \"after\" string in the payload".into()))?;
    if after.is_empty() || !after.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(WebhookError::BadPayload(format!(
            "\"after\" is not a commit sha: {after:?}"
        )));
    }
    let deleted = after.bytes().all(|b| b == b'0')
        || payload.get("deleted").and_then(Value::as_bool) == Some(true);
    let branch = git_ref.strip_prefix("refs/heads/").map(str::to_string);

    let mut urls: Vec<String> = Vec::new();
    let mut add = |v: Option<&Value>, keys: &[&str]| {
        let Some(v) = v else { return };
        for key in keys {
            if let Some(url) = v.get(*key).and_then(Value::as_str)
                && !url.is_empty()
                && !urls.iter().any(|u| u == url)
            {
                urls.push(url.to_string());
            }
        }
    };
    let repository_name = match provider {
        Provider::GitHub | Provider::Gitea => {
            let repo = payload.get("repository").ok_or_else(|| {
                WebhookError::BadPayload("no \"repository\" object in the payload".into())
            })?;
            add(
                Some(repo),
                &["clone_url", "ssh_url", "html_url", "git_url", "url"],
            );
            text(repo, "full_name")
        }
        Provider::GitLab => {
            let project = payload.get("project");
            let repo = payload.get("repository");
            if project.is_none() && repo.is_none() {
                return Err(WebhookError::BadPayload(
                    "no \"project\" or \"repository\" object in the payload".into(),
                ));
            }
            add(
                project,
                &[
                    "git_http_url",
                    "git_ssh_url",
                    "web_url",
                    "http_url",
                    "ssh_url",
                    "url",
                ],
            );
            add(repo, &["git_http_url", "git_ssh_url", "homepage", "url"]);
            project.and_then(|p| text(p, "path_with_namespace"))
        }
    };
    Ok(Push {
        provider,
        repository_urls: urls,
        repository_name,
        branch,
        after,
        deleted,
    })
}
