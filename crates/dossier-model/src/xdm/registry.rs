//! The Schema Registry's tenant container: ids of user schemas, schemas as stored, identity
//! descriptors, and the paging of schema listings.

use std::collections::HashMap;

use rand::RngCore;
use serde_json::Value;

use super::{IdentityField, SchemaClass, XdmSchema, XdmType};
use crate::ValidationError;
use crate::ids::ClientId;
use crate::listing::{PageSize, parse_limit, parse_offset};
use crate::tenancy::{OrgId, SandboxName};
use crate::time::EpochMillis;

/// The tenant name of an organization, used in its schemas' ids as AEP uses `{TENANT_ID}`:
/// the org id's part before `@`, lower-cased, letters and digits only
/// (`1BD6382559DF0C130A49422D@AdobeOrg` → `1bd6382559df0c130a49422d`).
pub fn tenant_name(org: &OrgId) -> String {
    let local = org.as_str().split('@').next().unwrap_or_default();
    let name: String = local
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .map(|c| c.to_ascii_lowercase())
        .collect();
    if name.is_empty() { "tenant".to_owned() } else { name }
}

fn random_hex(bytes: usize) -> String {
    let mut random = vec![0u8; bytes];
    rand::rng().fill_bytes(&mut random);
    hex::encode(random)
}

/// AEP's `meta:altId` of an `$id`: the part after `https://ns.adobe.com/`, `/` → `.`, with a
/// leading `_` (`https://ns.adobe.com/xdm/context/profile` → `_xdm.context.profile`).
fn alt_id_of(id: &str) -> String {
    format!("_{}", id.trim_start_matches("https://ns.adobe.com/").replace('/', "."))
}

/// A schema's `$id` and `meta:altId`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SchemaIds {
    pub id: String,
    pub alt_id: String,
}

impl SchemaIds {
    /// New ids for a user schema: `https://ns.adobe.com/<tenant>/schemas/<32 hex>` and
    /// `_<tenant>.schemas.<32 hex>`.
    pub fn generate(org: &OrgId) -> Self {
        let id = format!("https://ns.adobe.com/{}/schemas/{}", tenant_name(org), random_hex(16));
        Self {
            alt_id: alt_id_of(&id),
            id,
        }
    }

    /// The ids of a built-in class.
    pub fn class(class: SchemaClass) -> Self {
        let id = class.class_id().to_owned();
        Self {
            alt_id: alt_id_of(&id),
            id,
        }
    }

    /// The ids of a class's union schema, e.g. `https://ns.adobe.com/xdm/context/profile__union`
    /// and `_xdm.context.profile__union`.
    pub fn union(class: SchemaClass) -> Self {
        let id = format!("{}__union", class.class_id());
        Self {
            alt_id: alt_id_of(&id),
            id,
        }
    }

    /// Whether `key` is this schema's `$id` or `meta:altId`.
    pub fn matches(&self, key: &str) -> bool {
        self.id == key || self.alt_id == key
    }
}

/// A user schema as the registry keeps it.
#[derive(Debug, Clone, PartialEq)]
pub struct RegisteredSchema {
    pub schema: XdmSchema,
    pub org: OrgId,
    pub sandbox: SandboxName,
    pub created: EpochMillis,
    pub updated: EpochMillis,
    pub created_client: ClientId,
}

/// An identity descriptor: declares that a field of a schema holds identities of a namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdentityDescriptor {
    /// `@id`: 40 lower-case hex characters, as AEP's descriptor ids.
    pub id: String,
    pub org: OrgId,
    pub sandbox: SandboxName,
    /// `$id` of the schema the field belongs to.
    pub schema_id: String,
    /// Dot path of the field (`personalEmail.address`).
    pub path: String,
    pub namespace: String,
    pub primary: bool,
    pub created: EpochMillis,
    pub created_client: ClientId,
}

impl IdentityDescriptor {
    pub fn generate_id() -> String {
        random_hex(20)
    }

    /// `xdm:sourceProperty`, e.g. `/personalEmail/address`.
    pub fn source_property(&self) -> String {
        format!("/{}", self.path.replace('.', "/"))
    }

    pub fn identity_field(&self) -> IdentityField {
        IdentityField {
            path: self.path.clone(),
            namespace: self.namespace.clone(),
            primary: self.primary,
        }
    }
}

/// Why an identity descriptor cannot be added: bad input (400) or a clash with the schema's
/// existing identities (409).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DescriptorRejection {
    Invalid(ValidationError),
    Conflict(String),
}

