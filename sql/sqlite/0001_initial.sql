-- Initial schema (SQLite). Times are INTEGER epoch milliseconds (UTC); JSON is stored as TEXT.
-- Blob bytes are files <blob_dir>/<sha256>, so there is no blob table here.

CREATE TABLE schema_version (
    version    INTEGER PRIMARY KEY,
    name       TEXT    NOT NULL,
    applied_at INTEGER NOT NULL
);

-- One row per upload of a name (its versions). AUTOINCREMENT: ids of deleted versions are never
-- reused, because finished jobs keep referring to them.
CREATE TABLE binaries (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    app_name    TEXT    NOT NULL,
    binary_type TEXT    NOT NULL,
    upload_time INTEGER NOT NULL,
    sha256      TEXT    NOT NULL,
    size_bytes  INTEGER NOT NULL
);
CREATE INDEX binaries_by_app_name_upload_time ON binaries (app_name, upload_time DESC, id DESC);
-- delete_binary asks whether another version still uses a blob.
CREATE INDEX binaries_by_sha256 ON binaries (sha256);

CREATE TABLE contexts (
    id             TEXT    PRIMARY KEY,
    name           TEXT    NOT NULL,
    config         TEXT    NOT NULL,
    state          TEXT    NOT NULL,
    start_time     INTEGER NOT NULL,
    end_time       INTEGER,
    error          TEXT,
    application_id TEXT,
    web_ui_url     TEXT,
    is_adhoc       INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX contexts_by_name_start_time ON contexts (name, start_time DESC, id DESC);
CREATE INDEX contexts_by_state_start_time ON contexts (state, start_time DESC, id DESC);

-- Every listing is newest first, ties broken by id, so the indexes end in (start_time DESC, id DESC).
-- No foreign key to contexts: clean-up removes old contexts and old jobs independently.
CREATE TABLE jobs (
    id           TEXT    PRIMARY KEY,
    context_id   TEXT    NOT NULL,
    context_name TEXT    NOT NULL,
    class_path   TEXT    NOT NULL,
    state        TEXT    NOT NULL,
    start_time   INTEGER NOT NULL,
    end_time     INTEGER,
    uris         TEXT    NOT NULL DEFAULT '[]',
    error        TEXT,
    callback_url TEXT
);
CREATE INDEX jobs_by_start_time ON jobs (start_time DESC, id DESC);
CREATE INDEX jobs_by_state_start_time ON jobs (state, start_time DESC, id DESC);
CREATE INDEX jobs_by_context_id ON jobs (context_id, start_time DESC, id DESC);

-- The binary versions on a job's class path, in order. No foreign key to binaries: a job keeps
-- naming the versions it ran with after they are deleted.
CREATE TABLE job_binaries (
    job_id    TEXT    NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    position  INTEGER NOT NULL,
    binary_id INTEGER NOT NULL,
    PRIMARY KEY (job_id, position)
) WITHOUT ROWID;
-- binary_users: versions of a name -> jobs that use them.
CREATE INDEX job_binaries_by_binary_id ON job_binaries (binary_id);

CREATE TABLE job_configs (
    job_id TEXT PRIMARY KEY REFERENCES jobs (id) ON DELETE CASCADE,
    config TEXT NOT NULL
);

CREATE TABLE job_results (
    job_id TEXT PRIMARY KEY REFERENCES jobs (id) ON DELETE CASCADE,
    result BLOB NOT NULL
);

CREATE TABLE data_files (
    name        TEXT    PRIMARY KEY,
    upload_time INTEGER NOT NULL,
    size_bytes  INTEGER NOT NULL
);
