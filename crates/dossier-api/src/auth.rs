//! Tokens and the caller they establish.
//!
//! The server is its own token issuer (IMS client-credentials compatible). Tokens are HS256 JWTs
//! signed with a key kept in the metadata store, so they survive restarts; each request checks
//! that the token's client still exists and is not revoked. Operators may also configure static
//! tokens (for CI). The gateway ([`crate::gateway`]) turns a token into a [`Caller`].

use std::collections::HashMap;
use std::time::Duration;

use axum::extract::FromRequestParts;
use axum::http::StatusCode;
use axum::http::request::Parts;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

use dossier_model::ids::ClientId;
use dossier_model::tenancy::{OrgId, SandboxName, Tenant};
use dossier_storage::MetaStore;
use dossier_storage::meta::ApiClient;

use crate::error::ApiError;

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
pub(crate) struct Principal {
    pub(crate) client_id: String,
    pub(crate) org: OrgId,
    pub(crate) sandboxes: Option<Vec<SandboxName>>,
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
    pub(crate) async fn principal(&self, token: &str, meta: &MetaStore) -> Result<Option<Principal>, ApiError> {
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
