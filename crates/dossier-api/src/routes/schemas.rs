//! Schema Registry (subset): `/data/foundation/schemaregistry` — the tenant's schemas, the
//! sandbox's union schemas and identity descriptors.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header::ACCEPT};
use serde_json::{Value, json};

use dossier_model::ValidationError;
use dossier_model::listing::next_offset;
use dossier_model::tenancy::Tenant;
use dossier_model::time::now_millis;
use dossier_model::xdm::{
    DescriptorRejection, IdentityDescriptor, NewIdentityDescriptor, RegisteredSchema, SchemaClass, SchemaIds,
    SchemaListQuery, XdmSchema, tenant_name,
};

use crate::auth::Caller;
use crate::error::ApiError;
use crate::extract::{JsonBody, QueryParams};
use crate::state::AppState;

const PREFIX: &str = "/data/foundation/schemaregistry";

fn schema_not_found(key: &str) -> ApiError {
    ApiError::platform(
        StatusCode::NOT_FOUND,
        "XDM-SCHEMA-404",
        format!(
            "Schema not found: no schema with $id or meta:altId '{key}' in this sandbox. \
             URL-encode a $id in the path, or use the meta:altId."
        ),
    )
}

fn descriptor_not_found(id: &str) -> ApiError {
    ApiError::platform(
        StatusCode::NOT_FOUND,
        "XDM-DESCRIPTOR-404",
        format!("Descriptor not found: no descriptor '{id}' in this sandbox."),
    )
}

/// Registry fields AEP adds to a schema of the tenant container.
fn with_registry_metadata(mut body: Value, tenant: &Tenant) -> Value {
    if let Some(object) = body.as_object_mut() {
        object.insert("meta:containerId".to_owned(), json!("tenant"));
        object.insert(
            "meta:tenantNamespace".to_owned(),
            json!(format!("_{}", tenant_name(&tenant.org))),
        );
        object.insert("meta:sandboxId".to_owned(), json!(tenant.sandbox));
        object.insert("imsOrg".to_owned(), json!(tenant.org));
    }
    body
}

/// A tenant schema in full, as `POST` and `GET /tenant/schemas/{id}` answer it.
fn registered_schema_json(registered: &RegisteredSchema) -> Value {
    let tenant = Tenant {
        org: registered.org.clone(),
        sandbox: registered.sandbox.clone(),
    };
    let mut body = with_registry_metadata(registered.schema.to_json(), &tenant);
    body["meta:registryMetadata"] = json!({
        "repo:createdDate": registered.created,
        "repo:lastModifiedDate": registered.updated,
        "xdm:createdClientId": registered.created_client,
        "xdm:lastModifiedClientId": registered.created_client,
    });
    body
}

/// A schema as a listing shows it by default (AEP's `application/vnd.adobe.xed-id+json`).
fn schema_summary_json(schema: &XdmSchema) -> Value {
    json!({"$id": schema.id, "meta:altId": schema.alt_id, "version": schema.version, "title": schema.title})
}

/// Whether the caller asked for whole schemas in a listing (`application/vnd.adobe.xed+json` or
/// `xed-full+json`); any other `Accept` gets summaries, as AEP's default `xed-id+json`.
fn wants_full_schemas(headers: &HeaderMap) -> bool {
    headers
        .get_all(ACCEPT)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .any(|accept| accept.contains("vnd.adobe.xed+json") || accept.contains("vnd.adobe.xed-full+json"))
}

fn descriptor_json(descriptor: &IdentityDescriptor) -> Value {
    json!({
        "@id": descriptor.id,
        "@type": "xdm:descriptorIdentity",
        "xdm:sourceSchema": descriptor.schema_id,
        "xdm:sourceVersion": 1,
        "xdm:sourceProperty": descriptor.source_property(),
        "xdm:namespace": descriptor.namespace,
        "xdm:property": "xdm:code",
        "xdm:isPrimary": descriptor.primary,
        "meta:containerId": "tenant",
        "imsOrg": descriptor.org,
        "version": "1",
        "meta:registryMetadata": {
            "repo:createdDate": descriptor.created,
            "xdm:createdClientId": descriptor.created_client,
        },
    })
}

