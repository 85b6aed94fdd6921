-- Several nodes: each node's composed presence document of a presentity
-- that publishes there, so a watcher on another node sees it.
CREATE TABLE presence_documents (
    presentity TEXT NOT NULL,
    node       TEXT NOT NULL,
    document   TEXT NOT NULL,
    expires_at INTEGER NOT NULL,
    PRIMARY KEY (presentity, node)
);
