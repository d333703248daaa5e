//! Bearer-token authentication, compared in constant time.

use http::HeaderMap;
use http::header::AUTHORIZATION;

/// The token every request must present.
pub(super) struct Token {
    expected: Vec<u8>,
}

/// Why a request is not let in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Refusal {
    /// No `Authorization: Bearer ...` header at all (401).
    Missing,
    /// A bearer token that is not the configured one (403).
    Wrong,
}

impl Token {
    pub(super) fn new(token: String) -> Token {
        Token {
            expected: token.into_bytes(),
        }
    }

    /// Whether `headers` carry this token as `Authorization: Bearer <token>`.
    pub(super) fn check(&self, headers: &HeaderMap) -> Result<(), Refusal> {
        let Some(value) = headers.get(AUTHORIZATION) else {
            return Err(Refusal::Missing);
        };
        let value = value.as_bytes();
        // The scheme is case-insensitive (RFC 9110 §11.1); anything but
        // Bearer counts as no credentials for this API.
        let presented = match value.get(..7) {
            Some(scheme) if scheme.eq_ignore_ascii_case(b"bearer ") => trim(&value[7..]),
            _ => return Err(Refusal::Missing),
        };
        if constant_time_eq(presented, &self.expected) {
            Ok(())
        } else {
            Err(Refusal::Wrong)
        }
    }
}

fn trim(bytes: &[u8]) -> &[u8] {
    let start = bytes.iter().position(|b| *b != b' ').unwrap_or(bytes.len());
    let end = bytes
        .iter()
        .rposition(|b| *b != b' ')
        .map_or(start, |i| i + 1);
    &bytes[start..end]
}

/// Equality whose running time depends only on `presented`'s length, never
/// on where the first differing byte is, so a caller cannot guess the token
/// byte by byte from response times. (The token's length can still leak.)
fn constant_time_eq(presented: &[u8], expected: &[u8]) -> bool {
    let mut difference = u64::from(presented.len() != expected.len());
    if expected.is_empty() {
        return difference == 0;
    }
    for (index, byte) in presented.iter().enumerate() {
        difference |= u64::from(byte ^ expected[index % expected.len()]);
    }
    std::hint::black_box(difference) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_only_when_every_byte_and_the_length_match() {
        assert!(constant_time_eq(b"secret", b"secret"));
        assert!(!constant_time_eq(b"secreT", b"secret"));
        assert!(!constant_time_eq(b"secret!", b"secret"));
        assert!(!constant_time_eq(b"secretsecret", b"secret"));
        assert!(!constant_time_eq(b"", b"secret"));
        assert!(constant_time_eq(b"", b""));
        assert!(!constant_time_eq(b"x", b""));
    }

    #[test]
    fn the_scheme_is_case_insensitive_and_other_schemes_are_missing() {
        let token = Token::new("s3cret".into());
        let with = |value: &str| {
            let mut headers = HeaderMap::new();
            headers.insert(AUTHORIZATION, value.parse().expect("header value"));
            token.check(&headers)
        };
        assert_eq!(with("Bearer s3cret"), Ok(()));
        assert_eq!(with("bearer  s3cret "), Ok(()));
        assert_eq!(with("Bearer nope"), Err(Refusal::Wrong));
        assert_eq!(with("Basic czNjcmV0"), Err(Refusal::Missing));
        assert_eq!(token.check(&HeaderMap::new()), Err(Refusal::Missing));
    }
}
