//! Feature flag evaluation: a spec's `flags:` and `segments:` compiled into a
//! [`FlagSet`] that answers "which variant does this user get, and why".
//!
//! Evaluation is pure and fast: no I/O, no locks, no clock. Rollouts hash the
//! targeting key with the same cohort hash the router uses ([`bucket`]), so
//! "10% of users" is a stable set of users, and `follow_canary` serves a
//! flag's "on" variant to exactly the users the router sends to a canary
//! (asked through [`CanaryLookup`]). It answers in OFREP's terms (reasons,
//! error codes), and [`ofrep_router`] serves those answers over HTTP as the
//! OpenFeature Remote Evaluation Protocol, an axum router any OpenFeature
//! SDK's OFREP provider can call. This crate does not store overrides or
//! read the spec file: a [`FlagSource`] hands the router its flags.
//!
//! ```
//! use lastmile_flags::{Context, FlagSet, NoCanary, Reason};
//!
//! let source = "app: shop\npipeline: { steps: [{ name: build, run: make }] }\n\
//!     flags:\n  new-checkout:\n    rules:\n      - when: [{ attribute: country, op: in, value: [SE, NO] }]\n        variant: on\n";
//! let (spec, _) = lastmile_spec::parse("lastmile.yaml", source).expect("valid spec");
//! let flags = FlagSet::new(&spec.flags, &spec.segments);
//!
//! let swede = Context::new().with_key("user-1").with("country", "SE");
//! let answer = flags.evaluate("new-checkout", &swede, &NoCanary).expect("known flag");
//! assert_eq!((answer.value, answer.reason), (serde_json::json!(true), Reason::TargetingMatch));
//!
//! let answer = flags.evaluate("new-checkout", &Context::new(), &NoCanary).expect("known flag");
//! assert_eq!((answer.variant.as_str(), answer.reason), ("off", Reason::Default));
//! ```

mod bucket;
mod canary;
mod condition;
mod context;
mod error;
mod evaluation;
mod flag_set;
mod ofrep;
mod overrides;

pub use bucket::{BUCKETS, bucket};
pub use canary::{CanaryLookup, NoCanary};
pub use context::{Context, TARGETING_KEY};
pub use error::EvaluationError;
pub use evaluation::{Evaluation, Reason};
pub use flag_set::{CompiledFlag, FlagSet};
pub use ofrep::{FlagSource, OfrepConfig, ofrep_router};
pub use overrides::Override;
