//! `segments:` and `flags:`: conditions, variants, rules and rollouts.

use std::collections::BTreeMap;

use super::{Problem, Reader};
use crate::model::{
    Condition, Environment, Flag, FlagRule, FlagType, Operator, Rollout, Segment, Serve, Strategy,
    Variant,
};
use crate::node::{Node, Place, Value};
use crate::scalar::{self, did_you_mean};
use crate::semver::SemVer;

/// Keys of one flag.
const FLAG_KEYS: &[&str] = &["type", "variants", "default", "enabled", "rules", "rollout"];

/// Keys of one rule.
const RULE_KEYS: &[&str] = &["when", "segment", "variant", "rollout"];

/// Keys of one condition.
const CONDITION_KEYS: &[&str] = &["attribute", "op", "value"];

/// Flag types as written.
const FLAG_TYPES: &[&str] = &["boolean", "string", "number", "object"];

/// Rollout percentages within this of 100 count as 100 (decimal shares such
/// as 33.3 + 33.3 + 33.4 do not add up exactly in binary).
const SUM_TOLERANCE: f64 = 1e-6;

/// What flags may refer to: segment names and environments, when those
/// sections read cleanly (otherwise their own errors already fail the spec).
#[derive(Debug)]
pub(super) struct Targets<'spec> {
    /// Names of the segments, or `None` if `segments` had errors.
    pub(super) segments: Option<Vec<String>>,
    /// The environments, or `None` if `environments` had errors.
    pub(super) environments: Option<&'spec [Environment]>,
}

pub(super) fn read_segments(reader: &mut Reader<'_>, node: &Node) -> Option<Vec<Segment>> {
    let entries = reader.entries(node, "`segments`")?;
    let mut segments = Vec::with_capacity(entries.len());
    let mut first_lines: BTreeMap<String, usize> = BTreeMap::new();
    let mut complete = true;
    for (name, key, value) in entries {
        if !unique_name(reader, &mut first_lines, &name, key.place, "segment") {
            complete = false;
            continue;
        }
        let what = format!("segments.{name}");
        match conditions(reader, value, &what) {
            Some(conditions) if conditions.is_empty() => {
                complete = false;
                reader.error(
                    value.place,
                    Problem::new(
                        "spec::empty",
                        format!("segment `{name}` has no conditions, so it would match everyone"),
                        "no conditions",
                    )
                    .hint("list at least one condition, e.g. `- { attribute: email, op: ends_with, value: \"@example.com\" }`"),
                );
            }
            Some(conditions) => segments.push(Segment { name, conditions }),
            None => complete = false,
        }
    }
    complete.then_some(segments)
}

/// Checks a segment or flag name: valid characters and not defined before.
fn unique_name(
    reader: &mut Reader<'_>,
    first_lines: &mut BTreeMap<String, usize>,
    name: &str,
    place: Place,
    what: &str,
) -> bool {
    if !scalar::is_step_name(name) {
        reader.error(
            place,
            Problem::new(
                "spec::invalid-name",
                format!("`{name}` is not a valid {what} name"),
                "invalid name",
            )
            .hint(format!(
                "{what} names use letters, digits, `-`, `_` and `.` only, e.g. `new-checkout`"
            )),
        );
        return false;
    }
    if let Some(first_line) = first_lines.get(name) {
        reader.error(
            place,
            Problem::new(
                "spec::duplicate-key",
                format!("{what} `{name}` is defined twice (first on line {first_line})"),
                "defined again",
            )
            .hint("merge the two definitions or rename one"),
        );
        return false;
    }
    first_lines.insert(name.to_owned(), place.line);
    true
}

/// A list of `{ attribute, op, value }` maps (may be empty; callers decide).
fn conditions(reader: &mut Reader<'_>, node: &Node, what: &str) -> Option<Vec<Condition>> {
    let items = reader.list(
        node,
        &format!("`{what}` must be a list of conditions"),
        "write e.g. `- { attribute: country, op: in, value: [SE, NO] }`",
    )?;
    let mut conditions = Vec::with_capacity(items.len());
    let mut complete = true;
    for item in items {
        match condition(reader, item, what) {
            Some(condition) => conditions.push(condition),
            None => complete = false,
        }
    }
    complete.then_some(conditions)
}

