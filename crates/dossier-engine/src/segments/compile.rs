//! Evaluating a PQL tree over Arrow record batches with arrow's compute kernels.
//!
//! Every condition yields one boolean per row, with no nulls: a condition on a missing value
//! is false where it stands (semantics.md), so `not` of it is true, and `x notIn [..]` is false
//! for a missing `x` while `not (x in [..])` is true. Event conditions read per-profile counts
//! computed beforehand ([`EventCounts`]); `inSegment` reads per-profile memberships.

use std::cell::Cell;
use std::collections::HashMap;
use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, Datum, Float64Array, Int64Array, RecordBatch, Scalar, StringArray,
    new_null_array,
};
use arrow::buffer::NullBuffer;
use arrow::compute::kernels::boolean::{and, not, or};
use arrow::compute::kernels::cmp;
use arrow::compute::kernels::comparison::{contains, ends_with, ilike, like, regexp_is_match_scalar, starts_with};
use arrow::compute::{cast, is_not_null, is_null, prep_null_mask_filter};
use arrow::datatypes::{DataType, Date32Type, Int64Type, TimestampMicrosecondType};
use arrow::error::ArrowError;
use jiff::Timestamp;

use dossier_model::pql::{CompareOp, EventSelection, Expr, FieldRef, FieldType, LiteralValue, Operand, TextFunction};

use super::window::{Range, window_ranges};

pub const MICROS_PER_DAY: i64 = 86_400_000_000;

/// What a profile-level evaluation reads besides the profile batch.
pub struct Inputs<'a> {
    pub now: Timestamp,
    /// Per event selection of the expression (in [`event_selections`] order), the number of
    /// each profile's events that pass its filter.
    pub event_counts: &'a [Int64Array],
    /// Per audience named by `inSegment`, whether each profile is a current member.
    pub in_segment: &'a HashMap<String, BooleanArray>,
}

/// The event selections of `expr` (not looking inside event filters, which cannot nest), in
/// the order evaluation meets them.
pub fn event_selections(expr: &Expr) -> Vec<&EventSelection> {
    let mut found = Vec::new();
    collect_selections(expr, &mut found);
    found
}

fn collect_selections<'a>(expr: &'a Expr, found: &mut Vec<&'a EventSelection>) {
    match expr {
        Expr::EventExists { events, .. } | Expr::EventCount { events, .. } => found.push(events),
        Expr::And { operands, .. } | Expr::Or { operands, .. } => {
            operands.iter().for_each(|o| collect_selections(o, found))
        }
        Expr::Not { operand, .. } => collect_selections(operand, found),
        _ => {}
    }
}

/// Every field `expr` reads, event filters included.
pub fn field_refs(expr: &Expr) -> Vec<&FieldRef> {
    let mut found = Vec::new();
    let mut pending = vec![expr];
    while let Some(expr) = pending.pop() {
        match expr {
            Expr::Compare { left, right, .. } => {
                for operand in [left, right] {
                    if let Operand::Field(field) = operand {
                        found.push(field);
                    }
                }
            }
            Expr::In { field, .. } | Expr::IsNull { field, .. } | Expr::Text { field, .. } => found.push(field),
            Expr::Occurs { field, .. } => found.push(field),
            _ => {}
        }
        pending.extend(expr.children());
    }
    found
}

/// The column at a dot path, null wherever it or an enclosing struct is null; all nulls when
/// the batch has no such column.
fn column_at(batch: &RecordBatch, path: &str) -> ArrayRef {
    let mut parts = path.split('.');
    let first = parts.next().unwrap_or_default();
    let Some(mut column) = batch.column_by_name(first).cloned() else {
        return new_null_array(&DataType::Null, batch.num_rows());
    };
    for part in parts {
        let Some(structs) = column.as_struct_opt() else {
            return new_null_array(&DataType::Null, batch.num_rows());
        };
        let Some(child) = structs.column_by_name(part) else {
            return new_null_array(&DataType::Null, batch.num_rows());
        };
        let nulls = NullBuffer::union(structs.nulls(), child.nulls());
        column = arrow::array::make_array(
            child
                .to_data()
                .into_builder()
                .nulls(nulls)
                .build()
                .expect("same length"),
        );
    }
    column
}

