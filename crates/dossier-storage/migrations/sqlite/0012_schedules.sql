-- Schedules (/data/core/ups/config/schedules): a Quartz cron expression that starts a segment job
-- or an export job at each tick.
--
-- `next_run_at` is the tick the workers wait for (NULL while inactive). A worker claims a due
-- tick by moving it with a compare-and-set (UPDATE ... WHERE next_run_at = <the tick read>), so of
-- workers and nodes racing for one tick exactly one starts its job; the tick it moves to is the
-- first after the claim, so ticks missed while no node ran start one job, not one each.

CREATE TABLE schedules (
    org         TEXT    NOT NULL,
    sandbox     TEXT    NOT NULL,
    id          TEXT    NOT NULL,
    name        TEXT    NOT NULL,
    description TEXT,
    type        TEXT    NOT NULL CHECK (type IN ('batch_segmentation', 'export')),
    properties  TEXT    NOT NULL, -- JSON: {"segments": [...]} or {"exportJob": {...}}
    schedule    TEXT    NOT NULL, -- the Quartz cron expression as written
    state       TEXT    NOT NULL CHECK (state IN ('active', 'inactive')),
    next_run_at INTEGER,          -- epoch milliseconds
    created     INTEGER NOT NULL, -- epoch milliseconds
    updated     INTEGER NOT NULL, -- epoch milliseconds
    PRIMARY KEY (org, sandbox, id),
    FOREIGN KEY (org, sandbox) REFERENCES sandboxes (org, name)
);
CREATE INDEX schedules_created ON schedules (org, sandbox, created);
CREATE INDEX schedules_due ON schedules (next_run_at) WHERE next_run_at IS NOT NULL;

-- The jobs each tick started: a tick has at most one (the primary key), and an export
-- schedule's `lastRun` is the start of its latest run whose job succeeded.
CREATE TABLE schedule_runs (
    org         TEXT    NOT NULL,
    sandbox     TEXT    NOT NULL,
    schedule_id TEXT    NOT NULL,
    tick        INTEGER NOT NULL, -- epoch milliseconds: the tick claimed
    started     INTEGER NOT NULL, -- epoch milliseconds: when the job was created
    job_kind    TEXT    NOT NULL CHECK (job_kind IN ('export', 'segment')),
    job_id      TEXT    NOT NULL,
    PRIMARY KEY (org, sandbox, schedule_id, tick),
    FOREIGN KEY (org, sandbox, schedule_id) REFERENCES schedules (org, sandbox, id) ON DELETE CASCADE
);