/// Creates a schema in the tenant container.
#[utoipa::path(
    post, path = "/tenant/schemas", tag = "schemaregistry",
    request_body(content = Object, description = "A JSON Schema: title, meta:class (profile or experienceevent class URI), properties; or allOf [{$ref: class}, {$ref: standard field group}]"),
    responses((status = 201, description = "The stored schema with $id, meta:altId, meta:class, version"), (status = 400, description = "A field of the schema is missing or invalid"))
)]
pub async fn create_schema(
    State(state): State<AppState>,
    caller: Caller,
    JsonBody(body): JsonBody,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let schema = XdmSchema::from_json(&body, SchemaIds::generate(&caller.tenant.org))
        .map_err(|e| ApiError::platform_invalid("XDM-SCHEMA-400", e))?;
    let now = now_millis();
    let registered = RegisteredSchema {
        schema,
        org: caller.tenant.org.clone(),
        sandbox: caller.tenant.sandbox.clone(),
        created: now,
        updated: now,
        created_client: caller.client_id,
    };
    state.meta.insert_schema(&registered).await?;
    tracing::info!(schema_id = %registered.schema.id, "schema created");
    Ok((StatusCode::CREATED, Json(registered_schema_json(&registered))))
}

/// Lists the tenant's schemas.
#[utoipa::path(
    get, path = "/tenant/schemas", tag = "schemaregistry",
    params(
        ("limit" = Option<u32>, Query, description = "1 to 300, default 300"),
        ("start" = Option<u64>, Query, description = "Where the page starts, as _page.next gives it"),
        ("orderby" = Option<String>, Query, description = "title or -title; default creation order"),
    ),
    responses((status = 200, description = "{results, _page, _links}; whole schemas with Accept application/vnd.adobe.xed+json"), (status = 400, description = "A query parameter is invalid"))
)]
pub async fn list_schemas(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    QueryParams(params): QueryParams,
) -> Result<Json<Value>, ApiError> {
    let query = SchemaListQuery::from_params(&params).map_err(|e| ApiError::platform_invalid("XDM-QUERY-400", e))?;
    // One more than the page tells whether a next page exists, so `next` never leads to an empty page.
    let probe = SchemaListQuery {
        limit: query.limit + 1,
        ..query.clone()
    };
    let mut schemas = state.meta.list_schemas(&caller.tenant, &probe).await?;
    let more = schemas.len() > query.limit as usize;
    schemas.truncate(query.limit as usize);
    let full = wants_full_schemas(&headers);
    let results: Vec<Value> = schemas
        .iter()
        .map(|s| {
            if full {
                registered_schema_json(s)
            } else {
                schema_summary_json(&s.schema)
            }
        })
        .collect();
    let next = next_offset(query.start, results.len()).filter(|_| more);
    let next_link = next.map(|start| {
        let order = query
            .order
            .as_param()
            .map(|o| format!("&orderby={o}"))
            .unwrap_or_default();
        json!({"href": format!("{PREFIX}/tenant/schemas?limit={}&start={start}{order}", query.limit)})
    });
    Ok(Json(json!({
        "results": results,
        "_page": {"orderby": query.order.as_param(), "next": next.map(|n| n.to_string()), "count": results.len()},
        "_links": {"next": next_link},
    })))
}

/// The class whose union schema `key` names, if it names one.
fn union_class_of(key: &str) -> Option<SchemaClass> {
    SchemaClass::ALL
        .into_iter()
        .find(|class| SchemaIds::union(*class).matches(key))
}

/// One schema by URL-encoded `$id` or `meta:altId`; the union ids give the sandbox's union schema.
#[utoipa::path(
    get, path = "/tenant/schemas/{id}", tag = "schemaregistry",
    params(("id" = String, Path, description = "URL-encoded $id or meta:altId; _xdm.context.profile__union for the profile union")),
    responses((status = 200, description = "The schema, self-contained"), (status = 404, description = "No such schema in this sandbox"))
)]
pub async fn get_schema(
    State(state): State<AppState>,
    caller: Caller,
    Path(key): Path<String>,
) -> Result<Json<Value>, ApiError> {
    if let Some(class) = union_class_of(&key) {
        let union = state.meta.union_schema(&caller.tenant, class).await?;
        return Ok(Json(with_registry_metadata(union.to_json(), &caller.tenant)));
    }
    let registered = state
        .meta
        .get_schema(&caller.tenant, &key)
        .await?
        .ok_or_else(|| schema_not_found(&key))?;
    Ok(Json(registered_schema_json(&registered)))
}

