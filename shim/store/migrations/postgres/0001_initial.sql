-- 0001: the tables of the SQLite schema, in Postgres types, and shim_ingest(), the whole write of
-- a batch in one call (so one write is one round trip and one transaction).
-- Applied by shim/store/migrate.py, which owns schema_migrations and the advisory lock; a shipped
-- file is never edited: a change is a new numbered file.
--
-- The same file builds a fresh database and adopts the tables of the in-house tracker this shim
-- replaces (seed-style `bugs` and `error_logs` without event_id, fingerprint, occurrence_count,
-- first/last_occurred_at...): every table is created if missing, then given each column it lacks;
-- older rows are filled in, never dropped (tests/fixtures/legacy_schema.sql is such a database).
-- Running it again changes nothing, which `shim migrate --sql` (pasted into Supabase) relies on.

-- On an older database most of the IF NOT EXISTS below skip, each with a notice.
SET LOCAL client_min_messages = warning;

CREATE SEQUENCE IF NOT EXISTS bug_number_seq;

CREATE TABLE IF NOT EXISTS bugs (
    id uuid PRIMARY KEY  -- uuid5 of the fingerprint (shim.store.sqlite.bug_id_for)
);
ALTER TABLE bugs
    ADD COLUMN IF NOT EXISTS bug_number        text,  -- BUG-00001, from bug_number_seq
    ADD COLUMN IF NOT EXISTS title             text,
    ADD COLUMN IF NOT EXISTS description       text,
    ADD COLUMN IF NOT EXISTS severity          text,  -- critical, high, medium, low
    ADD COLUMN IF NOT EXISTS priority          text,  -- urgent, high, medium, low
    ADD COLUMN IF NOT EXISTS status            text,  -- open, in_progress, resolved, closed
    ADD COLUMN IF NOT EXISTS component         text,
    ADD COLUMN IF NOT EXISTS workspace_id      text,
    ADD COLUMN IF NOT EXISTS error_type        text,
    ADD COLUMN IF NOT EXISTS error_message     text,
    ADD COLUMN IF NOT EXISTS stack_trace       text,
    ADD COLUMN IF NOT EXISTS fingerprint       text,
    ADD COLUMN IF NOT EXISTS grouping_version  integer,  -- 0: a bug of the older tracker
    ADD COLUMN IF NOT EXISTS occurrence_count  bigint,
    ADD COLUMN IF NOT EXISTS first_occurred_at timestamptz,
    ADD COLUMN IF NOT EXISTS last_occurred_at  timestamptz,
    ADD COLUMN IF NOT EXISTS related_log_ids   jsonb,  -- most recent error_logs ids, bounded
    ADD COLUMN IF NOT EXISTS is_regression     boolean,
    ADD COLUMN IF NOT EXISTS assignee          text,
    ADD COLUMN IF NOT EXISTS resolved_at       timestamptz,
    ADD COLUMN IF NOT EXISTS created_at        timestamptz,
    ADD COLUMN IF NOT EXISTS updated_at        timestamptz;

CREATE TABLE IF NOT EXISTS error_logs (
    id uuid PRIMARY KEY
);
ALTER TABLE error_logs
    -- SQLite's rowid: insertion order, the ``cursor`` of list_logs.
    ADD COLUMN IF NOT EXISTS seq            bigint GENERATED ALWAYS AS IDENTITY,
    ADD COLUMN IF NOT EXISTS event_id       text,
    ADD COLUMN IF NOT EXISTS project_id     text,
    ADD COLUMN IF NOT EXISTS log_level      text,  -- debug, info, warning, error, critical
    ADD COLUMN IF NOT EXISTS component      text,
    ADD COLUMN IF NOT EXISTS message        text,
    ADD COLUMN IF NOT EXISTS context        jsonb,
    ADD COLUMN IF NOT EXISTS error_type     text,
    ADD COLUMN IF NOT EXISTS error_message  text,
    ADD COLUMN IF NOT EXISTS stack_trace    text,
    ADD COLUMN IF NOT EXISTS request_id     text,
    ADD COLUMN IF NOT EXISTS workspace_id   text,
    ADD COLUMN IF NOT EXISTS fingerprint    text,
    ADD COLUMN IF NOT EXISTS related_bug_id uuid,
    ADD COLUMN IF NOT EXISTS item_type      text,
    ADD COLUMN IF NOT EXISTS created_at     timestamptz,
    ADD COLUMN IF NOT EXISTS received_at    timestamptz;

