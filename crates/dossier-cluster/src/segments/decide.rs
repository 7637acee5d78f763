//! The decision as a DataFusion plan: for one definition and one partition of built profiles,
//!
//! ```text
//! profiles (+ __row, + one boolean column per inSegment audience)
//!   LEFT JOIN (events (+ __profile) GROUP BY __profile: per event selection,
//!              SUM(filter IS TRUE) AS __count_s) ON __row = __profile
//!   SELECT __row, <compiled PQL> AS __qualifies
//! ```
//!
//! The event aggregation is left out when the expression has no event condition.
//!
//! The inputs reach the plan one of two ways ([`Inputs`]): as memory tables, for a session on
//! this process; or written to the lake as Parquet under a scratch prefix and scanned under
//! `dossier-lake://lake/`, for a Ballista session, whose executors cannot see this process's
//! memory (a memory table does not serialize into a Ballista plan) but do see the lake. The
//! scratch files of a decision are deleted once it is taken.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use datafusion::arrow::array::{Array, ArrayRef, AsArray, BooleanArray, RecordBatch, UInt32Array};
use datafusion::arrow::datatypes::{DataType, Field, Schema, UInt32Type};
use datafusion::common::JoinType;
use datafusion::dataframe::DataFrame;
use datafusion::functions::expr_fn::coalesce;
use datafusion::functions_aggregate::expr_fn::sum;
use datafusion::logical_expr::{cast, ident, lit};
use datafusion::prelude::{ParquetReadOptions, SessionContext};
use jiff::Timestamp;
use object_store::ObjectStoreExt;
use object_store::path::Path as ObjectPath;
use parquet::arrow::ArrowWriter;

use dossier_engine::segments::compile::event_selections;
use dossier_engine::segments::{Decide, EventRows, PartitionInputs, SegmentError};
use dossier_model::pql::{EventSelection, Expr};
use dossier_storage::Lake;

use super::DecideError;
use super::compile::{Compiler, ProfileInputs};
use crate::session::lake_file_url;

const ROW: &str = "__row";
const PROFILE: &str = "__profile";
const QUALIFIES: &str = "__qualifies";

/// How a decision's inputs reach its plan.
pub enum Inputs {
    /// Memory tables: the plan runs on this process.
    Memory,
    /// Parquet files in `lake` under `scratch`, one folder per decision: the plan may run on
    /// any process that reads the lake.
    Lake {
        lake: Lake,
        scratch: ObjectPath,
        next: AtomicU64,
    },
}

/// Takes each decision with a DataFusion plan in `ctx`.
pub struct ClusterDecide {
    ctx: SessionContext,
    inputs: Inputs,
}

/// The scratch files one decision wrote, deleted once it is taken ([`ClusterDecide::remove`]).
#[derive(Default)]
struct Scratch {
    files: Vec<ObjectPath>,
}

impl ClusterDecide {
    /// Decisions whose inputs are memory tables of `ctx` (a session on this process).
    pub fn in_memory(ctx: SessionContext) -> Self {
        Self {
            ctx,
            inputs: Inputs::Memory,
        }
    }

    /// Decisions whose inputs are written to `lake` under `scratch` (a Ballista session).
    pub fn through_lake(ctx: SessionContext, lake: Lake, scratch: ObjectPath) -> Self {
        Self {
            ctx,
            inputs: Inputs::Lake {
                lake,
                scratch,
                next: AtomicU64::new(0),
            },
        }
    }

    /// A table of `batches` (all of `batches[0]`'s schema) for the plan.
    async fn table(
        &self,
        name: &str,
        batches: Vec<RecordBatch>,
        folder: Option<&ObjectPath>,
        scratch: &mut Scratch,
    ) -> Result<DataFrame, DecideError> {
        let (Inputs::Lake { lake, .. }, Some(folder)) = (&self.inputs, folder) else {
            return Ok(self.ctx.read_batches(batches)?);
        };
        let schema = batches[0].schema();
        let mut buffer = Vec::new();
        let mut writer = ArrowWriter::try_new(&mut buffer, schema, None)?;
        for batch in &batches {
            writer.write(batch)?;
        }
        writer.close()?;
        let path = folder.clone().join(format!("{name}.parquet"));
        lake.put(&path, buffer.into()).await?;
        scratch.files.push(path.clone());
        let options = ParquetReadOptions::default();
        Ok(self.ctx.read_parquet(lake_file_url(&path), options).await?)
    }

