//! How results look: colors, times, durations, errors; and where they go.
//!
//! Everything the commands print on stdout goes through [`outln!`], never
//! `println!` (which panics when stdout is a closed pipe, as in
//! `lastmile runs | head -1`). A closed stdout ends the output quietly and
//! changes nothing else: the command finishes its work and exits with the
//! status it would have had; commands that follow (`watch`,
//! `events --follow`, `logs --instance --follow`) stop, with status 0.

use std::fmt;
use std::io::{IsTerminal, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use owo_colors::OwoColorize;

use crate::cli::ColorChoice;

static COLOR: AtomicBool = AtomicBool::new(false);

/// Set once a write to stdout failed; later output is dropped.
static STDOUT_CLOSED: AtomicBool = AtomicBool::new(false);

/// `println!` for reporting: a closed stdout drops the line instead of
/// panicking (see the module documentation).
macro_rules! outln {
    () => {
        $crate::output::write_stdout(format_args!("\n"))
    };
    ($($arg:tt)*) => {
        $crate::output::write_stdout(format_args!("{}\n", format_args!($($arg)*)))
    };
}
pub(crate) use outln;

/// Writes `text` to stdout and flushes it, so a pipe sees each line as it
/// is printed. Returns false once stdout cannot be written to: a closed
/// pipe ends the output silently; any other failure is said once on stderr.
pub(crate) fn write_stdout(text: fmt::Arguments<'_>) -> bool {
    if stdout_closed() {
        return false;
    }
    let mut stdout = std::io::stdout().lock();
    match stdout.write_fmt(text).and_then(|()| stdout.flush()) {
        Ok(()) => true,
        Err(error) => {
            STDOUT_CLOSED.store(true, Ordering::Relaxed);
            if error.kind() != std::io::ErrorKind::BrokenPipe {
                eprintln!("{} cannot write to stdout: {error}", warn("warning:"));
            }
            false
        }
    }
}

/// Writes `bytes` (a completion script, a man page) to stdout, like
/// [`write_stdout`].
pub(crate) fn write_stdout_bytes(bytes: &[u8]) -> bool {
    write_stdout(format_args!("{}", String::from_utf8_lossy(bytes)))
}

/// Whether an earlier write found stdout closed.
pub(crate) fn stdout_closed() -> bool {
    STDOUT_CLOSED.load(Ordering::Relaxed)
}

/// Decides once whether human output is colored.
pub(crate) fn init_colors(choice: ColorChoice) {
    let enabled = match choice {
        ColorChoice::Always => true,
        ColorChoice::Never => false,
        ColorChoice::Auto => {
            std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none()
        }
    };
    COLOR.store(enabled, Ordering::Relaxed);
}

/// Whether colors are on.
pub(crate) fn colors() -> bool {
    COLOR.load(Ordering::Relaxed)
}

/// Paints `text` green (success) when colors are on.
pub(crate) fn good(text: &str) -> String {
    if colors() {
        text.green().to_string()
    } else {
        text.to_string()
    }
}

/// Paints `text` red (failure) when colors are on.
pub(crate) fn bad(text: &str) -> String {
    if colors() {
        text.red().to_string()
    } else {
        text.to_string()
    }
}

/// Paints `text` yellow (attention) when colors are on.
pub(crate) fn warn(text: &str) -> String {
    if colors() {
        text.yellow().to_string()
    } else {
        text.to_string()
    }
}

/// Dims `text` when colors are on.
pub(crate) fn dim(text: &str) -> String {
    if colors() {
        text.dimmed().to_string()
    } else {
        text.to_string()
    }
}

/// Prints an error and its causes on stderr.
pub(crate) fn print_error(error: &anyhow::Error) {
    let mut message = format!("{} {error}", bad("error:"));
    for cause in error.chain().skip(1) {
        message.push_str(&format!("\n  {} {cause}", dim("caused by:")));
    }
    eprintln!("{message}");
}

/// `2026-11-22 05:40:12Z` from Unix milliseconds.
pub(crate) fn timestamp(unix_millis: i64) -> String {
    let seconds = unix_millis.div_euclid(1000);
    let days = seconds.div_euclid(86_400);
    let of_day = seconds.rem_euclid(86_400);
    let (year, month, day) = civil_from_days(days);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02}Z",
        of_day / 3600,
        (of_day / 60) % 60,
        of_day % 60
    )
}

