//! `LocalHost`: the host `lastmile up` runs in process, the first
//! implementation of `HostHandle`. It drives a `Supervisor` (instances) and
//! a `Router` (traffic) by direct calls; a remote agent will implement the
//! same trait over HTTPS, so nothing above it knows which one it talks to.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{SocketAddr, TcpListener};
use std::os::fd::{AsRawFd, RawFd};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use lastmile_artifact::{BlobError, BlobStore};
use lastmile_host::{
    ArtifactSource, CertificateSpec, CheckOutcome, EdgeSpec, HostError, HostHandle, InstanceInfo,
    InstanceSpec, InstanceState, LatencyBucket, LatencyCount, LimitsSpec, ProbeAnswer, ReleaseRef,
    ReleaseStats, RouteSpec, StopSignal,
};
use lastmile_router::{Backend, Route, RouteTable, Router, RouterConfig, Upstream};
use lastmile_supervisor::{InstanceEvent, Supervisor, SupervisorConfig, SupervisorError};
use tokio::sync::broadcast::error::RecvError;

/// How long `stop_instance` waits for in-flight requests of a draining
/// instance before stopping it anyway.
const DRAIN_WAIT: Duration = Duration::from_secs(30);

/// The most of a probe's answer body that is kept (see [`ProbeAnswer`]).
const PROBE_BODY_LIMIT: usize = 64 * 1024;