-- Columns an older table already had may have other types: make them the ones shim_ingest writes
-- (a varchar(200) title would refuse a longer one, a uuid workspace_id a tag like "ws-1").
DO $adopt$
DECLARE
    col record;
BEGIN
    FOR col IN
        SELECT table_name, column_name,
               CASE data_type WHEN 'timestamp without time zone' THEN 'timestamptz'
                              WHEN 'json' THEN 'jsonb' ELSE 'text' END AS wanted
        FROM information_schema.columns
        WHERE table_schema = current_schema() AND table_name IN ('bugs', 'error_logs')
          AND column_name NOT IN ('id', 'related_bug_id')
          AND data_type IN ('character varying', 'character', 'uuid', 'timestamp without time zone',
                            'json')
          AND column_name = ANY (ARRAY['bug_number', 'title', 'description', 'severity',
              'priority', 'status', 'component', 'workspace_id', 'error_type', 'error_message',
              'stack_trace', 'fingerprint', 'assignee', 'resolved_at', 'created_at', 'updated_at',
              'event_id', 'project_id', 'log_level', 'message', 'context', 'request_id',
              'item_type', 'received_at'])
    LOOP
        EXECUTE format('ALTER TABLE %I ALTER COLUMN %I TYPE %s USING %I::%s', col.table_name,
                       col.column_name, col.wanted, col.column_name, col.wanted);
    END LOOP;
END
$adopt$;

-- Older rows: values outside the allowed sets mapped into them, new columns filled. Each bug keeps
-- a fingerprint of its own ('legacy:' + md5 of its id: two bugs of the same title stay two), so
-- new events, grouped by stack frames, open new bugs rather than touch the older ones.
UPDATE bugs SET severity = CASE
        WHEN lower(btrim(severity)) IN ('critical', 'high', 'medium', 'low')
            THEN lower(btrim(severity))
        WHEN lower(btrim(severity)) IN ('fatal', 'blocker', 'urgent') THEN 'critical'
        WHEN lower(btrim(severity)) IN ('major', 'error', 'serious') THEN 'high'
        WHEN lower(btrim(severity)) IN ('minor', 'trivial', 'info', 'debug') THEN 'low'
        ELSE 'medium' END
WHERE severity IS NULL OR severity NOT IN ('critical', 'high', 'medium', 'low');

UPDATE bugs SET priority = CASE
        WHEN lower(btrim(priority)) IN ('urgent', 'high', 'medium', 'low')
            THEN lower(btrim(priority))
        WHEN lower(btrim(priority)) IN ('critical', 'highest', 'blocker', 'immediate', 'p0')
            THEN 'urgent'
        WHEN lower(btrim(priority)) = 'p1' THEN 'high'
        WHEN lower(btrim(priority)) IN ('normal', 'p2') THEN 'medium'
        WHEN lower(btrim(priority)) IN ('lowest', 'minor', 'p3', 'p4') THEN 'low'
        -- the shim's own rule: the priority that goes with the severity
        WHEN severity = 'critical' THEN 'urgent'
        ELSE severity END
WHERE priority IS NULL OR priority NOT IN ('urgent', 'high', 'medium', 'low');

UPDATE bugs SET status = CASE regexp_replace(lower(btrim(status)), '[\s-]+', '_', 'g')
        WHEN 'open' THEN 'open'
        WHEN 'in_progress' THEN 'in_progress'
        WHEN 'resolved' THEN 'resolved'
        WHEN 'closed' THEN 'closed'
        WHEN 'investigating' THEN 'in_progress'
        WHEN 'assigned' THEN 'in_progress'
        WHEN 'acknowledged' THEN 'in_progress'
        WHEN 'fixed' THEN 'resolved'
        WHEN 'done' THEN 'resolved'
        WHEN 'verified' THEN 'resolved'
        WHEN 'wont_fix' THEN 'closed'
        WHEN 'won''t_fix' THEN 'closed'
        WHEN 'wontfix' THEN 'closed'
        WHEN 'duplicate' THEN 'closed'
        WHEN 'invalid' THEN 'closed'
        WHEN 'ignored' THEN 'closed'
        WHEN 'archived' THEN 'closed'
        ELSE 'open' END  -- new, reopened, todo, unknown or missing
