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
then `lastmile run`. The spec format is documented in docs/spec.md. When stdout is a pipe \
whose reader has gone (`| head`), output stops quietly and the exit status is the command's own; \
`watch` and the `--follow` commands then stop, with status 0."
)]
pub(crate) struct Cli {
    /// Where runs, logs and artifacts are kept [default: .lastmile/ beside lastmile.yaml]
    #[arg(long, global = true, env = "LASTMILE_STATE_DIR", value_name = "DIR")]
    pub(crate) state_dir: Option<PathBuf>,

    /// When to use colors
    #[arg(long, global = true, value_enum, default_value_t = ColorChoice::Auto)]
    pub(crate) color: ColorChoice,

    /// Talk to a `lastmile server` at this URL (http://HOST:PORT) instead of a local `lastmile up`; the token comes from LASTMILE_TOKEN
    #[arg(long, global = true, env = "LASTMILE_SERVER", value_name = "URL")]
    pub(crate) server: Option<String>,

    /// The app on the server [default: `app:` of lastmile.yaml in --dir]
    #[arg(long, global = true, env = "LASTMILE_APP", value_name = "NAME")]
    pub(crate) app: Option<String>,

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
    /// Show the stored logs of a run or of one of its steps, or an instance's output (--instance)
    #[command(
        after_help = "An instance's output is kept in .lastmile/host/logs/ (rotated) and stays \
there after `lastmile down`, so --instance works whether or not `lastmile up` runs.

Examples:
  lastmile logs last                           # every step of the newest run
  lastmile logs 12 test                        # one step of run #12
  lastmile logs --instance staging             # the current instances of staging
  lastmile logs --instance staging.fd97e584.0 --follow"
    )]
    Logs(LogsArgs),
    /// List packaged artifacts in the content-addressed store
    Artifacts(ArtifactsArgs),
    /// Build if needed, deploy to an environment and serve it through the router, in the foreground
    #[command(
        after_help = "Runs the pipeline (cached steps are skipped), deploys the artifact \
to the first environment (or --env) with its strategy, and serves the route through lastmile's \
router until Ctrl-C, which stops everything it started. Other commands (`status`, `deploy`, \
`rollback`, `restart`, `down`) talk to it through a control API on loopback, which needs no \
token there."
    )]
    Up(UpArgs),
    /// Deploy a release to an environment of the running `lastmile up`
    #[command(
        after_help = "Without --release, runs the pipeline first (cached steps are \
skipped) and deploys what it packed."
    )]
    Deploy(DeployArgs),
    /// Go back to the previous release (or --to R); instant while it is still warm
    Rollback(RollbackArgs),
    /// Show environments, releases, instances, health and route weights
    #[command(
        after_help = "Router figures (requests, 5xx, latency) cover the last 60 s; `lastmile \
watch` shows the same figures over the last 10 s. In --json, each instance has `leader_pid` \
(the process-group leader lastmile signals) and `main_pid` (the app's own process, null when \
it cannot be told); see docs/deploy.md."
    )]
    Status(StatusArgs),
    /// Resume a paused canary, or skip its remaining steps to 100%
    Promote(EnvArgs),
    /// Abort a running canary: all traffic back on stable at once
    Abort(EnvArgs),
    /// Approve the deployment waiting for an environment of a `lastmile server` (needs --server)
    Approve(EnvArgs),
    /// Follow an environment live: weights, and each release's requests, errors and latency
    #[command(
        after_help = "Each line's figures cover the last 10 s, so a change shows within seconds; \
`lastmile status` shows the same figures over the last 60 s."
    )]
    Watch(WatchArgs),
    /// Read the event log: deployments, canary decisions with their numbers, rollbacks, flags, who did what
    #[command(
        after_help = "One line per event: time (UTC), kind, subject and what happened; a canary.decision shows the phase, the canary's weight, the decision, canary against stable (requests, errors, p99) and the reason of an abort. Without --follow it prints the newest --limit events and exits; with --follow it then waits for new ones (polling every --interval) until Ctrl-C. With --server it reads the app's log on that server.

