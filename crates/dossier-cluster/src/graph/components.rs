//! Connected components of the links as DataFusion plans: the alternating large-star /
//! small-star algorithm of Kiveris et al., "Connected Components in MapReduce and Beyond"
//! (SoCC 2014), as GraphFrames and Splink run it on Spark.
//!
//! Identities get dense 64-bit vertex ids in (namespace, id) order, so the smallest vertex id
//! of a component is its smallest identity: the key the fold gives it. Edges are stored once,
//! as `(hi, lo)` with `hi > lo`. Each half-round is a join and an aggregation, checkpointed to
//! Parquet so the next one starts from files and not from an ever-growing plan (and a failed
//! task reruns one step, not the history). Rounds stop when the edges are stars around each
//! component's smallest vertex: then neither step changes them (the algorithm's fixed point),
//! which takes O(log² n) rounds on n vertices, not the diameter that label propagation takes.

use arrow::array::AsArray;
use arrow::datatypes::Int64Type;
use arrow::datatypes::{DataType, Field, Schema};
use datafusion::dataframe::{DataFrame, DataFrameWriteOptions};
use datafusion::error::DataFusionError;
use datafusion::functions_aggregate::expr_fn::{count, count_distinct, min};
use datafusion::functions_window::expr_fn::row_number;
use datafusion::logical_expr::{ExprFunctionExt, JoinType};
use datafusion::prelude::{ParquetReadOptions, SessionContext, cast, coalesce, col, lit, when};
use object_store::path::Path as ObjectPath;

use dossier_storage::Lake;

use super::GraphError;
use crate::session::lake_file_url;

/// Rounds after which a rebuild gives up: O(log² n) rounds suffice, and 2⁶⁴ vertices need
/// fewer than this.
pub const MAX_ROUNDS: usize = 200;

/// The folder URL DataFusion reads and writes for `name` under `scratch`.
fn folder_url(scratch: &ObjectPath, name: &str) -> String {
    format!("{}/", lake_file_url(&scratch.clone().join(name)))
}

fn vertices_schema() -> Schema {
    Schema::new(vec![
        Field::new("namespace", DataType::Utf8, true),
        Field::new("id", DataType::Utf8, true),
        Field::new("vid", DataType::Int64, true),
    ])
}

fn edges_schema() -> Schema {
    Schema::new(vec![
        Field::new("hi", DataType::Int64, true),
        Field::new("lo", DataType::Int64, true),
    ])
}

/// The scratch folder of one rebuild and the session its plans run on.
pub struct Scratch<'a> {
    pub ctx: &'a SessionContext,
    pub lake: &'a Lake,
    pub folder: ObjectPath,
}

impl Scratch<'_> {
    /// Reads the Parquet files under `name`, as `schema`.
    pub async fn read(&self, name: &str, schema: &Schema) -> Result<DataFrame, GraphError> {
        let options = ParquetReadOptions::default().schema(schema);
        Ok(self.ctx.read_parquet(folder_url(&self.folder, name), options).await?)
    }

    /// Writes `frame` as Parquet under `name` (the session's tasks write); gives the write's
    /// report.
    pub async fn write(&self, frame: DataFrame, name: &str) -> Result<Vec<arrow::array::RecordBatch>, GraphError> {
        Ok(frame
            .write_parquet(&folder_url(&self.folder, name), DataFrameWriteOptions::new(), None)
            .await?)
    }

    /// Writes `frame` under `name` and reads it back: the plan that made it is done with.
    async fn checkpoint(&self, frame: DataFrame, name: &str, schema: &Schema) -> Result<DataFrame, GraphError> {
        self.write(frame, name).await?;
        self.read(name, schema).await
    }

    /// Deletes the files of a checkpoint no later step reads.
    async fn drop_checkpoint(&self, name: &str) -> Result<(), GraphError> {
        self.lake.delete_prefix(&self.folder.clone().join(name)).await?;
        Ok(())
    }
}

