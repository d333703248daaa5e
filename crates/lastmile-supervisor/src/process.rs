//! One spawned process group: spawning, readiness, stopping, reaping.

use std::io;
use std::net::{SocketAddr, TcpListener};
use std::os::unix::process::ExitStatusExt;
use std::process::{ExitStatus, Stdio};
use std::sync::Arc;
use std::time::Duration;

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use tokio::process::{Child, Command};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::{Instant, sleep, sleep_until, timeout, timeout_at};

use crate::error::SupervisorError;
use crate::event::fmt_duration;
use crate::health;
use crate::log::{LogSink, pump};
use crate::spec::{HealthSpec, InstanceSpec};

/// How long output readers may take to drain once the group is gone.
const DRAIN_LIMIT: Duration = Duration::from_secs(1);

/// A live `sh -c command` and the group it leads.
#[derive(Debug)]
pub(crate) struct Running {
    pub(crate) child: Child,
    pub(crate) pid: u32,
    pub(crate) group: Pid,
    pub(crate) addr: SocketAddr,
    readers: Vec<JoinHandle<()>>,
}

/// How waiting for readiness ended.
#[derive(Debug)]
pub(crate) enum Readiness {
    Ready,
    Exited(String),
    TimedOut(String),
    Stopped,
}

/// Spawns `sh -c command` in its own process group on a fresh port.
pub(crate) fn spawn(spec: &InstanceSpec, log: &Arc<LogSink>) -> Result<Running, SupervisorError> {
    let port = free_port().map_err(|source| SupervisorError::Port { source })?;
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let mut command = Command::new("sh");
    command
        .arg("-c")
        .arg(&spec.command)
        .current_dir(&spec.workdir)
        .envs(&spec.env)
        // Set after spec.env so the spec cannot override them.
        .env("PORT", port.to_string())
        .env("LASTMILE_RELEASE", &spec.release_id)
        .env("LASTMILE_VERSION", &spec.version)
        .env("LASTMILE_RELEASE_VERSION", &spec.version)
        .env("LASTMILE_INSTANCE", spec.index.to_string())
        .env("LASTMILE_INSTANCE_ID", &spec.instance_id)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    let spawn_error = |source| SupervisorError::Spawn {
        instance_id: spec.instance_id.clone(),
        command: spec.command.clone(),
        source,
    };
    let mut child = command.spawn().map_err(spawn_error)?;
    let Some(pid) = child.id() else {
        // Only a reaped child has no id, and this one was never waited on.
        return Err(spawn_error(io::Error::other(
            "the shell vanished right after spawn",
        )));
    };
    let group = Pid::from_raw(pid as i32);
    let mut readers = Vec::with_capacity(2);
    if let Some(stdout) = child.stdout.take() {
        readers.push(tokio::spawn(pump(stdout, log.clone())));
    }
    if let Some(stderr) = child.stderr.take() {
        readers.push(tokio::spawn(pump(stderr, log.clone())));
    }
    Ok(Running {
        child,
        pid,
        group,
        addr,
        readers,
    })
}

/// Reserves a port by binding and releasing it; the child binds it next.
fn free_port() -> io::Result<u16> {
    let listener = TcpListener::bind(("127.0.0.1", 0))?;
    Ok(listener.local_addr()?.port())
}

impl Running {
    /// Polls the health check until `healthy_threshold` consecutive successes.
    pub(crate) async fn wait_ready(
        &mut self,
        health: &HealthSpec,
        stop: &mut watch::Receiver<bool>,
    ) -> Readiness {
        let deadline = Instant::now() + health.start_timeout;
        let needed = health.healthy_threshold.max(1);
        let fast = health.interval.min(Duration::from_millis(100));
        // The first check comes quickly so fast starters are seen fast.
        let mut delay = Duration::from_millis(50).min(fast);
        let mut successes = 0;
        let mut last_error = "no health check answered yet".to_owned();
        loop {
            let addr = self.addr;
            tokio::select! {
                biased;
                _ = stop.wait_for(|stopping| *stopping) => return Readiness::Stopped,
                status = self.child.wait() => {
                    return Readiness::Exited(match status {
                        Ok(status) => format!("{} before it became ready", exited(status)),
                        Err(error) => format!("could not be waited for: {error}"),
                    });
                }
                () = sleep_until(deadline) => {
                    return Readiness::TimedOut(format!(
                        "not ready after {}: {last_error}",
                        fmt_duration(health.start_timeout)
                    ));
                }
                result = async {
                    sleep(delay).await;
                    health::check(addr, &health.path, health.timeout).await
                } => {
                    delay = fast;
                    match result {
                        Ok(()) => {
                            successes += 1;
                            if successes >= needed {
                                return Readiness::Ready;
                            }
                        }
                        Err(error) => {
                            successes = 0;
                            last_error = error;
                        }
                    }
                }
            }
        }
    }

