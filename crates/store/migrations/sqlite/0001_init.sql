-- Relentless schema, SQLite. Instants are INTEGER epoch milliseconds (UTC); zones are IANA
-- names in TEXT. Enums are TEXT with their wire names. The PostgreSQL schema mirrors this one.

CREATE TABLE team (
    id                   INTEGER PRIMARY KEY CHECK (id = 1),
    name                 TEXT    NOT NULL,
    country              TEXT    NOT NULL DEFAULT 'US',
    timezone             TEXT    NOT NULL DEFAULT 'America/New_York',
    sending_window       TEXT    NOT NULL,            -- JSON schedule::Window
    state_windows        TEXT    NOT NULL DEFAULT '{}', -- JSON {"FL": Window}
    holidays             TEXT    NOT NULL DEFAULT '[]', -- JSON ["2026-12-25"]
    postal_address       TEXT    NOT NULL DEFAULT '',
    support_contact      TEXT    NOT NULL DEFAULT '',
    escalation_minutes   INTEGER NOT NULL DEFAULT 60,
    round_robin_cursor   INTEGER NOT NULL DEFAULT 0,
    created_at           INTEGER NOT NULL
);

CREATE TABLE users (
    id             INTEGER PRIMARY KEY,
    email          TEXT    NOT NULL UNIQUE,
    name           TEXT    NOT NULL,
    phone          TEXT,
    role           TEXT    NOT NULL CHECK (role IN ('agent', 'admin')),
    password_hash  TEXT,
    active         INTEGER NOT NULL DEFAULT 1,
    notify_sms     INTEGER NOT NULL DEFAULT 0,
    notify_email   INTEGER NOT NULL DEFAULT 0,
    created_at     INTEGER NOT NULL
);

CREATE TABLE api_tokens (
    id          INTEGER PRIMARY KEY,
    user_id     INTEGER NOT NULL REFERENCES users(id),
    token_hash  TEXT    NOT NULL UNIQUE,   -- SHA-256 of the token; the token itself is never stored
    created_at  INTEGER NOT NULL
);

CREATE TABLE plans (
    slug        TEXT    PRIMARY KEY,
    name        TEXT    NOT NULL,
    version     INTEGER NOT NULL,
    source      TEXT    NOT NULL,            -- the plan file (TOML)
    updated_at  INTEGER NOT NULL
);

CREATE TABLE templates (
    slug        TEXT    PRIMARY KEY,
    channel     TEXT    NOT NULL,
    name        TEXT    NOT NULL,
    subject     TEXT,
    body        TEXT    NOT NULL,
    voicemail   TEXT,
    updated_at  INTEGER NOT NULL
);

CREATE TABLE leads (
    id                 INTEGER PRIMARY KEY,
    first_name         TEXT    NOT NULL DEFAULT '',
    last_name          TEXT    NOT NULL DEFAULT '',
    email              TEXT,                -- as given (domain lowercased)
    email_key          TEXT,                -- lowercased, for matching
    phone              TEXT,                -- E.164
    timezone           TEXT    NOT NULL,
    region             TEXT,                -- state/province code for stricter windows
    source             TEXT    NOT NULL DEFAULT '',
    level              TEXT    NOT NULL DEFAULT 'warm',
    stage              TEXT    NOT NULL DEFAULT 'new',
    preferred_channel  TEXT,
    assigned_to        INTEGER REFERENCES users(id),
    external_id        TEXT,
    tags               TEXT    NOT NULL DEFAULT '[]',
    notes              TEXT    NOT NULL DEFAULT '',
    property_address   TEXT    NOT NULL DEFAULT '',
    sms_opt_out        INTEGER NOT NULL DEFAULT 0,
    email_opt_out      INTEGER NOT NULL DEFAULT 0,
    do_not_call        INTEGER NOT NULL DEFAULT 0,
    email_bad          INTEGER NOT NULL DEFAULT 0,
    phone_bad          INTEGER NOT NULL DEFAULT 0,
    attempts           INTEGER NOT NULL DEFAULT 0,
    first_attempt_at   INTEGER,
    first_call_at      INTEGER,
    answered_at        INTEGER,
    answered_on        TEXT,                -- the channel the lead first answered on
    attempts_at_answer INTEGER,
    last_touch_at      INTEGER,
    next_touch_at      INTEGER,
    created_at         INTEGER NOT NULL,
    updated_at         INTEGER NOT NULL,
    erased_at          INTEGER
);
-- Keyset pagination, newest first, per agent and overall.
CREATE INDEX leads_assigned ON leads(assigned_to, id);
CREATE INDEX leads_level ON leads(level, id);
CREATE INDEX leads_stage ON leads(stage, id);
CREATE INDEX leads_email ON leads(email_key);
CREATE INDEX leads_phone ON leads(phone);
CREATE UNIQUE INDEX leads_external ON leads(external_id) WHERE external_id IS NOT NULL;

