//! The one XDM → Arrow mapping. Ingestion writes fragments with it and export writes profiles with
//! it, so a Parquet column always has the same type wherever it comes from.
//!
//! Every field is nullable. Lists name their item field `item` and maps name their parts
//! `entries` / `keys` / `values`: these are arrow-rs' builder defaults (`ListBuilder`,
//! `MapBuilder`), so arrays built the ordinary way have exactly these types.

use std::sync::Arc;

use arrow_schema::{DataType, Field, Fields, Schema, SchemaRef, TimeUnit};

use super::{XdmField, XdmSchema, XdmType, identity_map_xdm_type, segment_membership_xdm_type};

/// The Arrow type of an XDM type.
pub fn arrow_type(ty: &XdmType) -> DataType {
    match ty {
        XdmType::String => DataType::Utf8,
        XdmType::Integer => DataType::Int64,
        XdmType::Number => DataType::Float64,
        XdmType::Boolean => DataType::Boolean,
        XdmType::DateTime => DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
        XdmType::Date => DataType::Date32,
        XdmType::Object(fields) => DataType::Struct(fields.iter().map(arrow_field).collect::<Fields>()),
        XdmType::Array(item) => DataType::List(Arc::new(Field::new_list_field(arrow_type(item), true))),
        XdmType::Map(value) => map_of(arrow_type(value)),
    }
}

fn map_of(value: DataType) -> DataType {
    let entries = Fields::from(vec![
        Field::new("keys", DataType::Utf8, false),
        Field::new("values", value, true),
    ]);
    DataType::Map(Arc::new(Field::new("entries", DataType::Struct(entries), false)), false)
}

/// The nullable Arrow field of an XDM field.
pub fn arrow_field(field: &XdmField) -> Field {
    Field::new(&field.name, arrow_type(&field.ty), true)
}

/// `identityMap`: Map<Utf8, List<Struct{id Utf8, primary Boolean, authenticatedState Utf8}>>.
pub fn identity_map_type() -> DataType {
    arrow_type(&identity_map_xdm_type())
}

/// `segmentMembership`: Map<Utf8, Map<Utf8, Struct{status Utf8, lastQualificationTime
/// Timestamp(us, UTC), version Utf8, validUntil Timestamp(us, UTC)}>>.
pub fn segment_membership_type() -> DataType {
    arrow_type(&segment_membership_xdm_type())
}

impl XdmSchema {
    /// The Arrow schema of the schema's records: one nullable column per top-level field, in order.
    pub fn arrow_schema(&self) -> SchemaRef {
        Arc::new(Schema::new(self.fields.iter().map(arrow_field).collect::<Fields>()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc_micros() -> DataType {
        DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
    }

    #[test]
    fn identity_map_is_exactly_a_map_of_lists_of_identities() {
        let identity = DataType::Struct(Fields::from(vec![
            Field::new("id", DataType::Utf8, true),
            Field::new("primary", DataType::Boolean, true),
            Field::new("authenticatedState", DataType::Utf8, true),
        ]));
        let list = DataType::List(Arc::new(Field::new("item", identity, true)));
        let expected = DataType::Map(
            Arc::new(Field::new(
                "entries",
                DataType::Struct(Fields::from(vec![
                    Field::new("keys", DataType::Utf8, false),
                    Field::new("values", list, true),
                ])),
                false,
            )),
            false,
        );
        assert_eq!(identity_map_type(), expected);
    }

    #[test]
    fn segment_membership_is_exactly_a_map_of_maps_of_memberships() {
        let membership = DataType::Struct(Fields::from(vec![
            Field::new("status", DataType::Utf8, true),
            Field::new("lastQualificationTime", utc_micros(), true),
            Field::new("version", DataType::Utf8, true),
            Field::new("validUntil", utc_micros(), true),
        ]));
        let entries = |value: DataType| {
            Arc::new(Field::new(
                "entries",
                DataType::Struct(Fields::from(vec![
                    Field::new("keys", DataType::Utf8, false),
                    Field::new("values", value, true),
                ])),
                false,
            ))
        };
        let inner = DataType::Map(entries(membership), false);
        assert_eq!(segment_membership_type(), DataType::Map(entries(inner), false));
    }

    #[test]
    fn scalars_objects_and_arrays_map_as_documented() {
        let cases = [
            (XdmType::String, DataType::Utf8),
            (XdmType::Integer, DataType::Int64),
            (XdmType::Number, DataType::Float64),
            (XdmType::Boolean, DataType::Boolean),
            (XdmType::DateTime, utc_micros()),
            (XdmType::Date, DataType::Date32),
            (
                XdmType::Array(Box::new(XdmType::Integer)),
                DataType::List(Arc::new(Field::new("item", DataType::Int64, true))),
            ),
            (
                XdmType::Object(vec![XdmField::new("a", XdmType::Number)]),
                DataType::Struct(Fields::from(vec![Field::new("a", DataType::Float64, true)])),
            ),
        ];
        for (xdm, arrow) in cases {
            assert_eq!(arrow_type(&xdm), arrow, "{xdm}");
        }
    }

    #[test]
    fn the_profile_class_becomes_nullable_columns_in_order() {
        let schema = XdmSchema::builtin_profile().arrow_schema();
        let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
        assert_eq!(&names[..3], ["_id", "identityMap", "segmentMembership"]);
        assert!(schema.fields().iter().all(|f| f.is_nullable()));
        assert_eq!(
            schema.field_with_name("identityMap").unwrap().data_type(),
            &identity_map_type()
        );
        assert_eq!(
            schema.field_with_name("segmentMembership").unwrap().data_type(),
            &segment_membership_type()
        );
        let person = schema.field_with_name("person").unwrap();
        let DataType::Struct(person_fields) = person.data_type() else {
            panic!("person is a struct")
        };
        assert_eq!(
            person_fields.find("birthDate").unwrap().1.data_type(),
            &DataType::Date32
        );
        let identities = schema.field_with_name("identities").unwrap();
        assert!(matches!(identities.data_type(), DataType::List(_)));

        let events = XdmSchema::builtin_experience_event().arrow_schema();
        assert_eq!(events.field_with_name("timestamp").unwrap().data_type(), &utc_micros());
    }
}
