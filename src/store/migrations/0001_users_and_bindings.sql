-- Users: one HA1 per digest algorithm, never the password.
CREATE TABLE users (
    username       TEXT NOT NULL,
    domain         TEXT NOT NULL,
    ha1_md5        TEXT NOT NULL,
    ha1_sha256     TEXT NOT NULL,
    ha1_sha512_256 TEXT NOT NULL,
    PRIMARY KEY (username, domain)
);

-- Registrar bindings (RFC 3261 §10), written through from memory.
CREATE TABLE bindings (
    aor        TEXT NOT NULL,
    uri        TEXT NOT NULL,
    contact    TEXT NOT NULL,
    expires_at INTEGER NOT NULL,
    q          INTEGER NOT NULL,
    call_id    TEXT NOT NULL,
    cseq       INTEGER NOT NULL,
    path       TEXT NOT NULL,
    transport  TEXT NOT NULL,
    source     TEXT NOT NULL,
    PRIMARY KEY (aor, uri)
);
