-- The compliance archive: every message that crossed the company boundary
-- (or every message, as configured), normalised to CPIM, with its routing
-- facts and the policy's decision.
CREATE TABLE archive (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    at INTEGER NOT NULL,
    source_protocol TEXT NOT NULL,
    destination_protocol TEXT NOT NULL,
    sender TEXT NOT NULL,
    recipient TEXT NOT NULL,
    peer_domain TEXT NOT NULL,
    auth TEXT NOT NULL,
    decision TEXT NOT NULL,
    cpim TEXT NOT NULL
);
CREATE INDEX archive_at ON archive (at);
CREATE INDEX archive_sender ON archive (sender);
CREATE INDEX archive_recipient ON archive (recipient);
CREATE INDEX archive_peer_domain ON archive (peer_domain);
