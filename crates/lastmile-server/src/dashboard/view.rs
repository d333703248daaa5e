//! What the pages show, in words: built from the server's JSON and store
//! records so the templates only print strings.

use std::collections::BTreeMap;

use lastmile_host::{InstanceInfo, InstanceState};
use lastmile_store::{
    CommitRecord, DeploymentRecord, DeploymentStep, LogLine, ReleaseRecord, Run, StepRecord,
    now_millis,
};
use serde_json::Value;

use crate::report::{AppOverview, Approval, StatusReport};

/// Release id → version (`v3`), to name releases as people do.
#[derive(Debug, Default)]
pub(crate) struct Versions(BTreeMap<String, String>);

impl Versions {
    /// From store records.
    pub(crate) fn from_records(releases: &[ReleaseRecord]) -> Versions {
        Versions(
            releases
                .iter()
                .map(|release| (release.id.clone(), release.version.clone()))
                .collect(),
        )
    }

    /// The version of `id`, or its short id when unknown.
    pub(crate) fn name(&self, id: &str) -> String {
        self.0.get(id).cloned().unwrap_or_else(|| short(id))
    }
}

/// One environment as the overview and the app page show it.
#[derive(Debug)]
pub(crate) struct EnvView {
    pub(crate) name: String,
    pub(crate) live: String,
    pub(crate) previous: Option<String>,
    pub(crate) ready: usize,
    pub(crate) total: usize,
    pub(crate) split: Vec<SplitView>,
    pub(crate) deployment: Option<String>,
    pub(crate) listen: String,
    pub(crate) strategy: String,
}

/// One release's share of an environment's traffic.
#[derive(Debug)]
pub(crate) struct SplitView {
    pub(crate) version: String,
    pub(crate) percent: String,
}

/// Traffic and latency of one release.
#[derive(Debug)]
pub(crate) struct StatView {
    pub(crate) version: String,
    pub(crate) requests: String,
    pub(crate) errors: String,
    pub(crate) p99: String,
}

/// A certificate a TLS route serves.
#[derive(Debug)]
pub(crate) struct CertificateView {
    pub(crate) hosts: String,
    pub(crate) source: String,
    pub(crate) state: String,
    pub(crate) expires: String,
    pub(crate) renews: String,
    pub(crate) error: Option<String>,
}

/// A deployment waiting for approval.
#[derive(Debug)]
pub(crate) struct PendingView {
    pub(crate) environment: String,
    pub(crate) version: String,
    pub(crate) commit: String,
    pub(crate) ago: String,
}

/// The newest commit of an app.
#[derive(Debug)]
pub(crate) struct CommitView {
    pub(crate) short: String,
    /// The branch it is on; empty when unknown (a detached work tree).
    pub(crate) branch: String,
    pub(crate) subject: String,
    pub(crate) author: String,
    pub(crate) status: String,
    pub(crate) run: Option<i64>,
    pub(crate) ago: String,
    pub(crate) error: Option<String>,
}

/// One app on the overview.
#[derive(Debug)]
pub(crate) struct AppCard {
    pub(crate) name: String,
    pub(crate) repo: String,
    pub(crate) last_commit: Option<CommitView>,
    pub(crate) last_error: Option<String>,
    pub(crate) drift: Vec<(String, String)>,
    pub(crate) pending: Vec<PendingView>,
    pub(crate) environments: Vec<EnvView>,
}

/// A pipeline run in a list or on its page.
#[derive(Debug)]
pub(crate) struct RunView {
    pub(crate) id: i64,
    pub(crate) status: String,
    pub(crate) commit: String,
    pub(crate) ago: String,
    pub(crate) duration: String,
    pub(crate) reason: Option<String>,
}

/// A step of a run with its log.
#[derive(Debug)]
pub(crate) struct StepView {
    pub(crate) name: String,
    pub(crate) status: String,
    pub(crate) attempts: u32,
    pub(crate) duration: String,
    pub(crate) log: String,
}

