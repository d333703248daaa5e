//! End-to-end runs: real `sh` processes, a real SQLite store in a temp dir.

#[path = "pipeline/support.rs"]
mod support;

use std::time::Duration;

use lastmile_pipeline::{PlainReporter, TerminalReporter};
use lastmile_store::{LogStream, RunStatus, StepStatus, Store};
use support::{Fixture, SharedBuffer, StepExt, live_members_of_group, step, wait_for_file};

#[tokio::test]
async fn steps_start_only_after_their_needs_succeeded() {
    let fixture = Fixture::new().jobs(4);
    let log_step = |name: &str| {
        format!("echo 'start {name}' >> order.log; sleep 0.1; echo 'end {name}' >> order.log")
    };
    let outcome = fixture
        .run(vec![
            step("a", &log_step("a")),
            step("b", &log_step("b")).needs(&["a"]),
            step("c", &log_step("c")).needs(&["a"]),
            step("d", &log_step("d")).needs(&["b", "c"]),
        ])
        .await;

    assert_eq!(outcome.summary.status, RunStatus::Succeeded);
    let order = fixture.read("order.log");
    let position = |line: &str| {
        order
            .lines()
            .position(|candidate| candidate == line)
            .unwrap_or_else(|| panic!("`{line}` missing from:\n{order}"))
    };
    assert!(position("end a") < position("start b"));
    assert!(position("end a") < position("start c"));
    assert!(position("end b") < position("start d"));
    assert!(position("end c") < position("start d"));
}

#[tokio::test]
async fn two_jobs_run_two_steps_at_once() {
    // Each step waits (bounded) for the other's marker: only concurrency passes.
    let waits_for = |mine: &str, theirs: &str| {
        format!(
            "touch {mine}; for i in $(seq 100); do [ -f {theirs} ] && exit 0; sleep 0.05; done; \
             echo 'never saw {theirs}'; exit 1"
        )
    };
    let fixture = Fixture::new().jobs(2);
    let outcome = fixture
        .run(vec![
            step("left", &waits_for("left.ready", "right.ready")),
            step("right", &waits_for("right.ready", "left.ready")),
        ])
        .await;
    assert_eq!(
        outcome.summary.status,
        RunStatus::Succeeded,
        "{:?}",
        outcome.summary.failure
    );
}

#[tokio::test]
async fn one_job_never_runs_two_steps_at_once() {
    let fixture = Fixture::new().jobs(1);
    let busy = "echo start >> busy.log; sleep 0.1; echo end >> busy.log";
    let outcome = fixture
        .run(vec![step("a", busy), step("b", busy), step("c", busy)])
        .await;
    assert_eq!(outcome.summary.status, RunStatus::Succeeded);
    assert_eq!(
        fixture.read("busy.log"),
        "start\nend\nstart\nend\nstart\nend\n"
    );
}

#[tokio::test]
async fn a_step_past_its_timeout_is_killed_with_its_group() {
    let fixture = Fixture::new();
    let outcome = fixture
        .run(vec![
            step("slow", "echo $$ > slow.pgid; sleep 30 & sleep 30")
                .timeout(Duration::from_millis(300)),
        ])
        .await;

    assert_eq!(outcome.summary.status, RunStatus::Failed);
    let slow = &outcome.summary.steps[0];
    assert_eq!(slow.status, StepStatus::TimedOut);
    let failure = outcome
        .summary
        .failure
        .as_ref()
        .expect("a failed run explains itself");
    assert_eq!(failure.reason, "timed out after 300ms");
    assert_eq!(
        live_members_of_group(fixture.pgid("slow.pgid")),
        Vec::<i32>::new()
    );
    let system_lines = fixture.logs(outcome.summary.run_id, "slow", Some(LogStream::System));
    assert!(
        system_lines
            .iter()
            .any(|line| line.starts_with("timed out after 300ms")),
        "{system_lines:?}"
    );
}

