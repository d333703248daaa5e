//! The web dashboard of `lastmile server`: server-rendered pages (askama)
//! for the apps overview, each app (environments, traffic, approvals,
//! runs, deployments, releases with one-click rollback, DORA), a run with
//! its logs and a deployment with its phases. Reading works with
//! JavaScript off; the vendored htmx only refreshes live parts in place and
//! asks before a rollback.
//!
//! It is not a second API: it calls the same `Server` methods as
//! `/api/v1`, with the same tokens and roles (the token is kept in an
//! HttpOnly, SameSite=Strict cookie after `/login`), and records nothing
//! itself: approvals and rollbacks record their own events. `crate::web`
//! serves it beside the API.

mod assets;
mod page;
mod session;
mod timeline;
mod view;

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use lastmile_store::{DeploymentStatus, Store};
use serde::Deserialize;

use crate::error::ApiError;
use crate::request::RollbackRequest;
use crate::server::Server;
use page::{
    AppPage, DeploymentBody, DeploymentPage, OverviewPage, RollbackPage, RunBody, RunPage, error,
    fragment, html,
};
use session::Session;
use view::Versions;

/// How far back the traffic figures look.
const STATS_WINDOW: Duration = Duration::from_secs(60);

/// Events of one deployment read for its timeline at most (a canary
/// decides about once a second: hours of it).
const MAX_TIMELINE_EVENTS: usize = 20_000;

/// The dashboard's routes: pages, login, actions and its static files.
pub(crate) fn routes(server: Arc<Server>) -> axum::Router {
    axum::Router::new()
        .route("/", get(overview))
        .route("/login", get(session::login_form).post(session::login))
        .route("/logout", post(session::logout))
        .route("/apps/{app}", get(app_page))
        .route("/apps/{app}/runs/{run}", get(run_page))
        .route("/apps/{app}/deployments/{id}", get(deployment_page))
        .route("/apps/{app}/environments/{env}/approve", post(approve))
        .route(
            "/apps/{app}/environments/{env}/rollback",
            get(rollback_confirm).post(rollback),
        )
        .route("/assets/htmx.min.js", get(assets::htmx))
        .route("/assets/style.css", get(assets::style))
        .with_state(server)
}

type Shared = State<Arc<Server>>;

/// `?fragment=…`: only the live part of a page, for htmx.
#[derive(Debug, Deserialize)]
struct FragmentQuery {
    #[serde(default)]
    fragment: Option<String>,
}

/// An API error as a page with the same status.
fn failed(session: &Session, title: &str, failure: ApiError, back: &str) -> Response {
    let message = failure.message().to_owned();
    let status = failure.into_response().status();
    error(status, &session.who(), title, &message, back)
}

fn internal(
    session: &Session,
    what: &str,
    failure: impl std::fmt::Display,
    back: &str,
) -> Response {
    error(
        StatusCode::INTERNAL_SERVER_ERROR,
        &session.who(),
        "Something failed",
        &format!("cannot read {what}: {failure}"),
        back,
    )
}

/// `GET /`.
async fn overview(State(server): Shared, session: Session) -> Response {
    let overview = server.overview().await;
    let apps = overview.apps.iter().map(view::app_card).collect();
    html(
        StatusCode::OK,
        &OverviewPage {
            who: session.who(),
            can_deploy: session.can_deploy(),
            apps,
        },
    )
}

/// `GET /apps/{app}`.
async fn app_page(State(server): Shared, session: Session, Path(app): Path<String>) -> Response {
    let entry = match server.app(&app) {
        Ok(entry) => entry.clone(),
        Err(failure) => return failed(&session, "No such app", failure, "/"),
    };
    let store = server.app_store(&app).ok();
    let Some(store) = store else {
        return internal(&session, "the app's store", "it is not open", "/");
    };
    let (status, dora, note) = match server.controller(&app) {
        Ok(controller) => (
            controller.status(STATS_WINDOW).await.ok(),
            controller.dora(30).ok(),
            None,
        ),
        Err(failure) => (None, None, Some(failure.message().to_owned())),
    };
    let environments = status.as_ref().map(view::environments).unwrap_or_default();
    let releases = match store.list_releases(50) {
        Ok(releases) => releases,
        Err(failure) => return internal(&session, "releases", failure, "/"),
    };
    let versions = Versions::from_records(&releases);
    let runs = match store.list_runs(20) {
        Ok(runs) => runs.iter().map(view::run).collect(),
        Err(failure) => return internal(&session, "runs", failure, "/"),
    };
    let deployments = match store.list_deployments(20) {
        Ok(deployments) => deployments
            .iter()
            .map(|deployment| view::deployment(deployment, &versions))
            .collect(),
        Err(failure) => return internal(&session, "deployments", failure, "/"),
    };
    let (last_commit, commit_error) = match server.latest_commit(&app).await {
        Ok(commit) => (commit.as_ref().map(view::commit), None),
        Err(failure) => (None, Some(failure.message().to_owned())),
    };
    html(
        StatusCode::OK,
        &AppPage {
            who: session.who(),
            can_deploy: session.can_deploy(),
            repo: entry.config().shown_repo(),
            note: note.or(commit_error),
            last_commit,
            stats: status.as_ref().map(view::stats).unwrap_or_default(),
            certificates: status.as_ref().map(view::certificates).unwrap_or_default(),
            pending: server
                .pending(&app)
                .map(|pending| view::pending(&pending))
                .unwrap_or_default(),
            runs,
            deployments,
            releases: view::releases(&releases, &environments),
            dora: dora.as_ref().map(view::dora).unwrap_or_default(),
            environments,
            name: app,
        },
    )
}

