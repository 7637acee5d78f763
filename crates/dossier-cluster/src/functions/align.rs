//! `dossier_align(value, target)`: `value` with the type of `target` (a typed null literal), by
//! the engine's [`align_array`]: fields the value lacks become nulls, at every depth. Fragments of
//! datasets with different schemas are aligned to the union this way before they are unioned
//! and merged, exactly as the native engine aligns them.

use datafusion::arrow::datatypes::DataType;
use datafusion::common::{Result, ScalarValue};
use datafusion::logical_expr::{
    ColumnarValue, Expr, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility, lit,
};
use dossier_engine::profiles::align::align_array;

pub const NAME: &str = "dossier_align";

#[derive(Debug, PartialEq, Eq, Hash)]
pub struct Align {
    signature: Signature,
}

impl Default for Align {
    fn default() -> Self {
        Self {
            // No coercion: the target's type is the point, and any value type is aligned.
            signature: Signature::any(2, Volatility::Immutable),
        }
    }
}

impl ScalarUDFImpl for Align {
    fn name(&self) -> &str {
        NAME
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        Ok(arg_types[1].clone())
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let target = args.return_field.data_type().clone();
        let value = args.args[0].to_array(args.number_rows)?;
        Ok(ColumnarValue::Array(align_array(&value, &target)?))
    }
}

/// The function, as sessions register it.
pub fn udf() -> ScalarUDF {
    ScalarUDF::from(Align::default())
}

/// `value` aligned to `target`.
pub fn align(value: Expr, target: &DataType) -> Result<Expr> {
    Ok(udf().call(vec![value, typed_null(target)?]))
}

/// A null of type `data_type`, as a literal: what a column a file does not have becomes.
pub fn typed_null(data_type: &DataType) -> Result<Expr> {
    Ok(lit(ScalarValue::try_new_null(data_type)?))
}
