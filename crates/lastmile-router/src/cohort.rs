//! Sticky cohorts: a stable hash of a user's key picks the same backend on every request.

use crate::table::KeySource;

/// MurmurHash3 x86 32-bit of `data` with `seed` (Austin Appleby's public-domain algorithm).
pub(crate) fn murmur3_x86_32(data: &[u8], seed: u32) -> u32 {
    const C1: u32 = 0xcc9e_2d51;
    const C2: u32 = 0x1b87_3593;
    let mut h = seed;
    let mut blocks = data.chunks_exact(4);
    for b in &mut blocks {
        let mut k = u32::from_le_bytes([b[0], b[1], b[2], b[3]]);
        k = k.wrapping_mul(C1).rotate_left(15).wrapping_mul(C2);
        h ^= k;
        h = h.rotate_left(13).wrapping_mul(5).wrapping_add(0xe654_6b64);
    }
    let tail = blocks.remainder();
    let mut k = 0u32;
    for (i, byte) in tail.iter().enumerate() {
        k ^= u32::from(*byte) << (8 * i);
    }
    if !tail.is_empty() {
        h ^= k.wrapping_mul(C1).rotate_left(15).wrapping_mul(C2);
    }
    h ^= data.len() as u32;
    h ^= h >> 16;
    h = h.wrapping_mul(0x85eb_ca6b);
    h ^= h >> 13;
    h = h.wrapping_mul(0xc2b2_ae35);
    h ^ (h >> 16)
}

/// The user's bucket in `0..10000`: murmur3_x86_32 of `salt ":" key` (seed 0) modulo 10000.
///
/// The salt (the environment name) keeps one user's buckets independent across environments.
pub fn cohort_bucket(salt: &str, key: &str) -> u32 {
    bucket_of(salt, key.as_bytes())
}

/// `cohort_bucket` on raw key bytes.
pub(crate) fn bucket_of(salt: &str, key: &[u8]) -> u32 {
    let mut data = Vec::with_capacity(salt.len() + 1 + key.len());
    data.extend_from_slice(salt.as_bytes());
    data.push(b':');
    data.extend_from_slice(key);
    murmur3_x86_32(&data, 0) % 10_000
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
    use super::{cohort_bucket, cookie, find_key, murmur3_x86_32};
    use crate::table::KeySource;

    #[test]
    fn murmur3_matches_published_vectors() {
        assert_eq!(murmur3_x86_32(b"", 0), 0);
        assert_eq!(murmur3_x86_32(b"", 1), 0x514e_28b7);
        assert_eq!(murmur3_x86_32(b"", 0xffff_ffff), 0x81f1_6f39);
        assert_eq!(murmur3_x86_32(b"hello", 0), 0x248b_fa47);
        assert_eq!(murmur3_x86_32(b"hello, world", 0), 0x149b_bb7f);
        assert_eq!(
            murmur3_x86_32(b"The quick brown fox jumps over the lazy dog", 0),
            0x2e4f_f723
        );
        assert_eq!(murmur3_x86_32(&[0x21, 0x43, 0x65, 0x87], 0), 0xf55b_516b);
        assert_eq!(murmur3_x86_32(&[0x21, 0x43, 0x65], 0), 0x7e4a_8634);
        assert_eq!(murmur3_x86_32(&[0x21, 0x43], 0), 0xa0f7_b07a);
        assert_eq!(murmur3_x86_32(&[0x21], 0), 0x7266_1cf4);
        assert_eq!(murmur3_x86_32(&[0, 0, 0, 0], 0), 0x2362_f9de);
    }

    #[test]
    fn buckets_are_salted_and_in_range() {
        assert_eq!(
            cohort_bucket("prod", "user-1"),
            murmur3_x86_32(b"prod:user-1", 0) % 10_000
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
