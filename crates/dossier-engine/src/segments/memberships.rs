//! The membership store: one Parquet file per segment with the `ups` entries evaluation wrote,
//! and how those entries land on the profiles an export or a lookup builds.
//!
//! A row is one profile that has an entry: all the identities the profile had when it was
//! evaluated, its primary identity first, its `status` and `lastQualificationTime`. Under `pdg`
//! links of the identity graph only accumulate, so these identities still fall into one profile
//! later (the same or a bigger one), which gets the entry. Under `none` a profile is its primary
//! identity's fragments, and the entry belongs to the profile keyed by the row's first identity
//! only: the others may key profiles of their own (a loyalty record whose primary is the CRM
//! profile's email), which did not qualify.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, AsArray, ListArray, RecordBatch, StringArray, StructArray, TimestampMillisecondArray,
};
use arrow::buffer::OffsetBuffer;
use arrow::datatypes::{DataType, Field, Fields, Schema, SchemaRef, TimeUnit, TimestampMillisecondType};
use bytes::Bytes;
use object_store::ObjectStoreExt;
use object_store::path::Path as ObjectPath;
use parquet::arrow::ArrowWriter;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use serde_json::{Map, Value, json};

use dossier_model::tenancy::Tenant;
use dossier_model::time::EpochMillis;
use dossier_storage::{Lake, MetaStore};

use crate::EngineError;
use crate::identity::Identity;
use crate::profiles::json_columns::column_from_json;
use crate::profiles::merge::SEGMENT_MEMBERSHIP;

/// The namespace evaluated memberships are written under.
pub const UPS: &str = "ups";

/// A membership status evaluation writes: the one an export filters on.
pub use dossier_model::export_job::MembershipStatus as Status;

/// One profile's entry for one segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entry {
    pub status: Status,
    pub time: EpochMillis,
}

impl Entry {
    pub fn to_json(self) -> Value {
        let time = jiff::Timestamp::from_millisecond(self.time).unwrap_or(jiff::Timestamp::UNIX_EPOCH);
        json!({"status": self.status.as_str(), "lastQualificationTime": time.to_string()})
    }
}

/// One row of a membership file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    pub identities: Vec<Identity>,
    pub entry: Entry,
}

fn file_schema() -> SchemaRef {
    let identity = Fields::from(vec![
        Field::new("namespace", DataType::Utf8, false),
        Field::new("id", DataType::Utf8, false),
    ]);
    Arc::new(Schema::new(vec![
        Field::new(
            "identities",
            DataType::List(Arc::new(Field::new_list_field(DataType::Struct(identity), false))),
            false,
        ),
        Field::new("status", DataType::Utf8, false),
        Field::new(
            "lastQualificationTime",
            DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into())),
            false,
        ),
    ]))
}

/// Writes `rows` as the file at `location`.
pub async fn write_rows(lake: &Lake, location: &ObjectPath, rows: &[Row]) -> Result<(), EngineError> {
    let schema = file_schema();
    let DataType::List(item) = schema.field(0).data_type().clone() else {
        unreachable!("identities is a list")
    };
    let DataType::Struct(identity_fields) = item.data_type().clone() else {
        unreachable!("an identity is a struct")
    };
    let mut offsets = vec![0i32];
    let (mut namespaces, mut ids) = (Vec::new(), Vec::new());
    for row in rows {
        for identity in &row.identities {
            namespaces.push(identity.namespace.as_str());
            ids.push(identity.id.as_str());
        }
        offsets.push(namespaces.len() as i32);
    }
    let identities = StructArray::try_new(
        identity_fields,
        vec![
            Arc::new(StringArray::from(namespaces)) as ArrayRef,
            Arc::new(StringArray::from(ids)) as ArrayRef,
        ],
        None,
    )?;
    let list = ListArray::try_new(item, OffsetBuffer::new(offsets.into()), Arc::new(identities), None)?;
    let statuses = StringArray::from_iter_values(rows.iter().map(|r| r.entry.status.as_str()));
    let times = TimestampMillisecondArray::from_iter_values(rows.iter().map(|r| r.entry.time)).with_timezone("UTC");
    let batch = RecordBatch::try_new(
        schema.clone(),
        vec![Arc::new(list), Arc::new(statuses), Arc::new(times)],
    )?;
    let mut buffer = Vec::new();
    let mut writer = ArrowWriter::try_new(&mut buffer, schema, None)?;
    writer.write(&batch)?;
    writer.close()?;
    lake.put(location, Bytes::from(buffer)).await?;
    Ok(())
}

