-- Version 2: grouping version 2 (shim/core/grouping_v2) without splitting the bugs of version 1.
-- bug_hashes: every hash a bug has matched, by grouping version. An event finds its bug here by
-- its version 2 hash, else (during the transition) by its version 1 hash, and the bug then
-- learns the new one. Each existing bug brings its own fingerprint (a version 1 hash).
CREATE TABLE IF NOT EXISTS bug_hashes (
    hash             TEXT PRIMARY KEY,
    bug_id           TEXT NOT NULL REFERENCES bugs (id),
    grouping_version INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS bug_hashes_bug ON bug_hashes (bug_id);
INSERT OR IGNORE INTO bug_hashes (hash, bug_id, grouping_version)
SELECT fingerprint, id, grouping_version FROM bugs;

-- When the transition from version 1 started: now, if there are bugs of version 1 to keep.
-- (A new database has none: its events never compute version 1.)
CREATE TABLE IF NOT EXISTS shim_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
INSERT OR IGNORE INTO shim_meta (key, value)
SELECT 'grouping_v2_since', strftime('%Y-%m-%dT%H:%M:%f+00:00', 'now')
WHERE EXISTS (SELECT 1 FROM bugs);

-- A bug folded into another by `shim merge`: the number of the bug it went into.
ALTER TABLE bugs ADD COLUMN merged_into TEXT;

-- Merges and unmerges applied (`shim merge`, `shim unmerge`), each once by its change id.
CREATE TABLE IF NOT EXISTS bug_merges (
    change_id  TEXT PRIMARY KEY,
    kind       TEXT NOT NULL CHECK (kind IN ('merge','unmerge')),
    bug_number TEXT NOT NULL,
    others     TEXT NOT NULL DEFAULT '[]',
    hashes     TEXT NOT NULL DEFAULT '[]',
    changed_by TEXT,
    at         TEXT NOT NULL
);
