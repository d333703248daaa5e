//! DORA figures on a real store filled through the `Store` trait.

#[path = "common/history.rs"]
#[allow(dead_code, reason = "each test file uses part of the helpers")]
mod history;

use std::time::Duration;

use lastmile_monitor::{Tier, dora};
use lastmile_store::Store;

const DAY: Duration = Duration::from_secs(86_400);
const HOUR_MILLIS: f64 = 3_600_000.0;

fn hours(millis: i64) -> f64 {
    millis as f64 / HOUR_MILLIS
}

#[test]
fn crafted_history_gives_frequency_lead_time_failure_rate_and_recovery() {
    let (_dir, store) = history::store();
    let (releases, d) = history::crafted(&store);
    let now = history::now_millis();
    let report = dora(&store, "production", now, DAY).expect("dora");

    assert_eq!(report.environment, "production");
    assert_eq!(report.deployments, 5);
    assert!((report.window_days - 1.0).abs() < 1e-12);
    // r1, r2 and r4 went live: three successes in one day.
    assert!((report.deployment_frequency_per_day - 3.0).abs() < 1e-12);

    // Lead time: run start → first success of each release live here.
    let start = |n: usize| {
        let run = releases[n].run_id.expect("release has a run");
        store
            .get_run(run)
            .expect("get run")
            .expect("run")
            .started_at
    };
    let done = |i: usize| d[i].finished_at.expect("finished");
    let mut leads = [
        hours(done(0) - start(0)),
        hours(done(1) - start(1)),
        hours(done(4) - start(3)),
    ];
    leads.sort_by(f64::total_cmp);
    let lead = report.lead_time_median_hours.expect("a lead time");
    assert!((lead - leads[1]).abs() < 1e-9, "{lead} vs {leads:?}");

    // r2 (rolled back right after), the rollback and r3's failure: 3 of 5.
    assert_eq!(report.change_failure_rate, Some(0.6));

    // One outage: from the rollback to r4 going live.
    let recovery = report.recovery_time_median_hours.expect("a recovery");
    assert!((recovery - hours(done(4) - done(2))).abs() < 1e-9);

    assert_eq!(report.tiers.deployment_frequency, Tier::Elite);
    assert_eq!(report.tiers.lead_time, Tier::Elite);
    assert_eq!(report.tiers.change_failure_rate, Tier::Low);
    assert_eq!(report.tiers.recovery_time, Tier::Elite);
}

#[test]
fn other_environments_and_other_windows_are_apart() {
    let (_dir, store) = history::store();
    history::crafted(&store);
    let now = history::now_millis();

    let staging = dora(&store, "staging", now, 7 * DAY).expect("dora");
    assert_eq!(staging.deployments, 1);
    assert!((staging.deployment_frequency_per_day - 1.0 / 7.0).abs() < 1e-12);
    assert_eq!(staging.change_failure_rate, Some(0.0));
    assert_eq!(staging.recovery_time_median_hours, None);
    assert_eq!(staging.tiers.deployment_frequency, Tier::High);
    assert_eq!(staging.tiers.change_failure_rate, Tier::Elite);
    assert_eq!(staging.tiers.recovery_time, Tier::Unknown);

    // A window that ended before anything happened sees nothing.
    let before = dora(&store, "production", now - 2 * 86_400_000, DAY).expect("dora");
    assert_eq!(before.deployments, 0);
    assert_eq!(before.lead_time_median_hours, None);
    assert_eq!(before.tiers.deployment_frequency, Tier::Unknown);
}

#[test]
fn an_empty_store_gives_unknown_tiers_and_no_division_by_zero() {
    let (_dir, store) = history::store();
    let now = history::now_millis();
    for window in [DAY, Duration::ZERO] {
        let report = dora(&store, "production", now, window).expect("dora");
        assert_eq!(report.deployments, 0);
        assert_eq!(report.deployment_frequency_per_day, 0.0);
        assert!(report.deployment_frequency_per_day.is_finite());
        assert_eq!(report.lead_time_median_hours, None);
        assert_eq!(report.change_failure_rate, None);
        assert_eq!(report.recovery_time_median_hours, None);
        for tier in [
            report.tiers.deployment_frequency,
            report.tiers.lead_time,
            report.tiers.change_failure_rate,
            report.tiers.recovery_time,
        ] {
            assert_eq!(tier, Tier::Unknown);
        }
    }
}
