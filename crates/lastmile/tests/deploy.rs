//! Zero-downtime deploys end to end: `lastmile up` on a real `hello`
//! service, real sockets, real processes, with a load generator running
//! continuous HTTP requests (keep-alive and fresh connections) and
//! WebSockets through every change.

#![allow(clippy::unwrap_used)]

use std::net::{SocketAddr, TcpListener};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use lastmile_loadgen::{LoadConfig, LoadGen, Report};

mod support;
use support::{free_port, hello_binary};

/// An app directory whose pipeline copies the prebuilt hello binary.
struct App {
    dir: tempfile::TempDir,
    port: u16,
    /// `$XDG_DATA_HOME` of the commands, where `up` keeps its secrets key.
    data_home: tempfile::TempDir,
}

impl App {
    fn new(strategy: &str, instances: u32, version: &str) -> App {
        let app = App {
            dir: tempfile::tempdir().unwrap(),
            port: free_port(),
            data_home: tempfile::tempdir().unwrap(),
        };
        app.write_spec(strategy, instances, version, "");
        app
    }

    fn write_spec(&self, strategy: &str, instances: u32, version: &str, extra_env: &str) {
        self.write_spec_running(strategy, instances, version, extra_env, "./hello");
    }

    fn write_spec_running(
        &self,
        strategy: &str,
        instances: u32,
        version: &str,
        extra_env: &str,
        run: &str,
    ) {
        let hello = hello_binary().display().to_string();
        let spec = format!(
            r#"app: hello
pipeline:
  steps:
    - name: build
      run: cp '{hello}' hello
artifact:
  paths: [hello]
service:
  run: {run}
  env: {{ HELLO_VERSION: "{version}"{extra_env} }}
  health: {{ path: /healthz, interval: 200ms, timeout: 1s, start_timeout: 10s }}
  stop: {{ signal: SIGTERM, grace: 5s }}
environments:
  production:
    instances: {instances}
    strategy: {strategy}
    route: {{ listen: "127.0.0.1:{port}" }}
"#,
            port = self.port
        );
        std::fs::write(self.dir.path().join("lastmile.yaml"), spec).unwrap();
    }

    fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    fn command(&self, args: &[&str]) -> Command {
        support::lastmile(self.dir.path(), self.data_home.path(), args)
    }

    fn lastmile(&self, args: &[&str]) -> Output {
        self.command(args).output().unwrap()
    }

    /// Starts `lastmile up --in-place` and waits until it serves.
    fn up(&self) -> Up {
        let up = self.spawn_up(&["up", "--in-place"]);
        self.wait_serving(&up);
        up
    }

