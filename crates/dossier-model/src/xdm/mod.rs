//! XDM schemas: the shape of profile records and experience events.
//!
//! An [`XdmSchema`] is what a dataset's rows follow. It is read from the JSON Schema a user posts to
//! the Schema Registry ([`XdmSchema::from_json`]), shown back the way AEP's registry shows it
//! ([`XdmSchema::to_json`]), checks ingested records ([`XdmSchema::validate_record`]), and gives the
//! one XDM → Arrow mapping every Parquet file is written with ([`XdmSchema::arrow_schema`]).
//! The union of a sandbox's profile schemas ([`union`]) is the shape of exported profiles.
//!
//! Every field is optional: XDM's `required` is not enforced, and a JSON `null` means "absent".

mod arrow;
mod authenticated_state;
mod builtin;
mod json_schema;
mod paths;
mod quick_check;
mod registry;
mod union;
mod validate;

use std::fmt;

use crate::catalog::DataBehavior;
use crate::schema::{EXPERIENCE_EVENT_CLASS_ID, PROFILE_CLASS_ID};

pub use arrow::{arrow_field, arrow_type, identity_map_type, segment_membership_type};
pub use authenticated_state::AuthenticatedState;
pub use builtin::{
    FieldGroup, class_core_fields, field_group, identity_map_xdm_type, segment_membership_xdm_type,
    standard_field_groups,
};
pub use json_schema::{parse_properties, properties_json};
pub use paths::{PathNode, PathTree};
pub use registry::{
    DescriptorRejection, IdentityDescriptor, MAX_SCHEMA_LIST_LIMIT, NewIdentityDescriptor, RegisteredSchema, SchemaIds,
    SchemaListQuery, SchemaOrder, tenant_name,
};
pub use union::{UnionConflict, union};
pub use validate::{MAX_FIELD_ERRORS, parse_date, parse_date_time};

/// The two XDM classes a schema can belong to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SchemaClass {
    /// XDM Individual Profile: records, one state per person (`dataBehavior: record`).
    Profile,
    /// XDM ExperienceEvent: time series of things that happened (`dataBehavior: time-series`).
    ExperienceEvent,
}

impl SchemaClass {
    pub const ALL: [SchemaClass; 2] = [Self::Profile, Self::ExperienceEvent];

    /// The class's `meta:class` URI.
    pub fn class_id(self) -> &'static str {
        match self {
            Self::Profile => PROFILE_CLASS_ID,
            Self::ExperienceEvent => EXPERIENCE_EVENT_CLASS_ID,
        }
    }

    pub fn from_class_id(id: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|class| class.class_id() == id)
    }

    /// The class's title as AEP names it.
    pub fn title(self) -> &'static str {
        match self {
            Self::Profile => "XDM Individual Profile",
            Self::ExperienceEvent => "XDM ExperienceEvent",
        }
    }

    /// Whether datasets of this class hold records or time series.
    pub fn data_behavior(self) -> DataBehavior {
        match self {
            Self::Profile => DataBehavior::Record,
            Self::ExperienceEvent => DataBehavior::TimeSeries,
        }
    }
}

impl fmt::Display for SchemaClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.class_id())
    }
}

/// The type of one XDM field. Objects have named fields; maps (`additionalProperties`) have
/// string keys chosen by the data, such as identity namespaces.
#[derive(Debug, Clone, PartialEq)]
pub enum XdmType {
    String,
    /// Every XDM integer (`int`, `long`, `short`, `byte`) is stored as a 64-bit integer.
    Integer,
    Number,
    Boolean,
    DateTime,
    Date,
    Object(Vec<XdmField>),
    Array(Box<XdmType>),
    Map(Box<XdmType>),
}

impl fmt::Display for XdmType {
    /// How the type is named in messages: `string`, `date-time`, `array of object`, `map of integer`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::String => f.write_str("string"),
            Self::Integer => f.write_str("integer"),
            Self::Number => f.write_str("number"),
            Self::Boolean => f.write_str("boolean"),
            Self::DateTime => f.write_str("date-time"),
            Self::Date => f.write_str("date"),
            Self::Object(_) => f.write_str("object"),
            Self::Array(item) => write!(f, "array of {item}"),
            Self::Map(value) => write!(f, "map of {value}"),
        }
    }
}

/// One named field of a schema or of an object.
#[derive(Debug, Clone, PartialEq)]
pub struct XdmField {
    pub name: String,
    pub ty: XdmType,
    pub title: Option<String>,
}

impl XdmField {
    pub fn new(name: impl Into<String>, ty: XdmType) -> Self {
        Self {
            name: name.into(),
            ty,
            title: None,
        }
    }

    pub fn titled(mut self, title: impl Into<String>) -> Self {
        self.title = Some(title.into());
        self
    }
}

/// A schema field that holds an identity, declared with an identity descriptor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdentityField {
    /// Dot path of the field, e.g. `personalEmail.address`. Never inside an array.
    pub path: String,
    /// The identity namespace code, e.g. `Email`.
    pub namespace: String,
    pub primary: bool,
}

