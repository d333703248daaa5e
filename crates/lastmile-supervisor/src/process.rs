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
use crate::health::{self, ProbeFailure};
use crate::log::{LogSink, pump};
use crate::not_ready::{NotReady, NotReadyEnd};
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
    /// The process ended by itself before it was ready.
    Exited {
        how: String,
        after: Duration,
        probing: Probing,
    },
    /// `start_timeout` passed.
    TimedOut {
        probing: Probing,
    },
    /// A stop was requested first.
    Stopped {
        after: Duration,
        probing: Probing,
    },
}

/// What the readiness probes of one process saw.
#[derive(Debug, Default, Clone)]
pub(crate) struct Probing {
    pub(crate) probes: u32,
    pub(crate) last_failure: Option<ProbeFailure>,
    pub(crate) failure_streak: u32,
    pub(crate) passes: u32,
}

impl Probing {
    fn record(&mut self, result: Result<(), ProbeFailure>) {
        self.probes += 1;
        match result {
            Ok(()) => {
                self.passes += 1;
                self.failure_streak = 0;
            }
            Err(failure) => {
                self.passes = 0;
                if self.failure_streak > 0 && self.last_failure.as_ref() == Some(&failure) {
                    self.failure_streak += 1;
                } else {
                    self.failure_streak = 1;
                    self.last_failure = Some(failure);
                }
            }
        }
    }
}

impl Readiness {
    /// The failure as a user reads it; `None` when the process became ready.
    pub(crate) fn not_ready(
        self,
        spec: &InstanceSpec,
        addr: SocketAddr,
        log: &LogSink,
    ) -> Option<NotReady> {
        let (end, probing) = match self {
            Readiness::Ready => return None,
            Readiness::Exited {
                how,
                after,
                probing,
            } => (NotReadyEnd::Exited { how, after }, probing),
            Readiness::TimedOut { probing } => (
                NotReadyEnd::TimedOut {
                    limit: spec.health.start_timeout,
                },
                probing,
            ),
            Readiness::Stopped { after, probing } => (NotReadyEnd::Stopped { after }, probing),
        };
        let recent = log.recent();
        Some(NotReady {
            instance_id: spec.instance_id.clone(),
            addr,
            path: spec.health.path.clone(),
            interval: spec.health.interval,
            healthy_threshold: spec.health.healthy_threshold.max(1),
            probes: probing.probes,
            last_failure: probing.last_failure,
            failure_streak: probing.failure_streak,
            passes: probing.passes,
            end,
            output: recent.lines.into_iter().collect(),
            probe_lines: recent.probe_lines,
        })
    }
}

