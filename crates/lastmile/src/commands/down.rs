//! `lastmile down`: stops the running `lastmile up` and waits until everything
//! it started is gone — its process, every instance's process group, the
//! router's ports — or says what still runs.

use std::fmt;
use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::cli::DownArgs;
use crate::commands::control::find;
use crate::output::{self, outln};

/// Beyond the bound the server gives: the process exiting and its ports
/// closing after the last instance is gone.
const MARGIN: Duration = Duration::from_secs(5);

/// The bound when the server gives none (an older `lastmile up`): its API
/// close and drain, and the default stop grace.
const DEFAULT_BOUND: Duration = Duration::from_secs(45);

/// Time between two looks at what still runs.
const POLL: Duration = Duration::from_millis(50);

/// Time between two progress lines of a long stop.
const PROGRESS_EVERY: Duration = Duration::from_secs(2);

pub(crate) fn down(args: &DownArgs, state_dir: Option<&Path>) -> anyhow::Result<ExitCode> {
    let control = find(&args.control.state, state_dir)?;
    let began = Instant::now();
    let answer = control.post("/api/v1/shutdown", &json!({}), Duration::from_secs(10))?;
    let stopping = Stopping::from_answer(&answer, control.up_pid());
    let as_json = args.control.json;
    // A server's processes are not this host's to watch.
    if args.no_wait || stopping.up_pid.is_none() {
        if as_json {
            outln!("{}", serde_json::to_string_pretty(&answer)?);
        } else {
            outln!("{}", stopping.requested());
        }
        return Ok(ExitCode::SUCCESS);
    }
    let deadline = began + stopping.bound + MARGIN;
    let mut next_progress = began + PROGRESS_EVERY;
    loop {
        let still = stopping.still_running();
        let waited = began.elapsed();
        if still.is_empty() {
            if as_json {
                let report = json!({
                    "stopped": true,
                    "instances": stopping.instances.len(),
                    "listeners": stopping.listeners,
                    "took_ms": u64::try_from(waited.as_millis()).unwrap_or(u64::MAX),
                });
                outln!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                outln!("{}", stopping.stopped(waited));
            }
            return Ok(ExitCode::SUCCESS);
        }
        if Instant::now() >= deadline {
            if as_json {
                let report = json!({
                    "stopped": false,
                    "still_running": still.iter().map(ToString::to_string).collect::<Vec<_>>(),
                    "waited_ms": u64::try_from(waited.as_millis()).unwrap_or(u64::MAX),
                });
                outln!("{}", serde_json::to_string_pretty(&report)?);
            }
            eprintln!("{} {}", output::bad("error:"), not_stopped(waited, &still));
            return Ok(ExitCode::from(1));
        }
        if !as_json && Instant::now() >= next_progress {
            eprintln!("{}", progress(waited, &still));
            next_progress += PROGRESS_EVERY;
        }
        std::thread::sleep(POLL);
    }
}

/// What a requested stop is to stop, from the answer of `POST /api/v1/shutdown`.
#[derive(Debug, Clone, PartialEq)]
struct Stopping {
    /// `None` for a server (nothing local to watch).
    up_pid: Option<u32>,
    instances: Vec<Instance>,
    listeners: Vec<SocketAddr>,
    /// The longest the stop may take, by the server's own count.
    bound: Duration,
}

#[derive(Debug, Clone, PartialEq)]
struct Instance {
    instance_id: String,
    leader_pid: Option<u32>,
    main_pid: Option<u32>,
}

/// Something that has not stopped yet.
#[derive(Debug, Clone, PartialEq)]
enum Still {
    Up(u32),
    /// `group` is set while the instance's process group runs; else only
    /// its main process (which left the group) runs.
    Instance {
        instance_id: String,
        pid: u32,
        group: bool,
    },
    Port(SocketAddr),
}

impl fmt::Display for Still {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Still::Up(pid) => write!(f, "lastmile up (pid {pid})"),
            Still::Instance {
                instance_id, pid, ..
            } => write!(f, "instance {instance_id} (pid {pid})"),
            Still::Port(addr) => write!(f, "a process listening on {addr}"),
        }
    }
}

