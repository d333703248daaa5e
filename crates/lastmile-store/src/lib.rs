//! Durable state for lastmile: runs, steps, logs, artifacts, the cache and
//! the append-only event log, in SQLite (WAL) under `.lastmile/`, plus the
//! content-addressed blob store that holds artifacts.
//!
//! (interface fixed; implementation in progress)

mod model;
mod store;

pub use model::*;
pub use store::Store;

/// Errors from the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Placeholder until the implementation lands.
    #[error("not implemented")]
    Unimplemented,
}
