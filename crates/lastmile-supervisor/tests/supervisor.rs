//! Real processes (a tiny python3 HTTP server), real sockets, temp dirs.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use lastmile_supervisor::{
    HealthSpec, InstanceEvent, InstanceSpec, InstanceState, StopSpec, Supervisor, SupervisorConfig,
    SupervisorError,
};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use tempfile::TempDir;
use tokio::sync::broadcast;

/// Answers 200 on /healthz, `KEY=VALUE` lines on /env; with `EXIT_AFTER` set it exits
/// with status 1 that many seconds after the first health check.
const SERVER: &str = r#"
import http.server, os, sys, threading
exit_after = os.environ.get("EXIT_AFTER")
armed = []
class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
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