/// Reads the file at `location`.
pub async fn read_rows(lake: &Lake, location: &ObjectPath) -> Result<Vec<Row>, EngineError> {
    let bytes = lake
        .store()
        .get(location)
        .await
        .map_err(|e| EngineError::Invalid(format!("membership file {location}: {e}")))?
        .bytes()
        .await
        .map_err(|e| EngineError::Invalid(format!("membership file {location}: {e}")))?;
    let reader = ParquetRecordBatchReaderBuilder::try_new(bytes)?.build()?;
    let mut rows = Vec::new();
    for batch in reader {
        let batch = batch?;
        let lists = batch.column(0).as_list::<i32>();
        let statuses = batch.column(1).as_string::<i32>();
        let times = batch.column(2).as_primitive::<TimestampMillisecondType>();
        for r in 0..batch.num_rows() {
            let identities = lists.value(r);
            let identities = identities.as_struct();
            let namespaces = identities.column(0).as_string::<i32>();
            let ids = identities.column(1).as_string::<i32>();
            let Some(status) = Status::parse(statuses.value(r)) else {
                continue;
            };
            rows.push(Row {
                identities: (0..identities.len())
                    .map(|i| Identity::new(namespaces.value(i), ids.value(i)))
                    .collect(),
                entry: Entry {
                    status,
                    time: times.value(r),
                },
            });
        }
    }
    Ok(rows)
}

/// The current rows of every evaluated segment of the tenant.
pub async fn current_memberships(
    meta: &MetaStore,
    lake: &Lake,
    tenant: &Tenant,
) -> Result<Vec<(String, Vec<Row>)>, EngineError> {
    let mut out = Vec::new();
    for file in meta.membership_files(tenant).await? {
        let rows = read_rows(lake, &ObjectPath::from(file.path.as_str())).await?;
        out.push((file.segment_id, rows));
    }
    Ok(out)
}

/// Finds the profiles (by index) that stored identities belong to, under one keying of
/// profiles: by primary identity (`none`) or by graph component (`pdg`).
pub struct ProfileIndex<'a> {
    keys: HashMap<&'a Identity, u32>,
    key_of: KeyOf<'a>,
}

/// How a stored identity finds the key of its profile.
enum KeyOf<'a> {
    /// `none`: an identity is its own profile's key.
    Itself,
    /// `pdg`, one profile: every identity of its component.
    Members(&'a HashSet<Identity>),
    /// `pdg`, the component of just the identities that will be asked about resolved
    /// beforehand, and the profile of each component.
    Components {
        component_of: &'a HashMap<Identity, u32>,
        profile_of: HashMap<u32, u32>,
    },
}

impl<'a> ProfileIndex<'a> {
    /// Profiles keyed by primary identity (`none`): `profiles[p]` is profile `p`'s key.
    pub fn new(profiles: &'a [Identity]) -> Self {
        let keys = profiles.iter().enumerate().map(|(p, key)| (key, p as u32)).collect();
        Self {
            keys,
            key_of: KeyOf::Itself,
        }
    }

    /// One profile (number 0) known by every identity of its graph component (`pdg`).
    pub fn by_members(members: &'a HashSet<Identity>) -> Self {
        Self {
            keys: HashMap::new(),
            key_of: KeyOf::Members(members),
        }
    }

    /// Profiles known by graph component: `component_of` gives the component of every identity
    /// that will be looked up, `profile_of` the profile of each component.
    pub fn by_component(component_of: &'a HashMap<Identity, u32>, profile_of: HashMap<u32, u32>) -> Self {
        Self {
            keys: HashMap::new(),
            key_of: KeyOf::Components {
                component_of,
                profile_of,
            },
        }
    }

    /// The profiles a stored row with `identities` belongs to, each once: under `none` the one
    /// keyed by its first (primary) identity, under `pdg` every one any identity falls in.
    pub fn profiles_of(&self, identities: &[Identity]) -> Vec<u32> {
        let identities = match self.key_of {
            KeyOf::Itself => &identities[..identities.len().min(1)],
            _ => identities,
        };
        let mut found = Vec::new();
        for identity in identities {
            let key = match &self.key_of {
                KeyOf::Itself => Some(identity),
                KeyOf::Members(members) => {
                    if members.contains(identity) && found.is_empty() {
                        found.push(0);
                    }
                    continue;
                }
                KeyOf::Components {
                    component_of,
                    profile_of,
                } => {
                    let profile = component_of.get(identity).and_then(|c| profile_of.get(c));
                    if let Some(&p) = profile
                        && !found.contains(&p)
                    {
                        found.push(p);
                    }
                    continue;
                }
            };
            if let Some(&p) = key.and_then(|k| self.keys.get(k))
                && !found.contains(&p)
            {
                found.push(p);
            }
        }
        found
    }
}

/// Each profile's entry from `rows`; when several rows land on one (merged) profile the one
/// with the latest `lastQualificationTime` wins.
pub fn entries_by_profile(rows: &[Row], index: &ProfileIndex<'_>, profiles: usize) -> Vec<Option<Entry>> {
    let mut entries: Vec<Option<Entry>> = vec![None; profiles];
    for row in rows {
        for p in index.profiles_of(&row.identities) {
            let slot = &mut entries[p as usize];
            if slot.is_none_or(|current| row.entry.time >= current.time) {
                *slot = Some(row.entry);
            }
        }
    }
    entries
}

