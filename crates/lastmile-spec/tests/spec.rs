//! What `lastmile.yaml` accepts, what it rejects and how the rejection reads.

/// Runs an insta assertion with snapshots kept in `tests/snapshots/`.
macro_rules! snapshot {
    ($assertion:expr) => {
        insta::with_settings!({ snapshot_path => "../snapshots" }, { $assertion })
    };
}
pub(crate) use snapshot;

// A test crate root resolves modules beside itself, so point into `spec/`.
#[path = "spec/accepts.rs"]
mod accepts;
#[path = "spec/documented.rs"]
mod documented;
#[path = "spec/never_panics.rs"]
mod never_panics;
#[path = "spec/rejects.rs"]
mod rejects;

/// Joins lines into a YAML document ending in a newline.
fn yaml(lines: &[&str]) -> String {
    let mut text = lines.join("\n");
    text.push('\n');
    text
}
