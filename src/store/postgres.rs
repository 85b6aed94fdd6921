//! PostgreSQL, for several Parley nodes serving the same domains: the
//! [`Store`] of SQLite on a shared engine, with the schema of
//! `src/store/migrations_pg` (the SQLite schema in PostgreSQL's dialect;
//! a test keeps the two equal). Selected by `[store] url =
//! "postgres://…"`; TLS to the database with `sslmode` in the URL
//! (rustls with ring, `sslrootcert` for a private CA).

use std::path::Path;

use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::Row;
use std::sync::{Arc, OnceLock};
use tokio::sync::broadcast;

use super::Change;

use super::rows;
use super::{
    ArchiveQuery, ArchiveRow, BindingRow, OfflineRow, RoomLine, RoomRow, Store, StoreError,
    StoreFuture, User,
};

/// A pool of connections to one PostgreSQL database.
#[derive(Debug, Clone)]
pub struct PostgresStore {
    pool: PgPool,
    /// What the other nodes change, heard with LISTEN (started on first
    /// use).
    changes: Arc<OnceLock<broadcast::Sender<Change>>>,
}

impl PostgresStore {
    /// Connects (`url`, a `postgres://` URL) and applies the migrations.
    /// An unreachable database is an error at once, naming the server
    /// (the URL's password is not shown).
    pub async fn open(url: &str) -> Result<PostgresStore, StoreError> {
        let options: PgConnectOptions = url
            .parse()
            .map_err(|e| StoreError(format!("{}: {e}", redacted(url))))?;
        let pool = PgPoolOptions::new()
            .max_connections(8)
            .min_connections(1)
            .acquire_timeout(std::time::Duration::from_secs(5))
            .idle_timeout(std::time::Duration::from_secs(60))
            .connect_with(options)
            .await
            .map_err(|e| StoreError(format!("cannot reach {}: {e}", redacted(url))))?;
        sqlx::migrate!("src/store/migrations_pg").run(&pool).await?;
        Ok(PostgresStore {
            pool,
            changes: Arc::default(),
        })
    }
}

