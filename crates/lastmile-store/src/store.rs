//! The `Store` trait: every state change the rest of lastmile makes.

use crate::StoreError;
use crate::model::{
    ArtifactRecord, CacheEntry, Event, LogLine, NewRun, Run, RunId, RunStatus, StepOutcome,
    StepRecord,
};

/// Durable state. The SQLite implementation is the embedded default; a
/// PostgreSQL one can follow behind the same trait.
///
/// Every method that changes state also appends its event in the same
/// transaction, so the event log never disagrees with the rows.
pub trait Store: Send + Sync {
    /// Creates a `running` run with `pending` step rows; event `run.started`.
    fn create_run(&self, new: &NewRun) -> Result<RunId, StoreError>;
    /// Marks a step `running` (attempt number given); event `step.started`.
    fn start_step(&self, run: RunId, step: &str, attempt: u32) -> Result<(), StoreError>;
    /// Records a step's final outcome; event `step.finished`.
    fn finish_step(&self, run: RunId, step: &str, outcome: &StepOutcome) -> Result<(), StoreError>;
    /// Appends already-masked log lines of one step, in order, in one transaction.
    fn append_logs(&self, run: RunId, step: &str, lines: &[LogLine]) -> Result<(), StoreError>;
    /// Finishes a run; `status` must not be `Running`; event `run.finished`.
    /// Steps still `pending`/`running` become `skipped`/`cancelled` in the same transaction.
    fn finish_run(
        &self,
        run: RunId,
        status: RunStatus,
        artifact_id: Option<&str>,
        reason: Option<&str>,
    ) -> Result<(), StoreError>;
    /// Registers an artifact blob already in the CAS (idempotent); event `artifact.stored`.
    fn record_artifact(&self, artifact: &ArtifactRecord) -> Result<(), StoreError>;
    /// Looks a cache key up.
    fn cache_get(&self, key: &str) -> Result<Option<CacheEntry>, StoreError>;
    /// Stores (or replaces) a cache entry.
    fn cache_put(&self, entry: &CacheEntry) -> Result<(), StoreError>;
    /// Runs, newest first, at most `limit`.
    fn list_runs(&self, limit: usize) -> Result<Vec<Run>, StoreError>;
    /// One run.
    fn get_run(&self, run: RunId) -> Result<Option<Run>, StoreError>;
    /// Steps of a run in file order.
    fn list_steps(&self, run: RunId) -> Result<Vec<StepRecord>, StoreError>;
    /// Log lines of a run, optionally of one step, in order, as `(step, line)`.
    fn read_logs(
        &self,
        run: RunId,
        step: Option<&str>,
    ) -> Result<Vec<(String, LogLine)>, StoreError>;
    /// Artifacts, newest first.
    fn list_artifacts(&self, limit: usize) -> Result<Vec<ArtifactRecord>, StoreError>;
    /// Events, oldest first, with id greater than `after`.
    fn list_events(&self, after: i64, limit: usize) -> Result<Vec<Event>, StoreError>;
}
