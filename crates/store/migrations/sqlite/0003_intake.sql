-- Lead intake: webhook tokens with their routing, consent records, and the pond.

CREATE TABLE intakes (
    id             INTEGER PRIMARY KEY,
    token          TEXT    NOT NULL UNIQUE,     -- 128 random bits; the webhook URL's secret
    source         TEXT    NOT NULL,
    plan           TEXT,                        -- runs instead of the level's plan
    routing        TEXT    NOT NULL DEFAULT '{}', -- JSON: see engine::intake::Routing
    thank_you_url  TEXT,
    rr_cursor      INTEGER NOT NULL DEFAULT 0,
    active         INTEGER NOT NULL DEFAULT 1,
    created_at     INTEGER NOT NULL
);

-- How and when a lead agreed to texts or emails (SPEC §5.2 consent).
CREATE TABLE consents (
    id        INTEGER PRIMARY KEY,
    lead_id   INTEGER NOT NULL REFERENCES leads(id) ON DELETE CASCADE,
    channel   TEXT    NOT NULL,                 -- 'text' | 'email'
    source    TEXT    NOT NULL,
    wording   TEXT    NOT NULL,
    ip        TEXT,
    at        INTEGER NOT NULL
);
CREATE INDEX consents_lead ON consents(lead_id, channel);

-- Leads waiting to be claimed: the first of `agents` to claim takes the lead.
CREATE TABLE ponds (
    lead_id       INTEGER PRIMARY KEY REFERENCES leads(id) ON DELETE CASCADE,
    intake_id     INTEGER NOT NULL REFERENCES intakes(id),
    agents        TEXT    NOT NULL,             -- JSON list of user ids
    expires_at    INTEGER NOT NULL,
    created_at    INTEGER NOT NULL
);
CREATE INDEX ponds_expiry ON ponds(expires_at);

ALTER TABLE team ADD COLUMN require_text_consent INTEGER NOT NULL DEFAULT 0;