/// The evaluated (`ups`) memberships of the profiles an export built, to lay over the
/// memberships their fragments carry.
#[derive(Debug, Default)]
pub struct MembershipOverlay {
    /// Profile → (segment id, entry).
    by_profile: HashMap<u32, Vec<(Arc<str>, Entry)>>,
}

impl MembershipOverlay {
    /// The entries of `segments` (as [`current_memberships`] gives them) of the `profiles`
    /// profiles `index` knows.
    pub fn of_segments(segments: &[(String, Vec<Row>)], index: &ProfileIndex<'_>, profiles: usize) -> Self {
        let mut overlay = Self::default();
        for (segment, rows) in segments {
            let segment: Arc<str> = Arc::from(segment.as_str());
            for (p, entry) in entries_by_profile(rows, index, profiles).into_iter().enumerate() {
                if let Some(entry) = entry {
                    overlay
                        .by_profile
                        .entry(p as u32)
                        .or_default()
                        .push((segment.clone(), entry));
                }
            }
        }
        overlay
    }

    pub fn is_empty(&self) -> bool {
        self.by_profile.is_empty()
    }

    /// Profile `profile`'s entry for `segment`, if it has one.
    pub fn entry(&self, profile: u32, segment: &str) -> Option<Entry> {
        let entries = self.by_profile.get(&profile)?;
        entries.iter().find(|(s, _)| s.as_ref() == segment).map(|(_, e)| *e)
    }

    /// Every profile with evaluated entries, and its (segment id, entry) pairs.
    pub fn entries(&self) -> impl Iterator<Item = (u32, &[(Arc<str>, Entry)])> {
        self.by_profile.iter().map(|(p, entries)| (*p, entries.as_slice()))
    }

    /// Lays the entries of `profiles[g]` over `memberships[g]` (merged `segmentMembership`
    /// values), by the merge's rule: per namespace and segment, the latest
    /// `lastQualificationTime` wins.
    pub fn apply(&self, memberships: &mut [Value], profiles: &[u32]) {
        if self.is_empty() {
            return;
        }
        for (value, profile) in memberships.iter_mut().zip(profiles) {
            if let Some(entries) = self.by_profile.get(profile) {
                overlay_entries(value, entries.iter().map(|(s, e)| (s.as_ref(), *e)));
            }
        }
    }
}

fn qualification_millis(entry: &Value) -> Option<i64> {
    entry
        .get("lastQualificationTime")
        .and_then(Value::as_str)
        .and_then(|t| t.parse::<jiff::Timestamp>().ok())
        .map(|t| t.as_millisecond())
}

/// Lays `entries` over one `segmentMembership` value (JSON `null` when the profile has none).
pub fn overlay_entries<'a>(memberships: &mut Value, entries: impl IntoIterator<Item = (&'a str, Entry)>) {
    for (segment, entry) in entries {
        if !memberships.is_object() {
            *memberships = Value::Object(Map::new());
        }
        let namespaces = memberships.as_object_mut().expect("made an object above");
        let ups = namespaces.entry(UPS).or_insert_with(|| Value::Object(Map::new()));
        if !ups.is_object() {
            *ups = Value::Object(Map::new());
        }
        let segments = ups.as_object_mut().expect("made an object above");
        let newer = segments
            .get(segment)
            .is_none_or(|current| qualification_millis(current).is_none_or(|t| entry.time >= t));
        if newer {
            segments.insert(segment.to_owned(), entry.to_json());
        }
    }
}

/// The evaluated entries of the one profile (number 0) `index` knows (a lookup), by segment.
pub async fn entries_of_profile(
    meta: &MetaStore,
    lake: &Lake,
    tenant: &Tenant,
    index: &ProfileIndex<'_>,
) -> Result<Vec<(String, Entry)>, EngineError> {
    let mut out = Vec::new();
    for (segment, rows) in current_memberships(meta, lake, tenant).await? {
        if let Some(entry) = entries_by_profile(&rows, index, 1)[0] {
            out.push((segment, entry));
        }
    }
    Ok(out)
}

/// `merged` with its `segmentMembership` column replaced by `memberships` (one per row), for
/// the merged rows an export writes once evaluated entries are laid over.
pub fn with_memberships(merged: RecordBatch, memberships: Vec<Value>) -> Result<RecordBatch, EngineError> {
    let schema = merged.schema();
    let Some((index, field)) = schema.column_with_name(SEGMENT_MEMBERSHIP) else {
        return Ok(merged);
    };
    let mut columns = merged.columns().to_vec();
    columns[index] = column_from_json(field, memberships)?;
    Ok(RecordBatch::try_new(schema.clone(), columns)?)
}
