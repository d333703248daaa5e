use super::*;

fn timed_out(failure: Option<ProbeFailure>, probes: u32, streak: u32) -> NotReady {
    NotReady {
        instance_id: "production.2efd64ee.1".to_owned(),
        addr: SocketAddr::from(([127, 0, 0, 1], 41234)),
        path: "/healthz".to_owned(),
        interval: Duration::from_secs(1),
        healthy_threshold: 1,
        probes,
        last_failure: failure,
        failure_streak: streak,
        passes: 0,
        end: NotReadyEnd::TimedOut {
            limit: Duration::from_secs(60),
        },
        output: vec![
            "[2026-12-02 10:00:00 +0000] [41] [INFO] Starting gunicorn 23.0.0".to_owned(),
            "[2026-12-02 10:00:00 +0000] [41] [INFO] Listening at: http://127.0.0.1:41234 (41)"
                .to_owned(),
        ],
        probe_lines: 59,
    }
}

/// Every way a start can fail, as the user reads it: once, with what was probed, what
/// answered, how long lastmile waited, the app's own output and the fix.
#[test]
fn not_ready_messages() {
    let mut cases: Vec<(&str, NotReady)> = vec![
        (
            "wrong health path",
            timed_out(Some(ProbeFailure::Status(404)), 59, 59),
        ),
        (
            "unhealthy answers after refused ones",
            timed_out(Some(ProbeFailure::Status(503)), 60, 57),
        ),
        (
            "nothing listens",
            NotReady {
                output: Vec::new(),
                probe_lines: 0,
                ..timed_out(Some(ProbeFailure::Refused), 3, 3)
            },
        ),
        (
            "probes time out",
            timed_out(Some(ProbeFailure::NoAnswer(Duration::from_secs(2))), 20, 20),
        ),
        (
            "not HTTP",
            timed_out(
                Some(ProbeFailure::NotHttp("SSH-2.0-OpenSSH_9.2".to_owned())),
                1,
                1,
            ),
        ),
        (
            "passes too rarely",
            NotReady {
                healthy_threshold: 3,
                passes: 2,
                ..timed_out(Some(ProbeFailure::Status(503)), 9, 1)
            },
        ),
        (
            "interval longer than the timeout",
            NotReady {
                interval: Duration::from_secs(90),
                output: Vec::new(),
                probe_lines: 0,
                ..timed_out(None, 0, 0)
            },
        ),
    ];
    cases.push((
        "exits with a status",
        NotReady {
            end: NotReadyEnd::Exited {
                how: "exited with status 3".to_owned(),
                after: Duration::from_millis(1_240),
            },
            output: vec!["Error: DATABASE_URL is not set".to_owned()],
            probe_lines: 0,
            ..timed_out(Some(ProbeFailure::Refused), 1, 1)
        },
    ));
    cases.push((
        "killed before the first probe, silently",
        NotReady {
            end: NotReadyEnd::Exited {
                how: "was killed by signal 9 (SIGKILL)".to_owned(),
                after: Duration::from_millis(80),
            },
            output: Vec::new(),
            probe_lines: 0,
            ..timed_out(None, 0, 0)
        },
    ));
    cases.push((
        "stopped while starting",
        NotReady {
            end: NotReadyEnd::Stopped {
                after: Duration::from_millis(75_300),
            },
            ..timed_out(Some(ProbeFailure::Status(503)), 75, 75)
        },
    ));
    let rendered: Vec<String> = cases
        .iter()
        .map(|(name, not_ready)| format!("── {name}\n{}", not_ready.report()))
        .collect();
    insta::assert_snapshot!(rendered.join("\n\n"));
}

#[test]
fn the_message_names_the_instance_once_and_no_json_field() {
    for failure in [ProbeFailure::Status(404), ProbeFailure::Refused] {
        let message = timed_out(Some(failure), 3, 3).to_string();
        assert_eq!(
            message.matches("production.2efd64ee.1").count(),
            1,
            "{message}"
        );
        assert_eq!(message.matches("did not become ready").count(), 1);
        assert!(!message.contains("last_lines"), "{message}");
    }
}

#[test]
fn elapsed_times_read_in_tenths_then_minutes() {
    for (millis, text) in [
        (0, "0.0s"),
        (49, "0.0s"),
        (50, "0.1s"),
        (1_240, "1.2s"),
        (59_940, "59.9s"),
        (59_960, "1m00s"),
        (125_000, "2m05s"),
    ] {
        assert_eq!(fmt_elapsed(Duration::from_millis(millis)), text, "{millis}");
    }
}
