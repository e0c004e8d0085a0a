-- The reports summary reads these small tables instead of every lead and settled touch of
-- its window (at 1,000,000 leads that read took 36 s). Triggers keep them exact as rows
-- change, so nothing else has to remember them; the migration fills them from what is there.
-- Keys are UTC hours (`instant / 3600000`): a window starts at the top of the hour it falls in.

-- Touches sent (or done: calls, videos) and how many of them the lead answered after, by the
-- hour they settled, plan step and the channel actually used.
CREATE TABLE report_touch_hours (
    hour     INTEGER NOT NULL,
    plan     TEXT    NOT NULL,
    step     INTEGER NOT NULL,
    channel  TEXT    NOT NULL,
    sent     INTEGER NOT NULL,
    answered INTEGER NOT NULL,
    PRIMARY KEY (hour, plan, step, channel)
) WITHOUT ROWID;

INSERT INTO report_touch_hours (hour, plan, step, channel, sent, answered)
SELECT settled_at / 3600000, plan, step, COALESCE(sent_channel, channel), COUNT(*), SUM(answered)
FROM touches WHERE status IN ('sent', 'done') AND settled_at IS NOT NULL
GROUP BY 1, 2, 3, 4;

-- A row leaves its old bucket and joins its new one; most updates (claims, schedule changes)
-- concern neither and stop at the WHEN.
CREATE TRIGGER report_touches_au AFTER UPDATE OF status, answered, settled_at, sent_channel ON touches
WHEN (old.status IN ('sent', 'done') AND old.settled_at IS NOT NULL)
  OR (new.status IN ('sent', 'done') AND new.settled_at IS NOT NULL)
BEGIN
    INSERT INTO report_touch_hours (hour, plan, step, channel, sent, answered)
    SELECT old.settled_at / 3600000, old.plan, old.step, COALESCE(old.sent_channel, old.channel), -1, -old.answered
    WHERE old.status IN ('sent', 'done') AND old.settled_at IS NOT NULL
    ON CONFLICT (hour, plan, step, channel) DO UPDATE SET sent = sent + excluded.sent, answered = answered + excluded.answered;
    INSERT INTO report_touch_hours (hour, plan, step, channel, sent, answered)
    SELECT new.settled_at / 3600000, new.plan, new.step, COALESCE(new.sent_channel, new.channel), 1, new.answered
    WHERE new.status IN ('sent', 'done') AND new.settled_at IS NOT NULL
    ON CONFLICT (hour, plan, step, channel) DO UPDATE SET sent = sent + excluded.sent, answered = answered + excluded.answered;
END;

CREATE TRIGGER report_touches_ai AFTER INSERT ON touches
WHEN new.status IN ('sent', 'done') AND new.settled_at IS NOT NULL
BEGIN
    INSERT INTO report_touch_hours (hour, plan, step, channel, sent, answered)
    VALUES (new.settled_at / 3600000, new.plan, new.step, COALESCE(new.sent_channel, new.channel), 1, new.answered)
    ON CONFLICT (hour, plan, step, channel) DO UPDATE SET sent = sent + excluded.sent, answered = answered + excluded.answered;
END;

-- Erasure takes a lead's touches out of the figures, as it takes them out of the database.
CREATE TRIGGER report_touches_ad AFTER DELETE ON touches
WHEN old.status IN ('sent', 'done') AND old.settled_at IS NOT NULL
BEGIN
    UPDATE report_touch_hours SET sent = sent - 1, answered = answered - old.answered
    WHERE hour = old.settled_at / 3600000 AND plan = old.plan AND step = old.step
      AND channel = COALESCE(old.sent_channel, old.channel);
END;

-- Per lead, by the hour it came in: seconds to the first attempt (`lead`) and to the first
-- call (`call`), and attempts made before it answered (`attempts`). Seconds are kept to the
-- second below 2 minutes, then to 10 s below 20 minutes, to the minute below 2 hours, to 10
-- minutes below a day and to the hour beyond: percentiles are that exact.
CREATE TABLE report_lead_hours (
    hour   INTEGER NOT NULL,
    metric TEXT    NOT NULL,
    value  INTEGER NOT NULL,
    n      INTEGER NOT NULL,
    PRIMARY KEY (hour, metric, value)
) WITHOUT ROWID;

