//! The decision seam: given one partition's merged profiles and their events, whether each
//! profile qualifies for one definition.
//!
//! Evaluation builds profiles with the profile builder (keying, merging, previous entries,
//! identities, files: evaluate.rs) and asks a [`Decide`] only this question, so another engine
//! can answer it without rebuilding profiles its own way: [`NativeDecide`] evaluates the PQL tree
//! with arrow kernels on this process; the cluster crate compiles it to a DataFusion plan.
//! Both must give the same answer for every expression the parser accepts.

use std::collections::HashMap;
use std::future::Future;

use arrow::array::{BooleanArray, Int64Array, RecordBatch};
use jiff::Timestamp;

use dossier_model::pql::Expr;

use super::compile::{Evaluator, Inputs, event_selections};
use super::evaluate::SegmentError;

/// Events of one lake file that belong to a partition's profiles.
#[derive(Debug, Clone)]
pub struct EventRows {
    /// The events, aligned to the columns the group's event filters read.
    pub events: RecordBatch,
    /// Per event, the row of its profile in [`PartitionInputs::profiles`].
    pub owners: Vec<u32>,
}

/// What a decision reads about one partition.
#[derive(Debug, Clone, Copy)]
pub struct PartitionInputs<'a> {
    /// The evaluation time (`now` of `occurs` windows).
    pub now: Timestamp,
    /// One row per profile: the merged columns the group's expressions read.
    pub profiles: &'a RecordBatch,
    /// The partition's events (empty when no expression of the group reads events).
    pub events: &'a [EventRows],
}

/// Decides, for one definition, which profiles of a partition qualify.
pub trait Decide: Sync {
    /// One value per row of `partition.profiles`, never null. `in_segment` holds, per audience
    /// `expr` names with `inSegment`, whether each profile is a current member.
    fn decide(
        &self,
        expr: &Expr,
        partition: &PartitionInputs<'_>,
        in_segment: &HashMap<String, BooleanArray>,
    ) -> impl Future<Output = Result<BooleanArray, SegmentError>> + Send;
}

/// The decision on this process, with arrow's compute kernels.
#[derive(Debug, Clone, Copy, Default)]
pub struct NativeDecide;

impl Decide for NativeDecide {
    async fn decide(
        &self,
        expr: &Expr,
        partition: &PartitionInputs<'_>,
        in_segment: &HashMap<String, BooleanArray>,
    ) -> Result<BooleanArray, SegmentError> {
        let counts = count_events(expr, partition)?;
        let inputs = Inputs {
            now: partition.now,
            event_counts: &counts,
            in_segment,
        };
        Ok(Evaluator::profiles(&inputs).eval(expr, partition.profiles)?)
    }
}

/// Per event selection of `expr`, how many of each profile's events pass its filter: the
/// filter runs vectorized over each file's events, and the passing rows are counted by owner.
fn count_events(expr: &Expr, partition: &PartitionInputs<'_>) -> Result<Vec<Int64Array>, SegmentError> {
    let profiles = partition.profiles.num_rows();
    let selections = event_selections(expr);
    let mut counts = vec![vec![0i64; profiles]; selections.len()];
    for rows in partition.events {
        for (slot, selection) in counts.iter_mut().zip(&selections) {
            match &selection.filter {
                None => rows.owners.iter().for_each(|&g| slot[g as usize] += 1),
                Some(filter) => {
                    let passing = Evaluator::events(partition.now).eval(filter, &rows.events)?;
                    for (i, &g) in rows.owners.iter().enumerate() {
                        if passing.value(i) {
                            slot[g as usize] += 1;
                        }
                    }
                }
            }
        }
    }
    Ok(counts.into_iter().map(Int64Array::from).collect())
}
