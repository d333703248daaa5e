//! Parsers for the spec's scalar formats: durations, percentages, addresses,
//! names. Each returns a message that names the fix, for the reader to place.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

/// Parses a duration such as `500ms`, `10s`, `5m`, `1h`, `1m30s` or `1.5s`.
///
/// Units: `ms`, `s`, `m`, `h`, `d`. A bare number is refused because its unit
/// would be a guess.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let trimmed = text.trim();
    if trimmed.is_empty() {
        return Err("a duration cannot be empty; write e.g. \"10s\"".to_owned());
    }
    if trimmed.parse::<f64>().is_ok() {
        return Err(format!(
            "`{trimmed}` has no unit; write \"{trimmed}s\" (units: ms, s, m, h, d)"
        ));
    }
    let mut total = Duration::ZERO;
    let mut rest = trimmed;
    while !rest.is_empty() {
        let number_length =
            rest.find(|character: char| !(character.is_ascii_digit() || character == '.'));
        let Some(number_length) = number_length.filter(|length| *length > 0) else {
            return Err(format!(
                "`{trimmed}` is not a duration; write a number then a unit, e.g. \"10s\" or \"1m30s\""
            ));
        };
        let (number, after_number) = rest.split_at(number_length);
        let unit_length = after_number
            .find(|character: char| !character.is_ascii_alphabetic())
            .unwrap_or(after_number.len());
        let (unit, after_unit) = after_number.split_at(unit_length);
        let value: f64 = number
            .parse()
            .map_err(|_| format!("`{number}` in `{trimmed}` is not a number"))?;
        let unit_seconds = match unit {
            "ms" => 0.001,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            "d" => 86400.0,
            "" => {
                return Err(format!(
                    "`{number}` in `{trimmed}` has no unit; units are ms, s, m, h, d"
                ));
            }
            other => {
                return Err(format!(
                    "unknown unit `{other}` in `{trimmed}`; units are ms, s, m, h, d"
                ));
            }
        };
        let part = Duration::try_from_secs_f64(value * unit_seconds)
            .map_err(|_| format!("`{trimmed}` is too long a duration"))?;
        total = total
            .checked_add(part)
            .ok_or_else(|| format!("`{trimmed}` is too long a duration"))?;
        rest = after_unit;
    }
    Ok(total)
}

/// Size units and their bytes: powers of 1000 (`KB`) and of 1024 (`KiB`).
const SIZE_UNITS: &[(&str, u64)] = &[
    ("B", 1),
    ("KB", 1000),
    ("MB", 1000 * 1000),
    ("GB", 1000 * 1000 * 1000),
    ("TB", 1000 * 1000 * 1000 * 1000),
    ("KiB", 1 << 10),
    ("MiB", 1 << 20),
    ("GiB", 1 << 30),
    ("TiB", 1 << 40),
];

/// The size units as a message lists them.
pub(crate) const SIZE_UNIT_LIST: &str =
    "B, KB, MB, GB, TB (powers of 1000), KiB, MiB, GiB, TiB (powers of 1024)";

/// Parses a size such as `512B`, `10MiB`, `1.5GB` or `64 KiB` into bytes.
///
/// `KB`, `MB`, … are powers of 1000 and `KiB`, `MiB`, … powers of 1024, as
/// written (case matters: `mb` is refused rather than guessed). A fraction is
/// rounded to the nearest byte. A bare number is refused, as for durations.
pub(crate) fn parse_size(text: &str) -> Result<u64, String> {
    let trimmed = text.trim();
    if trimmed.is_empty() {
        return Err(format!(
            "a size cannot be empty; write e.g. \"10MiB\" (units: {SIZE_UNIT_LIST})"
        ));
    }
    let number_length = trimmed
        .find(|character: char| !(character.is_ascii_digit() || character == '.'))
        .unwrap_or(trimmed.len());
    let (number, unit) = trimmed.split_at(number_length);
    let unit = unit.trim_start();
    let value: f64 = number
        .parse()
        .ok()
        .filter(|value: &f64| value.is_finite())
        .ok_or_else(|| {
            format!("`{trimmed}` is not a size; write a number then a unit, e.g. \"10MiB\"")
        })?;
    if unit.is_empty() {
        return Err(format!(
            "`{trimmed}` has no unit; write e.g. \"{number}B\" or \"{number}MiB\" (units: {SIZE_UNIT_LIST})"
        ));
    }
    let Some((_, multiplier)) = SIZE_UNITS.iter().find(|(name, _)| *name == unit) else {
        return Err(format!(
            "unknown unit `{unit}` in `{trimmed}`; units are {SIZE_UNIT_LIST}"
        ));
    };
    let bytes = (value * *multiplier as f64).round();
    if bytes >= u64::MAX as f64 {
        return Err(format!("`{trimmed}` is too large a size"));
    }
    Ok(bytes as u64)
}

