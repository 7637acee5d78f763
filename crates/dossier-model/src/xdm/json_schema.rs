//! Schemas as JSON Schema: what users post to the registry and what the registry shows.
//!
//! A posted schema is self-contained: `title`, `meta:class` and `properties`, where each property
//! is `{"type": ...}` with `format: date-time|date` for times, `properties` for objects, `items`
//! for arrays and `additionalProperties` (or `meta:xdmType: map`) for maps. AEP's composed form,
//! `allOf: [{"$ref": <class>}, {"$ref": <standard field group>}]`, is accepted too. Only types are
//! kept: `required`, `enum`, `pattern` and other constraints are not enforced.

use serde_json::{Map, Value, json};

use super::union::merge_fields;
use super::{SCHEMA_VERSION, SchemaClass, SchemaIds, XdmField, XdmSchema, XdmType, class_core_fields, field_group};
use crate::ValidationError;

const CLASS_FIX: &str =
    "use https://ns.adobe.com/xdm/context/profile or https://ns.adobe.com/xdm/context/experienceevent";
const TYPE_FIX: &str =
    "use one of string, integer, number, boolean, object, array (strings may have format date-time or date)";

fn field<'a>(body: &'a Value, name: &str) -> Option<&'a Value> {
    body.get(name).filter(|v| !v.is_null())
}

fn optional_string(body: &Value, name: &str) -> Result<Option<String>, ValidationError> {
    match field(body, name) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(other) => Err(ValidationError::invalid(name, other, "expected a string")),
    }
}

fn required_title(body: &Value) -> Result<String, ValidationError> {
    match optional_string(body, "title")? {
        Some(title) if !title.trim().is_empty() => Ok(title),
        Some(title) => Err(ValidationError::invalid(
            "title",
            title,
            "give the schema a non-empty title",
        )),
        None => Err(ValidationError::missing(
            "title",
            "give the schema a title, e.g. \"title\": \"Loyalty Members\"",
        )),
    }
}

fn check_object_type(body: &Value) -> Result<(), ValidationError> {
    match field(body, "type") {
        None => Ok(()),
        Some(Value::String(t)) if t == "object" => Ok(()),
        Some(other) => Err(ValidationError::invalid(
            "type",
            other,
            "a schema is a JSON object: use \"object\"",
        )),
    }
}

fn all_of(body: &Value) -> Result<&[Value], ValidationError> {
    match field(body, "allOf") {
        None => Ok(&[]),
        Some(Value::Array(parts)) => Ok(parts),
        Some(other) => Err(ValidationError::invalid(
            "allOf",
            other,
            "allOf is a list such as [{\"$ref\": \"https://ns.adobe.com/xdm/context/profile\"}]",
        )),
    }
}

/// The class from `meta:class`, else from an `allOf` reference to a class.
fn schema_class(body: &Value) -> Result<SchemaClass, ValidationError> {
    match field(body, "meta:class") {
        Some(Value::String(id)) => {
            return SchemaClass::from_class_id(id).ok_or_else(|| ValidationError::invalid("meta:class", id, CLASS_FIX));
        }
        Some(other) => return Err(ValidationError::invalid("meta:class", other, CLASS_FIX)),
        None => {}
    }
    all_of(body)?
        .iter()
        .filter_map(|part| part.get("$ref").and_then(Value::as_str))
        .find_map(SchemaClass::from_class_id)
        .ok_or_else(|| {
            ValidationError::missing(
                "meta:class",
                format!("every schema has a class: {CLASS_FIX}, or list the class in allOf as {{\"$ref\": <class>}}"),
            )
        })
}

/// The fields and `meta:extends` of a schema being read, built up part by part.
struct Composition {
    class: SchemaClass,
    fields: Vec<XdmField>,
    extends: Vec<String>,
}

impl Composition {
    fn new(class: SchemaClass) -> Self {
        Self {
            class,
            fields: class_core_fields(class),
            extends: vec![class.class_id().to_owned()],
        }
    }

