//! Semantic versions (`MAJOR.MINOR.PATCH[-prerelease][+build]`) and their
//! precedence per semver 2.0, for the flag operators `semver_*`.

use std::cmp::Ordering;
use std::fmt;
use std::str::FromStr;

/// A parsed semantic version; build metadata is dropped because it takes no
/// part in precedence.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SemVer {
    /// Incompatible API changes.
    pub major: u64,
    /// Compatible additions.
    pub minor: u64,
    /// Compatible fixes.
    pub patch: u64,
    /// Dot-separated pre-release identifiers (`beta.2` → `[beta, 2]`); empty
    /// for a release.
    pub prerelease: Vec<Identifier>,
}

/// One pre-release identifier. Numeric ones sort below alphanumeric ones,
/// numerically among themselves; alphanumeric ones in ASCII order.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Identifier {
    /// Digits only, no leading zero.
    Numeric(u64),
    /// Letters, digits and `-`, with at least one non-digit.
    Alphanumeric(String),
}

impl SemVer {
    /// Parses `1.2.3`, `1.2.3-rc.1` or `1.2.3-rc.1+build.5`; the error says
    /// what is wrong with the text.
    pub fn parse(text: &str) -> Result<SemVer, String> {
        let (version, _build) = match text.split_once('+') {
            Some((version, build)) => {
                if build.is_empty() || !build.split('.').all(is_identifier) {
                    return Err(format!(
                        "`{text}` has invalid build metadata after `+`; use letters, digits, `-` and `.`"
                    ));
                }
                (version, Some(build))
            }
            None => (text, None),
        };
        let (core, prerelease) = match version.split_once('-') {
            Some((core, prerelease)) => (core, Some(prerelease)),
            None => (version, None),
        };
        let numbers: Vec<&str> = core.split('.').collect();
        let [major, minor, patch] = numbers.as_slice() else {
            return Err(format!(
                "`{text}` is not MAJOR.MINOR.PATCH; write three numbers, e.g. \"2.1.0\""
            ));
        };
        let number = |part: &str| -> Result<u64, String> {
            parse_numeric(part).ok_or_else(|| {
                format!(
                    "`{part}` in `{text}` is not a version number (digits only, no leading zero)"
                )
            })
        };
        let mut identifiers = Vec::new();
        if let Some(prerelease) = prerelease {
            for part in prerelease.split('.') {
                if !is_identifier(part) {
                    return Err(format!(
                        "`{text}` has an invalid pre-release part `{part}`; use letters, digits and `-`, e.g. \"2.1.0-beta.1\""
                    ));
                }
                if part.bytes().all(|byte| byte.is_ascii_digit()) {
                    let value = parse_numeric(part).ok_or_else(|| {
                        format!("`{part}` in `{text}` is a number with a leading zero")
                    })?;
                    identifiers.push(Identifier::Numeric(value));
                } else {
                    identifiers.push(Identifier::Alphanumeric(part.to_owned()));
                }
            }
        }
        Ok(SemVer {
            major: number(major)?,
            minor: number(minor)?,
            patch: number(patch)?,
            prerelease: identifiers,
        })
    }
}

/// `[0-9A-Za-z-]+`.
fn is_identifier(part: &str) -> bool {
    !part.is_empty()
        && part
            .bytes()
            .all(|byte| byte.is_ascii_alphanumeric() || byte == b'-')
}

/// Digits without a leading zero (except `0` itself), fitting in a u64.
fn parse_numeric(part: &str) -> Option<u64> {
    if part.is_empty()
        || !part.bytes().all(|byte| byte.is_ascii_digit())
        || (part.len() > 1 && part.starts_with('0'))
    {
        return None;
    }
    part.parse().ok()
}

impl Ord for SemVer {
    fn cmp(&self, other: &Self) -> Ordering {
        (self.major, self.minor, self.patch)
            .cmp(&(other.major, other.minor, other.patch))
            .then_with(|| {
                // A pre-release sorts below its release; otherwise identifiers
                // compare left to right, a shorter prefix sorting first.
                match (self.prerelease.is_empty(), other.prerelease.is_empty()) {
                    (true, true) => Ordering::Equal,
                    (true, false) => Ordering::Greater,
                    (false, true) => Ordering::Less,
                    (false, false) => self.prerelease.cmp(&other.prerelease),
                }
            })
    }
}

impl PartialOrd for SemVer {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl FromStr for SemVer {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        SemVer::parse(text)
    }
}

impl fmt::Display for SemVer {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(formatter, "{}.{}.{}", self.major, self.minor, self.patch)?;
        for (index, identifier) in self.prerelease.iter().enumerate() {
            formatter.write_str(if index == 0 { "-" } else { "." })?;
            match identifier {
                Identifier::Numeric(value) => write!(formatter, "{value}")?,
                Identifier::Alphanumeric(text) => formatter.write_str(text)?,
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::SemVer;

    fn version(text: &str) -> SemVer {
        SemVer::parse(text).unwrap_or_else(|message| panic!("{text}: {message}"))
    }

    #[test]
    fn precedence_follows_semver_2() {
        // The ordering example from semver.org §11, plus releases around it.
        let ordered = [
            "0.9.9",
            "1.0.0-alpha",
            "1.0.0-alpha.1",
            "1.0.0-alpha.beta",
            "1.0.0-beta",
            "1.0.0-beta.2",
            "1.0.0-beta.11",
            "1.0.0-rc.1",
            "1.0.0",
            "1.0.1",
            "1.1.0",
            "2.0.0",
            "10.0.0",
        ];
        for pair in ordered.windows(2) {
            assert!(version(pair[0]) < version(pair[1]), "{pair:?}");
        }
        assert_eq!(version("1.0.0+build.1"), version("1.0.0+other"));
        assert_eq!(version("2.1.0-rc.1").to_string(), "2.1.0-rc.1");
    }

    #[test]
    fn malformed_versions_are_refused() {
        for text in [
            "",
            "1",
            "1.2",
            "1.2.3.4",
            "01.2.3",
            "1.2.x",
            "v1.2.3",
            "1.2.3-",
            "1.2.3-a..b",
            "1.2.3-01",
            "1.2.3+",
            "1.2.3-a_b",
            " 1.2.3",
        ] {
            assert!(SemVer::parse(text).is_err(), "{text:?} was accepted");
        }
        assert!(SemVer::parse("1.2.3-0.a-b.0x").is_ok());
    }
}
