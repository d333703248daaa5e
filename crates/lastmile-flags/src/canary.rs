//! Where `follow_canary` learns which users a running canary has.

/// Tells `follow_canary` how much of an environment's cohort the canary has.
pub trait CanaryLookup {
    /// Bucket range of the canary in `environment`: users whose bucket (with
    /// the ENVIRONMENT name as salt, exactly as the router computes it) is
    /// below the returned value are on the canary; `None` if no canary runs.
    fn canary_buckets(&self, environment: &str) -> Option<u32>;
}

/// No canary runs anywhere: `follow_canary` flags serve their default.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NoCanary;

impl CanaryLookup for NoCanary {
    fn canary_buckets(&self, _environment: &str) -> Option<u32> {
        None
    }
}

/// A closure `|environment| buckets` is a lookup.
impl<F: Fn(&str) -> Option<u32>> CanaryLookup for F {
    fn canary_buckets(&self, environment: &str) -> Option<u32> {
        self(environment)
    }
}