fn condition(reader: &mut Reader<'_>, node: &Node, what: &str) -> Option<Condition> {
    let fields = reader.fields(
        node,
        &format!("a condition in `{what}`"),
        CONDITION_KEYS,
        &[
            ("attribute", "attribute: country"),
            ("op", "op: equals"),
            ("value", "value: SE"),
        ],
    )?;
    let attribute = fields.get("attribute").and_then(|value| {
        reader.non_empty_text(
            value,
            "attribute",
            "name the context attribute to test, e.g. `attribute: email`",
        )
    });
    let names: Vec<&'static str> = Operator::ALL.iter().map(|op| op.name()).collect();
    let op = fields
        .get("op")
        .and_then(|value| reader.keyword(value, "operator", "spec::unknown-operator", &names))
        .and_then(Operator::from_name);
    let value = match (op, fields.get("value")) {
        (Some(op), Some(value)) => condition_value(reader, op, value),
        _ => None,
    };
    Some(Condition {
        attribute: attribute?,
        op: op?,
        value: value?,
    })
}

/// A condition's value, checked against what `op` compares.
fn condition_value(
    reader: &mut Reader<'_>,
    op: Operator,
    node: &Node,
) -> Option<serde_json::Value> {
    let name = op.name();
    match op {
        Operator::Equals | Operator::NotEquals => {
            let value = json_scalar(node);
            if value.is_none() {
                reader.error(
                    node.place,
                    Problem::new(
                        "spec::wrong-type",
                        format!(
                            "`{name}` compares with a string, number or boolean, found {}",
                            node.value.kind()
                        ),
                        "expected one value",
                    )
                    .hint(format!(
                        "write one value, e.g. `value: SE`; to test several use `{}`",
                        if op == Operator::Equals {
                            "in"
                        } else {
                            "not_in"
                        }
                    )),
                );
            }
            value
        }
        Operator::In | Operator::NotIn => {
            let items = reader.list(
                node,
                &format!("`{name}` needs a list of values"),
                "write e.g. `value: [SE, NO]`",
            )?;
            let mut values = Vec::with_capacity(items.len());
            let mut complete = true;
            for item in items {
                match json_scalar(item) {
                    Some(value) => values.push(value),
                    None => {
                        complete = false;
                        reader.error(
                            item.place,
                            Problem::new(
                                "spec::wrong-type",
                                format!(
                                    "the list of `{name}` holds strings, numbers or booleans, found {}",
                                    item.value.kind()
                                ),
                                "not a single value",
                            )
                            .hint("write plain values, e.g. `value: [SE, NO]`"),
                        );
                    }
                }
            }
            complete.then_some(serde_json::Value::Array(values))
        }
        Operator::StartsWith | Operator::EndsWith | Operator::Contains => {
            reader.text(node, name).map(serde_json::Value::String)
        }
        Operator::Lt | Operator::Lte | Operator::Gt | Operator::Gte => {
            let number = match &node.value {
                Value::Integer(_) | Value::Float(_) => json_scalar(node),
                _ => None,
            };
            if number.is_none() {
                reader.error(
                    node.place,
                    Problem::new(
                        "spec::wrong-type",
                        format!("`{name}` compares numbers, found {}", node.value.kind()),
                        "expected a number",
                    )
                    .hint(format!(
                        "write a number without quotes, e.g. `value: 18`; compare versions with `semver_{name}`"
                    )),
                );
            }
            number
        }
        Operator::SemverEq
        | Operator::SemverLt
        | Operator::SemverLte
        | Operator::SemverGt
        | Operator::SemverGte => {
            let text = reader.text(node, name)?;
            match SemVer::parse(&text) {
                Ok(_) => Some(serde_json::Value::String(text)),
                Err(message) => {
                    reader.error(
                        node.place,
                        Problem::new(
                            "spec::invalid-version",
                            format!("`{name}` needs a semantic version: {message}"),
                            "not a version",
                        )
                        .hint(
                            "write MAJOR.MINOR.PATCH in quotes, e.g. \"2.1.0\" or \"2.1.0-beta.1\"",
                        ),
                    );
                    None
                }
            }
        }
    }
}

