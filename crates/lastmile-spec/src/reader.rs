//! Walks the node tree, checks it against the v1 schema and builds the model.
//!
//! The reader never stops at the first problem: each check records a
//! diagnostic and moves on, so one `lastmile check` shows everything wrong.

mod environment;
mod flags;
mod pipeline;
mod service;

use std::collections::BTreeMap;
use std::time::Duration;

use crate::diagnostic::{Label, Severity, SpecDiagnostic};
use crate::model::{Artifact, ReservedSection, Secrets, Spec};
use crate::node::{Node, Place, Value};
use crate::scalar::{self, did_you_mean};

/// Top-level keys, in the order the docs list them.
const TOP_LEVEL_KEYS: &[&str] = &[
    "app",
    "pipeline",
    "artifact",
    "service",
    "secrets",
    "environments",
    "segments",
    "flags",
    "monitor",
    "drills",
    "hosts",
];

/// Sections later versions give meaning to.
const RESERVED_SECTIONS: &[&str] = &["monitor", "drills", "hosts"];

/// Collects diagnostics while reading one file.
#[derive(Debug)]
pub(crate) struct Reader<'source> {
    file: &'source str,
    source: &'source str,
    /// Everything found so far, errors and warnings.
    pub(crate) diagnostics: Vec<SpecDiagnostic>,
}

/// One problem before it is placed in the file.
#[derive(Debug)]
pub(crate) struct Problem {
    code: &'static str,
    message: String,
    label: String,
    hint: Option<String>,
}

impl Problem {
    /// A problem with its code, message and caret label.
    pub(crate) fn new(code: &'static str, message: impl Into<String>, label: &str) -> Self {
        Problem {
            code,
            message: message.into(),
            label: label.to_owned(),
            hint: None,
        }
    }

    /// Adds what to do about it.
    pub(crate) fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }
}

/// A map's entries with their keys already checked.
#[derive(Debug)]
pub(crate) struct Fields<'node> {
    entries: Vec<(String, &'node Node, &'node Node)>,
    /// Allowed keys suggested for unknown ones (reported once, as unknown).
    suggested: Vec<String>,
}

impl<'node> Fields<'node> {
    /// The value under `key`, if present.
    pub(crate) fn get(&self, key: &str) -> Option<&'node Node> {
        self.entries
            .iter()
            .find(|(name, _, _)| name == key)
            .map(|(_, _, value)| *value)
    }

    /// Whether an unknown key in the map was taken for a misspelling of `key`.
    pub(crate) fn misspelled(&self, key: &str) -> bool {
        self.suggested.iter().any(|suggested| suggested == key)
    }

    /// The key node of `key`, if present (to point at the key itself).
    pub(crate) fn key(&self, key: &str) -> Option<&'node Node> {
        self.entries
            .iter()
            .find(|(name, _, _)| name == key)
            .map(|(_, key, _)| *key)
    }
}

impl<'source> Reader<'source> {
    pub(crate) fn new(file: &'source str, source: &'source str) -> Self {
        Reader {
            file,
            source,
            diagnostics: Vec::new(),
        }
    }

    /// Records an error at `place`.
    pub(crate) fn error(&mut self, place: Place, problem: Problem) {
        self.push(Severity::Error, place, problem);
    }

    /// Records a warning at `place`.
    pub(crate) fn warning(&mut self, place: Place, problem: Problem) {
        self.push(Severity::Warning, place, problem);
    }

    fn push(&mut self, severity: Severity, place: Place, problem: Problem) {
        self.diagnostics.push(SpecDiagnostic {
            severity,
            code: problem.code.to_owned(),
            message: problem.message,
            file: self.file.to_owned(),
            line: place.line.max(1),
            column: place.column.max(1),
            hint: problem.hint,
            label: Some(Label {
                offset: place.offset,
                length: place.length,
                text: problem.label,
            }),
        });
    }

