//! `lastmile man [--dir OUT]`: man pages from the command-line definition.

use std::path::Path;
use std::process::ExitCode;

use anyhow::Context;
use clap::CommandFactory;

use crate::cli::{Cli, ManArgs};
use crate::output::{self, outln};

pub(crate) fn man(args: &ManArgs) -> anyhow::Result<ExitCode> {
    // `lastmile help` has no page of its own: `lastmile.1` lists everything.
    let mut command = Cli::command().disable_help_subcommand(true);
    command.build();
    let Some(dir) = &args.dir else {
        output::write_stdout_bytes(&render(&command)?);
        return Ok(ExitCode::SUCCESS);
    };
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let written = write_pages(&command, dir)?;
    outln!(
        "wrote {written} man pages to {} (lastmile.1, lastmile-up.1, …); `man -l {}` reads one",
        dir.display(),
        dir.join("lastmile.1").display()
    );
    Ok(ExitCode::SUCCESS)
}

/// Writes the page of `command` and of each subcommand, depth first; how many.
fn write_pages(command: &clap::Command, dir: &Path) -> anyhow::Result<usize> {
    let mut written = 0;
    for subcommand in command.get_subcommands().filter(|sub| !sub.is_hide_set()) {
        written += write_pages(subcommand, dir)?;
    }
    let page = clap_mangen::Man::new(command.clone());
    let path = dir.join(page.get_filename());
    std::fs::write(&path, render(command)?)
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok(written + 1)
}

fn render(command: &clap::Command) -> anyhow::Result<Vec<u8>> {
    let mut page = Vec::new();
    clap_mangen::Man::new(command.clone())
        .render(&mut page)
        .context("cannot render a man page")?;
    Ok(page)
}
