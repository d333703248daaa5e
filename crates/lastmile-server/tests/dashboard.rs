//! The dashboard in a real headless Chromium, against a real `lastmile
//! server` watching a real git repository: sign in, watch a run finish
//! live, approve production, roll staging back after a second commit.
//! Plain HTTP checks the login redirect, the viewer's 403 and the assets.
//!
//! A missing `/usr/bin/chromedriver` fails the test, saying what to
//! install: `scripts/test` installs chromium and chromium-driver.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use lastmile_server::Progress;
use lastmile_server::server::{Server, ServerConfig};
use lastmile_server::tokens;
use lastmile_server::web::serve;
use lastmile_store::Role;
use thirtyfour::prelude::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
const CHROMIUM: &str = "/usr/bin/chromium";

/// Server progress goes to the test's output (shown on failure).
#[derive(Debug)]
struct TestProgress;

impl Progress for TestProgress {
    fn line(&self, text: &str) {
        eprintln!("server: {text}");
    }
    fn warn(&self, text: &str) {
        eprintln!("server warning: {text}");
    }
}

/// chromedriver, killed and reaped on drop.
struct DriverProcess(Child);

impl Drop for DriverProcess {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn git(dir: &Path, args: &[&str]) {
    let status = Command::new("git")
        .args(args)
        .current_dir(dir)
        .stdout(Stdio::null())
        .status()
        .expect("git runs");
    assert!(status.success(), "git {args:?} failed in {}", dir.display());
}

const SERVER_PY: &str = r#"import http.server, os

class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = b"ok\n"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass

http.server.ThreadingHTTPServer(("127.0.0.1", int(os.environ["PORT"])), Handler).serve_forever()
"#;

/// A repository with the `demo` app; its build waits for `gate` to exist
/// (at most 30 s) so the test sees the run while it runs.
fn make_repo(repo: &Path, gate: &Path) {
    // The spec wants real ports; free ones are found by binding port 0.
    let (staging, production) = (free_port(), free_port());
    std::fs::create_dir_all(repo).expect("repo dir");
    let spec = format!(
        r#"app: demo
pipeline:
  steps:
    - name: build
      run: sh -c 'for i in $(seq 300); do [ -e {gate} ] && break; sleep 0.1; done; echo built > out.txt'
    - name: test
      run: echo ok
      needs: [build]
artifact:
  paths: [out.txt, server.py]
service:
  run: python3 server.py
  health: {{ path: /healthz, interval: 200ms, timeout: 2s }}
  stop: {{ signal: SIGTERM, grace: 2s }}
environments:
  staging:
    instances: 1
    route: {{ listen: "127.0.0.1:{staging}" }}
  production:
    instances: 1
    gates: {{ approval: required }}
    promote: manual
    route: {{ listen: "127.0.0.1:{production}" }}
"#,
        gate = gate.display()
    );
    std::fs::write(repo.join("lastmile.yaml"), spec).expect("spec");
    std::fs::write(repo.join("server.py"), SERVER_PY).expect("server.py");
    git(repo, &["init", "-q", "-b", "main"]);
    git(repo, &["config", "user.name", "Test"]);
    git(repo, &["config", "user.email", "test@example.com"]);
    git(repo, &["add", "."]);
    git(repo, &["commit", "-q", "-m", "first"]);
}

/// One HTTP/1.1 request without cookies; returns status, raw head, body.
async fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> anyhow::Result<(u16, String, Vec<u8>)> {
    let mut stream = tokio::net::TcpStream::connect(addr).await?;
    let mut request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: 0\r\n"
    );
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    stream.write_all(request.as_bytes()).await?;
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut answer)).await??;
    let split = answer
        .windows(4)
        .position(|window| window == b"\r\n\r\n")
        .context("no end of head")?;
    let head = String::from_utf8_lossy(&answer[..split]).to_string();
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .context("no status")?;
    Ok((status, head, answer[split + 4..].to_vec()))
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free port")
        .port()
}

