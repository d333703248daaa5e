//! Running the `git` program: one place that decides its environment, so that every
//! invocation is non-interactive, ignores the caller's repository variables and reports
//! failures as one line of git's own words.

use std::ffi::OsStr;
use std::io::{Read as _, Write as _};
use std::path::Path;
use std::process::{Command, ExitStatus, Stdio};

use crate::error::GitError;

/// Variables that point git at some other repository (`git rev-parse --local-env-vars`).
/// lastmile may run from a git hook or alias, where they are set for the caller's repository.
const REPOSITORY_VARIABLES: [&str; 15] = [
    "GIT_ALTERNATE_OBJECT_DIRECTORIES",
    "GIT_CONFIG",
    "GIT_CONFIG_PARAMETERS",
    "GIT_CONFIG_COUNT",
    "GIT_OBJECT_DIRECTORY",
    "GIT_DIR",
    "GIT_WORK_TREE",
    "GIT_IMPLICIT_WORK_TREE",
    "GIT_GRAFT_FILE",
    "GIT_INDEX_FILE",
    "GIT_NO_REPLACE_OBJECTS",
    "GIT_REPLACE_REF_BASE",
    "GIT_PREFIX",
    "GIT_SHALLOW_FILE",
    "GIT_COMMON_DIR",
];

/// ssh without prompts (an unknown host key or a passphrase fails instead of waiting on the
/// terminal) and with bounded waits, used unless the environment names its own ssh command.
const BATCH_SSH: &str =
    "ssh -o BatchMode=yes -o ConnectTimeout=30 -o ServerAliveInterval=15 -o ServerAliveCountMax=4";

/// The most lines of git's stderr kept in an error; the last ones say what failed.
const STDERR_LINES: usize = 12;

/// Why running git failed.
#[derive(Debug)]
pub(crate) enum Failure {
    /// There is no `git` on PATH.
    NotInstalled,
    /// git could not be started or talked to.
    Io(std::io::Error),
    /// git answered in a form lastmile does not understand.
    Unexpected(String),
    /// git ran and exited unsuccessfully.
    Exited {
        /// `git fetch`, `git cat-file`: which command failed.
        command: String,
        /// How it exited.
        status: ExitStatus,
        /// Its stderr on one line (possibly empty).
        stderr: String,
    },
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::NotInstalled => write!(f, "{}", GitError::NotInstalled),
            Failure::Io(error) => write!(f, "could not run git: {error}"),
            Failure::Unexpected(answer) => write!(f, "{answer}"),
            Failure::Exited {
                command,
                status,
                stderr,
            } if stderr.is_empty() => write!(f, "{command} failed ({status})"),
            Failure::Exited { stderr, .. } => write!(f, "{stderr}"),
        }
    }
}

impl Failure {
    /// The error for a caller: a missing git is said as such, anything else is worded by `context`.
    pub(crate) fn into_error(self, context: impl FnOnce(String) -> GitError) -> GitError {
        match self {
            Failure::NotInstalled => GitError::NotInstalled,
            other => context(other.to_string()),
        }
    }

    /// True when git exited with `code` (`symbolic-ref -q` says "detached" with 1).
    pub(crate) fn exited_with(&self, code: i32) -> bool {
        matches!(self, Failure::Exited { status, .. } if status.code() == Some(code))
    }

    fn from_spawn(error: std::io::Error) -> Failure {
        if error.kind() == std::io::ErrorKind::NotFound {
            Failure::NotInstalled
        } else {
            Failure::Io(error)
        }
    }
}

/// `git --git-dir=GIT_DIR` (or plain `git`), non-interactive and with stdin closed.
pub(crate) fn git(git_dir: Option<&Path>) -> Command {
    let mut command = Command::new("git");
    for variable in REPOSITORY_VARIABLES {
        command.env_remove(variable);
    }
    // Never ask for credentials: no terminal prompt, and an empty GIT_ASKPASS stops git
    // from falling back to core.askpass or SSH_ASKPASS (it runs no program at all).
    command
        .env("GIT_TERMINAL_PROMPT", "0")
        .env("GIT_ASKPASS", "")
        .env("SSH_ASKPASS", "")
        .env("SSH_ASKPASS_REQUIRE", "never")
        .env("GCM_INTERACTIVE", "never");
    if std::env::var_os("GIT_SSH_COMMAND").is_none() && std::env::var_os("GIT_SSH").is_none() {
        command.env("GIT_SSH_COMMAND", BATCH_SSH);
    }
    // ext:: runs an arbitrary command; a repository URL must never be able to do that.
    // A garbage collection after a fetch finishes before git exits instead of in the
    // background, so that no process outlives the call.
    command.args([
        "-c",
        "protocol.ext.allow=never",
        "-c",
        "gc.autoDetach=false",
        "-c",
        "maintenance.autoDetach=false",
    ]);
    if let Some(git_dir) = git_dir {
        let mut flag = std::ffi::OsString::from("--git-dir=");
        flag.push(git_dir);
        command.arg(flag);
    }
    command.stdin(Stdio::null());
    command
}

