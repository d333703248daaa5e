//! Conditions compiled for evaluation: the operator resolved, the value
//! pre-parsed, no allocation when tested.
//!
//! A condition on an absent attribute, or on one of a type the operator
//! does not compare (a number for `starts_with`, text that is not a version
//! for `semver_*`), is false rather than an error: a context that lacks
//! what a rule asks about simply does not match it.

use std::cmp::Ordering;

use lastmile_spec::{Condition, Operator, SemVer};

use crate::context::{Context, Seen};

/// One compiled `{ attribute, op, value }`.
#[derive(Debug, Clone)]
pub(crate) struct Test {
    attribute: String,
    check: Check,
}

#[derive(Debug, Clone)]
enum Check {
    Equals(Scalar),
    NotEquals(Scalar),
    In(Vec<Scalar>),
    NotIn(Vec<Scalar>),
    StartsWith(String),
    EndsWith(String),
    Contains(String),
    /// The attribute compared with the number is one of these orderings.
    Number(&'static [Ordering], f64),
    /// The attribute's version compared with this one is one of these orderings.
    Version(&'static [Ordering], SemVer),
    /// A value the operator cannot use (only from a spec that skipped
    /// validation): never true.
    Never,
}

/// A comparable JSON scalar.
#[derive(Debug, Clone, PartialEq)]
enum Scalar {
    Text(String),
    Number(f64),
    Bool(bool),
}

const LESS: &[Ordering] = &[Ordering::Less];
const LESS_OR_EQUAL: &[Ordering] = &[Ordering::Less, Ordering::Equal];
const EQUAL: &[Ordering] = &[Ordering::Equal];
const GREATER: &[Ordering] = &[Ordering::Greater];
const GREATER_OR_EQUAL: &[Ordering] = &[Ordering::Greater, Ordering::Equal];

impl Test {
    pub(crate) fn compile(condition: &Condition) -> Test {
        let value = &condition.value;
        let text = || value.as_str().map(str::to_owned);
        let check = match condition.op {
            Operator::Equals => scalar(value).map(Check::Equals),
            Operator::NotEquals => scalar(value).map(Check::NotEquals),
            Operator::In => list(value).map(Check::In),
            Operator::NotIn => list(value).map(Check::NotIn),
            Operator::StartsWith => text().map(Check::StartsWith),
            Operator::EndsWith => text().map(Check::EndsWith),
            Operator::Contains => text().map(Check::Contains),
            Operator::Lt => value.as_f64().map(|number| Check::Number(LESS, number)),
            Operator::Lte => value
                .as_f64()
                .map(|number| Check::Number(LESS_OR_EQUAL, number)),
            Operator::Gt => value.as_f64().map(|number| Check::Number(GREATER, number)),
            Operator::Gte => value
                .as_f64()
                .map(|number| Check::Number(GREATER_OR_EQUAL, number)),
            Operator::SemverEq => version(value).map(|version| Check::Version(EQUAL, version)),
            Operator::SemverLt => version(value).map(|version| Check::Version(LESS, version)),
            Operator::SemverLte => {
                version(value).map(|version| Check::Version(LESS_OR_EQUAL, version))
            }
            Operator::SemverGt => version(value).map(|version| Check::Version(GREATER, version)),
            Operator::SemverGte => {
                version(value).map(|version| Check::Version(GREATER_OR_EQUAL, version))
            }
        };
        Test {
            attribute: condition.attribute.clone(),
            check: check.unwrap_or(Check::Never),
        }
    }

    /// Whether the context passes this test.
    pub(crate) fn matches(&self, context: &Context) -> bool {
        let Some(seen) = context.attribute(&self.attribute) else {
            return false;
        };
        match &self.check {
            Check::Equals(expected) => same_type(seen, expected) && equal(seen, expected),
            Check::NotEquals(expected) => same_type(seen, expected) && !equal(seen, expected),
            Check::In(list) => list.iter().any(|expected| equal(seen, expected)),
            Check::NotIn(list) => {
                list.iter().any(|expected| same_type(seen, expected))
                    && !list.iter().any(|expected| equal(seen, expected))
            }
            Check::StartsWith(prefix) => {
                matches!(seen, Seen::Text(text) if text.starts_with(prefix.as_str()))
            }
            Check::EndsWith(suffix) => {
                matches!(seen, Seen::Text(text) if text.ends_with(suffix.as_str()))
            }
            Check::Contains(part) => {
                matches!(seen, Seen::Text(text) if text.contains(part.as_str()))
            }
            Check::Number(accepted, number) => match seen {
                Seen::Number(value) => value
                    .partial_cmp(number)
                    .is_some_and(|ordering| accepted.contains(&ordering)),
                _ => false,
            },
            Check::Version(accepted, expected) => match seen {
                Seen::Text(text) => SemVer::parse(text)
                    .is_ok_and(|version| accepted.contains(&version.cmp(expected))),
                _ => false,
            },
            Check::Never => false,
        }
    }
}

fn scalar(value: &serde_json::Value) -> Option<Scalar> {
    match value {
        serde_json::Value::String(text) => Some(Scalar::Text(text.clone())),
        serde_json::Value::Number(number) => number.as_f64().map(Scalar::Number),
        serde_json::Value::Bool(value) => Some(Scalar::Bool(*value)),
        _ => None,
    }
}

fn list(value: &serde_json::Value) -> Option<Vec<Scalar>> {
    value.as_array()?.iter().map(scalar).collect()
}

fn version(value: &serde_json::Value) -> Option<SemVer> {
    SemVer::parse(value.as_str()?).ok()
}

fn same_type(seen: Seen<'_>, expected: &Scalar) -> bool {
    matches!(
        (seen, expected),
        (Seen::Text(_), Scalar::Text(_))
            | (Seen::Number(_), Scalar::Number(_))
            | (Seen::Bool(_), Scalar::Bool(_))
    )
}

fn equal(seen: Seen<'_>, expected: &Scalar) -> bool {
    match (seen, expected) {
        (Seen::Text(text), Scalar::Text(expected)) => text == expected,
        (Seen::Number(number), Scalar::Number(expected)) => number == *expected,
        (Seen::Bool(value), Scalar::Bool(expected)) => value == *expected,
        _ => false,
    }
}
