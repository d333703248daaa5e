//! Per-instance log file with size-based rotation, and reading its tail.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, BufReader};

/// Longest chunk written at once, so a process printing without newlines cannot grow memory.
const MAX_CHUNK: u64 = 64 * 1024;

/// Appends output lines to `<id>.log`, rotating to `<id>.log.1 ..= .keep`.
#[derive(Debug)]
pub(crate) struct LogSink {
    path: PathBuf,
    max_bytes: u64,
    keep: usize,
    file: Mutex<Option<(File, u64)>>,
}

impl LogSink {
    /// Opens (appending) the log at `path`.
    pub(crate) fn open(path: PathBuf, max_bytes: u64, keep: usize) -> io::Result<Self> {
        let file = open_append(&path)?;
        let size = file.metadata()?.len();
        Ok(Self {
            path,
            max_bytes,
            keep,
            file: Mutex::new(Some((file, size))),
        })
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
            Ok(_) => sink.write(&line),
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
