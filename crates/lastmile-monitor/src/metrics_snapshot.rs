//! The figures one scrape exposes, as plain data: the store-derived parts
//! are filled by [`snapshot_from_store`], the router's by the caller.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use lastmile_store::{DeploymentKind, DeploymentStatus, RunStatus, Store, StoreError};
use serde::Serialize;

use crate::dora::{DoraReport, dora_from, lead_starts};

/// Everything [`render_metrics`](crate::render_metrics) exposes.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct MetricsSnapshot {
    /// Finished runs by final status (`succeeded`, `failed`, …) → count.
    pub runs_by_status: BTreeMap<String, u64>,
    /// Durations of finished runs, in seconds.
    pub run_durations_seconds: Vec<f64>,
    /// Finished deployments by (environment, outcome) → count; outcome is
    /// `succeeded`, `failed` or `rolled-back`.
    pub deployments: BTreeMap<(String, String), u64>,
    /// Finished rollbacks by environment → count.
    pub rollbacks: BTreeMap<String, u64>,
    /// Router traffic since the router started, one entry per (environment,
    /// release).
    pub router: Vec<RouterTraffic>,
    /// Router latency quantiles over the last 60 s, one entry per
    /// (environment, release).
    pub router_latency: Vec<ReleaseLatency>,
    /// DORA figures, one report per environment.
    pub dora: Vec<DoraReport>,
}

/// Router counters of one release in one environment, since the router
/// started: they only grow (to 0 again when the router restarts, which
/// Prometheus reads as a counter reset).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct RouterTraffic {
    /// The environment.
    pub environment: String,
    /// The release (as the caller labels it: version or id).
    pub release: String,
    /// Requests proxied.
    pub requests: u64,
    /// Responses with a 5xx status.
    pub server_errors: u64,
    /// Requests that could not reach an instance.
    pub connect_errors: u64,
    /// How long the proxied requests took.
    pub durations: DurationHistogram,
}

/// A cumulative histogram of request durations, as Prometheus reads one.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct DurationHistogram {
    /// (upper bound in seconds, requests that took at most that long),
    /// ascending by bound, finite bounds only (`+Inf` is `count`).
    pub buckets: Vec<(f64, u64)>,
    /// All requests observed.
    pub count: u64,
    /// Sum of their durations, in seconds.
    pub sum_seconds: f64,
}

/// Router latency quantiles of one release in one environment over the
/// last 60 s, in seconds (0 when it had no request in that time).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ReleaseLatency {
    /// The environment.
    pub environment: String,
    /// The release.
    pub release: String,
    /// Median.
    pub p50_seconds: f64,
    /// 95th percentile.
    pub p95_seconds: f64,
    /// 99th percentile.
    pub p99_seconds: f64,
}

/// Fills the store-derived parts of a snapshot: runs, deployments,
/// rollbacks (all history) and the DORA figures of every environment that
/// has had a deployment (over `window` ending at `now_millis`). The router
/// fields are left empty for the caller.
pub fn snapshot_from_store(
    store: &dyn Store,
    now_millis: i64,
    window: Duration,
) -> Result<MetricsSnapshot, StoreError> {
    let mut snapshot = MetricsSnapshot::default();
    for run in store.list_runs(usize::MAX)? {
        if run.status == RunStatus::Running {
            continue;
        }
        *snapshot
            .runs_by_status
            .entry(run.status.as_str().to_owned())
            .or_default() += 1;
        if let Some(finished) = run.finished_at {
            let millis = finished.saturating_sub(run.started_at).max(0);
            snapshot.run_durations_seconds.push(millis as f64 / 1000.0);
        }
    }

    let deployments = store.list_deployments(usize::MAX)?;
    let mut environments = BTreeSet::new();
    for deployment in &deployments {
        environments.insert(deployment.environment.as_str());
        if deployment.status == DeploymentStatus::Running {
            continue;
        }
        *snapshot
            .deployments
            .entry((
                deployment.environment.clone(),
                deployment.status.as_str().to_owned(),
            ))
            .or_default() += 1;
        if deployment.strategy == DeploymentKind::Rollback
            || deployment.status == DeploymentStatus::RolledBack
        {
            *snapshot
                .rollbacks
                .entry(deployment.environment.clone())
                .or_default() += 1;
        }
    }

    let starts = lead_starts(store, &deployments)?;
    snapshot.dora = environments
        .into_iter()
        .map(|environment| dora_from(environment, &deployments, &starts, now_millis, window))
        .collect();
    Ok(snapshot)
}