fn descriptor_rejection(rejection: DescriptorRejection) -> ApiError {
    match rejection {
        DescriptorRejection::Invalid(error) => ApiError::platform_invalid("XDM-DESCRIPTOR-400", error),
        DescriptorRejection::Conflict(message) => {
            ApiError::platform(StatusCode::CONFLICT, "XDM-DESCRIPTOR-409", message)
        }
    }
}

/// Declares a schema field as an identity (`xdm:descriptorIdentity`, the only descriptor type supported).
#[utoipa::path(
    post, path = "/tenant/descriptors", tag = "schemaregistry",
    request_body(content = Object, description = "{\"@type\": \"xdm:descriptorIdentity\", \"xdm:sourceSchema\", \"xdm:sourceVersion\": 1, \"xdm:sourceProperty\": \"/personalEmail/address\", \"xdm:namespace\": \"Email\", \"xdm:isPrimary\"}"),
    responses((status = 201, description = "The descriptor with its @id"), (status = 400, description = "Invalid descriptor, unknown schema or field"), (status = 409, description = "The field is already an identity, or the schema already has a primary identity"))
)]
pub async fn create_descriptor(
    State(state): State<AppState>,
    caller: Caller,
    JsonBody(body): JsonBody,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let new =
        NewIdentityDescriptor::from_json(&body).map_err(|e| ApiError::platform_invalid("XDM-DESCRIPTOR-400", e))?;
    let registered = state
        .meta
        .get_schema(&caller.tenant, &new.source_schema)
        .await?
        .ok_or_else(|| {
            ApiError::platform_invalid(
                "XDM-DESCRIPTOR-400",
                ValidationError::invalid(
                    "xdm:sourceSchema",
                    &new.source_schema,
                    "no schema with this $id or meta:altId in this sandbox; create it with POST /data/foundation/schemaregistry/tenant/schemas",
                ),
            )
        })?;
    new.check_against(&registered.schema).map_err(descriptor_rejection)?;
    let descriptor = IdentityDescriptor {
        id: IdentityDescriptor::generate_id(),
        org: caller.tenant.org.clone(),
        sandbox: caller.tenant.sandbox.clone(),
        schema_id: registered.schema.id,
        path: new.path,
        namespace: new.namespace,
        primary: new.primary,
        created: now_millis(),
        created_client: caller.client_id,
    };
    if !state.meta.insert_identity_descriptor(&descriptor).await? {
        // Another request declared this field, or a primary identity, between the check and the write.
        return Err(descriptor_rejection(DescriptorRejection::Conflict(format!(
            "Another identity descriptor for '{}' or another primary identity of schema '{}' was just added; read the schema again.",
            descriptor.source_property(),
            descriptor.schema_id
        ))));
    }
    tracing::info!(descriptor_id = %descriptor.id, schema_id = %descriptor.schema_id, "identity descriptor created");
    Ok((StatusCode::CREATED, Json(descriptor_json(&descriptor))))
}

/// Lists the tenant's descriptors, grouped by type as AEP does: `{"xdm:descriptorIdentity": [...]}`.
#[utoipa::path(
    get, path = "/tenant/descriptors", tag = "schemaregistry",
    responses((status = 200, description = "{\"xdm:descriptorIdentity\": [descriptors]}; with Accept application/vnd.adobe.xdm-link+json, their paths"))
)]
pub async fn list_descriptors(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    let descriptors = state.meta.list_identity_descriptors(&caller.tenant).await?;
    let links_only = headers
        .get_all(ACCEPT)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .any(|accept| accept.contains("xdm-link+json"));
    let listed: Vec<Value> = descriptors
        .iter()
        .map(|d| {
            if links_only {
                json!(format!("/descriptors/{}", d.id))
            } else {
                descriptor_json(d)
            }
        })
        .collect();
    Ok(Json(json!({ "xdm:descriptorIdentity": listed })))
}

/// One descriptor by `@id`.
#[utoipa::path(
    get, path = "/tenant/descriptors/{id}", tag = "schemaregistry",
    params(("id" = String, Path, description = "The descriptor's @id")),
    responses((status = 200, description = "The descriptor"), (status = 404, description = "No such descriptor in this sandbox"))
)]
pub async fn get_descriptor(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let descriptor = state
        .meta
        .get_identity_descriptor(&caller.tenant, &id)
        .await?
        .ok_or_else(|| descriptor_not_found(&id))?;
    Ok(Json(descriptor_json(&descriptor)))
}
