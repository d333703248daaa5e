//! Real processes (a tiny python3 HTTP server), real sockets, temp dirs.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use lastmile_supervisor::{
    HealthSpec, InstanceEvent, InstanceSpec, InstanceState, NotReadyEnd, ProbeFailure, StopSpec,
    Supervisor, SupervisorConfig, SupervisorError,
};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use tempfile::TempDir;
use tokio::sync::broadcast;

/// Answers 200 on /healthz (503 while a file `sick` exists in its cwd), `KEY=VALUE` lines on /env; with `EXIT_AFTER` set it exits
/// with status 1 that many seconds after the first health check.
const SERVER: &str = r#"
import http.server, os, sys, threading
exit_after = os.environ.get("EXIT_AFTER")
armed = []
class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        if self.path == "/healthz" and os.path.exists("sick"):
            self.send_response(503)
            self.end_headers()
            return
        if self.path == "/healthz":
            body = b"ok"
            if exit_after and not armed:
                armed.append(1)
                threading.Timer(float(exit_after), lambda: os._exit(1)).start()
        elif self.path == "/env":
            body = "".join(f"{k}={v}\n" for k, v in sorted(os.environ.items())).encode()
        else:
            self.send_response(404)
            self.end_headers()
            return
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *args):
        pass
print("server listening on", os.environ["PORT"], flush=True)
http.server.HTTPServer(("127.0.0.1", int(os.environ["PORT"])), Handler).serve_forever()
"#;

struct Fixture {
    dir: TempDir,
    supervisor: Supervisor,
    server: PathBuf,
}

fn fixture(config: SupervisorConfig) -> Fixture {
    let dir = tempfile::tempdir().expect("temp dir");
    let server = dir.path().join("server.py");
    std::fs::write(&server, SERVER).expect("write server");
    let supervisor = Supervisor::new(dir.path().join("root"), config).expect("supervisor");
    Fixture {
        dir,
        supervisor,
        server,
    }
}

impl Fixture {
    /// A spec running `command`; `{server}` is replaced by the server script's path.
    fn spec(&self, instance_id: &str, command: &str) -> InstanceSpec {
        InstanceSpec {
            instance_id: instance_id.to_owned(),
            release_id: "r1".to_owned(),
            version: "1.2.3".to_owned(),
            index: 7,
            command: command.replace("{server}", &self.server.display().to_string()),
            env: BTreeMap::new(),
            workdir: self.dir.path().to_owned(),
            health: HealthSpec {
                path: "/healthz".to_owned(),
                interval: Duration::from_millis(100),
                timeout: Duration::from_millis(500),
                healthy_threshold: 1,
                unhealthy_threshold: 3,
                start_timeout: Duration::from_secs(5),
            },
            stop: StopSpec {
                signal: Signal::SIGTERM,
                grace: Duration::from_secs(2),
            },
        }
    }
}

fn get(addr: SocketAddr, path: &str) -> String {
    let mut stream = TcpStream::connect(addr).expect("connect to instance");
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    write!(stream, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").expect("write");
    let mut response = String::new();
    stream.read_to_string(&mut response).expect("read");
    response
}

/// Alive and not a zombie (a reparented zombie may never be reaped in a container).
fn alive(pid: u32) -> bool {
    if kill(Pid::from_raw(pid as i32), None).is_err() {
        return false;
    }
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => {
            let state = stat
                .rsplit(')')
                .next()
                .and_then(|rest| rest.trim_start().chars().next());
            !matches!(state, Some('Z' | 'X'))
        }
        Err(_) => false,
    }
}

fn gone_within(pid: u32, limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if !alive(pid) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    !alive(pid)
}

