//! How people read what the store holds: one way to name a release and to
//! count things, for every command, log line and page.

/// How many characters of a release id people see beside its version.
pub const SHORT_ID_LEN: usize = 8;

/// A release id cut to what people read: `fd97e584`.
pub fn short_id(id: &str) -> &str {
    id.char_indices()
        .nth(SHORT_ID_LEN)
        .map_or(id, |(end, _)| &id[..end])
}

/// A release as people name it: its version with the short id that tells
/// builds apart (`v2 (fd97e584)`), or the short id alone when the version is
/// not known.
pub fn release_label(version: Option<&str>, id: &str) -> String {
    match version {
        Some(version) => format!("{version} ({})", short_id(id)),
        None => short_id(id).to_owned(),
    }
}

/// `1 step`, `3 steps`, `2 canaries`: a count with its noun in the right
/// number. `noun` is the singular; the plural adds `s` (`ies` after a
/// consonant and `y`).
pub fn counted(count: u64, noun: &str) -> String {
    if count == 1 {
        return format!("1 {noun}");
    }
    match noun.strip_suffix('y') {
        Some(stem) if !stem.ends_with(['a', 'e', 'i', 'o', 'u']) => format!("{count} {stem}ies"),
        _ => format!("{count} {noun}s"),
    }
}

impl crate::ReleaseRecord {
    /// This release as people name it: `v2 (fd97e584)`.
    pub fn label(&self) -> String {
        release_label(Some(&self.version), &self.id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn releases_read_as_version_and_short_id() {
        let id = "fd97e584753b9c0e1a2b";
        assert_eq!(release_label(Some("v2"), id), "v2 (fd97e584)");
        assert_eq!(release_label(None, id), "fd97e584");
        assert_eq!(short_id("abc"), "abc");
    }

    #[test]
    fn counts_agree_with_their_noun() {
        assert_eq!(counted(1, "step"), "1 step");
        assert_eq!(counted(0, "step"), "0 steps");
        assert_eq!(counted(3, "instance"), "3 instances");
        assert_eq!(counted(2, "running canary"), "2 running canaries");
        assert_eq!(counted(2, "key"), "2 keys");
    }
}
