-- Tenancy, API clients, token signing keys, and the Catalog (datasets and batches).

CREATE TABLE sandboxes (
    org        TEXT    NOT NULL,
    name       TEXT    NOT NULL,
    created    INTEGER NOT NULL,
    PRIMARY KEY (org, name)
);

CREATE TABLE api_clients (
    client_id    TEXT    PRIMARY KEY,
    secret_sha256 TEXT   NOT NULL,
    org          TEXT    NOT NULL,
    -- JSON array of sandbox names, or NULL for every sandbox of the org.
    sandboxes    TEXT,
    created      INTEGER NOT NULL,
    revoked      INTEGER
);

CREATE TABLE signing_keys (
    id      INTEGER PRIMARY KEY,
    secret  BLOB    NOT NULL,
    created INTEGER NOT NULL
);

CREATE TABLE datasets (
    id                TEXT    PRIMARY KEY,
    org               TEXT    NOT NULL,
    sandbox           TEXT    NOT NULL,
    name              TEXT    NOT NULL,
    description       TEXT,
    schema_ref        TEXT    NOT NULL, -- JSON
    file_description  TEXT    NOT NULL, -- JSON
    tags              TEXT    NOT NULL, -- JSON
    aspect            TEXT,
    data_behavior     TEXT    NOT NULL,
    created           INTEGER NOT NULL,
    updated           INTEGER NOT NULL,
    created_client    TEXT    NOT NULL,
    last_batch_id     TEXT,
    last_batch_status TEXT,
    FOREIGN KEY (org, sandbox) REFERENCES sandboxes (org, name)
);
CREATE INDEX datasets_by_tenant ON datasets (org, sandbox, created);

CREATE TABLE batches (
    id             TEXT    PRIMARY KEY,
    org            TEXT    NOT NULL,
    sandbox        TEXT    NOT NULL,
    dataset_id     TEXT    NOT NULL REFERENCES datasets (id) ON DELETE CASCADE,
    status         TEXT    NOT NULL,
    created        INTEGER NOT NULL,
    updated        INTEGER NOT NULL,
    started        INTEGER,
    completed      INTEGER,
    record_count   INTEGER,
    size           INTEGER,
    records_read   INTEGER,
    errors         TEXT    NOT NULL DEFAULT '[]', -- JSON
    input_format   TEXT,                          -- JSON
    created_client TEXT    NOT NULL
);
CREATE INDEX batches_by_tenant ON batches (org, sandbox, created);
CREATE INDEX batches_by_dataset ON batches (dataset_id, created);
