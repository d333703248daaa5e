//! Feature flags in `lastmile up`: the flags of `lastmile.yaml` with the
//! runtime overrides from the store on top, swapped atomically so the OFREP
//! endpoints read them without a lock, and the canary share each
//! environment's router applies, for `follow_canary`.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use arc_swap::ArcSwap;
use lastmile_flags::{CanaryLookup, FlagSet, Override};
use lastmile_spec::Spec;
use lastmile_store::{FlagOverrideRecord, Store};
use serde_json::{Value, json};

/// The flags in force and what they were built from.
#[derive(Debug)]
pub struct Flags {
    current: ArcSwap<(FlagSet, u64)>,
    /// The spec's flags without overrides (overrides always apply to these).
    baseline: RwLock<FlagSet>,
    version: AtomicU64,
    canary: CanaryBuckets,
}

/// Environment → cohort buckets below which users are on the canary.
#[derive(Debug, Default)]
pub struct CanaryBuckets(RwLock<HashMap<String, u32>>);

impl CanaryLookup for CanaryBuckets {
    fn canary_buckets(&self, environment: &str) -> Option<u32> {
        self.0
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(environment)
            .copied()
    }
}

impl CanaryBuckets {
    /// Replaces the whole map (from the running canaries).
    pub fn set(&self, buckets: HashMap<String, u32>) {
        *self
            .0
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = buckets;
    }
}

fn overrides_map(records: &[FlagOverrideRecord]) -> Result<BTreeMap<String, Override>, String> {
    records
        .iter()
        .map(|record| {
            serde_json::from_value::<Override>(record.value.clone())
                .map(|change| (record.key.clone(), change))
                .map_err(|error| {
                    format!(
                        "the stored override of flag `{}` is unreadable: {error}",
                        record.key
                    )
                })
        })
        .collect()
}

impl Flags {
    /// The spec's flags with the stored overrides. Overrides that no
    /// longer fit the spec (a flag or variant removed) are skipped and
    /// reported.
    pub fn new(spec: &Spec, store: &dyn Store) -> (Flags, Vec<String>) {
        let flags = Flags {
            current: ArcSwap::from_pointee((FlagSet::empty(), 0)),
            baseline: RwLock::new(FlagSet::empty()),
            version: AtomicU64::new(0),
            canary: CanaryBuckets::default(),
        };
        let problems = flags.reload(spec, store);
        (flags, problems)
    }

    /// Rebuilds from `spec` and the store's overrides; returns the
    /// overrides that could not be applied.
    pub fn reload(&self, spec: &Spec, store: &dyn Store) -> Vec<String> {
        let baseline = FlagSet::new(&spec.flags, &spec.segments);
        let mut problems = Vec::new();
        let records = store.flag_overrides().unwrap_or_else(|error| {
            problems.push(format!("cannot read flag overrides: {error}"));
            Vec::new()
        });
        let mut usable = BTreeMap::new();
        for record in &records {
            match overrides_map(std::slice::from_ref(record))
                .and_then(|one| baseline.with_overrides(&one).map(|_| one))
            {
                Ok(one) => usable.extend(one),
                Err(problem) => problems.push(problem),
            }
        }
        let set = baseline
            .with_overrides(&usable)
            .unwrap_or_else(|_| baseline.clone());
        *self
            .baseline
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = baseline;
        self.publish(set);
        problems
    }

    fn publish(&self, set: FlagSet) {
        let version = self.version.fetch_add(1, Ordering::SeqCst) + 1;
        self.current.store(Arc::new((set, version)));
    }

    /// The flags in force and their version (changes on every change).
    pub fn current(&self) -> (FlagSet, u64) {
        let current = self.current.load();
        (current.0.clone(), current.1)
    }

    /// Where `follow_canary` reads canary shares.
    pub fn canary_buckets(&self) -> &CanaryBuckets {
        &self.canary
    }

    /// Merges `change` into the flag's stored override, checks it against
    /// the spec, stores it (an audited event naming `actor`) and publishes.
    pub fn apply_override(
        &self,
        store: &dyn Store,
        key: &str,
        change: &Override,
        actor: &str,
    ) -> Result<Value, String> {
        let records = store.flag_overrides().map_err(|error| error.to_string())?;
        let mut overrides = overrides_map(&records)?;
        let merged = overrides.entry(key.to_string()).or_default();
        if change.enabled.is_some() {
            merged.enabled = change.enabled;
        }
        if change.default.is_some() {
            merged.default.clone_from(&change.default);
        }
        if change.rollout.is_some() {
            merged.rollout.clone_from(&change.rollout);
        }
        let merged = merged.clone();
        let baseline = self
            .baseline
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        let set = baseline.with_overrides(&overrides)?;
        let value = serde_json::to_value(&merged).map_err(|error| error.to_string())?;
        store
            .set_flag_override(key, &value, actor)
            .map_err(|error| error.to_string())?;
        self.publish(set);
        Ok(value)
    }

    /// Drops the flag's override: back to `lastmile.yaml`.
    ///
    /// A flag the spec does not declare is refused like an override of one
    /// (naming the closest declared flag), unless an override of it is
    /// still stored from when it was declared: resetting clears that.
    pub fn reset(&self, store: &dyn Store, key: &str, actor: &str) -> Result<bool, String> {
        let declared = self
            .baseline
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(key)
            .is_some();
        if !declared {
            let records = store.flag_overrides().map_err(|error| error.to_string())?;
            if !records.iter().any(|record| record.key == key) {
                return Err(self.current().0.unknown_flag(key, "reset"));
            }
        }
        let removed = store
            .clear_flag_override(key, actor)
            .map_err(|error| error.to_string())?;
        let records = store.flag_overrides().map_err(|error| error.to_string())?;
        let overrides = overrides_map(&records)?;
        let baseline = self
            .baseline
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        self.publish(baseline.with_overrides(&overrides)?);
        Ok(removed)
    }

    /// For `lastmile status` and `lastmile flag list`.
    pub fn status(&self, store: &dyn Store) -> Vec<Value> {
        let (set, _) = self.current();
        let overrides: HashMap<String, FlagOverrideRecord> = store
            .flag_overrides()
            .unwrap_or_default()
            .into_iter()
            .map(|record| (record.key.clone(), record))
            .collect();
        set.keys()
            .filter_map(|key| set.get(key))
            .map(|flag| {
                let drift = overrides.get(flag.key());
                json!({
                    "key": flag.key(),
                    "type": flag.flag_type().name(),
                    "enabled": flag.enabled(),
                    "default": flag.default_variant(),
                    "rules": flag.definition().rules.len(),
                    "rollout": flag.definition().rollout,
                    "override": drift.map(|record| json!({
                        "value": record.value,
                        "by": record.actor,
                        "at": record.updated_at,
                    })),
                })
            })
            .collect()
    }
}

impl lastmile_flags::FlagSource for Flags {
    fn snapshot(&self) -> (FlagSet, u64) {
        self.current()
    }

    fn canary(&self) -> &dyn CanaryLookup {
        &self.canary
    }
}
