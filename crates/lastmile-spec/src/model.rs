//! The validated `lastmile.yaml` model: what every other crate reads.
//!
//! These types hold values that already passed validation (durations parsed,
//! names unique, `needs` resolved, the DAG acyclic). Parsing and diagnostics
//! live beside them; nothing here knows about YAML.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Serialize;

mod flags;

pub use flags::{Condition, Flag, FlagRule, FlagType, Operator, Rollout, Segment, Serve, Variant};

/// A whole `lastmile.yaml`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Spec {
    /// Application name: lowercase letters, digits and `-`, 1..=63 chars.
    pub app: String,
    /// The build/test/package DAG.
    pub pipeline: Pipeline,
    /// What a successful run packs into the artifact store.
    pub artifact: Option<Artifact>,
    /// How a release runs as a long-lived process.
    pub service: Option<Service>,
    /// Where to secret values come from besides the process environment.
    pub secrets: Secrets,
    /// Named deploy targets, in file order.
    pub environments: Vec<Environment>,
    /// Named groups of users that flag rules target, in file order.
    pub segments: Vec<Segment>,
    /// Feature flags, in file order.
    pub flags: Vec<Flag>,
    /// Sections whose semantics arrive in later versions (`monitor`,
    /// `drills`, `hosts`): present in the file but not yet acted upon. A
    /// command that needs one says so plainly instead of ignoring it.
    pub reserved_sections: Vec<ReservedSection>,
}

/// `pipeline:`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Pipeline {
    /// Steps in file order; `needs` refer to other steps by name.
    pub steps: Vec<Step>,
}

/// One `pipeline.steps[]` entry.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Step {
    /// Unique within the pipeline: letters, digits, `-`, `_`, `.`.
    pub name: String,
    /// Shell command, run by `sh -c` (the text reaches the shell as the step's
    /// own program, never interpolated into another command line).
    pub run: String,
    /// Names of steps that must succeed before this one starts.
    pub needs: Vec<String>,
    /// Extra environment variables for the step.
    pub env: BTreeMap<String, String>,
    /// Kill the step (whole process group) after this long. `None`: no limit.
    pub timeout: Option<Duration>,
    /// Extra attempts after a failure (0 = run once).
    pub retries: u32,
    /// Globs (relative to the spec directory) whose contents key the cache.
    /// Empty: the step is never cached.
    pub inputs: Vec<String>,
    /// Globs (relative to the workspace) saved after success and restored on a
    /// cache hit, so later steps see the same files whether or not it ran.
    pub outputs: Vec<String>,
    /// Names of secrets injected as environment variables and masked in logs.
    pub secrets: Vec<String>,
    /// Working directory relative to the workspace root (default `.`).
    pub workdir: Option<String>,
}

/// `artifact:`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Artifact {
    /// Files, directories or globs (relative to the workspace) to pack.
    pub paths: Vec<String>,
}

/// `secrets:`: where secret values come from.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Secrets {
    /// A dotenv-style file (`NAME=value` lines), relative to the spec
    /// directory or absolute. The process environment wins over the file.
    pub file: Option<String>,
}

/// `service:`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Service {
    /// Command that starts one instance; it must listen on `$PORT`.
    pub run: String,
    /// Extra environment for every instance.
    pub env: BTreeMap<String, String>,
    /// Names of secrets (`lastmile secret set APP NAME`) given to every
    /// instance as environment variables; the server fills them in.
    pub secrets: Vec<String>,
    /// Readiness and liveness check.
    pub health: HealthCheck,
    /// How an instance is stopped.
    pub stop: StopPolicy,
}

/// `service.health`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HealthCheck {
    /// HTTP path probed with GET; a 2xx or 3xx answer is healthy.
    pub path: String,
    /// Time between probes (default 1s).
    pub interval: Duration,
    /// Per-probe timeout (default 2s).
    pub timeout: Duration,
    /// Consecutive successes to become ready (default 1).
    pub healthy_threshold: u32,
    /// Consecutive failures to become unhealthy (default 3).
    pub unhealthy_threshold: u32,
    /// Give up waiting for readiness after this long (default 60s).
    pub start_timeout: Duration,
}