WHERE status IS NULL OR status NOT IN ('open', 'in_progress', 'resolved', 'closed');

-- A bug's occurrences are its related logs (at least the one that opened it).
WITH related AS (
    SELECT b.id, count(l.id) AS n, min(l.created_at) AS first_at, max(l.created_at) AS last_at,
           (SELECT coalesce(jsonb_agg(recent.id ORDER BY recent.at, recent.seq), '[]')
            FROM (SELECT r.id::text AS id, r.created_at AS at, r.seq FROM error_logs AS r
                  WHERE r.related_bug_id = b.id
                  ORDER BY r.created_at DESC, r.seq DESC LIMIT 20) AS recent) AS recent
    FROM bugs AS b LEFT JOIN error_logs AS l ON l.related_bug_id = b.id
    WHERE b.fingerprint IS NULL
    GROUP BY b.id
)
UPDATE bugs AS b SET
    fingerprint = 'legacy:' || md5(b.id::text),
    grouping_version = 0,
    title = coalesce(b.title, b.error_type, b.bug_number, 'untitled'),
    occurrence_count = greatest(r.n, 1),
    first_occurred_at = coalesce(r.first_at, b.created_at, now()),
    last_occurred_at = coalesce(r.last_at, b.created_at, now()),
    related_log_ids = r.recent,
    is_regression = false,
    resolved_at = CASE WHEN b.status = 'resolved'
                       THEN coalesce(b.updated_at, b.created_at, now()) END,
    created_at = coalesce(b.created_at, r.first_at, now()),
    updated_at = coalesce(b.updated_at, b.created_at, r.last_at, now())
FROM related AS r
WHERE r.id = b.id;

-- New bug numbers follow the highest one already given.
SELECT setval('bug_number_seq', max(substring(bug_number FROM '^BUG-([0-9]{1,18})$')::bigint))
FROM bugs
HAVING max(substring(bug_number FROM '^BUG-([0-9]{1,18})$')::bigint) > 0;
UPDATE bugs SET bug_number = 'BUG-' || lpad(nextval('bug_number_seq')::text, 5, '0')
WHERE bug_number IS NULL;

UPDATE error_logs SET log_level = CASE lower(btrim(log_level))
        WHEN 'debug' THEN 'debug'
        WHEN 'trace' THEN 'debug'
        WHEN 'info' THEN 'info'
        WHEN 'notice' THEN 'info'
        WHEN 'warning' THEN 'warning'
        WHEN 'warn' THEN 'warning'
        WHEN 'critical' THEN 'critical'
        WHEN 'fatal' THEN 'critical'
        ELSE 'error' END
WHERE log_level IS NULL OR log_level NOT IN ('debug', 'info', 'warning', 'error', 'critical');

-- A log's event_id is its id's hex (what a Sentry event id looks like); its fingerprint its bug's.
UPDATE error_logs AS l SET
    event_id = replace(l.id::text, '-', ''),
    fingerprint = coalesce(
        (SELECT b.fingerprint FROM bugs AS b WHERE b.id = l.related_bug_id),
        'legacy:' || md5(jsonb_build_array(l.error_type, l.component,
                                           coalesce(l.error_message, l.message))::text)),
    item_type = coalesce(l.item_type, 'event'),
    created_at = coalesce(l.created_at, now()),
    received_at = coalesce(l.received_at, l.created_at, now())
WHERE l.event_id IS NULL;

