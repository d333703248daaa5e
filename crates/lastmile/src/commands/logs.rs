//! `lastmile logs RUN [STEP]` and `lastmile logs --instance ID`.

mod instance;

use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context, bail};
use lastmile_store::{LogStream, Store};

use crate::cli::LogsArgs;
use crate::output;
use crate::state;

pub(crate) fn logs(args: &LogsArgs, state_dir: Option<&Path>) -> anyhow::Result<ExitCode> {
    if let Some(instance) = &args.instance {
        return instance::show(args, instance, state_dir);
    }
    if args.follow {
        bail!(
            "--follow follows an instance's output: add --instance ID (or an environment's name)"
        );
    }
    let run = args.run.as_deref().unwrap_or("last");
    let (store, _) = state::open_existing(state_dir, &args.state.dir)?;
    let run_id = if run == "last" {
        match store.list_runs(1)?.first() {
            Some(run) => run.id,
            None => bail!("there are no runs yet: start one with `lastmile run`"),
        }
    } else {
        run.trim_start_matches('#')
            .parse::<i64>()
            .with_context(|| {
                format!("`{run}` is not a run id; use a number from `lastmile runs`, or `last`")
            })?
    };
    if store.get_run(run_id)?.is_none() {
        bail!("run #{run_id} does not exist; `lastmile runs` lists the runs there are");
    }
    if let Some(step) = &args.step {
        let steps = store.list_steps(run_id)?;
        if !steps.iter().any(|record| &record.name == step) {
            let names: Vec<&str> = steps.iter().map(|record| record.name.as_str()).collect();
            bail!(
                "run #{run_id} has no step `{step}`; its steps are: {}",
                names.join(", ")
            );
        }
    }
    let lines = store.read_logs(run_id, args.step.as_deref())?;
    let mut stdout = std::io::stdout().lock();
    use std::io::Write;
    for (step, line) in &lines {
        let written = if args.json {
            let mut value = serde_json::to_value(line)?;
            value["step"] = serde_json::Value::from(step.as_str());
            writeln!(stdout, "{value}")
        } else {
            let text = match line.stream {
                LogStream::System => output::dim(&line.text),
                LogStream::Stderr | LogStream::Stdout => line.text.clone(),
            };
            if args.step.is_some() {
                writeln!(stdout, "{text}")
            } else {
                writeln!(stdout, "{} {text}", output::dim(&format!("[{step}]")))
            }
        };
        // A closed pipe (`| head`) ends the listing quietly.
        if written.is_err() {
            break;
        }
    }
    Ok(ExitCode::SUCCESS)
}
