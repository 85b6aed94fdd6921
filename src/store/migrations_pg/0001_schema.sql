-- The schema of src/store/migrations (SQLite, 0001–0007) in PostgreSQL's
-- dialect: the same tables and columns, which a test compares. A change
-- to one is a migration in both directories.

CREATE TABLE users (
    username       TEXT NOT NULL,
    domain         TEXT NOT NULL,
    ha1_md5        TEXT NOT NULL,
    ha1_sha256     TEXT NOT NULL,
    ha1_sha512_256 TEXT NOT NULL,
    PRIMARY KEY (username, domain)
);

CREATE TABLE bindings (
    aor        TEXT NOT NULL,
    uri        TEXT NOT NULL,
    contact    TEXT NOT NULL,
    expires_at BIGINT NOT NULL,
    q          BIGINT NOT NULL,
    call_id    TEXT NOT NULL,
    cseq       BIGINT NOT NULL,
    path       TEXT NOT NULL,
    transport  TEXT NOT NULL,
    source     TEXT NOT NULL,
    instance   TEXT NOT NULL DEFAULT '',
    reg_id     BIGINT NOT NULL DEFAULT 0,
    user_agent TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (aor, uri, reg_id)
);

CREATE TABLE offline_messages (
    id           BIGSERIAL PRIMARY KEY,
    aor          TEXT NOT NULL,
    sender       TEXT NOT NULL,
    content_type TEXT NOT NULL,
    body         BYTEA NOT NULL,
    received_at  BIGINT NOT NULL,
    expires_at   BIGINT NOT NULL
);
CREATE INDEX offline_messages_aor ON offline_messages (aor, id);
CREATE INDEX offline_messages_expiry ON offline_messages (expires_at);

CREATE TABLE presence_rules (
    presentity TEXT NOT NULL,
    watcher    TEXT NOT NULL,
    decision   TEXT NOT NULL CHECK (decision IN ('allow', 'deny', 'polite-block')),
    updated    BIGINT NOT NULL,
    PRIMARY KEY (presentity, watcher)
);

CREATE TABLE archive (
    id                   BIGSERIAL PRIMARY KEY,
    at                   BIGINT NOT NULL,
    source_protocol      TEXT NOT NULL,
    destination_protocol TEXT NOT NULL,
    sender               TEXT NOT NULL,
    recipient            TEXT NOT NULL,
    peer_domain          TEXT NOT NULL,
    auth                 TEXT NOT NULL,
    decision             TEXT NOT NULL,
    cpim                 TEXT NOT NULL
);
CREATE INDEX archive_at ON archive (at);
CREATE INDEX archive_sender ON archive (sender);
CREATE INDEX archive_recipient ON archive (recipient);
CREATE INDEX archive_peer_domain ON archive (peer_domain);

CREATE TABLE rooms (
    address      TEXT PRIMARY KEY NOT NULL,
    subject      TEXT NOT NULL DEFAULT '',
    public       BOOLEAN NOT NULL,
    members_only BOOLEAN NOT NULL,
    moderated    BOOLEAN NOT NULL,
    password     TEXT,
    history      BIGINT NOT NULL,
    max_members  BIGINT NOT NULL,
    created_at   BIGINT NOT NULL
);

CREATE TABLE room_affiliations (
    room        TEXT NOT NULL REFERENCES rooms (address) ON DELETE CASCADE,
    member      TEXT NOT NULL,
    affiliation TEXT NOT NULL
        CHECK (affiliation IN ('owner', 'admin', 'member', 'outcast')),
    PRIMARY KEY (room, member)
);

CREATE TABLE room_history (
    id   BIGSERIAL PRIMARY KEY,
    room TEXT NOT NULL REFERENCES rooms (address) ON DELETE CASCADE,
    nick TEXT NOT NULL,
    body TEXT NOT NULL,
    at   BIGINT NOT NULL
);
CREATE INDEX room_history_by_room ON room_history (room, id);