    /// Waits until `up` serves: the environment has a release and its port
    /// answers.
    fn wait_serving(&self, up: &Up) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(status) = self.status() {
                let serving = status["environments"][0]["current_release"].is_string();
                if serving && reachable(self.addr()) {
                    return;
                }
            }
            assert!(
                Instant::now() < deadline,
                "lastmile up did not serve within 60 s:\n{}",
                up.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Spawns `lastmile ARGS` (an `up`) in its own process group, its
    /// output in up.log; it does not wait for it to serve.
    fn spawn_up(&self, args: &[&str]) -> Up {
        let log = self.dir.path().join("up.log");
        let file = std::fs::File::create(&log).unwrap();
        let mut command = self.command(args);
        command
            .stdout(file.try_clone().unwrap())
            .stderr(file)
            .process_group(0);
        Up {
            child: command.spawn().unwrap(),
            log,
            state: self.dir.path().join(".lastmile"),
        }
    }

    fn status(&self) -> Result<serde_json::Value, String> {
        let output = self.lastmile(&["status", "--json"]);
        if !output.status.success() {
            return Err(String::from_utf8_lossy(&output.stderr).into_owned());
        }
        serde_json::from_slice(&output.stdout).map_err(|error| error.to_string())
    }

    /// `lastmile deploy production --in-place --json`, failed or not: its
    /// JSON outcome.
    fn deploy_outcome(&self) -> serde_json::Value {
        let output = self.lastmile(&["deploy", "production", "--in-place", "--json"]);
        serde_json::from_slice(&output.stdout).unwrap()
    }

    /// The same deploy in the background; [`outcome_of`] waits for it.
    fn start_deploy(&self) -> Child {
        self.command(&["deploy", "production", "--in-place", "--json"])
            .stdout(Stdio::piped())
            .spawn()
            .unwrap()
    }

    fn must(&self, args: &[&str]) -> serde_json::Value {
        let output = self.lastmile(args);
        assert!(
            output.status.success(),
            "lastmile {args:?} failed:\n{}\n{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        serde_json::from_slice(&output.stdout).unwrap_or(serde_json::Value::Null)
    }
}

/// Waits for a deploy from [`App::start_deploy`]; its JSON outcome.
fn outcome_of(deploy: Child) -> serde_json::Value {
    let output = deploy.wait_with_output().unwrap();
    serde_json::from_slice(&output.stdout).unwrap()
}

/// Adds `yaml` (indented lines) to the production environment of the spec
/// on disk, before its `route:`.
fn add_to_environment(app: &App, yaml: &str) {
    let path = app.dir.path().join("lastmile.yaml");
    let spec = std::fs::read_to_string(&path)
        .unwrap()
        .replace("    route:", &format!("{yaml}\n    route:"));
    std::fs::write(&path, spec).unwrap();
}

/// Sends one raw HTTP request and reads the answer to the end.
fn exchange(addr: impl std::net::ToSocketAddrs, request: &str) -> String {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    stream.write_all(request.as_bytes()).unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    answer
}

fn reachable(addr: SocketAddr) -> bool {
    std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(500)).is_ok()
}

/// The running `lastmile up`; its whole process group is killed on drop.
struct Up {
    child: Child,
    log: PathBuf,
    state: PathBuf,
}

impl Up {
    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The pid of the `up` serving now (it changes on `lastmile restart`).
    fn serving_pid(&self) -> u32 {
        let text = std::fs::read_to_string(self.state.join("up.json")).unwrap();
        let value: serde_json::Value = serde_json::from_str(&text).unwrap();
        value["pid"].as_u64().unwrap() as u32
    }
}

impl Drop for Up {
    fn drop(&mut self) {
        // A graceful stop first, so the serving process stops its
        // instances; then the whole group (the first `up` and any process
        // that took over from it) is killed in case it did not.
        let serving = std::fs::read_to_string(self.state.join("up.json"))
            .ok()
            .and_then(|text| serde_json::from_str::<serde_json::Value>(&text).ok())
            .and_then(|value| value["pid"].as_i64());
        if let Some(pid) = serving {
            let pid = nix::unistd::Pid::from_raw(pid as i32);
            let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
            let deadline = Instant::now() + Duration::from_secs(20);
            while alive(pid.as_raw()) && Instant::now() < deadline {
                let _ = self.child.try_wait();
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        let group = nix::unistd::Pid::from_raw(self.child.id() as i32);
        let _ = nix::sys::signal::killpg(group, nix::sys::signal::Signal::SIGKILL);
        let _ = self.child.wait();
    }
}

/// True while `pid` runs (a zombie counts as gone).
fn alive(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => !stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z')),
        Err(_) => false,
    }
}

/// Continuous load through the router, on its own runtime, until `stop`.
struct Load {
    runtime: tokio::runtime::Runtime,
    load: LoadGen,
}

impl Load {
    /// The usual load on `app`: 250 requests/s over 16 connections and 4
    /// WebSockets.
    fn start(app: &App) -> Load {
        Load::start_with(LoadConfig {
            target: app.addr(),
            rate: 250,
            connections: 16,
            websockets: 4,
            ..LoadConfig::default()
        })
    }

    fn start_with(config: LoadConfig) -> Load {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let load = {
            let _guard = runtime.enter();
            LoadGen::start(config)
        };
        Load { runtime, load }
    }

    /// The totals so far, the load still running.
    fn report(&self) -> Report {
        self.load.report()
    }

