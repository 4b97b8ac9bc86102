-- What each job printed or logged: the same logical change as sql/sqlite/0006_job_logs.sql.
-- One row per line, numbered from 0 by the driver (a batch sent twice is stored once).
-- Retention deleting the job takes its lines.
CREATE TABLE job_logs (
    job_id  TEXT    NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    line_no INTEGER NOT NULL,
    line    TEXT    NOT NULL,
    PRIMARY KEY (job_id, line_no)
);
