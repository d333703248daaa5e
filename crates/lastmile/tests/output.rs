//! What people read from `up`, `deploy`, `rollback`, `status`, `watch` and
//! `proxy`, pinned by snapshots. The commands run for real: a copy of
//! examples/hello (its pipeline copies the prebuilt hello binary instead of
//! compiling it) served by a real `lastmile up` on 127.0.0.1:0 ports. What
//! differs between runs and machines (release and artifact ids, ports,
//! durations, sizes, pids, paths, times) is replaced by a placeholder.

#![allow(clippy::unwrap_used)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use regex::Regex;

mod support;
use support::{example_dir, hello_binary};

/// A temp copy of examples/hello's lastmile.yaml: the same environments and
/// service, and a pipeline that copies the prebuilt binary where the real
/// one would build it. `up` serves staging on a free port (`--listen`).
struct Example {
    dir: tempfile::TempDir,
    /// `$XDG_DATA_HOME` of the commands, where `up` keeps its secrets key.
    data_home: tempfile::TempDir,
}

impl Example {
    fn new() -> Example {
        let spec = std::fs::read_to_string(example_dir().join("lastmile.yaml")).unwrap();
        let (head, rest) = spec.split_once("pipeline:").unwrap();
        let (_, tail) = rest.split_once("artifact:").unwrap();
        let pipeline = format!(
            "pipeline:\n  steps:\n    - name: build\n      run: mkdir -p target/release && cp '{}' target/release/hello\n\n",
            hello_binary().display()
        );
        let example = Example {
            dir: tempfile::tempdir().unwrap(),
            data_home: tempfile::tempdir().unwrap(),
        };
        std::fs::write(example.spec(), format!("{head}{pipeline}artifact:{tail}")).unwrap();
        example
    }

    fn spec(&self) -> PathBuf {
        self.dir.path().join("lastmile.yaml")
    }

    fn command(&self, args: &[&str]) -> Command {
        support::lastmile(self.dir.path(), self.data_home.path(), args)
    }

    fn lastmile(&self, args: &[&str]) -> Output {
        self.command(args).output().unwrap()
    }

