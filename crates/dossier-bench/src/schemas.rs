//! The three schemas of the generated datasets, as `POST /tenant/schemas` bodies, with the
//! identity descriptors each needs.
//!
//! The bodies use AEP's composed form (the class and standard field groups by `$ref`, custom
//! objects in `properties`), so they read like schemas a user would build in AEP. The same bodies
//! are parsed into [`XdmSchema`]s here, so records are validated and Parquet files typed with
//! exactly what the server will store.

use serde_json::{Value, json};

use dossier_model::schema::{EXPERIENCE_EVENT_CLASS_ID, PROFILE_CLASS_ID};
use dossier_model::xdm::{SchemaIds, XdmSchema};

/// One generated dataset: its name in files and in the manifest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DatasetKind {
    Crm,
    Loyalty,
    Events,
}

impl DatasetKind {
    pub const ALL: [DatasetKind; 3] = [Self::Crm, Self::Loyalty, Self::Events];

    /// The folder, schema file stem and manifest key of the dataset.
    pub fn key(self) -> &'static str {
        match self {
            Self::Crm => "crm",
            Self::Loyalty => "loyalty",
            Self::Events => "events",
        }
    }

    /// A name for the dataset a caller creates in the Catalog.
    pub fn dataset_name(self) -> &'static str {
        match self {
            Self::Crm => "Bench CRM Customers",
            Self::Loyalty => "Bench Loyalty Members",
            Self::Events => "Bench Web and Commerce Events",
        }
    }

    /// The schema body for `POST /data/foundation/schemaregistry/tenant/schemas`.
    pub fn schema_body(self) -> Value {
        match self {
            Self::Crm => crm_schema(),
            Self::Loyalty => loyalty_schema(),
            Self::Events => events_schema(),
        }
    }

    /// The identity descriptors of the dataset's schema, for `POST /tenant/descriptors`, with
    /// `xdm:sourceSchema` set to `schema_id` (the `$id` the registry gave the schema).
    pub fn identity_descriptors(self, schema_id: &str) -> Vec<Value> {
        self.identity_fields()
            .iter()
            .map(|(path, namespace, primary)| identity_descriptor(schema_id, path, namespace, *primary))
            .collect()
    }

    /// (JSON pointer, namespace, primary) of each identity field. Records also carry these
    /// identities in `identityMap`; the descriptors make the schema self-describing, as AEP
    /// requires a profile schema's primary identity to be declared, and keep the graph stitched
    /// for a reader that looks only at fields.
    fn identity_fields(self) -> &'static [(&'static str, &'static str, bool)] {
        match self {
            Self::Crm => &[
                ("/crm/crmId", "CRMID", true),
                ("/personalEmail/address", "Email", false),
            ],
            Self::Loyalty => &[
                ("/loyalty/memberId", "LoyaltyID", true),
                ("/personalEmail/address", "Email", false),
            ],
            // Events carry ECID (and sometimes CRMID or LoyaltyID) in identityMap only.
            Self::Events => &[],
        }
    }

    /// The schema as the server will hold it, for validating records and typing Parquet files.
    /// Its ids are placeholders: the registry assigns real ones at registration.
    pub fn xdm_schema(self) -> XdmSchema {
        let id = format!("https://ns.adobe.com/dossierbench/schemas/{}", self.key());
        let ids = SchemaIds {
            alt_id: format!("_dossierbench.schemas.{}", self.key()),
            id,
        };
        XdmSchema::from_json(&self.schema_body(), ids).expect("the generator's schemas are valid XDM")
    }
}

fn reference(id: &str) -> Value {
    json!({"$ref": id})
}

fn field_group(name: &str) -> Value {
    reference(&format!("https://ns.adobe.com/xdm/context/{name}"))
}

fn identity_descriptor(schema_id: &str, path: &str, namespace: &str, primary: bool) -> Value {
    json!({
        "@type": "xdm:descriptorIdentity",
        "xdm:sourceSchema": schema_id,
        "xdm:sourceVersion": 1,
        "xdm:sourceProperty": path,
        "xdm:namespace": namespace,
        "xdm:property": "xdm:code",
        "xdm:isPrimary": primary,
    })
}

fn string() -> Value {
    json!({"type": "string"})
}

fn date_time() -> Value {
    json!({"type": "string", "format": "date-time"})
}

fn object(properties: Value) -> Value {
    json!({"type": "object", "properties": properties})
}