fn read_pid(path: &Path) -> u32 {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        if let Ok(text) = std::fs::read_to_string(path)
            && let Ok(pid) = text.trim().parse()
        {
            return pid;
        }
        assert!(
            Instant::now() < deadline,
            "{} never written",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

async fn next_event(
    events: &mut broadcast::Receiver<InstanceEvent>,
    wanted: impl Fn(&InstanceEvent) -> bool,
) -> InstanceEvent {
    tokio::time::timeout(Duration::from_secs(8), async {
        loop {
            let event = events.recv().await.expect("event stream open");
            if wanted(&event) {
                return event;
            }
        }
    })
    .await
    .expect("expected event did not arrive in time")
}

#[tokio::test]
async fn start_is_ready_with_env_and_stop_kills_the_whole_group() {
    let fx = fixture(SupervisorConfig::default());
    let mut spec = fx.spec(
        "web-1",
        "sleep 1000 & echo $! > grandchild.pid; exec python3 {server}",
    );
    spec.env.insert("GREETING".to_owned(), "hello".to_owned());
    spec.env.insert("PORT".to_owned(), "1".to_owned());
    let status = fx.supervisor.start(spec).await.expect("starts");
    assert_eq!(status.state, InstanceState::Ready);
    let pid = status.pid.expect("pid set");
    assert!(alive(pid));

    let env = get(status.addr, "/env");
    assert!(env.starts_with("HTTP/1.0 200"), "{env}");
    for line in [
        format!("PORT={}", status.addr.port()),
        "GREETING=hello".to_owned(),
        "LASTMILE_RELEASE=r1".to_owned(),
        "LASTMILE_VERSION=1.2.3".to_owned(),
        "LASTMILE_RELEASE_VERSION=1.2.3".to_owned(),
        "LASTMILE_INSTANCE=7".to_owned(),
        "LASTMILE_INSTANCE_ID=web-1".to_owned(),
    ] {
        assert!(env.lines().any(|l| l == line), "{line} missing from\n{env}");
    }
    let listed = fx.supervisor.list();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].addr, status.addr);

    let grandchild = read_pid(&fx.dir.path().join("grandchild.pid"));
    assert!(alive(grandchild));
    let mut events = fx.supervisor.subscribe();
    fx.supervisor.stop("web-1").await.expect("stops");
    assert!(!alive(pid), "the instance process survived stop");
    assert!(
        gone_within(grandchild, Duration::from_secs(3)),
        "the grandchild survived stop"
    );
    assert!(fx.supervisor.list().is_empty());
    next_event(&mut events, |e| matches!(e, InstanceEvent::Stopped { .. })).await;
    // Idempotent.
    fx.supervisor
        .stop("web-1")
        .await
        .expect("second stop is fine");
    assert!(
        fx.supervisor
            .last_lines("web-1", 5)
            .iter()
            .any(|l| l.contains("server listening"))
    );
}

#[tokio::test]
async fn ignored_sigterm_is_killed_after_the_grace() {
    let fx = fixture(SupervisorConfig::default());
    let mut spec = fx.spec("stubborn", "trap '' TERM; exec python3 {server}");
    let grace = Duration::from_millis(300);
    spec.stop.grace = grace;
    let pid = fx
        .supervisor
        .start(spec)
        .await
        .expect("starts")
        .pid
        .expect("pid");
    let began = Instant::now();
    fx.supervisor.stop("stubborn").await.expect("stops");
    assert!(
        began.elapsed() >= grace,
        "stop returned before the grace: SIGTERM was not ignored?"
    );
    assert!(!alive(pid), "an app ignoring SIGTERM survived stop");
}

#[tokio::test]
async fn never_ready_fails_within_start_timeout_and_keeps_the_log() {
    let fx = fixture(SupervisorConfig::default());
    let mut spec = fx.spec("mute", "echo booting-up; echo on-stderr >&2; exec sleep 30");
    spec.health.start_timeout = Duration::from_millis(800);
    let began = Instant::now();
    let error = fx.supervisor.start(spec).await.expect_err("never ready");
    assert!(began.elapsed() < Duration::from_secs(5));
    let SupervisorError::NotReady(not_ready) = &error else {
        panic!("unexpected error {error}");
    };
    assert_eq!(not_ready.instance_id, "mute");
    assert_eq!(
        not_ready.end,
        NotReadyEnd::TimedOut {
            limit: Duration::from_millis(800)
        }
    );
    assert_eq!(not_ready.last_failure, Some(ProbeFailure::Refused));
    let message = error.to_string();
    assert!(message.contains("within 800ms"), "{message}");
    assert!(message.contains("connection refused"), "{message}");
    assert_eq!(not_ready.output, ["booting-up", "on-stderr"], "{message}");
    assert!(fx.supervisor.list().is_empty());
    let lines = fx.supervisor.last_lines("mute", 10);
    assert!(lines.iter().any(|l| l == "booting-up"), "{lines:?}");
    assert!(lines.iter().any(|l| l == "on-stderr"), "{lines:?}");
}

