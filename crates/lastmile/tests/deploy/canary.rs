//! The canary strategy end to end: analysis on the router's own counters
//! promotes a good release, aborts a failing or slow one, refuses to pass
//! a step without evidence, and waits at a pause for `lastmile promote`.

use super::*;

/// Latency checks loosened: these tests are about errors, steps and
/// gates, and a busy CI machine makes sub-10 ms latencies noisy.
const QUICK_CANARY: &str = "{ type: canary, steps: [10, 50, 100], step_duration: 2s, min_requests: 20, step_deadline: 20s, max_latency_ratio: 100, analysis: { max_p95_ratio: 100, latency_floor_ms: 2000 } }";

/// Default latency analysis, for the test that is about latency.
const LATENCY_CANARY: &str = "{ type: canary, steps: [10, 50, 100], step_duration: 2s, min_requests: 20, step_deadline: 20s }";

fn decisions(app: &App) -> Vec<String> {
    let output = app.lastmile(&["status", "--json"]);
    let status: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    status["deployments"][0]["phase"]
        .as_str()
        .map(str::to_string)
        .into_iter()
        .collect()
}

#[test]
fn a_good_canary_is_promoted_step_by_step() {
    let app = App::new(QUICK_CANARY, 2, "v1");
    let up = app.up();
    let load = Load::start(&app);
    std::thread::sleep(Duration::from_secs(1));

    app.write_spec(QUICK_CANARY, 2, "v2", "");
    let outcome = app.must(&["deploy", "production", "--in-place", "--json"]);
    assert_eq!(outcome["status"], "succeeded", "{outcome}");
    assert!(app.get("/").contains("hello from hello v2"));
    std::thread::sleep(Duration::from_millis(500));
    let report = load.stop();
    assert_clean(&report, "a good canary");
    assert!(report.by_body.keys().any(|body| body.contains("v1")));
    assert!(report.by_body.keys().any(|body| body.contains("v2")));
    let log = up.log();
    assert!(log.contains("step-1: 10% of traffic on v2"), "{log}");
    assert!(log.contains("step-2: 50% of traffic on v2"), "{log}");
    assert!(log.contains("all traffic on v2"), "{log}");
    assert_eq!(decisions(&app), ["succeeded"]);
    drop(up);
}

/// A new process of a real app answers its first requests slowly (a cold
/// JIT, empty caches, a connection pool still filling). Here each instance
/// of both releases takes 50–150 ms for its first 12 requests, then 20 ms:
/// the default latency analysis must leave that warm-up out and promote a
/// canary that is as good as stable.
#[test]
fn a_good_canary_with_a_slow_warm_up_is_promoted() {
    let warm_up = r#", HELLO_LATENCY_MS: "20", HELLO_WARMUP_REQUESTS: "12", HELLO_WARMUP_LATENCY_MS: "50-150""#;
    let app = App::new(LATENCY_CANARY, 2, "v1");
    app.write_spec(LATENCY_CANARY, 2, "v1", warm_up);
    let up = app.up();
    let load = Load::start(&app);
    // Stable's own warm-up is over before the canary starts.
    wait_for("stable to answer 60 requests", || {
        load.report().requests >= 60
    });

    app.write_spec(LATENCY_CANARY, 2, "v2", warm_up);
    let outcome = app.deploy_outcome();
    assert_eq!(
        outcome["status"],
        "succeeded",
        "a canary whose only difference is its warm-up was not promoted: {outcome}\n{}",
        up.log()
    );
    assert!(app.get("/").contains("hello from hello v2"));
    let report = load.stop();
    assert_clean(&report, "a canary with a slow warm-up");
    assert!(report.by_body.keys().any(|body| body.contains("v2")));
    assert_eq!(decisions(&app), ["succeeded"]);
    drop(up);
}

