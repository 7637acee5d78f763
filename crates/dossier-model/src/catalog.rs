//! The Catalog's objects — datasets and batches — and the validation of requests about them.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::ValidationError;
use crate::ids::{BatchId, ClientId, DatasetId};
use crate::tenancy::{OrgId, SandboxName};
use crate::time::EpochMillis;

/// Tags on a dataset: each key holds a list of strings (`unifiedProfile: ["enabled:true"]`).
pub type Tags = BTreeMap<String, Vec<String>>;

/// A dataset's reference to the schema its rows follow.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SchemaRef {
    pub id: String,
    #[serde(rename = "contentType")]
    pub content_type: String,
}

/// How a dataset's files are stored. Profile data is only ever Parquet.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileDescription {
    pub persisted: bool,
    #[serde(rename = "containerFormat")]
    pub container_format: String,
    pub format: String,
}

impl Default for FileDescription {
    fn default() -> Self {
        Self {
            persisted: true,
            container_format: "parquet".into(),
            format: "parquet".into(),
        }
    }
}

/// Whether a dataset holds records (one state per entity) or time series (events).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, strum::Display, strum::EnumString, strum::IntoStaticStr,
)]
#[strum(serialize_all = "kebab-case")]
pub enum DataBehavior {
    #[serde(rename = "record")]
    Record,
    #[serde(rename = "time-series")]
    TimeSeries,
}

impl DataBehavior {
    pub fn as_str(self) -> &'static str {
        self.into()
    }
}

/// A dataset as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct Dataset {
    pub id: DatasetId,
    pub org: OrgId,
    pub sandbox: SandboxName,
    pub name: String,
    pub description: Option<String>,
    pub schema_ref: SchemaRef,
    pub file_description: FileDescription,
    pub tags: Tags,
    pub aspect: Option<String>,
    pub data_behavior: DataBehavior,
    pub created: EpochMillis,
    pub updated: EpochMillis,
    pub created_client: ClientId,
    pub last_batch_id: Option<BatchId>,
    pub last_batch_status: Option<BatchStatus>,
}

impl Dataset {
    /// Whether the dataset feeds the profile store (`unifiedProfile: ["enabled:true"]`).
    pub fn is_profile_enabled(&self) -> bool {
        self.tags
            .get("unifiedProfile")
            .is_some_and(|values| values.iter().any(|v| v == "enabled:true"))
    }
}

/// A validated `POST /dataSets` body.
#[derive(Debug, Clone, PartialEq)]
pub struct NewDataset {
    pub name: String,
    pub description: Option<String>,
    pub schema_ref: SchemaRef,
    pub file_description: FileDescription,
    pub tags: Tags,
    pub aspect: Option<String>,
}

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

fn required_name(body: &Value) -> Result<String, ValidationError> {
    match optional_string(body, "name")? {
        Some(name) if !name.trim().is_empty() => Ok(name),
        Some(name) => Err(ValidationError::invalid(
            "name",
            name,
            "give the dataset a non-empty name",
        )),
        None => Err(ValidationError::missing(
            "name",
            "give the dataset a name, e.g. \"name\": \"Profile Data Export\"",
        )),
    }
}

fn parse_tags(body: &Value) -> Result<Option<Tags>, ValidationError> {
    let Some(value) = field(body, "tags") else {
        return Ok(None);
    };
    let fix = "tags are an object of string lists, e.g. {\"unifiedProfile\": [\"enabled:true\"]}";
    let Value::Object(map) = value else {
        return Err(ValidationError::invalid("tags", value, fix));
    };
    let mut tags = Tags::new();
    for (key, list) in map {
        let strings = list.as_array().and_then(|items| {
            items
                .iter()
                .map(|item| item.as_str().map(str::to_owned))
                .collect::<Option<Vec<_>>>()
        });
        match strings {
            Some(strings) => {
                tags.insert(key.clone(), strings);
            }
            None => return Err(ValidationError::invalid(format!("tags.{key}"), list, fix)),
        }
    }
    Ok(Some(tags))
}

