//! One supervised instance: its shared state and the task that watches and restarts it.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use tokio::sync::{oneshot, watch};
use tokio::time::{Instant, sleep};

use crate::config::SupervisorConfig;
use crate::error::SupervisorError;
use crate::event::InstanceEvent;
use crate::health;
use crate::log::LogSink;
use crate::process::{self, Readiness, Running, crash_status};
use crate::spec::InstanceSpec;
use crate::status::{InstanceState, InstanceStatus};
use crate::supervisor::Shared;

/// The part of an instance that changes while it runs.
#[derive(Debug)]
struct Live {
    addr: SocketAddr,
    state: InstanceState,
    restarts: u32,
    pid: Option<u32>,
    group: Option<Pid>,
    /// Set once by `request_stop`; from then on only `Stopping`/`Stopped` may be set.
    stopping: bool,
}

/// A supervised instance, shared by the supervisor and its task.
#[derive(Debug)]
pub(crate) struct Instance {
    pub(crate) spec: InstanceSpec,
    pub(crate) log: Arc<LogSink>,
    live: Mutex<Live>,
    stop_tx: watch::Sender<bool>,
    done_tx: watch::Sender<bool>,
}

impl Instance {
    pub(crate) fn new(spec: InstanceSpec, log: Arc<LogSink>) -> Self {
        Self {
            spec,
            log,
            live: Mutex::new(Live {
                addr: SocketAddr::from(([127, 0, 0, 1], 0)),
                state: InstanceState::Starting,
                restarts: 0,
                pid: None,
                group: None,
                stopping: false,
            }),
            stop_tx: watch::channel(false).0,
            done_tx: watch::channel(false).0,
        }
    }

    fn live(&self) -> MutexGuard<'_, Live> {
        self.live.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The instance as it stands, with its main process looked up in `/proc`
    /// (outside the lock).
    pub(crate) fn status(&self) -> InstanceStatus {
        let mut status = self.status_without_main_pid();
        status.main_pid = status.pid.and_then(|leader| {
            process::main_pid(
                leader,
                &process::shell_command(&self.spec.command),
                status.addr.port(),
            )
        });
        status
    }

    /// The instance as it stands, `main_pid` left `None`: no `/proc` scan.
    pub(crate) fn status_without_main_pid(&self) -> InstanceStatus {
        let live = self.live();
        InstanceStatus {
            instance_id: self.spec.instance_id.clone(),
            release_id: self.spec.release_id.clone(),
            version: self.spec.version.clone(),
            index: self.spec.index,
            addr: live.addr,
            state: live.state,
            restarts: live.restarts,
            pid: live.pid,
            main_pid: None,
        }
    }

    fn state(&self) -> InstanceState {
        self.live().state
    }

    /// Sets the state unless a stop was requested (then only stop states pass).
    fn set_state(&self, state: InstanceState) {
        let mut live = self.live();
        if !live.stopping || matches!(state, InstanceState::Stopping | InstanceState::Stopped) {
            live.state = state;
        }
    }

    pub(crate) fn set_process(&self, running: &Running) {
        let mut live = self.live();
        live.addr = running.addr;
        live.pid = Some(running.pid);
        live.group = Some(running.group);
    }

    fn clear_process(&self) {
        let mut live = self.live();
        live.pid = None;
        live.group = None;
    }

    /// Asks the task to stop the instance; it will never restart it afterwards.
    pub(crate) fn request_stop(&self) {
        {
            let mut live = self.live();
            live.stopping = true;
            if live.state != InstanceState::Stopped {
                live.state = InstanceState::Stopping;
            }
        }
        self.stop_tx.send_replace(true);
    }

    /// `SIGKILL` to the current group, for when nobody is left to stop it gracefully.
    pub(crate) fn kill_group(&self) {
        if let Some(group) = self.live().group {
            let _ = killpg(group, Signal::SIGKILL);
        }
    }