/// A schema: its ids, its class, its fields and which of them are identities.
#[derive(Debug, Clone, PartialEq)]
pub struct XdmSchema {
    /// `$id`, e.g. `https://ns.adobe.com/<tenant>/schemas/<hex>`.
    pub id: String,
    /// `meta:altId`, e.g. `_<tenant>.schemas.<hex>`.
    pub alt_id: String,
    pub title: String,
    pub description: Option<String>,
    pub class: SchemaClass,
    /// AEP's schema version string; schemas here are never edited, so always `1.0`.
    pub version: String,
    /// `meta:extends`: the class and standard field groups the schema was built from; for a
    /// union, the ids of the schemas merged into it.
    pub extends: Vec<String>,
    pub fields: Vec<XdmField>,
    pub identities: Vec<IdentityField>,
}

/// One value of a record that does not fit its schema.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    /// Dot path with array indexes, e.g. `identities[2].id`; empty for the record itself.
    pub path: String,
    /// What is wrong and what would be accepted.
    pub reason: String,
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            f.write_str(&self.reason)
        } else {
            write!(f, "{}: {}", self.path, self.reason)
        }
    }
}

/// The version every schema has.
pub const SCHEMA_VERSION: &str = "1.0";

impl XdmSchema {
    /// The type at `dot_path`. Arrays are transparent, so `identities.id` names the `id` of every
    /// element of `identities`; maps are leaves (their keys are data, not fields).
    pub fn resolve_path(&self, dot_path: &str) -> Option<&XdmType> {
        let mut fields = &self.fields;
        let mut found: Option<&XdmType> = None;
        for name in dot_path.split('.') {
            if found.is_some() {
                fields = object_fields_through_arrays(found?)?;
            }
            found = Some(&fields.iter().find(|field| field.name == name)?.ty);
        }
        found
    }

    /// The schema's top-level field named `name`.
    pub fn field(&self, name: &str) -> Option<&XdmField> {
        self.fields.iter().find(|field| field.name == name)
    }

    /// The primary identity field, if one was declared.
    pub fn primary_identity(&self) -> Option<&IdentityField> {
        self.identities.iter().find(|identity| identity.primary)
    }

    /// The built-in XDM Individual Profile class with its standard field groups.
    pub fn builtin_profile() -> XdmSchema {
        builtin::builtin_schema(SchemaClass::Profile)
    }

    /// The built-in XDM ExperienceEvent class with its standard field groups.
    pub fn builtin_experience_event() -> XdmSchema {
        builtin::builtin_schema(SchemaClass::ExperienceEvent)
    }
}

/// The fields of an object, looking through any arrays around it.
fn object_fields_through_arrays(ty: &XdmType) -> Option<&Vec<XdmField>> {
    match ty {
        XdmType::Object(fields) => Some(fields),
        XdmType::Array(item) => object_fields_through_arrays(item),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_resolve_through_arrays_but_not_into_maps() {
        let profile = XdmSchema::builtin_profile();
        assert_eq!(profile.resolve_path("identities.id"), Some(&XdmType::String));
        assert_eq!(
            profile.resolve_path("identities.namespace.code"),
            Some(&XdmType::String)
        );
        assert_eq!(profile.resolve_path("personalEmail.address"), Some(&XdmType::String));
        assert_eq!(profile.resolve_path("person.birthDate"), Some(&XdmType::Date));
        assert!(matches!(profile.resolve_path("person.name"), Some(XdmType::Object(_))));
        assert!(matches!(profile.resolve_path("identities"), Some(XdmType::Array(_))));
        assert!(matches!(profile.resolve_path("identityMap"), Some(XdmType::Map(_))));
        for missing in [
            "",
            "nope",
            "identities.nope",
            "personalEmail.address.more",
            "identityMap.Email",
            "person.",
        ] {
            assert_eq!(profile.resolve_path(missing), None, "{missing:?}");
        }

        let event = XdmSchema::builtin_experience_event();
        assert_eq!(
            event.resolve_path("environment.browserDetails.name"),
            Some(&XdmType::String)
        );
        assert_eq!(
            event.resolve_path("environment.browserDetails.version"),
            Some(&XdmType::String)
        );
        assert_eq!(event.resolve_path("productListItems.quantity"), Some(&XdmType::Integer));
        assert_eq!(event.resolve_path("timestamp"), Some(&XdmType::DateTime));
    }

    #[test]
    fn types_name_themselves_for_messages() {
        assert_eq!(
            XdmType::Array(Box::new(XdmType::DateTime)).to_string(),
            "array of date-time"
        );
        assert_eq!(
            XdmType::Map(Box::new(XdmType::Array(Box::new(XdmType::Object(vec![]))))).to_string(),
            "map of array of object"
        );
    }

    #[test]
    fn classes_know_their_uris_and_behavior() {
        assert_eq!(
            SchemaClass::from_class_id("https://ns.adobe.com/xdm/context/experienceevent"),
            Some(SchemaClass::ExperienceEvent)
        );
        assert_eq!(
            SchemaClass::from_class_id("https://ns.adobe.com/xdm/context/nope"),
            None
        );
        assert_eq!(SchemaClass::Profile.data_behavior(), DataBehavior::Record);
        assert_eq!(SchemaClass::ExperienceEvent.data_behavior(), DataBehavior::TimeSeries);
    }
}