    /// The source text of a node (what the user typed for a plain scalar).
    fn source_text(&self, node: &Node) -> Option<&'source str> {
        self.source
            .get(node.place.offset..node.place.offset + node.place.length)
            .filter(|text| !text.is_empty())
    }

    /// A map's entries with string keys; `None` (after an error) if not a map.
    pub(crate) fn entries<'node>(
        &mut self,
        node: &'node Node,
        context: &str,
    ) -> Option<Vec<(String, &'node Node, &'node Node)>> {
        let Value::Map(pairs) = &node.value else {
            self.wrong_type(
                node,
                &format!("{context} must be a map of keys to values"),
                "a map",
            );
            return None;
        };
        let mut entries = Vec::with_capacity(pairs.len());
        for (key, value) in pairs {
            match self.scalar_text(key) {
                Some(name) => entries.push((name, key, value)),
                None => self.error(
                    key.place,
                    Problem::new(
                        "spec::wrong-type",
                        format!(
                            "keys in {context} must be plain names, found {}",
                            key.value.kind()
                        ),
                        "not a name",
                    )
                    .hint("write a plain word before the `:`"),
                ),
            }
        }
        Some(entries)
    }

    /// Checks a map against its allowed and required keys.
    ///
    /// `required` pairs each key with an example line for the hint.
    pub(crate) fn fields<'node>(
        &mut self,
        node: &'node Node,
        context: &str,
        allowed: &[&str],
        required: &[(&str, &str)],
    ) -> Option<Fields<'node>> {
        self.fields_with_note(node, context, allowed, required, &|_| None)
    }

    /// Like [`Reader::fields`], with `note` adding to the hint of an unknown key
    /// (e.g. "`steps` belongs to the canary strategy").
    pub(crate) fn fields_with_note<'node>(
        &mut self,
        node: &'node Node,
        context: &str,
        allowed: &[&str],
        required: &[(&str, &str)],
        note: &dyn Fn(&str) -> Option<String>,
    ) -> Option<Fields<'node>> {
        let entries = self.entries(node, context)?;
        // A misspelled required key is reported once, as unknown with a
        // suggestion, not a second time as missing.
        let mut suggested: Vec<&str> = Vec::new();
        let mut kept: Vec<(String, &Node, &Node)> = Vec::with_capacity(entries.len());
        for (name, key, value) in entries {
            if !allowed.contains(&name.as_str()) {
                let valid = allowed.join(", ");
                let suggestion = did_you_mean(&name, allowed.iter().copied());
                let mut hint = match suggestion {
                    Some(suggestion) => format!("did you mean `{suggestion}`? valid keys: {valid}"),
                    None => format!("valid keys here: {valid}"),
                };
                suggested.extend(suggestion);
                if let Some(note) = note(&name) {
                    hint = format!("{note}; {hint}");
                }
                self.error(
                    key.place,
                    Problem::new(
                        "spec::unknown-key",
                        format!("unknown key `{name}` in {context}"),
                        "unknown key",
                    )
                    .hint(hint),
                );
                continue;
            }
            if let Some((_, first, _)) = kept.iter().find(|(kept_name, _, _)| *kept_name == name) {
                let first_line = first.place.line;
                self.error(
                    key.place,
                    Problem::new(
                        "spec::duplicate-key",
                        format!(
                            "key `{name}` appears twice in {context} (first on line {first_line})"
                        ),
                        &format!("second `{name}`"),
                    )
                    .hint("keep one of them; YAML keys must be unique"),
                );
                continue;
            }
            kept.push((name, key, value));
        }
        let fields = Fields {
            entries: kept,
            suggested: suggested.iter().map(|key| (*key).to_owned()).collect(),
        };
        for (key, example) in required {
            if fields.get(key).is_none() && !fields.misspelled(key) {
                self.missing(node, context, key, example);
            }
        }
        Some(fields)
    }

    /// Reports a required key that is absent from `node`.
    pub(crate) fn missing(&mut self, node: &Node, context: &str, key: &str, example: &str) {
        let place = match &node.value {
            Value::Map(pairs) if !pairs.is_empty() => pairs[0].0.place,
            _ => node.place,
        };
        self.error(
            place,
            Problem::new(
                "spec::missing-key",
                format!("{context} has no `{key}`, which is required"),
                &format!("no `{key}` in this map"),
            )
            .hint(format!("add `{example}`")),
        );
    }

    fn wrong_type(&mut self, node: &Node, message: &str, expected: &str) {
        let found = node.value.kind();
        let hint = match expected {
            "a map" => "indent `key: value` lines under it, or write `{ key: value }`",
            "a string" => "write text here; quote it if YAML would read it as something else",
            "a whole number" => "write a whole number without quotes or units, e.g. `3`",
            "a number" => "write a number, e.g. `1.5`",
            "a percentage" => "write a number above 0 and at most 100, e.g. `5` or `\"2.5%\"`",
            "a duration" => "write a number with a unit, e.g. `\"10s\"` or `\"1m30s\"`",
            "a boolean" => "write `true` or `false`",
            "a size" => "write a number with a unit, e.g. `10MiB` or `512KB`",
            _ => "see docs/spec.md for what this key takes",
        };
        self.error(
            node.place,
            Problem::new(
                "spec::wrong-type",
                format!("{message}, found {found}"),
                &format!("expected {expected}"),
            )
            .hint(hint),
        );
    }

    /// A scalar as the text the user wrote; `None` for null, lists and maps.
    fn scalar_text(&self, node: &Node) -> Option<String> {
        match &node.value {
            Value::Text(text) => Some(text.clone()),
            Value::Bool(value) => Some(
                self.source_text(node)
                    .map_or_else(|| value.to_string(), str::to_owned),
            ),
            Value::Integer(value) => Some(
                self.source_text(node)
                    .map_or_else(|| value.to_string(), str::to_owned),
            ),
            Value::Float(value) => Some(
                self.source_text(node)
                    .map_or_else(|| value.to_string(), str::to_owned),
            ),
            Value::Null | Value::List(_) | Value::Map(_) => None,
        }
    }

    /// A string value (numbers and booleans are taken as written).
    pub(crate) fn text(&mut self, node: &Node, what: &str) -> Option<String> {
        match self.scalar_text(node) {
            Some(text) => Some(text),
            None if node.value == Value::Null => {
                self.error(
                    node.place,
                    Problem::new(
                        "spec::wrong-type",
                        format!("`{what}` has no value"),
                        "empty value",
                    )
                    .hint(format!("give `{what}` a value or remove the key")),
                );
                None
            }
            None => {
                self.wrong_type(node, &format!("`{what}` must be a string"), "a string");
                None
            }
        }
    }

    /// A string that must not be empty or whitespace.
    pub(crate) fn non_empty_text(&mut self, node: &Node, what: &str, hint: &str) -> Option<String> {
        let text = self.text(node, what)?;
        if text.trim().is_empty() {
            self.error(
                node.place,
                Problem::new("spec::empty", format!("`{what}` is empty"), "empty").hint(hint),
            );
            return None;
        }
        Some(text)
    }

    /// A shell command: non-empty text.
    pub(crate) fn command(&mut self, node: &Node, what: &str) -> Option<String> {
        let text = self.text(node, what)?;
        if text.trim().is_empty() {
            self.error(
                node.place,
                Problem::new(
                    "spec::empty-command",
                    format!("`{what}` is an empty command"),
                    "nothing to run",
                )
                .hint("write the shell command to run, e.g. `run: make test`"),
            );
            return None;
        }
        Some(text)
    }

    /// An integer in `minimum..=maximum`.
    pub(crate) fn integer(
        &mut self,
        node: &Node,
        what: &str,
        minimum: i128,
        maximum: i128,
    ) -> Option<i128> {
        let value = match &node.value {
            Value::Integer(value) => *value,
            Value::Text(text) if text.trim().parse::<i128>().is_ok() => text.trim().parse().ok()?,
            // YAML reads a whole number too large for 64 bits as a float;
            // say it is too large rather than "not a whole number".
            Value::Float(value) if self.written_as_whole_number(node) => {
                let written = self.scalar_text(node).unwrap_or_default();
                let side = if *value < 0.0 { "small" } else { "large" };
                self.error(
                    node.place,
                    Problem::new(
                        "spec::out-of-range",
                        format!(
                            "`{what}` is {written}, which is too {side}; it must be between {minimum} and {maximum}"
                        ),
                        "out of range",
                    )
                    .hint(format!("use a value from {minimum} to {maximum}")),
                );
                return None;
            }
            _ => {
                self.wrong_type(
                    node,
                    &format!("`{what}` must be a whole number"),
                    "a whole number",
                );
                return None;
            }
        };
        if value < minimum || value > maximum {
            self.error(
                node.place,
                Problem::new(
                    "spec::out-of-range",
                    format!("`{what}` is {value}; it must be between {minimum} and {maximum}"),
                    "out of range",
                )
                .hint(format!("use a value from {minimum} to {maximum}")),
            );
            return None;
        }
        Some(value)
    }

    /// True when the source text of `node` is digits with an optional sign.
    fn written_as_whole_number(&self, node: &Node) -> bool {
        self.source_text(node).is_some_and(|text| {
            let digits = text.trim().trim_start_matches(['-', '+']);
            !digits.is_empty() && digits.bytes().all(|byte| byte.is_ascii_digit())
        })
    }

    /// An integer as `u32`, in range.
    pub(crate) fn count(
        &mut self,
        node: &Node,
        what: &str,
        minimum: u32,
        maximum: u32,
    ) -> Option<u32> {
        self.integer(node, what, i128::from(minimum), i128::from(maximum))
            .and_then(|value| u32::try_from(value).ok())
    }

    /// A number (integer or decimal, no `%`) in range.
    pub(crate) fn number(
        &mut self,
        node: &Node,
        what: &str,
        minimum: f64,
        maximum: f64,
    ) -> Option<f64> {
        self.number_where(
            node,
            what,
            |value| (minimum..=maximum).contains(&value),
            &format!("between {minimum} and {maximum}"),
            &format!("use a value from {minimum} to {maximum}"),
        )
    }

    /// A number of percent (optionally followed by `%`) in range.
    pub(crate) fn percentage_number(
        &mut self,
        node: &Node,
        what: &str,
        minimum: f64,
        maximum: f64,
    ) -> Option<f64> {
        self.read_number(
            node,
            what,
            PercentSign::Allowed,
            |value| (minimum..=maximum).contains(&value),
            &format!("between {minimum} and {maximum}"),
            &format!("use a value from {minimum} to {maximum}"),
        )
    }

    /// A number that `accept`s, else `spec::out-of-range` saying it must be
    /// `range` (e.g. "above 0"). A `%` after it is refused: the key does not
    /// take a percentage.
    pub(crate) fn number_where(
        &mut self,
        node: &Node,
        what: &str,
        accept: impl Fn(f64) -> bool,
        range: &str,
        hint: &str,
    ) -> Option<f64> {
        self.read_number(node, what, PercentSign::Refused, accept, range, hint)
    }

    /// Like [`Reader::number_where`], for a key that takes a percentage (`%` allowed).
    pub(crate) fn percentage_where(
        &mut self,
        node: &Node,
        what: &str,
        accept: impl Fn(f64) -> bool,
        range: &str,
        hint: &str,
    ) -> Option<f64> {
        self.read_number(node, what, PercentSign::Allowed, accept, range, hint)
    }

    fn read_number(
        &mut self,
        node: &Node,
        what: &str,
        percent_sign: PercentSign,
        accept: impl Fn(f64) -> bool,
        range: &str,
        hint: &str,
    ) -> Option<f64> {
        let value = match &node.value {
            Value::Integer(value) => *value as f64,
            Value::Float(value) => *value,
            Value::Text(text) => {
                let trimmed = text.trim();
                let (number, had_percent) = match trimmed.strip_suffix('%') {
                    Some(number) => (number.trim(), true),
                    None => (trimmed, false),
                };
                match number.parse::<f64>() {
                    Ok(value) if value.is_finite() => {
                        if had_percent && percent_sign == PercentSign::Refused {
                            self.percent_sign_refused(node, what, value, &accept);
                            return None;
                        }
                        value
                    }
                    _ => {
                        self.wrong_type(node, &format!("`{what}` must be a number"), "a number");
                        return None;
                    }
                }
            }
            _ => {
                self.wrong_type(node, &format!("`{what}` must be a number"), "a number");
                return None;
            }
        };
        if !value.is_finite() || !accept(value) {
            self.error(
                node.place,
                Problem::new(
                    "spec::out-of-range",
                    format!("`{what}` is {value}; it must be {range}"),
                    "out of range",
                )
                .hint(hint),
            );
            return None;
        }
        Some(value)
    }

    /// `5%` on a key that takes a plain number: suggest the bare number when
    /// that is in range, else the fraction (`confidence: 99%` means `0.99`).
    fn percent_sign_refused(
        &mut self,
        node: &Node,
        what: &str,
        value: f64,
        accept: &impl Fn(f64) -> bool,
    ) {
        let hint = if accept(value) {
            format!("write `{value}` without `%`")
        } else if accept(value / 100.0) {
            format!("write the fraction `{}` instead", value / 100.0)
        } else {
            "write a plain number without `%`; see docs/spec.md for its range".to_owned()
        };
        self.error(
            node.place,
            Problem::new(
                "spec::wrong-type",
                format!("`{what}` takes a plain number, not a percentage"),
                "`%` is not allowed here",
            )
            .hint(hint),
        );
    }

    /// A percentage in (0, 100].
    pub(crate) fn percent(&mut self, node: &Node, what: &str) -> Option<f64> {
        let text = match &node.value {
            Value::Integer(_) | Value::Float(_) | Value::Text(_) => self.scalar_text(node)?,
            _ => {
                self.wrong_type(
                    node,
                    &format!("`{what}` must be a percentage"),
                    "a percentage",
                );
                return None;
            }
        };
        match scalar::parse_percent(&text) {
            Ok(value) => Some(value),
            Err(message) => {
                self.error(
                    node.place,
                    Problem::new(
                        "spec::invalid-percent",
                        format!("invalid percentage in `{what}`: {message}"),
                        "not a percentage",
                    )
                    .hint("write a number above 0 and at most 100, e.g. 5, \"5%\" or \"2.5%\""),
                );
                None
            }
        }
    }

    /// A duration string such as `10s`.
    pub(crate) fn duration(&mut self, node: &Node, what: &str) -> Option<Duration> {
        match &node.value {
            Value::Integer(_) | Value::Float(_) => {
                let written = self.scalar_text(node).unwrap_or_default();
                self.error(
                    node.place,
                    Problem::new(
                        "spec::invalid-duration",
                        format!("`{what}` is the bare number {written}; a duration needs a unit"),
                        "no unit",
                    )
                    .hint(format!("write \"{written}s\" (units: ms, s, m, h, d)")),
                );
                None
            }
            Value::Text(text) => match scalar::parse_duration(text) {
                Ok(duration) => Some(duration),
                Err(message) => {
                    self.error(
                        node.place,
                        Problem::new("spec::invalid-duration", format!("invalid duration in `{what}`: {message}"), "not a duration")
                            .hint("durations are numbers with units, e.g. \"500ms\", \"10s\", \"5m\", \"1h\", \"1m30s\""),
                    );
                    None
                }
            },
            _ => {
                self.wrong_type(
                    node,
                    &format!("`{what}` must be a duration such as \"10s\""),
                    "a duration",
                );
                None
            }
        }
    }

    /// `true` or `false`.
    pub(crate) fn boolean(&mut self, node: &Node, what: &str) -> Option<bool> {
        if let Value::Bool(value) = node.value {
            return Some(value);
        }
        self.wrong_type(
            node,
            &format!("`{what}` must be true or false"),
            "a boolean",
        );
        None
    }

    /// A size such as `10MiB`, in bytes, in `minimum..=maximum`.
    pub(crate) fn size(
        &mut self,
        node: &Node,
        what: &str,
        minimum: u64,
        maximum: u64,
    ) -> Option<u64> {
        let units = scalar::SIZE_UNIT_LIST;
        let bytes = match &node.value {
            Value::Integer(_) | Value::Float(_) => {
                let written = self.scalar_text(node).unwrap_or_default();
                self.error(
                    node.place,
                    Problem::new(
                        "spec::invalid-size",
                        format!("`{what}` is the bare number {written}; a size needs a unit"),
                        "no unit",
                    )
                    .hint(format!(
                        "write e.g. \"{written}B\" or \"10MiB\" (units: {units})"
                    )),
                );
                return None;
            }
            Value::Text(text) => match scalar::parse_size(text) {
                Ok(bytes) => bytes,
                Err(message) => {
                    self.error(
                        node.place,
                        Problem::new("spec::invalid-size", format!("invalid size in `{what}`: {message}"), "not a size")
                            .hint(format!("sizes are a number and a unit, e.g. \"512KiB\", \"10MiB\" or \"1GB\"; units: {units}")),
                    );
                    return None;
                }
            },
            _ => {
                self.wrong_type(
                    node,
                    &format!("`{what}` must be a size such as \"10MiB\""),
                    "a size",
                );
                return None;
            }
        };
        if bytes < minimum || bytes > maximum {
            let (written, low, high) = (
                scalar::format_size(bytes),
                scalar::format_size(minimum),
                scalar::format_size(maximum),
            );
            self.error(
                node.place,
                Problem::new(
                    "spec::out-of-range",
                    format!("`{what}` is {written}; it must be between {low} and {high}"),
                    "out of range",
                )
                .hint(format!("use a size from \"{low}\" to \"{high}\"")),
            );
            return None;
        }
        Some(bytes)
    }

    /// A duration that must be above zero.
    pub(crate) fn positive_duration(&mut self, node: &Node, what: &str) -> Option<Duration> {
        let duration = self.duration(node, what)?;
        if duration.is_zero() {
            self.error(
                node.place,
                Problem::new(
                    "spec::out-of-range",
                    format!("`{what}` is zero; it must be longer than that"),
                    "zero",
                )
                .hint("write a positive duration such as \"10s\""),
            );
            return None;
        }
        Some(duration)
    }

    /// A duration in `minimum..=maximum`.
    pub(crate) fn duration_between(
        &mut self,
        node: &Node,
        what: &str,
        minimum: Duration,
        maximum: Duration,
    ) -> Option<Duration> {
        let duration = self.duration(node, what)?;
        if duration < minimum || duration > maximum {
            let (written, low, high) = (
                scalar::format_duration(duration),
                scalar::format_duration(minimum),
                scalar::format_duration(maximum),
            );
            self.error(
                node.place,
                Problem::new(
                    "spec::out-of-range",
                    format!("`{what}` is {written}; it must be between {low} and {high}"),
                    "out of range",
                )
                .hint(format!("use a duration from \"{low}\" to \"{high}\"")),
            );
            return None;
        }
        Some(duration)
    }

    /// An `http://` or `https://` URL with a host and no spaces.
    pub(crate) fn http_url(&mut self, node: &Node, what: &str, example: &str) -> Option<String> {
        let url = self.text(node, what)?;
        if scalar::is_http_url(&url) {
            return Some(url);
        }
        self.error(
            node.place,
            Problem::new(
                "spec::invalid-url",
                format!("`{what}` must be an http:// or https:// URL, found `{url}`"),
                "not an HTTP URL",
            )
            .hint(format!(
                "write the full URL with its scheme and host, e.g. `{example}`"
            )),
        );
        None
    }

    /// Exactly one of two alternative `keys` in `fields`: its name and value.
    ///
    /// Both present is reported at the second; neither (unless the map has a
    /// misspelling of one, already reported as unknown) at the map.
    pub(crate) fn one_of<'node>(
        &mut self,
        node: &Node,
        fields: &Fields<'node>,
        context: &str,
        keys: [&'static str; 2],
        example: &str,
    ) -> Option<(&'static str, &'node Node)> {
        let [first, second] = keys;
        match (fields.get(first), fields.get(second)) {
            (Some(value), None) => Some((first, value)),
            (None, Some(value)) => Some((second, value)),
            (Some(_), Some(_)) => {
                let place = fields.key(second).map_or(node.place, |key| key.place);
                self.error(
                    place,
                    Problem::new(
                        "spec::conflicting-keys",
                        format!("{context} has both `{first}` and `{second}`; it takes one"),
                        &format!("second of `{first}` / `{second}`"),
                    )
                    .hint(format!("keep `{first}` or `{second}`, not both")),
                );
                None
            }
            (None, None) => {
                if !fields.misspelled(first) && !fields.misspelled(second) {
                    let place = match &node.value {
                        Value::Map(pairs) if !pairs.is_empty() => pairs[0].0.place,
                        _ => node.place,
                    };
                    self.error(
                        place,
                        Problem::new(
                            "spec::missing-key",
                            format!("{context} has neither `{first}` nor `{second}`; it needs one"),
                            &format!("no `{first}` or `{second}` in this map"),
                        )
                        .hint(format!("add one, e.g. `{example}`")),
                    );
                }
                None
            }
        }
    }

    /// One of a fixed set of words, with a suggestion when misspelled.
    pub(crate) fn keyword(
        &mut self,
        node: &Node,
        what: &str,
        code: &'static str,
        words: &[&'static str],
    ) -> Option<&'static str> {
        let text = self.text(node, what)?;
        if let Some(word) = words.iter().find(|word| **word == text) {
            return Some(word);
        }
        let valid = words
            .iter()
            .map(|word| format!("`{word}`"))
            .collect::<Vec<_>>()
            .join(", ");
        let hint = match did_you_mean(&text, words.iter().copied()) {
            Some(suggestion) => format!("did you mean `{suggestion}`? valid values: {valid}"),
            None => format!("valid values: {valid}"),
        };
        self.error(
            node.place,
            Problem::new(code, format!("unknown {what} `{text}`"), "unknown value").hint(hint),
        );
        None
    }

    /// The items of a list; anything else is a `spec::wrong-type` error
    /// saying "{expected}, found {kind}", with `hint`.
    pub(crate) fn list<'node>(
        &mut self,
        node: &'node Node,
        expected: &str,
        hint: impl Into<String>,
    ) -> Option<&'node [Node]> {
        let Value::List(items) = &node.value else {
            self.error(
                node.place,
                Problem::new(
                    "spec::wrong-type",
                    format!("{expected}, found {}", node.value.kind()),
                    "expected a list",
                )
                .hint(hint),
            );
            return None;
        };
        Some(items)
    }

    /// A list of strings, each with its place.
    pub(crate) fn string_list(
        &mut self,
        node: &Node,
        what: &str,
        example: &str,
    ) -> Option<Vec<(String, Place)>> {
        let items = self.list(
            node,
            &format!("`{what}` must be a list"),
            format!("write `{example}`"),
        )?;
        let mut strings = Vec::with_capacity(items.len());
        let mut complete = true;
        for item in items {
            match self.text(item, what) {
                Some(text) if text.trim().is_empty() => {
                    self.error(
                        item.place,
                        Problem::new(
                            "spec::empty",
                            format!("`{what}` has an empty entry"),
                            "empty",
                        )
                        .hint("remove the entry or fill it in"),
                    );
                    complete = false;
                }
                Some(text) => strings.push((text, item.place)),
                None => complete = false,
            }
        }
        complete.then_some(strings)
    }

    /// A list of environment variable names (for `secrets`).
    pub(crate) fn env_names(&mut self, node: &Node, what: &str) -> Option<Vec<String>> {
        let names = self.string_list(node, what, &format!("{what}: [API_TOKEN]"))?;
        let mut valid = Vec::with_capacity(names.len());
        for (name, place) in names {
            if !self.check_env_name(&name, place, what) {
                continue;
            }
            if valid.contains(&name) {
                self.error(
                    place,
                    Problem::new(
                        "spec::duplicate-key",
                        format!("`{name}` is listed twice in `{what}`"),
                        "listed again",
                    )
                    .hint("list each name once"),
                );
                continue;
            }
            valid.push(name);
        }
        Some(valid)
    }

    fn check_env_name(&mut self, name: &str, place: Place, what: &str) -> bool {
        if scalar::is_env_name(name) {
            return true;
        }
        self.error(
            place,
            Problem::new("spec::invalid-env-name", format!("`{name}` in `{what}` is not a valid environment variable name"), "invalid name")
                .hint("names start with a letter or `_` and contain only letters, digits and `_`, e.g. `DATABASE_URL`"),
        );
        false
    }

    /// An `env:` map of variable names to string values.
    pub(crate) fn env_map(&mut self, node: &Node, what: &str) -> Option<BTreeMap<String, String>> {
        let entries = self.entries(node, &format!("`{what}`"))?;
        let mut variables = BTreeMap::new();
        let mut first_lines: BTreeMap<String, usize> = BTreeMap::new();
        for (name, key, value) in entries {
            if !self.check_env_name(&name, key.place, what) {
                continue;
            }
            if let Some(first_line) = first_lines.get(&name) {
                self.error(
                    key.place,
                    Problem::new(
                        "spec::duplicate-key",
                        format!("`{name}` is set twice in `{what}` (first on line {first_line})"),
                        "set again",
                    )
                    .hint("keep one of them"),
                );
                continue;
            }
            first_lines.insert(name.clone(), key.place.line);
            match self.scalar_text(value) {
                Some(text) => {
                    variables.insert(name, text);
                }
                None if value.value == Value::Null => self.error(
                    value.place,
                    Problem::new(
                        "spec::wrong-type",
                        format!("`{name}` in `{what}` has no value"),
                        "no value",
                    )
                    .hint(format!("write `{name}: \"\"` for an empty value")),
                ),
                None => self.wrong_type(
                    value,
                    &format!("`{name}` in `{what}` must be a string"),
                    "a string",
                ),
            }
        }
        Some(variables)
    }
}