/// A size as a person would write it: the largest binary unit that divides it.
pub(crate) fn format_size(bytes: u64) -> String {
    for (unit, multiplier) in [
        ("TiB", 1u64 << 40),
        ("GiB", 1 << 30),
        ("MiB", 1 << 20),
        ("KiB", 1 << 10),
    ] {
        if bytes >= multiplier && bytes % multiplier == 0 {
            return format!("{}{unit}", bytes / multiplier);
        }
    }
    format!("{bytes}B")
}

/// A DNS host name: dot-separated labels of letters, digits and `-` (not at
/// either end of a label), each 1 to 63 characters, 253 in all, no trailing dot.
pub(crate) fn is_dns_name(text: &str) -> bool {
    !text.is_empty()
        && text.len() <= 253
        && text.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .chars()
                    .all(|character| character.is_ascii_alphanumeric() || character == '-')
        })
}

/// `local@domain.tld`: one `@`, no spaces or angle brackets, a DNS domain with a dot.
pub(crate) fn is_email(text: &str) -> bool {
    let Some((local, domain)) = text.split_once('@') else {
        return false;
    };
    !local.is_empty()
        && !local.contains(|character: char| {
            character.is_whitespace() || character.is_control() || "<>@,;:\"".contains(character)
        })
        && domain.contains('.')
        && is_dns_name(domain)
}

/// Parses a percentage `5`, `5%` or `2.5%` in the range (0, 100].
pub(crate) fn parse_percent(text: &str) -> Result<f64, String> {
    let trimmed = text.trim();
    let number = trimmed.strip_suffix('%').unwrap_or(trimmed).trim();
    let value: f64 = number
        .parse()
        .ok()
        .filter(|value: &f64| value.is_finite())
        .ok_or_else(|| format!("`{trimmed}` is not a percentage; write e.g. 5 or \"2.5%\""))?;
    if value <= 0.0 || value > 100.0 {
        return Err(format!(
            "{value}% is out of range; a percentage must be above 0 and at most 100"
        ));
    }
    Ok(value)
}

/// Parses `host:port`, `:port` (all interfaces) or `[v6]:port`; `localhost`
/// means 127.0.0.1. Ports are 1..=65535.
pub(crate) fn parse_address(text: &str) -> Result<SocketAddr, AddressError> {
    let trimmed = text.trim();
    if trimmed.starts_with('[') && trimmed.ends_with(']') {
        // `rfind(':')` would find the colon inside the brackets and call the
        // tail of the IPv6 address a port.
        return Err(AddressError::Address(format!(
            "`{trimmed}` is an IPv6 address without a port; write \"{trimmed}:8080\""
        )));
    }
    let Some(colon) = trimmed.rfind(':') else {
        return Err(AddressError::Address(format!(
            "`{trimmed}` has no port; write \"127.0.0.1:8080\" or \":8080\""
        )));
    };
    let (host, port_text) = (&trimmed[..colon], &trimmed[colon + 1..]);
    let port = parse_port(port_text)?;
    let ip = match host {
        "" => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        "localhost" => IpAddr::V4(Ipv4Addr::LOCALHOST),
        bracketed if bracketed.starts_with('[') && bracketed.ends_with(']') => {
            let inner = &bracketed[1..bracketed.len() - 1];
            inner
                .parse::<Ipv6Addr>()
                .map(IpAddr::V6)
                .map_err(|_| AddressError::Address(format!("`{inner}` is not an IPv6 address")))?
        }
        unbracketed if unbracketed.contains(':') => {
            return Err(AddressError::Address(format!(
                "`{trimmed}` is ambiguous; put an IPv6 address in brackets: \"[::1]:8080\""
            )));
        }
        other => other.parse::<IpAddr>().map_err(|_| {
            AddressError::Address(format!(
                "`{other}` is not an IP address; write \"127.0.0.1:{port}\" or \":{port}\""
            ))
        })?,
    };
    Ok(SocketAddr::new(ip, port))
}