-- Name search through FTS5 (external content: the leads table holds the text).
CREATE VIRTUAL TABLE leads_fts USING fts5(
    first_name, last_name, content='leads', content_rowid='id', tokenize='unicode61 remove_diacritics 2'
);
CREATE TRIGGER leads_fts_ai AFTER INSERT ON leads BEGIN
    INSERT INTO leads_fts(rowid, first_name, last_name) VALUES (new.id, new.first_name, new.last_name);
END;
CREATE TRIGGER leads_fts_ad AFTER DELETE ON leads BEGIN
    INSERT INTO leads_fts(leads_fts, rowid, first_name, last_name) VALUES ('delete', old.id, old.first_name, old.last_name);
END;
CREATE TRIGGER leads_fts_au AFTER UPDATE OF first_name, last_name ON leads BEGIN
    INSERT INTO leads_fts(leads_fts, rowid, first_name, last_name) VALUES ('delete', old.id, old.first_name, old.last_name);
    INSERT INTO leads_fts(rowid, first_name, last_name) VALUES (new.id, new.first_name, new.last_name);
END;

CREATE TABLE enrollments (
    id             INTEGER PRIMARY KEY,
    lead_id        INTEGER NOT NULL REFERENCES leads(id) ON DELETE CASCADE,
    plan           TEXT    NOT NULL,
    plan_version   INTEGER NOT NULL,
    state          TEXT    NOT NULL,
    reason         TEXT,
    started_at     INTEGER NOT NULL,
    ended_at       INTEGER
);
CREATE INDEX enrollments_lead ON enrollments(lead_id);

CREATE TABLE tasks (
    id            INTEGER PRIMARY KEY,
    lead_id       INTEGER NOT NULL REFERENCES leads(id) ON DELETE CASCADE,
    touch_id      INTEGER,
    assignee_id   INTEGER REFERENCES users(id),
    kind          TEXT    NOT NULL,
    due_at        INTEGER NOT NULL,
    script        TEXT    NOT NULL DEFAULT '',
    voicemail     TEXT,
    status        TEXT    NOT NULL DEFAULT 'open',
    outcome       TEXT,
    note          TEXT,
    escalated_at  INTEGER,
    created_at    INTEGER NOT NULL,
    completed_at  INTEGER
);
CREATE INDEX tasks_assignee ON tasks(assignee_id, status, due_at);
CREATE INDEX tasks_lead ON tasks(lead_id, status);
CREATE INDEX tasks_open_due ON tasks(due_at) WHERE status = 'open';

CREATE TABLE touches (
    id             INTEGER PRIMARY KEY,
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
    subject        TEXT,
    content        TEXT,
    provider_id    TEXT,
    delivery       TEXT,
    task_id        INTEGER REFERENCES tasks(id),
    claimed_by     TEXT,
    lease_until    INTEGER,
    settled_at     INTEGER,
    answered       INTEGER NOT NULL DEFAULT 0, -- the lead answered after this touch
    created_at     INTEGER NOT NULL
);
-- The dispatcher's query: due touches not yet handed out, oldest first.
CREATE INDEX touches_due ON touches(due_at) WHERE status = 'scheduled' AND task_id IS NULL;
CREATE INDEX touches_lead ON touches(lead_id, due_at);
CREATE INDEX touches_enrollment ON touches(enrollment_id, status);
CREATE INDEX touches_sending ON touches(status) WHERE status = 'sending';

CREATE TABLE activities (
    id        INTEGER PRIMARY KEY,
    lead_id   INTEGER NOT NULL REFERENCES leads(id) ON DELETE CASCADE,
    kind      TEXT    NOT NULL,
    detail    TEXT    NOT NULL DEFAULT '',
    data      TEXT,                         -- JSON
    actor_id  INTEGER,
    at        INTEGER NOT NULL
);
CREATE INDEX activities_lead ON activities(lead_id, at);

CREATE TABLE outbox (
    id          INTEGER PRIMARY KEY,
    channel     TEXT    NOT NULL,
    to_addr     TEXT    NOT NULL,
    subject     TEXT,
    body        TEXT    NOT NULL,
    status      TEXT    NOT NULL DEFAULT 'not_delivered',
    lead_id     INTEGER REFERENCES leads(id) ON DELETE SET NULL,
    touch_id    INTEGER,
    created_at  INTEGER NOT NULL
);
CREATE INDEX outbox_lead ON outbox(lead_id);

CREATE TABLE notifications (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,   -- the SSE id: increases, survives restarts
    user_id    INTEGER NOT NULL REFERENCES users(id),
    event      TEXT    NOT NULL,
    lead_id    INTEGER,
    lead_name  TEXT    NOT NULL DEFAULT '',
    kind       TEXT    NOT NULL,
    at         INTEGER NOT NULL,
    detail     TEXT    NOT NULL DEFAULT ''
);
CREATE INDEX notifications_user ON notifications(user_id, id);

-- One-way hashes of erased leads' phones and emails (SPEC §5.8).
CREATE TABLE suppressions (
    hash        TEXT    PRIMARY KEY,
    kind        TEXT    NOT NULL,
    created_at  INTEGER NOT NULL
);
