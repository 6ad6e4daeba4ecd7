-- 0005: retention (SHIM_RETENTION_DAYS). shim_prune deletes, in one small batch per call, the
-- error_logs rows older than a cutoff that no bug needs, and the check-ins older than it but a
-- monitor's latest; shim_take_lease lets one process of many run it at a time.
--
-- A bug keeps its first event, its latest event and each event that reopened it (the first one
-- received after each time it was resolved); its counts, first and last seen are never touched.
-- The batch is found through error_logs_created and each candidate's neighbours through
-- error_logs_bug, so a call holds its row locks briefly and never scans a bug's events.

CREATE TABLE IF NOT EXISTS shim_leases (
    name   text PRIMARY KEY,
    holder text NOT NULL,
    until  timestamptz NOT NULL
);
ALTER TABLE shim_leases ENABLE ROW LEVEL SECURITY;

-- True when ``holder`` holds the lease ``name`` for the next ``seconds`` (it was free, expired,
-- or already its own).
CREATE OR REPLACE FUNCTION shim_take_lease(lease text, holder text, seconds double precision)
RETURNS boolean
LANGUAGE plpgsql
SET search_path FROM CURRENT
AS $fn$
DECLARE
    taken integer;
BEGIN
    INSERT INTO shim_leases AS l (name, holder, until)
    VALUES (lease, holder, now() + make_interval(secs => seconds))
    ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, until = excluded.until
        WHERE l.until < now() OR l.holder = excluded.holder;
    GET DIAGNOSTICS taken = ROW_COUNT;
    RETURN taken = 1;
END
$fn$;

-- The error_logs rows older than ``cutoff`` that no bug needs (``keep``: the events that reopened
-- a bug), oldest first, at most ``lim`` (NULL: all).
CREATE OR REPLACE FUNCTION shim_prunable_logs(cutoff timestamptz, keep uuid[], lim bigint)
RETURNS SETOF uuid
LANGUAGE sql STABLE
SET search_path FROM CURRENT
AS $fn$
    SELECT e.id FROM error_logs AS e
    WHERE e.created_at < cutoff
      AND NOT e.id = ANY (keep)
      AND (e.related_bug_id IS NULL OR (
           EXISTS (SELECT 1 FROM error_logs AS o WHERE o.related_bug_id = e.related_bug_id
                   AND (o.created_at, o.id) < (e.created_at, e.id))
       AND EXISTS (SELECT 1 FROM error_logs AS o WHERE o.related_bug_id = e.related_bug_id
                   AND (o.created_at, o.id) > (e.created_at, e.id))))
    ORDER BY e.created_at
    LIMIT lim
$fn$;

-- The check-ins older than ``cutoff`` but each monitor's latest, oldest first, at most ``lim``.
CREATE OR REPLACE FUNCTION shim_prunable_check_ins(cutoff timestamptz, lim bigint)
RETURNS SETOF text
LANGUAGE sql STABLE
SET search_path FROM CURRENT
AS $fn$
    SELECT c.check_in_id FROM check_ins AS c
    WHERE c.created_at < cutoff
      AND EXISTS (SELECT 1 FROM check_ins AS n WHERE n.monitor_slug = c.monitor_slug
                  AND n.project_id IS NOT DISTINCT FROM c.project_id
                  AND (n.created_at, n.check_in_id) > (c.created_at, c.check_in_id))
    ORDER BY c.created_at
    LIMIT lim
$fn$;

-- One batch of at most ``lim`` of each; with ``dry`` nothing is deleted and every such row is
-- counted. Returns {"error_logs": n, "check_ins": m}.
CREATE OR REPLACE FUNCTION shim_prune(cutoff timestamptz, lim integer, dry boolean)
RETURNS jsonb
LANGUAGE plpgsql
SET search_path FROM CURRENT
AS $fn$
DECLARE
    keep   uuid[];
    logs   bigint;
    checks bigint;
BEGIN
    -- The events that reopened a bug: the first received after each time it was resolved.
    SELECT coalesce(array_agg(first_after), '{}') INTO keep
    FROM (
        SELECT (SELECT r.id FROM error_logs AS r
                WHERE r.related_bug_id = s.bug_id AND r.received_at > s.at
                ORDER BY r.received_at, r.id LIMIT 1) AS first_after
        FROM status_changes AS s
        WHERE s.status = 'resolved'
    ) AS reopened
    WHERE first_after IS NOT NULL;
    IF dry THEN
        SELECT count(*) INTO logs FROM shim_prunable_logs(cutoff, keep, NULL);
        SELECT count(*) INTO checks FROM shim_prunable_check_ins(cutoff, NULL);
    ELSE
        DELETE FROM error_logs WHERE id IN (SELECT shim_prunable_logs(cutoff, keep, lim));
        GET DIAGNOSTICS logs = ROW_COUNT;
        DELETE FROM check_ins WHERE check_in_id IN (SELECT shim_prunable_check_ins(cutoff, lim));
        GET DIAGNOSTICS checks = ROW_COUNT;
    END IF;
    RETURN jsonb_build_object('error_logs', logs, 'check_ins', checks);
END
$fn$;

-- Only the shim may call them (see 0001 for why).
REVOKE EXECUTE ON FUNCTION shim_take_lease(text, text, double precision) FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION shim_prune(timestamptz, integer, boolean) FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION shim_prunable_logs(timestamptz, uuid[], bigint) FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION shim_prunable_check_ins(timestamptz, bigint) FROM PUBLIC;
DO $grants$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'anon') THEN
        REVOKE EXECUTE ON FUNCTION shim_take_lease(text, text, double precision) FROM anon;
        REVOKE EXECUTE ON FUNCTION shim_prune(timestamptz, integer, boolean) FROM anon;
        REVOKE EXECUTE ON FUNCTION shim_prunable_logs(timestamptz, uuid[], bigint) FROM anon;
        REVOKE EXECUTE ON FUNCTION shim_prunable_check_ins(timestamptz, bigint) FROM anon;
    END IF;
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'authenticated') THEN
        REVOKE EXECUTE ON FUNCTION shim_take_lease(text, text, double precision)
            FROM authenticated;
        REVOKE EXECUTE ON FUNCTION shim_prune(timestamptz, integer, boolean) FROM authenticated;
        REVOKE EXECUTE ON FUNCTION shim_prunable_logs(timestamptz, uuid[], bigint)
            FROM authenticated;
        REVOKE EXECUTE ON FUNCTION shim_prunable_check_ins(timestamptz, bigint)
            FROM authenticated;
    END IF;
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'service_role') THEN
        GRANT EXECUTE ON FUNCTION shim_take_lease(text, text, double precision) TO service_role;
        GRANT EXECUTE ON FUNCTION shim_prune(timestamptz, integer, boolean) TO service_role;
        GRANT EXECUTE ON FUNCTION shim_prunable_logs(timestamptz, uuid[], bigint)
            TO service_role;
        GRANT EXECUTE ON FUNCTION shim_prunable_check_ins(timestamptz, bigint) TO service_role;
    END IF;
END
$grants$;
