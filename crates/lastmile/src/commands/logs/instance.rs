//! `lastmile logs --instance ID [--follow]`: an instance's output, from the
//! files the supervisor writes under `.lastmile/host/logs/` (`<id>.log`,
//! rotated to `<id>.log.1` and older). Reading the files, not the running
//! `lastmile up`, is what makes this work after `lastmile down` too.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, SystemTime};

use anyhow::{Context, bail};
use lastmile_store::Store;

use crate::cli::LogsArgs;
use crate::output::{self, outln};
use crate::state;

/// How often `--follow` looks for new output.
const FOLLOW_INTERVAL: Duration = Duration::from_millis(200);

/// Known instances named in an error, at most.
const LISTED: usize = 12;

pub(crate) fn show(
    args: &LogsArgs,
    wanted: &str,
    explicit_state_dir: Option<&Path>,
) -> anyhow::Result<ExitCode> {
    let spec_dir = if args.state.dir.is_file() {
        args.state.dir.parent().unwrap_or(Path::new("."))
    } else {
        &args.state.dir
    };
    let state_dir = state::state_dir(explicit_state_dir, spec_dir);
    let logs_dir = lastmile_node::host_root(&state_dir).join("logs");
    let known = known_instances(&logs_dir);
    let chosen = choose(wanted, &known, explicit_state_dir, &args.state.dir)?;
    // Lines carry their instance's id when an environment was asked for.
    let prefixed = chosen.iter().any(|id| id != wanted);
    let mut tails: Vec<(String, Tail)> = chosen
        .into_iter()
        .map(|id| {
            let tail = Tail::new(logs_dir.join(format!("{id}.log")));
            (id, tail)
        })
        .collect();
    for (id, tail) in &mut tails {
        let mut lines = tail.rotated_lines();
        lines.extend(tail.new_lines());
        print(id, &lines, prefixed, args.json);
    }
    while args.follow && !output::stdout_closed() {
        std::thread::sleep(FOLLOW_INTERVAL);
        for (id, tail) in &mut tails {
            print(id, &tail.new_lines(), prefixed, args.json);
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn print(id: &str, lines: &[String], prefixed: bool, json: bool) {
    for line in lines {
        if json {
            outln!("{}", serde_json::json!({ "instance": id, "text": line }));
        } else if prefixed {
            outln!("{} {line}", output::dim(&format!("[{id}]")));
        } else {
            outln!("{line}");
        }
    }
}

/// Instance ids with a log in `logs_dir`, the most recently written first.
fn known_instances(logs_dir: &Path) -> Vec<String> {
    let mut found: Vec<(SystemTime, String)> = std::fs::read_dir(logs_dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let name = entry.file_name().into_string().ok()?;
            let id = name.strip_suffix(".log")?.to_string();
            let modified = entry.metadata().and_then(|meta| meta.modified()).ok()?;
            Some((modified, id))
        })
        .collect();
    found.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.cmp(&b.1)));
    found.into_iter().map(|(_, id)| id).collect()
}

/// The instances `wanted` names: itself when it is an instance id, or the
/// instances of an environment's current release.
fn choose(
    wanted: &str,
    known: &[String],
    explicit_state_dir: Option<&Path>,
    dir: &Path,
) -> anyhow::Result<Vec<String>> {
    if known.iter().any(|id| id == wanted) {
        return Ok(vec![wanted.to_string()]);
    }
    if known.is_empty() {
        bail!(
            "no instance has run here yet, so there is no instance `{wanted}`: `lastmile up` starts them"
        );
    }
    // Instance ids are `<environment>.<release id's first 8>.<index>`.
    if let Ok((store, _)) = state::open_existing(explicit_state_dir, dir)
        && let Some(environment) = store
            .get_environment(wanted)
            .context("cannot read the environment from the state")?
    {
        let Some(release) = environment.current_release else {
            bail!("environment `{wanted}` serves no release yet, so it has no instances");
        };
        let prefix = format!("{wanted}.{}.", release.chars().take(8).collect::<String>());
        let mut ids: Vec<String> = known
            .iter()
            .filter(|id| id.starts_with(&prefix))
            .cloned()
            .collect();
        ids.sort();
        if !ids.is_empty() {
            return Ok(ids);
        }
    }
    let mut listed: Vec<&str> = known.iter().take(LISTED).map(String::as_str).collect();
    let more = known.len().saturating_sub(LISTED);
    if more > 0 {
        listed.push("…");
    }
    bail!(
        "no instance `{wanted}`; instances with output here, newest first: {}{}; \
         `lastmile status` shows the running ones",
        listed.join(", "),
        if more > 0 {
            format!(" ({more} more)")
        } else {
            String::new()
        }
    )
}

/// Where the output of one instance has been read up to.
struct Tail {
    path: PathBuf,
    /// The file being read, with its inode: a new inode at `path` means the
    /// supervisor rotated the log.
    file: Option<(File, u64)>,
    /// Bytes after the last newline, kept until their line is complete.
    partial: Vec<u8>,
}

impl Tail {
    fn new(path: PathBuf) -> Tail {
        Tail {
            path,
            file: None,
            partial: Vec::new(),
        }
    }

    /// The lines of the rotated files (`<id>.log.1` and older), oldest first.
    fn rotated_lines(&mut self) -> Vec<String> {
        let rotated: Vec<PathBuf> = (1..)
            .map(|n| PathBuf::from(format!("{}.{n}", self.path.display())))
            .take_while(|path| path.exists())
            .collect();
        let mut lines = Vec::new();
        for path in rotated.iter().rev() {
            if let Ok(bytes) = std::fs::read(path) {
                lines.extend(self.complete_lines(&bytes));
            }
        }
        lines
    }

    /// The lines written since the last call, following a rotation.
    fn new_lines(&mut self) -> Vec<String> {
        let mut bytes = Vec::new();
        if let Some((file, inode)) = &mut self.file {
            if let (Ok(position), Ok(meta)) = (file.stream_position(), file.metadata())
                && meta.len() < position
            {
                // Truncated in place: start again from its beginning.
                let _ = file.seek(SeekFrom::Start(0));
            }
            let _ = file.read_to_end(&mut bytes);
            let rotated = std::fs::metadata(&self.path).is_ok_and(|meta| meta.ino() != *inode);
            if rotated {
                // The writer closed the old file before renaming it: what
                // it wrote last is there, then the new file takes over.
                let _ = file.read_to_end(&mut bytes);
                self.file = None;
            }
        }
        if self.file.is_none()
            && let Ok(mut file) = File::open(&self.path)
            && let Ok(meta) = file.metadata()
        {
            let _ = file.read_to_end(&mut bytes);
            self.file = Some((file, meta.ino()));
        }
        self.complete_lines(&bytes)
    }

    /// The complete lines `bytes` ends, after what was left over before.
    fn complete_lines(&mut self, bytes: &[u8]) -> Vec<String> {
        self.partial.extend_from_slice(bytes);
        let Some(end) = self.partial.iter().rposition(|byte| *byte == b'\n') else {
            return Vec::new();
        };
        let complete: Vec<u8> = self.partial.drain(..=end).collect();
        String::from_utf8_lossy(&complete)
            .lines()
            .map(str::to_string)
            .collect()
    }
}

#[cfg(test)]
mod tests;
