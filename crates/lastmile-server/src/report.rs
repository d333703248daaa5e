//! What the controller reports, as typed values: `status` builds a
//! [`StatusReport`], the HTTP edge serializes it, and the CLI and the
//! dashboard read it back into the same type (never by string key).
//!
//! Fields are declared in alphabetical order: that is the order in which
//! they have always been served, so the JSON of `GET /api/v1/status` reads
//! the same as before it was typed.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use lastmile_host::{InstanceInfo, ReleaseStats};
use lastmile_store::{CommitRecord, DeploymentRecord, DeploymentStatus, ReleaseRecord, UnixMillis};
use serde::{Deserialize, Serialize};

use crate::edge::CertificateStatus;

/// One app as `lastmile status` and the dashboard show it (`GET
/// /api/v1/status` of `lastmile up`, `GET /api/v1/apps/APP/status` of
/// `lastmile server`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StatusReport {
    /// The app's name.
    pub app: String,
    /// Deployments waiting for approval (`lastmile server` only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approvals: Option<Vec<Approval>>,
    /// Certificates of the TLS routes.
    pub certificates: Vec<CertificateStatus>,
    /// The control API's address (`lastmile up`; `None` before it serves).
    pub control: Option<SocketAddr>,
    /// The newest deployments, newest first.
    pub deployments: Vec<DeploymentRecord>,
    /// Environment → what differs from the spec (`lastmile server` only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drift: Option<BTreeMap<String, String>>,
    /// The spec's environments, in its order.
    pub environments: Vec<EnvironmentStatus>,
    /// The app's feature flags with their overrides, as the flags API
    /// serves them.
    pub flags: Vec<serde_json::Value>,
    /// Every instance the hosts run: by environment, then newest release
    /// first, then by id.
    pub instances: Vec<InstanceInfo>,
    /// The process id of the controller.
    pub pid: u32,
    /// The newest releases, newest first.
    pub releases: Vec<ReleaseRecord>,
    /// The router's counters of each release that has instances.
    pub stats: Vec<ReleaseStatsRow>,
}

/// One environment: what it serves and how it got there.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EnvironmentStatus {
    /// The release that has (or is taking) all traffic.
    pub current_release: Option<String>,
    /// The deployment running now, if one is.
    pub deployment: Option<DeploymentRecord>,
    /// Instances the spec asks for.
    pub instances: u32,
    /// The newest deployment, running or ended.
    pub last_deployment: Option<LastDeployment>,
    /// Where its route listens (the bound address once it serves).
    pub listen: Option<SocketAddr>,
    /// Its name.
    pub name: String,
    /// The release it served before.
    pub previous_release: Option<String>,
    /// The spec's strategy with its parameters, as the spec serializes it.
    pub strategy: serde_json::Value,
    /// Whether the route serves HTTPS.
    pub tls: bool,
    /// The router's weights, with each one's share of the traffic.
    pub weights: Vec<WeightShare>,
}

/// One release's weight on a route.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WeightShare {
    /// Its share of the traffic, 0–100.
    pub percent: f64,
    /// The release.
    pub release: String,
    /// Its weight.
    pub weight: u32,
}

/// An environment's newest deployment as `status` shows it: how it ended
/// (`outcome`), why (`reason`) and the last canary analysis behind that.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LastDeployment {
    /// The last canary analysis, as the engine wrote it.
    pub analysis: Option<serde_json::Value>,
    /// When it ended.
    pub finished_at: Option<UnixMillis>,
    /// What it moved from.
    pub from_release: Option<String>,
    /// Its id.
    pub id: i64,
    /// How it ended (or `running`).
    pub outcome: DeploymentStatus,
    /// Why it failed, in the engine's words.
    pub reason: Option<String>,
    /// When it began.
    pub started_at: UnixMillis,
    /// The strategy it ran with, or `rollback`.
    pub strategy: String,
    /// What it moved to.
    pub to_release: String,
}

impl From<&DeploymentRecord> for LastDeployment {
    fn from(record: &DeploymentRecord) -> LastDeployment {
        LastDeployment {
            analysis: record.analysis.clone(),
            finished_at: record.finished_at,
            from_release: record.from_release.clone(),
            id: record.id,
            outcome: record.status,
            reason: record.reason.clone(),
            started_at: record.started_at,
            strategy: record.strategy.to_string(),
            to_release: record.to_release.clone(),
        }
    }
}

/// A release's router counters, with the release they are of.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReleaseStatsRow {
    /// The release.
    pub release: String,
    /// Its counters.
    #[serde(flatten)]
    pub stats: ReleaseStats,
}

/// A deployment that waits for `lastmile approve`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Approval {
    /// The commit it was built from.
    pub commit: Option<String>,
    /// The environment it would go to.
    pub environment: String,
    /// The release.
    pub release: String,
    /// Since when it waits.
    pub since_ms: UnixMillis,
    /// The release's version.
    pub version: String,
}

/// What `lastmile server` serves: every app, for the overview.
#[derive(Debug, Clone, Serialize)]
pub struct Overview {
    /// The apps, by name.
    pub apps: Vec<AppOverview>,
}

/// One app of the overview: its repository, newest commit and status.
#[derive(Debug, Clone, Serialize)]
pub struct AppOverview {
    /// Branches it builds (globs).
    pub branches: Vec<String>,
    /// Environment → what differs from the spec.
    pub drift: BTreeMap<String, String>,
    /// The newest commit seen.
    pub last_commit: Option<CommitRecord>,
    /// Why the last attempt to read or build it failed.
    pub last_error: Option<String>,
    /// Its name.
    pub name: String,
    /// Deployments waiting for approval.
    pub pending: Option<Vec<Approval>>,
    /// The repository, with any credentials removed.
    pub repo: String,
    /// Its controller's status; `None` before its first deployment.
    pub status: Option<StatusReport>,
}
