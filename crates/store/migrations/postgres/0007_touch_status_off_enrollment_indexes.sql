-- On SQLite this migration takes the touch status off the enrollment indexes, so that a
-- status change no longer rewrites their entries. PostgreSQL rewrites an entry in every index
-- on any update that is not HOT, and a status change is never HOT here (the due-touch indexes
-- filter on it), so there was nothing to save; and without these indexes the planner chose
-- plans that made a burst of touches 2.7x slower to dispatch (W1 of bench/run.sh, 2 workers:
-- 70 s against 26 s). The PostgreSQL indexes stay as they are; this file keeps the version
-- numbers of both backends in step.
SELECT 1;
