//! A flag's answer for one context, shaped like OFREP's success response.

use std::collections::BTreeMap;

use serde::Serialize;

/// The value served, which variant it is and why.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Evaluation {
    /// The flag's key.
    pub key: String,
    /// The variant's value (of the flag's type).
    pub value: serde_json::Value,
    /// The variant's name.
    pub variant: String,
    /// Why this variant.
    pub reason: Reason,
    /// Extra facts: `rule` (1-based) when a targeting rule decided.
    pub metadata: BTreeMap<String, serde_json::Value>,
}

/// Why a variant was served (OFREP reasons).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Reason {
    /// The flag has no rules and no rollout: everyone gets the default.
    Static,
    /// A rule with a fixed variant matched.
    TargetingMatch,
    /// A rollout placed the targeting key in a share.
    Split,
    /// The flag is switched off: the default variant.
    Disabled,
    /// No rule matched and there is no rollout: the default variant.
    Default,
}

impl Reason {
    /// The OFREP spelling, e.g. `TARGETING_MATCH`.
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Static => "STATIC",
            Reason::TargetingMatch => "TARGETING_MATCH",
            Reason::Split => "SPLIT",
            Reason::Disabled => "DISABLED",
            Reason::Default => "DEFAULT",
        }
    }
}

impl std::fmt::Display for Reason {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str(self.as_str())
    }
}