/// Every identity of the links once, with its vertex id: its rank in (namespace, id) order.
fn vertices(links: DataFrame) -> Result<DataFrame, GraphError> {
    let src = links
        .clone()
        .select(vec![col("src_namespace").alias("namespace"), col("src_id").alias("id")])?;
    let dst = links.select(vec![col("dst_namespace").alias("namespace"), col("dst_id").alias("id")])?;
    let rank = row_number()
        .order_by(vec![col("namespace").sort(true, false), col("id").sort(true, false)])
        .build()?
        .alias("rank");
    Ok(src.union_distinct(dst)?.window(vec![rank])?.select(vec![
        col("namespace"),
        col("id"),
        cast(col("rank"), DataType::Int64).alias("vid"),
    ])?)
}

/// The links as distinct `(hi, lo)` vertex pairs; self-links (singletons) drop out, their
/// identity stays a vertex.
fn initial_edges(links: DataFrame, vertices: DataFrame) -> Result<DataFrame, GraphError> {
    let side = |prefix: &str| {
        vertices.clone().select(vec![
            col("namespace").alias(format!("{prefix}_ns")),
            col("id").alias(format!("{prefix}_id")),
            col("vid").alias(prefix),
        ])
    };
    let pairs = links
        .join(
            side("s")?,
            JoinType::Inner,
            &["src_namespace", "src_id"],
            &["s_ns", "s_id"],
            None,
        )?
        .join(
            side("d")?,
            JoinType::Inner,
            &["dst_namespace", "dst_id"],
            &["d_ns", "d_id"],
            None,
        )?
        .filter(col("s").not_eq(col("d")))?;
    let hi = when(col("s").gt(col("d")), col("s")).otherwise(col("d"))?;
    let lo = when(col("s").gt(col("d")), col("d")).otherwise(col("s"))?;
    Ok(pairs.select(vec![hi.alias("hi"), lo.alias("lo")])?.distinct()?)
}

/// For each vertex with a smaller neighbour, the smallest one, as `(node, m)`.
fn smallest_neighbours(edges: DataFrame) -> Result<DataFrame, GraphError> {
    Ok(edges
        .aggregate(vec![col("hi")], vec![min(col("lo")).alias("m")])?
        .select(vec![col("hi").alias("node"), col("m")])?)
}

/// Large-star: every vertex `u` hands its larger neighbours to the smallest vertex of its
/// closed neighbourhood. Each edge `(hi, lo)` becomes `(hi, m(lo))`, `m(lo)` being `lo` when
/// `lo` has no smaller neighbour.
fn large_star(edges: DataFrame) -> Result<DataFrame, GraphError> {
    let smallest = smallest_neighbours(edges.clone())?;
    Ok(edges
        .join(smallest, JoinType::Left, &["lo"], &["node"], None)?
        .select(vec![col("hi"), coalesce(vec![col("m"), col("lo")]).alias("lo")])?
        .distinct()?)
}

/// Small-star: every vertex `u` with smaller neighbours links them and itself to the smallest
/// of them, `m(u)`. Each edge `(hi, lo)` becomes `(lo, m(hi))` (none when `lo` is `m(hi)`),
/// plus `(u, m(u))` for each such `u`.
fn small_star(edges: DataFrame) -> Result<DataFrame, GraphError> {
    let smallest = smallest_neighbours(edges.clone())?;
    let leaves = edges
        .join(smallest.clone(), JoinType::Inner, &["hi"], &["node"], None)?
        .filter(col("lo").not_eq(col("m")))?
        .select(vec![col("lo").alias("hi"), col("m").alias("lo")])?;
    let centres = smallest.select(vec![col("node").alias("hi"), col("m").alias("lo")])?;
    Ok(leaves.union(centres)?.distinct()?)
}

