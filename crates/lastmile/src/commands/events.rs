//! `lastmile events [ENV] [--follow] [--json]`: the event log of the running
//! `lastmile up` (or of the app on a `--server`), one line per event.
//!
//! It reads `GET /api/v1/events` page by page with the `after` cursor,
//! keeps the newest `--limit` events that concern ENV, prints them, and with
//! `--follow` polls from the last id seen. A closed stdout (`| head`) ends it
//! quietly.

use std::collections::{HashSet, VecDeque};
use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

use serde_json::Value;

use super::control::find;
use crate::cli::EventsArgs;
use crate::output::{self, Releases};

/// Events asked for per request: the API's largest page.
const PAGE: usize = 5000;

pub(crate) fn events(args: &EventsArgs, state_dir: Option<&Path>) -> anyhow::Result<ExitCode> {
    let control = find(&args.state, state_dir)?;
    let fetch = |after: i64| -> anyhow::Result<Vec<Value>> {
        let page = control.get(&format!("/api/v1/events?after={after}&limit={PAGE}"))?;
        Ok(page["events"].as_array().cloned().unwrap_or_default())
    };
    let mut filter = Concerning::new(args.env.as_deref());
    let limit = usize::try_from(args.limit).unwrap_or(usize::MAX);
    let mut newest = VecDeque::new();
    let mut cursor = 0;
    loop {
        let page = fetch(cursor)?;
        let full = page.len() >= PAGE;
        for event in page {
            cursor = cursor.max(event["id"].as_i64().unwrap_or(cursor));
            if filter.admits(&event) {
                if newest.len() == limit {
                    newest.pop_front();
                }
                newest.push_back(event);
            }
        }
        if !full {
            break;
        }
    }
    // Releases are named by version; the events carry only ids.
    let mut releases = Releases::of(&control.status(None)?.releases);
    let mut out = std::io::stdout().lock();
    let as_json = args.json;
    if newest.is_empty() && !as_json && !args.follow {
        let whose = args
            .env
            .as_ref()
            .map_or_else(String::new, |env| format!(" about environment `{env}`"));
        return match writeln!(out, "no events{whose} yet") {
            Ok(()) => Ok(ExitCode::SUCCESS),
            Err(error) => closed(error),
        };
    }
    for event in &newest {
        if let Err(error) = print(&mut out, event, &releases, as_json) {
            return closed(error);
        }
    }
    if !args.follow {
        return Ok(ExitCode::SUCCESS);
    }
    drop(out);
    loop {
        std::thread::sleep(args.interval);
        let page = fetch(cursor)?;
        if !page.is_empty() && !as_json {
            releases = Releases::of(&control.status(None)?.releases);
        }
        let mut out = std::io::stdout().lock();
        for event in page {
            cursor = cursor.max(event["id"].as_i64().unwrap_or(cursor));
            if filter.admits(&event)
                && let Err(error) = print(&mut out, &event, &releases, as_json)
            {
                return closed(error);
            }
        }
    }
}

/// One event, as a line of text or of JSON, flushed at once so a pipe sees
/// it while `--follow` waits.
fn print(
    out: &mut impl Write,
    event: &Value,
    releases: &Releases,
    as_json: bool,
) -> std::io::Result<()> {
    if as_json {
        writeln!(out, "{event}")?;
    } else {
        writeln!(out, "{}", event_line(event, releases))?;
    }
    out.flush()
}

/// A closed stdout (the reader of a pipe went away) is the end of the
/// output, not an error.
fn closed(error: std::io::Error) -> anyhow::Result<ExitCode> {
    if error.kind() == std::io::ErrorKind::BrokenPipe {
        Ok(ExitCode::SUCCESS)
    } else {
        Err(anyhow::Error::new(error).context("cannot write the events to stdout"))
    }
}

/// Which events concern one environment: those naming it (`environment`
/// in their data, `environment/ENV` or `…/environments/ENV/…` as their
/// subject) and those about a deployment that one of them started.
#[derive(Debug)]
pub(crate) struct Concerning {
    environment: Option<String>,
    deployments: HashSet<String>,
}

impl Concerning {
    pub(crate) fn new(environment: Option<&str>) -> Concerning {
        Concerning {
            environment: environment.map(str::to_owned),
            deployments: HashSet::new(),
        }
    }