/// Nulls become false.
fn definite(result: BooleanArray) -> BooleanArray {
    if result.null_count() == 0 {
        result
    } else {
        prep_null_mask_filter(&result)
    }
}

fn all(value: bool, rows: usize) -> BooleanArray {
    BooleanArray::from(vec![value; rows])
}

/// Temporal values as UTC microseconds; a date is the start of its day.
fn micros(array: &ArrayRef) -> Result<ArrayRef, ArrowError> {
    Ok(match array.data_type() {
        DataType::Timestamp(arrow::datatypes::TimeUnit::Microsecond, _) => Arc::new(
            array
                .as_primitive::<TimestampMicrosecondType>()
                .reinterpret_cast::<Int64Type>(),
        ),
        DataType::Date32 => Arc::new(
            array
                .as_primitive::<Date32Type>()
                .unary::<_, Int64Type>(|d| i64::from(d) * MICROS_PER_DAY),
        ),
        DataType::Null => new_null_array(&DataType::Int64, array.len()),
        _ => {
            let as_micros = cast(
                array,
                &DataType::Timestamp(arrow::datatypes::TimeUnit::Microsecond, None),
            )?;
            cast(&as_micros, &DataType::Int64)?
        }
    })
}

fn literal_micros(value: &LiteralValue) -> Option<i64> {
    match value {
        LiteralValue::Date(date) => date
            .to_zoned(jiff::tz::TimeZone::UTC)
            .ok()
            .map(|z| z.timestamp().as_microsecond()),
        LiteralValue::DateTime(ts) => Some(ts.as_microsecond()),
        _ => None,
    }
}

/// How two sides of a comparison meet: the type both are brought to (the cluster's compiler
/// brings them to the same one).
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Common {
    Text,
    Int,
    Float,
    Bool,
    Micros,
}

pub fn common_of(field: FieldType, other_is_float: bool) -> Common {
    match field {
        FieldType::String => Common::Text,
        FieldType::Integer if !other_is_float => Common::Int,
        FieldType::Integer | FieldType::Number => Common::Float,
        FieldType::Boolean => Common::Bool,
        _ => Common::Micros,
    }
}

fn column_as(array: &ArrayRef, common: Common) -> Result<ArrayRef, ArrowError> {
    match common {
        Common::Text => cast(array, &DataType::Utf8),
        Common::Int => cast(array, &DataType::Int64),
        Common::Float => cast(array, &DataType::Float64),
        Common::Bool => cast(array, &DataType::Boolean),
        Common::Micros => micros(array),
    }
}

fn literal_as(value: &LiteralValue, common: Common) -> Option<Scalar<ArrayRef>> {
    let array: ArrayRef = match (common, value) {
        (Common::Text, LiteralValue::String(s)) => Arc::new(StringArray::from(vec![s.as_str()])),
        (Common::Int, LiteralValue::Integer(i)) => Arc::new(Int64Array::from(vec![*i])),
        (Common::Float, LiteralValue::Integer(i)) => Arc::new(Float64Array::from(vec![*i as f64])),
        (Common::Float, LiteralValue::Number(n)) => Arc::new(Float64Array::from(vec![*n])),
        (Common::Bool, LiteralValue::Boolean(b)) => Arc::new(BooleanArray::from(vec![*b])),
        (Common::Micros, value) => Arc::new(Int64Array::from(vec![literal_micros(value)?])),
        _ => return None,
    };
    Some(Scalar::new(array))
}

fn compare(left: &dyn Datum, op: CompareOp, right: &dyn Datum) -> Result<BooleanArray, ArrowError> {
    match op {
        CompareOp::Eq => cmp::eq(left, right),
        CompareOp::NotEq => cmp::neq(left, right),
        CompareOp::Lt => cmp::lt(left, right),
        CompareOp::LtEq => cmp::lt_eq(left, right),
        CompareOp::Gt => cmp::gt(left, right),
        CompareOp::GtEq => cmp::gt_eq(left, right),
    }
}

