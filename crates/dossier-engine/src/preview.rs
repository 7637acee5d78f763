//! The first rows of a dataset as JSON, for `GET /datasets/{id}/preview`.

use futures::StreamExt;
use object_store::path::Path as ObjectPath;
use serde_json::Value;

use dossier_storage::Lake;

use crate::EngineError;

/// Up to `limit` rows from the given Parquet files, in order, as JSON objects.
pub async fn first_rows(lake: &Lake, files: &[ObjectPath], limit: usize) -> Result<Vec<Value>, EngineError> {
    let mut rows = Vec::new();
    for location in files {
        if rows.len() >= limit {
            break;
        }
        let reader = crate::parquet_io::LakeFileReader::new(lake, location.clone());
        let mut stream = reader.builder().await?.with_limit(limit - rows.len()).build()?;
        while let Some(batch) = stream.next().await {
            let mut writer = arrow::json::ArrayWriter::new(Vec::new());
            writer.write(&batch?)?;
            writer.finish()?;
            let parsed: Vec<Value> =
                serde_json::from_slice(&writer.into_inner()).map_err(|e| EngineError::Invalid(e.to_string()))?;
            rows.extend(parsed);
        }
    }
    rows.truncate(limit);
    Ok(rows)
}
