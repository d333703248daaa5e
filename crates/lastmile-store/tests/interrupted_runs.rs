//! Runs whose owning process died are marked interrupted; runs whose owner
//! lives are left alone. The owners are real processes: this test binary
//! re-run with `OWNER_STATE_DIR` set, killed with SIGKILL or let finish.
#![allow(clippy::unwrap_used, reason = "a failed unwrap is a failed test")]

use std::io::{BufRead, BufReader, Read, Write};
use std::path::Path;
use std::process::{Child, ChildStdout, Command, Stdio};

use std::os::unix::process::CommandExt;
use std::time::{Duration, Instant};

use lastmile_store::{NewRun, RunId, RunStatus, SqliteStore, StepProcess, StepStatus, Store};

/// Set in the child: the state directory to create a run in.
const OWNER_STATE_DIR: &str = "LASTMILE_STORE_TEST_OWNER_STATE_DIR";
/// Set in the child: the pid of a process group its first step leads.
const OWNER_STEP_GROUP: &str = "LASTMILE_STORE_TEST_OWNER_STEP_GROUP";

fn main() {
    if let Some(state_dir) = std::env::var_os(OWNER_STATE_DIR) {
        act_as_owner(Path::new(&state_dir));
        return;
    }
    let tests: &[(&str, fn())] = &[
        (
            "a_killed_owners_run_is_interrupted",
            a_killed_owners_run_is_interrupted,
        ),
        (
            "a_live_owners_run_is_left_alone",
            a_live_owners_run_is_left_alone,
        ),
        (
            "only_the_dead_owners_run_is_interrupted",
            only_the_dead_owners_run_is_interrupted,
        ),
        (
            "only_the_dead_owners_step_processes_are_killed",
            only_the_dead_owners_step_processes_are_killed,
        ),
    ];
    for (name, test) in tests {
        print!("test {name} ... ");
        std::io::stdout().flush().unwrap();
        test();
        println!("ok");
    }
}

/// The child: create a run, start its first step, say its id, wait for
/// stdin to close, then finish the run.
fn act_as_owner(state_dir: &Path) {
    let (store, _) = SqliteStore::open(state_dir).unwrap();
    let run = store
        .create_run(&NewRun {
            app: "hello".into(),
            spec_dir: "/srv/hello".into(),
            commit: None,
            steps: vec!["build".into(), "test".into()],
            actor: "local:owner".into(),
        })
        .unwrap();
    store.start_step(run, "build", 1).unwrap();
    if let Some(group) = std::env::var(OWNER_STEP_GROUP)
        .ok()
        .and_then(|pid| pid.parse().ok())
    {
        let process = StepProcess::of(group).unwrap();
        store.record_step_process(run, "build", process).unwrap();
    }
    println!("run {run}");
    std::io::stdout().flush().unwrap();
    let mut rest = Vec::new();
    std::io::stdin().read_to_end(&mut rest).unwrap();
    store
        .finish_run(run, RunStatus::Succeeded, None, None)
        .unwrap();
}

/// A running owner process; killed and reaped on drop whatever happens.
struct Owner {
    child: Child,
    run: RunId,
}

impl Owner {
    fn spawn(state_dir: &Path) -> Owner {
        Owner::spawn_leading(state_dir, None)
    }

    /// An owner whose first step leads the process group `step_group`.
    fn spawn_leading(state_dir: &Path, step_group: Option<u32>) -> Owner {
        let mut command = Command::new(std::env::current_exe().unwrap());
        if let Some(group) = step_group {
            command.env(OWNER_STEP_GROUP, group.to_string());
        }
        let mut child = command
            .env(OWNER_STATE_DIR, state_dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let stdout: ChildStdout = child.stdout.take().unwrap();
        let mut owner = Owner { child, run: 0 };
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line).unwrap();
        owner.run = line
            .trim()
            .strip_prefix("run ")
            .and_then(|id| id.parse().ok())
            .unwrap_or_else(|| panic!("the owner process did not report its run: {line:?}"));
        owner
    }

    /// SIGKILL: no destructor, no finish_run; only the OS cleans up.
    fn kill(mut self) {
        self.child.kill().unwrap();
        let status = self.child.wait().unwrap();
        assert!(!status.success());
    }

    /// Lets the owner finish its run and exit normally.
    fn finish(mut self) {
        drop(self.child.stdin.take());
        let status = self.child.wait().unwrap();
        assert!(status.success(), "owner exited with {status}");
    }
}

impl Drop for Owner {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn a_killed_owners_run_is_interrupted() {
    let state = tempfile::tempdir().unwrap();
    let owner = Owner::spawn(state.path());
    let run = owner.run;
    owner.kill();

