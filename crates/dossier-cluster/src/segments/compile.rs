//! PQL (the model's typed tree) compiled to DataFusion expressions, with the meaning the native
//! evaluator gives it (dossier-engine segments/compile.rs), construct by construct:
//!
//! - every condition is two-valued: a condition on a missing value is false where it stands, so
//!   each leaf is wrapped in `IS TRUE` and `not` negates a value that is never null;
//! - both sides of a comparison are brought to one type (text, integer, float, boolean, or UTC
//!   microseconds for dates and date-times, a date being the start of its day);
//! - a dot path reads nested struct fields, null wherever an enclosing struct is null (DataFusion's
//!   `get_field` alone would read the child under a null parent);
//! - an `occurs` window is the engine's own ranges of instants (`window_ranges`), so the calendar
//!   arithmetic is done once, by the same code, and the plan only compares integers;
//! - an event condition reads its selection's per-profile count, a column the caller joined in;
//!   `inSegment` reads a boolean column the caller added.

use std::cell::Cell;
use std::collections::HashMap;

use datafusion::arrow::datatypes::{DataType, TimeUnit as ArrowTimeUnit};
use datafusion::common::{DFSchema, ScalarValue};
use datafusion::functions::expr_fn::{contains, ends_with, get_field, regexp_like, starts_with};
use datafusion::logical_expr::expr::Like;
use datafusion::logical_expr::{Expr as DfExpr, Operator, binary_expr, cast, ident, is_true, lit, not, when};
use jiff::Timestamp;

use dossier_engine::segments::window::{Range, window_ranges};
use dossier_model::pql::{CompareOp, Expr, FieldRef, FieldType, LiteralValue, Operand, TextFunction};

use super::DecideError;

use dossier_engine::segments::compile::{Common, MICROS_PER_DAY, common_of};

/// A typed null: an expression over a missing column.
fn null() -> (DfExpr, DataType) {
    (lit(ScalarValue::Null), DataType::Null)
}

/// Temporal values as UTC microseconds (Int64).
fn micros(value: DfExpr, ty: &DataType) -> DfExpr {
    match ty {
        DataType::Timestamp(ArrowTimeUnit::Microsecond, _) => cast(value, DataType::Int64),
        DataType::Date32 => binary_expr(cast(value, DataType::Int64), Operator::Multiply, lit(MICROS_PER_DAY)),
        DataType::Null => lit(ScalarValue::Int64(None)),
        _ => cast(
            cast(value, DataType::Timestamp(ArrowTimeUnit::Microsecond, None)),
            DataType::Int64,
        ),
    }
}

fn column_as(value: DfExpr, ty: &DataType, common: Common) -> DfExpr {
    match common {
        Common::Text => cast(value, DataType::Utf8),
        Common::Int => cast(value, DataType::Int64),
        Common::Float => cast(value, DataType::Float64),
        Common::Bool => cast(value, DataType::Boolean),
        Common::Micros => micros(value, ty),
    }
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

/// The literal in the common type; `None` when it cannot be (the comparison is then false).
fn literal_as(value: &LiteralValue, common: Common) -> Option<DfExpr> {
    Some(match (common, value) {
        (Common::Text, LiteralValue::String(s)) => lit(s.as_str()),
        (Common::Int, LiteralValue::Integer(i)) => lit(*i),
        (Common::Float, LiteralValue::Integer(i)) => lit(*i as f64),
        (Common::Float, LiteralValue::Number(n)) => lit(*n),
        (Common::Bool, LiteralValue::Boolean(b)) => lit(*b),
        (Common::Micros, value) => lit(literal_micros(value)?),
        _ => return None,
    })
}

fn operator(op: CompareOp) -> Operator {
    match op {
        CompareOp::Eq => Operator::Eq,
        CompareOp::NotEq => Operator::NotEq,
        CompareOp::Lt => Operator::Lt,
        CompareOp::LtEq => Operator::LtEq,
        CompareOp::Gt => Operator::Gt,
        CompareOp::GtEq => Operator::GtEq,
    }
}

/// `%`, `_` and `\` taken literally in a like pattern (whose escape character is `\`).
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

fn like(value: DfExpr, pattern: String, case_insensitive: bool) -> DfExpr {
    DfExpr::Like(Like::new(
        false,
        Box::new(value),
        Box::new(lit(pattern)),
        None,
        case_insensitive,
    ))
}

/// Whether `values` (microseconds) fall in one of `ranges`; false where null.
fn in_ranges(values: DfExpr, ranges: &[Range]) -> DfExpr {
    let mut any = lit(false);
    for range in ranges {
        let mut hit = values.clone().is_not_null();
        if let Some((lo, inclusive)) = range.lo {
            let op = if inclusive { Operator::GtEq } else { Operator::Gt };
            hit = hit.and(is_true(binary_expr(values.clone(), op, lit(lo))));
        }
        if let Some((hi, inclusive)) = range.hi {
            let op = if inclusive { Operator::LtEq } else { Operator::Lt };
            hit = hit.and(is_true(binary_expr(values.clone(), op, lit(hi))));
        }
        any = any.or(hit);
    }
    any
}

/// What a profile-level expression reads besides the profile columns.
pub struct ProfileInputs<'a> {
    /// Per event selection (in `event_selections` order), the expression of each profile's
    /// count of events passing its filter.
    pub counts: &'a [DfExpr],
    /// Per audience named by `inSegment`, the boolean column of current members.
    pub in_segment: &'a HashMap<String, String>,
}

