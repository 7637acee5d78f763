-- Segment jobs (/data/core/ups/segment/jobs) and the current membership file of each segment.
--
-- Segment jobs are queued like export jobs and claimed by the same workers. `segments` holds the
-- definitions as they were at creation (expression, merge policy and its version), so a job
-- evaluates what it shows even if a definition changes while it waits.

CREATE TABLE segment_jobs (
    org            TEXT    NOT NULL,
    sandbox        TEXT    NOT NULL,
    id             TEXT    NOT NULL,
    status         TEXT    NOT NULL CHECK (status IN ('NEW', 'PROCESSING', 'SUCCEEDED', 'FAILED', 'CANCELLING', 'CANCELLED')),
    request_id     TEXT    NOT NULL,
    segments       TEXT    NOT NULL,             -- JSON: [SegmentJobSegment]
    metrics        TEXT    NOT NULL,             -- JSON: SegmentJobMetrics
    errors         TEXT    NOT NULL DEFAULT '[]', -- JSON: [{code, msg, callStack}]
    heartbeat      INTEGER,                      -- when the running worker last reported (ms)
    created_client TEXT    NOT NULL,
    created        INTEGER NOT NULL,
    updated        INTEGER NOT NULL,
    PRIMARY KEY (org, sandbox, id),
    FOREIGN KEY (org, sandbox) REFERENCES sandboxes (org, name)
);
CREATE INDEX segment_jobs_listing ON segment_jobs (org, sandbox, created DESC);
CREATE INDEX segment_jobs_queue ON segment_jobs (status, created);

-- The membership file evaluation wrote last for each segment: the `ups` memberships profiles
-- hold. Switched in the transaction that ends the evaluating job, so a reader always sees one
-- whole file; the superseded file is deleted afterwards.
CREATE TABLE segment_memberships (
    org        TEXT    NOT NULL,
    sandbox    TEXT    NOT NULL,
    segment_id TEXT    NOT NULL,
    path       TEXT    NOT NULL,   -- lake path of the Parquet file
    job_id     TEXT    NOT NULL,   -- the segment job (or `export-<id>`) that wrote it
    evaluated  INTEGER NOT NULL,   -- evaluation time, epoch milliseconds
    rows       INTEGER NOT NULL,
    PRIMARY KEY (org, sandbox, segment_id),
    FOREIGN KEY (org, sandbox) REFERENCES sandboxes (org, name)
);
