-- A message's rendered subject and body leave the touch row for a table of their own, written
-- in order (an append) and pointed to by `touches.body_id`.
--
-- Why: a touch row is written small when its plan starts and gets its message when it is
-- sent. Touch pages are full (a lead's 13 touches are written together), so a body of a few
-- hundred bytes to a few kilobytes arriving in one row split its page: at 1,000,000 leads the
-- dispatcher dirtied ~1.8 touch pages per fired touch plus the new pages of the splits (each
-- one a random page read, then a WAL frame and its checkpoint). Appended to `touch_bodies`,
-- a batch's bodies fill a few consecutive pages and the touch row grows by a few bytes.
--
-- `body_id` has no foreign key on purpose: deleting a body would then look for touches
-- pointing to it, a scan of every touch without an index on `body_id` (one more random index
-- page per fired touch). The triggers below delete a body with its touch (erasure cascades
-- here from the lead) and when a touch gets another body, so none is left behind.
CREATE TABLE touch_bodies (
    id       INTEGER PRIMARY KEY,
    subject  TEXT,
    content  TEXT
);

-- Existing messages move over under their touch's id (ids of new bodies continue after them).
INSERT INTO touch_bodies (id, subject, content)
    SELECT id, subject, content FROM touches WHERE subject IS NOT NULL OR content IS NOT NULL;
ALTER TABLE touches ADD COLUMN body_id INTEGER;
UPDATE touches SET body_id = id WHERE subject IS NOT NULL OR content IS NOT NULL;
ALTER TABLE touches DROP COLUMN subject;
ALTER TABLE touches DROP COLUMN content;

CREATE TRIGGER touch_bodies_ad AFTER DELETE ON touches WHEN old.body_id IS NOT NULL
BEGIN
    DELETE FROM touch_bodies WHERE id = old.body_id;
END;
CREATE TRIGGER touch_bodies_au AFTER UPDATE OF body_id ON touches
WHEN old.body_id IS NOT NULL AND old.body_id IS NOT new.body_id
BEGIN
    DELETE FROM touch_bodies WHERE id = old.body_id;
END;