    /// Resolves once the instance's task has finished (process reaped, entry removed).
    pub(crate) async fn wait_done(&self) {
        let mut done = self.done_tx.subscribe();
        let _ = done.wait_for(|done| *done).await;
    }
}

/// Marks the instance's task as finished when dropped, even on panic or runtime shutdown.
#[derive(Debug)]
pub(crate) struct DoneGuard(pub(crate) Arc<Instance>);

impl Drop for DoneGuard {
    fn drop(&mut self) {
        self.0.done_tx.send_replace(true);
    }
}

/// Result of `start`, sent by the task once readiness is decided.
pub(crate) type StartReply = oneshot::Sender<Result<InstanceStatus, SupervisorError>>;

/// Waits for readiness of the first process, answers `start`, then watches and restarts.
pub(crate) async fn run(
    shared: Arc<Shared>,
    instance: Arc<Instance>,
    mut running: Running,
    _done: DoneGuard,
    reply: StartReply,
) {
    let spec = &instance.spec;
    let mut stop = instance.stop_tx.subscribe();
    let readiness = running.wait_ready(&spec.health, &mut stop).await;
    let addr = running.addr;
    match readiness {
        Readiness::Ready => {
            instance.set_state(InstanceState::Ready);
            shared.emit(InstanceEvent::Ready {
                instance_id: spec.instance_id.clone(),
            });
            let _ = reply.send(Ok(instance.status()));
        }
        Readiness::Stopped { .. } => {
            running.terminate(spec.stop.signal, spec.stop.grace).await;
            finish_stopped(&shared, &instance);
            let _ = reply.send(Err(not_ready(readiness, &instance, addr)));
            return;
        }
        Readiness::Exited { .. } | Readiness::TimedOut { .. } => {
            // Reaped first, so the output is drained into the message.
            running.reap().await;
            instance.clear_process();
            shared.remove(&instance);
            let _ = reply.send(Err(not_ready(readiness, &instance, addr)));
            return;
        }
    }
    monitor(&shared, &instance, running, stop).await;
}

/// The start failed: the error with what the probes saw and the process printed.
fn not_ready(readiness: Readiness, instance: &Instance, addr: SocketAddr) -> SupervisorError {
    match readiness.not_ready(&instance.spec, addr, &instance.log) {
        Some(not_ready) => SupervisorError::NotReady(Box::new(not_ready)),
        None => SupervisorError::Abandoned {
            instance_id: instance.spec.instance_id.clone(),
        },
    }
}

/// How watching a ready process ended.
enum Watch {
    Stopped,
    Exited(String),
}

