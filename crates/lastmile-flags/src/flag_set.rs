//! A spec's flags compiled for evaluation, shared cheaply between threads.

use std::collections::BTreeMap;
use std::sync::Arc;

use lastmile_spec::{Flag, FlagType, Rollout, Segment, Serve};

use crate::bucket::{BUCKETS, bucket};
use crate::canary::CanaryLookup;
use crate::condition::Test;
use crate::context::Context;
use crate::error::EvaluationError;
use crate::evaluation::{Evaluation, Reason};
use crate::overrides::{Override, check_split};

/// Every flag of a spec, compiled; clones share one copy.
#[derive(Debug, Clone)]
pub struct FlagSet {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    flags: BTreeMap<String, CompiledFlag>,
    segments: Vec<CompiledSegment>,
    /// The spec's definitions, before overrides: what `with_overrides` applies to.
    spec_flags: Vec<Flag>,
    spec_segments: Vec<Segment>,
}

#[derive(Debug)]
struct CompiledSegment {
    name: String,
    tests: Vec<Test>,
}

/// One flag ready to evaluate.
#[derive(Debug)]
pub struct CompiledFlag {
    /// The definition in effect (the spec's, with any override applied).
    flag: Flag,
    overridden: bool,
    default: usize,
    rules: Vec<CompiledRule>,
    rollout: Option<CompiledRollout>,
    /// Why the definition cannot be evaluated (only for definitions that did
    /// not come through spec validation); every evaluation reports it.
    problem: Option<String>,
}

#[derive(Debug)]
struct CompiledRule {
    tests: Vec<Test>,
    /// Index into the set's segments.
    segment: Option<usize>,
    serve: CompiledServe,
}

#[derive(Debug)]
enum CompiledServe {
    Variant(usize),
    Rollout(CompiledRollout),
}

#[derive(Debug)]
enum CompiledRollout {
    /// Cumulative bucket thresholds with their variant, in declared order;
    /// a bucket below a threshold (and not below the previous) gets it.
    Split(Vec<(u32, usize)>),
    /// Environment name and the flag's "on" variant.
    FollowCanary(String, usize),
}

impl FlagSet {
    /// Compiles `flags`, whose rules may refer to `segments`.
    ///
    /// Never fails: a definition that skipped spec validation and cannot be
    /// evaluated (an unknown variant or segment, shares not adding up to
    /// 100) answers every evaluation with `EvaluationError::General`.
    pub fn new(flags: &[Flag], segments: &[Segment]) -> FlagSet {
        FlagSet::build(flags.to_vec(), segments.to_vec(), &BTreeMap::new())
    }

    fn build(
        spec_flags: Vec<Flag>,
        spec_segments: Vec<Segment>,
        applied: &BTreeMap<String, Flag>,
    ) -> FlagSet {
        let segments: Vec<CompiledSegment> = spec_segments
            .iter()
            .map(|segment| CompiledSegment {
                name: segment.name.clone(),
                tests: segment.conditions.iter().map(Test::compile).collect(),
            })
            .collect();
        let flags = spec_flags
            .iter()
            .map(|flag| {
                let (flag, overridden) = match applied.get(&flag.key) {
                    Some(changed) => (changed, true),
                    None => (flag, false),
                };
                (
                    flag.key.clone(),
                    CompiledFlag::compile(flag, overridden, &segments),
                )
            })
            .collect();
        FlagSet {
            inner: Arc::new(Inner {
                flags,
                segments,
                spec_flags,
                spec_segments,
            }),
        }
    }

    /// A set with no flags.
    pub fn empty() -> FlagSet {
        FlagSet::new(&[], &[])
    }

    /// The compiled flag with this key, if any.
    pub fn get(&self, key: &str) -> Option<&CompiledFlag> {
        self.inner.flags.get(key)
    }

