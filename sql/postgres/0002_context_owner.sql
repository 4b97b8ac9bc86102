-- Contexts name the server that launched their driver; retention deletes what ended long ago.
-- The same logical change as sql/sqlite/0002_context_owner.sql, plus the age of blobs (SQLite
-- reads it from the blob files' modification times).

-- NULL for contexts from before owners: every server treats those as its own.
ALTER TABLE contexts ADD COLUMN owner TEXT;
-- Start-up recovery: the active contexts of one owner (plus those of none).
CREATE INDEX contexts_by_owner_state ON contexts (owner, state);

-- delete_expired: final jobs and contexts whose end_time is before a moment. The state comes first
-- so that the same index answers "in a final state" (three equality ranges) and the time range.
CREATE INDEX jobs_by_state_end_time ON jobs (state, end_time);
CREATE INDEX contexts_by_state_end_time ON contexts (state, end_time);

-- When the blob was last put (epoch milliseconds, the database's clock): retention spares young
-- blobs, whose binary version may not be added yet. Existing blobs count as put now.
ALTER TABLE blobs ADD COLUMN created_at BIGINT NOT NULL DEFAULT (extract(epoch FROM now()) * 1000)::bigint;
