//! The `lastmile.yaml` model, parser and diagnostics.
//!
//! (interface fixed; implementation in progress)

mod model;

pub use model::*;
