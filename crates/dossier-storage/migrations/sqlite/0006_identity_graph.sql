-- The identity graph of each sandbox (semantics.md "Identity graph"), kept as versioned snapshots.
--
-- A version's connected components sit in a Parquet file of the lake (`path`); its row here is
-- written in one transaction with the rows of the batches it folded in, after the file, so a
-- version is either whole or absent. Readers take the highest version. Only the newest few
-- versions keep their row and file; `identity_graph_batches` keeps every fold, so a batch folded
-- at version v is covered by every version >= v.

CREATE TABLE identity_graph_versions (
    org        TEXT    NOT NULL,
    sandbox    TEXT    NOT NULL,
    version    INTEGER NOT NULL CHECK (version >= 1),
    path       TEXT    NOT NULL, -- the snapshot's object path in the lake
    created    INTEGER NOT NULL,
    nodes      INTEGER NOT NULL, -- identities
    components INTEGER NOT NULL,
    PRIMARY KEY (org, sandbox, version),
    FOREIGN KEY (org, sandbox) REFERENCES sandboxes (org, name)
);

CREATE TABLE identity_graph_batches (
    batch_id TEXT    PRIMARY KEY REFERENCES batches (id) ON DELETE CASCADE,
    org      TEXT    NOT NULL,
    sandbox  TEXT    NOT NULL,
    version  INTEGER NOT NULL -- the version that folded the batch in
);
CREATE INDEX identity_graph_batches_by_version ON identity_graph_batches (org, sandbox, version);