/// Reads a whole document into a spec; errors are left in `reader`.
pub(crate) fn read_spec(reader: &mut Reader<'_>, root: &Node) -> Option<Spec> {
    if root.value == Value::Null {
        reader.error(
            root.place,
            Problem::new("spec::empty", "the spec is empty", "nothing here")
                .hint("start with `app: <name>` and a `pipeline:` with at least one step"),
        );
        return None;
    }
    let fields = reader.fields(
        root,
        "the spec",
        TOP_LEVEL_KEYS,
        &[
            ("app", "app: my-app"),
            (
                "pipeline",
                "pipeline: { steps: [{ name: build, run: make }] }",
            ),
        ],
    )?;
    let app = fields
        .get("app")
        .and_then(|node| read_app_name(reader, node));
    let pipeline = fields
        .get("pipeline")
        .and_then(|node| pipeline::read_pipeline(reader, node));
    let artifact = fields
        .get("artifact")
        .map(|node| read_artifact(reader, node));
    let service = fields
        .get("service")
        .map(|node| service::read_service(reader, node));
    let secrets = fields.get("secrets").map(|node| read_secrets(reader, node));
    let environments = fields
        .get("environments")
        .map(|node| environment::read_environments(reader, node));
    let segments = fields
        .get("segments")
        .map(|node| flags::read_segments(reader, node));
    // Flags refer to segments and environments; check those references only
    // when the sections read cleanly (their own errors already fail the spec).
    let flags = fields.get("flags").map(|node| {
        let targets = flags::Targets {
            segments: match &segments {
                Some(Some(segments)) => Some(
                    segments
                        .iter()
                        .map(|segment| segment.name.clone())
                        .collect(),
                ),
                Some(None) => None,
                None => Some(Vec::new()),
            },
            environments: match &environments {
                Some(Some(environments)) => Some(environments.as_slice()),
                Some(None) => None,
                None => Some(&[]),
            },
        };
        flags::read_flags(reader, node, &targets)
    });
    let mut reserved_sections = Vec::new();
    for (name, key, _) in &fields.entries {
        if RESERVED_SECTIONS.contains(&name.as_str()) {
            reserved_sections.push(ReservedSection {
                name: name.clone(),
                line: key.place.line,
            });
            reader.warning(
                key.place,
                Problem::new(
                    "spec::reserved-section",
                    format!("`{name}` is not implemented in this version of lastmile; nothing acts on it"),
                    "not implemented yet",
                )
                .hint(format!("the `{name}` section is reserved for a later version; lastmile reads past it, so remove it if you expected it to do something")),
            );
        }
    }
    Some(Spec {
        app: app?,
        pipeline: pipeline?,
        artifact: artifact.flatten(),
        service: service.flatten(),
        secrets: secrets.flatten().unwrap_or_default(),
        environments: environments.flatten().unwrap_or_default(),
        segments: segments.flatten().unwrap_or_default(),
        flags: flags.flatten().unwrap_or_default(),
        reserved_sections,
    })
}

