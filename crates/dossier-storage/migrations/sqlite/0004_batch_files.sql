-- The files of committed batches (data files readers may download, error files of failed
-- ingestion), recorded in the same transaction that commits the batch.

CREATE TABLE batch_files (
    file_id    TEXT    PRIMARY KEY, -- dataSetFileId in the Data Access API
    batch_id   TEXT    NOT NULL REFERENCES batches (id) ON DELETE CASCADE,
    org        TEXT    NOT NULL,
    sandbox    TEXT    NOT NULL,
    dataset_id TEXT    NOT NULL,
    kind       TEXT    NOT NULL, -- 'data' or 'failed'
    name       TEXT    NOT NULL, -- file name within the batch folder
    path       TEXT    NOT NULL, -- object path in the lake
    size       INTEGER NOT NULL,
    records    INTEGER NOT NULL,
    created    INTEGER NOT NULL
);
CREATE INDEX batch_files_by_batch ON batch_files (batch_id, kind, name);

-- Ingestion options AEP takes on batch creation.
ALTER TABLE batches ADD COLUMN partial_ingestion INTEGER NOT NULL DEFAULT 0;