#[tokio::test]
async fn immediate_exit_reports_the_status() {
    let fx = fixture(SupervisorConfig::default());
    let error = fx
        .supervisor
        .start(fx.spec("quitter", "echo giving up; exit 3"))
        .await
        .expect_err("exits");
    let message = error.to_string();
    assert!(message.contains("exited with status 3 after"), "{message}");
    let SupervisorError::NotReady(not_ready) = &error else {
        panic!("unexpected error {error}");
    };
    assert_eq!(not_ready.output, ["giving up"]);
    assert!(fx.supervisor.list().is_empty());
    assert_eq!(
        fx.supervisor.last_lines("quitter", 1),
        vec!["giving up".to_owned()]
    );
}

#[tokio::test]
async fn duplicate_instance_id_is_refused() {
    let fx = fixture(SupervisorConfig::default());
    fx.supervisor
        .start(fx.spec("one", "exec python3 {server}"))
        .await
        .expect("starts");
    let error = fx
        .supervisor
        .start(fx.spec("one", "exec python3 {server}"))
        .await
        .expect_err("dup");
    assert!(
        matches!(error, SupervisorError::AlreadyRunning { .. }),
        "{error}"
    );
    fx.supervisor.shutdown().await;
    assert!(fx.supervisor.list().is_empty());
}

#[tokio::test]
async fn crash_after_ready_restarts_on_a_new_process() {
    let config = SupervisorConfig {
        restart_backoff_initial: Duration::from_millis(50),
        ..SupervisorConfig::default()
    };
    let fx = fixture(config);
    let mut events = fx.supervisor.subscribe();
    let first = fx
        .supervisor
        .start(fx.spec("web-1", "exec python3 {server}"))
        .await
        .expect("up");
    let old_pid = first.pid.expect("pid");
    kill(Pid::from_raw(old_pid as i32), Signal::SIGKILL).expect("kill -9");

    let crashed = next_event(&mut events, |e| matches!(e, InstanceEvent::Crashed { .. })).await;
    let InstanceEvent::Crashed {
        status, restart_in, ..
    } = &crashed
    else {
        unreachable!()
    };
    assert!(status.contains("SIGKILL"), "{crashed}");
    assert_eq!(*restart_in, Duration::from_millis(50));
    assert!(
        crashed.to_string().contains("restarting in 50ms"),
        "{crashed}"
    );
    next_event(&mut events, |e| matches!(e, InstanceEvent::Ready { .. })).await;

    let now = fx.supervisor.list().pop().expect("still listed");
    assert_eq!(now.state, InstanceState::Ready);
    assert_eq!(now.restarts, 1);
    let new_pid = now.pid.expect("new pid");
    assert_ne!(new_pid, old_pid);
    assert!(get(now.addr, "/healthz").starts_with("HTTP/1.0 200"));
    fx.supervisor.stop("web-1").await.expect("stops");
    assert!(!alive(new_pid));
}

#[tokio::test]
async fn repeated_crashes_end_in_crash_loop() {
    let config = SupervisorConfig {
        restart_backoff_initial: Duration::from_millis(10),
        restart_backoff_max: Duration::from_millis(40),
        crash_loop_restarts: 3,
        crash_loop_window: Duration::from_secs(30),
        ..SupervisorConfig::default()
    };
    let fx = fixture(config);
    let mut events = fx.supervisor.subscribe();
    let mut spec = fx.spec("flaky", "exec python3 {server}");
    spec.env.insert("EXIT_AFTER".to_owned(), "0.1".to_owned());
    fx.supervisor.start(spec).await.expect("ready once");

    let event = next_event(&mut events, |e| {
        matches!(e, InstanceEvent::CrashLoop { .. })
    })
    .await;
    assert!(
        matches!(event, InstanceEvent::CrashLoop { crashes: 3, .. }),
        "{event}"
    );
    let status = fx.supervisor.list().pop().expect("still listed");
    assert_eq!(status.state, InstanceState::CrashLoop);
    assert_eq!(status.pid, None);
    assert_eq!(status.restarts, 2);
    // No restart after the crash loop.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(fx.supervisor.list().pop().expect("listed").restarts, 2);
    fx.supervisor.stop("flaky").await.expect("stops");
    assert!(fx.supervisor.list().is_empty());
}