fn parse_schema_ref(body: &Value) -> Result<SchemaRef, ValidationError> {
    let example = "e.g. {\"id\": \"https://ns.adobe.com/xdm/context/profile__union\", \"contentType\": \"application/vnd.adobe.xed+json;version=1\"}";
    let Some(value) = field(body, "schemaRef") else {
        return Err(ValidationError::missing(
            "schemaRef",
            format!("every dataset follows a schema: {example}"),
        ));
    };
    let Value::Object(_) = value else {
        return Err(ValidationError::invalid(
            "schemaRef",
            value,
            format!("expected an object, {example}"),
        ));
    };
    let id = match field(value, "id") {
        Some(Value::String(id)) if !id.is_empty() => id.clone(),
        Some(other) => {
            return Err(ValidationError::invalid(
                "schemaRef.id",
                other,
                format!("expected a schema id, {example}"),
            ));
        }
        None => {
            return Err(ValidationError::missing(
                "schemaRef.id",
                format!("name the schema, {example}"),
            ));
        }
    };
    let content_type = match field(value, "contentType") {
        None => crate::schema::SCHEMA_CONTENT_TYPE.to_owned(),
        Some(Value::String(ct)) => ct.clone(),
        Some(other) => {
            return Err(ValidationError::invalid(
                "schemaRef.contentType",
                other,
                "expected a string such as application/vnd.adobe.xed+json;version=1",
            ));
        }
    };
    Ok(SchemaRef { id, content_type })
}

fn parse_file_description(body: &Value) -> Result<FileDescription, ValidationError> {
    let Some(value) = field(body, "fileDescription") else {
        return Ok(FileDescription::default());
    };
    if !value.is_object() {
        return Err(ValidationError::invalid(
            "fileDescription",
            value,
            "expected an object such as {\"persisted\": true, \"containerFormat\": \"parquet\", \"format\": \"parquet\"}",
        ));
    }
    let mut description = FileDescription::default();
    match field(value, "persisted") {
        None => {}
        Some(Value::Bool(b)) => description.persisted = *b,
        Some(other) => {
            return Err(ValidationError::invalid(
                "fileDescription.persisted",
                other,
                "expected true or false",
            ));
        }
    }
    for (name, slot) in [
        ("containerFormat", &mut description.container_format),
        ("format", &mut description.format),
    ] {
        match field(value, name) {
            None => {}
            Some(Value::String(s)) if s.eq_ignore_ascii_case("parquet") => *slot = "parquet".into(),
            Some(other) => {
                return Err(ValidationError::invalid(
                    format!("fileDescription.{name}"),
                    other.as_str().map_or_else(|| other.to_string(), str::to_owned),
                    "profile data is stored as Parquet only: use \"parquet\"",
                ));
            }
        }
    }
    Ok(description)
}

impl NewDataset {
    /// Validates a `POST /dataSets` body. Whether the schema exists is for the caller to check,
    /// since that needs the sandbox's schema registry.
    pub fn from_json(body: &Value) -> Result<Self, ValidationError> {
        if !body.is_object() {
            return Err(ValidationError::invalid(
                "body",
                body,
                "send a JSON object describing the dataset",
            ));
        }
        Ok(Self {
            name: required_name(body)?,
            description: optional_string(body, "description")?,
            schema_ref: parse_schema_ref(body)?,
            file_description: parse_file_description(body)?,
            tags: parse_tags(body)?.unwrap_or_default(),
            aspect: optional_string(body, "aspect")?,
        })
    }
}

/// A validated `PATCH /dataSets/{id}` body: only these fields may change.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DatasetPatch {
    pub name: Option<String>,
    pub description: Option<String>,
    pub tags: Option<Tags>,
}

