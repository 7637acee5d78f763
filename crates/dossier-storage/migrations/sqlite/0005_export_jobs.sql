-- Export jobs (/data/core/ups/export/jobs) and the queue their workers claim from.
--
-- Ids are integers increasing within a sandbox (the largest id of the sandbox + 1, assigned in
-- the creating transaction). A job is never deleted: cancelled and finished jobs stay readable.
-- The queue is the NEW rows, oldest first; a worker claims one in a write transaction, so two
-- workers never run the same job.

CREATE TABLE export_jobs (
    org              TEXT    NOT NULL,
    sandbox          TEXT    NOT NULL,
    id               INTEGER NOT NULL CHECK (id >= 1),
    status           TEXT    NOT NULL CHECK (status IN ('NEW', 'PROCESSING', 'SUCCEEDED', 'FAILED', 'CANCELLED')),
    request_id       TEXT    NOT NULL,
    request          TEXT    NOT NULL,             -- JSON: the request's fields as the job echoes them
    spec             TEXT    NOT NULL,             -- JSON: the validated ExportSpec the engine runs
    batches          TEXT    NOT NULL,             -- JSON: [{batchId, segment}] assigned at creation
    dataset_id       TEXT    NOT NULL,             -- the target, so a dataset delete can see its writers
    metrics          TEXT    NOT NULL,             -- JSON: ExportJobMetrics
    progress         TEXT,                         -- JSON: the last counters a worker recorded
    errors           TEXT    NOT NULL DEFAULT '[]', -- JSON: [{code, msg, callStack}]
    cancel_requested INTEGER NOT NULL DEFAULT 0 CHECK (cancel_requested IN (0, 1)),
    heartbeat        INTEGER,                      -- when the running worker last reported (ms)
    idempotency_key  TEXT,
    body_sha256      TEXT,                         -- digest of the create body, to tell a retry from a reuse
    created_client   TEXT    NOT NULL,
    created          INTEGER NOT NULL,
    updated          INTEGER NOT NULL,
    PRIMARY KEY (org, sandbox, id),
    FOREIGN KEY (org, sandbox) REFERENCES sandboxes (org, name)
);
-- The listing: newest first by (created, id).
CREATE INDEX export_jobs_listing ON export_jobs (org, sandbox, created DESC, id DESC);
-- The queue: the oldest NEW job first, across tenants.
CREATE INDEX export_jobs_queue ON export_jobs (status, created);
-- A dataset delete is refused while a NEW or PROCESSING job writes into it.
CREATE INDEX export_jobs_by_dataset ON export_jobs (dataset_id, status);
-- One job per Idempotency-Key and sandbox.
CREATE UNIQUE INDEX export_jobs_idempotency ON export_jobs (org, sandbox, idempotency_key)
    WHERE idempotency_key IS NOT NULL;
