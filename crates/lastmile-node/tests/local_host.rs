//! `LocalHost` on its own, with a real instance and real sockets: opened on
//! a state directory, a release unpacked from its artifact cache, traffic
//! through its route, the route following an instance that crashed and was
//! restarted (on another port) through `watch_instances`, and
//! `drain_and_stop` leaving no instance behind.
#![allow(clippy::unwrap_used, reason = "a failed unwrap is a failed test")]

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

use lastmile_artifact::{BlobStore, pack};
use lastmile_host::{
    EdgeSpec, HealthSpec, HostHandle, InstanceSpec, ReleaseRef, RouteSpec, StopSpec, WarmupRule,
};
use lastmile_node::{BlobStoreSource, LocalHost};
use lastmile_router::RouterConfig;

/// Answers `/` with its own port, so a test sees which instance answered.
const SERVER: &str = r#"
import http.server, os
class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = os.environ["PORT"].encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *args):
        pass
http.server.HTTPServer(("127.0.0.1", int(os.environ["PORT"])), Handler).serve_forever()
"#;

/// The body of `GET /` through `addr`, or None unless it answered 200.
fn get(addr: SocketAddr) -> Option<String> {
    let mut stream = TcpStream::connect(addr).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    stream
        .write_all(b"GET / HTTP/1.1\r\nhost: test\r\nconnection: close\r\n\r\n")
        .ok()?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer).ok()?;
    let (head, body) = answer.split_once("\r\n\r\n")?;
    head.starts_with("HTTP/1.1 200").then(|| body.to_owned())
}

/// Waits until `GET /` through `addr` answers 200 with a body `accept` takes.
fn wait_for_answer(addr: SocketAddr, what: &str, accept: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(body) = get(addr).filter(|body| accept(body)) {
            return body;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn instance_pid(host: &LocalHost) -> Option<u32> {
    host.supervisor()
        .list_without_main_pid()
        .first()
        .and_then(|instance| instance.pid)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_route_follows_a_restarted_instance_and_drain_and_stop_ends_it() {
    let app = tempfile::tempdir().unwrap();
    std::fs::write(app.path().join("server.py"), SERVER).unwrap();
    let state = tempfile::tempdir().unwrap();
    let packed = pack(
        app.path(),
        &["server.py".to_owned()],
        &BlobStore::open(state.path()).unwrap(),
    )
    .unwrap();

    let host = LocalHost::open(
        "local",
        state.path(),
        RouterConfig::default(),
        Arc::new(BlobStoreSource::open(state.path()).unwrap()),
        BTreeMap::new(),
    )
    .unwrap();
    assert_eq!(host.supervisor().orphans_killed(), 0);
    let watcher = {
        let host = host.clone();
        tokio::spawn(async move { host.watch_instances(|_| {}).await })
    };

    let release = ReleaseRef {
        id: "r1".to_owned(),
        version: "v1".to_owned(),
        artifact_id: packed.id,
    };
    host.ensure_release(&release).await.unwrap();
    let bound = host
        .set_route(&RouteSpec {
            environment: "web".to_owned(),
            listen: "127.0.0.1:0".parse().unwrap(),
            host: None,
            path_prefix: "/".to_owned(),
            weights: vec![("r1".to_owned(), 100)],
            cohort: None,
            pins: Vec::new(),
            mirror: None,
            edge: EdgeSpec::default(),
            warmup: WarmupRule::default(),
        })
        .await
        .unwrap();
    let first = host
        .start_instance(&InstanceSpec {
            instance_id: "web.r1.0".to_owned(),
            environment: "web".to_owned(),
            release,
            index: 0,
            command: "exec python3 server.py".to_owned(),
            env: BTreeMap::new(),
            health: HealthSpec {
                path: "/".to_owned(),
                interval: Duration::from_millis(100),
                timeout: Duration::from_millis(500),
                healthy_threshold: 1,
                unhealthy_threshold: 3,
                start_timeout: Duration::from_secs(10),
            },
            stop: StopSpec {
                signal: lastmile_host::StopSignal::Term,
                grace: Duration::from_secs(2),
            },
        })
        .await
        .unwrap();
    let route = host.bound_addr("web").expect("the route is bound");
    assert_eq!(route, bound, "set_route answers where the route listens");
    assert_ne!(bound.port(), 0, "the port the system chose, not 0");
    let first_port = first.addr.port().to_string();
    wait_for_answer(route, "the first instance", |body| body == first_port);
    // A verification probe reaches the instance itself, not the route.
    let probed = host
        .probe("web.r1.0", "/", Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(
        (probed.status, probed.body.as_str()),
        (200, first_port.as_str())
    );

    // Killed, the instance is restarted on another port; only the event
    // loop tells the router where it went.
    let first_pid = first.pid.expect("the instance has a pid");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(first_pid as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    wait_for_answer(route, "the restarted instance", |body| body != first_port);
    let restarted_pid = instance_pid(&host).expect("the restarted instance runs");
    assert_ne!(restarted_pid, first_pid);

    host.drain_and_stop(Duration::from_secs(5)).await;
    assert!(host.supervisor().list_without_main_pid().is_empty());
    assert!(
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(restarted_pid as i32), None).is_err(),
        "the instance still runs after drain_and_stop"
    );
    watcher.abort();
}
