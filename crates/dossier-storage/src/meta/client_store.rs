//! API clients (client id + hashed secret, org, allowed sandboxes) and the token signing key.

use async_trait::async_trait;
use rand::RngCore;
use sha2::{Digest, Sha256};

use dossier_model::ids::ClientId;
use dossier_model::tenancy::{OrgId, SandboxName};
use dossier_model::time::EpochMillis;

use crate::StorageError;

/// An API client as stored (never with its secret).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiClient {
    pub client_id: ClientId,
    pub org: OrgId,
    /// The sandboxes the client may use; `None` means every sandbox of its org.
    pub sandboxes: Option<Vec<SandboxName>>,
    pub created: EpochMillis,
    pub revoked: Option<EpochMillis>,
}

impl ApiClient {
    pub fn may_use(&self, sandbox: &SandboxName) -> bool {
        self.sandboxes.as_ref().is_none_or(|allowed| allowed.contains(sandbox))
    }
}

/// A client just created, with the secret shown to the operator once.
#[derive(Debug, Clone)]
pub struct IssuedClient {
    pub client: ApiClient,
    pub secret: String,
}

/// The stored form of a client secret, the same in every backend. Secrets are 256 random bits,
/// so a single SHA-256 is enough to make the stored form useless to a thief; a slow password
/// hash would only slow down every token request.
pub(crate) fn secret_digest(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

/// `bytes` random bytes as hex: the secret part of a new client secret.
pub(crate) fn random_hex(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    rand::rng().fill_bytes(&mut buf);
    hex::encode(buf)
}

/// API clients and the token signing key.
#[async_trait]
pub trait ClientStore: Send + Sync {
    /// Creates an API client for `org`, limited to `sandboxes` (which must exist) or, with `None`,
    /// allowed in every sandbox of the org.
    async fn create_client(
        &self,
        org: &OrgId,
        sandboxes: Option<Vec<SandboxName>>,
    ) -> Result<IssuedClient, StorageError>;

    /// A client by id, revoked or not.
    async fn get_client(&self, client_id: &str) -> Result<Option<ApiClient>, StorageError>;

    /// The client whose id and secret these are, if it exists and is not revoked.
    async fn authenticate_client(&self, client_id: &str, secret: &str) -> Result<Option<ApiClient>, StorageError>;

    /// The clients of one organization, or of all when `org` is `None`, oldest first.
    async fn list_clients(&self, org: Option<&OrgId>) -> Result<Vec<ApiClient>, StorageError>;

    /// Revokes a client: its secret stops working and every token issued to it stops working.
    async fn revoke_client(&self, client_id: &str) -> Result<ApiClient, StorageError>;

    /// The secret that signs access tokens, created on first use. It lives in the metadata store
    /// so that tokens survive restarts and every server sharing the store accepts them.
    async fn token_signing_key(&self) -> Result<Vec<u8>, StorageError>;
}
