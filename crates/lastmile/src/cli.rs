//! Command-line arguments.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// lastmile takes an application from a commit to production and keeps it
/// healthy there, from one binary and one `lastmile.yaml`.
#[derive(Debug, Parser)]
#[command(
    name = "lastmile",
    version,
    propagate_version = true,
    max_term_width = 100
)]
#[command(
    after_help = "Start with `lastmile check` in a directory holding lastmile.yaml, \
then `lastmile run`. The spec format is documented in docs/spec.md."
)]
pub(crate) struct Cli {
    /// Where runs, logs and artifacts are kept [default: .lastmile/ beside lastmile.yaml]
    #[arg(long, global = true, env = "LASTMILE_STATE_DIR", value_name = "DIR")]
    pub(crate) state_dir: Option<PathBuf>,

    /// When to use colors
    #[arg(long, global = true, value_enum, default_value_t = ColorChoice::Auto)]
    pub(crate) color: ColorChoice,

    #[command(subcommand)]
    pub(crate) command: Command,
}

/// Color choice for human output.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum ColorChoice {
    /// Colors when writing to a terminal and NO_COLOR is unset.
    Auto,
    /// Always.
    Always,
    /// Never.
    Never,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Validate lastmile.yaml and show every problem with its line and column
    #[command(
        after_help = "Exits 0 when the spec is valid (warnings allowed), 1 when it has errors."
    )]
    Check(CheckArgs),
    /// Run the pipeline: steps as a DAG, then package the artifact
    #[command(
        after_help = "Exits 0 when every step succeeded, 1 when a step failed, \
130 when cancelled (Ctrl-C). Steps run in a clean copy of the repository's tracked files \
unless --in-place is given. Logs are stored: see `lastmile logs RUN`."
    )]
    Run(RunArgs),
    /// List recent pipeline runs
    Runs(RunsArgs),
    /// Show the stored logs of a run, or of one of its steps
    Logs(LogsArgs),
    /// List packaged artifacts in the content-addressed store
    Artifacts(ArtifactsArgs),
}

#[derive(Debug, Args)]
pub(crate) struct CheckArgs {
    /// Directory holding lastmile.yaml, or the file itself
    #[arg(default_value = ".")]
    pub(crate) dir: PathBuf,
    /// Print diagnostics as JSON
    #[arg(long)]
    pub(crate) json: bool,
}

#[derive(Debug, Args)]
pub(crate) struct RunArgs {
    /// Directory holding lastmile.yaml, or the file itself
    #[arg(default_value = ".")]
    pub(crate) dir: PathBuf,
    /// Steps run at once at most [default: number of CPUs]
    #[arg(long, short = 'j', value_name = "N", value_parser = clap::value_parser!(u16).range(1..=1024))]
    pub(crate) jobs: Option<u16>,
    /// Run in the directory itself instead of a clean copy of its tracked files
    #[arg(long)]
    pub(crate) in_place: bool,
    /// Run every step even when its inputs match an earlier success
    #[arg(long)]
    pub(crate) no_cache: bool,
    /// Print every output line as it arrives (always on when not on a terminal)
    #[arg(long, short = 'v')]
    pub(crate) verbose: bool,
    /// Print the run's summary as JSON (step output is not printed)
    #[arg(long)]
    pub(crate) json: bool,
}

#[derive(Debug, Args)]
pub(crate) struct StateArgs {
    /// Directory holding lastmile.yaml, whose .lastmile/ state is read
    #[arg(long, default_value = ".", value_name = "DIR")]
    pub(crate) dir: PathBuf,
}

#[derive(Debug, Args)]
pub(crate) struct RunsArgs {
    #[command(flatten)]
    pub(crate) state: StateArgs,
    /// How many runs to show, newest first
    #[arg(long, short = 'n', default_value_t = 20)]
    pub(crate) limit: usize,
    /// Print as JSON
    #[arg(long)]
    pub(crate) json: bool,
}

#[derive(Debug, Args)]
pub(crate) struct LogsArgs {
    /// Run id (as shown by `lastmile runs`; `#12` or `12`), or `last`
    pub(crate) run: String,
    /// Only this step
    pub(crate) step: Option<String>,
    #[command(flatten)]
    pub(crate) state: StateArgs,
    /// Print as JSON lines
    #[arg(long)]
    pub(crate) json: bool,
}

#[derive(Debug, Args)]
pub(crate) struct ArtifactsArgs {
    #[command(flatten)]
    pub(crate) state: StateArgs,
    /// How many artifacts to show, newest first
    #[arg(long, short = 'n', default_value_t = 20)]
    pub(crate) limit: usize,
    /// Print as JSON
    #[arg(long)]
    pub(crate) json: bool,
}
