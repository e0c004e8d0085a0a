-- New leads are answered before any backlog: the dispatcher claims due speed-to-lead touches
-- first, through their own small index.
CREATE INDEX touches_due_urgent ON touches(due_at) WHERE status = 'scheduled' AND task_id IS NULL AND plan = 'speed-to-lead';
-- next_touch_at per enrollment/lead reads only scheduled touches, in due order.
CREATE INDEX touches_enrollment_due ON touches(enrollment_id, due_at) WHERE status = 'scheduled';
