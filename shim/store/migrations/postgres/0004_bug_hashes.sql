-- 0004: grouping version 2 (shim/core/grouping_v2) without splitting the bugs of version 1.
-- bug_hashes: every hash a bug has matched, by grouping version (a hash belongs to one bug). An
-- event finds its bug by its version 2 hash (its fingerprint), else, during the transition, by
-- its version 1 hash ("fingerprint_v1" in the batch), and the bug then learns the new hash.
-- Each existing bug brings its own fingerprint, a version 1 hash.
CREATE TABLE IF NOT EXISTS bug_hashes (
    hash             text PRIMARY KEY,
    bug_id           uuid NOT NULL REFERENCES bugs (id),
    grouping_version integer NOT NULL
);
CREATE INDEX IF NOT EXISTS bug_hashes_bug ON bug_hashes (bug_id);
ALTER TABLE bug_hashes ENABLE ROW LEVEL SECURITY;  -- as every table (0001)
INSERT INTO bug_hashes (hash, bug_id, grouping_version)
SELECT fingerprint, id, grouping_version FROM bugs
ON CONFLICT (hash) DO NOTHING;

-- When the transition from version 1 started: now, if there are bugs of version 1 to keep (a new
-- database has none, and its events never compute version 1).
CREATE TABLE IF NOT EXISTS shim_meta (key text PRIMARY KEY, value text NOT NULL);
ALTER TABLE shim_meta ENABLE ROW LEVEL SECURITY;
INSERT INTO shim_meta (key, value)
SELECT 'grouping_v2_since', to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"+00:00"')
WHERE EXISTS (SELECT 1 FROM bugs)
ON CONFLICT (key) DO NOTHING;

-- A bug folded into another by `shim merge`: the number of the bug it went into.
ALTER TABLE bugs ADD COLUMN IF NOT EXISTS merged_into text;

-- Merges and unmerges applied (`shim merge`, `shim unmerge`), each once by its change id.
CREATE TABLE IF NOT EXISTS bug_merges (
    change_id  text PRIMARY KEY,
    kind       text NOT NULL CHECK (kind IN ('merge', 'unmerge')),
    bug_number text NOT NULL,
    others     jsonb NOT NULL DEFAULT '[]',
    hashes     jsonb NOT NULL DEFAULT '[]',
    changed_by text,
    at         timestamptz NOT NULL
);
ALTER TABLE bug_merges ENABLE ROW LEVEL SECURITY;

-- The most recent logs of a bug, oldest first, as events append them (after a merge or unmerge).
CREATE OR REPLACE FUNCTION shim_keep_recent_logs(target uuid, related_limit integer)
RETURNS void
LANGUAGE sql
SET search_path FROM CURRENT
AS $fn$
    UPDATE bugs SET related_log_ids = (
        SELECT coalesce(jsonb_agg(to_jsonb(r.id::text) ORDER BY r.created_at, r.id), '[]')
        FROM (SELECT id, created_at FROM error_logs WHERE related_bug_id = target
              ORDER BY created_at DESC, id DESC LIMIT related_limit) AS r)
    WHERE id = target;
$fn$;

-- shim_merge(change, related_limit): an operator's merge or unmerge (a BugMerge), once by its
-- change id; the same as shim/store/sqlite_merge.py. A merge folds each other bug into the first:
-- its hashes, logs, count and times; the other bug stays, marked merged_into, with no count of
-- its own. An unmerge moves each hash, with the logs of that fingerprint, out of the bug: back to
-- the bug whose own fingerprint it is, or else to a new bug.
CREATE OR REPLACE FUNCTION shim_merge(change jsonb, related_limit integer) RETURNS void
LANGUAGE plpgsql
SET search_path FROM CURRENT
AS $fn$
DECLARE
    severities text[] := ARRAY['low', 'medium', 'high', 'critical'];
    changed_at timestamptz := (change->>'at')::timestamptz;
    bug        bugs%ROWTYPE;
    other      bugs%ROWTYPE;
    back       bugs%ROWTYPE;
    number     text;
    fp         text;
    version    integer;
    target     uuid;
    moved      integer;
    inserted   integer;
