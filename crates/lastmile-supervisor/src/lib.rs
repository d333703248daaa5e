//! Runs N instances of releases on one host as child process groups: spawns each as
//! `sh -c command` on a fresh `127.0.0.1` port (a simple command is `exec`'d, so the app
//! leads its group), probes its HTTP health check every `interval` until it is ready (a
//! start that fails says what answered, with the app's own last output), watches it,
//! restarts it with backoff after crashes (up to a crash loop), stops it gracefully, writes
//! its output to rotated log files and keeps unpacked releases on disk atomically.
//!
//! It does not route traffic (the router reads addresses from [`Supervisor::list`]), fetch
//! artifacts (the caller fills release dirs) or survive its own restart (children die with it).
//!
//! ```no_run
//! # async fn demo() -> Result<(), lastmile_supervisor::SupervisorError> {
//! use lastmile_supervisor::{HealthSpec, InstanceSpec, StopSpec, Supervisor, SupervisorConfig};
//! let supervisor = Supervisor::new("/var/lib/lastmile".into(), SupervisorConfig::default())?;
//! let status = supervisor
//!     .start(InstanceSpec {
//!         instance_id: "web-1".into(),
//!         release_id: "r3".into(),
//!         version: "1.4.0".into(),
//!         index: 1,
//!         command: "exec ./server".into(),
//!         env: Default::default(),
//!         workdir: supervisor.release_dir("r3"),
//!         health: HealthSpec::default(),
//!         stop: StopSpec::default(),
//!     })
//!     .await?;
//! println!("web-1 listens on {}", status.addr);
//! supervisor.shutdown().await;
//! # Ok(()) }
//! ```

mod config;
mod error;
mod event;
mod health;
mod instance;
mod log;
mod not_ready;
mod orphans;
mod process;
mod release;
mod spec;
mod status;
mod supervisor;

pub use config::SupervisorConfig;
pub use error::SupervisorError;
pub use event::InstanceEvent;
pub use health::ProbeFailure;
pub use not_ready::{NotReady, NotReadyEnd};
pub use process::{group_running, process_running};
pub use spec::{HealthSpec, InstanceSpec, StopSpec};
pub use status::{InstanceState, InstanceStatus};
pub use supervisor::Supervisor;
