//! The exposition: store-derived snapshot plus router figures, rendered and
//! checked by Prometheus's own `promtool check metrics`.

#[path = "common/history.rs"]
#[allow(dead_code, reason = "each test file uses part of the helpers")]
mod history;

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

use lastmile_monitor::{
    DurationHistogram, MetricsSnapshot, ReleaseLatency, RouterTraffic, render_metrics,
    render_openmetrics, snapshot_from_store,
};

/// Runs `promtool check metrics` on the text; returns (success, output).
fn promtool_check(text: &str) -> (bool, String) {
    let mut child = match Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
    {
        Ok(child) => child,
        Err(err) => panic!(
            "could not run promtool ({err}); run scripts/test, which installs it \
             (Debian package `prometheus`)"
        ),
    };
    let written = child
        .stdin
        .take()
        .expect("stdin piped")
        .write_all(text.as_bytes());
    // Reap the child before judging the write.
    let output = child.wait_with_output().expect("wait for promtool");
    written.expect("write to promtool");
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), said)
}

fn full_snapshot() -> MetricsSnapshot {
    let (_dir, store) = history::store();
    history::crafted(&store);
    let mut snapshot =
        snapshot_from_store(&store, history::now_millis(), Duration::from_secs(86_400))
            .expect("snapshot");
    snapshot.router = vec![
        RouterTraffic {
            environment: "production".into(),
            release: "v4".into(),
            requests: 1000,
            server_errors: 7,
            connect_errors: 2,
            durations: DurationHistogram {
                buckets: vec![(0.001, 400), (0.01, 990), (0.1, 999)],
                count: 1000,
                sum_seconds: 3.5,
            },
        },
        RouterTraffic {
            environment: "staging".into(),
            release: "v1".into(),
            requests: 10,
            server_errors: 0,
            connect_errors: 0,
            durations: DurationHistogram::default(),
        },
    ];
    snapshot.router_latency = vec![ReleaseLatency {
        environment: "production".into(),
        release: "v4".into(),
        p50_seconds: 0.002,
        p95_seconds: 0.010,
        p99_seconds: 0.025,
    }];
    snapshot
}

#[test]
fn the_snapshot_holds_runs_deployments_rollbacks_and_dora() {
    let snapshot = full_snapshot();
    assert_eq!(snapshot.runs_by_status.get("succeeded"), Some(&4));
    assert_eq!(snapshot.run_durations_seconds.len(), 4);
    let count = |env: &str, outcome: &str| {
        snapshot
            .deployments
            .get(&(env.to_owned(), outcome.to_owned()))
            .copied()
    };
    assert_eq!(count("production", "succeeded"), Some(3));
    assert_eq!(count("production", "failed"), Some(1));
    assert_eq!(count("production", "rolled-back"), Some(1));
    assert_eq!(count("staging", "succeeded"), Some(1));
    assert_eq!(count("staging", "failed"), None);
    assert_eq!(snapshot.rollbacks.get("production"), Some(&1));
    assert_eq!(snapshot.rollbacks.get("staging"), None);
    let environments: Vec<_> = snapshot
        .dora
        .iter()
        .map(|r| r.environment.as_str())
        .collect();
    assert_eq!(environments, ["production", "staging"]);
    assert_eq!(snapshot.dora[0].change_failure_rate, Some(0.6));
}

