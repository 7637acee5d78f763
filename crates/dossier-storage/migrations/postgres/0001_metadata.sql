-- The metadata store on PostgreSQL: the tables of SQLite's migrations 0001 to 0010 as they stand
-- after 0010, in PostgreSQL's types. What each table and column means is said once, in
-- migrations/sqlite/; this file notes only what differs.
--
-- Integers are BIGINT (Rust's i64), flags BOOLEAN, JSON documents TEXT (written and read whole by
-- the store; lists it searches are cast to JSONB in the query). Tables whose listings or claims
-- order by insertion carry `seq`, an identity column standing in for SQLite's rowid.

CREATE TABLE sandboxes (
    org     TEXT   NOT NULL,
    name    TEXT   NOT NULL,
    created BIGINT NOT NULL,
    PRIMARY KEY (org, name)
);

CREATE TABLE api_clients (
    client_id     TEXT   PRIMARY KEY,
    secret_sha256 TEXT   NOT NULL,
    org           TEXT   NOT NULL,
    sandboxes     TEXT, -- JSON array of sandbox names, or NULL for every sandbox of the org
    created       BIGINT NOT NULL,
    revoked       BIGINT
);

-- One row (id 1): the HS256 key every node signs and checks tokens with.
CREATE TABLE signing_keys (
    id      BIGINT PRIMARY KEY,
    secret  BYTEA  NOT NULL,
    created BIGINT NOT NULL
);

CREATE TABLE datasets (
    id                TEXT   PRIMARY KEY,
    org               TEXT   NOT NULL,
    sandbox           TEXT   NOT NULL,
    name              TEXT   NOT NULL,
    description       TEXT,
    schema_ref        TEXT   NOT NULL,
    file_description  TEXT   NOT NULL,
    tags              TEXT   NOT NULL,
    aspect            TEXT,
    data_behavior     TEXT   NOT NULL,
    created           BIGINT NOT NULL,
    updated           BIGINT NOT NULL,
    created_client    TEXT   NOT NULL,
    last_batch_id     TEXT,
    last_batch_status TEXT,
    seq               BIGINT GENERATED ALWAYS AS IDENTITY,
    FOREIGN KEY (org, sandbox) REFERENCES sandboxes (org, name)
);
CREATE INDEX datasets_by_tenant ON datasets (org, sandbox, created);

CREATE TABLE batches (
    id                TEXT    PRIMARY KEY,
    org               TEXT    NOT NULL,
    sandbox           TEXT    NOT NULL,
    dataset_id        TEXT    NOT NULL REFERENCES datasets (id) ON DELETE CASCADE,
    status            TEXT    NOT NULL,
    created           BIGINT  NOT NULL,
    updated           BIGINT  NOT NULL,
    started           BIGINT,
    completed         BIGINT,
    record_count      BIGINT,
    size              BIGINT,
    records_read      BIGINT,
    errors            TEXT    NOT NULL DEFAULT '[]',
    input_format      TEXT,
    created_client    TEXT    NOT NULL,
    partial_ingestion BOOLEAN NOT NULL DEFAULT FALSE,
    -- Insertion order; a dataset's committed batches read back in (completed, seq) order.
    seq               BIGINT  GENERATED ALWAYS AS IDENTITY
);
CREATE INDEX batches_by_tenant ON batches (org, sandbox, created);
CREATE INDEX batches_by_dataset ON batches (dataset_id, created);
CREATE INDEX batches_by_status ON batches (status);

CREATE TABLE schemas (
    org            TEXT   NOT NULL,
    sandbox        TEXT   NOT NULL,
    id             TEXT   NOT NULL,
    alt_id         TEXT   NOT NULL,
    title          TEXT   NOT NULL,
    description    TEXT,
    class          TEXT   NOT NULL,
    version        TEXT   NOT NULL,
    extends        TEXT   NOT NULL,
    properties     TEXT   NOT NULL,
    created        BIGINT NOT NULL,
    updated        BIGINT NOT NULL,
    created_client TEXT   NOT NULL,
    seq            BIGINT GENERATED ALWAYS AS IDENTITY,
    PRIMARY KEY (org, sandbox, id),
    UNIQUE (org, sandbox, alt_id),
    FOREIGN KEY (org, sandbox) REFERENCES sandboxes (org, name)
);
CREATE INDEX schemas_by_tenant ON schemas (org, sandbox, created);

