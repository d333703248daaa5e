//! The four DORA figures of one environment over a window, computed from the
//! store's deployments, releases and runs. The definitions are in the crate
//! docs.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use lastmile_store::{DeploymentRecord, DeploymentStatus, Store, StoreError, UnixMillis};
use serde::Serialize;

use crate::tier::{Tier, Tiers};

const HOUR_MILLIS: f64 = 3_600_000.0;
const DAY_SECONDS: f64 = 86_400.0;

/// DORA figures of one environment over a window ending now.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DoraReport {
    /// The environment.
    pub environment: String,
    /// Length of the window, in days.
    pub window_days: f64,
    /// Finished deployments (succeeded, failed or rolled back) in the window.
    pub deployments: u64,
    /// Succeeded deployments per day of the window.
    pub deployment_frequency_per_day: f64,
    /// Median hours from a release's commit (its committer time, when the
    /// server took it from git; else its run's start) to its first success
    /// here.
    pub lead_time_median_hours: Option<f64>,
    /// Failed changes over finished deployments (0–1).
    pub change_failure_rate: Option<f64>,
    /// Median hours from a failure to the next success here.
    pub recovery_time_median_hours: Option<f64>,
    /// Tier of each figure.
    pub tiers: Tiers,
}

/// Computes the DORA figures of `environment` over the `window` that ends at
/// `now_millis`.
pub fn dora(
    store: &dyn Store,
    environment: &str,
    now_millis: i64,
    window: Duration,
) -> Result<DoraReport, StoreError> {
    let deployments = store.list_deployments(usize::MAX)?;
    let lead_starts = lead_starts(store, &deployments)?;
    Ok(dora_from(
        environment,
        &deployments,
        &lead_starts,
        now_millis,
        window,
    ))
}

/// Release id → its commit time (or the start of the run that built it), for every release some
/// deployment moved to. Releases without a run (or whose run is gone) are
/// left out: they have no lead time.
pub(crate) fn lead_starts(
    store: &dyn Store,
    deployments: &[DeploymentRecord],
) -> Result<HashMap<String, UnixMillis>, StoreError> {
    let wanted: HashSet<&str> = deployments.iter().map(|d| d.to_release.as_str()).collect();
    let mut starts = HashMap::new();
    for release in store.list_releases(usize::MAX)? {
        if !wanted.contains(release.id.as_str()) {
            continue;
        }
        let Some(run_id) = release.run_id else {
            continue;
        };
        if let Some(run) = store.get_run(run_id)? {
            // Lead time starts at the commit when the server saw it come
            // from git (its committer time), else at the run's start.
            let committed = match &run.commit {
                Some(sha) => store.get_commit(&run.app, sha)?.map(|c| c.committed_at),
                None => None,
            };
            starts.insert(release.id, committed.unwrap_or(run.started_at));
        }
    }
    Ok(starts)
}

/// The computation itself, on rows already read (`deployments` may hold
/// every environment; only `environment`'s are used).
pub(crate) fn dora_from(
    environment: &str,
    deployments: &[DeploymentRecord],
    lead_starts: &HashMap<String, UnixMillis>,
    now_millis: i64,
    window: Duration,
) -> DoraReport {
    let window_millis = i64::try_from(window.as_millis()).unwrap_or(i64::MAX);
    let window_start = now_millis.saturating_sub(window_millis);
    let in_window = |at: UnixMillis| at >= window_start && at <= now_millis;

    // Finished deployments of this environment, in the order they ended.
    let mut finished: Vec<(&DeploymentRecord, UnixMillis)> = deployments
        .iter()
        .filter(|d| d.environment == environment && d.status != DeploymentStatus::Running)
        .filter_map(|d| d.finished_at.map(|at| (d, at)))
        .collect();
    finished.sort_by_key(|(d, at)| (*at, d.id));

    let mut count = 0u64;
    let mut succeeded = 0u64;
    let mut failed_changes = 0u64;
    let mut lead_hours = Vec::new();
    let mut recovery_hours = Vec::new();
    let mut live_before = HashSet::new();
    let mut down_since: Option<UnixMillis> = None;
    for (index, &(deployment, at)) in finished.iter().enumerate() {
        let counted = in_window(at);
        if counted {
            count += 1;
        }
        match deployment.status {
            DeploymentStatus::Succeeded => {
                if counted {
                    succeeded += 1;
                    // A success undone by the very next deployment (a
                    // rollback away from it) was a failed change too.
                    let undone = finished.get(index + 1).is_some_and(|(next, _)| {
                        next.status == DeploymentStatus::RolledBack
                            && next.from_release.as_deref() == Some(&deployment.to_release)
                    });
                    if undone {
                        failed_changes += 1;
                    }
                }
                // Lead time counts the first time a release went live here,
                // not later redeployments of it.
                if live_before.insert(deployment.to_release.as_str())
                    && counted
                    && let Some(start) = lead_starts.get(&deployment.to_release)
                {
                    lead_hours.push((at - start) as f64 / HOUR_MILLIS);
                }
                if let Some(since) = down_since.take()
                    && in_window(since)
                {
                    recovery_hours.push((at - since) as f64 / HOUR_MILLIS);
                }
            }
            DeploymentStatus::Failed | DeploymentStatus::RolledBack => {
                if counted {
                    failed_changes += 1;
                }
                // Consecutive failures are one outage, timed from the first.
                down_since.get_or_insert(at);
            }
            DeploymentStatus::Running => {}
        }
    }

    let window_days = window.as_secs_f64() / DAY_SECONDS;
    let deployment_frequency_per_day = if window_days > 0.0 {
        succeeded as f64 / window_days
    } else {
        0.0
    };
    let change_failure_rate = (count > 0).then(|| failed_changes as f64 / count as f64);
    let lead_time_median_hours = median(&mut lead_hours);
    let recovery_time_median_hours = median(&mut recovery_hours);
    let tiers = Tiers {
        deployment_frequency: Tier::of_deployment_frequency(
            (count > 0).then_some(deployment_frequency_per_day),
        ),
        lead_time: Tier::of_lead_time(lead_time_median_hours),
        change_failure_rate: Tier::of_change_failure_rate(change_failure_rate),
        recovery_time: Tier::of_recovery_time(recovery_time_median_hours),
    };
    DoraReport {
        environment: environment.to_owned(),
        window_days,
        deployments: count,
        deployment_frequency_per_day,
        lead_time_median_hours,
        change_failure_rate,
        recovery_time_median_hours,
        tiers,
    }
}

