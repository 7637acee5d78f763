//! Checking one record (a profile record or an event, as JSON) against its schema.
//!
//! Only types are checked. A JSON `null` is accepted anywhere and means "absent". Rules about
//! identities (a record needs one) belong to ingestion, which reads [`XdmSchema::identities`].

use std::collections::HashMap;

use serde_json::{Map, Value};

use super::{FieldError, XdmField, XdmSchema, XdmType};

/// At most this many errors are listed for one record; a record that wrong is best fixed from the
/// first ones, and a huge array of bad values must not produce a huge report.
pub const MAX_FIELD_ERRORS: usize = 100;

#[derive(Default)]
struct Findings {
    errors: Vec<FieldError>,
    truncated: bool,
}

impl Findings {
    fn add(&mut self, path: &str, reason: String) {
        if self.errors.len() < MAX_FIELD_ERRORS {
            self.errors.push(FieldError {
                path: path.to_owned(),
                reason,
            });
        } else {
            self.truncated = true;
        }
    }

    /// Whether an error had to be left out: walking the record any further is wasted work.
    fn is_full(&self) -> bool {
        self.truncated
    }

    fn finish(mut self) -> Result<(), Vec<FieldError>> {
        if self.errors.is_empty() {
            return Ok(());
        }
        if self.truncated {
            self.errors.push(FieldError {
                path: String::new(),
                reason: format!("more errors follow; only the first {MAX_FIELD_ERRORS} are listed"),
            });
        }
        Err(self.errors)
    }
}

impl XdmSchema {
    /// Checks a record's values against the schema's types. Each error names the value's dot path
    /// with array indexes (`identities[2].id`) and says what would be accepted.
    pub fn validate_record(&self, record: &Value) -> Result<(), Vec<FieldError>> {
        let mut findings = Findings::default();
        match record {
            Value::Object(values) => check_fields(&self.fields, values, "", &mut findings),
            other => findings.add(
                "",
                format!("a record is a JSON object of fields, got {}", preview(other)),
            ),
        }
        findings.finish()
    }
}

fn child_path(parent: &str, name: &str) -> String {
    if parent.is_empty() {
        name.to_owned()
    } else {
        format!("{parent}.{name}")
    }
}

/// A map key as a path segment: `identityMap.Email`, or `identityMap["my ns"]` when the key is
/// not a plain name.
fn map_entry_path(parent: &str, key: &str) -> String {
    let plain = !key.is_empty() && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if plain {
        format!("{parent}.{key}")
    } else {
        format!("{parent}[{}]", Value::String(key.to_owned()))
    }
}

/// A value as it appears in a message: JSON, cut short.
fn preview(value: &Value) -> String {
    const LONGEST: usize = 60;
    let text = value.to_string();
    match text.char_indices().nth(LONGEST) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text,
    }
}

fn expected(what: &str, value: &Value) -> String {
    format!("expected {what}, got {}", preview(value))
}

/// Values of one object above which its fields are looked up in a map rather than scanned: a
/// scan per value is quadratic for a record that fills thousands of fields of a wide object, and
/// below this it costs at most this many scans, cheaper than building the map.
const SCAN_AT_MOST: usize = 32;

fn check_fields(fields: &[XdmField], values: &Map<String, Value>, parent: &str, findings: &mut Findings) {
    let by_name: Option<HashMap<&str, &XdmField>> =
        (values.len() > SCAN_AT_MOST).then(|| fields.iter().map(|field| (field.name.as_str(), field)).collect());
    for (name, value) in values {
        if value.is_null() {
            continue;
        }
        let path = child_path(parent, name);
        let found = match &by_name {
            Some(by_name) => by_name.get(name.as_str()).copied(),
            None => fields.iter().find(|field| field.name == *name),
        };
        match found {
            Some(field) => check_value(&field.ty, value, &path, findings),
            None => findings.add(&path, unknown_field(fields, parent)),
        }
        if findings.is_full() {
            return;
        }
    }
}