/// Why an address was refused: the port alone, or the whole address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum AddressError {
    /// The port is missing, not a number or out of range.
    Port(String),
    /// The host part is not an IP address.
    Address(String),
}

fn parse_port(text: &str) -> Result<u16, AddressError> {
    let number: u64 = text.parse().map_err(|_| {
        AddressError::Port(format!(
            "`{text}` is not a port number; ports are 1 to 65535"
        ))
    })?;
    match u16::try_from(number) {
        Ok(port) if port > 0 => Ok(port),
        _ => Err(AddressError::Port(format!(
            "port {number} is out of range; ports are 1 to 65535"
        ))),
    }
}

/// `^[a-z][a-z0-9-]{0,62}$`.
pub(crate) fn is_app_name(text: &str) -> bool {
    let mut characters = text.chars();
    characters
        .next()
        .is_some_and(|first| first.is_ascii_lowercase())
        && text.len() <= 63
        && characters.all(|character| {
            character.is_ascii_lowercase() || character.is_ascii_digit() || character == '-'
        })
}

/// `[A-Za-z0-9_.-]+`: step and environment names.
pub(crate) fn is_step_name(text: &str) -> bool {
    !text.is_empty()
        && text.chars().all(|character| {
            character.is_ascii_alphanumeric() || matches!(character, '_' | '.' | '-')
        })
}

/// `[A-Za-z_][A-Za-z0-9_]*`.
pub(crate) fn is_env_name(text: &str) -> bool {
    let mut characters = text.chars();
    characters
        .next()
        .is_some_and(|first| first.is_ascii_alphabetic() || first == '_')
        && characters.all(|character| character.is_ascii_alphanumeric() || character == '_')
}

/// A duration as a person would write it in the spec: `100ms`, `30s`, `1m`, `1h`, `365d`.
pub(crate) fn format_duration(duration: Duration) -> String {
    let millis = duration.as_millis();
    if millis == 0 {
        "0s".to_owned()
    } else if millis % 86_400_000 == 0 {
        format!("{}d", millis / 86_400_000)
    } else if millis % 3_600_000 == 0 {
        format!("{}h", millis / 3_600_000)
    } else if millis % 60_000 == 0 {
        format!("{}m", millis / 60_000)
    } else if millis % 1000 == 0 {
        format!("{}s", millis / 1000)
    } else {
        format!("{millis}ms")
    }
}

/// `http://` or `https://`, a non-empty host, and no whitespace.
pub(crate) fn is_http_url(text: &str) -> bool {
    let rest = text
        .strip_prefix("http://")
        .or_else(|| text.strip_prefix("https://"));
    rest.is_some_and(|rest| {
        !rest.contains(|character: char| character.is_whitespace() || character.is_control())
            && !url_host(rest).is_empty()
    })
}

/// The host of a URL without its scheme: the authority up to `/`, `?` or
/// `#`, without user info and port (`http://:9090/` has the empty host).
fn url_host(rest: &str) -> &str {
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let host_and_port = authority.rsplit('@').next().unwrap_or_default();
    if let Some(bracketed) = host_and_port.strip_prefix('[') {
        return bracketed.split(']').next().unwrap_or_default();
    }
    host_and_port.split(':').next().unwrap_or_default()
}

/// An HTTP token (RFC 9110 `tchar`s), as header and cookie names are.
pub(crate) fn is_http_token(text: &str) -> bool {
    !text.is_empty()
        && text.chars().all(|character| {
            character.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(character)
        })
}

/// The candidate closest to `text`, if one is close enough to be a typo
/// (the rule behind every "did you mean" of the spec and the CLI).
pub fn did_you_mean<'a>(
    text: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    let lowered = text.to_ascii_lowercase();
    candidates
        .into_iter()
        .map(|candidate| (candidate, strsim::damerau_levenshtein(&lowered, candidate)))
        .filter(|(candidate, distance)| {
            let limit = (candidate.chars().count().max(text.chars().count()) / 3).max(1);
            *distance <= limit || (candidate.starts_with(&lowered) && lowered.len() >= 2)
        })
        .min_by_key(|(_, distance)| *distance)
        .map(|(candidate, _)| candidate)
}

#[cfg(test)]
mod tests;
