-- Callbacks not delivered yet. A row is added in the transaction that stores the job's end
-- (FINISHED or ERROR, with a callback_url), so it is durable exactly when the end is, and removed
-- once the callback is delivered or given up. The body is rebuilt from the job (state, error,
-- result); retention deleting the job takes its pending callback with it.
CREATE TABLE pending_callbacks (
    job_id            TEXT    PRIMARY KEY REFERENCES jobs (id) ON DELETE CASCADE,
    url               TEXT    NOT NULL,
    attempts          INTEGER NOT NULL DEFAULT 0,  -- made so far
    next_attempt_time INTEGER NOT NULL,            -- epoch milliseconds
    -- The server delivering it (its server id) holds it until lease_until (epoch milliseconds);
    -- NULL and 0 while nobody does. Another server takes over a callback whose lease ran out.
    owner             TEXT,
    lease_until       INTEGER NOT NULL DEFAULT 0
) WITHOUT ROWID;
-- Take-over: the callbacks whose lease ran out.
CREATE INDEX pending_callbacks_by_lease_until ON pending_callbacks (lease_until);
