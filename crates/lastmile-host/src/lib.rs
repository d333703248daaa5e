//! `HostHandle`: the one interface through which the controller drives a
//! host — make a release present, start and stop its instances, point the
//! router at them, read the router's per-release stats.
//!
//! `lastmile up` implements it in-process (`LocalHost` in
//! `lastmile-node`); the agent on a remote host will implement it over
//! HTTPS. The deployment engine (`lastmile-rollout`) sees only this trait,
//! so it never special-cases "local". The types here are plain data that
//! serialize, so the same calls can cross a network.
//!
//! ```ignore
//! host.ensure_release(&release).await?; // fetched from its ArtifactSource if need be
//! let started = host.start_instance(&spec).await?;
//! host.set_route(&RouteSpec { weights: vec![(release.id.clone(), 100)], ..route }).await?;
//! ```

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// The version of this contract: the calls of [`HostHandle`] and the
/// types they carry. A controller and a host that talk over a network
/// compare it when they connect, and refuse to work together on a
/// mismatch. Raise it with any change a peer of the previous version
/// would misread.
///
/// 2: the stop signal is [`StopSignal`], `set_route` answers the bound
/// address, instances carry their `environment`.
///
/// 3: a host no longer reads the controller's blob store: `ensure_release`
/// fetches an artifact its own cache lacks from an [`ArtifactSource`] (its
/// bytes by id, in chunks, with [`ArtifactSourceError`] on failure) and
/// keeps it only when its content hashes to the id; [`HostError`] gains
/// `ArtifactFetch` and `ArtifactMismatch`, which a version-2 peer cannot
/// read.
pub const PROTOCOL_VERSION: u32 = 3;

/// A release as a host needs it: what to unpack, and how to label it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReleaseRef {
    /// Content-addressed release id.
    pub id: String,
    /// Human version label (`v7`).
    pub version: String,
    /// The artifact (blake3 of its archive) the release unpacks.
    pub artifact_id: String,
}

/// One instance to start.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InstanceSpec {
    /// Unique on the host: `<environment>.<release short id>.<index>`, as
    /// [`instance_id`] makes it.
    pub instance_id: String,
    /// The environment it serves (what the id begins with).
    pub environment: String,
    /// The release it runs; `ensure_release` must have succeeded for it.
    pub release: ReleaseRef,
    /// 0-based position in the environment's set.
    pub index: u32,
    /// `service.run`, run by `sh -c` in the release directory.
    pub command: String,
    /// `service.env`.
    pub env: BTreeMap<String, String>,
    /// Readiness and liveness check.
    pub health: HealthSpec,
    /// How to stop it.
    pub stop: StopSpec,
}

/// The service's HTTP health check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HealthSpec {
    /// Path requested on the instance (`/healthz`).
    pub path: String,
    /// Time between checks, from the start: the first comes one interval
    /// after the instance is spawned, so start-up sees no burst.
    pub interval: Duration,
    /// Time one check may take.
    pub timeout: Duration,
    /// Consecutive passes before the instance is ready.
    pub healthy_threshold: u32,
    /// Consecutive failures before a ready instance is unhealthy.
    pub unhealthy_threshold: u32,
    /// Time a new instance has to become ready.
    pub start_timeout: Duration,
}

/// The service's stop policy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StopSpec {
    /// Signal sent to the process group first.
    pub signal: StopSignal,
    /// Time between that signal and SIGKILL.
    pub grace: Duration,
}

/// The signals a service may be stopped with, as the spec allows them. On
/// the wire: `"SIGTERM"`, `"SIGINT"`, …; reading also takes the bare name
/// (`TERM`) in any case, and refuses any other signal (no silent default).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StopSignal {
    /// `SIGTERM`.
    Term,
    /// `SIGINT`.
    Int,
    /// `SIGQUIT`.
    Quit,
    /// `SIGHUP`.
    Hup,
    /// `SIGUSR1`.
    Usr1,
    /// `SIGUSR2`.
    Usr2,
}

impl StopSignal {
    /// Every signal, in the order above.
    pub const ALL: [StopSignal; 6] = [
        StopSignal::Term,
        StopSignal::Int,
        StopSignal::Quit,
        StopSignal::Hup,
        StopSignal::Usr1,
        StopSignal::Usr2,
    ];

