//! Sticky cohorts: a stable hash of a user's key picks the same backend on every request.

use crate::table::KeySource;

/// The user's bucket in `0..10000`: murmur3_x86_32 of `salt ":" key` (seed 0) modulo 10000,
/// computed by lastmile-cohort, the same function the feature flags use.
///
/// The salt (the environment name) keeps one user's buckets independent across environments.
pub fn cohort_bucket(salt: &str, key: &str) -> u32 {
    lastmile_cohort::bucket(salt, key.as_bytes())
}

/// `cohort_bucket` on raw key bytes.
pub(crate) fn bucket_of(salt: &str, key: &[u8]) -> u32 {
    lastmile_cohort::bucket(salt, key)
}

/// The value `key` names among `headers` (name, value pairs), if present and not empty.
///
/// Header names compare case-insensitively; cookies are read from every `Cookie` header
/// (`a=1; b=2`), their names compared exactly, surrounding quotes removed.
pub(crate) fn find_key<'a, I>(key: &KeySource, headers: I) -> Option<&'a [u8]>
where
    I: IntoIterator<Item = (&'a [u8], &'a [u8])>,
{
    match key {
        KeySource::Header(name) => headers
            .into_iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name.as_bytes()))
            .map(|(_, v)| v.trim_ascii())
            .filter(|v| !v.is_empty()),
        KeySource::Cookie(name) => find_cookie(name.as_bytes(), headers),
    }
}

/// The value of cookie `name` in any `Cookie` header, if present and not empty.
pub(crate) fn find_cookie<'a, I>(name: &[u8], headers: I) -> Option<&'a [u8]>
where
    I: IntoIterator<Item = (&'a [u8], &'a [u8])>,
{
    headers
        .into_iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case(b"cookie"))
        .find_map(|(_, v)| cookie(v, name))
}

/// `name=id; Path=/; Max-Age=31536000; SameSite=Lax`: the cookie that makes a new user's cohort stick.
pub(crate) fn set_cookie_value(name: &str, id: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(name.len() + id.len() + 48);
    v.extend_from_slice(name.as_bytes());
    v.push(b'=');
    v.extend_from_slice(id);
    v.extend_from_slice(b"; Path=/; Max-Age=31536000; SameSite=Lax");
    v
}

/// The value of cookie `name` in one `Cookie` header value.
fn cookie<'a>(header: &'a [u8], name: &[u8]) -> Option<&'a [u8]> {
    header.split(|b| *b == b';').find_map(|pair| {
        let pair = pair.trim_ascii();
        let eq = pair.iter().position(|b| *b == b'=')?;
        if pair[..eq].trim_ascii() != name {
            return None;
        }
        let mut v = pair[eq + 1..].trim_ascii();
        if v.len() >= 2 && v[0] == b'"' && v[v.len() - 1] == b'"' {
            v = &v[1..v.len() - 1];
        }
        (!v.is_empty()).then_some(v)
    })
}

#[cfg(test)]
mod tests {
    use super::{cohort_bucket, cookie, find_key};
    use crate::table::KeySource;

    #[test]
    fn buckets_are_salted_and_in_range() {
        assert_eq!(
            cohort_bucket("prod", "user-1"),
            lastmile_cohort::murmur3_x86_32(b"prod:user-1", 0) % 10_000
        );
        assert_ne!(
            cohort_bucket("prod", "user-1"),
            cohort_bucket("staging", "user-1")
        );
        assert!((0..1000).all(|i| cohort_bucket("prod", &i.to_string()) < 10_000));
    }

    #[test]
    fn keys_come_from_headers_and_cookies() {
        let headers: Vec<(&[u8], &[u8])> = vec![
            (b"X-User", b" 42 "),
            (b"cookie", b"a=1; lm_user=\"abc\"; b=2"),
            (b"Cookie", b"other=9"),
        ];
        let h = KeySource::Header("x-user".into());
        assert_eq!(find_key(&h, headers.iter().copied()), Some(&b"42"[..]));
        let c = KeySource::Cookie("lm_user".into());
        assert_eq!(find_key(&c, headers.iter().copied()), Some(&b"abc"[..]));
        let other = KeySource::Cookie("other".into());
        assert_eq!(find_key(&other, headers.iter().copied()), Some(&b"9"[..]));
        let missing = KeySource::Cookie("lm".into());
        assert_eq!(find_key(&missing, headers.iter().copied()), None);
        assert_eq!(cookie(b"x=; y=2", b"x"), None);
    }
}