/// Runs `command` to its end, feeding it `input` on stdin, and returns its stdout.
pub(crate) fn run(mut command: Command, input: &[u8]) -> Result<Vec<u8>, Failure> {
    let name = command_name(&command);
    if !input.is_empty() {
        command.stdin(Stdio::piped());
    }
    let mut child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(Failure::from_spawn)?;
    let stdin = child.stdin.take();
    // Written from a thread: git may fill its stdout before it has read all its input.
    let output = std::thread::scope(|scope| {
        if let Some(mut stdin) = stdin {
            scope.spawn(move || {
                // A git that exits early closes the pipe; its exit status says why.
                let _ = stdin.write_all(input);
            });
        }
        child.wait_with_output()
    })
    .map_err(Failure::Io)?;
    if output.status.success() {
        Ok(output.stdout)
    } else {
        Err(Failure::Exited {
            command: name,
            status: output.status,
            stderr: one_line(&output.stderr),
        })
    }
}

/// A started git whose stdin and stdout the caller drives; its stderr is collected.
pub(crate) struct Running {
    name: String,
    child: std::process::Child,
    stderr: Option<std::thread::JoinHandle<Vec<u8>>>,
}

impl Running {
    /// Starts `command` with piped stdin and stdout.
    pub(crate) fn start(mut command: Command) -> Result<Running, Failure> {
        let name = command_name(&command);
        let mut child = command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(Failure::from_spawn)?;
        let stderr = child.stderr.take().map(|mut pipe| {
            std::thread::spawn(move || {
                let mut text = Vec::new();
                let _ = pipe.read_to_end(&mut text);
                text
            })
        });
        Ok(Running {
            name,
            child,
            stderr,
        })
    }

    /// The pipes to git's stdin and stdout.
    pub(crate) fn pipes(&mut self) -> (std::process::ChildStdin, std::process::ChildStdout) {
        (
            self.child
                .stdin
                .take()
                .expect("stdin is piped and taken once"),
            self.child
                .stdout
                .take()
                .expect("stdout is piped and taken once"),
        )
    }

    /// Stops git early (the caller gave up on its output).
    pub(crate) fn kill(&mut self) {
        // It may have exited already; wait() below reaps it either way.
        let _ = self.child.kill();
    }

    /// Waits for git to exit; an unsuccessful exit is a failure with its stderr.
    pub(crate) fn finish(mut self) -> Result<(), Failure> {
        let status = self.child.wait().map_err(Failure::Io)?;
        let stderr = self
            .stderr
            .take()
            .and_then(|reader| reader.join().ok())
            .unwrap_or_default();
        if status.success() {
            Ok(())
        } else {
            Err(Failure::Exited {
                command: self.name,
                status,
                stderr: one_line(&stderr),
            })
        }
    }
}

/// `git fetch` from the arguments of a command built by [`git`]: the first one that is not
/// an option or an option's value.
fn command_name(command: &Command) -> String {
    let mut arguments = command.get_args();
    while let Some(argument) = arguments.next() {
        if argument == OsStr::new("-c") {
            arguments.next();
        } else if !argument.as_encoded_bytes().starts_with(b"-") {
            return format!("git {}", argument.to_string_lossy());
        }
    }
    "git".to_owned()
}

/// git's stderr as one line: its last non-empty lines, trimmed and joined with "; ".
fn one_line(stderr: &[u8]) -> String {
    let text = String::from_utf8_lossy(stderr);
    let lines: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty())
        .collect();
    lines[lines.len().saturating_sub(STDERR_LINES)..].join("; ")
}

/// One object read with `git cat-file --batch`.
pub(crate) struct Object {
    /// Its full lowercase hex id.
    pub(crate) id: String,
    /// `commit`, `tree`, `blob` or `tag`.
    pub(crate) kind: String,
    /// Its raw content.
    pub(crate) data: Vec<u8>,
}

/// The object `name` (a sha or a ref such as `HEAD`) in the repository at `git_dir`, or
/// `None` when there is no such object.
pub(crate) fn read_object(git_dir: &Path, name: &str) -> Result<Option<Object>, Failure> {
    let mut command = git(Some(git_dir));
    command.args(["cat-file", "--batch"]);
    let output = run(command, format!("{name}\n").as_bytes())?;
    let header_end = output
        .iter()
        .position(|&byte| byte == b'\n')
        .unwrap_or(output.len());
    let header = String::from_utf8_lossy(&output[..header_end]);
    let mut fields = header.split(' ');
    let (Some(id), Some(kind), Some(size)) = (fields.next(), fields.next(), fields.next()) else {
        // "NAME missing" (or "ambiguous"): no such object.
        return Ok(None);
    };
    let size: usize = size.parse().map_err(|_| unexpected(&header))?;
    let data = output
        .get(header_end + 1..header_end + 1 + size)
        .ok_or_else(|| unexpected(&header))?;
    Ok(Some(Object {
        id: id.to_owned(),
        kind: kind.to_owned(),
        data: data.to_vec(),
    }))
}

/// A `git cat-file --batch` reply that does not follow its documented format.
pub(crate) fn unexpected(header: &str) -> Failure {
    Failure::Unexpected(format!(
        "git cat-file answered {header:?}, which lastmile does not understand"
    ))
}