/// A database URL as it may be shown: without its password.
pub fn redacted(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let userinfo = &url[scheme + 3..at];
            match userinfo.split_once(':') {
                Some((user, _)) => format!("{}{user}:…{}", &url[..scheme + 3], &url[at..]),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

/// The INSERT of one archive row.
fn insert_archive(
    row: &ArchiveRow,
) -> sqlx::query::Query<'_, sqlx::Postgres, sqlx::postgres::PgArguments> {
    sqlx::query(
        "INSERT INTO archive (at, source_protocol, destination_protocol, sender,
         recipient, peer_domain, auth, decision, cpim)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING id",
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

/// Listens on the channels the triggers notify, and hands each change on;
/// after a lost connection (sqlx reconnects), a resync.
async fn listen(pool: PgPool, tx: broadcast::Sender<Change>) {
    let mut delay = std::time::Duration::from_millis(200);
    loop {
        let listener = async {
            let mut l = sqlx::postgres::PgListener::connect_with(&pool).await?;
            l.listen_all(["parley_bindings", "parley_offline", "parley_presence"])
                .await?;
            Ok::<_, sqlx::Error>(l)
        };
        let mut listener = match listener.await {
            Ok(l) => l,
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for the other nodes' changes");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(std::time::Duration::from_secs(10));
                continue;
            }
        };
        delay = std::time::Duration::from_millis(200);
        let _ = tx.send(Change::Resync);
        loop {
            match listener.try_recv().await {
                Ok(Some(n)) => {
                    let aor = n.payload().to_string();
                    let change = match n.channel() {
                        "parley_bindings" => Change::Bindings(aor),
                        "parley_presence" => Change::Presence(aor),
                        _ => Change::Offline(aor),
                    };
                    if tx.send(change).is_err() {
                        return;
                    }
                }
                // The connection dropped: notifications may be lost.
                Ok(None) => {
                    let _ = tx.send(Change::Resync);
                }
                Err(e) => {
                    tracing::warn!(error = %e, "lost the other nodes' changes");
                    break;
                }
            }
            if tx.receiver_count() == 0 {
                return;
            }
        }
    }
}

impl Store for PostgresStore {
    fn put_node<'a>(&'a self, n: &'a super::NodeRow) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            sqlx::query(
                "INSERT INTO nodes (name, sip, admin, version, started_at, seen_at, registrations)
                 VALUES ($1, $2, $3, $4, $5, $6, $7)
                 ON CONFLICT (name) DO UPDATE SET sip = excluded.sip, admin = excluded.admin,
                   version = excluded.version, started_at = excluded.started_at,
                   seen_at = excluded.seen_at, registrations = excluded.registrations",
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

    fn nodes(&self) -> StoreFuture<'_, Vec<super::NodeRow>> {
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
                        "INSERT INTO presence_documents (presentity, node, document, expires_at)
                         VALUES ($1, $2, $3, $4)
                         ON CONFLICT (presentity, node) DO UPDATE SET
                           document = excluded.document, expires_at = excluded.expires_at",
                    )
                    .bind(presentity)
                    .bind(node)
                    .bind(doc)
                    .bind(expires_at)
                    .execute(&self.pool)
                    .await?;
                }
                None => {
                    sqlx::query(
                        "DELETE FROM presence_documents WHERE presentity = $1 AND node = $2",
                    )
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
                 WHERE presentity = $1 ORDER BY node",
            )
            .bind(presentity)
            .fetch_all(&self.pool)
            .await?;
            rows::all(&rows, rows::texts2_int)
        })
    }

    fn changes(&self) -> Option<broadcast::Receiver<Change>> {
        let tx = self.changes.get_or_init(|| {
            let (tx, _) = broadcast::channel(4096);
            tokio::spawn(listen(self.pool.clone(), tx.clone()));
            tx
        });
        Some(tx.subscribe())
    }

    /// Row locks, skipping those another node holds: each message goes to
    /// one node.
    fn claim_offline<'a>(
        &'a self,
        aor: &'a str,
        now: i64,
        until: i64,
    ) -> StoreFuture<'a, Vec<OfflineRow>> {
        Box::pin(async move {
            let rows = sqlx::query(
                "UPDATE offline_messages SET claimed_until = $3 WHERE id IN
                   (SELECT id FROM offline_messages WHERE aor = $1 AND claimed_until <= $2
                    ORDER BY id FOR UPDATE SKIP LOCKED)
                 RETURNING *",
            )
            .bind(aor)
            .bind(now)
            .bind(until)
            .fetch_all(&self.pool)
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
            sqlx::query("UPDATE offline_messages SET claimed_until = 0 WHERE id = ANY($1)")
                .bind(ids)
                .execute(&self.pool)
                .await?;
            Ok(())
        })
    }

    fn bindings_of<'a>(&'a self, aor: &'a str) -> StoreFuture<'a, Vec<BindingRow>> {
        Box::pin(async move {
            let rows = sqlx::query("SELECT * FROM bindings WHERE aor = $1 ORDER BY uri")
                .bind(aor)
                .fetch_all(&self.pool)
                .await?;
            Ok(rows
                .iter()
                .map(rows::binding_of)
                .collect::<Result<_, _>>()?)
        })
    }

    fn put_user<'a>(&'a self, user: &'a User) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            sqlx::query(
                "INSERT INTO users (username, domain, ha1_md5, ha1_sha256, ha1_sha512_256)
                 VALUES ($1, $2, $3, $4, $5)
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
            let r = sqlx::query("DELETE FROM users WHERE username = $1 AND domain = $2")
                .bind(username)
                .bind(domain)
                .execute(&self.pool)
                .await?;
            Ok(r.rows_affected() > 0)
        })
    }

    fn user<'a>(&'a self, username: &'a str, domain: &'a str) -> StoreFuture<'a, Option<User>> {
        Box::pin(async move {
            let row = sqlx::query("SELECT * FROM users WHERE username = $1 AND domain = $2")
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
                "INSERT INTO bindings
                 (aor, uri, contact, expires_at, q, call_id, cseq, path, transport, source,
                  instance, reg_id, user_agent, node, node_route)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)
                 ON CONFLICT (aor, uri, reg_id) DO UPDATE SET
                   contact = excluded.contact, expires_at = excluded.expires_at,
                   q = excluded.q, call_id = excluded.call_id, cseq = excluded.cseq,
                   path = excluded.path, transport = excluded.transport,
                   source = excluded.source, instance = excluded.instance,
                   user_agent = excluded.user_agent, node = excluded.node,
                   node_route = excluded.node_route",
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
            sqlx::query("DELETE FROM bindings WHERE aor = $1 AND uri = $2 AND reg_id = $3")
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
            let r = sqlx::query("DELETE FROM bindings WHERE expires_at <= $1")
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
            Ok(rows
                .iter()
                .map(rows::binding_of)
                .collect::<Result<_, _>>()?)
        })
    }

    /// Committed before it returns (PostgreSQL's default
    /// `synchronous_commit`): the 202 follows a durable row.
    fn put_offline<'a>(&'a self, row: &'a OfflineRow) -> StoreFuture<'a, i64> {
        Box::pin(async move {
            let r = sqlx::query(
                "INSERT INTO offline_messages
                 (aor, sender, content_type, body, received_at, expires_at)
                 VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
            )
            .bind(&row.aor)
            .bind(&row.sender)
            .bind(&row.content_type)
            .bind(&row.body)
            .bind(row.received_at)
            .bind(row.expires_at)
            .fetch_one(&self.pool)
            .await?;
            Ok(r.try_get(0)?)
        })
    }

    fn offline_for<'a>(&'a self, aor: &'a str) -> StoreFuture<'a, Vec<OfflineRow>> {
        Box::pin(async move {
            let rows = sqlx::query("SELECT * FROM offline_messages WHERE aor = $1 ORDER BY id")
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
            let r = sqlx::query("DELETE FROM offline_messages WHERE id = $1")
                .bind(id)
                .execute(&self.pool)
                .await?;
            Ok(r.rows_affected() > 0)
        })
    }

    fn offline_expired(&self, now: i64) -> StoreFuture<'_, Vec<OfflineRow>> {
        Box::pin(async move {
            let rows =
                sqlx::query("SELECT * FROM offline_messages WHERE expires_at <= $1 ORDER BY id")
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
            let rows = sqlx::query("SELECT aor, COUNT(*) FROM offline_messages GROUP BY aor")
                .fetch_all(&self.pool)
                .await?;
            rows::all(&rows, rows::text_int)
        })
    }

    fn offline_sender_counts(&self) -> StoreFuture<'_, Vec<(String, i64)>> {
        Box::pin(async move {
            let rows = sqlx::query("SELECT sender, COUNT(*) FROM offline_messages GROUP BY sender")
                .fetch_all(&self.pool)
                .await?;
            rows::all(&rows, rows::text_int)
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
                "INSERT INTO presence_rules (presentity, watcher, decision, updated)
                 VALUES ($1, $2, $3, (SELECT COALESCE(MAX(updated), 0) + 1 FROM presence_rules))
                 ON CONFLICT (presentity, watcher) DO UPDATE SET
                   decision = excluded.decision, updated = excluded.updated",
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
            let r =
                sqlx::query("DELETE FROM presence_rules WHERE presentity = $1 AND watcher = $2")
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

    fn put_archive<'a>(&'a self, row: &'a ArchiveRow) -> StoreFuture<'a, i64> {
        Box::pin(async move {
            let r = insert_archive(row).fetch_one(&self.pool).await?;
            Ok(r.try_get(0)?)
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
                 WHERE ($1::TEXT IS NULL OR lower(sender) = $1 OR lower(recipient) = $1)
                   AND ($2::TEXT IS NULL OR lower(peer_domain) = $2
                        OR lower(sender) LIKE '%@' || $2 OR lower(recipient) LIKE '%@' || $2)
                   AND ($3::BIGINT IS NULL OR at >= $3)
                   AND ($4::BIGINT IS NULL OR at < $4)
                 ORDER BY id DESC LIMIT $5",
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
            let r = sqlx::query("DELETE FROM archive WHERE at < $1")
                .bind(before)
                .execute(&self.pool)
                .await?;
            Ok(r.rows_affected())
        })
    }

    fn put_room<'a>(&'a self, r: &'a RoomRow) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            sqlx::query(
                "INSERT INTO rooms (address, subject, public, members_only, moderated, password,
                                    history, max_members, created_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
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
            let r = sqlx::query("DELETE FROM rooms WHERE address = $1")
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
                sqlx::query("DELETE FROM room_affiliations WHERE room = $1 AND member = $2")
                    .bind(room)
                    .bind(member)
                    .execute(&self.pool)
                    .await?;
            } else {
                sqlx::query(
                    "INSERT INTO room_affiliations (room, member, affiliation)
                     VALUES ($1, $2, $3)
                     ON CONFLICT (room, member) DO UPDATE SET affiliation = excluded.affiliation",
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
            sqlx::query("INSERT INTO room_history (room, nick, body, at) VALUES ($1, $2, $3, $4)")
                .bind(room)
                .bind(&line.nick)
                .bind(&line.body)
                .bind(line.at)
                .execute(&mut *tx)
                .await?;
            sqlx::query(
                "DELETE FROM room_history WHERE room = $1 AND id NOT IN
                    (SELECT id FROM room_history WHERE room = $1 ORDER BY id DESC LIMIT $2)",
            )
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
                    WHERE room = $1 ORDER BY id DESC LIMIT $2) AS last ORDER BY id",
            )
            .bind(room)
            .bind(limit as i64)
            .fetch_all(&self.pool)
            .await?;
            rows::all(&rows, rows::line_of)
        })
    }

    fn backup<'a>(&'a self, _to: &'a Path) -> StoreFuture<'a, u64> {
        Box::pin(async move {
            Err(StoreError(
                "the store is PostgreSQL: back it up with pg_dump or a replica".into(),
            ))
        })
    }
}
