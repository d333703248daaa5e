//! One app on the host this process runs: its [`Controller`] over the
//! `local` host (supervisor and router, from `lastmile-node`). `lastmile
//! up` and `lastmile server` are shells around it; the controller sees the
//! host only as a [`HostHandle`], and what is this process's own (instance
//! events, draining, the listening sockets a restart hands over) is here.

use std::collections::BTreeMap;
use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::time::Duration;

use lastmile_host::HostHandle;
use lastmile_node::LocalHost;
use lastmile_store::counted;

use crate::controller::{Controller, ControllerOptions, Progress};

/// How long draining waits for in-flight requests and WebSockets on stop.
pub(crate) const EXIT_DRAIN: Duration = Duration::from_secs(10);

/// An app's controller with the host it runs on here.
#[derive(Debug, Clone)]
pub(crate) struct LocalApp {
    controller: Arc<Controller>,
    host: LocalHost,
}

/// Why an app cannot be opened on this host.
#[derive(Debug, thiserror::Error)]
pub(crate) enum OpenError {
    /// The supervisor or router of the `local` host cannot start.
    #[error("cannot start the local host: {0}")]
    Host(#[source] lastmile_node::NodeError),
    /// The artifact store cannot be opened.
    #[error("cannot open the artifact store: {0}")]
    Artifacts(#[source] lastmile_artifact::BlobError),
    /// The app's store cannot be opened.
    #[error("cannot open the state in {dir}: {source}")]
    Store {
        /// The state directory.
        dir: String,
        /// Why.
        #[source]
        source: lastmile_store::StoreError,
    },
}

impl LocalApp {
    /// Opens the `local` host in the app's state directory (stopping what
    /// a killed lastmile left running), and the controller over it; no
    /// loop runs yet.
    pub(crate) fn open(
        options: ControllerOptions,
        access_log: bool,
        inherited: BTreeMap<SocketAddr, TcpListener>,
        progress: Arc<dyn Progress>,
    ) -> Result<LocalApp, OpenError> {
        let router = lastmile_router::RouterConfig {
            access_log,
            ..lastmile_router::RouterConfig::default()
        };
        // The controller's artifact store is the host's cache: nothing is
        // fetched, nothing copied.
        let artifacts = Arc::new(
            lastmile_node::BlobStoreSource::open(&options.state_dir)
                .map_err(OpenError::Artifacts)?,
        );
        let host = LocalHost::open("local", &options.state_dir, router, artifacts, inherited)
            .map_err(OpenError::Host)?;
        let orphans_killed = host.supervisor().orphans_killed();
        if orphans_killed > 0 {
            progress.warn(&format!(
                "stopped {} left running by a lastmile process that was killed",
                counted(orphans_killed as u64, "instance")
            ));
        }
        let dir = options.state_dir.display().to_string();
        let hosts: Vec<Arc<dyn HostHandle>> = vec![Arc::new(host.clone())];
        let controller = Controller::new(options, hosts, progress)
            .map_err(|source| OpenError::Store { dir, source })?;
        Ok(LocalApp { controller, host })
    }

    /// The app's controller.
    pub(crate) fn controller(&self) -> &Arc<Controller> {
        &self.controller
    }

    /// The host it runs on here.
    pub(crate) fn host(&self) -> &LocalHost {
        &self.host
    }

    /// Starts the loops: route refreshes on instance events (crashes are
    /// reported) and the controller's housekeeping. The caller aborts them
    /// when it stops.
    pub(crate) fn start_loops(&self) -> Vec<tokio::task::JoinHandle<()>> {
        let host = self.host.clone();
        let progress = self.controller.progress().clone();
        let watch = async move {
            use lastmile_supervisor::InstanceEvent as E;
            host.watch_instances(|event| {
                if matches!(event, E::Crashed { .. } | E::CrashLoop { .. }) {
                    progress.warn(&format!("{event}"));
                }
            })
            .await;
        };
        vec![
            tokio::spawn(watch),
            tokio::spawn(self.controller.clone().housekeeping()),
        ]
    }

    /// Stops accepting, lets in-flight requests finish, stops the
    /// instances (their WebSockets close cleanly), then lets upgraded
    /// connections go.
    pub(crate) async fn drain_and_stop(&self) {
        self.host.drain_and_stop(EXIT_DRAIN).await;
    }
}