#[tokio::test]
async fn a_step_ignoring_sigterm_is_killed_after_the_grace() {
    // An ignored signal stays ignored across exec, so `sleep` ignores it too.
    let fixture = Fixture::new().kill_grace(Duration::from_millis(300));
    let outcome = fixture
        .run(vec![
            step(
                "stubborn",
                "trap '' TERM; echo $$ > stubborn.pgid; sleep 30 & sleep 30",
            )
            .timeout(Duration::from_millis(200)),
        ])
        .await;

    assert_eq!(outcome.summary.steps[0].status, StepStatus::TimedOut);
    assert_eq!(
        live_members_of_group(fixture.pgid("stubborn.pgid")),
        Vec::<i32>::new()
    );
}

#[tokio::test]
async fn a_flaky_step_succeeds_within_its_retries() {
    let flaky = "n=$(cat count 2>/dev/null || echo 0); n=$((n + 1)); echo $n > count; \
                 echo \"attempt $n\"; [ $n -ge 3 ]";
    let fixture = Fixture::new();
    let outcome = fixture.run(vec![step("flaky", flaky).retries(2)]).await;

    assert_eq!(outcome.summary.status, RunStatus::Succeeded);
    assert_eq!(outcome.summary.steps[0].attempts, 3);
    assert_eq!(outcome.summary.steps[0].exit_code, Some(0));
    let stored = fixture.store_steps(outcome.summary.run_id);
    assert_eq!(
        (stored[0].status, stored[0].attempts),
        (StepStatus::Succeeded, 3)
    );
    let retries = outcome.reporter.events_starting_with("retrying flaky");
    assert_eq!(retries, ["retrying flaky 2/3", "retrying flaky 3/3"]);
}

#[tokio::test]
async fn a_flaky_step_fails_when_its_retries_run_out() {
    let flaky = "n=$(cat count 2>/dev/null || echo 0); n=$((n + 1)); echo $n > count; [ $n -ge 3 ]";
    let fixture = Fixture::new();
    let outcome = fixture.run(vec![step("flaky", flaky).retries(1)]).await;

    assert_eq!(outcome.summary.status, RunStatus::Failed);
    let flaky = &outcome.summary.steps[0];
    assert_eq!(
        (flaky.status, flaky.attempts, flaky.exit_code),
        (StepStatus::Failed, 2, Some(1))
    );
    assert_eq!(fixture.read("count"), "2\n");
}

#[tokio::test]
async fn a_failed_step_stops_the_running_ones_and_skips_the_rest() {
    let fixture = Fixture::new().jobs(2);
    let outcome = fixture
        .run(vec![
            step("slow", "echo $$ > slow.pgid; sleep 30"),
            step(
                "bad",
                "for i in $(seq 100); do [ -f slow.pgid ] && break; sleep 0.05; done; \
                 echo 'about to fail'; echo 'on stderr' >&2; exit 3",
            ),
            step("after", "touch after.ran").needs(&["bad"]),
        ])
        .await;

    assert_eq!(outcome.summary.status, RunStatus::Failed);
    let statuses: Vec<StepStatus> = outcome.summary.steps.iter().map(|s| s.status).collect();
    assert_eq!(
        statuses,
        [
            StepStatus::Cancelled,
            StepStatus::Failed,
            StepStatus::Skipped
        ]
    );
    let failure = outcome
        .summary
        .failure
        .as_ref()
        .expect("a failed run explains itself");
    assert_eq!(failure.step, "bad");
    assert_eq!(failure.reason, "exited with code 3");
    // stdout and stderr are separate pipes: their relative order is not kept.
    let mut last_lines = failure.last_lines.clone();
    last_lines.sort();
    assert_eq!(last_lines, ["about to fail", "on stderr"]);
    assert_eq!(
        live_members_of_group(fixture.pgid("slow.pgid")),
        Vec::<i32>::new()
    );
    assert!(!fixture.path("after.ran").exists());
    let run = fixture
        .store
        .get_run(outcome.summary.run_id)
        .expect("store")
        .expect("run row");
    assert_eq!(run.status, RunStatus::Failed);
    let stored: Vec<StepStatus> = fixture
        .store_steps(run.id)
        .iter()
        .map(|s| s.status)
        .collect();
    assert_eq!(stored, statuses);
}