/// A YAML scalar as JSON; `None` for null, lists, maps and non-finite floats.
fn json_scalar(node: &Node) -> Option<serde_json::Value> {
    match &node.value {
        Value::Bool(value) => Some(serde_json::Value::Bool(*value)),
        Value::Integer(value) => Some(integer_json(*value)),
        Value::Float(value) => serde_json::Number::from_f64(*value).map(serde_json::Value::Number),
        Value::Text(text) => Some(serde_json::Value::String(text.clone())),
        Value::Null | Value::List(_) | Value::Map(_) => None,
    }
}

fn integer_json(value: i128) -> serde_json::Value {
    if let Ok(value) = i64::try_from(value) {
        serde_json::Value::from(value)
    } else if let Ok(value) = u64::try_from(value) {
        serde_json::Value::from(value)
    } else {
        serde_json::Number::from_f64(value as f64)
            .map_or(serde_json::Value::Null, serde_json::Value::Number)
    }
}

/// Any YAML value as JSON (for object variants); `Err` names the first
/// node that has no JSON form.
fn json_value(node: &Node) -> Result<serde_json::Value, &Node> {
    Ok(match &node.value {
        Value::Null => serde_json::Value::Null,
        Value::Bool(value) => serde_json::Value::Bool(*value),
        Value::Integer(value) => integer_json(*value),
        Value::Float(value) => serde_json::Number::from_f64(*value)
            .map(serde_json::Value::Number)
            .ok_or(node)?,
        Value::Text(text) => serde_json::Value::String(text.clone()),
        Value::List(items) => {
            serde_json::Value::Array(items.iter().map(json_value).collect::<Result<_, _>>()?)
        }
        Value::Map(pairs) => {
            let mut object = serde_json::Map::new();
            for (key, value) in pairs {
                let Value::Text(key) = &key.value else {
                    return Err(key);
                };
                object.insert(key.clone(), json_value(value)?);
            }
            serde_json::Value::Object(object)
        }
    })
}

pub(super) fn read_flags(
    reader: &mut Reader<'_>,
    node: &Node,
    targets: &Targets<'_>,
) -> Option<Vec<Flag>> {
    let entries = reader.entries(node, "`flags`")?;
    let mut flags = Vec::with_capacity(entries.len());
    let mut first_lines: BTreeMap<String, usize> = BTreeMap::new();
    let mut complete = true;
    for (key, key_node, value) in entries {
        if !unique_name(reader, &mut first_lines, &key, key_node.place, "flag") {
            complete = false;
            continue;
        }
        match read_flag(reader, &key, value, targets) {
            Some(flag) => flags.push(flag),
            None => complete = false,
        }
    }
    complete.then_some(flags)
}

/// `{ on: true, off: false }`, the variants of a boolean flag without any.
fn boolean_variants() -> Vec<Variant> {
    vec![
        Variant {
            name: "on".to_owned(),
            value: serde_json::Value::Bool(true),
        },
        Variant {
            name: "off".to_owned(),
            value: serde_json::Value::Bool(false),
        },
    ]
}

