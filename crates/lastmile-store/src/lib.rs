//! Durable state for lastmile: runs, steps, logs, artifacts, the cache and
//! the append-only event log, in SQLite (WAL) under `.lastmile/`, plus the
//! content-addressed blob store that holds artifacts.
//!
//! It stores what it is given: it does not hash content, pack artifacts or
//! mask secrets (the pipeline does that before calling in).
//!
//! ```no_run
//! use std::io::Write;
//! use std::path::Path;
//!
//! use lastmile_store::{BlobStore, NewRun, RunStatus, SqliteStore, Store};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let state_dir = Path::new(".lastmile");
//! let (store, report) = SqliteStore::open(state_dir)?;
//! for run in report.interrupted_runs {
//!     eprintln!("run #{run} was interrupted");
//! }
//! let run = store.create_run(&NewRun {
//!     app: "hello".into(),
//!     spec_dir: "/srv/hello".into(),
//!     commit: None,
//!     steps: vec!["build".into()],
//!     actor: "local:alice".into(),
//! })?;
//!
//! let blobs = BlobStore::open(state_dir)?;
//! let mut pending = blobs.begin()?;
//! pending.write_all(b"tar bytes")?;
//! let id = blake3::hash(b"tar bytes").to_hex().to_string();
//! pending.commit(&id)?;
//!
//! store.finish_run(run, RunStatus::Succeeded, Some(&id), None)?;
//! # Ok(())
//! # }
//! ```

mod blob_store;
mod error;
mod model;
mod secret_box;
mod sqlite_store;
mod store;
mod token;

pub use blob_store::{BlobStore, PendingBlob};
pub use error::StoreError;
pub use model::*;
pub use secret_box::{SecretBox, SecretBoxError};
pub use sqlite_store::{OpenReport, SqliteStore, now_millis};
pub use store::Store;
pub use token::{TOKEN_PREFIX, generate_token, hash_token};