/// `%`, `_` and `\` taken literally in an arrow `like` pattern.
fn escape_like(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

fn in_ranges(values: &ArrayRef, ranges: &[Range]) -> Result<BooleanArray, ArrowError> {
    let mut result = all(false, values.len());
    for range in ranges {
        let mut hit = all(true, values.len());
        if let Some((lo, inclusive)) = range.lo {
            let lo = Int64Array::new_scalar(lo);
            let test = if inclusive {
                cmp::gt_eq(values, &lo)?
            } else {
                cmp::gt(values, &lo)?
            };
            hit = and(&hit, &definite(test))?;
        }
        if let Some((hi, inclusive)) = range.hi {
            let hi = Int64Array::new_scalar(hi);
            let test = if inclusive {
                cmp::lt_eq(values, &hi)?
            } else {
                cmp::lt(values, &hi)?
            };
            hit = and(&hit, &definite(test))?;
        }
        hit = and(&hit, &is_not_null(values)?)?;
        result = or(&result, &hit)?;
    }
    Ok(result)
}

/// Evaluates `expr` over `batch` (one row per profile, or per event inside an event filter).
pub struct Evaluator<'a> {
    inputs: Option<&'a Inputs<'a>>,
    now: Timestamp,
    next_selection: Cell<usize>,
}

impl<'a> Evaluator<'a> {
    /// For profile-level conditions.
    pub fn profiles(inputs: &'a Inputs<'a>) -> Self {
        Self {
            inputs: Some(inputs),
            now: inputs.now,
            next_selection: Cell::new(0),
        }
    }

    /// For an event filter, evaluated on a batch of events.
    pub fn events(now: Timestamp) -> Self {
        Self {
            inputs: None,
            now,
            next_selection: Cell::new(0),
        }
    }

