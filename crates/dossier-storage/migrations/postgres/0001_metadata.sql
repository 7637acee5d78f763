-- The metadata store on PostgreSQL: the tables of SQLite's migrations 0001 to 0010 as they stand
-- after 0010, in PostgreSQL's types. What each table and column means is said once, in
-- migrations/sqlite/; this file notes only what differs.
--
-- Integers are BIGINT (Rust's i64), flags BOOLEAN, JSON documents TEXT (written and read whole by
-- the store; lists it searches are cast to JSONB in the query). Text is `COLLATE "C"`: listings
-- sort byte by byte, as SQLite's BINARY does, whatever the database's own locale. Tables whose
-- listings or claims order by insertion carry `seq`, an identity column standing in for SQLite's
-- rowid.

CREATE TABLE sandboxes (
    org     TEXT COLLATE "C" NOT NULL,
    name    TEXT COLLATE "C" NOT NULL,
    created BIGINT NOT NULL,
    PRIMARY KEY (org, name)
);

CREATE TABLE api_clients (
    client_id     TEXT COLLATE "C" PRIMARY KEY,
    secret_sha256 TEXT COLLATE "C" NOT NULL,
    org           TEXT COLLATE "C" NOT NULL,
    sandboxes     TEXT COLLATE "C", -- JSON array of sandbox names, or NULL for every sandbox of the org
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
    id                TEXT COLLATE "C" PRIMARY KEY,
    org               TEXT COLLATE "C" NOT NULL,
    sandbox           TEXT COLLATE "C" NOT NULL,
    name              TEXT COLLATE "C" NOT NULL,
    description       TEXT COLLATE "C",
    schema_ref        TEXT COLLATE "C" NOT NULL,
    file_description  TEXT COLLATE "C" NOT NULL,
    tags              TEXT COLLATE "C" NOT NULL,
    aspect            TEXT COLLATE "C",
    data_behavior     TEXT COLLATE "C" NOT NULL,
    created           BIGINT NOT NULL,
    updated           BIGINT NOT NULL,
    created_client    TEXT COLLATE "C" NOT NULL,
    last_batch_id     TEXT COLLATE "C",
    last_batch_status TEXT COLLATE "C",
    seq               BIGINT GENERATED ALWAYS AS IDENTITY,
    FOREIGN KEY (org, sandbox) REFERENCES sandboxes (org, name)
);
CREATE INDEX datasets_by_tenant ON datasets (org, sandbox, created);

CREATE TABLE batches (
    id                TEXT COLLATE "C" PRIMARY KEY,
    org               TEXT COLLATE "C" NOT NULL,
    sandbox           TEXT COLLATE "C" NOT NULL,
    dataset_id        TEXT COLLATE "C" NOT NULL REFERENCES datasets (id) ON DELETE CASCADE,
    status            TEXT COLLATE "C" NOT NULL,
    created           BIGINT  NOT NULL,
    updated           BIGINT  NOT NULL,
    started           BIGINT,
    completed         BIGINT,
    record_count      BIGINT,
    size              BIGINT,
    records_read      BIGINT,
    errors            TEXT COLLATE "C" NOT NULL DEFAULT '[]',
    input_format      TEXT COLLATE "C",
    created_client    TEXT COLLATE "C" NOT NULL,
    partial_ingestion BOOLEAN NOT NULL DEFAULT FALSE,
    -- Insertion order; a dataset's committed batches read back in (completed, seq) order.
    seq               BIGINT  GENERATED ALWAYS AS IDENTITY
);
CREATE INDEX batches_by_tenant ON batches (org, sandbox, created);
CREATE INDEX batches_by_dataset ON batches (dataset_id, created);
CREATE INDEX batches_by_status ON batches (status);

CREATE TABLE schemas (
    org            TEXT COLLATE "C" NOT NULL,
    sandbox        TEXT COLLATE "C" NOT NULL,
    id             TEXT COLLATE "C" NOT NULL,
    alt_id         TEXT COLLATE "C" NOT NULL,
    title          TEXT COLLATE "C" NOT NULL,
    description    TEXT COLLATE "C",
    class          TEXT COLLATE "C" NOT NULL,
    version        TEXT COLLATE "C" NOT NULL,
    extends        TEXT COLLATE "C" NOT NULL,
    properties     TEXT COLLATE "C" NOT NULL,
    created        BIGINT NOT NULL,
    updated        BIGINT NOT NULL,
    created_client TEXT COLLATE "C" NOT NULL,
    seq            BIGINT GENERATED ALWAYS AS IDENTITY,
    PRIMARY KEY (org, sandbox, id),
    UNIQUE (org, sandbox, alt_id),
    FOREIGN KEY (org, sandbox) REFERENCES sandboxes (org, name)
);
CREATE INDEX schemas_by_tenant ON schemas (org, sandbox, created);

