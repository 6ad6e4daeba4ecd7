-- The SQLite schema, version 1 (shim/store/sqlite.py applies these files in order and keeps
-- the version in PRAGMA user_version). A shipped file is never edited: a change is a new one.
CREATE TABLE IF NOT EXISTS bugs (
    id                TEXT PRIMARY KEY,
    bug_number        TEXT NOT NULL UNIQUE,
    title             TEXT NOT NULL,
    description       TEXT,
    severity          TEXT NOT NULL CHECK (severity IN ('critical','high','medium','low')),
    priority          TEXT NOT NULL CHECK (priority IN ('urgent','high','medium','low')),
    status            TEXT NOT NULL DEFAULT 'open'
                      CHECK (status IN ('open','in_progress','resolved','closed')),
    component         TEXT,
    workspace_id      TEXT,
    error_type        TEXT,
    error_message     TEXT,
    stack_trace       TEXT,
    fingerprint       TEXT NOT NULL UNIQUE,
    grouping_version  INTEGER NOT NULL,
    occurrence_count  INTEGER NOT NULL DEFAULT 1,
    first_occurred_at TEXT NOT NULL,
    last_occurred_at  TEXT NOT NULL,
    related_log_ids   TEXT NOT NULL DEFAULT '[]',
    is_regression     INTEGER NOT NULL DEFAULT 0,
    assignee          TEXT,
    resolved_at       TEXT,
    created_at        TEXT NOT NULL,
    updated_at        TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS bugs_status_last ON bugs (status, last_occurred_at);

CREATE TABLE IF NOT EXISTS error_logs (
    id             TEXT PRIMARY KEY,
    event_id       TEXT NOT NULL UNIQUE,
    project_id     TEXT,
    log_level      TEXT NOT NULL
                   CHECK (log_level IN ('debug','info','warning','error','critical')),
    component      TEXT,
    message        TEXT,
    context        TEXT,
    error_type     TEXT,
    error_message  TEXT,
    stack_trace    TEXT,
    request_id     TEXT,
    workspace_id   TEXT,
    fingerprint    TEXT,
    related_bug_id TEXT REFERENCES bugs (id),
    item_type      TEXT NOT NULL DEFAULT 'event',
    created_at     TEXT NOT NULL,
    received_at    TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS error_logs_created ON error_logs (created_at);
CREATE INDEX IF NOT EXISTS error_logs_component ON error_logs (component, created_at);
CREATE INDEX IF NOT EXISTS error_logs_bug ON error_logs (related_bug_id, created_at);

CREATE TABLE IF NOT EXISTS check_ins (
    check_in_id    TEXT PRIMARY KEY,
    project_id     TEXT,
    monitor_slug   TEXT NOT NULL,
    status         TEXT NOT NULL,
    duration       REAL,
    environment    TEXT,
    release        TEXT,
    monitor_config TEXT,
    created_at     TEXT NOT NULL,
    updated_at     TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS check_ins_monitor ON check_ins (monitor_slug, created_at);

CREATE TABLE IF NOT EXISTS item_counts (
    hour      TEXT NOT NULL,  -- receive hour, UTC: 2026-11-28T13
    item_type TEXT NOT NULL,
    count     INTEGER NOT NULL,
    PRIMARY KEY (hour, item_type)
);

CREATE TABLE IF NOT EXISTS sequences (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
INSERT OR IGNORE INTO sequences (name, value) VALUES ('bug_number', 0);
CREATE TABLE IF NOT EXISTS status_changes (
    change_id  TEXT PRIMARY KEY,
    bug_id     TEXT NOT NULL REFERENCES bugs (id),
    bug_number TEXT NOT NULL,
    status     TEXT,
    assignee   TEXT,
    changed_by TEXT,
    at         TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS status_changes_bug ON status_changes (bug_id, at);