fn read_flag(
    reader: &mut Reader<'_>,
    key: &str,
    node: &Node,
    targets: &Targets<'_>,
) -> Option<Flag> {
    // `my-flag:` with nothing under it is a boolean flag, off, no rules.
    if node.value == Value::Null {
        return Some(Flag {
            key: key.to_owned(),
            kind: FlagType::Boolean,
            variants: boolean_variants(),
            default: "off".to_owned(),
            enabled: true,
            rules: Vec::new(),
            rollout: None,
        });
    }
    let context = format!("flag `{key}`");
    let fields = reader.fields(node, &context, FLAG_KEYS, &[])?;
    let kind = match fields.get("type") {
        Some(value) => {
            match reader.keyword(value, "flag type", "spec::unknown-value", FLAG_TYPES) {
                Some("string") => Some(FlagType::String),
                Some("number") => Some(FlagType::Number),
                Some("object") => Some(FlagType::Object),
                Some(_) => Some(FlagType::Boolean),
                None => None,
            }
        }
        None => Some(FlagType::Boolean),
    };
    let variants = match (fields.get("variants"), kind) {
        (Some(value), Some(kind)) => variants(reader, value, key, kind),
        (None, Some(FlagType::Boolean)) => Some(boolean_variants()),
        (None, Some(kind)) => {
            if !fields.misspelled("variants") {
                reader.missing(
                    node,
                    &format!("{context} (type {})", kind.name()),
                    "variants",
                    &example_variants(kind),
                );
            }
            None
        }
        (_, None) => None,
    };
    let default = match (fields.get("default"), &variants) {
        (Some(value), variants) => reader
            .text(value, "default")
            .and_then(|name| match variants {
                Some(variants) => {
                    known_variant(reader, value.place, &name, variants, &[], key, "`default`")
                        .then_some(name)
                }
                None => Some(name),
            }),
        (None, Some(variants)) if kind == Some(FlagType::Boolean) => {
            let off = variants
                .iter()
                .find(|variant| variant.value == serde_json::Value::Bool(false));
            match off {
                Some(off) => Some(off.name.clone()),
                None => {
                    reader.missing(
                        node,
                        &format!("{context} (no variant is `false`)"),
                        "default",
                        "default: off",
                    );
                    None
                }
            }
        }
        (None, Some(variants)) => {
            if !fields.misspelled("default") {
                let first = variants
                    .first()
                    .map_or("off", |variant| variant.name.as_str());
                reader.missing(node, &context, "default", &format!("default: {first}"));
            }
            None
        }
        (None, None) => None,
    };
    let enabled = match fields.get("enabled") {
        Some(value) => match value.value {
            Value::Bool(enabled) => Some(enabled),
            _ => {
                reader.wrong_type(value, "`enabled` must be true or false", "a boolean");
                None
            }
        },
        None => Some(true),
    };
    let variant_list = variants.as_deref();
    let rules = match fields.get("rules") {
        Some(value) => rules(reader, value, key, variant_list, targets),
        None => Some(Vec::new()),
    };
    let rollout = match fields.get("rollout") {
        Some(value) => rollout(reader, value, key, variant_list, targets).map(Some),
        None => Some(None),
    };
    Some(Flag {
        key: key.to_owned(),
        kind: kind?,
        variants: variants?,
        default: default?,
        enabled: enabled?,
        rules: rules?,
        rollout: rollout?,
    })
}

fn example_variants(kind: FlagType) -> String {
    match kind {
        FlagType::Boolean => "variants: { on: true, off: false }".to_owned(),
        FlagType::String => "variants: { blue: \"#00f\", green: \"#0f0\" }".to_owned(),
        FlagType::Number => "variants: { small: 10, large: 50 }".to_owned(),
        FlagType::Object => "variants: { v1: { limit: 10 }, v2: { limit: 50 } }".to_owned(),
    }
}

fn variants(
    reader: &mut Reader<'_>,
    node: &Node,
    flag: &str,
    kind: FlagType,
) -> Option<Vec<Variant>> {
    let entries = reader.entries(node, &format!("the variants of flag `{flag}`"))?;
    if entries.is_empty() {
        reader.error(
            node.place,
            Problem::new(
                "spec::empty",
                format!("flag `{flag}` has no variants"),
                "no variants",
            )
            .hint(format!(
                "name at least one value, e.g. `{}`",
                example_variants(kind)
            )),
        );
        return None;
    }
    let mut variants = Vec::with_capacity(entries.len());
    let mut first_lines: BTreeMap<String, usize> = BTreeMap::new();
    let mut complete = true;
    for (name, key, value) in entries {
        if !unique_name(reader, &mut first_lines, &name, key.place, "variant") {
            complete = false;
            continue;
        }
        let matches = matches!(
            (&value.value, kind),
            (Value::Bool(_), FlagType::Boolean)
                | (Value::Text(_), FlagType::String)
                | (Value::Integer(_) | Value::Float(_), FlagType::Number)
                | (Value::Map(_), FlagType::Object)
        );
        if !matches {
            complete = false;
            let hint = match kind {
                FlagType::Boolean => "write `true` or `false`, or set `type:` to what the variants hold".to_owned(),
                FlagType::String => "quote the value to make it text, e.g. `\"42\"`, or set `type:` to what the variants hold".to_owned(),
                FlagType::Number => "write a number without quotes, e.g. `25`, or set `type:` to what the variants hold".to_owned(),
                FlagType::Object => "write a map, e.g. `{ limit: 10 }`, or set `type:` to what the variants hold".to_owned(),
            };
            reader.error(
                value.place,
                Problem::new(
                    "spec::variant-type",
                    format!(
                        "variant `{name}` of {} flag `{flag}` is {}",
                        kind.name(),
                        value.value.kind()
                    ),
                    &format!("expected {}", kind_article(kind)),
                )
                .hint(hint),
            );
            continue;
        }
        match json_value(value) {
            Ok(json) => variants.push(Variant { name, value: json }),
            Err(bad) => {
                complete = false;
                reader.error(
                    bad.place,
                    Problem::new(
                        "spec::variant-type",
                        format!(
                            "variant `{name}` of flag `{flag}` has no JSON form here ({})",
                            bad.value.kind()
                        ),
                        "not JSON",
                    )
                    .hint("object keys must be text and numbers finite"),
                );
            }
        }
    }
    complete.then_some(variants)
}