/// `GET /apps/{app}/runs/{run}` (`?fragment=logs`: only the live part).
async fn run_page(
    State(server): Shared,
    session: Session,
    Path((app, id)): Path<(String, i64)>,
    Query(query): Query<FragmentQuery>,
) -> Response {
    let store = match server.app_store(&app) {
        Ok(store) => store,
        Err(failure) => return failed(&session, "No such app", failure, "/"),
    };
    let back = format!("/apps/{app}");
    let run = match store.get_run(id) {
        Ok(Some(run)) => run,
        Ok(None) => {
            return error(
                StatusCode::NOT_FOUND,
                &session.who(),
                "No such run",
                &format!("app `{app}` has no run #{id}; the app page lists its runs"),
                &back,
            );
        }
        Err(failure) => return internal(&session, "the run", failure, &back),
    };
    let steps = store.list_steps(id).unwrap_or_default();
    let logs = store.read_logs(id, None).unwrap_or_default();
    let live = run.finished_at.is_none();
    let body = RunBody {
        app: app.clone(),
        run: view::run(&run),
        live,
        steps: view::steps(&steps, &logs),
    };
    if query.fragment.is_some() {
        return html(StatusCode::OK, &body);
    }
    html(
        StatusCode::OK,
        &RunPage {
            who: session.who(),
            app,
            id,
            live,
            body: fragment(&body),
        },
    )
}

/// `GET /apps/{app}/deployments/{id}` (`?fragment=live`: only the live part).
async fn deployment_page(
    State(server): Shared,
    session: Session,
    Path((app, id)): Path<(String, i64)>,
    Query(query): Query<FragmentQuery>,
) -> Response {
    let store = match server.app_store(&app) {
        Ok(store) => store,
        Err(failure) => return failed(&session, "No such app", failure, "/"),
    };
    let back = format!("/apps/{app}");
    let record = match store.get_deployment(id) {
        Ok(record) => record,
        Err(failure) => return internal(&session, "deployments", failure, &back),
    };
    let Some(record) = record else {
        return error(
            StatusCode::NOT_FOUND,
            &session.who(),
            "No such deployment",
            &format!("app `{app}` has no deployment #{id}; the app page lists its deployments"),
            &back,
        );
    };
    let versions = Versions::from_records(&store.list_releases(usize::MAX).unwrap_or_default());
    let status = match server.controller(&app) {
        Ok(controller) => controller.status(STATS_WINDOW).await.ok(),
        Err(_) => None,
    };
    let split = status
        .as_ref()
        .map(view::environments)
        .unwrap_or_default()
        .into_iter()
        .find(|env| env.name == record.environment)
        .map(|env| env.split)
        .unwrap_or_default();
    let live = record.status == DeploymentStatus::Running;
    let ticks = timeline::ticks(
        &store
            .list_events_about(
                &format!("deployment/{id}"),
                Some("canary.decision"),
                0,
                MAX_TIMELINE_EVENTS,
            )
            .unwrap_or_default(),
    );
    let body = DeploymentBody {
        app: app.clone(),
        deployment: view::deployment(&record, &versions),
        live,
        phases: view::phases(&store.deployment_steps(id).unwrap_or_default(), &versions),
        split,
        stats: status.as_ref().map(view::stats).unwrap_or_default(),
        timeline: timeline::svg(&ticks, record.reason.as_deref()),
        ticks: ticks.len(),
        max_points: timeline::MAX_POINTS,
    };
    if query.fragment.is_some() {
        return html(StatusCode::OK, &body);
    }
    html(
        StatusCode::OK,
        &DeploymentPage {
            who: session.who(),
            app,
            id,
            live,
            body: fragment(&body),
        },
    )
}

