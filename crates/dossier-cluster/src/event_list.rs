//! `additionalFields.eventList` and `emptyProfiles` in the merged profiles plan.
//!
//! Events are keyed to profiles with the records (same primary identity, same graph join), so
//! a profile's events are exactly the native engine's. Each event fragment carries, besides its
//! merge fragment:
//! - [`EVENT`]: the event aligned to eventList's item schema (the event union projected to the
//!   job's fields), as the engine's `align_batch` aligns event rows;
//! - [`LISTED`]: whether its batch's ingestion time is in the window (`from` exclusive, `to`
//!   inclusive), a literal per batch, as the engine decides it per file.
//!
//! Grouping then collects the listed events (ordered by `timestamp` then `_id` on the client, as
//! the engine orders them: [`in_order`]), and, for a profile
//! without a record, its event fragments: merged by `dossier_merge_profile` they give the
//! engine's empty profile (no attributes, the events' identities in file order, the primary
//! namespace of the latest event).

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, ListArray, UInt32Array};
use datafusion::arrow::buffer::OffsetBuffer;
use datafusion::arrow::compute::take;
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimestampMicrosecondType};
use datafusion::common::DataFusionError;
use datafusion::functions::core::expr_fn::named_struct;
use datafusion::functions_aggregate::expr_fn::array_agg;
use datafusion::logical_expr::ExprFunctionExt;
use datafusion::prelude::{Expr, ident, lit};

use dossier_engine::EngineError;
use dossier_engine::export::{CancelFlag, ExportError, ExportRequest, ExportStage, ProjectError, project_schema};
use dossier_model::export_job::EventListSpec;
use dossier_model::time::EpochMillis;
use dossier_storage::MetaStore;

use crate::functions::align::{align, typed_null};

/// The output column, as the native engine names it.
pub const EVENT_LIST: &str = "eventList";
/// Per fragment: the event aligned to the item schema (null for records), and whether it is listed.
pub const EVENT: &str = "event";
pub const LISTED: &str = "listed";
/// Per profile: the fragments of its events (merged when it has no record).
pub const EVENT_FRAGMENTS: &str = "event_fragments";

/// What the job lists: the item schema and the ingestion window.
#[derive(Debug, Clone)]
pub struct EventListing {
    pub item: SchemaRef,
    pub window: (Option<EpochMillis>, Option<EpochMillis>),
}

impl EventListing {
    fn item_type(&self) -> DataType {
        DataType::Struct(self.item.fields().clone())
    }

    /// Whether events ingested at `ingested` are listed (semantics.md "Export output").
    pub fn in_window(&self, ingested: EpochMillis) -> bool {
        let (from, to) = self.window;
        from.is_none_or(|from| ingested > from) && to.is_none_or(|to| ingested <= to)
    }
}

/// eventList's item schema: the event union projected to the job's eventList fields, always
/// keeping `_id` and `timestamp` (the engine's `event_schema`).
pub async fn listing(
    meta: &MetaStore,
    request: &ExportRequest,
    cancel: &CancelFlag,
) -> Result<Option<EventListing>, ExportError> {
    let Some(spec) = &request.spec.event_list else {
        return Ok(None);
    };
    let full = meta
        .event_union(&request.tenant)
        .await
        .map_err(|error| ExportError::Storage {
            stage: ExportStage::Planning,
            source: error.into(),
        })?
        .arrow_schema();
    let item = match &spec.fields {
        None => full,
        Some(paths) => item_schema(&full, paths, cancel)?,
    };
    Ok(Some(listing_of(spec, item)))
}

fn item_schema(full: &SchemaRef, paths: &[String], cancel: &CancelFlag) -> Result<SchemaRef, ExportError> {
    project_schema(full, paths, &["_id", "timestamp"], &|| cancel.is_cancelled()).map_err(|error| match error {
        ProjectError::Cancelled => ExportError::Cancelled,
        ProjectError::Unknown(fields) => ExportError::FieldsGone {
            event_list: true,
            fields,
        },
    })
}

fn listing_of(spec: &EventListSpec, item: SchemaRef) -> EventListing {
    EventListing {
        item,
        window: (spec.from_ingest, spec.to_ingest),
    }
}

/// The output schema with eventList appended, as the engine appends it.
pub fn with_event_list(output: &SchemaRef, listing: &EventListing) -> SchemaRef {
    let mut fields: Vec<Field> = output.fields().iter().map(|f| f.as_ref().clone()).collect();
    let item = Field::new_list_field(listing.item_type(), true);
    fields.push(Field::new(EVENT_LIST, DataType::List(Arc::new(item)), true));
    Arc::new(Schema::new(fields))
}

