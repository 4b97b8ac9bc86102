-- Results too large for a row (those that arrived in chunks) are stored as chunk rows, like
-- blobs, so that neither the server nor the database holds one whole: the job_results row then
-- holds an empty result and how many chunks (and bytes) follow. A job's deletion takes them.
ALTER TABLE job_results ADD COLUMN chunk_count INTEGER NOT NULL DEFAULT 0;
ALTER TABLE job_results ADD COLUMN size_bytes BIGINT NOT NULL DEFAULT 0;

CREATE TABLE job_result_chunks (
    job_id TEXT    NOT NULL REFERENCES job_results (job_id) ON DELETE CASCADE,
    seq    INTEGER NOT NULL,
    data   BYTEA   NOT NULL,
    PRIMARY KEY (job_id, seq)
);
