//! `dossier_identity_links(identities)`: the links of a fragment's identities (what
//! `dossier_fragment_identities` gives), as the graph rebuild extracts them on the executors.
//!
//! A fragment links all its identities; a star from its first identity carries the same
//! connectivity with one link per further identity, and a fragment with one identity gives a
//! self-link so that the identity is still a vertex (a singleton component). A fragment without
//! identities gives no link (an empty list: unnested, no row).

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, ListArray, StringBuilder, StructArray};
use datafusion::arrow::buffer::OffsetBuffer;
use datafusion::arrow::datatypes::{DataType, Field, Fields};
use datafusion::common::{Result, exec_err};
use datafusion::logical_expr::{
    ColumnarValue, Expr, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};

use super::identities::fragment_identities_of;

pub const NAME: &str = "dossier_identity_links";

/// Fields of a link.
pub const SRC_NAMESPACE: &str = "src_namespace";
pub const SRC_ID: &str = "src_id";
pub const DST_NAMESPACE: &str = "dst_namespace";
pub const DST_ID: &str = "dst_id";

pub fn link_fields() -> Fields {
    Fields::from(
        [SRC_NAMESPACE, SRC_ID, DST_NAMESPACE, DST_ID]
            .map(|name| Field::new(name, DataType::Utf8, false))
            .to_vec(),
    )
}

fn links_type() -> DataType {
    DataType::List(Arc::new(Field::new_list_field(DataType::Struct(link_fields()), false)))
}

#[derive(Debug, PartialEq, Eq, Hash)]
pub struct IdentityLinks {
    signature: Signature,
}

impl Default for IdentityLinks {
    fn default() -> Self {
        Self {
            signature: Signature::any(1, Volatility::Immutable),
        }
    }
}

impl ScalarUDFImpl for IdentityLinks {
    fn name(&self) -> &str {
        NAME
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(links_type())
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let identities = args.args[0].to_array(args.number_rows)?;
        let Some(identities) = identities.as_struct_opt() else {
            return exec_err!("{NAME} takes a fragment's identities");
        };
        let fragments = fragment_identities_of(identities)?;
        let mut columns: [StringBuilder; 4] = std::array::from_fn(|_| StringBuilder::new());
        let mut offsets = vec![0i32];
        for fragment in &fragments {
            let mut links = 0;
            if let Some((head, rest)) = fragment.all.split_first() {
                let others = if rest.is_empty() {
                    std::slice::from_ref(head)
                } else {
                    rest
                };
                for other in others {
                    columns[0].append_value(&head.namespace);
                    columns[1].append_value(&head.id);
                    columns[2].append_value(&other.namespace);
                    columns[3].append_value(&other.id);
                }
                links = others.len() as i32;
            }
            offsets.push(offsets[offsets.len() - 1] + links);
        }
        let columns = columns.map(|mut c| Arc::new(c.finish()) as ArrayRef).to_vec();
        let links = StructArray::try_new(link_fields(), columns, None)?;
        let DataType::List(item) = links_type() else {
            unreachable!("a list")
        };
        let lists = ListArray::try_new(item, OffsetBuffer::new(offsets.into()), Arc::new(links), None)?;
        debug_assert_eq!(lists.len(), args.number_rows);
        Ok(ColumnarValue::Array(Arc::new(lists)))
    }
}

pub fn udf() -> ScalarUDF {
    ScalarUDF::from(IdentityLinks::default())
}

/// `dossier_identity_links(identities)`.
pub fn identity_links(identities: Expr) -> Expr {
    udf().call(vec![identities])
}
