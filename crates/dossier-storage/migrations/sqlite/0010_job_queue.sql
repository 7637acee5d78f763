-- One queue for every kind of job (export jobs, segment jobs): what workers claim, heartbeat,
-- cancel and recover, kept apart from what the API shows.
--
-- A row lives while its job is live: inserted with the job (queued), claimed by a worker
-- (running), deleted by the transaction that ends the job. The per-kind tables keep the AEP
-- status, request and results and change in the same transactions (their `heartbeat` columns
-- move here). One table means one claim query across kinds and sandboxes (and, on a
-- server database, one `FOR UPDATE SKIP LOCKED` claim for several nodes); `worker`, `heartbeat`
-- and `attempts` are what a lease taking over a dead node's job reads.

CREATE TABLE job_queue (
    kind             TEXT    NOT NULL CHECK (kind IN ('export', 'segment')),
    org              TEXT    NOT NULL,
    sandbox          TEXT    NOT NULL,
    job_id           TEXT    NOT NULL,             -- the job's id in its kind's table, as text
    state            TEXT    NOT NULL CHECK (state IN ('queued', 'running')),
    queued           INTEGER NOT NULL,             -- when the job was created (ms): oldest first
    worker           TEXT,                         -- who runs it (set by the claim)
    heartbeat        INTEGER,                      -- when its worker last reported (ms): the lease
    attempts         INTEGER NOT NULL DEFAULT 0,   -- claims so far
    cancel_requested INTEGER NOT NULL DEFAULT 0 CHECK (cancel_requested IN (0, 1)),
    PRIMARY KEY (kind, org, sandbox, job_id),
    FOREIGN KEY (org, sandbox) REFERENCES sandboxes (org, name)
);
-- The claim: queued jobs oldest first; running jobs counted per sandbox.
CREATE INDEX job_queue_claim ON job_queue (state, queued);
CREATE INDEX job_queue_running ON job_queue (state, org, sandbox);
-- The queue limits: queued jobs counted per kind.
CREATE INDEX job_queue_kind ON job_queue (kind, state);

-- The live jobs of the two queues this table replaces, oldest first (so rowid keeps their order).
INSERT INTO job_queue (kind, org, sandbox, job_id, state, queued, heartbeat, attempts, cancel_requested)
SELECT kind, org, sandbox, job_id, state, queued, heartbeat, attempts, cancel_requested FROM (
    SELECT 'export' AS kind, org, sandbox, CAST(id AS TEXT) AS job_id,
           CASE status WHEN 'NEW' THEN 'queued' ELSE 'running' END AS state,
           created AS queued, heartbeat,
           CASE status WHEN 'NEW' THEN 0 ELSE 1 END AS attempts,
           cancel_requested, rowid AS seq
    FROM export_jobs WHERE status IN ('NEW', 'PROCESSING')
    UNION ALL
    SELECT 'segment', org, sandbox, id,
           CASE status WHEN 'NEW' THEN 'queued' ELSE 'running' END,
           created, heartbeat,
           CASE status WHEN 'NEW' THEN 0 ELSE 1 END,
           CASE status WHEN 'CANCELLING' THEN 1 ELSE 0 END, rowid
    FROM segment_jobs WHERE status IN ('NEW', 'PROCESSING', 'CANCELLING'))
ORDER BY queued, kind, seq;

-- The per-kind tables keep what the API shows; the queue's columns of theirs go.
DROP INDEX export_jobs_queue;
DROP INDEX segment_jobs_queue;
ALTER TABLE export_jobs DROP COLUMN heartbeat;
ALTER TABLE segment_jobs DROP COLUMN heartbeat;
