//! Durable state behind one trait, [`Store`]: users (HA1 values) and
//! registrar bindings. SQLite through sqlx is the embedded default; the
//! schema lives in `src/store/migrations`, applied on open.
//!
//! The hot path never waits on the database: the services keep what they
//! serve in memory and write through, off the request path.

use std::future::Future;
use std::path::Path;
use std::pin::Pin;

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Row, SqlitePool};

use crate::proto::digest::Algorithm;

pub mod postgres;
mod rows;

pub use postgres::PostgresStore;

/// The store `[store]` names: PostgreSQL for `url = "postgres://…"`, else
/// SQLite in `sqlite_path` (the embedded default).
pub async fn open(
    config: &crate::config::StoreConfig,
    sqlite_path: &Path,
) -> Result<std::sync::Arc<dyn Store>, StoreError> {
    Ok(match &config.url {
        Some(url) if crate::config::is_postgres_url(url) => {
            std::sync::Arc::new(PostgresStore::open(url).await?)
        }
        _ => std::sync::Arc::new(SqliteStore::open(sqlite_path).await?),
    })
}

/// The store a URL names: `postgres://…` (or `postgresql://…`), or
/// `sqlite:PATH`.
pub async fn open_url(url: &str) -> Result<std::sync::Arc<dyn Store>, StoreError> {
    if crate::config::is_postgres_url(url) {
        return Ok(std::sync::Arc::new(PostgresStore::open(url).await?));
    }
    match url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))
    {
        Some(path) if !path.is_empty() => {
            if !Path::new(path).exists() {
                return Err(StoreError(format!("{path}: no such database")));
            }
            Ok(std::sync::Arc::new(
                SqliteStore::open(Path::new(path)).await?,
            ))
        }
        _ => Err(StoreError(format!(
            "{url:?}: a store is sqlite:PATH or postgres://user@host/database"
        ))),
    }
}

/// How many rows of each kind [`copy`] moved.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Copied {
    /// (what, how many), in the order copied.
    pub counts: Vec<(&'static str, usize)>,
}

/// Copies everything `from` holds into `to`, which must hold no users,
/// bindings, kept messages, rules, archive or rooms yet: users, bindings,
/// kept messages (new ids, same order), presence rules, the archive
/// (oldest first), rooms with their affiliations and histories.
pub async fn copy(from: &dyn Store, to: &dyn Store) -> Result<Copied, StoreError> {
    let everything = ArchiveQuery {
        address: None,
        domain: None,
        since: None,
        until: None,
        limit: i64::MAX,
    };
    let empty = to.users().await?.is_empty()
        && to.bindings().await?.is_empty()
        && to.offline_counts().await?.is_empty()
        && to.presence_rules().await?.is_empty()
        && to.rooms().await?.is_empty()
        && to
            .search_archive(&ArchiveQuery {
                limit: 1,
                ..everything.clone()
            })
            .await?
            .is_empty();
    if !empty {
        return Err(StoreError(
            "the destination holds data already: migrate into an empty database".into(),
        ));
    }
    let mut out = Copied::default();
    let users = from.users().await?;
    for u in &users {
        to.put_user(u).await?;
    }
    out.counts.push(("users", users.len()));
    let bindings = from.bindings().await?;
    for b in &bindings {
        to.put_binding(b).await?;
    }
    out.counts.push(("bindings", bindings.len()));
    let mut kept = 0;
    for (aor, _) in from.offline_counts().await? {
        for m in from.offline_for(&aor).await? {
            to.put_offline(&m).await?;
            kept += 1;
        }
    }
    out.counts.push(("offline messages", kept));
    let rules = from.presence_rules().await?;
    for (p, w, d) in &rules {
        to.put_presence_rule(p, w, d).await?;
    }
    out.counts.push(("presence rules", rules.len()));
    let mut archive = from.search_archive(&everything).await?;
    archive.reverse();
    for chunk in archive.chunks(1000) {
        to.put_archive_batch(chunk).await?;
    }
    out.counts.push(("archived messages", archive.len()));
    let rooms = from.rooms().await?;
    let mut lines = 0;
    for r in &rooms {
        to.put_room(r).await?;
        let history = from.room_history(&r.address, usize::MAX >> 1).await?;
        for l in &history {
            to.put_room_line(&r.address, l, history.len()).await?;
        }
        lines += history.len();
    }
    out.counts.push(("rooms", rooms.len()));
    let affiliations = from.room_affiliations().await?;
    for (room, member, a) in &affiliations {
        to.put_room_affiliation(room, member, a).await?;
    }
    out.counts.push(("room affiliations", affiliations.len()));
    out.counts.push(("room history lines", lines));
    Ok(out)
}

/// How many rows of each kind a store holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Census {
    /// Users.
    pub users: usize,
    /// Bindings.
    pub bindings: usize,
    /// Kept messages.
    pub offline: i64,
    /// Presence rules.
    pub rules: usize,
    /// Archived messages.
    pub archive: usize,
    /// Rooms.
    pub rooms: usize,
    /// Room affiliations.
    pub affiliations: usize,
}

/// Counts what `s` holds.
pub async fn census(s: &dyn Store) -> Result<Census, StoreError> {
    Ok(Census {
        users: s.users().await?.len(),
        bindings: s.bindings().await?.len(),
        offline: s.offline_counts().await?.iter().map(|(_, n)| n).sum(),
        rules: s.presence_rules().await?.len(),
        archive: s
            .search_archive(&ArchiveQuery {
                limit: i64::MAX,
                ..Default::default()
            })
            .await?
            .len(),
        rooms: s.rooms().await?.len(),
        affiliations: s.room_affiliations().await?.len(),
    })
}