impl Stopping {
    fn from_answer(answer: &Value, up_pid: Option<u32>) -> Stopping {
        let pid = |value: &Value| value.as_u64().and_then(|pid| u32::try_from(pid).ok());
        Stopping {
            // The process that answered is the one to wait for.
            up_pid: up_pid.map(|from_file| pid(&answer["pid"]).unwrap_or(from_file)),
            instances: answer["instances"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|instance| Instance {
                    instance_id: instance["instance_id"].as_str().unwrap_or("?").to_string(),
                    leader_pid: pid(&instance["leader_pid"]),
                    main_pid: pid(&instance["main_pid"]),
                })
                .collect(),
            listeners: answer["listeners"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|addr| addr.as_str()?.parse().ok())
                .collect(),
            bound: answer["stop_within_ms"]
                .as_u64()
                .map_or(DEFAULT_BOUND, Duration::from_millis),
        }
    }

    /// What still runs now, looked up in `/proc` and by binding the ports.
    fn still_running(&self) -> Vec<Still> {
        let mut still = Vec::new();
        if let Some(pid) = self
            .up_pid
            .filter(|pid| lastmile_supervisor::process_running(*pid))
        {
            still.push(Still::Up(pid));
        }
        for instance in &self.instances {
            let leader = instance
                .leader_pid
                .filter(|pid| lastmile_supervisor::group_running(*pid));
            let main = instance
                .main_pid
                .filter(|pid| lastmile_supervisor::process_running(*pid));
            if let Some(pid) = leader.or(main) {
                still.push(Still::Instance {
                    instance_id: instance.instance_id.clone(),
                    pid,
                    group: leader.is_some(),
                });
            }
        }
        // While `up` runs it holds its ports; look once it is gone.
        if still.is_empty() {
            for addr in &self.listeners {
                let taken = TcpListener::bind(addr)
                    .is_err_and(|error| error.kind() == std::io::ErrorKind::AddrInUse);
                if taken {
                    still.push(Still::Port(*addr));
                }
            }
        }
        still
    }

    /// `2 instances` and `router on 127.0.0.1:8080` (`None` without a listener).
    fn what(&self) -> (String, Option<String>) {
        let instances = match self.instances.len() {
            0 => "no instance".to_string(),
            1 => "1 instance".to_string(),
            n => format!("{n} instances"),
        };
        let listeners: Vec<String> = self.listeners.iter().map(ToString::to_string).collect();
        let router = (!listeners.is_empty()).then(|| format!("router on {}", join_and(&listeners)));
        (instances, router)
    }

    fn stopped(&self, took: Duration) -> String {
        let (instances, router) = self.what();
        let router = router
            .map(|router| format!(", {router}"))
            .unwrap_or_default();
        format!(
            "{} stopped: {instances}{router}, in {}",
            output::good("✓"),
            output::duration(took)
        )
    }

    fn requested(&self) -> String {
        let who = match self.up_pid {
            Some(pid) => format!("lastmile up (pid {pid})"),
            None => "the server".to_string(),
        };
        let (instances, router) = self.what();
        let router = router
            .map(|router| format!(" and the {router}"))
            .unwrap_or_default();
        format!(
            "stop requested: {who} is stopping {instances}{router}; it may take up to {}. \
             `lastmile status` fails once it has stopped",
            output::duration(self.bound)
        )
    }
}

/// `still stopping after 4.0s: instance production.1a2b3c4d.0 (pid 123)`.
fn progress(waited: Duration, still: &[Still]) -> String {
    let still: Vec<String> = still.iter().map(ToString::to_string).collect();
    format!(
        "still stopping after {}: {}",
        output::duration(waited),
        join_and(&still)
    )
}

/// What did not stop in time, and how to stop it by hand.
fn not_stopped(waited: Duration, still: &[Still]) -> String {
    let names: Vec<String> = still.iter().map(ToString::to_string).collect();
    let mut fixes = Vec::new();
    for thing in still {
        match thing {
            Still::Up(pid) => fixes.push(format!(
                "`kill -9 {pid}` ends lastmile up (the next `lastmile up` stops the instances it left)"
            )),
            Still::Instance {
                pid, group: true, ..
            } => fixes.push(format!(
                "`kill -9 -- -{pid}` ends the instance's process group"
            )),
            Still::Instance {
                pid, group: false, ..
            } => fixes.push(format!(
                "`kill -9 {pid}` ends the instance's main process, which left its group"
            )),
            Still::Port(addr) => fixes.push(format!(
                "another process holds {addr}: `ss -ltnp` names it"
            )),
        }
    }
    format!(
        "not everything stopped within {}: still running: {}; {}",
        output::duration(waited),
        join_and(&names),
        fixes.join("; ")
    )
}

/// `a`, `a and b`, `a, b and c`.
fn join_and(items: &[String]) -> String {
    match items {
        [] => String::new(),
        [one] => one.clone(),
        [rest @ .., last] => format!("{} and {last}", rest.join(", ")),
    }
}

#[cfg(test)]
mod tests;
