//! Merge policies, with every version kept.
//!
//! Each change writes a new row (version + 1) and marks it the latest; older rows stay as they
//! were so that an export pinned to a version builds the same profiles later. Writes run in
//! `BEGIN IMMEDIATE` transactions: they read the current state (who is the default, who is active
//! on edge) and write from it, and no other writer may change that state in between.

use async_trait::async_trait;
use sqlx::FromRow;
use sqlx::sqlite::{SqliteArguments, SqliteConnection, SqliteRow};

use dossier_model::ids::{DatasetId, MergePolicyId};
use dossier_model::listing::Direction;
use dossier_model::merge_policy::{
    AttributeMerge, AttributeMergeType, MergePolicy, MergePolicyDefinition, MergePolicyFilter, MergePolicyListQuery,
    MergePolicySortField,
};
use dossier_model::tenancy::Tenant;
use dossier_model::time::EpochSeconds;

use super::SqliteMetaStore;
use super::by_id::{delete_by_id, read_by_id};
use super::paging::{PageQuery, order_by_then_id, push, read_by_ids, read_page};
use crate::StorageError;
use crate::meta::prelude::*;
use crate::meta::rows::{TenantColumns, json_column, parsed_column, to_json};
use crate::meta::{MergePolicyEdit, MergePolicyPage, MergePolicyWriteError};

const TABLE: &str = "merge_policies";

/// A `merge_policies` row (one version of a policy) as stored.
#[derive(sqlx::FromRow)]
struct MergePolicyRow {
    id: String,
    #[sqlx(flatten)]
    tenant: TenantColumns,
    name: String,
    schema_name: String,
    version: i64,
    identity_graph: String,
    attribute_merge: String,
    dataset_order: String,
    is_default: bool,
    is_active_on_edge: bool,
    update_epoch: EpochSeconds,
}

impl MergePolicyRow {
    fn into_policy(self) -> Result<MergePolicy, StorageError> {
        let attribute_merge = match parsed_column(
            TABLE,
            "attribute_merge",
            self.attribute_merge.parse::<AttributeMergeType>(),
        )? {
            AttributeMergeType::TimestampOrdered => AttributeMerge::TimestampOrdered,
            AttributeMergeType::DataSetPrecedence => AttributeMerge::DataSetPrecedence {
                order: json_column(TABLE, "dataset_order", &self.dataset_order)?,
            },
        };
        let Tenant { org, sandbox } = self.tenant.into_tenant(TABLE)?;
        Ok(MergePolicy {
            id: MergePolicyId::from_string(self.id),
            name: self.name,
            org,
            sandbox,
            schema_name: self.schema_name,
            version: parsed_column(TABLE, "version", u32::try_from(self.version))?,
            identity_graph: parsed_column(TABLE, "identity_graph", self.identity_graph.parse())?,
            attribute_merge,
            is_default: self.is_default,
            is_active_on_edge: self.is_active_on_edge,
            update_epoch: self.update_epoch,
        })
    }
}

fn merge_policy_from_row(row: &SqliteRow) -> Result<MergePolicy, StorageError> {
    MergePolicyRow::from_row(row)?.into_policy()
}

/// `ORDER BY` for the listing. The field is an enum, so the SQL text comes from this match only.
fn order_clause((field, direction): (MergePolicySortField, Direction)) -> String {
    let column = match field {
        MergePolicySortField::Name => "name COLLATE NOCASE",
        MergePolicySortField::UpdateEpoch => "update_epoch",
        MergePolicySortField::Id => "id",
    };
    order_by_then_id(column, direction)
}

/// The filters of the listing, in the order [`filter_args`] binds them.
const FILTER_SQL: &str = "org = ? AND sandbox = ? AND is_latest = 1
    AND (? IS NULL OR is_default = ?) AND (? IS NULL OR schema_name = ?)
    AND (? IS NULL OR identity_graph = ?) AND (? IS NULL OR attribute_merge = ?)
    AND (? IS NULL OR is_active_on_edge = ?)";

