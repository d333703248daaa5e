//! Durable state for lastmile: runs, steps, logs, artifacts, the cache and
//! the append-only event log, in SQLite (WAL) under `.lastmile/`, plus the
//! content-addressed blob store that holds artifacts.
//!
//! It stores what it is given: it does not hash content, pack artifacts or
//! mask secrets (the pipeline does that before calling in).
//!
//! ```no_run
//! use std::io::Write;
//! use lastmile_store::BlobStore;
//!
//! # fn main() -> Result<(), lastmile_store::StoreError> {
//! let blobs = BlobStore::open(std::path::Path::new(".lastmile"))?;
//! let mut pending = blobs.begin()?;
//! pending.write_all(b"tar bytes").map_err(|e| lastmile_store::StoreError::Io {
//!     action: "write the blob",
//!     path: ".lastmile/blobs".into(),
//!     source: e,
//! })?;
//! let id = blake3::hash(b"tar bytes").to_hex().to_string();
//! let path = pending.commit(&id)?;
//! # let _ = path;
//! # Ok(())
//! # }
//! ```

mod blob_store;
mod error;
mod model;
mod sqlite_store;
mod store;

pub use blob_store::{BlobStore, PendingBlob};
pub use error::StoreError;
pub use model::*;
pub use sqlite_store::{OpenReport, SqliteStore};
pub use store::Store;
