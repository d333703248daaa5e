//! The handle the controller holds: starts, stops and lists instances.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use tokio::sync::{broadcast, oneshot};

use crate::config::SupervisorConfig;
use crate::error::{SupervisorError, check_id};
use crate::event::InstanceEvent;
use crate::instance::{self, DoneGuard, Instance};
use crate::log::{self, LogSink};
use crate::orphans::{self, GroupRecord};
use crate::process::{self, Running};
use crate::release;
use crate::spec::InstanceSpec;
use crate::status::InstanceStatus;

/// Events buffered per subscriber before the slowest one starts missing some.
const EVENT_BUFFER: usize = 1024;

/// Runs instances of releases as child process groups; cheap to clone.
///
/// When the last clone is dropped, every live process group is sent `SIGKILL`.
#[derive(Clone)]
pub struct Supervisor {
    inner: Arc<Inner>,
}

/// Owned by the handles only: its `Drop` is "the last handle is gone".
struct Inner {
    shared: Arc<Shared>,
    /// One lock per release id so two concurrent prepares do not both fill.
    prepare_locks: Mutex<HashMap<String, Arc<Mutex<()>>>>,
}

/// What instance tasks need; they hold this, never `Inner`.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) root: PathBuf,
    pub(crate) config: SupervisorConfig,
    instances: Mutex<BTreeMap<String, Arc<Instance>>>,
    events: broadcast::Sender<InstanceEvent>,
    /// Process groups this process started, for clean-up after a crash.
    groups: GroupRecord,
    /// Groups of a crashed predecessor killed when this supervisor began.
    orphans_killed: usize,
}

impl Shared {
    fn instances(&self) -> MutexGuard<'_, BTreeMap<String, Arc<Instance>>> {
        self.instances
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn emit(&self, event: InstanceEvent) {
        // No subscriber is fine.
        let _ = self.events.send(event);
    }

    /// Starts `instance`'s process and records its group, so that a successor can kill it
    /// should this process die without stopping it.
    pub(crate) fn spawn(&self, instance: &Instance) -> Result<Running, SupervisorError> {
        let running = process::spawn(&instance.spec, &instance.log)?;
        self.groups.record(running.pid);
        Ok(running)
    }

    /// Removes `instance` from the list if it is still the entry under its id.
    pub(crate) fn remove(&self, instance: &Instance) {
        let mut instances = self.instances();
        let id = &instance.spec.instance_id;
        if instances
            .get(id)
            .is_some_and(|entry| std::ptr::eq(Arc::as_ptr(entry), instance))
        {
            instances.remove(id);
        }
    }

    fn releases_dir(&self) -> PathBuf {
        self.root.join("releases")
    }

    fn log_path(&self, instance_id: &str) -> PathBuf {
        self.root.join("logs").join(format!("{instance_id}.log"))
    }
}

impl Supervisor {
    /// `root/releases/<release_id>/` holds unpacked releases, `root/logs/<instance_id>.log`
    /// the output. Creates the directories and removes leftovers of interrupted prepares.
    pub fn new(root: PathBuf, config: SupervisorConfig) -> Result<Supervisor, SupervisorError> {
        for dir in [root.join("releases"), root.join("logs")] {
            std::fs::create_dir_all(&dir).map_err(SupervisorError::io(&dir))?;
        }
        release::remove_leftovers(&root.join("releases"));
        let orphans_killed = orphans::kill_orphans(&root);
        let shared = Arc::new(Shared {
            groups: GroupRecord::new(&root),
            orphans_killed,
            root,
            config,
            instances: Mutex::new(BTreeMap::new()),
            events: broadcast::channel(EVENT_BUFFER).0,
        });
        Ok(Supervisor {
            inner: Arc::new(Inner {
                shared,
                prepare_locks: Mutex::default(),
            }),
        })
    }

    /// Instances left running by a lastmile process that was killed (its
    /// record under `root/groups/`), killed when this supervisor began.
    pub fn orphans_killed(&self) -> usize {
        self.shared().orphans_killed
    }

    fn shared(&self) -> &Arc<Shared> {
        &self.inner.shared
    }

    /// `root/releases/<release_id>`.
    pub fn release_dir(&self, release_id: &str) -> PathBuf {
        self.shared().releases_dir().join(release_id)
    }

    /// If the release dir is complete (marker `.lastmile-complete` inside), return it.
    /// Otherwise call `fill` on a fresh temp dir under `root/releases/.tmp-*`, then write the
    /// marker and rename into place atomically. Blocking: call from `spawn_blocking`.
    pub fn prepare_release<E: std::fmt::Display>(
        &self,
        release_id: &str,
        fill: impl FnOnce(&Path) -> Result<(), E>,
    ) -> Result<PathBuf, SupervisorError> {
        check_id("release", release_id)?;
        let lock = self
            .inner
            .prepare_locks
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(release_id.to_owned())
            .or_default()
            .clone();
        let _held = lock.lock().unwrap_or_else(PoisonError::into_inner);
        release::prepare(&self.shared().releases_dir(), release_id, fill)
    }

