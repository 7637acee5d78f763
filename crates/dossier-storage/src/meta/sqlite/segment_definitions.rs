//! Segment definitions: one row each, rewritten on change.
//!
//! Writes run in `BEGIN IMMEDIATE` transactions because they check what other rows say (the
//! merge policy exists, the name is free, no `inSegment` chain leads back to the definition, no
//! other definition depends on one being deleted) and nothing may change that in between.

use std::collections::HashMap;

use async_trait::async_trait;
use sqlx::sqlite::{SqliteArguments, SqliteConnection, SqliteRow};
use sqlx::{FromRow, Row, Sqlite, Transaction};

use dossier_model::ids::{MergePolicyId, SegmentDefinitionId};
use dossier_model::listing::Direction;
use dossier_model::pql::PqlError;
use dossier_model::segment_definition::{
    CheckedSpec, SegmentDefinition, SegmentDefinitionListQuery, SegmentDefinitionSpec, SegmentSortField,
    dependency_cycle,
};
use dossier_model::tenancy::Tenant;
use dossier_model::time::EpochMillis;

use super::SqliteMetaStore;
use super::by_id::{delete_by_id, read_by_id};
use super::paging::{PageQuery, order_by_then_id, push, read_by_ids, read_page};
use crate::StorageError;
use crate::meta::prelude::*;
use crate::meta::rows::{TenantColumns, json_column, parsed_column, to_json};
use crate::meta::{SegmentDefinitionPage, SegmentDefinitionWriteError, SegmentSpecCheck, SegmentSpecEdit};

const TABLE: &str = "segment_definitions";

/// A `segment_definitions` row as stored.
#[derive(sqlx::FromRow)]
struct SegmentDefinitionRow {
    id: String,
    #[sqlx(flatten)]
    tenant: TenantColumns,
    name: String,
    description: Option<String>,
    schema_name: String,
    expression: String,
    merge_policy_id: String,
    batch_enabled: bool,
    ttl_in_days: Option<i64>,
    dependencies: String,
    creation_time: EpochMillis,
    update_time: EpochMillis,
}

impl SegmentDefinitionRow {
    fn into_definition(self) -> Result<SegmentDefinition, StorageError> {
        let Tenant { org, sandbox } = self.tenant.into_tenant(TABLE)?;
        Ok(SegmentDefinition {
            id: SegmentDefinitionId::from_string(self.id),
            org,
            sandbox,
            name: self.name,
            description: self.description,
            schema_name: self.schema_name,
            expression: self.expression,
            merge_policy_id: MergePolicyId::from_string(self.merge_policy_id),
            batch_enabled: self.batch_enabled,
            ttl_in_days: self
                .ttl_in_days
                .map(|days| parsed_column(TABLE, "ttl_in_days", u32::try_from(days)))
                .transpose()?,
            dependencies: json_column(TABLE, "dependencies", &self.dependencies)?,
            creation_time: self.creation_time,
            update_time: self.update_time,
        })
    }
}

fn definition_from_row(row: &SqliteRow) -> Result<SegmentDefinition, StorageError> {
    SegmentDefinitionRow::from_row(row)?.into_definition()
}

/// `ORDER BY` for the listing. The field is an enum, so the SQL text comes from this match only.
fn order_clause((field, direction): (SegmentSortField, Direction)) -> String {
    let column = match field {
        SegmentSortField::CreationTime => "creation_time",
        SegmentSortField::UpdateTime => "update_time",
        SegmentSortField::Name => "name COLLATE NOCASE",
        SegmentSortField::Id => "id",
    };
    order_by_then_id(column, direction)
}

/// The filters of the listing: tenant, `batch_enabled`, and a switch that matches nothing (asking
/// for streaming or edge definitions, which do not exist here).
const FILTER_SQL: &str = "org = ? AND sandbox = ? AND (? IS NULL OR batch_enabled = ?) AND ? = 0";

/// [`FILTER_SQL`]'s arguments, in its order.
fn filter_args(tenant: &Tenant, filter: &SegmentDefinitionListQuery) -> SqliteArguments {
    let mut args = SqliteArguments::default();
    push(&mut args, tenant.org.as_str());
    push(&mut args, tenant.sandbox.as_str());
    push(&mut args, filter.batch_enabled);
    push(&mut args, filter.batch_enabled);
    push(&mut args, filter.streaming_or_edge == Some(true));
    args
}

async fn insert(conn: &mut SqliteConnection, definition: &SegmentDefinition) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO segment_definitions (org, sandbox, id, name, description, schema_name, expression,
                                          merge_policy_id, batch_enabled, ttl_in_days, dependencies,
                                          creation_time, update_time)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(definition.org.as_str())
    .bind(definition.sandbox.as_str())
    .bind(definition.id.as_str())
    .bind(&definition.name)
    .bind(&definition.description)
    .bind(&definition.schema_name)
    .bind(&definition.expression)
    .bind(definition.merge_policy_id.as_str())
    .bind(definition.batch_enabled)
    .bind(definition.ttl_in_days.map(i64::from))
    .bind(to_json(&definition.dependencies))
    .bind(definition.creation_time)
    .bind(definition.update_time)
    .execute(conn)
    .await?;
    Ok(())
}

