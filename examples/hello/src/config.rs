//! hello's settings, read from the environment.

use std::time::Duration;

/// What the environment asked for.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub port: u16,
    pub version: String,
    /// What `/` answers before the version.
    pub message: String,
    pub error_rate: f64,
    pub errors_after: Duration,
    pub latency: Duration,
    /// Random latency added on top of `latency`.
    pub jitter: Jitter,
    /// How many `/` requests of each process are slow (warm-up), drawn once per process in
    /// this inclusive range.
    pub warmup_requests: (u64, u64),
    /// A warm-up request takes a uniform random time in this inclusive range instead of
    /// `latency` and `jitter`.
    pub warmup_latency: (Duration, Duration),
    pub ready_after: Duration,
    pub never_ready: bool,
}

/// `HELLO_LATENCY_JITTER_MS`: random latency added to every `/` request.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Jitter {
    None,
    /// Uniform in [0, this).
    Uniform(Duration),
    /// Exponential with this mean: most requests a little slower, a long tail.
    Exponential(Duration),
}

/// What `/` answers before the version when `HELLO_MESSAGE` is unset.
const DEFAULT_MESSAGE: &str = "hello from hello";

/// The warm-up latency when only `HELLO_WARMUP_REQUESTS` is set: what a cold JIT, empty
/// caches or a new connection pool cost a real service's first requests.
const DEFAULT_WARMUP_LATENCY: (Duration, Duration) = (Duration::from_millis(50), Duration::from_millis(150));

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
        let range = |name: &str| -> Result<Option<(u64, u64)>, String> {
            let Some(text) = get(name).filter(|text| !text.trim().is_empty()) else { return Ok(None) };
            parse_range(&text).map(Some).ok_or_else(|| {
                format!("{name}={text:?} is not a whole number or a range MIN-MAX of them (MIN <= MAX)")
            })
        };
        let jitter = match get("HELLO_LATENCY_JITTER_MS").filter(|text| !text.trim().is_empty()) {
            None => Jitter::None,
            Some(text) => parse_jitter(&text).ok_or_else(|| {
                format!(
                    "HELLO_LATENCY_JITTER_MS={text:?} is neither milliseconds (uniform, e.g. 20) \
                     nor exp:MILLISECONDS (exponential with that mean, e.g. exp:15)"
                )
            })?,
        };
        let warmup_requests = range("HELLO_WARMUP_REQUESTS")?.unwrap_or((0, 0));
        let warmup_latency = match range("HELLO_WARMUP_LATENCY_MS")? {
            None => DEFAULT_WARMUP_LATENCY,
            Some((low, high)) => (Duration::from_millis(low), Duration::from_millis(high)),
        };
        let version = get("HELLO_VERSION")
            .or_else(|| get("LASTMILE_RELEASE_VERSION"))
            .unwrap_or_else(|| env!("CARGO_PKG_VERSION").to_string());
        let message = get("HELLO_MESSAGE")
            .filter(|text| !text.trim().is_empty())
            .unwrap_or_else(|| DEFAULT_MESSAGE.to_string());
        Ok(Config {
            port,
            version,
            message,
            error_rate,
            errors_after: Duration::from_millis(number("HELLO_ERRORS_AFTER_MS")?.unwrap_or(0.0) as u64),
            latency: Duration::from_millis(number("HELLO_LATENCY_MS")?.unwrap_or(0.0) as u64),
            jitter,
            warmup_requests,
            warmup_latency,
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

    /// How many requests this process's warm-up lasts, given a uniform draw in [0, 1).
    pub fn warmup_requests_for(&self, draw: f64) -> u64 {
        let (low, high) = self.warmup_requests;
        // In floating point: `high - low + 1` overflows for the full u64 range.
        low + (((high - low) as f64 + 1.0) * draw).min((high - low) as f64) as u64
    }

    /// How long the `/` request with 0-based `index` waits, in a process whose warm-up lasts
    /// `warmup_requests` requests, given a uniform draw in [0, 1).
    pub fn latency_of(&self, index: u64, warmup_requests: u64, draw: f64) -> Duration {
        if index < warmup_requests {
            let (low, high) = self.warmup_latency;
            return low + (high - low).mul_f64(draw);
        }
        self.latency.saturating_add(match self.jitter {
            Jitter::None => Duration::ZERO,
            Jitter::Uniform(width) => width.mul_f64(draw),
            // Inverse transform sampling; 1 - draw is in (0, 1], so the logarithm is finite
            // (at most 37 means, with 53-bit draws).
            Jitter::Exponential(mean) => mean.mul_f64(-(1.0 - draw).ln()),
        })
    }

    /// Whether `/healthz` answers 200 this long after start.
    pub fn is_ready(&self, since_start: Duration) -> bool {
        !self.never_ready && since_start >= self.ready_after
    }
}

/// `N` or `MIN-MAX`, whole numbers with MIN <= MAX.
fn parse_range(text: &str) -> Option<(u64, u64)> {
    let text = text.trim();
    let (low, high) = match text.split_once('-') {
        Some((low, high)) => (low.trim().parse().ok()?, high.trim().parse().ok()?),
        None => {
            let value = text.parse().ok()?;
            (value, value)
        }
    };
    (low <= high).then_some((low, high))
}

/// `MILLISECONDS` (uniform) or `exp:MILLISECONDS` (exponential mean).
fn parse_jitter(text: &str) -> Option<Jitter> {
    let text = text.trim();
    let (exponential, number) = match text.strip_prefix("exp:") {
        Some(rest) => (true, rest.trim()),
        None => (false, text),
    };
    // At most an hour, so that drawing from it can never overflow a Duration.
    let millis = number.parse::<f64>().ok().filter(|value| (0.0..=3_600_000.0).contains(value))?;
    let width = Duration::from_secs_f64(millis / 1000.0);
    Some(if width.is_zero() {
        Jitter::None
    } else if exponential {
        Jitter::Exponential(width)
    } else {
        Jitter::Uniform(width)
    })
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

    #[test]
    fn jitter_and_warmup_knobs_parse() {
        // (variable, value, jitter or warm-up read back, or the start of the error)
        let cases: &[(&str, &str, Result<&str, &str>)] = &[
            ("HELLO_LATENCY_JITTER_MS", "20", Ok("Uniform(20ms)")),
            ("HELLO_LATENCY_JITTER_MS", " exp:15 ", Ok("Exponential(15ms)")),
            ("HELLO_LATENCY_JITTER_MS", "0", Ok("None")),
            ("HELLO_LATENCY_JITTER_MS", "", Ok("None")),
            ("HELLO_LATENCY_JITTER_MS", "exp:", Err("HELLO_LATENCY_JITTER_MS=\"exp:\" is neither")),
            ("HELLO_LATENCY_JITTER_MS", "-3", Err("HELLO_LATENCY_JITTER_MS=\"-3\" is neither")),
            ("HELLO_LATENCY_JITTER_MS", "gauss:3", Err("HELLO_LATENCY_JITTER_MS=")),
            ("HELLO_WARMUP_REQUESTS", "10", Ok("(10, 10)")),
            ("HELLO_WARMUP_REQUESTS", "5-20", Ok("(5, 20)")),
            ("HELLO_WARMUP_REQUESTS", "20-5", Err("HELLO_WARMUP_REQUESTS=\"20-5\" is not")),
            ("HELLO_WARMUP_REQUESTS", "many", Err("HELLO_WARMUP_REQUESTS=")),
            ("HELLO_WARMUP_LATENCY_MS", "50-150", Ok("(50ms, 150ms)")),
            ("HELLO_WARMUP_LATENCY_MS", "80", Ok("(80ms, 80ms)")),
            ("HELLO_WARMUP_LATENCY_MS", "1.5-2", Err("HELLO_WARMUP_LATENCY_MS=")),
        ];
        for (name, value, expected) in cases {
            let read = config(&[(*name, *value)]).map(|config| match *name {
                "HELLO_LATENCY_JITTER_MS" => format!("{:?}", config.jitter),
                "HELLO_WARMUP_REQUESTS" => format!("{:?}", config.warmup_requests),
                _ => format!("{:?}", config.warmup_latency),
            });
            match (expected, read) {
                (Ok(wanted), Ok(read)) => assert_eq!(&read, wanted, "{name}={value:?}"),
                (Err(start), Err(error)) => assert!(error.starts_with(start), "{name}={value:?}: {error}"),
                (expected, read) => panic!("{name}={value:?}: expected {expected:?}, read {read:?}"),
            }
        }
    }

    #[test]
    fn warmup_requests_are_slow_then_latency_and_jitter_apply() {
        let config = config(&[
            ("HELLO_LATENCY_MS", "40"),
            ("HELLO_LATENCY_JITTER_MS", "20"),
            ("HELLO_WARMUP_REQUESTS", "5-20"),
        ])
        .unwrap();
        assert_eq!(config.warmup_requests_for(0.0), 5);
        assert_eq!(config.warmup_requests_for(0.999_999), 20);
        assert_eq!(config.warmup_latency, DEFAULT_WARMUP_LATENCY);
        // Within the warm-up: 50 to 150 ms, whatever the latency and jitter.
        assert_eq!(config.latency_of(0, 5, 0.0), Duration::from_millis(50));
        assert_eq!(config.latency_of(4, 5, 0.5), Duration::from_millis(100));
        // After it: 40 ms plus uniform jitter in [0, 20).
        assert_eq!(config.latency_of(5, 5, 0.0), Duration::from_millis(40));
        assert_eq!(config.latency_of(5, 5, 0.5), Duration::from_millis(50));
        let exponential = super::Config { jitter: Jitter::Exponential(Duration::from_millis(10)), ..config };
        // The median of an exponential is mean * ln 2.
        let median = exponential.latency_of(100, 5, 0.5);
        assert!((median.as_secs_f64() - (0.040 + 0.010 * 2f64.ln())).abs() < 1e-6, "{median:?}");
    }

    /// Every short string over the characters these parsers care about: none makes them
    /// panic, and whatever they accept draws latencies without panicking either.
    #[test]
    fn the_parsers_never_panic() {
        let alphabet: Vec<char> = "09-:ex. 5".chars().collect();
        let mut words = vec![String::new()];
        for _ in 0..5 {
            words = words
                .iter()
                .flat_map(|word| alphabet.iter().map(move |c| format!("{word}{c}")))
                .collect();
            for word in &words {
                let _ = parse_range(word);
                if let Some(jitter) = parse_jitter(word) {
                    let config = Config { jitter, ..config(&[]).unwrap() };
                    let _ = config.latency_of(0, 0, 0.999_999_999);
                }
            }
        }
        let full = config(&[("HELLO_WARMUP_REQUESTS", "0-18446744073709551615")]).unwrap();
        assert_eq!(full.warmup_requests_for(0.0), 0);
        let _ = full.warmup_requests_for(0.999_999_999);
        let longest = config(&[("HELLO_LATENCY_MS", "1e300"), ("HELLO_LATENCY_JITTER_MS", "exp:3600000")]).unwrap();
        let _ = longest.latency_of(0, 0, 1.0 - f64::EPSILON);
        assert!(config(&[("HELLO_LATENCY_JITTER_MS", "1e30")]).is_err());
    }

    #[test]
    fn no_warmup_and_no_jitter_by_default() {
        let config = config(&[("HELLO_LATENCY_MS", "40")]).unwrap();
        assert_eq!(config.warmup_requests_for(0.7), 0);
        assert_eq!(config.latency_of(0, 0, 0.9), Duration::from_millis(40));
    }
}