INSERT INTO report_lead_hours (hour, metric, value, n)
SELECT created_at / 3600000, 'lead', CASE WHEN x < 120 THEN x WHEN x < 1200 THEN x - x % 10 WHEN x < 7200 THEN x - x % 60
                WHEN x < 86400 THEN x - x % 600 ELSE x - x % 3600 END, COUNT(*)
FROM (SELECT created_at, MAX((first_attempt_at - created_at) / 1000, 0) AS x FROM leads WHERE first_attempt_at IS NOT NULL)
GROUP BY 1, 3;
INSERT INTO report_lead_hours (hour, metric, value, n)
SELECT created_at / 3600000, 'call', CASE WHEN x < 120 THEN x WHEN x < 1200 THEN x - x % 10 WHEN x < 7200 THEN x - x % 60
                WHEN x < 86400 THEN x - x % 600 ELSE x - x % 3600 END, COUNT(*)
FROM (SELECT created_at, MAX((first_call_at - created_at) / 1000, 0) AS x FROM leads WHERE first_call_at IS NOT NULL)
GROUP BY 1, 3;
INSERT INTO report_lead_hours (hour, metric, value, n)
SELECT created_at / 3600000, 'attempts', attempts_at_answer, COUNT(*)
FROM leads WHERE attempts_at_answer IS NOT NULL GROUP BY 1, 3;

-- The dispatcher sets first_attempt_at = COALESCE(first_attempt_at, ?) on every attempt: only
-- a real change moves a lead between buckets.
CREATE TRIGGER report_leads_au AFTER UPDATE OF first_attempt_at, first_call_at, attempts_at_answer, created_at ON leads
WHEN old.first_attempt_at IS NOT new.first_attempt_at OR old.first_call_at IS NOT new.first_call_at
  OR old.attempts_at_answer IS NOT new.attempts_at_answer OR old.created_at <> new.created_at
BEGIN
    INSERT INTO report_lead_hours (hour, metric, value, n)
    SELECT hour, metric, value, -1 FROM (
        SELECT old.created_at / 3600000 AS hour, 'lead' AS metric, CASE WHEN x < 120 THEN x WHEN x < 1200 THEN x - x % 10 WHEN x < 7200 THEN x - x % 60
                WHEN x < 86400 THEN x - x % 600 ELSE x - x % 3600 END AS value
          FROM (SELECT MAX((old.first_attempt_at - old.created_at) / 1000, 0) AS x) WHERE old.first_attempt_at IS NOT NULL
        UNION ALL
        SELECT old.created_at / 3600000, 'call', CASE WHEN x < 120 THEN x WHEN x < 1200 THEN x - x % 10 WHEN x < 7200 THEN x - x % 60
                WHEN x < 86400 THEN x - x % 600 ELSE x - x % 3600 END
          FROM (SELECT MAX((old.first_call_at - old.created_at) / 1000, 0) AS x) WHERE old.first_call_at IS NOT NULL
        UNION ALL
        SELECT old.created_at / 3600000, 'attempts', old.attempts_at_answer WHERE old.attempts_at_answer IS NOT NULL
    ) WHERE true
    ON CONFLICT (hour, metric, value) DO UPDATE SET n = n + excluded.n;
    INSERT INTO report_lead_hours (hour, metric, value, n)
    SELECT hour, metric, value, 1 FROM (
        SELECT new.created_at / 3600000 AS hour, 'lead' AS metric, CASE WHEN x < 120 THEN x WHEN x < 1200 THEN x - x % 10 WHEN x < 7200 THEN x - x % 60
                WHEN x < 86400 THEN x - x % 600 ELSE x - x % 3600 END AS value
          FROM (SELECT MAX((new.first_attempt_at - new.created_at) / 1000, 0) AS x) WHERE new.first_attempt_at IS NOT NULL
        UNION ALL
        SELECT new.created_at / 3600000, 'call', CASE WHEN x < 120 THEN x WHEN x < 1200 THEN x - x % 10 WHEN x < 7200 THEN x - x % 60
                WHEN x < 86400 THEN x - x % 600 ELSE x - x % 3600 END
          FROM (SELECT MAX((new.first_call_at - new.created_at) / 1000, 0) AS x) WHERE new.first_call_at IS NOT NULL
        UNION ALL
        SELECT new.created_at / 3600000, 'attempts', new.attempts_at_answer WHERE new.attempts_at_answer IS NOT NULL
    ) WHERE true
    ON CONFLICT (hour, metric, value) DO UPDATE SET n = n + excluded.n;
