-- Each open and click is an activity on the lead's timeline; the per-token counters were
-- never read, and bumping them dirtied one random page of `tracking` per hit (most of what a
-- group of opens wrote to the WAL).
ALTER TABLE tracking DROP COLUMN opens;
ALTER TABLE tracking DROP COLUMN clicks;
