-- 0003: the bug policy decided in one place (shim/core/policy.py). shim_ingest no longer holds
-- lists of its own: the batch carries the order of severities ("severities", lowest first) and
-- each bug signal its priority, and a bug keeps the most severe of its own severity and its new
-- events' (policy.escalated), with that one's priority. Otherwise the function of 0001, unchanged;
-- replacing it keeps its owner and grants.
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
                -- A shim older than this migration sends no order: it keeps its events in its
                -- backup log (a store outage to it, by this SQLSTATE) until it is upgraded.
                RAISE EXCEPTION 'shim_ingest: migrated by a newer shim (0003): upgrade this one'
                    USING ERRCODE = 'operator_intervention';
            END IF;
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
                    grp.first->'bug'->>'title', grp.first->'bug'->>'description',
                    grp.top->>'severity', grp.top->>'priority', 'open', grp.first->>'component',
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
                severity = CASE WHEN array_position(severities, b.severity) >= grp.rank
                                THEN b.severity ELSE excluded.severity END,
                priority = CASE WHEN array_position(severities, b.severity) >= grp.rank
                                THEN b.priority ELSE excluded.priority END,
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
