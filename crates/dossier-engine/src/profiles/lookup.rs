//! Building the merged profile of one identity: what `GET /access/entities` answers, and what
//! an export would write for that customer.

use arrow::array::RecordBatch;
use arrow::compute::concat_batches;
use serde_json::{Map, Value};

use dossier_model::catalog::Dataset;
use dossier_model::merge_policy::{AttributeMerge, IdentityGraphType, MergePolicy};
use dossier_model::tenancy::Tenant;
use dossier_model::time::EpochMillis;
use dossier_model::xdm::SchemaClass;
use dossier_storage::{Lake, MetaStore};

use super::align::align_batch;
use super::fragments::{FragmentOrigin, SandboxFragments};
use super::merge::{Groups, SEGMENT_MEMBERSHIP, merge_groups};
use crate::EngineError;
use crate::identity::{ComponentIndex, FragmentIdentities, Identity, current_graph};
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

/// Which profile a fragment belongs to under a policy's `identityGraph`.
enum ProfileKeys<'a> {
    Primary,
    Components(&'a ComponentIndex),
}

impl ProfileKeys<'_> {
    fn key_of(&self, identity: &Identity) -> Option<Identity> {
        match self {
            Self::Primary => Some(identity.clone()),
            Self::Components(components) => components.key_of(identity).cloned(),
        }
    }
}

/// The rank that orders fragments of a profile: the last one with a value wins.
fn precedence(policy: &MergePolicy, datasets: &[&Dataset], origin: &FragmentOrigin) -> Option<(i64, i64, i64, i64)> {
    let dataset_rank = match &policy.attribute_merge {
        AttributeMerge::TimestampOrdered => 0,
        AttributeMerge::DataSetPrecedence { order } => {
            let position = order.iter().position(|id| *id == datasets[origin.dataset].id)?;
            (order.len() - position) as i64
        }
    };
    Some((dataset_rank, origin.ingested, origin.batch_seq, origin.row))
}

fn render(identity: &Identity) -> String {
    format!("{}:{}", identity.namespace, identity.id)
}

/// The merged profile that `identity` belongs to under `policy`, or `None` when no fragment of
/// the sandbox makes one.
pub async fn lookup_profile(
    meta: &MetaStore,
    lake: &Lake,
    tenant: &Tenant,
    policy: &MergePolicy,
    identity: &Identity,
) -> Result<Option<MergedProfile>, EngineError> {
    // Under `pdg` the lookup reads one version of the graph and only the batches it covers, so
    // a batch committing meanwhile is either wholly in the profile or not at all.
    let graph = match policy.identity_graph {
        IdentityGraphType::None => None,
        IdentityGraphType::Pdg => Some(current_graph(meta, lake, tenant).await?),
    };
    let keys = match &graph {
        None => ProfileKeys::Primary,
        Some(graph) => ProfileKeys::Components(&graph.components),
    };
    // An identity the graph has never seen has no profile: answered before reading fragments.
    let Some(target) = keys.key_of(identity) else {
        return Ok(None);
    };
    let fragments = SandboxFragments::load(meta, lake, tenant, graph.as_ref()).await?;
    let datasets: Vec<&Dataset> = fragments.datasets.iter().map(|d| &d.dataset).collect();
    let belongs =
        |identities: &FragmentIdentities| identities.primary().and_then(|p| keys.key_of(p)).as_ref() == Some(&target);

    let union = meta.profile_union(tenant).await?;
    let union_schema = union.arrow_schema();
    let mut selected: Vec<RecordBatch> = Vec::new();
    let mut ranks = Vec::new();
    let mut identities = Vec::new();
    let mut last_modified = None;
    let mut sources = Vec::new();
    for (_, dataset) in fragments.of_class(SchemaClass::Profile) {
        for ((rows, origins), ids) in dataset.rows.iter().zip(&dataset.origins).zip(&dataset.identities) {
            let picked: Vec<u32> = (0..rows.num_rows() as u32)
                .filter(|&r| belongs(&ids[r as usize]) && precedence(policy, &datasets, &origins[r as usize]).is_some())
                .collect();
            if picked.is_empty() {
                continue;
            }
            let indices = arrow::array::UInt32Array::from(picked.clone());
            let taken = arrow::compute::take_record_batch(rows, &indices)?;
            selected.push(align_batch(&taken, &union_schema)?);
            for r in picked {
                let origin = &origins[r as usize];
                ranks.push(precedence(policy, &datasets, origin).expect("filtered above"));
                identities.push(ids[r as usize].clone());
                last_modified = last_modified.max(Some(origin.ingested));
            }
            let id = dataset.dataset.id.to_string();
            if !sources.contains(&id) {
                sources.push(id);
            }
        }
    }
    let mut event_identities = Vec::new();
    for (_, dataset) in fragments.of_class(SchemaClass::ExperienceEvent) {
        for (origins, ids) in dataset.origins.iter().zip(&dataset.identities) {
            for (origin, fragment) in origins.iter().zip(ids) {
                if belongs(fragment) {
                    event_identities.push(fragment.clone());
                    last_modified = last_modified.max(Some(origin.ingested));
                }
            }
        }
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
    let evaluated = entries_of_profile(
        meta,
        lake,
        tenant,
        &target,
        graph.as_ref().map(|g| g.components.as_ref()),
    )
    .await?;
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