/// `service.stop`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StopPolicy {
    /// Signal sent to the process group first (default `SIGTERM`).
    pub signal: StopSignal,
    /// Time allowed after the signal before `SIGKILL` (default 30s).
    pub grace: Duration,
}

/// Signals a service may ask to be stopped with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum StopSignal {
    /// SIGTERM.
    Sigterm,
    /// SIGINT.
    Sigint,
    /// SIGQUIT.
    Sigquit,
    /// SIGHUP.
    Sighup,
    /// SIGUSR1.
    Sigusr1,
    /// SIGUSR2.
    Sigusr2,
}

/// One `environments.<name>` entry.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Environment {
    /// The map key: `staging`, `production`, …
    pub name: String,
    /// Instances per host (default 1).
    pub instances: u32,
    /// How a new release replaces the old one.
    pub strategy: Strategy,
    /// Conditions before a deployment may start or proceed.
    pub gates: Gates,
    /// Where the router accepts this environment's traffic.
    pub route: Option<Route>,
    /// Promotion from the previous environment: automatic or by hand.
    pub promote: Promote,
    /// How the router keeps a user on one side of a canary (`None`: a
    /// request's side is drawn by weight alone).
    pub cohort: Option<Cohort>,
    /// Requests that always go to one side, whatever the canary weight.
    pub pins: Vec<Pin>,
    /// Where deploy events (started, step, promoted, rolled back) are posted.
    pub notify: Vec<Notify>,
}

/// `environments.<name>.strategy` with its parameters.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
#[allow(
    clippy::large_enum_variant,
    reason = "a spec holds a handful of environments, read once; a box would only make matching on the canary clumsier"
)]
pub enum Strategy {
    /// Replace instances in batches.
    Rolling {
        /// Instances replaced per batch (default 1).
        batch: u32,
        /// Extra instances allowed above `instances` during the roll (default 1).
        max_surge: u32,
    },
    /// Start the full new set, verify it, switch traffic at once.
    BlueGreen {
        /// How long the old set stays warm for an instant rollback (default 10m).
        rollback_window: Duration,
    },
    /// Stop the old set, then start the new one (brief downtime by design).
    Recreate,
    /// Shift traffic by weight steps with analysis between them.
    Canary(Canary),
}

impl Strategy {
    /// The strategy's `type` as written in the spec (`rolling`, `blue-green`, …).
    pub fn name(&self) -> &'static str {
        match self {
            Strategy::Rolling { .. } => "rolling",
            Strategy::BlueGreen { .. } => "blue-green",
            Strategy::Recreate => "recreate",
            Strategy::Canary(_) => "canary",
        }
    }
}

/// The canary strategy's parameters.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Canary {
    /// Weights (percent of traffic) and pauses, in order; weights strictly
    /// ascending, the last step a weight of 100 (default `[1, 5, 25, 50, 100]`).
    pub steps: Vec<CanaryStep>,
    /// Minimum time at each step before a decision (default 30s).
    pub step_duration: Duration,
    /// Minimum canary requests at each step before a decision (default 100).
    pub min_requests: u64,
    /// Give up a step that never gets enough evidence (default 10m).
    pub step_deadline: Duration,
    /// Abort when the canary's error rate exceeds stable's by this many
    /// percentage points (default 1.0, range 0..=100).
    pub max_error_rate_increase: f64,
    /// Abort when canary p99 latency exceeds stable's by this factor
    /// (default 1.5, range 1..=100).
    pub max_latency_ratio: f64,
    /// How the canary is compared with stable between steps.
    pub analysis: CanaryAnalysis,
    /// Dark launch: copy live requests to the canary before the first weight
    /// step, its answers discarded.
    pub mirror: Option<Mirror>,
    /// Keep analysing this long after promotion to 100% and roll back on a
    /// regression (default 0s: off).
    pub guard: Duration,
}

/// One entry of a canary's `steps`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum CanaryStep {
    /// Send this percent of traffic (above 0, at most 100) to the canary.
    Weight(f64),
    /// Hold the current weight until a person resumes the rollout (before
    /// any traffic when it is the first step).
    Pause,
}