async fn definition_in(
    conn: &mut SqliteConnection,
    tenant: &Tenant,
    id: &SegmentDefinitionId,
) -> Result<Option<SegmentDefinition>, StorageError> {
    read_by_id(conn, TABLE, "", tenant, id.as_str(), definition_from_row).await
}

/// The merge policy a definition uses: the one named, if it exists in the sandbox, else the
/// sandbox's default for profiles.
async fn resolve_merge_policy(
    conn: &mut SqliteConnection,
    tenant: &Tenant,
    spec: &SegmentDefinitionSpec,
) -> Result<MergePolicyId, SegmentDefinitionWriteError> {
    let found: Option<String> = match &spec.merge_policy_id {
        Some(id) => {
            sqlx::query_scalar(
                "SELECT id FROM merge_policies WHERE org = ? AND sandbox = ? AND id = ? AND is_latest = 1",
            )
            .bind(tenant.org.as_str())
            .bind(tenant.sandbox.as_str())
            .bind(id.as_str())
            .fetch_optional(conn)
            .await?
        }
        None => {
            sqlx::query_scalar(
                "SELECT id FROM merge_policies
             WHERE org = ? AND sandbox = ? AND schema_name = ? AND is_latest = 1 AND is_default = 1",
            )
            .bind(tenant.org.as_str())
            .bind(tenant.sandbox.as_str())
            .bind(&spec.schema_name)
            .fetch_optional(conn)
            .await?
        }
    };
    match (found, &spec.merge_policy_id) {
        (Some(id), _) => Ok(MergePolicyId::from_string(id)),
        (None, Some(id)) => Err(SegmentDefinitionWriteError::UnknownMergePolicy(id.clone())),
        (None, None) => Err(SegmentDefinitionWriteError::NoDefaultMergePolicy),
    }
}

/// Refuses a name another definition of the sandbox has.
async fn check_name_free(
    conn: &mut SqliteConnection,
    tenant: &Tenant,
    name: &str,
    id: &SegmentDefinitionId,
) -> Result<(), SegmentDefinitionWriteError> {
    let holder: Option<String> =
        sqlx::query_scalar("SELECT id FROM segment_definitions WHERE org = ? AND sandbox = ? AND name = ? AND id <> ?")
            .bind(tenant.org.as_str())
            .bind(tenant.sandbox.as_str())
            .bind(name)
            .bind(id.as_str())
            .fetch_optional(conn)
            .await?;
    match holder {
        Some(holder) => Err(SegmentDefinitionWriteError::NameTaken {
            name: name.to_owned(),
            id: SegmentDefinitionId::from_string(holder),
        }),
        None => Ok(()),
    }
}

/// Refuses dependencies that would lead back to `id` through other definitions' `inSegment`s:
/// such a definition could never be evaluated (each would wait for the other).
async fn check_no_cycle(
    conn: &mut SqliteConnection,
    tenant: &Tenant,
    id: &SegmentDefinitionId,
    dependencies: &[String],
) -> Result<(), SegmentDefinitionWriteError> {
    if dependencies.is_empty() {
        return Ok(());
    }
    let rows =
        sqlx::query("SELECT id, dependencies FROM segment_definitions WHERE org = ? AND sandbox = ? AND id <> ?")
            .bind(tenant.org.as_str())
            .bind(tenant.sandbox.as_str())
            .bind(id.as_str())
            .fetch_all(conn)
            .await?;
    let mut graph = HashMap::with_capacity(rows.len());
    for row in &rows {
        let dependencies: Vec<String> = json_column(TABLE, "dependencies", &row.try_get::<String, _>("dependencies")?)?;
        graph.insert(row.try_get::<String, _>("id")?, dependencies);
    }
    match dependency_cycle(id, dependencies, &graph) {
        Some(cycle) => Err(SegmentDefinitionWriteError::Cycle(cycle)),
        None => Ok(()),
    }
}

/// For each of `ids`, the definitions of the tenant whose expression names it with inSegment.
async fn dependents_of(
    conn: &mut SqliteConnection,
    tenant: &Tenant,
    ids: &[&SegmentDefinitionId],
) -> Result<HashMap<SegmentDefinitionId, Vec<SegmentDefinitionId>>, StorageError> {
    let wanted: Vec<&str> = ids.iter().map(|id| id.as_str()).collect();
    let rows = sqlx::query(
        "SELECT d.id AS dependent, j.value AS dependency
         FROM segment_definitions d, json_each(d.dependencies) j
         WHERE d.org = ? AND d.sandbox = ? AND j.value IN (SELECT value FROM json_each(?))
         ORDER BY d.id",
    )
    .bind(tenant.org.as_str())
    .bind(tenant.sandbox.as_str())
    .bind(to_json(&wanted))
    .fetch_all(conn)
    .await?;
    let mut dependents: HashMap<SegmentDefinitionId, Vec<SegmentDefinitionId>> = HashMap::new();
    for row in &rows {
        dependents
            .entry(SegmentDefinitionId::from_string(
                row.try_get::<String, _>("dependency")?,
            ))
            .or_default()
            .push(SegmentDefinitionId::from_string(row.try_get::<String, _>("dependent")?));
    }
    Ok(dependents)
}

