//! Branch filters.

/// True when `branch` matches one of the glob `patterns` (`main`, `release/*`); an empty list matches every branch.
///
/// `*` does not cross `/` (so `release/*` matches `release/1.2` but not `release/1/hotfix`);
/// `**` does. A pattern that is not a valid glob is compared literally.
pub fn branch_matches(branch: &str, patterns: &[String]) -> bool {
    if patterns.is_empty() {
        return true;
    }
    patterns.iter().any(|pattern| {
        match globset::GlobBuilder::new(pattern)
            .literal_separator(true)
            .build()
        {
            Ok(glob) => glob.compile_matcher().is_match(branch),
            Err(_) => pattern == branch,
        }
    })
}