fn unknown_field(fields: &[XdmField], parent: &str) -> String {
    let names: Vec<&str> = fields.iter().map(|field| field.name.as_str()).collect();
    let place = if parent.is_empty() {
        "the dataset's schema".to_owned()
    } else {
        format!("'{parent}'")
    };
    format!(
        "not a field of {place}, whose fields are {}; remove it from the record or add it to the schema",
        names.join(", ")
    )
}

fn check_value(ty: &XdmType, value: &Value, path: &str, findings: &mut Findings) {
    if value.is_null() {
        return;
    }
    let problem = match ty {
        XdmType::String => (!value.is_string()).then(|| expected("a string", value)),
        XdmType::Integer => integer_problem(value),
        XdmType::Number => (!value.is_number()).then(|| expected("a number", value)),
        XdmType::Boolean => (!value.is_boolean()).then(|| expected("true or false", value)),
        XdmType::DateTime => value.as_str().and_then(parse_date_time).is_none().then(|| {
            expected(
                "a date-time such as 2024-05-01T12:30:00Z (RFC 3339, with Z or an offset such as +02:00)",
                value,
            )
        }),
        XdmType::Date => value
            .as_str()
            .and_then(parse_date)
            .is_none()
            .then(|| expected("a date such as 1985-04-12 (YYYY-MM-DD)", value)),
        XdmType::Object(fields) => match value {
            Value::Object(values) => return check_fields(fields, values, path, findings),
            _ => Some(expected("an object", value)),
        },
        XdmType::Array(item) => match value {
            Value::Array(items) => return check_items(item, items, path, findings),
            _ => Some(expected("an array", value)),
        },
        XdmType::Map(entry) => match value {
            Value::Object(entries) => return check_entries(entry, entries, path, findings),
            _ => Some(expected("an object whose keys are chosen by the data (a map)", value)),
        },
    };
    if let Some(reason) = problem {
        findings.add(path, reason);
    }
}

fn check_items(item: &XdmType, items: &[Value], path: &str, findings: &mut Findings) {
    for (index, value) in items.iter().enumerate() {
        check_value(item, value, &format!("{path}[{index}]"), findings);
        if findings.is_full() {
            return;
        }
    }
}

fn check_entries(entry: &XdmType, entries: &Map<String, Value>, path: &str, findings: &mut Findings) {
    for (key, value) in entries {
        check_value(entry, value, &map_entry_path(path, key), findings);
        if findings.is_full() {
            return;
        }
    }
}

/// Integers are 64-bit and written without a decimal point, so that every accepted value converts
/// to Int64 exactly.
fn integer_problem(value: &Value) -> Option<String> {
    let Value::Number(number) = value else {
        return Some(expected("an integer", value));
    };
    if number.is_i64() {
        return None;
    }
    let as_float = number.as_f64().unwrap_or(f64::NAN);
    let whole = number.is_u64() || (as_float.is_finite() && as_float.fract() == 0.0);
    Some(if whole && (number.is_u64() || as_float.abs() >= i64::MAX as f64) {
        format!("{number} is out of range: integers are 64-bit, from -9223372036854775808 to 9223372036854775807")
    } else if whole {
        format!("expected an integer written without a decimal point or exponent, got {number}")
    } else {
        format!("expected a whole number, got {number}")
    })
}

fn all_digits(bytes: &[u8]) -> bool {
    bytes.iter().all(u8::is_ascii_digit)
}

/// `YYYY-MM-DD`, checked byte by byte because the date parser also accepts other forms.
fn has_date_shape(bytes: &[u8]) -> bool {
    bytes.len() >= 10
        && all_digits(&bytes[0..4])
        && bytes[4] == b'-'
        && all_digits(&bytes[5..7])
        && bytes[7] == b'-'
        && all_digits(&bytes[8..10])
}