/// [`FILTER_SQL`]'s arguments; each filter is bound twice (`? IS NULL OR column = ?`).
fn filter_args(tenant: &Tenant, filter: &MergePolicyFilter) -> SqliteArguments {
    let mut args = SqliteArguments::default();
    push(&mut args, tenant.org.as_str());
    push(&mut args, tenant.sandbox.as_str());
    for _ in 0..2 {
        push(&mut args, filter.is_default);
    }
    for _ in 0..2 {
        push(&mut args, filter.schema_name.as_deref());
    }
    for _ in 0..2 {
        push(&mut args, filter.identity_graph.map(|g| g.as_str()));
    }
    for _ in 0..2 {
        push(&mut args, filter.attribute_merge.map(|m| m.as_str()));
    }
    for _ in 0..2 {
        push(&mut args, filter.is_active_on_edge);
    }
    args
}

/// Writes `policy` as a new row marked latest. The caller has retired the previous latest row.
async fn insert_version(conn: &mut SqliteConnection, policy: &MergePolicy) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO merge_policies (org, sandbox, id, version, is_latest, name, schema_name, identity_graph,
                                     attribute_merge, dataset_order, is_default, is_active_on_edge, update_epoch)
         VALUES (?, ?, ?, ?, 1, ?, ?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(policy.org.as_str())
    .bind(policy.sandbox.as_str())
    .bind(policy.id.as_str())
    .bind(i64::from(policy.version))
    .bind(&policy.name)
    .bind(&policy.schema_name)
    .bind(policy.identity_graph.as_str())
    .bind(policy.attribute_merge.merge_type().as_str())
    .bind(to_json(&policy.attribute_merge.dataset_order()))
    .bind(policy.is_default)
    .bind(policy.is_active_on_edge)
    .bind(policy.update_epoch)
    .execute(conn)
    .await?;
    Ok(())
}

/// Makes `next` the latest version of its policy, keeping the previous version as history.
async fn write_next_version(conn: &mut SqliteConnection, next: &MergePolicy) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE merge_policies SET is_latest = 0 WHERE org = ? AND sandbox = ? AND id = ? AND is_latest = 1")
        .bind(next.org.as_str())
        .bind(next.sandbox.as_str())
        .bind(next.id.as_str())
        .execute(&mut *conn)
        .await?;
    insert_version(conn, next).await
}

async fn latest_in(
    conn: &mut SqliteConnection,
    tenant: &Tenant,
    id: &MergePolicyId,
) -> Result<Option<MergePolicy>, StorageError> {
    read_by_id(
        conn,
        TABLE,
        "AND is_latest = 1",
        tenant,
        id.as_str(),
        merge_policy_from_row,
    )
    .await
}

/// Seeds a new sandbox's default policy, in the transaction that creates the sandbox.
pub(super) async fn seed_merge_policy(
    conn: &mut SqliteConnection,
    tenant: &Tenant,
    now: EpochSeconds,
) -> Result<(), sqlx::Error> {
    insert_version(conn, &MergePolicy::seeded(tenant, now)).await
}

/// Refuses a dataset precedence that names a dataset this sandbox does not have.
async fn check_datasets_exist(
    conn: &mut SqliteConnection,
    tenant: &Tenant,
    ids: &[DatasetId],
) -> Result<(), MergePolicyWriteError> {
    for id in ids {
        let found: Option<i64> = sqlx::query_scalar("SELECT 1 FROM datasets WHERE id = ? AND org = ? AND sandbox = ?")
            .bind(id.as_str())
            .bind(tenant.org.as_str())
            .bind(tenant.sandbox.as_str())
            .fetch_optional(&mut *conn)
            .await?;
        if found.is_none() {
            return Err(MergePolicyWriteError::UnknownDataset(id.clone()));
        }
    }
    Ok(())
}

