//! `lastmile server` end to end: a git repository holding examples/hello,
//! the real binary, real pushes (webhooks signed like GitHub's), real
//! builds, deployments and a canary that fails under real traffic.

#![allow(clippy::unwrap_used, reason = "a failed unwrap is a failed test")]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use hmac::{Hmac, Mac};
use serde_json::{Value, json};

mod support;
use support::free_port;

const HOOK_SECRET: &str = "hook-secret-for-tests";

fn git(dir: &Path, args: &[&str]) -> String {
    let output = Command::new("git")
        .args(args)
        .current_dir(dir)
        .env("GIT_AUTHOR_NAME", "Dev")
        .env("GIT_AUTHOR_EMAIL", "dev@example.com")
        .env("GIT_COMMITTER_NAME", "Dev")
        .env("GIT_COMMITTER_EMAIL", "dev@example.com")
        .output()
        .expect("git runs");
    assert!(
        output.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).trim().to_owned()
}

/// A running `lastmile server`; stopped with SIGTERM (then killed) on drop.
struct ServerProcess {
    child: Child,
    log: PathBuf,
    api: SocketAddr,
}

impl ServerProcess {
    fn start(dir: &Path, config: &Path) -> ServerProcess {
        let log = dir.join("server.log");
        let child = Command::new(env!("CARGO_BIN_EXE_lastmile"))
            .args(["server", "--config"])
            .arg(config)
            .current_dir(dir)
            .env("HELLO_HOOK_SECRET", HOOK_SECRET)
            .env("NO_COLOR", "1")
            .env_remove("LASTMILE_SERVER")
            .env_remove("LASTMILE_TOKEN")
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&log).unwrap())
            .stderr(std::fs::File::options().append(true).open(&log).unwrap())
            .spawn()
            .expect("lastmile server starts");
        let file = dir.join("state/server.json");
        let deadline = Instant::now() + Duration::from_secs(30);
        let api = loop {
            // The file of this process, not one a killed server left.
            if let Ok(text) = std::fs::read_to_string(&file)
                && let Ok(value) = serde_json::from_str::<Value>(&text)
                && value["pid"] == child.id()
                && let Some(listen) = value["listen"].as_str()
            {
                break listen.parse().unwrap();
            }
            assert!(
                Instant::now() < deadline,
                "the server did not start:\n{}",
                std::fs::read_to_string(&log).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(50));
        };
        ServerProcess { child, log, api }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One HTTP request; the status and the JSON body (Null when not JSON).
fn call(
    addr: SocketAddr,
    method: &str,
    path: &str,
    token: Option<&str>,
    headers: &[(&str, &str)],
    body: &[u8],
) -> (u16, Value, String) {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(120)))
        .unwrap();
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nhost: test\r\nconnection: close\r\ncontent-length: {}\r\n",
        body.len()
    );
    if let Some(token) = token {
        head.push_str(&format!("authorization: Bearer {token}\r\n"));
    }
    if !body.is_empty() && !headers.iter().any(|(name, _)| *name == "content-type") {
        head.push_str("content-type: application/json\r\n");
    }
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).unwrap();
    stream.write_all(body).unwrap();
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).unwrap();
    let text = String::from_utf8_lossy(&answer).into_owned();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, body)| body)
        .unwrap_or_default();
    (
        status,
        serde_json::from_str(body).unwrap_or(Value::Null),
        text,
    )
}

/// `value` with every object's keys in order: serde_json keeps the wire
/// order when a crate of the build turns on its `preserve_order`.
fn sorted(value: Value) -> Value {
    match value {
        Value::Object(map) => {
            let mut fields: Vec<(String, Value)> = map.into_iter().collect();
            fields.sort_by(|a, b| a.0.cmp(&b.0));
            Value::Object(
                fields
                    .into_iter()
                    .map(|(key, field)| (key, sorted(field)))
                    .collect(),
            )
        }
        Value::Array(items) => Value::Array(items.into_iter().map(sorted).collect()),
        other => other,
    }
}

fn get(addr: SocketAddr, path: &str, token: &str) -> Value {
    let (status, value, text) = call(addr, "GET", path, Some(token), &[], b"");
    assert_eq!(status, 200, "GET {path}: {text}");
    value
}

fn github_push(addr: SocketAddr, secret: &str, sha: &str) -> (u16, Value) {
    let body = json!({
        "ref": "refs/heads/main",
        "after": sha,
        "repository": { "clone_url": "file:///repo", "full_name": "dev/hello" },
    })
    .to_string();
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(body.as_bytes());
    let signature = format!("sha256={}", hex::encode(mac.finalize().into_bytes()));
    let (status, value, _) = call(
        addr,
        "POST",
        "/api/v1/webhooks/hello",
        None,
        &[
            ("x-github-event", "push"),
            ("x-hub-signature-256", &signature),
            ("content-type", "application/json"),
        ],
        body.as_bytes(),
    );
    (status, value)
}

fn wait_for<T>(
    what: &str,
    server: &ServerProcess,
    timeout: Duration,
    mut check: impl FnMut() -> Option<T>,
) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = check() {
            return value;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}; server log:\n{}",
            server.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn commit_status(server: &ServerProcess, token: &str, sha: &str) -> Option<Value> {
    let commits = get(server.api, "/api/v1/apps/hello/commits", token);
    commits["commits"]
        .as_array()?
        .iter()
        .find(|commit| commit["sha"] == sha)
        .cloned()
}

/// `lastmile secret set hello NAME --config CONFIG` with `value` on stdin.
fn set_secret(config: &Path, name: &str, value: &str) {
    let mut set = Command::new(env!("CARGO_BIN_EXE_lastmile"))
        .args(["secret", "set", "hello", name, "--config"])
        .arg(config)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    set.stdin
        .take()
        .unwrap()
        .write_all(value.as_bytes())
        .unwrap();
    let output = set.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

fn create_token(dir: &Path, config: &Path, role: &str, name: &str) -> String {
    let output = Command::new(env!("CARGO_BIN_EXE_lastmile"))
        .args([
            "token", "create", "--role", role, "--name", name, "--config",
        ])
        .arg(config)
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).trim().to_owned()
}

/// The hello example as a git repository, its spec tuned for the test:
/// staging is a quick canary, production follows automatically.
fn hello_repo(root: &Path, staging: u16, production: u16) -> PathBuf {
    let repo = root.join("repo");
    let hello = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/hello");
    std::fs::create_dir_all(repo.join("src")).unwrap();
    for file in ["Cargo.toml", "Cargo.lock"] {
        std::fs::copy(hello.join(file), repo.join(file)).unwrap();
    }
    for entry in std::fs::read_dir(hello.join("src")).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), repo.join("src").join(entry.file_name())).unwrap();
    }
    write_spec(&repo, staging, production, "");
    std::fs::write(repo.join(".gitignore"), "target/\n").unwrap();
    git(&repo, &["init", "-q", "-b", "main"]);
    git(&repo, &["add", "."]);
    git(&repo, &["commit", "-q", "-m", "hello v1"]);
    repo
}