fn crm_schema() -> Value {
    json!({
        "title": "Bench CRM Customers",
        "description": "Customer records exported from the CRM: demographics, contact details, tier, value and consent",
        "type": "object",
        "meta:class": PROFILE_CLASS_ID,
        "allOf": [
            reference(PROFILE_CLASS_ID),
            field_group("identitymap"),
            field_group("profile-segmentation"),
            field_group("profile-identities-deprecated"),
            field_group("profile-person-details"),
            field_group("profile-personal-details"),
        ],
        "properties": {"crm": object(json!({
            "crmId": string(),
            "tier": {"type": "string", "enum": ["bronze", "silver", "gold", "platinum"]},
            "lifetimeValue": {"type": "number"},
            "orderCount": {"type": "integer"},
            "signupDate": date_time(),
            "lastPurchaseDate": date_time(),
            "preferredChannel": string(),
            "preferences": {"type": "array", "items": string()},
            "marketingConsent": object(json!({
                "email": {"type": "boolean"},
                "sms": {"type": "boolean"},
                "phone": {"type": "boolean"},
            })),
            "homeStore": string(),
            "accountStatus": string(),
        }))},
    })
}

fn loyalty_schema() -> Value {
    json!({
        "title": "Bench Loyalty Members",
        "description": "Members of the loyalty program: points, tier and activity",
        "type": "object",
        "meta:class": PROFILE_CLASS_ID,
        "allOf": [
            reference(PROFILE_CLASS_ID),
            field_group("identitymap"),
            field_group("profile-person-details"),
            field_group("profile-personal-details"),
        ],
        "properties": {"loyalty": object(json!({
            "memberId": string(),
            "points": {"type": "integer"},
            "lifetimePoints": {"type": "integer"},
            "tier": string(),
            "enrolled": date_time(),
            "lastActivity": date_time(),
            "status": string(),
            "preferredStore": string(),
        }))},
    })
}

fn events_schema() -> Value {
    json!({
        "title": "Bench Web and Commerce Events",
        "description": "Page views and commerce events from the web shop",
        "type": "object",
        "meta:class": EXPERIENCE_EVENT_CLASS_ID,
        "allOf": [
            reference(EXPERIENCE_EVENT_CLASS_ID),
            field_group("identitymap"),
            field_group("experienceevent-web"),
            field_group("experienceevent-commerce"),
            field_group("experienceevent-environment-details"),
        ],
    })
}

#[cfg(test)]
mod tests {
    use dossier_model::xdm::{NewIdentityDescriptor, SchemaClass, XdmType, union};

    use super::*;

    #[test]
    fn schemas_parse_with_their_classes_and_custom_fields() {
        let crm = DatasetKind::Crm.xdm_schema();
        assert_eq!(crm.class, SchemaClass::Profile);
        assert_eq!(crm.resolve_path("crm.lifetimeValue"), Some(&XdmType::Number));
        assert_eq!(crm.resolve_path("crm.signupDate"), Some(&XdmType::DateTime));
        assert_eq!(crm.resolve_path("identities.id"), Some(&XdmType::String));
        let loyalty = DatasetKind::Loyalty.xdm_schema();
        assert_eq!(loyalty.resolve_path("loyalty.points"), Some(&XdmType::Integer));
        let events = DatasetKind::Events.xdm_schema();
        assert_eq!(events.class, SchemaClass::ExperienceEvent);
        assert_eq!(
            events.resolve_path("environment.browserDetails.version"),
            Some(&XdmType::String)
        );
    }

    #[test]
    fn descriptors_are_accepted_by_their_schemas() {
        for kind in DatasetKind::ALL {
            let schema = kind.xdm_schema();
            for body in kind.identity_descriptors(&schema.id) {
                let descriptor = NewIdentityDescriptor::from_json(&body).unwrap();
                assert_eq!(descriptor.source_schema, schema.id);
                descriptor.check_against(&schema).unwrap();
            }
        }
        let primaries = DatasetKind::Crm.identity_descriptors("x");
        assert_eq!(primaries.iter().filter(|d| d["xdm:isPrimary"] == true).count(), 1);
    }

    #[test]
    fn the_two_profile_schemas_form_a_union_without_conflict() {
        let schemas = [
            XdmSchema::builtin_profile(),
            DatasetKind::Crm.xdm_schema(),
            DatasetKind::Loyalty.xdm_schema(),
        ];
        let merged = union(SchemaClass::Profile, &schemas).unwrap();
        assert!(merged.field("crm").is_some() && merged.field("loyalty").is_some());
    }
}
