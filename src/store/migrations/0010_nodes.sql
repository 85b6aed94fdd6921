-- The nodes of a cluster and their health, each row kept by its node.
CREATE TABLE nodes (
    name          TEXT PRIMARY KEY NOT NULL,
    sip           TEXT NOT NULL,
    admin         TEXT NOT NULL,
    version       TEXT NOT NULL,
    started_at    INTEGER NOT NULL,
    seen_at       INTEGER NOT NULL,
    registrations INTEGER NOT NULL
);
