//! Building the merged profile of one identity: what `GET /access/entities` answers, and what
//! an export would write for that customer.

use arrow::array::RecordBatch;
use arrow::compute::concat_batches;
use serde_json::{Map, Value};

use dossier_model::merge_policy::{IdentityGraphType, MergePolicy};
use dossier_model::tenancy::Tenant;
use dossier_model::time::EpochMillis;
use dossier_storage::{Lake, MetaStore};

use super::align::align_batch;
use super::merge::{Groups, SEGMENT_MEMBERSHIP, merge_groups};
use crate::EngineError;
use crate::profiles::build::keys::{EventScan, KeyedSources, read_picked_rows};
use crate::identity::{Identity, fragment_identities};
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
/// It reads as an export of one profile does: the identity columns of every fragment file
/// (export pass one, `export::keys`), then only the rows of that profile with a row selection.
pub async fn lookup_profile(
    meta: &MetaStore,
    lake: &Lake,
    tenant: &Tenant,
    policy: &MergePolicy,
    identity: &Identity,
) -> Result<Option<MergedProfile>, EngineError> {
    // Under `pdg` the keying reads one version of the graph and only the batches it covers, so
    // a batch committing meanwhile is either wholly in the profile or not at all.
    let keyed = KeyedSources::load(meta, lake, tenant, policy, EventScan::All).await?;
    let target = match policy.identity_graph {
        IdentityGraphType::None => Some(identity.clone()),
        IdentityGraphType::Pdg => keyed
            .components
            .as_ref()
            .and_then(|components| components.key_of(identity).cloned()),
    };
    let Some(target) = target else {
        return Ok(None);
    };
    let Some(profile) = keyed.profiles.iter().position(|key| *key == target) else {
        return Ok(None);
    };
    let mut wanted = vec![false; keyed.profiles.len()];
    wanted[profile] = true;

    let union = meta.profile_union(tenant).await?;
    let union_schema = union.arrow_schema();
    let mut selected: Vec<RecordBatch> = Vec::new();
    let mut ranks = Vec::new();
    let mut identities = Vec::new();
    let mut last_modified = None;
    let mut sources = Vec::new();
    for (index, rows, picked) in read_picked_rows(lake, &keyed.records, &wanted, &|_| true).await? {
        let file = &keyed.records[index];
        let dataset = &keyed.datasets[file.file.dataset];
        identities.extend(fragment_identities(&rows, &dataset.schema.identities));
        for &r in &picked {
            ranks.push((dataset.rank, file.file.ingested, file.file.batch_seq, file.row_ids[r]));
        }
        last_modified = last_modified.max(Some(file.file.ingested));
        selected.push(align_batch(&rows, &union_schema)?);
        let id = dataset.dataset.id.to_string();
        if !sources.contains(&id) {
            sources.push(id);
        }
    }
    let mut event_identities = Vec::new();
    let identity_columns = keyed.identity_columns();
    let keep = |name: &str| identity_columns.iter().any(|c| c == name);
    for (index, rows, _) in read_picked_rows(lake, &keyed.events, &wanted, &keep).await? {
        let file = &keyed.events[index];
        let dataset = &keyed.datasets[file.file.dataset];
        event_identities.extend(fragment_identities(&rows, &dataset.schema.identities));
        last_modified = last_modified.max(Some(file.file.ingested));
    }
    let Some(last_modified) = last_modified else {
        return Ok(None);
    };

    let rows = concat_batches(&union_schema, &selected)?;
    let mut order: Vec<u32> = (0..rows.num_rows() as u32).collect();
    order.sort_by_key(|&r| ranks[r as usize]);
    let whole = 0..order.len();
    let groups = Groups {
        bounds: vec![whole],
        order,
    };
    // As in exports: a profile's identityMap is the union of its records' identities; a profile
    // made only of events (an empty profile) shows its events' identities.
    let extra = if identities.is_empty() {
        event_identities
    } else {
        Vec::new()
    };
    let merged = merge_groups(&rows, &union_schema, &groups, &identities, &[extra])?;
    let mut entity = first_row_as_json(&merged)?;
    let evaluated = entries_of_profile(meta, lake, tenant, &target, keyed.components.as_deref()).await?;
    if !evaluated.is_empty()
        && let Some(object) = entity.as_object_mut()
    {
        let memberships = object.entry(SEGMENT_MEMBERSHIP).or_insert(Value::Null);
        overlay_entries(memberships, evaluated.iter().map(|(s, e)| (s.as_str(), *e)));
    }
    Ok(Some(MergedProfile {
        entity_id: render(&target),
        entity,
        last_modified,
        sources,
    }))
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