    let (store, report) = SqliteStore::open(state.path()).unwrap();
    assert_eq!(report.interrupted_runs, [run]);
    let interrupted = store.get_run(run).unwrap().unwrap();
    assert_eq!(interrupted.status, RunStatus::Interrupted);
    assert_eq!(
        interrupted.reason.as_deref(),
        Some("the lastmile process running it stopped unexpectedly")
    );
    assert!(interrupted.finished_at.is_some());
    let statuses: Vec<_> = store
        .list_steps(run)
        .unwrap()
        .into_iter()
        .map(|step| step.status)
        .collect();
    assert_eq!(statuses, [StepStatus::Interrupted, StepStatus::Skipped]);
    let events = store.list_events(0, 100).unwrap();
    let last = events.last().unwrap();
    assert_eq!(
        (last.kind.as_str(), last.subject.clone()),
        ("run.interrupted", format!("run/{run}"))
    );
    assert!(
        !state
            .path()
            .join("locks")
            .join(format!("run-{run}.lock"))
            .exists()
    );
    drop(store);

    // Found once: opening again reports nothing and writes no event.
    let (store, report) = SqliteStore::open(state.path()).unwrap();
    assert!(report.interrupted_runs.is_empty());
    assert_eq!(store.list_events(0, 100).unwrap().len(), events.len());
}

fn a_live_owners_run_is_left_alone() {
    let state = tempfile::tempdir().unwrap();
    let owner = Owner::spawn(state.path());
    let run = owner.run;

    let (store, report) = SqliteStore::open(state.path()).unwrap();
    assert!(report.interrupted_runs.is_empty(), "{report:?}");
    assert_eq!(
        store.get_run(run).unwrap().unwrap().status,
        RunStatus::Running
    );
    assert_eq!(
        store.list_steps(run).unwrap()[0].status,
        StepStatus::Running
    );
    let events_before = store.list_events(0, 100).unwrap().len();
    drop(store);

    owner.finish();
    let (store, report) = SqliteStore::open(state.path()).unwrap();
    assert!(report.interrupted_runs.is_empty());
    assert_eq!(
        store.get_run(run).unwrap().unwrap().status,
        RunStatus::Succeeded
    );
    let events = store.list_events(0, 100).unwrap();
    assert_eq!(events.len(), events_before + 1);
    assert_eq!(events.last().unwrap().kind, "run.finished");
}

fn only_the_dead_owners_run_is_interrupted() {
    let state = tempfile::tempdir().unwrap();
    let living = Owner::spawn(state.path());
    let dying = Owner::spawn(state.path());
    let (living_run, dying_run) = (living.run, dying.run);
    dying.kill();

    let (store, report) = SqliteStore::open(state.path()).unwrap();
    assert_eq!(report.interrupted_runs, [dying_run]);
    assert_eq!(
        store.get_run(living_run).unwrap().unwrap().status,
        RunStatus::Running
    );
    assert_eq!(
        store.get_run(dying_run).unwrap().unwrap().status,
        RunStatus::Interrupted
    );
    living.finish();
    assert_eq!(
        store.get_run(living_run).unwrap().unwrap().status,
        RunStatus::Succeeded
    );
}

/// A step's process: `sleep` leading its own group, as steps run; killed
/// and reaped on drop whatever happens.
struct StepLeader(Child);

impl StepLeader {
    fn spawn() -> StepLeader {
        StepLeader(
            Command::new("sleep")
                .arg("300")
                .process_group(0)
                .spawn()
                .unwrap(),
        )
    }

    /// True once it has ended (reaped), waiting up to `bound`.
    fn ended_within(&mut self, bound: Duration) -> bool {
        let deadline = Instant::now() + bound;
        loop {
            if self.0.try_wait().unwrap().is_some() {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for StepLeader {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A run whose owner was killed has its steps' process groups killed when
/// the store is opened again; a living owner's steps keep running.
fn only_the_dead_owners_step_processes_are_killed() {
    let state = tempfile::tempdir().unwrap();
    let (mut living_step, mut dying_step) = (StepLeader::spawn(), StepLeader::spawn());
    let living = Owner::spawn_leading(state.path(), Some(living_step.0.id()));
    let dying = Owner::spawn_leading(state.path(), Some(dying_step.0.id()));
    let dying_run = dying.run;
    dying.kill();

    let (store, report) = SqliteStore::open(state.path()).unwrap();
    assert_eq!(report.interrupted_runs, [dying_run]);
    assert!(
        dying_step.ended_within(Duration::from_secs(10)),
        "the step of the killed owner's run still runs"
    );
    assert!(!living_step.ended_within(Duration::from_millis(200)));
    drop(store);
    living.finish();
}
