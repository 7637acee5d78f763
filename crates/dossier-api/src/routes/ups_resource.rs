//! What the routes of the sandbox's UPS configuration resources (merge policies, segment
//! definitions) answer alike: a missing one, alone or in a bulk-get, a storage failure, and the
//! whole of DELETE and bulk-get ([`delete`], [`bulk_get`] over [`UpsCollection`]). Their
//! listings, bodies, reads and write errors differ and stay with each resource.

use std::collections::HashMap;
use std::fmt::Display;
use std::hash::Hash;

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::Value;

use dossier_model::ValidationError;
use dossier_model::tenancy::Tenant;
use dossier_storage::{MetaStore, StorageError};

use crate::auth::Caller;
use crate::error::{ApiError, Service};
use crate::state::AppState;
use crate::views::bulk_get_response;

/// How a resource is named in answers.
pub(super) struct UpsResource {
    /// As a sentence starts with it: `Merge policy` (lowercased within a sentence).
    title: &'static str,
    /// Where its listing is, to point a caller who asked for a missing one at it.
    list_path: &'static str,
    /// The code of a 404 for it.
    not_found_code: &'static str,
}

impl UpsResource {
    pub const fn new(title: &'static str, list_path: &'static str, not_found_code: &'static str) -> Self {
        Self {
            title,
            list_path,
            not_found_code,
        }
    }

    fn missing(&self, id: &dyn Display, tenant: &Tenant) -> String {
        format!(
            "{} not found: no {} '{id}' in sandbox '{}'.",
            self.title,
            self.title.to_lowercase(),
            tenant.sandbox
        )
    }

    /// The 404 of a request for one that is not in the caller's sandbox.
    pub fn not_found(&self, id: &dyn Display, tenant: &Tenant) -> ApiError {
        ApiError::ups(
            StatusCode::NOT_FOUND,
            self.not_found_code,
            format!("{} List them with GET {}.", self.missing(id, tenant), self.list_path),
        )
    }

    /// The 207 of a bulk-get: `object_of` shows each one found; the others are 404 entries.
    pub fn bulk_get<Id: Display>(
        &self,
        ids: &[Id],
        tenant: &Tenant,
        object_of: impl Fn(&Id) -> Option<Value>,
    ) -> Response {
        bulk_get_response(ids, object_of, |id| (self.not_found_code, self.missing(id, tenant)))
    }
}

/// A storage failure of a UPS endpoint (500, or 503 when a dependency is unreachable).
pub(super) fn storage_failure(error: StorageError) -> ApiError {
    ApiError::storage(Service::Ups, error)
}

/// A UPS resource as the handlers it shares with the others see it: how its ids are read, how
/// it is fetched, deleted and shown. Each resource's route file implements it on a marker type
/// and its documented handlers call [`delete`] and [`bulk_get`].
pub(super) trait UpsCollection {
    type Id: Display + Eq + Hash + Send + Sync;
    type Item: Send + Sync;
    type WriteError: Send;
    /// How it is named in answers.
    const RESOURCE: UpsResource;
    /// The code of a 400 for a bulk-get body that is not `{ids: [...]}`.
    const INVALID_BULK_GET: &'static str;

    fn parse_id(raw: String) -> Self::Id;
    fn bulk_get_ids(body: &Value) -> Result<Vec<Self::Id>, ValidationError>;
    fn id_of(item: &Self::Item) -> &Self::Id;
    /// The answer to a refused write (a delete refused with 409, a missing one...).
    fn write_error(error: Self::WriteError, tenant: &Tenant) -> ApiError;
    fn by_ids(
        meta: &MetaStore,
        tenant: &Tenant,
        ids: &[Self::Id],
    ) -> impl Future<Output = Result<Vec<Self::Item>, StorageError>> + Send;
    fn delete(
        meta: &MetaStore,
        tenant: &Tenant,
        id: &Self::Id,
    ) -> impl Future<Output = Result<(), Self::WriteError>> + Send;
    /// The items as answers show them, in their order.
    fn show(
        state: &AppState,
        tenant: &Tenant,
        items: &[Self::Item],
    ) -> impl Future<Output = Result<Vec<Value>, ApiError>> + Send;
}

/// DELETE of one, with all it holds: 200 with an empty body, or the resource's refusal.
pub(super) async fn delete<R: UpsCollection>(
    state: &AppState,
    caller: &Caller,
    id: String,
) -> Result<Response, ApiError> {
    let id = R::parse_id(id);
    R::delete(&state.meta, &caller.tenant, &id)
        .await
        .map_err(|e| R::write_error(e, &caller.tenant))?;
    tracing::info!(%id, "{} deleted", R::RESOURCE.title.to_lowercase());
    Ok(StatusCode::OK.into_response())
}

/// Several by id: 207 with `results` keyed by id, and `errors` keyed by the ids that are not in
/// the caller's sandbox.
pub(super) async fn bulk_get<R: UpsCollection>(
    state: &AppState,
    caller: &Caller,
    body: &Value,
) -> Result<Response, ApiError> {
    let ids = R::bulk_get_ids(body).map_err(|e| ApiError::ups_invalid(R::INVALID_BULK_GET, e))?;
    let found = R::by_ids(&state.meta, &caller.tenant, &ids)
        .await
        .map_err(storage_failure)?;
    let shown = R::show(state, &caller.tenant, &found).await?;
    let by_id: HashMap<&R::Id, Value> = found.iter().map(R::id_of).zip(shown).collect();
    Ok(R::RESOURCE.bulk_get(&ids, &caller.tenant, |id| by_id.get(id).cloned()))
}
