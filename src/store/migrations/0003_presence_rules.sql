-- Who may watch whom (RFC 3856 §6.6, the sub-handling of RFC 5025):
-- allow, deny (403), polite-block (accepted, sees only "closed").
-- A watcher of '*' is the presentity's rule for everyone without one.
CREATE TABLE presence_rules (
    presentity TEXT NOT NULL,
    watcher TEXT NOT NULL,
    decision TEXT NOT NULL CHECK (decision IN ('allow', 'deny', 'polite-block')),
    -- Grows with every change, so a running server can tell it must reload.
    updated INTEGER NOT NULL,
    PRIMARY KEY (presentity, watcher)
);