#[test]
fn a_failing_canary_is_aborted_and_stable_keeps_serving() {
    let app = App::new(QUICK_CANARY, 2, "v1");
    let up = app.up();
    let first = current_release(&app);
    let load = Load::start(&app);
    std::thread::sleep(Duration::from_secs(1));

    app.write_spec(QUICK_CANARY, 2, "v2", r#", HELLO_ERROR_RATE: "0.5""#);
    let outcome = app.deploy_outcome();
    assert_eq!(outcome["status"], "failed", "{outcome}");
    let error = outcome["error"].as_str().unwrap();
    assert!(error.contains("canary aborted: error rate"), "{error}");
    assert_eq!(current_release(&app), first);
    std::thread::sleep(Duration::from_millis(500));
    let before_stop = load.report();
    std::thread::sleep(Duration::from_secs(1));
    let report = load.stop();
    // After the abort only stable answers, and answers well.
    assert_eq!(
        report.failed, before_stop.failed,
        "failures after the abort: {report:#?}"
    );
    assert!(
        report.failed * 100 <= report.requests * 5,
        "more than 5% of all requests failed: {report:#?}"
    );
    assert!(
        up.log().contains("aborted: all traffic back on v1"),
        "{}",
        up.log()
    );
    let status = app.status().unwrap();
    let instances = status["instances"].as_array().unwrap();
    assert!(
        instances
            .iter()
            .all(|instance| instance["release_id"] == first.as_str()),
        "the canary's instances are stopped: {status}"
    );
    assert_eq!(instances.len(), 2, "stable was never stopped: {status}");
    drop(up);
}

/// The body of a raw HTTP answer (the API answers with a length, not chunks).
fn body_of(answer: &str) -> &str {
    answer.split_once("\r\n\r\n").map_or("", |(_, body)| body)
}

/// One reason, everywhere a user looks: the deploy's exit message, `status`
/// (human and JSON), `events`, the deployments API and the dashboard's
/// deployment page with its analysis timeline.
#[test]
fn a_failed_canary_says_the_same_reason_everywhere() {
    let app = App::new(QUICK_CANARY, 1, "v1");
    let up = app.up();
    let load = Load::start(&app);
    std::thread::sleep(Duration::from_secs(1));

    app.write_spec(QUICK_CANARY, 1, "v2", r#", HELLO_ERROR_RATE: "0.5""#);
    let deploy = app.lastmile(&["deploy", "production", "--in-place"]);
    let _ = load.stop();
    assert_eq!(deploy.status.code(), Some(1), "{deploy:?}");
    let exit_message = String::from_utf8_lossy(&deploy.stderr).into_owned();

    let status = app.status().unwrap();
    let last = &status["environments"][0]["last_deployment"];
    assert_eq!(last["outcome"], "failed", "{status}");
    let reason = last["reason"].as_str().unwrap().to_owned();
    assert!(reason.starts_with("canary aborted: error rate"), "{reason}");
    assert!(!reason.contains("traffic restored"), "{reason}");
    let canary_requests = last["analysis"]["canary"]["requests"].as_u64().unwrap();
    let canary_errors = last["analysis"]["canary"]["errors"].as_u64().unwrap();
    assert!(
        canary_errors > 0 && canary_requests >= canary_errors,
        "{last}"
    );
    let numbers = format!("canary {canary_requests} requests, {canary_errors} errors");

    assert!(exit_message.contains(&reason), "{exit_message}");
    assert!(
        exit_message.contains(&format!("last analysis: {numbers}")),
        "{exit_message}"
    );

    let human = app.lastmile(&["status"]);
    let human = String::from_utf8_lossy(&human.stdout);
    assert!(human.contains(&reason), "{human}");
    assert!(human.contains(&numbers), "{human}");

    let events = app.lastmile(&["events", "production"]);
    assert!(events.status.success(), "{events:?}");
    let events = String::from_utf8_lossy(&events.stdout);
    let abort_reason = reason.strip_prefix("canary aborted: ").unwrap();
    assert!(
        events.lines().any(|line| line.contains("canary.decision")
            && line.contains(&format!("abort · {numbers}"))
            && line.ends_with(&format!("reason: {abort_reason}"))),
        "{events}"
    );
    assert!(
        events
            .lines()
            .any(|line| line.contains("deployment.finished")
                && line.contains(&format!("failed: {reason}"))),
        "{events}"
    );
    let as_json = app.lastmile(&["events", "production", "--json", "--limit", "3"]);
    let lines: Vec<serde_json::Value> = String::from_utf8_lossy(&as_json.stdout)
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    assert_eq!(lines.len(), 3, "{lines:?}");
    assert_eq!(lines[2]["kind"], "deployment.finished", "{lines:?}");
    assert_eq!(lines[2]["data"]["reason"], reason.as_str());

    let id = last["id"].as_i64().unwrap();
    let api = control_get(&app, &format!("/api/v1/apps/hello/deployments/{id}"));
    assert!(api.starts_with("HTTP/1.1 200"), "{api}");
    let api: serde_json::Value = serde_json::from_str(body_of(&api)).unwrap();
    assert_eq!(api["deployment"]["reason"], reason.as_str(), "{api}");
    assert_eq!(api["deployment"]["analysis"], last["analysis"], "{api}");
    let listed = control_get(&app, "/api/v1/apps/hello/deployments");
    let listed: serde_json::Value = serde_json::from_str(body_of(&listed)).unwrap();
    assert_eq!(
        listed["deployments"][0]["reason"],
        reason.as_str(),
        "{listed}"
    );

    let page = control_get(&app, &format!("/apps/hello/deployments/{id}"));
    assert!(page.starts_with("HTTP/1.1 200"), "{page}");
    assert!(page.contains("id=\"deployment-reason\""), "{page}");
    assert!(page.contains("Analysis timeline"), "{page}");
    assert!(
        page.contains("<svg") && page.contains("class=\"abort\""),
        "{page}"
    );
    assert!(page.contains(&numbers), "{page}");

    // `--follow` into a reader that goes away ends quietly at the next event.
    let mut follow = app
        .command(&["events", "--follow", "--limit", "1", "--interval", "100ms"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = String::new();
    {
        use std::io::BufRead;
        let mut reader = std::io::BufReader::new(follow.stdout.take().unwrap());
        reader.read_line(&mut first).unwrap();
    }
    assert!(!first.is_empty());
    // Any change is an event: a refused abort is recorded as an API call.
    let control = app.control_addr();
    let body = r#"{"environment":"production"}"#;
    let _ = exchange(
        &control,
        &format!(
            "POST /api/v1/apps/hello/abort HTTP/1.1\r\nhost: {control}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
            body.len()
        ),
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    let exit = loop {
        if let Some(exit) = follow.try_wait().unwrap() {
            break exit;
        }
        if Instant::now() > deadline {
            let _ = follow.kill();
            let _ = follow.wait();
            panic!("`lastmile events --follow` did not end after its reader left");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut stderr = String::new();
    {
        use std::io::Read;
        follow
            .stderr
            .take()
            .unwrap()
            .read_to_string(&mut stderr)
            .unwrap();
    }
    assert!(exit.success(), "{exit:?}: {stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    drop(up);
}

#[test]
fn a_slow_canary_is_aborted_on_latency() {
    let app = App::new(LATENCY_CANARY, 1, "v1");
    let up = app.up();
    let first = current_release(&app);
    let load = Load::start(&app);
    std::thread::sleep(Duration::from_secs(1));

    app.write_spec(LATENCY_CANARY, 1, "v2", r#", HELLO_LATENCY_MS: "80""#);
    let outcome = app.deploy_outcome();
    assert_eq!(outcome["status"], "failed", "{outcome}");
    let error = outcome["error"].as_str().unwrap();
    assert!(error.contains("latency"), "{error}");
    assert_eq!(current_release(&app), first);
    let report = load.stop();
    assert_eq!(
        report.failed, 0,
        "a slow canary fails no request: {report:#?}"
    );
    drop(up);
}

#[test]
fn a_canary_without_traffic_holds_then_fails_at_the_deadline() {
    let strategy = "{ type: canary, steps: [20, 100], step_duration: 1s, min_requests: 50, step_deadline: 3s }";
    let app = App::new(strategy, 1, "v1");
    let up = app.up();
    let first = current_release(&app);
    app.write_spec(strategy, 1, "v2", "");
    let outcome = app.deploy_outcome();
    assert_eq!(outcome["status"], "failed", "{outcome}");
    let error = outcome["error"].as_str().unwrap();
    assert!(error.contains("not enough evidence"), "{error}");
    assert_eq!(current_release(&app), first);
    drop(up);
}

#[test]
fn a_pause_waits_for_promote() {
    let strategy = "{ type: canary, steps: [10, pause, 100], step_duration: 1s, min_requests: 1, step_deadline: 30s, max_latency_ratio: 100, analysis: { max_p95_ratio: 100, latency_floor_ms: 2000 } }";
    let app = App::new(strategy, 1, "v1");
    let up = app.up();
    let load = Load::start(&app);
    app.write_spec(strategy, 1, "v2", "");
    let mut deploy = app.start_deploy();
    wait_for("the canary to pause", || {
        app.status().is_ok_and(|status| {
            status["environments"][0]["deployment"]["phase"]
                .as_str()
                .is_some_and(|phase| phase.ends_with("paused"))
        })
    });
    std::thread::sleep(Duration::from_secs(2));
    assert!(
        deploy.try_wait().unwrap().is_none(),
        "the deployment waits at the pause"
    );
    let promoted = app.must(&["promote", "production", "--json"]);
    assert_eq!(promoted["promote"], true, "{promoted}");
    let outcome = outcome_of(deploy);
    assert_eq!(outcome["status"], "succeeded", "{outcome}");
    assert!(app.get("/").contains("hello from hello v2"));
    let report = load.stop();
    assert_clean(&report, "a paused canary");
    // Nothing to promote any more.
    let output = app.lastmile(&["promote", "production"]);
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("no canary is running"));
    drop(up);
}

/// A tiny HTTP server that records what is posted to it; `/refuse` answers
/// 500.
struct Receiver {
    addr: SocketAddr,
    received: std::sync::Arc<std::sync::Mutex<Vec<(String, serde_json::Value)>>>,
}

impl Receiver {
    fn start() -> Receiver {
        use std::io::{BufRead, BufReader, Read, Write};
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let received = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let sink = received.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { return };
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut line = String::new();
                if reader.read_line(&mut line).is_err() {
                    continue;
                }
                let path = line.split_whitespace().nth(1).unwrap_or("/").to_string();
                let mut length = 0;
                loop {
                    let mut header = String::new();
                    if reader.read_line(&mut header).unwrap_or(0) == 0 || header == "\r\n" {
                        break;
                    }
                    if let Some(value) = header.to_ascii_lowercase().strip_prefix("content-length:")
                    {
                        length = value.trim().parse().unwrap_or(0);
                    }
                }
                let mut body = vec![0; length];
                let _ = reader.read_exact(&mut body);
                let json = serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null);
                let status = if path == "/refuse" {
                    "500 Internal Server Error"
                } else {
                    "200 OK"
                };
                sink.lock().unwrap().push((path, json));
                let _ = write!(
                    stream,
                    "HTTP/1.1 {status}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
                );
            }
        });
        Receiver { addr, received }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    fn received(&self) -> Vec<(String, serde_json::Value)> {
        self.received.lock().unwrap().clone()
    }
}

#[test]
fn notifications_and_gate_webhooks_follow_the_canary() {
    let receiver = Receiver::start();
    let app = App::new(QUICK_CANARY, 1, "v1");
    let up = app.up();
    let load = Load::start(&app);
    app.write_spec(QUICK_CANARY, 1, "v2", "");
    add_to_environment(
        &app,
        &format!(
            "    notify: [ {{ url: \"{}\" }}, {{ url: \"{}\", format: slack }} ]\n    gates: {{ webhooks: {{ before: \"{}\", after: \"{}\" }} }}",
            receiver.url("/json"),
            receiver.url("/slack"),
            receiver.url("/before"),
            receiver.url("/after"),
        ),
    );
    let outcome = app.must(&["deploy", "production", "--in-place", "--json"]);
    assert_eq!(outcome["status"], "succeeded", "{outcome}");
    wait_for("the last notifications", || {
        receiver
            .received()
            .iter()
            .filter(|(path, _)| path == "/json" || path == "/after")
            .count()
            >= 5
    });
    let received = receiver.received();
    let json_events: Vec<String> = received
        .iter()
        .filter(|(path, _)| path == "/json")
        .map(|(_, body)| body["event"].as_str().unwrap_or("?").to_string())
        .collect();
    assert_eq!(
        json_events,
        ["started", "step", "step", "promoted"],
        "{received:?}"
    );
    let steps: Vec<f64> = received
        .iter()
        .filter(|(path, body)| path == "/json" && body["event"] == "step")
        .map(|(_, body)| body["percent"].as_f64().unwrap())
        .collect();
    assert_eq!(steps, [10.0, 50.0]);
    let slack = received.iter().find(|(path, body)| {
        path == "/slack" && body["text"].as_str().unwrap_or("").ends_with("v2 promoted")
    });
    assert!(slack.is_some(), "{received:?}");
    let before = received
        .iter()
        .position(|(path, _)| path == "/before")
        .expect("before hook");
    let after = received
        .iter()
        .position(|(path, _)| path == "/after")
        .expect("after hook");
    assert!(before < after);
    assert_eq!(received[before].1["version"], "v2");
    assert_eq!(received[after].1["status"], "succeeded");
    let report = load.stop();
    assert_clean(&report, "a canary with notifications");

    // A `before` hook that refuses stops the next deployment before it starts.
    app.write_spec(QUICK_CANARY, 1, "v3", "");
    add_to_environment(
        &app,
        &format!(
            "    gates: {{ webhooks: {{ before: \"{}\" }} }}",
            receiver.url("/refuse")
        ),
    );
    let outcome = app.deploy_outcome();
    assert_eq!(outcome["status"], "failed", "{outcome}");
    assert!(
        outcome["error"]
            .as_str()
            .unwrap()
            .contains("`before` webhook refused"),
        "{outcome}"
    );
    assert!(app.get("/").contains("hello from hello v2"));
    drop(up);
}

#[test]
fn an_environment_that_requires_approval_deploys_only_when_approved() {
    let app = App::new("rolling", 1, "v1");
    add_to_environment(&app, "    gates: { approval: required }");
    let up = {
        // `lastmile up --approve` approves its first deployment.
        let up = app.spawn_up(&["up", "--in-place", "--approve"]);
        wait_for("lastmile up to serve", || {
            app.status()
                .is_ok_and(|status| status["environments"][0]["current_release"].is_string())
        });
        up
    };
    app.write_spec("rolling", 1, "v2", "");
    add_to_environment(&app, "    gates: { approval: required }");
    let output = app.lastmile(&["deploy", "production", "--in-place"]);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("requires approval"), "{stderr}");
    assert!(stderr.contains("--approve"), "{stderr}");
    assert!(app.get("/").contains("hello from hello v1"));

    let outcome = app.must(&["deploy", "production", "--in-place", "--approve", "--json"]);
    assert_eq!(outcome["status"], "succeeded", "{outcome}");
    assert!(app.get("/").contains("hello from hello v2"));
    assert!(up.log().contains("approved by"), "{}", up.log());
    drop(up);
}

/// `lastmile restart` in the middle of a canary: the new process resumes it
/// at the same step with the same weights and takes it to the end, with no
/// failed request.
#[test]
fn a_restart_mid_canary_resumes_at_the_same_step() {
    let strategy = "{ type: canary, steps: [20, 50, 100], step_duration: 4s, min_requests: 10, step_deadline: 60s, max_latency_ratio: 100, analysis: { max_p95_ratio: 100, latency_floor_ms: 2000 } }";
    let app = App::new(strategy, 1, "v1");
    let up = app.up();
    let load = Load::start(&app);
    app.write_spec(strategy, 1, "v2", "");
    let mut deploy = app
        .command(&["deploy", "production", "--in-place", "--json"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let phase = |status: &serde_json::Value| {
        status["environments"][0]["deployment"]["phase"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    };
    wait_for("the canary's second step", || {
        app.status().is_ok_and(|status| phase(&status) == "step-2")
    });
    let before = app.status().unwrap();
    let weights_before = before["environments"][0]["weights"].clone();
    let deployment = before["environments"][0]["deployment"]["id"].clone();
    let old_pid = up.serving_pid();
    app.must(&["restart", "--json"]);
    wait_for("the new process to serve", || up.serving_pid() != old_pid);
    let after = app.status().unwrap();
    assert_eq!(phase(&after), "step-2", "{after}");
    assert_eq!(after["environments"][0]["deployment"]["id"], deployment);
    assert_eq!(
        after["environments"][0]["weights"], weights_before,
        "{after}"
    );
    let _ = deploy.wait();
    wait_for("the resumed canary to promote", || {
        app.status().is_ok_and(|status| {
            status["deployments"][0]["id"] == deployment
                && status["deployments"][0]["status"] == "succeeded"
        })
    });
    assert!(app.get("/").contains("hello from hello v2"));
    std::thread::sleep(Duration::from_millis(500));
    let report = load.stop();
    assert_clean(&report, "a restart mid-canary");
    assert!(up.log().contains("resumes at step-2"), "{}", up.log());
    drop(up);
}

/// `lastmile restart` during a dark launch: the new process runs the dark
/// launch again (its `duration` and `min_requests` counted from the
/// restart) before any user traffic moves, then the weight steps.
#[test]
fn a_restart_mid_dark_launch_resumes_the_dark_launch() {
    let strategy = "{ type: canary, steps: [50, 100], step_duration: 1s, min_requests: 5, step_deadline: 60s, mirror: { percent: 100, duration: 4s, min_requests: 10 }, max_latency_ratio: 100, analysis: { max_p95_ratio: 100, latency_floor_ms: 2000 } }";
    let app = App::new(strategy, 1, "v1");
    let up = app.up();
    let load = Load::start(&app);
    app.write_spec(strategy, 1, "v2", "");
    let mut deploy = app
        .command(&["deploy", "production", "--in-place", "--json"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_for_phase(&app, "dark");
    let deployment = app.status().unwrap()["environments"][0]["deployment"]["id"].clone();
    let old_pid = up.serving_pid();
    app.must(&["restart", "--json"]);
    wait_for("the new process to serve", || up.serving_pid() != old_pid);
    let restarted = Instant::now();
    wait_for("the dark launch to end", || {
        app.status().is_ok_and(|status| {
            status["environments"][0]["deployment"]["phase"].as_str() != Some("dark")
        })
    });
    let dark_after_restart = restarted.elapsed();
    let _ = deploy.wait();
    wait_for("the resumed canary to promote", || {
        app.status().is_ok_and(|status| {
            status["deployments"][0]["id"] == deployment
                && status["deployments"][0]["status"] == "succeeded"
        })
    });
    let report = load.stop();
    assert_clean(&report, "a restart mid-dark-launch");
    let log = up.log();
    assert!(log.contains("resumes at dark"), "{log}");
    assert_eq!(
        log.matches("dark launch: 100% of GET/HEAD requests mirrored to v2")
            .count(),
        2,
        "the restarted process did not run the dark launch again:\n{log}"
    );
    assert!(
        dark_after_restart >= Duration::from_secs(3),
        "the weight steps began {dark_after_restart:?} after the restart, before the mirror's 4 s"
    );
    drop(up);
}

/// A deployment whose end the store cannot record is not reported as
/// succeeded: another process holds SQLite's write lock from the promotion
/// until past the store's 5 s busy timeout, so `lastmile deploy` fails and
/// says that traffic is on v2 but the store missed it; the next start of
/// lastmile records it as succeeded.
#[test]
fn a_deployment_the_store_cannot_record_is_not_reported_as_succeeded() {
    let strategy = "{ type: canary, steps: [50, 100], step_duration: 1s, min_requests: 5, step_deadline: 60s, guard: 2s, max_latency_ratio: 100, analysis: { max_p95_ratio: 100, latency_floor_ms: 2000 } }";
    let app = App::new(strategy, 1, "v1");
    let up = app.up();
    let load = Load::start(&app);
    app.write_spec(strategy, 1, "v2", "");
    let deploy = app
        .command(&["deploy", "production", "--in-place", "--json"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_for("the promotion", || up.log().contains("guarding v2"));
    let database =
        rusqlite::Connection::open(app.dir.path().join(".lastmile/lastmile.db")).unwrap();
    database.busy_timeout(Duration::from_secs(5)).unwrap();
    database.execute_batch("BEGIN EXCLUSIVE").unwrap();
    let output = deploy.wait_with_output().unwrap();
    database.execute_batch("ROLLBACK").unwrap();
    drop(database);
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(!output.status.success(), "{said}");
    assert!(
        said.contains("put all traffic on v2")
            && said.contains("the store could not record that it finished"),
        "{said}"
    );
    assert!(app.get("/").contains("hello from hello v2"));
    let deployment = app.status().unwrap()["deployments"][0].clone();
    assert_eq!(deployment["status"], "running", "{deployment}");

    let old_pid = up.serving_pid();
    app.must(&["restart", "--json"]);
    wait_for("the new process to serve", || up.serving_pid() != old_pid);
    wait_for("the deployment to be recorded", || {
        app.status().is_ok_and(|status| {
            status["deployments"][0]["id"] == deployment["id"]
                && status["deployments"][0]["status"] == "succeeded"
        })
    });
    assert!(app.get("/").contains("hello from hello v2"));
    // Not judged: while the lock was held, writers in `up` waited on it.
    let _ = load.stop();
    drop(up);
}

fn wait_for_phase(app: &App, wanted: &str) {
    wait_for(&format!("phase {wanted}"), || {
        app.status().is_ok_and(|status| {
            status["environments"][0]["deployment"]["phase"].as_str() == Some(wanted)
        })
    });
}

/// Users keep their release as the canary's weight grows (the canary only
/// gains users), and pins send testers to the canary or keep users on
/// stable whatever the weight.
#[test]
fn cohorts_stay_sticky_across_weight_changes_and_pins_win() {
    let strategy = "{ type: canary, steps: [20, pause, 60, pause, 100], step_duration: 1s, min_requests: 5, step_deadline: 60s, max_latency_ratio: 100, analysis: { max_p95_ratio: 100, latency_floor_ms: 2000 } }";
    let app = App::new(strategy, 1, "v1");
    let up = app.up();
    let load = Load::start(&app);
    app.write_spec(strategy, 1, "v2", "");
    add_to_environment(
        &app,
        "    cohort: { header: x-user-id }\n    pins: [ { header: x-canary, value: \"1\", to: canary }, { cookie: beta, value: \"no\", to: stable } ]",
    );
    let deploy = app.start_deploy();
    let on_canary = |key: usize| {
        app.get_with("/", &format!("x-user-id: user-{key}\r\n"))
            .contains("hello v2")
    };

    wait_for_phase(&app, "step-2-paused");
    let at_20: Vec<bool> = (0..300).map(on_canary).collect();
    let share_20 = at_20.iter().filter(|canary| **canary).count();
    assert!(
        (30..=90).contains(&share_20),
        "{share_20} of 300 users on the canary at 20%"
    );
    // The same user always lands on the same release at a given weight.
    for (key, was_on_canary) in at_20.iter().enumerate().take(20) {
        assert_eq!(on_canary(key), *was_on_canary, "user-{key} moved");
    }
    // Pins: testers reach the canary, opted-out users stay on stable.
    for _ in 0..10 {
        assert!(app.get_with("/", "x-canary: 1\r\n").contains("hello v2"));
        assert!(
            app.get_with("/", "x-user-id: user-0\r\ncookie: beta=no\r\n")
                .contains("hello v1")
        );
    }

    app.must(&["promote", "production"]);
    wait_for_phase(&app, "step-4-paused");
    let at_60: Vec<bool> = (0..300).map(on_canary).collect();
    let share_60 = at_60.iter().filter(|canary| **canary).count();
    assert!(
        (130..=230).contains(&share_60),
        "{share_60} of 300 users on the canary at 60%"
    );
    for (key, (was, is)) in at_20.iter().zip(&at_60).enumerate() {
        assert!(!was || *is, "user-{key} left the canary as its weight grew");
    }

    app.must(&["promote", "production"]);
    let outcome = outcome_of(deploy);
    assert_eq!(outcome["status"], "succeeded", "{outcome}");
    let report = load.stop();
    assert_clean(&report, "a canary with cohorts and pins");
    drop(up);
}

/// A dark launch mirrors requests to the new release before any user
/// traffic moves: users only ever see stable, a slow mirror never delays
/// them, and the mirror's latency is analysed against stable — here it
/// fails, so the release never serves a user.
#[test]
fn a_dark_launch_never_touches_users_and_is_judged_on_the_mirror() {
    let strategy = "{ type: canary, steps: [50, 100], step_duration: 1s, min_requests: 10, mirror: { percent: 100, duration: 10s, min_requests: 30 } }";
    let app = App::new(strategy, 1, "v1");
    let up = app.up();
    let load = Load::start(&app);
    std::thread::sleep(Duration::from_secs(1));
    app.write_spec(strategy, 1, "v2", r#", HELLO_LATENCY_MS: "300""#);
    let outcome = app.deploy_outcome();
    assert_eq!(outcome["status"], "failed", "{outcome}");
    assert!(
        outcome["error"].as_str().unwrap().contains("latency"),
        "{outcome}"
    );
    let report = load.stop();
    assert_clean(&report, "a dark launch");
    assert!(
        report.by_body.keys().all(|body| body.contains("v1")),
        "a user saw the mirror: {:?}",
        report.by_body
    );
    assert!(
        report.max_latency_ms < 250.0,
        "the 300 ms mirror delayed users: {report:#?}"
    );
    let log = up.log();
    assert!(
        log.contains("dark launch: 100% of GET/HEAD requests mirrored to v2"),
        "{log}"
    );
    drop(up);
}

/// A healthy dark launch goes on to the weight steps.
#[test]
fn a_good_dark_launch_goes_on_to_the_canary_steps() {
    let strategy = "{ type: canary, steps: [50, 100], step_duration: 1s, min_requests: 10, mirror: { percent: 50, duration: 2s, min_requests: 20 }, max_latency_ratio: 100, analysis: { max_p95_ratio: 100, latency_floor_ms: 2000 } }";
    let app = App::new(strategy, 1, "v1");
    let up = app.up();
    let load = Load::start(&app);
    app.write_spec(strategy, 1, "v2", "");
    let outcome = app.must(&["deploy", "production", "--in-place", "--json"]);
    assert_eq!(outcome["status"], "succeeded", "{outcome}");
    let report = load.stop();
    assert_clean(&report, "a dark launch promoted to a canary");
    let log = up.log();
    assert!(log.contains("dark launch"), "{log}");
    assert!(log.contains("step-1: 50% of traffic on v2"), "{log}");
    drop(up);
}

/// After promotion the guard keeps judging the new release against the
/// baseline stable had; a release that degrades later is rolled back to
/// the still-warm previous one.
#[test]
fn the_post_promotion_guard_rolls_back_a_release_that_degrades() {
    let strategy = "{ type: canary, steps: [50, 100], step_duration: 1s, min_requests: 10, guard: 30s, max_latency_ratio: 100, analysis: { max_p95_ratio: 100, latency_floor_ms: 2000 } }";
    let app = App::new(strategy, 1, "v1");
    let up = app.up();
    let first = current_release(&app);
    let load = Load::start(&app);
    std::thread::sleep(Duration::from_secs(1));
    // Healthy for its first 4 s, then half its requests fail.
    app.write_spec(
        strategy,
        1,
        "v2",
        r#", HELLO_ERROR_RATE: "0.5", HELLO_ERRORS_AFTER_MS: "4000""#,
    );
    let outcome = app.deploy_outcome();
    assert_eq!(outcome["status"], "failed", "{outcome}");
    assert!(
        outcome["error"]
            .as_str()
            .unwrap()
            .contains("regression after promotion"),
        "{outcome}"
    );
    let log = up.log();
    assert!(
        log.contains("all traffic on v2"),
        "it was promoted first: {log}"
    );
    assert!(log.contains("guarding v2"), "{log}");
    assert_eq!(current_release(&app), first);
    assert!(app.get("/").contains("hello from hello v1"));
    let report = load.stop();
    assert_eq!(report.ws_dropped, 0, "{report:#?}");
    drop(up);
}

/// `lastmile abort` sends all traffic back to stable at once; `lastmile
/// watch` shows the weights while the canary runs.
#[test]
fn abort_rolls_a_paused_canary_back_and_watch_shows_it() {
    let strategy = "{ type: canary, steps: [30, pause, 100], step_duration: 1s, min_requests: 1, max_latency_ratio: 100, analysis: { max_p95_ratio: 100, latency_floor_ms: 2000 } }";
    let app = App::new(strategy, 1, "v1");
    let up = app.up();
    let first = current_release(&app);
    let load = Load::start(&app);
    app.write_spec(strategy, 1, "v2", "");
    let deploy = app.start_deploy();
    wait_for_phase(&app, "step-2-paused");
    let watch = app.lastmile(&["watch", "production", "--count", "2", "--interval", "200ms"]);
    let lines = String::from_utf8_lossy(&watch.stdout);
    assert!(watch.status.success(), "{lines}");
    assert_eq!(lines.lines().count(), 2, "{lines}");
    let split = format!(
        r"v2 \([0-9a-f]{{8}}\) 30\.0% / v1 \({}\) 70\.0%",
        &first[..8]
    );
    assert!(
        regex::Regex::new(&split).unwrap().is_match(&lines),
        "{lines}"
    );
    assert!(lines.contains("[canary #"), "{lines}");

    let answer = app.must(&["abort", "production", "--json"]);
    assert_eq!(answer["abort"], true, "{answer}");
    let outcome = outcome_of(deploy);
    assert_eq!(outcome["status"], "failed", "{outcome}");
    assert!(
        outcome["error"]
            .as_str()
            .unwrap()
            .contains("aborted by `lastmile abort`"),
        "{outcome}"
    );
    assert_eq!(current_release(&app), first);
    let report = load.stop();
    assert_clean(&report, "an aborted canary");
    drop(up);
}