    /// `lastmile up --in-place` on a free port, waited for until it has
    /// printed where it serves.
    fn up(&self) -> Up {
        let log = self.dir.path().join("up.log");
        let file = std::fs::File::create(&log).unwrap();
        let child = self
            .command(&["up", "--in-place", "--listen", "127.0.0.1:0"])
            .stdout(file.try_clone().unwrap())
            .stderr(file)
            .process_group(0)
            .spawn()
            .unwrap();
        let up = Up { child, log };
        let deadline = Instant::now() + Duration::from_secs(60);
        while !up.log().contains("control API and dashboard on") {
            assert!(
                Instant::now() < deadline,
                "lastmile up did not serve within 60 s:\n{}",
                up.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        up
    }

    /// The releases the running `up` knows: `(version, id, artifact id)`.
    fn releases(&self) -> Vec<(String, String, String)> {
        let output = self.lastmile(&["status", "--json"]);
        assert!(output.status.success(), "{output:?}");
        let status: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
        status["releases"]
            .as_array()
            .unwrap()
            .iter()
            .map(|release| {
                let text = |key: &str| release[key].as_str().unwrap().to_owned();
                (text("version"), text("id"), text("artifact_id"))
            })
            .collect()
    }

    /// `lastmile ARGS` as a user sees it: the command, its exit code, its
    /// stdout and stderr, normalised.
    fn shown(&self, args: &[&str]) -> String {
        let output = self.lastmile(args);
        let text = format!(
            "$ lastmile {}\nexit: {}\n--- stdout\n{}--- stderr\n{}",
            args.join(" "),
            output.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        self.normalise(&text, &self.releases())
    }

    /// `lastmile ARGS` whose stdout is JSON, as a script reads it: pretty,
    /// with times, pids and measured figures replaced by a placeholder
    /// (by key, so a changed shape still shows), then normalised as text.
    fn shown_json(&self, args: &[&str]) -> String {
        let output = self.lastmile(args);
        assert!(output.status.success(), "{output:?}");
        let mut answer: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
        redact_volatile(&mut answer);
        let text = format!(
            "$ lastmile {}\n{}\n",
            args.join(" "),
            serde_json::to_string_pretty(&answer).unwrap()
        );
        self.normalise(&text, &self.releases())
    }

    fn normalise(&self, text: &str, releases: &[(String, String, String)]) -> String {
        let mut text = text.to_owned();
        for dir in [
            self.dir.path().canonicalize().unwrap(),
            self.dir.path().to_path_buf(),
        ] {
            text = text.replace(&dir.display().to_string(), "<dir>");
        }
        text = text.replace(&hello_binary().display().to_string(), "<hello>");
        for (version, id, artifact) in releases {
            text = text.replace(artifact, "<artifact>");
            for length in [id.len(), 12, 8] {
                text = text.replace(&id[..length], &format!("<{version}-id>"));
            }
        }
        normalise_volatile(&text)
    }
}

/// Replaces, in place, the numbers that differ on every run (times, pids,
/// durations, latencies, sizes) with `"<n>"`, and sorts every object's
/// keys; keys and the shape stay.
fn redact_volatile(value: &mut serde_json::Value) {
    let volatile = |key: &str| {
        key.ends_with("_at")
            || key.ends_with("pid")
            || key.ends_with("_ms")
            || key.ends_with("_seconds")
            || key.ends_with("bytes")
            || key == "size"
    };
    match value {
        // Keys sorted: serde_json keeps the wire order when a crate of the
        // build enables its `preserve_order`, and sorts them otherwise.
        serde_json::Value::Object(map) => {
            let mut fields: Vec<(String, serde_json::Value)> =
                std::mem::take(map).into_iter().collect();
            fields.sort_by(|a, b| a.0.cmp(&b.0));
            for (key, mut field) in fields {
                if volatile(&key) && field.is_number() {
                    field = serde_json::Value::from("<n>");
                } else {
                    redact_volatile(&mut field);
                }
                map.insert(key, field);
            }
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(redact_volatile),
        _ => {}
    }
}

/// Ports, pids, durations, sizes and times: what changes on every run.
fn normalise_volatile(text: &str) -> String {
    let rules = [
        (r"127\.0\.0\.1:[1-9]\d*", "127.0.0.1:<port>"),
        (r"pids? \d+", "pid <pid>"),
        (r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\dZ", "<time>"),
        (r"\b\d+(\.\d+)? (B|KiB|MiB|GiB)\b", "<size>"),
        (r"\b\d+ bytes\b", "<n> bytes"),
        (r"p(50|99) \d+\.\d ms", "p$1 <ms> ms"),
        (r"\b\d+m\d\ds\b|\b\d+(\.\d+)? ?(ms|s)\b", "<t>"),
    ];
    let mut text = text.to_owned();
    for (pattern, replacement) in rules {
        text = Regex::new(pattern)
            .unwrap()
            .replace_all(&text, replacement)
            .into_owned();
    }
    text
}

/// The running `lastmile up`; stopped (its whole group) on drop.
struct Up {
    child: Child,
    log: PathBuf,
}

impl Up {
    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Ctrl-C, as a user stops it: waits for it to exit; its whole output.
    fn stop(mut self) -> String {
        let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGINT).unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        while self.child.try_wait().unwrap().is_none() {
            assert!(
                Instant::now() < deadline,
                "up did not stop:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        self.log()
    }
}

impl Drop for Up {
    fn drop(&mut self) {
        let group = nix::unistd::Pid::from_raw(self.child.id() as i32);
        let _ = nix::sys::signal::killpg(group, nix::sys::signal::Signal::SIGKILL);
        let _ = self.child.wait();
    }
}

/// From a fresh `up` through a deploy that changes nothing, one that does,
/// status, a watch frame, a rollback and a refused promote, to Ctrl-C.
#[test]
fn the_deploy_commands_speak_with_one_voice() {
    let example = Example::new();
    let up = example.up();

    insta::assert_snapshot!(
        "deploy_unchanged",
        example.shown(&["deploy", "staging", "--in-place"])
    );
    let output = example.lastmile(&["deploy", "staging", "--in-place", "--json"]);
    let answer: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(answer["noop"], true, "{answer}");
    assert!(answer["deployment"].is_null(), "{answer}");

    // The same artifact with another spec is another release: v2.
    let mut spec = std::fs::read_to_string(example.spec()).unwrap();
    spec.push_str("# changed\n");
    std::fs::write(example.spec(), spec).unwrap();
    insta::assert_snapshot!(
        "deploy",
        example.shown(&["deploy", "staging", "--in-place"])
    );
    insta::assert_snapshot!("status", example.shown(&["status"]));
    insta::assert_snapshot!("status_json", example.shown_json(&["status", "--json"]));
    insta::assert_snapshot!(
        "watch",
        example.shown(&["watch", "staging", "--count", "1"])
    );
    insta::assert_snapshot!("rollback", example.shown(&["rollback", "staging"]));
    insta::assert_snapshot!(
        "promote_without_canary",
        example.shown(&["promote", "staging"])
    );

    let releases = example.releases();
    let log = up.stop();
    insta::assert_snapshot!("up", example.normalise(&log, &releases));
}

/// A run says how it ended once, with its steps counted in words.
#[test]
fn a_run_reports_its_outcome_once() {
    let example = Example::new();
    let output = example.lastmile(&["run", "--in-place"]);
    assert!(output.status.success(), "{output:?}");
    let text = String::from_utf8_lossy(&output.stdout);
    let artifact = text
        .lines()
        .find_map(|line| line.strip_prefix("[artifact] ✓ "))
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap()
        .to_owned();
    let shown = format!("$ lastmile run --in-place\n{text}").replace(&artifact, "<artifact>");
    insta::assert_snapshot!("run", example.normalise(&shown, &[]));
}

/// The first line `lastmile proxy` prints, read as it is printed (so stdout
/// must not hold it back), and what it says is where it serves.
fn proxy_first_line(proxy: &mut Child) -> String {
    let stdout = proxy.stdout.take().unwrap();
    let (sender, receiver) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let _ = BufReader::new(stdout).read_line(&mut line);
        let _ = sender.send(line);
    });
    receiver
        .recv_timeout(Duration::from_secs(30))
        .expect("lastmile proxy prints where it listens")
}

fn stop(mut proxy: Child) {
    let pid = nix::unistd::Pid::from_raw(proxy.id() as i32);
    let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
    let _ = proxy.wait();
}

/// A backend that answers one request with `ok`.
fn one_shot_backend() -> (u16, std::thread::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let backend = std::thread::spawn(move || {
        let (mut stream, _) = listener.accept().unwrap();
        let mut request = [0u8; 4096];
        let _ = stream.read(&mut request).unwrap();
        stream
            .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok")
            .unwrap();
    });
    (port, backend)
}

/// The address in `proxy listening on http://ADDR → …`.
fn listening_addr(line: &str) -> String {
    let url = line.split_whitespace().nth(3).unwrap();
    url.split_once("://").unwrap().1.to_owned()
}

#[test]
fn proxy_says_where_it_listens_with_the_port_it_got() {
    let (port, backend) = one_shot_backend();
    let to = format!("http://127.0.0.1:{port}");
    let mut proxy = Command::new(env!("CARGO_BIN_EXE_lastmile"))
        .args(["proxy", "--listen", "127.0.0.1:0", "--to", &to])
        .stdout(Stdio::piped())
        .stdin(Stdio::null())
        .spawn()
        .unwrap();
    let line = proxy_first_line(&mut proxy);
    let mut client = TcpStream::connect(listening_addr(&line)).unwrap();
    client
        .write_all(b"GET / HTTP/1.1\r\nhost: test\r\nconnection: close\r\n\r\n")
        .unwrap();
    let mut answer = String::new();
    client.read_to_string(&mut answer).unwrap();
    backend.join().unwrap();
    stop(proxy);
    assert!(answer.ends_with("ok"), "{answer}");
    insta::assert_snapshot!("proxy", normalise_volatile(&line));
}

#[test]
fn proxy_with_tls_says_https() {
    let dir = tempfile::tempdir().unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = rcgen::CertificateParams::new(vec!["localhost".to_owned()])
        .unwrap()
        .self_signed(&key)
        .unwrap();
    let (cert_file, key_file) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    std::fs::write(&cert_file, cert.pem()).unwrap();
    std::fs::write(&key_file, key.serialize_pem()).unwrap();
    let mut proxy = Command::new(env!("CARGO_BIN_EXE_lastmile"))
        .args([
            "proxy",
            "--listen",
            "127.0.0.1:0",
            "--to",
            "http://127.0.0.1:9",
        ])
        .arg("--tls-cert")
        .arg(&cert_file)
        .arg("--tls-key")
        .arg(&key_file)
        .stdout(Stdio::piped())
        .stdin(Stdio::null())
        .spawn()
        .unwrap();
    let line = proxy_first_line(&mut proxy);
    let bound = TcpStream::connect(listening_addr(&line));
    stop(proxy);
    assert!(bound.is_ok(), "{line}: {bound:?}");
    insta::assert_snapshot!("proxy_tls", normalise_volatile(&line));
}
