//! How `lastmile` fits a shell: completion scripts, man pages, a closed
//! stdout (`lastmile runs | head -1`) and instance logs, end to end on a
//! real `lastmile up` of the hello example.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;
use std::io::Write;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

mod support;
use support::{free_port, hello_binary};

fn lastmile(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_lastmile"))
        .args(args)
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// The subcommands `lastmile --help` lists (the generated `help` left out).
fn subcommands() -> Vec<String> {
    let help = text(&lastmile(&["--help"]).stdout);
    let listing = help
        .split("Commands:")
        .nth(1)
        .and_then(|rest| rest.split("\n\n").next())
        .unwrap();
    // Names are indented by two spaces; wrapped descriptions by more.
    let names: Vec<String> = listing
        .lines()
        .filter(|line| line.starts_with("  ") && !line.starts_with("   "))
        .filter_map(|line| line.split_whitespace().next())
        .filter(|name| *name != "help")
        .map(str::to_string)
        .collect();
    assert!(names.len() > 20, "{help}");
    names
}

#[test]
fn completion_scripts_name_every_subcommand() {
    let names = subcommands();
    for shell in ["bash", "zsh", "fish", "elvish", "powershell"] {
        let output = lastmile(&["completions", shell]);
        assert!(output.status.success(), "{}", text(&output.stderr));
        let script = text(&output.stdout);
        for name in &names {
            assert!(script.contains(name.as_str()), "{shell} lacks {name}");
        }
        if shell == "bash" {
            let mut check = Command::new("bash")
                .arg("-n")
                .stdin(Stdio::piped())
                .spawn()
                .unwrap();
            check
                .stdin
                .take()
                .unwrap()
                .write_all(script.as_bytes())
                .unwrap();
            assert!(check.wait().unwrap().success(), "bash -n rejects it");
        }
    }
    let help = text(&lastmile(&["completions", "--help"]).stdout);
    assert!(
        help.contains(
            "lastmile completions bash > ~/.local/share/bash-completion/completions/lastmile"
        ),
        "{help}"
    );
}

/// Leaf commands as the man pages name them: `up`, `flag list`, … (a page
/// whose name is the start of another's is a group such as `flag`).
fn man_page_commands(dir: &Path) -> Vec<String> {
    let stems: BTreeSet<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().into_string().unwrap())
        .filter_map(|name| Some(name.strip_suffix(".1")?.to_string()))
        .collect();
    stems
        .iter()
        .filter(|stem| {
            !stems
                .iter()
                .any(|other| other.starts_with(&format!("{stem}-")))
        })
        .filter_map(|stem| stem.strip_prefix("lastmile-"))
        .map(|command| command.replace('-', " "))
        .collect()
}

#[test]
fn man_pages_cover_every_subcommand() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("man1");
    let output = lastmile(&["man", "--dir", out.to_str().unwrap()]);
    assert!(output.status.success(), "{}", text(&output.stderr));
    let mut pages = vec!["lastmile.1".to_string()];
    for name in subcommands() {
        pages.push(format!("lastmile-{name}.1"));
    }
    pages.extend(["lastmile-flag-list.1", "lastmile-token-create.1"].map(String::from));
    for page in &pages {
        let roff = std::fs::read_to_string(out.join(page))
            .unwrap_or_else(|error| panic!("{page}: {error}"));
        assert!(
            roff.lines().any(|line| line.starts_with(".TH ")),
            "{page} has no .TH title line"
        );
    }
    let printed = text(&lastmile(&["man"]).stdout);
    assert_eq!(
        printed,
        std::fs::read_to_string(out.join("lastmile.1")).unwrap()
    );
    let count = std::fs::read_dir(&out).unwrap().count();
    assert!(text(&output.stdout).contains(&format!("wrote {count} man pages")));
}

/// The hello example in a temp dir: its pipeline copies the prebuilt binary
/// (building it again in every test would take a minute); one staging
/// instance, one flag.
struct Hello {
    dir: tempfile::TempDir,
    /// `$XDG_DATA_HOME` of the commands, where `up` keeps its secrets key.
    data_home: tempfile::TempDir,
    addr: SocketAddr,
}

impl Hello {
    fn new() -> Hello {
        let addr = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let hello = Hello {
            dir: tempfile::tempdir().unwrap(),
            data_home: tempfile::tempdir().unwrap(),
            addr,
        };
        hello.set_version("v1");
        hello
    }