Examples:
  lastmile events production            # the last 50 events of production
  lastmile events production --follow   # and then new ones as they happen
  lastmile events --json --limit 500    # one JSON object per line, for scripts"
    )]
    Events(EventsArgs),
    /// DORA metrics per environment: deployment frequency, lead time, change failure rate, recovery time
    Dora(DoraArgs),
    /// Feature flags of the running `lastmile up`: list them, flip the kill switch, change rollouts
    #[command(subcommand)]
    Flag(FlagCommand),
    /// Restart the running `lastmile up` in place, handing its sockets over (no refused connection)
    #[command(
        after_help = "The new process is the `lastmile` binary on disk now, so this \
is also how to upgrade lastmile. It starts the current releases, takes over the listening \
sockets, then the old process drains and exits."
    )]
    Restart(ControlArgs),
    /// Stop the running `lastmile up` and everything it started, and wait until it has
    #[command(
        after_help = "Waits until the `lastmile up` process has exited, every instance's \
process group is gone and the router's ports are free, printing progress while it takes long; \
then says what stopped. If that takes longer than the instances' stop grace plus the drain \
time, it names what still runs and exits 1. With --no-wait it returns once the stop is \
requested."
    )]
    Down(DownArgs),
    /// Run the router alone in front of one backend (for benchmarks and trials)
    Proxy(ProxyArgs),
    /// Run the control plane: watch git repositories, build and deploy every new commit, serve the API and dashboard
    #[command(
        after_help = "server.yaml lists the repositories (one app each), the API address and \
the state directory; see docs/server.md. Create the first admin token with \
`lastmile token create --config server.yaml --role admin --name NAME`."
    )]
    Server(ServerArgs),
    /// API tokens of a `lastmile server`: create, list, revoke
    #[command(subcommand)]
    Token(TokenCommand),
    /// Secrets of a `lastmile server`'s apps, encrypted at rest: set (value from stdin), list, delete
    #[command(subcommand)]
    Secret(SecretCommand),
    /// Print the shell completion script for bash, zsh, fish, elvish or powershell
    #[command(
        after_help = "Install it where the shell looks for completions, then open a new shell:
  bash        mkdir -p ~/.local/share/bash-completion/completions
              lastmile completions bash > ~/.local/share/bash-completion/completions/lastmile
  zsh         mkdir -p ~/.zfunc && lastmile completions zsh > ~/.zfunc/_lastmile
              and in ~/.zshrc, before `compinit`: fpath=(~/.zfunc $fpath)
  fish        lastmile completions fish > ~/.config/fish/completions/lastmile.fish
  elvish      lastmile completions elvish > ~/.config/elvish/lib/lastmile.elv
              and in ~/.config/elvish/rc.elv: use lastmile
  powershell  lastmile completions powershell >> $PROFILE"
    )]
    Completions(CompletionsArgs),
    /// Write the man pages: lastmile.1 and one page per subcommand (lastmile-up.1, …)
    #[command(
        after_help = "Without --dir, prints lastmile.1 on stdout (`lastmile man | man -l -`). \
To install every page where `man` finds it: `lastmile man --dir ~/.local/share/man/man1`, \
then `man lastmile` or `man lastmile-up`."
    )]
    Man(ManArgs),
}

#[derive(Debug, Args)]
pub(crate) struct CompletionsArgs {
    /// The shell to complete in
    #[arg(value_enum)]
    pub(crate) shell: clap_complete::Shell,
}

