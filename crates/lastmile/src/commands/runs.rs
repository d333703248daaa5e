//! `lastmile runs`.

use std::path::Path;
use std::process::ExitCode;

use lastmile_store::{RunStatus, Store};

use crate::cli::RunsArgs;
use crate::output::{self, outln};
use crate::state;

pub(crate) fn runs(args: &RunsArgs, state_dir: Option<&Path>) -> anyhow::Result<ExitCode> {
    let (store, _) = state::open_existing(state_dir, &args.state.dir)?;
    let runs = store.list_runs(args.limit)?;
    if args.json {
        outln!("{}", serde_json::to_string_pretty(&runs)?);
        return Ok(ExitCode::SUCCESS);
    }
    if runs.is_empty() {
        outln!("no runs yet: start one with `lastmile run`");
        return Ok(ExitCode::SUCCESS);
    }
    outln!(
        "{:<6} {:<12} {:<14} {:<21} {:>8}  {:<12}  ARTIFACT",
        "RUN",
        "STATUS",
        "APP",
        "STARTED",
        "TOOK",
        "COMMIT"
    );
    for run in runs {
        let status = format!("{:<12}", run.status.as_str());
        outln!(
            "{:<6} {} {:<14} {:<21} {:>8}  {:<12}  {}",
            format!("#{}", run.id),
            paint_status(run.status, &status),
            run.app,
            output::timestamp(run.started_at),
            output::span(Some(run.started_at), run.finished_at),
            run.commit
                .as_deref()
                .map_or("-", |commit| &commit[..commit.len().min(12)]),
            run.artifact_id
                .as_deref()
                .map_or("-", |id| &id[..id.len().min(16)]),
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn paint_status(status: RunStatus, text: &str) -> String {
    match status {
        RunStatus::Succeeded => output::good(text),
        RunStatus::Failed => output::bad(text),
        RunStatus::Running => text.to_string(),
        RunStatus::Cancelled | RunStatus::Interrupted => output::warn(text),
    }
}