/// A deployment in a list or on its page.
#[derive(Debug)]
pub(crate) struct DeploymentView {
    pub(crate) id: i64,
    pub(crate) environment: String,
    pub(crate) from: String,
    pub(crate) to: String,
    pub(crate) strategy: String,
    pub(crate) status: String,
    pub(crate) phase: String,
    pub(crate) ago: String,
    pub(crate) duration: String,
    /// Why it failed.
    pub(crate) reason: Option<String>,
    /// The last analysis's key numbers, in one line.
    pub(crate) numbers: Option<String>,
}

/// A recorded transition of a deployment.
#[derive(Debug)]
pub(crate) struct PhaseView {
    pub(crate) seq: i64,
    pub(crate) ago: String,
    pub(crate) phase: String,
    pub(crate) detail: String,
}

/// A release in the history.
#[derive(Debug)]
pub(crate) struct ReleaseView {
    pub(crate) version: String,
    pub(crate) id: String,
    pub(crate) run: Option<i64>,
    pub(crate) ago: String,
    pub(crate) live_in: String,
}

/// DORA figures of one environment.
#[derive(Debug)]
pub(crate) struct DoraView {
    pub(crate) environment: String,
    pub(crate) deployments: String,
    pub(crate) frequency: String,
    pub(crate) frequency_tier: String,
    pub(crate) lead_time: String,
    pub(crate) lead_time_tier: String,
    pub(crate) failure_rate: String,
    pub(crate) failure_rate_tier: String,
    pub(crate) recovery: String,
    pub(crate) recovery_tier: String,
}

/// The environments of a controller's status.
pub(crate) fn environments(status: &StatusReport) -> Vec<EnvView> {
    let versions = Versions::from_records(&status.releases);
    let mut views = Vec::new();
    for env in &status.environments {
        let mine: Vec<&InstanceInfo> = status
            .instances
            .iter()
            .filter(|instance| instance.belongs_to(&env.name))
            .collect();
        let ready = mine
            .iter()
            .filter(|instance| instance.state == InstanceState::Ready)
            .count();
        let split = env
            .weights
            .iter()
            .map(|weight| SplitView {
                version: versions.name(&weight.release),
                percent: format!("{:.0}%", weight.percent),
            })
            .collect();
        let deployment = env.deployment.as_ref().map(|deployment| {
            format!(
                "#{} to {} ({}, {})",
                deployment.id,
                versions.name(&deployment.to_release),
                deployment.strategy,
                deployment.phase,
            )
        });
        views.push(EnvView {
            live: env
                .current_release
                .as_deref()
                .map_or_else(|| "nothing yet".to_owned(), |id| versions.name(id)),
            previous: env.previous_release.as_deref().map(|id| versions.name(id)),
            ready,
            total: mine.len(),
            split,
            deployment,
            listen: env.listen.map(|addr| addr.to_string()).unwrap_or_default(),
            strategy: strategy(Some(&env.strategy)),
            name: env.name.clone(),
        });
    }
    views
}

/// Per-release traffic of a controller's status.
pub(crate) fn stats(status: &StatusReport) -> Vec<StatView> {
    let versions = Versions::from_records(&status.releases);
    status
        .stats
        .iter()
        .map(|row| StatView {
            version: versions.name(&row.release),
            requests: row.stats.requests.to_string(),
            errors: row.stats.errors_5xx.to_string(),
            p99: format!("{:.1} ms", row.stats.p99_ms),
        })
        .collect()
}

/// The certificates of an app's status.
pub(crate) fn certificates(status: &StatusReport) -> Vec<CertificateView> {
    status
        .certificates
        .iter()
        .map(|row| CertificateView {
            hosts: if row.hosts.is_empty() {
                "(default)".to_string()
            } else {
                row.hosts.join(", ")
            },
            source: row.source.as_str().to_owned(),
            state: row.state.as_str().to_owned(),
            expires: row.not_after.clone().unwrap_or_else(|| "-".to_owned()),
            renews: row.renew_at.clone().unwrap_or_else(|| "-".to_owned()),
            error: row.error.clone(),
        })
        .collect()
}