-- Now every row has them: the constraints of the contract.
ALTER TABLE bugs
    ALTER COLUMN bug_number SET NOT NULL,
    ALTER COLUMN title SET NOT NULL,
    ALTER COLUMN severity SET NOT NULL,
    ALTER COLUMN priority SET NOT NULL,
    ALTER COLUMN status SET NOT NULL,
    ALTER COLUMN status SET DEFAULT 'open',
    ALTER COLUMN fingerprint SET NOT NULL,
    ALTER COLUMN grouping_version SET NOT NULL,
    ALTER COLUMN occurrence_count SET NOT NULL,
    ALTER COLUMN occurrence_count SET DEFAULT 1,
    ALTER COLUMN first_occurred_at SET NOT NULL,
    ALTER COLUMN last_occurred_at SET NOT NULL,
    ALTER COLUMN related_log_ids SET NOT NULL,
    ALTER COLUMN related_log_ids SET DEFAULT '[]',
    ALTER COLUMN is_regression SET NOT NULL,
    ALTER COLUMN is_regression SET DEFAULT false,
    ALTER COLUMN created_at SET NOT NULL,
    ALTER COLUMN updated_at SET NOT NULL,
    DROP CONSTRAINT IF EXISTS bugs_severity_check,
    DROP CONSTRAINT IF EXISTS bugs_priority_check,
    DROP CONSTRAINT IF EXISTS bugs_status_check,
    ADD CONSTRAINT bugs_severity_check CHECK (severity IN ('critical','high','medium','low')),
    ADD CONSTRAINT bugs_priority_check CHECK (priority IN ('urgent','high','medium','low')),
    ADD CONSTRAINT bugs_status_check
        CHECK (status IN ('open','in_progress','resolved','closed'));
CREATE UNIQUE INDEX IF NOT EXISTS bugs_bug_number_key ON bugs (bug_number);
CREATE UNIQUE INDEX IF NOT EXISTS bugs_fingerprint_key ON bugs (fingerprint);
CREATE INDEX IF NOT EXISTS bugs_open_last ON bugs (last_occurred_at) WHERE status = 'open';
CREATE INDEX IF NOT EXISTS bugs_last ON bugs (last_occurred_at);

ALTER TABLE error_logs
    ALTER COLUMN event_id SET NOT NULL,
    ALTER COLUMN log_level SET NOT NULL,
    ALTER COLUMN item_type SET NOT NULL,
    ALTER COLUMN item_type SET DEFAULT 'event',
    ALTER COLUMN created_at SET NOT NULL,
    ALTER COLUMN received_at SET NOT NULL,
    DROP CONSTRAINT IF EXISTS error_logs_log_level_check,
    ADD CONSTRAINT error_logs_log_level_check
        CHECK (log_level IN ('debug','info','warning','error','critical'));
CREATE UNIQUE INDEX IF NOT EXISTS error_logs_event_id_key ON error_logs (event_id);
CREATE UNIQUE INDEX IF NOT EXISTS error_logs_seq_key ON error_logs (seq);
CREATE INDEX IF NOT EXISTS error_logs_created ON error_logs (created_at);
CREATE INDEX IF NOT EXISTS error_logs_component ON error_logs (component, created_at);
CREATE INDEX IF NOT EXISTS error_logs_bug ON error_logs (related_bug_id, created_at);

-- Deferred: shim_ingest inserts the log (to learn which events are new, race-free) before it
-- upserts the bug; the bug's id is known in advance (uuid5 of the fingerprint). An older table's
-- own foreign key on related_bug_id is replaced by this one.
DO $adopt$
DECLARE
    fk record;
BEGIN
    FOR fk IN
        SELECT c.conname FROM pg_constraint AS c
        JOIN pg_attribute AS a ON a.attrelid = c.conrelid AND a.attnum = ANY (c.conkey)
        WHERE c.conrelid = 'error_logs'::regclass AND c.contype = 'f'
          AND a.attname = 'related_bug_id'
    LOOP
        EXECUTE format('ALTER TABLE error_logs DROP CONSTRAINT %I', fk.conname);
    END LOOP;
END
$adopt$;
ALTER TABLE error_logs ADD CONSTRAINT error_logs_related_bug_id_fkey
    FOREIGN KEY (related_bug_id) REFERENCES bugs (id) DEFERRABLE INITIALLY DEFERRED;