impl DatasetPatch {
    pub fn from_json(body: &Value) -> Result<Self, ValidationError> {
        if !body.is_object() {
            return Err(ValidationError::invalid(
                "body",
                body,
                "send a JSON object with name, description or tags",
            ));
        }
        for immutable in ["schemaRef", "fileDescription"] {
            if field(body, immutable).is_some() {
                return Err(ValidationError::invalid(
                    immutable,
                    &body[immutable],
                    "a dataset's schema and file format cannot change; create a new dataset instead",
                ));
            }
        }
        let name = match field(body, "name") {
            None => None,
            Some(_) => Some(required_name(body)?),
        };
        Ok(Self {
            name,
            description: optional_string(body, "description")?,
            tags: parse_tags(body)?,
        })
    }
}

/// A batch's life: created `loading`, then `processing` while it is validated or written, and
/// finally `success` (visible) or `failed` / `aborted` (never visible).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[derive(strum::Display, strum::EnumString, strum::IntoStaticStr)]
#[strum(serialize_all = "lowercase")]
#[strum(parse_err_ty = ValidationError, parse_err_fn = unknown_batch_status)]
pub enum BatchStatus {
    Loading,
    Processing,
    Success,
    Failed,
    Aborted,
}

impl BatchStatus {
    pub fn as_str(self) -> &'static str {
        self.into()
    }
}

fn unknown_batch_status(s: &str) -> ValidationError {
    ValidationError::invalid("status", s, "use one of loading, processing, success, failed, aborted")
}

/// One error recorded on a batch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchError {
    pub code: String,
    pub description: String,
}

/// The format of the files uploaded into an ingestion batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum InputFormat {
    Json,
    Parquet,
    Csv,
}

/// A batch as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct Batch {
    pub id: BatchId,
    pub org: OrgId,
    pub sandbox: SandboxName,
    pub dataset_id: DatasetId,
    pub status: BatchStatus,
    pub created: EpochMillis,
    pub updated: EpochMillis,
    pub started: Option<EpochMillis>,
    pub completed: Option<EpochMillis>,
    pub record_count: Option<i64>,
    pub size: Option<i64>,
    pub records_read: Option<i64>,
    pub errors: Vec<BatchError>,
    /// `{format, isMultiLineJson}` as the ingestion request gave it; `None` for export batches.
    pub input_format: Option<Value>,
    pub created_client: ClientId,
    /// AEP's `partialIngestion`: rows with errors are skipped (and reported) instead of failing
    /// the whole batch.
    pub partial_ingestion: bool,
}

impl Batch {
    /// Whether the batch was opened through the ingestion API (export batches have no input format).
    pub fn is_ingestion(&self) -> bool {
        self.input_format.is_some()
    }
}

/// A validated `POST /data/foundation/import/batches` body.
#[derive(Debug, Clone, PartialEq)]
pub struct NewIngestBatch {
    pub dataset_id: DatasetId,
    pub format: InputFormat,
    pub multi_line_json: bool,
    pub partial_ingestion: bool,
}

impl NewIngestBatch {
    pub fn from_json(body: &Value) -> Result<Self, ValidationError> {
        let dataset_id = match field(body, "datasetId") {
            Some(Value::String(id)) if !id.is_empty() => DatasetId::from_string(id.clone()),
            Some(other) => {
                return Err(ValidationError::invalid(
                    "datasetId",
                    other,
                    "expected the id of a dataset in this sandbox",
                ));
            }
            None => {
                return Err(ValidationError::missing(
                    "datasetId",
                    "name the dataset the batch loads into",
                ));
            }
        };
        let format_fix = "use {\"format\": \"json\"}, \"parquet\" or \"csv\"";
        let input = field(body, "inputFormat");
        let format = match input.and_then(|i| field(i, "format")) {
            None => return Err(ValidationError::missing("inputFormat.format", format_fix)),
            Some(Value::String(s)) => match s.to_ascii_lowercase().as_str() {
                "json" => InputFormat::Json,
                "parquet" => InputFormat::Parquet,
                "csv" => InputFormat::Csv,
                _ => return Err(ValidationError::invalid("inputFormat.format", s, format_fix)),
            },
            Some(other) => return Err(ValidationError::invalid("inputFormat.format", other, format_fix)),
        };
        let multi_line_json = match input.and_then(|i| field(i, "isMultiLineJson")) {
            None => false,
            Some(Value::Bool(b)) => *b,
            Some(other) => {
                return Err(ValidationError::invalid(
                    "inputFormat.isMultiLineJson",
                    other,
                    "expected true or false",
                ));
            }
        };
        let partial_ingestion = match field(body, "partialIngestion") {
            None => false,
            Some(Value::Bool(b)) => *b,
            Some(other) => {
                return Err(ValidationError::invalid(
                    "partialIngestion",
                    other,
                    "expected true or false",
                ));
            }
        };
        Ok(Self {
            dataset_id,
            format,
            multi_line_json,
            partial_ingestion,
        })
    }

