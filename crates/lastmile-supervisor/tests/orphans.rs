//! Instances left running by a supervisor whose process was killed are
//! killed by the next supervisor on the same root; nothing else is.
#![allow(clippy::unwrap_used, reason = "a failed unwrap is a failed test")]

use std::os::unix::process::CommandExt;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use lastmile_supervisor::{Supervisor, SupervisorConfig};

/// A `sleep` leading its own group, as an instance would.
fn group_leader(with_marker: bool) -> Child {
    let mut command = Command::new("sleep");
    command.arg("60").process_group(0);
    if with_marker {
        command.env("LASTMILE_INSTANCE_ID", "production.abc.0");
    }
    let child = command.spawn().unwrap();
    // `spawn` returns once the child has begun to exec, not when the new
    // program's arguments and environment are in place: on a busy machine
    // /proc/PID/environ can still be empty when the supervisor looks for
    // the marker. Wait until `sleep` runs.
    let deadline = Instant::now() + Duration::from_secs(5);
    while !std::fs::read(format!("/proc/{}/cmdline", child.id()))
        .is_ok_and(|cmdline| cmdline.starts_with(b"sleep\0"))
    {
        assert!(Instant::now() < deadline, "sleep did not start");
        std::thread::sleep(Duration::from_millis(5));
    }
    child
}

/// A pid no process can have: above any `pid_max` Linux allows (2^22), so
/// the test never races pid reuse on a busy machine.
fn dead_pid() -> u32 {
    2_147_483_000
}

fn exited(child: &mut Child) -> bool {
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        if child.try_wait().unwrap().is_some() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

#[test]
fn groups_of_a_dead_owner_are_killed_and_others_are_left_alone() {
    let root = tempfile::tempdir().unwrap();
    let groups = root.path().join("groups");
    std::fs::create_dir_all(&groups).unwrap();

    let mut orphan = group_leader(true);
    let mut stranger = group_leader(false);
    let mut owned_by_live = group_leader(true);
    std::fs::write(
        groups.join(dead_pid().to_string()),
        format!("{}\n{}\n", orphan.id(), stranger.id()),
    )
    .unwrap();
    // A live owner (this test process's parent stands in for a serving
    // lastmile during a handover).
    let live_owner = std::os::unix::process::parent_id();
    std::fs::write(
        groups.join(live_owner.to_string()),
        format!("{}\n", owned_by_live.id()),
    )
    .unwrap();

    let supervisor =
        Supervisor::new(root.path().to_path_buf(), SupervisorConfig::default()).unwrap();
    assert_eq!(supervisor.orphans_killed(), 1);
    assert!(exited(&mut orphan), "the orphaned instance was not killed");
    assert!(
        stranger.try_wait().unwrap().is_none(),
        "a process without the instance marker was killed"
    );
    assert!(
        owned_by_live.try_wait().unwrap().is_none(),
        "an instance of a live owner was killed"
    );
    assert!(groups.join(live_owner.to_string()).exists());

    for child in [&mut stranger, &mut owned_by_live] {
        child.kill().unwrap();
        child.wait().unwrap();
    }
}
