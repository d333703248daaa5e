//! The `lastmile up` the user started, once a restarted process serves in
//! its place: it stays in the foreground as the parent of the session.
//!
//! It is the child subreaper of every process that takes over, so each new
//! one becomes its child when the one that started it exits. They share its
//! terminal (they inherit its stdout and stderr). It passes Ctrl-C and
//! SIGTERM on to the process serving now (the one `up.json` names), and
//! exits when it has no child left, with the status of the last server.

use std::path::{Path, PathBuf};

use anyhow::bail;
use nix::sys::signal::Signal;
use nix::sys::wait::{WaitPidFlag, WaitStatus};
use nix::unistd::Pid;
use tokio::signal::unix::{SignalKind, signal};

/// Makes this process (or stops it being) the parent that orphaned
/// descendants are given to.
pub(crate) fn become_subreaper(on: bool) {
    // Without it a process taking over is adopted by init when the one that
    // started it exits; the session still serves, only less tidily.
    let _ = nix::sys::prctl::set_child_subreaper(on);
}

/// Stays the parent of the session until every process of it has exited,
/// passing Ctrl-C and SIGTERM on; fails when the last server did. Runs on
/// its own small runtime: the one that served is gone, with every socket and
/// connection it held.
pub fn keep(state_dir: &Path, progress: &dyn crate::controller::Progress) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let session = Session::watch(state_dir)?;
        session.keep(progress).await
    })
}

/// The signals the session parent listens to.
struct Session {
    state_dir: PathBuf,
    interrupt: tokio::signal::unix::Signal,
    terminate: tokio::signal::unix::Signal,
    child: tokio::signal::unix::Signal,
}

/// How the last process that served ended.
#[derive(Debug, Clone, Copy)]
struct Ended {
    pid: i32,
    status: WaitStatus,
}

impl Session {
    /// Starts listening for the signals to pass on and for children exiting.
    fn watch(state_dir: &Path) -> anyhow::Result<Session> {
        Ok(Session {
            state_dir: state_dir.to_path_buf(),
            interrupt: signal(SignalKind::interrupt())?,
            terminate: signal(SignalKind::terminate())?,
            child: signal(SignalKind::child())?,
        })
    }

    /// Waits until every process of the session has exited, passing Ctrl-C
    /// and SIGTERM on; fails when the last server did.
    async fn keep(mut self, progress: &dyn crate::controller::Progress) -> anyhow::Result<()> {
        let serving = self
            .serving()
            .map(|pid| format!("pid {pid} serves now"))
            .unwrap_or_else(|| "the new process serves".to_string());
        progress.line(&format!(
            "drained; {serving}, and this process stays in the foreground: Ctrl-C still stops everything"
        ));
        let mut servers = std::collections::BTreeSet::new();
        let mut last_server: Option<Ended> = None;
        let mut last_any: Option<Ended> = None;
        loop {
            if let Some(pid) = self.serving() {
                servers.insert(pid);
            }
            loop {
                match nix::sys::wait::waitpid(None, Some(WaitPidFlag::WNOHANG)) {
                    Ok(WaitStatus::StillAlive) => break,
                    Ok(status) => {
                        let Some(pid) = status.pid() else { break };
                        let ended = Ended {
                            pid: pid.as_raw(),
                            status,
                        };
                        if servers.contains(&pid.as_raw()) {
                            last_server = Some(ended);
                        }
                        last_any = Some(ended);
                    }
                    Err(nix::errno::Errno::EINTR) => {}
                    Err(nix::errno::Errno::ECHILD) => {
                        return outcome(last_server.or(last_any));
                    }
                    Err(errno) => bail!("cannot wait for the lastmile processes: {errno}"),
                }
            }
            tokio::select! {
                _ = self.interrupt.recv() => self.pass_on(Signal::SIGINT),
                _ = self.terminate.recv() => self.pass_on(Signal::SIGTERM),
                _ = self.child.recv() => {}
            }
        }
    }

    /// The process serving now, as `up.json` names it, while it runs.
    fn serving(&self) -> Option<i32> {
        let text = std::fs::read_to_string(self.state_dir.join("up.json")).ok()?;
        let value: serde_json::Value = serde_json::from_str(&text).ok()?;
        let pid = u32::try_from(value["pid"].as_u64()?).ok()?;
        (pid != std::process::id() && lastmile_supervisor::process_running(pid))
            .then(|| i32::try_from(pid).ok())
            .flatten()
    }

    fn pass_on(&self, signal: Signal) {
        if let Some(pid) = self.serving() {
            let _ = nix::sys::signal::kill(Pid::from_raw(pid), signal);
        }
    }
}

/// The session's result: the last server's exit.
fn outcome(ended: Option<Ended>) -> anyhow::Result<()> {
    match ended.map(|ended| (ended.pid, ended.status)) {
        None | Some((_, WaitStatus::Exited(_, 0))) => Ok(()),
        Some((pid, WaitStatus::Exited(_, code))) => {
            bail!("the lastmile process that took over (pid {pid}) exited with status {code}")
        }
        Some((pid, WaitStatus::Signaled(_, signal, _))) => {
            bail!("the lastmile process that took over (pid {pid}) was killed by {signal}")
        }
        Some((pid, status)) => {
            bail!("the lastmile process that took over (pid {pid}) ended: {status:?}")
        }
    }
}
