//! `dossier_fragment_identities(roots, spec)`: each fragment's identities and primary identity,
//! by the engine's [`fragment_identities`], from the fragment's identity columns (`roots`, a
//! struct of `identityMap` and the roots of the dataset's identity fields) and its dataset's
//! identity fields (`spec`, a string literal made by [`identity_spec`]). Keying a fragment to
//! its profile and merging `identityMap` both start from what this gives, as in the engine.

use std::sync::Arc;

use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, Int32Array, ListArray, RecordBatch, RecordBatchOptions, StringArray, StructArray,
};
use datafusion::arrow::buffer::OffsetBuffer;
use datafusion::arrow::datatypes::{DataType, Field, Fields, Schema};
use datafusion::common::{Result, ScalarValue, exec_err};
use datafusion::functions::core::expr_fn::named_struct;
use datafusion::logical_expr::{
    ColumnarValue, Expr, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility, ident, lit,
};
use dossier_engine::identity::{FragmentIdentities, Identity, fragment_identities};
use dossier_model::xdm::{AuthenticatedState, IdentityField};

pub const NAME: &str = "dossier_fragment_identities";

/// Field names of the result.
pub const PRIMARY_NAMESPACE: &str = "primary_namespace";
pub const PRIMARY_ID: &str = "primary_id";
const PRIMARY: &str = "primary";
const ALL: &str = "all";

fn identity_fields() -> Fields {
    Fields::from(vec![
        Field::new("namespace", DataType::Utf8, false),
        Field::new("id", DataType::Utf8, false),
        Field::new("state", DataType::Utf8, true),
    ])
}

/// The result type: the primary identity (null when the fragment has none), its index in
/// `all`, and every identity with the `authenticatedState` the fragment gave it.
pub fn identities_type() -> DataType {
    let item = Field::new_list_field(DataType::Struct(identity_fields()), false);
    DataType::Struct(Fields::from(vec![
        Field::new(PRIMARY_NAMESPACE, DataType::Utf8, true),
        Field::new(PRIMARY_ID, DataType::Utf8, true),
        Field::new(PRIMARY, DataType::Int32, true),
        Field::new(ALL, DataType::List(Arc::new(item)), false),
    ]))
}

#[derive(Debug, PartialEq, Eq, Hash)]
pub struct FragmentIdentitiesUdf {
    signature: Signature,
}

impl Default for FragmentIdentitiesUdf {
    fn default() -> Self {
        Self {
            signature: Signature::any(2, Volatility::Immutable),
        }
    }
}

impl ScalarUDFImpl for FragmentIdentitiesUdf {
    fn name(&self) -> &str {
        NAME
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(identities_type())
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let roots = args.args[0].to_array(args.number_rows)?;
        let ColumnarValue::Scalar(ScalarValue::Utf8(Some(spec))) = &args.args[1] else {
            return exec_err!("{NAME}: the identity fields must be a string literal");
        };
        let Some(roots) = roots.as_struct_opt() else {
            return exec_err!("{NAME}: the identity columns must be a struct");
        };
        let rows = RecordBatch::try_new_with_options(
            Arc::new(Schema::new(roots.fields().clone())),
            roots.columns().to_vec(),
            &RecordBatchOptions::new().with_row_count(Some(roots.len())),
        )?;
        let identities = fragment_identities(&rows, &parse_spec(spec));
        Ok(ColumnarValue::Array(identities_array(&identities)?))
    }
}

pub fn udf() -> ScalarUDF {
    ScalarUDF::from(FragmentIdentitiesUdf::default())
}

/// The identities of fragments whose identity columns are `roots`, of a dataset with `fields`.
pub fn fragment_identities_expr(roots: Expr, fields: &[IdentityField]) -> Expr {
    udf().call(vec![roots, lit(identity_spec(fields))])
}

/// The identities of the fragments of a scan of a dataset with identity fields `fields`: the
/// function over `identityMap` and the roots of those fields that the scan has (`has`);
/// `None` when it has none of them (no fragment of it has an identity).
pub fn scan_identities_expr(fields: &[IdentityField], has: &dyn Fn(&str) -> bool) -> Option<Expr> {
    let mut roots: Vec<&str> = vec!["identityMap"];
    for field in fields {
        let root = field.path.split('.').next().unwrap_or(&field.path);
        if !roots.contains(&root) {
            roots.push(root);
        }
    }
    roots.retain(|root| has(root));
    if roots.is_empty() {
        return None;
    }
    let roots = named_struct(roots.iter().flat_map(|r| [lit(*r), ident(*r)]).collect());
    Some(fragment_identities_expr(roots, fields))
}