/// After an action: back to the app page. htmx follows redirects inside
/// its request, so it is told to navigate instead.
fn back_to_app(headers: &HeaderMap, app: &str) -> Response {
    let target = format!("/apps/{app}");
    if headers.contains_key("hx-request")
        && let Ok(value) = HeaderValue::from_str(&target)
    {
        return (StatusCode::OK, [("hx-redirect", value)]).into_response();
    }
    Redirect::to(&target).into_response()
}

/// An error answer that htmx also shows (it ignores 4xx/5xx bodies unless
/// told where to put them).
fn action_failed(headers: &HeaderMap, page: Response) -> Response {
    if !headers.contains_key("hx-request") {
        return page;
    }
    let (mut parts, body) = page.into_parts();
    parts.status = StatusCode::OK;
    parts
        .headers
        .insert("hx-retarget", HeaderValue::from_static("body"));
    parts
        .headers
        .insert("hx-reswap", HeaderValue::from_static("innerHTML"));
    Response::from_parts(parts, body)
}

/// `POST /apps/{app}/environments/{env}/approve`.
async fn approve(
    State(server): Shared,
    session: Session,
    headers: HeaderMap,
    Path((app, environment)): Path<(String, String)>,
) -> Response {
    let back = format!("/apps/{app}");
    if let Some(refused) = session.refuse_unless_deployer("approving a deployment", &back) {
        return action_failed(&headers, refused);
    }
    match server.approve(&app, &environment, &session.0.name) {
        Ok(_) => back_to_app(&headers, &app),
        Err(failure) => action_failed(&headers, failed(&session, "Cannot approve", failure, &back)),
    }
}

/// `GET /apps/{app}/environments/{env}/rollback`: asks first (for
/// browsers without JavaScript; with it, htmx asks).
async fn rollback_confirm(
    State(server): Shared,
    session: Session,
    Path((app, environment)): Path<(String, String)>,
) -> Response {
    let back = format!("/apps/{app}");
    if let Some(refused) = session.refuse_unless_deployer("rolling back", &back) {
        return refused;
    }
    let controller = match server.controller(&app) {
        Ok(controller) => controller,
        Err(failure) => return failed(&session, "Cannot roll back", failure, &back),
    };
    let status = match controller.status(STATS_WINDOW).await {
        Ok(status) => status,
        Err(failure) => return failed(&session, "Cannot roll back", failure, &back),
    };
    let Some(env) = view::environments(&status)
        .into_iter()
        .find(|env| env.name == environment)
    else {
        return error(
            StatusCode::NOT_FOUND,
            &session.who(),
            "No such environment",
            &format!("app `{app}` has no environment `{environment}`"),
            &back,
        );
    };
    let Some(previous) = env.previous else {
        return error(
            StatusCode::CONFLICT,
            &session.who(),
            "Nothing to roll back to",
            &format!(
                "{environment} has served only {}; deploy another release first",
                env.live
            ),
            &back,
        );
    };
    html(
        StatusCode::OK,
        &RollbackPage {
            who: session.who(),
            app,
            environment,
            live: env.live,
            previous,
        },
    )
}

/// `POST /apps/{app}/environments/{env}/rollback`: back to the previous
/// release.
async fn rollback(
    State(server): Shared,
    session: Session,
    headers: HeaderMap,
    Path((app, environment)): Path<(String, String)>,
) -> Response {
    let back = format!("/apps/{app}");
    if let Some(refused) = session.refuse_unless_deployer("rolling back", &back) {
        return action_failed(&headers, refused);
    }
    let controller = match server.controller(&app) {
        Ok(controller) => controller,
        Err(failure) => {
            return action_failed(
                &headers,
                failed(&session, "Cannot roll back", failure, &back),
            );
        }
    };
    // Who asked, in the app's event log (the engine's own events say what
    // happened, not who wanted it).
    if let Ok(store) = server.app_store(&app) {
        let _ = lastmile_store::Store::record_event(
            store.as_ref(),
            "rollback.requested",
            &format!("environment/{environment}"),
            &session.0.name,
            &serde_json::json!({ "via": "dashboard" }),
        );
    }
    let request = RollbackRequest {
        environment,
        to: None,
    };
    let outcome = crate::control::detached(async move { controller.rollback(request).await }).await;
    match outcome {
        Ok(_) => back_to_app(&headers, &app),
        Err(failure) => action_failed(
            &headers,
            failed(&session, "Cannot roll back", failure, &back),
        ),
    }
}
