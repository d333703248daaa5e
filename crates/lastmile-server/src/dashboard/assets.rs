//! The dashboard's static files, compiled into the binary: the vendored
//! htmx (its sha256 beside it in `assets/`) and the style sheet.

use axum::http::header;
use axum::response::{IntoResponse, Response};

/// htmx 2, vendored from the `htmx.org` npm package (`dist/htmx.min.js`).
pub(crate) const HTMX: &[u8] = include_bytes!("../../assets/htmx.min.js");

/// `sha256sum` of [`HTMX`], as written when it was vendored.
pub(crate) const HTMX_SHA256: &str = include_str!("../../assets/htmx.min.js.sha256");

/// The style sheet.
const STYLE: &[u8] = include_bytes!("../../assets/style.css");

/// Both change only with the binary, and their URLs carry a version, so
/// browsers keep them for a year.
const LONG_CACHE: &str = "public, max-age=31536000, immutable";

/// `GET /assets/htmx.min.js`.
pub(crate) async fn htmx() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::CACHE_CONTROL, LONG_CACHE),
        ],
        HTMX,
    )
        .into_response()
}

/// `GET /assets/style.css`.
pub(crate) async fn style() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, LONG_CACHE),
        ],
        STYLE,
    )
        .into_response()
}