CREATE TABLE IF NOT EXISTS check_ins (
    check_in_id    text PRIMARY KEY,  -- as the SDK sent it
    project_id     text,
    monitor_slug   text NOT NULL,
    status         text NOT NULL,
    duration       double precision,
    environment    text,
    release        text,
    monitor_config jsonb,
    created_at     timestamptz NOT NULL,
    updated_at     timestamptz NOT NULL
);
CREATE INDEX IF NOT EXISTS check_ins_monitor ON check_ins (monitor_slug, created_at);

CREATE TABLE IF NOT EXISTS item_counts (
    hour      timestamptz NOT NULL,  -- receive hour, truncated in UTC
    item_type text NOT NULL,
    count     bigint NOT NULL,
    PRIMARY KEY (hour, item_type)
);

CREATE TABLE IF NOT EXISTS status_changes (
    change_id  text PRIMARY KEY,
    bug_id     uuid NOT NULL REFERENCES bugs (id),
    bug_number text NOT NULL,
    status     text,
    assignee   text,
    changed_by text,
    at         timestamptz NOT NULL
);
CREATE INDEX IF NOT EXISTS status_changes_bug ON status_changes (bug_id, at);

-- Supabase exposes the public schema through its REST API: with RLS on and no policies, the anon
-- and authenticated roles see nothing; the shim connects as the owner (or service role). Policies
-- an older database already has are left as they are.
ALTER TABLE bugs ENABLE ROW LEVEL SECURITY;
ALTER TABLE error_logs ENABLE ROW LEVEL SECURITY;
ALTER TABLE check_ins ENABLE ROW LEVEL SECURITY;
ALTER TABLE item_counts ENABLE ROW LEVEL SECURITY;
ALTER TABLE status_changes ENABLE ROW LEVEL SECURITY;
ALTER TABLE schema_migrations ENABLE ROW LEVEL SECURITY;

-- shim_ingest(batch): the write of SQLiteStore._write, in one call.
-- batch = {"related_logs": N, "batches": [{"received_at", "error_logs": [{..., "bug": {...} | null,
--          "bug_id"}], "check_ins": [...], "item_counts": {type: n}, "status_changes": [...]}]}
-- Returns, per batch, per error_log: [duplicate, bug_id | null, bug_number | null].
-- Events go in runs; a batch with status changes is a run of its own whose changes apply after its
-- events, so "resolved, then it happened again" keeps its order (as in the SQLite store).
CREATE OR REPLACE FUNCTION shim_ingest(batch jsonb) RETURNS jsonb
LANGUAGE plpgsql
SET search_path FROM CURRENT
AS $fn$
DECLARE
    related_limit integer := coalesce((batch->>'related_logs')::integer, 20);
    severities    text[]  := ARRAY['low', 'medium', 'high', 'critical'];
    priorities    text[]  := ARRAY['low', 'medium', 'high', 'urgent'];
    run           record;
    grp           record;
    item          record;
    fresh         jsonb;  -- the run's error_logs really inserted: {"<batch>.<row>": fingerprint}
    bug_of        jsonb;  -- fingerprint -> [bug id, bug number], for this run
    new_number    text;
    sev           text;
    found_id      uuid;
    found_number  text;
    target        uuid;
    inserted      integer;
    results       jsonb := '[]';
