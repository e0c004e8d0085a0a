-- Every save of a lead sets first_name and last_name (the store writes the whole row), and
-- `AFTER UPDATE OF` fires on the columns named in the SET, changed or not: each engagement,
-- answer or edit re-indexed the name in FTS5 (a delete and an insert). Now only a real
-- change of the name does.
DROP TRIGGER leads_fts_au;
CREATE TRIGGER leads_fts_au AFTER UPDATE OF first_name, last_name ON leads
WHEN old.first_name IS NOT new.first_name OR old.last_name IS NOT new.last_name
BEGIN
    INSERT INTO leads_fts(leads_fts, rowid, first_name, last_name) VALUES ('delete', old.id, old.first_name, old.last_name);
    INSERT INTO leads_fts(rowid, first_name, last_name) VALUES (new.id, new.first_name, new.last_name);
END;
