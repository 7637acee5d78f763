//! How a schedule's tick starts its job: through the same code as `POST /segment/jobs` and
//! `POST /export/jobs` (`queue_segment_job`, `queue_export_job`), so a scheduled job is checked
//! against the sandbox and queued exactly as a request's would be.

use serde_json::Value;
use sha2::{Digest, Sha256};

use dossier_engine::jobs::{ScheduleRunner, ScheduledTick};
use dossier_model::ids::ClientId;
use dossier_model::tenancy::Tenant;
use dossier_storage::meta::IdempotencyKey;

use super::export_jobs::queue_export_job;
use super::segment_jobs::queue_segment_job;
use crate::auth::Caller;
use crate::error::ApiError;
use crate::state::AppState;

/// Starts scheduled jobs on a server's state.
pub struct ApiScheduleRunner(pub AppState);

/// The caller a scheduled job is created by: the schedule (its `createdClient`).
fn schedule_caller(tenant: &Tenant, tick: ScheduledTick<'_>) -> Caller {
    Caller {
        client_id: ClientId::from_string(format!("schedule:{}", tick.schedule_id)),
        tenant: tenant.clone(),
    }
}

/// A refusal as the log shows it: the code and message the API would have answered.
fn refusal(error: ApiError) -> String {
    match error {
        ApiError::Gateway { code, message, .. } => format!("{code}: {message}"),
        ApiError::Ups { code, message, .. } => format!("{code}: {message}"),
        ApiError::Platform { code, detail, .. } => format!("{code}: {detail}"),
    }
}

impl ScheduleRunner for ApiScheduleRunner {
    async fn start_segment_job(
        &self,
        tenant: &Tenant,
        segment_ids: Vec<String>,
        tick: ScheduledTick<'_>,
    ) -> Result<String, String> {
        let caller = schedule_caller(tenant, tick);
        let job = queue_segment_job(&self.0, &caller, &segment_ids)
            .await
            .map_err(refusal)?;
        Ok(job.id)
    }

    async fn start_export_job(&self, tenant: &Tenant, body: Value, tick: ScheduledTick<'_>) -> Result<String, String> {
        let caller = schedule_caller(tenant, tick);
        // Keyed by the tick: a second start of one tick gets the first job back.
        let key = IdempotencyKey {
            key: format!("schedule-{}-{}", tick.schedule_id, tick.tick),
            body_sha256: hex::encode(Sha256::digest(body.to_string().as_bytes())),
        };
        let job = queue_export_job(&self.0, &caller, &body, Some(key))
            .await
            .map_err(refusal)?;
        Ok(job.id.to_string())
    }
}
