//! Durable state for lastmile: runs, steps, logs, artifacts, the cache,
//! releases and deployments, API tokens, sealed secrets, watched commits and
//! the append-only event log, in SQLite (WAL) under `.lastmile/`, plus
//! `SecretBox`, which seals secret values with a key file kept beside the
//! database. Artifacts' bytes live in `lastmile-artifact`'s blob store; this
//! store records their ids.
//!
//! It stores what it is given: it does not hash content, pack artifacts or
//! mask secrets (the pipeline does that before calling in). It never holds a
//! token (only `hash_token`'s hash) nor a secret in the clear (only what
//! `SecretBox::seal` returns), and its events name secrets and tokens
//! without their values or hashes. It does not check roles: callers do.
//!
//! ```no_run
//! use std::path::Path;
//!
//! use lastmile_store::{
//!     NewRun, Role, RunStatus, SecretBox, SqliteStore, Store, generate_token, hash_token,
//! };
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
//! // The id of the artifact the run packed (`lastmile_artifact::pack`).
//! let id = blake3::hash(b"tar bytes").to_hex().to_string();
//! store.finish_run(run, RunStatus::Succeeded, Some(&id), None)?;
//!
//! let secrets = SecretBox::open_or_create(&state_dir.join("secrets.key"))?;
//! let (nonce, sealed) = secrets.seal("hello/DATABASE_URL", b"postgres://db/hello");
//! store.put_secret("hello", "DATABASE_URL", &nonce, &sealed, "local:alice")?;
//!
//! let token = generate_token(); // shown once, to whoever asked for it
//! store.create_token("ci", Role::Deployer, &hash_token(&token), "local:alice")?;
//! assert!(store.token_by_hash(&hash_token(&token))?.is_some());
//! # Ok(())
//! # }
//! ```

mod error;
mod label;
mod model;
mod secret_box;
mod sqlite_store;
mod step_process;
mod store;
mod token;

pub use error::StoreError;
pub use label::{SHORT_ID_LEN, counted, release_label, short_id};
pub use model::*;
pub use secret_box::{STATE_DIR_KEY_FILE, SecretBox, SecretBoxError, key_file_for};
pub use sqlite_store::{OpenReport, SqliteStore, now_millis};
pub use step_process::StepProcess;
pub use store::Store;
pub use token::{TOKEN_PREFIX, generate_token, hash_token};