/// `strategy.analysis`: the statistics behind a canary's go/no-go.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CanaryAnalysis {
    /// How often the router's counters are sampled (default 1s, 100ms..=1m).
    pub interval: Duration,
    /// Confidence required before calling the canary worse; the error-rate
    /// test's false-alarm rate is `1 - confidence` (default 0.99, 0.5..=0.9999).
    pub confidence: f64,
    /// Abort when canary p95 latency exceeds stable's by this factor
    /// (default 1.5, range 1..=100).
    pub max_p95_ratio: f64,
    /// Abort when canary p99 latency exceeds this many milliseconds, whatever
    /// stable does.
    pub max_p99_ms: Option<f64>,
    /// Abort when canary p95 latency exceeds this many milliseconds.
    pub max_p95_ms: Option<f64>,
    /// The latency test's threshold is never below this many milliseconds:
    /// a canary is only slower than stable when its answers take longer than
    /// this (default 5.0; sub-millisecond differences are noise).
    pub latency_floor_ms: f64,
    /// Each new instance's first answers that are warm-up, left out of the
    /// latency analysis (default 20, 0..=10000).
    pub warmup_requests: u64,
    /// Each new instance's answers within this time of its first one are
    /// warm-up too (default 0s, at most 10m).
    pub warmup: Duration,
    /// An extra check: a Prometheus query whose value must stay at or below a
    /// threshold.
    pub prometheus: Option<PrometheusCheck>,
}

/// `analysis.prometheus`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PrometheusCheck {
    /// Base URL of the Prometheus server (`http://` or `https://`).
    pub url: String,
    /// PromQL expression evaluated at each analysis interval.
    pub query: String,
    /// Abort when the query's value exceeds this.
    pub max: f64,
}

/// `strategy.mirror`: the dark-launch phase of a canary.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Mirror {
    /// Percent of matching requests copied to the canary (above 0, at most 100).
    pub percent: f64,
    /// Uppercase HTTP methods that are mirrored (default `GET`, `HEAD`).
    pub methods: Vec<String>,
    /// How long the dark phase runs before analysis decides to go on to the
    /// weight steps (default 1m).
    pub duration: Duration,
    /// Mirrored requests needed before a decision (default 100).
    pub min_requests: u64,
}

/// `environments.<name>.cohort`: sticky assignment of users to a side.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Cohort {
    /// The request header or cookie whose value is hashed into a side.
    pub key: CohortKey,
    /// Cookie the router sets (with a random id) on a request without a key,
    /// and reads as the key afterwards.
    pub set_cookie: Option<String>,
}

/// Where a cohort or pin reads its value from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum CohortKey {
    /// A request header, its name lowercased.
    Header(String),
    /// A cookie, by name.
    Cookie(String),
}

/// One `environments.<name>.pins[]` entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Pin {
    /// The header or cookie to look at.
    pub key: CohortKey,
    /// The exact value that pins a request.
    pub value: String,
    /// The side a matching request always goes to.
    pub to: PinTarget,
}

/// The side a pinned request goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum PinTarget {
    /// The new release, at any weight (even 0, during a pause or dark launch).
    Canary,
    /// The current release, even at 100.
    Stable,
}

/// One `environments.<name>.notify[]` entry.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Notify {
    /// Where events are POSTed (`http://` or `https://`).
    pub url: String,
    /// The body's shape.
    pub format: NotifyFormat,
    /// Give up one delivery after this long (default 5s).
    pub timeout: Duration,
}

/// The body of a notification.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum NotifyFormat {
    /// lastmile's own JSON event.
    Json,
    /// A Slack incoming-webhook message (`{"text": …}`).
    Slack,
}

/// `environments.<name>.gates`.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Gates {
    /// A person must approve before traffic moves (`approval: required`).
    pub approval_required: bool,
    /// Checks against the new release before it gets traffic.
    pub verify: Vec<VerifyCheck>,
    /// HTTP hooks called around a deployment.
    pub webhooks: Webhooks,
}

