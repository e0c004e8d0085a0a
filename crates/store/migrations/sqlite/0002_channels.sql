-- Real channels: tracking tokens (open pixel, clicks, unsubscribe, video page), replay
-- protection for inbound webhooks, uploaded videos, and the ids providers give messages.

CREATE TABLE tracking (
    token          TEXT    PRIMARY KEY,        -- 128 random bits, URL-safe
    kind           TEXT    NOT NULL,           -- 'email' | 'video'
    lead_id        INTEGER NOT NULL REFERENCES leads(id) ON DELETE CASCADE,
    touch_id       INTEGER,
    links          TEXT    NOT NULL DEFAULT '[]', -- JSON list; /c/{n} redirects to links[n] only
    video_id       INTEGER,
    opens          INTEGER NOT NULL DEFAULT 0,
    clicks         INTEGER NOT NULL DEFAULT 0,
    created_at     INTEGER NOT NULL
);
CREATE INDEX tracking_lead ON tracking(lead_id);

-- Every click, to tell a person from a scanner that follows every link at once.
CREATE TABLE clicks (
    token  TEXT    NOT NULL REFERENCES tracking(token) ON DELETE CASCADE,
    n      INTEGER NOT NULL,
    at     INTEGER NOT NULL
);
CREATE INDEX clicks_token ON clicks(token, at);

CREATE TABLE inbound_seen (
    key          TEXT    PRIMARY KEY,          -- 'twilio:SM…' or 'email:<message-id>'
    received_at  INTEGER NOT NULL
);

CREATE TABLE videos (
    id            INTEGER PRIMARY KEY,
    lead_id       INTEGER REFERENCES leads(id) ON DELETE CASCADE,
    user_id       INTEGER REFERENCES users(id),
    file          TEXT    NOT NULL,            -- name under the data directory
    content_type  TEXT    NOT NULL,
    size          INTEGER NOT NULL,
    created_at    INTEGER NOT NULL
);

ALTER TABLE touches ADD COLUMN message_id TEXT;
CREATE INDEX touches_message_id ON touches(message_id) WHERE message_id IS NOT NULL;
CREATE INDEX touches_provider_id ON touches(provider_id) WHERE provider_id IS NOT NULL;

-- A user's email is unique whatever its case.
CREATE UNIQUE INDEX users_email_nocase ON users(email COLLATE NOCASE);
