//! One module per subcommand.

use std::process::ExitCode;

use crate::cli::{Cli, Command};

mod artifacts;
mod check;
mod completions;
mod control;
mod down;
mod events;
mod logs;
mod man;
mod proxy;
mod run;
mod runs;
mod server;
mod up;

pub(crate) use check::print_load_error;

/// Runs the chosen subcommand.
pub(crate) fn dispatch(cli: Cli) -> anyhow::Result<ExitCode> {
    let state_dir = cli.state_dir.as_deref();
    crate::control::set_remote(cli.server.clone(), cli.app.clone());
    match cli.command {
        Command::Check(args) => check::check(&args),
        Command::Run(args) => run::run(&args, state_dir),
        Command::Runs(args) => runs::runs(&args, state_dir),
        Command::Logs(args) => logs::logs(&args, state_dir),
        Command::Artifacts(args) => artifacts::artifacts(&args, state_dir),
        Command::Up(args) => up::up(&args, state_dir),
        Command::Deploy(args) => control::deploy(&args, state_dir),
        Command::Rollback(args) => control::rollback(&args, state_dir),
        Command::Status(args) => control::status(&args, state_dir),
        Command::Promote(args) => control::canary_signal(&args, "promote", state_dir),
        Command::Abort(args) => control::canary_signal(&args, "abort", state_dir),
        Command::Approve(args) => control::approve(&args, state_dir),
        Command::Watch(args) => control::watch(&args, state_dir),
        Command::Events(args) => events::events(&args, state_dir),
        Command::Flag(command) => control::flag(&command, state_dir),
        Command::Dora(args) => control::dora(&args, state_dir),
        Command::Restart(args) => control::restart(&args, state_dir),
        Command::Down(args) => down::down(&args, state_dir),
        Command::Proxy(args) => proxy::proxy(&args),
        Command::Server(args) => server::server(&args),
        Command::Token(command) => server::token(&command),
        Command::Secret(command) => server::secret(&command),
        Command::Completions(args) => Ok(completions::completions(&args)),
        Command::Man(args) => man::man(&args),
    }
}
