//! The evaluation context: who is asking, as OFREP sends it.

use std::collections::BTreeMap;

use crate::error::EvaluationError;

/// The attribute name a condition uses to test the targeting key itself.
pub const TARGETING_KEY: &str = "targetingKey";

/// Who a flag is evaluated for: OFREP's context object, `targetingKey`
/// split off from the other attributes.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Context {
    /// The stable user key that rollouts hash (OFREP `targetingKey`).
    pub targeting_key: Option<String>,
    /// Every other attribute, by name.
    pub attributes: BTreeMap<String, serde_json::Value>,
}

impl Context {
    /// An empty context: no targeting key, no attributes.
    pub fn new() -> Self {
        Context::default()
    }

    /// Sets the targeting key.
    pub fn with_key(mut self, key: impl Into<String>) -> Self {
        self.targeting_key = Some(key.into());
        self
    }

    /// Adds one attribute.
    pub fn with(mut self, name: impl Into<String>, value: impl Into<serde_json::Value>) -> Self {
        self.attributes.insert(name.into(), value.into());
        self
    }

    /// Reads OFREP's `context` JSON: an object (or null/absent, meaning
    /// empty) whose `targetingKey`, if present, is a string.
    pub fn from_json(value: &serde_json::Value) -> Result<Context, EvaluationError> {
        let object = match value {
            serde_json::Value::Null => return Ok(Context::default()),
            serde_json::Value::Object(object) => object,
            other => {
                return Err(EvaluationError::InvalidContext(format!(
                    "the context must be a JSON object, found {}",
                    json_kind(other)
                )));
            }
        };
        let mut context = Context::default();
        for (name, value) in object {
            if name == TARGETING_KEY {
                match value {
                    serde_json::Value::String(key) => context.targeting_key = Some(key.clone()),
                    serde_json::Value::Null => {}
                    other => {
                        return Err(EvaluationError::InvalidContext(format!(
                            "`targetingKey` must be a string, found {}",
                            json_kind(other)
                        )));
                    }
                }
            } else {
                context.attributes.insert(name.clone(), value.clone());
            }
        }
        Ok(context)
    }

    /// The value a condition on `name` sees (`targetingKey` is the key).
    pub(crate) fn attribute(&self, name: &str) -> Option<Seen<'_>> {
        if name == TARGETING_KEY {
            return self.targeting_key.as_deref().map(Seen::Text);
        }
        self.attributes.get(name).map(|value| match value {
            serde_json::Value::String(text) => Seen::Text(text),
            serde_json::Value::Number(number) => number.as_f64().map_or(Seen::Other, Seen::Number),
            serde_json::Value::Bool(value) => Seen::Bool(*value),
            serde_json::Value::Null
            | serde_json::Value::Array(_)
            | serde_json::Value::Object(_) => Seen::Other,
        })
    }
}

/// An attribute as conditions compare it, borrowed from the context.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Seen<'context> {
    Text(&'context str),
    Number(f64),
    Bool(bool),
    /// Null, a list or an object: no operator matches it.
    Other,
}

fn json_kind(value: &serde_json::Value) -> &'static str {
    match value {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "an array",
        serde_json::Value::Object(_) => "an object",
    }
}
