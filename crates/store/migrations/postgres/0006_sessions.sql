-- Web app sign-in sessions. The cookie holds a random id; only its SHA-256 is stored, so a
-- copy of the database cannot be used to sign in. Every process on this database shares them.
CREATE TABLE sessions (
    id_hash     TEXT   PRIMARY KEY,
    user_id     BIGINT NOT NULL REFERENCES users(id),
    csrf        TEXT   NOT NULL,
    created_at  BIGINT NOT NULL,
    expires_at  BIGINT NOT NULL
);
CREATE INDEX sessions_user ON sessions(user_id);
CREATE INDEX sessions_expires ON sessions(expires_at);
