//! `lastmile completions SHELL`: the shell completion script.

use std::process::ExitCode;

use clap::CommandFactory;

use crate::cli::{Cli, CompletionsArgs};
use crate::output;

pub(crate) fn completions(args: &CompletionsArgs) -> ExitCode {
    // Rendered in memory first: the generators panic when their writer
    // fails, and stdout may be a closed pipe.
    let mut script = Vec::new();
    clap_complete::generate(args.shell, &mut Cli::command(), "lastmile", &mut script);
    output::write_stdout_bytes(&script);
    ExitCode::SUCCESS
}
