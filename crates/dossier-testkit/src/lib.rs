//! Real servers for tests, started by the tests themselves on loopback: a private PostgreSQL 15
//! cluster ([`postgres`]), SeaweedFS as the S3 server ([`s3`]) and headless Chromium behind
//! chromedriver for the console ([`chromium`]). Never a mock where the real server runs here.
//!
//! A server that is not installed is a skip with the command that installs it, except under
//! `CI=true`, where it is a failure: CI's `.ci/run` installs both, so a missing one there means the
//! run would silently test less.
//!
//! `dossier bench run --stores postgres-s3` starts its servers with the same code
//! ([`postgres::PgCluster::start_in`], [`s3::SeaweedFs::start_in`]); there a missing server is an
//! error saying how to install it, never a skip.

pub mod ballista;
pub mod chromium;
pub mod net;
pub mod postgres;
pub mod s3;

/// Whether tests run under CI (`CI=true`), where a missing server fails instead of skipping.
pub fn under_ci() -> bool {
    std::env::var("CI").is_ok_and(|value| value == "true" || value == "1")
}

/// What a test does when `server` cannot start: under CI it panics with `why` and `install`;
/// elsewhere it prints both and returns, so the caller skips.
pub fn missing(server: &str, why: &str, install: &str) {
    let message = format!("{server} is not available ({why}); install it with: {install}");
    if under_ci() {
        panic!("{message} (CI=true: a test whose server is missing fails)");
    }
    eprintln!("skipped: {message}");
}