BEGIN
    INSERT INTO bug_merges (change_id, kind, bug_number, others, hashes, changed_by, at)
    VALUES (change->>'change_id', change->>'kind', change->>'bug_number',
            coalesce(change->'others', '[]'), coalesce(change->'hashes', '[]'), change->>'by', changed_at)
    ON CONFLICT (change_id) DO NOTHING;
    GET DIAGNOSTICS inserted = ROW_COUNT;
    IF inserted = 0 THEN
        RETURN;
    END IF;
    SELECT * INTO bug FROM bugs WHERE bug_number = change->>'bug_number';
    IF NOT FOUND OR bug.merged_into IS NOT NULL THEN
        RETURN;  -- its events are not in this database, or it went into another meanwhile
    END IF;
    IF change->>'kind' = 'merge' THEN
        FOR number IN SELECT jsonb_array_elements_text(coalesce(change->'others', '[]')) LOOP
            SELECT * INTO other FROM bugs WHERE bug_number = number;
            CONTINUE WHEN NOT FOUND OR other.id = bug.id OR other.merged_into IS NOT NULL;
            UPDATE bug_hashes SET bug_id = bug.id WHERE bug_id = other.id;
            UPDATE error_logs SET related_bug_id = bug.id WHERE related_bug_id = other.id;
            UPDATE bugs SET occurrence_count = occurrence_count + other.occurrence_count,
                first_occurred_at = least(first_occurred_at, other.first_occurred_at),
                last_occurred_at = greatest(last_occurred_at, other.last_occurred_at),
                severity = CASE WHEN array_position(severities, other.severity)
                                     > array_position(severities, severity)
                                THEN other.severity ELSE severity END,
                priority = CASE WHEN array_position(severities, other.severity)
                                     > array_position(severities, severity)
                                THEN other.priority ELSE priority END,
                updated_at = changed_at
            WHERE id = bug.id;
            UPDATE bugs SET merged_into = bug.bug_number, occurrence_count = 0,
                related_log_ids = '[]', updated_at = changed_at
            WHERE id = other.id;
        END LOOP;
        PERFORM shim_keep_recent_logs(bug.id, related_limit);
    ELSIF change->>'kind' = 'unmerge' THEN
        FOR fp IN SELECT jsonb_array_elements_text(coalesce(change->'hashes', '[]')) LOOP
            SELECT grouping_version INTO version FROM bug_hashes
            WHERE hash = fp AND bug_id = bug.id;
            CONTINUE WHEN NOT FOUND OR fp = bug.fingerprint;
            SELECT * INTO back FROM bugs WHERE fingerprint = fp;
            IF FOUND THEN  -- the bug this hash was merged from comes back
                target := back.id;
                UPDATE bugs SET merged_into = NULL, updated_at = changed_at WHERE id = target;
            ELSE
                target := (change->'new_ids'->>fp)::uuid;
                number := nextval('bug_number_seq');
                number := 'BUG-' || CASE WHEN length(number) < 5 THEN lpad(number, 5, '0')
                                         ELSE number END;
                INSERT INTO bugs (id, bug_number, title, description, severity, priority, status,
                    component, workspace_id, error_type, error_message, stack_trace, fingerprint,
                    grouping_version, occurrence_count, first_occurred_at, last_occurred_at,
                    related_log_ids, created_at, updated_at)
                SELECT target, number, title, description, severity, priority, 'open', component,
                       workspace_id, error_type, error_message, stack_trace, fp, version, 0,
                       first_occurred_at, last_occurred_at, '[]', changed_at, changed_at
                FROM bugs WHERE id = bug.id;
            END IF;
            UPDATE bug_hashes SET bug_id = target WHERE hash = fp;
            UPDATE error_logs SET related_bug_id = target
            WHERE related_bug_id = bug.id AND fingerprint = fp;
            GET DIAGNOSTICS moved = ROW_COUNT;
            UPDATE bugs AS b SET occurrence_count = s.n,
                first_occurred_at = coalesce(s.first_at, b.first_occurred_at),
                last_occurred_at = coalesce(s.last_at, b.last_occurred_at), updated_at = changed_at
            FROM (SELECT count(*) AS n, min(created_at) AS first_at, max(created_at) AS last_at
                  FROM error_logs WHERE related_bug_id = target) AS s
            WHERE b.id = target;
            UPDATE bugs SET occurrence_count = greatest(occurrence_count - moved, 0),
                updated_at = changed_at
            WHERE id = bug.id;
            PERFORM shim_keep_recent_logs(target, related_limit);
            PERFORM shim_keep_recent_logs(bug.id, related_limit);
        END LOOP;
    END IF;
