//! Calendar arithmetic for the two places dates cross the wire as text: `Retry-After` in HTTP
//! dates, and expiry times in event messages. Days from civil dates follow Howard Hinnant's
//! public-domain algorithms.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// `2026-12-02 05:40:00 UTC`.
pub(crate) fn format_utc(time: SystemTime) -> String {
    let (date, clock) = date_and_time(time);
    format!("{date} {clock} UTC")
}

/// `2026-12-02T05:40:00Z` (RFC 3339, UTC), as status reports show certificate times.
pub fn format_rfc3339(time: SystemTime) -> String {
    let (date, clock) = date_and_time(time);
    format!("{date}T{clock}Z")
}

/// `("2026-12-02", "05:40:00")` in UTC.
fn date_and_time(time: SystemTime) -> (String, String) {
    let seconds = match time.duration_since(UNIX_EPOCH) {
        Ok(since) => since.as_secs() as i64,
        Err(before) => -(before.duration().as_secs() as i64),
    };
    let days = seconds.div_euclid(86_400);
    let of_day = seconds.rem_euclid(86_400);
    let (year, month, day) = civil_from_days(days);
    (
        format!("{year:04}-{month:02}-{day:02}"),
        format!(
            "{:02}:{:02}:{:02}",
            of_day / 3600,
            of_day / 60 % 60,
            of_day % 60
        ),
    )
}

/// A wait as a person reads it: `300ms`, `45s`, `2m 5s`, `1h 30m`.
pub(crate) fn format_wait(wait: Duration) -> String {
    let seconds = wait.as_secs();
    match seconds {
        0 => format!("{}ms", wait.as_millis()),
        1..60 => format!("{seconds}s"),
        60..3600 => format!("{}m {}s", seconds / 60, seconds % 60),
        _ => format!("{}h {}m", seconds / 3600, seconds / 60 % 60),
    }
}

/// Reads an IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`, RFC 9110 §5.6.7); `None` for
/// anything else.
pub(crate) fn parse_http_date(text: &str) -> Option<SystemTime> {
    let rest = text.trim().split_once(", ")?.1;
    let mut parts = rest.split(' ');
    let day: i64 = parse_digits(parts.next()?, 2)?;
    let month = match parts.next()? {
        "Jan" => 1,
        "Feb" => 2,
        "Mar" => 3,
        "Apr" => 4,
        "May" => 5,
        "Jun" => 6,
        "Jul" => 7,
        "Aug" => 8,
        "Sep" => 9,
        "Oct" => 10,
        "Nov" => 11,
        "Dec" => 12,
        _ => return None,
    };
    let year: i64 = parse_digits(parts.next()?, 4)?;
    let mut clock = parts.next()?.split(':');
    let hour: i64 = parse_digits(clock.next()?, 2)?;
    let minute: i64 = parse_digits(clock.next()?, 2)?;
    let second: i64 = parse_digits(clock.next()?, 2)?;
    if parts.next()? != "GMT" || parts.next().is_some() || clock.next().is_some() {
        return None;
    }
    if !(1..=31).contains(&day) || hour > 23 || minute > 59 || second > 60 || year < 1970 {
        return None;
    }
    let seconds = days_from_civil(year, month, day) * 86_400 + hour * 3600 + minute * 60 + second;
    Some(UNIX_EPOCH + Duration::from_secs(u64::try_from(seconds).ok()?))
}

fn parse_digits(text: &str, width: usize) -> Option<i64> {
    if text.len() == width && text.bytes().all(|b| b.is_ascii_digit()) {
        text.parse().ok()
    } else {
        None
    }
}

fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let day_of_year = (153 * (if month > 2 { month - 3 } else { month + 9 }) + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let days = days + 719_468;
    let era = days.div_euclid(146_097);
    let day_of_era = days - era * 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_index = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_index + 2) / 5 + 1;
    let month = if month_index < 10 {
        month_index + 3
    } else {
        month_index - 9
    };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_and_parses_known_dates() {
        let date = parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT").expect("a valid IMF-fixdate");
        assert_eq!(date, UNIX_EPOCH + Duration::from_secs(784_111_777));
        assert_eq!(format_utc(date), "1994-11-06 08:49:37 UTC");
        assert_eq!(format_utc(UNIX_EPOCH), "1970-01-01 00:00:00 UTC");
        let leap = parse_http_date("Thu, 29 Feb 2024 23:59:59 GMT").expect("a leap day");
        assert_eq!(format_utc(leap), "2024-02-29 23:59:59 UTC");
    }

    #[test]
    fn waits_read_naturally() {
        assert_eq!(format_wait(Duration::from_millis(300)), "300ms");
        assert_eq!(format_wait(Duration::from_secs(45)), "45s");
        assert_eq!(format_wait(Duration::from_secs(125)), "2m 5s");
        assert_eq!(format_wait(Duration::from_secs(5400)), "1h 30m");
    }

    #[test]
    fn rejects_what_is_not_an_imf_fixdate() {
        for text in [
            "",
            "120",
            "Sunday, 06-Nov-94 08:49:37 GMT",
            "Sun Nov  6 08:49:37 1994",
            "Sun, 06 Nov 1994 08:49:37 UTC",
            "Sun, 32 Nov 1994 08:49:37 GMT",
            "Sun, 06 Nov 1994 24:49:37 GMT",
            "Sun, 06 Nov 1994 08:49:37 GMT extra",
            "Sun, 6 Nov 1994 08:49:37 GMT",
        ] {
            assert_eq!(parse_http_date(text), None, "{text:?}");
        }
    }
}