#[tokio::test]
async fn cancelling_stops_every_step_and_its_background_children() {
    let fixture = Fixture::new().jobs(2);
    let busy = |name: &str| {
        format!("echo $$ > {name}.pgid; sleep 300 & sleep 300 & touch {name}.started; wait")
    };
    let both_started = async {
        wait_for_file(&fixture.path("one.started")).await;
        wait_for_file(&fixture.path("two.started")).await;
    };
    let outcome = fixture
        .run_until(
            vec![step("one", &busy("one")), step("two", &busy("two"))],
            both_started,
        )
        .await;

    assert_eq!(outcome.summary.status, RunStatus::Cancelled);
    for name in ["one", "two"] {
        assert_eq!(
            live_members_of_group(fixture.pgid(&format!("{name}.pgid"))),
            Vec::<i32>::new()
        );
    }
    let statuses: Vec<StepStatus> = outcome.summary.steps.iter().map(|s| s.status).collect();
    assert_eq!(statuses, [StepStatus::Cancelled, StepStatus::Cancelled]);
    let run = fixture
        .store
        .get_run(outcome.summary.run_id)
        .expect("store")
        .expect("run row");
    assert_eq!(run.status, RunStatus::Cancelled);
}

#[tokio::test]
async fn secrets_never_reach_the_store_or_the_reporter_in_any_form() {
    let secret = "pa\"ss\\wörd-4242";
    let fixture = Fixture::new().secret("S", secret);
    let outcome = fixture
        .run(vec![
            step(
                "leaky",
                "echo visible; echo \"raw $S raw\"; printf %s \"$S\" | base64; \
                 python3 -c 'import json,os;print(json.dumps(os.environ[\"S\"]))'",
            )
            .secrets(&["S"]),
        ])
        .await;

    assert_eq!(
        outcome.summary.status,
        RunStatus::Succeeded,
        "{:?}",
        outcome.summary.failure
    );
    let stored = fixture.logs(outcome.summary.run_id, "leaky", None);
    let reported = outcome.reporter.output_lines("leaky");
    assert_eq!(stored.len(), 4, "{stored:?}");
    assert_eq!(stored, reported);
    assert_eq!(stored[0], "visible");
    let base64 = std::process::Command::new("sh")
        .args(["-c", "printf %s \"$S\" | base64"])
        .env("S", secret)
        .output()
        .expect("base64 runs");
    let base64 = String::from_utf8_lossy(&base64.stdout).trim().to_owned();
    let json_escaped = r#"pa\"ss\\w\u00f6rd-4242"#;
    for line in &stored {
        for form in [secret, base64.as_str(), json_escaped, "4242"] {
            assert!(!line.contains(form), "`{form}` leaked in `{line}`");
        }
    }
}

#[tokio::test]
async fn a_cache_hit_skips_the_step_and_restores_its_outputs() {
    let fixture = Fixture::new();
    fixture.write("src.txt", "version 1\n");
    let steps = || {
        vec![
            step(
                "build",
                "mkdir -p out; cat src.txt > out/built.txt; echo ran >> build.runs",
            )
            .inputs(&["src.txt"])
            .outputs(&["out/built.txt"]),
            step("use", "cat out/built.txt").needs(&["build"]),
        ]
    };

    let first = fixture.run(steps()).await;
    assert_eq!(
        first.summary.status,
        RunStatus::Succeeded,
        "{:?}",
        first.summary.failure
    );
    assert_eq!(first.summary.steps[0].status, StepStatus::Succeeded);

    std::fs::remove_dir_all(fixture.path("out")).expect("remove outputs");
    let second = fixture.run(steps()).await;
    assert_eq!(
        second.summary.status,
        RunStatus::Succeeded,
        "{:?}",
        second.summary.failure
    );
    assert_eq!(second.summary.steps[0].status, StepStatus::Cached);
    assert_eq!(
        second.reporter.events_starting_with("cached"),
        ["cached build"]
    );
    assert_eq!(
        fixture.logs(second.summary.run_id, "use", None),
        ["version 1"]
    );
    assert_eq!(fixture.read("build.runs"), "ran\n");

    fixture.write("src.txt", "version 2\n");
    let third = fixture.run(steps()).await;
    assert_eq!(third.summary.steps[0].status, StepStatus::Succeeded);
    assert_eq!(
        fixture.logs(third.summary.run_id, "use", None),
        ["version 2"]
    );

    let fourth = fixture.no_cache().run(steps()).await;
    assert_eq!(fourth.summary.steps[0].status, StepStatus::Succeeded);
    assert_eq!(fixture.read("build.runs"), "ran\nran\nran\n");
}