/// A boxed future, so [`Store`] can be used as a trait object.
pub type StoreFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, StoreError>> + Send + 'a>>;

/// A database failure.
#[derive(Debug, thiserror::Error)]
#[error("store: {0}")]
pub struct StoreError(String);

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        StoreError(e.to_string())
    }
}

impl From<sqlx::migrate::MigrateError> for StoreError {
    fn from(e: sqlx::migrate::MigrateError) -> Self {
        StoreError(e.to_string())
    }
}

/// A user: an address in a local domain and one HA1 per algorithm.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    /// The user part.
    pub username: String,
    /// The domain (also the digest realm).
    pub domain: String,
    /// `H(username:realm:password)` for MD5, SHA-256 and SHA-512-256.
    pub ha1: [String; 3],
}

impl User {
    /// A user with the HA1 values of `password` (the password is not kept).
    pub fn with_password(username: &str, domain: &str, password: &str) -> User {
        let ha1 = [Algorithm::Md5, Algorithm::Sha256, Algorithm::Sha512_256]
            .map(|a| a.ha1(username, domain, password));
        User {
            username: username.to_string(),
            domain: domain.to_string(),
            ha1,
        }
    }

    /// The HA1 for `algorithm`.
    pub fn ha1(&self, algorithm: Algorithm) -> &str {
        match algorithm {
            Algorithm::Md5 => &self.ha1[0],
            Algorithm::Sha256 => &self.ha1[1],
            Algorithm::Sha512_256 => &self.ha1[2],
        }
    }
}

/// A registrar binding as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BindingRow {
    /// The address of record, `user@domain`.
    pub aor: String,
    /// The contact URI as sent.
    pub uri: String,
    /// The whole Contact value as sent (parameters kept exactly).
    pub contact: String,
    /// Expiry, seconds since the Unix epoch.
    pub expires_at: i64,
    /// q-value in thousandths.
    pub q: i64,
    /// Call-ID of the last REGISTER that touched it.
    pub call_id: String,
    /// CSeq number of that REGISTER.
    pub cseq: i64,
    /// The Path values (RFC 3327), comma-separated.
    pub path: String,
    /// The transport the REGISTER came over.
    pub transport: String,
    /// The address it came from.
    pub source: String,
    /// The `+sip.instance` of an outbound binding (RFC 5626), else empty.
    pub instance: String,
    /// Its `reg-id`, 0 when not an outbound binding.
    pub reg_id: i64,
    /// The User-Agent of the REGISTER (empty without one).
    pub user_agent: String,
    /// The node holding the binding's flow (empty for a single node).
    pub node: String,
    /// The Route that reaches the flow through that node, empty when the
    /// binding is reached directly.
    pub node_route: String,
}

/// A MESSAGE kept for a user with no registered contact.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OfflineRow {
    /// Assigned by the store (0 before).
    pub id: i64,
    /// The recipient, `user@domain`.
    pub aor: String,
    /// The From value of the original request.
    pub sender: String,
    /// Its Content-Type.
    pub content_type: String,
    /// Its body.
    pub body: Vec<u8>,
    /// When it was accepted, Unix seconds.
    pub received_at: i64,
    /// When it is given up, Unix seconds.
    pub expires_at: i64,
}

/// One archived message with its routing facts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArchiveRow {
    /// Assigned by the store (0 before).
    pub id: i64,
    /// When it crossed, Unix seconds.
    pub at: i64,
    /// `sip`, `xmpp`, …
    pub source_protocol: String,
    /// `sip`, `xmpp`, …
    pub destination_protocol: String,
    /// `user@domain`.
    pub sender: String,
    /// `user@domain`.
    pub recipient: String,
    /// The remote domain it came from or went to.
    pub peer_domain: String,
    /// How that peer authenticated (`certificate`, `dialback`, `digest`…).
    pub auth: String,
    /// `delivered`, `accepted`, or `refused: reason`.
    pub decision: String,
    /// The message as CPIM (RFC 3862).
    pub cpim: String,
}

/// What to look for in the archive (all given conditions must hold).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ArchiveQuery {
    /// Sender or recipient, `user@domain`.
    pub address: Option<String>,
    /// Peer, sender or recipient domain.
    pub domain: Option<String>,
    /// From this time on, Unix seconds.
    pub since: Option<i64>,
    /// Before this time, Unix seconds.
    pub until: Option<i64>,
    /// At most this many, newest first.
    pub limit: i64,
}

/// A persistent room and its settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoomRow {
    /// `name@conference.example.com`.
    pub address: String,
    /// Its subject.
    pub subject: String,
    /// Listed in the directory.
    pub public: bool,
    /// Only members may enter.
    pub members_only: bool,
    /// Only participants may speak.
    pub moderated: bool,
    /// Needed to enter.
    pub password: Option<String>,
    /// Messages kept and replayed.
    pub history: i64,
    /// Members present at most.
    pub max_members: i64,
    /// Unix seconds.
    pub created_at: i64,
}

/// One message of a room's history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoomLine {
    /// The speaker's nickname.
    pub nick: String,
    /// What was said.
    pub body: String,
    /// Unix seconds.
    pub at: i64,
}

