//! A record's JSON text checked against its schema while it is parsed, without building it.
//!
//! [`XdmSchema::validate_record`] needs the record as a `serde_json::Value`, and building that
//! value (a map and a string per key, for every object of the record) costs several times what
//! the check and the decoding into Arrow do. Most records of an upload are valid, and for them
//! only the answer matters. [`XdmSchema::surely_accepts`] walks the text once with the schema in
//! hand and answers yes only when `validate_record` would find nothing; when it says no, the
//! caller builds the value and lets `validate_record` say what is wrong, so error reports are
//! unchanged.
//!
//! It says no to more than `validate_record` refuses: an object or map that repeats a key is
//! one (the value keeps the last, a reader of the text may keep another), so such a record is
//! always decided the slow way.

use std::fmt;
use std::hash::{BuildHasher, BuildHasherDefault, DefaultHasher};

use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

use super::validate::{parse_date, parse_date_time};
use super::{XdmField, XdmSchema, XdmType};

impl XdmSchema {
    /// Whether `text` is one JSON object that [`XdmSchema::validate_record`] accepts. `false`
    /// means "not sure": the record may still be valid (for example when an object repeats a
    /// key), so a caller that needs the verdict or the errors builds the value and validates it.
    pub fn surely_accepts(&self, text: &str) -> bool {
        let mut deserializer = serde_json::Deserializer::from_str(text);
        Fields(&self.fields)
            .deserialize(&mut deserializer)
            .and_then(|()| deserializer.end())
            .is_ok()
    }
}

/// Why the walk stopped; never shown, since the slow path says what is wrong.
#[derive(Debug)]
struct Doubt;

impl fmt::Display for Doubt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("not surely valid")
    }
}

fn doubt<E: de::Error>() -> E {
    E::custom(Doubt)
}

/// An object whose keys must be `0`'s fields (or carry null), each at most once.
struct Fields<'a>(&'a [XdmField]);

impl<'de> DeserializeSeed<'de> for Fields<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_map(ObjectVisitor(self.0))
    }
}

struct ObjectVisitor<'a>(&'a [XdmField]);

impl<'de> Visitor<'de> for ObjectVisitor<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut entries: A) -> Result<(), A::Error> {
        let fields = self.0;
        let mut inline = [0u64; 4];
        let mut heap = Vec::new();
        let words = fields.len().div_ceil(64);
        let seen: &mut [u64] = if words <= inline.len() {
            &mut inline[..words]
        } else {
            heap.resize(words, 0);
            &mut heap
        };
        while let Some(found) = entries.next_key_seed(FieldName(fields))? {
            match found {
                Some(index) => {
                    let (word, bit) = (index / 64, 1u64 << (index % 64));
                    if seen[word] & bit != 0 {
                        return Err(doubt());
                    }
                    seen[word] |= bit;
                    entries.next_value_seed(Typed(&fields[index].ty))?;
                }
                // A field the schema does not have is accepted only when it is null.
                None => {
                    if entries.next_value::<Option<IgnoredAny>>()?.is_some() {
                        return Err(doubt());
                    }
                }
            }
        }
        Ok(())
    }
}

/// A key of an object: the index of the field it names, if any.
struct FieldName<'a>(&'a [XdmField]);

impl<'de> DeserializeSeed<'de> for FieldName<'_> {
    type Value = Option<usize>;
    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Option<usize>, D::Error> {
        deserializer.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for FieldName<'_> {
    type Value = Option<usize>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a field name")
    }

    fn visit_str<E: de::Error>(self, name: &str) -> Result<Option<usize>, E> {
        Ok(self.0.iter().position(|field| field.name == name))
    }
}

/// A map's key, hashed: repeated keys make the record doubtful (a collision only costs the slow path).
struct KeyHash;

