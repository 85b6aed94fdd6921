-- As SQLite's 0009_presence_documents.sql, with a notification to the
-- other nodes (LISTEN parley_presence) on every change.
CREATE TABLE presence_documents (
    presentity TEXT NOT NULL,
    node       TEXT NOT NULL,
    document   TEXT NOT NULL,
    expires_at BIGINT NOT NULL,
    PRIMARY KEY (presentity, node)
);

CREATE FUNCTION parley_presence_changed() RETURNS trigger AS $$
BEGIN
    PERFORM pg_notify('parley_presence', COALESCE(NEW.presentity, OLD.presentity));
    RETURN NULL;
END
$$ LANGUAGE plpgsql;

CREATE TRIGGER presence_documents_changed AFTER INSERT OR UPDATE OR DELETE ON presence_documents
    FOR EACH ROW EXECUTE FUNCTION parley_presence_changed();
