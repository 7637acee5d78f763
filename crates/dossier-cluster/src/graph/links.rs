//! The identity links of the sandbox's committed fragments, extracted on the executors: one
//! Parquet scan per committed batch of the lake's fragment files, each row's identities by
//! `dossier_fragment_identities` (the engine's extraction, so exactly the identities the fold
//! reads) turned into links by `dossier_identity_links` and unnested, written by the session as
//! Parquet under the rebuild's scratch folder: the input of the connected-components plan. On a
//! Ballista session the scan, the functions and the writes run as tasks of the executors; the
//! client only plans (it reads the files' footers for their schemas).

use std::collections::HashSet;
use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::datatypes::{Schema, SchemaRef};
use datafusion::dataframe::DataFrame;
use datafusion::functions::core::expr_fn::get_field;
use datafusion::prelude::{ParquetReadOptions, SessionContext, ident};
use object_store::buffered::BufWriter;
use object_store::path::Path as ObjectPath;
use parquet::arrow::AsyncArrowWriter;

use dossier_model::xdm::XdmSchema;

use super::GraphError;
use super::components::Scratch;
use crate::functions::identities::scan_identities_expr;
use crate::functions::identity_links::{DST_ID, DST_NAMESPACE, SRC_ID, SRC_NAMESPACE, identity_links, link_fields};
use crate::session::lake_file_url;

const LINKS: &str = "links";

/// One committed batch's data files and the schema their rows follow.
#[derive(Debug, Clone)]
pub struct FragmentBatch {
    pub files: Vec<ObjectPath>,
    pub schema: Arc<XdmSchema>,
}

/// The columns of a links file (read as nullable: the writes do not all say otherwise).
pub fn links_schema() -> SchemaRef {
    let fields: Vec<_> = link_fields()
        .iter()
        .map(|f| f.as_ref().clone().with_nullable(true))
        .collect();
    Arc::new(Schema::new(fields))
}

/// The links of one batch's fragments; `None` when its files have no identity column.
async fn batch_links(ctx: &SessionContext, batch: &FragmentBatch) -> Result<Option<DataFrame>, GraphError> {
    let urls: Vec<String> = batch.files.iter().map(lake_file_url).collect();
    // Lake files are named by the lake, not by extension.
    let options = ParquetReadOptions {
        file_extension: "",
        ..ParquetReadOptions::default()
    };
    let scan = ctx.read_parquet(urls, options).await?;
    let columns: HashSet<String> = scan.schema().fields().iter().map(|f| f.name().clone()).collect();
    let Some(identities) = scan_identities_expr(&batch.schema.identities, &|name| columns.contains(name)) else {
        return Ok(None);
    };
    let links = scan
        .select(vec![identity_links(identities).alias(LINKS)])?
        .unnest_columns(&[LINKS])?
        .select(
            [SRC_NAMESPACE, SRC_ID, DST_NAMESPACE, DST_ID]
                .map(|name| get_field(ident(LINKS), name).alias(name))
                .to_vec(),
        )?;
    Ok(Some(links))
}

/// Writes the links of every fragment of `batches` as Parquet under `name` in the scratch
/// folder, as a plan of the scratch's session; gives the number of links written.
pub async fn write_links(scratch: &Scratch<'_>, batches: &[FragmentBatch], name: &str) -> Result<u64, GraphError> {
    let mut all: Option<DataFrame> = None;
    for batch in batches {
        if batch.files.is_empty() {
            continue;
        }
        let Some(links) = batch_links(scratch.ctx, batch).await? else {
            continue;
        };
        all = Some(match all {
            Some(all) => all.union(links)?,
            None => links,
        });
    }
    let Some(all) = all else {
        // No identity anywhere: an empty file, so the components plan still finds its input.
        write_empty(scratch, name).await?;
        return Ok(0);
    };
    let written = scratch.write(all, name).await?;
    let written = written_rows(&written);
    if written == 0 {
        write_empty(scratch, name).await?;
    }
    Ok(written)
}

/// The row count a write reports (DataFusion's `count` column).
fn written_rows(reports: &[RecordBatch]) -> u64 {
    use arrow::array::AsArray;
    use arrow::datatypes::UInt64Type;
    reports
        .iter()
        .filter_map(|batch| batch.column_by_name("count"))
        .filter_map(|count| count.as_primitive_opt::<UInt64Type>())
        .flat_map(|count| count.iter().flatten())
        .sum()
}

/// One links file without rows under `name`.
async fn write_empty(scratch: &Scratch<'_>, name: &str) -> Result<(), GraphError> {
    let location = scratch.folder.clone().join(name).join("empty.parquet");
    let sink = BufWriter::new(scratch.lake.store().clone(), location);
    let mut writer = AsyncArrowWriter::try_new(sink, links_schema(), None)?;
    writer.write(&RecordBatch::new_empty(links_schema())).await?;
    writer.close().await?;
    Ok(())
}
