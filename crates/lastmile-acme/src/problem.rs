use std::fmt;

use serde_json::Value;

/// The prefix of every ACME error type (RFC 8555 §6.7).
const ACME_ERROR_PREFIX: &str = "urn:ietf:params:acme:error:";
/// Longest `type` or `detail` kept from a server; the rest is cut so a hostile or broken server
/// cannot flood logs.
const MAX_TEXT_CHARS: usize = 1024;
/// Most subproblems kept from one problem document.
const MAX_SUBPROBLEMS: usize = 32;

/// An ACME problem document (RFC 7807, RFC 8555 §6.7): why the server refused a request.
///
/// Text fields are taken from the server as-is except that control characters are replaced by
/// spaces and each field is cut at 1024 characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The problem's `type`, e.g. `urn:ietf:params:acme:error:connection`; `about:blank` when
    /// the server sent none.
    pub kind: String,
    /// The human-readable `detail`; empty when the server sent none.
    pub detail: String,
    /// The HTTP status the server put in the document, if any.
    pub status: Option<u16>,
    /// Per-identifier problems (RFC 8555 §6.7.1), e.g. one for each host that failed.
    pub subproblems: Vec<Subproblem>,
}

/// One identifier's share of a [`Problem`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subproblem {
    /// The subproblem's `type`.
    pub kind: String,
    /// The subproblem's `detail`.
    pub detail: String,
    /// The identifier (host name) it is about, if the server said.
    pub identifier: Option<String>,
}

impl Problem {
    /// Reads a problem document from a response body; `None` when the body is not a JSON object.
    pub(crate) fn parse(body: &[u8]) -> Option<Problem> {
        let value: Value = serde_json::from_slice(body).ok()?;
        Problem::from_value(&value)
    }

    /// Reads a problem document from JSON already parsed (e.g. a challenge's `error` field).
    pub(crate) fn from_value(value: &Value) -> Option<Problem> {
        let object = value.as_object()?;
        let subproblems = object
            .get("subproblems")
            .and_then(Value::as_array)
            .map(|items| {
                items
                    .iter()
                    .filter_map(Value::as_object)
                    .take(MAX_SUBPROBLEMS)
                    .map(|sub| Subproblem {
                        kind: text(sub.get("type")).unwrap_or_else(|| "about:blank".to_string()),
                        detail: text(sub.get("detail")).unwrap_or_default(),
                        identifier: sub
                            .get("identifier")
                            .and_then(|identifier| text(identifier.get("value"))),
                    })
                    .collect()
            })
            .unwrap_or_default();
        Some(Problem {
            kind: text(object.get("type")).unwrap_or_else(|| "about:blank".to_string()),
            detail: text(object.get("detail")).unwrap_or_default(),
            status: object
                .get("status")
                .and_then(Value::as_u64)
                .and_then(|status| u16::try_from(status).ok()),
            subproblems,
        })
    }

    /// A problem made by this client for an answer that carried no problem document.
    pub(crate) fn without_document(status: u16) -> Problem {
        Problem {
            status: Some(status),
            ..Problem::unexplained(format!("HTTP status {status} without a problem document"))
        }
    }

    /// A problem made by this client where the server gave no reason.
    pub(crate) fn unexplained(detail: String) -> Problem {
        Problem {
            kind: "about:blank".to_string(),
            detail,
            status: None,
            subproblems: Vec::new(),
        }
    }

    /// Whether this is the ACME error `short`, e.g. `is("badNonce")`.
    pub fn is(&self, short: &str) -> bool {
        self.short_kind() == short
    }

    /// The type without the `urn:ietf:params:acme:error:` prefix, e.g. `connection`.
    pub fn short_kind(&self) -> &str {
        short_kind(&self.kind)
    }
}

fn short_kind(kind: &str) -> &str {
    kind.strip_prefix(ACME_ERROR_PREFIX).unwrap_or(kind)
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.detail.is_empty() {
            write!(f, "{}", self.short_kind())?;
        } else {
            write!(f, "{} ({})", self.detail, self.short_kind())?;
        }
        for sub in &self.subproblems {
            let identifier = sub.identifier.as_deref().unwrap_or("(no identifier)");
            write!(
                f,
                "; {identifier}: {} ({})",
                sub.detail,
                short_kind(&sub.kind)
            )?;
        }
        Ok(())
    }
}

/// A string field, cleaned of control characters and cut to [`MAX_TEXT_CHARS`].
fn text(value: Option<&Value>) -> Option<String> {
    let raw = value?.as_str()?;
    let mut cleaned: String = raw
        .chars()
        .take(MAX_TEXT_CHARS)
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if raw.chars().nth(MAX_TEXT_CHARS).is_some() {
        cleaned.push('…');
    }
    Some(cleaned)
}

#[cfg(test)]
mod tests;
