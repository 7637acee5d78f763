-- Segment definitions (/data/core/ups/segment/definitions).
--
-- One row per definition; a change rewrites the row and moves update_time forward. The PQL text
-- is stored as sent: evaluation parses it against the union schemas of its own time.
-- `dependencies` lists the audiences the expression names with inSegment, so that dependents
-- can be found and reference cycles refused.

CREATE TABLE segment_definitions (
    org             TEXT    NOT NULL,
    sandbox         TEXT    NOT NULL,
    id              TEXT    NOT NULL,
    name            TEXT    NOT NULL,
    description     TEXT,
    schema_name     TEXT    NOT NULL,
    expression      TEXT    NOT NULL, -- PQL text (pql/text)
    merge_policy_id TEXT    NOT NULL,
    batch_enabled   INTEGER NOT NULL CHECK (batch_enabled IN (0, 1)),
    ttl_in_days     INTEGER CHECK (ttl_in_days IS NULL OR ttl_in_days >= 1),
    dependencies    TEXT    NOT NULL DEFAULT '[]', -- JSON array of segment ids
    creation_time   INTEGER NOT NULL, -- epoch milliseconds
    update_time     INTEGER NOT NULL, -- epoch milliseconds
    PRIMARY KEY (org, sandbox, id),
    FOREIGN KEY (org, sandbox) REFERENCES sandboxes (org, name)
);
-- Names are unique within a sandbox, as AEP requires.
CREATE UNIQUE INDEX segment_definitions_name ON segment_definitions (org, sandbox, name);
CREATE INDEX segment_definitions_creation ON segment_definitions (org, sandbox, creation_time);
