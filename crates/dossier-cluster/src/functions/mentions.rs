//! `dossier_mentions_segments(segmentMembership, spec)`: whether a fragment's memberships have
//! an entry for any of the job's segment filters (namespace compared case-insensitively, as the
//! filters are), whatever its status or time. A profile can pass a filter only if one of its
//! fragments mentions the filter's segment, so exports keep only such profiles (a semi-join)
//! before merging; the filter itself is decided on the merged memberships.

use std::sync::Arc;

use datafusion::arrow::array::{Array, AsArray, BooleanArray};
use datafusion::arrow::datatypes::DataType;
use datafusion::common::{Result, ScalarValue, exec_err};
use datafusion::logical_expr::{
    ColumnarValue, Expr, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility, lit,
};
use dossier_model::export_job::SegmentFilter;

pub const NAME: &str = "dossier_mentions_segments";

#[derive(Debug, PartialEq, Eq, Hash)]
pub struct MentionsSegments {
    signature: Signature,
}

impl Default for MentionsSegments {
    fn default() -> Self {
        Self {
            signature: Signature::any(2, Volatility::Immutable),
        }
    }
}

impl ScalarUDFImpl for MentionsSegments {
    fn name(&self) -> &str {
        NAME
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Boolean)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let memberships = args.args[0].to_array(args.number_rows)?;
        let ColumnarValue::Scalar(ScalarValue::Utf8(Some(spec))) = &args.args[1] else {
            return exec_err!("{NAME}: the filters must be a string literal");
        };
        let filters: Vec<(&str, &str)> = spec.lines().filter_map(|line| line.split_once('\t')).collect();
        Ok(ColumnarValue::Array(Arc::new(mentions(&memberships, &filters))))
    }
}

/// Per row of a `segmentMembership` map (namespace → segment → entry): whether it names one of
/// `filters` (namespace, segment).
fn mentions(memberships: &dyn Array, filters: &[(&str, &str)]) -> BooleanArray {
    let (Some(outer), rows) = (memberships.as_map_opt(), memberships.len()) else {
        return BooleanArray::from(vec![false; memberships.len()]);
    };
    let Some(inner) = outer.values().as_map_opt() else {
        return BooleanArray::from(vec![false; rows]);
    };
    let (Some(namespaces), Some(segments)) = (outer.keys().as_string_opt::<i32>(), inner.keys().as_string_opt::<i32>())
    else {
        return BooleanArray::from(vec![false; rows]);
    };
    let (outer_offsets, inner_offsets) = (outer.value_offsets(), inner.value_offsets());
    (0..rows)
        .map(|row| {
            let hit = outer.is_valid(row)
                && (outer_offsets[row] as usize..outer_offsets[row + 1] as usize).any(|n| {
                    inner.is_valid(n)
                        && (inner_offsets[n] as usize..inner_offsets[n + 1] as usize).any(|s| {
                            filters.iter().any(|(namespace, segment)| {
                                segments.value(s) == *segment && namespaces.value(n).eq_ignore_ascii_case(namespace)
                            })
                        })
                });
            Some(hit)
        })
        .collect()
}

pub fn udf() -> ScalarUDF {
    ScalarUDF::from(MentionsSegments::default())
}

/// Whether `memberships` mention any of `filters`.
pub fn mentions_segments(memberships: Expr, filters: &[SegmentFilter]) -> Expr {
    let spec: Vec<String> = filters
        .iter()
        .map(|f| format!("{}\t{}", f.segment_ns, f.segment_id))
        .collect();
    udf().call(vec![memberships, lit(spec.join("\n"))])
}