    fn add_all_of_part(&mut self, index: usize, part: &Value) -> Result<(), ValidationError> {
        let path = format!("allOf[{index}]");
        match (field(part, "$ref"), field(part, "properties")) {
            (Some(Value::String(reference)), _) => self.add_reference(&format!("{path}.$ref"), reference),
            (None, Some(properties)) => self.add_properties(&format!("{path}.properties"), properties),
            _ => Err(ValidationError::invalid(
                path,
                part,
                "each allOf entry is {\"$ref\": <class or standard field group id>} or {\"properties\": {...}}",
            )),
        }
    }

    fn add_reference(&mut self, path: &str, reference: &str) -> Result<(), ValidationError> {
        if reference == self.class.class_id() {
            return Ok(());
        }
        if SchemaClass::from_class_id(reference).is_some() {
            return Err(ValidationError::invalid(
                path,
                reference,
                format!("a schema has one class, and this one's is {}", self.class),
            ));
        }
        let Some(group) = field_group(reference) else {
            let known: Vec<&str> = super::standard_field_groups().iter().map(|g| g.id).collect();
            return Err(ValidationError::invalid(
                path,
                reference,
                format!(
                    "not a standard field group Dossier knows ({}); declare other fields in properties",
                    known.join(", ")
                ),
            ));
        };
        if !group.classes.contains(&self.class) {
            return Err(ValidationError::invalid(
                path,
                reference,
                format!(
                    "the field group '{}' does not extend the {} class",
                    group.title,
                    self.class.title()
                ),
            ));
        }
        self.merge(&group.fields)?;
        if !self.extends.iter().any(|id| id == group.id) {
            self.extends.push(group.id.to_owned());
        }
        Ok(())
    }

    fn add_properties(&mut self, path: &str, properties: &Value) -> Result<(), ValidationError> {
        let fields = parse_properties_at(properties, path)?;
        self.merge(&fields)
    }

    /// Adds fields; a field declared twice (by the class, a field group or properties) must have
    /// one type, and objects declared twice get the fields of both.
    fn merge(&mut self, fields: &[XdmField]) -> Result<(), ValidationError> {
        merge_fields(&mut self.fields, fields, "").map_err(|clash| {
            ValidationError::invalid(
                clash.path,
                &clash.incoming,
                format!(
                    "this field is also declared as {} (by the class, a field group or another property); a field has one type",
                    clash.existing
                ),
            )
        })
    }
}

impl XdmSchema {
    /// Reads a schema a user posted. `ids` are the `$id` and `meta:altId` the registry assigned;
    /// ids in the body are ignored, as AEP's registry ignores them.
    pub fn from_json(body: &Value, ids: SchemaIds) -> Result<Self, ValidationError> {
        if !body.is_object() {
            return Err(ValidationError::invalid(
                "body",
                body,
                "send a JSON Schema object with title, meta:class and properties",
            ));
        }
        let title = required_title(body)?;
        let description = optional_string(body, "description")?;
        check_object_type(body)?;
        let mut composition = Composition::new(schema_class(body)?);
        for (index, part) in all_of(body)?.iter().enumerate() {
            composition.add_all_of_part(index, part)?;
        }
        if let Some(properties) = field(body, "properties") {
            composition.add_properties("properties", properties)?;
        }
        Ok(Self {
            id: ids.id,
            alt_id: ids.alt_id,
            title,
            description,
            class: composition.class,
            version: SCHEMA_VERSION.to_owned(),
            extends: composition.extends,
            fields: composition.fields,
            identities: Vec::new(),
        })
    }

    /// The schema as AEP's registry answers it with `application/vnd.adobe.xed-full+json`:
    /// self-contained, every field under `properties`. Identity fields are listed under
    /// `dossier:identities` (read-only; they are declared with identity descriptors).
    pub fn to_json(&self) -> Value {
        let mut body = json!({
            "$id": self.id,
            "meta:altId": self.alt_id,
            "meta:resourceType": "schemas",
            "version": self.version,
            "title": self.title,
            "type": "object",
            "meta:class": self.class.class_id(),
            "meta:extends": self.extends,
            "meta:abstract": false,
            "meta:extensible": false,
            "meta:xdmType": "object",
            "properties": properties_json(&self.fields),
        });
        let object = body.as_object_mut().expect("json! built an object");
        if let Some(description) = &self.description {
            object.insert("description".to_owned(), json!(description));
        }
        if !self.identities.is_empty() {
            let identities: Vec<Value> = self
                .identities
                .iter()
                .map(|identity| {
                    json!({
                        "xdm:sourceProperty": format!("/{}", identity.path.replace('.', "/")),
                        "xdm:namespace": identity.namespace,
                        "xdm:isPrimary": identity.primary,
                    })
                })
                .collect();
            object.insert("dossier:identities".to_owned(), Value::Array(identities));
        }
        body
    }
}