/// Spawns `sh -c command` in its own process group on a fresh port.
pub(crate) fn spawn(spec: &InstanceSpec, log: &Arc<LogSink>) -> Result<Running, SupervisorError> {
    let port = free_port().map_err(|source| SupervisorError::Port { source })?;
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let mut command = Command::new("sh");
    command
        .arg("-c")
        .arg(shell_command(&spec.command))
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
    log.begin_process();
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
    /// Probes the health check every `interval` (the first one `interval` after the spawn, so
    /// a start-up sees no burst of probes) until `healthy_threshold` consecutive passes.
    pub(crate) async fn wait_ready(
        &mut self,
        health: &HealthSpec,
        stop: &mut watch::Receiver<bool>,
    ) -> Readiness {
        let started = Instant::now();
        let deadline = started + health.start_timeout;
        let needed = health.healthy_threshold.max(1);
        let mut next = started + health.interval;
        let mut probing = Probing::default();
        loop {
            let addr = self.addr;
            tokio::select! {
                biased;
                _ = stop.wait_for(|stopping| *stopping) => {
                    return Readiness::Stopped { after: started.elapsed(), probing };
                }
                status = self.child.wait() => {
                    let how = match status {
                        Ok(status) => exited(status),
                        Err(error) => format!("could not be waited for ({error})"),
                    };
                    return Readiness::Exited { how, after: started.elapsed(), probing };
                }
                () = sleep_until(deadline) => return Readiness::TimedOut { probing },
                result = async {
                    sleep_until(next).await;
                    health::check(addr, &health.path, health.timeout).await
                } => {
                    // Probe starts stay `interval` apart even when a probe takes longer.
                    next = (next + health.interval).max(Instant::now());
                    probing.record(result);
                    if probing.passes >= needed {
                        return Readiness::Ready;
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
pub(crate) fn group_alive(group: Pid) -> bool {
    if killpg(group, None).is_err() {
        return false;
    }
    let Some(processes) = processes() else {
        return true;
    };
    let wanted = group.as_raw();
    processes
        .iter()
        .any(|process| process.group == wanted && process.running())
}

/// True while process `pid` runs (a zombie counts as gone).
pub fn process_running(pid: u32) -> bool {
    let Ok(raw) = i32::try_from(pid) else {
        return false;
    };
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| parse_stat(raw, &stat))
        .is_some_and(|process| process.running())
}

/// True while a process of group `group` runs (zombies do not count), e.g. an instance's
/// group after the lastmile that led it exited.
pub fn group_running(group: u32) -> bool {
    i32::try_from(group).is_ok_and(|group| group > 1 && group_alive(Pid::from_raw(group)))
}

/// One process as `/proc/<pid>/stat` describes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ProcessEntry {
    pub(crate) pid: i32,
    pub(crate) parent: i32,
    pub(crate) group: i32,
    /// `R`, `S`, `Z`, …
    pub(crate) state: char,
}

impl ProcessEntry {
    /// Neither a zombie nor dead.
    pub(crate) fn running(&self) -> bool {
        !matches!(self.state, 'Z' | 'X' | 'x')
    }
}

/// Every process visible in `/proc`; `None` when `/proc` cannot be read.
pub(crate) fn processes() -> Option<Vec<ProcessEntry>> {
    let entries = std::fs::read_dir("/proc").ok()?;
    Some(
        entries
            .flatten()
            .filter_map(|entry| {
                let pid: i32 = entry.file_name().to_str()?.parse().ok()?;
                let stat = std::fs::read_to_string(entry.path().join("stat")).ok()?;
                parse_stat(pid, &stat)
            })
            .collect(),
    )
}

/// The state, parent and group in the text of `/proc/<pid>/stat`; `None` when they do not
/// follow the command name (which may hold spaces and parentheses).
pub(crate) fn parse_stat(pid: i32, stat: &str) -> Option<ProcessEntry> {
    // After the command name: state, ppid, pgrp, …
    let (_, rest) = stat.rsplit_once(')')?;
    let mut fields = rest.split_whitespace();
    let state = fields.next()?.chars().next()?;
    let parent = fields.next()?.parse().ok()?;
    let group = fields.next()?.parse().ok()?;
    Some(ProcessEntry {
        pid,
        parent,
        group,
        state,
    })
}

/// The shell text run for `command`: a simple command gets `exec ` in front, so the app
/// itself leads the process group (gets the signals first-hand, and its pid is the one
/// lastmile reports) instead of a shell waiting for it. Anything the prefix could change —
/// lists, pipes, redirections, expansions of globs, compound commands, builtins, variable
/// assignments — runs as written.
pub(crate) fn shell_command(command: &str) -> String {
    const SPECIAL: &[char] = &[
        ';', '&', '|', '<', '>', '(', ')', '`', '\n', '\r', '{', '}', '*', '?', '[', ']', '!', '#',
        '~', '\\',
    ];
    // Not worth an `exec`: builtins and keywords that are not programs, or that change the
    // shell itself.
    const NOT_A_PROGRAM: &[&str] = &[
        "exec", "cd", "export", "set", "unset", ".", "source", "eval", "alias", "read", "shift",
        "trap", "wait", "exit", "return", "umask", "ulimit", "readonly", "local", "command",
        "type", "times", "if", "then", "else", "elif", "fi", "case", "esac", "for", "while",
        "until", "do", "done", "in", "function", "select", "time",
    ];
    let trimmed = command.trim();
    let Some(first) = trimmed.split_whitespace().next() else {
        return command.to_owned();
    };
    let simple = !trimmed.contains(SPECIAL)
        && !first.contains('=')
        && !first.starts_with(['\'', '"', '$'])
        && !NOT_A_PROGRAM.contains(&first);
    if simple {
        format!("exec {trimmed}")
    } else {
        command.to_owned()
    }
}

/// The app's main process in the group led by `leader`: the leader itself once the shell
/// exec'd the app; else the shell's only child, or among several children the one that
/// listens on `port`. `None` when that cannot be told (or the group is gone).
pub(crate) fn main_pid(leader: u32, shell_command: &str, port: u16) -> Option<u32> {
    let cmdline = std::fs::read(format!("/proc/{leader}/cmdline")).ok()?;
    if cmdline.is_empty() {
        // A zombie: the leader has exited.
        return None;
    }
    let shell = [b"sh".as_slice(), b"-c", shell_command.as_bytes(), b""].join(&0u8);
    if cmdline != shell {
        return Some(leader);
    }
    let leader = i32::try_from(leader).ok()?;
    let children: Vec<i32> = processes()?
        .into_iter()
        .filter(|process| process.parent == leader && process.running())
        .map(|process| process.pid)
        .collect();
    match children.as_slice() {
        [] => None,
        [only] => u32::try_from(*only).ok(),
        several => {
            let sockets = listening_sockets(port);
            let mut owners = several
                .iter()
                .filter(|pid| owns_any_socket(**pid, &sockets));
            match (owners.next(), owners.next()) {
                (Some(owner), None) => u32::try_from(*owner).ok(),
                _ => None,
            }
        }
    }
}

/// Inodes of the sockets listening on `port` (IPv4 and IPv6).
fn listening_sockets(port: u16) -> Vec<u64> {
    ["/proc/net/tcp", "/proc/net/tcp6"]
        .iter()
        .filter_map(|path| std::fs::read_to_string(path).ok())
        .flat_map(|table| listening_inodes(&table, port))
        .collect()
}

/// In the text of `/proc/net/tcp`, the inodes of sockets in state `LISTEN` (0A) on `port`.
pub(crate) fn listening_inodes(table: &str, port: u16) -> Vec<u64> {
    table
        .lines()
        .skip(1)
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let local_port = fields.get(1)?.rsplit_once(':')?.1;
            let listening = *fields.get(3)? == "0A";
            if !listening || u16::from_str_radix(local_port, 16).ok()? != port {
                return None;
            }
            fields.get(9)?.parse().ok()
        })
        .collect()
}

fn owns_any_socket(pid: i32, inodes: &[u64]) -> bool {
    if inodes.is_empty() {
        return false;
    }
    let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return false;
    };
    fds.flatten().any(|fd| {
        std::fs::read_link(fd.path()).is_ok_and(|target| {
            target
                .to_str()
                .and_then(|target| target.strip_prefix("socket:["))
                .and_then(|rest| rest.strip_suffix(']'))
                .and_then(|inode| inode.parse::<u64>().ok())
                .is_some_and(|inode| inodes.contains(&inode))
        })
    })
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

#[cfg(test)]
mod tests;
