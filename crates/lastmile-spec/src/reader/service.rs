//! `service:`: how one instance runs, is probed and is stopped.

use std::collections::BTreeMap;
use std::time::Duration;

use super::{Problem, Reader};
use crate::model::{HealthCheck, Service, StopPolicy, StopSignal};
use crate::node::Node;
use crate::scalar::did_you_mean;

const SIGNAL_NAMES: &[&str] = &[
    "SIGTERM", "SIGINT", "SIGQUIT", "SIGHUP", "SIGUSR1", "SIGUSR2",
];

pub(super) fn read_service(reader: &mut Reader<'_>, node: &Node) -> Option<Service> {
    let fields = reader.fields(
        node,
        "`service`",
        &["run", "env", "secrets", "health", "stop"],
        &[("run", "run: ./target/release/app")],
    )?;
    let run = fields
        .get("run")
        .and_then(|value| reader.command(value, "service.run"));
    let env = match fields.get("env") {
        Some(value) => reader.env_map(value, "service.env"),
        None => Some(BTreeMap::new()),
    };
    let secrets = match fields.get("secrets") {
        Some(value) => reader.env_names(value, "service.secrets"),
        None => Some(Vec::new()),
    };
    let health = match fields.get("health") {
        Some(value) => read_health(reader, value),
        None => Some(default_health()),
    };
    let stop = match fields.get("stop") {
        Some(value) => read_stop(reader, value),
        None => Some(StopPolicy {
            signal: StopSignal::Sigterm,
            grace: Duration::from_secs(30),
        }),
    };
    Some(Service {
        run: run?,
        env: env?,
        secrets: secrets?,
        health: health?,
        stop: stop?,
    })
}

fn default_health() -> HealthCheck {
    HealthCheck {
        path: "/".to_owned(),
        interval: Duration::from_secs(1),
        timeout: Duration::from_secs(2),
        healthy_threshold: 1,
        unhealthy_threshold: 3,
        start_timeout: Duration::from_secs(60),
    }
}

fn read_health(reader: &mut Reader<'_>, node: &Node) -> Option<HealthCheck> {
    let fields = reader.fields(
        node,
        "`service.health`",
        &[
            "path",
            "interval",
            "timeout",
            "healthy_threshold",
            "unhealthy_threshold",
            "start_timeout",
        ],
        &[],
    )?;
    let mut health = default_health();
    let mut complete = true;
    if let Some(value) = fields.get("path") {
        match http_path(reader, value, "service.health.path") {
            Some(path) => health.path = path,
            None => complete = false,
        }
    }
    for (key, slot) in [
        ("interval", &mut health.interval),
        ("timeout", &mut health.timeout),
        ("start_timeout", &mut health.start_timeout),
    ] {
        if let Some(value) = fields.get(key) {
            match reader.positive_duration(value, &format!("service.health.{key}")) {
                Some(duration) => *slot = duration,
                None => complete = false,
            }
        }
    }
    for (key, slot) in [
        ("healthy_threshold", &mut health.healthy_threshold),
        ("unhealthy_threshold", &mut health.unhealthy_threshold),
    ] {
        if let Some(value) = fields.get(key) {
            match reader.count(value, &format!("service.health.{key}"), 1, 100) {
                Some(count) => *slot = count,
                None => complete = false,
            }
        }
    }
    complete.then_some(health)
}

/// An HTTP path: starts with `/`.
pub(super) fn http_path(reader: &mut Reader<'_>, node: &Node, what: &str) -> Option<String> {
    let path = reader.text(node, what)?;
    if path.starts_with('/') && !path.contains(char::is_whitespace) {
        return Some(path);
    }
    reader.error(
        node.place,
        Problem::new(
            "spec::invalid-path",
            format!("`{what}` must be an HTTP path starting with `/`, found `{path}`"),
            "not a path",
        )
        .hint(path_hint(&path)),
    );
    None
}

/// A corrected path when one is obvious (a missing `/`, spaces around it),
/// never the bad value again; else what a path looks like.
fn path_hint(path: &str) -> String {
    let suggestion = format!("/{}", path.trim().trim_start_matches('/'));
    if suggestion != path && !suggestion.contains(char::is_whitespace) {
        return format!("write `{suggestion}`");
    }
    if path.trim().contains(char::is_whitespace) {
        let encoded = suggestion.replace(' ', "%20");
        if !encoded.contains(char::is_whitespace) {
            return format!(
                "a path has no spaces; encode them as `%20` (`{encoded}`) or remove them"
            );
        }
    }
    "write a path starting with `/` and without whitespace, e.g. `/health`".to_owned()
}

fn read_stop(reader: &mut Reader<'_>, node: &Node) -> Option<StopPolicy> {
    let fields = reader.fields(node, "`service.stop`", &["signal", "grace"], &[])?;
    let signal = match fields.get("signal") {
        Some(value) => read_signal(reader, value),
        None => Some(StopSignal::Sigterm),
    };
    let grace = match fields.get("grace") {
        Some(value) => reader.duration(value, "service.stop.grace"),
        None => Some(Duration::from_secs(30)),
    };
    Some(StopPolicy {
        signal: signal?,
        grace: grace?,
    })
}

fn read_signal(reader: &mut Reader<'_>, node: &Node) -> Option<StopSignal> {
    let text = reader.text(node, "service.stop.signal")?;
    let upper = text.trim().to_ascii_uppercase();
    let bare = upper.strip_prefix("SIG").unwrap_or(&upper);
    let signal = match bare {
        "TERM" => Some(StopSignal::Sigterm),
        "INT" => Some(StopSignal::Sigint),
        "QUIT" => Some(StopSignal::Sigquit),
        "HUP" => Some(StopSignal::Sighup),
        "USR1" => Some(StopSignal::Sigusr1),
        "USR2" => Some(StopSignal::Sigusr2),
        _ => None,
    };
    if signal.is_some() {
        return signal;
    }
    let valid = SIGNAL_NAMES.join(", ");
    let hint = if bare == "KILL" {
        "SIGKILL cannot be caught, and lastmile sends it anyway once `grace` runs out; use SIGTERM"
            .to_owned()
    } else {
        match did_you_mean(
            &format!("SIG{bare}").to_ascii_lowercase(),
            [
                "sigterm", "sigint", "sigquit", "sighup", "sigusr1", "sigusr2",
            ],
        ) {
            Some(suggestion) => format!(
                "did you mean `{}`? valid signals: {valid}",
                suggestion.to_ascii_uppercase()
            ),
            None => format!("valid signals: {valid}"),
        }
    };
    reader.error(
        node.place,
        Problem::new(
            "spec::unknown-signal",
            format!("unknown stop signal `{text}`"),
            "unknown signal",
        )
        .hint(hint),
    );
    None
}