BEGIN
    -- One writer at a time, like SQLite's BEGIN IMMEDIATE: writers from several processes insert
    -- event ids and upsert bugs in arrival order, and two such orders would deadlock each other;
    -- serialised, bug numbers also stay gapless and in arrival order. Released at commit.
    PERFORM pg_advisory_xact_lock(1936222574);  -- migrate.LOCK_KEY + 1
    FOR run IN
        WITH listed AS (
            SELECT b.value AS body, b.ordinality AS ord,
                   jsonb_array_length(coalesce(b.value->'status_changes', '[]')) > 0 AS changes
            FROM jsonb_array_elements(batch->'batches') WITH ORDINALITY AS b
        ), numbered AS (
            SELECT body, ord, changes,
                   coalesce(count(*) FILTER (WHERE changes) OVER (
                       ORDER BY ord ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING), 0) AS prior
            FROM listed
        )
        SELECT prior * 2 + changes::integer AS run_no, jsonb_agg(body ORDER BY ord) AS bodies
        FROM numbered GROUP BY 1 ORDER BY 1
    LOOP
        -- 1. error_logs: the first of each event_id not yet stored. What the INSERT returns is
        -- what is new, even with another process inserting the same event at the same time.
        WITH src AS (
            SELECT b.ordinality AS bo, l.ordinality AS lo, b.value->>'received_at' AS received_at,
                   l.value AS log
            FROM jsonb_array_elements(run.bodies) WITH ORDINALITY AS b
            CROSS JOIN LATERAL jsonb_array_elements(coalesce(b.value->'error_logs', '[]'))
                WITH ORDINALITY AS l
        ), firsts AS (
            SELECT DISTINCT ON (log->>'event_id') * FROM src ORDER BY log->>'event_id', bo, lo
        ), ins AS (
            INSERT INTO error_logs (id, event_id, project_id, log_level, component, message,
                context, error_type, error_message, stack_trace, request_id, workspace_id,
                fingerprint, related_bug_id, item_type, created_at, received_at)
            SELECT (log->>'id')::uuid, log->>'event_id', log->>'project_id', log->>'log_level',
                   log->>'component', log->>'message', log->'context', log->>'error_type',
                   log->>'error_message', log->>'stack_trace', log->>'request_id',
                   log->>'workspace_id', log->>'fingerprint',
                   CASE WHEN jsonb_typeof(log->'bug') = 'object' THEN (log->>'bug_id')::uuid END,
                   coalesce(log->>'item_type', 'event'), (log->>'created_at')::timestamptz,
                   received_at::timestamptz
            FROM firsts ORDER BY bo, lo
            ON CONFLICT (event_id) DO NOTHING
            RETURNING event_id
        )
        SELECT coalesce(jsonb_object_agg(f.bo || '.' || f.lo, f.log->>'fingerprint'), '{}')
        INTO fresh
        FROM firsts AS f JOIN ins ON ins.event_id = f.log->>'event_id';

        -- 2. one upsert per fingerprint, in the order of each one's first new event (so bug
        -- numbers follow arrival). A number is drawn only for a fingerprint not seen yet; if
        -- another process opens that bug first, ON CONFLICT makes this an update (a gap).
        bug_of := '{}';
        FOR grp IN
            WITH src AS (
                SELECT b.ordinality AS bo, l.ordinality AS lo,
                       (b.value->>'received_at')::timestamptz AS received_at, l.value AS log
                FROM jsonb_array_elements(run.bodies) WITH ORDINALITY AS b
                CROSS JOIN LATERAL jsonb_array_elements(coalesce(b.value->'error_logs', '[]'))
                    WITH ORDINALITY AS l
            )
            SELECT log->>'fingerprint' AS fp,
                   (array_agg(log ORDER BY bo, lo))[1] AS first,
                   (array_agg(received_at ORDER BY bo, lo))[1] AS first_received,
                   count(*) AS n,
                   min((log->>'created_at')::timestamptz) AS first_at,
                   max((log->>'created_at')::timestamptz) AS last_at,
                   max(received_at) AS updated_at,
                   jsonb_agg(log->'id' ORDER BY bo, lo) AS new_ids,
                   max(array_position(severities, log->'bug'->>'severity')) AS rank
            FROM src
            WHERE jsonb_typeof(log->'bug') = 'object' AND fresh ? (bo || '.' || lo)
            GROUP BY 1
            ORDER BY min(ARRAY[bo, lo])
        LOOP
            sev := severities[grp.rank];
            new_number := NULL;
            IF NOT EXISTS (SELECT 1 FROM bugs WHERE fingerprint = grp.fp) THEN
                new_number := nextval('bug_number_seq');
                new_number := 'BUG-' || CASE WHEN length(new_number) < 5
                                             THEN lpad(new_number, 5, '0') ELSE new_number END;
            END IF;
            INSERT INTO bugs AS b (id, bug_number, title, description, severity, priority, status,
                component, workspace_id, error_type, error_message, stack_trace, fingerprint,
                grouping_version, occurrence_count, first_occurred_at, last_occurred_at,
                related_log_ids, created_at, updated_at)
            VALUES ((grp.first->>'bug_id')::uuid,
                    -- never stored: without a new number the fingerprint exists, so this updates
                    coalesce(new_number, 'BUG-pending-' || (grp.first->>'bug_id')),
                    grp.first->'bug'->>'title', grp.first->'bug'->>'description', sev,
                    priorities[grp.rank], 'open', grp.first->>'component',
                    grp.first->>'workspace_id', grp.first->>'error_type',
                    grp.first->>'error_message', grp.first->>'stack_trace', grp.fp,
                    (grp.first->'bug'->>'grouping_version')::integer, grp.n, grp.first_at,
                    grp.last_at,
                    (SELECT coalesce(jsonb_agg(v ORDER BY o), '[]')
                     FROM jsonb_array_elements(grp.new_ids) WITH ORDINALITY AS t (v, o)
                     WHERE related_limit <= 0 OR o > jsonb_array_length(grp.new_ids) - related_limit),
                    grp.first_received, grp.updated_at)
            ON CONFLICT (fingerprint) DO UPDATE SET
                occurrence_count = b.occurrence_count + excluded.occurrence_count,
                first_occurred_at = least(b.first_occurred_at, excluded.first_occurred_at),
                last_occurred_at = greatest(b.last_occurred_at, excluded.last_occurred_at),
                related_log_ids = (
                    SELECT coalesce(jsonb_agg(v ORDER BY o), '[]')
                    FROM jsonb_array_elements(b.related_log_ids || excluded.related_log_ids)
                        WITH ORDINALITY AS t (v, o)
                    WHERE related_limit <= 0
                       OR o > jsonb_array_length(b.related_log_ids || excluded.related_log_ids)
                              - related_limit),
                severity = severities[greatest(array_position(severities, b.severity), grp.rank)],
                priority = priorities[greatest(array_position(severities, b.severity), grp.rank)],
                status = CASE WHEN b.status = 'resolved' THEN 'open' ELSE b.status END,
                is_regression = b.is_regression OR b.status = 'resolved',
                updated_at = excluded.updated_at
            RETURNING b.id, b.bug_number INTO found_id, found_number;
            IF found_id <> (grp.first->>'bug_id')::uuid THEN
                -- a bug made by something other than shim_ingest, with an id of its own
                UPDATE error_logs SET related_bug_id = found_id
                WHERE related_bug_id = (grp.first->>'bug_id')::uuid AND fingerprint = grp.fp;
            END IF;
            bug_of := bug_of || jsonb_build_object(grp.fp, jsonb_build_array(found_id, found_number));
        END LOOP;

        -- 3. check-ins, one at a time: a later one with the same id updates the earlier.
        FOR item IN
            SELECT c.value AS c, b.value->>'received_at' AS received_at
            FROM jsonb_array_elements(run.bodies) WITH ORDINALITY AS b
            CROSS JOIN LATERAL jsonb_array_elements(coalesce(b.value->'check_ins', '[]'))
                WITH ORDINALITY AS c
            ORDER BY b.ordinality, c.ordinality
        LOOP
            INSERT INTO check_ins AS k (check_in_id, project_id, monitor_slug, status, duration,
                environment, release, monitor_config, created_at, updated_at)
            VALUES (item.c->>'check_in_id', item.c->>'project_id', item.c->>'monitor_slug',
                    item.c->>'status', (item.c->>'duration')::double precision,
                    item.c->>'environment', item.c->>'release',
                    CASE WHEN jsonb_typeof(item.c->'monitor_config') = 'object'
                              AND item.c->'monitor_config' <> '{}'
                         THEN item.c->'monitor_config' END,
                    (item.c->>'created_at')::timestamptz, item.received_at::timestamptz)
            ON CONFLICT (check_in_id) DO UPDATE SET status = excluded.status,
                duration = coalesce(excluded.duration, k.duration),
                environment = coalesce(excluded.environment, k.environment),
                release = coalesce(excluded.release, k.release),
                monitor_config = coalesce(excluded.monitor_config, k.monitor_config),
                updated_at = excluded.updated_at;
        END LOOP;

        -- 4. item counts by receive hour (UTC), summed first so one statement touches a row once.
        INSERT INTO item_counts AS ic (hour, item_type, count)
        SELECT date_trunc('hour', (b.value->>'received_at')::timestamptz, 'UTC'), c.key,
               sum((c.value)::bigint)
        FROM jsonb_array_elements(run.bodies) AS b
        CROSS JOIN LATERAL jsonb_each(coalesce(b.value->'item_counts', '{}')) AS c
        GROUP BY 1, 2
        ON CONFLICT (hour, item_type) DO UPDATE SET count = ic.count + excluded.count;

        -- 5. what happened to each error_log, per batch.
        results := results || (
            SELECT coalesce(jsonb_agg(
                (SELECT coalesce(jsonb_agg(
                    CASE WHEN NOT fresh ? (b.ordinality || '.' || l.ordinality)
                         THEN jsonb_build_array(true, NULL, NULL)
                         WHEN jsonb_typeof(l.value->'bug') = 'object'
                         THEN jsonb_build_array(false, bug_of->(l.value->>'fingerprint')->0,
                                                bug_of->(l.value->>'fingerprint')->1)
                         ELSE jsonb_build_array(false, NULL, NULL) END
                    ORDER BY l.ordinality), '[]')
                 FROM jsonb_array_elements(coalesce(b.value->'error_logs', '[]'))
                     WITH ORDINALITY AS l)
                ORDER BY b.ordinality), '[]')
            FROM jsonb_array_elements(run.bodies) WITH ORDINALITY AS b);

        -- 6. a run of one batch with status changes: apply them, each change id once.
        IF run.run_no % 2 = 1 THEN
            FOR item IN
                SELECT s.value AS c
                FROM jsonb_array_elements(run.bodies->0->'status_changes') WITH ORDINALITY AS s
                ORDER BY s.ordinality
            LOOP
                SELECT id INTO target FROM bugs WHERE bug_number = item.c->>'bug_number';
                CONTINUE WHEN NOT FOUND;  -- the bug's events are not in this database
                INSERT INTO status_changes (change_id, bug_id, bug_number, status, assignee,
                    changed_by, at)
                VALUES (item.c->>'change_id', target, item.c->>'bug_number', item.c->>'status',
                        item.c->>'assignee', item.c->>'by', (item.c->>'at')::timestamptz)
                ON CONFLICT (change_id) DO NOTHING;
                GET DIAGNOSTICS inserted = ROW_COUNT;
                CONTINUE WHEN inserted = 0;
                IF item.c->>'status' IS NOT NULL THEN
                    UPDATE bugs SET status = item.c->>'status',
                        updated_at = (item.c->>'at')::timestamptz,
                        resolved_at = CASE WHEN item.c->>'status' = 'resolved'
                                           THEN (item.c->>'at')::timestamptz ELSE resolved_at END,
                        is_regression = CASE WHEN item.c->>'status' IN ('resolved', 'closed')
                                             THEN false ELSE is_regression END
                    WHERE id = target;
                END IF;
                IF item.c->>'assignee' IS NOT NULL THEN
                    UPDATE bugs SET assignee = nullif(item.c->>'assignee', ''),
                        updated_at = (item.c->>'at')::timestamptz
                    WHERE id = target;
                END IF;
            END LOOP;
        END IF;
    END LOOP;
    RETURN results;
END
$fn$;

-- Only the shim may call the write function: functions are executable by PUBLIC by default, and on
-- Supabase the anon and authenticated roles (the public keys) would otherwise reach it over RPC.
REVOKE EXECUTE ON FUNCTION shim_ingest(jsonb) FROM PUBLIC;
DO $grants$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'anon') THEN
        REVOKE EXECUTE ON FUNCTION shim_ingest(jsonb) FROM anon;
    END IF;
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'authenticated') THEN
        REVOKE EXECUTE ON FUNCTION shim_ingest(jsonb) FROM authenticated;
    END IF;
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'service_role') THEN
        GRANT EXECUTE ON FUNCTION shim_ingest(jsonb) TO service_role;
    END IF;
END
$grants$;
