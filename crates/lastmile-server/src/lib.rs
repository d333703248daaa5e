//! Controller wiring for lastmile: `lastmile up` (the embedded controller
//! with its in-process `local` host, a `lastmile_node::LocalHost`), its
//! control API, and restarts that hand the listening sockets to the new
//! process (`lastmile_node::handover`).
//!
//! This crate owns the background loops and their shutdown; the crates
//! below it never start tasks on their own.

pub mod api;
pub mod control;
pub mod dashboard;
pub mod edge;
pub mod flags;
mod metrics_merge;
pub mod report;
pub mod server;
pub mod session;
pub mod tokens;
pub mod up;
pub mod up_lock;