    /// Stops the load and returns its totals.
    fn stop(self) -> Report {
        self.runtime.block_on(self.load.stop())
    }
}

fn assert_clean(report: &Report, what: &str) {
    assert!(
        report.requests >= 200,
        "{what}: too little load to prove anything: {report:#?}"
    );
    assert_eq!(report.failed, 0, "{what}: failed requests: {report:#?}");
    assert_eq!(
        report.ws_dropped, 0,
        "{what}: dropped WebSockets: {report:#?}"
    );
    assert!(
        report.ws_opened >= 2,
        "{what}: WebSockets never opened: {report:#?}"
    );
}

fn wait_for(what: &str, mut ready: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !ready() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn current_release(app: &App) -> String {
    app.status().unwrap()["environments"][0]["current_release"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

/// Rolling deploy, blue/green switch, rollback, kill -9 of an instance and a
/// restart of lastmile itself, one after another under continuous load:
/// not one failed request, not one dropped WebSocket.
#[test]
fn zero_downtime_through_deploys_rollback_crash_and_restart() {
    let app = App::new("{ type: rolling, batch: 1, max_surge: 1 }", 2, "v1");
    let up = app.up();
    let first = current_release(&app);
    let load = Load::start(&app);
    std::thread::sleep(Duration::from_secs(2));

    // 1. A rolling deploy of v2.
    app.write_spec("{ type: rolling, batch: 1, max_surge: 1 }", 2, "v2", "");
    let outcome = app.must(&["deploy", "production", "--in-place", "--json"]);
    assert_eq!(outcome["status"], "succeeded", "{outcome}");
    let second = current_release(&app);
    assert_ne!(first, second);
    std::thread::sleep(Duration::from_secs(1));

    // 2. A blue/green switch to v3.
    app.write_spec("{ type: blue-green, rollback_window: 10m }", 2, "v3", "");
    let outcome = app.must(&["deploy", "production", "--in-place", "--json"]);
    assert_eq!(outcome["status"], "succeeded", "{outcome}");
    let third = current_release(&app);
    assert_ne!(second, third);
    std::thread::sleep(Duration::from_secs(1));

    // 3. Roll back to v2, still warm.
    let outcome = app.must(&["rollback", "production", "--json"]);
    assert_eq!(outcome["status"], "rolled-back", "{outcome}");
    assert_eq!(current_release(&app), second);
    std::thread::sleep(Duration::from_secs(1));

    // 4. kill -9 one instance of the serving release.
    let status = app.status().unwrap();
    let victim = status["instances"]
        .as_array()
        .unwrap()
        .iter()
        .find(|instance| instance["release_id"] == second.as_str() && instance["pid"].is_u64())
        .cloned()
        .expect("an instance of the serving release with a pid");
    let pid = victim["pid"].as_u64().unwrap() as i32;
    nix::sys::signal::killpg(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    wait_for("the killed instance to be restarted", || {
        app.status().is_ok_and(|status| {
            status["instances"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|instance| {
                    instance["instance_id"] == victim["instance_id"]
                        && instance["state"] == "ready"
                        && instance["pid"] != victim["pid"]
                })
        })
    });
    std::thread::sleep(Duration::from_secs(1));

    // 5. Restart lastmile itself: sockets handed over, nothing refused.
    let before = up.serving_pid();
    app.must(&["restart", "--json"]);
    wait_for("the new process to serve", || up.serving_pid() != before);
    assert_eq!(current_release(&app), second);
    std::thread::sleep(Duration::from_secs(2));

    let report = load.stop();
    eprintln!(
        "load: {} requests ({} ok, {} failed), {} WebSockets opened, {} messages, {} closed cleanly, {} dropped, p99 {:.1} ms, max {:.1} ms; served by {:?}",
        report.requests,
        report.ok,
        report.failed,
        report.ws_opened,
        report.ws_messages,
        report.ws_closed_clean,
        report.ws_dropped,
        report.p99_latency_ms,
        report.max_latency_ms,
        report.by_body
    );
    assert_clean(&report, "deploys, rollback, kill -9 and restart");
    let log = up.log();
    assert!(log.contains("production"), "{log}");
    drop(up);
}

impl App {
    /// Sets `service.health.start_timeout` in the spec on disk.
    fn set_start_timeout(&self, timeout: &str) {
        let path = self.dir.path().join("lastmile.yaml");
        let spec = std::fs::read_to_string(&path).unwrap();
        std::fs::write(
            &path,
            spec.replace("start_timeout: 10s", &format!("start_timeout: {timeout}")),
        )
        .unwrap();
    }

    fn get(&self, path: &str) -> String {
        self.get_with(path, "")
    }

    /// `GET path` through the router with extra header lines; the raw answer.
    fn get_with(&self, path: &str, headers: &str) -> String {
        exchange(
            self.addr(),
            &format!("GET {path} HTTP/1.1\r\nhost: test\r\n{headers}connection: close\r\n\r\n"),
        )
    }

    /// The running `lastmile up`'s control address, from its up.json.
    fn control_addr(&self) -> String {
        let text = std::fs::read_to_string(self.dir.path().join(".lastmile/up.json")).unwrap();
        let up: serde_json::Value = serde_json::from_str(&text).unwrap();
        up["control"].as_str().unwrap().to_string()
    }
}

impl Up {
    /// The `up` was killed from outside: reap it without the graceful stop.
    fn reap_killed(mut self) {
        let _ = self.child.wait();
        std::mem::forget(self);
    }
}

/// A release whose instances never pass their health check: the deployment
/// fails after the readiness timeout, says why with the instance's last
/// output lines, and traffic never leaves the release that served.
#[test]
fn a_release_that_never_becomes_ready_fails_and_leaves_traffic_alone() {
    let app = App::new("{ type: rolling, batch: 1, max_surge: 1 }", 1, "v1");
    let up = app.up();
    let first = current_release(&app);
    let load = Load::start_with(LoadConfig {
        target: app.addr(),
        rate: 200,
        connections: 16,
        websockets: 2,
        ..LoadConfig::default()
    });
    std::thread::sleep(Duration::from_secs(1));

    app.write_spec(
        "{ type: rolling, batch: 1, max_surge: 1 }",
        1,
        "v2",
        r#", HELLO_NEVER_READY: "1""#,
    );
    app.set_start_timeout("2s");
    let output = app.lastmile(&["deploy", "production", "--in-place"]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    // Said once: what was probed and what answered, how long, the fix.
    assert_eq!(
        stderr.matches("did not become ready").count(),
        1,
        "{stderr}"
    );
    assert!(
        stderr.contains("within 2s: GET http://127.0.0.1:"),
        "{stderr}"
    );
    assert!(
        stderr.contains("/healthz (probed every 200ms): answered 503 on all"),
        "{stderr}"
    );
    assert!(
        stderr.contains("make /healthz answer 2xx or 3xx"),
        "{stderr}"
    );
    assert!(
        !stderr.contains("last_lines"),
        "no JSON field names: {stderr}"
    );
    // The app's own output, not lines about the probes.
    assert!(stderr.contains("last log lines"), "{stderr}");
    assert!(
        stderr.contains("hello v2 listening on port"),
        "the instance's own output: {stderr}"
    );
    assert!(!stderr.contains("GET /healthz HTTP"), "{stderr}");
    assert!(stderr.contains("traffic was left on"), "{stderr}");
    assert_eq!(current_release(&app), first);
    std::thread::sleep(Duration::from_secs(1));

    let report = load.stop();
    assert_clean(&report, "a failed deployment");
    assert!(
        report.by_body.keys().all(|body| body.contains("v1")),
        "only v1 served: {:?}",
        report.by_body
    );
    let status = app.status().unwrap();
    assert_eq!(status["deployments"][0]["status"], "failed", "{status}");
    let instances = status["instances"].as_array().unwrap();
    assert_eq!(instances.len(), 1, "the failed instance is gone: {status}");
    drop(up);
}

/// True once nothing listens on `addr` any more: it can be bound again.
fn port_free(addr: SocketAddr) -> bool {
    TcpListener::bind(addr).is_ok()
}

/// `status --json` names each instance's group leader and main process
/// (the same process for the exec'd `./hello`), and `lastmile down` returns
/// only once `lastmile up`, every instance and the router's port are gone;
/// `--no-wait` returns at once, saying the stop was requested.
#[test]
fn down_waits_until_everything_has_stopped_and_no_wait_does_not() {
    let app = App::new("{ type: rolling, batch: 1, max_surge: 1 }", 2, "v1");
    let mut up = app.up();
    let up_pid = up.serving_pid();
    let status = app.status().unwrap();
    let instances = status["instances"].as_array().unwrap().clone();
    assert_eq!(instances.len(), 2, "{status}");
    let mut pids = Vec::new();
    for instance in &instances {
        let leader = instance["leader_pid"].as_u64().unwrap() as i32;
        assert_eq!(instance["main_pid"], instance["leader_pid"], "{instance}");
        assert_eq!(instance["pid"], instance["leader_pid"], "{instance}");
        let cmdline = std::fs::read(format!("/proc/{leader}/cmdline")).unwrap();
        assert!(
            String::from_utf8_lossy(&cmdline).starts_with("./hello"),
            "the app itself leads its group: {:?}",
            String::from_utf8_lossy(&cmdline)
        );
        pids.push(leader);
    }

    let output = app.lastmile(&["down"]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        stdout.contains(&format!(
            "stopped: 2 instances, router on 127.0.0.1:{}, in ",
            app.port
        )),
        "{stdout}"
    );
    // No waiting here: `down` already did.
    let _ = up.child.try_wait();
    assert!(!alive(up_pid as i32), "lastmile up still runs after down");
    for pid in &pids {
        assert!(!alive(*pid), "instance {pid} still runs after down");
    }
    assert!(port_free(app.addr()), "the router's port is still taken");
    assert!(up.log().contains("stopping: draining"), "{}", up.log());
    drop(up);

    let mut up = app.up();
    let output = app.lastmile(&["down", "--no-wait"]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}");
    assert!(
        stdout.contains("stop requested: lastmile up (pid ")
            && stdout.contains("is stopping 2 instances and the router on"),
        "{stdout}"
    );
    let status = up.child.wait().unwrap();
    assert!(status.success(), "lastmile up exits 0 after down: {status}");
    drop(up);
}

/// `kill -9` of lastmile while a deployment waits for its new instances:
/// the next `lastmile up` stops what the dead one left running, records the
/// deployment as interrupted and rolled back, and serves the old release.
#[test]
fn killing_lastmile_mid_deployment_rolls_back_on_the_next_start() {
    let app = App::new("{ type: blue-green, rollback_window: 10m }", 1, "v1");
    let up = app.up();
    let first = current_release(&app);
    let old_instance = app.status().unwrap()["instances"][0]["pid"]
        .as_u64()
        .unwrap() as i32;

    // v2 takes a minute to become ready: the deployment is still waiting
    // for it when lastmile is killed.
    app.write_spec(
        "{ type: blue-green, rollback_window: 10m }",
        1,
        "v2",
        r#", HELLO_READY_AFTER_MS: "60000""#,
    );
    app.set_start_timeout("90s");
    let mut deploy = app
        .command(&["deploy", "production", "--in-place"])
        .spawn()
        .unwrap();
    wait_for("the deployment to start its new instance", || {
        app.status().is_ok_and(|status| {
            status["environments"][0]["deployment"].is_object()
                && status["instances"]
                    .as_array()
                    .is_some_and(|all| all.len() == 2)
        })
    });
    let new_instance = app.status().unwrap()["instances"]
        .as_array()
        .unwrap()
        .iter()
        .find(|instance| instance["release_id"] != first.as_str())
        .and_then(|instance| instance["pid"].as_u64())
        .unwrap() as i32;
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(up.serving_pid() as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    up.reap_killed();
    let _ = deploy.wait();
    assert!(
        alive(old_instance) && alive(new_instance),
        "instances outlive a kill -9 of lastmile"
    );

    // Back to the v1 spec, so the build is the release that was serving.
    app.write_spec("{ type: blue-green, rollback_window: 10m }", 1, "v1", "");
    let up = app.up();
    wait_for("the orphaned instances to be stopped", || {
        !alive(old_instance) && !alive(new_instance)
    });
    assert_eq!(current_release(&app), first);
    assert!(app.get("/").contains("hello from hello v1"));
    let status = app.status().unwrap();
    let interrupted = status["deployments"]
        .as_array()
        .unwrap()
        .iter()
        .find(|deployment| deployment["to_release"] != first.as_str())
        .cloned()
        .unwrap();
    assert_eq!(interrupted["status"], "failed", "{status}");
    assert!(
        interrupted["reason"]
            .as_str()
            .unwrap()
            .contains("interrupted"),
        "{interrupted}"
    );
    assert!(
        up.log()
            .contains("left running by a lastmile process that was killed"),
        "{}",
        up.log()
    );
    drop(up);
}

/// `recreate` stops the old set before starting the new one (a gap by
/// design); `rolling` with a batch of 2 over 3 instances ends on the new
/// release with exactly 3 instances.
#[test]
fn recreate_and_wide_rolling_batches_end_on_the_new_release() {
    let app = App::new("recreate", 2, "v1");
    let up = app.up();
    app.write_spec("recreate", 2, "v2", "");
    let outcome = app.must(&["deploy", "production", "--in-place", "--json"]);
    assert_eq!(outcome["status"], "succeeded", "{outcome}");
    assert!(app.get("/").contains("hello from hello v2"));
    let status = app.status().unwrap();
    let current = current_release(&app);
    let instances = status["instances"].as_array().unwrap();
    assert_eq!(instances.len(), 2, "{status}");
    assert!(
        instances
            .iter()
            .all(|instance| instance["release_id"] == current.as_str())
    );

    app.write_spec("{ type: rolling, batch: 2, max_surge: 2 }", 3, "v3", "");
    let outcome = app.must(&["deploy", "production", "--in-place", "--json"]);
    assert_eq!(outcome["status"], "succeeded", "{outcome}");
    assert!(app.get("/").contains("hello from hello v3"));
    let status = app.status().unwrap();
    let current = current_release(&app);
    let instances = status["instances"].as_array().unwrap();
    assert_eq!(instances.len(), 3, "{status}");
    assert!(
        instances
            .iter()
            .all(|instance| instance["release_id"] == current.as_str()
                && instance["state"] == "ready")
    );
    assert_eq!(
        status["environments"][0]["weights"][0]["percent"], 100.0,
        "{status}"
    );
    drop(up);
}

/// A rolling deployment whose second batch never becomes ready: the first
/// batch already replaced an old instance, so the failure brings the old
/// set back to full size and all traffic back to it, under load, without
/// a failed request.
#[test]
fn a_rolling_deployment_failing_mid_way_restores_the_old_set() {
    let strategy = "{ type: rolling, batch: 1, max_surge: 1 }";
    let app = App::new(strategy, 3, "v1");
    let up = app.up();
    let first = current_release(&app);
    let load = Load::start(&app);
    std::thread::sleep(Duration::from_secs(1));

    // Instance 1 of v2 never becomes ready; instance 0 does.
    app.write_spec_running(
        strategy,
        3,
        "v2",
        "",
        r#""if [ \"$LASTMILE_INSTANCE\" = 1 ]; then HELLO_NEVER_READY=1 exec ./hello; else exec ./hello; fi""#,
    );
    app.set_start_timeout("2s");
    let outcome = app.deploy_outcome();
    assert_eq!(outcome["status"], "failed", "{outcome}");
    assert!(
        outcome["error"]
            .as_str()
            .unwrap()
            .contains(".1 did not become ready"),
        "{outcome}"
    );
    std::thread::sleep(Duration::from_secs(1));

    let report = load.stop();
    assert_clean(&report, "a rolling deployment failing in its second batch");
    assert!(
        report.by_body.keys().any(|body| body.contains("v2")),
        "the first batch served before the failure: {:?}",
        report.by_body
    );
    assert_eq!(current_release(&app), first);
    let status = app.status().unwrap();
    let instances = status["instances"].as_array().unwrap();
    assert_eq!(instances.len(), 3, "the old set is back to size: {status}");
    assert!(
        instances.iter().all(
            |instance| instance["release_id"] == first.as_str() && instance["state"] == "ready"
        ),
        "{status}"
    );
    assert!(app.get("/").contains("hello from hello v1"));
    drop(up);
}

/// `gates.verify` runs against every new instance before it gets traffic:
/// a release that answers the wrong thing fails verification and never
/// serves.
#[test]
fn a_release_failing_verification_never_gets_traffic() {
    let strategy = "{ type: blue-green, rollback_window: 10m }";
    let app = App::new(strategy, 2, "v1");
    let up = app.up();
    let first = current_release(&app);
    app.write_spec(strategy, 2, "v2", "");
    add_to_environment(
        &app,
        "    gates: { verify: [ { path: /healthz }, { path: /, body_contains: \"hello v9\" } ] }",
    );
    let path = app.dir.path().join("lastmile.yaml");
    let outcome = app.deploy_outcome();
    assert_eq!(outcome["status"], "failed", "{outcome}");
    let error = outcome["error"].as_str().unwrap();
    assert!(
        error.contains("verification failed: GET / on instance production."),
        "{error}"
    );
    assert!(error.contains("\"hello v9\""), "{error}");
    assert_eq!(current_release(&app), first);
    assert!(app.get("/").contains("hello from hello v1"));
    let status = app.status().unwrap();
    assert_eq!(status["instances"].as_array().unwrap().len(), 2, "{status}");

    // The same release with a check it passes goes out.
    let spec = std::fs::read_to_string(&path)
        .unwrap()
        .replace("hello v9", "hello v2");
    std::fs::write(&path, spec).unwrap();
    let outcome = app.must(&["deploy", "production", "--in-place", "--json"]);
    assert_eq!(outcome["status"], "succeeded", "{outcome}");
    assert!(app.get("/").contains("hello from hello v2"));
    drop(up);
}

/// The bodies of `count` answers to `GET /` on `addr`.
fn bodies(addr: SocketAddr, count: usize) -> Vec<String> {
    (0..count)
        .map(|_| {
            let answer = exchange(
                addr,
                "GET / HTTP/1.1\r\nhost: test\r\nconnection: close\r\n\r\n",
            );
            answer
                .split_once("\r\n\r\n")
                .map_or(answer.as_str(), |(_, body)| body)
                .trim()
                .to_string()
        })
        .collect()
}

/// Environment names may contain `.`, so one can begin with another's
/// name and a dot: `prod` and `prod.eu` each serve only from their own
/// instances (each answer names the instance that gave it), and deploying
/// to `prod` a release `prod.eu` already runs starts `prod`'s own
/// instance and leaves `prod.eu`'s running.
#[test]
fn environments_whose_names_share_a_prefix_keep_to_their_own_instances() {
    let app = App::new("blue-green", 1, "v1");
    let eu = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let write = |version: &str| {
        app.write_spec_running(
            "blue-green",
            1,
            version,
            "",
            "HELLO_MESSAGE=$LASTMILE_INSTANCE_ID exec ./hello",
        );
        let path = app.dir.path().join("lastmile.yaml");
        let spec = std::fs::read_to_string(&path)
            .unwrap()
            .replace("  production:", "  prod:");
        let port = eu.port();
        let spec = format!(
            "{spec}  prod.eu:\n    instances: 1\n    strategy: blue-green\n    route: {{ listen: \"127.0.0.1:{port}\" }}\n"
        );
        std::fs::write(&path, spec).unwrap();
    };
    write("v1");
    // `up` deploys the first environment; the other is deployed by hand.
    let up = app.up();
    let outcome = app.must(&["deploy", "prod.eu", "--in-place", "--json"]);
    assert_eq!(outcome["status"], "succeeded", "{outcome}");
    let eu_instances = |status: &serde_json::Value| -> Vec<String> {
        status["instances"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|instance| instance["instance_id"].as_str())
            .filter(|id| id.starts_with("prod.eu."))
            .map(str::to_string)
            .collect()
    };
    assert_eq!(eu_instances(&app.status().unwrap()).len(), 1);
    let only_from = |addr: SocketAddr, mine: &dyn Fn(&str) -> bool, version: &str| {
        let answers = bodies(addr, 20);
        assert!(
            answers
                .iter()
                .all(|body| mine(body) && body.ends_with(version)),
            "{addr} answered other than from its own environment's {version} instances: {answers:?}"
        );
    };
    let is_prod = |body: &str| body.starts_with("prod.") && !body.starts_with("prod.eu.");
    let is_eu = |body: &str| body.starts_with("prod.eu.");
    only_from(app.addr(), &is_prod, "v1");
    only_from(eu, &is_eu, "v1");

    // v2 to prod.eu first: prod's deployment of the same release then
    // must start its own instance and leave prod.eu's alone.
    write("v2");
    let outcome = app.must(&["deploy", "prod.eu", "--in-place", "--json"]);
    assert_eq!(outcome["status"], "succeeded", "{outcome}");
    only_from(app.addr(), &is_prod, "v1");
    only_from(eu, &is_eu, "v2");
    let eu_before = eu_instances(&app.status().unwrap());
    let outcome = app.must(&["deploy", "prod", "--in-place", "--json"]);
    assert_eq!(outcome["status"], "succeeded", "{outcome}");
    only_from(app.addr(), &is_prod, "v2");
    only_from(eu, &is_eu, "v2");
    let status = app.status().unwrap();
    assert_eq!(eu_instances(&status), eu_before, "{status}");
    drop(up);
}

#[path = "deploy/canary.rs"]
mod canary;

#[path = "deploy/flags.rs"]
mod flags;

#[path = "deploy/edge.rs"]
mod edge;

#[path = "deploy/prometheus.rs"]
mod prometheus;

#[path = "deploy/foreground.rs"]
mod foreground;

/// `GET path` on the running `lastmile up`'s control address; the raw answer.
fn control_get(app: &App, path: &str) -> String {
    let control = app.control_addr();
    exchange(
        &control,
        &format!("GET {path} HTTP/1.1\r\nhost: {control}\r\nconnection: close\r\n\r\n"),
    )
}

/// Runs git in `dir` with a fixed identity and no user or system config; its stdout.
fn git(dir: &Path, args: &[&str]) -> String {
    let output = Command::new("git")
        .args(args)
        .current_dir(dir)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_AUTHOR_NAME", "Ada Lovelace")
        .env("GIT_AUTHOR_EMAIL", "ada@example.com")
        .env("GIT_COMMITTER_NAME", "Ada Lovelace")
        .env("GIT_COMMITTER_EMAIL", "ada@example.com")
        .output()
        .unwrap();
    assert!(output.status.success(), "git {args:?}: {output:?}");
    String::from_utf8(output.stdout).unwrap().trim().to_owned()
}

/// The dashboard of `lastmile up` names the directory holding lastmile.yaml
/// and, for a git work tree, the branch and HEAD commit it is on.
#[test]
fn the_up_dashboard_shows_the_spec_directory_and_its_git_head() {
    let app = App::new("rolling", 1, "v1");
    let dir = app.dir.path();
    git(dir, &["init", "-q", "-b", "trunk"]);
    git(dir, &["add", "lastmile.yaml"]);
    git(
        dir,
        &["commit", "-q", "-m", "Say hello\n\nThe body is not shown."],
    );
    let sha = git(dir, &["rev-parse", "HEAD"]);
    let up = app.up();

    for page in ["/", "/apps/hello"] {
        let html = control_get(&app, page);
        assert!(html.starts_with("HTTP/1.1 200"), "{html}");
        assert!(
            html.contains(&format!("<small>{}</small>", dir.display())),
            "{page}: {html}"
        );
        assert!(
            html.contains(&format!("<code>{}</code> Say hello", &sha[..12])),
            "{page}: {html}"
        );
        assert!(
            html.contains("by Ada Lovelace &#60;ada@example.com&#62;"),
            "{page}: {html}"
        );
        assert!(html.contains(", on trunk"), "{page}: {html}");
        assert!(!html.contains("No commit seen yet"), "{page}: {html}");
        // The repository is the directory, not `local:` and a path; the
        // only `local:` is the person at the machine, in the header.
        assert!(
            !html.contains(&format!("local:{}", dir.display())),
            "{page}: {html}"
        );
    }

    // A new commit shows on the next page view: HEAD is read, not polled.
    std::fs::write(dir.join("notes.txt"), "more\n").unwrap();
    git(dir, &["add", "notes.txt"]);
    git(dir, &["commit", "-q", "-m", "Add notes"]);
    assert!(control_get(&app, "/apps/hello").contains("Add notes"));
    drop(up);
}

/// Deployments and rollbacks show in `/metrics` (Prometheus text) and in
/// `lastmile dora`.
#[test]
fn metrics_and_dora_follow_deployments_and_rollbacks() {
    let strategy = "{ type: blue-green, rollback_window: 10m }";
    let app = App::new(strategy, 1, "v1");
    let up = app.up();
    app.write_spec(strategy, 1, "v2", "");
    app.must(&["deploy", "production", "--in-place", "--json"]);
    app.must(&["rollback", "production", "--json"]);
    assert!(app.get("/").contains("hello from hello v1"));

    // `lastmile up` serves the server's API and dashboard for its app, with
    // no token on loopback.
    let deployments = control_get(&app, "/api/v1/apps/hello/deployments");
    assert!(deployments.starts_with("HTTP/1.1 200"), "{deployments}");
    assert_eq!(
        deployments
            .matches("\"environment\":\"production\"")
            .count(),
        3,
        "{deployments}"
    );
    let dashboard = control_get(&app, "/apps/hello");
    assert!(dashboard.starts_with("HTTP/1.1 200"), "{dashboard}");
    assert!(dashboard.contains("production"), "{dashboard}");

    let metrics = control_get(&app, "/metrics");
    assert!(metrics.starts_with("HTTP/1.1 200"), "{metrics}");
    assert!(metrics.contains("text/plain; version=0.0.4"), "{metrics}");
    assert!(
        metrics.contains(
            r#"lastmile_deployments_total{environment="production",outcome="succeeded"} 2"#
        ) || metrics.contains(
            r#"lastmile_deployments_total{outcome="succeeded",environment="production"} 2"#
        ),
        "{metrics}"
    );
    assert!(metrics.contains("lastmile_rollbacks_total"), "{metrics}");
    assert!(
        metrics.contains("lastmile_router_requests_total"),
        "{metrics}"
    );
    assert!(
        metrics.contains("lastmile_dora_deployment_frequency_per_day"),
        "{metrics}"
    );

    let dora = app.must(&["dora", "--json"]);
    let production = &dora["environments"][0];
    assert_eq!(production["environment"], "production", "{dora}");
    assert!(production["deployments"].as_u64().unwrap() >= 2, "{dora}");
    assert!(
        production["change_failure_rate"].as_f64().unwrap() > 0.0,
        "the rollback counts: {dora}"
    );
    let text = String::from_utf8_lossy(&app.lastmile(&["dora"]).stdout).into_owned();
    assert!(text.contains("deployment frequency"), "{text}");

    // A dashboard action from loopback is recorded as the person at the
    // machine (`local:<login>`, as the CLI records them), not a bare `local`.
    let control = app.control_addr();
    let answer = exchange(
        &control,
        &format!(
            "POST /apps/hello/environments/production/rollback HTTP/1.1\r\nhost: {control}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
        ),
    );
    assert!(answer.starts_with("HTTP/1.1 303"), "{answer}");
    let events = control_get(&app, "/api/v1/apps/hello/events?limit=5000");
    let events: serde_json::Value =
        serde_json::from_str(events.split_once("\r\n\r\n").unwrap().1).unwrap();
    let asked = events["events"]
        .as_array()
        .unwrap()
        .iter()
        .find(|event| event["kind"] == "rollback.requested")
        .unwrap_or_else(|| panic!("no rollback.requested event: {events}"));
    let actor = asked["actor"].as_str().unwrap();
    assert!(
        actor.starts_with("local:") && actor.len() > "local:".len() && actor != "local:unknown",
        "{asked}"
    );
    drop(up);
}

/// The key that seals secrets and ACME state is outside the repository,
/// private; a key an earlier version left in `.lastmile/` stays in use.
#[test]
fn the_secrets_key_lives_outside_the_repository_unless_one_is_there() {
    use std::os::unix::fs::PermissionsExt;
    let mode = |path: &Path| std::fs::metadata(path).unwrap().permissions().mode() & 0o777;
    let keys = |app: &App| -> Vec<PathBuf> {
        match std::fs::read_dir(app.data_home.path().join("lastmile/keys")) {
            Ok(entries) => entries.map(|entry| entry.unwrap().path()).collect(),
            Err(_) => Vec::new(),
        }
    };

    let fresh = App::new("rolling", 1, "v1");
    drop(fresh.up());
    assert!(!fresh.dir.path().join(".lastmile/secret.key").exists());
    let made = keys(&fresh);
    assert_eq!(made.len(), 1, "{made:?}");
    assert_eq!(std::fs::metadata(&made[0]).unwrap().len(), 32);
    assert_eq!(mode(&made[0]), 0o600);
    assert_eq!(mode(made[0].parent().unwrap()), 0o700);

    let earlier = App::new("rolling", 1, "v1");
    let state = earlier.dir.path().join(".lastmile");
    std::fs::create_dir_all(&state).unwrap();
    let old_key = state.join("secret.key");
    let key = [7_u8; 32];
    std::fs::write(&old_key, key).unwrap();
    std::fs::set_permissions(&old_key, std::fs::Permissions::from_mode(0o600)).unwrap();
    drop(earlier.up());
    assert_eq!(std::fs::read(&old_key).unwrap(), key);
    assert_eq!(keys(&earlier), Vec::<PathBuf>::new());
}