async fn start_chromedriver() -> anyhow::Result<(DriverProcess, u16)> {
    let port = free_port();
    let child = Command::new(CHROMEDRIVER)
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .context("cannot start chromedriver")?;
    let guard = DriverProcess(child);
    let deadline = Instant::now() + Duration::from_secs(10);
    while tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .is_err()
    {
        if Instant::now() > deadline {
            bail!("chromedriver did not listen on {port} within 10 s");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok((guard, port))
}

/// The text of the first element matching `css`, if any.
async fn text_of(driver: &WebDriver, css: &str) -> Option<String> {
    let element = driver.find(By::Css(css)).await.ok()?;
    element.text().await.ok()
}

/// Reloads `url` until `css`'s text satisfies `wanted`.
async fn reload_until(
    driver: &WebDriver,
    url: &str,
    css: &str,
    what: &str,
    wanted: impl Fn(&str) -> bool,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(40);
    loop {
        driver.goto(url).await?;
        if let Some(text) = text_of(driver, css).await
            && wanted(text.trim())
        {
            return Ok(());
        }
        if Instant::now() > deadline {
            let page = driver.source().await.unwrap_or_default();
            bail!("{what}: not seen at {url} within 40 s; the page was:\n{page}");
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

struct Setup {
    addr: SocketAddr,
    base: String,
    deployer: String,
    repo: PathBuf,
    gate: PathBuf,
}

/// Everything the browser does.
async fn browse(driver: &WebDriver, setup: &Setup) -> anyhow::Result<()> {
    let base = &setup.base;
    // Sign in.
    driver.goto(format!("{base}/login")).await?;
    driver
        .find(By::Id("token"))
        .await?
        .send_keys(&setup.deployer)
        .await?;
    driver.find(By::Id("sign-in")).await?.click().await?;
    // The click returns before the navigation ends: wait for the overview.
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let source = driver.source().await?;
        if source.contains("<h1>Apps</h1>") && source.contains("signed in as") {
            break;
        }
        if Instant::now() > deadline {
            bail!("signing in did not lead to the overview:\n{source}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // The first run appears on the app page; follow it while it runs.
    let app_url = format!("{base}/apps/demo");
    reload_until(driver, &app_url, "a.run-link", "a run link", |text| {
        text == "#1"
    })
    .await?;
    driver.find(By::Css("a.run-link")).await?.click().await?;
    let deadline = Instant::now() + Duration::from_secs(15);
    let status = loop {
        if let Some(status) = text_of(driver, "#run-status").await {
            break status;
        }
        if Instant::now() > deadline {
            bail!("the run page did not open");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    if status != "running" {
        bail!("the run should still wait for the gate, but it is `{status}`");
    }
    // A marker that a full reload would lose: the page must update in place.
    driver
        .execute("window.stillTheSamePage = true;", Vec::new())
        .await?;
    std::fs::write(&setup.gate, "go").context("gate")?;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let status = text_of(driver, "#run-status").await.unwrap_or_default();
        if status == "succeeded" {
            break;
        }
        if Instant::now() > deadline {
            bail!(
                "the run page shows `{status}`, not succeeded, after 30 s:\n{}",
                driver.source().await?
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let same = driver
        .execute("return window.stillTheSamePage === true;", Vec::new())
        .await?;
    if !same.convert::<bool>()? {
        bail!("the run page was reloaded instead of refreshed in place by htmx");
    }
    let log = text_of(driver, "#step-test pre.log")
        .await
        .unwrap_or_default();
    if log.trim() != "ok" {
        bail!("the test step's log should be `ok`, is `{log}`");
    }

    // Staging gets v1; production waits for approval on the overview.
    let overview = format!("{base}/");
    reload_until(
        driver,
        &overview,
        "#pending-production",
        "production's pending approval",
        |text| text.contains("v1"),
    )
    .await?;
    reload_until(
        driver,
        &overview,
        "#env-staging .live",
        "v1 live in staging",
        |text| text == "v1",
    )
    .await?;
    driver
        .find(By::Id("approve-production"))
        .await?
        .click()
        .await?;
    // The approval leads back to the app page; it shows production going
    // live by itself (htmx refreshes the environments), with no reload.
    let deadline = Instant::now() + Duration::from_secs(15);
    while !driver.current_url().await?.as_str().ends_with("/apps/demo") {
        if Instant::now() > deadline {
            bail!("approving did not lead back to the app page");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    driver
        .execute("window.stillTheSamePage = true;", Vec::new())
        .await?;
    let deadline = Instant::now() + Duration::from_secs(40);
    loop {
        let live = text_of(driver, "#env-production .live")
            .await
            .unwrap_or_default();
        if live.trim() == "v1" {
            break;
        }
        if Instant::now() > deadline {
            bail!(
                "production does not show v1 live after 40 s:\n{}",
                driver.source().await?
            );
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let same = driver
        .execute("return window.stillTheSamePage === true;", Vec::new())
        .await?;
    if !same.convert::<bool>()? {
        bail!("the app page was reloaded instead of refreshed in place by htmx");
    }

    // A second commit goes to staging; roll it back from the app page.
    let server_py = setup.repo.join("server.py");
    std::fs::write(&server_py, format!("{SERVER_PY}# second\n")).context("edit")?;
    git(&setup.repo, &["commit", "-q", "-am", "second"]);
    reload_until(
        driver,
        &app_url,
        "#env-staging",
        "v2 live and idle in staging",
        |text| text.contains("v2") && text.contains("idle"),
    )
    .await?;
    driver
        .find(By::Id("rollback-staging"))
        .await?
        .click()
        .await?;
    let deadline = Instant::now() + Duration::from_secs(5);
    while let Err(error) = driver.accept_alert().await {
        if Instant::now() > deadline {
            bail!("no confirmation before the rollback: {error}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Let htmx's POST land before navigating away from the page.
    tokio::time::sleep(Duration::from_secs(1)).await;
    reload_until(
        driver,
        &app_url,
        "#env-staging .live",
        "staging back on v1",
        |text| text == "v1",
    )
    .await?;
    let production = text_of(driver, "#env-production .live")
        .await
        .unwrap_or_default();
    if production != "v1" {
        bail!("production should stay on v1, shows `{production}`");
    }
    no_javascript(setup).await
}

/// What a browser without JavaScript gets: the confirmation page before a
/// rollback, a finished run's page without live refresh.
async fn no_javascript(setup: &Setup) -> anyhow::Result<()> {
    let bearer = format!("Bearer {}", setup.deployer);
    let auth = [("Authorization", bearer.as_str())];
    let (status, _, body) = http(
        setup.addr,
        "GET",
        "/apps/demo/environments/staging/rollback",
        &auth,
    )
    .await?;
    let body = String::from_utf8_lossy(&body);
    if status != 200
        || !body.contains("Roll staging back?")
        || !body.contains(r#"method="post" action="/apps/demo/environments/staging/rollback""#)
    {
        bail!("the rollback confirmation page should ask with a POST form, got {status}:\n{body}");
    }
    let (status, _, body) = http(setup.addr, "GET", "/apps/demo/runs/1", &auth).await?;
    let body = String::from_utf8_lossy(&body);
    if status != 200 || body.contains("hx-trigger") || body.contains("http-equiv") {
        bail!("a finished run's page should not refresh, got {status}:\n{body}");
    }
    let (status, _, body) =
        http(setup.addr, "GET", "/apps/demo/runs/1?fragment=logs", &auth).await?;
    let body = String::from_utf8_lossy(&body);
    if status != 200 || !body.trim_start().starts_with("<div id=\"run-body\"") {
        bail!("?fragment=logs should answer only the run's live part, got {status}:\n{body}");
    }
    Ok(())
}

/// The checks that need no browser.
async fn plain_http(addr: SocketAddr, viewer: &str) -> anyhow::Result<()> {
    let (status, head, _) = http(addr, "GET", "/", &[]).await?;
    if status != 303 || !head.to_ascii_lowercase().contains("location: /login") {
        bail!("GET / without a cookie should redirect to /login, got:\n{head}");
    }
    let bearer = format!("Bearer {viewer}");
    let (status, _, body) = http(
        addr,
        "POST",
        "/apps/demo/environments/production/approve",
        &[("Authorization", &bearer)],
    )
    .await?;
    if status != 403 || !String::from_utf8_lossy(&body).contains("needs deployer") {
        bail!("a viewer's approve should be a 403 page, got {status}");
    }
    let (status, _, _) = http(
        addr,
        "POST",
        "/login",
        &[("Content-Type", "application/x-www-form-urlencoded")],
    )
    .await?;
    if status < 400 {
        bail!("POST /login without a token must not sign in, got {status}");
    }
    let (status, head, body) = http(addr, "GET", "/assets/htmx.min.js", &[]).await?;
    let vendored = std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join("assets/htmx.min.js"))?;
    if status != 200 || body != vendored || !head.contains("max-age=31536000") {
        bail!("htmx.min.js should be served as vendored with a long cache, got {status}:\n{head}");
    }
    let (status, _, body) = http(addr, "GET", "/assets/style.css", &[]).await?;
    if status != 200 || body.is_empty() {
        bail!("style.css should be served, got {status}");
    }
    Ok(())
}

/// The vendored htmx matches the sha256 written beside it.
#[test]
fn vendored_htmx_matches_its_sha256() {
    let assets = Path::new(env!("CARGO_MANIFEST_DIR")).join("assets");
    let output = Command::new("sha256sum")
        .arg("htmx.min.js")
        .current_dir(&assets)
        .output()
        .expect("sha256sum runs");
    let written = std::fs::read_to_string(assets.join("htmx.min.js.sha256")).expect("sha256 file");
    assert_eq!(
        String::from_utf8_lossy(&output.stdout).trim(),
        written.trim()
    );
}

fn pid_alive(pid: i32) -> bool {
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None).is_ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_drives_a_release_in_a_browser() {
    assert!(
        Path::new(CHROMEDRIVER).exists() && Path::new(CHROMIUM).exists(),
        "{CHROMEDRIVER} or {CHROMIUM} is missing: run the suite with scripts/test, which \
         installs them, or apt-get install -y chromium chromium-driver"
    );
    let dir = tempfile::tempdir().expect("temp dir");
    let repo = dir.path().join("repo");
    let gate = dir.path().join("gate");
    make_repo(&repo, &gate);
    let yaml = format!(
        "listen: 127.0.0.1:0\nstate_dir: {}\napps:\n  - name: demo\n    repo: {}\n    poll_interval: 200ms\n",
        dir.path().join("state").display(),
        repo.display()
    );
    let config = ServerConfig::parse("server.yaml", &yaml, dir.path()).expect("server.yaml parses");
    let server = Server::open(config, Arc::new(TestProgress)).expect("server opens");
    let (_, deployer) = tokens::create(server.store().as_ref(), "dana", Role::Deployer, "test")
        .expect("deployer token");
    let (_, viewer) =
        tokens::create(server.store().as_ref(), "vic", Role::Viewer, "test").expect("viewer token");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let serving = tokio::spawn(serve(server.clone(), listener, async move {
        let _ = stopped.await;
    }));

    let plain = plain_http(addr, &viewer).await;

    let (driver_process, port) = start_chromedriver().await.expect("chromedriver starts");
    let mut caps = DesiredCapabilities::chrome();
    for arg in [
        "--headless=new",
        "--no-sandbox",
        "--disable-dev-shm-usage",
        "--disable-gpu",
    ] {
        caps.add_arg(arg).expect("chrome arg");
    }
    caps.set_binary(CHROMIUM).expect("chrome binary");
    let driver = WebDriver::new(format!("http://127.0.0.1:{port}"), caps)
        .await
        .expect("a chromium session");
    let setup = Setup {
        addr,
        base: format!("http://{addr}"),
        deployer,
        repo,
        gate,
    };
    let browsed = tokio::time::timeout(Duration::from_secs(80), browse(&driver, &setup)).await;
    let _ = driver.quit().await;
    drop(driver_process);

    // The rollback clicked in the browser is in the event log with who.
    let events = server
        .app_store("demo")
        .ok()
        .and_then(|store| lastmile_store::Store::list_events(store.as_ref(), 0, 10_000).ok())
        .unwrap_or_default();
    let asked = events
        .iter()
        .any(|event| event.kind == "rollback.requested" && event.actor == "dana");

    // The instances that run now must be gone after the shutdown.
    let pids: Vec<i32> = match server.controller("demo") {
        Ok(controller) => controller
            .status(Duration::from_secs(1))
            .await
            .ok()
            .map(|status| status.instances)
            .unwrap_or_default()
            .iter()
            .filter_map(|instance| instance.pid)
            .filter_map(|pid| i32::try_from(pid).ok())
            .collect(),
        Err(_) => Vec::new(),
    };
    let _ = stop.send(());
    let served = tokio::time::timeout(Duration::from_secs(30), serving).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while pids.iter().any(|pid| pid_alive(*pid)) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    plain.expect("plain HTTP checks");
    browsed
        .expect("the browser steps finish within 80 s")
        .expect("the browser steps");
    assert!(
        asked,
        "the dashboard's rollback is recorded as rollback.requested by dana"
    );
    served
        .expect("serve returns within 30 s of the shutdown signal")
        .expect("serve task")
        .expect("serve ends cleanly");
    assert!(
        !pids.is_empty(),
        "instances should have been running before the shutdown"
    );
    let alive: Vec<&i32> = pids.iter().filter(|pid| pid_alive(**pid)).collect();
    assert!(
        alive.is_empty(),
        "instances still running after the shutdown: {alive:?}"
    );
}
