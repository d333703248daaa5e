//! The `Store` trait: every state change the rest of lastmile makes.

use crate::model::{
    ArtifactRecord, CacheEntry, CommitRecord, CommitStatus, DeploymentKind, DeploymentRecord,
    DeploymentStatus, DeploymentStep, EnvironmentState, Event, FlagOverrideRecord, LogLine, NewRun,
    Phase, ReleaseRecord, Role, Run, RunId, RunStatus, SealedSecret, SecretRecord, StepOutcome,
    StepRecord, TokenRecord,
};
use crate::{StepProcess, StoreError};

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
    /// Records the process group the step's current attempt leads, so that
    /// the next open of the store can stop it if this process dies first.
    /// No event: it is bookkeeping for that clean-up, not a change of state
    /// anyone reads.
    fn record_step_process(
        &self,
        run: RunId,
        step: &str,
        process: StepProcess,
    ) -> Result<(), StoreError>;
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
    /// Events about one subject (`deployment/12`), of one `kind` when given,
    /// oldest first, with id greater than `after`.
    fn list_events_about(
        &self,
        subject: &str,
        kind: Option<&str>,
        after: i64,
        limit: usize,
    ) -> Result<Vec<Event>, StoreError>;
    /// Appends an event on its own (a decision, an approval, a
    /// notification sent); returns its id.
    fn record_event(
        &self,
        kind: &str,
        subject: &str,
        actor: &str,
        data: &serde_json::Value,
    ) -> Result<i64, StoreError>;

    /// Creates the release for this artifact and spec, or returns the one
    /// that exists (same content, same id); event `release.created`.
    fn create_release(
        &self,
        app: &str,
        artifact_id: &str,
        run_id: Option<RunId>,
        spec_source: &str,
    ) -> Result<ReleaseRecord, StoreError>;
    /// Releases, newest first.
    fn list_releases(&self, limit: usize) -> Result<Vec<ReleaseRecord>, StoreError>;
    /// One release.
    fn get_release(&self, id: &str) -> Result<Option<ReleaseRecord>, StoreError>;
    /// What an environment serves; `None` before its first deployment.
    fn get_environment(&self, name: &str) -> Result<Option<EnvironmentState>, StoreError>;
    /// Starts a deployment; refused while another one runs in the same
    /// environment. Event `deployment.started`.
    fn begin_deployment(
        &self,
        environment: &str,
        from_release: Option<&str>,
        to_release: &str,
        strategy: DeploymentKind,
        actor: &str,
    ) -> Result<DeploymentRecord, StoreError>;
    /// Records the next phase and, if given, the environment's new state, in
    /// one transaction — before the engine acts on it.
    fn advance_deployment(
        &self,
        deployment: i64,
        phase: &Phase,
        detail: &serde_json::Value,
        environment: Option<&EnvironmentState>,
    ) -> Result<(), StoreError>;
    /// Ends a deployment (status must not be `Running`) with why it failed
    /// and the last analysis behind that, and the environment's final state
    /// if given, in one transaction. Event `deployment.finished` (with the
    /// environment, the reason and the analysis).
    fn finish_deployment(
        &self,
        deployment: i64,
        status: DeploymentStatus,
        reason: Option<&str>,
        analysis: Option<&serde_json::Value>,
        environment: Option<&EnvironmentState>,
    ) -> Result<(), StoreError>;
    /// Writes an environment's state outside a deployment (housekeeping).
    fn put_environment(&self, environment: &EnvironmentState) -> Result<(), StoreError>;
    /// The running deployment of an environment, if any.
    fn running_deployment(&self, environment: &str)
    -> Result<Option<DeploymentRecord>, StoreError>;
    /// The newest deployment of an environment, running or finished.
    fn last_deployment(&self, environment: &str) -> Result<Option<DeploymentRecord>, StoreError>;
    /// One deployment by id.
    fn get_deployment(&self, id: i64) -> Result<Option<DeploymentRecord>, StoreError>;
    /// Deployments, newest first.
    fn list_deployments(&self, limit: usize) -> Result<Vec<DeploymentRecord>, StoreError>;
    /// A deployment's recorded transitions, in order.
    fn deployment_steps(&self, deployment: i64) -> Result<Vec<DeploymentStep>, StoreError>;
    /// Sets a flag's runtime override (JSON, validated by the caller);
    /// event `flag.overridden` with who.
    fn set_flag_override(
        &self,
        key: &str,
        value: &serde_json::Value,
        actor: &str,
    ) -> Result<(), StoreError>;
    /// Removes a flag's override, back to lastmile.yaml; event `flag.reset`.
    /// Returns whether there was one.
    fn clear_flag_override(&self, key: &str, actor: &str) -> Result<bool, StoreError>;
    /// Every override: key → (value, who, when).
    fn flag_overrides(&self) -> Result<Vec<FlagOverrideRecord>, StoreError>;

    /// Stores a new API token by its hash (see `hash_token`); event
    /// `token.created` (without the hash). A taken name is `TokenNameTaken`.
    fn create_token(
        &self,
        name: &str,
        role: Role,
        hash: &str,
        actor: &str,
    ) -> Result<TokenRecord, StoreError>;
    /// The unrevoked token with this hash, if any; notes its use in
    /// `last_used_at` (at most once a minute, and without an event).
    fn token_by_hash(&self, hash: &str) -> Result<Option<TokenRecord>, StoreError>;
    /// Every token, revoked ones included, oldest first.
    fn list_tokens(&self) -> Result<Vec<TokenRecord>, StoreError>;
    /// Revokes a token by name; event `token.revoked`. False when there is
    /// no such token or it was already revoked.
    fn revoke_token(&self, name: &str, actor: &str) -> Result<bool, StoreError>;
    /// Sets (or replaces) a sealed secret; event `secret.set` naming only
    /// the app and the secret.
    fn put_secret(
        &self,
        app: &str,
        name: &str,
        nonce: &[u8],
        ciphertext: &[u8],
        actor: &str,
    ) -> Result<(), StoreError>;
    /// A sealed secret as `(nonce, ciphertext)`.
    fn get_secret(&self, app: &str, name: &str) -> Result<Option<SealedSecret>, StoreError>;
    /// An app's secrets by name, without their values.
    fn list_secrets(&self, app: &str) -> Result<Vec<SecretRecord>, StoreError>;
    /// Deletes a secret; event `secret.deleted`. Returns whether there was one.
    fn delete_secret(&self, app: &str, name: &str, actor: &str) -> Result<bool, StoreError>;
    /// Records a commit the first time it is seen (true, event
    /// `commit.seen`); a known commit is left as it is (false).
    fn record_commit(&self, commit: &CommitRecord) -> Result<bool, StoreError>;
    /// Sets a commit's status; each `Some` field overwrites, each `None`
    /// keeps what is stored. Event `commit.updated`. An unknown commit is
    /// `CommitNotFound`.
    fn update_commit(
        &self,
        app: &str,
        sha: &str,
        status: CommitStatus,
        run_id: Option<RunId>,
        release_id: Option<&str>,
        error: Option<&str>,
    ) -> Result<(), StoreError>;
    /// One commit.
    fn get_commit(&self, app: &str, sha: &str) -> Result<Option<CommitRecord>, StoreError>;
    /// An app's commits, newest seen first, at most `limit`.
    fn list_commits(&self, app: &str, limit: usize) -> Result<Vec<CommitRecord>, StoreError>;
}