    /// Its name: `SIGTERM`, `SIGINT`, ….
    pub fn as_str(self) -> &'static str {
        match self {
            StopSignal::Term => "SIGTERM",
            StopSignal::Int => "SIGINT",
            StopSignal::Quit => "SIGQUIT",
            StopSignal::Hup => "SIGHUP",
            StopSignal::Usr1 => "SIGUSR1",
            StopSignal::Usr2 => "SIGUSR2",
        }
    }
}

impl std::fmt::Display for StopSignal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for StopSignal {
    type Err = String;

    /// `SIGTERM`, `TERM`, `sigterm`, `term`, … ; anything else is refused,
    /// naming what is accepted.
    fn from_str(text: &str) -> Result<StopSignal, String> {
        let upper = text.to_ascii_uppercase();
        let bare = upper.strip_prefix("SIG").unwrap_or(&upper);
        StopSignal::ALL
            .into_iter()
            .find(|signal| &signal.as_str()[3..] == bare)
            .ok_or_else(|| {
                format!(
                    "`{text}` is not a stop signal; use one of SIGTERM, SIGINT, SIGQUIT, SIGHUP, SIGUSR1, SIGUSR2"
                )
            })
    }
}

impl Serialize for StopSignal {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for StopSignal {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<StopSignal, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// Where an instance stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum InstanceState {
    /// Spawned, not ready yet.
    Starting,
    /// Passing its health check; may take traffic.
    Ready,
    /// Was ready, now failing its health check.
    Unhealthy,
    /// Crashed; waiting to be started again.
    Restarting,
    /// Crashed too often; no longer restarted.
    CrashLoop,
    /// Being stopped.
    Stopping,
    /// Gone.
    Stopped,
}

impl InstanceState {
    /// The text shown and served (`ready`, `crash-loop`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            InstanceState::Starting => "starting",
            InstanceState::Ready => "ready",
            InstanceState::Unhealthy => "unhealthy",
            InstanceState::Restarting => "restarting",
            InstanceState::CrashLoop => "crash-loop",
            InstanceState::Stopping => "stopping",
            InstanceState::Stopped => "stopped",
        }
    }
}

/// One instance as the host reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstanceInfo {
    /// As given in `InstanceSpec`.
    pub instance_id: String,
    /// The environment it serves, as given in `InstanceSpec` (empty from a
    /// host that predates the field: [`InstanceInfo::belongs_to`] then
    /// reads it from the id).
    #[serde(default)]
    pub environment: String,
    /// The release it runs.
    pub release_id: String,
    /// 0-based position in its set.
    pub index: u32,
    /// Where it listens.
    pub addr: SocketAddr,
    /// Where it stands.
    pub state: InstanceState,
    /// Times it was restarted after a crash.
    pub restarts: u32,
    /// Same as `leader_pid`; kept for readers written before it.
    pub pid: Option<u32>,
    /// Process id of its process-group leader (also the group id): what
    /// lastmile signals. The app itself when `sh -c` exec'd a simple
    /// command, else the shell.
    #[serde(default)]
    pub leader_pid: Option<u32>,
    /// Process id of the app's main process: the leader when the command
    /// was exec'd, else the shell's child (the one listening on the port
    /// when there are several); `None` when it cannot be told.
    #[serde(default)]
    pub main_pid: Option<u32>,
}

/// What the router on a host should do with one environment's traffic.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RouteSpec {
    /// The environment the route serves.
    pub environment: String,
    /// Listen address (as written in the spec; port 0 picks one).
    pub listen: SocketAddr,
    /// `Host` header to match; `None` matches any.
    pub host: Option<String>,
    /// Path prefix to match.
    pub path_prefix: String,
    /// Release id → weight. Each release's ready instances share its weight.
    /// With a cohort rule the first release owns the lowest cohort buckets,
    /// so a canary listed first only gains users as its weight grows.
    pub weights: Vec<(String, u32)>,
    /// Sticky routing by a user key.
    #[serde(default)]
    pub cohort: Option<CohortRule>,
    /// Requests matching a pin go to its release whatever the weights.
    #[serde(default)]
    pub pins: Vec<PinRule>,
    /// A share of requests copied to a release that takes no user traffic.
    #[serde(default)]
    pub mirror: Option<MirrorRule>,
    /// How the route's listener faces clients: TLS, redirect, limits. It
    /// takes effect when the listener starts serving; certificates come
    /// separately (`HostHandle::set_certificate`) and can change at any time.
    #[serde(default)]
    pub edge: EdgeSpec,
    /// Which answers of a new instance are its warm-up, kept out of the
    /// latency the canary analysis reads (absent: no warm-up).
    #[serde(default)]
    pub warmup: WarmupRule,
}