/// Pending approvals, from `Server::pending`.
pub(crate) fn pending(pending: &[Approval]) -> Vec<PendingView> {
    pending
        .iter()
        .map(|item| PendingView {
            environment: item.environment.clone(),
            version: item.version.clone(),
            commit: item.commit.as_deref().map(short).unwrap_or_default(),
            ago: ago(item.since_ms),
        })
        .collect()
}

/// One app of `Server::overview`.
pub(crate) fn app_card(app: &AppOverview) -> AppCard {
    AppCard {
        name: app.name.clone(),
        repo: app.repo.clone(),
        last_commit: app.last_commit.as_ref().map(commit),
        last_error: app.last_error.clone(),
        drift: app
            .drift
            .iter()
            .map(|(env, what)| (env.clone(), what.clone()))
            .collect(),
        pending: app.pending.as_deref().map(pending).unwrap_or_default(),
        environments: app.status.as_ref().map(environments).unwrap_or_default(),
    }
}

/// The newest commit from the store.
pub(crate) fn commit(commit: &CommitRecord) -> CommitView {
    CommitView {
        short: short(&commit.sha),
        branch: commit.branch.clone(),
        subject: commit.subject.clone(),
        author: commit.author.clone(),
        status: commit.status.to_string(),
        run: commit.run_id,
        ago: ago(commit.seen_at),
        error: commit.error.clone(),
    }
}

/// A run record.
pub(crate) fn run(run: &Run) -> RunView {
    RunView {
        id: run.id,
        status: words(&run.status),
        commit: run.commit.as_deref().map(short).unwrap_or_default(),
        ago: ago(run.started_at),
        duration: duration(Some(run.started_at), run.finished_at),
        reason: run.reason.clone(),
    }
}

/// Steps of a run with their log lines (all attempts, in order).
pub(crate) fn steps(steps: &[StepRecord], logs: &[(String, LogLine)]) -> Vec<StepView> {
    steps
        .iter()
        .map(|step| {
            let log: Vec<&str> = logs
                .iter()
                .filter(|(name, _)| name == &step.name)
                .map(|(_, line)| line.text.as_str())
                .collect();
            StepView {
                name: step.name.clone(),
                status: words(&step.status),
                attempts: step.attempts,
                duration: duration(step.started_at, step.finished_at),
                log: log.join("\n"),
            }
        })
        .collect()
}

/// A deployment record.
pub(crate) fn deployment(deployment: &DeploymentRecord, versions: &Versions) -> DeploymentView {
    DeploymentView {
        id: deployment.id,
        environment: deployment.environment.clone(),
        from: deployment
            .from_release
            .as_deref()
            .map_or_else(|| "nothing".to_owned(), |id| versions.name(id)),
        to: versions.name(&deployment.to_release),
        strategy: deployment.strategy.to_string(),
        status: deployment.status.as_str().to_owned(),
        phase: deployment.phase.to_string(),
        ago: ago(deployment.started_at),
        duration: duration(Some(deployment.started_at), deployment.finished_at),
        reason: deployment.reason.clone(),
        numbers: deployment
            .analysis
            .as_ref()
            .and_then(lastmile_rollout::analysis_numbers),
    }
}

/// A deployment's recorded phases.
pub(crate) fn phases(steps: &[DeploymentStep], versions: &Versions) -> Vec<PhaseView> {
    steps
        .iter()
        .map(|step| PhaseView {
            seq: step.seq,
            ago: ago(step.at),
            phase: step.phase.to_string(),
            detail: phase_detail(&step.detail, versions),
        })
        .collect()
}

