//! One evaluation of segment definitions: profiles are built as exports build them (pass one
//! keys fragments, then partitions are read and merged), only the columns the expressions read
//! are merged, every expression is evaluated with arrow kernels, and each segment's new
//! membership file is written next to the current one. Making the new files current is the
//! caller's transaction.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use arrow::array::{BooleanArray, Int64Array, RecordBatch};
use arrow::compute::concat_batches;
use arrow::datatypes::{Schema, SchemaRef};
use jiff::Timestamp;
use object_store::ObjectStoreExt;
use object_store::path::Path as ObjectPath;
use serde_json::Value;

use dossier_model::ids::MergePolicyId;
use dossier_model::merge_policy::MergePolicy;
use dossier_model::pql::{Expr, FieldScope, PqlSchemas, parse};
use dossier_model::segment_definition::pql_error_message;
use dossier_model::segment_job::{SegmentJobMetrics, SegmentJobSegment, StatusCounts};
use dossier_model::tenancy::Tenant;
use dossier_model::time::EpochMillis;
use dossier_storage::meta::MembershipFile;
use dossier_storage::{Lake, MetaStore};

use super::compile::{Evaluator, Inputs, event_selections, field_refs};
use super::memberships::{Entry, ProfileIndex, Row, Status, entries_by_profile, read_rows, write_rows};
use crate::EngineError;
use crate::export::CancelFlag;
use crate::profiles::build::keys::{EventScan, KeyedSources, read_picked_rows};
use crate::identity::{FragmentIdentities, Identity, fragment_identities};
use crate::profiles::align::align_batch;
use crate::profiles::json_columns::column_as_json;
use crate::profiles::merge::{Groups, IDENTITY_MAP, SEGMENT_MEMBERSHIP, merge_groups};

/// Profiles merged and evaluated at once: memory is bounded by this, not by the population.
pub const PROFILES_PER_PARTITION: usize = 250_000;