/// A dataset's identity fields as the function's literal argument: one line per field, `path`,
/// `namespace` and `1` or `0` (primary) separated by tabs. Paths and namespace codes hold
/// neither tabs nor line breaks.
pub fn identity_spec(fields: &[IdentityField]) -> String {
    fields
        .iter()
        .map(|f| format!("{}\t{}\t{}", f.path, f.namespace, u8::from(f.primary)))
        .collect::<Vec<_>>()
        .join("\n")
}

fn parse_spec(spec: &str) -> Vec<IdentityField> {
    spec.lines()
        .filter_map(|line| {
            let mut parts = line.split('\t');
            Some(IdentityField {
                path: parts.next()?.to_owned(),
                namespace: parts.next()?.to_owned(),
                primary: parts.next()? == "1",
            })
        })
        .collect()
}

fn identities_array(identities: &[FragmentIdentities]) -> Result<ArrayRef> {
    let primary =
        |pick: fn(&Identity) -> &str| -> StringArray { identities.iter().map(|f| f.primary().map(pick)).collect() };
    let (mut namespaces, mut ids, mut states, mut offsets) = (Vec::new(), Vec::new(), Vec::new(), vec![0i32]);
    for fragment in identities {
        for (identity, state) in fragment.all.iter().zip(&fragment.states) {
            namespaces.push(identity.namespace.as_str());
            ids.push(identity.id.as_str());
            states.push(state.map(AuthenticatedState::as_str));
        }
        offsets.push(namespaces.len() as i32);
    }
    let items = StructArray::try_new(
        identity_fields(),
        vec![
            Arc::new(StringArray::from(namespaces)),
            Arc::new(StringArray::from(ids)),
            Arc::new(StringArray::from(states)),
        ],
        None,
    )?;
    let DataType::Struct(fields) = identities_type() else {
        unreachable!("the identities type is a struct")
    };
    let DataType::List(item) = fields[3].data_type().clone() else {
        unreachable!("`all` is a list")
    };
    let all = ListArray::try_new(item, OffsetBuffer::new(offsets.into()), Arc::new(items), None)?;
    let index: Int32Array = identities.iter().map(|f| f.primary.map(|i| i as i32)).collect();
    Ok(Arc::new(StructArray::try_new(
        fields,
        vec![
            Arc::new(primary(|i| i.namespace.as_str())),
            Arc::new(primary(|i| i.id.as_str())),
            Arc::new(index),
            Arc::new(all),
        ],
        None,
    )?))
}

/// The identities of rows of an [`identities_type`] column, as the engine's merge takes them.
pub fn fragment_identities_of(column: &StructArray) -> Result<Vec<FragmentIdentities>> {
    let (Some(index), Some(all)) = (
        column
            .column_by_name(PRIMARY)
            .and_then(|c| c.as_primitive_opt::<datafusion::arrow::datatypes::Int32Type>()),
        column.column_by_name(ALL).and_then(|c| c.as_list_opt::<i32>()),
    ) else {
        return exec_err!("fragment identities lack '{PRIMARY}' or '{ALL}'");
    };
    let items = all.values().as_struct();
    let (namespaces, ids, states) = (
        items.column(0).as_string::<i32>(),
        items.column(1).as_string::<i32>(),
        items.column(2).as_string::<i32>(),
    );
    let offsets = all.value_offsets();
    Ok((0..column.len())
        .map(|row| {
            let range = offsets[row] as usize..offsets[row + 1] as usize;
            FragmentIdentities {
                all: range
                    .clone()
                    .map(|i| Identity::new(namespaces.value(i), ids.value(i)))
                    .collect(),
                states: range
                    .map(|i| {
                        states
                            .is_valid(i)
                            .then(|| AuthenticatedState::parse(states.value(i)))
                            .flatten()
                    })
                    .collect(),
                primary: index.is_valid(row).then(|| index.value(row) as usize),
            }
        })
        .collect())
}
