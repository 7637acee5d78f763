//! Profile access: `GET /data/core/ups/access/entities` — the merged profile of one identity.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde_json::{Value, json};

use dossier_engine::identity::Identity;
use dossier_engine::profiles::lookup_profile;
use dossier_model::ids::MergePolicyId;
use dossier_model::merge_policy::MergePolicy;

use crate::auth::Caller;
use crate::error::{ApiError, Service};
use crate::extract::QueryParams;
use crate::state::AppState;

const PROFILE_SCHEMA: &str = "_xdm.context.profile";

fn bad_request(code: &str, message: String) -> ApiError {
    ApiError::for_service(Service::Ups, StatusCode::BAD_REQUEST, code, message)
}

async fn policy_for(state: &AppState, caller: &Caller, requested: Option<&String>) -> Result<MergePolicy, ApiError> {
    match requested {
        Some(id) => state.meta.merge_policy(&caller.tenant, &MergePolicyId::from_string(id.clone()), None).await?.ok_or_else(|| {
            bad_request(
                "UPAPI-ENTITIES-MERGEPOLICY-400",
                format!("Field 'mergePolicyId' has an invalid value '{id}': no merge policy with this id in this sandbox"),
            )
        }),
        None => state.meta.default_merge_policy(&caller.tenant, PROFILE_SCHEMA).await?.ok_or_else(|| {
            bad_request("UPAPI-ENTITIES-MERGEPOLICY-400", "The sandbox has no default merge policy; pass mergePolicyId".into())
        }),
    }
}

fn render_millis(millis: i64) -> String {
    jiff::Timestamp::from_millisecond(millis)
        .map(|t| t.to_string())
        .unwrap_or_default()
}

/// The merged profile of the identity `entityId` in namespace `entityIdNS`.
#[utoipa::path(
    get, path = "/access/entities", tag = "profile access",
    params(
        ("schema.name" = String, Query, description = "_xdm.context.profile"),
        ("entityId" = String, Query, description = "The identity's value"),
        ("entityIdNS" = String, Query, description = "The identity's namespace code"),
        ("mergePolicyId" = Option<String>, Query, description = "Default: the sandbox's default merge policy"),
    ),
    responses((status = 200, description = "{\"<entityId>\": {entityId, mergePolicy, sources, entity, lastModifiedAt}}"),
               (status = 400, description = "A parameter is missing or invalid"), (status = 404, description = "No profile for this identity"))
)]
pub async fn get_entity(
    State(state): State<AppState>,
    caller: Caller,
    QueryParams(params): QueryParams,
) -> Result<Json<Value>, ApiError> {
    match params.get("schema.name").map(String::as_str) {
        Some(PROFILE_SCHEMA) => {}
        other => {
            return Err(bad_request(
                "UPAPI-ENTITIES-SCHEMA-400",
                format!(
                    "Field 'schema.name' has an invalid value '{}': profile access serves {PROFILE_SCHEMA} (events are exported with additionalFields.eventList)",
                    other.unwrap_or("")
                ),
            ));
        }
    }
    let entity_id = params.get("entityId").filter(|v| !v.is_empty()).ok_or_else(|| {
        bad_request(
            "UPAPI-ENTITIES-ID-400",
            "Field 'entityId' is required: the identity's value, e.g. entityId=ana@example.com".into(),
        )
    })?;
    let namespace = params.get("entityIdNS").filter(|v| !v.is_empty()).ok_or_else(|| {
        bad_request(
            "UPAPI-ENTITIES-NS-400",
            "Field 'entityIdNS' is required: the identity's namespace code, e.g. entityIdNS=Email".into(),
        )
    })?;
    let policy = policy_for(&state, &caller, params.get("mergePolicyId")).await?;
    let identity = Identity::new(namespace.as_str(), entity_id.as_str());
    let profile = lookup_profile(&state.meta, &state.lake, &caller.tenant, &policy, &identity)
        .await
        .map_err(|e| {
            ApiError::for_service(
                Service::Ups,
                StatusCode::INTERNAL_SERVER_ERROR,
                "UPAPI-ENTITIES-500",
                format!("The profile could not be built: {e}"),
            )
        })?;
    let Some(profile) = profile else {
        return Err(ApiError::for_service(
            Service::Ups,
            StatusCode::NOT_FOUND,
            "UPAPI-ENTITIES-404",
            format!(
                "No profile for identity '{entity_id}' in namespace '{namespace}' under merge policy '{}'.",
                policy.id
            ),
        ));
    };
    let body = json!({
        profile.entity_id.clone(): {
            "entityId": profile.entity_id,
            "mergePolicy": {"id": policy.id, "version": policy.version},
            "sources": profile.sources,
            "entity": profile.entity,
            "lastModifiedAt": render_millis(profile.last_modified),
        }
    });
    Ok(Json(body))
}