/// Health-checks the ready process, restarts it after crashes, stops on request.
async fn monitor(
    shared: &Shared,
    instance: &Instance,
    mut running: Running,
    mut stop: watch::Receiver<bool>,
) {
    let spec = &instance.spec;
    let config = &shared.config;
    let mut crashes: VecDeque<Instant> = VecDeque::new();
    loop {
        let mut status = match watch(shared, instance, &mut running, &mut stop).await {
            Watch::Stopped => {
                running.terminate(spec.stop.signal, spec.stop.grace).await;
                finish_stopped(shared, instance);
                return;
            }
            Watch::Exited(status) => status,
        };
        running.reap().await;
        instance.clear_process();
        // Each pass is one crash (of the ready process or of a replacement).
        running = loop {
            let now = Instant::now();
            crashes.push_back(now);
            while crashes
                .front()
                .is_some_and(|at| now - *at > config.crash_loop_window)
            {
                crashes.pop_front();
            }
            let count = u32::try_from(crashes.len()).unwrap_or(u32::MAX);
            if config.crash_loop_restarts > 0 && count >= config.crash_loop_restarts {
                instance.set_state(InstanceState::CrashLoop);
                shared.emit(InstanceEvent::CrashLoop {
                    instance_id: spec.instance_id.clone(),
                    crashes: count,
                });
                let _ = stop.wait_for(|stopping| *stopping).await;
                finish_stopped(shared, instance);
                return;
            }
            let restart_in = backoff(config, count);
            instance.set_state(InstanceState::Restarting);
            shared.emit(InstanceEvent::Crashed {
                instance_id: spec.instance_id.clone(),
                status: status.clone(),
                restart_in,
            });
            tokio::select! {
                biased;
                _ = stop.wait_for(|stopping| *stopping) => {
                    finish_stopped(shared, instance);
                    return;
                }
                () = sleep(restart_in) => {}
            }
            if *stop.borrow() {
                finish_stopped(shared, instance);
                return;
            }
            let mut next = match shared.spawn(instance) {
                Ok(next) => next,
                Err(error) => {
                    status = error.to_string();
                    continue;
                }
            };
            instance.set_process(&next);
            instance.live().restarts += 1;
            shared.emit(InstanceEvent::Started {
                instance_id: spec.instance_id.clone(),
                pid: next.pid,
            });
            let readiness = next.wait_ready(&spec.health, &mut stop).await;
            let addr = next.addr;
            match readiness {
                Readiness::Ready => {
                    instance.set_state(InstanceState::Ready);
                    shared.emit(InstanceEvent::Ready {
                        instance_id: spec.instance_id.clone(),
                    });
                    break next;
                }
                Readiness::Stopped { .. } => {
                    next.terminate(spec.stop.signal, spec.stop.grace).await;
                    finish_stopped(shared, instance);
                    return;
                }
                Readiness::Exited { .. } | Readiness::TimedOut { .. } => {
                    next.reap().await;
                    instance.clear_process();
                    status = not_ready(readiness, instance, addr).to_string();
                }
            }
        };
    }
}

/// Watches a ready process until it exits or a stop is requested.
async fn watch(
    shared: &Shared,
    instance: &Instance,
    running: &mut Running,
    stop: &mut watch::Receiver<bool>,
) -> Watch {
    let health = &instance.spec.health;
    let instance_id = &instance.spec.instance_id;
    let threshold = health.unhealthy_threshold.max(1);
    let mut failures = 0;
    loop {
        let addr = running.addr;
        tokio::select! {
            biased;
            _ = stop.wait_for(|stopping| *stopping) => return Watch::Stopped,
            status = running.child.wait() => return Watch::Exited(crash_status(status)),
            result = async {
                sleep(health.interval).await;
                health::check(addr, &health.path, health.timeout).await
            } => match result {
                Ok(()) => {
                    failures = 0;
                    if instance.state() == InstanceState::Unhealthy {
                        instance.set_state(InstanceState::Ready);
                        shared.emit(InstanceEvent::Ready { instance_id: instance_id.clone() });
                    }
                }
                Err(failure) => {
                    failures += 1;
                    if failures >= threshold && instance.state() == InstanceState::Ready {
                        instance.set_state(InstanceState::Unhealthy);
                        shared.emit(InstanceEvent::Unhealthy {
                            instance_id: instance_id.clone(),
                            reason: format!(
                                "GET {}: {failure}",
                                crate::health::request_path(&health.path)
                            ),
                        });
                    }
                }
            },
        }
    }
}

/// `initial * 2^(crashes - 1)`, capped at the maximum.
fn backoff(config: &SupervisorConfig, crashes: u32) -> Duration {
    let doublings = crashes.saturating_sub(1).min(30);
    config
        .restart_backoff_initial
        .saturating_mul(1 << doublings)
        .min(config.restart_backoff_max)
}

/// The process is gone: mark stopped, drop from the list, tell subscribers.
fn finish_stopped(shared: &Shared, instance: &Instance) {
    instance.set_state(InstanceState::Stopped);
    instance.clear_process();
    shared.remove(instance);
    shared.emit(InstanceEvent::Stopped {
        instance_id: instance.spec.instance_id.clone(),
    });
}
