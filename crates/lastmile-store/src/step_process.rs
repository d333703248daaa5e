//! The process group a running step leads, recorded so that a later
//! lastmile can stop it when the process that ran the step was killed.
//!
//! Steps run in their own process groups, so a `kill -9` of lastmile does
//! not reach them. The group's id is its leader's pid, and pids are reused:
//! a group is signalled while its leader is the same process that was
//! recorded, told apart by its start time (`/proc/PID/stat`, field 22, in
//! clock ticks since boot), or while no process holds that pid (the group's
//! other members, if any, are then the recorded group's).

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

    /// SIGKILLs the group when its leader is still the recorded process, or
    /// when no process holds the leader's pid any more (the leader died,
    /// say of SIGPIPE once lastmile's end of its pipes closed, and its
    /// children run on in the group); true when it was signalled. A pid now
    /// held by another process is left alone. Linux hands out no pid that
    /// is still some group's id, so while members of the recorded group
    /// live, the number names only that group.
    pub(crate) fn kill_if_same(self) -> bool {
        if self.group <= 1 {
            return false;
        }
        match start_time(self.group) {
            Some(started) if started != self.started => return false,
            _ => {}
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

    /// The leader exited and was reaped; a child it left runs on in the
    /// group, and is killed.
    #[test]
    fn the_group_of_a_leader_that_is_gone_is_still_killed() {
        use std::io::{BufRead, BufReader};
        use std::os::unix::process::CommandExt;
        use std::process::{Command, Stdio};
        use std::time::{Duration, Instant};

        let mut leader = Command::new("sh")
            .args(["-c", "sleep 300 </dev/null >/dev/null 2>&1 & echo $!"])
            .stdout(Stdio::piped())
            .process_group(0)
            .spawn()
            .expect("sh starts");
        let recorded = StepProcess::of(leader.id()).expect("the leader runs");
        let mut line = String::new();
        BufReader::new(leader.stdout.take().expect("piped"))
            .read_line(&mut line)
            .expect("the child's pid");
        let child: i32 = line.trim().parse().expect("a pid");
        assert!(leader.wait().expect("the leader exits").success());
        assert_eq!(start_time(recorded.group), None, "the leader was reaped");
        assert!(start_time(child).is_some(), "the child runs");

        assert!(recorded.kill_if_same());
        let deadline = Instant::now() + Duration::from_secs(10);
        // Killed, the orphan is reaped by init (or shows as a zombie).
        while fs::read_to_string(format!("/proc/{child}/stat"))
            .is_ok_and(|stat| !stat[stat.rfind(')').unwrap_or(0)..].starts_with(") Z"))
        {
            assert!(Instant::now() < deadline, "the child {child} still runs");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}
