-- The reports summary reads these small tables instead of every lead and settled touch of
-- its window (at 1,000,000 leads that read took 36 s on SQLite). Triggers keep them exact as
-- rows change; the migration fills them from what is there. Keys are UTC hours
-- (`instant / 3600000`): a window starts at the top of the hour it falls in.
--
-- `shard` is the backend process that wrote the row: dispatch workers settle touches of the
-- same hour and step at once, and one shared counter row would make each wait for the
-- other's commit (or deadlock). Readers add the shards up.

CREATE TABLE report_touch_hours (
    hour     BIGINT  NOT NULL,
    plan     TEXT    NOT NULL,
    step     BIGINT  NOT NULL,
    channel  TEXT    NOT NULL,
    shard    INTEGER NOT NULL,
    sent     BIGINT  NOT NULL,
    answered BIGINT  NOT NULL,
    PRIMARY KEY (hour, plan, step, channel, shard)
);

INSERT INTO report_touch_hours (hour, plan, step, channel, shard, sent, answered)
SELECT settled_at / 3600000, plan, step, COALESCE(sent_channel, channel), 0, COUNT(*), COUNT(*) FILTER (WHERE answered)
FROM touches WHERE status IN ('sent', 'done') AND settled_at IS NOT NULL
GROUP BY 1, 2, 3, 4;

CREATE FUNCTION report_touch_add(t touches, k BIGINT) RETURNS void LANGUAGE sql AS $$
    INSERT INTO report_touch_hours (hour, plan, step, channel, shard, sent, answered)
    SELECT t.settled_at / 3600000, t.plan, t.step, COALESCE(t.sent_channel, t.channel), pg_backend_pid(),
           k, CASE WHEN t.answered THEN k ELSE 0 END
    WHERE t.status IN ('sent', 'done') AND t.settled_at IS NOT NULL
    ON CONFLICT (hour, plan, step, channel, shard) DO UPDATE
        SET sent = report_touch_hours.sent + excluded.sent,
            answered = report_touch_hours.answered + excluded.answered
$$;

-- A row leaves its old bucket and joins its new one. Erasure takes a lead's touches out of
-- the figures, as it takes them out of the database.
CREATE FUNCTION report_touches_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        PERFORM report_touch_add(OLD, -1);
    END IF;
    IF TG_OP IN ('UPDATE', 'INSERT') THEN
        PERFORM report_touch_add(NEW, 1);
    END IF;
    RETURN NULL;
END $$;

-- Most updates (claims, schedule changes) concern neither bucket and stop at the WHEN.
CREATE TRIGGER report_touches_au AFTER UPDATE OF status, answered, settled_at, sent_channel ON touches
FOR EACH ROW WHEN ((OLD.status IN ('sent', 'done') AND OLD.settled_at IS NOT NULL)
                OR (NEW.status IN ('sent', 'done') AND NEW.settled_at IS NOT NULL))
EXECUTE FUNCTION report_touches_change();
CREATE TRIGGER report_touches_ai AFTER INSERT ON touches
FOR EACH ROW WHEN (NEW.status IN ('sent', 'done') AND NEW.settled_at IS NOT NULL)
EXECUTE FUNCTION report_touches_change();
CREATE TRIGGER report_touches_ad AFTER DELETE ON touches
FOR EACH ROW WHEN (OLD.status IN ('sent', 'done') AND OLD.settled_at IS NOT NULL)
EXECUTE FUNCTION report_touches_change();

-- Per lead, by the hour it came in: seconds to the first attempt (`lead`) and to the first
-- call (`call`), and attempts made before it answered (`attempts`). Seconds are kept to the
-- second below 2 minutes, then to 10 s below 20 minutes, to the minute below 2 hours, to 10
-- minutes below a day and to the hour beyond: percentiles are that exact.
CREATE TABLE report_lead_hours (
    hour   BIGINT  NOT NULL,
    metric TEXT    NOT NULL,
    value  BIGINT  NOT NULL,
    shard  INTEGER NOT NULL,
    n      BIGINT  NOT NULL,
    PRIMARY KEY (hour, metric, value, shard)
);

-- NULL (no attempt yet) stays NULL; a negative duration (clocks) counts as 0.
CREATE FUNCTION report_bucket(s BIGINT) RETURNS BIGINT LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE WHEN x < 120 THEN x WHEN x < 1200 THEN x - x % 10 WHEN x < 7200 THEN x - x % 60
                WHEN x < 86400 THEN x - x % 600 ELSE x - x % 3600 END
    FROM (SELECT CASE WHEN s < 0 THEN 0 ELSE s END AS x) AS v
$$;

-- A lead's rows of report_lead_hours: (metric, value) for each figure it has.
CREATE FUNCTION report_lead_values(l leads) RETURNS TABLE (metric TEXT, value BIGINT)
LANGUAGE sql IMMUTABLE AS $$
    SELECT m.metric, m.value
    FROM (VALUES
        ('lead', report_bucket((l.first_attempt_at - l.created_at) / 1000)),
        ('call', report_bucket((l.first_call_at - l.created_at) / 1000)),
        ('attempts', l.attempts_at_answer)
    ) AS m(metric, value)
    WHERE m.value IS NOT NULL
$$;

CREATE FUNCTION report_lead_add(l leads, k BIGINT) RETURNS void LANGUAGE sql AS $$
    INSERT INTO report_lead_hours (hour, metric, value, shard, n)
    SELECT l.created_at / 3600000, v.metric, v.value, pg_backend_pid(), k
    FROM report_lead_values(l) AS v
    ON CONFLICT (hour, metric, value, shard) DO UPDATE SET n = report_lead_hours.n + excluded.n
$$;

INSERT INTO report_lead_hours (hour, metric, value, shard, n)
SELECT l.created_at / 3600000, v.metric, v.value, 0, COUNT(*)
FROM leads l, report_lead_values(l) AS v
GROUP BY 1, 2, 3;

CREATE FUNCTION report_leads_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        PERFORM report_lead_add(OLD, -1);
    END IF;
    IF TG_OP IN ('UPDATE', 'INSERT') THEN
        PERFORM report_lead_add(NEW, 1);
    END IF;
    RETURN NULL;
END $$;

-- The dispatcher sets first_attempt_at = COALESCE(first_attempt_at, ...) on every attempt:
-- only a real change moves a lead between buckets.
CREATE TRIGGER report_leads_au AFTER UPDATE OF first_attempt_at, first_call_at, attempts_at_answer, created_at ON leads
FOR EACH ROW WHEN (OLD.first_attempt_at IS DISTINCT FROM NEW.first_attempt_at
                OR OLD.first_call_at IS DISTINCT FROM NEW.first_call_at
                OR OLD.attempts_at_answer IS DISTINCT FROM NEW.attempts_at_answer
                OR OLD.created_at <> NEW.created_at)
EXECUTE FUNCTION report_leads_change();
CREATE TRIGGER report_leads_ai AFTER INSERT ON leads
FOR EACH ROW WHEN (NEW.first_attempt_at IS NOT NULL OR NEW.first_call_at IS NOT NULL OR NEW.attempts_at_answer IS NOT NULL)
EXECUTE FUNCTION report_leads_change();
CREATE TRIGGER report_leads_ad AFTER DELETE ON leads
FOR EACH ROW WHEN (OLD.first_attempt_at IS NOT NULL OR OLD.first_call_at IS NOT NULL OR OLD.attempts_at_answer IS NOT NULL)
EXECUTE FUNCTION report_leads_change();
