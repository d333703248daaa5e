//! What the control APIs accept for the actions that change what runs:
//! the bodies of deploy and rollback, shared by `lastmile up`'s control API,
//! the server's API and the controller.

use serde::Deserialize;

/// `POST /api/v1/deploy`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeployRequest {
    /// Environment name.
    pub environment: String,
    /// Release id (or unique prefix) to deploy; the newest release when
    /// absent.
    #[serde(default, deserialize_with = "present_text")]
    pub release: Option<String>,
    /// Artifact to make a release of first (from a `lastmile run` the CLI
    /// just did), with the run that built it.
    #[serde(default)]
    pub artifact: Option<ArtifactRef>,
    /// Who approves it, for environments with `gates.approval: required`.
    #[serde(default, deserialize_with = "present_text")]
    pub approved_by: Option<String>,
}

/// An artifact and the run that produced it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ArtifactRef {
    /// Content address.
    pub id: String,
    /// Pipeline run id.
    pub run_id: i64,
}

/// `POST /api/v1/rollback`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RollbackRequest {
    /// Environment name.
    pub environment: String,
    /// Release to go back to; the previous one when absent.
    #[serde(default, deserialize_with = "present_text")]
    pub to: Option<String>,
}

/// An optional text field that, when present, is a non-empty string: the
/// document types these fields as strings of at least one character, and
/// an empty release prefix would match every release. A missing field is
/// `None` (through `#[serde(default)]`); `null` and `""` are refused.
pub(crate) fn present_text<'de, D>(deserializer: D) -> Result<Option<String>, D::Error>
where
    D: serde::Deserializer<'de>,
{
    use serde::de::Error;
    match Option::<String>::deserialize(deserializer)? {
        None => Err(D::Error::custom(
            "null is not a value here; leave the field out to use its default, or give a non-empty string",
        )),
        Some(text) if text.trim().is_empty() => Err(D::Error::custom(
            "an empty string is not a value here; leave the field out to use its default, or give a non-empty string",
        )),
        Some(text) => Ok(Some(text)),
    }
}
