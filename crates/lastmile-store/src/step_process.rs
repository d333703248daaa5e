//! The process group a running step leads, recorded so that a later
//! lastmile can stop it when the process that ran the step was killed.
//!
//! Steps run in their own process groups, so a `kill -9` of lastmile does
//! not reach them. The group's id is its leader's pid, and pids are reused:
//! a group is only ever signalled while its leader is the same process that
//! was recorded, told apart by its start time (`/proc/PID/stat`, field 22,
//! in clock ticks since boot).

use std::fs;

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;

/// A step's process group and the start time of its leader.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StepProcess {
    /// The group id: the leader's pid.
    pub group: i32,
    /// When the leader started, in clock ticks since boot.
    pub started: u64,
}

impl StepProcess {
    /// The group led by `leader`, read while the leader exists (a zombie
    /// not yet reaped still does); `None` when it does not.
    pub fn of(leader: u32) -> Option<StepProcess> {
        let group = i32::try_from(leader).ok()?;
        Some(StepProcess {
            group,
            started: start_time(group)?,
        })
    }

    /// SIGKILLs the group when its leader is still the recorded process;
    /// true when it was signalled. A leader that is gone, or a pid now
    /// held by another process, is left alone.
    pub(crate) fn kill_if_same(self) -> bool {
        if self.group <= 1 || start_time(self.group) != Some(self.started) {
            return false;
        }
        killpg(Pid::from_raw(self.group), Signal::SIGKILL).is_ok()
    }
}

/// Field 22 of `/proc/PID/stat`; the command name (field 2) may hold spaces
/// and parentheses, so fields are counted after the last `)`.
fn start_time(pid: i32) -> Option<u64> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 1..];
    // After the name come field 3 (state) on; the start time is field 22.
    rest.split_whitespace().nth(22 - 3)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_has_a_start_time_and_a_gone_pid_has_none() {
        let me = StepProcess::of(std::process::id()).expect("this process has a /proc entry");
        assert_eq!(StepProcess::of(std::process::id()), Some(me));
        assert!(me.started > 0);
        assert_eq!(StepProcess::of(i32::MAX as u32), None);
    }

    #[test]
    fn a_leader_with_another_start_time_is_not_signalled() {
        let me = StepProcess::of(std::process::id()).expect("this process has a /proc entry");
        let other = StepProcess {
            started: me.started + 1,
            ..me
        };
        // Were it signalled, this test process would die of SIGKILL.
        assert!(!other.kill_if_same());
    }
}
