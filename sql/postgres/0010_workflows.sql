-- Workflows and their steps: the same logical change as sql/sqlite/0010_workflows.sql.
-- spec is the posted steps (JSON); owner the server that drives the workflow (after a restart
-- it picks up its workflows still RUNNING). A step's row moves PENDING -> STARTING (claimed by
-- the server submitting its job, compare-and-set) -> STARTED (job_id set) -> its job's end.
CREATE TABLE workflows (
    id            TEXT    PRIMARY KEY,
    name          TEXT    NOT NULL,
    state         TEXT    NOT NULL,
    spec          TEXT    NOT NULL,
    owner         TEXT    NOT NULL,
    start_time    BIGINT  NOT NULL,
    end_time      BIGINT,
    error         TEXT,
    schedule_name TEXT,
    user_name     TEXT,
    acts_as       TEXT    NOT NULL DEFAULT '[]',
    run_as        TEXT
);
CREATE INDEX workflows_state ON workflows (state, owner);

CREATE TABLE workflow_steps (
    workflow_id TEXT    NOT NULL REFERENCES workflows (id) ON DELETE CASCADE,
    position    INTEGER NOT NULL,
    name        TEXT    NOT NULL,
    state       TEXT    NOT NULL,
    job_id      TEXT,
    error       TEXT,
    PRIMARY KEY (workflow_id, name)
);
CREATE INDEX workflow_steps_job ON workflow_steps (job_id);