#[tokio::test]
async fn stop_during_backoff_never_restarts() {
    let config = SupervisorConfig {
        restart_backoff_initial: Duration::from_secs(5),
        ..SupervisorConfig::default()
    };
    let fx = fixture(config);
    let mut events = fx.supervisor.subscribe();
    let pid = fx
        .supervisor
        .start(fx.spec("web-1", "exec python3 {server}"))
        .await
        .expect("up")
        .pid
        .expect("pid");
    kill(Pid::from_raw(pid as i32), Signal::SIGKILL).expect("kill -9");
    next_event(&mut events, |e| matches!(e, InstanceEvent::Crashed { .. })).await;
    fx.supervisor.stop("web-1").await.expect("stops");
    assert!(fx.supervisor.list().is_empty());
    tokio::time::sleep(Duration::from_millis(200)).await;
    while let Ok(event) = events.try_recv() {
        assert!(
            !matches!(event, InstanceEvent::Started { .. }),
            "restarted after stop: {event}"
        );
    }
}

#[tokio::test]
async fn logs_rotate() {
    let config = SupervisorConfig {
        log_max_bytes: 1000,
        log_keep: 2,
        ..SupervisorConfig::default()
    };
    let fx = fixture(config);
    let command = "for i in $(seq 1 300); do echo line-$i-xxxxxxxxxxxxxxxx; done; \
                   echo last-line; exec python3 {server}";
    fx.supervisor
        .start(fx.spec("chatty", command))
        .await
        .expect("up");
    let logs = fx.dir.path().join("root/logs");
    let deadline = Instant::now() + Duration::from_secs(5);
    while !fx
        .supervisor
        .last_lines("chatty", 2)
        .iter()
        .any(|l| l.starts_with("server listening"))
    {
        assert!(Instant::now() < deadline, "log never caught up");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(logs.join("chatty.log.1").is_file());
    assert!(logs.join("chatty.log.2").is_file());
    assert!(
        !logs.join("chatty.log.3").exists(),
        "more rotated files than log_keep"
    );
    assert!(
        std::fs::metadata(logs.join("chatty.log"))
            .expect("log")
            .len()
            <= 1000
    );
    let lines = fx.supervisor.last_lines("chatty", 3);
    assert_eq!(
        lines[..2],
        [
            "line-300-xxxxxxxxxxxxxxxx".to_owned(),
            "last-line".to_owned()
        ]
    );
    fx.supervisor.shutdown().await;
}

#[test]
fn prepare_release_fills_once_and_atomically() {
    let fx = fixture(SupervisorConfig::default());
    let mut calls = 0;
    let dir = fx
        .supervisor
        .prepare_release("r1", |tmp: &Path| {
            calls += 1;
            assert!(
                tmp.file_name()
                    .expect("name")
                    .to_string_lossy()
                    .starts_with(".tmp-")
            );
            std::fs::write(tmp.join("app.sh"), "echo hi")
        })
        .expect("prepared");
    assert_eq!(dir, fx.supervisor.release_dir("r1"));
    assert!(dir.join("app.sh").is_file());
    let again = fx
        .supervisor
        .prepare_release("r1", |_: &Path| -> Result<(), String> {
            calls += 1;
            Ok(())
        })
        .expect("already there");
    assert_eq!(again, dir);
    assert_eq!(calls, 1);

    let error = fx
        .supervisor
        .prepare_release("r2", |tmp: &Path| {
            std::fs::write(tmp.join("half"), "x").expect("write");
            Err("artifact truncated")
        })
        .expect_err("fill failed");
    assert!(matches!(&error, SupervisorError::Fill { release_id, .. } if release_id == "r2"));
    assert!(error.to_string().contains("artifact truncated"), "{error}");
    assert!(!fx.supervisor.release_dir("r2").exists());
    let releases = fx.dir.path().join("root/releases");
    let names: Vec<String> = std::fs::read_dir(&releases)
        .expect("releases")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        names,
        vec!["r1".to_owned()],
        "leftovers after a failed fill"
    );

    let invalid = fx
        .supervisor
        .prepare_release("../evil", |_: &Path| -> Result<(), String> { Ok(()) });
    assert!(matches!(invalid, Err(SupervisorError::InvalidId { .. })));
}

