-- The COMPLETE of an ingestion batch holds a lease on the job queue (kind 'ingest', job_id the
-- batch id), taken running by the node that accepted the COMPLETE and dropped by the batch's
-- commit or abort: only an expired lease says a conversion is orphaned, and one node resumes it.

ALTER TABLE job_queue DROP CONSTRAINT job_queue_kind_check;
ALTER TABLE job_queue ADD CONSTRAINT job_queue_kind_check CHECK (kind IN ('export', 'segment', 'ingest'));

-- Conversions left `processing` before this migration: an expired lease, resumed by the next start.
INSERT INTO job_queue (kind, org, sandbox, job_id, state, queued, worker, heartbeat, attempts)
SELECT 'ingest', org, sandbox, id, 'running', COALESCE(started, updated), 'upgrade/ingest', 0, 1
FROM batches WHERE status = 'processing' AND input_format IS NOT NULL;
