//! How a run is shown while it happens: the [`Reporter`] trait, whose methods
//! are the phases of a run, and its two renderings.
//!
//! Reporters only display. What a run did is in the store and in the
//! [`RunSummary`] that `run_pipeline` returns; a reporter that prints nothing
//! loses nothing.

mod plain;
mod terminal;

use lastmile_artifact::Packed;
use lastmile_store::{LogStream, RunId};

use crate::runner::{RunSummary, StepSummary};

pub use plain::PlainReporter;
pub use terminal::TerminalReporter;

/// Receives the phases of a run as they happen. Every method defaults to
/// doing nothing, so a reporter implements only what it shows. Calls come
/// from the task driving the run, one at a time, in the order things happened.
pub trait Reporter: Send + Sync {
    /// The run row exists; `steps` are the step names in file order.
    fn run_started(&self, run: RunId, app: &str, steps: &[String]) {
        let _ = (run, app, steps);
    }

    /// Something the user should know before the steps start (untracked
    /// files the clean workspace leaves out).
    fn note(&self, text: &str) {
        let _ = text;
    }

    /// An attempt of a step started (`attempt` counts from 1).
    fn step_started(&self, step: &str, attempt: u32) {
        let _ = (step, attempt);
    }

    /// An attempt failed and the step will run again as attempt `attempt`
    /// of `max_attempts`; `reason` says why the previous one failed.
    fn step_retrying(&self, step: &str, attempt: u32, max_attempts: u32, reason: &str) {
        let _ = (step, attempt, max_attempts, reason);
    }

    /// One line a step printed (or lastmile wrote about it), already masked.
    fn step_output(&self, step: &str, stream: LogStream, line: &str) {
        let _ = (step, stream, line);
    }

    /// A step that ran reached its final status.
    fn step_finished(&self, step: &StepSummary) {
        let _ = step;
    }

    /// A step was skipped because its cache key matched an earlier success.
    fn step_cached(&self, step: &str) {
        let _ = step;
    }

    /// Every step succeeded; the artifact is being packed.
    fn packaging_started(&self) {}

    /// The artifact is packed and recorded.
    fn packaging_finished(&self, artifact: &Packed) {
        let _ = artifact;
    }

    /// The run is over; the summary is also what `run_pipeline` returns.
    fn run_finished(&self, summary: &RunSummary) {
        let _ = summary;
    }
}
