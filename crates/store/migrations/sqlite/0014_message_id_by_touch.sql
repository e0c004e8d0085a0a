-- A reply is matched to the email it answers by the touch id inside our Message-ID
-- (`<relentless.{touch}.{digest}@{domain}>`, read back by the engine) and that touch's stored
-- Message-ID, so the index over every Message-ID goes: each email sent inserted one entry at a
-- random place in it (a random index page written, and copied back by the checkpoint, per
-- email: 3 % of the SQLite dispatcher's page writes at 1,000,000 leads).
DROP INDEX IF EXISTS touches_message_id;