/// RFC 3339: `YYYY-MM-DDTHH:MM:SS[.fraction](Z|±HH:MM)`, `T` and `Z` in either case or a space for `T`.
fn has_rfc3339_shape(bytes: &[u8]) -> bool {
    if bytes.len() < 20 || !has_date_shape(bytes) || !matches!(bytes[10], b'T' | b't' | b' ') {
        return false;
    }
    let time = &bytes[11..19];
    if !(all_digits(&time[0..2])
        && time[2] == b':'
        && all_digits(&time[3..5])
        && time[5] == b':'
        && all_digits(&time[6..8]))
    {
        return false;
    }
    let mut rest = &bytes[19..];
    if let Some(fraction) = rest.strip_prefix(b".") {
        let digits = fraction.iter().take_while(|b| b.is_ascii_digit()).count();
        if digits == 0 || digits > 9 {
            return false;
        }
        rest = &fraction[digits..];
    }
    match rest {
        [b'Z' | b'z'] => true,
        [b'+' | b'-', h1, h2, b':', m1, m2] => all_digits(&[*h1, *h2, *m1, *m2]),
        _ => false,
    }
}

/// Parses an RFC 3339 date-time with any offset into microseconds since the Unix epoch (UTC), the
/// unit Arrow timestamps are stored in. `None` when the text is not a valid RFC 3339 date-time.
pub fn parse_date_time(text: &str) -> Option<i64> {
    if !has_rfc3339_shape(text.as_bytes()) {
        return None;
    }
    let normalized = format!("{}T{}", &text[..10], &text[11..]).replace(['z'], "Z");
    normalized
        .parse::<jiff::Timestamp>()
        .ok()
        .map(|instant| instant.as_microsecond())
}

