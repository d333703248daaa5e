//! What `lastmile.yaml` accepts, what it rejects and how the rejection reads.

// A test crate root resolves modules beside itself, so point into `spec/`.
#[path = "spec/accepts.rs"]
mod accepts;
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
