//! `lastmile up [DIR]`: build if needed, deploy, serve, stay in the
//! foreground.

use std::path::Path;
use std::process::ExitCode;

use crate::cli::UpArgs;
use crate::commands::check::{print_load_error, print_warnings};
use crate::commands::run::{Build, print_summary, runtime};
use crate::output::{self, outln};
use crate::state;

/// Prints the controller's progress lines.
#[derive(Debug)]
pub(crate) struct Printer;

impl lastmile_server::up::Progress for Printer {
    fn line(&self, text: &str) {
        outln!("{text}");
    }

    fn warn(&self, text: &str) {
        eprintln!("{} {text}", output::warn("warning:"));
    }
}

pub(crate) fn up(args: &UpArgs, state_dir: Option<&Path>) -> anyhow::Result<ExitCode> {
    let loaded = match lastmile_spec::load(&args.dir) {
        Ok(loaded) => loaded,
        Err(error) => {
            print_load_error(error);
            return Ok(ExitCode::from(1));
        }
    };
    print_warnings(&loaded);
    let state_dir = state::state_dir(state_dir, &loaded.dir);
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
        state_dir,
        environment: args.env.clone(),
        listen: args.listen,
        control: args.control,
        artifact,
        access_log: args.access_log,
        approved_by: args.approve.then(|| actor.clone()),
        local_actor: actor,
    };
    runtime.block_on(lastmile_server::up::run(
        options,
        std::sync::Arc::new(Printer),
    ))?;
    Ok(ExitCode::SUCCESS)
}
