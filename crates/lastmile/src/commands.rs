//! One module per subcommand.

use std::process::ExitCode;

use crate::cli::{Cli, Command};

mod artifacts;
mod check;
mod logs;
mod run;
mod runs;

/// Runs the chosen subcommand.
pub(crate) fn dispatch(cli: Cli) -> anyhow::Result<ExitCode> {
    let state_dir = cli.state_dir.as_deref();
    match cli.command {
        Command::Check(args) => check::check(&args),
        Command::Run(args) => run::run(&args, state_dir),
        Command::Runs(args) => runs::runs(&args, state_dir),
        Command::Logs(args) => logs::logs(&args, state_dir),
        Command::Artifacts(args) => artifacts::artifacts(&args, state_dir),
    }
}
