//! The `lastmile.yaml` model, its parser, and diagnostics that point at the
//! offending token.
//!
//! This crate reads and validates a spec; it does not run anything described
//! in it. Every problem found becomes a [`SpecDiagnostic`] with file, line,
//! column and a hint, and all of them are reported at once ([`SpecErrors`]).
//! Sections reserved for later versions (`monitor`, `drills`, `hosts`) are
//! accepted with a warning. Feature flags (`flags`, `segments`) are checked
//! here and evaluated by `lastmile-flags`.
//!
//! ```
//! let source = "app: hello\npipeline:\n  steps:\n    - { name: build, run: make }\n";
//! let (spec, warnings) = lastmile_spec::parse("lastmile.yaml", source).expect("valid spec");
//! assert_eq!(spec.app, "hello");
//! assert!(warnings.is_empty());
//!
//! let errors = lastmile_spec::parse("lastmile.yaml", "app: hello\npipeline: {}\n").unwrap_err();
//! assert_eq!(errors.diagnostics()[0].code, "spec::missing-key");
//! ```

mod diagnostic;
mod load;
mod model;
mod node;
mod reader;
mod scalar;
mod semver;

pub use diagnostic::{Severity, SpecDiagnostic, SpecErrors, render_warnings};
pub use load::{LoadError, LoadedSpec, SPEC_FILE, load, parse};
pub use model::*;
pub use scalar::{did_you_mean, parse_duration};
pub use semver::{Identifier, SemVer};
