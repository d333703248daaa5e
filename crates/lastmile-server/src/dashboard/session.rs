//! Who looks at the dashboard: the API token, kept in an HttpOnly cookie
//! after `/login`, checked on every request like the API checks it.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Form;
use axum::extract::{ConnectInfo, FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use lastmile_store::Role;
use serde::Deserialize;

use super::page::{LoginPage, error, html};
use crate::api::{Principal, TOKEN_COOKIE, principal_of};
use crate::server::Server;

/// A signed-in caller; pages without one send the browser to `/login`.
#[derive(Debug, Clone)]
pub(crate) struct Session(pub(crate) Principal);

impl Session {
    /// Whether the caller may approve and roll back.
    pub(crate) fn can_deploy(&self) -> bool {
        self.0.role >= Role::Deployer
    }

    /// The name shown in the header.
    pub(crate) fn who(&self) -> String {
        format!("{} ({})", self.0.name, self.0.role)
    }

    /// A 403 page, unless the caller is a deployer or more.
    pub(crate) fn refuse_unless_deployer(&self, what: &str, back: &str) -> Option<Response> {
        if self.can_deploy() {
            return None;
        }
        Some(error(
            StatusCode::FORBIDDEN,
            &self.who(),
            "Not allowed",
            &format!(
                "token `{}` has role {}, and {what} needs deployer; sign in with a deployer or admin token",
                self.0.name, self.0.role
            ),
            back,
        ))
    }
}

impl FromRequestParts<Arc<Server>> for Session {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut Parts,
        server: &Arc<Server>,
    ) -> Result<Self, Self::Rejection> {
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|ConnectInfo(addr)| *addr);
        principal_of(server, &parts.headers, peer)
            .map(Session)
            .ok_or_else(|| Redirect::to("/login").into_response())
    }
}

/// `GET /login`.
pub(crate) async fn login_form() -> Response {
    html(
        StatusCode::OK,
        &LoginPage {
            who: String::new(),
            error: None,
        },
    )
}

/// The login form's body.
#[derive(Debug, Deserialize)]
pub(crate) struct LoginForm {
    token: String,
}

/// `POST /login`: checks the token as the API would, then keeps it in the
/// cookie.
pub(crate) async fn login(
    State(server): State<Arc<Server>>,
    Form(form): Form<LoginForm>,
) -> Response {
    let token = form.token.trim();
    let refused = |message: &str| {
        html(
            StatusCode::UNAUTHORIZED,
            &LoginPage {
                who: String::new(),
                error: Some(message.to_owned()),
            },
        )
    };
    // Only characters a cookie value may hold; real tokens are plain ASCII.
    if token.is_empty()
        || !token
            .bytes()
            .all(|b| b.is_ascii_graphic() && b != b';' && b != b',' && b != b'"' && b != b'\\')
    {
        return refused("that is not a lastmile token; paste the whole `lmt_…` value");
    }
    let mut headers = HeaderMap::new();
    let Ok(bearer) = HeaderValue::from_str(&format!("Bearer {token}")) else {
        return refused("that is not a lastmile token; paste the whole `lmt_…` value");
    };
    headers.insert(header::AUTHORIZATION, bearer);
    // No peer: loopback trust must not turn a wrong token into a session.
    if principal_of(&server, &headers, None).is_none() {
        return refused("no such token (or it was revoked); ask an admin for one");
    }
    let cookie = format!("{TOKEN_COOKIE}={token}; HttpOnly; SameSite=Strict; Path=/");
    match HeaderValue::from_str(&cookie) {
        Ok(cookie) => ([(header::SET_COOKIE, cookie)], Redirect::to("/")).into_response(),
        Err(_) => refused("that is not a lastmile token; paste the whole `lmt_…` value"),
    }
}

/// `POST /logout`: forgets the cookie.
pub(crate) async fn logout() -> Response {
    let cookie = format!("{TOKEN_COOKIE}=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0");
    match HeaderValue::from_str(&cookie) {
        Ok(cookie) => ([(header::SET_COOKIE, cookie)], Redirect::to("/login")).into_response(),
        Err(_) => Redirect::to("/login").into_response(),
    }
}
