-- The COMPLETE of an ingestion batch holds a lease on the job queue (kind 'ingest', job_id the
-- batch id), taken running by the node that accepted the COMPLETE and dropped by the batch's
-- commit or abort: with several nodes, only an expired lease says a conversion is orphaned, and
-- one node resumes it. SQLite cannot change a CHECK in place, so the table is rebuilt (same
-- columns, same order of rows).

CREATE TABLE job_queue_next (
    kind             TEXT    NOT NULL CHECK (kind IN ('export', 'segment', 'ingest')),
    org              TEXT    NOT NULL,
    sandbox          TEXT    NOT NULL,
    job_id           TEXT    NOT NULL,
    state            TEXT    NOT NULL CHECK (state IN ('queued', 'running')),
    queued           INTEGER NOT NULL,
    worker           TEXT,
    heartbeat        INTEGER,
    attempts         INTEGER NOT NULL DEFAULT 0,
    cancel_requested INTEGER NOT NULL DEFAULT 0 CHECK (cancel_requested IN (0, 1)),
    PRIMARY KEY (kind, org, sandbox, job_id),
    FOREIGN KEY (org, sandbox) REFERENCES sandboxes (org, name)
);
INSERT INTO job_queue_next (kind, org, sandbox, job_id, state, queued, worker, heartbeat, attempts, cancel_requested)
SELECT kind, org, sandbox, job_id, state, queued, worker, heartbeat, attempts, cancel_requested
FROM job_queue ORDER BY rowid;
DROP TABLE job_queue;
ALTER TABLE job_queue_next RENAME TO job_queue;
CREATE INDEX job_queue_claim ON job_queue (state, queued);
CREATE INDEX job_queue_running ON job_queue (state, org, sandbox);
CREATE INDEX job_queue_kind ON job_queue (kind, state);

-- Conversions an earlier version left `processing`: an expired lease, resumed by the next start.
INSERT INTO job_queue (kind, org, sandbox, job_id, state, queued, worker, heartbeat, attempts)
SELECT 'ingest', org, sandbox, id, 'running', COALESCE(started, updated), 'upgrade/ingest', 0, 1
FROM batches WHERE status = 'processing' AND input_format IS NOT NULL;
