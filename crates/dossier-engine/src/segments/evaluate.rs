//! One evaluation of segment definitions: profiles are built by the profile builder as exports
//! build them (keyed shard by shard, then partitions read and merged, memory bounded by the
//! build settings), only the columns the expressions read are merged, every expression is evaluated with arrow kernels, and each segment's new
//! membership file is written next to the current one. Making the new files current is the
//! caller's transaction.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use arrow::array::BooleanArray;
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

use super::compile::{event_selections, field_refs};
use super::decide::{Decide, EventRows, NativeDecide, PartitionInputs};
use super::memberships::{Entry, MembershipOverlay, Row, Status, read_rows, write_rows};
use crate::EngineError;
use crate::cancel::CancelFlag;
use crate::identity::Identity;
use crate::profiles::align::align_batch;
use crate::profiles::build::keys::{EventScan, KeyedSources, read_picked_rows};
use crate::profiles::build::{
    BuildSettings, ComponentTables, KeyingContext, Partition, PartitionRecords, Restriction, ShardedKeys,
    read_event_identities, read_records,
};
use crate::profiles::json_columns::column_as_json;
use crate::profiles::merge::{SEGMENT_MEMBERSHIP, merge_groups};

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
        match error {
            EngineError::Cancelled => Self::Cancelled,
            error => Self::Failed {
                code: "SEGMENT-EVALUATION-500",
                message: error.to_string(),
            },
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
/// `run_id`. `cancel` is checked between files and partitions. Profiles are built with the
/// default [`BuildSettings`].
pub async fn evaluate_segments(
    meta: &MetaStore,
    lake: &Lake,
    tenant: &Tenant,
    segments: &[SegmentJobSegment],
    run_id: &str,
    now: EpochMillis,
    cancel: &CancelFlag,
) -> Result<Evaluation, SegmentError> {
    let builder = (&BuildSettings::default(), &ComponentTables::default());
    evaluate_segments_with(meta, lake, tenant, segments, run_id, now, cancel, builder).await
}

/// [`evaluate_segments`] building profiles with `settings` (shard by shard, partition by
/// partition, spilling under its spill root, as exports do) and keying against the sealed graph
/// tables of `tables`: what the owner of an exporter's settings and tables passes.
#[allow(clippy::too_many_arguments)]
pub async fn evaluate_segments_with(
    meta: &MetaStore,
    lake: &Lake,
    tenant: &Tenant,
    segments: &[SegmentJobSegment],
    run_id: &str,
    now: EpochMillis,
    cancel: &CancelFlag,
    build: (&BuildSettings, &ComponentTables),
) -> Result<Evaluation, SegmentError> {
    let run = Run { run_id, now, cancel };
    evaluate_segments_deciding(meta, lake, tenant, segments, run, build, &NativeDecide).await
}

/// One evaluation run: the name of its files, its time and its cancel flag.
#[derive(Clone, Copy)]
pub struct Run<'a> {
    /// Names the new membership files.
    pub run_id: &'a str,
    /// The evaluation time: `now` of the expressions and `lastQualificationTime` of entries.
    pub now: EpochMillis,
    /// Checked between files and partitions.
    pub cancel: &'a CancelFlag,
}

/// [`evaluate_segments_with`] with each partition's decision taken by `decide` (decide.rs):
/// profiles, previous entries, statuses, identities and files are this module's whatever
/// engine decides, so every engine writes the same memberships for the same decisions.
pub async fn evaluate_segments_deciding<D: Decide>(
    meta: &MetaStore,
    lake: &Lake,
    tenant: &Tenant,
    segments: &[SegmentJobSegment],
    Run { run_id, now, cancel }: Run<'_>,
    (settings, tables): (&BuildSettings, &ComponentTables),
    decide: &D,
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
        settings,
        tables,
        profile_schema: profile_union.arrow_schema(),
        event_schema: event_union.arrow_schema(),
        decide,
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

struct Context<'a, D> {
    meta: &'a MetaStore,
    lake: &'a Lake,
    tenant: &'a Tenant,
    now: EpochMillis,
    cancel: &'a CancelFlag,
    settings: &'a BuildSettings,
    tables: &'a ComponentTables,
    profile_schema: SchemaRef,
    event_schema: SchemaRef,
    decide: &'a D,
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

/// What the evaluation of one group (the definitions of one merge policy) reads, fixed before
/// its first shard.
struct GroupPlan<'g> {
    group: &'g [Definition],
    /// The union's columns the expressions read (and `segmentMembership` when one reads
    /// memberships): only these are merged.
    profile_schema: SchemaRef,
    /// The event union's columns the expressions' event filters read.
    event_schema: SchemaRef,
    reads_memberships: bool,
    reads_events: bool,
}

