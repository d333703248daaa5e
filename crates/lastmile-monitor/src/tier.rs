//! DORA performance tiers and the bands that place a figure in one.
//!
//! The bands come from the DORA 2024 Accelerate State of DevOps report's
//! performance clusters (see the crate docs for the table and for how the
//! report's clusters were turned into per-metric boundaries).

use serde::Serialize;

/// Hours in a day, a week and a (30-day) month, for the bands.
const DAY_HOURS: f64 = 24.0;
const WEEK_HOURS: f64 = 7.0 * DAY_HOURS;
const MONTH_HOURS: f64 = 30.0 * DAY_HOURS;

/// A DORA performance tier.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Tier {
    /// The best band of the report.
    Elite,
    /// Second band.
    High,
    /// Third band.
    Medium,
    /// Slowest band.
    Low,
    /// Not enough data in the window to place the figure.
    Unknown,
}

impl Tier {
    /// The lowercase name (`elite`, `high`, `medium`, `low`, `unknown`).
    pub fn as_str(self) -> &'static str {
        match self {
            Tier::Elite => "elite",
            Tier::High => "high",
            Tier::Medium => "medium",
            Tier::Low => "low",
            Tier::Unknown => "unknown",
        }
    }

    /// Tier of a deployment frequency (successful deployments per day):
    /// elite above one a day (on demand), high at least weekly, medium at
    /// least monthly, low below.
    pub fn of_deployment_frequency(per_day: Option<f64>) -> Tier {
        match per_day {
            None => Tier::Unknown,
            Some(f) if f > 1.0 => Tier::Elite,
            Some(f) if f >= 1.0 / 7.0 => Tier::High,
            Some(f) if f >= 1.0 / 30.0 => Tier::Medium,
            Some(_) => Tier::Low,
        }
    }

    /// Tier of a median lead time: elite under a day, high under a week,
    /// medium under a month, low beyond.
    pub fn of_lead_time(hours: Option<f64>) -> Tier {
        match hours {
            None => Tier::Unknown,
            Some(h) if h < DAY_HOURS => Tier::Elite,
            Some(h) if h < WEEK_HOURS => Tier::High,
            Some(h) if h < MONTH_HOURS => Tier::Medium,
            Some(_) => Tier::Low,
        }
    }

    /// Tier of a change failure rate (0–1): elite ≤ 5%, high ≤ 10%,
    /// medium ≤ 20%, low above.
    pub fn of_change_failure_rate(rate: Option<f64>) -> Tier {
        match rate {
            None => Tier::Unknown,
            Some(r) if r <= 0.05 => Tier::Elite,
            Some(r) if r <= 0.10 => Tier::High,
            Some(r) if r <= 0.20 => Tier::Medium,
            Some(_) => Tier::Low,
        }
    }

    /// Tier of a median recovery time: elite under an hour, high under a
    /// day, medium under a week, low beyond.
    pub fn of_recovery_time(hours: Option<f64>) -> Tier {
        match hours {
            None => Tier::Unknown,
            Some(h) if h < 1.0 => Tier::Elite,
            Some(h) if h < DAY_HOURS => Tier::High,
            Some(h) if h < WEEK_HOURS => Tier::Medium,
            Some(_) => Tier::Low,
        }
    }
}

/// The tier of each of the four DORA figures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Tiers {
    /// Tier of the deployment frequency.
    pub deployment_frequency: Tier,
    /// Tier of the median lead time for changes.
    pub lead_time: Tier,
    /// Tier of the change failure rate.
    pub change_failure_rate: Tier,
    /// Tier of the median failed-deployment recovery time.
    pub recovery_time: Tier,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bands_follow_the_2024_report() {
        assert_eq!(Tier::of_deployment_frequency(Some(3.0)), Tier::Elite);
        assert_eq!(Tier::of_deployment_frequency(Some(1.0)), Tier::High);
        assert_eq!(Tier::of_deployment_frequency(Some(0.2)), Tier::High);
        assert_eq!(Tier::of_deployment_frequency(Some(0.05)), Tier::Medium);
        assert_eq!(Tier::of_deployment_frequency(Some(0.01)), Tier::Low);
        assert_eq!(Tier::of_deployment_frequency(Some(0.0)), Tier::Low);
        assert_eq!(Tier::of_lead_time(Some(2.0)), Tier::Elite);
        assert_eq!(Tier::of_lead_time(Some(48.0)), Tier::High);
        assert_eq!(Tier::of_lead_time(Some(24.0 * 10.0)), Tier::Medium);
        assert_eq!(Tier::of_lead_time(Some(24.0 * 90.0)), Tier::Low);
        assert_eq!(Tier::of_change_failure_rate(Some(0.0)), Tier::Elite);
        assert_eq!(Tier::of_change_failure_rate(Some(0.05)), Tier::Elite);
        assert_eq!(Tier::of_change_failure_rate(Some(0.08)), Tier::High);
        assert_eq!(Tier::of_change_failure_rate(Some(0.15)), Tier::Medium);
        assert_eq!(Tier::of_change_failure_rate(Some(0.5)), Tier::Low);
        assert_eq!(Tier::of_recovery_time(Some(0.5)), Tier::Elite);
        assert_eq!(Tier::of_recovery_time(Some(5.0)), Tier::High);
        assert_eq!(Tier::of_recovery_time(Some(48.0)), Tier::Medium);
        assert_eq!(Tier::of_recovery_time(Some(24.0 * 8.0)), Tier::Low);
        assert_eq!(Tier::of_recovery_time(None), Tier::Unknown);
    }
}
