//! `/console`: the web console, three static files compiled into the binary (docs/console.md).
//!
//! The files are public like `/health`: they hold no data. Everything the console shows comes
//! from the API it calls from the browser, through the gateway with the bearer token the user
//! signs in for, exactly as any other client. No CDN and no build step: the JavaScript is plain
//! and written by hand, so `cargo build` is all it takes.

use axum::Router;
use axum::http::header::{CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE, X_CONTENT_TYPE_OPTIONS};
use axum::response::IntoResponse;
use axum::routing::get;

const INDEX_HTML: &str = include_str!("../../console/index.html");
const CONSOLE_JS: &str = include_str!("../../console/console.js");
const CONSOLE_CSS: &str = include_str!("../../console/console.css");

/// Scripts, styles and API calls from this origin only: nothing inline, nothing from elsewhere.
/// `blob:` is for the downloads, which are fetched with the auth headers and handed to the
/// browser as blob URLs (a plain link could not carry the token).
const POLICY: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; \
                      connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'none'";

/// One embedded file with its type. `no-cache` makes the browser revalidate, so a new binary's
/// console is picked up at the next load rather than mixed with the old one's.
fn asset(content_type: &'static str, body: &'static str) -> impl IntoResponse {
    (
        [
            (CONTENT_TYPE, content_type),
            (CACHE_CONTROL, "no-cache"),
            (X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (CONTENT_SECURITY_POLICY, POLICY),
        ],
        body,
    )
}

async fn index() -> impl IntoResponse {
    asset("text/html; charset=utf-8", INDEX_HTML)
}

async fn script() -> impl IntoResponse {
    asset("text/javascript; charset=utf-8", CONSOLE_JS)
}

async fn style() -> impl IntoResponse {
    asset("text/css; charset=utf-8", CONSOLE_CSS)
}

/// The console's routes. Any other path under `/console` falls through to the API's 404.
pub fn routes<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new()
        .route("/console", get(index))
        .route("/console/", get(index))
        .route("/console/console.js", get(script))
        .route("/console/console.css", get(style))
}