/// Median of the values (mean of the middle two for an even count).
fn median(values: &mut [f64]) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    values.sort_by(f64::total_cmp);
    let mid = values.len() / 2;
    Some(if values.len().is_multiple_of(2) {
        (values[mid - 1] + values[mid]) / 2.0
    } else {
        values[mid]
    })
}

#[cfg(test)]
mod tests {
    use lastmile_store::{DeploymentKind, Phase};

    use super::*;

    const HOUR: i64 = 3_600_000;
    const DAY: i64 = 24 * HOUR;

    fn deployment(
        id: i64,
        from: Option<&str>,
        to: &str,
        status: DeploymentStatus,
        finished_at: i64,
    ) -> DeploymentRecord {
        DeploymentRecord {
            id,
            environment: "production".into(),
            from_release: from.map(str::to_owned),
            to_release: to.into(),
            strategy: if status == DeploymentStatus::RolledBack {
                DeploymentKind::Rollback
            } else {
                DeploymentKind::Rolling
            },
            status,
            phase: Phase::ended(status).unwrap_or(Phase::Switched),
            started_at: finished_at - 60_000,
            finished_at: Some(finished_at),
            reason: None,
            analysis: None,
        }
    }

    /// Ten days of history with known answers.
    #[test]
    fn crafted_history_gives_the_expected_figures() {
        use DeploymentStatus::*;
        let now = 100 * DAY;
        let t0 = now - 10 * DAY;
        let deployments = vec![
            // Before the window: not counted, but makes r0 live.
            deployment(1, None, "r0", Succeeded, t0 - DAY),
            deployment(2, Some("r0"), "r1", Succeeded, t0 + DAY),
            // r2 goes live, then is rolled back to r1 two hours later.
            deployment(3, Some("r1"), "r2", Succeeded, t0 + 2 * DAY),
            deployment(4, Some("r2"), "r1", RolledBack, t0 + 2 * DAY + 2 * HOUR),
            // r3 fails; r3b fixes it 4 hours after the rollback (one outage).
            deployment(5, Some("r1"), "r3", Failed, t0 + 3 * DAY),
            deployment(
                6,
                Some("r1"),
                "r3b",
                Succeeded,
                t0 + 2 * DAY + 6 * HOUR + DAY,
            ),
            // Another environment is ignored.
            DeploymentRecord {
                environment: "staging".into(),
                ..deployment(7, None, "r9", Failed, t0 + 4 * DAY)
            },
            // Still running: ignored.
            DeploymentRecord {
                status: Running,
                finished_at: None,
                ..deployment(8, Some("r3b"), "r4", Running, now)
            },
        ];
        let mut starts = HashMap::new();
        starts.insert("r1".to_owned(), t0 + DAY - 2 * HOUR);
        starts.insert("r2".to_owned(), t0 + 2 * DAY - 10 * HOUR);
        starts.insert("r3b".to_owned(), t0 + 3 * DAY + 6 * HOUR - 6 * HOUR);
        let report = dora_from(
            "production",
            &deployments,
            &starts,
            now,
            Duration::from_secs(10 * 86_400),
        );
        assert_eq!(report.deployments, 5);
        assert!((report.window_days - 10.0).abs() < 1e-9);
        // 3 successes over 10 days.
        assert!((report.deployment_frequency_per_day - 0.3).abs() < 1e-9);
        // Lead times 2 h, 10 h, 6 h: median 6 h.
        assert_eq!(report.lead_time_median_hours, Some(6.0));
        // r2 (undone), the rollback and r3: 3 of 5.
        assert_eq!(report.change_failure_rate, Some(0.6));
        // Down from the rollback (t0+2d+2h) to r3b (t0+3d+6h): 28 hours.
        assert_eq!(report.recovery_time_median_hours, Some(28.0));
        assert_eq!(
            report.tiers,
            Tiers {
                deployment_frequency: Tier::High,
                lead_time: Tier::Elite,
                change_failure_rate: Tier::Low,
                recovery_time: Tier::Medium,
            }
        );
    }

    #[test]
    fn nothing_to_measure_is_unknown_not_a_division_by_zero() {
        let report = dora_from("production", &[], &HashMap::new(), 0, Duration::ZERO);
        assert_eq!(report.deployments, 0);
        assert_eq!(report.deployment_frequency_per_day, 0.0);
        assert_eq!(report.change_failure_rate, None);
        assert_eq!(report.tiers.deployment_frequency, Tier::Unknown);
    }

    #[test]
    fn median_of_even_count_is_the_mean_of_the_middle_two() {
        assert_eq!(median(&mut [4.0, 1.0, 3.0, 2.0]), Some(2.5));
        assert_eq!(median(&mut []), None);
    }
}
