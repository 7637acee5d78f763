//! Tenancy and tokens: the gateway checks every request passes before any handler.
//!
//! The server is its own token issuer (IMS client-credentials compatible). Tokens are HS256 JWTs
//! signed with a key kept in the metadata store, so they survive restarts; each request checks
//! that the token's client still exists and is not revoked. Operators may also configure static
//! tokens (for CI). Checks run in api.md's order: token, API key, organization, sandbox.

use std::collections::HashMap;
use std::time::Duration;

use axum::extract::{FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

use dossier_model::ids::ClientId;
use dossier_model::tenancy::{OrgId, SandboxName, Tenant};
use dossier_storage::MetaStore;
use dossier_storage::meta::ApiClient;

use crate::error::{ApiError, Service};
use crate::state::AppState;

/// A token an operator configured by hand, e.g. for CI. It acts as the given client id.
#[derive(Debug, Clone, Deserialize)]
pub struct StaticToken {
    pub token: String,
    pub client_id: String,
    pub org: String,
    /// Sandboxes the token may use; absent means every sandbox of the org.
    pub sandboxes: Option<Vec<String>>,
}

/// Who is calling, established by the gateway checks: handlers take it as an extractor.
#[derive(Debug, Clone)]
pub struct Caller {
    pub client_id: ClientId,
    pub tenant: Tenant,
}

impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        parts.extensions.get::<Caller>().cloned().ok_or(ApiError::Gateway {
            status: StatusCode::UNAUTHORIZED,
            code: "403010",
            message: "Oauth token is missing.",
        })
    }
}

#[derive(Debug, Serialize, Deserialize)]
struct Claims {
    /// The client id the token was issued to.
    sub: String,
    org: String,
    iat: i64,
    exp: i64,
    jti: String,
    iss: String,
}

const ISSUER: &str = "dossier";

/// The principal a token stands for, before the per-request header checks.
#[derive(Debug, Clone)]
struct Principal {
    client_id: String,
    org: OrgId,
    sandboxes: Option<Vec<SandboxName>>,
}

/// Issues and verifies access tokens.
pub struct TokenService {
    encoding: EncodingKey,
    decoding: DecodingKey,
    ttl: Duration,
    static_tokens: HashMap<String, Principal>,
}

/// A token as the token endpoint answers it.
pub struct IssuedToken {
    pub access_token: String,
    pub expires_in_secs: u64,
}

impl TokenService {
    /// Builds the service from the signing key and the operator's static tokens; refuses static
    /// tokens that are too short to be secret or that name an invalid org or sandbox.
    pub fn new(signing_key: &[u8], ttl: Duration, static_tokens: &[StaticToken]) -> anyhow::Result<Self> {
        let mut by_token = HashMap::new();
        for configured in static_tokens {
            anyhow::ensure!(
                configured.token.len() >= 24,
                "static token for client '{}' is {} characters long; use at least 24 random characters",
                configured.client_id,
                configured.token.len()
            );
            let org = OrgId::parse(&configured.org)?;
            let sandboxes = configured
                .sandboxes
                .as_ref()
                .map(|names| {
                    names
                        .iter()
                        .map(|n| SandboxName::parse(n))
                        .collect::<Result<Vec<_>, _>>()
                })
                .transpose()?;
            by_token.insert(
                configured.token.clone(),
                Principal {
                    client_id: configured.client_id.clone(),
                    org,
                    sandboxes,
                },
            );
        }
        Ok(Self {
            encoding: EncodingKey::from_secret(signing_key)?,
            decoding: DecodingKey::from_secret(signing_key)?,
            ttl,
            static_tokens: by_token,
        })
    }

    pub fn issue(&self, client: &ApiClient) -> IssuedToken {
        let now = jiff::Timestamp::now().as_second();
        let claims = Claims {
            sub: client.client_id.to_string(),
            org: client.org.to_string(),
            iat: now,
            exp: now + self.ttl.as_secs() as i64,
            jti: uuid::Uuid::new_v4().simple().to_string(),
            iss: ISSUER.to_owned(),
        };
        let access_token = jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .expect("HS256 signing with an in-memory key cannot fail");
        IssuedToken {
            access_token,
            expires_in_secs: self.ttl.as_secs().saturating_sub(1),
        }
    }

    /// The principal behind a token: a static token, or a valid unexpired JWT whose client still
    /// exists and is not revoked.
    async fn principal(&self, token: &str, meta: &MetaStore) -> Result<Option<Principal>, ApiError> {
        if let Some(principal) = self.static_tokens.get(token) {
            return Ok(Some(principal.clone()));
        }
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_issuer(&[ISSUER]);
        validation.leeway = 0;
        let Ok(data) = jsonwebtoken::decode::<Claims>(token, &self.decoding, &validation) else {
            return Ok(None);
        };
        let client = meta.get_client(&data.claims.sub).await?;
        Ok(client
            .filter(|c| c.revoked.is_none() && c.org.as_str() == data.claims.org)
            .map(|c| Principal {
                client_id: c.client_id.to_string(),
                org: c.org,
                sandboxes: c.sandboxes,
            }))
    }
}

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