/// A step's detail as one line for people: `release v3`, `traffic v2 90%, v3 10%`,
/// `error: …`; keys it does not know read `key: value`, and empty values are left out.
fn phase_detail(detail: &Value, versions: &Versions) -> String {
    let Value::Object(fields) = detail else {
        return detail_value(detail, versions);
    };
    let mut parts = Vec::new();
    for (key, value) in fields {
        if is_empty_detail(value) {
            continue;
        }
        parts.push(match (key.as_str(), value) {
            ("release", Value::String(id)) => format!("release {}", versions.name(id)),
            ("indexes", Value::Array(indexes)) => {
                let noun = if indexes.len() == 1 {
                    "instance"
                } else {
                    "instances"
                };
                format!("{noun} {}", detail_value(value, versions))
            }
            ("weights", Value::Array(weights)) => format!("traffic {}", traffic(weights, versions)),
            ("canary_percent", Value::Number(percent)) => {
                format!(
                    "canary at {}",
                    percent_text(percent.as_f64().unwrap_or(0.0))
                )
            }
            ("mirror", Value::Object(mirror)) => {
                let percent = mirror.get("percent").and_then(Value::as_f64).unwrap_or(0.0);
                let release = mirror.get("release").and_then(Value::as_str).unwrap_or("");
                format!(
                    "mirroring {} to {}",
                    percent_text(percent),
                    versions.name(release)
                )
            }
            _ => format!("{key}: {}", detail_value(value, versions)),
        });
    }
    parts.join("; ")
}

