//! The controller and its two process shells.
//!
//! - [`controller`]: one app's controller over the hosts it is given as
//!   `HostHandle`s, answering with typed values.
//! - `local_app`: that controller over the in-process `local` host (a
//!   `lastmile_node::LocalHost`).
//! - [`up`]: `lastmile up`, one app in the foreground, with its control
//!   API and restarts that hand the listening sockets to the new process.
//! - [`server`] and [`web`]: `lastmile server`, many apps fed by git, and
//!   its API and dashboard.
//!
//! Modules depend downwards only: the shells (`up`, `server`, `web`) on
//! the HTTP edges (`control`, `api`, `dashboard`), those on the controller,
//! the controller on `edge`, `flags`, `report`, `request` and `error`. JSON
//! is made at the HTTP edges. This crate owns the background loops and their
//! shutdown; the crates below it never start tasks on their own.

mod api;
mod control;
pub mod controller;
mod dashboard;
mod edge;
pub mod error;
mod flags;
mod local_app;
mod metrics_merge;
pub mod report;
pub mod request;
pub mod server;
pub mod session;
pub mod tokens;
pub mod up;
pub mod up_lock;
pub mod web;

pub use api::{Bounds, FieldType, ROUTES, RouteDoc};
pub use controller::Progress;
pub use edge::{CertificateSource, CertificateState, CertificateStatus};
