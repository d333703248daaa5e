//! Monitoring for lastmile: the four DORA figures of each environment,
//! computed from the store's deployments, releases and runs, and a
//! Prometheus/OpenMetrics text exposition of those figures together with run,
//! deployment, rollback and router counters. [`render_metrics`] gives the
//! Prometheus text format 0.0.4 (what `promtool check metrics` reads);
//! [`render_openmetrics`] the same samples as OpenMetrics.
//!
//! It reads the store and formats text; it does not serve HTTP, scrape the
//! router or keep any state of its own: the server fills the router parts of
//! a [`MetricsSnapshot`] and serves what [`render_metrics`] returns.
//!
//! ```no_run
//! use std::path::Path;
//! use std::time::{Duration, SystemTime, UNIX_EPOCH};
//!
//! use lastmile_monitor::{dora, render_metrics, snapshot_from_store};
//! use lastmile_store::SqliteStore;
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let (store, _) = SqliteStore::open(Path::new(".lastmile"))?;
//! let now = SystemTime::now().duration_since(UNIX_EPOCH)?.as_millis() as i64;
//! let month = Duration::from_secs(30 * 86_400);
//! let report = dora(&store, "production", now, month)?;
//! println!("{:?} deployments/day, {:?}", report.deployment_frequency_per_day, report.tiers);
//! let snapshot = snapshot_from_store(&store, now, month)?;
//! print!("{}", render_metrics(&snapshot));
//! # Ok(())
//! # }
//! ```
//!
//! # Definitions
//!
//! All four figures are per environment, over a window `[now - window, now]`,
//! on *finished* deployments (status `succeeded`, `failed` or `rolled-back`;
//! running ones are ignored), placed in time by when they finished.
//!
//! - **Deployments** ([`DoraReport::deployments`]): finished deployments in
//!   the window, whatever their outcome.
//! - **Deployment frequency**: *succeeded* deployments in the window divided
//!   by the window's length in days. A rollback (status `rolled-back`) is not
//!   counted as a delivery.
//! - **Lead time for changes**: for each release that went live in the
//!   environment for the *first* time (its first `succeeded` deployment
//!   there) within the window, the time from the start of the run that built
//!   it to that deployment's end. Runs record no commit time, so the run's
//!   start stands for the commit. Releases without a run are left out. The
//!   report gives the median, in hours.
//! - **Change failure rate**: (failed deployments + rolled-back deployments +
//!   succeeded deployments that the very next deployment of the environment
//!   rolled back) / all finished deployments in the window. Note that a
//!   success followed by its rollback counts twice in the numerator (the
//!   change and the rollback), as both are deployments in the denominator.
//!   `None` when the window has no finished deployment.
//! - **Recovery time** (failed deployment recovery time): from the end of a
//!   failed or rolled-back deployment to the end of the next succeeded
//!   deployment of the environment. Consecutive failures make one outage,
//!   timed from the first. Outages that began in the window and are
//!   recovered count; the report gives the median, in hours.
//!
//! # Tiers
//!
//! From the performance clusters of the DORA 2024 *Accelerate State of
//! DevOps* report (Google Cloud / DORA):
//!
//! | cluster | deployment frequency | lead time | change failure rate | recovery time |
//! |---|---|---|---|---|
//! | elite | on demand (multiple deploys per day) | < 1 day | 5% | < 1 hour |
//! | high | daily to weekly | 1 day – 1 week | 20% | < 1 day |
//! | medium | weekly to monthly | 1 week – 1 month | 10% | < 1 day |
//! | low | monthly to every six months | 1 – 6 months | 40% | 1 week – 1 month |
//!
//! The clusters describe typical teams, not per-metric cut-offs (in 2024 the
//! medium cluster even had a lower failure rate than the high one), so each
//! figure is placed on its own with monotone boundaries between them:
//!
//! - frequency (succeeded per day): elite > 1, high ≥ 1/7, medium ≥ 1/30, else low;
//! - lead time: elite < 24 h, high < 7 days, medium < 30 days, else low;
//! - change failure rate: elite ≤ 5%, high ≤ 10%, medium ≤ 20%, else low;
//! - recovery time: elite < 1 h, high < 24 h, medium < 7 days, else low.
//!
//! A figure without data is [`Tier::Unknown`] (frequency is unknown only when
//! the window has no finished deployment at all).

mod dora;
mod metrics_snapshot;
mod render;
mod tier;

pub use dora::{DoraReport, dora};
pub use metrics_snapshot::{
    DurationHistogram, MetricsSnapshot, ReleaseLatency, RouterTraffic, snapshot_from_store,
};
pub use render::{
    OPENMETRICS_CONTENT_TYPE, PROMETHEUS_CONTENT_TYPE, render_metrics, render_openmetrics,
};
pub use tier::{Tier, Tiers};
