//! One row of a per-sandbox table named by its id (`org`, `sandbox`, `id`): read it, update it or
//! delete it.
//! Export and segment jobs, segment definitions and merge policies key their rows so; the SQL is
//! written once here.

use sqlx::postgres::{PgArguments, PgConnection, PgRow};
use sqlx::query::Query;
use sqlx::{AssertSqlSafe, Postgres};

use dossier_model::tenancy::Tenant;

use crate::StorageError;

/// The row of `table` with this id in this tenant (and `also`, a constant extra condition such
/// as `AND is_latest = TRUE`), read with `from_row`.
pub(super) async fn read_by_id<'q, I, T>(
    conn: &mut PgConnection,
    table: &'static str,
    also: &'static str,
    tenant: &'q Tenant,
    id: I,
    from_row: impl Fn(&PgRow) -> Result<T, StorageError>,
) -> Result<Option<T>, StorageError>
where
    I: 'q + Send + sqlx::Encode<'q, Postgres> + sqlx::Type<Postgres>,
{
    // The only text put into the SQL is the table and `also`, both constant.
    let sql = format!("SELECT * FROM {table} WHERE org = $1 AND sandbox = $2 AND id = $3 {also}");
    let row = sqlx::query(AssertSqlSafe(sql))
        .bind(tenant.org.as_str())
        .bind(tenant.sandbox.as_str())
        .bind(id)
        .fetch_optional(conn)
        .await?;
    row.as_ref().map(from_row).transpose()
}

/// Deletes every row of `table` with this id in this tenant (all versions, where a table keeps
/// several).
pub(super) async fn delete_by_id<'q, I>(
    conn: &mut PgConnection,
    table: &'static str,
    tenant: &'q Tenant,
    id: I,
) -> Result<(), sqlx::Error>
where
    I: 'q + Send + sqlx::Encode<'q, Postgres> + sqlx::Type<Postgres>,
{
    let sql = format!("DELETE FROM {table} WHERE org = $1 AND sandbox = $2 AND id = $3");
    sqlx::query(AssertSqlSafe(sql))
        .bind(tenant.org.as_str())
        .bind(tenant.sandbox.as_str())
        .bind(id)
        .execute(conn)
        .await?;
    Ok(())
}

/// Runs `update` (an `UPDATE` whose `WHERE` starts `org = ? AND sandbox = ? AND id = ?`, after
/// the `SET` values it has bound) on the row with this id in this tenant. Returns whether a row
/// changed: `false` when the row is not in the state the rest of the `WHERE` asks for.
pub(super) async fn update_by_id<'q, I>(
    conn: &mut PgConnection,
    update: Query<'q, Postgres, PgArguments>,
    tenant: &'q Tenant,
    id: I,
) -> Result<bool, sqlx::Error>
where
    I: 'q + Send + sqlx::Encode<'q, Postgres> + sqlx::Type<Postgres>,
{
    let done = update
        .bind(tenant.org.as_str())
        .bind(tenant.sandbox.as_str())
        .bind(id)
        .execute(conn)
        .await?;
    Ok(done.rows_affected() > 0)
}
