-- SIP Outbound (RFC 5626): a binding is a flow of one instance, one per
-- (instance, reg-id); the same contact URI may be registered over several
-- flows, so reg-id joins the key (0: not an outbound binding).
CREATE TABLE bindings_flows (
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
    instance   TEXT NOT NULL DEFAULT '',
    reg_id     INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (aor, uri, reg_id)
);
INSERT INTO bindings_flows
    (aor, uri, contact, expires_at, q, call_id, cseq, path, transport, source)
    SELECT aor, uri, contact, expires_at, q, call_id, cseq, path, transport, source
    FROM bindings;
DROP TABLE bindings;
ALTER TABLE bindings_flows RENAME TO bindings;