/// Refuses to turn a second policy active on edge: AEP allows one per sandbox, and quietly
/// switching the other one off would change what its users get.
async fn check_edge_free(
    conn: &mut SqliteConnection,
    tenant: &Tenant,
    id: &MergePolicyId,
) -> Result<(), MergePolicyWriteError> {
    let active: Option<String> = sqlx::query_scalar(
        "SELECT id FROM merge_policies
         WHERE org = ? AND sandbox = ? AND is_latest = 1 AND is_active_on_edge = 1 AND id <> ?",
    )
    .bind(tenant.org.as_str())
    .bind(tenant.sandbox.as_str())
    .bind(id.as_str())
    .fetch_optional(conn)
    .await?;
    match active {
        Some(active) => Err(MergePolicyWriteError::EdgeTaken {
            active: MergePolicyId::from_string(active),
        }),
        None => Ok(()),
    }
}

/// Clears `default` on the schema's current default (other than `id`) by writing its next
/// version, as AEP does when another policy becomes the default.
async fn supersede_default(
    conn: &mut SqliteConnection,
    tenant: &Tenant,
    schema_name: &str,
    id: &MergePolicyId,
    now: EpochSeconds,
) -> Result<(), MergePolicyWriteError> {
    let row = sqlx::query(
        "SELECT * FROM merge_policies
         WHERE org = ? AND sandbox = ? AND schema_name = ? AND is_latest = 1 AND is_default = 1 AND id <> ?",
    )
    .bind(tenant.org.as_str())
    .bind(tenant.sandbox.as_str())
    .bind(schema_name)
    .bind(id.as_str())
    .fetch_optional(&mut *conn)
    .await?;
    let Some(previous) = row.as_ref().map(merge_policy_from_row).transpose()? else {
        return Ok(());
    };
    let definition = MergePolicyDefinition {
        is_default: false,
        ..previous.definition()
    };
    write_next_version(conn, &previous.next_version(definition, now)).await?;
    Ok(())
}

#[async_trait]
impl MergePolicyStore for SqliteMetaStore {
    async fn merge_policy(
        &self,
        tenant: &Tenant,
        id: &MergePolicyId,
        version: Option<u32>,
    ) -> Result<Option<MergePolicy>, StorageError> {
        let row = sqlx::query(
            "SELECT * FROM merge_policies WHERE org = ? AND sandbox = ? AND id = ?
               AND ((? IS NULL AND is_latest = 1) OR version = ?)",
        )
        .bind(tenant.org.as_str())
        .bind(tenant.sandbox.as_str())
        .bind(id.as_str())
        .bind(version.map(i64::from))
        .bind(version.map(i64::from))
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(merge_policy_from_row).transpose()
    }

    async fn default_merge_policy(
        &self,
        tenant: &Tenant,
        schema_name: &str,
    ) -> Result<Option<MergePolicy>, StorageError> {
        let row = sqlx::query(
            "SELECT * FROM merge_policies
             WHERE org = ? AND sandbox = ? AND schema_name = ? AND is_latest = 1 AND is_default = 1",
        )
        .bind(tenant.org.as_str())
        .bind(tenant.sandbox.as_str())
        .bind(schema_name)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(merge_policy_from_row).transpose()
    }

    async fn merge_policies_by_id(
        &self,
        tenant: &Tenant,
        ids: &[MergePolicyId],
    ) -> Result<Vec<MergePolicy>, StorageError> {
        let ids: Vec<&str> = ids.iter().map(|id| id.as_str()).collect();
        read_by_ids(
            &self.pool,
            TABLE,
            "AND is_latest = 1",
            tenant,
            &ids,
            merge_policy_from_row,
        )
        .await
    }

    async fn list_merge_policies(
        &self,
        tenant: &Tenant,
        query: &MergePolicyListQuery,
    ) -> Result<MergePolicyPage, StorageError> {
        let page = PageQuery {
            table: TABLE,
            filter_sql: FILTER_SQL,
            order: order_clause(query.order_by),
            limit: query.limit,
            start: query.start,
        };
        read_page(
            &self.pool,
            page,
            || filter_args(tenant, &query.filter),
            merge_policy_from_row,
        )
        .await
    }