#[tokio::test]
async fn the_same_inputs_pack_the_same_artifact() {
    let fixture = Fixture::new().artifact(&["dist"]);
    let steps = || vec![step("build", "mkdir -p dist; echo hello > dist/app.txt")];

    let first = fixture.run(steps()).await;
    let second = fixture.run(steps()).await;

    let first_artifact = first
        .summary
        .artifact
        .expect("a succeeded run with `artifact` packs one");
    let second_artifact = second
        .summary
        .artifact
        .expect("a succeeded run with `artifact` packs one");
    assert_eq!(first_artifact.id, second_artifact.id);
    assert_eq!(first_artifact.files, 1);
    let run = fixture
        .store
        .get_run(second.summary.run_id)
        .expect("store")
        .expect("run row");
    assert_eq!(run.artifact_id.as_deref(), Some(first_artifact.id.as_str()));
    let stored = fixture.store.list_artifacts(10).expect("store");
    assert!(
        stored
            .iter()
            .any(|artifact| artifact.id == first_artifact.id)
    );
}

#[tokio::test]
async fn steps_see_their_env_and_the_lastmile_variables() {
    let fixture = Fixture::new();
    std::fs::create_dir_all(fixture.path("sub")).expect("mkdir");
    let outcome = fixture
        .run(vec![
            step(
                "show",
                "echo \"$GREETING $LASTMILE $LASTMILE_STEP $LASTMILE_ATTEMPT $LASTMILE_RUN_ID\"; \
                 echo \"$LASTMILE_WORKSPACE\"; pwd",
            )
            .env("GREETING", "hello")
            .workdir("sub"),
        ])
        .await;
    let run_id = outcome.summary.run_id;
    let workspace = outcome.summary.workspace.display().to_string();
    let sub = outcome.summary.workspace.join("sub").display().to_string();
    assert_eq!(
        fixture.logs(run_id, "show", None),
        [format!("hello 1 show 1 {run_id}"), workspace, sub]
    );
}

#[tokio::test]
async fn a_missing_secret_fails_before_a_run_exists() {
    let fixture = Fixture::new();
    let error = fixture
        .try_run(vec![
            step("deploy", "true").secrets(&["NOWHERE_TO_BE_FOUND"]),
        ])
        .await
        .expect_err("a missing secret is an error");
    assert!(error.to_string().contains("NOWHERE_TO_BE_FOUND"), "{error}");
    assert!(fixture.store.list_runs(10).expect("store").is_empty());
}

#[tokio::test]
async fn a_clean_workspace_holds_the_tracked_files_and_goes_away_after_success() {
    let fixture = Fixture::new().clean_workspace();
    fixture.write("tracked.txt", "committed\n");
    fixture.write(".gitignore", "ignored.txt\n");
    fixture.write("ignored.txt", "left over on the developer's disk\n");
    let head = fixture
        .git(&["init", "-q"])
        .and_then(|_| fixture.git(&["add", "."]));
    head.and_then(|_| {
        fixture.git(&[
            "-c",
            "user.name=t",
            "-c",
            "user.email=t@example.invalid",
            "commit",
            "-qm",
            "first",
        ])
    })
    .expect("git works");
    let head = fixture.git(&["rev-parse", "HEAD"]).expect("HEAD exists");

    let outcome = fixture
        .run(vec![step(
            "look",
            "cat tracked.txt; test -e ignored.txt && echo ignored-present; touch made-here; pwd",
        )])
        .await;

    assert_eq!(
        outcome.summary.status,
        RunStatus::Succeeded,
        "{:?}",
        outcome.summary.failure
    );
    let workspace = outcome.summary.workspace.clone();
    assert_eq!(
        fixture.logs(outcome.summary.run_id, "look", None),
        ["committed".to_owned(), workspace.display().to_string()]
    );
    assert_ne!(workspace, fixture.spec_dir.path());
    assert!(
        !fixture.path("made-here").exists(),
        "steps do not touch the checkout"
    );
    assert!(
        !workspace.exists(),
        "a successful run's workspace is deleted"
    );
    let run = fixture
        .store
        .get_run(outcome.summary.run_id)
        .expect("store")
        .expect("run row");
    assert_eq!(run.commit.as_deref(), Some(head.trim()));

    let failed = fixture.run(vec![step("boom", "exit 1")]).await;
    assert_eq!(failed.summary.status, RunStatus::Failed);
    assert!(
        failed.summary.workspace.join("tracked.txt").exists(),
        "a failed run's workspace is kept"
    );
    assert!(
        failed
            .summary
            .workspace
            .starts_with(fixture.state_dir.path().join("workspaces"))
    );
}

