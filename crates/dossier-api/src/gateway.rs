//! The gateway checks every request under `/data` passes before any handler, in api.md's order:
//! token, API key, organization, sandbox. What passes becomes the request's [`Caller`].

use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use dossier_model::ids::ClientId;
use dossier_model::tenancy::{SandboxName, Tenant};

use crate::auth::Caller;
use crate::error::{ApiError, Service};
use crate::state::AppState;

fn gateway(status: StatusCode, code: &'static str, message: &'static str) -> ApiError {
    ApiError::Gateway { status, code, message }
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| !v.is_empty())
}

fn bearer_token(headers: &HeaderMap) -> Result<&str, ApiError> {
    let Some(value) = header(headers, "authorization") else {
        return Err(gateway(StatusCode::UNAUTHORIZED, "403010", "Oauth token is missing."));
    };
    match value.split_once(' ') {
        Some((scheme, token)) if scheme.eq_ignore_ascii_case("bearer") && !token.trim().is_empty() => Ok(token.trim()),
        Some((scheme, _)) if scheme.eq_ignore_ascii_case("bearer") => {
            Err(gateway(StatusCode::UNAUTHORIZED, "403010", "Oauth token is missing."))
        }
        _ if value.eq_ignore_ascii_case("bearer") => {
            Err(gateway(StatusCode::UNAUTHORIZED, "403010", "Oauth token is missing."))
        }
        _ => Err(gateway(StatusCode::UNAUTHORIZED, "401013", "Oauth token is not valid")),
    }
}

/// Runs the gateway checks in order and returns the caller they establish.
async fn check(state: &AppState, headers: &HeaderMap, service: Service) -> Result<Caller, ApiError> {
    let token = bearer_token(headers)?;
    let principal = state
        .tokens
        .principal(token, &state.meta)
        .await?
        .ok_or_else(|| gateway(StatusCode::UNAUTHORIZED, "401013", "Oauth token is not valid"))?;

    let api_key =
        header(headers, "x-api-key").ok_or_else(|| gateway(StatusCode::FORBIDDEN, "403000", "Api Key is required"))?;
    if api_key != principal.client_id {
        return Err(gateway(StatusCode::FORBIDDEN, "403003", "Api Key is invalid"));
    }

    let org = header(headers, "x-gw-ims-org-id")
        .ok_or_else(|| gateway(StatusCode::BAD_REQUEST, "400003", "Missing header"))?;
    if org != principal.org.as_str() {
        return Err(gateway(StatusCode::FORBIDDEN, "403025", "Profile is not valid"));
    }

    let sandbox_header = header(headers, "x-sandbox-name").unwrap_or(dossier_model::tenancy::DEFAULT_SANDBOX);
    let unknown_sandbox = || {
        ApiError::for_service(
            service,
            StatusCode::NOT_FOUND,
            "DOSSIER-SANDBOX-404",
            format!(
                "Sandbox '{sandbox_header}' was not found in organization '{org}'. Check the x-sandbox-name header; \
                 an operator lists sandboxes with `dossier sandboxes list --org {org}`."
            ),
        )
    };
    let sandbox = SandboxName::parse(sandbox_header).map_err(|_| unknown_sandbox())?;
    // A sandbox the client may not use answers exactly as one that does not exist: a caller
    // learns nothing about sandboxes outside its reach.
    if principal
        .sandboxes
        .as_ref()
        .is_some_and(|allowed| !allowed.contains(&sandbox))
    {
        return Err(unknown_sandbox());
    }
    let tenant = Tenant {
        org: principal.org.clone(),
        sandbox,
    };
    if !state.meta.sandbox_exists(&tenant).await? {
        return Err(unknown_sandbox());
    }
    Ok(Caller {
        client_id: ClientId::from_string(principal.client_id),
        tenant,
    })
}

/// Middleware: requests under `/data` must pass the gateway checks; others pass through.
pub async fn require_caller(State(state): State<AppState>, mut request: Request, next: Next) -> Response {
    if !request.uri().path().starts_with("/data/") {
        return next.run(request).await;
    }
    let service = Service::for_path(request.uri().path());
    match check(&state, request.headers(), service).await {
        Ok(caller) => {
            request.extensions_mut().insert(caller);
            next.run(request).await
        }
        Err(error) => error.into_response(),
    }
}
