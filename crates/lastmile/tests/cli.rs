//! The `lastmile` binary end to end: real processes, real files, real SQLite.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

mod support;

/// A project directory in a temp dir, with its own state.
struct Project {
    dir: tempfile::TempDir,
    /// `$XDG_DATA_HOME` of the commands, where `up` keeps its secrets key.
    data_home: tempfile::TempDir,
}

impl Project {
    fn new(spec: &str) -> Project {
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::write(dir.path().join("lastmile.yaml"), spec).expect("write spec");
        Project {
            dir,
            data_home: tempfile::tempdir().expect("temp dir"),
        }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn write(&self, name: &str, contents: &str) {
        let path = self.path().join(name);
        std::fs::create_dir_all(path.parent().expect("has parent")).expect("mkdir");
        std::fs::write(path, contents).expect("write file");
    }

    /// `lastmile ARGS` run in the project directory.
    fn lastmile(&self, args: &[&str]) -> Output {
        self.command(args).output().expect("lastmile runs")
    }

    fn command(&self, args: &[&str]) -> Command {
        support::lastmile(self.path(), self.data_home.path(), args)
    }

    fn git_init(&self) {
        for args in [
            &["init", "-q"][..],
            &["add", "-A"][..],
            &[
                "-c",
                "user.name=t",
                "-c",
                "user.email=t@t",
                "commit",
                "-qm",
                "init",
            ][..],
        ] {
            let status = Command::new("git")
                .args(args)
                .current_dir(self.path())
                .status()
                .expect("git runs");
            assert!(status.success(), "git {args:?}");
        }
    }
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn json(output: &Output) -> serde_json::Value {
    serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|error| panic!("not JSON ({error}): {}", stdout(output)))
}

const GOOD: &str = "\
app: demo
pipeline:
  steps:
    - name: build
      run: mkdir -p out && echo built > out/app.txt && echo building
    - name: test
      run: grep -q built out/app.txt && echo tested
      needs: [build]
artifact:
  paths: [out]
";

#[test]
fn check_accepts_a_valid_spec_and_says_what_it_found() {
    let project = Project::new(GOOD);
    let output = project.lastmile(&["check"]);
    assert!(output.status.success(), "{}", stderr(&output));
    let text = stdout(&output);
    assert!(
        text.contains("is valid: app `demo`, 2 steps (build, test)"),
        "{text}"
    );
}

#[test]
fn check_rejects_a_bad_spec_with_line_column_and_hint() {
    let project =
        Project::new("app: demo\npipeline:\n  steps:\n    - name: build\n      rn: make\n");
    let output = project.lastmile(&["check"]);
    assert_eq!(output.status.code(), Some(1));
    let text = stderr(&output);
    assert!(text.contains("rn"), "{text}");
    assert!(text.contains("5:"), "names line 5: {text}");
    insta::assert_snapshot!("check_unknown_key", text);
}

#[test]
fn check_json_lists_diagnostics_for_scripts() {
    let project = Project::new(
        "app: demo\npipeline:\n  steps:\n    - name: a\n      run: x\n      needs: [b]\n",
    );
    let output = project.lastmile(&["check", "--json"]);
    assert_eq!(output.status.code(), Some(1));
    let report = json(&output);
    assert_eq!(report["valid"], false);
    let first = &report["diagnostics"][0];
    assert_eq!(first["severity"], "error");
    assert_eq!(first["line"], 6);
    assert!(first["message"].as_str().unwrap_or_default().contains('b'));
}

#[test]
fn check_without_a_spec_says_where_it_looked() {
    let dir = tempfile::tempdir().expect("temp dir");
    let output = Command::new(env!("CARGO_BIN_EXE_lastmile"))
        .args(["check"])
        .current_dir(dir.path())
        .env("NO_COLOR", "1")
        .output()
        .expect("runs");
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr(&output).contains("lastmile.yaml"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn check_json_without_a_spec_has_the_same_code_and_hint_as_the_text() {
    let dir = tempfile::tempdir().expect("temp dir");
    let run = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_lastmile"))
            .args(args)
            .current_dir(dir.path())
            .env("NO_COLOR", "1")
            .output()
            .expect("runs")
    };
    let text = stderr(&run(&["check"]));
    let output = run(&["check", "--json"]);
    assert_eq!(output.status.code(), Some(1));
    let report = json(&output);
    let first = &report["diagnostics"][0];
    assert_eq!(first["code"], "spec::not_found");
    assert!(text.contains("spec::not_found"), "{text}");
    // The file it looked for, and no made-up place in it.
    let looked_for = std::path::absolute(dir.path().join("lastmile.yaml")).expect("absolute");
    assert_eq!(first["file"], looked_for.display().to_string(), "{report}");
    assert_eq!(report["file"], first["file"], "{report}");
    assert!(
        first["line"].is_null() && first["column"].is_null(),
        "{report}"
    );
    let hint = first["hint"].as_str().unwrap_or_default();
    assert!(hint.contains("lastmile check examples/hello"), "{hint}");
    assert!(
        text.contains("lastmile check examples/hello"),
        "the text has the same hint: {text}"
    );
}

/// Every command that needs the spec says the same when there is none: the
/// code, the directory, and a hint that names the command as it would work.
#[test]
fn every_command_that_reads_the_spec_says_the_same_when_there_is_none() {
    let dir = tempfile::tempdir().expect("temp dir");
    let data_home = tempfile::tempdir().expect("temp dir");
    let directory = std::path::absolute(dir.path()).expect("absolute");
    let commands: &[(&[&str], &str)] = &[
        (&["check"], "`lastmile check examples/hello`"),
        (&["check", "--json"], "`lastmile check examples/hello`"),
        (&["run"], "`lastmile run examples/hello`"),
        (&["up"], "`lastmile up examples/hello`"),
        (&["deploy", "staging"], "`--dir examples/hello`"),
        (&["status"], "`--dir examples/hello`"),
    ];
    for (args, hint) in commands {
        let output = support::lastmile(dir.path(), data_home.path(), args)
            .output()
            .expect("runs");
        let said = stdout(&output) + &stderr(&output);
        assert_eq!(output.status.code(), Some(1), "{args:?}: {said}");
        for expected in [
            "spec::not_found",
            &format!("no lastmile.yaml in {}", directory.display()),
            "create lastmile.yaml there (see docs/spec.md)",
            hint,
        ] {
            assert!(
                said.replace("\n        ", " ").contains(expected),
                "{args:?} should say {expected:?}: {said}"
            );
        }
        assert!(!said.contains("lastmile check DIR"), "{args:?}: {said}");
        assert!(
            !dir.path().join(".lastmile").exists(),
            "{args:?} made a state directory for a spec that is not there"
        );
    }
}

#[test]
fn run_executes_the_dag_packs_the_artifact_and_records_everything() {
    let project = Project::new(GOOD);
    let output = project.lastmile(&["run", "--in-place"]);
    assert!(
        output.status.success(),
        "{}\n{}",
        stdout(&output),
        stderr(&output)
    );
    let text = stdout(&output);
    assert!(
        text.contains("[build] building"),
        "plain prefixed lines off a terminal: {text}"
    );
    assert!(text.contains("run #1 succeeded"), "{text}");

    let runs = json(&project.lastmile(&["runs", "--json"]));
    assert_eq!(runs[0]["status"], "succeeded");
    let artifact_id = runs[0]["artifact_id"]
        .as_str()
        .expect("artifact recorded")
        .to_string();
    assert_eq!(artifact_id.len(), 64);

    let artifacts = json(&project.lastmile(&["artifacts", "--json"]));
    assert_eq!(artifacts[0]["id"], artifact_id.as_str());
    assert!(PathBuf::from(artifacts[0]["path"].as_str().expect("blob path")).exists());

    let logs = stdout(&project.lastmile(&["logs", "1", "test"]));
    assert!(logs.contains("tested"), "{logs}");
    let all = stdout(&project.lastmile(&["logs", "last"]));
    assert!(
        all.contains("[build] building") && all.contains("[test] tested"),
        "{all}"
    );
}

#[test]
fn run_json_reports_steps_and_artifact() {
    let project = Project::new(GOOD);
    let output = project.lastmile(&["run", "--in-place", "--json"]);
    assert!(output.status.success(), "{}", stderr(&output));
    let summary = json(&output);
    assert_eq!(summary["status"], "succeeded");
    assert_eq!(summary["steps"].as_array().map(Vec::len), Some(2));
    assert_eq!(summary["artifact"]["files"], 1);
}

#[test]
fn a_failing_step_exits_1_and_prints_its_last_lines() {
    let project = Project::new(
        "app: demo\npipeline:\n  steps:\n    - name: broken\n      run: echo about to fail; echo the reason >&2; exit 3\n",
    );
    let output = project.lastmile(&["run", "--in-place"]);
    assert_eq!(output.status.code(), Some(1));
    let text = stderr(&output);
    assert!(text.contains("the reason"), "{text}");
    assert!(text.contains("lastmile logs 1 broken"), "{text}");
    let runs = json(&project.lastmile(&["runs", "--json"]));
    assert_eq!(runs[0]["status"], "failed");
}

#[test]
fn run_outside_git_without_in_place_explains_the_choice() {
    let project = Project::new(GOOD);
    let output = project.lastmile(&["run"]);
    assert_ne!(output.status.code(), Some(0));
    let text = stderr(&output);
    assert!(text.contains("--in-place"), "{text}");
}

#[test]
fn run_in_a_clean_workspace_uses_only_tracked_files() {
    let project = Project::new(
        "app: demo\npipeline:\n  steps:\n    - name: look\n      run: test -f tracked.txt && test ! -f untracked.txt\n",
    );
    project.write("tracked.txt", "yes");
    project.write(".gitignore", ".lastmile/\n");
    project.git_init();
    project.write("untracked.txt", "no");
    let output = project.lastmile(&["run"]);
    assert!(
        output.status.success(),
        "{}\n{}",
        stdout(&output),
        stderr(&output)
    );
    let runs = json(&project.lastmile(&["runs", "--json"]));
    assert_eq!(runs[0]["commit"].as_str().map(str::len), Some(40));
}

#[test]
fn a_run_names_the_untracked_files_its_clean_workspace_leaves_out() {
    let project = Project::new(
        "app: demo\nsecrets: { file: secrets.env }\npipeline:\n  steps:\n    - name: check\n      run: cat app.py\n",
    );
    project.write("app.py", "print('hi')\n");
    project.write("requirements.txt", "flask\n");
    project.write(".gitignore", "*.log\n");
    project.write("debug.log", "ignored\n");
    project.write("secrets.env", "TOKEN=x\n");
    let status = Command::new("git")
        .args(["init", "-q"])
        .current_dir(project.path())
        .status()
        .expect("git runs");
    assert!(status.success());

    let output = project.lastmile(&["run"]);
    assert_eq!(output.status.code(), Some(1), "the step cannot find app.py");
    let (out, err) = (stdout(&output), stderr(&output));
    let note = "4 untracked files are not in the run's workspace: .gitignore, app.py, lastmile.yaml, requirements.txt (git add them, or list them in .gitignore; --in-place runs in the directory itself)";
    // Before the run (the ignored log, the secrets file and lastmile's own
    // state are not named), and again with the failure.
    let before = out.find(note).unwrap_or_else(|| panic!("{out}"));
    assert!(before < out.find("▶ run #1").expect("run line"), "{out}");
    let failure = err
        .find("step `check` exited")
        .unwrap_or_else(|| panic!("{err}"));
    assert!(err[failure..].contains(note), "{err}");
    assert!(!(out.clone() + &err).contains("secrets.env"), "{out}{err}");

    // Added, the file is in the workspace and nothing is named.
    let status = Command::new("git")
        .args(["add", "-A"])
        .current_dir(project.path())
        .status()
        .expect("git runs");
    assert!(status.success());
    let output = project.lastmile(&["run", "--json"]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(json(&output)["untracked"], serde_json::json!([]));
    assert!(
        !stderr(&output).contains("untracked"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn the_state_directory_never_shows_in_git_status() {
    let project = Project::new(GOOD);
    project.git_init();
    let output = project.lastmile(&["run"]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(project.path().join(".lastmile/lastmile.db").exists());
    let status = Command::new("git")
        .args(["status", "--porcelain", "--untracked-files=all"])
        .current_dir(project.path())
        .output()
        .expect("git runs");
    assert!(status.status.success());
    assert_eq!(stdout(&status), "", "git sees lastmile's state");
}

#[test]
fn a_second_run_is_served_from_the_cache_with_the_same_artifact() {
    let project = Project::new(
        "app: demo\npipeline:\n  steps:\n    - name: build\n      run: mkdir -p out && cp src.txt out/app.txt && echo ran >> ../runs-$LASTMILE_STEP\n      inputs: [src.txt]\n      outputs: [out/**]\nartifact:\n  paths: [out]\n",
    );
    project.write("src.txt", "v1");
    let first = json(&project.lastmile(&["run", "--in-place", "--json"]));
    let second = json(&project.lastmile(&["run", "--in-place", "--json"]));
    assert_eq!(first["steps"][0]["status"], "succeeded");
    assert_eq!(second["steps"][0]["status"], "cached");
    assert_eq!(first["artifact"]["id"], second["artifact"]["id"]);
    project.write("src.txt", "v2");
    let third = json(&project.lastmile(&["run", "--in-place", "--json"]));
    assert_eq!(third["steps"][0]["status"], "succeeded");
    assert_ne!(third["artifact"]["id"], first["artifact"]["id"]);
    let forced = json(&project.lastmile(&["run", "--in-place", "--json", "--no-cache"]));
    assert_eq!(forced["steps"][0]["status"], "succeeded");
}

#[test]
fn ctrl_c_cancels_the_run_and_leaves_no_process_behind() {
    let project = Project::new(
        "app: demo\npipeline:\n  steps:\n    - name: slow\n      run: sleep 300 & echo $! > child.pid; touch started; wait\n",
    );
    let mut child = project
        .command(&["run", "--in-place"])
        .spawn()
        .expect("spawn lastmile");
    let started = project.path().join("started");
    let deadline = Instant::now() + Duration::from_secs(20);
    while !started.exists() {
        assert!(Instant::now() < deadline, "step never started");
        std::thread::sleep(Duration::from_millis(20));
    }
    let status = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .expect("kill runs");
    assert!(status.success());
    let exit = child.wait().expect("lastmile exits");
    assert_eq!(exit.code(), Some(130));
    let pid = std::fs::read_to_string(project.path().join("child.pid")).expect("pid written");
    let alive = Path::new(&format!("/proc/{}", pid.trim())).exists()
        && !std::fs::read_to_string(format!("/proc/{}/stat", pid.trim()))
            .unwrap_or_default()
            .contains(") Z ");
    assert!(
        !alive,
        "the step's background child {pid} survived cancellation"
    );
    let runs = json(&project.lastmile(&["runs", "--json"]));
    assert_eq!(runs[0]["status"], "cancelled");
}

/// A `lastmile run` killed with SIGKILL cannot stop its steps; the next
/// `lastmile run` in the project kills what the interrupted run left running.
#[test]
fn a_killed_run_leaves_no_step_running_once_lastmile_runs_again() {
    let project = Project::new(
        // Only the first run's step waits; the second one ends at once.
        "app: demo\npipeline:\n  steps:\n    - name: slow\n      run: \"[ -f child.pid ] || { sleep 300 & echo $! > child.pid; wait; }\"\n",
    );
    let mut first = project
        .command(&["run", "--in-place"])
        .spawn()
        .expect("spawn lastmile");
    let pid_file = project.path().join("child.pid");
    let deadline = Instant::now() + Duration::from_secs(20);
    let pid = loop {
        if let Some(pid) = std::fs::read_to_string(&pid_file)
            .ok()
            .and_then(|text| text.trim().parse::<i32>().ok())
        {
            break pid;
        }
        assert!(Instant::now() < deadline, "the step never started");
        std::thread::sleep(Duration::from_millis(20));
    };
    let killed_child = KillOnDrop(pid);
    // The step may run before its process group is in the store.
    let database = project.path().join(".lastmile/lastmile.db");
    let recorded = || -> Option<i64> {
        let connection = rusqlite::Connection::open_with_flags(
            &database,
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
        )
        .ok()?;
        connection
            .query_row(
                "SELECT process_group FROM steps WHERE name = 'slow' AND status = 'running'",
                [],
                |row| row.get(0),
            )
            .ok()
    };
    while recorded().is_none() {
        assert!(
            Instant::now() < deadline,
            "the step's process group was never recorded"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    first.kill().expect("SIGKILL lastmile");
    first.wait().expect("reap lastmile");
    assert!(alive(pid), "the step's child died with lastmile");

    let second = project.lastmile(&["run", "--in-place", "--json"]);
    assert!(
        stderr(&second).contains("was interrupted"),
        "{}",
        stderr(&second)
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while alive(pid) {
        assert!(
            Instant::now() < deadline,
            "the interrupted run's step process {pid} still runs"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    drop(killed_child);
}

/// True while `pid` runs; a zombie counts as gone.
fn alive(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .is_ok_and(|stat| !stat.contains(") Z ") && !stat.contains(") X "))
}

/// SIGKILLs a process's group on drop, whatever the test did.
struct KillOnDrop(i32);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let group = std::fs::read_to_string(format!("/proc/{}/stat", self.0))
            .ok()
            .and_then(|stat| {
                let rest = stat[stat.rfind(')')? + 1..].to_owned();
                rest.split_whitespace().nth(2)?.parse::<i32>().ok()
            });
        if let Some(group) = group.filter(|_| alive(self.0)) {
            let _ = nix::sys::signal::killpg(
                nix::unistd::Pid::from_raw(group),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
    }
}

#[test]
fn secrets_never_reach_the_terminal_or_the_store() {
    let project = Project::new(
        "app: demo\nsecrets: { file: secrets.env }\npipeline:\n  steps:\n    - name: leak\n      run: echo \"$TOKEN\"; printf %s \"$TOKEN\" | base64\n      secrets: [TOKEN]\n",
    );
    project.write("secrets.env", "TOKEN=hunter2-very-secret\n");
    let output = project.lastmile(&["run", "--in-place"]);
    assert!(output.status.success(), "{}", stderr(&output));
    let printed = stdout(&output) + &stderr(&output);
    let logs = stdout(&project.lastmile(&["logs", "last"]));
    for text in [&printed, &logs] {
        assert!(!text.contains("hunter2-very-secret"), "{text}");
        assert!(
            !text.contains("aHVudGVyMi12ZXJ5LXNlY3JldA"),
            "base64 leaked: {text}"
        );
        assert!(text.contains("***"), "{text}");
    }
}

#[test]
fn logs_of_a_missing_run_or_step_say_what_exists() {
    let project = Project::new(GOOD);
    let output = project.lastmile(&["logs", "1"]);
    assert!(
        stderr(&output).contains("lastmile run"),
        "{}",
        stderr(&output)
    );
    project.lastmile(&["run", "--in-place"]);
    let output = project.lastmile(&["logs", "9"]);
    assert!(
        stderr(&output).contains("run #9 does not exist"),
        "{}",
        stderr(&output)
    );
    let output = project.lastmile(&["logs", "1", "deploy"]);
    assert!(
        stderr(&output).contains("its steps are: build, test"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn help_names_every_command() {
    let output = Command::new(env!("CARGO_BIN_EXE_lastmile"))
        .arg("--help")
        .output()
        .expect("runs");
    insta::assert_snapshot!("help", stdout(&output));
}

#[test]
fn events_help_says_what_a_line_holds_and_how_to_follow() {
    let output = Command::new(env!("CARGO_BIN_EXE_lastmile"))
        .args(["events", "--help"])
        .output()
        .expect("runs");
    assert!(output.status.success());
    insta::assert_snapshot!("events_help", stdout(&output));
}