/// Compiles PQL over one input (profiles, or the events an event filter looks at).
pub struct Compiler<'a> {
    schema: &'a DFSchema,
    now: Timestamp,
    inputs: Option<&'a ProfileInputs<'a>>,
    next_selection: Cell<usize>,
}

impl<'a> Compiler<'a> {
    /// For profile-level conditions over `schema`.
    pub fn profiles(schema: &'a DFSchema, now: Timestamp, inputs: &'a ProfileInputs<'a>) -> Self {
        Self {
            schema,
            now,
            inputs: Some(inputs),
            next_selection: Cell::new(0),
        }
    }

    /// For an event filter over events of `schema`.
    pub fn events(schema: &'a DFSchema, now: Timestamp) -> Self {
        Self {
            schema,
            now,
            inputs: None,
            next_selection: Cell::new(0),
        }
    }

    /// The expression, never null.
    pub fn compile(&self, expr: &Expr) -> Result<DfExpr, DecideError> {
        Ok(match expr {
            Expr::And { operands, .. } => self.fold(operands, lit(true), DfExpr::and)?,
            Expr::Or { operands, .. } => self.fold(operands, lit(false), DfExpr::or)?,
            Expr::Not { operand, .. } => not(self.compile(operand)?),
            Expr::Compare { left, op, right, .. } => self.compare(left, *op, right)?,
            Expr::In {
                field, values, negated, ..
            } => self.in_list(field, values.iter().map(|v| &v.value), *negated)?,
            Expr::IsNull { field, negated, .. } => {
                let (value, _) = self.field(field)?;
                if *negated { value.is_not_null() } else { value.is_null() }
            }
            Expr::Text {
                field,
                function,
                pattern,
                case_sensitive,
                ..
            } => self.text(field, *function, pattern, *case_sensitive)?,
            Expr::Occurs { field, window, .. } => {
                let (value, ty) = self.field(field)?;
                in_ranges(micros(value, &ty), &window_ranges(window, self.now))
            }
            Expr::EventExists { .. } => is_true(binary_expr(self.next_count()?, Operator::Gt, lit(0i64))),
            Expr::EventCount { op, count, .. } => {
                let count = i64::try_from(*count).unwrap_or(i64::MAX);
                is_true(binary_expr(self.next_count()?, operator(*op), lit(count)))
            }
            Expr::InSegment { segment_id, .. } => match self.inputs.and_then(|i| i.in_segment.get(segment_id)) {
                Some(column) => is_true(ident(column)),
                None => lit(false),
            },
        })
    }

    fn fold(
        &self,
        operands: &[Expr],
        start: DfExpr,
        join: fn(DfExpr, DfExpr) -> DfExpr,
    ) -> Result<DfExpr, DecideError> {
        let mut result = start;
        for operand in operands {
            result = join(result, self.compile(operand)?);
        }
        Ok(result)
    }

    /// The count expression of the next event selection, in the order compilation meets them
    /// (the order `event_selections` lists them).
    fn next_count(&self) -> Result<DfExpr, DecideError> {
        let index = self.next_selection.get();
        self.next_selection.set(index + 1);
        let inputs = self.inputs.ok_or(DecideError::EventInsideFilter)?;
        inputs.counts.get(index).cloned().ok_or(DecideError::EventInsideFilter)
    }