    /// The `inputFormat` object as AEP echoes it on the batch.
    pub fn input_format_json(&self) -> Value {
        let format = serde_json::to_value(self.format).unwrap_or(Value::Null);
        let mut object = serde_json::json!({ "format": format });
        if self.format == InputFormat::Json {
            object["isMultiLineJson"] = Value::Bool(self.multi_line_json);
        }
        object
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn tutorial_body() -> Value {
        json!({
            "name": "Profile Data Export",
            "schemaRef": {"id": "https://ns.adobe.com/xdm/context/profile__union",
                          "contentType": "application/vnd.adobe.xed+json;version=1"},
            "fileDescription": {"persisted": true, "containerFormat": "parquet", "format": "parquet"},
            "aspect": "production"
        })
    }

    #[test]
    fn the_tutorial_dataset_body_is_valid() {
        let dataset = NewDataset::from_json(&tutorial_body()).unwrap();
        assert_eq!(dataset.name, "Profile Data Export");
        assert_eq!(dataset.schema_ref.id, crate::schema::PROFILE_UNION_SCHEMA_ID);
        assert_eq!(dataset.aspect.as_deref(), Some("production"));
        assert!(dataset.tags.is_empty());
    }

    #[test]
    fn missing_and_wrong_fields_are_named() {
        let mut body = tutorial_body();
        body.as_object_mut().unwrap().remove("name");
        assert_eq!(NewDataset::from_json(&body).unwrap_err().field, "name");

        let mut body = tutorial_body();
        body["fileDescription"]["format"] = json!("csv");
        let err = NewDataset::from_json(&body).unwrap_err();
        assert_eq!(err.field, "fileDescription.format");
        assert_eq!(err.value.as_deref(), Some("csv"));

        let mut body = tutorial_body();
        body["schemaRef"] = json!({});
        assert_eq!(NewDataset::from_json(&body).unwrap_err().field, "schemaRef.id");

        let mut body = tutorial_body();
        body["tags"] = json!({"unifiedProfile": "enabled:true"});
        assert_eq!(NewDataset::from_json(&body).unwrap_err().field, "tags.unifiedProfile");
    }

    #[test]
    fn patches_cannot_change_the_schema() {
        let err = DatasetPatch::from_json(&json!({"schemaRef": {"id": "x"}})).unwrap_err();
        assert_eq!(err.field, "schemaRef");
        let patch = DatasetPatch::from_json(&json!({"name": "renamed", "unknown": 1})).unwrap();
        assert_eq!(patch.name.as_deref(), Some("renamed"));
    }

    #[test]
    fn ingest_batches_need_a_dataset_and_a_format() {
        let ok = NewIngestBatch::from_json(&json!({"datasetId": "abc", "inputFormat": {"format": "JSON"}})).unwrap();
        assert_eq!(ok.format, InputFormat::Json);
        assert_eq!(
            ok.input_format_json(),
            json!({"format": "json", "isMultiLineJson": false})
        );
        let err =
            NewIngestBatch::from_json(&json!({"datasetId": "abc", "inputFormat": {"format": "xml"}})).unwrap_err();
        assert_eq!(err.field, "inputFormat.format");
        assert_eq!(NewIngestBatch::from_json(&json!({})).unwrap_err().field, "datasetId");
    }
}