/// A batch's [`EVENT`] and [`LISTED`] columns: the aligned event for an event batch in the
/// window, a typed null otherwise.
pub fn fragment_columns(
    listing: &EventListing,
    is_record: bool,
    ingested: EpochMillis,
    has: &dyn Fn(&str) -> bool,
) -> Result<[Expr; 2], DataFusionError> {
    let item_type = listing.item_type();
    let listed = !is_record && listing.in_window(ingested);
    let event = match listed {
        true => {
            let mut args = Vec::with_capacity(listing.item.fields().len() * 2);
            for field in listing.item.fields() {
                let name = field.name().as_str();
                let value = match has(name) {
                    true => align(ident(name), field.data_type())?,
                    false => typed_null(field.data_type())?,
                };
                args.extend([lit(name), value]);
            }
            named_struct(args)
        }
        false => typed_null(&item_type)?,
    };
    Ok([event.alias(EVENT), lit(listed).alias(LISTED)])
}

/// The listed events of a group, in no order: [`in_order`] orders them.
pub fn listed_events() -> Result<Expr, DataFusionError> {
    array_agg(ident(EVENT))
        .filter(ident(LISTED))
        .build()
        .map(|e| e.alias(EVENT_LIST))
}

/// `lists` with each list's events ordered by `timestamp` then `_id` as the engine orders them
/// (a missing time as `i64::MIN`, a missing id as `""`), and every null list (a profile without
/// listed events: `array_agg` of nothing) made an empty list, as the engine writes it.
///
/// Ordered here rather than by `array_agg(... ORDER BY ...)`: on the process cluster the
/// ordered aggregate listed each event several times (three copies, where a local session gave
/// one; `cluster_serve` catches it), and the engine's tie-break is its own key anyway.
pub fn in_order(lists: &ArrayRef) -> Result<ArrayRef, EngineError> {
    let Some(lists) = lists.as_list_opt::<i32>() else {
        return Err(EngineError::Invalid(format!("{EVENT_LIST} is not a list")));
    };
    let events = lists.values().as_struct_opt();
    let times = events
        .and_then(|e| e.column_by_name("timestamp"))
        .and_then(|c| c.as_primitive_opt::<TimestampMicrosecondType>());
    let ids = events
        .and_then(|e| e.column_by_name("_id"))
        .and_then(|c| c.as_string_opt::<i32>());
    let key = |i: usize| {
        let time = times.filter(|t| t.is_valid(i)).map_or(i64::MIN, |t| t.value(i));
        let id = ids.filter(|c| c.is_valid(i)).map_or("", |c| c.value(i));
        (time, id)
    };
    let offsets = lists.value_offsets();
    let mut indices = Vec::new();
    let mut bounds = vec![0i32];
    for row in 0..lists.len() {
        if lists.is_valid(row) {
            let mut events: Vec<u32> = (offsets[row] as u32..offsets[row + 1] as u32).collect();
            events.sort_by(|&a, &b| key(a as usize).cmp(&key(b as usize)));
            indices.extend(events);
        }
        bounds.push(indices.len() as i32);
    }
    let values = take(lists.values().as_ref(), &UInt32Array::from(indices), None)?;
    let DataType::List(item) = lists.data_type() else {
        unreachable!("a list array has a list type")
    };
    Ok(Arc::new(ListArray::try_new(
        item.clone(),
        OffsetBuffer::new(bounds.into()),
        values,
        None,
    )?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::Int32Array;

    #[test]
    fn the_window_is_exclusive_at_its_start_and_inclusive_at_its_end() {
        let listing = EventListing {
            item: Arc::new(Schema::empty()),
            window: (Some(10), Some(20)),
        };
        assert!(!listing.in_window(10));
        assert!(listing.in_window(11));
        assert!(listing.in_window(20));
        assert!(!listing.in_window(21));
    }

    #[test]
    fn a_null_list_becomes_an_empty_one_and_the_others_keep_their_items() {
        let item = Arc::new(Field::new_list_field(DataType::Int32, true));
        let lists: ArrayRef = Arc::new(ListArray::new(
            item,
            OffsetBuffer::new(vec![0, 2, 3, 4].into()),
            Arc::new(Int32Array::from(vec![1, 2, 9, 3])),
            Some(vec![true, false, true].into()),
        ));
        let fixed = in_order(&lists).unwrap();
        let fixed = fixed.as_list::<i32>();
        assert_eq!(fixed.null_count(), 0);
        assert_eq!(fixed.value_offsets(), &[0, 2, 2, 3]);
        assert_eq!(
            fixed
                .values()
                .as_primitive::<datafusion::arrow::datatypes::Int32Type>()
                .values(),
            &[1, 2, 3]
        );
    }
}
