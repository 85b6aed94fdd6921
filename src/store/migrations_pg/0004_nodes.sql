-- As SQLite's 0010_nodes.sql.
CREATE TABLE nodes (
    name          TEXT PRIMARY KEY NOT NULL,
    sip           TEXT NOT NULL,
    admin         TEXT NOT NULL,
    version       TEXT NOT NULL,
    started_at    BIGINT NOT NULL,
    seen_at       BIGINT NOT NULL,
    registrations BIGINT NOT NULL
);
