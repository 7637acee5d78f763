//! Reading the identities of a fragment file without its attributes: only the identity columns
//! and the system column are fetched, which is what the graph fold and an export's first pass
//! need.

use arrow::array::{AsArray, RecordBatch};
use arrow::datatypes::Int64Type;
use futures::TryStreamExt;
use object_store::path::Path as ObjectPath;
use parquet::arrow::ProjectionMask;

use dossier_model::xdm::{IdentityField, XdmSchema};
use dossier_storage::Lake;

use super::extract::{FragmentIdentities, fragment_identities, fragment_primaries};
use super::union_find::Identity;
use crate::EngineError;
use crate::fragments::SYSTEM_METADATA;
use crate::parquet_io::LakeFileReader;

/// Each row's identities and row id (its position in its batch), in file order.
pub async fn read_file_identities(
    lake: &Lake,
    location: &ObjectPath,
    schema: &XdmSchema,
) -> Result<(Vec<FragmentIdentities>, Vec<i64>), EngineError> {
    read_identity_columns(lake, location, schema, fragment_identities).await
}

/// Each row's primary identity and row id, in file order: what keying fragments to profiles
/// needs, without materializing the other identities.
pub async fn read_file_primaries(
    lake: &Lake,
    location: &ObjectPath,
    schema: &XdmSchema,
) -> Result<(Vec<Option<Identity>>, Vec<i64>), EngineError> {
    read_identity_columns(lake, location, schema, fragment_primaries).await
}

async fn read_identity_columns<T>(
    lake: &Lake,
    location: &ObjectPath,
    schema: &XdmSchema,
    extract: fn(&RecordBatch, &[IdentityField]) -> Vec<T>,
) -> Result<(Vec<T>, Vec<i64>), EngineError> {
    let builder = LakeFileReader::new(lake, location.clone()).builder().await?;
    // Leaf columns, not whole roots: an identity at `crm.crmId` must not decode all of `crm`.
    let mut prefixes: Vec<String> = vec!["identityMap".into(), format!("{SYSTEM_METADATA}.rowId")];
    prefixes.extend(schema.identities.iter().map(|i| i.path.clone()));
    let wanted = |path: &str| {
        prefixes
            .iter()
            .any(|p| path == p || (path.starts_with(p.as_str()) && path.as_bytes().get(p.len()) == Some(&b'.')))
    };
    let leaves: Vec<usize> = builder
        .parquet_schema()
        .columns()
        .iter()
        .enumerate()
        .filter(|(_, column)| wanted(&column.path().string()))
        .map(|(i, _)| i)
        .collect();
    let mask = ProjectionMask::leaves(builder.parquet_schema(), leaves);
    let batches: Vec<RecordBatch> = builder.with_projection(mask).build()?.try_collect().await?;
    let mut identities = Vec::new();
    let mut row_ids = Vec::new();
    for rows in &batches {
        identities.extend(extract(rows, &schema.identities));
        extend_row_ids(&mut row_ids, rows);
    }
    Ok((identities, row_ids))
}

/// Appends the row ids of `rows`, the next rows of a fragment file, to those of the rows before
/// them: from the system column, or their positions in the file when it has none.
pub(crate) fn extend_row_ids(row_ids: &mut Vec<i64>, rows: &RecordBatch) {
    let ids = rows
        .column_by_name(SYSTEM_METADATA)
        .and_then(|c| c.as_struct_opt())
        .and_then(|s| s.column_by_name("rowId"))
        .and_then(|c| c.as_primitive_opt::<Int64Type>());
    match ids {
        Some(ids) => row_ids.extend(ids.values().iter().copied()),
        None => row_ids.extend((row_ids.len() as i64)..(row_ids.len() + rows.num_rows()) as i64),
    }
}
