//! Branch filters.

use lastmile_git::branch_matches;

fn pats(p: &[&str]) -> Vec<String> {
    p.iter().map(|s| s.to_string()).collect()
}

#[test]
fn exact_glob_and_empty() {
    let p = pats(&["main", "release/*"]);
    assert!(branch_matches("main", &p));
    assert!(branch_matches("release/1.2", &p));
    assert!(!branch_matches("release/1/hotfix", &p));
    assert!(!branch_matches("mainline", &p));
    assert!(!branch_matches("feature/x", &p));
    assert!(!branch_matches("release", &p));
    assert!(branch_matches("anything/at/all", &[]));
    assert!(branch_matches("release/1/hotfix", &pats(&["release/**"])));
}