impl<'de> DeserializeSeed<'de> for KeyHash {
    type Value = u64;
    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<u64, D::Error> {
        deserializer.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for KeyHash {
    type Value = u64;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a map key")
    }

    fn visit_str<E: de::Error>(self, key: &str) -> Result<u64, E> {
        Ok(BuildHasherDefault::<DefaultHasher>::default().hash_one(key))
    }
}

/// One value of type `0`, or null.
struct Typed<'a>(&'a XdmType);

impl<'de> DeserializeSeed<'de> for Typed<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Typed<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "a {} or null", self.0)
    }

    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        Ok(())
    }

    fn visit_none<E: de::Error>(self) -> Result<(), E> {
        Ok(())
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<(), E> {
        match self.0 {
            XdmType::Boolean => Ok(()),
            _ => Err(doubt()),
        }
    }

    fn visit_i64<E: de::Error>(self, _: i64) -> Result<(), E> {
        match self.0 {
            XdmType::Integer | XdmType::Number => Ok(()),
            _ => Err(doubt()),
        }
    }

    fn visit_u64<E: de::Error>(self, value: u64) -> Result<(), E> {
        match self.0 {
            XdmType::Integer if i64::try_from(value).is_ok() => Ok(()),
            XdmType::Number => Ok(()),
            _ => Err(doubt()),
        }
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<(), E> {
        match self.0 {
            XdmType::Number => Ok(()),
            _ => Err(doubt()),
        }
    }

    fn visit_str<E: de::Error>(self, text: &str) -> Result<(), E> {
        let accepted = match self.0 {
            XdmType::String => true,
            XdmType::DateTime => parse_date_time(text).is_some(),
            XdmType::Date => parse_date(text).is_some(),
            _ => false,
        };
        if accepted { Ok(()) } else { Err(doubt()) }
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut items: A) -> Result<(), A::Error> {
        let XdmType::Array(item) = self.0 else {
            return Err(doubt());
        };
        while items.next_element_seed(Typed(item))?.is_some() {}
        Ok(())
    }

    fn visit_map<A: MapAccess<'de>>(self, mut entries: A) -> Result<(), A::Error> {
        match self.0 {
            XdmType::Object(fields) => ObjectVisitor(fields).visit_map(entries),
            XdmType::Map(value) => {
                let mut keys = Vec::new();
                while let Some(key) = entries.next_key_seed(KeyHash)? {
                    keys.push(key);
                    entries.next_value_seed(Typed(value))?;
                }
                keys.sort_unstable();
                if keys.windows(2).any(|pair| pair[0] == pair[1]) {
                    return Err(doubt());
                }
                Ok(())
            }
            _ => Err(doubt()),
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use serde_json::{Value, json};

    use super::*;
    use crate::xdm::SchemaClass;

    fn schema() -> XdmSchema {
        let mut schema = XdmSchema::builtin_profile();
        schema.fields.push(XdmField::new(
            "shop",
            XdmType::Object(vec![
                XdmField::new("points", XdmType::Integer),
                XdmField::new("ratio", XdmType::Number),
                XdmField::new("member", XdmType::Boolean),
                XdmField::new("since", XdmType::DateTime),
                XdmField::new("birthday", XdmType::Date),
                XdmField::new("tags", XdmType::Array(Box::new(XdmType::String))),
                XdmField::new("scores", XdmType::Map(Box::new(XdmType::Integer))),
            ]),
        ));
        schema
    }

    fn accepts(record: &str) -> bool {
        schema().surely_accepts(record)
    }

    #[test]
    fn valid_records_are_accepted_without_building_them() {
        let record = json!({
            "_id": "r1",
            "identityMap": {"Email": [{"id": "a@example.com", "primary": true, "authenticatedState": "ambiguous"}]},
            "shop": {
                "points": -3, "ratio": 1.5e3, "member": true, "since": "2024-05-01T12:30:00.250+02:00",
                "birthday": "1985-04-12", "tags": ["a", "b"], "scores": {"x": 1, "y": i64::MAX},
            },
            "unknownButNull": null,
        });
        assert!(accepts(&record.to_string()));
        assert!(schema().validate_record(&record).is_ok());
        assert!(accepts(r#"{"shop": {"ratio": 7, "points": null, "tags": [null]}}"#));
    }

    #[test]
    fn what_validation_refuses_is_doubted() {
        for text in [
            r#"{"shop": {"points": 1.0}}"#,
            r#"{"shop": {"points": 9223372036854775808}}"#,
            r#"{"shop": {"points": "1"}}"#,
            r#"{"shop": {"ratio": "1.5"}}"#,
            r#"{"shop": {"member": 1}}"#,
            r#"{"shop": {"since": "2024-05-01"}}"#,
            r#"{"shop": {"birthday": "1985-4-12"}}"#,
            r#"{"shop": {"tags": "a"}}"#,
            r#"{"shop": {"tags": [1]}}"#,
            r#"{"shop": {"scores": {"x": "1"}}}"#,
            r#"{"shop": []}"#,
            r#"{"nope": 1}"#,
            r#"[1]"#,
            r#"null"#,
            r#"{"_id": "r1""#,
            r#"{"_id": "r1"} x"#,
        ] {
            assert!(!accepts(text), "{text}");
            if let Ok(value) = serde_json::from_str::<Value>(text)
                && value.is_object()
            {
                assert!(schema().validate_record(&value).is_err(), "{text}");
            }
        }
    }

    #[test]
    fn a_repeated_key_is_doubted_though_it_may_be_valid() {
        assert!(!accepts(r#"{"_id": "a", "_id": "b"}"#));
        assert!(!accepts(r#"{"shop": {"scores": {"x": 1, "x": 2}}}"#));
        assert!(accepts(r#"{"shop": {"scores": {"x": 1, "y": 2}}}"#));
    }

    #[test]
    fn an_event_schema_is_checked_the_same_way() {
        let schema = XdmSchema::builtin_experience_event();
        assert_eq!(schema.class, SchemaClass::ExperienceEvent);
        assert!(schema.surely_accepts(r#"{"_id": "e1", "timestamp": "2024-05-01T12:30:00Z"}"#));
        assert!(!schema.surely_accepts(r#"{"_id": "e1", "timestamp": "yesterday"}"#));
    }

    /// JSON values of every shape, often of the types the schema wants.
    fn value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            any::<i64>().prop_map(Value::from),
            any::<u64>().prop_map(Value::from),
            (-1e6f64..1e6).prop_map(Value::from),
            Just(json!("2024-05-01T12:30:00Z")),
            Just(json!("1985-04-12")),
            Just(json!("1985-02-30")),
            "[a-z]{0,3}".prop_map(Value::from),
        ];
        leaf.prop_recursive(3, 24, 4, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..3).prop_map(Value::from),
                prop::collection::vec(
                    (
                        prop_oneof![
                            Just("points".to_owned()),
                            Just("ratio".to_owned()),
                            Just("member".to_owned()),
                            Just("since".to_owned()),
                            Just("birthday".to_owned()),
                            Just("tags".to_owned()),
                            Just("scores".to_owned()),
                            "[a-z]{1,2}"
                        ],
                        inner
                    ),
                    0..4
                )
                .prop_map(|entries| Value::Object(entries.into_iter().collect())),
            ]
        })
    }

    proptest! {
        /// The invariant the fast path rests on: what the quick check accepts, validation accepts.
        #[test]
        fn whatever_is_surely_accepted_validates(shop in value(), id in value()) {
            let record = json!({"_id": id, "shop": shop});
            let text = record.to_string();
            if accepts(&text) {
                prop_assert!(schema().validate_record(&record).is_ok(), "{}", text);
            }
        }

        /// And the other way, for records without repeated keys (a JSON value has none).
        #[test]
        fn whatever_validates_is_surely_accepted(shop in value(), id in value()) {
            let record = json!({"_id": id, "shop": shop});
            if schema().validate_record(&record).is_ok() {
                prop_assert!(accepts(&record.to_string()), "{}", record);
            }
        }
    }
}
