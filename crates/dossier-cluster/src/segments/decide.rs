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

use std::collections::HashMap;
use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, BooleanArray, RecordBatch, UInt32Array};
use datafusion::arrow::datatypes::{DataType, Field, Schema, UInt32Type};
use datafusion::common::JoinType;
use datafusion::dataframe::DataFrame;
use datafusion::functions::expr_fn::coalesce;
use datafusion::functions_aggregate::expr_fn::sum;
use datafusion::logical_expr::{cast, ident, lit};
use datafusion::prelude::SessionContext;
use jiff::Timestamp;

use dossier_engine::segments::compile::event_selections;
use dossier_engine::segments::{Decide, EventRows, PartitionInputs, SegmentError};
use dossier_model::pql::{EventSelection, Expr};

use super::DecideError;
use super::compile::{Compiler, ProfileInputs};

const ROW: &str = "__row";
const PROFILE: &str = "__profile";
const QUALIFIES: &str = "__qualifies";

/// Takes each decision with a DataFusion plan in `ctx`.
#[derive(Clone)]
pub struct ClusterDecide {
    ctx: SessionContext,
}

impl ClusterDecide {
    pub fn new(ctx: SessionContext) -> Self {
        Self { ctx }
    }

    async fn run(
        &self,
        expr: &Expr,
        partition: &PartitionInputs<'_>,
        in_segment: &HashMap<String, BooleanArray>,
    ) -> Result<BooleanArray, DecideError> {
        let rows = partition.profiles.num_rows();
        if rows == 0 {
            return Ok(BooleanArray::from(Vec::<bool>::new()));
        }
        let (profiles, in_columns) = profile_batch(partition.profiles, in_segment)?;
        let mut plan = self.ctx.read_batch(profiles)?;
        let selections = event_selections(expr);
        let counts = if selections.is_empty() {
            Vec::new()
        } else if partition.events.is_empty() {
            vec![lit(0i64); selections.len()]
        } else {
            let per_profile = self.event_counts(&selections, partition.events, partition.now)?;
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

    /// Per profile row (`__profile`), how many of its events pass each selection's filter.
    fn event_counts(
        &self,
        selections: &[&EventSelection],
        events: &[EventRows],
        now: Timestamp,
    ) -> Result<DataFrame, DecideError> {
        let batches = events
            .iter()
            .map(|rows| with_column(&rows.events, PROFILE, Arc::new(UInt32Array::from(rows.owners.clone()))))
            .collect::<Result<Vec<_>, _>>()?;
        let events = self.ctx.read_batches(batches)?;
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