/// Durable state. Every method is a short database call; none is made on
/// the request path.
pub trait Store: Send + Sync {
    /// Adds a user or replaces its HA1 values.
    fn put_user<'a>(&'a self, user: &'a User) -> StoreFuture<'a, ()>;
    /// Removes a user; false when there was none.
    fn remove_user<'a>(&'a self, username: &'a str, domain: &'a str) -> StoreFuture<'a, bool>;
    /// One user.
    fn user<'a>(&'a self, username: &'a str, domain: &'a str) -> StoreFuture<'a, Option<User>>;
    /// Every user, ordered by domain then name.
    fn users(&self) -> StoreFuture<'_, Vec<User>>;
    /// Adds or replaces a binding.
    fn put_binding<'a>(&'a self, binding: &'a BindingRow) -> StoreFuture<'a, ()>;
    /// Removes one binding (its URI and reg-id, 0 for none).
    fn remove_binding<'a>(&'a self, aor: &'a str, uri: &'a str, reg_id: i64)
        -> StoreFuture<'a, ()>;
    /// Removes the bindings that expired at or before `now` (Unix seconds).
    fn remove_expired(&self, now: i64) -> StoreFuture<'_, u64>;
    /// Every binding.
    fn bindings(&self) -> StoreFuture<'_, Vec<BindingRow>>;
    /// Keeps a MESSAGE; returns its id once it is durable.
    fn put_offline<'a>(&'a self, row: &'a OfflineRow) -> StoreFuture<'a, i64>;
    /// The MESSAGEs kept for `aor`, oldest first.
    fn offline_for<'a>(&'a self, aor: &'a str) -> StoreFuture<'a, Vec<OfflineRow>>;
    /// Removes one kept MESSAGE; false when it was already gone.
    fn remove_offline(&self, id: i64) -> StoreFuture<'_, bool>;
    /// The kept MESSAGEs that expired at or before `now`, oldest first.
    fn offline_expired(&self, now: i64) -> StoreFuture<'_, Vec<OfflineRow>>;
    /// How many MESSAGEs are kept, per recipient.
    fn offline_counts(&self) -> StoreFuture<'_, Vec<(String, i64)>>;
    /// How many messages are kept per sender (as the sender was stored).
    fn offline_sender_counts(&self) -> StoreFuture<'_, Vec<(String, i64)>>;
    /// Sets the rule for `watcher` of `presentity` (both `user@domain`;
    /// watcher `*` for everyone else).
    fn put_presence_rule<'a>(
        &'a self,
        presentity: &'a str,
        watcher: &'a str,
        decision: &'a str,
    ) -> StoreFuture<'a, ()>;
    /// Removes a rule; false when there was none.
    fn remove_presence_rule<'a>(
        &'a self,
        presentity: &'a str,
        watcher: &'a str,
    ) -> StoreFuture<'a, bool>;
    /// Every rule as (presentity, watcher, decision), ordered.
    fn presence_rules(&self) -> StoreFuture<'_, Vec<(String, String, String)>>;
    /// Archives one message; its id.
    fn put_archive<'a>(&'a self, row: &'a ArchiveRow) -> StoreFuture<'a, i64>;
    /// Archives several messages in one transaction.
    fn put_archive_batch<'a>(&'a self, rows: &'a [ArchiveRow]) -> StoreFuture<'a, ()>;
    /// Archived messages matching `query`, newest first.
    fn search_archive<'a>(&'a self, query: &'a ArchiveQuery) -> StoreFuture<'a, Vec<ArchiveRow>>;
    /// Removes what was archived before `before`; how many.
    fn expire_archive(&self, before: i64) -> StoreFuture<'_, u64>;
    /// A value that changes whenever the rules change.
    fn presence_rules_version(&self) -> StoreFuture<'_, (i64, i64)>;
    /// Adds a room or replaces its settings and subject.
    fn put_room<'a>(&'a self, room: &'a RoomRow) -> StoreFuture<'a, ()>;
    /// Removes a room with its affiliations and history; false when there
    /// was none.
    fn remove_room<'a>(&'a self, address: &'a str) -> StoreFuture<'a, bool>;
    /// Every room, ordered by address.
    fn rooms(&self) -> StoreFuture<'_, Vec<RoomRow>>;
    /// Sets `member`'s affiliation in `room` (`none` removes it).
    fn put_room_affiliation<'a>(
        &'a self,
        room: &'a str,
        member: &'a str,
        affiliation: &'a str,
    ) -> StoreFuture<'a, ()>;
    /// Every affiliation as (room, member, affiliation), ordered.
    fn room_affiliations(&self) -> StoreFuture<'_, Vec<(String, String, String)>>;
    /// Adds a line to `room`'s history and keeps only its last `keep`.
    fn put_room_line<'a>(
        &'a self,
        room: &'a str,
        line: &'a RoomLine,
        keep: usize,
    ) -> StoreFuture<'a, ()>;
    /// The last `limit` lines of `room`'s history, oldest first.
    fn room_history<'a>(&'a self, room: &'a str, limit: usize) -> StoreFuture<'a, Vec<RoomLine>>;
    /// Writes a consistent copy to `to` while others keep writing; its
    /// size in bytes.
    fn backup<'a>(&'a self, to: &'a Path) -> StoreFuture<'a, u64>;
    /// Claims the kept MESSAGEs for `aor` that no node is delivering, for
    /// this node until `until` (Unix seconds), oldest first: two nodes
    /// never claim the same message.
    fn claim_offline<'a>(
        &'a self,
        aor: &'a str,
        now: i64,
        until: i64,
    ) -> StoreFuture<'a, Vec<OfflineRow>>;
    /// Gives claimed messages back (not delivered).
    fn release_offline<'a>(&'a self, ids: &'a [i64]) -> StoreFuture<'a, ()>;
    /// The bindings of one address of record.
    fn bindings_of<'a>(&'a self, aor: &'a str) -> StoreFuture<'a, Vec<BindingRow>> {
        Box::pin(async move {
            Ok(self
                .bindings()
                .await?
                .into_iter()
                .filter(|b| b.aor == aor)
                .collect())
        })
    }
    /// Sets this node's presence document of `presentity` (`None`
    /// removes it): what watchers on other nodes compose with theirs.
    fn put_presence_document<'a>(
        &'a self,
        presentity: &'a str,
        node: &'a str,
        document: Option<(&'a str, i64)>,
    ) -> StoreFuture<'a, ()>;
    /// Every node's presence document of `presentity`, as (node,
    /// document, expires_at).
    fn presence_documents<'a>(
        &'a self,
        presentity: &'a str,
    ) -> StoreFuture<'a, Vec<(String, String, i64)>>;
    /// Writes this node's row.
    fn put_node<'a>(&'a self, node: &'a NodeRow) -> StoreFuture<'a, ()>;
    /// Every node's row, by name.
    fn nodes(&self) -> StoreFuture<'_, Vec<NodeRow>>;
    /// Changes other nodes made, as the engine tells them; `None` for a
    /// store only this process writes.
    fn changes(&self) -> Option<tokio::sync::broadcast::Receiver<Change>> {
        None
    }
}