#[test]
fn the_rendered_text_has_the_figures_and_passes_promtool() {
    let text = render_metrics(&full_snapshot());
    for line in [
        "lastmile_runs_total{status=\"succeeded\"} 4",
        "lastmile_run_duration_seconds_count 4",
        "lastmile_deployments_total{environment=\"production\",outcome=\"failed\"} 1",
        "lastmile_deployments_total{environment=\"production\",outcome=\"succeeded\"} 3",
        "lastmile_rollbacks_total{environment=\"production\"} 1",
        "lastmile_router_requests_total{environment=\"production\",release=\"v4\"} 1000",
        "lastmile_router_server_errors_total{environment=\"production\",release=\"v4\"} 7",
        "lastmile_router_connect_errors_total{environment=\"production\",release=\"v4\"} 2",
        "# TYPE lastmile_router_request_duration_seconds histogram",
        "lastmile_router_request_duration_seconds_bucket{le=\"0.001\",environment=\"production\",release=\"v4\"} 400",
        "lastmile_router_request_duration_seconds_bucket{le=\"0.01\",environment=\"production\",release=\"v4\"} 990",
        "lastmile_router_request_duration_seconds_bucket{le=\"0.1\",environment=\"production\",release=\"v4\"} 999",
        "lastmile_router_request_duration_seconds_bucket{le=\"+Inf\",environment=\"production\",release=\"v4\"} 1000",
        "lastmile_router_request_duration_seconds_count{environment=\"production\",release=\"v4\"} 1000",
        "lastmile_router_request_duration_seconds_sum{environment=\"production\",release=\"v4\"} 3.5",
        "lastmile_router_request_duration_seconds_bucket{le=\"+Inf\",environment=\"staging\",release=\"v1\"} 0",
        "# TYPE lastmile_router_latency_p99_last_60s_seconds gauge",
        "lastmile_router_latency_p99_last_60s_seconds{environment=\"production\",release=\"v4\"} 0.025",
        "lastmile_dora_change_failure_ratio{environment=\"production\"} 0.6",
        "lastmile_dora_deployment_frequency_per_day{environment=\"production\"} 3.0",
        "lastmile_dora_tier{environment=\"production\",metric=\"change_failure_rate\",tier=\"low\"} 1.0",
    ] {
        assert!(
            text.lines().any(|l| l == line),
            "missing `{line}` in:\n{text}"
        );
    }
    assert!(!text.contains("# EOF"), "{text}");
    assert!(
        text.contains("# TYPE lastmile_runs_total counter\n"),
        "{text}"
    );
    let (ok, said) = promtool_check(&text);
    assert!(ok, "promtool rejected the exposition: {said}\n{text}");
}

#[test]
fn an_empty_snapshot_renders_valid_text() {
    let (_dir, store) = history::store();
    let snapshot = snapshot_from_store(&store, history::now_millis(), Duration::from_secs(86_400))
        .expect("snapshot");
    assert_eq!(snapshot, MetricsSnapshot::default());
    let text = render_metrics(&snapshot);
    // Families without samples print nothing; the histogram always has some.
    assert!(
        text.contains("lastmile_run_duration_seconds_count 0\n"),
        "{text}"
    );
    let (ok, said) = promtool_check(&text);
    assert!(ok, "promtool rejected the exposition: {said}\n{text}");
}

#[test]
fn the_openmetrics_text_names_counter_families_without_total_and_ends_with_eof() {
    let snapshot = full_snapshot();
    let text = render_openmetrics(&snapshot);
    assert!(text.ends_with("# EOF\n"), "{text}");
    assert!(text.contains("# TYPE lastmile_runs counter\n"), "{text}");
    assert!(
        text.contains("lastmile_runs_total{status=\"succeeded\"} 4\n"),
        "{text}"
    );
    // Same samples in both formats (label sets come in hash order, so
    // sorted): only metadata lines differ.
    let samples = |t: &str| -> Vec<String> {
        let mut lines: Vec<String> = t
            .lines()
            .filter(|l| !l.starts_with('#'))
            .map(str::to_owned)
            .collect();
        lines.sort();
        lines
    };
    assert_eq!(samples(&text), samples(&render_metrics(&snapshot)));
}

/// The check above can fail: promtool does reject a broken exposition.
#[test]
fn promtool_rejects_broken_text() {
    let (ok, _) = promtool_check("# TYPE x counter\nx_total{a=\"b} 1\n");
    assert!(!ok, "promtool accepted a broken exposition");
}

/// docs/server.md's metrics table names every family the exposition has,
/// with its type, and nothing else.
#[test]
fn the_metrics_table_in_the_docs_matches_the_exposition() {
    let docs = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/server.md"),
    )
    .expect("docs/server.md");
    let mut documented: Vec<(String, String)> = docs
        .lines()
        .filter_map(|line| line.strip_prefix("| `lastmile_"))
        .map(|row| {
            let cells: Vec<&str> = row.split(" | ").collect();
            let name = format!("lastmile_{}", cells[0].trim_end_matches('`'));
            (name, cells[1].to_owned())
        })
        .collect();
    documented.sort();
    let mut exposed: Vec<(String, String)> = render_metrics(&full_snapshot())
        .lines()
        .filter_map(|line| line.strip_prefix("# TYPE "))
        .filter_map(|rest| rest.split_once(' '))
        .map(|(name, kind)| (name.to_owned(), kind.to_owned()))
        .collect();
    exposed.sort();
    assert_eq!(documented, exposed);
}
