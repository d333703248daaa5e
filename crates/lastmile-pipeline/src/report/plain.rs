//! One line per event on stdout, for logs, CI and pipes.

use std::fmt;
use std::io::{self, Write};
use std::sync::Mutex;

use lastmile_artifact::Packed;
use lastmile_store::{LogStream, RunId, RunStatus, StepStatus, counted};

use crate::process::format_duration;
use crate::report::Reporter;
use crate::runner::{RunSummary, StepSummary};

/// Writes `[step] line` for output and one line per step outcome; no colors,
/// no cursor movement.
pub struct PlainReporter {
    out: Mutex<Box<dyn Write + Send>>,
    /// Whether the run's last line (`✓ run #3 succeeded in 1.2s`) is written.
    run_outcome: bool,
}

impl fmt::Debug for PlainReporter {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter
            .debug_struct("PlainReporter")
            .finish_non_exhaustive()
    }
}

impl Default for PlainReporter {
    fn default() -> Self {
        Self::new()
    }
}

impl PlainReporter {
    /// A reporter writing to stdout.
    pub fn new() -> Self {
        Self::to_writer(io::stdout())
    }

    /// A reporter writing to any writer (a file, a buffer in tests).
    pub fn to_writer(out: impl Write + Send + 'static) -> Self {
        Self {
            out: Mutex::new(Box::new(out)),
            run_outcome: true,
        }
    }

    /// Leaves out the run's last line, for a caller that prints its own
    /// summary of the run (the CLI does), so success is not said twice.
    pub fn without_run_outcome(mut self) -> Self {
        self.run_outcome = false;
        self
    }

    fn line(&self, text: fmt::Arguments<'_>) {
        // A poisoned lock only means another call panicked mid-line; keep going.
        let mut out = self
            .out
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        // Output is best effort: a closed stdout must not fail the run.
        let _ = out.write_fmt(text).and_then(|()| out.write_all(b"\n"));
    }
}

impl Reporter for PlainReporter {
    fn note(&self, text: &str) {
        self.line(format_args!("note: {text}"));
    }

    fn run_started(&self, run: RunId, app: &str, steps: &[String]) {
        let steps = counted(steps.len() as u64, "step");
        self.line(format_args!("▶ run #{run} of {app}: {steps}"));
    }

    fn step_started(&self, step: &str, attempt: u32) {
        if attempt == 1 {
            self.line(format_args!("[{step}] ▶ started"));
        }
    }

    fn step_retrying(&self, step: &str, attempt: u32, max_attempts: u32, reason: &str) {
        self.line(format_args!(
            "[{step}] ⟳ retrying ({attempt}/{max_attempts}): {reason}"
        ));
    }

    fn step_output(&self, step: &str, stream: LogStream, line: &str) {
        match stream {
            LogStream::System => self.line(format_args!("[{step}] ! {line}")),
            LogStream::Stdout | LogStream::Stderr => self.line(format_args!("[{step}] {line}")),
        }
    }

    fn step_finished(&self, step: &StepSummary) {
        self.line(format_args!("[{}] {}", step.name, outcome(step)));
    }

    fn step_cached(&self, step: &str) {
        self.line(format_args!("[{step}] ↷ cached"));
    }

    fn packaging_started(&self) {
        self.line(format_args!("[artifact] packing"));
    }

    fn packaging_finished(&self, artifact: &Packed) {
        self.line(format_args!(
            "[artifact] ✓ {} ({}, {})",
            artifact.id,
            counted(artifact.files, "file"),
            counted(artifact.size, "byte")
        ));
    }

    fn run_finished(&self, summary: &RunSummary) {
        if !self.run_outcome {
            return;
        }
        let run = summary.run_id;
        let took = format_duration(summary.duration);
        match (summary.status, &summary.failure) {
            (RunStatus::Succeeded, _) => {
                self.line(format_args!("✓ run #{run} succeeded in {took}"))
            }
            (RunStatus::Cancelled, _) => {
                self.line(format_args!("■ run #{run} cancelled after {took}"))
            }
            (_, Some(failure)) => self.line(format_args!(
                "✗ run #{run} failed after {took}: step `{}` {}",
                failure.step, failure.reason
            )),
            (_, None) => self.line(format_args!("✗ run #{run} failed after {took}")),
        }
    }
}

/// `✓ succeeded in 1.2s`, `✗ failed (exit 1) after 2 attempts`, …
pub(crate) fn outcome(step: &StepSummary) -> String {
    let took = format_duration(step.duration);
    let after = if step.attempts > 1 {
        format!("after {} attempts", step.attempts)
    } else {
        format!("after {took}")
    };
    match step.status {
        StepStatus::Succeeded => format!("✓ succeeded in {took}"),
        StepStatus::Failed => match step.exit_code {
            Some(code) => format!("✗ failed (exit {code}) {after}"),
            None => format!("✗ failed {after}"),
        },
        StepStatus::TimedOut => format!("✗ timed out {after}"),
        StepStatus::Cached => "↷ cached".to_owned(),
        StepStatus::Cancelled => format!("■ cancelled after {took}"),
        StepStatus::Skipped => "· skipped".to_owned(),
        StepStatus::Pending | StepStatus::Running | StepStatus::Interrupted => {
            format!("{:?}", step.status).to_lowercase()
        }
    }
}