    async fn create_merge_policy(&self, policy: &MergePolicy) -> Result<(), MergePolicyWriteError> {
        let tenant = policy.tenant();
        let mut tx = self.begin_write().await?;
        check_datasets_exist(&mut tx, &tenant, policy.attribute_merge.dataset_order()).await?;
        if policy.is_active_on_edge {
            check_edge_free(&mut tx, &tenant, &policy.id).await?;
        }
        if policy.is_default {
            supersede_default(&mut tx, &tenant, &policy.schema_name, &policy.id, policy.update_epoch).await?;
        }
        insert_version(&mut tx, policy).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn update_merge_policy(
        &self,
        tenant: &Tenant,
        id: &MergePolicyId,
        now: EpochSeconds,
        edit: MergePolicyEdit<'_>,
    ) -> Result<MergePolicy, MergePolicyWriteError> {
        let mut tx = self.begin_write().await?;
        let current = latest_in(&mut tx, tenant, id)
            .await?
            .ok_or_else(|| MergePolicyWriteError::NotFound(id.clone()))?;
        let definition = edit(&current).map_err(MergePolicyWriteError::Invalid)?;
        if definition == current.definition() {
            return Ok(current);
        }
        if current.is_default && !definition.is_default {
            return Err(MergePolicyWriteError::DefaultCannotBeCleared {
                id: id.clone(),
                schema_name: current.schema_name,
            });
        }
        // Only datasets added by this change must exist: one deleted since it was put in the
        // order contributes nothing, and must not block renaming the policy.
        let current_order = current.attribute_merge.dataset_order();
        let added: Vec<DatasetId> = definition
            .attribute_merge
            .dataset_order()
            .iter()
            .filter(|dataset| !current_order.contains(dataset))
            .cloned()
            .collect();
        check_datasets_exist(&mut tx, tenant, &added).await?;
        if definition.is_active_on_edge && !current.is_active_on_edge {
            check_edge_free(&mut tx, tenant, id).await?;
        }
        if definition.is_default && !current.is_default {
            supersede_default(&mut tx, tenant, &definition.schema_name, id, now).await?;
        }
        let next = current.next_version(definition, now);
        write_next_version(&mut tx, &next).await?;
        tx.commit().await?;
        Ok(next)
    }

    async fn delete_merge_policy(&self, tenant: &Tenant, id: &MergePolicyId) -> Result<(), MergePolicyWriteError> {
        let mut tx = self.begin_write().await?;
        let current = latest_in(&mut tx, tenant, id)
            .await?
            .ok_or_else(|| MergePolicyWriteError::NotFound(id.clone()))?;
        if current.is_default {
            return Err(MergePolicyWriteError::DefaultCannotBeDeleted {
                id: id.clone(),
                schema_name: current.schema_name,
            });
        }
        if current.is_active_on_edge {
            return Err(MergePolicyWriteError::ActiveOnEdgeCannotBeDeleted(id.clone()));
        }
        delete_by_id(&mut tx, TABLE, tenant, id.as_str()).await?;
        tx.commit().await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    //! What only SQLite has: its migrations. The store's behaviour is the backend suite's
    //! (`meta/suite/merge_policies.rs`).

    use dossier_model::schema::PROFILE_SCHEMA_NAME;

    use super::*;
    use crate::meta::MetaStore;
    use crate::meta::suite::fixtures::{ORG_A, tenant};

    #[tokio::test]
    async fn sandboxes_from_before_the_migration_get_the_seeded_policy() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("meta.sqlite");
        let pool = super::super::pool_at_version(&path, 1).await;
        sqlx::query("INSERT INTO sandboxes (org, name, created) VALUES (?, 'prod', 1), (?, 'dev', 1)")
            .bind(ORG_A)
            .bind(ORG_A)
            .execute(&pool)
            .await
            .unwrap();
        pool.close().await;

        let meta = MetaStore::open_sqlite(&path).await.unwrap();
        for sandbox in ["prod", "dev"] {
            let seeded = meta
                .default_merge_policy(&tenant(ORG_A, sandbox), PROFILE_SCHEMA_NAME)
                .await
                .unwrap()
                .unwrap();
            let expected = MergePolicy::seeded(&tenant(ORG_A, sandbox), seeded.update_epoch);
            assert_eq!(
                seeded, expected,
                "the migration seeds what MergePolicy::seeded describes"
            );
        }
    }
}
