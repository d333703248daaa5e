//! `lastmile run [DIR]`.

use std::io::IsTerminal;
use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use lastmile_pipeline::{
    PlainReporter, Reporter, RunOptions, RunSummary, TerminalReporter, run_pipeline,
};
use lastmile_store::{RunStatus, counted};
use serde_json::json;

use crate::cli::RunArgs;
use crate::commands::check::load_or_report;
use crate::output::{self, outln};
use crate::state;

/// Prints only notes, on stderr: `--json` prints only the summary at the
/// end, on stdout.
struct QuietReporter;
impl Reporter for QuietReporter {
    fn note(&self, text: &str) {
        eprintln!("{} {text}", output::warn("note:"));
    }
}

pub(crate) fn run(args: &RunArgs, state_dir: Option<&Path>) -> anyhow::Result<ExitCode> {
    let Some(loaded) = load_or_report(&args.dir, "lastmile run examples/hello") else {
        return Ok(ExitCode::from(1));
    };
    let state_dir = state::state_dir(state_dir, &loaded.dir);
    let runtime = runtime()?;
    let build = Build {
        jobs: args.jobs,
        in_place: args.in_place,
        no_cache: args.no_cache,
        verbose: args.verbose,
        quiet: args.json,
    };
    let summary = runtime.block_on(build.run(&loaded, &state_dir))?;
    if args.json {
        outln!("{}", serde_json::to_string_pretty(&summary_json(&summary))?);
    } else {
        print_summary(&summary);
    }
    Ok(match summary.status {
        RunStatus::Succeeded => ExitCode::SUCCESS,
        RunStatus::Cancelled => ExitCode::from(130),
        _ => ExitCode::from(1),
    })
}

/// The async runtime the CLI's commands share.
pub(crate) fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

/// One pipeline run as `run`, `up` and `deploy` start it.
#[derive(Debug, Default)]
pub(crate) struct Build {
    pub(crate) jobs: Option<u16>,
    pub(crate) in_place: bool,
    pub(crate) no_cache: bool,
    pub(crate) verbose: bool,
    /// Print nothing while running.
    pub(crate) quiet: bool,
}

impl Build {
    /// Runs the pipeline of a loaded spec, reporting on stdout.
    pub(crate) async fn run(
        &self,
        loaded: &lastmile_spec::LoadedSpec,
        state_dir: &Path,
    ) -> anyhow::Result<RunSummary> {
        let (store, blobs) = state::open_for_writing(state_dir)?;
        let jobs = match self.jobs {
            Some(jobs) => usize::from(jobs),
            None => std::thread::available_parallelism().map_or(1, usize::from),
        };
        let options = RunOptions {
            jobs,
            in_place: self.in_place,
            no_cache: self.no_cache,
            state_dir: state_dir.to_path_buf(),
            actor: crate::actor::actor(),
            kill_grace: Duration::from_secs(5),
            commit: None,
        };
        let interactive = std::io::stdout().is_terminal() && !self.quiet;
        let reporter: Box<dyn Reporter> = if self.quiet {
            Box::new(QuietReporter)
        } else if interactive {
            Box::new(TerminalReporter::new(self.verbose))
        } else {
            Box::new(PlainReporter::new().without_run_outcome())
        };
        let summary = run_pipeline(
            &loaded.spec,
            &loaded.dir,
            &store,
            &blobs,
            &options,
            reporter.as_ref(),
            interrupted(),
        )
        .await?;
        drop(reporter);
        Ok(summary)
    }
}

/// Resolves on Ctrl-C or SIGTERM: the pipeline then stops every step.
async fn interrupted() {
    lastmile_server::up::stop_requested().await;
    eprintln!(
        "\n{} stopping every running step…",
        output::warn("cancelled:")
    );
}

pub(crate) fn print_summary(summary: &RunSummary) {
    if let Some(failure) = &summary.failure {
        eprintln!(
            "\n{} step `{}` {}",
            output::bad("✗"),
            failure.step,
            failure.reason
        );
        if !failure.last_lines.is_empty() {
            eprintln!(
                "{}",
                output::dim(&format!(
                    "── last {} of `{}` ──",
                    counted(failure.last_lines.len() as u64, "line"),
                    failure.step
                ))
            );
            for line in &failure.last_lines {
                eprintln!("  {line}");
            }
        }
        eprintln!(
            "{}",
            output::dim(&format!(
                "full log: lastmile logs {} {}   workspace kept at {}",
                summary.run_id,
                failure.step,
                summary.workspace.display()
            ))
        );
        // A step failing for a file that never reached the workspace is
        // the usual first-run surprise; say it where the failure is read.
        if let Some(note) = lastmile_pipeline::untracked_note(&summary.untracked) {
            eprintln!("{} {note}", output::warn("note:"));
        }
    }
    outln!("{}", summary_line(summary));
}

/// The run's one last line, whichever reporter ran it:
/// `✓ run #3 succeeded in 1.2s: 3 steps (2 cached), artifact … (4 files, 1.4 KiB)`.
fn summary_line(summary: &RunSummary) -> String {
    let (mark, word) = match summary.status {
        RunStatus::Succeeded => ("✓", "succeeded in"),
        RunStatus::Failed => ("✗", "failed after"),
        RunStatus::Cancelled => ("■", "cancelled after"),
        _ => ("■", "ended after"),
    };
    let headline = format!(
        "{mark} run #{} {word} {}",
        summary.run_id,
        output::duration(summary.duration)
    );
    let headline = match summary.status {
        RunStatus::Succeeded => output::good(&headline),
        RunStatus::Failed => output::bad(&headline),
        _ => output::warn(&headline),
    };
    let cached = summary
        .steps
        .iter()
        .filter(|step| step.status == lastmile_store::StepStatus::Cached)
        .count();
    let mut line = format!(
        "{headline}: {}",
        counted(summary.steps.len() as u64, "step")
    );
    if cached > 0 {
        line.push_str(&format!(" ({cached} cached)"));
    }
    if let Some(artifact) = &summary.artifact {
        line.push_str(&format!(
            ", artifact {} ({}, {})",
            artifact.id,
            counted(artifact.files, "file"),
            output::size(artifact.size)
        ));
    }
    line
}

fn summary_json(summary: &RunSummary) -> serde_json::Value {
    json!({
        "run_id": summary.run_id,
        "status": summary.status,
        "artifact": summary.artifact.as_ref().map(|artifact| json!({
            "id": artifact.id, "size": artifact.size, "files": artifact.files,
        })),
        "steps": summary.steps.iter().map(|step| json!({
            "name": step.name,
            "status": step.status,
            "attempts": step.attempts,
            "exit_code": step.exit_code,
            "duration_ms": step.duration.as_millis() as u64,
        })).collect::<Vec<_>>(),
        "failure": summary.failure.as_ref().map(|failure| json!({
            "step": failure.step, "reason": failure.reason, "last_lines": failure.last_lines,
        })),
        "workspace": summary.workspace,
        "untracked": summary.untracked,
    })
}