#[derive(Debug, Args)]
pub(crate) struct ManArgs {
    /// Write every page into this directory (created if missing) instead of printing lastmile.1
    #[arg(long, value_name = "OUT")]
    pub(crate) dir: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub(crate) struct ServerArgs {
    /// The server's configuration
    #[arg(long, short = 'c', value_name = "FILE", default_value = "server.yaml")]
    pub(crate) config: PathBuf,
}

/// Where token and secret commands act: a running server (--server) or the
/// state of one on this machine (--config).
#[derive(Debug, Args)]
pub(crate) struct AdminTarget {
    /// The server's configuration, to act on its state directly (no --server needed)
    #[arg(long, short = 'c', value_name = "FILE")]
    pub(crate) config: Option<PathBuf>,
    /// Print the answer as JSON
    #[arg(long)]
    pub(crate) json: bool,
}

#[derive(Debug, Subcommand)]
pub(crate) enum TokenCommand {
    /// Create a token; it is printed once, on stdout
    Create {
        /// viewer (read), deployer (also deploy, approve, roll back), admin (also tokens, secrets)
        #[arg(long, value_name = "ROLE")]
        role: String,
        /// Who uses it; recorded as the actor of its calls [default: the role and a number]
        #[arg(long, value_name = "NAME")]
        name: Option<String>,
        #[command(flatten)]
        target: AdminTarget,
    },
    /// List tokens (never the tokens themselves)
    List {
        #[command(flatten)]
        target: AdminTarget,
    },
    /// Revoke a token by name
    Revoke {
        /// The token's name
        name: String,
        #[command(flatten)]
        target: AdminTarget,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum SecretCommand {
    /// Store a secret for an app; the value is read from stdin (one trailing newline is dropped)
    Set {
        /// The app
        app: String,
        /// The variable name instances and steps see (A-Z, 0-9, _)
        name: String,
        #[command(flatten)]
        target: AdminTarget,
    },
    /// List an app's secret names (never values)
    List {
        /// The app
        app: String,
        #[command(flatten)]
        target: AdminTarget,
    },
    /// Delete a secret
    Delete {
        /// The app
        app: String,
        /// The secret's name
        name: String,
        #[command(flatten)]
        target: AdminTarget,
    },
}

#[derive(Debug, Args)]
pub(crate) struct UpArgs {
    /// Directory holding lastmile.yaml, or the file itself
    #[arg(default_value = ".")]
    pub(crate) dir: PathBuf,
    /// Environment to deploy [default: the first in lastmile.yaml]
    #[arg(long, short = 'e', value_name = "ENV")]
    pub(crate) env: Option<String>,
    /// Serve the environment here instead of its `route.listen` (port 0 picks a free port)
    #[arg(long, value_name = "ADDR")]
    pub(crate) listen: Option<std::net::SocketAddr>,
    /// Address of the control API (loopback only)
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:0")]
    pub(crate) control: std::net::SocketAddr,
    /// Steps run at once at most [default: number of CPUs]
    #[arg(long, short = 'j', value_name = "N", value_parser = clap::value_parser!(u16).range(1..=1024))]
    pub(crate) jobs: Option<u16>,
    /// Run the pipeline in the directory itself instead of a clean copy of its tracked files
    #[arg(long)]
    pub(crate) in_place: bool,
    /// Print one line per request the router serves (method, path, status, ms, release, instance, request id)
    #[arg(long)]
    pub(crate) access_log: bool,
    /// Approve the first deployment (for `gates.approval: required`); recorded as you
    #[arg(long)]
    pub(crate) approve: bool,

    /// The key that seals secrets and ACME state [default: in
    /// $XDG_DATA_HOME/lastmile/keys/ (~/.local/share), outside the repository;
    /// an existing STATE_DIR/secret.key is kept]
    #[arg(long, env = "LASTMILE_SECRET_KEY_FILE", value_name = "FILE")]
    pub(crate) secret_key_file: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub(crate) struct ControlArgs {
    #[command(flatten)]
    pub(crate) state: StateArgs,
    /// Print the answer as JSON
    #[arg(long)]
    pub(crate) json: bool,
}

#[derive(Debug, Args)]
pub(crate) struct DeployArgs {
    /// Environment to deploy to
    pub(crate) env: String,
    /// Release id (or a unique prefix) to deploy instead of building
    #[arg(long, short = 'r', value_name = "R")]
    pub(crate) release: Option<String>,
    /// Run the pipeline in the directory itself instead of a clean copy of its tracked files
    #[arg(long)]
    pub(crate) in_place: bool,
    /// Approve the deployment (for `gates.approval: required`); recorded as you, with the time
    #[arg(long)]
    pub(crate) approve: bool,
    #[command(flatten)]
    pub(crate) control: ControlArgs,
}

#[derive(Debug, Args)]
pub(crate) struct RollbackArgs {
    /// Environment to roll back
    pub(crate) env: String,
    /// Release id (or a unique prefix) to go back to [default: the previous release]
    #[arg(long, value_name = "R")]
    pub(crate) to: Option<String>,
    #[command(flatten)]
    pub(crate) control: ControlArgs,
}

#[derive(Debug, Args)]
pub(crate) struct DoraArgs {
    /// Window in days
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u32).range(1..=365))]
    pub(crate) days: u32,
    #[command(flatten)]
    pub(crate) control: ControlArgs,
}

#[derive(Debug, Subcommand)]
pub(crate) enum FlagCommand {
    /// Every flag with its state and any override (drift from lastmile.yaml)
    List(ControlArgs),
    /// Switch a flag on (undo a kill switch)
    Enable(FlagArgs),
    /// The kill switch: the flag serves its default variant, reason DISABLED
    Disable(FlagArgs),
    /// Make VARIANT the flag's default
    Set(FlagSetArgs),
    /// Replace the flag's rollout, e.g. `on=10 off=90` (percentages add up to 100)
    Rollout(FlagRolloutArgs),
    /// Drop every override of the flag: back to lastmile.yaml
    Reset(FlagArgs),
}

#[derive(Debug, Args)]
pub(crate) struct FlagArgs {
    /// Flag key
    pub(crate) key: String,
    #[command(flatten)]
    pub(crate) control: ControlArgs,
}

#[derive(Debug, Args)]
pub(crate) struct FlagSetArgs {
    /// Flag key
    pub(crate) key: String,
    /// Variant to serve by default
    pub(crate) variant: String,
    #[command(flatten)]
    pub(crate) control: ControlArgs,
}

#[derive(Debug, Args)]
pub(crate) struct FlagRolloutArgs {
    /// Flag key
    pub(crate) key: String,
    /// VARIANT=PERCENT pairs, in order, adding up to 100
    #[arg(required = true, value_parser = parse_share)]
    pub(crate) shares: Vec<(String, f64)>,
    #[command(flatten)]
    pub(crate) control: ControlArgs,
}

fn parse_share(text: &str) -> Result<(String, f64), String> {
    let (variant, percent) = text
        .split_once('=')
        .ok_or_else(|| format!("`{text}`: write VARIANT=PERCENT, e.g. on=10"))?;
    let percent: f64 = percent
        .trim_end_matches('%')
        .parse()
        .map_err(|_| format!("`{percent}` is not a percentage"))?;
    if !(0.0..=100.0).contains(&percent) {
        return Err(format!("{percent} is not between 0 and 100"));
    }
    Ok((variant.to_string(), percent))
}

#[derive(Debug, Args)]
pub(crate) struct EnvArgs {
    /// Environment name
    pub(crate) env: String,
    #[command(flatten)]
    pub(crate) control: ControlArgs,
}

#[derive(Debug, Args)]
pub(crate) struct WatchArgs {
    /// Environment name
    pub(crate) env: String,
    /// Time between lines, e.g. 500ms or 2s
    #[arg(long, default_value = "1s", value_parser = parse_interval)]
    pub(crate) interval: std::time::Duration,
    /// Stop after this many lines [default: until Ctrl-C]
    #[arg(long, value_name = "N")]
    pub(crate) count: Option<u64>,
    #[command(flatten)]
    pub(crate) control: ControlArgs,
}

fn parse_interval(text: &str) -> Result<std::time::Duration, String> {
    let (number, unit) = text
        .find(|c: char| !c.is_ascii_digit())
        .map_or((text, "s"), |at| text.split_at(at));
    let number: u64 = number
        .parse()
        .map_err(|_| format!("`{text}` is not a duration; write e.g. 500ms or 2s"))?;
    let duration = match unit {
        "ms" => std::time::Duration::from_millis(number),
        "s" => std::time::Duration::from_secs(number),
        _ => return Err(format!("`{text}`: the unit must be ms or s")),
    };
    if duration < std::time::Duration::from_millis(100) {
        return Err("the interval must be at least 100ms".to_string());
    }
    Ok(duration)
}

#[derive(Debug, Args)]
pub(crate) struct EventsArgs {
    /// Only events about this environment [default: every event]
    pub(crate) env: Option<String>,
    /// After the newest events, keep printing new ones until Ctrl-C
    #[arg(long, short = 'f')]
    pub(crate) follow: bool,
    /// How many of the newest events to print first
    #[arg(long, short = 'n', value_name = "N", default_value_t = 50, value_parser = clap::value_parser!(u64).range(1..=100_000))]
    pub(crate) limit: u64,
    /// Time between polls with --follow, e.g. 500ms or 2s
    #[arg(long, default_value = "1s", value_parser = parse_interval)]
    pub(crate) interval: std::time::Duration,
    #[command(flatten)]
    pub(crate) state: StateArgs,
    /// Print each event as one JSON object per line (as the API gives it)
    #[arg(long)]
    pub(crate) json: bool,
}

#[derive(Debug, Args)]
pub(crate) struct DownArgs {
    /// Return as soon as the stop is requested instead of waiting for it to finish
    #[arg(long)]
    pub(crate) no_wait: bool,
    #[command(flatten)]
    pub(crate) control: ControlArgs,
}

#[derive(Debug, Args)]
pub(crate) struct StatusArgs {
    #[command(flatten)]
    pub(crate) control: ControlArgs,
}

#[derive(Debug, Args)]
pub(crate) struct ProxyArgs {
    /// Address to listen on
    #[arg(long, value_name = "ADDR")]
    pub(crate) listen: std::net::SocketAddr,
    /// Backend URL, e.g. http://127.0.0.1:8000
    #[arg(long, value_name = "URL")]
    pub(crate) to: String,
    /// Worker threads (1 matches the single-worker peers in bench/proxy)
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=256))]
    pub(crate) workers: u16,
    /// Serve HTTPS with this PEM certificate chain (needs --tls-key)
    #[arg(long, value_name = "PEM", requires = "tls_key")]
    pub(crate) tls_cert: Option<std::path::PathBuf>,
    /// The PEM private key of --tls-cert
    #[arg(long, value_name = "PEM", requires = "tls_cert")]
    pub(crate) tls_key: Option<std::path::PathBuf>,
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
    #[arg(required_unless_present = "instance")]
    pub(crate) run: Option<String>,
    /// Only this step
    pub(crate) step: Option<String>,
    /// Show an instance's output (stdout and stderr) instead: its id as `lastmile status` shows it, or an environment's name for its current instances
    #[arg(long, short = 'i', value_name = "ID", conflicts_with_all = ["run", "step"])]
    pub(crate) instance: Option<String>,
    /// With --instance: after the output so far, print new output as it comes, until Ctrl-C
    #[arg(long, short = 'f')]
    pub(crate) follow: bool,
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
