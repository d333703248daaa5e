//! Why an instance did not become ready, in parts, and the one message made of them.
//!
//! The message names what was probed and what answered, how long lastmile waited, and what
//! to change. Settings are named as in `lastmile.yaml` (`service.health.*`), which
//! [`crate::HealthSpec`] mirrors. The instance's output is kept apart ([`NotReady::output`])
//! so that callers can show it below the message; [`NotReady::report`] renders both.

use std::fmt;
use std::net::SocketAddr;
use std::time::Duration;

use crate::event::fmt_duration;
use crate::health::ProbeFailure;

/// Everything known about a start that failed, see [`crate::SupervisorError::NotReady`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotReady {
    /// Instance name.
    pub instance_id: String,
    /// Where the instance was to listen (`127.0.0.1:$PORT`).
    pub addr: SocketAddr,
    /// The health path probed with `GET`.
    pub path: String,
    /// Time between probes (`service.health.interval`).
    pub interval: Duration,
    /// Consecutive passes needed (`service.health.healthy_threshold`).
    pub healthy_threshold: u32,
    /// Probes sent.
    pub probes: u32,
    /// How the last failed probe failed; `None` if none failed.
    pub last_failure: Option<ProbeFailure>,
    /// Consecutive probes, up to the last failed one, that failed that same way.
    pub failure_streak: u32,
    /// Probes passed in a row at the end (fewer than `healthy_threshold`).
    pub passes: u32,
    /// How waiting ended.
    pub end: NotReadyEnd,
    /// The process's last output lines (stdout and stderr, oldest first), without the lines
    /// that log a health probe.
    pub output: Vec<String>,
    /// Output lines left out of `output` because they logged a health probe.
    pub probe_lines: usize,
}

/// How waiting for readiness ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NotReadyEnd {
    /// `service.health.start_timeout` passed.
    TimedOut {
        /// The time limit.
        limit: Duration,
    },
    /// The process ended by itself.
    Exited {
        /// `exited with status 3`, `was killed by signal 9 (SIGKILL)`.
        how: String,
        /// Time from spawn to exit.
        after: Duration,
    },
    /// A stop was requested while it started.
    Stopped {
        /// Time from spawn to the stop request.
        after: Duration,
    },
}

impl NotReady {
    /// The message, then the instance's output lines, indented.
    pub fn report(&self) -> String {
        let mut text = self.to_string();
        if !self.output.is_empty() {
            text.push_str("\nits last output (stdout and stderr):");
            for line in &self.output {
                text.push_str("\n  ");
                text.push_str(line);
            }
        }
        text
    }

    fn url(&self) -> String {
        format!(
            "http://{}{}",
            self.addr,
            crate::health::request_path(&self.path)
        )
    }

    /// `answered 503 on all 10 probes`, or `None` before any probe.
    fn probing(&self) -> Option<String> {
        if self.probes == 0 {
            return None;
        }
        if self.passes > 0 {
            return Some(format!(
                "passed the last {} of {} probes, fewer than the {} in a row that \
                 `service.health.healthy_threshold` asks for",
                self.passes, self.probes, self.healthy_threshold
            ));
        }
        let failure = self.last_failure.as_ref()?;
        let which = if self.failure_streak >= self.probes {
            match self.probes {
                1 => "the only probe".to_owned(),
                2 => "both probes".to_owned(),
                n => format!("all {n} probes"),
            }
        } else {
            format!("the last {} of {} probes", self.failure_streak, self.probes)
        };
        Some(format!("{failure} on {which}"))
    }

    /// What to change, for a start that timed out.
    fn timed_out_fix(&self) -> String {
        let path = crate::health::request_path(&self.path);
        let port = self.addr.port();
        let longer = "or raise `service.health.start_timeout` if the app needs longer to start";
        if self.passes > 0 {
            return "make the health check pass steadily, or lower \
                    `service.health.healthy_threshold`"
                .to_owned();
        }
        match &self.last_failure {
            None => format!(
                "`service.health.interval` ({}) leaves no time for a probe: make it shorter \
                 than `service.health.start_timeout`",
                fmt_duration(self.interval)
            ),
            Some(ProbeFailure::Status(404)) => format!(
                "the app does not serve {path}: set `service.health.path` to a path it answers \
                 with 2xx or 3xx"
            ),
            Some(ProbeFailure::Status(_)) => format!(
                "make {path} answer 2xx or 3xx once the app can serve (its output may say why \
                 it does not), {longer}"
            ),
            Some(ProbeFailure::Refused) => format!(
                "nothing listened on port {port}: make the app listen on 127.0.0.1:$PORT (lastmile \
                 sets PORT={port} for it), {longer}"
            ),
            Some(ProbeFailure::NoAnswer(_)) => {
                format!("make {path} answer sooner, or raise `service.health.timeout`")
            }
            Some(ProbeFailure::Reset | ProbeFailure::Closed | ProbeFailure::NotHttp(_)) => format!(
                "make the app answer plain HTTP/1.1 on port {port} (lastmile sets PORT={port})"
            ),
            Some(ProbeFailure::Io(_)) => {
                format!("check that this host can connect to 127.0.0.1:{port}, {longer}")
            }
        }
    }

    /// `; it printed nothing` or `; N output lines that logged the probes are left out`.
    fn output_note(&self) -> String {
        let mut note = String::new();
        if self.output.is_empty() && self.probe_lines == 0 {
            note.push_str("; it printed nothing on stdout or stderr");
        }
        if self.probe_lines > 0 {
            let lines = if self.probe_lines == 1 {
                "1 output line that logged a probe is".to_owned()
            } else {
                format!("{} output lines that logged probes are", self.probe_lines)
            };
            note.push_str(&format!("; {lines} left out"));
        }
        note
    }
}

impl fmt::Display for NotReady {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let id = &self.instance_id;
        let url = self.url();
        let note = self.output_note();
        match &self.end {
            NotReadyEnd::TimedOut { limit } => {
                let limit = fmt_duration(*limit);
                let every = fmt_duration(self.interval);
                let probing = self
                    .probing()
                    .unwrap_or_else(|| "no probe was sent".to_owned());
                write!(
                    f,
                    "instance {id} did not become ready within {limit}: GET {url} (probed every \
                     {every}): {probing}; {}{note}",
                    self.timed_out_fix()
                )
            }
            NotReadyEnd::Exited { how, after } => {
                let after = fmt_elapsed(*after);
                let probing = match self.probing() {
                    Some(probing) => format!(", before it became ready; GET {url}: {probing}"),
                    None => ", before the first health probe".to_owned(),
                };
                let fix = if self.output.is_empty() {
                    "fix `service.run` or the app"
                } else {
                    "its output says why; fix `service.run` or the app"
                };
                write!(f, "instance {id} {how} after {after}{probing}; {fix}{note}")
            }
            NotReadyEnd::Stopped { after } => write!(
                f,
                "instance {id} was stopped after {}, before it became ready, because a stop was \
                 requested (an aborted deployment, or lastmile stopping)",
                fmt_elapsed(*after)
            ),
        }
    }
}

/// `0.4s`, `12.3s`, `2m05s`: a measured time, to a tenth of a second.
pub(crate) fn fmt_elapsed(elapsed: Duration) -> String {
    let tenths = (elapsed.as_millis() + 50) / 100;
    if tenths < 600 {
        format!("{}.{}s", tenths / 10, tenths % 10)
    } else {
        let seconds = tenths / 10;
        format!("{}m{:02}s", seconds / 60, seconds % 60)
    }
}

#[cfg(test)]
mod tests;
