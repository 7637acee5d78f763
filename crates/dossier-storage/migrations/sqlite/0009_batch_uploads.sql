-- The uploads of an ingestion batch. An upload streams into its own staging folder and counts only
-- once recorded here, in a transaction that checks the batch is still `loading`; COMPLETE moves
-- the batch to `processing` and ingests exactly these rows, so an upload that ends after COMPLETE
-- is refused rather than silently left out.

CREATE TABLE batch_uploads (
    batch_id TEXT    NOT NULL REFERENCES batches (id) ON DELETE CASCADE,
    org      TEXT    NOT NULL,
    sandbox  TEXT    NOT NULL,
    name     TEXT    NOT NULL, -- the file name the client gave; a later upload of a name replaces it
    path     TEXT    NOT NULL, -- object path of the staged bytes in the lake
    size     INTEGER NOT NULL,
    created  INTEGER NOT NULL,
    PRIMARY KEY (batch_id, name)
);
