//! The deployment engine: moves an environment from one release to another
//! with the environment's strategy (`rolling`, `blue-green`, `recreate`),
//! rolls back, and brings back what was serving after a restart.
//!
//! It talks to hosts only through [`lastmile_host::HostHandle`], so the same
//! code drives the in-process host of `lastmile up` and remote agents. Every
//! transition is written to the store *before* it is acted on (the
//! environment's weights first, then the router is told), so a controller
//! killed mid-deployment finds in the store what it was about to do, and
//! [`Engine::restore`] either completes a decided switch or rolls back.
//!
//! It starts no background tasks: the server calls [`Engine::tick`] to end
//! rollback windows.
//!
//! ```ignore
//! let engine = Engine::new(store, vec![host]);
//! let outcome = engine.deploy(&environment, &service, &release, &progress).await?;
//! assert_eq!(outcome.status, DeploymentStatus::Succeeded);
//! ```

mod analysis;
mod canary;
mod engine;
mod outcome;
mod webhook;

pub use analysis::{
    Analysis, Latencies, LatencyTest, MIN_LATENCY_SAMPLES, Sample, Thresholds, Verdict, analyse,
    share_floor,
};
pub use canary::CanaryControl;
pub use engine::{Engine, EngineError, Progress, Restored, ServiceOf, edge_spec};
pub use lastmile_store::DeploymentStatus;
pub use outcome::{DeploymentOutcome, analysis_numbers, unchanged_line};