/// Checks a spec for storing as `id`: resolves its merge policy, parses it (`check`), and
/// refuses a taken name or a cycle.
async fn checked_for(
    tx: &mut Transaction<'static, Sqlite>,
    tenant: &Tenant,
    id: &SegmentDefinitionId,
    spec: SegmentDefinitionSpec,
    check: impl FnOnce(SegmentDefinitionSpec, MergePolicyId) -> Result<CheckedSpec, PqlError>,
) -> Result<CheckedSpec, SegmentDefinitionWriteError> {
    let merge_policy_id = resolve_merge_policy(tx, tenant, &spec).await?;
    let checked = check(spec, merge_policy_id).map_err(SegmentDefinitionWriteError::Pql)?;
    check_name_free(tx, tenant, &checked.spec.name, id).await?;
    check_no_cycle(tx, tenant, id, &checked.dependencies).await?;
    Ok(checked)
}

#[async_trait]
impl SegmentDefinitionStore for SqliteMetaStore {
    async fn segment_definition(
        &self,
        tenant: &Tenant,
        id: &SegmentDefinitionId,
    ) -> Result<Option<SegmentDefinition>, StorageError> {
        let mut conn = self.pool.acquire().await?;
        definition_in(&mut conn, tenant, id).await
    }

    async fn segment_definitions_by_id(
        &self,
        tenant: &Tenant,
        ids: &[SegmentDefinitionId],
    ) -> Result<Vec<SegmentDefinition>, StorageError> {
        let ids: Vec<&str> = ids.iter().map(|id| id.as_str()).collect();
        read_by_ids(&self.pool, TABLE, "", tenant, &ids, definition_from_row).await
    }

    async fn segment_dependents(
        &self,
        tenant: &Tenant,
        ids: &[&SegmentDefinitionId],
    ) -> Result<HashMap<SegmentDefinitionId, Vec<SegmentDefinitionId>>, StorageError> {
        let mut conn = self.pool.acquire().await?;
        dependents_of(&mut conn, tenant, ids).await
    }

    async fn list_segment_definitions(
        &self,
        tenant: &Tenant,
        query: &SegmentDefinitionListQuery,
    ) -> Result<SegmentDefinitionPage, StorageError> {
        let page = PageQuery {
            table: TABLE,
            filter_sql: FILTER_SQL,
            order: order_clause(query.sort),
            limit: query.limit,
            start: query.start,
        };
        read_page(&self.pool, page, || filter_args(tenant, query), definition_from_row).await
    }

    async fn create_segment_definition(
        &self,
        tenant: &Tenant,
        id: SegmentDefinitionId,
        spec: SegmentDefinitionSpec,
        now: EpochMillis,
        check: SegmentSpecCheck<'_>,
    ) -> Result<SegmentDefinition, SegmentDefinitionWriteError> {
        let mut tx = self.begin_write().await?;
        let checked = checked_for(&mut tx, tenant, &id, spec, check).await?;
        let definition = SegmentDefinition::new(id, tenant, checked, now);
        insert(&mut tx, &definition).await?;
        tx.commit().await?;
        Ok(definition)
    }

    async fn update_segment_definition(
        &self,
        tenant: &Tenant,
        id: &SegmentDefinitionId,
        now: EpochMillis,
        edit: SegmentSpecEdit<'_>,
        check: SegmentSpecCheck<'_>,
    ) -> Result<SegmentDefinition, SegmentDefinitionWriteError> {
        let mut tx = self.begin_write().await?;
        let current = definition_in(&mut tx, tenant, id)
            .await?
            .ok_or_else(|| SegmentDefinitionWriteError::NotFound(id.clone()))?;
        let spec = edit(&current).map_err(SegmentDefinitionWriteError::Invalid)?;
        let checked = checked_for(&mut tx, tenant, id, spec, check).await?;
        if current.is_same(&checked) {
            return Ok(current);
        }
        let next = current.changed(checked, now);
        delete_by_id(&mut tx, TABLE, tenant, id.as_str()).await?;
        insert(&mut tx, &next).await?;
        tx.commit().await?;
        Ok(next)
    }

    async fn delete_segment_definition(
        &self,
        tenant: &Tenant,
        id: &SegmentDefinitionId,
    ) -> Result<(), SegmentDefinitionWriteError> {
        let mut tx = self.begin_write().await?;
        if definition_in(&mut tx, tenant, id).await?.is_none() {
            return Err(SegmentDefinitionWriteError::NotFound(id.clone()));
        }
        let dependents = dependents_of(&mut tx, tenant, &[id])
            .await?
            .remove(id)
            .unwrap_or_default();
        if !dependents.is_empty() {
            return Err(SegmentDefinitionWriteError::HasDependents {
                id: id.clone(),
                dependents,
            });
        }
        delete_by_id(&mut tx, TABLE, tenant, id.as_str()).await?;
        tx.commit().await?;
        Ok(())
    }
}