/// Gregorian date from days since 1970-01-01 (Howard Hinnant's algorithm).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_index = (5 * day_of_year + 2) / 153;
    let day = (day_of_year - (153 * month_index + 2) / 5 + 1) as u32;
    let month = if month_index < 10 {
        month_index + 3
    } else {
        month_index - 9
    } as u32;
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// `850ms`, `12.3s`, `4m05s`.
pub(crate) fn duration(elapsed: Duration) -> String {
    let millis = elapsed.as_millis();
    if millis < 1000 {
        format!("{millis}ms")
    } else if millis < 60_000 {
        format!("{:.1}s", elapsed.as_secs_f64())
    } else {
        let seconds = elapsed.as_secs();
        format!("{}m{:02}s", seconds / 60, seconds % 60)
    }
}

/// Duration between two Unix-millisecond instants, if both are known.
pub(crate) fn span(start: Option<i64>, end: Option<i64>) -> String {
    match (start, end) {
        (Some(start), Some(end)) if end >= start => {
            duration(Duration::from_millis((end - start) as u64))
        }
        _ => "-".to_string(),
    }
}

/// Human size: `812 B`, `1.4 MiB`.
pub(crate) fn size(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let mut value = bytes as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

/// Release id → version, to name releases as people do (`v2 (1a2b3c4d)`).
#[derive(Debug, Default)]
pub(crate) struct Releases(std::collections::BTreeMap<String, String>);

impl Releases {
    /// From the releases of a status.
    pub(crate) fn of(records: &[lastmile_store::ReleaseRecord]) -> Releases {
        Releases(
            records
                .iter()
                .map(|release| (release.id.clone(), release.version.clone()))
                .collect(),
        )
    }

    /// From `(id, version)` pairs.
    #[cfg(test)]
    pub(crate) fn from_pairs(pairs: &[(&str, &str)]) -> Releases {
        Releases(
            pairs
                .iter()
                .map(|(id, version)| ((*id).to_owned(), (*version).to_owned()))
                .collect(),
        )
    }

    /// The label of the release `id`; its short id when the list does not
    /// have it, `none` when there is no release.
    pub(crate) fn label(&self, id: Option<&str>) -> String {
        let Some(id) = id else {
            return "none".to_owned();
        };
        lastmile_store::release_label(self.0.get(id).map(String::as_str), id)
    }
}

/// `text` as one word for a POSIX shell, for commands a hint spells out:
/// as is when it is plain, in single quotes otherwise.
pub(crate) fn shell_word(text: &str) -> String {
    let plain = !text.is_empty()
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./:=@%+,".contains(c));
    if plain {
        text.to_owned()
    } else {
        format!("'{}'", text.replace('\'', "'\\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_are_utc_calendar_dates() {
        assert_eq!(timestamp(0), "1970-01-01 00:00:00Z");
        assert_eq!(timestamp(951_782_400_000), "2000-02-29 00:00:00Z");
        assert_eq!(timestamp(1_795_325_532_123), "2026-11-22 05:32:12Z");
    }

    #[test]
    fn durations_and_sizes_read_naturally() {
        assert_eq!(duration(Duration::from_millis(850)), "850ms");
        assert_eq!(duration(Duration::from_millis(12_340)), "12.3s");
        assert_eq!(duration(Duration::from_secs(245)), "4m05s");
        assert_eq!(size(812), "812 B");
        assert_eq!(size(1_468_006), "1.4 MiB");
    }
}
