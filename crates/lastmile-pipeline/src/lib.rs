//! The pipeline runner: runs `pipeline.steps` as a DAG of processes in a
//! fresh workspace, streams their masked output to the store, skips steps
//! whose cache key matched an earlier success, and packs the artifact.
//!
//! It does not parse specs (`lastmile-spec`), persist anything itself
//! (`lastmile-store` does, through the `Store` trait) or draw anything but
//! what a [`Reporter`] asks for. Every process a run starts is gone when
//! [`run_pipeline`] returns, whatever the outcome.
//!
//! ```no_run
//! # async fn example(
//! #     spec: &lastmile_spec::Spec,
//! #     store: &dyn lastmile_store::Store,
//! #     blobs: &lastmile_artifact::BlobStore,
//! # ) -> Result<(), lastmile_pipeline::PipelineError> {
//! use std::path::{Path, PathBuf};
//! use lastmile_pipeline::{PlainReporter, RunOptions, run_pipeline};
//!
//! let options = RunOptions::new(PathBuf::from(".lastmile"));
//! let cancel = async { let _ = tokio::signal::ctrl_c().await; };
//! let summary = run_pipeline(spec, Path::new("."), store, blobs, &options,
//!     &PlainReporter::new(), cancel).await?;
//! println!("run #{} {:?}", summary.run_id, summary.status);
//! # Ok(())
//! # }
//! ```

mod cache;
mod dag;
mod mask;
mod process;
mod report;
mod runner;
mod secrets;
mod workspace;

pub use cache::{CacheError, step_key};
pub use mask::Masker;
pub use report::{PlainReporter, Reporter, TerminalReporter};
pub use runner::{
    FailureReport, PipelineError, RunOptions, RunSummary, StepSummary, run_pipeline,
    run_pipeline_with_environment,
};
pub use secrets::{
    Resolved as ResolvedSecrets, SecretError, resolve as resolve_secrets,
    resolve_with_warnings as resolve_secrets_with_warnings,
};
pub use workspace::{
    Workspace, WorkspaceError, in_place as in_place_workspace, prepare as prepare_workspace,
    untracked_note,
};