/// `gates.webhooks`.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Webhooks {
    /// Called before traffic moves; a failure stops the deployment.
    pub before: Option<Webhook>,
    /// Called after the new release has all the traffic.
    pub after: Option<Webhook>,
    /// Called when a deployment rolls back.
    pub rollback: Option<Webhook>,
}

/// One webhook.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Webhook {
    /// URL POSTed to (`http://` or `https://`).
    pub url: String,
    /// Give up after this long, which counts as a failure (default 10s).
    pub timeout: Duration,
}

/// One `gates.verify[]` entry: an HTTP path check or a command.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct VerifyCheck {
    /// Path requested on a new instance (exactly one of `path` and `run`).
    pub path: Option<String>,
    /// Shell command run against the new release; exit status 0 passes.
    pub run: Option<String>,
    /// Expected status of a path check (default 200).
    pub status: u16,
    /// Substring a path check's body must contain, if set.
    pub body_contains: Option<String>,
    /// Give up the check after this long, which fails it (default 10s).
    pub timeout: Duration,
}

/// `environments.<name>.route`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Route {
    /// Address the router listens on.
    pub listen: SocketAddr,
    /// `Host` header to match; `None` matches any host.
    pub host: Option<String>,
    /// Path prefix to match (default `/`).
    pub path_prefix: String,
    /// HTTPS termination on `listen`; `None`: the listener speaks plain HTTP.
    pub tls: Option<RouteTls>,
    /// Request and connection limits on `listen`; unset ones take the router's defaults.
    pub limits: RouteLimits,
}

/// `route.tls`: HTTPS on the route's listener.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RouteTls {
    /// Where the certificate comes from: files, or issued automatically by ACME.
    pub source: TlsSource,
    /// A plaintext listener that answers with a 308 to `https://` and serves
    /// ACME HTTP-01 challenges (with ACME the default is port 80 on `listen`'s IP).
    pub redirect_from: Option<SocketAddr>,
    /// The `Strict-Transport-Security` header sent on HTTPS answers; `None`: not sent.
    pub hsts: Option<Hsts>,
}

/// Where a TLS listener's certificate comes from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum TlsSource {
    /// PEM files, as written in the spec: relative to the directory of
    /// `lastmile.yaml` (see [`TlsSource::relative_to`]) or absolute. Their
    /// existence is checked at deploy time, not by the parser.
    Files {
        /// The certificate chain (PEM), leaf first.
        cert: PathBuf,
        /// The private key (PEM).
        key: PathBuf,
    },
    /// A certificate for the route's `host`, issued and renewed over ACME (HTTP-01).
    Acme(Acme),
}

/// `route.tls.acme`: the ACME account and CA that issue a route's certificate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Acme {
    /// Contact address given to the CA (expiry notices); `None`: no contact.
    pub email: Option<String>,
    /// The CA's ACME directory URL, always `https://` (default: Let's Encrypt production).
    pub directory: String,
    /// An extra root certificate (PEM) trusted for the directory's own HTTPS,
    /// for test CAs such as Pebble; relative to the spec directory or absolute.
    pub ca: Option<PathBuf>,
}

/// `route.tls.hsts`: the `Strict-Transport-Security` header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Hsts {
    /// `max-age`: how long browsers keep to HTTPS (default 365d; 0s tells them to forget).
    pub max_age: Duration,
    /// `includeSubDomains`: the rule covers every subdomain too (default false).
    pub include_subdomains: bool,
    /// `preload`: consent to browsers' built-in HSTS lists (default false).
    pub preload: bool,
}

/// `route.limits`: per-listener protection; `None` takes the router's default.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct RouteLimits {
    /// Largest request body in bytes, else 413 (router default 10 MiB).
    pub max_body: Option<u64>,
    /// Most header fields in one request, else 431; 1..=256 (router default 100).
    pub max_headers: Option<u32>,
    /// Open client connections on the listener (router default 10,000).
    pub max_connections: Option<u32>,
    /// Open client connections from one client IP (router default 1,000).
    pub max_connections_per_ip: Option<u32>,
    /// Longest wait for the next byte of a request body, else 408 (router default 30s).
    pub body_timeout: Option<Duration>,
    /// Longest idle time of a keep-alive connection between requests (router default 60s).
    pub idle_timeout: Option<Duration>,
    /// Longest wait for a slow client to take the next part of a response (router default 60s).
    pub send_timeout: Option<Duration>,
    /// Requests per second per client IP, above which the answer is 429 (router default: none).
    pub rate_limit: Option<RateLimit>,
}

