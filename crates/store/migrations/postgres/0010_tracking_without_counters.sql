-- Each open and click is an activity on the lead's timeline; the per-token counters were
-- never read, and bumping them rewrote a `tracking` row per hit.
ALTER TABLE tracking DROP COLUMN opens, DROP COLUMN clicks;
