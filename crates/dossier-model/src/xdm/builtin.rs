//! The built-in classes and AEP's standard field groups, with AEP's ids, titles and field names.
//!
//! Only the common fields of each field group are here (those profile exports and the tutorials
//! use); a schema can add any other field in its own `properties`.

use super::{SCHEMA_VERSION, SchemaClass, XdmField, XdmSchema, XdmType};

/// A standard field group a schema can include with `allOf: [{"$ref": <id>}]`.
#[derive(Debug, Clone, PartialEq)]
pub struct FieldGroup {
    pub id: &'static str,
    pub title: &'static str,
    /// The classes the group may extend (AEP's `meta:intendedToExtend`).
    pub classes: &'static [SchemaClass],
    pub fields: Vec<XdmField>,
}

const BOTH_CLASSES: &[SchemaClass] = &[SchemaClass::Profile, SchemaClass::ExperienceEvent];
const PROFILE_ONLY: &[SchemaClass] = &[SchemaClass::Profile];
const EVENT_ONLY: &[SchemaClass] = &[SchemaClass::ExperienceEvent];

fn string(name: &str) -> XdmField {
    XdmField::new(name, XdmType::String)
}

fn integer(name: &str) -> XdmField {
    XdmField::new(name, XdmType::Integer)
}

fn number(name: &str) -> XdmField {
    XdmField::new(name, XdmType::Number)
}

fn boolean(name: &str) -> XdmField {
    XdmField::new(name, XdmType::Boolean)
}

fn object(name: &str, fields: Vec<XdmField>) -> XdmField {
    XdmField::new(name, XdmType::Object(fields))
}

/// `{namespace: [{id, primary, authenticatedState}]}`: every identity of a fragment, by namespace.
pub fn identity_map_xdm_type() -> XdmType {
    let identity = XdmType::Object(vec![string("id"), boolean("primary"), string("authenticatedState")]);
    XdmType::Map(Box::new(XdmType::Array(Box::new(identity))))
}

/// `{namespace: {segmentId: {status, lastQualificationTime, version, validUntil}}}`.
pub fn segment_membership_xdm_type() -> XdmType {
    let membership = XdmType::Object(vec![
        string("status"),
        XdmField::new("lastQualificationTime", XdmType::DateTime),
        string("version"),
        XdmField::new("validUntil", XdmType::DateTime),
    ]);
    XdmType::Map(Box::new(XdmType::Map(Box::new(membership))))
}

fn identity_map_field() -> XdmField {
    XdmField::new("identityMap", identity_map_xdm_type()).titled("Identity map")
}

fn segment_membership_field() -> XdmField {
    XdmField::new("segmentMembership", segment_membership_xdm_type()).titled("Segment membership map")
}

/// The fields every schema of `class` has, whatever else it declares.
///
/// Beyond AEP's class fields, `identityMap` is in every schema of both classes and
/// `segmentMembership` in every profile schema: every fragment may carry its identities and
/// ingested audience memberships, so ingestion never has to guess whether a schema allows them.
pub fn class_core_fields(class: SchemaClass) -> Vec<XdmField> {
    match class {
        SchemaClass::Profile => vec![
            string("_id").titled("Identifier"),
            identity_map_field(),
            segment_membership_field(),
        ],
        SchemaClass::ExperienceEvent => vec![
            string("_id").titled("Identifier"),
            XdmField::new("timestamp", XdmType::DateTime).titled("Timestamp"),
            string("eventType").titled("Event Type"),
            identity_map_field(),
        ],
    }
}

fn person_details() -> Vec<XdmField> {
    let name = object(
        "name",
        vec![string("firstName"), string("lastName"), string("fullName")],
    );
    vec![
        object(
            "person",
            vec![
                name.titled("Full name"),
                XdmField::new("birthDate", XdmType::Date).titled("Birth date"),
                string("gender").titled("Gender"),
            ],
        )
        .titled("Person"),
    ]
}

fn personal_contact_details() -> Vec<XdmField> {
    let address = vec![
        string("street1"),
        string("city"),
        string("postalCode"),
        string("stateProvince"),
        string("country"),
        string("countryCode"),
    ];
    vec![
        object(
            "personalEmail",
            vec![string("address"), boolean("primary"), string("type")],
        )
        .titled("Personal email"),
        object("mobilePhone", vec![string("number"), boolean("primary")]).titled("Mobile phone"),
        object("homeAddress", address).titled("Home address"),
    ]
}

fn identities_array() -> Vec<XdmField> {
    let identity = XdmType::Object(vec![
        string("id"),
        object("namespace", vec![string("code")]),
        boolean("primary"),
        string("authenticatedState"),
    ]);
    vec![XdmField::new("identities", XdmType::Array(Box::new(identity))).titled("All user identities (deprecated)")]
}

fn web_details() -> Vec<XdmField> {
    vec![
        object(
            "web",
            vec![
                object(
                    "webPageDetails",
                    vec![string("name"), string("URL"), string("siteSection")],
                ),
                object("webReferrer", vec![string("URL"), string("type")]),
            ],
        )
        .titled("Web"),
    ]
}

fn commerce_details() -> Vec<XdmField> {
    let measure = |name: &str| object(name, vec![number("value")]);
    let product = XdmType::Object(vec![
        string("SKU"),
        string("name"),
        integer("quantity"),
        number("priceTotal"),
        string("currencyCode"),
    ]);
    vec![
        object(
            "commerce",
            vec![
                object(
                    "order",
                    vec![number("priceTotal"), string("currencyCode"), string("purchaseID")],
                ),
                measure("purchases"),
                measure("productViews"),
                measure("productListAdds"),
                measure("checkouts"),
            ],
        )
        .titled("Commerce"),
        XdmField::new("productListItems", XdmType::Array(Box::new(product))).titled("Product list items"),
    ]
}