#[tokio::test]
async fn prune_keeps_newest_protected_and_live_releases() {
    let fx = fixture(SupervisorConfig::default());
    let base = std::time::SystemTime::now() - Duration::from_secs(1000);
    for (age, id) in ["r1", "r2", "r3", "r4", "r5"].iter().enumerate() {
        let dir = fx
            .supervisor
            .prepare_release(id, |_: &Path| -> Result<(), String> { Ok(()) })
            .expect("prepared");
        let handle = std::fs::File::open(&dir).expect("open dir");
        handle
            .set_modified(base + Duration::from_secs(age as u64 * 10))
            .expect("set mtime");
    }
    let mut spec = fx.spec("web-1", "exec python3 {server}");
    spec.release_id = "r2".to_owned();
    fx.supervisor.start(spec).await.expect("up");

    let removed = fx.supervisor.prune_releases(1, &["r1"]).expect("pruned");
    assert_eq!(removed, vec!["r3".to_owned(), "r4".to_owned()]);
    for (id, kept) in [
        ("r1", true),
        ("r2", true),
        ("r3", false),
        ("r4", false),
        ("r5", true),
    ] {
        assert_eq!(fx.supervisor.release_dir(id).exists(), kept, "{id}");
    }
    fx.supervisor.shutdown().await;
    assert_eq!(
        fx.supervisor.prune_releases(1, &[]).expect("pruned"),
        vec!["r1", "r2"]
    );
}

#[tokio::test]
async fn dropping_the_supervisor_kills_live_instances() {
    let fx = fixture(SupervisorConfig::default());
    let command = "sleep 1000 & echo $! > grandchild.pid; exec python3 {server}";
    let clone = fx.supervisor.clone();
    let pid = clone
        .start(fx.spec("web-1", command))
        .await
        .expect("up")
        .pid
        .expect("pid");
    let grandchild = read_pid(&fx.dir.path().join("grandchild.pid"));
    drop(clone);
    assert!(alive(pid), "dropping one clone must not kill anything");
    let Fixture {
        dir, supervisor, ..
    } = fx;
    drop(supervisor);
    assert!(
        gone_within(pid, Duration::from_secs(3)),
        "instance survived the supervisor"
    );
    assert!(
        gone_within(grandchild, Duration::from_secs(3)),
        "grandchild survived"
    );
    drop(dir);
}

#[tokio::test]
async fn failing_health_checks_mark_unhealthy_and_recovery_ready() {
    let fx = fixture(SupervisorConfig::default());
    let mut events = fx.supervisor.subscribe();
    let mut spec = fx.spec("web-1", "exec python3 {server}");
    spec.health.unhealthy_threshold = 2;
    spec.health.interval = Duration::from_millis(50);
    fx.supervisor.start(spec).await.expect("up");
    std::fs::write(fx.dir.path().join("sick"), "").expect("make sick");
    let event = next_event(&mut events, |e| {
        matches!(e, InstanceEvent::Unhealthy { .. })
    })
    .await;
    assert!(event.to_string().contains("answered 503"), "{event}");
    assert_eq!(fx.supervisor.list()[0].state, InstanceState::Unhealthy);
    std::fs::remove_file(fx.dir.path().join("sick")).expect("heal");
    next_event(&mut events, |e| matches!(e, InstanceEvent::Ready { .. })).await;
    assert_eq!(fx.supervisor.list()[0].state, InstanceState::Ready);
    assert_eq!(fx.supervisor.list()[0].restarts, 0);
    fx.supervisor.shutdown().await;
}

/// The controller spawns these futures on a multi-threaded runtime.
#[test]
fn handles_and_futures_are_send() {
    fn send<T: Send + 'static>(_: &T) {}
    fn sync<T: Send + Sync + 'static>() {}
    sync::<Supervisor>();
    sync::<SupervisorError>();
    let fx = fixture(SupervisorConfig::default());
    let supervisor = fx.supervisor.clone();
    let spec = fx.spec("never-run", "true");
    let start = async move { supervisor.start(spec).await };
    send(&start);
    let supervisor = fx.supervisor.clone();
    send(&async move { supervisor.stop("x").await });
    let supervisor = fx.supervisor.clone();
    send(&async move { supervisor.shutdown().await });
}

/// Answers 503 on /healthz forever, logs every request the way `http.server` does (to
/// stderr) and appends one line per probe to `probes.txt`.
const NEVER_READY: &str = r#"
import http.server, os
class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        with open("probes.txt", "a") as probes:
            probes.write(self.path + "\n")
        self.send_response(503)
        self.end_headers()
