//! Process groups left behind by a supervisor whose process was killed.
//!
//! Instances run in their own process groups, so a `kill -9` of lastmile
//! does not reach them. Each supervisor therefore records the groups it
//! starts in `root/groups/<its pid>`; a new supervisor on the same root
//! kills the groups recorded by owners that are gone. A live owner's file
//! is left alone: during a handover the old process still serves with its
//! instances while the new one starts.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;

use crate::process;

/// The variable every instance carries; a group leader without it is not
/// one of ours (its pid was reused) and is never signalled.
const MARKER: &[u8] = b"LASTMILE_INSTANCE_ID=";

/// This process's record of the groups it started.
#[derive(Debug)]
pub(crate) struct GroupRecord {
    path: PathBuf,
    file: Mutex<Option<File>>,
}

impl GroupRecord {
    /// Opens `root/groups/<pid>` for appending (created on first use).
    pub(crate) fn new(root: &Path) -> GroupRecord {
        GroupRecord {
            path: root.join("groups").join(std::process::id().to_string()),
            file: Mutex::new(None),
        }
    }

    /// Records a group this process leads. Best effort: a failure to write
    /// only weakens the clean-up after a crash.
    pub(crate) fn record(&self, group: u32) {
        let mut file = self
            .file
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if file.is_none() {
            if let Some(parent) = self.path.parent() {
                let _ = fs::create_dir_all(parent);
            }
            *file = OpenOptions::new()
                .create(true)
                .append(true)
                .open(&self.path)
                .ok();
        }
        if let Some(file) = file.as_mut() {
            let _ = writeln!(file, "{group}");
        }
    }

    /// Forgets the record when every group it names has been stopped.
    pub(crate) fn remove(&self) {
        let _ = fs::remove_file(&self.path);
    }
}

/// Kills the groups recorded by supervisors whose process is gone; returns
/// how many groups were still running.
pub(crate) fn kill_orphans(root: &Path) -> usize {
    let dir = root.join("groups");
    let Ok(entries) = fs::read_dir(&dir) else {
        return 0;
    };
    let mut killed = 0;
    for entry in entries.flatten() {
        let Some(owner) = entry
            .file_name()
            .to_str()
            .and_then(|name| name.parse::<i32>().ok())
        else {
            continue;
        };
        if owner == std::process::id() as i32 || alive(owner) {
            continue;
        }
        let text = fs::read_to_string(entry.path()).unwrap_or_default();
        for group in text
            .lines()
            .filter_map(|line| line.trim().parse::<i32>().ok())
        {
            if group > 1 && alive(group) && is_instance(group) {
                let _ = killpg(Pid::from_raw(group), Signal::SIGKILL);
                killed += 1;
            }
        }
        let _ = fs::remove_file(entry.path());
    }
    killed
}

/// True while `pid` runs; a zombie counts as gone.
fn alive(pid: i32) -> bool {
    match fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => process::parse_stat(pid, &stat).is_none_or(|process| process.running()),
        Err(_) => false,
    }
}

fn is_instance(pid: i32) -> bool {
    fs::read(format!("/proc/{pid}/environ")).is_ok_and(|environ| {
        environ
            .split(|byte| *byte == 0)
            .any(|variable| variable.starts_with(MARKER))
    })
}