/// Errors opening a host.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    /// The artifact cache could not be opened.
    #[error(transparent)]
    Blobs(#[from] BlobError),
    /// The supervisor's directories could not be created.
    #[error("cannot prepare the supervisor's directory")]
    Supervisor(#[source] SupervisorError),
}

/// The host `lastmile up` runs on.
#[derive(Clone)]
pub struct LocalHost {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for LocalHost {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("LocalHost")
            .field("name", &self.inner.name)
            .finish_non_exhaustive()
    }
}

struct Inner {
    name: String,
    supervisor: Supervisor,
    router: Router,
    /// The artifact cache releases are unpacked from.
    blobs: BlobStore,
    /// Where an artifact missing from the cache is fetched from.
    source: Arc<dyn ArtifactSource>,
    /// Certificates every TLS listener chooses from by SNI.
    certificates: lastmile_router::CertStore,
    /// ACME HTTP-01 answers, served on every plaintext listener.
    challenges: lastmile_router::ChallengeStore,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    /// Requested listen address → the bound listener (the actual address
    /// differs when port 0 was requested).
    listeners: BTreeMap<SocketAddr, Listener>,
    /// Listeners handed over by a previous process, not yet claimed.
    inherited: BTreeMap<SocketAddr, TcpListener>,
    /// Environment → its route.
    routes: BTreeMap<String, RouteSpec>,
    /// Instances leaving rotation: no new requests.
    draining: BTreeSet<String>,
}

struct Listener {
    actual: SocketAddr,
    fd: RawFd,
    /// Kept open here until the router serves it (after the route exists,
    /// so no connection is accepted into an empty table).
    pending: Option<TcpListener>,
    /// How the router serves it (TLS, redirect, limits), fixed when it
    /// starts serving.
    config: lastmile_router::ListenerConfig,
    _handle: Option<lastmile_router::ListenerHandle>,
}

impl LocalHost {
    /// Opens the host named `name` on the state directory `state_dir`: its
    /// artifact cache (the blob store there) and its releases and logs
    /// under [`host_root`]. Instances a killed lastmile left running there
    /// are stopped first (`supervisor().orphans_killed()` counts them).
    /// `source` is where an artifact missing from the cache is fetched
    /// from (a [`crate::BlobStoreSource`] of the same directory when the
    /// controller's store is the cache: then nothing is ever fetched).
    /// `inherited` are the listeners a previous process handed over.
    pub fn open(
        name: &str,
        state_dir: &Path,
        router: RouterConfig,
        source: Arc<dyn ArtifactSource>,
        inherited: BTreeMap<SocketAddr, TcpListener>,
    ) -> Result<LocalHost, NodeError> {
        let blobs = BlobStore::open(state_dir)?;
        let supervisor = Supervisor::new(host_root(state_dir), SupervisorConfig::default())
            .map_err(NodeError::Supervisor)?;
        Ok(LocalHost::new(
            name,
            supervisor,
            Router::new(router),
            blobs,
            source,
            inherited,
        ))
    }

    /// A host named `name` from its parts: `blobs` is its artifact cache,
    /// `source` where an artifact missing from it is fetched from.
    pub fn new(
        name: &str,
        supervisor: Supervisor,
        router: Router,
        blobs: BlobStore,
        source: Arc<dyn ArtifactSource>,
        inherited: BTreeMap<SocketAddr, TcpListener>,
    ) -> LocalHost {
        LocalHost {
            inner: Arc::new(Inner {
                name: name.to_string(),
                supervisor,
                router,
                blobs,
                source,
                certificates: lastmile_router::CertStore::new(),
                challenges: lastmile_router::ChallengeStore::default(),
                state: Mutex::new(State {
                    inherited,
                    ..State::default()
                }),
            }),
        }
    }

    /// The router, for stats and for draining on shutdown.
    pub fn router(&self) -> &Router {
        &self.inner.router
    }

    /// The supervisor, for events and shutdown.
    pub fn supervisor(&self) -> &Supervisor {
        &self.inner.supervisor
    }

    /// Listening sockets with the addresses they were requested as, for
    /// handing over to a restarted process.
    pub fn listener_fds(&self) -> Vec<(SocketAddr, RawFd)> {
        self.state()
            .listeners
            .iter()
            .map(|(requested, listener)| (*requested, listener.fd))
            .collect()
    }

    /// The addresses the router's listeners are bound to.
    pub fn listening_addrs(&self) -> Vec<SocketAddr> {
        self.state()
            .listeners
            .values()
            .map(|listener| listener.actual)
            .collect()
    }

    /// Refreshes the routes on every instance event (an instance became
    /// ready, crashed, stopped), until the supervisor shuts down; `report`
    /// sees each event after the refresh.
    pub async fn watch_instances(&self, mut report: impl FnMut(&InstanceEvent) + Send) {
        let mut events = self.inner.supervisor.subscribe();
        loop {
            match events.recv().await {
                Ok(event) => {
                    self.refresh();
                    report(&event);
                }
                Err(RecvError::Lagged(_)) => self.refresh(),
                Err(RecvError::Closed) => return,
            }
        }
    }

    /// Stops what the host runs: the router stops accepting and requests
    /// in flight get up to `grace` to finish, then every instance stops
    /// (their WebSockets close cleanly), then upgraded connections go.
    pub async fn drain_and_stop(&self, grace: Duration) {
        let router = self.inner.router.clone();
        let drain = tokio::spawn(async move { router.drain(grace).await });
        let deadline = Instant::now() + grace;
        while self.in_flight() > 0 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        self.inner.supervisor.shutdown().await;
        let _ = drain.await;
    }

    /// Requests in flight through the router, over every upstream.
    pub fn in_flight(&self) -> usize {
        self.inner
            .router
            .upstream_health()
            .iter()
            .map(|upstream| upstream.in_flight)
            .sum()
    }

    /// Where an environment's route actually listens.
    pub fn bound_addr(&self, environment: &str) -> Option<SocketAddr> {
        let state = self.state();
        let route = state.routes.get(environment)?;
        state
            .listeners
            .get(&route.listen)
            .map(|listener| listener.actual)
    }

    /// The supervisor's status of a running instance, or why there is none.
    fn running(&self, instance_id: &str) -> Result<lastmile_supervisor::InstanceStatus, HostError> {
        self.inner
            .supervisor
            .list_without_main_pid()
            .into_iter()
            .find(|instance| instance.instance_id == instance_id)
            .ok_or_else(|| HostError::Other {
                message: format!("instance {instance_id} is not running"),
            })
    }

    /// Recomputes the router's table from the routes and the instances that
    /// are ready and not draining. Called after every change and on every
    /// supervisor event.
    pub fn refresh(&self) {
        let instances = self.inner.supervisor.list_without_main_pid();
        let state = self.state();
        let mut routes = Vec::new();
        for route in state.routes.values() {
            let Some(listener) = state.listeners.get(&route.listen) else {
                continue;
            };
            let backends = route
                .weights
                .iter()
                .map(|(release, weight)| Backend {
                    release: release.clone(),
                    weight: *weight,
                    instances: instances
                        .iter()
                        .filter(|instance| {
                            &instance.release_id == release
                                && lastmile_host::instance_environment(&instance.instance_id)
                                    == Some(route.environment.as_str())
                                && instance.state == lastmile_supervisor::InstanceState::Ready
                                && !state.draining.contains(&instance.instance_id)
                        })
                        .map(|instance| Upstream {
                            id: instance.instance_id.clone(),
                            addr: instance.addr,
                        })
                        .collect(),
                })
                .collect();
            routes.push(Route {
                name: route.environment.clone(),
                listen: listener.actual,
                host: route.host.clone(),
                path_prefix: route.path_prefix.clone(),
                backends,
                cohort: route
                    .cohort
                    .as_ref()
                    .map(|cohort| lastmile_router::CohortRule {
                        key: key_source(&cohort.key),
                        salt: route.environment.clone(),
                        set_cookie: cohort.set_cookie.clone(),
                    }),
                pins: route
                    .pins
                    .iter()
                    .map(|pin| lastmile_router::PinRule {
                        key: key_source(&pin.key),
                        value: pin.value.clone(),
                        release: pin.release.clone(),
                    })
                    .collect(),
                mirror: route
                    .mirror
                    .as_ref()
                    .map(|mirror| lastmile_router::MirrorRule {
                        release: mirror.release.clone(),
                        percent: mirror.percent,
                        methods: mirror.methods.clone(),
                    }),
                warmup: lastmile_router::WarmupRule {
                    requests: route.warmup.requests,
                    duration: Duration::from_millis(route.warmup.duration_ms),
                },
            });
        }
        drop(state);
        self.inner.router.set_table(RouteTable { routes });
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.inner
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Binds (or claims from a previous process) the listener for
    /// `requested`; the router does not serve it until `serve_pending`.
    fn ensure_listener(
        &self,
        requested: SocketAddr,
        config: lastmile_router::ListenerConfig,
    ) -> Result<SocketAddr, HostError> {
        let mut state = self.state();
        if let Some(listener) = state.listeners.get_mut(&requested) {
            // Settings of a listener already serving apply from the next
            // start (the router fixes them per listener); a pending one
            // takes the newest.
            if listener.pending.is_some() {
                listener.config = config;
            }
            return Ok(listener.actual);
        }
        let listener = match state.inherited.remove(&requested) {
            Some(listener) => listener,
            None => TcpListener::bind(requested).map_err(|error| {
                if error.kind() == std::io::ErrorKind::AddrInUse {
                    HostError::PortInUse { addr: requested }
                } else {
                    HostError::Other {
                        message: format!("cannot listen on {requested}: {error}"),
                    }
                }
            })?,
        };
        let actual = listener.local_addr().map_err(|error| HostError::Other {
            message: format!("cannot read the address of the listener for {requested}: {error}"),
        })?;
        let fd = listener.as_raw_fd();
        state.listeners.insert(
            requested,
            Listener {
                actual,
                fd,
                pending: Some(listener),
                config,
                _handle: None,
            },
        );
        Ok(actual)
    }

    /// Binds the listeners a route needs: its own (plain or TLS) and, with
    /// TLS, the plaintext one that redirects to it and answers ACME.
    fn ensure_listeners(&self, route: &RouteSpec) -> Result<(), HostError> {
        let EdgeSpec { tls, limits } = &route.edge;
        let limits = router_limits(limits);
        let config = lastmile_router::ListenerConfig {
            limits: limits.clone(),
            tls: tls.as_ref().map(|tls| lastmile_router::TlsSettings {
                certificates: self.inner.certificates.clone(),
                hsts: tls.hsts.as_ref().map(|hsts| lastmile_router::Hsts {
                    max_age: hsts.max_age,
                    include_subdomains: hsts.include_subdomains,
                    preload: hsts.preload,
                }),
            }),
            redirect_https: None,
            challenges: tls.is_none().then(|| self.inner.challenges.clone()),
        };
        let actual = self.ensure_listener(route.listen, config)?;
        if let Some(redirect) = tls.as_ref().and_then(|tls| tls.redirect_from) {
            // One redirect listener may serve several HTTPS listeners: each
            // route's host is sent to its own port through the shared map.
            let ports = self
                .state()
                .listeners
                .get(&redirect)
                .and_then(|listener| listener.config.redirect_https.as_ref())
                .map(|redirect| redirect.ports.clone())
                .unwrap_or_default();
            if let Some(host) = &route.host {
                ports.set(host, actual.port());
            }
            let config = lastmile_router::ListenerConfig {
                limits,
                tls: None,
                redirect_https: Some(lastmile_router::RedirectHttps {
                    port: actual.port(),
                    ports,
                }),
                challenges: Some(self.inner.challenges.clone()),
            };
            self.ensure_listener(redirect, config)?;
        }
        Ok(())
    }

    /// Starts serving listeners whose routes are now in the table.
    fn serve_pending(&self) -> Result<(), HostError> {
        let mut state = self.state();
        for listener in state.listeners.values_mut() {
            if let Some(pending) = listener.pending.take() {
                let actual = listener.actual;
                let handle = self
                    .inner
                    .router
                    .serve_with(pending, listener.config.clone())
                    .map_err(|error| HostError::Other {
                        message: format!("the router cannot serve {actual}: {error}"),
                    })?;
                listener._handle = Some(handle);
            }
        }
        Ok(())
    }
}

/// The router's limits: the spec's where it sets one, else the default.
fn router_limits(spec: &LimitsSpec) -> lastmile_router::Limits {
    let default = lastmile_router::Limits::default();
    let count = |value: Option<u32>, default: usize| value.map_or(default, |v| v as usize);
    lastmile_router::Limits {
        max_body_bytes: spec.max_body_bytes.unwrap_or(default.max_body_bytes),
        max_headers: count(spec.max_headers, default.max_headers),
        max_connections: count(spec.max_connections, default.max_connections),
        max_connections_per_ip: count(spec.max_connections_per_ip, default.max_connections_per_ip),
        body_read_timeout: spec.body_timeout.unwrap_or(default.body_read_timeout),
        idle_timeout: spec.idle_timeout.unwrap_or(default.idle_timeout),
        send_timeout: spec.send_timeout.unwrap_or(default.send_timeout),
        rate_limit: spec
            .rate_limit
            .map(|rate| lastmile_router::RateLimit {
                requests_per_second: rate.per_second,
                burst: rate.burst,
            })
            .or(default.rate_limit),
    }
}

fn key_source(key: &lastmile_host::KeySource) -> lastmile_router::KeySource {
    match key {
        lastmile_host::KeySource::Header(name) => lastmile_router::KeySource::Header(name.clone()),
        lastmile_host::KeySource::Cookie(name) => lastmile_router::KeySource::Cookie(name.clone()),
    }
}

fn instance_state(state: lastmile_supervisor::InstanceState) -> InstanceState {
    use lastmile_supervisor::InstanceState as S;
    match state {
        S::Starting => InstanceState::Starting,
        S::Ready => InstanceState::Ready,
        S::Unhealthy => InstanceState::Unhealthy,
        S::Restarting => InstanceState::Restarting,
        S::CrashLoop => InstanceState::CrashLoop,
        S::Stopping => InstanceState::Stopping,
        S::Stopped => InstanceState::Stopped,
    }
}

fn info(status: &lastmile_supervisor::InstanceStatus) -> InstanceInfo {
    InstanceInfo {
        instance_id: status.instance_id.clone(),
        // The supervisor keeps no environment: the engine made the id from
        // it (`lastmile_host::instance_id`), so the id says it exactly.
        environment: lastmile_host::instance_environment(&status.instance_id)
            .unwrap_or_default()
            .to_owned(),
        release_id: status.release_id.clone(),
        index: status.index,
        addr: status.addr,
        state: instance_state(status.state),
        restarts: status.restarts,
        pid: status.pid,
        leader_pid: status.pid,
        main_pid: status.main_pid,
    }
}

#[async_trait::async_trait]
impl HostHandle for LocalHost {
    fn name(&self) -> &str {
        &self.inner.name
    }

    async fn ensure_release(&self, release: &ReleaseRef) -> Result<(), HostError> {
        let blobs = &self.inner.blobs;
        if blobs.path(&release.artifact_id).is_none() {
            crate::artifact_source::fetch(blobs, self.inner.source.as_ref(), &release.artifact_id)
                .await?;
        }
        let host = self.clone();
        let release = release.clone();
        tokio::task::spawn_blocking(move || {
            let blobs = &host.inner.blobs;
            host.inner
                .supervisor
                .prepare_release(&release.id, |dir| {
                    lastmile_artifact::unpack(blobs, &release.artifact_id, dir).map(|_| ())
                })
                .map(|_| ())
                .map_err(|error| HostError::Other {
                    message: format!("cannot unpack release {}: {error}", release.id),
                })
        })
        .await
        .map_err(|error| HostError::Other {
            message: format!("unpacking panicked: {error}"),
        })?
    }

    async fn start_instance(&self, spec: &InstanceSpec) -> Result<InstanceInfo, HostError> {
        let workdir = self.inner.supervisor.release_dir(&spec.release.id);
        let signal = nix_signal(spec.stop.signal);
        let started = self
            .inner
            .supervisor
            .start(lastmile_supervisor::InstanceSpec {
                instance_id: spec.instance_id.clone(),
                release_id: spec.release.id.clone(),
                version: spec.release.version.clone(),
                index: spec.index,
                command: spec.command.clone(),
                env: spec.env.clone(),
                workdir,
                health: lastmile_supervisor::HealthSpec {
                    path: spec.health.path.clone(),
                    interval: spec.health.interval,
                    timeout: spec.health.timeout,
                    healthy_threshold: spec.health.healthy_threshold,
                    unhealthy_threshold: spec.health.unhealthy_threshold,
                    start_timeout: spec.health.start_timeout,
                },
                stop: lastmile_supervisor::StopSpec {
                    signal,
                    grace: spec.stop.grace,
                },
            })
            .await
            .map_err(|error| match error {
                lastmile_supervisor::SupervisorError::NotReady(not_ready) => HostError::NotReady {
                    instance_id: spec.instance_id.clone(),
                    reason: not_ready.to_string(),
                    last_lines: not_ready.output,
                },
                other => HostError::Other {
                    message: other.to_string(),
                },
            })?;
        self.refresh();
        Ok(info(&started))
    }

    async fn stop_instance(&self, instance_id: &str) -> Result<(), HostError> {
        self.state().draining.insert(instance_id.to_string());
        self.refresh();
        let deadline = Instant::now() + DRAIN_WAIT;
        while self.inner.router.in_flight(instance_id) > 0 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let result = self.inner.supervisor.stop(instance_id).await;
        self.state().draining.remove(instance_id);
        self.refresh();
        result.map_err(|error| HostError::Other {
            message: format!("cannot stop instance {instance_id}: {error}"),
        })
    }

    async fn instances(&self) -> Result<Vec<InstanceInfo>, HostError> {
        Ok(self.inner.supervisor.list().iter().map(info).collect())
    }

    async fn set_route(&self, route: &RouteSpec) -> Result<SocketAddr, HostError> {
        self.ensure_listeners(route)?;
        self.state()
            .routes
            .insert(route.environment.clone(), route.clone());
        self.refresh();
        self.serve_pending()?;
        self.bound_addr(&route.environment)
            .ok_or_else(|| HostError::Other {
                message: format!(
                    "the route of `{}` has no listener on {} after it was set",
                    route.environment, route.listen
                ),
            })
    }

    async fn set_certificate(&self, certificate: &CertificateSpec) -> Result<(), HostError> {
        let certificates = &self.inner.certificates;
        let chain = certificate.chain_pem.as_bytes();
        let key = certificate.key_pem.as_bytes();
        if certificate.hosts.is_empty() {
            certificates.set_default(chain, key)
        } else {
            certificates.set(&certificate.hosts, chain, key)
        }
        .map_err(|error| HostError::Other {
            message: format!(
                "cannot serve the certificate for {}: {error}",
                certificate.hosts.join(", ")
            ),
        })
    }

    async fn set_challenge(
        &self,
        token: &str,
        key_authorization: Option<&str>,
    ) -> Result<(), HostError> {
        match key_authorization {
            Some(answer) => self.inner.challenges.put(token, answer),
            None => {
                self.inner.challenges.remove(token);
            }
        }
        Ok(())
    }

    async fn stats(&self, release_id: &str, window: Duration) -> Result<ReleaseStats, HostError> {
        let stats = self.inner.router.stats(release_id, window);
        Ok(ReleaseStats {
            requests: stats.requests,
            errors_5xx: stats.status_5xx,
            connect_errors: stats.connect_errors,
            p50_ms: stats.latency.quantile(0.50),
            p95_ms: stats.latency.quantile(0.95),
            p99_ms: stats.latency.quantile(0.99),
            latency_window: stats
                .latency
                .buckets()
                .map(|(ms, requests)| LatencyCount { ms, requests })
                .collect(),
            latency_samples: stats.latency.count(),
            warmup_requests: stats.warmup_requests,
            requests_total: stats.requests_total,
            errors_5xx_total: stats.status_5xx_total,
            connect_errors_total: stats.connect_errors_total,
            latency_buckets: stats
                .duration_total
                .buckets
                .iter()
                .map(|&(le_seconds, requests)| LatencyBucket {
                    le_seconds,
                    requests,
                })
                .collect(),
            latency_count: stats.duration_total.count,
            latency_sum_seconds: stats.duration_total.sum_seconds,
        })
    }

    async fn prune_releases(&self, keep: &[String]) -> Result<(), HostError> {
        let protect: Vec<&str> = keep.iter().map(String::as_str).collect();
        self.inner
            .supervisor
            .prune_releases(keep.len(), &protect)
            .map(|_| ())
            .map_err(|error| HostError::Other {
                message: format!("cannot prune releases: {error}"),
            })
    }

    async fn probe(
        &self,
        instance_id: &str,
        path: &str,
        timeout: Duration,
    ) -> Result<ProbeAnswer, HostError> {
        let addr = self.running(instance_id)?.addr;
        let failed = |reason: String| HostError::Other {
            message: format!("GET {path} on instance {instance_id} ({addr}) failed: {reason}"),
        };
        let path = if path.starts_with('/') {
            path.to_owned()
        } else {
            format!("/{path}")
        };
        let request = lastmile_http::http::Request::get(format!("http://{addr}{path}"))
            .version(lastmile_http::http::Version::HTTP_10)
            .header("user-agent", "lastmile-verify")
            .body(Default::default())
            .map_err(|error| failed(error.to_string()))?;
        let answer = lastmile_http::Client::new()
            .connect_timeout(timeout)
            .timeout(timeout)
            .body_limit(PROBE_BODY_LIMIT)
            .send_prefix(request)
            .await
            .map_err(|error| failed(error.to_string()))?;
        Ok(ProbeAnswer {
            status: answer.status.as_u16(),
            body: answer.text().into_owned(),
        })
    }

    async fn run_check(
        &self,
        instance_id: &str,
        command: &str,
        timeout: Duration,
    ) -> Result<CheckOutcome, HostError> {
        let instance = self.running(instance_id)?;
        let workdir = self.inner.supervisor.release_dir(&instance.release_id);
        run_command(command, &workdir, instance.addr, timeout)
            .await
            .map_err(|error| HostError::Other {
                message: format!("cannot run the check `{command}`: {error}"),
            })
    }
}

/// Runs `command` for a verification check; the group is killed on timeout.
async fn run_command(
    command: &str,
    workdir: &std::path::Path,
    addr: SocketAddr,
    timeout: Duration,
) -> std::io::Result<CheckOutcome> {
    let mut child = tokio::process::Command::new("sh")
        .arg("-c")
        .arg(command)
        .current_dir(workdir)
        .env("INSTANCE_URL", format!("http://{addr}"))
        .env("PORT", addr.port().to_string())
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .process_group(0)
        .kill_on_drop(true)
        .spawn()?;
    let group = child.id().map(|pid| nix::unistd::Pid::from_raw(pid as i32));
    let output = async {
        use tokio::io::AsyncReadExt;
        let mut text = Vec::new();
        if let Some(mut stdout) = child.stdout.take() {
            let _ = stdout.read_to_end(&mut text).await;
        }
        if let Some(mut stderr) = child.stderr.take() {
            let _ = stderr.read_to_end(&mut text).await;
        }
        let status = child.wait().await;
        (text, status)
    };
    let (exit_code, text) = match tokio::time::timeout(timeout, output).await {
        Ok((text, status)) => (status?.code(), text),
        Err(_) => {
            if let Some(group) = group {
                let _ = nix::sys::signal::killpg(group, nix::sys::signal::Signal::SIGKILL);
            }
            (None, format!("killed after {timeout:?}").into_bytes())
        }
    };
    let text = String::from_utf8_lossy(&text);
    let lines: Vec<String> = text.lines().map(str::to_string).collect();
    let skip = lines.len().saturating_sub(20);
    Ok(CheckOutcome {
        exit_code,
        last_lines: lines.into_iter().skip(skip).collect(),
    })
}

/// The signal to send for a service's stop signal.
fn nix_signal(signal: StopSignal) -> nix::sys::signal::Signal {
    use nix::sys::signal::Signal;
    match signal {
        StopSignal::Term => Signal::SIGTERM,
        StopSignal::Int => Signal::SIGINT,
        StopSignal::Quit => Signal::SIGQUIT,
        StopSignal::Hup => Signal::SIGHUP,
        StopSignal::Usr1 => Signal::SIGUSR1,
        StopSignal::Usr2 => Signal::SIGUSR2,
    }
}

/// Where a host keeps its files under the state directory.
pub fn host_root(state_dir: &Path) -> PathBuf {
    state_dir.join("host")
}
