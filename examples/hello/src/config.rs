//! hello's settings, read from the environment.

use std::time::Duration;

/// What the environment asked for.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub port: u16,
    pub version: String,
    pub error_rate: f64,
    pub errors_after: Duration,
    pub latency: Duration,
    pub ready_after: Duration,
    pub never_ready: bool,
}

impl Config {
    /// Reads every knob; a malformed value is an error that names it.
    pub fn from_env(get: impl Fn(&str) -> Option<String>) -> Result<Config, String> {
        let number = |name: &str| -> Result<Option<f64>, String> {
            match get(name) {
                None => Ok(None),
                Some(text) if text.trim().is_empty() => Ok(None),
                Some(text) => text
                    .trim()
                    .parse::<f64>()
                    .ok()
                    .filter(|value| value.is_finite() && *value >= 0.0)
                    .map(Some)
                    .ok_or_else(|| format!("{name}={text:?} is not a non-negative number")),
            }
        };
        let port = match get("PORT") {
            None => 8080,
            Some(text) => text
                .trim()
                .parse::<u16>()
                .map_err(|_| format!("PORT={text:?} is not a port number (0-65535)"))?,
        };
        let error_rate = number("HELLO_ERROR_RATE")?.unwrap_or(0.0);
        if error_rate > 1.0 {
            return Err(format!("HELLO_ERROR_RATE={error_rate} must be between 0 and 1"));
        }
        let version = get("HELLO_VERSION")
            .or_else(|| get("LASTMILE_RELEASE_VERSION"))
            .unwrap_or_else(|| env!("CARGO_PKG_VERSION").to_string());
        Ok(Config {
            port,
            version,
            error_rate,
            errors_after: Duration::from_millis(number("HELLO_ERRORS_AFTER_MS")?.unwrap_or(0.0) as u64),
            latency: Duration::from_millis(number("HELLO_LATENCY_MS")?.unwrap_or(0.0) as u64),
            ready_after: Duration::from_millis(number("HELLO_READY_AFTER_MS")?.unwrap_or(0.0) as u64),
            never_ready: get("HELLO_NEVER_READY").is_some_and(|v| v == "1" || v == "true"),
        })
    }

    /// The error rate this long after start (`HELLO_ERRORS_AFTER_MS` delays
    /// it, to play a release that degrades while it runs).
    pub fn error_rate_at(&self, since_start: Duration) -> f64 {
        if since_start >= self.errors_after {
            self.error_rate
        } else {
            0.0
        }
    }

    /// Whether `/healthz` answers 200 this long after start.
    pub fn is_ready(&self, since_start: Duration) -> bool {
        !self.never_ready && since_start >= self.ready_after
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(pairs: &[(&str, &str)]) -> Result<Config, String> {
        let pairs: Vec<(String, String)> =
            pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        Config::from_env(|name| pairs.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone()))
    }

    #[test]
    fn defaults_are_a_well_behaved_service() {
        let config = config(&[]).unwrap();
        assert_eq!(config.port, 8080);
        assert_eq!(config.error_rate, 0.0);
        assert!(config.is_ready(Duration::ZERO));
    }

    #[test]
    fn knobs_are_read() {
        let config = config(&[
            ("PORT", "9000"),
            ("HELLO_ERROR_RATE", "0.25"),
            ("HELLO_LATENCY_MS", "40"),
            ("HELLO_VERSION", "v2"),
        ])
        .unwrap();
        assert_eq!(config.port, 9000);
        assert_eq!(config.error_rate, 0.25);
        assert_eq!(config.latency, Duration::from_millis(40));
        assert_eq!(config.version, "v2");
    }

    #[test]
    fn readiness_can_be_delayed_or_refused() {
        let delayed = config(&[("HELLO_READY_AFTER_MS", "500")]).unwrap();
        assert!(!delayed.is_ready(Duration::from_millis(100)));
        assert!(delayed.is_ready(Duration::from_millis(600)));
        let never = config(&[("HELLO_NEVER_READY", "1")]).unwrap();
        assert!(!never.is_ready(Duration::from_secs(3600)));
    }

    #[test]
    fn errors_can_start_later() {
        let degrading = config(&[("HELLO_ERROR_RATE", "0.5"), ("HELLO_ERRORS_AFTER_MS", "1000")]).unwrap();
        assert_eq!(degrading.error_rate_at(Duration::from_millis(999)), 0.0);
        assert_eq!(degrading.error_rate_at(Duration::from_millis(1000)), 0.5);
        let at_once = config(&[("HELLO_ERROR_RATE", "0.5")]).unwrap();
        assert_eq!(at_once.error_rate_at(Duration::ZERO), 0.5);
    }

    #[test]
    fn malformed_knobs_name_the_variable() {
        assert!(config(&[("HELLO_ERROR_RATE", "lots")]).unwrap_err().contains("HELLO_ERROR_RATE"));
        assert!(config(&[("HELLO_ERROR_RATE", "1.5")]).unwrap_err().contains("between 0 and 1"));
        assert!(config(&[("PORT", "99999")]).unwrap_err().contains("PORT"));
    }
}
