//! Per-instance log file with size-based rotation, and reading its tail.

use std::collections::VecDeque;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, BufReader};

/// Longest chunk written at once, so a process printing without newlines cannot grow memory.
const MAX_CHUNK: u64 = 64 * 1024;

/// Output lines of the current process kept in memory for a start-up failure message.
pub(crate) const RECENT_LINES: usize = 20;

/// Longest line kept in memory; the log file keeps it whole.
const RECENT_LINE_CHARS: usize = 1000;

/// Appends output lines to `<id>.log`, rotating to `<id>.log.1 ..= .keep`.
#[derive(Debug)]
pub(crate) struct LogSink {
    path: PathBuf,
    max_bytes: u64,
    keep: usize,
    file: Mutex<Option<(File, u64)>>,
    /// `GET /healthz`: lines logging a health probe are not the app's own words.
    probe_request: String,
    recent: Mutex<RecentOutput>,
}

/// The last output lines of the current process, without the lines that log health probes.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct RecentOutput {
    /// Oldest first, at most [`RECENT_LINES`].
    pub(crate) lines: VecDeque<String>,
    /// Lines left out because they logged a health probe.
    pub(crate) probe_lines: usize,
}

impl LogSink {
    /// Opens (appending) the log at `path` of an instance probed with `GET health_path`.
    pub(crate) fn open(
        path: PathBuf,
        max_bytes: u64,
        keep: usize,
        health_path: &str,
    ) -> io::Result<Self> {
        let file = open_append(&path)?;
        let size = file.metadata()?.len();
        Ok(Self {
            path,
            max_bytes,
            keep,
            file: Mutex::new(Some((file, size))),
            probe_request: format!("GET {}", crate::health::request_path(health_path)),
            recent: Mutex::default(),
        })
    }

    /// A new process starts: forget the output of the previous one.
    pub(crate) fn begin_process(&self) {
        *self.recent.lock().unwrap_or_else(PoisonError::into_inner) = RecentOutput::default();
    }

    /// The current process's last output lines, probe lines left out.
    pub(crate) fn recent(&self) -> RecentOutput {
        self.recent
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Keeps `chunk` (one line, usually) among the recent lines unless it logs a probe.
    fn remember(&self, chunk: &[u8]) {
        let text = String::from_utf8_lossy(chunk);
        let line = text.trim_end_matches(['\n', '\r']);
        let mut recent = self.recent.lock().unwrap_or_else(PoisonError::into_inner);
        if logs_probe(line, &self.probe_request) {
            recent.probe_lines += 1;
            return;
        }
        if recent.lines.len() == RECENT_LINES {
            recent.lines.pop_front();
        }
        recent
            .lines
            .push_back(line.chars().take(RECENT_LINE_CHARS).collect());
    }

    /// Writes one chunk (usually one line), rotating first if it would overflow.
    pub(crate) fn write(&self, chunk: &[u8]) {
        let mut guard = self.file.lock().unwrap_or_else(PoisonError::into_inner);
        let needs_rotation = match &*guard {
            Some((_, size)) => *size > 0 && size + chunk.len() as u64 > self.max_bytes,
            None => true,
        };
        if needs_rotation {
            // Close before renaming; a failed rotation keeps appending to whatever opens.
            *guard = None;
            let _ = self.rotate();
            *guard = open_append(&self.path).ok().map(|file| {
                let size = file.metadata().map(|m| m.len()).unwrap_or(0);
                (file, size)
            });
        }
        if let Some((file, size)) = guard.as_mut() {
            // Losing log output must not take the instance down: errors are dropped.
            if file.write_all(chunk).is_ok() {
                *size += chunk.len() as u64;
            }
        }
    }

    fn rotate(&self) -> io::Result<()> {
        if self.keep == 0 {
            return fs::remove_file(&self.path);
        }
        let _ = fs::remove_file(rotated(&self.path, self.keep));
        for n in (1..self.keep).rev() {
            let from = rotated(&self.path, n);
            if from.exists() {
                fs::rename(&from, rotated(&self.path, n + 1))?;
            }
        }
        fs::rename(&self.path, rotated(&self.path, 1))
    }
}

fn open_append(path: &Path) -> io::Result<File> {
    OpenOptions::new().create(true).append(true).open(path)
}

/// True if `line` is an access-log line of a health probe: it names the probe's user agent,
/// or has `GET /healthz` followed by a space, a quote, a query or the end of the line (so
/// `GET /healthz HTTP/1.0" 404` and `GET /healthz 404 1ms` are probes, while
/// `GET /healthz/deep` or `GET /healthz: database down` are not).
pub(crate) fn logs_probe(line: &str, probe_request: &str) -> bool {
    if line.contains(crate::health::USER_AGENT) {
        return true;
    }
    line.match_indices(probe_request).any(|(at, _)| {
        matches!(
            line[at + probe_request.len()..].chars().next(),
            None | Some(' ' | '"' | '?' | '\t')
        )
    })
}

/// `<path>.<n>`.
pub(crate) fn rotated(path: &Path, n: usize) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(format!(".{n}"));
    PathBuf::from(name)
}

/// Copies a child's output stream into the log, chunk by chunk, until EOF.
pub(crate) async fn pump(stream: impl AsyncRead + Unpin, sink: Arc<LogSink>) {
    let mut reader = BufReader::new(stream);
    let mut line = Vec::new();
    loop {
        line.clear();
        match (&mut reader)
            .take(MAX_CHUNK)
            .read_until(b'\n', &mut line)
            .await
        {
            Ok(0) | Err(_) => break,
            Ok(_) => {
                sink.write(&line);
                sink.remember(&line);
            }
        }
    }
}

/// The last `n` lines of `path`, continuing into `path.1` when the current file is short.
pub(crate) fn last_lines(path: &Path, n: usize) -> Vec<String> {
    if n == 0 {
        return Vec::new();
    }
    let mut lines = tail(path, n).unwrap_or_default();
    if lines.len() < n {
        let mut older = tail(&rotated(path, 1), n - lines.len()).unwrap_or_default();
        older.append(&mut lines);
        lines = older;
    }
    lines
}

/// Reads backwards in blocks until `n` complete lines are known.
fn tail(path: &Path, n: usize) -> io::Result<Vec<String>> {
    const BLOCK: u64 = 16 * 1024;
    let mut file = File::open(path)?;
    let len = file.metadata()?.len();
    let mut start = len;
    let mut data: Vec<u8> = Vec::new();
    loop {
        // One newline more than lines wanted proves the first kept line is complete.
        let newlines = data.iter().filter(|b| **b == b'\n').count();
        if start == 0 || newlines > n {
            break;
        }
        let from = start.saturating_sub(BLOCK);
        let mut block = vec![0; (start - from) as usize];
        file.seek(SeekFrom::Start(from))?;
        file.read_exact(&mut block)?;
        block.extend_from_slice(&data);
        data = block;
        start = from;
    }
    let text = String::from_utf8_lossy(&data);
    let all: Vec<&str> = text.lines().collect();
    let skip_partial = usize::from(start > 0);
    let complete = &all[skip_partial.min(all.len())..];
    let keep_from = complete.len().saturating_sub(n);
    Ok(complete[keep_from..]
        .iter()
        .map(|l| l.trim_end_matches('\r').to_owned())
        .collect())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "a failed unwrap is a failed test")]
mod tests;
