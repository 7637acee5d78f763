//! Union schemas: every field of several schemas of one class, merged.
//!
//! Objects merge field by field, arrays and maps merge their item types, and a field keeps its
//! first position. Two declarations of one field with different types are a conflict, never a
//! silent choice: the caller answers 409 and the user renames or retypes the field.

use std::collections::HashMap;
use std::fmt;

use super::{SCHEMA_VERSION, SchemaClass, SchemaIds, XdmField, XdmSchema, XdmType};

/// A field declared with two types by the schemas being merged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnionConflict {
    /// Dot path of the field (`*` stands for the keys of a map), or `meta:class` when a schema of
    /// the other class was given.
    pub path: String,
    /// The type the union already has for the field.
    pub union_type: String,
    /// The type the incoming schema declares.
    pub schema_type: String,
    /// `$id` of the schema that brought the second declaration.
    pub schema_id: String,
}

impl fmt::Display for UnionConflict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "field '{}' is {} in the union schema but {} in schema '{}'",
            self.path, self.union_type, self.schema_type, self.schema_id
        )
    }
}

impl std::error::Error for UnionConflict {}

/// Two types for one field, found while merging field lists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct TypeClash {
    pub path: String,
    pub existing: String,
    pub incoming: String,
}

fn child_path(parent: &str, name: &str) -> String {
    if parent.is_empty() {
        name.to_owned()
    } else {
        format!("{parent}.{name}")
    }
}

/// Adds `incoming` to `fields`: new fields are appended, fields present in both are merged.
pub(super) fn merge_fields(fields: &mut Vec<XdmField>, incoming: &[XdmField], parent: &str) -> Result<(), TypeClash> {
    // Positions by name: a search per incoming field would make wide objects quadratic.
    let mut positions: HashMap<String, usize> = fields
        .iter()
        .enumerate()
        .map(|(index, field)| (field.name.clone(), index))
        .collect();
    for field in incoming {
        match positions.get(&field.name) {
            Some(&index) => {
                let existing = &mut fields[index];
                merge_types(&mut existing.ty, &field.ty, &child_path(parent, &field.name))?;
                if existing.title.is_none() {
                    existing.title.clone_from(&field.title);
                }
            }
            None => {
                positions.insert(field.name.clone(), fields.len());
                fields.push(field.clone());
            }
        }
    }
    Ok(())
}

fn merge_types(existing: &mut XdmType, incoming: &XdmType, path: &str) -> Result<(), TypeClash> {
    match (existing, incoming) {
        (XdmType::Object(fields), XdmType::Object(more)) => merge_fields(fields, more, path),
        // Arrays are transparent in dot paths (`identities.id`), so the path does not change.
        (XdmType::Array(item), XdmType::Array(other)) => merge_types(item, other, path),
        (XdmType::Map(value), XdmType::Map(other)) => merge_types(value, other, &format!("{path}.*")),
        (existing, incoming) if *existing == *incoming => Ok(()),
        (existing, incoming) => Err(TypeClash {
            path: path.to_owned(),
            existing: existing.to_string(),
            incoming: incoming.to_string(),
        }),
    }
}

/// The union of `schemas`, all of `class`, merged in order. The union has every field of every
/// schema, the identities of all of them, and lists the merged schemas' ids in `extends`.
/// A sandbox's union starts with the built-in class ([`XdmSchema::builtin_profile`]); the caller
/// passes it first.
pub fn union(class: SchemaClass, schemas: &[XdmSchema]) -> Result<XdmSchema, UnionConflict> {
    let ids = SchemaIds::union(class);
    let mut merged = XdmSchema {
        id: ids.id,
        alt_id: ids.alt_id,
        title: format!("Union schema for {}", class.title()),
        description: None,
        class,
        version: SCHEMA_VERSION.to_owned(),
        extends: Vec::new(),
        fields: Vec::new(),
        identities: Vec::new(),
    };
    for schema in schemas {
        add_to_union(&mut merged, schema)?;
    }
    Ok(merged)
}

