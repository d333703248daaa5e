//! The web dashboard (placeholder until its pages land).

use std::sync::Arc;

use crate::server::Server;

/// The dashboard's routes.
pub fn routes(server: Arc<Server>) -> axum::Router {
    axum::Router::new().with_state(server)
}
