//! What the routes of the sandbox's UPS configuration resources (merge policies, segment
//! definitions) answer alike: a missing one, alone or in a bulk-get, and a storage failure.
//! Their listings, bodies and write errors differ and stay with each resource.

use std::fmt::Display;

use axum::http::StatusCode;
use axum::response::Response;
use serde_json::Value;

use dossier_model::tenancy::Tenant;
use dossier_storage::StorageError;

use crate::error::{ApiError, Service};
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