/// Why an evaluation did not finish.
#[derive(Debug, thiserror::Error)]
pub enum SegmentError {
    #[error("the job was cancelled")]
    Cancelled,
    #[error("{code}: {message}")]
    Failed { code: &'static str, message: String },
}

impl From<EngineError> for SegmentError {
    fn from(error: EngineError) -> Self {
        Self::Failed {
            code: "SEGMENT-EVALUATION-500",
            message: error.to_string(),
        }
    }
}

impl From<dossier_storage::StorageError> for SegmentError {
    fn from(error: dossier_storage::StorageError) -> Self {
        EngineError::from(error).into()
    }
}

impl From<arrow::error::ArrowError> for SegmentError {
    fn from(error: arrow::error::ArrowError) -> Self {
        EngineError::from(error).into()
    }
}

/// What an evaluation produced: the new files (not current yet) and the job's metrics.
#[derive(Debug, Clone)]
pub struct Evaluation {
    pub files: Vec<MembershipFile>,
    pub metrics: SegmentJobMetrics,
}

struct Definition {
    id: String,
    expr: Expr,
    policy: MergePolicy,
}

/// Orders definitions so that one named by `inSegment` comes before those naming it.
fn dependency_order(definitions: Vec<Definition>) -> Vec<Definition> {
    let ids: Vec<String> = definitions.iter().map(|d| d.id.clone()).collect();
    let mut pending: Vec<Option<Definition>> = definitions.into_iter().map(Some).collect();
    let mut ordered = Vec::new();
    while ordered.len() < ids.len() {
        let before = ordered.len();
        for slot in pending.iter_mut() {
            let ready = slot.as_ref().is_some_and(|d| {
                d.expr
                    .segment_dependencies()
                    .iter()
                    .all(|dep| !ids.contains(dep) || ordered.iter().any(|o: &Definition| o.id == *dep))
            });
            if ready {
                ordered.extend(slot.take());
            }
        }
        if ordered.len() == before {
            // Cycles are refused when definitions are written; keep going whatever happens.
            ordered.extend(pending.iter_mut().filter_map(Option::take));
        }
    }
    ordered
}

/// Evaluates `segments` at `now` and writes each one's new membership file, named after
/// `run_id`. `cancel` is checked between files and partitions.
pub async fn evaluate_segments(
    meta: &MetaStore,
    lake: &Lake,
    tenant: &Tenant,
    segments: &[SegmentJobSegment],
    run_id: &str,
    now: EpochMillis,
    cancel: &CancelFlag,
) -> Result<Evaluation, SegmentError> {
    let mut metrics = SegmentJobMetrics {
        start: Some(now),
        segmentation_start: Some(dossier_model::time::now_millis()),
        ..SegmentJobMetrics::default()
    };
    let profile_union = meta.profile_union(tenant).await?;
    let event_union = meta.event_union(tenant).await?;
    let schemas = PqlSchemas {
        profile: &profile_union,
        event: &event_union,
    };
    let mut definitions = Vec::new();
    for segment in segments {
        let expr = parse(&segment.expression, schemas).map_err(|error| SegmentError::Failed {
            code: "SEGMENT-EXPRESSION-400",
            message: format!(
                "segment {} no longer fits the union schemas: {}",
                segment.segment_id,
                pql_error_message(&error)
            ),
        })?;
        let policy_id = MergePolicyId::from_string(segment.merge_policy_id.clone());
        let policy = meta
            .merge_policy(tenant, &policy_id, Some(segment.merge_policy_version))
            .await?
            .ok_or_else(|| missing_policy(segment))?;
        definitions.push(Definition {
            id: segment.segment_id.clone(),
            expr,
            policy,
        });
    }
    let ordered = dependency_order(definitions);
    // Definitions of one merge policy share one pass over the data; groups follow the order
    // of their first definition, so a dependency in another group is usually evaluated first.
    let mut groups: Vec<Vec<Definition>> = Vec::new();
    for definition in ordered {
        match groups.iter_mut().find(|g| g[0].policy.id == definition.policy.id) {
            Some(group) => group.push(definition),
            None => groups.push(vec![definition]),
        }
    }
    let context = Context {
        meta,
        lake,
        tenant,
        now,
        cancel,
        profile_schema: profile_union.arrow_schema(),
        event_schema: event_union.arrow_schema(),
    };
    let mut fresh: HashMap<String, Vec<Row>> = HashMap::new();
    let mut files = Vec::new();
    for group in &groups {
        let evaluated = context.evaluate_group(group, &fresh, &mut metrics).await?;
        for (id, rows) in evaluated {
            let location = Lake::segment_membership_file(tenant, &id, run_id);
            write_rows(lake, &location, &rows).await?;
            files.push(MembershipFile {
                segment_id: id.clone(),
                path: location.to_string(),
                job_id: run_id.to_owned(),
                evaluated: now,
                rows: rows.len() as i64,
            });
            fresh.insert(id, rows);
        }
    }
    metrics.segmentation_end = Some(dossier_model::time::now_millis());
    Ok(Evaluation { files, metrics })
}

fn missing_policy(segment: &SegmentJobSegment) -> SegmentError {
    SegmentError::Failed {
        code: "SEGMENT-MERGEPOLICY-404",
        message: format!(
            "merge policy {} version {} of segment {} no longer exists; give the definition an existing policy and run the job again",
            segment.merge_policy_id, segment.merge_policy_version, segment.segment_id
        ),
    }
}

/// Deletes the files an evaluation wrote that never became current.
pub async fn remove_files(lake: &Lake, files: &[MembershipFile]) {
    for file in files {
        if let Err(error) = lake.store().delete(&ObjectPath::from(file.path.as_str())).await {
            tracing::warn!(%error, path = %file.path, "could not remove a membership file");
        }
    }
}

struct Context<'a> {
    meta: &'a MetaStore,
    lake: &'a Lake,
    tenant: &'a Tenant,
    now: EpochMillis,
    cancel: &'a CancelFlag,
    profile_schema: SchemaRef,
    event_schema: SchemaRef,
}

