-- Merge policies (/data/core/ups/config/mergePolicies).
--
-- One row per version of each policy: a change writes a new row with version + 1 and leaves the
-- old ones as they were, so an export can pin `mergePolicy.version`. `is_latest` marks the row a
-- policy currently is. The partial unique indexes keep, among current versions, at most one
-- default per schema and at most one policy active on edge per sandbox, whatever the code does.

CREATE TABLE merge_policies (
    org               TEXT    NOT NULL,
    sandbox           TEXT    NOT NULL,
    id                TEXT    NOT NULL,
    version           INTEGER NOT NULL CHECK (version >= 1),
    is_latest         INTEGER NOT NULL CHECK (is_latest IN (0, 1)),
    name              TEXT    NOT NULL,
    schema_name       TEXT    NOT NULL,
    identity_graph    TEXT    NOT NULL CHECK (identity_graph IN ('none', 'pdg')),
    attribute_merge   TEXT    NOT NULL CHECK (attribute_merge IN ('timestampOrdered', 'dataSetPrecedence')),
    dataset_order     TEXT    NOT NULL DEFAULT '[]', -- JSON array of dataset ids, highest priority first
    is_default        INTEGER NOT NULL CHECK (is_default IN (0, 1)),
    is_active_on_edge INTEGER NOT NULL CHECK (is_active_on_edge IN (0, 1)),
    update_epoch      INTEGER NOT NULL, -- seconds
    PRIMARY KEY (org, sandbox, id, version),
    FOREIGN KEY (org, sandbox) REFERENCES sandboxes (org, name)
);
CREATE UNIQUE INDEX merge_policies_latest ON merge_policies (org, sandbox, id) WHERE is_latest = 1;
CREATE UNIQUE INDEX merge_policies_one_default
    ON merge_policies (org, sandbox, schema_name) WHERE is_latest = 1 AND is_default = 1;
CREATE UNIQUE INDEX merge_policies_one_on_edge
    ON merge_policies (org, sandbox) WHERE is_latest = 1 AND is_active_on_edge = 1;

-- Every sandbox starts with the default policy; sandboxes created from now on get it from
-- MetaStore (MergePolicy::seeded), these values must stay equal to that.
INSERT INTO merge_policies (org, sandbox, id, version, is_latest, name, schema_name, identity_graph,
                            attribute_merge, dataset_order, is_default, is_active_on_edge, update_epoch)
SELECT org, name, 'timestampOrdered-none-mp', 1, 1, 'Default Timebased', '_xdm.context.profile', 'none',
       'timestampOrdered', '[]', 1, 0, CAST(strftime('%s', 'now') AS INTEGER)
FROM sandboxes;