/// Reads a JSON Schema `properties` object into fields.
pub fn parse_properties(properties: &Value) -> Result<Vec<XdmField>, ValidationError> {
    parse_properties_at(properties, "properties")
}

fn parse_properties_at(properties: &Value, path: &str) -> Result<Vec<XdmField>, ValidationError> {
    let Value::Object(map) = properties else {
        return Err(ValidationError::invalid(
            path,
            properties,
            "properties is an object of field name → field schema, e.g. {\"loyaltyId\": {\"type\": \"string\"}}",
        ));
    };
    map.iter()
        .map(|(name, property)| parse_field(name, property, &format!("{path}.{name}")))
        .collect()
}

/// Field names become dot-path segments and Parquet column names, so they are plain identifiers.
fn check_field_name(name: &str, path: &str) -> Result<(), ValidationError> {
    let mut chars = name.chars();
    let starts_well = chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_');
    if starts_well && chars.all(|c| c.is_ascii_alphanumeric() || c == '_') && name.len() <= 256 {
        return Ok(());
    }
    Err(ValidationError::invalid(
        path,
        name,
        "a field name is letters, digits and '_', starting with a letter or '_', e.g. loyaltyId or _acme",
    ))
}

fn parse_field(name: &str, property: &Value, path: &str) -> Result<XdmField, ValidationError> {
    check_field_name(name, path)?;
    Ok(XdmField {
        name: name.to_owned(),
        ty: parse_type(property, path)?,
        title: property.get("title").and_then(Value::as_str).map(str::to_owned),
    })
}

fn parse_type(property: &Value, path: &str) -> Result<XdmType, ValidationError> {
    if !property.is_object() {
        return Err(ValidationError::invalid(
            path,
            property,
            "describe each field with an object such as {\"type\": \"string\"}",
        ));
    }
    if let Some(reference) = field(property, "$ref") {
        return Err(ValidationError::invalid(
            format!("{path}.$ref"),
            reference,
            "references are not supported inside properties; describe the field inline with type and properties",
        ));
    }
    let xdm_type = property.get("meta:xdmType").and_then(Value::as_str);
    match json_type(property, path)? {
        "string" => Ok(string_type(property, xdm_type)),
        "integer" => Ok(XdmType::Integer),
        "number" => Ok(XdmType::Number),
        "boolean" => Ok(XdmType::Boolean),
        "object" => object_type(property, path),
        "array" => array_type(property, path),
        other => Err(ValidationError::invalid(format!("{path}.type"), other, TYPE_FIX)),
    }
}

/// The JSON type; `["string", "null"]` is a string, since every field may be absent anyway.
fn json_type<'a>(property: &'a Value, path: &str) -> Result<&'a str, ValidationError> {
    let type_path = format!("{path}.type");
    match field(property, "type") {
        Some(Value::String(ty)) => Ok(ty),
        Some(Value::Array(types)) => {
            let named: Option<Vec<&str>> = types.iter().map(Value::as_str).collect();
            match named
                .as_deref()
                .map(|all| all.iter().filter(|t| **t != "null").collect::<Vec<_>>())
            {
                Some(non_null) if non_null.len() == 1 => Ok(non_null[0]),
                _ => Err(ValidationError::invalid(
                    type_path,
                    &property["type"],
                    "a field has one type, optionally with \"null\"",
                )),
            }
        }
        Some(other) => Err(ValidationError::invalid(type_path, other, TYPE_FIX)),
        None if field(property, "properties").is_some() => Ok("object"),
        None => Err(ValidationError::missing(type_path, TYPE_FIX)),
    }
}

fn string_type(property: &Value, xdm_type: Option<&str>) -> XdmType {
    match property.get("format").and_then(Value::as_str).or(xdm_type) {
        Some("date-time") => XdmType::DateTime,
        Some("date") => XdmType::Date,
        _ => XdmType::String,
    }
}

