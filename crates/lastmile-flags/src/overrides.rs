//! Runtime overrides: the kill switch, default and rollout changed without
//! a new spec.

use lastmile_spec::{Flag, Rollout, Variant};
use serde::{Deserialize, Serialize};

/// Changes to one flag on top of its spec definition; `None` keeps the spec's.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Override {
    /// Switches the flag on or off (`false` serves the default, reason `DISABLED`).
    pub enabled: Option<bool>,
    /// Replaces the default variant.
    pub default: Option<String>,
    /// Replaces the flag-level rollout: variant names with percentages
    /// adding up to 100, in order.
    pub rollout: Option<Vec<(String, f64)>>,
}

/// Rollout percentages within this of 100 count as 100.
pub(crate) const SUM_TOLERANCE: f64 = 1e-6;

impl Override {
    /// `flag` with this override applied, or why the override does not fit it.
    pub(crate) fn apply(&self, flag: &Flag) -> Result<Flag, String> {
        let mut flag = flag.clone();
        let key = flag.key.clone();
        if let Some(enabled) = self.enabled {
            flag.enabled = enabled;
        }
        if let Some(default) = &self.default {
            if flag.variant(default).is_none() {
                return Err(format!(
                    "flag `{key}` has no variant `{default}` to make the default; its variants are {}",
                    names(&flag.variants)
                ));
            }
            flag.default = default.clone();
        }
        if let Some(shares) = &self.rollout {
            check_split(&key, shares, &flag.variants)?;
            flag.rollout = Some(Rollout::Split(shares.clone()));
        }
        Ok(flag)
    }
}

/// Checks a split: known, distinct variants with percentages in 0..=100
/// adding up to 100.
pub(crate) fn check_split(
    key: &str,
    shares: &[(String, f64)],
    variants: &[Variant],
) -> Result<(), String> {
    if shares.is_empty() {
        return Err(format!(
            "the rollout of flag `{key}` is empty; give each variant a percentage, e.g. [[\"on\", 10], [\"off\", 90]]"
        ));
    }
    for (index, (name, percent)) in shares.iter().enumerate() {
        if !variants.iter().any(|variant| &variant.name == name) {
            return Err(format!(
                "the rollout of flag `{key}` names variant `{name}`, which the flag does not have; its variants are {}",
                names(variants)
            ));
        }
        if shares[..index].iter().any(|(seen, _)| seen == name) {
            return Err(format!(
                "the rollout of flag `{key}` lists variant `{name}` twice; give each variant one percentage"
            ));
        }
        if !percent.is_finite() || !(0.0..=100.0).contains(percent) {
            return Err(format!(
                "the rollout of flag `{key}` gives `{name}` {percent}%; percentages are 0 to 100"
            ));
        }
    }
    let sum: f64 = shares.iter().map(|(_, percent)| percent).sum();
    if (sum - 100.0).abs() > SUM_TOLERANCE {
        return Err(format!(
            "the rollout percentages of flag `{key}` add up to {sum}, not 100; adjust them to total 100"
        ));
    }
    Ok(())
}

fn names(variants: &[Variant]) -> String {
    variants
        .iter()
        .map(|variant| format!("`{}`", variant.name))
        .collect::<Vec<_>>()
        .join(", ")
}
