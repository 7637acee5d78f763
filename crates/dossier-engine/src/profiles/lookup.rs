//! Building the merged profile of one identity: what `GET /access/entities` answers, and what
//! an export would write for that customer.

use arrow::array::RecordBatch;
use serde_json::{Map, Value};

use dossier_model::merge_policy::{IdentityGraphType, MergePolicy};
use dossier_model::tenancy::Tenant;
use dossier_model::time::EpochMillis;
use dossier_storage::{Lake, MetaStore};

use super::build::keys::KeyedSources;
use super::build::{OneProfile, Partition, key_one_profile, read_event_identities, read_records};
use super::merge::{SEGMENT_MEMBERSHIP, merge_groups};
use crate::EngineError;
use crate::identity::Identity;
use crate::segments::memberships::ProfileIndex;
use crate::segments::{entries_of_profile, overlay_entries};

/// A merged profile as profile access shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct MergedProfile {
    /// The profile's key: its primary identity (`none`) or the smallest identity of its graph
    /// component (`pdg`), as `namespace:id`.
    pub entity_id: String,
    /// The merged attributes, absent values left out.
    pub entity: Value,
    /// The latest ingestion time among the profile's fragments.
    pub last_modified: EpochMillis,
    /// The datasets whose fragments make the profile.
    pub sources: Vec<String>,
}

fn render(identity: &Identity) -> String {
    format!("{}:{}", identity.namespace, identity.id)
}

/// The merged profile that `identity` belongs to under `policy`, or `None` when no fragment of
/// the sandbox makes one.
///
/// The profile builder keys just that profile ([`key_one_profile`]: under `pdg` one graph
/// version, and only the batches it covers), then its rows are read, aligned and merged as an
/// export's are.
pub async fn lookup_profile(
    meta: &MetaStore,
    lake: &Lake,
    tenant: &Tenant,
    policy: &MergePolicy,
    identity: &Identity,
) -> Result<Option<MergedProfile>, EngineError> {
    let Some(one) = key_one_profile(meta, lake, tenant, policy, identity).await? else {
        return Ok(None);
    };
    let union_schema = meta.profile_union(tenant).await?.arrow_schema();
    let sources = &one.sources;
    let partition = Partition::new(sources, &[0]);
    let records = read_records(lake, sources, &partition, &union_schema).await?;
    // As in exports: a profile's identityMap is the union of its records' identities; a profile
    // made only of events (an empty profile) shows its events' identities.
    let extra = match records.identities.is_empty() {
        true => read_event_identities(lake, sources, &partition).await?,
        false => vec![Vec::new()],
    };
    let merged = merge_groups(
        &records.rows,
        &union_schema,
        &records.groups,
        &records.identities,
        &extra,
    )?;
    let mut entity = first_row_as_json(&merged)?;
    let evaluated = entries_of_profile(meta, lake, tenant, &profile_index(policy, &one)).await?;
    if !evaluated.is_empty()
        && let Some(object) = entity.as_object_mut()
    {
        let memberships = object.entry(SEGMENT_MEMBERSHIP).or_insert(Value::Null);
        overlay_entries(memberships, evaluated.iter().map(|(s, e)| (s.as_str(), *e)));
    }
    Ok(Some(MergedProfile {
        entity_id: render(&one.key),
        entity,
        last_modified: sources.facts[0].last_update,
        sources: record_datasets(sources),
    }))
}

/// How stored membership rows find the looked-up profile: by its key (`none`), or by any
/// identity of its component (`pdg`).
fn profile_index<'a>(policy: &MergePolicy, one: &'a OneProfile) -> ProfileIndex<'a> {
    match policy.identity_graph {
        IdentityGraphType::None => ProfileIndex::new(std::slice::from_ref(&one.key)),
        IdentityGraphType::Pdg => ProfileIndex::by_members(&one.members),
    }
}

/// The datasets of the profile's records, in the order their files are read.
fn record_datasets(sources: &KeyedSources) -> Vec<String> {
    let mut datasets = Vec::new();
    for file in &sources.records {
        let id = sources.datasets[file.file.dataset].dataset.id.to_string();
        if !datasets.contains(&id) {
            datasets.push(id);
        }
    }
    datasets
}

fn first_row_as_json(merged: &RecordBatch) -> Result<Value, EngineError> {
    let mut writer = arrow::json::ArrayWriter::new(Vec::new());
    writer.write(merged)?;
    writer.finish()?;
    let rows: Vec<Map<String, Value>> =
        serde_json::from_slice(&writer.into_inner()).map_err(|e| EngineError::Invalid(e.to_string()))?;
    Ok(rows
        .into_iter()
        .next()
        .map(Value::Object)
        .unwrap_or(Value::Object(Map::new())))
}