    fn set_version(&self, version: &str) {
        let spec = format!(
            r#"app: hello
pipeline:
  steps:
    - name: build
      run: cp '{binary}' hello
artifact:
  paths: [hello]
service:
  run: ./hello
  env: {{ HELLO_VERSION: "{version}" }}
  health: {{ path: /healthz, interval: 200ms, timeout: 1s, start_timeout: 10s }}
  stop: {{ signal: SIGTERM, grace: 5s }}
flags:
  beta:
    default: "off"
environments:
  staging:
    instances: 1
    strategy: rolling
    route: {{ listen: "{addr}" }}
"#,
            binary = hello_binary().display(),
            addr = self.addr
        );
        std::fs::write(self.dir.path().join("lastmile.yaml"), spec).unwrap();
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn command(&self, args: &[&str]) -> Command {
        support::lastmile(self.path(), self.data_home.path(), args)
    }

    fn lastmile(&self, args: &[&str]) -> Output {
        self.command(args).output().unwrap()
    }

    /// Starts `lastmile up --in-place` in its own process group, stdout to
    /// `stdout`, stderr in up.log; waits until staging serves.
    fn up(&self, stdout: Stdio) -> Up {
        let log = self.path().join("up.log");
        let child = self
            .command(&["up", "--in-place"])
            .stdout(stdout)
            .stderr(std::fs::File::create(&log).unwrap())
            .process_group(0)
            .spawn()
            .unwrap();
        let up = Up { child, log };
        self.wait_until_serving(&up);
        up
    }

    fn wait_until_serving(&self, up: &Up) {
        wait_for("lastmile up serves staging", || {
            let status = self.lastmile(&["status", "--json"]);
            status.status.success()
                && text(&status.stdout).contains("\"current_release\": \"")
                && TcpStream::connect(self.addr).is_ok()
                || up.exited()
        });
        assert!(!up.exited(), "lastmile up exited:\n{}", up.stderr());
    }
}

/// A `lastmile up` the test started; its process group is killed on drop,
/// whatever happened (`lastmile down` stops it before that when all goes
/// well).
struct Up {
    child: Child,
    log: PathBuf,
}

impl Up {
    fn stderr(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn exited(&self) -> bool {
        // The group leader's /proc entry: gone or a zombie once it exited.
        std::fs::read_to_string(format!("/proc/{}/stat", self.child.id()))
            .map_or(true, |stat| stat.contains(") Z "))
    }
}

impl Drop for Up {
    fn drop(&mut self) {
        let group = nix::unistd::Pid::from_raw(self.child.id() as i32);
        let _ = nix::sys::signal::killpg(group, nix::sys::signal::Signal::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(15);
        while !self.exited() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = nix::sys::signal::killpg(group, nix::sys::signal::Signal::SIGKILL);
        let _ = self.child.wait();
    }
}

/// Polls `condition` every 50 ms for up to 30 s.
fn wait_for(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !condition() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The write end of a pipe whose read end is already closed: every write
/// fails with EPIPE, as under `| head` once head has exited.
fn closed_stdout() -> Stdio {
    let (reader, writer) = nix::unistd::pipe().unwrap();
    drop(reader);
    Stdio::from(writer)
}

/// Runs `command` with a closed stdout; fails the test when it does not
/// end within 60 s (a follower that never notices) or panicked. Returns its
/// exit code and stderr.
fn run_with_closed_stdout(mut command: Command, what: &str) -> (i32, String) {
    let mut child = command
        .stdout(closed_stdout())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("`lastmile {what}` did not stop with a closed stdout");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let output = child.wait_with_output().unwrap();
    let stderr = text(&output.stderr);
    assert!(
        !stderr.contains("panicked") && !stderr.contains("Broken pipe"),
        "`lastmile {what}` with a closed stdout:\n{stderr}"
    );
    (output.status.code().unwrap_or(-1), stderr)
}

/// Runs a long-running command (`proxy`, `server`) with a closed stdout
/// until it accepts connections on `port`, then stops it with Ctrl-C.
fn serve_with_closed_stdout(mut command: Command, port: u16, what: &str) -> i32 {
    let mut child = command
        .stdout(closed_stdout())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while TcpStream::connect(("127.0.0.1", port)).is_err() && child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("`lastmile {what}` did not listen on {port} within 30 s");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let pid = nix::unistd::Pid::from_raw(child.id() as i32);
    let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGINT);
    let output = child.wait_with_output().unwrap();
    let stderr = text(&output.stderr);
    assert!(!stderr.contains("panicked"), "`lastmile {what}`:\n{stderr}");
    output.status.code().unwrap_or(-1)
}

/// What a row needs done before it runs.
#[derive(Clone, Copy, PartialEq)]
enum Before {
    Nothing,
    /// Start `lastmile up`, its stdout closed too.
    StartUp,
    /// Change the spec on disk, so that a deploy has something to do.
    NewVersion,
}

use Before::{NewVersion, Nothing, StartUp};

/// Every command, in an order that gives each the state it reports on,
/// with the exit status it has with an open stdout: a closed one changes
/// nothing but the output (`token create` excepted: its token unseen is an
/// error). `up`, `proxy` and `server` run the same way, in the test itself.
/// A subcommand with no row here fails the test.
const ROWS: &[(&str, i32, Before)] = &[
    ("--help", 0, Nothing),
    ("--version", 0, Nothing),
    ("help run", 0, Nothing),
    ("completions bash", 0, Nothing),
    ("completions zsh", 0, Nothing),
    ("completions fish", 0, Nothing),
    ("completions elvish", 0, Nothing),
    ("completions powershell", 0, Nothing),
    ("man", 0, Nothing),
    ("check", 0, Nothing),
    ("check --json", 0, Nothing),
    ("run --in-place", 0, Nothing),
    ("run --in-place --json", 0, Nothing),
    ("runs", 0, Nothing),
    ("runs --json", 0, Nothing),
    ("logs last", 0, Nothing),
    ("logs last build --json", 0, Nothing),
    ("artifacts", 0, Nothing),
    ("artifacts --json", 0, Nothing),
    ("status", 0, StartUp),
    ("status --json", 0, Nothing),
    ("logs --instance staging", 0, Nothing),
    ("logs --instance staging --follow", 0, Nothing),
    ("watch staging --count 3", 0, Nothing),
    ("watch staging", 0, Nothing),
    ("events", 0, Nothing),
    ("events --json", 0, Nothing),
    ("events --follow", 0, Nothing),
    ("dora", 0, Nothing),
    ("dora --json", 0, Nothing),
    ("flag list", 0, Nothing),
    ("flag list --json", 0, Nothing),
    ("flag disable beta", 0, Nothing),
    ("flag enable beta", 0, Nothing),
    ("flag set beta on", 0, Nothing),
    ("flag rollout beta on=10 off=90", 0, Nothing),
    ("flag reset beta", 0, Nothing),
    ("deploy staging --in-place", 0, Nothing),
    ("promote staging", 2, Nothing),
    ("abort staging", 2, Nothing),
    ("approve staging", 2, Nothing),
    ("deploy staging --in-place --json", 0, NewVersion),
    ("rollback staging", 0, Nothing),
    ("restart", 0, Nothing),
    ("down", 0, Nothing),
    (
        "token create --role admin --name ci --config server.yaml",
        2,
        Nothing,
    ),
    ("token list --config server.yaml", 0, Nothing),
    ("token list --json --config server.yaml", 0, Nothing),
    ("token revoke ci --config server.yaml", 0, Nothing),
    // server.yaml has no apps, so these refuse (`secret set` before it reads stdin).
    ("secret set hello API_KEY --config server.yaml", 2, Nothing),
    ("secret list hello --config server.yaml", 0, Nothing),
    (
        "secret delete hello API_KEY --config server.yaml",
        2,
        Nothing,
    ),
];

#[test]
fn a_closed_stdout_never_panics_nor_changes_the_exit_status() {
    let hello = Hello::new();
    let server_port = free_port();
    std::fs::write(
        hello.path().join("server.yaml"),
        format!("listen: 127.0.0.1:{server_port}\napps: []\n"),
    )
    .unwrap();
    let mut covered: BTreeSet<String> = ["up", "proxy", "server"].map(String::from).into();
    let mut up: Option<Up> = None;
    for (args, expected, before) in ROWS {
        let words: Vec<&str> = args.split(' ').collect();
        covered.insert(words[0].to_string());
        covered.insert(words[..2.min(words.len())].join(" "));
        match before {
            StartUp => up = Some(hello.up(closed_stdout())),
            NewVersion => hello.set_version("v2"),
            Nothing => {}
        }
        let (code, stderr) = run_with_closed_stdout(hello.command(&words), args);
        assert_eq!(
            code,
            *expected,
            "exit status of `lastmile {args}`; its stderr:\n{stderr}\n`lastmile up` (pid {}):\n{}",
            up.as_ref().map_or(0, |up| up.child.id()),
            up.as_ref().map(Up::stderr).unwrap_or_default()
        );
        if *args == "restart" {
            wait_for("the restarted `lastmile up` serves", || {
                hello.lastmile(&["status", "--json"]).status.success()
            });
        }
    }
    let mut up = up.take().unwrap();
    assert_eq!(up.child.wait().unwrap().code(), Some(0), "{}", up.stderr());
    assert!(
        !up.stderr().contains("panicked"),
        "lastmile up:\n{}",
        up.stderr()
    );

    let proxy_port = free_port();
    let proxy = hello.command(&[
        "proxy",
        "--listen",
        &format!("127.0.0.1:{proxy_port}"),
        "--to",
        &format!("http://{}", hello.addr),
    ]);
    assert_eq!(serve_with_closed_stdout(proxy, proxy_port, "proxy"), 0);
    let server = hello.command(&["server", "--config", "server.yaml"]);
    assert_eq!(serve_with_closed_stdout(server, server_port, "server"), 0);

    for command in man_pages(&hello) {
        assert!(
            covered.contains(&command),
            "`lastmile {command}` has no row in ROWS: add one"
        );
    }
}

fn man_pages(hello: &Hello) -> Vec<String> {
    let dir = hello.path().join("man1");
    let output = hello.lastmile(&["man", "--dir", dir.to_str().unwrap()]);
    assert!(output.status.success());
    man_page_commands(&dir)
}

#[test]
fn instance_logs_show_the_app_output_follow_it_and_outlive_up() {
    let hello = Hello::new();
    let up = hello.up(Stdio::null());
    let status = hello.lastmile(&["status", "--json"]);
    let status: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap();
    let id = status["instances"][0]["instance_id"]
        .as_str()
        .unwrap()
        .to_string();

    let output = hello.lastmile(&["logs", "--instance", &id]);
    assert!(output.status.success(), "{}", text(&output.stderr));
    assert!(
        text(&output.stdout).contains("hello v1 listening on port"),
        "{}",
        text(&output.stdout)
    );
    let by_environment = text(&hello.lastmile(&["logs", "--instance", "staging"]).stdout);
    assert!(
        by_environment.contains(&format!("[{id}] hello v1 listening on port")),
        "{by_environment}"
    );

    let run_follow = hello.lastmile(&["logs", "last", "--follow"]);
    assert_eq!(run_follow.status.code(), Some(2));
    assert!(text(&run_follow.stderr).contains("add --instance ID"));

    let unknown = hello.lastmile(&["logs", "--instance", "staging.nope.0"]);
    assert_eq!(unknown.status.code(), Some(2));
    let error = text(&unknown.stderr);
    assert!(
        error.contains("no instance `staging.nope.0`") && error.contains(&id),
        "{error}"
    );

    // --follow prints the output so far, then what the app writes later:
    // its stop lines, which `lastmile down` makes it write.
    let follow_log = hello.path().join("follow.log");
    let mut follow = hello
        .command(&["logs", "--instance", &id, "--follow"])
        .stdout(std::fs::File::create(&follow_log).unwrap())
        .spawn()
        .unwrap();
    let followed = || std::fs::read_to_string(&follow_log).unwrap_or_default();
    wait_for("--follow shows the start-up line", || {
        followed().contains("listening on port")
    });
    let down = hello.lastmile(&["down"]);
    assert!(down.status.success(), "{}", text(&down.stderr));
    wait_for("--follow shows the line written at stop", || {
        followed().contains("hello v1: SIGTERM, draining")
    });
    let _ = follow.kill();
    let _ = follow.wait();
    drop(up);

    let after = hello.lastmile(&["logs", "--instance", &id]);
    assert!(after.status.success(), "{}", text(&after.stderr));
    assert!(
        text(&after.stdout).contains("hello v1: stopped"),
        "{}",
        text(&after.stdout)
    );
}
