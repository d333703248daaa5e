//! `lastmile deploy | rollback | status | restart | down`: requests to the
//! running `lastmile up` through its control API.

use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use serde_json::{Value, json};

use crate::cli::{
    ControlArgs, DeployArgs, DoraArgs, EnvArgs, FlagCommand, RollbackArgs, StateArgs, StatusArgs,
    WatchArgs,
};
use crate::commands::check::load_or_report;
use crate::commands::run::{Build, print_summary, runtime};
use crate::control::Control;
use crate::output::{self, outln};
use crate::state;
use lastmile_server::CertificateState;
use lastmile_server::report::LastDeployment;
use lastmile_store::DeploymentStatus;

/// Deploys can wait for instances to become ready and for gates: allow long.
const DEPLOY_TIMEOUT: Duration = Duration::from_secs(60 * 60);

/// How long `restart` waits for the new process to record itself in up.json.
const RESTART_RECORDED: Duration = Duration::from_secs(10);

/// How a command that takes `--dir` is pointed at an app's directory, for
/// the hint of a missing spec.
const DIR_EXAMPLE: &str = "--dir examples/hello";

/// The running `lastmile up` (or server) for `args.dir`. Where none runs
/// and the directory holds no spec, the error is the spec's `not_found`
/// (the same as `check`, `run` and `up` give), since starting `up` there
/// would fail for that reason.
pub(crate) fn find(args: &StateArgs, state_dir: Option<&Path>) -> anyhow::Result<Control> {
    if let Some(remote) = crate::control::remote() {
        return Control::remote_app(remote, &args.dir);
    }
    let dir = std::path::absolute(&args.dir).unwrap_or_else(|_| args.dir.clone());
    let state_dir = state::state_dir(state_dir, &dir);
    Control::find(&state_dir).map_err(|no_up| match lastmile_spec::load(&args.dir) {
        Err(missing @ lastmile_spec::LoadError::NotFound { .. }) => {
            missing.suggesting(DIR_EXAMPLE).into()
        }
        _ => no_up,
    })
}

pub(crate) fn deploy(args: &DeployArgs, state_dir: Option<&Path>) -> anyhow::Result<ExitCode> {
    let control = find(&args.control.state, state_dir)?;
    let mut request = json!({ "environment": args.env });
    if let Some(release) = &args.release {
        request["release"] = json!(release);
    } else if crate::control::remote().is_some() {
        // A server builds from git: deploy the newest release it made.
    } else {
        let Some(loaded) = load_or_report(&args.control.state.dir, DIR_EXAMPLE) else {
            return Ok(ExitCode::from(1));
        };
        let dir = state::state_dir(state_dir, &loaded.dir);
        let build = Build {
            in_place: args.in_place,
            quiet: args.control.json,
            ..Build::default()
        };
        let summary = runtime()?.block_on(build.run(&loaded, &dir))?;
        if !args.control.json {
            print_summary(&summary);
        }
        if summary.status != lastmile_store::RunStatus::Succeeded {
            return Ok(ExitCode::from(1));
        }
        let artifact = summary
            .artifact
            .context("the pipeline packed no artifact: add `artifact.paths` to lastmile.yaml")?;
        request["artifact"] = json!({ "id": artifact.id, "run_id": summary.run_id });
    }
    if args.approve {
        request["approved_by"] = json!(crate::actor::actor());
    }
    if !args.control.json {
        eprintln!("deploying to {} …", args.env);
    }
    let answer = control.post("/api/v1/deploy", &request, DEPLOY_TIMEOUT)?;
    print_outcome(&answer, args.control.json)
}

pub(crate) fn rollback(args: &RollbackArgs, state_dir: Option<&Path>) -> anyhow::Result<ExitCode> {
    let control = find(&args.control.state, state_dir)?;
    let mut request = json!({ "environment": args.env });
    if let Some(to) = &args.to {
        request["to"] = json!(to);
    }
    let answer = control.post("/api/v1/rollback", &request, DEPLOY_TIMEOUT)?;
    print_outcome(&answer, args.control.json)
}