fn object_type(property: &Value, path: &str) -> Result<XdmType, ValidationError> {
    let properties = field(property, "properties");
    let map_values = field(property, "additionalProperties").filter(|v| v.is_object());
    match (properties, map_values) {
        (Some(properties), None) => {
            let fields = parse_properties_at(properties, &format!("{path}.properties"))?;
            if fields.is_empty() {
                return Err(ValidationError::invalid(
                    format!("{path}.properties"),
                    properties,
                    "an object needs at least one field (Parquet cannot store empty objects)",
                ));
            }
            Ok(XdmType::Object(fields))
        }
        (None, Some(values)) => Ok(XdmType::Map(Box::new(parse_type(
            values,
            &format!("{path}.additionalProperties"),
        )?))),
        (Some(_), Some(_)) => Err(ValidationError::invalid(
            path,
            property,
            "an object has either properties (named fields) or additionalProperties (a map), not both",
        )),
        (None, None) => Err(ValidationError::invalid(
            path,
            property,
            "an object needs properties (named fields) or additionalProperties (a map with string keys)",
        )),
    }
}

fn array_type(property: &Value, path: &str) -> Result<XdmType, ValidationError> {
    let items_path = format!("{path}.items");
    match field(property, "items") {
        Some(items) => Ok(XdmType::Array(Box::new(parse_type(items, &items_path)?))),
        None => Err(ValidationError::missing(
            items_path,
            "say what the array holds, e.g. \"items\": {\"type\": \"string\"}",
        )),
    }
}

/// Fields as a JSON Schema `properties` object; [`parse_properties`] reads it back unchanged.
pub fn properties_json(fields: &[XdmField]) -> Value {
    let mut properties = Map::new();
    for field in fields {
        let mut property = type_json(&field.ty);
        if let (Some(title), Some(object)) = (&field.title, property.as_object_mut()) {
            object.insert("title".to_owned(), json!(title));
        }
        properties.insert(field.name.clone(), property);
    }
    Value::Object(properties)
}

