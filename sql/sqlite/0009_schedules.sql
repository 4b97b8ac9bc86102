-- Schedules and their runs: the same logical change as sql/postgres/0009_schedules.sql.
-- A schedule starts a job or a workflow (target, the posted JSON) at each due time of its cron
-- expression in its time zone. next_due_at (epoch milliseconds) is the earliest due time no
-- server has dealt with yet; servers move it on with a compare-and-set. A due time is started
-- by the server whose INSERT of its run wins the primary key (schedule_name, due_at): with
-- several servers on one database, each run starts exactly once.
CREATE TABLE schedules (
    name        TEXT    PRIMARY KEY,
    cron        TEXT    NOT NULL,
    time_zone   TEXT    NOT NULL,
    target      TEXT    NOT NULL,
    catch_up    TEXT    NOT NULL,
    overlap     TEXT    NOT NULL,
    paused      INTEGER NOT NULL DEFAULT 0,
    next_due_at INTEGER NOT NULL,
    created_at  INTEGER NOT NULL,
    user_name   TEXT,
    acts_as     TEXT    NOT NULL DEFAULT '[]',
    run_as      TEXT
);

-- One row per due time dealt with (the missed ones a catch-up skips leave none). job_id or
-- workflow_id names what the run submitted; deleting the schedule takes its runs.
CREATE TABLE schedule_runs (
    schedule_name TEXT    NOT NULL REFERENCES schedules (name) ON DELETE CASCADE,
    due_at        INTEGER NOT NULL,
    state         TEXT    NOT NULL,
    claimed_by    TEXT    NOT NULL,
    claimed_at    INTEGER NOT NULL,
    job_id        TEXT,
    workflow_id   TEXT,
    error         TEXT,
    PRIMARY KEY (schedule_name, due_at)
);