END
$fn$;

-- shim_ingest: the function of 0003 with each event's bug found through bug_hashes rather than
-- bugs.fingerprint. Per run, each fingerprint's bug is decided by its first event: the bug of
-- that hash, else the bug of that event's version 1 hash, else a new bug (of id uuid5 of the
-- fingerprint, as before). Events then count towards that bug by its id, and a bug found by a
-- version 1 hash learns the fingerprint. The same as SQLiteStore._upsert_bugs. A batch with
-- merges is a run of its own, like one with status changes, applied after them (shim_merge).
CREATE OR REPLACE FUNCTION shim_ingest(batch jsonb) RETURNS jsonb
LANGUAGE plpgsql
SET search_path FROM CURRENT
AS $fn$
DECLARE
    related_limit integer := coalesce((batch->>'related_logs')::integer, 20);
    -- The bug policy's order of severities, lowest first, as the batch carries it.
    severities    text[]  := ARRAY(SELECT jsonb_array_elements_text(batch->'severities'));
    run           record;
    grp           record;
    item          record;
    fresh         jsonb;  -- the run's error_logs really inserted: {"<batch>.<row>": fingerprint}
    bug_of        jsonb;  -- fingerprint -> [bug id, bug number], for this run
    target_of     jsonb;  -- fingerprint -> [bug id, learns], for fingerprints with a bug already
    new_number    text;
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
                   jsonb_array_length(coalesce(b.value->'status_changes', '[]'))
                   + jsonb_array_length(coalesce(b.value->'merges', '[]')) > 0 AS changes
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
        -- 0. each fingerprint's bug, decided by its first event in the run: the bug of the
        -- hash; else the bug of the event's version 1 hash (which then learns the fingerprint),
        -- also when an earlier event of this run opens it; else none yet (a new bug).
        WITH firsts AS (
            SELECT DISTINCT ON (l.value->>'fingerprint') l.value->>'fingerprint' AS fp,
                   l.value->>'fingerprint_v1' AS v1, l.value->>'bug_id' AS bug_id,
                   ARRAY[b.ordinality, l.ordinality] AS place
            FROM jsonb_array_elements(run.bodies) WITH ORDINALITY AS b
            CROSS JOIN LATERAL jsonb_array_elements(coalesce(b.value->'error_logs', '[]'))
                WITH ORDINALITY AS l
            WHERE jsonb_typeof(l.value->'bug') = 'object'
            ORDER BY l.value->>'fingerprint', b.ordinality, l.ordinality
        )
        SELECT coalesce(jsonb_object_agg(f.fp, jsonb_build_array(t.bug_id, t.learns)), '{}')
        INTO target_of
        FROM firsts AS f
        CROSS JOIN LATERAL (
            SELECT coalesce(h2.bug_id, h1.bug_id, e.bug_id::uuid) AS bug_id,
                   h2.bug_id IS NULL AS learns
            FROM (SELECT NULL) AS one
            LEFT JOIN bug_hashes AS h2 ON h2.hash = f.fp
            LEFT JOIN bug_hashes AS h1 ON h1.hash = f.v1
            LEFT JOIN firsts AS e ON e.fp = f.v1 AND e.place < f.place
        ) AS t
        WHERE t.bug_id IS NOT NULL;

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
                   CASE WHEN jsonb_typeof(log->'bug') = 'object'
                        THEN coalesce((target_of->(log->>'fingerprint')->>0)::uuid,
                                      (log->>'bug_id')::uuid) END,
                   coalesce(log->>'item_type', 'event'), (log->>'created_at')::timestamptz,
                   received_at::timestamptz
            FROM firsts ORDER BY bo, lo
            ON CONFLICT (event_id) DO NOTHING
            RETURNING event_id
        )
        SELECT coalesce(jsonb_object_agg(f.bo || '.' || f.lo, f.log->>'fingerprint'), '{}')
        INTO fresh
        FROM firsts AS f JOIN ins ON ins.event_id = f.log->>'event_id';

        -- 2. one upsert per bug, in the order of each one's first new event (so bug numbers
        -- follow arrival). A number is drawn only for a bug not there yet: its id is uuid5 of
        -- its fingerprint (the "bug_id" each event carries), the upsert's conflict target.
        bug_of := '{}';
        FOR grp IN
            WITH src AS (
                SELECT b.ordinality AS bo, l.ordinality AS lo,
                       (b.value->>'received_at')::timestamptz AS received_at, l.value AS log,
                       target_of->(l.value->>'fingerprint') AS known_bug
                FROM jsonb_array_elements(run.bodies) WITH ORDINALITY AS b
                CROSS JOIN LATERAL jsonb_array_elements(coalesce(b.value->'error_logs', '[]'))
                    WITH ORDINALITY AS l
            )
            SELECT coalesce((known_bug->>0)::uuid, (log->>'bug_id')::uuid) AS bug_id,
                   array_agg(DISTINCT log->>'fingerprint') AS fps,
                   -- [hash, grouping version] of the hashes the bug learns
                   coalesce(jsonb_agg(DISTINCT jsonb_build_array(log->>'fingerprint',
                                                                 log->'bug'->'grouping_version'))
                            FILTER (WHERE (known_bug->>1)::boolean), '[]') AS learned,
                   (array_agg(log ORDER BY bo, lo))[1] AS first,
                   (array_agg(received_at ORDER BY bo, lo))[1] AS first_received,
                   count(*) AS n,
                   min((log->>'created_at')::timestamptz) AS first_at,
                   max((log->>'created_at')::timestamptz) AS last_at,
                   max(received_at) AS updated_at,
                   jsonb_agg(log->'id' ORDER BY bo, lo) AS new_ids,
                   max(array_position(severities, log->'bug'->>'severity')) AS rank,
                   -- the most severe signal (the first of equals): its severity and priority
                   (array_agg(log->'bug' ORDER BY array_position(severities,
                       log->'bug'->>'severity') DESC, bo, lo))[1] AS top
            FROM src
            WHERE jsonb_typeof(log->'bug') = 'object' AND fresh ? (bo || '.' || lo)
            GROUP BY 1
            ORDER BY min(ARRAY[bo, lo])
        LOOP
            IF grp.rank IS NULL THEN
                -- A shim older than 0003 sends no order: it keeps its events in its backup log
                -- (a store outage to it, by this SQLSTATE) until it is upgraded.
                RAISE EXCEPTION 'shim_ingest: migrated by a newer shim (0003): upgrade this one'
                    USING ERRCODE = 'operator_intervention';
            END IF;
            new_number := NULL;
            IF NOT EXISTS (SELECT 1 FROM bugs WHERE id = grp.bug_id) THEN
                new_number := nextval('bug_number_seq');
                new_number := 'BUG-' || CASE WHEN length(new_number) < 5
                                             THEN lpad(new_number, 5, '0') ELSE new_number END;
            END IF;
            INSERT INTO bugs AS b (id, bug_number, title, description, severity, priority, status,
                component, workspace_id, error_type, error_message, stack_trace, fingerprint,
                grouping_version, occurrence_count, first_occurred_at, last_occurred_at,
                related_log_ids, created_at, updated_at)
            VALUES (grp.bug_id,
                    -- never stored: without a new number the bug exists, so this updates
                    coalesce(new_number, 'BUG-pending-' || grp.bug_id),
                    grp.first->'bug'->>'title', grp.first->'bug'->>'description',
                    grp.top->>'severity', grp.top->>'priority', 'open', grp.first->>'component',
                    grp.first->>'workspace_id', grp.first->>'error_type',
                    grp.first->>'error_message', grp.first->>'stack_trace',
                    grp.first->>'fingerprint',
                    (grp.first->'bug'->>'grouping_version')::integer, grp.n, grp.first_at,
                    grp.last_at,
                    (SELECT coalesce(jsonb_agg(v ORDER BY o), '[]')
                     FROM jsonb_array_elements(grp.new_ids) WITH ORDINALITY AS t (v, o)
                     WHERE related_limit <= 0 OR o > jsonb_array_length(grp.new_ids) - related_limit),
                    grp.first_received, grp.updated_at)
            ON CONFLICT (id) DO UPDATE SET
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
                severity = CASE WHEN array_position(severities, b.severity) >= grp.rank
                                THEN b.severity ELSE excluded.severity END,
                priority = CASE WHEN array_position(severities, b.severity) >= grp.rank
                                THEN b.priority ELSE excluded.priority END,
                status = CASE WHEN b.status = 'resolved' THEN 'open' ELSE b.status END,
                is_regression = b.is_regression OR b.status = 'resolved',
                updated_at = excluded.updated_at
            RETURNING b.id, b.bug_number INTO found_id, found_number;
            -- A new bug's first hash, and the hashes a bug found by version 1 learns.
            IF new_number IS NOT NULL THEN
                INSERT INTO bug_hashes (hash, bug_id, grouping_version)
                VALUES (grp.first->>'fingerprint', found_id,
                        (grp.first->'bug'->>'grouping_version')::integer)
                ON CONFLICT (hash) DO NOTHING;
                IF (grp.first->'bug'->>'grouping_version')::integer < 2 THEN
                    -- A bug of version 1 in a database that had none (a restore of an older
                    -- backup log): the transition starts now, or its repeats would open new bugs.
                    INSERT INTO shim_meta (key, value)
                    VALUES ('grouping_v2_since', to_char(now() AT TIME ZONE 'UTC',
                                                         'YYYY-MM-DD"T"HH24:MI:SS.US"+00:00"'))
                    ON CONFLICT (key) DO NOTHING;
                END IF;
            END IF;
            IF jsonb_array_length(grp.learned) > 0 THEN
                INSERT INTO bug_hashes (hash, bug_id, grouping_version)
                SELECT h->>0, found_id, (h->>1)::integer FROM jsonb_array_elements(grp.learned) AS h
                ON CONFLICT (hash) DO NOTHING;
            END IF;
            SELECT bug_of || coalesce(jsonb_object_agg(fp, jsonb_build_array(found_id,
                                                                              found_number)), '{}')
            INTO bug_of FROM unnest(grp.fps) AS fp;
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
            -- then its merges and unmerges (shim_merge), each change id once
            FOR item IN
                SELECT m.value AS c
                FROM jsonb_array_elements(coalesce(run.bodies->0->'merges', '[]'))
                    WITH ORDINALITY AS m
                ORDER BY m.ordinality
            LOOP
                PERFORM shim_merge(item.c, related_limit);
            END LOOP;
        END IF;
    END LOOP;
    RETURN results;
END
$fn$;