/// A node of a cluster as it last said it was.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeRow {
    /// `[cluster] node`.
    pub name: String,
    /// Its SIP addresses (`udp 127.0.0.1:5060, …`).
    pub sip: String,
    /// Its console's address (empty without one).
    pub admin: String,
    /// Parley's version there.
    pub version: String,
    /// Unix seconds.
    pub started_at: i64,
    /// When it last wrote this row, Unix seconds.
    pub seen_at: i64,
    /// The bindings it holds.
    pub registrations: i64,
}

/// A change another node made to the shared store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// The bindings of this address of record changed.
    Bindings(String),
    /// A message was kept for, or taken from, this address of record.
    Offline(String),
    /// A node's presence document of this presentity changed.
    Presence(String),
    /// Notifications were lost (the connection to the engine dropped):
    /// read everything again.
    Resync,
}

/// SQLite, the embedded default.
///
/// WAL with `synchronous=NORMAL` for everything a crash of Parley may not
/// lose but a power cut may (bindings are refreshed by the user agents,
/// the archive is best effort); a connection of its own with
/// `synchronous=FULL` for the writes that back a 202 (kept messages), so
/// they are on disk before the 202 leaves, across power loss too.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    pool: SqlitePool,
    durable: SqlitePool,
}

impl SqliteStore {
    /// Opens (creating when missing) the database file and applies the
    /// migrations.
    pub async fn open(path: &Path) -> Result<SqliteStore, StoreError> {
        // The database holds HA1 values: private from its first byte.
        if let Some(dir) = path.parent() {
            crate::sys::private_dir(dir)
                .map_err(|e| StoreError(format!("cannot create {}: {e}", dir.display())))?;
        }
        crate::sys::private_file(path)
            .map_err(|e| StoreError(format!("cannot create {}: {e}", path.display())))?;
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(std::time::Duration::from_secs(5));
        // Connections a burst opened close after a quiet half minute, and
        // with them their page caches: memory returns to its idle level.
        let quiet = std::time::Duration::from_secs(30);
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .min_connections(1)
            .idle_timeout(quiet)
            .connect_with(options.clone())
            .await?;
        sqlx::migrate!("src/store/migrations").run(&pool).await?;
        let durable = SqlitePoolOptions::new()
            .max_connections(1)
            .idle_timeout(quiet)
            .connect_with(options.synchronous(SqliteSynchronous::Full))
            .await?;
        Ok(SqliteStore { pool, durable })
    }

    /// Writes a consistent copy of the database to `to` (which must not
    /// exist), readable by its owner alone, while others keep writing:
    /// SQLite's `VACUUM INTO` reads one snapshot.
    async fn vacuum_into(&self, to: &Path) -> Result<u64, StoreError> {
        if to.exists() {
            return Err(StoreError(format!("{} exists already", to.display())));
        }
        crate::sys::write_private(to, b"")
            .map_err(|e| StoreError(format!("cannot create {}: {e}", to.display())))?;
        let result = sqlx::query("VACUUM INTO ?")
            .bind(to.to_string_lossy().as_ref())
            .execute(&self.pool)
            .await;
        if let Err(e) = result {
            let _ = std::fs::remove_file(to);
            return Err(e.into());
        }
        Ok(std::fs::metadata(to).map_or(0, |m| m.len()))
    }
}

