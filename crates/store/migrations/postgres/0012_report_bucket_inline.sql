-- `report_bucket` as 0008 wrote it (`SELECT … FROM (SELECT …) AS v`) is a SQL function that
-- PostgreSQL cannot inline: every call ran through the SQL-function executor, ~30 µs each.
-- The statement-level trigger of 0011 calls it twice per changed lead, and it runs after
-- every UPDATE of leads, so each dispatch batch's two lead updates spent ~65 ms each in it
-- (500 leads; EXPLAIN ANALYZE with auto_explain). A single expression with no FROM is
-- inlined into the trigger's query. Same values: below 0 counts as 0, NULL stays NULL.
CREATE OR REPLACE FUNCTION report_bucket(s BIGINT) RETURNS BIGINT LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE WHEN s < 120 THEN GREATEST(s, 0) WHEN s < 1200 THEN s - s % 10 WHEN s < 7200 THEN s - s % 60
                WHEN s < 86400 THEN s - s % 600 ELSE s - s % 3600 END
$$;
