-- As SQLite's 0008_cluster.sql: the node holding a binding's flow and the
-- Route through it; kept messages claimed by the node delivering them.
ALTER TABLE bindings ADD COLUMN node TEXT NOT NULL DEFAULT '';
ALTER TABLE bindings ADD COLUMN node_route TEXT NOT NULL DEFAULT '';
ALTER TABLE offline_messages ADD COLUMN claimed_until BIGINT NOT NULL DEFAULT 0;

-- Every node keeps what it serves in memory and learns of the others'
-- changes from these notifications (LISTEN parley_bindings,
-- parley_offline), never by polling on the request path.
CREATE FUNCTION parley_binding_changed() RETURNS trigger AS $$
BEGIN
    PERFORM pg_notify('parley_bindings', COALESCE(NEW.aor, OLD.aor));
    RETURN NULL;
END
$$ LANGUAGE plpgsql;

CREATE TRIGGER bindings_changed AFTER INSERT OR UPDATE OR DELETE ON bindings
    FOR EACH ROW EXECUTE FUNCTION parley_binding_changed();

CREATE FUNCTION parley_offline_changed() RETURNS trigger AS $$
BEGIN
    PERFORM pg_notify('parley_offline', COALESCE(NEW.aor, OLD.aor));
    RETURN NULL;
END
$$ LANGUAGE plpgsql;

CREATE TRIGGER offline_changed AFTER INSERT OR DELETE ON offline_messages
    FOR EACH ROW EXECUTE FUNCTION parley_offline_changed();
