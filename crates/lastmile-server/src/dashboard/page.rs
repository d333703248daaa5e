//! The dashboard's pages: askama templates (in `templates/`) and the data
//! each one prints. Askama escapes every value; only bodies rendered here
//! are inserted as they are.

use askama::Template;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::view::{
    AppCard, CertificateView, CommitView, DeploymentView, DoraView, EnvView, PendingView,
    PhaseView, ReleaseView, RunView, SplitView, StatView, StepView,
};

/// The query of `htmx.min.js`, so a new vendored copy is fetched at once
/// despite the long cache lifetime.
pub(crate) fn htmx_version() -> &'static str {
    super::assets::HTMX_SHA256.get(..12).unwrap_or("0")
}

/// `GET /login`.
#[derive(Debug, Template)]
#[template(path = "login.html")]
pub(crate) struct LoginPage {
    pub(crate) who: String,
    pub(crate) error: Option<String>,
}

/// `GET /`.
#[derive(Debug, Template)]
#[template(path = "overview.html")]
pub(crate) struct OverviewPage {
    pub(crate) who: String,
    pub(crate) can_deploy: bool,
    pub(crate) apps: Vec<AppCard>,
}

/// `GET /apps/{app}`.
#[derive(Debug, Template)]
#[template(path = "app.html")]
pub(crate) struct AppPage {
    pub(crate) who: String,
    pub(crate) can_deploy: bool,
    pub(crate) name: String,
    pub(crate) repo: String,
    pub(crate) note: Option<String>,
    pub(crate) last_commit: Option<CommitView>,
    pub(crate) environments: Vec<EnvView>,
    pub(crate) stats: Vec<StatView>,
    pub(crate) certificates: Vec<CertificateView>,
    pub(crate) pending: Vec<PendingView>,
    pub(crate) runs: Vec<RunView>,
    pub(crate) deployments: Vec<DeploymentView>,
    pub(crate) releases: Vec<ReleaseView>,
    pub(crate) dora: Vec<DoraView>,
}

/// The live part of a run's page (also `?fragment=logs`).
#[derive(Debug, Template)]
#[template(path = "run_body.html")]
pub(crate) struct RunBody {
    pub(crate) app: String,
    pub(crate) run: RunView,
    pub(crate) live: bool,
    pub(crate) steps: Vec<StepView>,
}

/// `GET /apps/{app}/runs/{run}`.
#[derive(Debug, Template)]
#[template(path = "run.html")]
pub(crate) struct RunPage {
    pub(crate) who: String,
    pub(crate) app: String,
    pub(crate) id: i64,
    pub(crate) live: bool,
    pub(crate) body: String,
}

/// The live part of a deployment's page (also `?fragment=live`).
#[derive(Debug, Template)]
#[template(path = "deployment_body.html")]
pub(crate) struct DeploymentBody {
    pub(crate) app: String,
    pub(crate) deployment: DeploymentView,
    pub(crate) live: bool,
    pub(crate) phases: Vec<PhaseView>,
    pub(crate) split: Vec<SplitView>,
    pub(crate) stats: Vec<StatView>,
    /// The analysis timeline, an SVG built by `timeline::svg` (which
    /// escapes every text in it), when the deployment was analysed.
    pub(crate) timeline: Option<String>,
    /// How many analysis ticks it has.
    pub(crate) ticks: usize,
    /// At most this many points are drawn.
    pub(crate) max_points: usize,
}

/// `GET /apps/{app}/deployments/{id}`.
#[derive(Debug, Template)]
#[template(path = "deployment.html")]
pub(crate) struct DeploymentPage {
    pub(crate) who: String,
    pub(crate) app: String,
    pub(crate) id: i64,
    pub(crate) live: bool,
    pub(crate) body: String,
}

/// `GET /apps/{app}/environments/{env}/rollback`: the confirmation for
/// browsers without JavaScript.
#[derive(Debug, Template)]
#[template(path = "rollback.html")]
pub(crate) struct RollbackPage {
    pub(crate) who: String,
    pub(crate) app: String,
    pub(crate) environment: String,
    pub(crate) live: String,
    pub(crate) previous: String,
}

/// Any error, as a page.
#[derive(Debug, Template)]
#[template(path = "error.html")]
pub(crate) struct ErrorPage {
    pub(crate) who: String,
    pub(crate) title: String,
    pub(crate) message: String,
    pub(crate) back: String,
}

/// Renders a template as an HTML answer with `status`.
pub(crate) fn html(status: StatusCode, page: &impl Template) -> Response {
    match page.render() {
        Ok(body) => (
            status,
            [
                (header::CONTENT_TYPE, "text/html; charset=utf-8"),
                (header::CACHE_CONTROL, "no-store"),
            ],
            body,
        )
            .into_response(),
        Err(error) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("the dashboard could not render this page ({error}); report it with the URL"),
        )
            .into_response(),
    }
}

/// Renders a part of a page to insert into another.
pub(crate) fn fragment(part: &impl Template) -> String {
    part.render()
        .unwrap_or_else(|error| format!("<p class=\"error\">cannot render this part: {error}</p>"))
}

/// An error page.
pub(crate) fn error(
    status: StatusCode,
    who: &str,
    title: &str,
    message: &str,
    back: &str,
) -> Response {
    html(
        status,
        &ErrorPage {
            who: who.to_owned(),
            title: title.to_owned(),
            message: message.to_owned(),
            back: back.to_owned(),
        },
    )
}