    /// Every flag key, in sorted order.
    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.inner.flags.keys().map(String::as_str)
    }

    /// How many flags the set holds.
    pub fn len(&self) -> usize {
        self.inner.flags.len()
    }

    /// Whether the set holds no flags.
    pub fn is_empty(&self) -> bool {
        self.inner.flags.is_empty()
    }

    /// Evaluates flag `key` for `context`; `canary` answers `follow_canary`.
    pub fn evaluate(
        &self,
        key: &str,
        context: &Context,
        canary: &dyn CanaryLookup,
    ) -> Result<Evaluation, EvaluationError> {
        let flag = self.get(key).ok_or(EvaluationError::FlagNotFound)?;
        flag.evaluate(context, canary, &self.inner.segments)
    }

    /// A new set: the spec's flags with `overrides` (by flag key) applied.
    ///
    /// Overrides always apply to the spec's definitions, not on top of this
    /// set's earlier overrides, so a flag left out of `overrides` returns to
    /// its spec definition. Fails, naming the flag and the fix, on an
    /// unknown flag, an unknown variant, or shares not adding up to 100.
    pub fn with_overrides(
        &self,
        overrides: &BTreeMap<String, Override>,
    ) -> Result<FlagSet, String> {
        let mut applied = BTreeMap::new();
        for (key, change) in overrides {
            let flag = self
                .inner
                .spec_flags
                .iter()
                .find(|flag| &flag.key == key)
                .ok_or_else(|| self.unknown_flag(key, "override"))?;
            applied.insert(key.clone(), change.apply(flag)?);
        }
        Ok(FlagSet::build(
            self.inner.spec_flags.clone(),
            self.inner.spec_segments.clone(),
            &applied,
        ))
    }

    /// Why `key` cannot be acted on (`override`, `reset`): the spec does
    /// not declare it. Names the closest declared flag and lists them all.
    pub fn unknown_flag(&self, key: &str, action: &str) -> String {
        let suggestion = lastmile_spec::did_you_mean(key, self.keys())
            .map(|close| format!("did you mean `{close}`? "))
            .unwrap_or_default();
        format!(
            "no flag `{key}` to {action}; {suggestion}the spec defines {}",
            self.key_list()
        )
    }

    fn key_list(&self) -> String {
        if self.is_empty() {
            return "no flags".to_owned();
        }
        self.keys()
            .map(|key| format!("`{key}`"))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

impl Default for FlagSet {
    fn default() -> Self {
        FlagSet::empty()
    }
}

impl CompiledFlag {
    fn compile(flag: &Flag, overridden: bool, segments: &[CompiledSegment]) -> CompiledFlag {
        let mut problems: Vec<String> = Vec::new();
        let key = &flag.key;
        let variant = |name: &str, problems: &mut Vec<String>| {
            flag.variants
                .iter()
                .position(|variant| variant.name == name)
                .unwrap_or_else(|| {
                    problems.push(format!(
                        "flag `{key}` refers to variant `{name}`, which it does not have"
                    ));
                    0
                })
        };
        if flag.variants.is_empty() {
            problems.push(format!("flag `{key}` has no variants"));
        }
        let default = variant(&flag.default, &mut problems);
        let rollout = |rollout: &Rollout, problems: &mut Vec<String>| match rollout {
            Rollout::Split(shares) => {
                if let Err(problem) = check_split(key, shares, &flag.variants) {
                    problems.push(problem);
                }
                let mut cumulative = 0.0;
                let mut thresholds = Vec::with_capacity(shares.len());
                for (name, percent) in shares {
                    cumulative += percent;
                    // Percent → buckets: 1% is 100 of the 10,000.
                    let threshold = (cumulative * f64::from(BUCKETS) / 100.0).round();
                    let threshold = if threshold >= f64::from(BUCKETS) {
                        BUCKETS
                    } else {
                        threshold.max(0.0) as u32
                    };
                    thresholds.push((threshold, variant(name, problems)));
                }
                // Rounding must never leave a bucket unserved.
                if let Some(last) = thresholds.last_mut() {
                    last.0 = BUCKETS;
                }
                CompiledRollout::Split(thresholds)
            }
            Rollout::FollowCanary(environment) => {
                let on = flag
                    .on_variant()
                    .map_or(0, |on| variant(&on.name, problems));
                CompiledRollout::FollowCanary(environment.clone(), on)
            }
        };
        let mut rules = Vec::with_capacity(flag.rules.len());
        for rule in &flag.rules {
            let segment = rule.segment.as_ref().map(|name| {
                segments
                    .iter()
                    .position(|segment| &segment.name == name)
                    .unwrap_or_else(|| {
                        problems.push(format!(
                            "flag `{key}` refers to segment `{name}`, which is not defined"
                        ));
                        0
                    })
            });
            let serve = match &rule.serve {
                Serve::Variant(name) => CompiledServe::Variant(variant(name, &mut problems)),
                Serve::Rollout(split) => CompiledServe::Rollout(rollout(split, &mut problems)),
            };
            rules.push(CompiledRule {
                tests: rule.when.iter().map(Test::compile).collect(),
                segment,
                serve,
            });
        }
        let compiled_rollout = flag
            .rollout
            .as_ref()
            .map(|split| rollout(split, &mut problems));
        CompiledFlag {
            flag: flag.clone(),
            overridden,
            default,
            rules,
            rollout: compiled_rollout,
            problem: (!problems.is_empty()).then(|| problems.join("; ")),
        }
    }

    /// The flag's key.
    pub fn key(&self) -> &str {
        &self.flag.key
    }

    /// What the variants hold.
    pub fn flag_type(&self) -> FlagType {
        self.flag.kind
    }

    /// The definition in effect: the spec's, with any override applied.
    pub fn definition(&self) -> &Flag {
        &self.flag
    }

    /// Whether the flag is switched on.
    pub fn enabled(&self) -> bool {
        self.flag.enabled
    }

    /// The default variant's name.
    pub fn default_variant(&self) -> &str {
        &self.flag.default
    }

    /// Whether an override changed this flag.
    pub fn overridden(&self) -> bool {
        self.overridden
    }

    fn evaluate(
        &self,
        context: &Context,
        canary: &dyn CanaryLookup,
        segments: &[CompiledSegment],
    ) -> Result<Evaluation, EvaluationError> {
        if let Some(problem) = &self.problem {
            return Err(EvaluationError::General(problem.clone()));
        }
        if !self.flag.enabled {
            return Ok(self.answer(self.default, Reason::Disabled, None));
        }
        for (index, rule) in self.rules.iter().enumerate() {
            let in_segment = rule.segment.is_none_or(|segment| {
                segments
                    .get(segment)
                    .is_some_and(|segment| segment.tests.iter().all(|test| test.matches(context)))
            });
            if !in_segment || !rule.tests.iter().all(|test| test.matches(context)) {
                continue;
            }
            return Ok(match &rule.serve {
                CompiledServe::Variant(variant) => {
                    self.answer(*variant, Reason::TargetingMatch, Some(index))
                }
                CompiledServe::Rollout(rollout) => {
                    let variant = self.split(rollout, context, canary)?;
                    self.answer(variant, Reason::Split, Some(index))
                }
            });
        }
        Ok(match &self.rollout {
            Some(rollout) => {
                let variant = self.split(rollout, context, canary)?;
                self.answer(variant, Reason::Split, None)
            }
            None if self.rules.is_empty() => self.answer(self.default, Reason::Static, None),
            None => self.answer(self.default, Reason::Default, None),
        })
    }

    /// The variant a rollout gives this context's targeting key.
    fn split(
        &self,
        rollout: &CompiledRollout,
        context: &Context,
        canary: &dyn CanaryLookup,
    ) -> Result<usize, EvaluationError> {
        let key = context
            .targeting_key
            .as_deref()
            .ok_or(EvaluationError::TargetingKeyMissing)?;
        Ok(match rollout {
            CompiledRollout::Split(thresholds) => {
                let position = bucket(&self.flag.key, key);
                thresholds
                    .iter()
                    .find(|(threshold, _)| position < *threshold)
                    .map_or(self.default, |(_, variant)| *variant)
            }
            CompiledRollout::FollowCanary(environment, on) => {
                let position = bucket(environment, key);
                match canary.canary_buckets(environment) {
                    Some(canary) if position < canary => *on,
                    _ => self.default,
                }
            }
        })
    }

    fn answer(&self, variant: usize, reason: Reason, rule: Option<usize>) -> Evaluation {
        let chosen = &self.flag.variants[variant];
        let mut metadata = BTreeMap::new();
        if let Some(rule) = rule {
            metadata.insert("rule".to_owned(), serde_json::Value::from(rule + 1));
        }
        Evaluation {
            key: self.flag.key.clone(),
            value: chosen.value.clone(),
            variant: chosen.name.clone(),
            reason,
            metadata,
        }
    }
}