    /// The folder of the next decision's scratch files, when they go to the lake.
    fn next_folder(&self) -> Option<ObjectPath> {
        match &self.inputs {
            Inputs::Memory => None,
            Inputs::Lake { scratch, next, .. } => {
                let n = next.fetch_add(1, Ordering::Relaxed);
                Some(scratch.clone().join(format!("decision-{n}")))
            }
        }
    }

    /// Deletes a decision's scratch files; a failure only leaks a file.
    async fn remove(&self, scratch: Scratch) {
        let Inputs::Lake { lake, .. } = &self.inputs else {
            return;
        };
        for path in scratch.files {
            if let Err(error) = lake.store().delete(&path).await {
                tracing::warn!(%error, %path, "could not remove a segment decision's scratch file");
            }
        }
    }

    async fn run(
        &self,
        expr: &Expr,
        partition: &PartitionInputs<'_>,
        in_segment: &HashMap<String, BooleanArray>,
    ) -> Result<BooleanArray, DecideError> {
        let mut scratch = Scratch::default();
        let decided = self.plan(expr, partition, in_segment, &mut scratch).await;
        self.remove(scratch).await;
        decided
    }

    async fn plan(
        &self,
        expr: &Expr,
        partition: &PartitionInputs<'_>,
        in_segment: &HashMap<String, BooleanArray>,
        scratch: &mut Scratch,
    ) -> Result<BooleanArray, DecideError> {
        let rows = partition.profiles.num_rows();
        if rows == 0 {
            return Ok(BooleanArray::from(Vec::<bool>::new()));
        }
        let folder = self.next_folder();
        let (profiles, in_columns) = profile_batch(partition.profiles, in_segment)?;
        let mut plan = self.table("profiles", vec![profiles], folder.as_ref(), scratch).await?;
        let selections = event_selections(expr);
        let counts = if selections.is_empty() {
            Vec::new()
        } else if partition.events.is_empty() {
            vec![lit(0i64); selections.len()]
        } else {
            let events = self.events_table(partition.events, folder.as_ref(), scratch).await?;
            let per_profile = event_counts(events, &selections, partition.now)?;
            plan = plan.join(per_profile, JoinType::Left, &[ROW], &[PROFILE], None)?;
            (0..selections.len())
                .map(|s| coalesce(vec![ident(count_column(s)), lit(0i64)]))
                .collect()
        };
        let inputs = ProfileInputs {
            counts: &counts,
            in_segment: &in_columns,
        };
        let compiled = Compiler::profiles(plan.schema(), partition.now, &inputs).compile(expr)?;
        let decided = plan
            .select(vec![ident(ROW), compiled.alias(QUALIFIES)])?
            .collect()
            .await?;
        let mut qualifies = vec![false; rows];
        for batch in decided {
            let rows = batch.column(0).as_primitive::<UInt32Type>();
            let values = batch.column(1).as_boolean();
            for i in 0..batch.num_rows() {
                qualifies[rows.value(i) as usize] = values.is_valid(i) && values.value(i);
            }
        }
        Ok(BooleanArray::from(qualifies))
    }

    /// The partition's events, each with the row of its profile (`__profile`).
    async fn events_table(
        &self,
        events: &[EventRows],
        folder: Option<&ObjectPath>,
        scratch: &mut Scratch,
    ) -> Result<DataFrame, DecideError> {
        let batches = events
            .iter()
            .map(|rows| with_column(&rows.events, PROFILE, Arc::new(UInt32Array::from(rows.owners.clone()))))
            .collect::<Result<Vec<_>, _>>()?;
        self.table("events", batches, folder, scratch).await
    }
}

/// Per profile row (`__profile`), how many of its events pass each selection's filter.
fn event_counts(events: DataFrame, selections: &[&EventSelection], now: Timestamp) -> Result<DataFrame, DecideError> {
    let compiler = Compiler::events(events.schema(), now);
    let mut aggregates = Vec::with_capacity(selections.len());
    for (s, selection) in selections.iter().enumerate() {
        let passes = match &selection.filter {
            Some(filter) => compiler.compile(filter)?,
            None => lit(true),
        };
        aggregates.push(sum(cast(passes, DataType::Int64)).alias(count_column(s)));
    }
    Ok(events.aggregate(vec![ident(PROFILE)], aggregates)?)
}