    pub fn eval(&self, expr: &Expr, batch: &RecordBatch) -> Result<BooleanArray, ArrowError> {
        let rows = batch.num_rows();
        Ok(match expr {
            Expr::And { operands, .. } => {
                let mut result = all(true, rows);
                for operand in operands {
                    result = and(&result, &self.eval(operand, batch)?)?;
                }
                result
            }
            Expr::Or { operands, .. } => {
                let mut result = all(false, rows);
                for operand in operands {
                    result = or(&result, &self.eval(operand, batch)?)?;
                }
                result
            }
            Expr::Not { operand, .. } => not(&self.eval(operand, batch)?)?,
            Expr::Compare { left, op, right, .. } => self.compare(left, *op, right, batch)?,
            Expr::In {
                field, values, negated, ..
            } => {
                let column = column_at(batch, &field.path);
                let floats = values.iter().any(|v| matches!(v.value, LiteralValue::Number(_)));
                let common = common_of(field.ty, floats);
                let column = column_as(&column, common)?;
                let mut any = all(false, rows);
                for value in values {
                    if let Some(scalar) = literal_as(&value.value, common) {
                        any = or(&any, &definite(cmp::eq(&column, &scalar)?))?;
                    }
                }
                if *negated {
                    and(&not(&any)?, &is_not_null(&column)?)?
                } else {
                    any
                }
            }
            Expr::IsNull { field, negated, .. } => {
                let column = column_at(batch, &field.path);
                if *negated {
                    is_not_null(&column)?
                } else {
                    is_null(&column)?
                }
            }
            Expr::Text {
                field,
                function,
                pattern,
                case_sensitive,
                ..
            } => {
                let column = cast(&column_at(batch, &field.path), &DataType::Utf8)?;
                let escaped = escape_like(pattern);
                let sensitive = *case_sensitive;
                let scalar = |text: &str| StringArray::new_scalar(text);
                let result = match (function, sensitive) {
                    (TextFunction::StartsWith, true) => starts_with(&column, &scalar(pattern))?,
                    (TextFunction::StartsWith, false) => ilike(&column, &scalar(&format!("{escaped}%")))?,
                    (TextFunction::EndsWith, true) => ends_with(&column, &scalar(pattern))?,
                    (TextFunction::EndsWith, false) => ilike(&column, &scalar(&format!("%{escaped}")))?,
                    (TextFunction::Contains, true) => contains(&column, &scalar(pattern))?,
                    (TextFunction::Contains, false) => ilike(&column, &scalar(&format!("%{escaped}%")))?,
                    (TextFunction::Equals, true) => cmp::eq(&column, &scalar(pattern))?,
                    (TextFunction::Equals, false) => ilike(&column, &scalar(&escaped))?,
                    // PQL's like has no escape character: a backslash is literal.
                    (TextFunction::Like, true) => like(&column, &scalar(&pattern.replace('\\', "\\\\")))?,
                    (TextFunction::Like, false) => ilike(&column, &scalar(&pattern.replace('\\', "\\\\")))?,
                    (TextFunction::Matches, _) => {
                        let flags = if sensitive { None } else { Some("i") };
                        regexp_is_match_scalar(column.as_string::<i32>(), pattern, flags)?
                    }
                };
                definite(result)
            }
            Expr::Occurs { field, window, .. } => {
                let values = micros(&column_at(batch, &field.path))?;
                in_ranges(&values, &window_ranges(window, self.now))?
            }
            Expr::EventExists { .. } => {
                let counts = self.next_counts(rows)?;
                definite(cmp::gt(&counts, &Int64Array::new_scalar(0))?)
            }
            Expr::EventCount { op, count, .. } => {
                let counts = self.next_counts(rows)?;
                let count = i64::try_from(*count).unwrap_or(i64::MAX);
                definite(compare(&counts, *op, &Int64Array::new_scalar(count))?)
            }
            Expr::InSegment { segment_id, .. } => match self.inputs.and_then(|i| i.in_segment.get(segment_id)) {
                Some(members) => members.clone(),
                None => all(false, rows),
            },
        })
    }

    fn next_counts(&self, rows: usize) -> Result<Int64Array, ArrowError> {
        let index = self.next_selection.get();
        self.next_selection.set(index + 1);
        let counts = self
            .inputs
            .and_then(|inputs| inputs.event_counts.get(index))
            .ok_or_else(|| ArrowError::InvalidArgumentError("an event condition inside an event filter".into()))?;
        if counts.len() != rows {
            return Err(ArrowError::InvalidArgumentError("event counts of another batch".into()));
        }
        Ok(counts.clone())
    }

    fn compare(
        &self,
        left: &Operand,
        op: CompareOp,
        right: &Operand,
        batch: &RecordBatch,
    ) -> Result<BooleanArray, ArrowError> {
        let is_float = |operand: &Operand| match operand {
            Operand::Field(field) => field.ty == FieldType::Number,
            Operand::Value(literal) => matches!(literal.value, LiteralValue::Number(_)),
        };
        let result = match (left, right) {
            (Operand::Field(field), Operand::Value(value)) | (Operand::Value(value), Operand::Field(field)) => {
                let op = if matches!(left, Operand::Value(_)) {
                    op.flipped()
                } else {
                    op
                };
                let common = common_of(field.ty, is_float(left) || is_float(right));
                let column = column_as(&column_at(batch, &field.path), common)?;
                match literal_as(&value.value, common) {
                    Some(scalar) => compare(&column, op, &scalar)?,
                    None => all(false, batch.num_rows()),
                }
            }
            (Operand::Field(a), Operand::Field(b)) => {
                let common = common_of(a.ty, is_float(left) || is_float(right));
                let x = column_as(&column_at(batch, &a.path), common)?;
                let y = column_as(&column_at(batch, &b.path), common)?;
                compare(&x, op, &y)?
            }
            (Operand::Value(_), Operand::Value(_)) => all(false, batch.num_rows()),
        };
        Ok(definite(result))
    }
}