/// The union's top-level fields that `paths` start with (plus `extra`).
fn projected(schema: &SchemaRef, paths: &[&str], extra: &[&str]) -> SchemaRef {
    let wanted = |name: &str| extra.contains(&name) || paths.iter().any(|p| p.split('.').next() == Some(name));
    Arc::new(Schema::new(
        schema
            .fields()
            .iter()
            .filter(|f| wanted(f.name()))
            .map(|f| f.as_ref().clone())
            .collect::<Vec<_>>(),
    ))
}

/// Whether a `segmentMembership` value makes the profile a current member of `segment` in any
/// namespace (ingested audiences count, as semantics.md says of `inSegment`).
fn ingested_member(memberships: &Value, segment: &str) -> bool {
    memberships.as_object().is_some_and(|namespaces| {
        namespaces.values().any(|segments| {
            segments
                .get(segment)
                .and_then(|e| e.get("status"))
                .and_then(Value::as_str)
                .is_some_and(|s| s == "realized" || s == "existing")
        })
    })
}

impl Context<'_> {
    fn check_cancel(&self) -> Result<(), SegmentError> {
        if self.cancel.is_cancelled() {
            Err(SegmentError::Cancelled)
        } else {
            Ok(())
        }
    }

    async fn stored_rows(&self, segment: &str) -> Result<Vec<Row>, SegmentError> {
        let files = self.meta.membership_files(self.tenant).await?;
        match files.into_iter().find(|f| f.segment_id == segment) {
            Some(file) => Ok(read_rows(self.lake, &ObjectPath::from(file.path.as_str())).await?),
            None => Ok(Vec::new()),
        }
    }

    /// Evaluates the definitions of one merge policy; returns each one's new rows.
    async fn evaluate_group(
        &self,
        group: &[Definition],
        fresh: &HashMap<String, Vec<Row>>,
        metrics: &mut SegmentJobMetrics,
    ) -> Result<Vec<(String, Vec<Row>)>, SegmentError> {
        let policy = &group[0].policy;
        let sources = KeyedSources::load(self.meta, self.lake, self.tenant, policy, EventScan::All).await?;
        self.check_cancel()?;
        let total = sources.profiles.len();
        metrics.total_profiles = metrics.total_profiles.max(total as u64);
        metrics
            .total_profiles_by_merge_policy
            .insert(policy.id.to_string(), total as u64);
        let index = ProfileIndex::new(&sources.profiles, sources.components.as_deref());

        // What each profile held before, per definition; and the memberships `inSegment` reads
        // that this group does not compute.
        let mut previous = Vec::new();
        for definition in group {
            previous.push(entries_by_profile(
                &self.stored_rows(&definition.id).await?,
                &index,
                total,
            ));
        }
        let mut external: HashMap<String, Vec<bool>> = HashMap::new();
        let mut reads_memberships = false;
        for definition in group {
            for dependency in definition.expr.segment_dependencies() {
                reads_memberships = true;
                if group.iter().any(|d| d.id == dependency) || external.contains_key(&dependency) {
                    continue;
                }
                let rows = match fresh.get(&dependency) {
                    Some(rows) => rows.clone(),
                    None => self.stored_rows(&dependency).await?,
                };
                let members = entries_by_profile(&rows, &index, total)
                    .into_iter()
                    .map(|e| e.is_some_and(|e| e.status.is_member()))
                    .collect();
                external.insert(dependency, members);
            }
        }

        let mut profile_paths = Vec::new();
        let mut event_paths = Vec::new();
        for definition in group {
            for field in field_refs(&definition.expr) {
                match field.scope {
                    FieldScope::Profile => profile_paths.push(field.path.as_str()),
                    FieldScope::Event => event_paths.push(field.path.as_str()),
                }
            }
        }
        let extra: &[&str] = if reads_memberships { &[SEGMENT_MEMBERSHIP] } else { &[] };
        let profile_schema = projected(&self.profile_schema, &profile_paths, extra);
        let event_schema = projected(&self.event_schema, &event_paths, &[]);
        let selections: Vec<usize> = group.iter().map(|d| event_selections(&d.expr).len()).collect();
        let reads_events = selections.iter().any(|&n| n > 0);

        let mut qualifies: Vec<Vec<bool>> = vec![vec![false; total]; group.len()];
        let mut identities: HashMap<u32, Vec<Identity>> = HashMap::new();
        let everyone: Vec<u32> = (0..total as u32).collect();
        for partition in everyone.chunks(PROFILES_PER_PARTITION) {
            self.check_cancel()?;
            let mut wanted = vec![false; total];
            for &p in partition {
                wanted[p as usize] = true;
            }
            let (merged, fragment_ids, primaries) = self
                .merge_partition(&sources, partition, &wanted, &profile_schema)
                .await?;
            self.check_cancel()?;
            let counts = if reads_events {
                self.count_events(&sources, group, partition, &wanted, &event_schema)
                    .await?
            } else {
                vec![Vec::new(); group.len()]
            };
            self.check_cancel()?;
            let ingested = if reads_memberships {
                column_as_json(&merged, SEGMENT_MEMBERSHIP)?
            } else {
                Vec::new()
            };
            for (d, definition) in group.iter().enumerate() {
                let mut in_segment = HashMap::new();
                for dependency in definition.expr.segment_dependencies() {
                    let members: BooleanArray = partition
                        .iter()
                        .enumerate()
                        .map(|(g, &p)| {
                            let computed = match group.iter().position(|x| x.id == dependency) {
                                Some(other) => qualifies[other][p as usize],
                                None => external.get(&dependency).is_some_and(|m| m[p as usize]),
                            };
                            Some(computed || ingested.get(g).is_some_and(|m| ingested_member(m, &dependency)))
                        })
                        .collect();
                    in_segment.insert(dependency, members);
                }
                let inputs = Inputs {
                    now: Timestamp::from_millisecond(self.now).unwrap_or(Timestamp::UNIX_EPOCH),
                    event_counts: &counts[d],
                    in_segment: &in_segment,
                };
                let result = Evaluator::profiles(&inputs).eval(&definition.expr, &merged)?;
                for (g, &p) in partition.iter().enumerate() {
                    qualifies[d][p as usize] = result.value(g);
                }
            }
            // The identities of every profile that will have an entry, for the new files.
            for (g, &p) in partition.iter().enumerate() {
                let has_entry = (0..group.len()).any(|d| qualifies[d][p as usize] || previous[d][p as usize].is_some());
                if has_entry {
                    // The profile's primary identity first: under `none` an entry belongs to
                    // the profile keyed by it alone (memberships.rs), whatever the policy
                    // evaluation ran under; then the key, then every other identity.
                    let mut ids: Vec<Identity> = primaries[g].iter().cloned().collect();
                    let key = &sources.profiles[p as usize];
                    if !ids.contains(key) {
                        ids.push(key.clone());
                    }
                    for fragment in &fragment_ids[g] {
                        for identity in &fragment.all {
                            if !ids.contains(identity) {
                                ids.push(identity.clone());
                            }
                        }
                    }
                    identities.insert(p, ids);
                }
            }
        }

        let mut out = Vec::new();
        for (d, definition) in group.iter().enumerate() {
            let mut rows = Vec::new();
            let mut counts = StatusCounts::default();
            let mut by_namespace: BTreeMap<String, u64> = BTreeMap::new();
            for p in 0..total {
                let Some(entry) = next_entry(qualifies[d][p], previous[d][p], self.now) else {
                    continue;
                };
                match entry.status {
                    Status::Realized => counts.realized += 1,
                    Status::Existing => counts.existing += 1,
                    Status::Exited => counts.exited += 1,
                }
                if entry.status.is_member() {
                    let namespace = sources.facts[p].primary_namespace.as_deref().unwrap_or("unknown");
                    *by_namespace.entry(namespace.to_owned()).or_default() += 1;
                }
                rows.push(Row {
                    identities: identities.get(&(p as u32)).cloned().unwrap_or_default(),
                    entry,
                });
            }
            metrics
                .segmented_profiles
                .insert(definition.id.clone(), counts.realized + counts.existing);
            metrics
                .segmented_by_namespace
                .insert(definition.id.clone(), by_namespace);
            metrics.segmented_by_status.insert(definition.id.clone(), counts);
            out.push((definition.id.clone(), rows));
        }
        Ok(out)
    }

    /// The partition's merged profiles (one row per profile, in `partition` order, with the
    /// columns of `schema`), each profile's record fragments' identities, and each profile's
    /// primary identity (that of its most recently ingested record fragment).
    async fn merge_partition(
        &self,
        sources: &KeyedSources,
        partition: &[u32],
        wanted: &[bool],
        schema: &SchemaRef,
    ) -> Result<PartitionMerge, SegmentError> {
        let mut aligned = Vec::new();
        let mut keys = Vec::new();
        let mut identities = Vec::new();
        // Only the columns evaluation reads, and those identities are taken from.
        let mut roots: Vec<String> = schema.fields().iter().map(|f| f.name().clone()).collect();
        roots.push(IDENTITY_MAP.to_owned());
        for dataset in sources.datasets.iter() {
            for field in &dataset.schema.identities {
                roots.extend(field.path.split('.').next().map(str::to_owned));
            }
        }
        let keep = |name: &str| roots.iter().any(|n| n == name);
        for (index, rows, picked) in read_picked_rows(self.lake, &sources.records, wanted, &keep).await? {
            let keyed = &sources.records[index];
            let dataset = &sources.datasets[keyed.file.dataset];
            identities.extend(fragment_identities(&rows, &dataset.schema.identities));
            for &r in &picked {
                keys.push((
                    keyed.profiles[r],
                    dataset.rank,
                    keyed.file.ingested,
                    keyed.file.batch_seq,
                    keyed.row_ids[r],
                ));
            }
            aligned.push(align_batch(&rows, schema)?);
        }
        let rows = concat_batches(schema, &aligned)?;
        let mut order: Vec<u32> = (0..rows.num_rows() as u32).collect();
        order.sort_unstable_by_key(|&r| keys[r as usize]);
        let mut bounds = Vec::with_capacity(partition.len());
        let mut cursor = 0;
        for &profile in partition {
            let start = cursor;
            while cursor < order.len() && keys[order[cursor] as usize].0 == profile {
                cursor += 1;
            }
            bounds.push(start..cursor);
        }
        let groups = Groups { order, bounds };
        let by_profile: Vec<Vec<FragmentIdentities>> = (0..partition.len())
            .map(|g| {
                groups.order[groups.bounds[g].clone()]
                    .iter()
                    .map(|&r| identities[r as usize].clone())
                    .collect()
            })
            .collect();
        let primaries = (0..partition.len())
            .map(|g| {
                let rows = &groups.order[groups.bounds[g].clone()];
                let latest = rows.iter().max_by_key(|&&r| {
                    let (_, _, ingested, batch_seq, row_id) = keys[r as usize];
                    (ingested, batch_seq, row_id)
                });
                latest.and_then(|&r| identities[r as usize].primary().cloned())
            })
            .collect();
        let no_extra = vec![Vec::new(); partition.len()];
        let merged = merge_groups(&rows, schema, &groups, &identities, &no_extra)?;
        Ok((merged, by_profile, primaries))
    }

    /// Per definition and event selection, how many of each partition profile's events pass
    /// the selection's filter: the filter runs vectorized over each file's events, and the
    /// passing rows are counted by profile.
    async fn count_events(
        &self,
        sources: &KeyedSources,
        group: &[Definition],
        partition: &[u32],
        wanted: &[bool],
        schema: &SchemaRef,
    ) -> Result<Vec<Vec<Int64Array>>, SegmentError> {
        let mut position = HashMap::with_capacity(partition.len());
        for (g, &p) in partition.iter().enumerate() {
            position.insert(p, g);
        }
        let mut counts: Vec<Vec<Vec<i64>>> = group
            .iter()
            .map(|d| vec![vec![0i64; partition.len()]; event_selections(&d.expr).len()])
            .collect();
        let names: Vec<String> = schema.fields().iter().map(|f| f.name().clone()).collect();
        let keep = |name: &str| names.iter().any(|n| n == name);
        let now = Timestamp::from_millisecond(self.now).unwrap_or(Timestamp::UNIX_EPOCH);
        for (index, rows, picked) in read_picked_rows(self.lake, &sources.events, wanted, &keep).await? {
            self.check_cancel()?;
            let keyed = &sources.events[index];
            let events = align_batch(&rows, schema)?;
            let owners: Vec<usize> = picked.iter().map(|&r| position[&keyed.profiles[r]]).collect();
            for (d, definition) in group.iter().enumerate() {
                for (s, selection) in event_selections(&definition.expr).into_iter().enumerate() {
                    let slot = &mut counts[d][s];
                    match &selection.filter {
                        None => owners.iter().for_each(|&g| slot[g] += 1),
                        Some(filter) => {
                            let passing = Evaluator::events(now).eval(filter, &events)?;
                            for (i, &g) in owners.iter().enumerate() {
                                if passing.value(i) {
                                    slot[g] += 1;
                                }
                            }
                        }
                    }
                }
            }
        }
        Ok(counts
            .into_iter()
            .map(|per_selection| per_selection.into_iter().map(Int64Array::from).collect())
            .collect())
    }
}

