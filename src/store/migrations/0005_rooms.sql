-- Chat rooms Parley hosts that outlive their last member (persistent
-- rooms), with their settings, the members' long-lived standing and the
-- history replayed on entry.
CREATE TABLE rooms (
    address TEXT PRIMARY KEY NOT NULL,
    subject TEXT NOT NULL DEFAULT '',
    public INTEGER NOT NULL,
    members_only INTEGER NOT NULL,
    moderated INTEGER NOT NULL,
    password TEXT,
    history INTEGER NOT NULL,
    max_members INTEGER NOT NULL,
    created_at INTEGER NOT NULL
);

CREATE TABLE room_affiliations (
    room TEXT NOT NULL REFERENCES rooms (address) ON DELETE CASCADE,
    member TEXT NOT NULL,
    affiliation TEXT NOT NULL
        CHECK (affiliation IN ('owner', 'admin', 'member', 'outcast')),
    PRIMARY KEY (room, member)
);

CREATE TABLE room_history (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    room TEXT NOT NULL REFERENCES rooms (address) ON DELETE CASCADE,
    nick TEXT NOT NULL,
    body TEXT NOT NULL,
    at INTEGER NOT NULL
);
CREATE INDEX room_history_by_room ON room_history (room, id);