/// The INSERT of one archive row.
fn insert_archive(
    row: &ArchiveRow,
) -> sqlx::query::Query<'_, sqlx::Sqlite, sqlx::sqlite::SqliteArguments<'_>> {
    sqlx::query(
        "INSERT INTO archive (at, source_protocol, destination_protocol, sender,
         recipient, peer_domain, auth, decision, cpim)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(row.at)
    .bind(&row.source_protocol)
    .bind(&row.destination_protocol)
    .bind(&row.sender)
    .bind(&row.recipient)
    .bind(&row.peer_domain)
    .bind(&row.auth)
    .bind(&row.decision)
    .bind(&row.cpim)
}

impl Store for SqliteStore {
    fn put_node<'a>(&'a self, n: &'a NodeRow) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            sqlx::query(
                "INSERT OR REPLACE INTO nodes
                 (name, sip, admin, version, started_at, seen_at, registrations)
                 VALUES (?, ?, ?, ?, ?, ?, ?)",
            )
            .bind(&n.name)
            .bind(&n.sip)
            .bind(&n.admin)
            .bind(&n.version)
            .bind(n.started_at)
            .bind(n.seen_at)
            .bind(n.registrations)
            .execute(&self.pool)
            .await?;
            Ok(())
        })
    }

    fn nodes(&self) -> StoreFuture<'_, Vec<NodeRow>> {
        Box::pin(async move {
            let rows = sqlx::query("SELECT * FROM nodes ORDER BY name")
                .fetch_all(&self.pool)
                .await?;
            Ok(rows.iter().map(rows::node_of).collect::<Result<_, _>>()?)
        })
    }

    fn put_presence_document<'a>(
        &'a self,
        presentity: &'a str,
        node: &'a str,
        document: Option<(&'a str, i64)>,
    ) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            match document {
                Some((doc, expires_at)) => {
                    sqlx::query(
                        "INSERT OR REPLACE INTO presence_documents
                         (presentity, node, document, expires_at) VALUES (?, ?, ?, ?)",
                    )
                    .bind(presentity)
                    .bind(node)
                    .bind(doc)
                    .bind(expires_at)
                    .execute(&self.pool)
                    .await?;
                }
                None => {
                    sqlx::query("DELETE FROM presence_documents WHERE presentity = ? AND node = ?")
                        .bind(presentity)
                        .bind(node)
                        .execute(&self.pool)
                        .await?;
                }
            }
            Ok(())
        })
    }

    fn presence_documents<'a>(
        &'a self,
        presentity: &'a str,
    ) -> StoreFuture<'a, Vec<(String, String, i64)>> {
        Box::pin(async move {
            let rows = sqlx::query(
                "SELECT node, document, expires_at FROM presence_documents
                 WHERE presentity = ? ORDER BY node",
            )
            .bind(presentity)
            .fetch_all(&self.pool)
            .await?;
            rows::all(&rows, rows::texts2_int)
        })
    }

    fn claim_offline<'a>(
        &'a self,
        aor: &'a str,
        now: i64,
        until: i64,
    ) -> StoreFuture<'a, Vec<OfflineRow>> {
        Box::pin(async move {
            let rows = sqlx::query(
                "UPDATE offline_messages SET claimed_until = ?3
                 WHERE aor = ?1 AND claimed_until <= ?2 RETURNING *",
            )
            .bind(aor)
            .bind(now)
            .bind(until)
            .fetch_all(&self.durable)
            .await?;
            let mut rows: Vec<OfflineRow> = rows
                .iter()
                .map(rows::offline_of)
                .collect::<Result<_, _>>()?;
            rows.sort_by_key(|r| r.id);
            Ok(rows)
        })
    }

    fn release_offline<'a>(&'a self, ids: &'a [i64]) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            for id in ids {
                sqlx::query("UPDATE offline_messages SET claimed_until = 0 WHERE id = ?")
                    .bind(id)
                    .execute(&self.pool)
                    .await?;
            }
            Ok(())
        })
    }

    fn backup<'a>(&'a self, to: &'a Path) -> StoreFuture<'a, u64> {
        Box::pin(self.vacuum_into(to))
    }

    fn put_archive<'a>(&'a self, row: &'a ArchiveRow) -> StoreFuture<'a, i64> {
        Box::pin(async move {
            let r = insert_archive(row).execute(&self.pool).await?;
            Ok(r.last_insert_rowid())
        })
    }

    fn put_archive_batch<'a>(&'a self, rows: &'a [ArchiveRow]) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            let mut tx = self.pool.begin().await?;
            for row in rows {
                insert_archive(row).execute(&mut *tx).await?;
            }
            tx.commit().await?;
            Ok(())
        })
    }

    fn search_archive<'a>(&'a self, q: &'a ArchiveQuery) -> StoreFuture<'a, Vec<ArchiveRow>> {
        Box::pin(async move {
            let address = q.address.as_deref().map(str::to_ascii_lowercase);
            let domain = q.domain.as_deref().map(str::to_ascii_lowercase);
            let rows = sqlx::query(
                "SELECT * FROM archive
                 WHERE (?1 IS NULL OR lower(sender) = ?1 OR lower(recipient) = ?1)
                   AND (?2 IS NULL OR lower(peer_domain) = ?2
                        OR lower(sender) LIKE '%@' || ?2 OR lower(recipient) LIKE '%@' || ?2)
                   AND (?3 IS NULL OR at >= ?3)
                   AND (?4 IS NULL OR at < ?4)
                 ORDER BY id DESC LIMIT ?5",
            )
            .bind(address)
            .bind(domain)
            .bind(q.since)
            .bind(q.until)
            .bind(if q.limit > 0 { q.limit } else { 100 })
            .fetch_all(&self.pool)
            .await?;
            Ok(rows
                .iter()
                .map(rows::archive_of)
                .collect::<Result<_, _>>()?)
        })
    }

    fn expire_archive(&self, before: i64) -> StoreFuture<'_, u64> {
        Box::pin(async move {
            let r = sqlx::query("DELETE FROM archive WHERE at < ?")
                .bind(before)
                .execute(&self.pool)
                .await?;
            Ok(r.rows_affected())
        })
    }

    fn put_presence_rule<'a>(
        &'a self,
        presentity: &'a str,
        watcher: &'a str,
        decision: &'a str,
    ) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            sqlx::query(
                "INSERT OR REPLACE INTO presence_rules (presentity, watcher, decision, updated)
                 VALUES (?, ?, ?, (SELECT COALESCE(MAX(updated), 0) + 1 FROM presence_rules))",
            )
            .bind(presentity)
            .bind(watcher)
            .bind(decision)
            .execute(&self.pool)
            .await?;
            Ok(())
        })
    }

    fn remove_presence_rule<'a>(
        &'a self,
        presentity: &'a str,
        watcher: &'a str,
    ) -> StoreFuture<'a, bool> {
        Box::pin(async move {
            let r = sqlx::query("DELETE FROM presence_rules WHERE presentity = ? AND watcher = ?")
                .bind(presentity)
                .bind(watcher)
                .execute(&self.pool)
                .await?;
            Ok(r.rows_affected() > 0)
        })
    }

    fn presence_rules(&self) -> StoreFuture<'_, Vec<(String, String, String)>> {
        Box::pin(async move {
            let rows = sqlx::query(
                "SELECT presentity, watcher, decision FROM presence_rules ORDER BY presentity, watcher",
            )
            .fetch_all(&self.pool)
            .await?;
            rows::all(&rows, rows::texts3)
        })
    }

    fn presence_rules_version(&self) -> StoreFuture<'_, (i64, i64)> {
        Box::pin(async move {
            let r = sqlx::query("SELECT COUNT(*), COALESCE(MAX(updated), 0) FROM presence_rules")
                .fetch_one(&self.pool)
                .await?;
            Ok((r.try_get(0)?, r.try_get(1)?))
        })
    }

    fn put_room<'a>(&'a self, r: &'a RoomRow) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            sqlx::query(
                "INSERT INTO rooms (address, subject, public, members_only, moderated, password,
                                    history, max_members, created_at)
                 VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
                 ON CONFLICT (address) DO UPDATE SET subject = excluded.subject,
                    public = excluded.public, members_only = excluded.members_only,
                    moderated = excluded.moderated, password = excluded.password,
                    history = excluded.history, max_members = excluded.max_members",
            )
            .bind(&r.address)
            .bind(&r.subject)
            .bind(r.public)
            .bind(r.members_only)
            .bind(r.moderated)
            .bind(&r.password)
            .bind(r.history)
            .bind(r.max_members)
            .bind(r.created_at)
            .execute(&self.pool)
            .await?;
            Ok(())
        })
    }

    fn remove_room<'a>(&'a self, address: &'a str) -> StoreFuture<'a, bool> {
        Box::pin(async move {
            let r = sqlx::query("DELETE FROM rooms WHERE address = ?")
                .bind(address)
                .execute(&self.pool)
                .await?;
            Ok(r.rows_affected() > 0)
        })
    }

    fn rooms(&self) -> StoreFuture<'_, Vec<RoomRow>> {
        Box::pin(async move {
            let rows = sqlx::query(
                "SELECT address, subject, public, members_only, moderated, password, history,
                        max_members, created_at FROM rooms ORDER BY address",
            )
            .fetch_all(&self.pool)
            .await?;
            rows::all(&rows, rows::room_of)
        })
    }

    fn put_room_affiliation<'a>(
        &'a self,
        room: &'a str,
        member: &'a str,
        affiliation: &'a str,
    ) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            if affiliation == "none" {
                sqlx::query("DELETE FROM room_affiliations WHERE room = ? AND member = ?")
                    .bind(room)
                    .bind(member)
                    .execute(&self.pool)
                    .await?;
            } else {
                sqlx::query(
                    "INSERT OR REPLACE INTO room_affiliations (room, member, affiliation)
                     VALUES (?, ?, ?)",
                )
                .bind(room)
                .bind(member)
                .bind(affiliation)
                .execute(&self.pool)
                .await?;
            }
            Ok(())
        })
    }

    fn room_affiliations(&self) -> StoreFuture<'_, Vec<(String, String, String)>> {
        Box::pin(async move {
            let rows = sqlx::query(
                "SELECT room, member, affiliation FROM room_affiliations ORDER BY room, member",
            )
            .fetch_all(&self.pool)
            .await?;
            rows::all(&rows, rows::texts3)
        })
    }

    fn put_room_line<'a>(
        &'a self,
        room: &'a str,
        line: &'a RoomLine,
        keep: usize,
    ) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            let mut tx = self.pool.begin().await?;
            sqlx::query("INSERT INTO room_history (room, nick, body, at) VALUES (?, ?, ?, ?)")
                .bind(room)
                .bind(&line.nick)
                .bind(&line.body)
                .bind(line.at)
                .execute(&mut *tx)
                .await?;
            sqlx::query(
                "DELETE FROM room_history WHERE room = ? AND id NOT IN
                    (SELECT id FROM room_history WHERE room = ? ORDER BY id DESC LIMIT ?)",
            )
            .bind(room)
            .bind(room)
            .bind(keep as i64)
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            Ok(())
        })
    }

    fn room_history<'a>(&'a self, room: &'a str, limit: usize) -> StoreFuture<'a, Vec<RoomLine>> {
        Box::pin(async move {
            let rows = sqlx::query(
                "SELECT nick, body, at FROM (SELECT id, nick, body, at FROM room_history
                    WHERE room = ? ORDER BY id DESC LIMIT ?) ORDER BY id",
            )
            .bind(room)
            .bind(limit as i64)
            .fetch_all(&self.pool)
            .await?;
            rows::all(&rows, rows::line_of)
        })
    }

    /// On the durable connection: the commit is synced before it returns.
    fn put_offline<'a>(&'a self, row: &'a OfflineRow) -> StoreFuture<'a, i64> {
        Box::pin(async move {
            let r = sqlx::query(
                "INSERT INTO offline_messages
                 (aor, sender, content_type, body, received_at, expires_at)
                 VALUES (?, ?, ?, ?, ?, ?)",
            )
            .bind(&row.aor)
            .bind(&row.sender)
            .bind(&row.content_type)
            .bind(&row.body)
            .bind(row.received_at)
            .bind(row.expires_at)
            .execute(&self.durable)
            .await?;
            Ok(r.last_insert_rowid())
        })
    }

    fn offline_for<'a>(&'a self, aor: &'a str) -> StoreFuture<'a, Vec<OfflineRow>> {
        Box::pin(async move {
            let rows = sqlx::query("SELECT * FROM offline_messages WHERE aor = ? ORDER BY id")
                .bind(aor)
                .fetch_all(&self.pool)
                .await?;
            Ok(rows
                .iter()
                .map(rows::offline_of)
                .collect::<Result<_, _>>()?)
        })
    }

    fn remove_offline(&self, id: i64) -> StoreFuture<'_, bool> {
        Box::pin(async move {
            let r = sqlx::query("DELETE FROM offline_messages WHERE id = ?")
                .bind(id)
                .execute(&self.pool)
                .await?;
            Ok(r.rows_affected() > 0)
        })
    }

    fn offline_expired(&self, now: i64) -> StoreFuture<'_, Vec<OfflineRow>> {
        Box::pin(async move {
            let rows =
                sqlx::query("SELECT * FROM offline_messages WHERE expires_at <= ? ORDER BY id")
                    .bind(now)
                    .fetch_all(&self.pool)
                    .await?;
            Ok(rows
                .iter()
                .map(rows::offline_of)
                .collect::<Result<_, _>>()?)
        })
    }

    fn offline_counts(&self) -> StoreFuture<'_, Vec<(String, i64)>> {
        Box::pin(async move {
            let rows = sqlx::query("SELECT aor, COUNT(*) AS n FROM offline_messages GROUP BY aor")
                .fetch_all(&self.pool)
                .await?;
            rows::all(&rows, rows::text_int)
        })
    }

    fn offline_sender_counts(&self) -> StoreFuture<'_, Vec<(String, i64)>> {
        Box::pin(async move {
            let rows =
                sqlx::query("SELECT sender, COUNT(*) AS n FROM offline_messages GROUP BY sender")
                    .fetch_all(&self.pool)
                    .await?;
            rows::all(&rows, rows::text_int)
        })
    }

    fn put_user<'a>(&'a self, user: &'a User) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            sqlx::query(
                "INSERT INTO users (username, domain, ha1_md5, ha1_sha256, ha1_sha512_256)
                 VALUES (?, ?, ?, ?, ?)
                 ON CONFLICT (username, domain) DO UPDATE SET
                   ha1_md5 = excluded.ha1_md5, ha1_sha256 = excluded.ha1_sha256,
                   ha1_sha512_256 = excluded.ha1_sha512_256",
            )
            .bind(&user.username)
            .bind(&user.domain)
            .bind(&user.ha1[0])
            .bind(&user.ha1[1])
            .bind(&user.ha1[2])
            .execute(&self.pool)
            .await?;
            Ok(())
        })
    }

    fn remove_user<'a>(&'a self, username: &'a str, domain: &'a str) -> StoreFuture<'a, bool> {
        Box::pin(async move {
            let r = sqlx::query("DELETE FROM users WHERE username = ? AND domain = ?")
                .bind(username)
                .bind(domain)
                .execute(&self.pool)
                .await?;
            Ok(r.rows_affected() > 0)
        })
    }

    fn user<'a>(&'a self, username: &'a str, domain: &'a str) -> StoreFuture<'a, Option<User>> {
        Box::pin(async move {
            let row = sqlx::query("SELECT * FROM users WHERE username = ? AND domain = ?")
                .bind(username)
                .bind(domain)
                .fetch_optional(&self.pool)
                .await?;
            Ok(row.as_ref().map(rows::user_of).transpose()?)
        })
    }

    fn users(&self) -> StoreFuture<'_, Vec<User>> {
        Box::pin(async move {
            let rows = sqlx::query("SELECT * FROM users ORDER BY domain, username")
                .fetch_all(&self.pool)
                .await?;
            Ok(rows.iter().map(rows::user_of).collect::<Result<_, _>>()?)
        })
    }

    fn put_binding<'a>(&'a self, b: &'a BindingRow) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            sqlx::query(
                "INSERT OR REPLACE INTO bindings
                 (aor, uri, contact, expires_at, q, call_id, cseq, path, transport, source,
                  instance, reg_id, user_agent, node, node_route)
                 VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            )
            .bind(&b.aor)
            .bind(&b.uri)
            .bind(&b.contact)
            .bind(b.expires_at)
            .bind(b.q)
            .bind(&b.call_id)
            .bind(b.cseq)
            .bind(&b.path)
            .bind(&b.transport)
            .bind(&b.source)
            .bind(&b.instance)
            .bind(b.reg_id)
            .bind(&b.user_agent)
            .bind(&b.node)
            .bind(&b.node_route)
            .execute(&self.pool)
            .await?;
            Ok(())
        })
    }

    fn remove_binding<'a>(
        &'a self,
        aor: &'a str,
        uri: &'a str,
        reg_id: i64,
    ) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            sqlx::query("DELETE FROM bindings WHERE aor = ? AND uri = ? AND reg_id = ?")
                .bind(aor)
                .bind(uri)
                .bind(reg_id)
                .execute(&self.pool)
                .await?;
            Ok(())
        })
    }

    fn remove_expired(&self, now: i64) -> StoreFuture<'_, u64> {
        Box::pin(async move {
            let r = sqlx::query("DELETE FROM bindings WHERE expires_at <= ?")
                .bind(now)
                .execute(&self.pool)
                .await?;
            Ok(r.rows_affected())
        })
    }

    fn bindings(&self) -> StoreFuture<'_, Vec<BindingRow>> {
        Box::pin(async move {
            let rows = sqlx::query("SELECT * FROM bindings ORDER BY aor, uri")
                .fetch_all(&self.pool)
                .await?;
            rows::all(&rows, rows::binding_of)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(at: i64, sender: &str, recipient: &str, peer: &str) -> ArchiveRow {
        ArchiveRow {
            id: 0,
            at,
            source_protocol: "xmpp".into(),
            destination_protocol: "sip".into(),
            sender: sender.into(),
            recipient: recipient.into(),
            peer_domain: peer.into(),
            auth: "dialback".into(),
            decision: "delivered".into(),
            cpim: "From: <im:a@b>\r\n\r\nContent-Type: text/plain\r\n\r\nx".into(),
        }
    }

    #[tokio::test]
    async fn kept_messages_are_written_with_a_full_sync() {
        let dir = std::env::temp_dir().join(format!("parley-store-sync-{}", std::process::id()));
        let store = SqliteStore::open(&dir.join("t.db")).await.unwrap();
        let level = |pool: &SqlitePool| {
            let pool = pool.clone();
            async move {
                let r = sqlx::query("PRAGMA synchronous")
                    .fetch_one(&pool)
                    .await
                    .unwrap();
                r.get::<i64, _>(0)
            }
        };
        // SQLite: 1 is NORMAL, 2 is FULL.
        assert_eq!(level(&store.pool).await, 1);
        assert_eq!(level(&store.durable).await, 2);
        let id = store
            .put_offline(&OfflineRow {
                id: 0,
                aor: "bob@localhost".into(),
                sender: "<sip:alice@localhost>".into(),
                content_type: "text/plain".into(),
                body: b"hi".to_vec(),
                received_at: 1,
                expires_at: 2,
            })
            .await
            .unwrap();
        let kept = store.offline_for("bob@localhost").await.unwrap();
        assert_eq!(kept.len(), 1);
        assert_eq!(kept[0].id, id);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[tokio::test]
    async fn the_archive_is_searched_and_expired() {
        let dir = std::env::temp_dir().join(format!("parley-store-test-{}", std::process::id()));
        let store = SqliteStore::open(&dir.join("t.db")).await.unwrap();
        store
            .put_archive_batch(&[
                row(100, "juliet@xmpp.test", "romeo@parley.test", "xmpp.test"),
                row(200, "romeo@parley.test", "mallory@evil.test", "evil.test"),
            ])
            .await
            .unwrap();
        store
            .put_archive(&row(
                300,
                "juliet@xmpp.test",
                "alice@parley.test",
                "xmpp.test",
            ))
            .await
            .unwrap();
        let q = |address: Option<&str>, domain: Option<&str>, since, until| ArchiveQuery {
            address: address.map(str::to_string),
            domain: domain.map(str::to_string),
            since,
            until,
            limit: 10,
        };
        let found = store
            .search_archive(&q(Some("Juliet@xmpp.test"), None, None, None))
            .await
            .unwrap();
        assert_eq!(
            found.iter().map(|r| r.at).collect::<Vec<_>>(),
            vec![300, 100],
            "newest first"
        );
        let found = store
            .search_archive(&q(None, Some("evil.test"), None, None))
            .await
            .unwrap();
        assert_eq!(found.len(), 1);
        let found = store
            .search_archive(&q(None, Some("parley.test"), Some(150), Some(300)))
            .await
            .unwrap();
        assert_eq!(found.iter().map(|r| r.at).collect::<Vec<_>>(), vec![200]);
        assert_eq!(store.expire_archive(250).await.unwrap(), 2);
        let left = store
            .search_archive(&q(None, None, None, None))
            .await
            .unwrap();
        assert_eq!(left.iter().map(|r| r.at).collect::<Vec<_>>(), vec![300]);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
