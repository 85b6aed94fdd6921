-- MESSAGEs kept for users with no registered contact (store and forward).
CREATE TABLE offline_messages (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    -- The recipient, user@domain.
    aor TEXT NOT NULL,
    -- The From value of the original request.
    sender TEXT NOT NULL,
    content_type TEXT NOT NULL,
    body BLOB NOT NULL,
    -- Unix seconds.
    received_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
);
CREATE INDEX offline_messages_aor ON offline_messages (aor, id);
CREATE INDEX offline_messages_expiry ON offline_messages (expires_at);
