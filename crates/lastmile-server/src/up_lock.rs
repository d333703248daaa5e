//! One `lastmile up` per state directory: an exclusive `flock` on
//! `<state>/up.lock`, taken before the pipeline runs and held until the last
//! process of the session exits.
//!
//! The lock belongs to the open file, not to a pid: a process taking over
//! from `lastmile restart` is handed the same open file (see
//! [`lastmile_node::handover`]), so the directory stays locked through every
//! handover, and a killed `up` releases it with its last descriptor, so a
//! stale `up.json` or `up.lock` never blocks the next start. Two `up`s
//! started at the same moment cannot both take it.

use std::io::{Read, Seek, Write};
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, RawFd};
use std::path::{Path, PathBuf};

use nix::fcntl::{Flock, FlockArg};

/// The lock file's name in the state directory.
const LOCK_FILE: &str = "up.lock";

/// The state directory's `up` lock, held while this value lives.
#[derive(Debug)]
pub struct UpLock {
    file: Flock<std::fs::File>,
}

/// The `lastmile up` that holds a state directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunningUp {
    /// The process serving now (from `up.json`), or the one still starting
    /// (from `up.lock`) when nothing serves yet.
    pub pid: Option<u32>,
    /// Its control API and dashboard, once it serves.
    pub control: Option<SocketAddr>,
}

/// Why the lock could not be taken.
#[derive(Debug, thiserror::Error)]
pub enum UpLockError {
    /// Another `lastmile up` holds it.
    #[error("another `lastmile up` runs for this state directory")]
    Held(RunningUp),
    /// The lock file cannot be opened or locked.
    #[error("cannot lock {}: {source}", path.display())]
    Io {
        /// The lock file.
        path: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
    /// The lock handed over by a previous process is unusable.
    #[error(transparent)]
    Handover(#[from] lastmile_node::handover::HandoverError),
}

impl UpLock {
    /// Takes the lock of `state_dir` (creating the directory when missing),
    /// or, in a process taking over from a restart, adopts the one it was
    /// handed. Fails at once when another `lastmile up` holds it.
    pub fn claim(state_dir: &Path) -> Result<UpLock, UpLockError> {
        let path = state_dir.join(LOCK_FILE);
        let io = |source| UpLockError::Io {
            path: path.clone(),
            source,
        };
        let (file, handed) = match lastmile_node::handover::take_inherited_lock()? {
            Some(file) => (file, true),
            None => {
                std::fs::create_dir_all(state_dir).map_err(io)?;
                let file = std::fs::OpenOptions::new()
                    .read(true)
                    .write(true)
                    .create(true)
                    .truncate(false)
                    .open(&path)
                    .map_err(io)?;
                (file, false)
            }
        };
        // On a handed-over file the lock is this session's already and
        // taking it again only confirms it.
        let mut file = match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
            Ok(file) => file,
            Err((_, nix::errno::Errno::EWOULDBLOCK)) => {
                return Err(UpLockError::Held(running_up(state_dir)));
            }
            Err((_, errno)) => return Err(io(errno.into())),
        };
        if !handed {
            // Who holds it, for the message a second `up` prints before the
            // first one writes `up.json`.
            file.set_len(0).map_err(io)?;
            file.rewind().map_err(io)?;
            write!(file, "{}", std::process::id()).map_err(io)?;
        }
        Ok(UpLock { file })
    }

    /// The lock file's descriptor, to hand to a process taking over.
    pub fn raw_fd(&self) -> RawFd {
        self.file.as_raw_fd()
    }
}

/// The `up` holding `state_dir`: the one `up.json` names when that process
/// is alive, else the pid the lock file records.
fn running_up(state_dir: &Path) -> RunningUp {
    let serving = std::fs::read_to_string(state_dir.join("up.json"))
        .ok()
        .and_then(|text| serde_json::from_str::<serde_json::Value>(&text).ok())
        .and_then(|value| {
            let pid = u32::try_from(value["pid"].as_u64()?).ok()?;
            let control = value["control"].as_str()?.parse().ok()?;
            lastmile_supervisor::process_running(pid).then_some((pid, control))
        });
    if let Some((pid, control)) = serving {
        return RunningUp {
            pid: Some(pid),
            control: Some(control),
        };
    }
    let mut recorded = String::new();
    let pid = std::fs::File::open(state_dir.join(LOCK_FILE))
        .and_then(|mut file| file.read_to_string(&mut recorded))
        .ok()
        .and_then(|_| recorded.trim().parse().ok())
        .filter(|pid| lastmile_supervisor::process_running(*pid));
    RunningUp { pid, control: None }
}
