//! A YAML document as a tree of nodes, each with the place it came from.
//!
//! The spec is read in two passes: serde-saphyr turns the text into this
//! tree (syntax errors stop here), then the reader walks the tree and checks
//! every key and value itself. Doing the schema by hand instead of with
//! `#[derive(Deserialize)]` is what lets one run report every problem, name
//! unknown keys with a suggestion, and point at the exact token.

use std::fmt;

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_saphyr::Spanned;

/// Where a node sits in the source: 1-based line and column, byte range.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Place {
    /// 1-based line.
    pub(crate) line: usize,
    /// 1-based column, in characters.
    pub(crate) column: usize,
    /// Byte offset of the node's first character.
    pub(crate) offset: usize,
    /// Length in bytes of the node's text (at least 1 when rendered).
    pub(crate) length: usize,
}

/// One YAML node.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Value {
    /// `~`, `null` or nothing.
    Null,
    /// `true` / `false`.
    Bool(bool),
    /// An integer written without quotes.
    Integer(i128),
    /// A float written without quotes.
    Float(f64),
    /// Any string (quoted, block, or plain text that is not a number/bool).
    Text(String),
    /// A sequence.
    List(Vec<Node>),
    /// A mapping, in file order, duplicates kept so the reader can report them.
    Map(Vec<(Node, Node)>),
}

/// A value and where it was written.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Node {
    /// The value.
    pub(crate) value: Value,
    /// Where it was written.
    pub(crate) place: Place,
}

impl Value {
    /// A short name of the value's kind, for "expected X, found Y" messages.
    pub(crate) fn kind(&self) -> &'static str {
        match self {
            Value::Null => "nothing (null)",
            Value::Bool(_) => "a boolean",
            Value::Integer(_) => "a number",
            Value::Float(_) => "a number",
            Value::Text(_) => "a string",
            Value::List(_) => "a list",
            Value::Map(_) => "a map",
        }
    }
}

/// Parses `source` into a node tree, letting the reader judge duplicates.
pub(crate) fn parse_tree(source: &str) -> Result<Node, serde_saphyr::Error> {
    let options = serde_saphyr::options! {
        with_snippet: false,
        strict_booleans: true,
        leading_zero_numbers_as_strings: true,
        duplicate_keys: serde_saphyr::DuplicateKeyPolicy::PassThrough,
        // `.nan` and `.inf` are valid YAML; the reader names them as wrong
        // values instead of the parser calling them a syntax error.
        non_finite_float_policy: serde_saphyr::NonFiniteFloatPolicy::PassThrough,
    };
    let root: Spanned<RawValue> = serde_saphyr::from_str_with_options(source, options)?;
    Ok(into_node(root, source))
}

/// The serde-facing twin of [`Value`], holding spanned children.
#[derive(Debug)]
enum RawValue {
    Null,
    Bool(bool),
    Integer(i128),
    Float(f64),
    Text(String),
    List(Vec<Spanned<RawValue>>),
    Map(Vec<(Spanned<RawValue>, Spanned<RawValue>)>),
}

fn into_node(raw: Spanned<RawValue>, source: &str) -> Node {
    let location = raw.referenced;
    let offset = location
        .span()
        .byte_offset()
        .and_then(|offset| usize::try_from(offset).ok())
        .unwrap_or(0)
        .min(source.len());
    let length = location
        .span()
        .byte_len()
        .and_then(|length| usize::try_from(length).ok())
        .unwrap_or(0)
        .min(source.len() - offset);
    let place = Place {
        line: usize::try_from(location.line()).unwrap_or(0),
        column: usize::try_from(location.column()).unwrap_or(0),
        offset,
        length,
    };
    let value = match raw.value {
        RawValue::Null => Value::Null,
        RawValue::Bool(value) => Value::Bool(value),
        RawValue::Integer(value) => Value::Integer(value),
        RawValue::Float(value) => Value::Float(value),
        RawValue::Text(value) => Value::Text(value),
        RawValue::List(items) => Value::List(
            items
                .into_iter()
                .map(|item| into_node(item, source))
                .collect(),
        ),
        RawValue::Map(entries) => Value::Map(
            entries
                .into_iter()
                .map(|(key, value)| (into_node(key, source), into_node(value, source)))
                .collect(),
        ),
    };
    Node { value, place }
}

impl<'de> Deserialize<'de> for RawValue {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(RawValueVisitor)
    }
}

struct RawValueVisitor;

impl<'de> Visitor<'de> for RawValueVisitor {
    type Value = RawValue;

    fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("any YAML value")
    }

    fn visit_unit<E: de::Error>(self) -> Result<RawValue, E> {
        Ok(RawValue::Null)
    }

    fn visit_none<E: de::Error>(self) -> Result<RawValue, E> {
        Ok(RawValue::Null)
    }

    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<RawValue, D::Error> {
        RawValue::deserialize(deserializer)
    }

    fn visit_bool<E: de::Error>(self, value: bool) -> Result<RawValue, E> {
        Ok(RawValue::Bool(value))
    }

    fn visit_i64<E: de::Error>(self, value: i64) -> Result<RawValue, E> {
        Ok(RawValue::Integer(i128::from(value)))
    }

    fn visit_u64<E: de::Error>(self, value: u64) -> Result<RawValue, E> {
        Ok(RawValue::Integer(i128::from(value)))
    }

    fn visit_i128<E: de::Error>(self, value: i128) -> Result<RawValue, E> {
        Ok(RawValue::Integer(value))
    }

    fn visit_u128<E: de::Error>(self, value: u128) -> Result<RawValue, E> {
        Ok(RawValue::Integer(
            i128::try_from(value).unwrap_or(i128::MAX),
        ))
    }

    fn visit_f64<E: de::Error>(self, value: f64) -> Result<RawValue, E> {
        Ok(RawValue::Float(value))
    }

    fn visit_str<E: de::Error>(self, value: &str) -> Result<RawValue, E> {
        Ok(RawValue::Text(value.to_owned()))
    }

    fn visit_string<E: de::Error>(self, value: String) -> Result<RawValue, E> {
        Ok(RawValue::Text(value))
    }

    fn visit_bytes<E: de::Error>(self, value: &[u8]) -> Result<RawValue, E> {
        Ok(RawValue::Text(String::from_utf8_lossy(value).into_owned()))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut sequence: A) -> Result<RawValue, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = sequence.next_element::<Spanned<RawValue>>()? {
            items.push(item);
        }
        Ok(RawValue::List(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<RawValue, A::Error> {
        let mut entries = Vec::new();
        while let Some(key) = map.next_key::<Spanned<RawValue>>()? {
            let value = map.next_value::<Spanned<RawValue>>()?;
            entries.push((key, value));
        }
        Ok(RawValue::Map(entries))
    }
}
