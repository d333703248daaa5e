//! One attempt of one step: `sh -c <run>` in its own process group, its
//! output read line by line, its whole group stopped when it ends.
//!
//! A step may start background children (`server &`) or hold its pipes open
//! through grandchildren. The rule is that nothing a step started outlives the
//! attempt: when the leader exits, the rest of its group gets SIGTERM, a short
//! grace and SIGKILL; on timeout or stop, the whole group gets the same with
//! the configured grace. A guard kills the group on drop, so an aborted task
//! (the runner dropped mid-run) leaves nothing behind either.

use std::future::Future;
use std::io;
use std::path::PathBuf;
use std::pin::pin;
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use lastmile_store::{LogStream, StepProcess};
use nix::errno::Errno;
use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncRead, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::{mpsc, watch};
use tokio::time::{Instant, sleep, sleep_until, timeout};

/// Longest line kept as one log line; longer output is split.
const MAX_LINE_BYTES: usize = 64 * 1024;
/// Grace for background processes left behind after the leader exited.
const LEFTOVER_GRACE: Duration = Duration::from_millis(250);
/// How long to keep reading pipes once the group is gone: a process that
/// escaped the group may hold them open forever.
const PIPE_DRAIN_BOUND: Duration = Duration::from_millis(500);
/// How long to wait for the group to disappear after SIGKILL.
const KILL_SETTLE_BOUND: Duration = Duration::from_secs(2);

/// Everything needed to start one attempt.
#[derive(Debug, Clone)]
pub(crate) struct StepCommand {
    /// Shell text given to `sh -c`.
    pub(crate) run: String,
    /// Working directory.
    pub(crate) cwd: PathBuf,
    /// Variables added to the inherited environment.
    pub(crate) env: Vec<(String, String)>,
    /// Kill the attempt after this long.
    pub(crate) timeout: Option<Duration>,
    /// Time between SIGTERM and SIGKILL when stopping the group.
    pub(crate) kill_grace: Duration,
}

/// How an attempt ended.
#[derive(Debug)]
pub(crate) enum AttemptEnd {
    /// The leader exited by itself.
    Exited(ExitStatus),
    /// The timeout fired and the group was stopped.
    TimedOut(Duration),
    /// The runner asked every step to stop.
    Stopped,
    /// `sh` could not be started.
    SpawnFailed(io::Error),
}

/// A message from a running attempt to the runner.
#[derive(Debug)]
pub(crate) struct StepMessage {
    /// Index of the step in file order.
    pub(crate) step: usize,
    /// Attempt number, from 1.
    pub(crate) attempt: u32,
    /// What happened.
    pub(crate) event: StepEvent,
}

/// What a [`StepMessage`] says.
#[derive(Debug)]
pub(crate) enum StepEvent {
    /// The attempt's process group is running (sent before any line).
    Started(StepProcess),
    /// One line of output (not yet masked).
    Line(LogStream, String),
    /// The attempt is over; no more messages follow for it.
    Finished(AttemptEnd),
}

/// Where an attempt sends its lines: the runner's channel, tagged.
#[derive(Debug, Clone)]
pub(crate) struct OutputSink {
    sender: mpsc::Sender<StepMessage>,
    step: usize,
    attempt: u32,
}

impl OutputSink {
    /// A sink tagging every message with `step` and `attempt`.
    pub(crate) fn new(sender: mpsc::Sender<StepMessage>, step: usize, attempt: u32) -> Self {
        Self {
            sender,
            step,
            attempt,
        }
    }

    async fn send(&self, event: StepEvent) {
        // A closed channel means the runner is gone; the guard still stops the
        // processes, so there is nobody left to tell.
        let _ = self
            .sender
            .send(StepMessage {
                step: self.step,
                attempt: self.attempt,
                event,
            })
            .await;
    }

    /// Sends one line.
    pub(crate) async fn line(&self, stream: LogStream, text: String) {
        self.send(StepEvent::Line(stream, text)).await;
    }

    /// Says which process group the attempt leads.
    pub(crate) async fn started(&self, process: StepProcess) {
        self.send(StepEvent::Started(process)).await;
    }

    /// Sends the end of the attempt (always the last message).
    pub(crate) async fn finished(&self, end: AttemptEnd) {
        self.send(StepEvent::Finished(end)).await;
    }
}