CREATE TABLE identity_descriptors (
    org            TEXT COLLATE "C" NOT NULL,
    sandbox        TEXT COLLATE "C" NOT NULL,
    id             TEXT COLLATE "C" NOT NULL,
    schema_id      TEXT COLLATE "C" NOT NULL,
    path           TEXT COLLATE "C" NOT NULL,
    namespace      TEXT COLLATE "C" NOT NULL,
    is_primary     BOOLEAN NOT NULL,
    created        BIGINT  NOT NULL,
    created_client TEXT COLLATE "C" NOT NULL,
    seq            BIGINT  GENERATED ALWAYS AS IDENTITY,
    PRIMARY KEY (org, sandbox, id),
    UNIQUE (org, sandbox, schema_id, path),
    FOREIGN KEY (org, sandbox, schema_id) REFERENCES schemas (org, sandbox, id) ON DELETE CASCADE
);
CREATE UNIQUE INDEX one_primary_identity_per_schema ON identity_descriptors (org, sandbox, schema_id) WHERE is_primary;

CREATE TABLE merge_policies (
    org               TEXT COLLATE "C" NOT NULL,
    sandbox           TEXT COLLATE "C" NOT NULL,
    id                TEXT COLLATE "C" NOT NULL,
    version           BIGINT  NOT NULL CHECK (version >= 1),
    is_latest         BOOLEAN NOT NULL,
    name              TEXT COLLATE "C" NOT NULL,
    schema_name       TEXT COLLATE "C" NOT NULL,
    identity_graph    TEXT COLLATE "C" NOT NULL CHECK (identity_graph IN ('none', 'pdg')),
    attribute_merge   TEXT COLLATE "C" NOT NULL CHECK (attribute_merge IN ('timestampOrdered', 'dataSetPrecedence')),
    dataset_order     TEXT COLLATE "C" NOT NULL DEFAULT '[]',
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
    file_id    TEXT COLLATE "C" PRIMARY KEY,
    batch_id   TEXT COLLATE "C" NOT NULL REFERENCES batches (id) ON DELETE CASCADE,
    org        TEXT COLLATE "C" NOT NULL,
    sandbox    TEXT COLLATE "C" NOT NULL,
    dataset_id TEXT COLLATE "C" NOT NULL,
    kind       TEXT COLLATE "C" NOT NULL,
    name       TEXT COLLATE "C" NOT NULL,
    path       TEXT COLLATE "C" NOT NULL,
    size       BIGINT NOT NULL,
    records    BIGINT NOT NULL,
    created    BIGINT NOT NULL
);
CREATE INDEX batch_files_by_batch ON batch_files (batch_id, kind, name);

CREATE TABLE export_jobs (
    org              TEXT COLLATE "C" NOT NULL,
    sandbox          TEXT COLLATE "C" NOT NULL,
    id               BIGINT  NOT NULL CHECK (id >= 1),
    status           TEXT COLLATE "C" NOT NULL CHECK (status IN ('NEW', 'PROCESSING', 'SUCCEEDED', 'FAILED', 'CANCELLED')),
    request_id       TEXT COLLATE "C" NOT NULL,
    request          TEXT COLLATE "C" NOT NULL,
    spec             TEXT COLLATE "C" NOT NULL,
    batches          TEXT COLLATE "C" NOT NULL,
    dataset_id       TEXT COLLATE "C" NOT NULL,
    metrics          TEXT COLLATE "C" NOT NULL,
    progress         TEXT COLLATE "C",
    errors           TEXT COLLATE "C" NOT NULL DEFAULT '[]',
    cancel_requested BOOLEAN NOT NULL DEFAULT FALSE,
    idempotency_key  TEXT COLLATE "C",
    body_sha256      TEXT COLLATE "C",
    created_client   TEXT COLLATE "C" NOT NULL,
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
    org        TEXT COLLATE "C" NOT NULL,
    sandbox    TEXT COLLATE "C" NOT NULL,
    version    BIGINT NOT NULL CHECK (version >= 1),
    path       TEXT COLLATE "C" NOT NULL,
    created    BIGINT NOT NULL,
    nodes      BIGINT NOT NULL,
    components BIGINT NOT NULL,
    PRIMARY KEY (org, sandbox, version),
    FOREIGN KEY (org, sandbox) REFERENCES sandboxes (org, name)
);