fn type_json(ty: &XdmType) -> Value {
    match ty {
        XdmType::String => json!({"type": "string", "meta:xdmType": "string"}),
        // Every integer is stored as 64 bits, so `long` is what the field really holds.
        XdmType::Integer => json!({"type": "integer", "meta:xdmType": "long"}),
        XdmType::Number => json!({"type": "number", "meta:xdmType": "number"}),
        XdmType::Boolean => json!({"type": "boolean", "meta:xdmType": "boolean"}),
        XdmType::DateTime => json!({"type": "string", "format": "date-time", "meta:xdmType": "date-time"}),
        XdmType::Date => json!({"type": "string", "format": "date", "meta:xdmType": "date"}),
        XdmType::Object(fields) => {
            json!({"type": "object", "meta:xdmType": "object", "properties": properties_json(fields)})
        }
        XdmType::Array(item) => json!({"type": "array", "meta:xdmType": "array", "items": type_json(item)}),
        XdmType::Map(value) => {
            json!({"type": "object", "meta:xdmType": "map", "additionalProperties": type_json(value)})
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::xdm::IdentityField;

    fn ids() -> SchemaIds {
        SchemaIds {
            id: "https://ns.adobe.com/acme/schemas/0123".into(),
            alt_id: "_acme.schemas.0123".into(),
        }
    }

    fn loyalty_body() -> Value {
        json!({
            "title": "Loyalty Members",
            "description": "Members of the loyalty program",
            "type": "object",
            "meta:class": "https://ns.adobe.com/xdm/context/profile",
            "properties": {
                "personalEmail": {"type": "object", "properties": {"address": {"type": "string", "format": "email"}}},
                "loyalty": {
                    "title": "Loyalty",
                    "type": "object",
                    "properties": {
                        "points": {"type": "integer", "meta:xdmType": "int"},
                        "ratio": {"type": "number"},
                        "member": {"type": ["boolean", "null"]},
                        "joined": {"type": "string", "format": "date-time"},
                        "birthday": {"type": "string", "format": "date"},
                        "tiers": {"type": "array", "items": {"type": "string"}},
                        "scores": {"type": "object", "meta:xdmType": "map", "additionalProperties": {"type": "integer"}}
                    }
                }
            }
        })
    }

    #[test]
    fn a_self_contained_schema_is_read_with_its_class_core() {
        let schema = XdmSchema::from_json(&loyalty_body(), ids()).unwrap();
        assert_eq!(schema.id, "https://ns.adobe.com/acme/schemas/0123");
        assert_eq!(schema.alt_id, "_acme.schemas.0123");
        assert_eq!(schema.title, "Loyalty Members");
        assert_eq!(schema.class, SchemaClass::Profile);
        assert_eq!(schema.version, "1.0");
        assert_eq!(schema.extends, ["https://ns.adobe.com/xdm/context/profile"]);
        let names: Vec<&str> = schema.fields.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(
            names,
            ["_id", "identityMap", "segmentMembership", "personalEmail", "loyalty"]
        );
        let expect = [
            ("personalEmail.address", XdmType::String),
            ("loyalty.points", XdmType::Integer),
            ("loyalty.ratio", XdmType::Number),
            ("loyalty.member", XdmType::Boolean),
            ("loyalty.joined", XdmType::DateTime),
            ("loyalty.birthday", XdmType::Date),
            ("loyalty.tiers", XdmType::Array(Box::new(XdmType::String))),
            ("loyalty.scores", XdmType::Map(Box::new(XdmType::Integer))),
        ];
        for (path, ty) in expect {
            assert_eq!(schema.resolve_path(path), Some(&ty), "{path}");
        }
        assert_eq!(schema.field("loyalty").unwrap().title.as_deref(), Some("Loyalty"));
    }

    #[test]
    fn the_composed_form_pulls_in_standard_field_groups() {
        let body = json!({
            "title": "Web events",
            "allOf": [
                {"$ref": "https://ns.adobe.com/xdm/context/experienceevent"},
                {"$ref": "https://ns.adobe.com/xdm/context/experienceevent-environment-details"},
                {"properties": {"environment": {"type": "object", "properties": {"screen": {"type": "integer"}}}}}
            ]
        });
        let schema = XdmSchema::from_json(&body, ids()).unwrap();
        assert_eq!(schema.class, SchemaClass::ExperienceEvent);
        assert_eq!(
            schema.extends,
            [
                "https://ns.adobe.com/xdm/context/experienceevent",
                "https://ns.adobe.com/xdm/context/experienceevent-environment-details"
            ]
        );
        assert_eq!(
            schema.resolve_path("environment.browserDetails.name"),
            Some(&XdmType::String)
        );
        assert_eq!(schema.resolve_path("environment.screen"), Some(&XdmType::Integer));
        assert_eq!(schema.resolve_path("timestamp"), Some(&XdmType::DateTime));
    }

    #[test]
    fn to_json_reads_back_into_the_same_schema() {
        let mut schema = XdmSchema::from_json(&loyalty_body(), ids()).unwrap();
        let shown = schema.to_json();
        assert_eq!(shown["$id"], "https://ns.adobe.com/acme/schemas/0123");
        assert_eq!(shown["meta:altId"], "_acme.schemas.0123");
        assert_eq!(shown["meta:class"], "https://ns.adobe.com/xdm/context/profile");
        assert_eq!(shown["version"], "1.0");
        assert_eq!(shown["description"], "Members of the loyalty program");
        assert_eq!(
            shown["properties"]["loyalty"]["properties"]["joined"],
            json!({"type": "string", "format": "date-time", "meta:xdmType": "date-time"})
        );
        assert_eq!(shown["properties"]["identityMap"]["meta:xdmType"], "map");
        assert!(shown.get("dossier:identities").is_none());
        assert_eq!(XdmSchema::from_json(&shown, ids()).unwrap(), schema);
        assert_eq!(parse_properties(&shown["properties"]).unwrap(), schema.fields);

        let builtin = XdmSchema::builtin_profile();
        assert_eq!(
            parse_properties(&properties_json(&builtin.fields)).unwrap(),
            builtin.fields
        );

        schema.identities.push(IdentityField {
            path: "personalEmail.address".into(),
            namespace: "Email".into(),
            primary: true,
        });
        assert_eq!(
            schema.to_json()["dossier:identities"],
            json!([{"xdm:sourceProperty": "/personalEmail/address", "xdm:namespace": "Email", "xdm:isPrimary": true}])
        );
    }

    #[test]
    fn bad_bodies_name_the_field_and_the_fix() {
        let cases = [
            (json!([]), "body"),
            (
                json!({"meta:class": "https://ns.adobe.com/xdm/context/profile"}),
                "title",
            ),
            (json!({"title": "t"}), "meta:class"),
            (
                json!({"title": "t", "meta:class": "https://ns.adobe.com/xdm/context/nope"}),
                "meta:class",
            ),
            (
                json!({"title": "t", "meta:class": "https://ns.adobe.com/xdm/context/profile", "type": "array"}),
                "type",
            ),
            (
                json!({"title": "t", "meta:class": "https://ns.adobe.com/xdm/context/profile", "properties": []}),
                "properties",
            ),
            (
                json!({"title": "t", "meta:class": "https://ns.adobe.com/xdm/context/profile",
                       "properties": {"a": {"type": "decimal"}}}),
                "properties.a.type",
            ),
            (
                json!({"title": "t", "meta:class": "https://ns.adobe.com/xdm/context/profile",
                       "properties": {"a": {"type": "object"}}}),
                "properties.a",
            ),
            (
                json!({"title": "t", "meta:class": "https://ns.adobe.com/xdm/context/profile",
                       "properties": {"a": {"type": "object", "properties": {}}}}),
                "properties.a.properties",
            ),
            (
                json!({"title": "t", "meta:class": "https://ns.adobe.com/xdm/context/profile",
                       "properties": {"a": {"type": "array"}}}),
                "properties.a.items",
            ),
            (
                json!({"title": "t", "meta:class": "https://ns.adobe.com/xdm/context/profile",
                       "properties": {"a.b": {"type": "string"}}}),
                "properties.a.b",
            ),
            (
                json!({"title": "t", "meta:class": "https://ns.adobe.com/xdm/context/profile",
                       "properties": {"a": {"$ref": "https://ns.adobe.com/xdm/common/address"}}}),
                "properties.a.$ref",
            ),
            (
                json!({"title": "t", "allOf": [{"$ref": "https://ns.adobe.com/xdm/context/profile"},
                                               {"$ref": "https://ns.adobe.com/xdm/context/experienceevent-web"}]}),
                "allOf[1].$ref",
            ),
            (
                json!({"title": "t", "allOf": [{"$ref": "https://ns.adobe.com/xdm/context/profile"},
                                               {"$ref": "https://ns.adobe.com/acme/mixins/custom"}]}),
                "allOf[1].$ref",
            ),
            (
                json!({"title": "t", "meta:class": "https://ns.adobe.com/xdm/context/profile",
                       "allOf": [{"$ref": "https://ns.adobe.com/xdm/context/experienceevent"}]}),
                "allOf[0].$ref",
            ),
        ];
        for (body, field) in cases {
            let err = XdmSchema::from_json(&body, ids()).unwrap_err();
            assert_eq!(err.field, field, "{body} → {err}");
            assert!(!err.fix.is_empty());
        }
    }

    #[test]
    fn a_field_declared_twice_with_two_types_is_refused() {
        let body = json!({
            "title": "t",
            "allOf": [
                {"$ref": "https://ns.adobe.com/xdm/context/profile"},
                {"$ref": "https://ns.adobe.com/xdm/context/profile-person-details"}
            ],
            "properties": {"person": {"type": "object", "properties": {"birthDate": {"type": "integer"}}}}
        });
        let err = XdmSchema::from_json(&body, ids()).unwrap_err();
        assert_eq!(err.field, "person.birthDate");
        assert_eq!(err.value.as_deref(), Some("integer"));
        assert!(err.fix.contains("date"), "{err}");

        let core_clash = json!({"title": "t", "meta:class": "https://ns.adobe.com/xdm/context/profile",
                                "properties": {"identityMap": {"type": "string"}}});
        assert_eq!(
            XdmSchema::from_json(&core_clash, ids()).unwrap_err().field,
            "identityMap"
        );
    }
}