print("never-ready server up on", os.environ["PORT"], flush=True)
http.server.HTTPServer(("127.0.0.1", int(os.environ["PORT"])), Handler).serve_forever()
"#;

/// Start-up probes come at `health.interval`, not in a burst: a never-ready instance with a
/// 3 s start timeout and a 1 s interval sees at most 3 probes (at 1 s, 2 s and maybe 3 s;
/// the old 100 ms polling sent about 30). The failure counts what the app counted, and its
/// output is the app's own line, not the access-log lines of the probes.
#[tokio::test]
async fn start_up_probes_come_at_the_interval_and_the_failure_shows_the_apps_output() {
    let fx = fixture(SupervisorConfig::default());
    let script = fx.dir.path().join("never_ready.py");
    std::fs::write(&script, NEVER_READY).expect("write script");
    let mut spec = fx.spec("slow", &format!("python3 {}", script.display()));
    spec.health.interval = Duration::from_secs(1);
    spec.health.timeout = Duration::from_millis(500);
    spec.health.start_timeout = Duration::from_secs(3);
    let error = fx.supervisor.start(spec).await.expect_err("never ready");
    let SupervisorError::NotReady(not_ready) = &error else {
        panic!("unexpected error {error}");
    };
    let counted = std::fs::read_to_string(fx.dir.path().join("probes.txt"))
        .unwrap_or_default()
        .lines()
        .filter(|line| *line == "/healthz")
        .count();
    assert!(
        (1..=3).contains(&counted),
        "{counted} probes in a 3 s start-up at a 1 s interval"
    );
    assert_eq!(not_ready.probes as usize, counted, "{error}");
    assert_eq!(not_ready.last_failure, Some(ProbeFailure::Status(503)));
    assert_eq!(not_ready.failure_streak, not_ready.probes);
    assert!(
        not_ready.output[0].starts_with("never-ready server up on"),
        "{:?}",
        not_ready.output
    );
    assert_eq!(
        not_ready.output.len(),
        1,
        "probe lines are left out: {:?}",
        not_ready.output
    );
    assert_eq!(not_ready.probe_lines, counted, "{error}");
    let message = not_ready.report();
    assert_eq!(
        message.matches("did not become ready").count(),
        1,
        "{message}"
    );
    assert!(message.contains("answered 503 on"), "{message}");
    assert!(message.contains("within 3s"), "{message}");
    assert!(message.contains("never-ready server up on"), "{message}");
    assert!(!message.contains("GET /healthz HTTP"), "{message}");
    // The log file keeps everything, probe lines included.
    assert!(
        fx.supervisor
            .last_lines("slow", 10)
            .iter()
            .any(|line| line.contains("\"GET /healthz HTTP/1.0\" 503")),
        "{:?}",
        fx.supervisor.last_lines("slow", 10)
    );
}

fn cmdline(pid: u32) -> String {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|bytes| String::from_utf8_lossy(&bytes).replace('\0', " "))
        .unwrap_or_default()
}

/// A simple command is exec'd: the app leads the group and is the main process. A
/// pipeline keeps the shell as the leader, and the main process is the child that
/// listens on the port.
#[tokio::test]
async fn pids_name_the_group_leader_and_the_apps_main_process() {
    let fx = fixture(SupervisorConfig::default());
    let simple = fx
        .supervisor
        .start(fx.spec("simple", "python3 {server}"))
        .await
        .expect("starts");
    let leader = simple.pid.expect("leader");
    assert_eq!(simple.main_pid, Some(leader));
    assert!(cmdline(leader).contains("server.py"), "{}", cmdline(leader));

    let piped = fx
        .supervisor
        .start(fx.spec("piped", "python3 {server} | cat"))
        .await
        .expect("starts");
    let leader = piped.pid.expect("leader");
    assert!(cmdline(leader).starts_with("sh -c"), "{}", cmdline(leader));
    let main = piped.main_pid.expect("the listening child is found");
    assert_ne!(main, leader);
    assert!(cmdline(main).contains("server.py"), "{}", cmdline(main));
    let listed = fx
        .supervisor
        .list()
        .into_iter()
        .find(|status| status.instance_id == "piped")
        .expect("listed");
    assert_eq!(listed.main_pid, Some(main));

    fx.supervisor.shutdown().await;
    assert!(!alive(main), "the main process survived shutdown");
}