/// `route.limits.rate_limit`: a token bucket per client IP.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct RateLimit {
    /// Sustained requests per second from one client IP.
    pub per_second: u32,
    /// Requests one client IP may make at once (bucket size; default `per_second`).
    pub burst: u32,
}

/// The Let's Encrypt production directory, `route.tls.acme.directory`'s default.
pub const LETS_ENCRYPT_DIRECTORY: &str = "https://acme-v02.api.letsencrypt.org/directory";

impl Default for Acme {
    fn default() -> Self {
        Acme {
            email: None,
            directory: LETS_ENCRYPT_DIRECTORY.to_owned(),
            ca: None,
        }
    }
}

impl Default for Hsts {
    /// What `hsts: true` means: one year, this host only, no preload.
    fn default() -> Self {
        Hsts {
            max_age: Duration::from_secs(365 * 86_400),
            include_subdomains: false,
            preload: false,
        }
    }
}

impl TlsSource {
    /// The same source with relative paths joined onto `dir` (the directory
    /// of `lastmile.yaml`, [`crate::LoadedSpec::dir`]); absolute ones are kept.
    pub fn relative_to(&self, dir: &Path) -> TlsSource {
        match self {
            TlsSource::Files { cert, key } => TlsSource::Files {
                cert: dir.join(cert),
                key: dir.join(key),
            },
            TlsSource::Acme(acme) => TlsSource::Acme(Acme {
                ca: acme.ca.as_ref().map(|ca| dir.join(ca)),
                ..acme.clone()
            }),
        }
    }
}

/// `environments.<name>.promote`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Promote {
    /// Promote as soon as the previous environment is healthy.
    Auto,
    /// Wait for `lastmile promote`.
    Manual,
}

/// A top-level section that later versions give meaning to.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ReservedSection {
    /// `monitor`, `drills` or `hosts`.
    pub name: String,
    /// 1-based line of the section key, for messages.
    pub line: usize,
}

impl Default for Canary {
    fn default() -> Self {
        Canary {
            steps: [1.0, 5.0, 25.0, 50.0, 100.0]
                .into_iter()
                .map(CanaryStep::Weight)
                .collect(),
            step_duration: Duration::from_secs(30),
            min_requests: 100,
            step_deadline: Duration::from_secs(600),
            max_error_rate_increase: 1.0,
            max_latency_ratio: 1.5,
            analysis: CanaryAnalysis::default(),
            mirror: None,
            guard: Duration::ZERO,
        }
    }
}

impl Default for CanaryAnalysis {
    fn default() -> Self {
        CanaryAnalysis {
            interval: Duration::from_secs(1),
            confidence: 0.99,
            max_p95_ratio: 1.5,
            max_p99_ms: None,
            max_p95_ms: None,
            latency_floor_ms: 5.0,
            warmup_requests: 20,
            warmup: Duration::ZERO,
            prometheus: None,
        }
    }
}

impl Serialize for CanaryStep {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            CanaryStep::Weight(weight) => serializer.serialize_f64(*weight),
            CanaryStep::Pause => serializer.serialize_str("pause"),
        }
    }
}

impl Canary {
    /// The weights alone, in order (pauses left out).
    pub fn weights(&self) -> impl Iterator<Item = f64> + '_ {
        self.steps.iter().filter_map(|step| match step {
            CanaryStep::Weight(weight) => Some(*weight),
            CanaryStep::Pause => None,
        })
    }
}

impl Spec {
    /// The step with this name, if any.
    pub fn step(&self, name: &str) -> Option<&Step> {
        self.pipeline.steps.iter().find(|step| step.name == name)
    }

    /// The reserved section with this name, if the file has one.
    pub fn reserved(&self, name: &str) -> Option<&ReservedSection> {
        self.reserved_sections
            .iter()
            .find(|section| section.name == name)
    }
}