fn environment_details() -> Vec<XdmField> {
    let browser = vec![
        string("name"),
        string("version"),
        string("vendor"),
        string("userAgent"),
        string("acceptLanguage"),
    ];
    vec![
        object(
            "environment",
            vec![
                object("browserDetails", browser),
                string("operatingSystem"),
                string("operatingSystemVersion"),
                string("type"),
            ],
        )
        .titled("Environment"),
    ]
}

/// Every standard field group Dossier knows, profile groups first.
pub fn standard_field_groups() -> Vec<FieldGroup> {
    vec![
        FieldGroup {
            id: "https://ns.adobe.com/xdm/context/identitymap",
            title: "IdentityMap",
            classes: BOTH_CLASSES,
            fields: vec![identity_map_field()],
        },
        FieldGroup {
            id: "https://ns.adobe.com/xdm/context/profile-segmentation",
            title: "Segment Membership Details",
            classes: PROFILE_ONLY,
            fields: vec![segment_membership_field()],
        },
        FieldGroup {
            id: "https://ns.adobe.com/xdm/context/profile-identities-deprecated",
            title: "Identities array for profile (deprecated)",
            classes: PROFILE_ONLY,
            fields: identities_array(),
        },
        FieldGroup {
            id: "https://ns.adobe.com/xdm/context/profile-person-details",
            title: "Demographic Details",
            classes: PROFILE_ONLY,
            fields: person_details(),
        },
        FieldGroup {
            id: "https://ns.adobe.com/xdm/context/profile-personal-details",
            title: "Personal Contact Details",
            classes: PROFILE_ONLY,
            fields: personal_contact_details(),
        },
        FieldGroup {
            id: "https://ns.adobe.com/xdm/context/experienceevent-web",
            title: "Web Details",
            classes: EVENT_ONLY,
            fields: web_details(),
        },
        FieldGroup {
            id: "https://ns.adobe.com/xdm/context/experienceevent-commerce",
            title: "Commerce Details",
            classes: EVENT_ONLY,
            fields: commerce_details(),
        },
        FieldGroup {
            id: "https://ns.adobe.com/xdm/context/experienceevent-environment-details",
            title: "Environment Details",
            classes: EVENT_ONLY,
            fields: environment_details(),
        },
    ]
}

/// The standard field group with this `$id`.
pub fn field_group(id: &str) -> Option<FieldGroup> {
    standard_field_groups().into_iter().find(|group| group.id == id)
}

/// The class with every standard field group that extends it. Field groups only add fields the
/// class core lacks (identityMap and segmentMembership are already there), so nothing conflicts.
pub(super) fn builtin_schema(class: SchemaClass) -> XdmSchema {
    let mut fields = class_core_fields(class);
    let mut extends = vec![class.class_id().to_owned()];
    for group in standard_field_groups() {
        if !group.classes.contains(&class) {
            continue;
        }
        extends.push(group.id.to_owned());
        for field in group.fields {
            if !fields.iter().any(|existing| existing.name == field.name) {
                fields.push(field);
            }
        }
    }
    let ids = super::SchemaIds::class(class);
    XdmSchema {
        id: ids.id,
        alt_id: ids.alt_id,
        title: class.title().to_owned(),
        description: None,
        class,
        version: SCHEMA_VERSION.to_owned(),
        extends,
        fields,
        identities: Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn top_level_names(schema: &XdmSchema) -> Vec<&str> {
        schema.fields.iter().map(|f| f.name.as_str()).collect()
    }

    #[test]
    fn the_profile_class_has_the_common_field_groups() {
        let profile = XdmSchema::builtin_profile();
        assert_eq!(profile.id, "https://ns.adobe.com/xdm/context/profile");
        assert_eq!(profile.alt_id, "_xdm.context.profile");
        assert_eq!(
            top_level_names(&profile),
            [
                "_id",
                "identityMap",
                "segmentMembership",
                "identities",
                "person",
                "personalEmail",
                "mobilePhone",
                "homeAddress"
            ]
        );
        // The tutorial exports these paths.
        assert_eq!(profile.resolve_path("identities.id"), Some(&XdmType::String));
        assert_eq!(profile.resolve_path("personalEmail.address"), Some(&XdmType::String));
        assert_eq!(profile.extends[0], "https://ns.adobe.com/xdm/context/profile");
        assert!(
            profile
                .extends
                .contains(&"https://ns.adobe.com/xdm/context/profile-personal-details".to_owned())
        );
        assert!(
            !profile
                .extends
                .contains(&"https://ns.adobe.com/xdm/context/experienceevent-web".to_owned())
        );
    }

    #[test]
    fn the_event_class_has_the_common_field_groups() {
        let event = XdmSchema::builtin_experience_event();
        assert_eq!(event.alt_id, "_xdm.context.experienceevent");
        assert_eq!(
            top_level_names(&event),
            [
                "_id",
                "timestamp",
                "eventType",
                "identityMap",
                "web",
                "commerce",
                "productListItems",
                "environment"
            ]
        );
        assert_eq!(event.resolve_path("commerce.order.priceTotal"), Some(&XdmType::Number));
        assert_eq!(event.resolve_path("web.webPageDetails.URL"), Some(&XdmType::String));
    }
}