/// A group's new rows and counts, per definition, gathered shard by shard.
struct GroupResults {
    rows: Vec<Vec<Row>>,
    counts: Vec<StatusCounts>,
    by_namespace: Vec<BTreeMap<String, u64>>,
    profiles: u64,
}

impl GroupResults {
    fn new(definitions: usize) -> Self {
        Self {
            rows: vec![Vec::new(); definitions],
            counts: vec![StatusCounts::default(); definitions],
            by_namespace: vec![BTreeMap::new(); definitions],
            profiles: 0,
        }
    }

    /// Counts definition `d`'s new `entry` of a profile whose primary identity is in
    /// `namespace`, and keeps its row.
    fn add(&mut self, d: usize, entry: Entry, identities: Vec<Identity>, namespace: Option<&str>) {
        let counts = &mut self.counts[d];
        match entry.status {
            Status::Realized => counts.realized += 1,
            Status::Existing => counts.existing += 1,
            Status::Exited => counts.exited += 1,
        }
        if entry.status.is_member() {
            *self.by_namespace[d]
                .entry(namespace.unwrap_or("unknown").to_owned())
                .or_default() += 1;
        }
        self.rows[d].push(Row { identities, entry });
    }
}

/// What one shard's evaluation keeps between its partitions: per definition, whether each
/// profile qualifies and its previous entry; the identities of each profile that will have an
/// entry.
struct ShardState {
    qualifies: Vec<Vec<bool>>,
    previous: Vec<Vec<Option<Entry>>>,
    identities: HashMap<u32, Vec<Identity>>,
}

impl ShardState {
    fn new(group: &[Definition], profiles: usize, overlay: &MembershipOverlay) -> Self {
        let previous = group
            .iter()
            .map(|d| (0..profiles as u32).map(|p| overlay.entry(p, &d.id)).collect())
            .collect();
        Self {
            qualifies: vec![vec![false; profiles]; group.len()],
            previous,
            identities: HashMap::new(),
        }
    }

    fn has_entry(&self, profile: u32) -> bool {
        let p = profile as usize;
        (0..self.qualifies.len()).any(|d| self.qualifies[d][p] || self.previous[d][p].is_some())
    }
}

