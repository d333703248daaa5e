use serde_json::Value;

use crate::transport::checked_https_url;

/// The resources an ACME server publishes at its directory URL (RFC 8555 §7.1.1), the part
/// this client uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Directory {
    pub(crate) new_nonce: String,
    pub(crate) new_account: String,
    pub(crate) new_order: String,
    pub(crate) external_account_required: bool,
}

impl Directory {
    /// Reads a directory document; the error says which part is missing or wrong.
    pub(crate) fn parse(body: &[u8]) -> Result<Directory, String> {
        let value: Value =
            serde_json::from_slice(body).map_err(|error| format!("not JSON: {error}"))?;
        let object = value
            .as_object()
            .ok_or_else(|| "not a JSON object".to_string())?;
        let url = |name: &str| -> Result<String, String> {
            let text = object
                .get(name)
                .and_then(Value::as_str)
                .ok_or_else(|| format!("no `{name}` URL"))?;
            checked_https_url(text).map_err(|reason| format!("`{name}`: {reason}"))
        };
        Ok(Directory {
            new_nonce: url("newNonce")?,
            new_account: url("newAccount")?,
            new_order: url("newOrder")?,
            external_account_required: object
                .get("meta")
                .and_then(|meta| meta.get("externalAccountRequired"))
                .and_then(Value::as_bool)
                .unwrap_or(false),
        })
    }
}