/// Parses a `YYYY-MM-DD` date into days since 1970-01-01, the unit of Arrow's Date32.
pub fn parse_date(text: &str) -> Option<i32> {
    if text.len() != 10 || !has_date_shape(text.as_bytes()) {
        return None;
    }
    let date: jiff::civil::Date = text.parse().ok()?;
    date.since(jiff::civil::date(1970, 1, 1))
        .ok()
        .map(|span| span.get_days())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::xdm::SchemaClass;
    use serde_json::json;

    #[test]
    fn a_record_filling_thousands_of_fields_of_a_wide_object_is_checked_by_name() {
        let mut profile = XdmSchema::builtin_profile();
        let wide = (0..10_000)
            .map(|i| XdmField::new(format!("f{i:05}"), XdmType::Integer))
            .collect();
        profile.fields.push(XdmField::new("wide", XdmType::Object(wide)));
        let mut values: Map<String, Value> = (0..10_000).step_by(2).map(|i| (format!("f{i:05}"), json!(i))).collect();
        assert_eq!(profile.validate_record(&json!({"wide": values.clone()})), Ok(()));
        values.insert("f00001".into(), json!("one"));
        values.insert("nope".into(), json!(1));
        let errors = profile.validate_record(&json!({"wide": values})).unwrap_err();
        let paths: Vec<&str> = errors.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(paths, ["wide.f00001", "wide.nope"]);
    }

    fn schema() -> XdmSchema {
        let mut profile = XdmSchema::builtin_profile();
        profile.fields.push(XdmField::new(
            "loyalty",
            XdmType::Object(vec![
                XdmField::new("points", XdmType::Integer),
                XdmField::new("ratio", XdmType::Number),
                XdmField::new("member", XdmType::Boolean),
                XdmField::new("joined", XdmType::DateTime),
                XdmField::new("scores", XdmType::Map(Box::new(XdmType::Integer))),
            ]),
        ));
        profile
    }

    fn errors(record: Value) -> Vec<(String, String)> {
        schema()
            .validate_record(&record)
            .unwrap_err()
            .into_iter()
            .map(|e| (e.path, e.reason))
            .collect()
    }

    fn only_error(record: Value) -> (String, String) {
        let mut all = errors(record);
        assert_eq!(all.len(), 1, "{all:?}");
        all.remove(0)
    }

    #[test]
    fn a_good_record_passes_and_null_means_absent() {
        let record = json!({
            "_id": "r1",
            "identityMap": {"Email": [{"id": "a@example.com", "primary": true, "authenticatedState": "authenticated"}],
                            "my namespace": [{"id": "x"}]},
            "segmentMembership": {"AAM": {"seg1": {"status": "realized", "lastQualificationTime": "2019-09-01T10:00:00-07:00"}}},
            "identities": [{"id": "1", "namespace": {"code": "CRM"}, "primary": null}, null],
            "person": {"name": {"firstName": "Ada", "lastName": null}, "birthDate": "1815-12-10", "gender": null},
            "personalEmail": {"address": "ada@example.com", "primary": true},
            "loyalty": {"points": -9223372036854775808i64, "ratio": 1, "member": false,
                        "joined": "2024-02-29T23:59:59.123456z", "scores": {"a": 1}},
            "homeAddress": null,
            "notInSchemaButNull": null
        });
        assert_eq!(schema().validate_record(&record), Ok(()));
    }

    #[test]
    fn every_kind_of_bad_value_is_named_by_its_path() {
        let cases = [
            (json!({"_id": 7}), "_id", "expected a string, got 7"),
            (
                json!({"loyalty": {"points": "7"}}),
                "loyalty.points",
                "expected an integer",
            ),
            (json!({"loyalty": {"points": 7.5}}), "loyalty.points", "whole number"),
            (
                json!({"loyalty": {"points": 7.0}}),
                "loyalty.points",
                "without a decimal point",
            ),
            (
                json!({"loyalty": {"points": 18446744073709551615u64}}),
                "loyalty.points",
                "out of range",
            ),
            (json!({"loyalty": {"points": 1e30}}), "loyalty.points", "out of range"),
            (
                json!({"loyalty": {"ratio": "1.5"}}),
                "loyalty.ratio",
                "expected a number",
            ),
            (
                json!({"loyalty": {"member": "yes"}}),
                "loyalty.member",
                "expected true or false",
            ),
            (
                json!({"loyalty": {"joined": "2024-05-01"}}),
                "loyalty.joined",
                "RFC 3339",
            ),
            (
                json!({"loyalty": {"joined": "2024-05-01T12:00:00"}}),
                "loyalty.joined",
                "RFC 3339",
            ),
            (
                json!({"loyalty": {"joined": "2024-02-30T12:00:00Z"}}),
                "loyalty.joined",
                "RFC 3339",
            ),
            (
                json!({"loyalty": {"joined": 1714564800000i64}}),
                "loyalty.joined",
                "RFC 3339",
            ),
            (
                json!({"person": {"birthDate": "12/10/1815"}}),
                "person.birthDate",
                "YYYY-MM-DD",
            ),
            (
                json!({"person": {"birthDate": "1815-13-10"}}),
                "person.birthDate",
                "YYYY-MM-DD",
            ),
            (json!({"person": "Ada"}), "person", "expected an object"),
            (json!({"identities": {"id": "1"}}), "identities", "expected an array"),
            (
                json!({"identities": [{"id": "1"}, {"id": "2"}, {"id": 3}]}),
                "identities[2].id",
                "expected a string",
            ),
            (json!({"identityMap": [{"id": "1"}]}), "identityMap", "(a map)"),
            (
                json!({"identityMap": {"Email": [{"id": 1}]}}),
                "identityMap.Email[0].id",
                "expected a string",
            ),
            (
                json!({"identityMap": {"my ns": [{"primary": "yes"}]}}),
                "identityMap[\"my ns\"][0].primary",
                "true or false",
            ),
            (
                json!({"loyalty": {"scores": {"a": "x"}}}),
                "loyalty.scores.a",
                "expected an integer",
            ),
            (
                json!({"segmentMembership": {"ups": {"s1": {"lastQualificationTime": "yesterday"}}}}),
                "segmentMembership.ups.s1.lastQualificationTime",
                "RFC 3339",
            ),
            (
                json!({"loyaltyPoints": 3}),
                "loyaltyPoints",
                "not a field of the dataset's schema",
            ),
            (
                json!({"person": {"nickname": "A"}}),
                "person.nickname",
                "not a field of 'person'",
            ),
            (json!([1, 2]), "", "a record is a JSON object"),
        ];
        for (record, path, reason) in cases {
            let (got_path, got_reason) = only_error(record.clone());
            assert_eq!(got_path, path, "{record}");
            assert!(got_reason.contains(reason), "{record}: {got_reason}");
        }
    }

    #[test]
    fn unknown_fields_list_what_is_allowed_and_all_errors_are_reported() {
        let (_, reason) = only_error(json!({"person": {"nickname": "A"}}));
        assert!(reason.contains("name, birthDate, gender"), "{reason}");
        let all = errors(json!({"_id": 1, "loyalty": {"member": 1, "ratio": true}}));
        let paths: Vec<&str> = all.iter().map(|(p, _)| p.as_str()).collect();
        assert_eq!(paths, ["_id", "loyalty.member", "loyalty.ratio"]);
    }

    #[test]
    fn huge_bad_records_are_cut_short() {
        let record = json!({"identities": vec![json!({"id": 1}); 500]});
        let all = errors(record);
        assert_eq!(all.len(), MAX_FIELD_ERRORS + 1);
        assert_eq!(all[MAX_FIELD_ERRORS].0, "");
        assert!(all[MAX_FIELD_ERRORS].1.contains("only the first 100"));
    }

    #[test]
    fn date_times_are_rfc3339_with_any_offset() {
        assert_eq!(parse_date_time("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(parse_date_time("1970-01-01T01:00:00+01:00"), Some(0));
        assert_eq!(parse_date_time("1969-12-31T19:00:00.000001-05:00"), Some(1));
        assert_eq!(
            parse_date_time("2018-10-25T13:22:04-07:00"),
            parse_date_time("2018-10-25T20:22:04Z")
        );
        assert_eq!(parse_date_time("1970-01-01 00:00:01z"), Some(1_000_000));
        for bad in [
            "",
            "1970-01-01",
            "1970-01-01T00:00:00",
            "1970-01-01T00:00Z",
            "1970-01-01T00:00:00+0100",
            "1970-01-01T00:00:00.Z",
            "1970-01-01T00:00:00.1234567890Z",
            "1970-01-01T24:00:00Z",
            "1970-02-30T00:00:00Z",
            "1970-01-01T00:00:00Z[UTC]",
            "19700101T000000Z",
        ] {
            assert_eq!(parse_date_time(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn dates_are_days_since_the_epoch() {
        assert_eq!(parse_date("1970-01-01"), Some(0));
        assert_eq!(parse_date("1970-01-02"), Some(1));
        assert_eq!(parse_date("1969-12-31"), Some(-1));
        assert_eq!(parse_date("2000-02-29"), Some(11_016));
        for bad in [
            "",
            "1970-1-1",
            "19700101",
            "1970-01-01T00:00:00Z",
            "2001-02-29",
            "01/02/1970",
        ] {
            assert_eq!(parse_date(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn event_records_are_checked_the_same_way() {
        let events = XdmSchema::builtin_experience_event();
        assert_eq!(events.class, SchemaClass::ExperienceEvent);
        let good = json!({"_id": "e1", "timestamp": "2024-05-01T12:00:00Z",
                          "productListItems": [{"SKU": "A-1", "quantity": 2, "priceTotal": 9.5}],
                          "environment": {"browserDetails": {"name": "Firefox", "version": "125"}}});
        assert_eq!(events.validate_record(&good), Ok(()));
        let bad = json!({"timestamp": "now", "productListItems": [{"quantity": 1.5}]});
        let paths: Vec<String> = events
            .validate_record(&bad)
            .unwrap_err()
            .into_iter()
            .map(|e| e.path)
            .collect();
        assert_eq!(paths, ["timestamp", "productListItems[0].quantity"]);
    }
}
