-- The Schema Registry's tenant container: user schemas and their identity descriptors.

CREATE TABLE schemas (
    org            TEXT    NOT NULL,
    sandbox        TEXT    NOT NULL,
    id             TEXT    NOT NULL, -- $id
    alt_id         TEXT    NOT NULL, -- meta:altId
    title          TEXT    NOT NULL,
    description    TEXT,
    class          TEXT    NOT NULL, -- meta:class URI
    version        TEXT    NOT NULL,
    extends        TEXT    NOT NULL, -- JSON array: meta:extends
    properties     TEXT    NOT NULL, -- JSON Schema properties, class fields included
    created        INTEGER NOT NULL,
    updated        INTEGER NOT NULL,
    created_client TEXT    NOT NULL,
    PRIMARY KEY (org, sandbox, id),
    UNIQUE (org, sandbox, alt_id),
    FOREIGN KEY (org, sandbox) REFERENCES sandboxes (org, name)
);
CREATE INDEX schemas_by_tenant ON schemas (org, sandbox, created);

CREATE TABLE identity_descriptors (
    org            TEXT    NOT NULL,
    sandbox        TEXT    NOT NULL,
    id             TEXT    NOT NULL, -- @id
    schema_id      TEXT    NOT NULL, -- $id of the schema
    path           TEXT    NOT NULL, -- dot path of xdm:sourceProperty
    namespace      TEXT    NOT NULL,
    is_primary     INTEGER NOT NULL,
    created        INTEGER NOT NULL,
    created_client TEXT    NOT NULL,
    PRIMARY KEY (org, sandbox, id),
    UNIQUE (org, sandbox, schema_id, path),
    FOREIGN KEY (org, sandbox, schema_id) REFERENCES schemas (org, sandbox, id) ON DELETE CASCADE
);
-- A schema has at most one primary identity.
CREATE UNIQUE INDEX one_primary_identity_per_schema ON identity_descriptors (org, sandbox, schema_id) WHERE is_primary = 1;
