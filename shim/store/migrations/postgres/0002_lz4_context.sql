-- 0002: error_logs.context (the bulk of a row: tags, contexts, breadcrumbs) compressed with lz4
-- rather than the default pglz. PostgreSQL 14 and later built with lz4 (Debian's, Supabase's)
-- have it; a write of a batch then takes about a fifth less time on the server
-- (bench/README.md). Rows already stored keep what they have; reading either kind is the same.
-- Where lz4 is missing (an older or a differently built server) nothing changes.
DO $lz4$
BEGIN
    EXECUTE 'ALTER TABLE error_logs ALTER COLUMN context SET COMPRESSION lz4';
EXCEPTION WHEN others THEN
    RAISE NOTICE 'error_logs.context keeps the default compression: %', SQLERRM;
END
$lz4$;
