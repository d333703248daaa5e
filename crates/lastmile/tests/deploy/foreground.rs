//! `lastmile up` as a foreground program: a restart keeps its terminal,
//! its Ctrl-C and its control address, and a second `up` on the same state
//! directory is refused before it runs anything.

use std::io::Read;

use super::*;

/// `lastmile up` with its stdout and stderr on pipes, in its own process
/// group as a shell starts a foreground job; what reaches the pipes is
/// copied to up.log.
fn spawn_piped_up(app: &App) -> Up {
    let log = app.dir.path().join("up.log");
    let mut child = start_piped_up(app);
    let file = std::fs::File::create(&log).unwrap();
    for mut pipe in [
        Box::new(child.stdout.take().unwrap()) as Box<dyn Read + Send>,
        Box::new(child.stderr.take().unwrap()),
    ] {
        let mut file = file.try_clone().unwrap();
        std::thread::spawn(move || std::io::copy(&mut pipe, &mut file));
    }
    Up {
        child,
        log,
        state: app.dir.path().join(".lastmile"),
    }
}

/// `lastmile up --in-place` with its stdout and stderr on pipes, in its
/// own process group, as a shell starts a foreground job.
fn start_piped_up(app: &App) -> Child {
    app.command(&["up", "--in-place"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()
        .unwrap()
}

/// The control address `up.json` records.
fn control_addr(app: &App) -> SocketAddr {
    let text = std::fs::read_to_string(app.dir.path().join(".lastmile/up.json")).unwrap();
    let value: serde_json::Value = serde_json::from_str(&text).unwrap();
    value["control"].as_str().unwrap().parse().unwrap()
}

fn instance_pids(app: &App) -> Vec<i32> {
    app.status().unwrap()["instances"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|instance| instance["pid"].as_i64())
        .map(|pid| pid as i32)
        .collect()
}

/// Waits (at most 30 s) for `child` to exit.
fn wait_exit(child: &mut Child, what: &str) -> std::process::ExitStatus {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        assert!(Instant::now() < deadline, "{what} did not exit within 30 s");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// After `lastmile restart` the `up` started in the foreground is still
/// there: the new process writes to its output, the control address is the
/// one from before (and `lastmile status` answers throughout), and Ctrl-C
/// to its process group stops everything before it exits.
#[test]
fn a_restarted_foreground_up_keeps_its_terminal_its_ctrl_c_and_its_control_address() {
    let app = App::new("{ type: rolling, batch: 1, max_surge: 1 }", 1, "v1");
    let mut up = spawn_piped_up(&app);
    app.wait_serving(&up);
    let first_pid = up.child.id();
    assert_eq!(up.serving_pid(), first_pid);
    let control_before = control_addr(&app);
    let first_instances = instance_pids(&app);

    // `lastmile status` over and over while the restart runs.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let checker = {
        let stop = stop.clone();
        let dir = app.dir.path().to_path_buf();
        let data_home = app.data_home.path().to_path_buf();
        std::thread::spawn(move || {
            let (mut answered, mut failures) = (0, Vec::new());
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let output = super::support::lastmile(&dir, &data_home, &["status", "--json"])
                    .output()
                    .unwrap();
                if output.status.success() {
                    answered += 1;
                } else {
                    failures.push(String::from_utf8_lossy(&output.stderr).into_owned());
                }
            }
            (answered, failures)
        })
    };

    let answer = app.must(&["restart", "--json"]);
    let new_pid = answer["new_pid"].as_u64().unwrap() as u32;
    wait_for("the new process to serve", || up.serving_pid() == new_pid);
    wait_for("the first process to drain and stay", || {
        up.log().contains("this process stays in the foreground")
    });
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let (answered, failures) = checker.join().unwrap();
    assert!(
        failures.is_empty(),
        "lastmile status failed during the restart: {failures:#?}"
    );
    assert!(answered > 0, "lastmile status never ran during the restart");

    assert_eq!(
        control_addr(&app),
        control_before,
        "the control address changed"
    );
    assert!(
        up.child.try_wait().unwrap().is_none(),
        "the foreground up exited after the restart:\n{}",
        up.log()
    );
    for pid in &first_instances {
        assert!(
            !alive(*pid),
            "the first process's instance {pid} still runs"
        );
    }
    assert!(reachable(app.addr()));
    let log = up.log();
    assert!(
        log.contains("took over from the previous process"),
        "the new process's output did not reach the first one's stdout:\n{log}"
    );
    let instances = instance_pids(&app);
    assert!(!instances.is_empty());

    // Ctrl-C, as a terminal sends it: to the foreground process group.
    nix::sys::signal::killpg(
        nix::unistd::Pid::from_raw(first_pid as i32),
        nix::sys::signal::Signal::SIGINT,
    )
    .unwrap();
    let status = wait_exit(&mut up.child, "the foreground up");
    assert!(status.success(), "{status}:\n{}", up.log());
    // It exits last: nothing is left to wait for.
    assert!(!alive(new_pid as i32), "the new process still runs");
    for pid in &instances {
        assert!(!alive(*pid), "instance {pid} still runs after Ctrl-C");
    }
    assert!(port_free(app.addr()), "the router's port is still taken");
    assert!(port_free(control_before), "the control port is still taken");
    assert!(
        up.log().contains("stopping: draining"),
        "the stop's output did not reach the first one's stdout:\n{}",
        up.log()
    );
    drop(up);
}

/// `lastmile down` at once after `lastmile restart` reaches the process
/// serving now, not the one draining: everything stops, the foreground
/// `up` last. (The drained process used to answer it and stop nothing.)
#[test]
fn a_down_right_after_a_restart_stops_the_process_serving_now() {
    let app = App::new("{ type: rolling, batch: 1, max_surge: 1 }", 1, "v1");
    let mut up = spawn_piped_up(&app);
    app.wait_serving(&up);
    for round in 1..=3 {
        let answer = app.must(&["restart", "--json"]);
        let new_pid = answer["new_pid"].as_u64().unwrap() as u32;
        assert_eq!(
            up.serving_pid(),
            new_pid,
            "restart {round} returned before up.json named pid {new_pid}"
        );
    }
    let instances = instance_pids(&app);
    let serving = up.serving_pid();
    let down = app.lastmile(&["down"]);
    assert!(
        down.status.success(),
        "down after a restart: {}{}\nup:\n{}",
        String::from_utf8_lossy(&down.stdout),
        String::from_utf8_lossy(&down.stderr),
        up.log()
    );
    let status = wait_exit(&mut up.child, "the foreground up");
    assert!(status.success(), "{status}:\n{}", up.log());
    assert!(
        !alive(serving as i32),
        "the serving process {serving} still runs"
    );
    for pid in &instances {
        assert!(!alive(*pid), "instance {pid} still runs after down");
    }
    assert!(port_free(app.addr()), "the router's port is still taken");
    drop(up);
}

/// A second `lastmile up` on a state directory another one serves from is
/// refused before its pipeline runs, naming the running one and how to
/// reach it; a stale `up.json` and `up.lock` from a dead `up` block
/// nothing.
#[test]
fn a_second_up_is_refused_at_once_naming_the_running_one_and_a_stale_one_is_ignored() {
    let app = App::new("{ type: rolling, batch: 1, max_surge: 1 }", 1, "v1");
    let mut dead = Command::new("true").spawn().unwrap();
    let dead_pid = dead.id();
    dead.wait().unwrap();
    let state = app.dir.path().join(".lastmile");
    std::fs::create_dir_all(&state).unwrap();
    std::fs::write(
        state.join("up.json"),
        format!(r#"{{ "pid": {dead_pid}, "control": "127.0.0.1:9", "app": "hello" }}"#),
    )
    .unwrap();
    std::fs::write(state.join("up.lock"), dead_pid.to_string()).unwrap();

    let up = app.up();
    let pid = up.serving_pid();
    assert_ne!(pid, dead_pid);
    let control = control_addr(&app);
    let runs = app.must(&["runs", "--json"]).as_array().unwrap().len();
    let instances = instance_pids(&app);

    let began = Instant::now();
    let mut second = start_piped_up(&app);
    let status = wait_exit(&mut second, "the second up");
    let took = began.elapsed();
    let output = second.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        !status.success(),
        "the second up was not refused:\n{stdout}{stderr}"
    );
    assert!(
        stderr.contains(&format!(
            "`lastmile up` already runs for . (pid {pid}; control API and dashboard on http://{control}): \
             `lastmile status` shows what it serves, `lastmile down` stops it"
        )),
        "{stderr}"
    );
    assert!(stdout.is_empty(), "the refused up printed: {stdout}");
    assert!(
        took < Duration::from_secs(10),
        "refused only after {took:?}"
    );
    assert_eq!(
        app.must(&["runs", "--json"]).as_array().unwrap().len(),
        runs,
        "the refused up ran its pipeline"
    );
    assert_eq!(
        instance_pids(&app),
        instances,
        "the refused up changed the instances"
    );
    assert_eq!(up.serving_pid(), pid);
    drop(up);
}

/// Two `lastmile up`s started at the same moment on one directory: one
/// serves, the other is refused.
#[test]
fn of_two_ups_started_at_once_exactly_one_runs() {
    let app = App::new("{ type: rolling, batch: 1, max_surge: 1 }", 1, "v1");
    let mut first = app.spawn_up(&["up", "--in-place"]);
    let mut second = app
        .command(&["up", "--in-place"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()
        .unwrap();
    // Whichever took the lock serves; the other exits at once.
    let deadline = Instant::now() + Duration::from_secs(30);
    let (refused, stderr) = loop {
        if let Some(status) = second.try_wait().unwrap() {
            let mut stderr = String::new();
            second
                .stderr
                .take()
                .unwrap()
                .read_to_string(&mut stderr)
                .unwrap();
            break (status, stderr);
        }
        if let Some(status) = first.child.try_wait().unwrap() {
            // The first one lost: the second serves; stop it as a test's
            // `up` is stopped.
            let winner = Up {
                child: second,
                log: first.log.clone(),
                state: first.state.clone(),
            };
            app.wait_serving(&winner);
            let log = first.log();
            assert!(!status.success(), "{log}");
            assert!(log.contains("`lastmile up` "), "{log}");
            return;
        }
        assert!(Instant::now() < deadline, "neither up was refused");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(!refused.success(), "{stderr}");
    assert!(
        stderr.contains("`lastmile up` already runs for .")
            || stderr.contains("`lastmile up` is already starting for ."),
        "{stderr}"
    );
    app.wait_serving(&first);
    drop(first);
}
