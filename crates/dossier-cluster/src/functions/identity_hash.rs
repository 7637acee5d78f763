//! `dossier_identity_hash(namespace, id)`: the engine's 128-bit identity hash, the key by which
//! the graph's identities and the fragments' primary identities meet, as 16 big-endian bytes.
//! A plan that joins on it computes the same key on every executor as the native engine does.

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, FixedSizeBinaryBuilder, StringArray};
use arrow::datatypes::DataType;
use datafusion::common::{Result, exec_err};
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, TypeSignature, Volatility,
};
use dossier_engine::profiles::build::shards::identity_hash::identity_hash;

/// The function's name in SQL and in serialized plans.
pub const NAME: &str = "dossier_identity_hash";

/// Bytes of one hash.
const WIDTH: i32 = 16;

/// The function, ready to register.
pub fn udf() -> ScalarUDF {
    ScalarUDF::new_from_impl(IdentityHash::new())
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct IdentityHash {
    signature: Signature,
}

impl IdentityHash {
    fn new() -> Self {
        // Utf8 only: the lake's namespace and id columns are Utf8, and a coercion keeps a
        // literal argument working.
        let signature = Signature::one_of(
            vec![TypeSignature::Exact(vec![DataType::Utf8, DataType::Utf8])],
            Volatility::Immutable,
        );
        Self { signature }
    }
}

impl ScalarUDFImpl for IdentityHash {
    fn name(&self) -> &str {
        NAME
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::FixedSizeBinary(WIDTH))
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let arrays = ColumnarValue::values_to_arrays(&args.args)?;
        let [namespaces, ids] = arrays.as_slice() else {
            return exec_err!("{NAME} takes two arguments (namespace, id), got {}", arrays.len());
        };
        Ok(ColumnarValue::Array(hash_all(
            namespaces.as_string::<i32>(),
            ids.as_string::<i32>(),
        )?))
    }
}

/// One hash per row; null where either argument is null (no identity, no key).
fn hash_all(namespaces: &StringArray, ids: &StringArray) -> Result<ArrayRef> {
    let mut hashes = FixedSizeBinaryBuilder::with_capacity(namespaces.len(), WIDTH);
    for (namespace, id) in namespaces.iter().zip(ids.iter()) {
        match (namespace, id) {
            (Some(namespace), Some(id)) => hashes.append_value(identity_hash(namespace, id).to_be_bytes())?,
            _ => hashes.append_null(),
        }
    }
    Ok(Arc::new(hashes.finish()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::FixedSizeBinaryArray;

    #[test]
    fn each_row_is_the_engines_hash_and_nulls_stay_null() {
        let namespaces = StringArray::from(vec![Some("Email"), None, Some("ECID")]);
        let ids = StringArray::from(vec![Some("a@example.com"), Some("x"), Some("42")]);
        let hashes = hash_all(&namespaces, &ids).unwrap();
        let hashes = hashes.as_any().downcast_ref::<FixedSizeBinaryArray>().unwrap();
        assert_eq!(hashes.value(0), identity_hash("Email", "a@example.com").to_be_bytes());
        assert!(hashes.is_null(1));
        assert_eq!(hashes.value(2), identity_hash("ECID", "42").to_be_bytes());
    }
}