/// An instance's answers are warm-up while it has given fewer than
/// `requests` answers, or its first answer was less than `duration_ms` ago.
/// They still count as requests and errors (a crash while warming up is
/// real) and in the since-start totals, but not in the window's latency
/// histogram. Zero and zero (the default): no warm-up.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WarmupRule {
    /// Answers of each new instance that are warm-up.
    #[serde(default)]
    pub requests: u64,
    /// Milliseconds from an instance's first answer that are warm-up.
    #[serde(default)]
    pub duration_ms: u64,
}

/// How one listener faces the internet.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EdgeSpec {
    /// HTTPS on the listener; `None` is plain HTTP.
    #[serde(default)]
    pub tls: Option<TlsEdge>,
    /// Limits; a `None` field keeps the router's production default.
    #[serde(default)]
    pub limits: LimitsSpec,
}

/// TLS termination on a listener. The certificates are chosen by SNI among
/// those the host was given with `set_certificate`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TlsEdge {
    /// A plaintext listener that redirects to HTTPS (308) and answers ACME
    /// HTTP-01 challenges.
    #[serde(default)]
    pub redirect_from: Option<SocketAddr>,
    /// `Strict-Transport-Security` on every HTTPS response.
    #[serde(default)]
    pub hsts: Option<HstsSpec>,
}

/// `Strict-Transport-Security` settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HstsSpec {
    /// `max-age`.
    pub max_age: Duration,
    /// `includeSubDomains`.
    pub include_subdomains: bool,
    /// `preload`.
    pub preload: bool,
}

/// Router limits of one listener; `None` keeps the default.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LimitsSpec {
    /// Largest request body (413).
    #[serde(default)]
    pub max_body_bytes: Option<u64>,
    /// Most header fields in a request (431).
    #[serde(default)]
    pub max_headers: Option<u32>,
    /// Open connections on the listener.
    #[serde(default)]
    pub max_connections: Option<u32>,
    /// Open connections from one client IP.
    #[serde(default)]
    pub max_connections_per_ip: Option<u32>,
    /// Longest wait for the next request body byte (408).
    #[serde(default)]
    pub body_timeout: Option<Duration>,
    /// Longest idle keep-alive time.
    #[serde(default)]
    pub idle_timeout: Option<Duration>,
    /// Longest wait for a slow client to take the next part of a response.
    #[serde(default)]
    pub send_timeout: Option<Duration>,
    /// Requests per second and burst per client IP (429 beyond).
    #[serde(default)]
    pub rate_limit: Option<RateLimitSpec>,
}

/// A per-client-IP token bucket.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RateLimitSpec {
    /// Sustained requests per second.
    pub per_second: u32,
    /// Bucket size.
    pub burst: u32,
}

/// A certificate (chain and private key, PEM) for some host names, which
/// the host's TLS listeners serve to clients asking for those names (SNI).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CertificateSpec {
    /// Host names (exact or `*.example.com`) it serves.
    pub hosts: Vec<String>,
    /// Certificate chain, leaf first, PEM.
    pub chain_pem: String,
    /// Private key, PEM. Never printed: `Debug` hides it.
    pub key_pem: String,
}

impl std::fmt::Debug for CertificateSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CertificateSpec")
            .field("hosts", &self.hosts)
            .field("chain_pem", &format_args!("{} bytes", self.chain_pem.len()))
            .field("key_pem", &format_args!("<redacted>"))
            .finish()
    }
}

/// The id of an environment's instance on a host:
/// `<environment>.<release short id>.<index>`. Environment names may
/// contain `.` (`prod.eu`); the release part and the index never do, so
/// [`instance_environment`] reads the environment back from the right.
pub fn instance_id(environment: &str, release_short_id: &str, index: u32) -> String {
    format!("{environment}.{release_short_id}.{index}")
}