END;

CREATE TRIGGER report_leads_ai AFTER INSERT ON leads
WHEN new.first_attempt_at IS NOT NULL OR new.first_call_at IS NOT NULL OR new.attempts_at_answer IS NOT NULL
BEGIN
    INSERT INTO report_lead_hours (hour, metric, value, n)
    SELECT hour, metric, value, 1 FROM (
        SELECT new.created_at / 3600000 AS hour, 'lead' AS metric, CASE WHEN x < 120 THEN x WHEN x < 1200 THEN x - x % 10 WHEN x < 7200 THEN x - x % 60
                WHEN x < 86400 THEN x - x % 600 ELSE x - x % 3600 END AS value
          FROM (SELECT MAX((new.first_attempt_at - new.created_at) / 1000, 0) AS x) WHERE new.first_attempt_at IS NOT NULL
        UNION ALL
        SELECT new.created_at / 3600000, 'call', CASE WHEN x < 120 THEN x WHEN x < 1200 THEN x - x % 10 WHEN x < 7200 THEN x - x % 60
                WHEN x < 86400 THEN x - x % 600 ELSE x - x % 3600 END
          FROM (SELECT MAX((new.first_call_at - new.created_at) / 1000, 0) AS x) WHERE new.first_call_at IS NOT NULL
        UNION ALL
        SELECT new.created_at / 3600000, 'attempts', new.attempts_at_answer WHERE new.attempts_at_answer IS NOT NULL
    ) WHERE true
    ON CONFLICT (hour, metric, value) DO UPDATE SET n = n + excluded.n;
END;

CREATE TRIGGER report_leads_ad AFTER DELETE ON leads
WHEN old.first_attempt_at IS NOT NULL OR old.first_call_at IS NOT NULL OR old.attempts_at_answer IS NOT NULL
BEGIN
    INSERT INTO report_lead_hours (hour, metric, value, n)
    SELECT hour, metric, value, -1 FROM (
        SELECT old.created_at / 3600000 AS hour, 'lead' AS metric, CASE WHEN x < 120 THEN x WHEN x < 1200 THEN x - x % 10 WHEN x < 7200 THEN x - x % 60
                WHEN x < 86400 THEN x - x % 600 ELSE x - x % 3600 END AS value
          FROM (SELECT MAX((old.first_attempt_at - old.created_at) / 1000, 0) AS x) WHERE old.first_attempt_at IS NOT NULL
        UNION ALL
        SELECT old.created_at / 3600000, 'call', CASE WHEN x < 120 THEN x WHEN x < 1200 THEN x - x % 10 WHEN x < 7200 THEN x - x % 60
                WHEN x < 86400 THEN x - x % 600 ELSE x - x % 3600 END
          FROM (SELECT MAX((old.first_call_at - old.created_at) / 1000, 0) AS x) WHERE old.first_call_at IS NOT NULL
        UNION ALL
        SELECT old.created_at / 3600000, 'attempts', old.attempts_at_answer WHERE old.attempts_at_answer IS NOT NULL
    ) WHERE true
    ON CONFLICT (hour, metric, value) DO UPDATE SET n = n + excluded.n;
END;