impl<D: Decide> Context<'_, D> {
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

    /// The memberships a group reads: each definition's stored rows (what its profiles held
    /// before), then those of every segment `inSegment` names outside the group (fresh from this
    /// run when evaluated earlier in it, stored otherwise).
    async fn memberships_read(
        &self,
        group: &[Definition],
        fresh: &HashMap<String, Vec<Row>>,
    ) -> Result<Vec<(String, Vec<Row>)>, SegmentError> {
        let mut read = Vec::new();
        for definition in group {
            read.push((definition.id.clone(), self.stored_rows(&definition.id).await?));
        }
        for definition in group {
            for dependency in definition.expr.segment_dependencies() {
                if read.iter().any(|(id, _)| *id == dependency) {
                    continue;
                }
                let rows = match fresh.get(&dependency) {
                    Some(rows) => rows.clone(),
                    None => self.stored_rows(&dependency).await?,
                };
                read.push((dependency, rows));
            }
        }
        Ok(read)
    }

    fn group_plan<'g>(&self, group: &'g [Definition]) -> GroupPlan<'g> {
        let reads_memberships = group.iter().any(|d| !d.expr.segment_dependencies().is_empty());
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
        GroupPlan {
            group,
            profile_schema: projected(&self.profile_schema, &profile_paths, extra),
            event_schema: projected(&self.event_schema, &event_paths, &[]),
            reads_memberships,
            reads_events: group.iter().any(|d| !event_selections(&d.expr).is_empty()),
        }
    }

    /// Evaluates the definitions of one merge policy, shard by shard as the profile builder
    /// keys them (memory bounded by the build settings); returns each one's new rows.
    async fn evaluate_group(
        &self,
        group: &[Definition],
        fresh: &HashMap<String, Vec<Row>>,
        metrics: &mut SegmentJobMetrics,
    ) -> Result<Vec<(String, Vec<Row>)>, SegmentError> {
        let policy = &group[0].policy;
        let plan = self.group_plan(group);
        let memberships = self.memberships_read(group, fresh).await?;
        let keying = KeyingContext {
            tenant: self.tenant,
            policy,
            events: EventScan::All,
            settings: self.settings,
            cancel: self.cancel,
            tables: self.tables,
            memberships: Some(&memberships),
            // Evaluation decides every profile: exited members too.
            restriction: &Restriction::default(),
        };
        let started = std::time::Instant::now();
        let mut keyed = ShardedKeys::build(self.meta, self.lake, &keying).await?;
        drop(memberships);
        tracing::info!(
            org = %self.tenant.org, sandbox = %self.tenant.sandbox, merge_policy = %policy.id,
            identity_graph_version = ?keyed.graph_version(), shards = keyed.layout.shards, buckets = keyed.layout.buckets,
            elapsed_ms = started.elapsed().as_millis() as u64, "segment evaluation keyed its fragments"
        );
        self.check_cancel()?;
        let mut results = GroupResults::new(group.len());
        for shard in 0..keyed.layout.shards {
            let (sources, overlay) = keyed.shard(shard)?;
            self.evaluate_shard(&plan, &sources, &overlay, &mut results).await?;
        }
        let total = results.profiles;
        metrics.total_profiles = metrics.total_profiles.max(total);
        metrics
            .total_profiles_by_merge_policy
            .insert(policy.id.to_string(), total);
        let mut out = Vec::new();
        let GroupResults {
            rows,
            counts,
            by_namespace,
            ..
        } = results;
        for (((definition, rows), counts), by_namespace) in group.iter().zip(rows).zip(counts).zip(by_namespace) {
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

    /// Evaluates one shard, partition by partition, and adds its profiles' new entries to
    /// `results`.
    async fn evaluate_shard(
        &self,
        plan: &GroupPlan<'_>,
        sources: &KeyedSources,
        overlay: &MembershipOverlay,
        results: &mut GroupResults,
    ) -> Result<(), SegmentError> {
        let total = sources.profiles.len();
        results.profiles += total as u64;
        let mut state = ShardState::new(plan.group, total, overlay);
        let everyone: Vec<u32> = (0..total as u32).collect();
        for profiles in everyone.chunks(self.settings.partition_profiles.max(1)) {
            self.check_cancel()?;
            let partition = Partition::new(sources, profiles);
            self.evaluate_partition(plan, sources, overlay, &partition, &mut state)
                .await?;
        }
        for (d, previous) in state.previous.iter().enumerate() {
            for (p, previous) in previous.iter().enumerate() {
                let Some(entry) = next_entry(state.qualifies[d][p], *previous, self.now) else {
                    continue;
                };
                let identities = state.identities.get(&(p as u32)).cloned().unwrap_or_default();
                results.add(d, entry, identities, sources.facts[p].primary_namespace.as_deref());
            }
        }
        Ok(())
    }

    /// Merges one partition's profiles (only the columns the expressions read), evaluates every
    /// definition over them, and keeps the identities of those that will have an entry.
    async fn evaluate_partition(
        &self,
        plan: &GroupPlan<'_>,
        sources: &KeyedSources,
        overlay: &MembershipOverlay,
        partition: &Partition<'_>,
        state: &mut ShardState,
    ) -> Result<(), SegmentError> {
        let group = plan.group;
        let records = read_records(self.lake, sources, partition, &plan.profile_schema).await?;
        let no_extra = vec![Vec::new(); partition.profiles.len()];
        let merged = merge_groups(
            &records.rows,
            &plan.profile_schema,
            &records.groups,
            &records.identities,
            &no_extra,
        )?;
        self.check_cancel()?;
        let events = if plan.reads_events {
            self.read_events(sources, partition, &plan.event_schema).await?
        } else {
            Vec::new()
        };
        self.check_cancel()?;
        let inputs = PartitionInputs {
            now: Timestamp::from_millisecond(self.now).unwrap_or(Timestamp::UNIX_EPOCH),
            profiles: &merged,
            events: &events,
        };
        let ingested = if plan.reads_memberships {
            column_as_json(&merged, SEGMENT_MEMBERSHIP)?
        } else {
            Vec::new()
        };
        for (d, definition) in group.iter().enumerate() {
            let mut in_segment = HashMap::new();
            for dependency in definition.expr.segment_dependencies() {
                let members: BooleanArray = partition
                    .profiles
                    .iter()
                    .enumerate()
                    .map(|(g, &p)| {
                        let computed = match group.iter().position(|x| x.id == dependency) {
                            Some(other) => state.qualifies[other][p as usize],
                            None => overlay.entry(p, &dependency).is_some_and(|e| e.status.is_member()),
                        };
                        Some(computed || ingested.get(g).is_some_and(|m| ingested_member(m, &dependency)))
                    })
                    .collect();
                in_segment.insert(dependency, members);
            }
            let result = self.decide.decide(&definition.expr, &inputs, &in_segment).await?;
            for (g, &p) in partition.profiles.iter().enumerate() {
                state.qualifies[d][p as usize] = result.value(g);
            }
        }
        self.keep_identities(sources, partition, &records, state).await
    }

    /// The identities of every partition profile that will have an entry, for the new files:
    /// the primary identity first (under `none` an entry belongs to the profile keyed by it
    /// alone, memberships.rs, whatever the policy evaluation ran under), then the key, then every
    /// other identity of its records. A profile of events only (no record, and under `pdg` no
    /// key) takes its events' identities.
    async fn keep_identities(
        &self,
        sources: &KeyedSources,
        partition: &Partition<'_>,
        records: &PartitionRecords,
        state: &mut ShardState,
    ) -> Result<(), SegmentError> {
        let mut without = Vec::new();
        for (g, &p) in partition.profiles.iter().enumerate() {
            if !state.has_entry(p) {
                continue;
            }
            let mut ids: Vec<Identity> = records.latest_primary(g).cloned().into_iter().collect();
            let fragments = records.rows_of(g).iter().map(|&r| &records.identities[r as usize]);
            for identity in sources.key(p).into_iter().chain(fragments.flat_map(|f| &f.all)) {
                if !ids.contains(identity) {
                    ids.push(identity.clone());
                }
            }
            if ids.is_empty() {
                without.push(p);
            }
            state.identities.insert(p, ids);
        }
        if !without.is_empty() {
            for (p, ids) in self.event_identities(sources, &without).await? {
                state.identities.insert(p, ids);
            }
        }
        Ok(())
    }

    /// The distinct identities of the events of `profiles` (ascending).
    async fn event_identities(
        &self,
        sources: &KeyedSources,
        profiles: &[u32],
    ) -> Result<HashMap<u32, Vec<Identity>>, SegmentError> {
        let partition = Partition::new(sources, profiles);
        let events = read_event_identities(self.lake, sources, &partition).await?;
        let mut out = HashMap::new();
        for (&p, fragments) in profiles.iter().zip(events) {
            let mut ids: Vec<Identity> = Vec::new();
            for identity in fragments.into_iter().flat_map(|f| f.all) {
                if !ids.contains(&identity) {
                    ids.push(identity);
                }
            }
            out.insert(p, ids);
        }
        Ok(out)
    }

    /// The events of the partition's profiles, file by file, with the columns `schema` keeps
    /// and, per event, the row of its profile in the partition.
    async fn read_events(
        &self,
        sources: &KeyedSources,
        partition: &Partition<'_>,
        schema: &SchemaRef,
    ) -> Result<Vec<EventRows>, SegmentError> {
        let mut position = HashMap::with_capacity(partition.profiles.len());
        for (g, &p) in partition.profiles.iter().enumerate() {
            position.insert(p, g as u32);
        }
        let names: Vec<String> = schema.fields().iter().map(|f| f.name().clone()).collect();
        let keep = |name: &str| names.iter().any(|n| n == name);
        let mut out = Vec::new();
        for (index, rows, picked) in read_picked_rows(self.lake, &sources.events, &partition.wanted, &keep).await? {
            self.check_cancel()?;
            let keyed = &sources.events[index];
            out.push(EventRows {
                events: align_batch(&rows, schema)?,
                owners: picked.iter().map(|&r| position[&keyed.profiles[r]]).collect(),
            });
        }
        Ok(out)
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