    /// The value at a field's dot path and its type; a typed null when the input has no such
    /// column or struct field.
    fn field(&self, field: &FieldRef) -> Result<(DfExpr, DataType), DecideError> {
        let mut parts = field.path.split('.');
        let first = parts.next().unwrap_or_default();
        let Ok(column) = self.schema.field_with_unqualified_name(first) else {
            return Ok(null());
        };
        let (mut value, mut ty) = (ident(first), column.data_type().clone());
        for part in parts {
            let DataType::Struct(children) = &ty else {
                return Ok(null());
            };
            let Some((_, child)) = children.find(part) else {
                return Ok(null());
            };
            let child_ty = child.data_type().clone();
            value = when(value.clone().is_not_null(), get_field(value, part)).end()?;
            ty = child_ty;
        }
        Ok((value, ty))
    }

    fn compare(&self, left: &Operand, op: CompareOp, right: &Operand) -> Result<DfExpr, DecideError> {
        let is_float = |operand: &Operand| match operand {
            Operand::Field(field) => field.ty == FieldType::Number,
            Operand::Value(literal) => matches!(literal.value, LiteralValue::Number(_)),
        };
        let floats = is_float(left) || is_float(right);
        Ok(match (left, right) {
            (Operand::Field(field), Operand::Value(value)) | (Operand::Value(value), Operand::Field(field)) => {
                let op = if matches!(left, Operand::Value(_)) {
                    op.flipped()
                } else {
                    op
                };
                let common = common_of(field.ty, floats);
                let (column, ty) = self.field(field)?;
                match literal_as(&value.value, common) {
                    Some(value) => is_true(binary_expr(column_as(column, &ty, common), operator(op), value)),
                    None => lit(false),
                }
            }
            (Operand::Field(a), Operand::Field(b)) => {
                let common = common_of(a.ty, floats);
                let (x, x_ty) = self.field(a)?;
                let (y, y_ty) = self.field(b)?;
                is_true(binary_expr(
                    column_as(x, &x_ty, common),
                    operator(op),
                    column_as(y, &y_ty, common),
                ))
            }
            (Operand::Value(_), Operand::Value(_)) => lit(false),
        })
    }

    /// `in`: equal to one of the values; `notIn`: present and equal to none (false where
    /// missing, unlike `not (x in ...)`).
    fn in_list<'v>(
        &self,
        field: &FieldRef,
        values: impl Iterator<Item = &'v LiteralValue> + Clone,
        negated: bool,
    ) -> Result<DfExpr, DecideError> {
        let floats = values.clone().any(|v| matches!(v, LiteralValue::Number(_)));
        let common = common_of(field.ty, floats);
        let (column, ty) = self.field(field)?;
        let column = column_as(column, &ty, common);
        let mut any = lit(false);
        for value in values {
            if let Some(value) = literal_as(value, common) {
                any = any.or(is_true(column.clone().eq(value)));
            }
        }
        Ok(if negated {
            not(any).and(column.is_not_null())
        } else {
            any
        })
    }

    fn text(
        &self,
        field: &FieldRef,
        function: TextFunction,
        pattern: &str,
        sensitive: bool,
    ) -> Result<DfExpr, DecideError> {
        let (value, _) = self.field(field)?;
        let value = cast(value, DataType::Utf8);
        let escaped = escape_like(pattern);
        let result = match (function, sensitive) {
            (TextFunction::StartsWith, true) => starts_with(value, lit(pattern)),
            (TextFunction::StartsWith, false) => like(value, format!("{escaped}%"), true),
            (TextFunction::EndsWith, true) => ends_with(value, lit(pattern)),
            (TextFunction::EndsWith, false) => like(value, format!("%{escaped}"), true),
            (TextFunction::Contains, true) => contains(value, lit(pattern)),
            (TextFunction::Contains, false) => like(value, format!("%{escaped}%"), true),
            (TextFunction::Equals, true) => value.eq(lit(pattern)),
            (TextFunction::Equals, false) => like(value, escaped, true),
            // PQL's like has no escape character: a backslash is literal.
            (TextFunction::Like, case_sensitive) => like(value, pattern.replace('\\', "\\\\"), !case_sensitive),
            (TextFunction::Matches, _) => {
                let flags = (!sensitive).then(|| lit("i"));
                regexp_like(value, lit(pattern), flags)
            }
        };
        Ok(is_true(result))
    }
}
