//! Helpers to read typed values out of rows, shared by the SQL backends (`sqlite`, `postgres`):
//! the row structs derive `sqlx::FromRow` for any database's rows.
//!
//! Tables are read with `sqlx::FromRow` into a row struct of plain column values; the row struct
//! then turns into the model type, so a stored value that no longer parses is a
//! [`StorageError::Corrupt`] naming its table and column rather than a bare decode error.

use std::fmt::Display;
use std::str::FromStr;

use serde::de::DeserializeOwned;

use dossier_model::export_job::ExportJobError;
use dossier_model::tenancy::{OrgId, SandboxName, Tenant};
use dossier_model::time::EpochMillis;

use crate::StorageError;

/// The `org` and `sandbox` columns every per-sandbox table has; a row struct takes them with
/// `#[sqlx(flatten)]`.
#[derive(Debug, sqlx::FromRow)]
pub(crate) struct TenantColumns {
    org: String,
    sandbox: String,
}

impl TenantColumns {
    pub(crate) fn into_tenant(self, table: &'static str) -> Result<Tenant, StorageError> {
        Ok(Tenant {
            org: parsed_column(table, "org", OrgId::parse(&self.org))?,
            sandbox: parsed_column(table, "sandbox", SandboxName::parse(&self.sandbox))?,
        })
    }
}

pub(crate) fn json_column<T: DeserializeOwned>(
    table: &'static str,
    column: &'static str,
    raw: &str,
) -> Result<T, StorageError> {
    serde_json::from_str(raw).map_err(|e| StorageError::Corrupt {
        table,
        column,
        reason: e.to_string(),
    })
}

pub(crate) fn parsed_column<T, E: std::fmt::Display>(
    table: &'static str,
    column: &'static str,
    parsed: Result<T, E>,
) -> Result<T, StorageError> {
    parsed.map_err(|e| StorageError::Corrupt {
        table,
        column,
        reason: e.to_string(),
    })
}

pub(crate) fn to_json<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_string(value).expect("model values always serialize")
}

/// The columns both job tables (`export_jobs`, `segment_jobs`) have and read the same way; a job
/// row struct takes them with `#[sqlx(flatten)]`.
#[derive(sqlx::FromRow)]
pub(crate) struct JobColumns {
    #[sqlx(flatten)]
    tenant: TenantColumns,
    status: String,
    request_id: String,
    metrics: String,
    errors: String,
    created: EpochMillis,
    updated: EpochMillis,
}

/// [`JobColumns`] read, with the job kind's status (`S`) and metrics (`M`) types.
pub(crate) struct JobFields<S, M> {
    pub tenant: Tenant,
    pub status: S,
    pub request_id: String,
    pub metrics: M,
    pub errors: Vec<ExportJobError>,
    pub created: EpochMillis,
    pub updated: EpochMillis,
}

impl JobColumns {
    pub(crate) fn read<S, M>(self, table: &'static str) -> Result<JobFields<S, M>, StorageError>
    where
        S: FromStr<Err: Display>,
        M: DeserializeOwned,
    {
        Ok(JobFields {
            tenant: self.tenant.into_tenant(table)?,
            status: parsed_column(table, "status", self.status.parse::<S>())?,
            request_id: self.request_id,
            metrics: json_column(table, "metrics", &self.metrics)?,
            errors: json_column(table, "errors", &self.errors)?,
            created: self.created,
            updated: self.updated,
        })
    }
}

/// A model job (`ExportJob`, `SegmentJob`) from its row's [`JobColumns`], read from `table`, and
/// the fields of its own kind: the shared fields are written once, here.
macro_rules! job_from_columns {
    ($job:ident { columns: $columns:expr, table: $table:expr, $($field:ident: $value:expr),* $(,)? }) => {{
        let shared = $columns.read($table)?;
        $job {
            tenant: shared.tenant,
            status: shared.status,
            request_id: shared.request_id,
            metrics: shared.metrics,
            errors: shared.errors,
            created: shared.created,
            updated: shared.updated,
            $($field: $value),*
        }
    }};
}

pub(crate) use job_from_columns;

/// A `schedules` row as both backends store it.
#[derive(sqlx::FromRow)]
pub(crate) struct ScheduleRow {
    id: String,
    #[sqlx(flatten)]
    tenant: TenantColumns,
    name: String,
    description: Option<String>,
    #[sqlx(rename = "type")]
    kind: String,
    properties: String,
    schedule: String,
    state: String,
    next_run_at: Option<EpochMillis>,
    created: EpochMillis,
    updated: EpochMillis,
}

impl ScheduleRow {
    pub(crate) fn into_schedule(self) -> Result<dossier_model::schedule::Schedule, StorageError> {
        use dossier_model::schedule::{Schedule, ScheduleSpec};
        const TABLE: &str = "schedules";
        let Tenant { org, sandbox } = self.tenant.into_tenant(TABLE)?;
        let properties: serde_json::Value = json_column(TABLE, "properties", &self.properties)?;
        let kind = parsed_column(TABLE, "type", self.kind.parse())?;
        Ok(Schedule {
            id: self.id,
            org,
            sandbox,
            spec: ScheduleSpec {
                name: self.name,
                description: self.description,
                kind,
                segments: match properties.get("segments") {
                    Some(segments) => json_column(TABLE, "properties", &segments.to_string())?,
                    None => Vec::new(),
                },
                export_job: properties.get("exportJob").cloned(),
                cron: self.schedule,
                state: parsed_column(TABLE, "state", self.state.parse())?,
            },
            created: self.created,
            updated: self.updated,
            next_run_at: self.next_run_at,
        })
    }
}

/// The `properties` column of a schedule: what AEP shows under `properties`.
pub(crate) fn schedule_properties(schedule: &dossier_model::schedule::Schedule) -> String {
    let spec = &schedule.spec;
    let properties = match &spec.export_job {
        Some(export_job) => serde_json::json!({ "exportJob": export_job }),
        None => serde_json::json!({ "segments": spec.segments }),
    };
    properties.to_string()
}

/// A `schedule_runs` row as both backends store it.
#[derive(sqlx::FromRow)]
pub(crate) struct ScheduleRunRow {
    #[sqlx(flatten)]
    tenant: TenantColumns,
    schedule_id: String,
    tick: EpochMillis,
    started: EpochMillis,
    job_kind: String,
    job_id: String,
}

impl ScheduleRunRow {
    pub(crate) fn into_run(self) -> Result<crate::meta::ScheduleRun, StorageError> {
        Ok(crate::meta::ScheduleRun {
            tenant: self.tenant.into_tenant("schedule_runs")?,
            schedule_id: self.schedule_id,
            tick: self.tick,
            started: self.started,
            job_kind: self.job_kind,
            job_id: self.job_id,
        })
    }
}