/// The environment an [`instance_id`] belongs to: everything before its last
/// two `.`-separated parts. `None` for an id not made by [`instance_id`].
/// Compare it whole (never an id's prefix: `prod.` also begins
/// `prod.eu.…`).
///
/// ```
/// assert_eq!(lastmile_host::instance_environment("prod.eu.1a2b3c4d.0"), Some("prod.eu"));
/// assert_eq!(lastmile_host::instance_environment("prod.1a2b3c4d.0"), Some("prod"));
/// ```
pub fn instance_environment(instance_id: &str) -> Option<&str> {
    let mut parts = instance_id.rsplitn(3, '.');
    let index = parts.next()?;
    let release = parts.next()?;
    let environment = parts.next()?;
    (!environment.is_empty() && !release.is_empty() && index.parse::<u32>().is_ok())
        .then_some(environment)
}

impl InstanceInfo {
    /// Whether this instance is one of `environment`'s.
    pub fn belongs_to(&self, environment: &str) -> bool {
        if self.environment.is_empty() {
            instance_environment(&self.instance_id) == Some(environment)
        } else {
            self.environment == environment
        }
    }
}

impl RouteSpec {
    /// A route with weights only.
    pub fn weighted(
        environment: &str,
        listen: SocketAddr,
        host: Option<String>,
        path_prefix: &str,
        weights: Vec<(String, u32)>,
    ) -> RouteSpec {
        RouteSpec {
            environment: environment.to_string(),
            listen,
            host,
            path_prefix: path_prefix.to_string(),
            weights,
            cohort: None,
            pins: Vec::new(),
            mirror: None,
            edge: EdgeSpec::default(),
            warmup: WarmupRule::default(),
        }
    }
}

/// Where a user key is read from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum KeySource {
    /// A request header (lowercase name).
    Header(String),
    /// A cookie.
    Cookie(String),
}

/// Sticky cohorts: `murmur3_x86_32(environment ":" key) % 10000` picks the
/// release, so a user stays on one release for a given weight.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CohortRule {
    /// Where the key is.
    pub key: KeySource,
    /// Cookie the router sets (a random key) on requests that have none.
    pub set_cookie: Option<String>,
}

/// Requests whose key equals `value` go to `release`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PinRule {
    /// Where the key is.
    pub key: KeySource,
    /// The value that matches.
    pub value: String,
    /// The release they go to.
    pub release: String,
}

/// Dark launch: copies of requests to a release that answers no user.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MirrorRule {
    /// The release the copies go to.
    pub release: String,
    /// Share of eligible requests copied, 0..=100.
    pub percent: f64,
    /// Methods eligible (`GET`, `HEAD` by default).
    pub methods: Vec<String>,
}

/// The router's counters for one release over a window (what the canary
/// analysis reads), and its totals since the router started (what a
/// Prometheus counter or histogram needs: they never fall, except to 0 when
/// the router restarts).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ReleaseStats {
    /// Requests answered (any status).
    pub requests: u64,
    /// Of which 5xx, including the router's own 502/503/504.
    pub errors_5xx: u64,
    /// Failed connections to the release's instances.
    pub connect_errors: u64,
    /// Latency percentiles in milliseconds, over the window's latency
    /// samples (warm-up answers left out).
    pub p50_ms: f64,
    /// 95th percentile.
    pub p95_ms: f64,
    /// 99th percentile.
    pub p99_ms: f64,
    /// The window's latency histogram: one entry per non-empty bucket,
    /// ascending by `ms` (the bucket's middle; buckets are about 6% wide).
    /// Warm-up answers are not in it. Hosts' histograms merge by adding
    /// the counts of equal `ms`.
    #[serde(default)]
    pub latency_window: Vec<LatencyCount>,
    /// Requests in `latency_window` (the sum of its counts).
    #[serde(default)]
    pub latency_samples: u64,
    /// Requests in the window answered by instances still warming up:
    /// counted in `requests` and the errors, not in the latency.
    #[serde(default)]
    pub warmup_requests: u64,
    /// Requests answered since the router started.
    #[serde(default)]
    pub requests_total: u64,
    /// Of which 5xx, since the router started.
    #[serde(default)]
    pub errors_5xx_total: u64,
    /// Failed connections since the router started.
    #[serde(default)]
    pub connect_errors_total: u64,
    /// Cumulative latency buckets since the router started, ascending by
    /// bound; requests slower than the last bound count only in
    /// `latency_count`.
    #[serde(default)]
    pub latency_buckets: Vec<LatencyBucket>,
    /// Requests in the latency histogram since the router started.
    #[serde(default)]
    pub latency_count: u64,
    /// Sum of their latencies, in seconds.
    #[serde(default)]
    pub latency_sum_seconds: f64,
}

