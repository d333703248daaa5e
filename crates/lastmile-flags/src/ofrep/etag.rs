//! Bulk-evaluation ETags: the flag set's version plus a hash of the context,
//! so a client polling with the same context gets 304 until the flags change,
//! and two contexts never share a tag.

use std::hash::{DefaultHasher, Hasher};

use http::HeaderMap;
use http::header::IF_NONE_MATCH;

use crate::context::Context;

/// The strong ETag (quotes included) of the bulk answer for `context` under
/// flag-set `version`.
pub(super) fn etag(version: u64, context: &Context) -> String {
    format!("\"{version:x}-{:016x}\"", context_hash(context))
}

/// Hashes the context as evaluation sees it: the targeting key and the
/// attributes in name order (a `BTreeMap`), values as compact JSON, so the
/// same context spelled with other whitespace or key order hashes the same.
fn context_hash(context: &Context) -> u64 {
    // SipHash with fixed keys: stable for the life of the binary, which is
    // all a cache validator needs (the version changes across deployments).
    let mut hasher = HasherWriter(DefaultHasher::new());
    match &context.targeting_key {
        Some(key) => {
            hasher.0.write_u8(1);
            hasher.0.write(key.as_bytes());
            hasher.0.write_u8(0xff);
        }
        None => hasher.0.write_u8(0),
    }
    for (name, value) in &context.attributes {
        hasher.0.write(name.as_bytes());
        hasher.0.write_u8(0xff);
        // Writing into a hasher cannot fail; a value that cannot be
        // serialized (none can: it came from JSON) would only weaken the tag.
        let _ = serde_json::to_writer(&mut hasher, value);
        hasher.0.write_u8(0xfe);
    }
    hasher.0.finish()
}

/// Lets `serde_json` write straight into the hasher, without a buffer.
struct HasherWriter(DefaultHasher);

impl std::io::Write for HasherWriter {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.write(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Whether `If-None-Match` lists `tag` (or is `*`), compared weakly as
/// RFC 9110 §13.1.2 asks for this header.
pub(super) fn none_match_hits(headers: &HeaderMap, tag: &str) -> bool {
    headers
        .get_all(IF_NONE_MATCH)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .map(str::trim)
        .any(|candidate| candidate == "*" || candidate.trim_start_matches("W/") == tag)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tag_follows_the_version_and_the_context() {
        let ann = Context::new().with_key("ann").with("country", "SE");
        let bob = Context::new().with_key("bob").with("country", "SE");
        assert_eq!(etag(1, &ann), etag(1, &ann.clone()));
        assert_ne!(etag(1, &ann), etag(2, &ann));
        assert_ne!(etag(1, &ann), etag(1, &bob));
        // The key is not confused with an attribute of the same text.
        assert_ne!(
            etag(1, &Context::new().with_key("x")),
            etag(1, &Context::new().with("x", serde_json::Value::Null))
        );
    }

    #[test]
    fn if_none_match_lists_and_weak_tags() {
        let mut headers = HeaderMap::new();
        headers.insert(
            IF_NONE_MATCH,
            "\"a\", W/\"1-2\"".parse().expect("header value"),
        );
        assert!(none_match_hits(&headers, "\"1-2\""));
        assert!(!none_match_hits(&headers, "\"1-3\""));
        assert!(!none_match_hits(&HeaderMap::new(), "\"1-2\""));
        headers.insert(IF_NONE_MATCH, "*".parse().expect("header value"));
        assert!(none_match_hits(&headers, "\"9-9\""));
    }
}
