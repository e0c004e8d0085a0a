-- Rate-limit counters shared by every process on this database (fixed windows per key).
CREATE TABLE rate_limits (
    key           TEXT   PRIMARY KEY,
    window_start  BIGINT NOT NULL,
    hits          BIGINT NOT NULL
);
CREATE INDEX rate_limits_window ON rate_limits(window_start);