/// A validated `POST /tenant/descriptors` body for an identity descriptor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewIdentityDescriptor {
    /// `xdm:sourceSchema` as sent: a schema's `$id` or `meta:altId`.
    pub source_schema: String,
    /// Dot path of `xdm:sourceProperty`.
    pub path: String,
    pub namespace: String,
    pub primary: bool,
}

const DESCRIPTOR_EXAMPLE: &str = "e.g. {\"@type\": \"xdm:descriptorIdentity\", \"xdm:sourceSchema\": \"<schema $id>\", \"xdm:sourceVersion\": 1, \"xdm:sourceProperty\": \"/personalEmail/address\", \"xdm:namespace\": \"Email\", \"xdm:isPrimary\": true}";

fn present<'a>(body: &'a Value, name: &str) -> Option<&'a Value> {
    body.get(name).filter(|v| !v.is_null())
}

fn required_text(body: &Value, name: &str, fix: &str) -> Result<String, ValidationError> {
    match present(body, name) {
        Some(Value::String(text)) if !text.trim().is_empty() => Ok(text.trim().to_owned()),
        Some(other) => Err(ValidationError::invalid(name, other, fix)),
        None => Err(ValidationError::missing(name, fix)),
    }
}

fn check_descriptor_type(body: &Value) -> Result<(), ValidationError> {
    let fix = "only identity descriptors are supported: use \"xdm:descriptorIdentity\"";
    match present(body, "@type") {
        Some(Value::String(t)) if t == "xdm:descriptorIdentity" => Ok(()),
        Some(other) => Err(ValidationError::invalid("@type", other, fix)),
        None => Err(ValidationError::missing("@type", fix)),
    }
}

/// Schemas here have one version, so a descriptor can only be about version 1.
fn check_source_version(body: &Value) -> Result<(), ValidationError> {
    match present(body, "xdm:sourceVersion") {
        None => Ok(()),
        Some(v) if v.as_u64() == Some(1) || v.as_str() == Some("1") => Ok(()),
        Some(other) => Err(ValidationError::invalid(
            "xdm:sourceVersion",
            other,
            "schemas have a single version: use 1",
        )),
    }
}

/// `/personalEmail/address` → `personalEmail.address`.
fn source_property_path(body: &Value) -> Result<String, ValidationError> {
    let fix = "a JSON pointer to a string field of the schema, e.g. \"/personalEmail/address\"";
    let pointer = required_text(body, "xdm:sourceProperty", fix)?;
    let segments: Vec<&str> = pointer.strip_prefix('/').unwrap_or_default().split('/').collect();
    if !pointer.starts_with('/') || segments.iter().any(|s| s.is_empty() || s.contains('.')) {
        return Err(ValidationError::invalid("xdm:sourceProperty", pointer, fix));
    }
    Ok(segments.join("."))
}

fn optional_primary(body: &Value) -> Result<bool, ValidationError> {
    match present(body, "xdm:isPrimary") {
        None => Ok(false),
        Some(Value::Bool(primary)) => Ok(*primary),
        Some(other) => Err(ValidationError::invalid(
            "xdm:isPrimary",
            other,
            "expected true or false",
        )),
    }
}

impl NewIdentityDescriptor {
    pub fn from_json(body: &Value) -> Result<Self, ValidationError> {
        if !body.is_object() {
            return Err(ValidationError::invalid(
                "body",
                body,
                format!("send one descriptor as a JSON object, {DESCRIPTOR_EXAMPLE}"),
            ));
        }
        check_descriptor_type(body)?;
        let source_schema = required_text(
            body,
            "xdm:sourceSchema",
            "the $id or meta:altId of a schema of this sandbox",
        )?;
        check_source_version(body)?;
        let path = source_property_path(body)?;
        let namespace = required_text(
            body,
            "xdm:namespace",
            "an identity namespace code such as Email, Phone or ECID",
        )?;
        Ok(Self {
            source_schema,
            path,
            namespace,
            primary: optional_primary(body)?,
        })
    }