fn add_to_union(merged: &mut XdmSchema, schema: &XdmSchema) -> Result<(), UnionConflict> {
    if schema.class != merged.class {
        return Err(UnionConflict {
            path: "meta:class".to_owned(),
            union_type: merged.class.class_id().to_owned(),
            schema_type: schema.class.class_id().to_owned(),
            schema_id: schema.id.clone(),
        });
    }
    merge_fields(&mut merged.fields, &schema.fields, "").map_err(|clash| UnionConflict {
        path: clash.path,
        union_type: clash.existing,
        schema_type: clash.incoming,
        schema_id: schema.id.clone(),
    })?;
    if !merged.extends.contains(&schema.id) {
        merged.extends.push(schema.id.clone());
    }
    for identity in &schema.identities {
        let known = merged
            .identities
            .iter()
            .any(|i| i.path == identity.path && i.namespace == identity.namespace);
        if !known {
            merged.identities.push(identity.clone());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::xdm::IdentityField;

    fn schema(id: &str, class: SchemaClass, fields: Vec<XdmField>) -> XdmSchema {
        XdmSchema {
            id: id.into(),
            alt_id: format!("_{id}"),
            title: id.into(),
            description: None,
            class,
            version: SCHEMA_VERSION.into(),
            extends: vec![],
            fields,
            identities: vec![],
        }
    }

    fn object(name: &str, fields: Vec<XdmField>) -> XdmField {
        XdmField::new(name, XdmType::Object(fields))
    }

    #[test]
    fn objects_arrays_and_maps_merge_field_by_field() {
        let builtin = XdmSchema::builtin_profile();
        let mut loyalty = schema(
            "loyalty",
            SchemaClass::Profile,
            vec![
                object("person", vec![XdmField::new("nickname", XdmType::String)]),
                XdmField::new(
                    "identities",
                    XdmType::Array(Box::new(XdmType::Object(vec![XdmField::new("score", XdmType::Number)]))),
                ),
                object("loyalty", vec![XdmField::new("points", XdmType::Integer)]),
            ],
        );
        loyalty.identities.push(IdentityField {
            path: "personalEmail.address".into(),
            namespace: "Email".into(),
            primary: true,
        });
        let merged = union(SchemaClass::Profile, &[builtin.clone(), loyalty.clone(), loyalty]).unwrap();
        assert_eq!(merged.id, "https://ns.adobe.com/xdm/context/profile__union");
        assert_eq!(merged.alt_id, "_xdm.context.profile__union");
        assert_eq!(merged.extends, ["https://ns.adobe.com/xdm/context/profile", "loyalty"]);
        assert_eq!(merged.resolve_path("person.birthDate"), Some(&XdmType::Date));
        assert_eq!(merged.resolve_path("person.nickname"), Some(&XdmType::String));
        assert_eq!(merged.resolve_path("identities.id"), Some(&XdmType::String));
        assert_eq!(merged.resolve_path("identities.score"), Some(&XdmType::Number));
        assert_eq!(merged.resolve_path("loyalty.points"), Some(&XdmType::Integer));
        assert_eq!(merged.fields.last().unwrap().name, "loyalty");
        assert_eq!(merged.identities.len(), 1);
        // The built-in fields keep their positions; new ones come after them.
        let names = |fields: &[XdmField]| fields.iter().map(|f| f.name.clone()).collect::<Vec<_>>();
        assert_eq!(names(&merged.fields[..builtin.fields.len()]), names(&builtin.fields));
    }

    #[test]
    fn a_field_with_two_types_is_a_conflict_naming_both() {
        let clash = schema(
            "clash",
            SchemaClass::Profile,
            vec![object("person", vec![XdmField::new("birthDate", XdmType::Integer)])],
        );
        let conflict = union(SchemaClass::Profile, &[XdmSchema::builtin_profile(), clash]).unwrap_err();
        assert_eq!(
            conflict,
            UnionConflict {
                path: "person.birthDate".into(),
                union_type: "date".into(),
                schema_type: "integer".into(),
                schema_id: "clash".into(),
            }
        );
        assert!(
            conflict.to_string().contains("'person.birthDate' is date"),
            "{conflict}"
        );

        let map_clash = schema(
            "maps",
            SchemaClass::Profile,
            vec![XdmField::new("identityMap", XdmType::Map(Box::new(XdmType::String)))],
        );
        let conflict = union(SchemaClass::Profile, &[XdmSchema::builtin_profile(), map_clash]).unwrap_err();
        assert_eq!(conflict.path, "identityMap.*");
        assert_eq!(conflict.union_type, "array of object");

        let object_vs_scalar = schema(
            "o",
            SchemaClass::Profile,
            vec![XdmField::new("person", XdmType::String)],
        );
        let conflict = union(SchemaClass::Profile, &[XdmSchema::builtin_profile(), object_vs_scalar]).unwrap_err();
        assert_eq!(
            (conflict.union_type.as_str(), conflict.schema_type.as_str()),
            ("object", "string")
        );
    }

    #[test]
    fn a_schema_of_the_other_class_is_refused() {
        let conflict = union(SchemaClass::Profile, &[XdmSchema::builtin_experience_event()]).unwrap_err();
        assert_eq!(conflict.path, "meta:class");
    }
}