fn print_outcome(answer: &Value, as_json: bool) -> anyhow::Result<ExitCode> {
    let succeeded = answer["status"] == "succeeded" || answer["status"] == "rolled-back";
    if as_json {
        outln!("{}", serde_json::to_string_pretty(answer)?);
    } else {
        let id = answer["deployment"].as_i64().unwrap_or_default();
        let release = outcome_label(answer, "to");
        let environment = answer["environment"].as_str().unwrap_or("?");
        let took = answer["duration_ms"].as_u64().unwrap_or_default();
        if answer["noop"] == true {
            outln!(
                "{}",
                lastmile_rollout::unchanged_line(environment, &release)
            );
        } else if succeeded {
            let switched = answer["switched_after_ms"]
                .as_u64()
                .map(|ms| {
                    format!(
                        " (traffic switched after {})",
                        output::duration(Duration::from_millis(ms))
                    )
                })
                .unwrap_or_default();
            outln!(
                "{} deployment #{id}: {environment} now serves {release} in {}{switched}",
                output::good("✓"),
                output::duration(Duration::from_millis(took))
            );
        } else {
            eprintln!(
                "{} deployment #{id} {}: {}",
                output::bad("✗"),
                answer["status"].as_str().unwrap_or("failed"),
                answer["error"].as_str().unwrap_or("no reason given")
            );
            if let Some(numbers) = lastmile_rollout::analysis_numbers(&answer["analysis"]) {
                eprintln!("  last analysis: {numbers}");
                eprintln!(
                    "{}",
                    output::dim(&format!(
                        "  every decision: `lastmile events {environment}`"
                    ))
                );
            }
            if let Some(lines) = answer["last_lines"].as_array() {
                if !lines.is_empty() {
                    eprintln!("{}", output::dim("── last log lines of the instance ──"));
                    for line in lines {
                        eprintln!("  {}", line.as_str().unwrap_or_default());
                    }
                }
            }
            eprintln!(
                "{}",
                output::dim("traffic was left on the release that served before")
            );
        }
    }
    Ok(if succeeded {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

pub(crate) fn status(args: &StatusArgs, state_dir: Option<&Path>) -> anyhow::Result<ExitCode> {
    let control = find(&args.control.state, state_dir)?;
    if args.control.json {
        let status = control.get("/api/v1/status")?;
        outln!("{}", serde_json::to_string_pretty(&status)?);
        return Ok(ExitCode::SUCCESS);
    }
    let status = control.status(None)?;
    match crate::control::remote() {
        Some(remote) => outln!("{} · lastmile server {}", status.app, remote.url),
        None => outln!(
            "{} · lastmile up pid {} · control http://{}",
            status.app,
            status.pid,
            status
                .control
                .map_or_else(|| "?".to_owned(), |addr| addr.to_string())
        ),
    };
    let releases = output::Releases::of(&status.releases);
    for env in &status.environments {
        outln!();
        outln!(
            "{}  {}://{}",
            output::good(&env.name),
            if env.tls { "https" } else { "http" },
            env.listen
                .map_or_else(|| "?".to_owned(), |addr| addr.to_string())
        );
        let weights: Vec<String> = env
            .weights
            .iter()
            .map(|weight| {
                format!(
                    "{} {}%",
                    releases.label(Some(&weight.release)),
                    // As JSON writes the number: `100.0`, `33.333333333333336`.
                    serde_json::Number::from_f64(weight.percent)
                        .map_or_else(|| weight.percent.to_string(), |n| n.to_string())
                )
            })
            .collect();
        outln!(
            "  current   {}",
            releases.label(env.current_release.as_deref())
        );
        outln!(
            "  previous  {}",
            releases.label(env.previous_release.as_deref())
        );
        outln!(
            "  weights   {}",
            if weights.is_empty() {
                "none".to_string()
            } else {
                weights.join(", ")
            }
        );
        for line in last_deployment_lines(env.last_deployment.as_ref(), &releases) {
            outln!("{line}");
        }
        if let Some(deployment) = &env.deployment {
            outln!(
                "  deploying #{} {} → {} ({}, {})",
                deployment.id,
                releases.label(deployment.from_release.as_deref()),
                releases.label(Some(&deployment.to_release)),
                deployment.strategy,
                deployment.phase
            );
        }
    }
    if !status.certificates.is_empty() {
        outln!();
        outln!(
            "{:<32} {:<6} {:<8} {:<21} {:<21} ENVIRONMENTS",
            "CERTIFICATE",
            "SOURCE",
            "STATE",
            "EXPIRES",
            "RENEWS"
        );
        for certificate in &status.certificates {
            // Padded before coloring: escape codes would count as width.
            let state = format!("{:<8}", certificate.state.as_str());
            outln!(
                "{:<32} {:<6} {} {:<21} {:<21} {}",
                if certificate.hosts.is_empty() {
                    "(default)".to_string()
                } else {
                    certificate.hosts.join(",")
                },
                certificate.source.as_str(),
                if certificate.state == CertificateState::Valid {
                    output::good(&state)
                } else {
                    output::warn(&state)
                },
                certificate.not_after.as_deref().unwrap_or("-"),
                certificate.renew_at.as_deref().unwrap_or("-"),
                certificate.environments.join(",")
            );
            if let Some(error) = &certificate.error {
                outln!("  {} {error}", output::warn("last attempt failed:"));
            }
        }
    }
    for approval in status.approvals.iter().flatten() {
        outln!();
        outln!(
            "{} release {} waits for approval to go to {}: `lastmile approve {}`",
            output::warn("approval:"),
            lastmile_store::release_label(Some(&approval.version), &approval.release),
            approval.environment,
            approval.environment,
        );
    }
    for (environment, what) in status.drift.iter().flatten() {
        outln!();
        outln!("{} {environment}: {what}", output::warn("drift:"));
    }
    outln!();
    if status.instances.is_empty() {
        outln!("no instances running");
    } else {
        outln!(
            "{:<28} {:<16} {:<22} {:<11} {:>8}",
            "INSTANCE",
            "RELEASE",
            "ADDRESS",
            "STATE",
            "RESTARTS"
        );
        for instance in &status.instances {
            outln!(
                "{:<28} {:<16} {:<22} {:<11} {:>8}",
                instance.instance_id,
                releases.label(Some(&instance.release_id)),
                instance.addr.to_string(),
                instance.state.as_str(),
                instance.restarts
            );
        }
    }
    if !status.stats.is_empty() {
        outln!();
        outln!(
            "{:<16} {:>9} {:>6} {:>8} {:>9} {:>9}   (last 60 s)",
            "RELEASE",
            "REQUESTS",
            "5XX",
            "CONNERR",
            "P50 ms",
            "P99 ms"
        );
        for row in &status.stats {
            outln!(
                "{:<16} {:>9} {:>6} {:>8} {:>9.1} {:>9.1}",
                releases.label(Some(&row.release)),
                row.stats.requests,
                row.stats.errors_5xx,
                row.stats.connect_errors,
                row.stats.p50_ms,
                row.stats.p99_ms
            );
        }
    }
    if !status.flags.is_empty() {
        outln!();
        outln!("{:<28} {:<8} {:<12} OVERRIDE", "FLAG", "STATE", "DEFAULT");
        for flag in &status.flags {
            outln!(
                "{:<28} {:<8} {:<12} {}",
                flag["key"].as_str().unwrap_or("?"),
                if flag["enabled"] == true {
                    "on"
                } else {
                    "KILLED"
                },
                flag["default"].as_str().unwrap_or("?"),
                if flag["override"].is_object() {
                    format!("by {}", flag["override"]["by"].as_str().unwrap_or("?"))
                } else {
                    "-".to_string()
                }
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// An environment's last deployment for `status`: how it ended, and for a
/// failure why and the numbers behind it.
///
/// ```text
///   last      #7 canary v1 → v2: failed
///             canary aborted: error rate 50.00% (9 of 18) against stable's …
///             canary 18 requests, 9 errors (50.00%), p99 4.2 ms · stable …
/// ```
pub(crate) fn last_deployment_lines(
    last: Option<&LastDeployment>,
    releases: &output::Releases,
) -> Vec<String> {
    let Some(last) = last else {
        return Vec::new();
    };
    let outcome = last.outcome.as_str();
    let from = match &last.from_release {
        None => "nothing".to_owned(),
        Some(from) => releases.label(Some(from)),
    };
    let painted = match last.outcome {
        DeploymentStatus::Succeeded => output::good(outcome),
        DeploymentStatus::Running => output::warn(outcome),
        _ => output::bad(outcome),
    };
    let mut lines = vec![format!(
        "  last      #{} {} {from} → {}: {painted}",
        last.id,
        last.strategy,
        releases.label(Some(&last.to_release)),
    )];
    if let Some(reason) = &last.reason {
        lines.push(format!("            {reason}"));
    }
    if !matches!(
        last.outcome,
        DeploymentStatus::Succeeded | DeploymentStatus::Running
    ) && let Some(numbers) = last
        .analysis
        .as_ref()
        .and_then(lastmile_rollout::analysis_numbers)
    {
        lines.push(format!("            {numbers}"));
    }
    lines
}

/// `lastmile approve ENV`: the deployment waiting for ENV on a server goes.
pub(crate) fn approve(args: &EnvArgs, state_dir: Option<&Path>) -> anyhow::Result<ExitCode> {
    if crate::control::remote().is_none() {
        anyhow::bail!(
            "approvals wait on a `lastmile server`: pass --server URL (or LASTMILE_SERVER); with `lastmile up`, approve as you deploy: `lastmile deploy {} --approve`",
            args.env
        );
    }
    let control = find(&args.control.state, state_dir)?;
    let answer = control.post(
        &format!("/api/v1/environments/{}/approve", args.env),
        &json!({}),
        Duration::from_secs(30),
    )?;
    if args.control.json {
        outln!("{}", serde_json::to_string_pretty(&answer)?);
    } else {
        outln!(
            "approved release {} for {} (as {}); it deploys now: `lastmile watch {}`",
            lastmile_store::release_label(
                answer["version"].as_str(),
                answer["release"].as_str().unwrap_or("?")
            ),
            args.env,
            answer["approved_by"].as_str().unwrap_or("?"),
            args.env
        );
    }
    Ok(ExitCode::SUCCESS)
}

pub(crate) fn restart(args: &ControlArgs, state_dir: Option<&Path>) -> anyhow::Result<ExitCode> {
    let control = find(&args.state, state_dir)?;
    let answer = control.post("/api/v1/restart", &json!({}), Duration::from_secs(600))?;
    // Done once the new process names itself in up.json, so that the next
    // command reaches it.
    if let Some(new_pid) = answer["new_pid"].as_u64() {
        let deadline = std::time::Instant::now() + RESTART_RECORDED;
        let recorded = || {
            find(&args.state, state_dir)
                .ok()
                .and_then(|control| control.up_pid())
        };
        while recorded() != u32::try_from(new_pid).ok() {
            if std::time::Instant::now() >= deadline {
                anyhow::bail!(
                    "pid {new_pid} took over the sockets but has not recorded itself in up.json \
                     within {RESTART_RECORDED:?}; `lastmile status` shows which process serves"
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    if args.json {
        outln!("{}", serde_json::to_string_pretty(&answer)?);
    } else {
        outln!(
            "{} restarted: pid {} took over the sockets; pid {} is draining",
            output::good("✓"),
            answer["new_pid"],
            answer["old_pid"]
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// The `from` or `to` release of a deployment's outcome, labelled with the
/// version the answer carries.
fn outcome_label(answer: &Value, side: &str) -> String {
    match answer[format!("{side}_release")].as_str() {
        Some(id) => lastmile_store::release_label(answer[format!("{side}_version")].as_str(), id),
        None => "none".to_owned(),
    }
}

/// The `lastmile status` command line that shows the same app, for hints.
fn status_command(state: &StateArgs) -> String {
    match crate::control::remote() {
        Some(remote) => format!("lastmile status --server {}", remote.url),
        None => format!(
            "lastmile status --dir {}",
            output::shell_word(&state.dir.display().to_string())
        ),
    }
}

/// `lastmile promote ENV` and `lastmile abort ENV`.
pub(crate) fn canary_signal(
    args: &EnvArgs,
    action: &str,
    state_dir: Option<&Path>,
) -> anyhow::Result<ExitCode> {
    let control = find(&args.control.state, state_dir)?;
    let answer = control
        .post(
            &format!("/api/v1/{action}"),
            &json!({ "environment": args.env }),
            Duration::from_secs(30),
        )
        .map_err(|error| {
            anyhow::anyhow!(
                "{error:#}; see `{}` for the current state",
                status_command(&args.control.state)
            )
        })?;
    if args.control.json {
        outln!("{}", serde_json::to_string_pretty(&answer)?);
    } else if action == "promote" {
        outln!(
            "{} {}: promote requested; `lastmile watch {}` follows it",
            output::good("✓"),
            args.env,
            args.env
        );
    } else {
        outln!(
            "{} {}: abort requested; traffic goes back to the stable release",
            output::good("✓"),
            args.env
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// `lastmile watch ENV`: one line per interval with the weights and each
/// release's counters over the last 10 s.
pub(crate) fn watch(args: &WatchArgs, state_dir: Option<&Path>) -> anyhow::Result<ExitCode> {
    let control = find(&args.control.state, state_dir)?;
    let mut printed = 0u64;
    loop {
        let status = control.status(Some(10))?;
        let Some(environment) = status
            .environments
            .iter()
            .find(|env| env.name == args.env.as_str())
        else {
            anyhow::bail!(
                "the running `lastmile up` has no environment `{}`",
                args.env
            );
        };
        let releases = output::Releases::of(&status.releases);
        let weights: Vec<String> = environment
            .weights
            .iter()
            .map(|weight| {
                format!(
                    "{} {:.1}%",
                    releases.label(Some(&weight.release)),
                    weight.percent
                )
            })
            .collect();
        let stats: Vec<String> = status
            .stats
            .iter()
            .map(|row| {
                let requests = row.stats.requests;
                let errors = row.stats.errors_5xx + row.stats.connect_errors;
                format!(
                    "{}: {requests} req, {:.2}% err, p99 {:.1} ms",
                    releases.label(Some(&row.release)),
                    if requests == 0 {
                        0.0
                    } else {
                        errors as f64 * 100.0 / requests as f64
                    },
                    row.stats.p99_ms
                )
            })
            .collect();
        let phase = environment
            .deployment
            .as_ref()
            .map_or_else(String::new, |deployment| {
                format!(
                    " [{} #{}: {}]",
                    deployment.strategy, deployment.id, deployment.phase
                )
            });
        if args.control.json {
            outln!(
                "{}",
                json!({ "environment": environment, "stats": status.stats })
            );
        } else {
            outln!(
                "{}  {}{phase}  |  {}",
                args.env,
                if weights.is_empty() {
                    "no traffic".to_string()
                } else {
                    weights.join(" / ")
                },
                stats.join("  ")
            );
        }
        printed += 1;
        // Nobody reads any more (`| head -3`): that ends the watch.
        if output::stdout_closed() || args.count.is_some_and(|count| printed >= count) {
            return Ok(ExitCode::SUCCESS);
        }
        std::thread::sleep(args.interval);
    }
}

/// `lastmile flag …`.
pub(crate) fn flag(command: &FlagCommand, state_dir: Option<&Path>) -> anyhow::Result<ExitCode> {
    let actor = crate::actor::actor();
    let (args, key, change) = match command {
        FlagCommand::List(args) => return flag_list(args, state_dir),
        FlagCommand::Enable(flag) => (&flag.control, &flag.key, json!({ "enabled": true })),
        FlagCommand::Disable(flag) => (&flag.control, &flag.key, json!({ "enabled": false })),
        FlagCommand::Set(flag) => (&flag.control, &flag.key, json!({ "default": flag.variant })),
        FlagCommand::Rollout(flag) => (&flag.control, &flag.key, json!({ "rollout": flag.shares })),
        FlagCommand::Reset(flag) => {
            let control = find(&flag.control.state, state_dir)?;
            let answer = control.delete(&format!(
                "/api/v1/flags/{}?actor={}",
                flag.key,
                percent_encode(&actor)
            ))?;
            if flag.control.json {
                outln!("{}", serde_json::to_string_pretty(&answer)?);
            } else if answer["reset"] == true {
                outln!(
                    "{} flag {}: back to lastmile.yaml",
                    output::good("✓"),
                    flag.key
                );
            } else {
                outln!("flag {} had no override", flag.key);
            }
            return Ok(ExitCode::SUCCESS);
        }
    };
    let control = find(&args.state, state_dir)?;
    let mut body = change;
    body["actor"] = json!(actor);
    let answer = control.post(
        &format!("/api/v1/flags/{key}"),
        &body,
        Duration::from_secs(10),
    )?;
    if args.json {
        outln!("{}", serde_json::to_string_pretty(&answer)?);
    } else {
        outln!(
            "{} flag {key}: override {} (recorded as {actor}); `lastmile flag reset {key}` goes back to lastmile.yaml",
            output::good("✓"),
            answer["override"]
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn flag_list(args: &ControlArgs, state_dir: Option<&Path>) -> anyhow::Result<ExitCode> {
    let control = find(&args.state, state_dir)?;
    let answer = control.get("/api/v1/flags")?;
    if args.json {
        outln!("{}", serde_json::to_string_pretty(&answer)?);
        return Ok(ExitCode::SUCCESS);
    }
    let flags = answer["flags"].as_array().cloned().unwrap_or_default();
    if flags.is_empty() {
        outln!("no flags: declare them under `flags:` in lastmile.yaml (docs/flags.md)");
        return Ok(ExitCode::SUCCESS);
    }
    outln!(
        "{:<28} {:<8} {:<8} {:<12} OVERRIDE (drift from lastmile.yaml)",
        "FLAG",
        "TYPE",
        "STATE",
        "DEFAULT"
    );
    for flag in flags {
        let drift = if flag["override"].is_object() {
            format!(
                "{} by {}",
                flag["override"]["value"],
                flag["override"]["by"].as_str().unwrap_or("?")
            )
        } else {
            "-".to_string()
        };
        outln!(
            "{:<28} {:<8} {:<8} {:<12} {}",
            flag["key"].as_str().unwrap_or("?"),
            flag["type"].as_str().unwrap_or("?"),
            if flag["enabled"] == true {
                "on"
            } else {
                "KILLED"
            },
            flag["default"].as_str().unwrap_or("?"),
            drift
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn percent_encode(text: &str) -> String {
    text.bytes()
        .map(|byte| match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (byte as char).to_string()
            }
            _ => format!("%{byte:02X}"),
        })
        .collect()
}

/// `lastmile dora`.
pub(crate) fn dora(args: &DoraArgs, state_dir: Option<&Path>) -> anyhow::Result<ExitCode> {
    let control = find(&args.control.state, state_dir)?;
    let answer = control.get(&format!("/api/v1/dora?days={}", args.days))?;
    if args.control.json {
        outln!("{}", serde_json::to_string_pretty(&answer)?);
        return Ok(ExitCode::SUCCESS);
    }
    outln!(
        "DORA metrics over the last {} days (tiers from the DORA 2024 report)",
        args.days
    );
    for report in answer["environments"].as_array().into_iter().flatten() {
        let tier = |name: &str| {
            report["tiers"][name]
                .as_str()
                .unwrap_or("unknown")
                .to_string()
        };
        let hours = |value: &Value| {
            value
                .as_f64()
                .map_or_else(|| "n/a".to_string(), |hours| format!("{hours:.1} h"))
        };
        outln!();
        outln!("{}", report["environment"].as_str().unwrap_or("?"));
        outln!(
            "  deployment frequency   {:.2}/day ({} deployments)   {}",
            report["deployment_frequency_per_day"]
                .as_f64()
                .unwrap_or(0.0),
            report["deployments"],
            tier("deployment_frequency")
        );
        outln!(
            "  lead time for changes  {}   {}",
            hours(&report["lead_time_median_hours"]),
            tier("lead_time")
        );
        outln!(
            "  change failure rate    {}   {}",
            report["change_failure_rate"]
                .as_f64()
                .map_or_else(|| "n/a".to_string(), |rate| format!("{:.1}%", rate * 100.0)),
            tier("change_failure_rate")
        );
        outln!(
            "  recovery time          {}   {}",
            hours(&report["recovery_time_median_hours"]),
            tier("recovery_time")
        );
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests;
