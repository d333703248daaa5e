//! Git for lastmile: a bare mirror of one remote repository that can be fetched, asked about
//! commits, and materialized into a plain directory tree, plus verification of push webhooks
//! from GitHub, Gitea and GitLab. It drives the `git` program, which must be on PATH (never
//! through a shell, never prompting for credentials). Everything here is blocking; async
//! callers run it in `spawn_blocking`. Of a checked-out work tree it only reads the branch and
//! HEAD commit ([`work_tree`]). It does not check out worktrees, does not push, does not
//! resolve submodules and does not schedule polling: the caller decides when to fetch.
//!
//! ```no_run
//! use lastmile_git::{Mirror, branch_matches};
//! # fn main() -> Result<(), lastmile_git::GitError> {
//! let mirror = Mirror::open_or_clone("https://example.com/app.git", "/var/lib/lastmile/git/app".as_ref())?;
//! for head in mirror.fetch()? {
//!     if branch_matches(&head.branch, &["main".to_string()]) {
//!         let files = mirror.materialize(&head.sha, "/tmp/build/app".as_ref())?;
//!         println!("{} at {}: {files} files", head.branch, head.sha);
//!     }
//! }
//! # Ok(())
//! # }
//! ```

mod branch;
mod error;
mod mirror;
mod program;
pub mod webhook;
mod work_tree;

pub use branch::branch_matches;
pub use error::GitError;
pub use mirror::{CommitInfo, Head, Mirror, redact};
pub use work_tree::{WorkTree, work_tree};
