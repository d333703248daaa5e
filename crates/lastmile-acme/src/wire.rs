//! The ACME objects this client reads (RFC 8555 §7.1). Unknown fields are ignored, missing
//! optional ones default, and an unknown status is `Unknown` rather than an error.

use serde::Deserialize;
use serde_json::Value;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Status {
    Pending,
    Ready,
    Processing,
    Valid,
    Invalid,
    Revoked,
    Deactivated,
    Expired,
    #[default]
    #[serde(other)]
    Unknown,
}

impl Status {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Status::Pending => "pending",
            Status::Ready => "ready",
            Status::Processing => "processing",
            Status::Valid => "valid",
            Status::Invalid => "invalid",
            Status::Revoked => "revoked",
            Status::Deactivated => "deactivated",
            Status::Expired => "expired",
            Status::Unknown => "unknown",
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Order {
    #[serde(default)]
    pub(crate) status: Status,
    #[serde(default)]
    pub(crate) authorizations: Vec<String>,
    #[serde(default)]
    pub(crate) finalize: String,
    #[serde(default)]
    pub(crate) certificate: Option<String>,
    #[serde(default)]
    pub(crate) error: Option<Value>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct Authorization {
    #[serde(default)]
    pub(crate) identifier: Identifier,
    #[serde(default)]
    pub(crate) status: Status,
    #[serde(default)]
    pub(crate) challenges: Vec<Challenge>,
}

#[derive(Debug, Default, Deserialize)]
pub(crate) struct Identifier {
    #[serde(default)]
    pub(crate) value: String,
}

#[derive(Debug, Deserialize)]
pub(crate) struct Challenge {
    #[serde(rename = "type", default)]
    pub(crate) kind: String,
    #[serde(default)]
    pub(crate) url: String,
    #[serde(default)]
    pub(crate) token: String,
    #[serde(default)]
    pub(crate) error: Option<Value>,
}

/// Whether `token` is safe to put in a URL path and a store key: base64url characters only
/// (RFC 8555 §8.3 requires at least 128 bits of entropy in that alphabet).
pub(crate) fn is_valid_token(token: &str) -> bool {
    (16..=256).contains(&token.len())
        && token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}