    /// Graceful stop: `signal` to the group, up to `grace` for the whole group to go,
    /// then `SIGKILL`; the leader is reaped before this returns.
    pub(crate) async fn terminate(mut self, signal: Signal, grace: Duration) {
        let deadline = Instant::now() + grace;
        let _ = killpg(self.group, signal);
        if timeout_at(deadline, self.child.wait()).await.is_ok() {
            // The leader is gone; give the rest of the group the remaining grace.
            while group_alive(self.group) && Instant::now() < deadline {
                sleep(Duration::from_millis(20)).await;
            }
        }
        self.reap().await;
    }

    /// Kills what is left of the group, reaps the leader and drains the output.
    pub(crate) async fn reap(mut self) {
        let _ = killpg(self.group, Signal::SIGKILL);
        let _ = self.child.wait().await;
        for mut reader in self.readers.drain(..) {
            // A daemon that left the group may hold the pipe open forever.
            if timeout(DRAIN_LIMIT, &mut reader).await.is_err() {
                reader.abort();
            }
        }
    }
}

/// True while a process of the group runs. Zombies do not count: a member
/// whose parent (the shell) already exited is reparented to init, which may
/// take a while to reap it, and it is gone for every purpose but `kill(0)`.
fn group_alive(group: Pid) -> bool {
    if killpg(group, None).is_err() {
        return false;
    }
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return true;
    };
    let wanted = group.as_raw();
    entries.flatten().any(|entry| {
        let is_pid = entry
            .file_name()
            .to_str()
            .is_some_and(|name| name.bytes().all(|byte| byte.is_ascii_digit()));
        if !is_pid {
            return false;
        }
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            return false;
        };
        stat_state(&stat)
            .is_some_and(|(state, pgrp)| pgrp == Some(wanted) && state != "Z" && state != "X")
    })
}

/// The state (`R`, `S`, `Z`, …) and process group in the text of `/proc/<pid>/stat`; `None`
/// when no state follows the command name (which may hold spaces and parentheses).
pub(crate) fn stat_state(stat: &str) -> Option<(&str, Option<i32>)> {
    // After the command name: state, ppid, pgrp, …
    let (_, rest) = stat.rsplit_once(')')?;
    let mut fields = rest.split_whitespace();
    let state = fields.next()?;
    let pgrp = fields.nth(1).and_then(|field| field.parse::<i32>().ok());
    Some((state, pgrp))
}

/// `status 3` or `signal 9 (SIGKILL)`, after "exited with" / "was killed by".
pub(crate) fn exited(status: ExitStatus) -> String {
    if let Some(code) = status.code() {
        format!("exited with status {code}")
    } else if let Some(signal) = status.signal() {
        let name = Signal::try_from(signal)
            .map(Signal::as_str)
            .unwrap_or("unknown");
        format!("was killed by signal {signal} ({name})")
    } else {
        format!("ended with {status}")
    }
}

/// `exit status 1` or `killed by signal 9 (SIGKILL)`, for crash events.
pub(crate) fn crash_status(status: io::Result<ExitStatus>) -> String {
    match status {
        Ok(status) => match status.code() {
            Some(code) => format!("exit status {code}"),
            None => exited(status).trim_start_matches("was ").to_owned(),
        },
        Err(error) => format!("could not be waited for: {error}"),
    }
}