/// One bucket of [`ReleaseStats::latency_window`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct LatencyCount {
    /// The bucket's representative latency, in milliseconds.
    pub ms: f64,
    /// Requests in the bucket.
    pub requests: u64,
}

/// One cumulative bucket of [`ReleaseStats::latency_buckets`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct LatencyBucket {
    /// Upper bound, in seconds (Prometheus's `le`).
    pub le_seconds: f64,
    /// Requests that took at most `le_seconds`.
    pub requests: u64,
}

/// Why a host call failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
pub enum HostError {
    /// The release's artifact is neither in the host's cache nor in its
    /// [`ArtifactSource`].
    #[error("artifact {id} is missing from the artifact store; build the release again")]
    MissingArtifact {
        /// Artifact id.
        id: String,
    },
    /// The artifact could not be fetched from the [`ArtifactSource`] or kept
    /// in the host's cache; nothing of it was kept, so the call can be
    /// retried.
    #[error(
        "cannot fetch artifact {id}: {reason}; nothing of it was kept, so deploying again retries the fetch"
    )]
    ArtifactFetch {
        /// Artifact id.
        id: String,
        /// What failed, and after how many bytes.
        reason: String,
    },
    /// The bytes fetched for an artifact are another content than its id
    /// names; they were not kept.
    #[error(
        "artifact {id} arrived damaged: its content hashes to {actual}, not to its id; nothing was kept. Check the controller's copy (build the release again) and retry"
    )]
    ArtifactMismatch {
        /// Artifact id: the digest expected.
        id: String,
        /// The blake3 the fetched content hashes to.
        actual: String,
    },
    /// An instance did not become ready.
    #[error("{reason}")]
    NotReady {
        /// The instance.
        instance_id: String,
        /// The whole message: it names the instance, what was probed and
        /// what answered, how long the host waited, and what to change.
        reason: String,
        /// The instance's own last output lines (stdout and stderr, not
        /// the lines logging health probes), shown below the message.
        last_lines: Vec<String>,
    },
    /// The route's listen address is taken.
    #[error("{addr} is already in use by another process; set `route.listen` to a free address")]
    PortInUse {
        /// The address.
        addr: SocketAddr,
    },
    /// The host cannot be reached (remote hosts).
    #[error("host {host} is unreachable: {reason}")]
    Unreachable {
        /// Host name.
        host: String,
        /// What failed.
        reason: String,
    },
    /// Anything else, already worded for the user.
    #[error("{message}")]
    Other {
        /// What failed and what to do.
        message: String,
    },
}

