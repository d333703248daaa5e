//! The `lastmile` command: parses arguments, calls the crates, prints.
//!
//! Everything with behaviour lives in the `lastmile-*` crates; this binary
//! only wires them together and decides how results look on a terminal, in a
//! pipe (`plain`), or as JSON (`--json`) for scripts.

// Output goes through `output::outln!`: `println!` panics on a closed pipe.
#![warn(clippy::print_stdout)]

use std::process::ExitCode;

use clap::Parser;

mod actor;
mod cli;
mod commands;
mod control;
mod output;
mod state;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    output::init_colors(cli.color);
    match commands::dispatch(cli) {
        Ok(code) => code,
        // A missing or invalid spec looks and exits the same from every
        // command (1, like `lastmile check`).
        Err(error) => match error.downcast::<lastmile_spec::LoadError>() {
            Ok(spec_error) => {
                commands::print_load_error(spec_error);
                ExitCode::from(1)
            }
            Err(error) => {
                output::print_error(&error);
                ExitCode::from(2)
            }
        },
    }
}
