//! Rows as both engines return them, read into the store's types once:
//! the SQL differs between SQLite and PostgreSQL, the reading does not.

use sqlx::Row;

use super::{ArchiveRow, BindingRow, NodeRow, OfflineRow, RoomLine, RoomRow, StoreError, User};

/// The column reads a row of either engine offers.
pub(crate) trait Columns {
    /// A text column by name.
    fn text(&self, column: &str) -> Result<String, sqlx::Error>;
    /// A text column that may be NULL.
    fn maybe_text(&self, column: &str) -> Result<Option<String>, sqlx::Error>;
    /// An integer column by name.
    fn int(&self, column: &str) -> Result<i64, sqlx::Error>;
    /// A boolean column by name (an integer in SQLite).
    fn flag(&self, column: &str) -> Result<bool, sqlx::Error>;
    /// A binary column by name.
    fn bytes(&self, column: &str) -> Result<Vec<u8>, sqlx::Error>;
    /// A text column by position.
    fn text_at(&self, i: usize) -> Result<String, sqlx::Error>;
    /// An integer column by position.
    fn int_at(&self, i: usize) -> Result<i64, sqlx::Error>;
}

macro_rules! columns {
    ($row:ty) => {
        impl Columns for $row {
            fn text(&self, column: &str) -> Result<String, sqlx::Error> {
                self.try_get(column)
            }
            fn maybe_text(&self, column: &str) -> Result<Option<String>, sqlx::Error> {
                self.try_get(column)
            }
            fn int(&self, column: &str) -> Result<i64, sqlx::Error> {
                self.try_get(column)
            }
            fn flag(&self, column: &str) -> Result<bool, sqlx::Error> {
                self.try_get(column)
            }
            fn bytes(&self, column: &str) -> Result<Vec<u8>, sqlx::Error> {
                self.try_get(column)
            }
            fn text_at(&self, i: usize) -> Result<String, sqlx::Error> {
                self.try_get(i)
            }
            fn int_at(&self, i: usize) -> Result<i64, sqlx::Error> {
                self.try_get(i)
            }
        }
    };
}

columns!(sqlx::sqlite::SqliteRow);
columns!(sqlx::postgres::PgRow);

pub(crate) fn user_of(r: &impl Columns) -> Result<User, sqlx::Error> {
    Ok(User {
        username: r.text("username")?,
        domain: r.text("domain")?,
        ha1: [
            r.text("ha1_md5")?,
            r.text("ha1_sha256")?,
            r.text("ha1_sha512_256")?,
        ],
    })
}

pub(crate) fn offline_of(r: &impl Columns) -> Result<OfflineRow, sqlx::Error> {
    Ok(OfflineRow {
        id: r.int("id")?,
        aor: r.text("aor")?,
        sender: r.text("sender")?,
        content_type: r.text("content_type")?,
        body: r.bytes("body")?,
        received_at: r.int("received_at")?,
        expires_at: r.int("expires_at")?,
    })
}

pub(crate) fn archive_of(r: &impl Columns) -> Result<ArchiveRow, sqlx::Error> {
    Ok(ArchiveRow {
        id: r.int("id")?,
        at: r.int("at")?,
        source_protocol: r.text("source_protocol")?,
        destination_protocol: r.text("destination_protocol")?,
        sender: r.text("sender")?,
        recipient: r.text("recipient")?,
        peer_domain: r.text("peer_domain")?,
        auth: r.text("auth")?,
        decision: r.text("decision")?,
        cpim: r.text("cpim")?,
    })
}

pub(crate) fn binding_of(r: &impl Columns) -> Result<BindingRow, sqlx::Error> {
    Ok(BindingRow {
        aor: r.text("aor")?,
        uri: r.text("uri")?,
        contact: r.text("contact")?,
        expires_at: r.int("expires_at")?,
        q: r.int("q")?,
        call_id: r.text("call_id")?,
        cseq: r.int("cseq")?,
        path: r.text("path")?,
        transport: r.text("transport")?,
        source: r.text("source")?,
        instance: r.text("instance")?,
        reg_id: r.int("reg_id")?,
        user_agent: r.text("user_agent")?,
        node: r.text("node")?,
        node_route: r.text("node_route")?,
    })
}

pub(crate) fn node_of(r: &impl Columns) -> Result<NodeRow, sqlx::Error> {
    Ok(NodeRow {
        name: r.text("name")?,
        sip: r.text("sip")?,
        admin: r.text("admin")?,
        version: r.text("version")?,
        started_at: r.int("started_at")?,
        seen_at: r.int("seen_at")?,
        registrations: r.int("registrations")?,
    })
}

pub(crate) fn room_of(r: &impl Columns) -> Result<RoomRow, sqlx::Error> {
    Ok(RoomRow {
        address: r.text("address")?,
        subject: r.text("subject")?,
        public: r.flag("public")?,
        members_only: r.flag("members_only")?,
        moderated: r.flag("moderated")?,
        password: r.maybe_text("password")?,
        history: r.int("history")?,
        max_members: r.int("max_members")?,
        created_at: r.int("created_at")?,
    })
}

pub(crate) fn line_of(r: &impl Columns) -> Result<RoomLine, sqlx::Error> {
    Ok(RoomLine {
        nick: r.text("nick")?,
        body: r.text("body")?,
        at: r.int("at")?,
    })
}

/// Every row read with `read`.
pub(crate) fn all<R, T>(
    rows: &[R],
    read: impl Fn(&R) -> Result<T, sqlx::Error>,
) -> Result<Vec<T>, StoreError> {
    rows.iter()
        .map(read)
        .collect::<Result<_, sqlx::Error>>()
        .map_err(StoreError::from)
}

/// Rows of three text columns.
pub(crate) fn texts3(r: &impl Columns) -> Result<(String, String, String), sqlx::Error> {
    Ok((r.text_at(0)?, r.text_at(1)?, r.text_at(2)?))
}

/// Rows of two texts and a number.
pub(crate) fn texts2_int(r: &impl Columns) -> Result<(String, String, i64), sqlx::Error> {
    Ok((r.text_at(0)?, r.text_at(1)?, r.int_at(2)?))
}

/// Rows of a text and a count.
pub(crate) fn text_int(r: &impl Columns) -> Result<(String, i64), sqlx::Error> {
    Ok((r.text_at(0)?, r.int_at(1)?))
}