/// Whether `edges` are stars around their smallest vertex: each vertex has at most one smaller
/// neighbour (as many edges as distinct upper ends), and no such neighbour has one itself (no
/// lower end is an upper end). Neither step changes such edges. One job: it runs every round.
async fn is_star_forest(edges: &DataFrame) -> Result<bool, GraphError> {
    let uppers = edges
        .clone()
        .aggregate(vec![col("hi")], vec![])?
        .select(vec![col("hi").alias("upper")])?;
    let summary = edges
        .clone()
        .join(uppers, JoinType::Left, &["lo"], &["upper"], None)?
        .aggregate(
            vec![],
            vec![
                count(lit(1)).alias("edges"),
                count_distinct(col("hi")).alias("uppers"),
                count(col("upper")).alias("chained"),
            ],
        )?
        .collect()
        .await?;
    let row = summary
        .first()
        .filter(|rows| rows.num_rows() == 1)
        .ok_or_else(|| DataFusionError::Internal("a global aggregate gave no row".into()))?;
    let value = |name: &str| -> Result<i64, GraphError> {
        let column = row
            .column_by_name(name)
            .and_then(|c| c.as_primitive_opt::<Int64Type>())
            .ok_or_else(|| DataFusionError::Internal(format!("no count '{name}'")))?;
        Ok(column.value(0))
    };
    Ok(value("edges")? == value("uppers")? && value("chained")? == 0)
}

/// The vertices and the converged edges (each non-smallest vertex to its component's smallest)
/// of the links under `links` in `scratch`, and the rounds it took.
pub struct Converged {
    pub vertices: DataFrame,
    pub edges: DataFrame,
    pub rounds: usize,
}

/// Numbers the vertices and runs rounds until the edges are stars.
pub async fn connected_components(scratch: &Scratch<'_>, links: &str) -> Result<Converged, GraphError> {
    let links = scratch.read(links, &super::links::links_schema()).await?;
    let vertices = scratch
        .checkpoint(vertices(links.clone())?, "vertices", &vertices_schema())
        .await?;
    let mut edges = scratch
        .checkpoint(initial_edges(links, vertices.clone())?, "edges-0", &edges_schema())
        .await?;
    let mut previous = "edges-0".to_owned();
    let mut rounds = 0;
    while !is_star_forest(&edges).await? {
        rounds += 1;
        if rounds > MAX_ROUNDS {
            return Err(GraphError::NoConvergence { rounds: MAX_ROUNDS });
        }
        let large = format!("edges-{rounds}-large");
        edges = scratch.checkpoint(large_star(edges)?, &large, &edges_schema()).await?;
        let small = format!("edges-{rounds}-small");
        edges = scratch.checkpoint(small_star(edges)?, &small, &edges_schema()).await?;
        scratch.drop_checkpoint(&previous).await?;
        scratch.drop_checkpoint(&large).await?;
        previous = small;
        tracing::debug!(rounds, "identity graph rebuild: round done");
    }
    Ok(Converged {
        vertices,
        edges,
        rounds,
    })
}

/// The snapshot's rows: each identity with its component's smallest identity, sorted by
/// component then identity (vertex ids follow identity order), as the fold writes them.
pub fn snapshot_rows(converged: Converged) -> Result<DataFrame, GraphError> {
    let Converged { vertices, edges, .. } = converged;
    let parents = edges.select(vec![col("hi").alias("child"), col("lo").alias("parent")])?;
    let labelled = vertices
        .clone()
        .join(parents, JoinType::Left, &["vid"], &["child"], None)?
        .select(vec![
            col("namespace"),
            col("id"),
            col("vid"),
            coalesce(vec![col("parent"), col("vid")]).alias("component"),
        ])?;
    let keys = vertices.select(vec![
        col("vid").alias("key"),
        col("namespace").alias("component_namespace"),
        col("id").alias("component_id"),
    ])?;
    Ok(labelled
        .join(keys, JoinType::Inner, &["component"], &["key"], None)?
        .sort(vec![col("component").sort(true, false), col("vid").sort(true, false)])?
        .select(vec![
            col("namespace"),
            col("id"),
            col("component_namespace"),
            col("component_id"),
        ])?)
}
