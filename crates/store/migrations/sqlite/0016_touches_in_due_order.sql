-- Touches are stored in the order they fall due: the table is keyed by `(due_at, id)`
-- (`WITHOUT ROWID`), and `id` stays unique through an index of its own.
--
-- Why: a batch the dispatcher fires is the touches due now, and it rewrites each one's row
-- (its outcome). Stored by id, a lead's 13 touches sat together and the touches due at one
-- moment were on as many pages as there were touches: at 1,000,000 leads every fired touch
-- read a page the writer did not hold and wrote it to the WAL (and the checkpoint wrote it
-- again). Keyed by when they fall due, one batch's touches are neighbours: a few dozen pages
-- per batch of 500 instead of ~500 (BENCHMARKS.md, "Touches stored in the order they fall
-- due"). A lead's touches are still found together, through `touches_lead`.
--
-- Ids are now given by the store on insert (a `WITHOUT ROWID` table hands none out): the next
-- ones after the largest, as SQLite did (no AUTOINCREMENT), under the write lock.
-- Rescheduling a touch (a new `due_at`) moves its row; it keeps its id.
--
-- On a file of 1,000,000 leads (13,000,000 touches) this migration takes a minute or two,
-- once.
CREATE TABLE touches_by_due (
    id             INTEGER NOT NULL,
    enrollment_id  INTEGER NOT NULL REFERENCES enrollments(id) ON DELETE CASCADE,
    lead_id        INTEGER NOT NULL REFERENCES leads(id) ON DELETE CASCADE,
    plan           TEXT    NOT NULL,
    step           INTEGER NOT NULL,
    channel        TEXT    NOT NULL,
    template       TEXT    NOT NULL,
    planned_at     INTEGER NOT NULL,        -- before the sending-window clamp
    due_at         INTEGER NOT NULL,
    status         TEXT    NOT NULL DEFAULT 'scheduled',
    reason         TEXT,
    attempt        INTEGER,                 -- the lead's attempt number this touch made
    sent_channel   TEXT,                    -- the concrete channel used (preferred/fallback)
    provider_id    TEXT,
    delivery       TEXT,
    task_id        INTEGER REFERENCES tasks(id),
    claimed_by     TEXT,
    lease_until    INTEGER,
    settled_at     INTEGER,
    answered       INTEGER NOT NULL DEFAULT 0, -- the lead answered after this touch
    created_at     INTEGER NOT NULL,
    message_id     TEXT,
    body_id        INTEGER,                 -- touch_bodies(id), see 0013
    PRIMARY KEY (due_at, id)
) WITHOUT ROWID;

-- In key order, so the new table is written front to back (its pages full).
INSERT INTO touches_by_due (id, enrollment_id, lead_id, plan, step, channel, template, planned_at,
    due_at, status, reason, attempt, sent_channel, provider_id, delivery, task_id, claimed_by,
    lease_until, settled_at, answered, created_at, message_id, body_id)
SELECT id, enrollment_id, lead_id, plan, step, channel, template, planned_at,
    due_at, status, reason, attempt, sent_channel, provider_id, delivery, task_id, claimed_by,
    lease_until, settled_at, answered, created_at, message_id, body_id
FROM touches ORDER BY due_at, id;

-- Nothing references `touches` by a foreign key, so dropping it checks no other table; its
-- indexes and triggers go with it and are made again below as they were.
DROP TABLE touches;
ALTER TABLE touches_by_due RENAME TO touches;

CREATE UNIQUE INDEX touches_id ON touches(id);
CREATE INDEX touches_due ON touches(due_at) WHERE status = 'scheduled' AND task_id IS NULL;
CREATE INDEX touches_due_urgent ON touches(due_at)
    WHERE status = 'scheduled' AND task_id IS NULL AND plan = 'speed-to-lead';
CREATE INDEX touches_lead ON touches(lead_id, due_at);
CREATE INDEX touches_enrollment ON touches(enrollment_id);
CREATE INDEX touches_sending ON touches(status) WHERE status = 'sending';
CREATE INDEX touches_provider_id ON touches(provider_id)
    WHERE sent_channel = 'text' AND provider_id IS NOT NULL;

-- Report counters (0008).
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
CREATE TRIGGER report_touches_ad AFTER DELETE ON touches
WHEN old.status IN ('sent', 'done') AND old.settled_at IS NOT NULL
BEGIN
    UPDATE report_touch_hours SET sent = sent - 1, answered = answered - old.answered
    WHERE hour = old.settled_at / 3600000 AND plan = old.plan AND step = old.step
      AND channel = COALESCE(old.sent_channel, old.channel);
END;

-- Message bodies go with their touch (0013).
CREATE TRIGGER touch_bodies_ad AFTER DELETE ON touches WHEN old.body_id IS NOT NULL
BEGIN
    DELETE FROM touch_bodies WHERE id = old.body_id;
END;
CREATE TRIGGER touch_bodies_au AFTER UPDATE OF body_id ON touches
WHEN old.body_id IS NOT NULL AND old.body_id IS NOT new.body_id
BEGIN
    DELETE FROM touch_bodies WHERE id = old.body_id;
END;
