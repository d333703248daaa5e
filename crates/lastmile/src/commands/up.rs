//! `lastmile up [DIR]`: build if needed, deploy, serve, stay in the
//! foreground.

use std::path::Path;
use std::process::ExitCode;

use crate::cli::UpArgs;
use crate::commands::check::load_or_report;
use crate::commands::run::{Build, print_summary, runtime};
use crate::output::{self, outln};
use crate::state;

/// Prints the controller's progress lines.
#[derive(Debug)]
pub(crate) struct Printer;

impl lastmile_server::Progress for Printer {
    fn line(&self, text: &str) {
        outln!("{text}");
    }

    fn warn(&self, text: &str) {
        eprintln!("{} {text}", output::warn("warning:"));
    }
}

pub(crate) fn up(args: &UpArgs, state_dir: Option<&Path>) -> anyhow::Result<ExitCode> {
    let Some(loaded) = load_or_report(&args.dir, "lastmile up examples/hello") else {
        return Ok(ExitCode::from(1));
    };
    let state_dir = state::state_dir(state_dir, &loaded.dir);
    // Before anything runs: one `up` per state directory.
    let lock = match lastmile_server::up_lock::UpLock::claim(&state_dir) {
        Ok(lock) => lock,
        Err(lastmile_server::up_lock::UpLockError::Held(running)) => {
            anyhow::bail!(already_up(&running, &args.dir))
        }
        Err(error) => return Err(error.into()),
    };
    let runtime = runtime()?;
    // A process taking over from a restarting `up` serves what was
    // deployed; it does not build.
    let artifact = if lastmile_server::up::is_handover() {
        None
    } else {
        let build = Build {
            jobs: args.jobs,
            in_place: args.in_place,
            ..Build::default()
        };
        let summary = runtime.block_on(build.run(&loaded, &state_dir))?;
        print_summary(&summary);
        match summary.status {
            lastmile_store::RunStatus::Succeeded => {}
            lastmile_store::RunStatus::Cancelled => return Ok(ExitCode::from(130)),
            _ => return Ok(ExitCode::from(1)),
        }
        let Some(artifact) = summary.artifact else {
            anyhow::bail!(
                "the pipeline packed no artifact, so there is nothing to deploy: add `artifact.paths` to lastmile.yaml"
            );
        };
        Some(lastmile_server::up::BuiltArtifact {
            id: artifact.id,
            run_id: summary.run_id,
        })
    };
    let actor = crate::actor::actor();
    let options = lastmile_server::up::UpOptions {
        loaded,
        secret_key_file: state::secret_key_file(&state_dir, args.secret_key_file.as_deref()),
        state_dir,
        environment: args.env.clone(),
        listen: args.listen,
        control: args.control,
        artifact,
        access_log: args.access_log,
        approved_by: args.approve.then(|| actor.clone()),
        local_actor: actor,
        lock,
    };
    let state_dir = options.state_dir.clone();
    let ended = runtime.block_on(lastmile_server::up::run(
        options,
        std::sync::Arc::new(Printer),
    ))?;
    if ended == lastmile_server::up::Ended::StaysInForeground {
        // Nothing of the process that served may outlive it here: no
        // listener, no connection, no task.
        runtime.shutdown_timeout(std::time::Duration::from_secs(1));
        lastmile_server::session::keep(&state_dir, &Printer)?;
    }
    Ok(ExitCode::SUCCESS)
}

/// Why a second `lastmile up` on the same state directory does not start,
/// and how to reach the one that runs.
fn already_up(running: &lastmile_server::up_lock::RunningUp, dir: &Path) -> String {
    let dir_arg = if dir == Path::new(".") {
        String::new()
    } else {
        format!(" --dir {}", output::shell_word(&dir.display().to_string()))
    };
    let pid = running
        .pid
        .map(|pid| format!("pid {pid}"))
        .unwrap_or_else(|| "its pid is not recorded".to_string());
    match running.control {
        Some(control) => format!(
            "`lastmile up` already runs for {} ({pid}; control API and dashboard on http://{control}): \
             `lastmile status{dir_arg}` shows what it serves, `lastmile down{dir_arg}` stops it",
            dir.display()
        ),
        None => format!(
            "`lastmile up` is already starting for {} ({pid}): \
             `lastmile status{dir_arg}` shows what it serves once it does, `lastmile down{dir_arg}` stops it",
            dir.display()
        ),
    }
}