CREATE TABLE identity_descriptors (
    org            TEXT    NOT NULL,
    sandbox        TEXT    NOT NULL,
    id             TEXT    NOT NULL,
    schema_id      TEXT    NOT NULL,
    path           TEXT    NOT NULL,
    namespace      TEXT    NOT NULL,
    is_primary     BOOLEAN NOT NULL,
    created        BIGINT  NOT NULL,
    created_client TEXT    NOT NULL,
    seq            BIGINT  GENERATED ALWAYS AS IDENTITY,
    PRIMARY KEY (org, sandbox, id),
    UNIQUE (org, sandbox, schema_id, path),
    FOREIGN KEY (org, sandbox, schema_id) REFERENCES schemas (org, sandbox, id) ON DELETE CASCADE
);
CREATE UNIQUE INDEX one_primary_identity_per_schema ON identity_descriptors (org, sandbox, schema_id) WHERE is_primary;

CREATE TABLE merge_policies (
    org               TEXT    NOT NULL,
    sandbox           TEXT    NOT NULL,
    id                TEXT    NOT NULL,
    version           BIGINT  NOT NULL CHECK (version >= 1),
    is_latest         BOOLEAN NOT NULL,
    name              TEXT    NOT NULL,
    schema_name       TEXT    NOT NULL,
    identity_graph    TEXT    NOT NULL CHECK (identity_graph IN ('none', 'pdg')),
    attribute_merge   TEXT    NOT NULL CHECK (attribute_merge IN ('timestampOrdered', 'dataSetPrecedence')),
    dataset_order     TEXT    NOT NULL DEFAULT '[]',
    is_default        BOOLEAN NOT NULL,
    is_active_on_edge BOOLEAN NOT NULL,
    update_epoch      BIGINT  NOT NULL,
    PRIMARY KEY (org, sandbox, id, version),
    FOREIGN KEY (org, sandbox) REFERENCES sandboxes (org, name)
);
CREATE UNIQUE INDEX merge_policies_latest ON merge_policies (org, sandbox, id) WHERE is_latest;
CREATE UNIQUE INDEX merge_policies_one_default
    ON merge_policies (org, sandbox, schema_name) WHERE is_latest AND is_default;
CREATE UNIQUE INDEX merge_policies_one_on_edge
    ON merge_policies (org, sandbox) WHERE is_latest AND is_active_on_edge;

CREATE TABLE batch_files (
    file_id    TEXT   PRIMARY KEY,
    batch_id   TEXT   NOT NULL REFERENCES batches (id) ON DELETE CASCADE,
    org        TEXT   NOT NULL,
    sandbox    TEXT   NOT NULL,
    dataset_id TEXT   NOT NULL,
    kind       TEXT   NOT NULL,
    name       TEXT   NOT NULL,
    path       TEXT   NOT NULL,
    size       BIGINT NOT NULL,
    records    BIGINT NOT NULL,
    created    BIGINT NOT NULL
);
CREATE INDEX batch_files_by_batch ON batch_files (batch_id, kind, name);

CREATE TABLE export_jobs (
    org              TEXT    NOT NULL,
    sandbox          TEXT    NOT NULL,
    id               BIGINT  NOT NULL CHECK (id >= 1),
    status           TEXT    NOT NULL CHECK (status IN ('NEW', 'PROCESSING', 'SUCCEEDED', 'FAILED', 'CANCELLED')),
    request_id       TEXT    NOT NULL,
    request          TEXT    NOT NULL,
    spec             TEXT    NOT NULL,
    batches          TEXT    NOT NULL,
    dataset_id       TEXT    NOT NULL,
    metrics          TEXT    NOT NULL,
    progress         TEXT,
    errors           TEXT    NOT NULL DEFAULT '[]',
    cancel_requested BOOLEAN NOT NULL DEFAULT FALSE,
    idempotency_key  TEXT,
    body_sha256      TEXT,
    created_client   TEXT    NOT NULL,
    created          BIGINT  NOT NULL,
    updated          BIGINT  NOT NULL,
    PRIMARY KEY (org, sandbox, id),
    FOREIGN KEY (org, sandbox) REFERENCES sandboxes (org, name)
);
CREATE INDEX export_jobs_listing ON export_jobs (org, sandbox, created DESC, id DESC);
CREATE INDEX export_jobs_by_dataset ON export_jobs (dataset_id, status);
CREATE UNIQUE INDEX export_jobs_idempotency ON export_jobs (org, sandbox, idempotency_key)
    WHERE idempotency_key IS NOT NULL;

CREATE TABLE identity_graph_versions (
    org        TEXT   NOT NULL,
    sandbox    TEXT   NOT NULL,
    version    BIGINT NOT NULL CHECK (version >= 1),
    path       TEXT   NOT NULL,
    created    BIGINT NOT NULL,
    nodes      BIGINT NOT NULL,
    components BIGINT NOT NULL,
    PRIMARY KEY (org, sandbox, version),
    FOREIGN KEY (org, sandbox) REFERENCES sandboxes (org, name)
);