impl Decide for ClusterDecide {
    async fn decide(
        &self,
        expr: &Expr,
        partition: &PartitionInputs<'_>,
        in_segment: &HashMap<String, BooleanArray>,
    ) -> Result<BooleanArray, SegmentError> {
        Ok(self.run(expr, partition, in_segment).await?)
    }
}

fn count_column(selection: usize) -> String {
    format!("__count_{selection}")
}

/// `batch` with one more column.
fn with_column(batch: &RecordBatch, name: &str, column: ArrayRef) -> Result<RecordBatch, DecideError> {
    let mut fields: Vec<Arc<Field>> = batch.schema().fields().iter().cloned().collect();
    fields.push(Arc::new(Field::new(name, column.data_type().clone(), false)));
    let mut columns = batch.columns().to_vec();
    columns.push(column);
    Ok(RecordBatch::try_new(Arc::new(Schema::new(fields)), columns)?)
}

/// The profiles with their row number and one column per `inSegment` audience; returns the
/// column name of each audience.
fn profile_batch(
    profiles: &RecordBatch,
    in_segment: &HashMap<String, BooleanArray>,
) -> Result<(RecordBatch, HashMap<String, String>), DecideError> {
    let rows = profiles.num_rows() as u32;
    let mut batch = with_column(profiles, ROW, Arc::new(UInt32Array::from_iter_values(0..rows)))?;
    let mut names = HashMap::new();
    for (k, (segment, members)) in in_segment.iter().enumerate() {
        let name = format!("__in_{k}");
        batch = with_column(&batch, &name, Arc::new(members.clone()))?;
        names.insert(segment.clone(), name);
    }
    Ok((batch, names))
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::{Date32Array, StringArray, StructArray};
    use dossier_engine::segments::NativeDecide;
    use dossier_model::pql::{PqlSchemas, parse};
    use dossier_model::xdm::XdmSchema;

    /// Three profiles: born 1980 with a purchase, born 1980 without, no `person` with one.
    fn partition() -> (RecordBatch, Vec<EventRows>) {
        let born = Arc::new(Date32Array::from(vec![Some(3_000), Some(3_000), Some(3_000)])) as ArrayRef;
        let person = StructArray::try_new(
            vec![Field::new("birthDate", DataType::Date32, true)].into(),
            vec![born],
            Some(vec![true, true, false].into()),
        )
        .unwrap();
        let profiles = RecordBatch::try_from_iter([("person", Arc::new(person) as ArrayRef)]).unwrap();
        let kinds = Arc::new(StringArray::from(vec!["buy", "view", "buy"])) as ArrayRef;
        let events = RecordBatch::try_from_iter([("eventType", kinds)]).unwrap();
        let rows = EventRows {
            events,
            owners: vec![0, 1, 2],
        };
        (profiles, vec![rows])
    }

    /// Memory tables and lake files give the native decision; the scratch files are removed.
    #[tokio::test]
    async fn inputs_in_memory_or_through_the_lake_decide_as_the_native_evaluator() {
        let (profile, event) = (XdmSchema::builtin_profile(), XdmSchema::builtin_experience_event());
        let schemas = PqlSchemas {
            profile: &profile,
            event: &event,
        };
        let text = "person.birthDate occurs before date(1990, 1, 1) and xEvent[eventType = \"buy\"].count() >= 1";
        let expr = parse(text, schemas).unwrap();
        let (profiles, events) = partition();
        let partition = PartitionInputs {
            now: Timestamp::now(),
            profiles: &profiles,
            events: &events,
        };
        let none = HashMap::new();
        let native = NativeDecide.decide(&expr, &partition, &none).await.unwrap();
        assert_eq!(native, BooleanArray::from(vec![true, false, false]));
        let dir = tempfile::tempdir().unwrap();
        let lake = Lake::local(dir.path()).unwrap();
        let ctx = crate::session::local_context(&lake).unwrap();
        let memory = ClusterDecide::in_memory(ctx.clone());
        assert_eq!(memory.decide(&expr, &partition, &none).await.unwrap(), native);
        let through = ClusterDecide::through_lake(ctx, lake.clone(), ObjectPath::from("scratch"));
        assert_eq!(through.decide(&expr, &partition, &none).await.unwrap(), native);
        let left = futures::StreamExt::count(lake.store().list(None)).await;
        assert_eq!(left, 0, "scratch files removed");
    }
}