    /// Checks the descriptor against its schema: the field exists, is a string outside any
    /// array, is not already an identity, and the schema gets at most one primary identity.
    pub fn check_against(&self, schema: &XdmSchema) -> Result<(), DescriptorRejection> {
        if let Some(problem) = identity_field_problem(schema, &self.path) {
            return Err(DescriptorRejection::Invalid(ValidationError::invalid(
                "xdm:sourceProperty",
                format!("/{}", self.path.replace('.', "/")),
                problem,
            )));
        }
        if let Some(existing) = schema.identities.iter().find(|i| i.path == self.path) {
            return Err(DescriptorRejection::Conflict(format!(
                "The field '{}' of schema '{}' is already an identity field (namespace '{}').",
                self.path, schema.id, existing.namespace
            )));
        }
        match schema.primary_identity() {
            Some(primary) if self.primary => Err(DescriptorRejection::Conflict(format!(
                "Schema '{}' already has a primary identity, '{}'; a schema has at most one. Send \"xdm:isPrimary\": false.",
                schema.id, primary.path
            ))),
            _ => Ok(()),
        }
    }
}

/// Why `dot_path` cannot be an identity field of `schema`, if it cannot.
fn identity_field_problem(schema: &XdmSchema, dot_path: &str) -> Option<String> {
    let segments: Vec<&str> = dot_path.split('.').collect();
    let mut fields = &schema.fields;
    for (index, name) in segments.iter().enumerate() {
        let walked = segments[..=index].join(".");
        let Some(field) = fields.iter().find(|field| field.name == *name) else {
            return Some(format!("schema '{}' has no field '{walked}'", schema.id));
        };
        let last = index + 1 == segments.len();
        match (&field.ty, last) {
            (XdmType::String, true) => return None,
            (ty, true) => return Some(format!("an identity field holds strings, but '{walked}' is {ty}")),
            (XdmType::Object(inner), false) => fields = inner,
            (XdmType::Array(_), false) => {
                return Some(format!(
                    "'{walked}' is an array, and identity fields cannot be inside arrays; send lists of identities in identityMap"
                ));
            }
            (ty, false) => return Some(format!("'{walked}' is {ty}, not an object")),
        }
    }
    Some("the path is empty".to_owned())
}

/// The largest page of a schema listing (AEP's registry limit).
pub const MAX_SCHEMA_LIST_LIMIT: u32 = 300;

/// The order of a schema listing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SchemaOrder {
    /// Oldest first; the default.
    Created,
    /// `orderby=title`.
    TitleAsc,
    /// `orderby=-title`.
    TitleDesc,
}

impl SchemaOrder {
    /// The `orderby` value that asks for this order, if any.
    pub fn as_param(self) -> Option<&'static str> {
        match self {
            Self::Created => None,
            Self::TitleAsc => Some("title"),
            Self::TitleDesc => Some("-title"),
        }
    }
}

/// One page of `GET /tenant/schemas`: `limit` (1 to 300, default 300), `start` (how many to skip,
/// as `_page.next` gives it) and `orderby` (`title` or `-title`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SchemaListQuery {
    pub limit: u32,
    pub start: u64,
    pub order: SchemaOrder,
}