#[tokio::test]
async fn the_plain_reporter_prints_one_line_per_event() {
    let fixture = Fixture::new();
    let buffer = SharedBuffer::default();
    let reporter = PlainReporter::to_writer(buffer.clone());
    let flaky = "n=$(cat count 2>/dev/null || echo 0); n=$((n + 1)); echo $n > count; \
                 echo \"try $n\"; [ $n -ge 2 ]";
    let summary = fixture
        .run_reporting_to(
            vec![
                step("build", "echo compiling").env("A", "1"),
                step("flaky", flaky).retries(1).needs(&["build"]),
                step("test", "echo failing >&2; exit 4").needs(&["flaky"]),
                step("never", "true").needs(&["test"]),
            ],
            &reporter,
        )
        .await;
    assert_eq!(summary.status, RunStatus::Failed);
    let text = buffer
        .text_without_durations()
        .replace(&format!("#{}", summary.run_id), "#N");
    insta::assert_snapshot!(text, @r"
    ▶ run #N of test-app: 4 steps
    [build] ▶ started
    [build] compiling
    [build] ✓ succeeded in <t>
    [flaky] ▶ started
    [flaky] try 1
    [flaky] ! attempt 1 exited with code 1; retrying (2/2)
    [flaky] ⟳ retrying (2/2): exited with code 1
    [flaky] try 2
    [flaky] ✓ succeeded in <t>
    [test] ▶ started
    [test] failing
    [test] ✗ failed (exit 4) after <t>
    ✗ run #N failed after <t>: step `test` exited with code 4
    ");
}

#[tokio::test]
async fn the_terminal_reporter_survives_a_whole_run() {
    // Off a terminal indicatif draws nothing; this runs every code path of it.
    let fixture = Fixture::new().jobs(2).artifact(&["out.txt"]);
    for verbose in [false, true] {
        let reporter = TerminalReporter::new(verbose);
        let summary = fixture
            .run_reporting_to(
                vec![
                    step("a", "echo one; echo two >&2; echo x > out.txt"),
                    step("b", "printf 'tab\\there\\n'").needs(&["a"]),
                ],
                &reporter,
            )
            .await;
        assert_eq!(
            summary.status,
            RunStatus::Succeeded,
            "{:?}",
            summary.failure
        );
        assert!(summary.artifact.is_some());
    }
}

#[tokio::test]
async fn dropping_the_run_kills_its_processes() {
    let fixture = Fixture::new();
    let started = fixture.path("started");
    let run = fixture.run(vec![step(
        "forever",
        "echo $$ > forever.pgid; sleep 300 & touch started; sleep 300",
    )]);
    let raced = tokio::time::timeout(Duration::from_secs(10), async {
        tokio::select! {
            _ = run => {}
            () = wait_for_file(&started) => {}
        }
    })
    .await;
    assert!(raced.is_ok(), "the step started");
    let group = fixture.pgid("forever.pgid");
    // Aborted tasks are dropped on the runtime's next turn; give it a few.
    for _ in 0..100 {
        if live_members_of_group(group).is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(live_members_of_group(group), Vec::<i32>::new());
}