/// A host the controller can drive. Every method is idempotent where it
/// can be: asking twice for the same state does no harm, so a controller
/// that restarts mid-deployment may simply ask again.
#[async_trait::async_trait]
pub trait HostHandle: Send + Sync + std::fmt::Debug {
    /// The host's name (`local`, `web-1`).
    fn name(&self) -> &str;
    /// Makes the release's files present on the host: unpacks its artifact
    /// from the host's own cache, first fetching it by id from the host's
    /// [`ArtifactSource`] when the cache lacks it. A fetched artifact is
    /// kept only if its content hashes to its id.
    async fn ensure_release(&self, release: &ReleaseRef) -> Result<(), HostError>;
    /// Starts one instance and waits until it is ready.
    async fn start_instance(&self, spec: &InstanceSpec) -> Result<InstanceInfo, HostError>;
    /// Takes the instance out of rotation, lets its in-flight requests
    /// finish, then stops it. Unknown ids succeed.
    async fn stop_instance(&self, instance_id: &str) -> Result<(), HostError>;
    /// Every instance the host runs.
    async fn instances(&self) -> Result<Vec<InstanceInfo>, HostError>;
    /// Sets (replaces) one environment's route and weights, atomically.
    /// Returns the address its listener is bound to: `route.listen`, with
    /// the port the system chose when that port is 0.
    async fn set_route(&self, route: &RouteSpec) -> Result<SocketAddr, HostError>;
    /// Serves `certificate` for its host names on every TLS listener, from
    /// the next handshake on; a certificate for the same names is replaced.
    /// Open connections are not disturbed.
    async fn set_certificate(&self, certificate: &CertificateSpec) -> Result<(), HostError>;
    /// Answers `GET /.well-known/acme-challenge/{token}` on the host's
    /// plaintext listeners with `key_authorization`; `None` withdraws it.
    async fn set_challenge(
        &self,
        token: &str,
        key_authorization: Option<&str>,
    ) -> Result<(), HostError>;
    /// The router's counters for a release over the last `window`.
    async fn stats(&self, release_id: &str, window: Duration) -> Result<ReleaseStats, HostError>;
    /// Deletes unpacked releases except these (and those with instances).
    async fn prune_releases(&self, keep: &[String]) -> Result<(), HostError>;
    /// `GET path` on one instance, directly (not through the router): the
    /// verification gate before a release gets traffic.
    async fn probe(
        &self,
        instance_id: &str,
        path: &str,
        timeout: Duration,
    ) -> Result<ProbeAnswer, HostError>;
    /// Runs a verification command on the host with `sh -c`, in the
    /// instance's release directory, with `INSTANCE_URL`
    /// (`http://127.0.0.1:PORT`) and `PORT` set; killed after `timeout`.
    async fn run_check(
        &self,
        instance_id: &str,
        command: &str,
        timeout: Duration,
    ) -> Result<CheckOutcome, HostError>;
}

/// Where a host gets an artifact its cache lacks, by id: the controller's
/// artifact store, in process or across the network. It yields the blob as
/// the store holds it (the zstd-compressed tar whose uncompressed content
/// hashes, with blake3, to the id) in chunks, so an artifact is never held
/// whole in memory. The host checks the content against the id; a source
/// need not.
#[async_trait::async_trait]
pub trait ArtifactSource: Send + Sync + std::fmt::Debug {
    /// Opens artifact `id` for reading.
    async fn open(&self, id: &str) -> Result<Box<dyn ArtifactChunks>, ArtifactSourceError>;
}

/// One artifact being read from an [`ArtifactSource`].
#[async_trait::async_trait]
pub trait ArtifactChunks: Send {
    /// The blob's size in bytes, when the source knows it (for progress
    /// and messages; the content is checked by its hash, not its size).
    fn size(&self) -> Option<u64>;
    /// The next bytes of the blob, never empty; `None` after the last.
    async fn next_chunk(&mut self) -> Result<Option<Vec<u8>>, ArtifactSourceError>;
}

/// Why an [`ArtifactSource`] could not yield an artifact.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
pub enum ArtifactSourceError {
    /// The source has no artifact with that id.
    #[error("artifact {id} is not in the controller's artifact store")]
    NotFound {
        /// Artifact id.
        id: String,
    },
    /// Reading it failed (a file, a connection).
    #[error("{message}")]
    Io {
        /// What failed, worded for the user.
        message: String,
    },
    /// Anything else, already worded for the user.
    #[error("{message}")]
    Other {
        /// What failed and what to do.
        message: String,
    },
}

/// How a verification command ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckOutcome {
    /// Exit code; `None` when it was killed (timeout or signal).
    pub exit_code: Option<i32>,
    /// Its last output lines.
    pub last_lines: Vec<String>,
}