impl SchemaListQuery {
    pub fn from_params(params: &HashMap<String, String>) -> Result<Self, ValidationError> {
        let size = PageSize {
            default: MAX_SCHEMA_LIST_LIMIT,
            max: MAX_SCHEMA_LIST_LIMIT,
        };
        let limit = parse_limit("limit", params.get("limit").map(String::as_str), size)?;
        let start = parse_offset("start", params.get("start").map(String::as_str), "schemas")?;
        let order = match params.get("orderby").map(|raw| raw.trim()) {
            None | Some("") => SchemaOrder::Created,
            Some("title") => SchemaOrder::TitleAsc,
            Some("-title") => SchemaOrder::TitleDesc,
            Some(other) => {
                return Err(ValidationError::invalid(
                    "orderby",
                    other,
                    "use title or -title (default: creation order)",
                ));
            }
        };
        Ok(Self { limit, start, order })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn org() -> OrgId {
        OrgId::parse("1BD6382559DF0C130A49422D@AdobeOrg").unwrap()
    }

    #[test]
    fn user_schema_ids_carry_the_tenant_name() {
        assert_eq!(tenant_name(&org()), "1bd6382559df0c130a49422d");
        assert_eq!(tenant_name(&OrgId::parse("@AdobeOrg").unwrap()), "tenant");
        let ids = SchemaIds::generate(&org());
        let key = ids
            .id
            .strip_prefix("https://ns.adobe.com/1bd6382559df0c130a49422d/schemas/")
            .unwrap();
        assert_eq!(key.len(), 32);
        assert_eq!(ids.alt_id, format!("_1bd6382559df0c130a49422d.schemas.{key}"));
        assert!(ids.matches(&ids.id) && ids.matches(&ids.alt_id) && !ids.matches(key));
        assert_ne!(SchemaIds::generate(&org()), ids);
        assert_eq!(
            SchemaIds::union(SchemaClass::ExperienceEvent),
            SchemaIds {
                id: "https://ns.adobe.com/xdm/context/experienceevent__union".into(),
                alt_id: "_xdm.context.experienceevent__union".into(),
            }
        );
    }

    fn descriptor_body() -> Value {
        json!({
            "@type": "xdm:descriptorIdentity",
            "xdm:sourceSchema": "https://ns.adobe.com/acme/schemas/1",
            "xdm:sourceVersion": 1,
            "xdm:sourceProperty": "/personalEmail/address",
            "xdm:namespace": "Email",
            "xdm:property": "xdm:code",
            "xdm:isPrimary": true
        })
    }

    #[test]
    fn identity_descriptors_are_read_as_aep_sends_them() {
        let descriptor = NewIdentityDescriptor::from_json(&descriptor_body()).unwrap();
        assert_eq!(
            descriptor,
            NewIdentityDescriptor {
                source_schema: "https://ns.adobe.com/acme/schemas/1".into(),
                path: "personalEmail.address".into(),
                namespace: "Email".into(),
                primary: true,
            }
        );
        for (key, value, field) in [
            ("@type", json!("xdm:descriptorOneToOne"), "@type"),
            ("xdm:sourceSchema", json!(""), "xdm:sourceSchema"),
            ("xdm:sourceVersion", json!(2), "xdm:sourceVersion"),
            (
                "xdm:sourceProperty",
                json!("personalEmail.address"),
                "xdm:sourceProperty",
            ),
            (
                "xdm:sourceProperty",
                json!("/personalEmail//address"),
                "xdm:sourceProperty",
            ),
            ("xdm:namespace", json!(7), "xdm:namespace"),
            ("xdm:isPrimary", json!("yes"), "xdm:isPrimary"),
        ] {
            let mut body = descriptor_body();
            body[key] = value;
            assert_eq!(
                NewIdentityDescriptor::from_json(&body).unwrap_err().field,
                field,
                "{key}"
            );
        }
        let mut body = descriptor_body();
        body.as_object_mut().unwrap().remove("xdm:namespace");
        assert_eq!(
            NewIdentityDescriptor::from_json(&body).unwrap_err().field,
            "xdm:namespace"
        );
    }

    fn descriptor(path: &str, primary: bool) -> NewIdentityDescriptor {
        NewIdentityDescriptor {
            source_schema: "s".into(),
            path: path.into(),
            namespace: "Email".into(),
            primary,
        }
    }

    #[test]
    fn identity_fields_are_strings_outside_arrays_and_one_is_primary() {
        let mut profile = XdmSchema::builtin_profile();
        assert_eq!(
            descriptor("personalEmail.address", true).check_against(&profile),
            Ok(())
        );
        for bad in [
            "personalEmail.nope",
            "personalEmail",
            "personalEmail.primary",
            "identities.id",
            "_id.x",
        ] {
            match descriptor(bad, false).check_against(&profile) {
                Err(DescriptorRejection::Invalid(error)) => assert_eq!(error.field, "xdm:sourceProperty"),
                other => panic!("{bad}: {other:?}"),
            }
        }
        profile.identities.push(IdentityField {
            path: "personalEmail.address".into(),
            namespace: "Email".into(),
            primary: true,
        });
        assert!(matches!(
            descriptor("personalEmail.address", false).check_against(&profile),
            Err(DescriptorRejection::Conflict(_))
        ));
        assert!(matches!(
            descriptor("mobilePhone.number", true).check_against(&profile),
            Err(DescriptorRejection::Conflict(_))
        ));
        assert_eq!(descriptor("mobilePhone.number", false).check_against(&profile), Ok(()));
    }

    #[test]
    fn listing_parameters() {
        let params = |pairs: &[(&str, &str)]| -> HashMap<String, String> {
            pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
        };
        let query = SchemaListQuery::from_params(&params(&[])).unwrap();
        assert_eq!((query.limit, query.start, query.order), (300, 0, SchemaOrder::Created));
        let query =
            SchemaListQuery::from_params(&params(&[("limit", "5000"), ("start", "3"), ("orderby", "-title")])).unwrap();
        assert_eq!(
            (query.limit, query.start, query.order),
            (300, 3, SchemaOrder::TitleDesc)
        );
        for (key, value) in [("limit", "0"), ("start", "x"), ("orderby", "size")] {
            assert_eq!(
                SchemaListQuery::from_params(&params(&[(key, value)]))
                    .unwrap_err()
                    .field,
                key
            );
        }
    }
}
