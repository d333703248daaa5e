//! The host runtime: what runs a host's instances and serves their traffic,
//! for `lastmile up` in process and, later, for an agent on another machine.
//!
//! [`LocalHost`] implements `HostHandle` over a `Supervisor` (instances) and
//! a `Router` (traffic), unpacking releases from its artifact cache (a
//! `lastmile-artifact` blob store), into which an artifact it lacks is
//! fetched by id from its `ArtifactSource` and kept only if its content
//! hashes to the id. [`BlobStoreSource`] serves a blob store as a source
//! (the controller's side; in `lastmile up` the store is the cache too). Opening one stops the instances a killed
//! process left running; [`LocalHost::watch_instances`] keeps routes in step
//! with instance events and [`LocalHost::drain_and_stop`] winds it down.
//! [`handover`] passes its listening sockets to a restarted process.
//!
//! It knows nothing of specs, the store or the pipeline: the controller
//! above it speaks only `HostHandle`.

mod artifact_source;
pub mod handover;
mod local_host;

pub use artifact_source::BlobStoreSource;
pub use local_host::{LocalHost, NodeError, host_root};