/// Weights (`[[release, weight], …]`) as each release's share: `v2 90%, v3 10%`.
fn traffic(weights: &[Value], versions: &Versions) -> String {
    let pairs: Vec<(String, f64)> = weights
        .iter()
        .filter_map(|pair| match pair {
            Value::Array(pair) => Some((
                text(pair.first()),
                pair.get(1).and_then(Value::as_f64).unwrap_or(0.0),
            )),
            Value::Object(pair) => Some((
                text(pair.get("release")),
                pair.get("weight").and_then(Value::as_f64).unwrap_or(0.0),
            )),
            _ => None,
        })
        .collect();
    let total: f64 = pairs.iter().map(|(_, weight)| weight).sum();
    if pairs.is_empty() {
        return "none".to_owned();
    }
    pairs
        .iter()
        .map(|(release, weight)| {
            let share = if total > 0.0 {
                weight * 100.0 / total
            } else {
                0.0
            };
            format!("{} {}", versions.name(release), percent_text(share))
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// `25%`, or `2.5%` when the share is not whole.
fn percent_text(percent: f64) -> String {
    if (percent - percent.round()).abs() < 0.05 {
        format!("{percent:.0}%")
    } else {
        format!("{percent:.1}%")
    }
}

/// Nulls, empty strings, lists and maps say nothing worth a column.
fn is_empty_detail(value: &Value) -> bool {
    match value {
        Value::Null => true,
        Value::String(text) => text.is_empty(),
        Value::Array(items) => items.is_empty(),
        Value::Object(fields) => fields.is_empty(),
        _ => false,
    }
}

/// A detail value without JSON punctuation; release ids read as versions.
fn detail_value(value: &Value, versions: &Versions) -> String {
    match value {
        Value::Null => String::new(),
        Value::String(text) if is_release_id(text) => versions.name(text),
        Value::String(text) => text.clone(),
        Value::Array(items) => items
            .iter()
            .map(|item| detail_value(item, versions))
            .collect::<Vec<_>>()
            .join(", "),
        Value::Object(fields) => {
            let inner: Vec<String> = fields
                .iter()
                .filter(|(_, value)| !is_empty_detail(value))
                .map(|(key, value)| format!("{key}: {}", detail_value(value, versions)))
                .collect();
            format!("({})", inner.join(", "))
        }
        other => other.to_string(),
    }
}

/// Release ids are 64 hex digits (a SHA-256).
fn is_release_id(text: &str) -> bool {
    text.len() == 64 && text.bytes().all(|byte| byte.is_ascii_hexdigit())
}

/// The release history, with where each release is live.
pub(crate) fn releases(releases: &[ReleaseRecord], environments: &[EnvView]) -> Vec<ReleaseView> {
    releases
        .iter()
        .map(|release| ReleaseView {
            version: release.version.clone(),
            id: short(&release.id),
            run: release.run_id,
            ago: ago(release.created_at),
            live_in: environments
                .iter()
                .filter(|env| env.live == release.version)
                .map(|env| env.name.as_str())
                .collect::<Vec<_>>()
                .join(", "),
        })
        .collect()
}

/// The `environments` of `Controller::dora`.
pub(crate) fn dora(report: &Value) -> Vec<DoraView> {
    report
        .get("environments")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|env| {
            let tier = |name: &str| text(env.get("tiers").and_then(|tiers| tiers.get(name)));
            let hours = |name: &str| match env.get(name).and_then(Value::as_f64) {
                Some(hours) if hours < 1.0 => format!("{:.0} min", hours * 60.0),
                Some(hours) => format!("{hours:.1} h"),
                None => "no data".to_owned(),
            };
            DoraView {
                environment: text(env.get("environment")),
                deployments: number(env.get("deployments")),
                frequency: format!(
                    "{:.2}/day",
                    env.get("deployment_frequency_per_day")
                        .and_then(Value::as_f64)
                        .unwrap_or(0.0)
                ),
                frequency_tier: tier("deployment_frequency"),
                lead_time: hours("lead_time_median_hours"),
                lead_time_tier: tier("lead_time"),
                failure_rate: env
                    .get("change_failure_rate")
                    .and_then(Value::as_f64)
                    .map_or_else(
                        || "no data".to_owned(),
                        |rate| format!("{:.0}%", rate * 100.0),
                    ),
                failure_rate_tier: tier("change_failure_rate"),
                recovery: hours("recovery_time_median_hours"),
                recovery_tier: tier("recovery_time"),
            }
        })
        .collect()
}

/// A strategy as the spec writes it (`rolling`, or `{type: blue-green, …}`).
fn strategy(value: Option<&Value>) -> String {
    match value {
        Some(Value::String(name)) => name.clone(),
        Some(Value::Object(map)) => map
            .get("type")
            .and_then(Value::as_str)
            .map_or_else(|| Value::Object(map.clone()).to_string(), str::to_owned),
        Some(other) if !other.is_null() => other.to_string(),
        _ => String::new(),
    }
}

/// A serde enum (`succeeded`) or any value, as a word.
fn words(value: &impl serde::Serialize) -> String {
    match serde_json::to_value(value) {
        Ok(Value::String(word)) => word,
        Ok(other) => other.to_string(),
        Err(_) => String::new(),
    }
}

fn text(value: Option<&Value>) -> String {
    match value {
        Some(Value::String(text)) => text.clone(),
        Some(Value::Null) | None => String::new(),
        Some(other) => other.to_string(),
    }
}

fn number(value: Option<&Value>) -> String {
    value.and_then(Value::as_u64).unwrap_or(0).to_string()
}

pub(crate) use crate::controller::short;

/// How long ago `millis` was, roughly.
pub(crate) fn ago(millis: i64) -> String {
    let seconds = (now_millis() - millis).max(0) / 1000;
    match seconds {
        0..=59 => format!("{seconds}s ago"),
        60..=3599 => format!("{}m ago", seconds / 60),
        3600..=86_399 => format!("{}h ago", seconds / 3600),
        _ => format!("{}d ago", seconds / 86_400),
    }
}

/// Time between two instants, or since the first while it goes on.
fn duration(start: Option<i64>, end: Option<i64>) -> String {
    let Some(start) = start else {
        return String::new();
    };
    let end = end.unwrap_or_else(now_millis);
    let millis = (end - start).max(0);
    if millis < 60_000 {
        format!("{:.1}s", millis as f64 / 1000.0)
    } else {
        format!("{}m{:02}s", millis / 60_000, (millis / 1000) % 60)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn environments_count_their_own_instances_and_name_releases_by_version() {
        let release = |id: &str, version: &str| json!({ "id": id, "version": version, "app": "hello", "artifact_id": "art", "run_id": null, "created_at": 0 });
        let instance = |id: &str, release: &str, state: &str| json!({ "instance_id": id, "release_id": release, "index": 0, "addr": "127.0.0.1:2", "state": state, "restarts": 0, "pid": null });
        let status: StatusReport = serde_json::from_value(json!({
            "app": "hello", "certificates": [], "control": null, "deployments": [], "flags": [], "pid": 1, "stats": [],
            "releases": [release("aaaa", "v1"), release("bbbb", "v2")],
            "instances": [
                instance("staging.aaaa.0", "aaaa", "ready"),
                instance("staging.bbbb.0", "bbbb", "starting"),
                instance("production.aaaa.0", "aaaa", "ready"),
            ],
            "environments": [{
                "name": "staging", "listen": "127.0.0.1:1", "strategy": {"type": "blue-green"},
                "tls": false, "instances": 1, "last_deployment": null,
                "current_release": "aaaa", "previous_release": null,
                "weights": [{"release": "aaaa", "weight": 3, "percent": 75.0}, {"release": "bbbb", "weight": 1, "percent": 25.0}],
                "deployment": null,
            }],
        }))
        .unwrap();
        let envs = environments(&status);
        assert_eq!(envs.len(), 1);
        assert_eq!(envs[0].live, "v1");
        assert_eq!((envs[0].ready, envs[0].total), (1, 2));
        assert_eq!(envs[0].split[1].version, "v2");
        assert_eq!(envs[0].split[1].percent, "25%");
        assert_eq!(envs[0].strategy, "blue-green");
        assert!(envs[0].previous.is_none());
    }

    #[test]
    fn deployment_steps_read_as_sentences_with_versions_and_percentages() {
        let stable = "a".repeat(64);
        let canary = "b".repeat(64);
        let unknown = "c".repeat(64);
        let versions = Versions(BTreeMap::from([
            (stable.clone(), "v2".to_owned()),
            (canary.clone(), "v3".to_owned()),
        ]));
        let details = [
            ("starting", json!({ "release": canary })),
            (
                "batch-1-starting",
                json!({ "release": canary, "indexes": [0] }),
            ),
            (
                "batch-2-starting",
                json!({ "release": canary, "indexes": [1, 2] }),
            ),
            (
                "batch-1-routed",
                json!({ "weights": [[stable, 2], [canary, 1]] }),
            ),
            (
                "step-1",
                json!({
                    "canary_percent": 2.5,
                    "weights": [[stable, 975], [canary, 25]],
                    "mirror": { "release": canary, "percent": 10.0, "methods": ["GET"] },
                }),
            ),
            ("step-2-paused", json!({ "canary_percent": 50 })),
            ("switched", json!({ "weights": [[unknown, 100]] })),
            ("aborting", json!({ "reason": "error rate 12% above 5%" })),
            (
                "hook",
                json!({ "hook": "after", "url": "http://127.0.0.1:9/done", "error": null, "tries": 2, "why": { "code": 503, "body": "" } }),
            ),
            ("succeeded", json!({ "error": null })),
            (
                "failed",
                json!({ "error": "instance v3.0 never became ready" }),
            ),
            ("noted", json!("plain text")),
            ("empty", Value::Null),
        ];
        let steps: Vec<DeploymentStep> = details
            .into_iter()
            .enumerate()
            .map(|(index, (phase, detail))| DeploymentStep {
                seq: index as i64 + 1,
                at: now_millis(),
                phase: phase.into(),
                detail,
            })
            .collect();
        let table: Vec<String> = phases(&steps, &versions)
            .iter()
            .map(|phase| {
                let line = format!("{:>2} {:<17}| {}", phase.seq, phase.phase, phase.detail);
                line.trim_end().to_owned()
            })
            .collect();
        insta::assert_snapshot!(table.join("\n"));
    }

    #[test]
    fn durations_and_ages_read_as_words() {
        assert_eq!(duration(Some(0), Some(1500)), "1.5s");
        assert_eq!(duration(Some(0), Some(61_000)), "1m01s");
        assert_eq!(duration(None, Some(1)), "");
        assert_eq!(ago(now_millis() - 5_000), "5s ago");
    }
}