/// What an instance answered to a probe.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProbeAnswer {
    /// HTTP status.
    pub status: u16,
    /// The body (at most 64 KiB, lossily decoded).
    pub body: String,
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::{ArtifactSourceError, HostError, InstanceInfo, InstanceState, StopSignal};

    #[test]
    fn artifact_errors_cross_the_wire_unchanged_and_name_the_artifact() {
        let id = "a".repeat(64);
        let actual = "b".repeat(64);
        let source_errors = [
            ArtifactSourceError::NotFound { id: id.clone() },
            ArtifactSourceError::Io {
                message: "connection reset".to_owned(),
            },
            ArtifactSourceError::Other {
                message: "the controller is shutting down".to_owned(),
            },
        ];
        for error in source_errors {
            let wire = serde_json::to_string(&error).unwrap();
            assert_eq!(
                serde_json::from_str::<ArtifactSourceError>(&wire).unwrap(),
                error
            );
        }
        let fetch = HostError::ArtifactFetch {
            id: id.clone(),
            reason: "its source failed after 7 bytes: connection reset".to_owned(),
        };
        let mismatch = HostError::ArtifactMismatch {
            id: id.clone(),
            actual: actual.clone(),
        };
        insta::assert_snapshot!(fetch, @"cannot fetch artifact aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa: its source failed after 7 bytes: connection reset; nothing of it was kept, so deploying again retries the fetch");
        insta::assert_snapshot!(mismatch, @"artifact aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa arrived damaged: its content hashes to bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb, not to its id; nothing was kept. Check the controller's copy (build the release again) and retry");
        insta::assert_snapshot!(
            ArtifactSourceError::NotFound { id: id.clone() },
            @"artifact aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa is not in the controller's artifact store"
        );
        for error in [fetch, mismatch] {
            let wire = serde_json::to_string(&error).unwrap();
            assert_eq!(serde_json::from_str::<HostError>(&wire).unwrap(), error);
        }
    }

    #[test]
    fn an_instance_belongs_to_its_environment_whole_by_field_or_by_id() {
        let instance = |id: &str, environment: &str| InstanceInfo {
            instance_id: id.to_owned(),
            environment: environment.to_owned(),
            release_id: "r".to_owned(),
            index: 0,
            addr: "127.0.0.1:1".parse().unwrap(),
            state: InstanceState::Ready,
            restarts: 0,
            pid: None,
            leader_pid: None,
            main_pid: None,
        };
        let cases = [
            (instance("prod.eu.1a2b3c4d.0", "prod.eu"), "prod.eu", true),
            (instance("prod.eu.1a2b3c4d.0", "prod.eu"), "prod", false),
            (instance("prod.1a2b3c4d.0", "prod"), "prod", true),
            (instance("prod.1a2b3c4d.0", "prod"), "prod.eu", false),
            // From a host that predates the field: the id decides.
            (instance("prod.eu.1a2b3c4d.0", ""), "prod.eu", true),
            (instance("prod.eu.1a2b3c4d.0", ""), "prod", false),
            (instance("not-an-instance-id", ""), "", false),
        ];
        for (info, environment, belongs) in cases {
            assert_eq!(
                info.belongs_to(environment),
                belongs,
                "{} ({:?}) in {environment:?}",
                info.instance_id,
                info.environment
            );
        }
    }

    #[test]
    fn stop_signals_read_by_name_with_or_without_sig_in_any_case_and_nothing_else() {
        let accepted = [
            ("SIGTERM", StopSignal::Term),
            ("TERM", StopSignal::Term),
            ("sigterm", StopSignal::Term),
            ("int", StopSignal::Int),
            ("SIGQUIT", StopSignal::Quit),
            ("Hup", StopSignal::Hup),
            ("SIGUSR1", StopSignal::Usr1),
            ("usr2", StopSignal::Usr2),
        ];
        for (text, signal) in accepted {
            assert_eq!(text.parse::<StopSignal>(), Ok(signal), "{text}");
        }
        for text in [
            "", "SIG", "KILL", "SIGKILL", "SIGSTOP", "9", "SIGTERM ", "TERMX",
        ] {
            let error = text.parse::<StopSignal>().unwrap_err();
            assert!(error.contains("is not a stop signal"), "{text}: {error}");
        }
        for signal in StopSignal::ALL {
            let wire = serde_json::to_string(&signal).unwrap();
            assert_eq!(wire, format!("\"{}\"", signal.as_str()));
            assert_eq!(serde_json::from_str::<StopSignal>(&wire).unwrap(), signal);
        }
        assert!(serde_json::from_str::<StopSignal>("\"SIGKILL\"").is_err());
    }
}