fn kind_article(kind: FlagType) -> &'static str {
    match kind {
        FlagType::Boolean => "a boolean",
        FlagType::String => "a string",
        FlagType::Number => "a number",
        FlagType::Object => "a map",
    }
}

/// Whether `name` is one of `variants`; reports `spec::unknown-variant` if not.
///
/// `already` are the variants written beside it (a rollout's other keys):
/// suggesting one of them would only make a duplicate.
fn known_variant(
    reader: &mut Reader<'_>,
    place: Place,
    name: &str,
    variants: &[Variant],
    already: &[&str],
    flag: &str,
    what: &str,
) -> bool {
    if variants.iter().any(|variant| variant.name == name) {
        return true;
    }
    let names: Vec<&str> = variants
        .iter()
        .map(|variant| variant.name.as_str())
        .collect();
    let valid = names
        .iter()
        .map(|name| format!("`{name}`"))
        .collect::<Vec<_>>()
        .join(", ");
    let unused = names
        .iter()
        .copied()
        .filter(|candidate| !already.contains(candidate));
    let hint = match did_you_mean(name, unused) {
        Some(suggestion) => format!("did you mean `{suggestion}`? variants of `{flag}`: {valid}"),
        None => {
            format!("use one of the variants of `{flag}`: {valid}, or add `{name}` to `variants`")
        }
    };
    reader.error(
        place,
        Problem::new(
            "spec::unknown-variant",
            format!("{what} of flag `{flag}` names variant `{name}`, which the flag does not have"),
            "no such variant",
        )
        .hint(hint),
    );
    false
}

fn rules(
    reader: &mut Reader<'_>,
    node: &Node,
    flag: &str,
    variants: Option<&[Variant]>,
    targets: &Targets<'_>,
) -> Option<Vec<FlagRule>> {
    let items = reader.list(
        node,
        "`rules` must be a list of rules",
        "write e.g. `rules: [{ segment: beta-testers, variant: on }]`",
    )?;
    let mut rules = Vec::with_capacity(items.len());
    let mut complete = true;
    for (index, item) in items.iter().enumerate() {
        match rule(reader, item, flag, index + 1, variants, targets) {
            Some(rule) => rules.push(rule),
            None => complete = false,
        }
    }
    complete.then_some(rules)
}

