//! `segments:` and `flags:`: feature flags, their targeting rules and
//! rollouts. Evaluation lives in `lastmile-flags`; these are the checked
//! definitions it compiles.

use serde::Serialize;

/// `segments.<name>`: a named group of users, matched when every condition
/// holds.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Segment {
    /// The map key; rules refer to the segment by it.
    pub name: String,
    /// All must hold (at least one).
    pub conditions: Vec<Condition>,
}

/// One `{ attribute, op, value }` test against an evaluation context.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Condition {
    /// The context attribute tested (`targetingKey` is the targeting key).
    pub attribute: String,
    /// How the attribute is compared with `value`.
    pub op: Operator,
    /// Already checked against `op`: a string, number or boolean for
    /// `equals`/`not_equals`; a list of those for `in`/`not_in`; a string for
    /// `starts_with`/`ends_with`/`contains`; a number for `lt`..`gte`; a
    /// string holding a valid semantic version for `semver_*`.
    pub value: serde_json::Value,
}

/// A condition's comparison.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Operator {
    /// Same string, number or boolean.
    Equals,
    /// Same type, different value.
    NotEquals,
    /// Equal to one of a list.
    In,
    /// Equal to none of a list.
    NotIn,
    /// String prefix.
    StartsWith,
    /// String suffix.
    EndsWith,
    /// Substring.
    Contains,
    /// Number below.
    Lt,
    /// Number at or below.
    Lte,
    /// Number above.
    Gt,
    /// Number at or above.
    Gte,
    /// Same semantic version.
    SemverEq,
    /// Semantic version below.
    SemverLt,
    /// Semantic version at or below.
    SemverLte,
    /// Semantic version above.
    SemverGt,
    /// Semantic version at or above.
    SemverGte,
}

/// What a flag's variants hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum FlagType {
    /// `true` / `false` (the default type).
    Boolean,
    /// Text.
    String,
    /// A number.
    Number,
    /// A JSON object.
    Object,
}

/// One `flags.<key>` entry.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Flag {
    /// The map key: letters, digits, `-`, `_`, `.`.
    pub key: String,
    /// What the variants hold (written `type`).
    #[serde(rename = "type")]
    pub kind: FlagType,
    /// Named values in file order (at least one); each matches `kind`.
    pub variants: Vec<Variant>,
    /// The variant served when nothing else decides; names one of `variants`.
    pub default: String,
    /// `false` is the kill switch: every evaluation serves `default`.
    pub enabled: bool,
    /// Targeting rules, first match wins.
    pub rules: Vec<FlagRule>,
    /// How contexts no rule matched are split (`None`: they get `default`).
    pub rollout: Option<Rollout>,
}

/// A flag's named value.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Variant {
    /// The name rules, rollouts and `default` refer to.
    pub name: String,
    /// The value served, of the flag's type.
    pub value: serde_json::Value,
}

/// One `rules[]` entry: who it matches and what they get.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FlagRule {
    /// Conditions that must all hold (may be empty when `segment` is set).
    pub when: Vec<Condition>,
    /// A segment the context must also belong to.
    pub segment: Option<String>,
    /// What a matching context is served.
    pub serve: Serve,
}

/// What a matching rule serves.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Serve {
    /// Always this variant.
    Variant(String),
    /// A sticky split by the targeting key.
    Rollout(Rollout),
}

/// A sticky split of contexts between variants.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Rollout {
    /// Variant names with percentages (0..=100, adding up to 100), in file
    /// order: a context's bucket falls into one share.
    Split(Vec<(String, f64)>),
    /// The flag's "on" variant for exactly the users the router sends to this
    /// environment's canary (the environment uses the canary strategy).
    FollowCanary(String),
}

impl Operator {
    /// Every operator, in the order the docs list them.
    pub const ALL: [Operator; 16] = [
        Operator::Equals,
        Operator::NotEquals,
        Operator::In,
        Operator::NotIn,
        Operator::StartsWith,
        Operator::EndsWith,
        Operator::Contains,
        Operator::Lt,
        Operator::Lte,
        Operator::Gt,
        Operator::Gte,
        Operator::SemverEq,
        Operator::SemverLt,
        Operator::SemverLte,
        Operator::SemverGt,
        Operator::SemverGte,
    ];

    /// The name as written in the spec, e.g. `semver_gte`.
    pub fn name(self) -> &'static str {
        match self {
            Operator::Equals => "equals",
            Operator::NotEquals => "not_equals",
            Operator::In => "in",
            Operator::NotIn => "not_in",
            Operator::StartsWith => "starts_with",
            Operator::EndsWith => "ends_with",
            Operator::Contains => "contains",
            Operator::Lt => "lt",
            Operator::Lte => "lte",
            Operator::Gt => "gt",
            Operator::Gte => "gte",
            Operator::SemverEq => "semver_eq",
            Operator::SemverLt => "semver_lt",
            Operator::SemverLte => "semver_lte",
            Operator::SemverGt => "semver_gt",
            Operator::SemverGte => "semver_gte",
        }
    }

    /// The operator written as `name`, if any.
    pub fn from_name(name: &str) -> Option<Operator> {
        Operator::ALL
            .into_iter()
            .find(|operator| operator.name() == name)
    }
}

impl FlagType {
    /// The name as written in the spec's `type`.
    pub fn name(self) -> &'static str {
        match self {
            FlagType::Boolean => "boolean",
            FlagType::String => "string",
            FlagType::Number => "number",
            FlagType::Object => "object",
        }
    }
}

impl Flag {
    /// The variant with this name, if any.
    pub fn variant(&self, name: &str) -> Option<&Variant> {
        self.variants.iter().find(|variant| variant.name == name)
    }

    /// The variant `follow_canary` serves to canary users: the one holding
    /// `true` for a boolean flag, else the first declared.
    pub fn on_variant(&self) -> Option<&Variant> {
        self.variants
            .iter()
            .find(|variant| variant.value == serde_json::Value::Bool(true))
            .or_else(|| self.variants.first())
    }
}

impl super::Spec {
    /// The flag with this key, if any.
    pub fn flag(&self, key: &str) -> Option<&Flag> {
        self.flags.iter().find(|flag| flag.key == key)
    }

    /// The segment with this name, if any.
    pub fn segment(&self, name: &str) -> Option<&Segment> {
        self.segments.iter().find(|segment| segment.name == name)
    }
}