CREATE TABLE identity_graph_batches (
    batch_id TEXT COLLATE "C" PRIMARY KEY REFERENCES batches (id) ON DELETE CASCADE,
    org      TEXT COLLATE "C" NOT NULL,
    sandbox  TEXT COLLATE "C" NOT NULL,
    version  BIGINT NOT NULL
);
CREATE INDEX identity_graph_batches_by_version ON identity_graph_batches (org, sandbox, version);

CREATE TABLE segment_definitions (
    org             TEXT COLLATE "C" NOT NULL,
    sandbox         TEXT COLLATE "C" NOT NULL,
    id              TEXT COLLATE "C" NOT NULL,
    name            TEXT COLLATE "C" NOT NULL,
    description     TEXT COLLATE "C",
    schema_name     TEXT COLLATE "C" NOT NULL,
    expression      TEXT COLLATE "C" NOT NULL,
    merge_policy_id TEXT COLLATE "C" NOT NULL,
    batch_enabled   BOOLEAN NOT NULL,
    ttl_in_days     BIGINT  CHECK (ttl_in_days IS NULL OR ttl_in_days >= 1),
    dependencies    TEXT COLLATE "C" NOT NULL DEFAULT '[]',
    creation_time   BIGINT  NOT NULL,
    update_time     BIGINT  NOT NULL,
    PRIMARY KEY (org, sandbox, id),
    FOREIGN KEY (org, sandbox) REFERENCES sandboxes (org, name)
);
CREATE UNIQUE INDEX segment_definitions_name ON segment_definitions (org, sandbox, name);
CREATE INDEX segment_definitions_creation ON segment_definitions (org, sandbox, creation_time);

CREATE TABLE segment_jobs (
    org            TEXT COLLATE "C" NOT NULL,
    sandbox        TEXT COLLATE "C" NOT NULL,
    id             TEXT COLLATE "C" NOT NULL,
    status         TEXT COLLATE "C" NOT NULL CHECK (status IN ('NEW', 'PROCESSING', 'SUCCEEDED', 'FAILED', 'CANCELLING', 'CANCELLED')),
    request_id     TEXT COLLATE "C" NOT NULL,
    segments       TEXT COLLATE "C" NOT NULL,
    metrics        TEXT COLLATE "C" NOT NULL,
    errors         TEXT COLLATE "C" NOT NULL DEFAULT '[]',
    created_client TEXT COLLATE "C" NOT NULL,
    created        BIGINT NOT NULL,
    updated        BIGINT NOT NULL,
    seq            BIGINT GENERATED ALWAYS AS IDENTITY,
    PRIMARY KEY (org, sandbox, id),
    FOREIGN KEY (org, sandbox) REFERENCES sandboxes (org, name)
);
CREATE INDEX segment_jobs_listing ON segment_jobs (org, sandbox, created DESC);

CREATE TABLE segment_memberships (
    org        TEXT COLLATE "C" NOT NULL,
    sandbox    TEXT COLLATE "C" NOT NULL,
    segment_id TEXT COLLATE "C" NOT NULL,
    path       TEXT COLLATE "C" NOT NULL,
    job_id     TEXT COLLATE "C" NOT NULL,
    evaluated  BIGINT NOT NULL,
    rows       BIGINT NOT NULL,
    PRIMARY KEY (org, sandbox, segment_id),
    FOREIGN KEY (org, sandbox) REFERENCES sandboxes (org, name)
);

CREATE TABLE batch_uploads (
    batch_id TEXT COLLATE "C" NOT NULL REFERENCES batches (id) ON DELETE CASCADE,
    org      TEXT COLLATE "C" NOT NULL,
    sandbox  TEXT COLLATE "C" NOT NULL,
    name     TEXT COLLATE "C" NOT NULL,
    path     TEXT COLLATE "C" NOT NULL,
    size     BIGINT NOT NULL,
    created  BIGINT NOT NULL,
    PRIMARY KEY (batch_id, name)
);

-- Several nodes claim from this table at once: a claim takes its row `FOR UPDATE SKIP LOCKED`.
CREATE TABLE job_queue (
    kind             TEXT COLLATE "C" NOT NULL CHECK (kind IN ('export', 'segment')),
    org              TEXT COLLATE "C" NOT NULL,
    sandbox          TEXT COLLATE "C" NOT NULL,
    job_id           TEXT COLLATE "C" NOT NULL,
    state            TEXT COLLATE "C" NOT NULL CHECK (state IN ('queued', 'running')),
    queued           BIGINT  NOT NULL,
    worker           TEXT COLLATE "C",
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