/// Runs one attempt to its end; the group is gone when this returns.
pub(crate) async fn run_attempt(
    command: &StepCommand,
    mut stop: watch::Receiver<bool>,
    sink: &OutputSink,
) -> AttemptEnd {
    let mut shell = Command::new("sh");
    shell
        .arg("-c")
        .arg(&command.run)
        .current_dir(&command.cwd)
        .envs(command.env.iter().map(|(name, value)| (name, value)))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    let mut child = match shell.spawn() {
        Ok(child) => child,
        Err(error) => return AttemptEnd::SpawnFailed(error),
    };
    let Some(leader) = child.id() else {
        // Only a reaped child has no id, and this one was never waited on.
        return AttemptEnd::SpawnFailed(io::Error::other("the shell vanished right after spawn"));
    };
    let mut group = ProcessGroup::new(leader);
    // The leader is not reaped yet, so its start time can be read; the
    // store keeps both, for the clean-up after a crash of this process.
    if let Some(process) = StepProcess::of(leader) {
        sink.started(process).await;
    }
    let (stdout, stderr) = (child.stdout.take(), child.stderr.take());
    let mut pump = Pump {
        future: Box::pin(pump_output(stdout, stderr, sink.clone())),
        finished: false,
    };

    let deadline = command.timeout.map(|limit| Instant::now() + limit);
    let first_end = pump
        .alongside(async {
            tokio::select! {
                status = child.wait() => FirstEnd::Exited(status),
                () = sleep_until_optional(deadline) => FirstEnd::TimedOut,
                _ = stop.wait_for(|stopping| *stopping) => FirstEnd::Stopped,
            }
        })
        .await;

    let end = match first_end {
        FirstEnd::Exited(Ok(status)) => {
            if !group.is_empty() {
                sink.line(
                    LogStream::System,
                    "the step left background processes in its process group; stopping them"
                        .to_owned(),
                )
                .await;
                pump.alongside(group.terminate(&mut child, LEFTOVER_GRACE))
                    .await;
            }
            AttemptEnd::Exited(status)
        }
        FirstEnd::Exited(Err(error)) => {
            // Waiting failed: the state of the leader is unknown, so stop
            // everything and report the attempt as not startable.
            pump.alongside(group.terminate(&mut child, command.kill_grace))
                .await;
            AttemptEnd::SpawnFailed(error)
        }
        FirstEnd::TimedOut => {
            let limit = command.timeout.unwrap_or_default();
            sink.line(
                LogStream::System,
                format!(
                    "timed out after {}; stopping the process group (SIGTERM, SIGKILL after {})",
                    format_duration(limit),
                    format_duration(command.kill_grace)
                ),
            )
            .await;
            pump.alongside(group.terminate(&mut child, command.kill_grace))
                .await;
            AttemptEnd::TimedOut(limit)
        }
        FirstEnd::Stopped => {
            sink.line(
                LogStream::System,
                format!(
                    "the run is ending; stopping the process group (SIGTERM, SIGKILL after {})",
                    format_duration(command.kill_grace)
                ),
            )
            .await;
            pump.alongside(group.terminate(&mut child, command.kill_grace))
                .await;
            AttemptEnd::Stopped
        }
    };

    if !pump.finished && timeout(PIPE_DRAIN_BOUND, &mut pump.future).await.is_err() {
        sink.line(
            LogStream::System,
            "output pipes stayed open after the step's processes stopped (a process left the \
             process group); stopped reading them"
                .to_owned(),
        )
        .await;
    }
    end
}

enum FirstEnd {
    Exited(io::Result<ExitStatus>),
    TimedOut,
    Stopped,
}

/// The output pump, polled alongside whatever the attempt waits for, so a
/// chatty step never blocks on a full pipe while it is being stopped.
struct Pump<F> {
    future: std::pin::Pin<Box<F>>,
    finished: bool,
}

impl<F: Future<Output = ()>> Pump<F> {
    async fn alongside<T>(&mut self, work: impl Future<Output = T>) -> T {
        let mut work = pin!(work);
        loop {
            tokio::select! {
                result = &mut work => return result,
                () = &mut self.future, if !self.finished => self.finished = true,
            }
        }
    }
}