fn read_app_name(reader: &mut Reader<'_>, node: &Node) -> Option<String> {
    let name = reader.text(node, "app")?;
    if scalar::is_app_name(&name) {
        return Some(name);
    }
    reader.error(
        node.place,
        Problem::new("spec::invalid-name", format!("`{name}` is not a valid app name"), "invalid name")
            .hint("an app name is 1 to 63 lowercase letters, digits or `-`, starting with a letter, e.g. `hello-api`"),
    );
    None
}

fn read_artifact(reader: &mut Reader<'_>, node: &Node) -> Option<Artifact> {
    let fields = reader.fields(
        node,
        "`artifact`",
        &["paths"],
        &[("paths", "paths: [target/release/app]")],
    )?;
    let paths_node = fields.get("paths")?;
    let paths = reader.string_list(paths_node, "artifact.paths", "paths: [target/release/app]")?;
    if paths.is_empty() {
        reader.error(
            paths_node.place,
            Problem::new(
                "spec::empty",
                "`artifact.paths` is empty, so the artifact would hold nothing",
                "empty list",
            )
            .hint("list the files or directories to pack, e.g. `paths: [target/release/app]`"),
        );
        return None;
    }
    Some(Artifact {
        paths: paths.into_iter().map(|(path, _)| path).collect(),
    })
}

fn read_secrets(reader: &mut Reader<'_>, node: &Node) -> Option<Secrets> {
    let fields = reader.fields(node, "`secrets`", &["file"], &[])?;
    let file = match fields.get("file") {
        Some(file_node) => Some(reader.non_empty_text(
            file_node,
            "secrets.file",
            "write a path such as `secrets: { file: .env }`",
        )?),
        None => None,
    };
    Some(Secrets { file })
}

/// Whether a number may be written with a trailing `%`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PercentSign {
    /// The key takes a percentage: `5` and `5%` mean the same.
    Allowed,
    /// The key takes a plain number; `5%` is an error.
    Refused,
}
