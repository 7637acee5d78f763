//! The reads that listed, per-sandbox resources (merge policies, segment definitions) share: one
//! page of a filtered, ordered listing with the total that matches, and the rows of several ids
//! at once (bulk-get). Each resource supplies its filter SQL and arguments, its order and its
//! row mapping; the SQL around them is written once here.

use sqlx::sqlite::{SqliteArguments, SqlitePool, SqliteRow};
use sqlx::{Arguments, AssertSqlSafe};

use dossier_model::listing::{Direction, sql_offset};
use dossier_model::tenancy::Tenant;

use crate::StorageError;
use crate::meta::Page;
use crate::meta::rows::to_json;

/// A listing's page as SQL reads it: rows of `table` where `filter_sql` holds (its `?` bound by
/// the arguments the listing gives), in `order`, `limit` of them after `start`.
pub(super) struct PageQuery {
    pub table: &'static str,
    pub filter_sql: &'static str,
    /// An `ORDER BY` clause built from an enum (see [`order_by_then_id`]), never from input.
    pub order: String,
    pub limit: u32,
    pub start: u64,
}

/// `ORDER BY {column} {direction}, id {direction}`: ties go by id, so pages never overlap.
pub(super) fn order_by_then_id(column: &str, direction: Direction) -> String {
    let dir = match direction {
        Direction::Asc => "ASC",
        Direction::Desc => "DESC",
    };
    format!("ORDER BY {column} {dir}, id {dir}")
}

/// Appends a value to a query's arguments; strings, numbers, booleans and `NULL`s always encode.
pub(super) fn push<'q, T: sqlx::Encode<'q, sqlx::Sqlite> + sqlx::Type<sqlx::Sqlite>>(
    args: &mut SqliteArguments,
    value: T,
) {
    args.add(value).expect("plain values always encode for SQLite");
}

/// Reads one page of a listing and the count of all that match. `filter_args` gives the
/// arguments of `filter_sql` (asked twice: the count and the page each bind them).
pub(super) async fn read_page<T>(
    pool: &SqlitePool,
    query: PageQuery,
    filter_args: impl Fn() -> SqliteArguments,
    from_row: impl Fn(&SqliteRow) -> Result<T, StorageError>,
) -> Result<Page<T>, StorageError> {
    let PageQuery {
        table,
        filter_sql,
        order,
        limit,
        start,
    } = query;
    // The only text put into the SQL is the table, the filter and the order, all constant.
    let count_sql = format!("SELECT COUNT(*) FROM {table} WHERE {filter_sql}");
    let total: i64 = sqlx::query_scalar_with(AssertSqlSafe(count_sql), filter_args())
        .fetch_one(pool)
        .await?;
    let mut args = filter_args();
    push(&mut args, i64::from(limit));
    push(&mut args, sql_offset(start));
    let sql = format!("SELECT * FROM {table} WHERE {filter_sql} {order} LIMIT ? OFFSET ?");
    let rows = sqlx::query_with(AssertSqlSafe(sql), args).fetch_all(pool).await?;
    Ok(Page {
        items: rows.iter().map(from_row).collect::<Result<_, _>>()?,
        total: u64::try_from(total).unwrap_or(0),
    })
}

/// The rows of `table` in this tenant whose id is one of `ids` (and `also`, a constant extra
/// condition such as `AND is_latest = 1`), in no particular order; unknown ids are absent.
pub(super) async fn read_by_ids<T>(
    pool: &SqlitePool,
    table: &'static str,
    also: &'static str,
    tenant: &Tenant,
    ids: &[&str],
    from_row: impl Fn(&SqliteRow) -> Result<T, StorageError>,
) -> Result<Vec<T>, StorageError> {
    let sql = format!(
        "SELECT * FROM {table} WHERE org = ? AND sandbox = ? {also} AND id IN (SELECT value FROM json_each(?))"
    );
    let rows = sqlx::query(AssertSqlSafe(sql))
        .bind(tenant.org.as_str())
        .bind(tenant.sandbox.as_str())
        .bind(to_json(&ids))
        .fetch_all(pool)
        .await?;
    rows.iter().map(from_row).collect()
}