    /// Whether `event` concerns the environment (every event does when no
    /// environment was named). Events must come oldest first: a
    /// deployment's later events are known by its `deployment.started`.
    pub(crate) fn admits(&mut self, event: &Value) -> bool {
        let Some(environment) = &self.environment else {
            return true;
        };
        let subject = event["subject"].as_str().unwrap_or_default();
        let named = event["data"]["environment"].as_str() == Some(environment.as_str())
            || subject == format!("environment/{environment}")
            || subject.contains(&format!("environments/{environment}/"))
            || subject.ends_with(&format!("environments/{environment}"));
        if named && subject.starts_with("deployment/") {
            self.deployments.insert(subject.to_owned());
        }
        named || self.deployments.contains(subject)
    }
}

/// One event for people: `TIME  KIND  SUBJECT  what happened`.
pub(crate) fn event_line(event: &Value, releases: &Releases) -> String {
    let at = event["at"]
        .as_i64()
        .map_or_else(|| "?".to_owned(), output::timestamp);
    let kind = event["kind"].as_str().unwrap_or("?");
    let subject = event["subject"].as_str().unwrap_or("?");
    let summary = summary(kind, &event["data"], releases);
    let actor = match event["actor"].as_str() {
        Some("lastmile") | None => String::new(),
        Some(actor) => format!(" (by {actor})"),
    };
    format!("{at}  {kind:<20} {subject:<14} {summary}{actor}")
        .trim_end()
        .to_owned()
}

/// What an event says, in words; kinds without their own wording list
/// their plain fields.
fn summary(kind: &str, data: &Value, releases: &Releases) -> String {
    let text = |name: &str| data[name].as_str().unwrap_or_default();
    match kind {
        "canary.decision" => {
            let weight = data["canary_percent"]
                .as_f64()
                .map_or_else(String::new, |percent| format!(" at {}%", number(percent)));
            let mut parts = vec![format!("{}{weight}: {}", text("phase"), text("decision"))];
            parts.extend(lastmile_rollout::analysis_numbers(&data["analysis"]));
            if let Some(reason) = data["reason"].as_str() {
                parts.push(format!("reason: {reason}"));
            }
            parts.join(" · ")
        }
        "deployment.started" => format!(
            "{} of {}: {} → {}",
            text("strategy"),
            text("environment"),
            releases.label(data["from"].as_str()),
            releases.label(data["to"].as_str())
        ),
        "deployment.finished" => {
            let reason = data["reason"]
                .as_str()
                .or_else(|| data["error"].as_str())
                .map_or_else(String::new, |reason| format!(": {reason}"));
            format!("{}{reason}", text("status"))
        }
        "environment.changed" => {
            let weights: Vec<String> = data["weights"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|pair| format!("{} {}", releases.label(pair[0].as_str()), pair[1]))
                .collect();
            format!(
                "serves {}; weights {}",
                releases.label(data["current_release"].as_str()),
                if weights.is_empty() {
                    "none".to_owned()
                } else {
                    weights.join(", ")
                }
            )
        }
        _ => plain_fields(data),
    }
}

/// `key=value` for each field that is a string, number or boolean, by key
/// (so the line does not depend on whether serde_json keeps insertion order,
/// which feature unification decides).
fn plain_fields(data: &Value) -> String {
    let Some(fields) = data.as_object() else {
        return match data {
            Value::Null => String::new(),
            other => other.to_string(),
        };
    };
    let mut fields: Vec<(&String, &Value)> = fields.iter().collect();
    fields.sort_by(|a, b| a.0.cmp(b.0));
    fields
        .into_iter()
        .filter_map(|(key, value)| match value {
            Value::String(text) => Some(format!("{key}={text}")),
            Value::Number(number) => Some(format!("{key}={number}")),
            Value::Bool(flag) => Some(format!("{key}={flag}")),
            _ => None,
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// `10`, `2.5`: a percentage without trailing zeros.
fn number(value: f64) -> String {
    let text = format!("{value:.2}");
    text.trim_end_matches('0').trim_end_matches('.').to_owned()
}

#[cfg(test)]
mod tests;