CREATE TABLE identity_graph_batches (
    batch_id TEXT   PRIMARY KEY REFERENCES batches (id) ON DELETE CASCADE,
    org      TEXT   NOT NULL,
    sandbox  TEXT   NOT NULL,
    version  BIGINT NOT NULL
);
CREATE INDEX identity_graph_batches_by_version ON identity_graph_batches (org, sandbox, version);

CREATE TABLE segment_definitions (
    org             TEXT    NOT NULL,
    sandbox         TEXT    NOT NULL,
    id              TEXT    NOT NULL,
    name            TEXT    NOT NULL,
    description     TEXT,
    schema_name     TEXT    NOT NULL,
    expression      TEXT    NOT NULL,
    merge_policy_id TEXT    NOT NULL,
    batch_enabled   BOOLEAN NOT NULL,
    ttl_in_days     BIGINT  CHECK (ttl_in_days IS NULL OR ttl_in_days >= 1),
    dependencies    TEXT    NOT NULL DEFAULT '[]',
    creation_time   BIGINT  NOT NULL,
    update_time     BIGINT  NOT NULL,
    PRIMARY KEY (org, sandbox, id),
    FOREIGN KEY (org, sandbox) REFERENCES sandboxes (org, name)
);
CREATE UNIQUE INDEX segment_definitions_name ON segment_definitions (org, sandbox, name);
CREATE INDEX segment_definitions_creation ON segment_definitions (org, sandbox, creation_time);

CREATE TABLE segment_jobs (
    org            TEXT   NOT NULL,
    sandbox        TEXT   NOT NULL,
    id             TEXT   NOT NULL,
    status         TEXT   NOT NULL CHECK (status IN ('NEW', 'PROCESSING', 'SUCCEEDED', 'FAILED', 'CANCELLING', 'CANCELLED')),
    request_id     TEXT   NOT NULL,
    segments       TEXT   NOT NULL,
    metrics        TEXT   NOT NULL,
    errors         TEXT   NOT NULL DEFAULT '[]',
    created_client TEXT   NOT NULL,
    created        BIGINT NOT NULL,
    updated        BIGINT NOT NULL,
    seq            BIGINT GENERATED ALWAYS AS IDENTITY,
    PRIMARY KEY (org, sandbox, id),
    FOREIGN KEY (org, sandbox) REFERENCES sandboxes (org, name)
);
CREATE INDEX segment_jobs_listing ON segment_jobs (org, sandbox, created DESC);

CREATE TABLE segment_memberships (
    org        TEXT   NOT NULL,
    sandbox    TEXT   NOT NULL,
    segment_id TEXT   NOT NULL,
    path       TEXT   NOT NULL,
    job_id     TEXT   NOT NULL,
    evaluated  BIGINT NOT NULL,
    rows       BIGINT NOT NULL,
    PRIMARY KEY (org, sandbox, segment_id),
    FOREIGN KEY (org, sandbox) REFERENCES sandboxes (org, name)
);

CREATE TABLE batch_uploads (
    batch_id TEXT   NOT NULL REFERENCES batches (id) ON DELETE CASCADE,
    org      TEXT   NOT NULL,
    sandbox  TEXT   NOT NULL,
    name     TEXT   NOT NULL,
    path     TEXT   NOT NULL,
    size     BIGINT NOT NULL,
    created  BIGINT NOT NULL,
    PRIMARY KEY (batch_id, name)
);

-- Several nodes claim from this table at once: a claim takes its row `FOR UPDATE SKIP LOCKED`.
CREATE TABLE job_queue (
    kind             TEXT    NOT NULL CHECK (kind IN ('export', 'segment')),
    org              TEXT    NOT NULL,
    sandbox          TEXT    NOT NULL,
    job_id           TEXT    NOT NULL,
    state            TEXT    NOT NULL CHECK (state IN ('queued', 'running')),
    queued           BIGINT  NOT NULL,
    worker           TEXT,
    heartbeat        BIGINT,
    attempts         BIGINT  NOT NULL DEFAULT 0,
    cancel_requested BOOLEAN NOT NULL DEFAULT FALSE,
    -- Queue order among jobs queued in the same millisecond.
    seq              BIGINT  GENERATED ALWAYS AS IDENTITY,
    PRIMARY KEY (kind, org, sandbox, job_id),
    FOREIGN KEY (org, sandbox) REFERENCES sandboxes (org, name)
);
CREATE INDEX job_queue_claim ON job_queue (state, queued);
CREATE INDEX job_queue_running ON job_queue (state, org, sandbox);
CREATE INDEX job_queue_kind ON job_queue (kind, state);