fn write_spec(repo: &Path, staging: u16, production: u16, extra_env: &str) {
    let spec = format!(
        r#"app: hello
pipeline:
  steps:
    - name: build
      run: cargo build --release --locked
      env: {{ CARGO_TARGET_DIR: target }}
      inputs: [Cargo.toml, Cargo.lock, src/**]
      outputs: [target/release/hello]
    - name: test
      run: cargo test --release --locked
      needs: [build]
      env: {{ CARGO_TARGET_DIR: target }}
      inputs: [Cargo.toml, Cargo.lock, src/**, tests/**]
artifact:
  paths: [target/release/hello]
service:
  run: ./target/release/hello
  env: {{ HELLO_VERSION: v1{extra_env} }}
  health: {{ path: /healthz, interval: 200ms, timeout: 1s, start_timeout: 20s }}
  stop: {{ signal: SIGTERM, grace: 5s }}
environments:
  staging:
    strategy: {{ type: canary, steps: [30, 100], step_duration: 2s, min_requests: 20, step_deadline: 30s, max_latency_ratio: 100, analysis: {{ max_p95_ratio: 100, latency_floor_ms: 2000 }} }}
    route: {{ listen: "127.0.0.1:{staging}" }}
  production:
    strategy: rolling
    promote: auto
    route: {{ listen: "127.0.0.1:{production}" }}
"#
    );
    std::fs::write(repo.join("lastmile.yaml"), spec).unwrap();
}

fn server_yaml(root: &Path, repo: &Path, poll: &str) -> PathBuf {
    server_yaml_with(root, repo, poll, "")
}

fn server_yaml_with(root: &Path, repo: &Path, poll: &str, extra: &str) -> PathBuf {
    let config = root.join("server.yaml");
    std::fs::write(
        &config,
        format!(
            "listen: 127.0.0.1:0\nstate_dir: state\napps:\n  - name: hello\n    repo: {}\n    poll_interval: {poll}\n    webhook_secret_env: HELLO_HOOK_SECRET\n{extra}",
            repo.display()
        ),
    )
    .unwrap();
    config
}

/// Plain GETs to `addr` until stopped, so a canary has traffic to judge.
fn traffic(addr: SocketAddr, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        while !stop.load(Ordering::Relaxed) {
            if let Ok(mut stream) = TcpStream::connect_timeout(&addr, Duration::from_millis(500)) {
                let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
                let _ = stream.write_all(b"GET / HTTP/1.1\r\nhost: t\r\nconnection: close\r\n\r\n");
                let mut sink = Vec::new();
                let _ = stream.read_to_end(&mut sink);
            }
            std::thread::sleep(Duration::from_millis(8));
        }
    })
}

/// The main path: a push is built and deployed along the chain; a push
/// whose tests fail makes no release; a push whose canary fails is rolled
/// back; the DORA figures follow from exactly those events.
#[test]
fn pushes_are_built_deployed_refused_and_rolled_back_and_dora_follows() {
    let root = tempfile::tempdir().unwrap();
    let (staging, production) = (free_port(), free_port());
    let repo = hello_repo(root.path(), staging, production);
    // Polls are rare: every push below is announced by a webhook.
    let config = server_yaml(root.path(), &repo, "1h");
    let token = create_token(root.path(), &config, "admin", "ci");
    let server = ServerProcess::start(root.path(), &config);

    // 1. The first commit (found by the first fetch) goes to staging, then
    //    on to production.
    let first = git(&repo, &["rev-parse", "HEAD"]);
    let commit = wait_for(
        "the first commit to deploy",
        &server,
        Duration::from_secs(180),
        || commit_status(&server, &token, &first).filter(|c| c["status"] == "deployed"),
    );
    let first_release = commit["release_id"].as_str().unwrap().to_owned();
    wait_for(
        "production to serve the first release",
        &server,
        Duration::from_secs(60),
        || {
            let status = get(server.api, "/api/v1/apps/hello", &token);
            let envs = status["environments"].as_array()?.clone();
            envs.iter()
                .all(|env| env["current_release"] == first_release.as_str())
                .then_some(())
        },
    );
    let (_, _, answer) = call(
        SocketAddr::from(([127, 0, 0, 1], staging)),
        "GET",
        "/",
        None,
        &[],
        b"",
    );
    assert!(answer.contains("hello"), "{answer}");

    // 2. A commit whose tests fail: built, tested, no release.
    std::fs::create_dir_all(repo.join("tests")).unwrap();
    std::fs::write(
        repo.join("tests/broken.rs"),
        "#[test]\nfn broken() {\n    assert_eq!(1 + 1, 3);\n}\n",
    )
    .unwrap();
    git(&repo, &["add", "."]);
    git(&repo, &["commit", "-q", "-m", "a broken test"]);
    let broken = git(&repo, &["rev-parse", "HEAD"]);
    let pushed = Instant::now();
    let (status, answer) = github_push(server.api, HOOK_SECRET, &broken);
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["triggered"], true, "{answer}");
    let seen = wait_for(
        "the webhook's commit to start",
        &server,
        Duration::from_secs(30),
        || commit_status(&server, &token, &broken),
    );
    assert_eq!(seen["source"], "webhook", "{seen}");
    eprintln!(
        "webhook → commit recorded and its build started: {:?}",
        pushed.elapsed()
    );
    let failed = wait_for(
        "the broken commit to fail",
        &server,
        Duration::from_secs(120),
        || commit_status(&server, &token, &broken).filter(|c| c["status"] == "failed"),
    );
    assert!(failed["release_id"].is_null(), "{failed}");
    assert!(
        failed["error"]
            .as_str()
            .unwrap_or_default()
            .contains("test"),
        "{failed}"
    );
    let releases = get(server.api, "/api/v1/apps/hello/releases", &token);
    assert_eq!(
        releases["releases"].as_array().unwrap().len(),
        1,
        "no release for a failed run: {releases}"
    );
    let run_id = failed["run_id"].as_i64().unwrap();
    let run = get(
        server.api,
        &format!("/api/v1/apps/hello/runs/{run_id}"),
        &token,
    );
    assert_eq!(run["run"]["status"], "failed", "{run}");
    let logs = get(
        server.api,
        &format!("/api/v1/apps/hello/runs/{run_id}/logs?step=test"),
        &token,
    );
    assert!(
        logs.to_string().contains("broken"),
        "the test step's log names the failing test: {logs}"
    );

    // 3. A commit whose release fails its canary (half its answers are
    //    500s): rolled back, staging stays on the first release.
    std::fs::remove_dir_all(repo.join("tests")).unwrap();
    write_spec(&repo, staging, production, ", HELLO_ERROR_RATE: \"0.5\"");
    git(&repo, &["add", "-A"]);
    git(&repo, &["commit", "-q", "-m", "a bad release"]);
    let bad = git(&repo, &["rev-parse", "HEAD"]);
    let stop = Arc::new(AtomicBool::new(false));
    let load = traffic(SocketAddr::from(([127, 0, 0, 1], staging)), stop.clone());
    let (status, _) = github_push(server.api, HOOK_SECRET, &bad);
    assert_eq!(status, 200);
    let rolled = wait_for(
        "the bad canary to be rolled back",
        &server,
        Duration::from_secs(120),
        || {
            commit_status(&server, &token, &bad)
                .filter(|c| c["status"] == "rolled-back" || c["status"] == "failed")
        },
    );
    stop.store(true, Ordering::Relaxed);
    load.join().unwrap();
    assert_eq!(rolled["status"], "rolled-back", "{rolled}");
    let status = get(server.api, "/api/v1/apps/hello", &token);
    for env in status["environments"].as_array().unwrap() {
        assert_eq!(env["current_release"], first_release.as_str(), "{env}");
    }

    // 4. DORA follows from exactly these events: staging had one success
    //    and one failed change, production one success.
    let deployments = get(server.api, "/api/v1/apps/hello/deployments", &token);
    let dora = get(server.api, "/api/v1/apps/hello/dora?days=1", &token);
    let report = |name: &str| {
        dora["environments"]
            .as_array()
            .unwrap()
            .iter()
            .find(|env| env["environment"] == name)
            .cloned()
            .unwrap()
    };
    let staging_report = report("staging");
    assert_eq!(staging_report["deployments"], 2, "{dora}\n{deployments}");
    assert_eq!(staging_report["change_failure_rate"], 0.5, "{dora}");
    assert_eq!(
        staging_report["deployment_frequency_per_day"], 1.0,
        "{dora}"
    );
    let production_report = report("production");
    assert_eq!(production_report["deployments"], 1, "{dora}");
    assert_eq!(production_report["change_failure_rate"], 0.0, "{dora}");
    // Lead time: the first commit's time to its success in staging.
    let committed_at = commit["committed_at"].as_i64().unwrap();
    let staged_at = deployments["deployments"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|d| d["environment"] == "staging" && d["status"] == "succeeded")
        .map(|d| d["finished_at"].as_i64().unwrap())
        .min()
        .unwrap();
    let expected_hours = (staged_at - committed_at) as f64 / 3_600_000.0;
    let lead = staging_report["lead_time_median_hours"].as_f64().unwrap();
    assert!(
        (lead - expected_hours).abs() < 1e-9,
        "lead time {lead} h, expected {expected_hours} h"
    );

    // Every mutating call and every push is in the event log.
    let events = get(server.api, "/api/v1/apps/hello/events", &token).to_string();
    assert!(events.contains("webhook.received"), "{events}");
    drop(server);
}

/// `root/repo` as a git repository: `spec` written as its lastmile.yaml
/// and everything in it committed with `message`.
fn spec_repo(root: &Path, spec: &str, message: &str) -> PathBuf {
    let repo = root.join("repo");
    std::fs::create_dir_all(&repo).unwrap();
    std::fs::write(repo.join("lastmile.yaml"), spec).unwrap();
    git(&repo, &["init", "-q", "-b", "main"]);
    git(&repo, &["add", "."]);
    git(&repo, &["commit", "-q", "-m", message]);
    repo
}

/// A tiny app whose pipeline copies a file: for the tests about guards.
fn tiny_repo(root: &Path, port: u16) -> PathBuf {
    tiny_repo_with(root, port, "")
}

fn tiny_repo_with(root: &Path, port: u16, more_environments: &str) -> PathBuf {
    let repo = root.join("repo");
    std::fs::create_dir_all(&repo).unwrap();
    std::fs::write(
        repo.join("server.py"),
        "import http.server, os\nclass H(http.server.BaseHTTPRequestHandler):\n    def do_GET(self):\n        self.send_response(200); self.end_headers(); self.wfile.write(b'ok')\n    def log_message(self, *a): pass\nhttp.server.HTTPServer(('127.0.0.1', int(os.environ['PORT'])), H).serve_forever()\n",
    )
    .unwrap();
    spec_repo(
        root,
        &format!(
            r#"app: hello
pipeline:
  steps:
    - name: build
      run: echo "key is $API_KEY" && cp server.py app.py
      secrets: [API_KEY]
artifact:
  paths: [app.py]
service:
  run: exec python3 app.py
  secrets: [API_KEY]
  health: {{ path: /, interval: 200ms, timeout: 1s, start_timeout: 20s }}
  stop: {{ signal: SIGTERM, grace: 2s }}
environments:
  staging:
    route: {{ listen: "127.0.0.1:{port}" }}
{more_environments}"#
        ),
        "tiny",
    )
}

/// Wrong webhook signatures get 401 and trigger nothing; a viewer cannot
/// deploy; no call goes without a token; secrets reach steps and instances
/// but never a log or an API answer.
#[test]
fn webhooks_tokens_and_secrets_are_guarded() {
    let root = tempfile::tempdir().unwrap();
    let repo = tiny_repo(root.path(), free_port());
    let config = server_yaml(root.path(), &repo, "1h");
    let admin = create_token(root.path(), &config, "admin", "admin");
    let viewer = create_token(root.path(), &config, "viewer", "watcher");
    let deployer = create_token(root.path(), &config, "deployer", "shipper");
    let secret = "s3cr3t-Value-1234";
    set_secret(&config, "API_KEY", &format!("{secret}\n"));
    let key = root.path().join("state/secret.key");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&key).unwrap().permissions().mode() & 0o777,
        0o600
    );

    let server = ServerProcess::start(root.path(), &config);
    let first = git(&repo, &["rev-parse", "HEAD"]);
    let deployed = wait_for(
        "the first commit to deploy",
        &server,
        Duration::from_secs(90),
        || commit_status(&server, &admin, &first).filter(|c| c["status"] == "deployed"),
    );

    // No token: 401 with a JSON error and a hint.
    let (status, answer, _) = call(server.api, "GET", "/api/v1/apps", None, &[], b"");
    assert_eq!(status, 401);
    assert_eq!(answer["code"], "unauthorized");
    assert!(
        answer["error"].as_str().unwrap().contains("token create"),
        "{answer}"
    );
    let (status, _, _) = call(
        server.api,
        "GET",
        "/api/v1/apps",
        Some("lmt_not-a-token"),
        &[],
        b"",
    );
    assert_eq!(status, 401);

    // A webhook with a wrong signature: 401, nothing triggered.
    std::fs::write(repo.join("README"), "news\n").unwrap();
    git(&repo, &["add", "."]);
    git(&repo, &["commit", "-q", "-m", "news"]);
    let news = git(&repo, &["rev-parse", "HEAD"]);
    let (status, answer) = github_push(server.api, "not-the-secret", &news);
    assert_eq!(status, 401, "{answer}");
    assert_eq!(answer["code"], "unauthorized");
    std::thread::sleep(Duration::from_secs(2));
    assert!(
        commit_status(&server, &admin, &news).is_none(),
        "a refused webhook triggered a build"
    );
    let refused = get(server.api, "/api/v1/events", &admin).to_string();
    assert!(refused.contains("webhook.refused"), "{refused}");
    // GitLab's token and Gitea's signature, wrong then right: the right
    // Gitea one builds the commit at once.
    let gitlab = json!({ "object_kind": "push", "ref": "refs/heads/main", "after": news, "project": { "git_http_url": "file:///repo" } }).to_string();
    let (status, _, _) = call(
        server.api,
        "POST",
        "/api/v1/webhooks/hello",
        None,
        &[("x-gitlab-event", "Push Hook"), ("x-gitlab-token", "wrong")],
        gitlab.as_bytes(),
    );
    assert_eq!(status, 401);
    let gitea = json!({ "ref": "refs/heads/main", "after": news, "repository": { "clone_url": "file:///repo" } }).to_string();
    let sign = |secret: &str| {
        let mut mac = Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).unwrap();
        mac.update(gitea.as_bytes());
        hex::encode(mac.finalize().into_bytes())
    };
    let wrong = sign("wrong");
    let (status, _, _) = call(
        server.api,
        "POST",
        "/api/v1/webhooks/hello",
        None,
        &[("x-gitea-event", "push"), ("x-gitea-signature", &wrong)],
        gitea.as_bytes(),
    );
    assert_eq!(status, 401);
    std::thread::sleep(Duration::from_millis(500));
    assert!(
        commit_status(&server, &admin, &news).is_none(),
        "a refused webhook triggered a build"
    );
    let right = sign(HOOK_SECRET);
    let (status, answer, _) = call(
        server.api,
        "POST",
        "/api/v1/webhooks/hello",
        None,
        &[("x-gitea-event", "push"), ("x-gitea-signature", &right)],
        gitea.as_bytes(),
    );
    assert_eq!(status, 200, "{answer}");
    let built = wait_for(
        "the Gitea push to deploy",
        &server,
        Duration::from_secs(60),
        || commit_status(&server, &admin, &news).filter(|c| c["status"] == "deployed"),
    );
    assert_eq!(built["source"], "webhook");

    // A viewer reads but cannot deploy, approve, or read secrets.
    get(server.api, "/api/v1/apps/hello", &viewer);
    let body = json!({ "environment": "staging" }).to_string();
    let (status, answer, _) = call(
        server.api,
        "POST",
        "/api/v1/apps/hello/deploy",
        Some(&viewer),
        &[],
        body.as_bytes(),
    );
    assert_eq!(status, 403, "{answer}");
    assert_eq!(answer["code"], "forbidden");
    let (status, _, _) = call(
        server.api,
        "GET",
        "/api/v1/apps/hello/secrets",
        Some(&deployer),
        &[],
        b"",
    );
    assert_eq!(status, 403);
    // A deployer can, and the event log says who.
    let (status, answer, _) = call(
        server.api,
        "POST",
        "/api/v1/apps/hello/deploy",
        Some(&deployer),
        &[],
        body.as_bytes(),
    );
    assert_eq!(status, 200, "{answer}");
    let events = get(server.api, "/api/v1/apps/hello/events", &admin);
    let who: Vec<&Value> = events["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|event| event["kind"] == "api.call")
        .collect();
    assert!(
        who.iter().any(|event| event["actor"] == "shipper"),
        "{events}"
    );

    // The CLI talks to the server with --server and LASTMILE_TOKEN.
    let cli = |token: &str, args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_lastmile"))
            .arg("--server")
            .arg(format!("http://{}", server.api))
            .args(["--app", "hello"])
            .args(args)
            .env("LASTMILE_TOKEN", token)
            .env("NO_COLOR", "1")
            .current_dir(root.path())
            .output()
            .unwrap()
    };
    let status = cli(&viewer, &["status", "--json"]);
    assert!(
        status.status.success(),
        "{}",
        String::from_utf8_lossy(&status.stderr)
    );
    let status: Value = serde_json::from_slice(&status.stdout).unwrap();
    assert_eq!(status["environments"][0]["name"], "staging", "{status}");
    let refused = cli(&viewer, &["deploy", "staging"]);
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("needs deployer"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );

    // The secret reached the step (masked in its log) and the instance.
    let run_id = deployed["run_id"].as_i64().unwrap();
    let logs = get(
        server.api,
        &format!("/api/v1/apps/hello/runs/{run_id}/logs"),
        &admin,
    )
    .to_string();
    assert!(logs.contains("key is ***"), "{logs}");
    let status = get(server.api, "/api/v1/apps/hello", &admin);
    let pid = status["instances"][0]["pid"]
        .as_u64()
        .expect("instance pid");
    let environ = std::fs::read(format!("/proc/{pid}/environ")).unwrap_or_default();
    assert!(
        String::from_utf8_lossy(&environ).contains(&format!("API_KEY={secret}")),
        "the instance has its secret"
    );
    // …and nowhere the API or the logs show.
    let mut everything = String::new();
    for path in [
        "/api/v1/apps",
        "/api/v1/apps/hello",
        "/api/v1/apps/hello/runs",
        "/api/v1/apps/hello/releases",
        "/api/v1/apps/hello/events",
        "/api/v1/apps/hello/secrets",
        "/api/v1/apps/hello/deployments",
        "/api/v1/events",
        "/metrics",
    ] {
        let (_, _, text) = call(server.api, "GET", path, Some(&admin), &[], b"");
        everything.push_str(&text);
    }
    everything.push_str(&logs);
    everything.push_str(&server.log());
    assert!(
        everything.contains("API_KEY"),
        "the secret's name is listed"
    );
    assert!(!everything.contains(secret), "a secret value leaked");
    // The OpenAPI document lists every route, and every route it lists
    // exists (none answers "no such route" or a wrong method).
    let (_, openapi, _) = call(server.api, "GET", "/api/openapi.json", None, &[], b"");
    assert_eq!(openapi["openapi"], "3.1.0");
    for route in lastmile_server::ROUTES {
        assert!(
            openapi["paths"][route.path][route.method.to_lowercase()].is_object(),
            "{} {} is not documented",
            route.method,
            route.path
        );
        if route.method != "GET" {
            continue;
        }
        let path = route
            .path
            .replace("{app}", "hello")
            .replace("{run}", &run_id.to_string())
            .replace("{id}", "1");
        let (status, answer, text) = call(server.api, "GET", &path, Some(&admin), &[], b"");
        assert_ne!(answer["code"], "no_route", "GET {path}: {text}");
        assert!(status != 405 && status != 0, "GET {path}: {text}");
    }
    for (method, path) in [
        ("POST", "/api/v1/apps/hello/environments/staging/approve"),
        ("DELETE", "/api/v1/tokens/nobody"),
        ("PUT", "/api/v1/apps/hello/secrets/X"),
    ] {
        let (_, answer, text) = call(server.api, method, path, Some(&admin), &[], b"{}");
        assert_ne!(answer["code"], "no_route", "{method} {path}: {text}");
    }
    let (status, answer, _) = call(server.api, "GET", "/api/v1/nothing", Some(&admin), &[], b"");
    assert_eq!((status, answer["code"].as_str()), (404, Some("no_route")));

    // /metrics of every app, labelled by app, valid for promtool.
    let (status, _, metrics) = call(server.api, "GET", "/metrics", Some(&viewer), &[], b"");
    assert_eq!(status, 200);
    let metrics = metrics.split_once("\r\n\r\n").unwrap().1.to_owned();
    assert!(metrics.contains("app=\"hello\""), "{metrics}");
    let mut promtool = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool (Debian's prometheus package; scripts/test installs it)");
    promtool
        .stdin
        .take()
        .unwrap()
        .write_all(metrics.as_bytes())
        .unwrap();
    let checked = promtool.wait_with_output().unwrap();
    assert!(
        checked.status.success(),
        "promtool: {}{}\n{metrics}",
        String::from_utf8_lossy(&checked.stdout),
        String::from_utf8_lossy(&checked.stderr)
    );
    drop(server);
}

/// An instance that stops answering (SIGSTOP: alive, but failing its
/// health check) is drift: reported, recorded, and with `self_heal`
/// replaced by a fresh instance of the same release.
#[test]
fn drift_is_reported_and_self_healed() {
    let root = tempfile::tempdir().unwrap();
    let repo = tiny_repo(root.path(), free_port());
    let config = server_yaml_with(root.path(), &repo, "1h", "    self_heal: true\n");
    let admin = create_token(root.path(), &config, "admin", "admin");
    set_secret(&config, "API_KEY", "value");
    let server = ServerProcess::start(root.path(), &config);
    let first = git(&repo, &["rev-parse", "HEAD"]);
    wait_for(
        "the first commit to deploy",
        &server,
        Duration::from_secs(90),
        || commit_status(&server, &admin, &first).filter(|c| c["status"] == "deployed"),
    );
    let status = get(server.api, "/api/v1/apps/hello", &admin);
    let release = status["environments"][0]["current_release"].clone();
    let pid = status["instances"][0]["pid"]
        .as_u64()
        .expect("instance pid") as i32;
    // Healthy: no drift.
    std::thread::sleep(Duration::from_secs(3));
    let drift = get(server.api, "/api/v1/apps/hello/drift", &admin);
    assert_eq!(drift["drift"], json!({}), "{drift}");
    let stopped = nix::unistd::Pid::from_raw(pid);
    nix::sys::signal::kill(stopped, nix::sys::signal::Signal::SIGSTOP).unwrap();
    wait_for(
        "drift to be recorded",
        &server,
        Duration::from_secs(30),
        || {
            let events = get(server.api, "/api/v1/apps/hello/events", &admin).to_string();
            events.contains("drift.detected").then_some(())
        },
    );
    let healed = wait_for(
        "self-heal to start a fresh instance",
        &server,
        Duration::from_secs(60),
        || {
            let status = get(server.api, "/api/v1/apps/hello", &admin);
            let instances = status["instances"].as_array()?.clone();
            instances
                .iter()
                .find(|i| i["state"] == "ready" && i["pid"].as_u64() != Some(pid as u64))
                .map(|_| status)
        },
    );
    assert_eq!(
        healed["environments"][0]["current_release"], release,
        "the same release serves"
    );
    wait_for(
        "the heal to be recorded",
        &server,
        Duration::from_secs(30),
        || {
            let events = get(server.api, "/api/v1/apps/hello/events", &admin).to_string();
            events.contains("drift.healed").then_some(())
        },
    );
    // The stopped process was stopped for good by the heal.
    let _ = nix::sys::signal::kill(stopped, nix::sys::signal::Signal::SIGCONT);
    drop(server);
}

/// A deployment waiting for approval survives a restart of the server,
/// and the approval (with who gave it) then deploys it.
#[test]
fn a_pending_approval_survives_a_restart() {
    let root = tempfile::tempdir().unwrap();
    let production = free_port();
    let repo = tiny_repo_with(
        root.path(),
        free_port(),
        &format!(
            "  production:\n    promote: manual\n    route: {{ listen: \"127.0.0.1:{production}\" }}\n"
        ),
    );
    let config = server_yaml(root.path(), &repo, "1h");
    let admin = create_token(root.path(), &config, "admin", "admin");
    let deployer = create_token(root.path(), &config, "deployer", "releaser");
    set_secret(&config, "API_KEY", "value");
    let server = ServerProcess::start(root.path(), &config);
    let first = git(&repo, &["rev-parse", "HEAD"]);
    wait_for(
        "staging to deploy",
        &server,
        Duration::from_secs(90),
        || commit_status(&server, &admin, &first).filter(|c| c["status"] == "deployed"),
    );
    let waiting = wait_for(
        "the approval to be asked",
        &server,
        Duration::from_secs(30),
        || {
            let approvals = get(server.api, "/api/v1/apps/hello/approvals", &admin);
            (approvals["approvals"][0]["environment"] == "production").then_some(approvals)
        },
    );
    drop(server);

    let server = ServerProcess::start(root.path(), &config);
    let approvals = wait_for(
        "the approval to come back",
        &server,
        Duration::from_secs(30),
        || {
            let approvals = get(server.api, "/api/v1/apps/hello/approvals", &admin);
            (approvals["approvals"][0]["release"] == waiting["approvals"][0]["release"])
                .then_some(approvals)
        },
    );
    // The CLI shows the approval waiting and gives it.
    let cli = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_lastmile"))
            .args([
                "--server",
                &format!("http://{}", server.api),
                "--app",
                "hello",
            ])
            .args(args)
            .env("LASTMILE_TOKEN", &deployer)
            .env("NO_COLOR", "1")
            .output()
            .unwrap()
    };
    let status = cli(&["status"]);
    let shown = String::from_utf8_lossy(&status.stdout);
    assert!(
        shown.contains("waits for approval to go to production"),
        "{shown}{}",
        String::from_utf8_lossy(&status.stderr)
    );
    let approved = cli(&["approve", "production", "--json"]);
    assert!(
        approved.status.success(),
        "{}",
        String::from_utf8_lossy(&approved.stderr)
    );
    let answer: Value = serde_json::from_slice(&approved.stdout).unwrap();
    assert_eq!(answer["approved_by"], "releaser", "{answer}");
    wait_for(
        "production to serve the approved release",
        &server,
        Duration::from_secs(60),
        || {
            let status = get(server.api, "/api/v1/apps/hello", &admin);
            let production = status["environments"]
                .as_array()?
                .iter()
                .find(|env| env["name"] == "production")?
                .clone();
            (production["current_release"] == approvals["approvals"][0]["release"]).then_some(())
        },
    );
    let events = get(server.api, "/api/v1/apps/hello/events", &admin).to_string();
    assert!(
        events.contains("approval.given") && events.contains("releaser"),
        "{events}"
    );
    let approvals = get(server.api, "/api/v1/apps/hello/approvals", &admin);
    assert_eq!(approvals["approvals"], json!([]), "{approvals}");
    // The approval was saved when it was given: a crash and a restart
    // find nothing waiting.
    let mut server = server;
    server.child.kill().unwrap();
    server.child.wait().unwrap();
    drop(server);
    let server = ServerProcess::start(root.path(), &config);
    let approvals = get(server.api, "/api/v1/apps/hello/approvals", &admin);
    assert_eq!(approvals["approvals"], json!([]), "{approvals}");
    assert!(
        !server.log().contains("still wait for approval"),
        "{}",
        server.log()
    );
    drop(server);
}

/// A rollback whose client hangs up right after asking still runs to its
/// end: the handler must not take the rollback down with it.
#[test]
fn a_rollback_outlives_the_client_that_asked_for_it() {
    let root = tempfile::tempdir().unwrap();
    let staging = free_port();
    let repo = tiny_repo(root.path(), staging);
    // While `hold` exists, a starting instance waits for `go` before it
    // listens: the rollback is held half-way while its client hangs up.
    let (hold, go) = (root.path().join("hold"), root.path().join("go"));
    let source = std::fs::read_to_string(repo.join("server.py")).unwrap();
    std::fs::write(
        repo.join("server.py"),
        format!(
            "import os, time\nif os.path.exists({hold:?}):\n    while not os.path.exists({go:?}): time.sleep(0.02)\n{source}"
        ),
    )
    .unwrap();
    git(&repo, &["commit", "-q", "-am", "v1"]);
    let config = server_yaml(root.path(), &repo, "1h");
    let admin = create_token(root.path(), &config, "admin", "admin");
    set_secret(&config, "API_KEY", "value");
    let server = ServerProcess::start(root.path(), &config);
    let first = git(&repo, &["rev-parse", "HEAD"]);
    let deployed = |sha: &str| {
        wait_for(
            "a commit to deploy",
            &server,
            Duration::from_secs(90),
            || commit_status(&server, &admin, sha).filter(|c| c["status"] == "deployed"),
        )["release_id"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let first_release = deployed(&first);
    let source = std::fs::read_to_string(repo.join("server.py")).unwrap();
    std::fs::write(repo.join("server.py"), source.replace("b'ok'", "b'v2'")).unwrap();
    git(&repo, &["commit", "-q", "-am", "v2"]);
    let second = git(&repo, &["rev-parse", "HEAD"]);
    assert_eq!(github_push(server.api, HOOK_SECRET, &second).0, 200);
    let second_release = deployed(&second);
    assert_ne!(first_release, second_release);

    // The client asks, and hangs up once the rollback has begun.
    std::fs::write(&hold, "").unwrap();
    let mut stream = TcpStream::connect(server.api).unwrap();
    write!(
        stream,
        "POST /api/v1/apps/hello/environments/staging/rollback HTTP/1.1\r\nhost: test\r\n\
         authorization: Bearer {admin}\r\ncontent-length: 0\r\n\r\n"
    )
    .unwrap();
    wait_for(
        "the rollback to begin",
        &server,
        Duration::from_secs(30),
        || {
            let deployments = get(server.api, "/api/v1/apps/hello/deployments", &admin);
            deployments["deployments"]
                .as_array()?
                .iter()
                .any(|d| d["strategy"] == "rollback")
                .then_some(())
        },
    );
    drop(stream);
    // A round trip after the hang-up, so it reached the server before the
    // instance may start.
    wait_for(
        "the server to answer",
        &server,
        Duration::from_secs(10),
        || {
            let (status, _, _) = call(server.api, "GET", "/healthz", None, &[], b"");
            (status == 200).then_some(())
        },
    );
    std::fs::write(&go, "").unwrap();

    let rollback = wait_for(
        "the rollback to finish",
        &server,
        Duration::from_secs(60),
        || {
            let deployments = get(server.api, "/api/v1/apps/hello/deployments", &admin);
            deployments["deployments"]
                .as_array()?
                .iter()
                .find(|d| d["strategy"] == "rollback" && !d["finished_at"].is_null())
                .cloned()
        },
    );
    assert_eq!(rollback["status"], "rolled-back", "{rollback}");
    assert_eq!(rollback["to_release"], first_release.as_str(), "{rollback}");
    let status = get(server.api, "/api/v1/apps/hello", &admin);
    assert_eq!(
        status["environments"][0]["current_release"],
        first_release.as_str(),
        "{status}"
    );
    let (_, _, answer) = call(
        SocketAddr::from(([127, 0, 0, 1], staging)),
        "GET",
        "/",
        None,
        &[],
        b"",
    );
    assert!(answer.ends_with("ok"), "{answer}");
    drop(server);
}

/// Step logs stream live over SSE while the run goes on, and the stream
/// ends with the run's status.
#[test]
fn step_logs_stream_live_over_sse() {
    let root = tempfile::tempdir().unwrap();
    let gate = root.path().join("gate");
    let repo = spec_repo(
        root.path(),
        &format!(
            "app: hello\npipeline:\n  steps:\n    - name: build\n      run: echo first line && while [ ! -f '{}' ]; do sleep 0.05; done && echo last line\n",
            gate.display()
        ),
        "slow",
    );
    let config = server_yaml(root.path(), &repo, "1h");
    let admin = create_token(root.path(), &config, "viewer", "reader");
    let server = ServerProcess::start(root.path(), &config);
    let sha = git(&repo, &["rev-parse", "HEAD"]);
    let run_id = wait_for("the run to start", &server, Duration::from_secs(30), || {
        commit_status(&server, &admin, &sha)?["run_id"].as_i64()
    });

    let mut stream = TcpStream::connect(server.api).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    write!(
        stream,
        "GET /api/v1/apps/hello/runs/{run_id}/logs HTTP/1.1\r\nhost: t\r\naccept: text/event-stream\r\nauthorization: Bearer {admin}\r\n\r\n"
    )
    .unwrap();
    let mut seen = String::new();
    let mut buffer = [0u8; 4096];
    // The first line arrives while the step still waits for the gate.
    while !seen.contains("first line") {
        let read = stream.read(&mut buffer).unwrap();
        assert!(read > 0, "the stream ended early: {seen}");
        seen.push_str(&String::from_utf8_lossy(&buffer[..read]));
    }
    assert!(seen.contains("text/event-stream"), "{seen}");
    assert!(seen.contains("event: line"), "{seen}");
    assert!(!seen.contains("last line"), "{seen}");
    std::fs::write(&gate, "go").unwrap();
    while !seen.contains("event: end") {
        let read = stream.read(&mut buffer).unwrap();
        assert!(read > 0, "the stream ended without `end`: {seen}");
        seen.push_str(&String::from_utf8_lossy(&buffer[..read]));
    }
    assert!(seen.contains("last line"), "{seen}");
    assert!(seen.contains(r#""status":"succeeded""#), "{seen}");
    drop(server);
}

/// With `tls:` the server speaks only https; the CLI reaches it over
/// https, trusting a private CA through LASTMILE_CA_FILE, and refuses a
/// certificate it does not trust.
#[test]
fn the_server_serves_https_and_the_cli_follows() {
    let root = tempfile::tempdir().unwrap();
    let repo = spec_repo(
        root.path(),
        "app: hello\npipeline:\n  steps:\n    - name: build\n      run: echo built\n",
        "ci only",
    );
    let key = rcgen::KeyPair::generate().unwrap();
    let params = rcgen::CertificateParams::new(vec!["127.0.0.1".to_owned()]).unwrap();
    let certificate = params.self_signed(&key).unwrap();
    std::fs::write(root.path().join("cert.pem"), certificate.pem()).unwrap();
    std::fs::write(root.path().join("key.pem"), key.serialize_pem()).unwrap();
    let config = server_yaml(root.path(), &repo, "1h");
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(
        &config,
        format!("tls: {{ cert: cert.pem, key: key.pem }}\n{text}"),
    )
    .unwrap();
    let admin = create_token(root.path(), &config, "admin", "admin");
    let server = ServerProcess::start(root.path(), &config);
    let file: Value = serde_json::from_str(
        &std::fs::read_to_string(root.path().join("state/server.json")).unwrap(),
    )
    .unwrap();
    let url = file["url"].as_str().unwrap().to_owned();
    assert!(url.starts_with("https://127.0.0.1:"), "{url}");

    let cli = |ca: Option<&Path>| {
        let mut command = Command::new(env!("CARGO_BIN_EXE_lastmile"));
        command
            .args(["token", "list", "--json", "--server", &url])
            .env("LASTMILE_TOKEN", &admin)
            .env_remove("LASTMILE_CA_FILE");
        if let Some(ca) = ca {
            command.env("LASTMILE_CA_FILE", ca);
        }
        command.output().unwrap()
    };
    let trusted = cli(Some(&root.path().join("cert.pem")));
    assert!(
        trusted.status.success(),
        "{}",
        String::from_utf8_lossy(&trusted.stderr)
    );
    let tokens: Value = serde_json::from_slice(&trusted.stdout).unwrap();
    assert_eq!(tokens[0]["name"], "admin", "{tokens}");
    let untrusted = cli(None);
    assert!(
        !untrusted.status.success(),
        "an untrusted certificate was accepted"
    );
    // Plain http to the TLS port gets no API answer.
    let (status, _, _) = call(server.api, "GET", "/healthz", None, &[], b"");
    assert_ne!(status, 200);
    drop(server);
}

/// A server killed (SIGKILL) while it builds a commit builds it again at
/// its next start: nothing is lost, the interrupted run says so, and the
/// step it left running is killed.
#[test]
fn a_commit_interrupted_by_a_crash_is_built_again() {
    let root = tempfile::tempdir().unwrap();
    let gate = root.path().join("gate");
    let step_pid = root.path().join("step.pid");
    let repo = spec_repo(
        root.path(),
        &format!(
            "app: hello\npipeline:\n  steps:\n    - name: build\n      run: echo $$ > '{}'; while [ ! -f '{}' ]; do sleep 0.05; done && echo built\n",
            step_pid.display(),
            gate.display()
        ),
        "slow",
    );
    let sha = git(&repo, &["rev-parse", "HEAD"]);
    let config = server_yaml(root.path(), &repo, "1h");
    let token = create_token(root.path(), &config, "viewer", "reader");

    let mut server = ServerProcess::start(root.path(), &config);
    let first_run = wait_for("the run to start", &server, Duration::from_secs(30), || {
        commit_status(&server, &token, &sha)?["run_id"].as_i64()
    });
    // The step runs, and its process group is in the app's store.
    let database = root.path().join("state/apps/hello/lastmile.db");
    let step = wait_for(
        "the step to start",
        &server,
        Duration::from_secs(30),
        || {
            let connection = rusqlite::Connection::open_with_flags(
                &database,
                rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
            )
            .ok()?;
            let group: i32 = connection
                .query_row(
                    "SELECT process_group FROM steps WHERE run_id = ?1 AND status = 'running'",
                    [first_run],
                    |row| row.get(0),
                )
                .ok()?;
            let pid: i32 = std::fs::read_to_string(&step_pid)
                .ok()?
                .trim()
                .parse()
                .ok()?;
            (pid == group).then_some(pid)
        },
    );
    // The step's shell leads its group; this test owns it from here.
    let mut step_group = KillGroupOnDrop(Some(step));
    server.child.kill().unwrap();
    server.child.wait().unwrap();
    drop(server);
    let step_alive = || {
        std::fs::read_to_string(format!("/proc/{step}/stat"))
            .is_ok_and(|stat| !stat.contains(") Z ") && !stat.contains(") X "))
    };
    assert!(step_alive(), "the step died with the server");

    // The restarted server kills the interrupted run's step, then builds
    // the commit again (past the gate this time).
    let server = ServerProcess::start(root.path(), &config);
    wait_for(
        "the interrupted run's step to be killed",
        &server,
        Duration::from_secs(10),
        || (!step_alive()).then_some(()),
    );
    step_group.0 = None;
    std::fs::write(&gate, "go").unwrap();
    let built = wait_for(
        "the commit to be built again",
        &server,
        Duration::from_secs(60),
        || commit_status(&server, &token, &sha).filter(|c| c["status"] == "built"),
    );
    assert_ne!(built["run_id"].as_i64(), Some(first_run), "{built}");
    let run = get(
        server.api,
        &format!("/api/v1/apps/hello/runs/{first_run}"),
        &token,
    );
    assert_eq!(run["run"]["status"], "interrupted", "{run}");
    assert!(
        server.log().contains("building it again"),
        "{}",
        server.log()
    );
    drop(server);
}

/// SIGKILLs a process group on drop unless it was seen gone (`None`: its
/// id may then be reused).
struct KillGroupOnDrop(Option<i32>);

impl Drop for KillGroupOnDrop {
    fn drop(&mut self) {
        if let Some(group) = self.0 {
            let _ = nix::sys::signal::killpg(
                nix::unistd::Pid::from_raw(group),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
    }
}

/// What the OpenAPI document promises, the API keeps: integers out of
/// their documented range are refused in words, string fields refuse null
/// and "", `/healthz` is plain text, and a webhook for an app the server
/// does not have is answered like a bad signature, naming no app.
#[test]
fn the_api_refuses_what_its_openapi_document_forbids() {
    let root = tempfile::tempdir().unwrap();
    let repo = tiny_repo(root.path(), free_port());
    // A second app whose webhook secret variable is not set.
    let quiet = format!(
        "  - name: quiet\n    repo: {}\n    poll_interval: 1h\n    webhook_secret_env: QUIET_HOOK_SECRET_NOT_SET\n",
        repo.display()
    );
    let config = server_yaml_with(root.path(), &repo, "1h", &quiet);
    let admin = create_token(root.path(), &config, "admin", "admin");
    let server = ServerProcess::start(root.path(), &config);

    let (_, openapi, _) = call(server.api, "GET", "/api/openapi.json", None, &[], b"");
    let runs = &openapi["paths"]["/api/v1/apps/{app}/runs"]["get"];
    assert_eq!(
        runs["parameters"][1]["schema"],
        json!({ "type": "integer", "format": "int64", "minimum": 1, "maximum": 1000, "default": 50 })
    );
    let tokens = &openapi["paths"]["/api/v1/tokens"]["post"];
    assert_eq!(
        tokens["requestBody"]["content"]["application/json"]["schema"]["properties"]["role"]["enum"],
        json!(["viewer", "deployer", "admin"])
    );
    for path in ["/healthz", "/metrics"] {
        let content = &openapi["paths"][path]["get"]["responses"]["200"]["content"];
        assert!(content["text/plain"].is_object(), "{path}: {content}");
        assert!(
            content.get("application/json").is_none(),
            "{path}: {content}"
        );
    }
    assert!(
        !openapi.to_string().contains("\"hello\""),
        "the public document names an app"
    );
    let (status, _, text) = call(server.api, "GET", "/healthz", None, &[], b"");
    assert_eq!(status, 200);
    assert!(
        text.to_lowercase().contains("content-type: text/plain"),
        "{text}"
    );

    let mut refusals = String::new();
    for path in [
        "/api/v1/apps/hello/runs?limit=-8557",
        "/api/v1/apps/hello/runs?limit=0",
        "/api/v1/apps/hello/releases?limit=1001",
        "/api/v1/apps/hello/events?after=-61232279",
        "/api/v1/events?limit=5001",
        "/api/v1/dora?days=-57",
        "/api/v1/dora?days=79804729401",
        "/api/v1/apps/hello/dora?days=366",
        "/api/v1/apps/hello/runs/99999999999999999999",
        "/api/v1/apps/hello/runs/0/logs",
        "/api/v1/apps/hello/deployments/-1",
        "/api/v1/apps/hello/status?window_s=61",
        "/api/v1/apps/hello/runs/1/logs?step=a%20b",
        "/api/v1/apps/hello/drift?page=2",
        "/api/v1/apps/Hello/runs",
    ] {
        let (status, answer, text) = call(server.api, "GET", path, Some(&admin), &[], b"");
        assert_eq!(status, 400, "GET {path}: {text}");
        assert_eq!(answer["code"], "bad_request", "GET {path}: {text}");
        refusals.push_str(&format!("GET {path}\n  {}\n", answer["error"]));
    }
    for body in [
        r#"{"to": null}"#,
        r#"{"to": ""}"#,
        r#"{"to": "x", "extra": 1}"#,
    ] {
        let (status, answer, text) = call(
            server.api,
            "POST",
            "/api/v1/apps/hello/environments/staging/rollback",
            Some(&admin),
            &[],
            body.as_bytes(),
        );
        assert_eq!(status, 422, "{body}: {text}");
        assert_eq!(answer["code"], "bad_request", "{body}: {text}");
        refusals.push_str(&format!("rollback {body}\n  {}\n", answer["error"]));
    }
    for body in [
        r#"{"environment": "staging", "release": null}"#,
        r#"{"environment": "staging", "approved_by": ""}"#,
    ] {
        let (status, answer, text) = call(
            server.api,
            "POST",
            "/api/v1/apps/hello/deploy",
            Some(&admin),
            &[],
            body.as_bytes(),
        );
        assert_eq!(status, 422, "{body}: {text}");
        refusals.push_str(&format!("deploy {body}\n  {}\n", answer["error"]));
    }
    insta::assert_snapshot!("api_refusals", refusals);

    // Every kind of refusal, whole: status, content type and body, as a
    // client reads them.
    let viewer = create_token(root.path(), &config, "viewer", "viewer");
    let mut bodies = String::new();
    for (method, path, token, headers, body) in [
        ("GET", "/api/v1/apps/hello/status", None, &[][..], ""),
        (
            "GET",
            "/api/v1/apps/hello/status",
            Some("lm_not-a-token"),
            &[][..],
            "",
        ),
        (
            "POST",
            "/api/v1/apps/hello/deploy",
            Some(viewer.as_str()),
            &[][..],
            r#"{"environment": "staging"}"#,
        ),
        (
            "GET",
            "/api/v1/apps/nosuch/status",
            Some(admin.as_str()),
            &[][..],
            "",
        ),
        (
            "GET",
            "/api/v1/apps/hello/environments/nosuch/drift",
            Some(admin.as_str()),
            &[][..],
            "",
        ),
        ("GET", "/api/v1/nosuch", Some(admin.as_str()), &[][..], ""),
        (
            "DELETE",
            "/api/v1/apps/hello/status",
            Some(admin.as_str()),
            &[][..],
            "",
        ),
        (
            "GET",
            "/api/v1/apps/hello/runs?limit=0",
            Some(admin.as_str()),
            &[][..],
            "",
        ),
        (
            "POST",
            "/api/v1/apps/hello/deploy",
            Some(admin.as_str()),
            &[][..],
            "{",
        ),
        (
            "POST",
            "/api/v1/apps/hello/deploy",
            Some(admin.as_str()),
            &[("content-type", "text/plain")][..],
            r#"{"environment": "staging"}"#,
        ),
        (
            "POST",
            "/api/v1/apps/hello/environments/staging/rollback",
            Some(admin.as_str()),
            &[][..],
            r#"{"to": null}"#,
        ),
    ] {
        let (status, answer, text) =
            call(server.api, method, path, token, headers, body.as_bytes());
        let content_type = text
            .lines()
            .take_while(|line| !line.is_empty())
            .find_map(|line| {
                line.to_ascii_lowercase()
                    .strip_prefix("content-type: ")
                    .map(str::to_owned)
            })
            .unwrap_or_default();
        let shown = if answer.is_null() {
            text.split_once("\r\n\r\n")
                .map(|(_, body)| body.to_owned())
                .unwrap_or_default()
        } else {
            serde_json::to_string_pretty(&sorted(answer)).unwrap()
        };
        bodies.push_str(&format!(
            "{method} {path} (token: {}) {body}\n  {status} {content_type}\n  {}\n",
            match token {
                None => "none",
                Some(token) if token == admin => "admin",
                Some(token) if token == viewer => "viewer",
                Some(_) => "unknown",
            },
            shown.replace('\n', "\n  ")
        ));
    }
    insta::assert_snapshot!("api_error_bodies", bodies);
    // What `lastmile watch --server` asks for: the last 10 s of traffic, once
    // the watcher has taken up the first commit (nothing above waited for it).
    let status = wait_for(
        "the first commit of hello to be taken up",
        &server,
        Duration::from_secs(60),
        || {
            let (status, value, _) = call(
                server.api,
                "GET",
                "/api/v1/apps/hello/status?window_s=10",
                Some(&admin),
                &[],
                b"",
            );
            (status == 200).then_some(value)
        },
    );
    assert_eq!(status["app"], "hello", "{status}");

    // An unknown app's webhook: the very answer a known app gives a request
    // without a signature, or with a wrong one.
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(b"wrong").unwrap();
    mac.update(b"{}");
    let wrong = format!("sha256={}", hex::encode(mac.finalize().into_bytes()));
    for headers in [
        &[][..],
        &[("x-github-event", "push")][..],
        &[("x-github-event", "push"), ("x-hub-signature-256", &wrong)][..],
        &[("x-gitlab-event", "Push Hook"), ("x-gitlab-token", "wrong")][..],
    ] {
        let known = call(
            server.api,
            "POST",
            "/api/v1/webhooks/hello",
            None,
            headers,
            b"{}",
        );
        let unknown = call(
            server.api,
            "POST",
            "/api/v1/webhooks/nosuch",
            None,
            headers,
            b"{}",
        );
        let unset = call(
            server.api,
            "POST",
            "/api/v1/webhooks/quiet",
            None,
            headers,
            b"{}",
        );
        assert_eq!(known.0, 401, "{headers:?}: {}", known.2);
        assert_eq!((unknown.0, &unknown.1), (known.0, &known.1), "{headers:?}");
        assert!(!unknown.2.contains("hello"), "{}", unknown.2);
        // An app without a secret says nothing of it either.
        assert_eq!((unset.0, &unset.1), (known.0, &known.1), "{headers:?}");
    }
    // The operator learns why from the server's event log.
    let events = get(server.api, "/api/v1/events?limit=5000", &admin).to_string();
    assert!(
        events.contains(
            "app `quiet` has no webhook secret: `QUIET_HOOK_SECRET_NOT_SET` is unset or empty"
        ),
        "{events}"
    );
    drop(server);
}

/// The pinned schemathesis, as `pip` takes it (`schemathesis==4.32.5`).
const SCHEMATHESIS: &str = include_str!("schemathesis/requirements.txt");

/// A process group killed when dropped: a tool that outlives its time
/// budget takes nothing with it.
struct Reaped(Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let group = nix::unistd::Pid::from_raw(-(self.0.id() as i32));
            let _ = nix::sys::signal::kill(group, nix::sys::signal::Signal::SIGKILL);
            let _ = self.0.wait();
        }
    }
}

/// schemathesis fuzzes the live API from its public OpenAPI document, with
/// an admin token, through every phase (examples, coverage, fuzzing,
/// stateful along the document's links) with every check and finds
/// nothing: no 5xx, no answer outside its schema, status or content type,
/// no request the document forbids accepted nor one it allows refused.
/// The seed is fixed so CI is stable;
/// `LASTMILE_SCHEMATHESIS_SEED` picks another to look for new bugs.
#[test]
fn schemathesis_finds_nothing_against_the_openapi_document() {
    let pinned = SCHEMATHESIS.trim();
    let version = Command::new("schemathesis").arg("--version").output();
    let version = match version {
        Ok(output) if output.status.success() => {
            String::from_utf8_lossy(&output.stdout).trim().to_owned()
        }
        _ => panic!(
            "schemathesis is not installed: scripts/test installs it, or run `python3 -m pip install {pinned}`"
        ),
    };
    let wanted = pinned.trim_start_matches("schemathesis==");
    assert!(
        version.ends_with(&format!("version {wanted}")),
        "this test is pinned to {pinned}, and `schemathesis --version` says `{version}`: run `python3 -m pip install {pinned}`"
    );

    let root = tempfile::tempdir().unwrap();
    let production = format!(
        "  production:\n    route: {{ listen: \"127.0.0.1:{}\" }}\n    gates: {{ approval: required }}\n",
        free_port()
    );
    let repo = tiny_repo_with(root.path(), free_port(), &production);
    let config = server_yaml(root.path(), &repo, "1h");
    let token_name = "schemathesis";
    let token = create_token(root.path(), &config, "admin", token_name);
    set_secret(&config, "API_KEY", "value");
    let server = ServerProcess::start(root.path(), &config);
    // Something to read and act on: a run, a release, a deployment to
    // staging and an approval waiting for production.
    let first = git(&repo, &["rev-parse", "HEAD"]);
    wait_for(
        "the first commit to deploy",
        &server,
        Duration::from_secs(90),
        || commit_status(&server, &token, &first).filter(|c| c["status"] == "deployed"),
    );

    let seed = std::env::var("LASTMILE_SCHEMATHESIS_SEED").unwrap_or_else(|_| "20261202".into());
    let settings = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/schemathesis");
    let output = root.path().join("schemathesis.txt");
    let started = Instant::now();
    let budget = Duration::from_secs(75);
    let mut command = Command::new("schemathesis");
    command
        .arg("--config-file")
        .arg(settings.join("schemathesis.toml"))
        .arg("run")
        .arg(format!("http://{}/api/openapi.json", server.api))
        .args(["--header", &format!("Authorization: Bearer {token}")])
        .args([
            // Every check: no 5xx, answers as documented (schema, status,
            // content type, headers), requests the document forbids refused
            // and ones it allows accepted, deleted things gone, auth enforced.
            "--checks",
            "all",
            "--phases",
            "examples,coverage,fuzzing,stateful",
            "--max-examples",
            "25",
            "--max-time",
            &budget.as_secs().to_string(),
            "--request-timeout",
            "30",
            "--workers",
            "1",
            "--seed",
            &seed,
            "--generation-database",
            "none",
            "--no-color",
        ])
        .current_dir(root.path())
        .env("PYTHONPATH", &settings)
        .env("SCHEMATHESIS_HOOKS", "lastmile_hooks")
        .env("LASTMILE_FUZZ_TOKEN_NAME", token_name)
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&output).unwrap())
        .stderr(std::fs::File::options().append(true).open(&output).unwrap());
    std::os::unix::process::CommandExt::process_group(&mut command, 0);
    let mut run = Reaped(command.spawn().expect("schemathesis starts"));
    let deadline = started + budget + Duration::from_secs(90);
    let status = loop {
        if let Some(status) = run.0.try_wait().unwrap() {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "schemathesis ran past its {budget:?} budget by 90 s:\n{}",
            std::fs::read_to_string(&output).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    let report = std::fs::read_to_string(&output).unwrap_or_default();
    let summary = report
        .lines()
        .skip_while(|line| !line.contains("SUMMARY"))
        .collect::<Vec<_>>()
        .join("\n");
    eprintln!(
        "schemathesis (seed {seed}) in {:?}:\n{summary}",
        started.elapsed()
    );
    assert!(
        status.success(),
        "schemathesis found something (seed {seed}; rerun with LASTMILE_SCHEMATHESIS_SEED={seed}):\n{report}\nserver log:\n{}",
        server.log()
    );
    assert!(
        report.contains("passed") && !report.contains(" 0 generated"),
        "schemathesis ran no test case:\n{report}"
    );
    // The run was authenticated to its end (the hooks keep its token from
    // being revoked), and the server still stands.
    let me = get(server.api, "/api/v1/whoami", &token);
    assert_eq!(me["name"], token_name, "{me}");
    assert!(!server.log().contains("panicked"), "{}", server.log());
    drop(server);
}

#[test]
fn a_password_in_the_repository_url_is_never_shown() {
    let root = tempfile::tempdir().unwrap();
    // Nothing listens there: every fetch fails, and its error quotes the URL.
    let port = free_port();
    let url = format!("http://bot:tok3n@127.0.0.1:{port}/hello.git");
    let config = server_yaml(root.path(), Path::new(&url), "1h");
    let admin = create_token(root.path(), &config, "admin", "admin");
    let server = ServerProcess::start(root.path(), &config);
    let apps = wait_for(
        "the first fetch to fail",
        &server,
        Duration::from_secs(60),
        || {
            let apps = get(server.api, "/api/v1/apps", &admin);
            (!apps["apps"][0]["last_error"].is_null()).then_some(apps)
        },
    );
    let shown = format!("http://bot:***@127.0.0.1:{port}/hello.git");
    assert_eq!(apps["apps"][0]["repo"], shown.as_str(), "{apps}");
    let error = apps["apps"][0]["last_error"].as_str().unwrap();
    assert!(
        error.contains(&format!("could not clone {shown}")),
        "{error}"
    );
    let (status, _, not_yet) = call(
        server.api,
        "GET",
        "/api/v1/apps/hello/status",
        Some(&admin),
        &[],
        b"",
    );
    assert_eq!(status, 409, "{not_yet}");
    assert!(not_yet.contains(&shown), "{not_yet}");
    let log = server.log();
    assert!(
        log.contains(&shown),
        "the banner names the repository: {log}"
    );
    for text in [apps.to_string(), not_yet, log] {
        assert!(!text.contains("tok3n"), "{text}");
    }
}