async fn sleep_until_optional(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

async fn pump_output(
    stdout: Option<impl AsyncRead + Unpin>,
    stderr: Option<impl AsyncRead + Unpin>,
    sink: OutputSink,
) {
    tokio::join!(
        pump_stream(stdout, LogStream::Stdout, &sink),
        pump_stream(stderr, LogStream::Stderr, &sink)
    );
}

async fn pump_stream(stream: Option<impl AsyncRead + Unpin>, kind: LogStream, sink: &OutputSink) {
    let Some(stream) = stream else { return };
    let mut reader = BufReader::new(stream);
    let mut line = Vec::new();
    // A read error (EIO on a dying pipe) ends the stream like EOF does.
    while let Ok(true) = read_capped_line(&mut reader, &mut line).await {
        if line.last() == Some(&b'\r') {
            line.pop();
        }
        sink.line(kind, String::from_utf8_lossy(&line).into_owned())
            .await;
    }
}

/// Reads up to a newline (dropped) or [`MAX_LINE_BYTES`]; false at EOF.
pub(crate) async fn read_capped_line(
    reader: &mut (impl AsyncBufRead + Unpin),
    line: &mut Vec<u8>,
) -> io::Result<bool> {
    line.clear();
    loop {
        let available = reader.fill_buf().await?;
        if available.is_empty() {
            return Ok(!line.is_empty());
        }
        let room = MAX_LINE_BYTES - line.len();
        let window = &available[..available.len().min(room)];
        if let Some(newline) = window.iter().position(|byte| *byte == b'\n') {
            line.extend_from_slice(&window[..newline]);
            reader.consume(newline + 1);
            return Ok(true);
        }
        let taken = window.len();
        line.extend_from_slice(window);
        reader.consume(taken);
        if line.len() >= MAX_LINE_BYTES {
            return Ok(true);
        }
    }
}

/// A process group we started; SIGKILLed on drop unless known to be gone.
#[derive(Debug)]
pub(crate) struct ProcessGroup {
    id: Pid,
    gone: bool,
}

impl ProcessGroup {
    fn new(leader: u32) -> Self {
        let id = i32::try_from(leader).unwrap_or(i32::MAX);
        Self {
            id: Pid::from_raw(id),
            gone: false,
        }
    }

    /// True when no live (non-zombie) process remains in the group. Once
    /// true, the id is never signalled again: it may be reused.
    fn is_empty(&mut self) -> bool {
        if !self.gone {
            self.gone = group_is_empty(self.id);
        }
        self.gone
    }

    fn signal(&self, signal: Signal) {
        if !self.gone {
            // ESRCH (already gone) is the only expected error and means done.
            let _ = killpg(self.id, signal);
        }
    }

    /// SIGTERM, up to `grace` for the group to leave, SIGKILL; reaps the leader.
    async fn terminate(&mut self, leader: &mut Child, grace: Duration) {
        let _ = leader.try_wait();
        if self.is_empty() {
            return;
        }
        self.signal(Signal::SIGTERM);
        if !self.wait_until_empty(leader, grace).await {
            self.signal(Signal::SIGKILL);
            self.wait_until_empty(leader, KILL_SETTLE_BOUND).await;
        }
        let _ = leader.wait().await;
    }

    async fn wait_until_empty(&mut self, leader: &mut Child, bound: Duration) -> bool {
        let deadline = Instant::now() + bound;
        let mut pause = Duration::from_millis(1);
        loop {
            // Reaping the leader matters: as a zombie it still counts for kill(2).
            let _ = leader.try_wait();
            if self.is_empty() {
                return true;
            }
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            sleep(pause.min(deadline - now)).await;
            pause = (pause * 2).min(Duration::from_millis(20));
        }
    }
}

impl Drop for ProcessGroup {
    fn drop(&mut self) {
        if !self.is_empty() {
            self.signal(Signal::SIGKILL);
        }
    }
}

/// True when the group has no live member. `kill(-pgid, 0)` answers for the
/// common case; zombies still count for it, and reparented zombies wait on
/// whoever reaps orphans here, so a yes is double-checked in `/proc`.
fn group_is_empty(group: Pid) -> bool {
    match killpg(group, None) {
        Err(Errno::ESRCH) => true,
        _ => !has_live_member(group),
    }
}

fn has_live_member(group: Pid) -> bool {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        // Without /proc, trust kill(2): the group answered, so it exists.
        return true;
    };
    entries.flatten().any(|entry| {
        let name = entry.file_name();
        let Some(pid) = name
            .to_str()
            .filter(|name| name.bytes().all(|b| b.is_ascii_digit()))
        else {
            return false;
        };
        std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .ok()
            .and_then(|stat| parse_stat(&stat))
            .is_some_and(|(state, process_group)| {
                process_group == group.as_raw() && state != 'Z' && state != 'X'
            })
    })
}

/// `(state, pgrp)` from a `/proc/<pid>/stat` line; the command name may
/// contain spaces and parentheses, so fields are counted after the last `)`.
pub(crate) fn parse_stat(stat: &str) -> Option<(char, i32)> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace();
    let state = fields.next()?.chars().next()?;
    let _parent = fields.next()?;
    let process_group = fields.next()?.parse().ok()?;
    Some((state, process_group))
}

/// `1.2s`, `300ms`, `2m05s`: how durations read in messages.
pub(crate) fn format_duration(duration: Duration) -> String {
    let millis = duration.as_millis();
    if millis < 1000 {
        format!("{millis}ms")
    } else if millis < 60_000 {
        format!("{:.1}s", duration.as_secs_f64())
    } else {
        let seconds = duration.as_secs();
        format!("{}m{:02}s", seconds / 60, seconds % 60)
    }
}

#[cfg(test)]
mod tests;