    /// Spawns the instance and waits until it is ready.
    ///
    /// Fails if the process exits before it is ready or `health.start_timeout` passes; then
    /// its group is killed and it is removed from the list, but its log stays readable.
    pub async fn start(&self, spec: InstanceSpec) -> Result<InstanceStatus, SupervisorError> {
        check_id("instance", &spec.instance_id)?;
        check_id("release", &spec.release_id)?;
        let shared = self.shared();
        let instance = {
            let mut instances = shared.instances();
            if instances.contains_key(&spec.instance_id) {
                return Err(SupervisorError::AlreadyRunning {
                    instance_id: spec.instance_id,
                });
            }
            let path = shared.log_path(&spec.instance_id);
            let sink = LogSink::open(
                path.clone(),
                shared.config.log_max_bytes,
                shared.config.log_keep,
                &spec.health.path,
            )
            .map_err(SupervisorError::io(path))?;
            let instance = Arc::new(Instance::new(spec, Arc::new(sink)));
            instances.insert(instance.spec.instance_id.clone(), instance.clone());
            instance
        };
        // From here on a concurrent `stop` waits for this guard.
        let done = DoneGuard(instance.clone());
        let running = match shared.spawn(&instance) {
            Ok(running) => running,
            Err(error) => {
                shared.remove(&instance);
                return Err(error);
            }
        };
        instance.set_process(&running);
        shared.emit(InstanceEvent::Started {
            instance_id: instance.spec.instance_id.clone(),
            pid: running.pid,
        });
        let (reply, answer) = oneshot::channel();
        tokio::spawn(instance::run(
            shared.clone(),
            instance.clone(),
            running,
            done,
            reply,
        ));
        answer.await.unwrap_or_else(|_| {
            Err(SupervisorError::Abandoned {
                instance_id: instance.spec.instance_id.clone(),
            })
        })
    }

    /// Graceful stop: `spec.stop.signal` to the group, up to `grace`, then `SIGKILL`;
    /// removes the instance and emits `Stopped`. Unknown ids are fine (idempotent).
    pub async fn stop(&self, instance_id: &str) -> Result<(), SupervisorError> {
        let Some(instance) = self.shared().instances().get(instance_id).cloned() else {
            return Ok(());
        };
        instance.request_stop();
        instance.wait_done().await;
        Ok(())
    }

    /// Every supervised instance, sorted by `instance_id`.
    pub fn list(&self) -> Vec<InstanceStatus> {
        self.shared()
            .instances()
            .values()
            .map(|instance| instance.status())
            .collect()
    }

    /// Every supervised instance, sorted by `instance_id`, without `main_pid`
    /// (always `None`): what bookkeeping reads on every change, without the
    /// `/proc` scan that finding the main process of a pipeline takes.
    pub fn list_without_main_pid(&self) -> Vec<InstanceStatus> {
        self.shared()
            .instances()
            .values()
            .map(|instance| instance.status_without_main_pid())
            .collect()
    }

    /// The longest `stop.grace` among the supervised instances (zero when none runs): how
    /// long a [`Supervisor::shutdown`] may wait before it kills what is left.
    pub fn longest_stop_grace(&self) -> std::time::Duration {
        self.shared()
            .instances()
            .values()
            .map(|instance| instance.spec.stop.grace)
            .max()
            .unwrap_or_default()
    }

    /// Last `n` lines of the instance's log (also after it failed or stopped); empty if none.
    pub fn last_lines(&self, instance_id: &str, n: usize) -> Vec<String> {
        if check_id("instance", instance_id).is_err() {
            return Vec::new();
        }
        log::last_lines(&self.shared().log_path(instance_id), n)
    }

    /// A receiver of every event from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<InstanceEvent> {
        self.shared().events.subscribe()
    }

    /// Stops every instance concurrently (gracefully, as in [`Supervisor::stop`]).
    pub async fn shutdown(&self) {
        let instances: Vec<Arc<Instance>> = self.shared().instances().values().cloned().collect();
        // Requesting all first lets the instance tasks stop them in parallel.
        for instance in &instances {
            instance.request_stop();
        }
        for instance in &instances {
            instance.wait_done().await;
        }
        if self.shared().instances().is_empty() {
            self.shared().groups.remove();
        }
    }

    /// Deletes unpacked release dirs beyond the newest `keep` (by mtime), never `protect`ed
    /// ones or ones with live instances. Returns the removed ids, sorted.
    pub fn prune_releases(
        &self,
        keep: usize,
        protect: &[&str],
    ) -> Result<Vec<String>, SupervisorError> {
        let live: BTreeSet<String> = self
            .shared()
            .instances()
            .values()
            .map(|instance| instance.spec.release_id.clone())
            .collect();
        release::prune(&self.shared().releases_dir(), keep, protect, &live)
    }
}

impl fmt::Debug for Supervisor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let shared = self.shared();
        f.debug_struct("Supervisor")
            .field("root", &shared.root)
            .field("instances", &shared.instances().keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        // The instance tasks see the stop request, reap the leaders and never restart.
        for instance in self.shared.instances().values() {
            instance.request_stop();
            instance.kill_group();
        }
    }
}
