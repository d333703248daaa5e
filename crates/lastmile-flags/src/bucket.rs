//! The cohort hash shared with the router (lastmile-cohort):
//! `murmur3_x86_32(salt ":" key, 0) % 10000`.

pub use lastmile_cohort::BUCKETS;

/// The user's bucket in `0..10000` for `salt` (a flag key, or an environment
/// name for `follow_canary`), exactly as the router computes cohorts.
pub fn bucket(salt: &str, key: &str) -> u32 {
    lastmile_cohort::bucket(salt, key.as_bytes())
}