fn rule(
    reader: &mut Reader<'_>,
    node: &Node,
    flag: &str,
    number: usize,
    variants: Option<&[Variant]>,
    targets: &Targets<'_>,
) -> Option<FlagRule> {
    let context = format!("rule {number} of flag `{flag}`");
    let fields = reader.fields(node, &context, RULE_KEYS, &[])?;
    let when = match fields.get("when") {
        Some(value) => {
            let conditions = conditions(reader, value, "when");
            if conditions.as_ref().is_some_and(Vec::is_empty) {
                reader.error(
                    value.place,
                    Problem::new(
                        "spec::empty",
                        format!("`when` of {context} is empty, so the rule would match everyone"),
                        "no conditions",
                    )
                    .hint("list conditions, or remove `when` and serve everyone through the flag's `rollout` or `default`"),
                );
                None
            } else {
                conditions
            }
        }
        None => Some(Vec::new()),
    };
    let segment = match fields.get("segment") {
        Some(value) => reader.text(value, "segment").and_then(|name| {
            let Some(known) = &targets.segments else {
                return Some(Some(name));
            };
            if known.contains(&name) {
                return Some(Some(name));
            }
            let hint = match did_you_mean(&name, known.iter().map(String::as_str)) {
                Some(suggestion) => format!("did you mean `{suggestion}`?"),
                None if known.is_empty() => "define it under the top-level `segments:`".to_owned(),
                None => format!(
                    "define it under `segments:`, or use one of: {}",
                    known
                        .iter()
                        .map(|name| format!("`{name}`"))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            };
            reader.error(
                value.place,
                Problem::new(
                    "spec::unknown-segment",
                    format!("{context} refers to segment `{name}`, which is not defined"),
                    "no such segment",
                )
                .hint(hint),
            );
            None
        }),
        None => Some(None),
    };
    if fields.get("when").is_none()
        && fields.get("segment").is_none()
        && !fields.misspelled("when")
        && !fields.misspelled("segment")
    {
        let place = match &node.value {
            Value::Map(pairs) if !pairs.is_empty() => pairs[0].0.place,
            _ => node.place,
        };
        reader.error(
            place,
            Problem::new(
                "spec::missing-key",
                format!("{context} has neither `when` nor `segment`, so it would match everyone"),
                "no `when` or `segment` in this map",
            )
            .hint("add `when: [{ attribute: country, op: in, value: [SE] }]` or `segment: <name>`; to serve everyone use the flag's `rollout` or `default`"),
        );
        return None;
    }
    let serve = reader
        .one_of(
            node,
            &fields,
            &context,
            ["variant", "rollout"],
            "variant: on",
        )
        .and_then(|(key, value)| match key {
            "variant" => {
                let name = reader.text(value, "variant")?;
                match variants {
                    Some(variants) => known_variant(
                        reader,
                        value.place,
                        &name,
                        variants,
                        &[],
                        flag,
                        &format!("rule {number}"),
                    )
                    .then_some(Serve::Variant(name)),
                    None => Some(Serve::Variant(name)),
                }
            }
            _ => rollout(reader, value, flag, variants, targets).map(Serve::Rollout),
        });
    Some(FlagRule {
        when: when?,
        segment: segment?,
        serve: serve?,
    })
}

fn rollout(
    reader: &mut Reader<'_>,
    node: &Node,
    flag: &str,
    variants: Option<&[Variant]>,
    targets: &Targets<'_>,
) -> Option<Rollout> {
    let Value::Map(_) = &node.value else {
        reader.error(
            node.place,
            Problem::new(
                "spec::wrong-type",
                format!(
                    "a rollout of flag `{flag}` must map variants to percentages, found {}",
                    node.value.kind()
                ),
                "expected a map",
            )
            .hint("write e.g. `rollout: { on: 10, off: 90 }` or `rollout: { follow_canary: production }`"),
        );
        return None;
    };
    let entries = reader.entries(node, &format!("a rollout of flag `{flag}`"))?;
    if let Some((_, key, value)) = entries.iter().find(|(name, _, _)| name == "follow_canary") {
        if entries.len() > 1 {
            reader.error(
                key.place,
                Problem::new(
                    "spec::conflicting-keys",
                    format!("a rollout of flag `{flag}` has `follow_canary` and percentages; it takes one"),
                    "with percentages",
                )
                .hint("either follow a canary (`{ follow_canary: production }`) or split by percentages (`{ on: 10, off: 90 }`)"),
            );
            return None;
        }
        return follow_canary(reader, value, targets).map(Rollout::FollowCanary);
    }
    let written: Vec<&str> = entries.iter().map(|(name, _, _)| name.as_str()).collect();
    let mut shares: Vec<(String, f64)> = Vec::with_capacity(entries.len());
    let mut complete = true;
    for (name, key, value) in &entries {
        let is_variant = variants.is_some_and(|variants| variants.iter().any(|v| &v.name == name));
        if !is_variant && did_you_mean(name, ["follow_canary"]).is_some() {
            complete = false;
            reader.error(
                key.place,
                Problem::new(
                    "spec::unknown-key",
                    format!("unknown key `{name}` in a rollout of flag `{flag}`"),
                    "unknown key",
                )
                .hint(
                    "did you mean `follow_canary`? write `rollout: { follow_canary: production }`",
                ),
            );
            continue;
        }
        if let Some(variants) = variants
            && !known_variant(
                reader,
                key.place,
                name,
                variants,
                &written,
                flag,
                "a rollout",
            )
        {
            complete = false;
            continue;
        }
        if shares.iter().any(|(seen, _)| seen == name) {
            complete = false;
            reader.error(
                key.place,
                Problem::new(
                    "spec::duplicate-key",
                    format!("variant `{name}` appears twice in a rollout of flag `{flag}`"),
                    "again",
                )
                .hint("give each variant one percentage"),
            );
            continue;
        }
        match reader.percentage_number(value, &format!("rollout.{name}"), 0.0, 100.0) {
            Some(percent) => shares.push((name.clone(), percent)),
            None => complete = false,
        }
    }
    if !complete {
        return None;
    }
    if shares.is_empty() {
        reader.error(
            node.place,
            Problem::new(
                "spec::empty",
                format!("a rollout of flag `{flag}` is empty"),
                "no shares",
            )
            .hint("write e.g. `rollout: { on: 10, off: 90 }`"),
        );
        return None;
    }
    let sum: f64 = shares.iter().map(|(_, percent)| percent).sum();
    if (sum - 100.0).abs() > SUM_TOLERANCE {
        let written = (sum * 1e6).round() / 1e6;
        let hint = match shares.as_slice() {
            [.., (last, percent)] if (0.0..=100.0).contains(&(percent + 100.0 - sum)) => {
                let fixed = ((percent + 100.0 - sum) * 1e6).round() / 1e6;
                format!("the shares must total exactly 100; e.g. give `{last}` {fixed}")
            }
            _ => "the shares must total exactly 100, e.g. `{ on: 10, off: 90 }`".to_owned(),
        };
        reader.error(
            node.place,
            Problem::new(
                "spec::rollout-sum",
                format!("the rollout percentages of flag `{flag}` add up to {written}, not 100"),
                &format!("adds up to {written}"),
            )
            .hint(hint),
        );
        return None;
    }
    Some(Rollout::Split(shares))
}

fn follow_canary(reader: &mut Reader<'_>, node: &Node, targets: &Targets<'_>) -> Option<String> {
    let name = reader.text(node, "follow_canary")?;
    let Some(environments) = targets.environments else {
        return Some(name);
    };
    match environments
        .iter()
        .find(|environment| environment.name == name)
    {
        Some(environment) => match &environment.strategy {
            Strategy::Canary(_) => Some(name),
            other => {
                let uses = other.name();
                let canaries: Vec<String> = environments
                    .iter()
                    .filter(|environment| matches!(environment.strategy, Strategy::Canary(_)))
                    .map(|environment| format!("`{}`", environment.name))
                    .collect();
                let hint = if canaries.is_empty() {
                    format!("set `strategy: canary` on `{name}`, or split by percentages instead")
                } else {
                    format!(
                        "set `strategy: canary` on `{name}`, or follow a canary environment: {}",
                        canaries.join(", ")
                    )
                };
                reader.error(
                    node.place,
                    Problem::new(
                        "spec::canary-only",
                        format!("`follow_canary` names environment `{name}`, which uses {uses}, not canary"),
                        "not a canary environment",
                    )
                    .hint(hint),
                );
                None
            }
        },
        None => {
            let names: Vec<&str> = environments
                .iter()
                .map(|environment| environment.name.as_str())
                .collect();
            let hint = match did_you_mean(&name, names.iter().copied()) {
                Some(suggestion) => format!("did you mean `{suggestion}`?"),
                None if names.is_empty() => {
                    "define the environment under `environments:` with `strategy: canary`"
                        .to_owned()
                }
                None => format!(
                    "environments: {}",
                    names
                        .iter()
                        .map(|name| format!("`{name}`"))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            };
            reader.error(
                node.place,
                Problem::new(
                    "spec::unknown-environment",
                    format!("`follow_canary` names environment `{name}`, which is not defined"),
                    "no such environment",
                )
                .hint(hint),
            );
            None
        }
    }
}