/// A profile's new entry from whether it qualifies now and its previous entry
/// (semantics.md "Segment membership").
pub fn next_entry(qualifies: bool, previous: Option<Entry>, now: EpochMillis) -> Option<Entry> {
    match (qualifies, previous) {
        (true, Some(before)) if before.status.is_member() => Some(Entry {
            status: Status::Existing,
            time: now,
        }),
        (true, _) => Some(Entry {
            status: Status::Realized,
            time: now,
        }),
        (false, Some(before)) if before.status.is_member() => Some(Entry {
            status: Status::Exited,
            time: now,
        }),
        (false, Some(exited)) => Some(exited),
        (false, None) => None,
    }
}

/// What `Context::merge_partition` gives: the merged rows, each profile's record fragments'
/// identities, and each profile's primary identity.
type PartitionMerge = (RecordBatch, Vec<Vec<FragmentIdentities>>, Vec<Option<Identity>>);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_follow_entering_staying_and_leaving() {
        let entry = |status, time| Some(Entry { status, time });
        assert_eq!(next_entry(true, None, 1), entry(Status::Realized, 1));
        assert_eq!(
            next_entry(true, entry(Status::Realized, 1), 2),
            entry(Status::Existing, 2)
        );
        assert_eq!(
            next_entry(true, entry(Status::Existing, 2), 3),
            entry(Status::Existing, 3)
        );
        assert_eq!(
            next_entry(false, entry(Status::Existing, 3), 4),
            entry(Status::Exited, 4)
        );
        assert_eq!(next_entry(false, entry(Status::Exited, 4), 5), entry(Status::Exited, 4));
        assert_eq!(
            next_entry(true, entry(Status::Exited, 4), 6),
            entry(Status::Realized, 6)
        );
        assert_eq!(next_entry(false, None, 7), None);
    }
}
