//! The MSRP relay (RFC 4976).
//!
//! A local user opens a connection (TLS by default), sends AUTH and answers
//! the digest challenge with the same credentials as for SIP; the relay
//! grants a session-id, returned in `Use-Path` with `Expires`. Requests
//! whose To-Path starts with that URI are passed on: from the user's
//! connection to the next hop of To-Path (a connection is opened, or one
//! already open to that hop is reused), and from anywhere else to the
//! user, whose URI must be the next hop. Each hop removes its URI from
//! To-Path and adds it to From-Path (§6); responses find their way back by
//! the transaction they answer.
//!
//! Chunks are never reassembled: a head is passed on when it is read, body
//! bytes as they arrive, the end-line last. A chunk over `max_chunk` is cut
//! with the `#` flag and answered 413. Every queue is bounded: a peer that
//! takes no bytes for `write_timeout_secs` is cut off, and the sender that
//! feeds it waits rather than buffers.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, info, warn};

use crate::auth::{Authenticator, Verdict};
use crate::config::{Config, MsrpConfig};
use crate::proto::msrp::session::answers;
use crate::proto::msrp::{Decoder, Event, Flag, Head, Kind, MsrpUri};

/// The relay's bound listeners.
#[derive(Debug, Default)]
pub struct RelayListeners {
    /// `msrps:` (TLS).
    pub tls: Option<TcpListener>,
    /// `msrp:` (TCP).
    pub tcp: Option<TcpListener>,
}

impl RelayListeners {
    /// Binds what `[msrp]` names.
    pub async fn bind(config: &MsrpConfig) -> std::io::Result<RelayListeners> {
        if !config.enabled {
            return Ok(RelayListeners::default());
        }
        use crate::net::bind_tcp;
        Ok(RelayListeners {
            tls: bind_tcp("msrps", config.listen_tls).await?,
            tcp: bind_tcp("msrp", config.listen).await?,
        })
    }

    /// What is bound, as `transport address` lines.
    pub fn describe(&self) -> Vec<String> {
        let mut out = Vec::new();
        for (name, l) in [("msrps", &self.tls), ("msrp", &self.tcp)] {
            if let Some(a) = l.as_ref().and_then(|l| l.local_addr().ok()) {
                out.push(format!("{name} {a}"));
            }
        }
        out
    }
}

type ConnId = u64;

/// One connection's sending side.
struct Conn {
    tx: mpsc::Sender<Bytes>,
    peer: SocketAddr,
    close: CancellationToken,
    opened: Instant,
    /// It authenticated, carried a request the relay passed on, or the
    /// relay opened it: it is no longer the first to go when room is
    /// needed, and the authentication deadline no longer applies.
    proven: bool,
}

/// What a user's AUTH granted.
#[derive(Debug, Clone)]
struct Binding {
    user: String,
    conn: ConnId,
    /// The user's own URI (From-Path of the AUTH).
    client: MsrpUri,
    until: Instant,
}

#[derive(Default)]
struct Conns {
    next: ConnId,
    by_id: HashMap<ConnId, Conn>,
    /// Connections this relay opened, by (TLS, host, port).
    outbound: HashMap<(bool, String, u16), ConnId>,
    per_source: HashMap<IpAddr, usize>,
}

/// Counters for the console and `/metrics`.
#[derive(Debug, Default)]
pub struct RelayStats {
    /// Chunks passed on.
    pub chunks: AtomicU64,
    /// Body bytes passed on.
    pub bytes: AtomicU64,
}

struct Inner {
    auth: Arc<Authenticator>,
    settings: MsrpConfig,
    realm: String,
    /// The relay's own URIs' (TLS, host, port), one per listener.
    me: Vec<(bool, String, u16)>,
    conns: Mutex<Conns>,
    bindings: Mutex<HashMap<String, Binding>>,
    /// Requests passed on, by transaction id: where they came from.
    routes: Mutex<HashMap<String, Route>>,
    tls_server: Option<Arc<rustls::ServerConfig>>,
    tls_client: Option<Arc<rustls::ClientConfig>>,
    tracker: TaskTracker,
    stop: CancellationToken,
    stats: RelayStats,
    /// Connections this relay opened, handed to the task that serves them.
    dialed: mpsc::UnboundedSender<Dialed>,
    /// Sessions Parley itself is the far end of, by session-id.
    endpoints: Mutex<HashMap<String, Endpoint>>,
    /// AUTH requests Parley sent to an outside relay, by transaction.
    auth_waiters: Mutex<HashMap<String, tokio::sync::oneshot::Sender<Head>>>,
}

/// What reaches the owner of a session Parley terminates.
#[derive(Debug)]
pub enum SessionEvent {
    /// A whole message (chunks put back together).
    Message(crate::proto::msrp::session::Received),
    /// The connection the session ran on closed.
    Closed,
    /// A NICKNAME request (RFC 7701 §7): the nickname asked for, and where
    /// the answer goes (200, or 423/424/425 with a reason phrase).
    Nickname {
        /// The nickname (the `Use-Nickname` value, unquoted).
        nickname: String,
        /// The status and phrase of the answer.
        answer: tokio::sync::oneshot::Sender<(u16, String)>,
    },
}

/// A session Parley is the far end of.
struct Endpoint {
    /// The other side's path, first hop first.
    remote: Vec<MsrpUri>,
    /// The outside relay's Use-Path, first in this side's path and in the
    /// To-Path of what this side sends (empty without one).
    via: Vec<MsrpUri>,
    /// The connection the session runs on, once there is one.
    conn: Option<ConnId>,
    reassembly: crate::proto::msrp::session::Reassembly,
    events: mpsc::Sender<SessionEvent>,
    /// SENDs this side made whose response is awaited, by transaction.
    waiting: HashMap<String, tokio::sync::oneshot::Sender<u16>>,
}

/// The handle of a session Parley is the far end of: it sends the
/// session's messages and ends it when dropped.
#[derive(Debug)]
pub struct SessionHandle {
    inner: std::sync::Weak<Inner>,
    sid: String,
    own: MsrpUri,
}

type Registered = (ConnId, mpsc::Receiver<Bytes>, CancellationToken);

/// A request passed on, remembered until its response comes.
struct Route {
    /// The connection it came from.
    from: ConnId,
    at: Instant,
    /// The request as it came (for an AUTH, the response is passed back;
    /// for a SEND, which this relay answered itself, a failure from a
    /// later hop becomes a REPORT, RFC 4976 §6).
    request: Head,
}

/// A connection this relay opened, to be served.
enum Dialed {
    Tcp(TcpStream, SocketAddr, Registered),
    Tls(
        Box<tokio_rustls::client::TlsStream<TcpStream>>,
        SocketAddr,
        Registered,
    ),
}

/// The running relay.
#[derive(Clone)]
pub struct Relay {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Relay {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Relay")
            .field("me", &self.inner.me)
            .finish_non_exhaustive()
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Relay {
    /// Starts the relay on its listeners; users authenticate with `auth`
    /// in the realm of Parley's first domain.
    pub fn start(
        config: &Config,
        auth: Arc<Authenticator>,
        listeners: RelayListeners,
    ) -> anyhow::Result<Relay> {
        let settings = config.msrp.clone();
        let host_of = |l: &TcpListener| -> Option<(String, u16)> {
            let a = l.local_addr().ok()?;
            let host = settings.host.clone().unwrap_or_else(|| a.ip().to_string());
            Some((host, a.port()))
        };
        let mut me = Vec::new();
        if let Some((h, p)) = listeners.tls.as_ref().and_then(host_of) {
            me.push((true, h, p));
        }
        if let Some((h, p)) = listeners.tcp.as_ref().and_then(host_of) {
            me.push((false, h, p));
        }
        let tls_server = match listeners.tls {
            Some(_) => Some(crate::net::tls::server_config(config)?),
            None => None,
        };
        let (dialed, mut to_serve) = mpsc::unbounded_channel();
        let inner = Arc::new(Inner {
            endpoints: Mutex::new(HashMap::new()),
            auth_waiters: Mutex::new(HashMap::new()),
            dialed,
            realm: config
                .domains
                .first()
                .map(|d| d.to_ascii_lowercase())
                .unwrap_or_default(),
            auth,
            settings,
            me,
            conns: Mutex::new(Conns::default()),
            bindings: Mutex::new(HashMap::new()),
            routes: Mutex::new(HashMap::new()),
            tls_server,
            tls_client: crate::net::tls::client_config(config)?,
            tracker: TaskTracker::new(),
            stop: CancellationToken::new(),
            stats: RelayStats::default(),
        });
        for (listener, tls) in [(listeners.tls, true), (listeners.tcp, false)] {
            if let Some(l) = listener {
                let inner2 = inner.clone();
                inner.tracker.spawn(accept_loop(inner2, l, tls));
            }
        }
        let inner2 = inner.clone();
        inner.tracker.spawn(async move {
            loop {
                let d = tokio::select! {
                    _ = inner2.stop.cancelled() => return,
                    d = to_serve.recv() => match d { Some(d) => d, None => return },
                };
                let inner3 = inner2.clone();
                match d {
                    Dialed::Tcp(s, peer, r) => {
                        inner2.tracker.spawn(serve(inner3, s, peer, Some(r)))
                    }
                    Dialed::Tls(s, peer, r) => {
                        inner2.tracker.spawn(serve(inner3, *s, peer, Some(r)))
                    }
                };
            }
        });
        let inner2 = inner.clone();
        inner.tracker.spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(5));
            loop {
                tokio::select! {
                    _ = inner2.stop.cancelled() => return,
                    _ = tick.tick() => housekeeping(&inner2),
                }
            }
        });
        Ok(Relay { inner })
    }

    /// The relay's URIs, `msrps:` first (for the config and the README).
    pub fn uris(&self) -> Vec<String> {
        self.inner
            .me
            .iter()
            .map(|(tls, host, port)| {
                MsrpUri {
                    secure: *tls,
                    user: None,
                    host: host.clone(),
                    port: Some(*port),
                    session_id: None,
                    transport: "tcp".into(),
                    params: Vec::new(),
                }
                .to_string()
            })
            .collect()
    }

    /// Opens the MSRP end of a session Parley terminates, towards
    /// `remote` (the other side's `a=path`): its own URI (over TLS when
    /// `secure`), the handle that sends, and the events that arrive.
    /// `None` when no listener of that kind runs.
    pub async fn open_session(
        &self,
        secure: bool,
        remote: Vec<MsrpUri>,
    ) -> Option<(MsrpUri, SessionHandle, mpsc::Receiver<SessionEvent>)> {
        let (_, host, port) = self.inner.me.iter().find(|(tls, _, _)| *tls == secure)?;
        let sid = crate::sys::token();
        let own = MsrpUri::new(secure, host, *port, &sid);
        // Through an outside relay: authenticate to it first.
        let (via, conn) = match self.inner.settings.outbound_relay.as_deref() {
            Some(relay) => {
                let relay = MsrpUri::parse(relay).ok()?;
                let (conn, use_path) = outbound_auth(&self.inner, &relay, &own).await?;
                (vec![use_path], Some(conn))
            }
            None => (Vec::new(), None),
        };
        let (tx, rx) = mpsc::channel(64);
        let limits = self.inner.settings.limits;
        lock(&self.inner.endpoints).insert(
            sid.clone(),
            Endpoint {
                remote,
                via,
                conn,
                reassembly: crate::proto::msrp::session::Reassembly::new(
                    limits.max_message as u64,
                    16,
                ),
                events: tx,
                waiting: HashMap::new(),
            },
        );
        let handle = SessionHandle {
            inner: Arc::downgrade(&self.inner),
            sid,
            own: own.clone(),
        };
        Some((own, handle, rx))
    }

    /// Sessions granted and not expired.
    pub fn sessions(&self) -> usize {
        lock(&self.inner.bindings).len()
    }

    /// Chunks and bytes passed on so far.
    pub fn stats(&self) -> &RelayStats {
        &self.inner.stats
    }

    /// Closes every connection and waits for the tasks.
    pub async fn stop(&self) {
        self.inner.stop.cancel();
        self.inner.tracker.close();
        let _ = tokio::time::timeout(Duration::from_secs(3), self.inner.tracker.wait()).await;
    }
}

impl SessionHandle {
    /// This side's URI in the session.
    pub fn uri(&self) -> &MsrpUri {
        &self.own
    }

    /// This side's path for SDP: the outside relay's Use-Path (when there
    /// is one), then this side's URI.
    pub fn path(&self) -> Vec<MsrpUri> {
        let via = self
            .inner
            .upgrade()
            .and_then(|inner| lock(&inner.endpoints).get(&self.sid).map(|e| e.via.clone()))
            .unwrap_or_default();
        via.into_iter()
            .chain(std::iter::once(self.own.clone()))
            .collect()
    }

    /// Where this side's requests go: the To-Path (an outside relay's
    /// Use-Path, then the other side's path) and the session's connection.
    fn outward(&self, inner: &Inner) -> Option<(Vec<MsrpUri>, mpsc::Sender<Bytes>)> {
        let (remote, conn) = {
            let eps = lock(&inner.endpoints);
            let e = eps.get(&self.sid)?;
            (
                e.via.iter().chain(e.remote.iter()).cloned().collect(),
                e.conn?,
            )
        };
        let tx = lock(&inner.conns).by_id.get(&conn)?.tx.clone();
        Some((remote, tx))
    }

    /// Sets the other side's path (known once the answer came).
    pub fn set_remote(&self, remote: Vec<MsrpUri>) {
        if let Some(inner) = self.inner.upgrade() {
            if let Some(e) = lock(&inner.endpoints).get_mut(&self.sid) {
                e.remote = remote;
            }
        }
    }

    /// Waits up to `wait` for the session to have a connection (the other
    /// side connected and sent its binding SEND); true when it has one.
    pub async fn bound(&self, wait: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let Some(inner) = self.inner.upgrade() else {
                return false;
            };
            if lock(&inner.endpoints)
                .get(&self.sid)
                .is_some_and(|e| e.conn.is_some())
            {
                return true;
            }
            drop(inner);
            if tokio::time::Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// As the active side (RFC 4975 §5.4, RFC 6135): opens the connection
    /// to the first hop of the other side's path and binds it with an
    /// empty SEND. False when it cannot be reached.
    pub async fn connect(&self) -> bool {
        let Some(inner) = self.inner.upgrade() else {
            return false;
        };
        let through_relay = lock(&inner.endpoints)
            .get(&self.sid)
            .is_some_and(|e| !e.via.is_empty() && e.conn.is_some());
        if through_relay {
            return self.send_raw(&inner, None, "", None).await;
        }
        let Some(first) = lock(&inner.endpoints)
            .get(&self.sid)
            .and_then(|e| e.remote.first().cloned())
        else {
            return false;
        };
        let Some((id, _)) = dial(&inner, &first).await else {
            return false;
        };
        if let Some(e) = lock(&inner.endpoints).get_mut(&self.sid) {
            e.conn = Some(id);
        }
        self.send_raw(&inner, None, "", None).await
    }

    /// Tells the other side that its message `message_id` (of `total`
    /// bytes) failed with `code` (a failure REPORT, RFC 4975 §7.1.2).
    pub async fn report_failure(&self, message_id: &str, total: u64, code: u16) -> bool {
        let Some(inner) = self.inner.upgrade() else {
            return false;
        };
        let Some((remote, tx)) = self.outward(&inner) else {
            return false;
        };
        let report = crate::proto::msrp::session::report(
            remote,
            &self.own,
            &crate::sys::token_hex(8),
            message_id,
            total,
            code,
        );
        tx.send(Bytes::from(report.to_bytes(None, Flag::End)))
            .await
            .is_ok()
    }

    /// Sends one message of `content_type` in the session (chunks of at
    /// most `max_chunk`). False when the session has no connection.
    pub async fn send(&self, content_type: &str, body: &[u8]) -> bool {
        let Some(inner) = self.inner.upgrade() else {
            return false;
        };
        self.send_raw(&inner, Some(body), content_type, None).await
    }

    /// [`SessionHandle::send`], then waits for the response to its last
    /// chunk: `Ok` on 200, the status otherwise, 408 when none came in
    /// RFC 4975's 30 seconds (§7.1), 481 when the session has no
    /// connection.
    pub async fn send_confirmed(&self, content_type: &str, body: &[u8]) -> Result<(), u16> {
        let Some(inner) = self.inner.upgrade() else {
            return Err(481);
        };
        let (tx, rx) = tokio::sync::oneshot::channel();
        if !self
            .send_raw(&inner, Some(body), content_type, Some(tx))
            .await
        {
            return Err(481);
        }
        drop(inner);
        let wait = Duration::from_secs(crate::proto::msrp::session::RESPONSE_TIMEOUT_SECS);
        let outcome = tokio::time::timeout(wait, rx).await;
        if let Some(inner) = self.inner.upgrade() {
            if let Some(e) = lock(&inner.endpoints).get_mut(&self.sid) {
                e.waiting.retain(|_, t| !t.is_closed());
            }
        }
        match outcome {
            Ok(Ok(200)) => Ok(()),
            Ok(Ok(code)) => Err(code),
            Ok(Err(_)) => Err(481),
            Err(_) => Err(408),
        }
    }

    async fn send_raw(
        &self,
        inner: &Arc<Inner>,
        body: Option<&[u8]>,
        content_type: &str,
        confirm: Option<tokio::sync::oneshot::Sender<u16>>,
    ) -> bool {
        let Some((remote, tx)) = self.outward(inner) else {
            return false;
        };
        let template = Head::request("SEND", "x", remote, vec![self.own.clone()]);
        let message_id = crate::sys::token();
        let Some(body) = body else {
            // The empty SEND that binds a connection (RFC 4975 §7.1.1).
            let mut head = template
                .with("Message-ID", message_id)
                .with("Byte-Range", "1-0/0");
            head.tid = crate::sys::token_hex(8);
            return tx
                .send(Bytes::from(head.to_bytes(None, Flag::End)))
                .await
                .is_ok();
        };
        let chunks = crate::proto::msrp::session::chunks(
            &template,
            &message_id,
            content_type,
            body,
            inner.settings.limits.max_chunk,
            || crate::sys::token_hex(8),
        );
        // The response to the last chunk confirms the message.
        if let (Some(confirm), Some((last, _, _))) = (confirm, chunks.last()) {
            if let Some(e) = lock(&inner.endpoints).get_mut(&self.sid) {
                e.waiting.insert(last.tid.clone(), confirm);
            }
        }
        for (head, piece, flag) in chunks {
            if tx
                .send(Bytes::from(head.to_bytes(Some(piece), flag)))
                .await
                .is_err()
            {
                return false;
            }
        }
        true
    }
}

impl Drop for SessionHandle {
    fn drop(&mut self) {
        if let Some(inner) = self.inner.upgrade() {
            lock(&inner.endpoints).remove(&self.sid);
        }
    }
}

/// RFC 4976 §5 as a client: AUTH to `relay` for `own`, answering its
/// digest challenge; the connection and the Use-Path it grants.
async fn outbound_auth(
    inner: &Arc<Inner>,
    relay: &MsrpUri,
    own: &MsrpUri,
) -> Option<(ConnId, MsrpUri)> {
    let (conn, tx) = dial(inner, relay).await?;
    let ask = |authorization: Option<String>| {
        let mut head = Head::request(
            "AUTH",
            &crate::sys::token_hex(8),
            vec![relay.clone()],
            vec![own.clone()],
        );
        if let Some(a) = authorization {
            head = head.with("Authorization", a);
        }
        head
    };
    let exchange = |head: Head| {
        let inner = inner.clone();
        let tx = tx.clone();
        async move {
            let (w, r) = tokio::sync::oneshot::channel();
            lock(&inner.auth_waiters).insert(head.tid.clone(), w);
            tx.send(Bytes::from(head.to_bytes(None, Flag::End)))
                .await
                .ok()?;
            let wait = Duration::from_secs(crate::proto::msrp::session::RESPONSE_TIMEOUT_SECS);
            let answer = tokio::time::timeout(wait, r).await.ok()?.ok();
            lock(&inner.auth_waiters).remove(&head.tid);
            answer
        }
    };
    let challenge = exchange(ask(None)).await?;
    let granted = if challenge.code() == Some(401) {
        let user = inner
            .settings
            .outbound_relay_user
            .clone()
            .unwrap_or_default();
        let password = inner
            .settings
            .outbound_relay_password
            .clone()
            .unwrap_or_default();
        let value = crate::proto::digest::answer(
            challenge.values("WWW-Authenticate"),
            "AUTH",
            &relay.to_string(),
            &user,
            &password,
            &crate::sys::token_hex(8),
        )?;
        exchange(ask(Some(value))).await?
    } else {
        challenge
    };
    if granted.code() != Some(200) {
        warn!(relay = %relay, code = ?granted.code(), "the outside MSRP relay refused AUTH");
        return None;
    }
    let use_path = MsrpUri::parse(granted.header("Use-Path")?.split(' ').next()?).ok()?;
    Some((conn, use_path))
}

async fn accept_loop(inner: Arc<Inner>, listener: TcpListener, tls: bool) {
    loop {
        let accepted = tokio::select! {
            _ = inner.stop.cancelled() => return,
            a = listener.accept() => a,
        };
        let Ok((tcp, peer)) = accepted else {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        let _ = tcp.set_nodelay(true);
        let inner2 = inner.clone();
        inner.tracker.spawn(async move {
            if tls {
                let Some(config) = inner2.tls_server.clone() else {
                    return;
                };
                let acceptor = tokio_rustls::TlsAcceptor::from(config);
                let wait = Duration::from_secs(inner2.settings.write_timeout_secs.max(1));
                match tokio::time::timeout(wait, acceptor.accept(tcp)).await {
                    Ok(Ok(stream)) => serve(inner2, stream, peer, None).await,
                    _ => debug!(%peer, "MSRP TLS handshake failed"),
                }
            } else {
                serve(inner2, tcp, peer, None).await;
            }
        });
    }
}

/// Registers a connection: its id, the receiver its writer drains, and
/// the token that closes it; `None` when the limits are reached.
fn register(inner: &Inner, peer: SocketAddr) -> Option<Registered> {
    let mut c = lock(&inner.conns);
    let mine = c.per_source.get(&peer.ip()).copied().unwrap_or(0);
    if mine >= inner.settings.max_per_source {
        return None;
    }
    if c.by_id.len() >= inner.settings.max_connections {
        // Full: the oldest connection that never proved itself makes room
        // (as for SIP and XMPP); refused when every one has.
        let oldest = c
            .by_id
            .iter()
            .filter(|(_, conn)| !conn.proven)
            .min_by_key(|(_, conn)| conn.opened)
            .map(|(id, _)| *id)?;
        if let Some(conn) = c.by_id.remove(&oldest) {
            conn.close.cancel();
            let ip = conn.peer.ip();
            if let Some(n) = c.per_source.get_mut(&ip) {
                *n = n.saturating_sub(1);
                if *n == 0 {
                    c.per_source.remove(&ip);
                }
            }
            debug!(peer = %conn.peer, "oldest unauthenticated MSRP connection closed to make room");
        }
    }
    *c.per_source.entry(peer.ip()).or_default() += 1;
    c.next += 1;
    let id = c.next;
    let (tx, rx) = mpsc::channel(64);
    let close = CancellationToken::new();
    c.by_id.insert(
        id,
        Conn {
            tx,
            peer,
            close: close.clone(),
            opened: Instant::now(),
            proven: false,
        },
    );
    Some((id, rx, close))
}

fn unregister(inner: &Inner, id: ConnId) {
    let mut c = lock(&inner.conns);
    if let Some(conn) = c.by_id.remove(&id) {
        conn.close.cancel();
        let ip = conn.peer.ip();
        if let Some(n) = c.per_source.get_mut(&ip) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                c.per_source.remove(&ip);
            }
        }
    }
    c.outbound.retain(|_, v| *v != id);
    drop(c);
    lock(&inner.bindings).retain(|_, b| b.conn != id);
    for e in lock(&inner.endpoints).values_mut() {
        if e.conn == Some(id) {
            e.conn = None;
            let _ = e.events.try_send(SessionEvent::Closed);
        }
    }
}

/// Serves one connection until it closes. `registered` is set for
/// connections this relay opened (already in the table).
async fn serve<S>(inner: Arc<Inner>, stream: S, peer: SocketAddr, registered: Option<Registered>)
where
    S: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    let Some((id, mut rx, close)) = registered.or_else(|| register(&inner, peer)) else {
        debug!(%peer, "MSRP connection refused: limit reached");
        return;
    };
    let (mut reader, mut writer) = tokio::io::split(stream);
    let write_wait = Duration::from_secs(inner.settings.write_timeout_secs.max(1));
    let close_w = close.clone();
    let writer_task = inner.tracker.spawn(async move {
        let mut batch = BytesMut::with_capacity(64 * 1024);
        while let Some(bytes) = rx.recv().await {
            // What is queued already goes out in one write: a chunk's head,
            // body and end-line, and the responses behind them.
            let bytes = if bytes.len() >= 32 * 1024 || rx.is_empty() {
                bytes
            } else {
                batch.extend_from_slice(&bytes);
                while batch.len() < 64 * 1024 {
                    match rx.try_recv() {
                        Ok(more) => batch.extend_from_slice(&more),
                        Err(_) => break,
                    }
                }
                batch.split().freeze()
            };
            match tokio::time::timeout(write_wait, writer.write_all(&bytes)).await {
                Ok(Ok(())) => {}
                _ => {
                    // A peer that takes nothing is cut off.
                    close_w.cancel();
                    break;
                }
            }
        }
        let _ = writer.shutdown().await;
    });
    let mut conn = Connection {
        inner: inner.clone(),
        id,
        peer,
        decoder: Decoder::new(inner.settings.limits),
        state: State::Idle,
    };
    let mut buf = BytesMut::with_capacity(16 * 1024);
    let idle = Duration::from_secs(inner.settings.idle_timeout_secs.max(1));
    let deadline = Instant::now() + Duration::from_secs(inner.settings.auth_timeout_secs.max(1));
    // Once proven, always: no lock per read after that.
    let mut proven = false;
    loop {
        if buf.capacity() - buf.len() < 4096 {
            buf.reserve(16 * 1024);
        }
        // However it trickles its bytes, a connection must prove itself
        // (AUTH, or a request the relay can pass on) by the deadline.
        if !proven {
            proven = lock(&inner.conns).by_id.get(&id).is_some_and(|c| c.proven);
        }
        let wait = if proven {
            idle
        } else {
            match deadline.checked_duration_since(Instant::now()) {
                Some(left) if !left.is_zero() => left.min(idle),
                _ => {
                    debug!(%peer, "MSRP connection closed: not authenticated in time");
                    break;
                }
            }
        };
        let read = tokio::select! {
            _ = inner.stop.cancelled() => break,
            _ = close.cancelled() => break,
            r = tokio::time::timeout(wait, reader.read_buf(&mut buf)) => r,
        };
        match read {
            Err(_) if !proven => continue,
            Err(_) => {
                // Idle: kept while it carries a session.
                if lock(&inner.bindings).values().any(|b| b.conn == id) {
                    continue;
                }
                break;
            }
            Ok(Ok(0)) | Ok(Err(_)) => break,
            Ok(Ok(_)) => {}
        }
        if !conn.drain(&mut buf).await {
            break;
        }
    }
    unregister(&inner, id);
    writer_task.abort();
    debug!(%peer, "MSRP connection closed");
}

/// Where the current message's bytes go.
enum State {
    Idle,
    /// Passed on to this connection.
    Forward {
        to: mpsc::Sender<Bytes>,
        head: Head,
        bytes: usize,
        /// The hop-by-hop 200 for the previous hop, sent once the chunk
        /// has been passed on (SEND with `Failure-Report: yes`).
        ok: Option<Box<Head>>,
    },
    /// For a session Parley terminates: the chunk's body, kept.
    Collect {
        sid: String,
        head: Head,
        body: Vec<u8>,
    },
    /// Answered here (AUTH) or refused: the rest of the message is read
    /// and dropped.
    Drop,
}

struct Connection {
    inner: Arc<Inner>,
    id: ConnId,
    /// The peer's address (for the log of failed AUTHs).
    peer: SocketAddr,
    decoder: Decoder,
    state: State,
}

impl Connection {
    /// Handles every event in `buf`; false when the connection must close.
    async fn drain(&mut self, buf: &mut BytesMut) -> bool {
        loop {
            let event = match self.decoder.decode(buf) {
                Ok(Some(e)) => e,
                Ok(None) => return true,
                Err(e) => {
                    debug!(error = %e, "malformed MSRP: connection closed");
                    return false;
                }
            };
            match event {
                Event::Head(head) => self.head(head).await,
                Event::Refused(head, e) => {
                    // Framed, but its fields break the RFC: 400, and the
                    // connection goes on (RFC 4975 §7.3).
                    debug!(error = %e, "malformed MSRP request refused");
                    self.state = State::Drop;
                    if head.method().is_some() {
                        self.refuse(&head, 400, "Bad Request").await;
                    }
                }
                Event::Data(data) => self.data(data).await,
                Event::End(flag) => self.end(flag).await,
            }
        }
    }

    async fn head(&mut self, head: Head) {
        self.state = State::Drop;
        match &head.kind {
            Kind::Response { .. } => self.response(head).await,
            Kind::Request { method } if method == "AUTH" => self.auth(head).await,
            Kind::Request { .. } => self.request(head).await,
        }
    }

    async fn data(&mut self, data: Bytes) {
        let max = self.inner.settings.limits.max_chunk;
        if let State::Collect { body, head, .. } = &mut self.state {
            if body.len() + data.len() > max {
                let original = head.clone();
                self.state = State::Drop;
                self.refuse(&original, 413, "Message Too Large").await;
            } else {
                body.extend_from_slice(&data);
            }
            return;
        }
        let State::Forward {
            to, head, bytes, ..
        } = &mut self.state
        else {
            return;
        };
        *bytes += data.len();
        if *bytes > max {
            // Cut the chunk off where it is (`#`), and say why.
            let mut end = Vec::new();
            head.write_end(Flag::Abort, &mut end);
            let _ = to.send(Bytes::from(end)).await;
            let original = head.clone();
            self.state = State::Drop;
            self.refuse(&original, 413, "Message Too Large").await;
            return;
        }
        self.inner
            .stats
            .bytes
            .fetch_add(data.len() as u64, Ordering::Relaxed);
        metrics::counter!("parley_msrp_relayed_bytes_total").increment(data.len() as u64);
        if to.send(data).await.is_err() {
            let original = head.clone();
            self.state = State::Drop;
            self.refuse(&original, 408, "Request Timeout").await;
        }
    }

    async fn end(&mut self, flag: Flag) {
        if let State::Collect { .. } = &self.state {
            let State::Collect { sid, head, body } =
                std::mem::replace(&mut self.state, State::Idle)
            else {
                return;
            };
            return self.deliver(sid, head, body, flag).await;
        }
        if let State::Forward { to, head, ok, .. } = &self.state {
            let mut end = Vec::new();
            head.write_end(flag, &mut end);
            let passed = to.send(Bytes::from(end)).await.is_ok();
            self.inner.stats.chunks.fetch_add(1, Ordering::Relaxed);
            metrics::counter!("parley_msrp_relayed_chunks_total").increment(1);
            if let (true, Some(ok)) = (passed, ok.clone()) {
                self.reply(*ok).await;
            }
        }
        self.state = State::Idle;
    }

    /// A chunk for a session Parley terminates: put back together,
    /// answered, and the whole message handed to the session's owner.
    async fn deliver(&mut self, sid: String, head: Head, body: Vec<u8>, flag: Flag) {
        use crate::proto::msrp::session::Chunked;
        let now = crate::sys::now_secs();
        let found = lock(&self.inner.endpoints).get_mut(&sid).map(|e| {
            (
                e.reassembly.chunk(&head, &body, flag, now),
                e.events.clone(),
            )
        });
        let Some((outcome, events)) = found else {
            return self.refuse(&head, 481, "Session Does Not Exist").await;
        };
        let own = head.to_path[0].clone();
        match outcome {
            Chunked::Refused(code, why) => self.refuse(&head, code, why).await,
            other => {
                if answers(&head, 200) {
                    self.reply(head.response(200, "OK", &own)).await;
                }
                if let Chunked::Complete(m) = other {
                    // RFC 4975 §7.1.2: a success report when one was asked.
                    if m.success_report {
                        let report = crate::proto::msrp::session::report(
                            head.from_path.clone(),
                            &own,
                            &crate::sys::token_hex(8),
                            &m.message_id,
                            m.body.len() as u64,
                            200,
                        );
                        self.reply(report).await;
                    }
                    // An empty SEND only binds the connection.
                    if !m.body.is_empty() || !m.content_type.is_empty() {
                        let _ = events.send(SessionEvent::Message(m)).await;
                    }
                }
            }
        }
    }

    /// This relay's URI in `uri` (host and port, any session-id).
    fn is_me(&self, uri: &MsrpUri) -> bool {
        self.inner.me.iter().any(|(tls, host, port)| {
            *tls == uri.secure
                && *port == uri.port_or_default()
                && host.eq_ignore_ascii_case(&uri.host)
        })
    }

    async fn send_head(&self, to: &mpsc::Sender<Bytes>, head: &Head) -> bool {
        let mut out = Vec::with_capacity(256);
        head.write_head(&mut out);
        to.send(Bytes::from(out)).await.is_ok()
    }

    fn prove(&self) {
        if let Some(c) = lock(&self.inner.conns).by_id.get_mut(&self.id) {
            c.proven = true;
        }
    }

    fn own_sender(&self) -> Option<mpsc::Sender<Bytes>> {
        lock(&self.inner.conns)
            .by_id
            .get(&self.id)
            .map(|c| c.tx.clone())
    }

    /// A NICKNAME for a session Parley terminates (RFC 7701 §7): the
    /// session's owner decides; the answer goes back on this connection
    /// once it has (501 when the session takes no nicknames, 408 when it
    /// does not decide in time).
    fn nickname(&self, sid: &str, head: Head, own: MsrpUri) {
        let nickname = head
            .header("Use-Nickname")
            .map(|v| {
                let v = v.trim();
                v.strip_prefix('"')
                    .and_then(|v| v.strip_suffix('"'))
                    .map_or(v.to_string(), |q| {
                        q.replace("\\\"", "\"").replace("\\\\", "\\")
                    })
            })
            .unwrap_or_default();
        let events = lock(&self.inner.endpoints)
            .get(sid)
            .map(|e| e.events.clone());
        let (tx, rx) = tokio::sync::oneshot::channel();
        let asked = !nickname.is_empty()
            && events.is_some_and(|ev| {
                ev.try_send(SessionEvent::Nickname {
                    nickname,
                    answer: tx,
                })
                .is_ok()
            });
        let Some(sender) = self.own_sender() else {
            return;
        };
        tokio::spawn(async move {
            let (code, phrase) = if asked {
                match tokio::time::timeout(Duration::from_secs(5), rx).await {
                    Ok(Ok(answer)) => answer,
                    _ => (408, "Request Timeout".to_string()),
                }
            } else {
                (501, "Nicknames are not used here".to_string())
            };
            let response = head.response(code, &phrase, &own);
            let _ = sender
                .send(Bytes::from(response.to_bytes(None, Flag::End)))
                .await;
        });
    }

    /// Answers `request` on this connection (when its report fields ask
    /// for an answer with this code).
    async fn refuse(&self, request: &Head, code: u16, comment: &str) {
        if !answers(request, code) {
            return;
        }
        let own = request
            .to_path
            .first()
            .cloned()
            .unwrap_or_else(|| MsrpUri::new(false, "invalid", 0, "x"));
        let response = request.response(code, comment, &own);
        if let Some(tx) = self.own_sender() {
            let _ = tx
                .send(Bytes::from(response.to_bytes(None, Flag::End)))
                .await;
        }
    }

    async fn auth(&mut self, head: Head) {
        if head.to_path.len() > 1 {
            // An AUTH for a relay further out, through this one.
            return self.request(head).await;
        }
        let inner = self.inner.clone();
        let Some(target) = head
            .to_path
            .first()
            .filter(|u| head.to_path.len() == 1 && self.is_me(u))
            .cloned()
        else {
            self.refuse(&head, 403, "AUTH is for this relay only").await;
            return;
        };
        let values: Vec<&[u8]> = head.values("Authorization").map(str::as_bytes).collect();
        let now = crate::sys::now_secs();
        let target_text = target.to_string();
        let me = self.inner.me.clone();
        let names_us = move |uri: &str| {
            MsrpUri::parse(uri).is_ok_and(|u| {
                me.iter().any(|(tls, host, port)| {
                    *tls == u.secure
                        && *port == u.port_or_default()
                        && host.eq_ignore_ascii_case(&u.host)
                })
            })
        };
        let verdict = inner
            .auth
            .check_values(
                "AUTH",
                target_text.as_bytes(),
                "Authorization",
                &values,
                (
                    &inner.realm,
                    crate::auth::Origin {
                        transport: "msrp",
                        source: self.peer,
                    },
                ),
                now,
                names_us,
            )
            .await;
        let own = target.clone();
        match verdict {
            Verdict::Challenge { stale } => {
                let mut r = head.response(401, "Unauthorized", &own);
                for c in inner.auth.challenges(&inner.realm, stale, now) {
                    r.headers.push(("WWW-Authenticate".into(), c));
                }
                self.reply(r).await;
            }
            Verdict::Forbidden(why) => {
                info!(why, "MSRP AUTH refused");
                metrics::counter!("parley_msrp_auth_failures_total").increment(1);
                self.reply(head.response(403, why, &own)).await;
            }
            Verdict::User(user, domain) => {
                let s = &inner.settings;
                let asked = head.expires();
                if asked.is_some_and(|e| e < s.min_expires_secs) {
                    let r = head
                        .response(423, "Interval Out-of-Bounds", &own)
                        .with("Min-Expires", s.min_expires_secs.to_string());
                    self.reply(r).await;
                    return;
                }
                let granted = asked.unwrap_or(s.expires_secs).min(s.max_expires_secs);
                let Some(client) = head.from_path.first().cloned() else {
                    return;
                };
                let sid = crate::sys::token();
                let mut uri = own.clone();
                uri.user = None;
                uri.session_id = Some(sid.clone());
                uri.port = Some(uri.port_or_default());
                lock(&inner.bindings).insert(
                    sid,
                    Binding {
                        user: format!("{user}@{domain}"),
                        conn: self.id,
                        client,
                        until: Instant::now() + Duration::from_secs(granted),
                    },
                );
                metrics::gauge!("parley_msrp_sessions").set(lock(&inner.bindings).len() as f64);
                self.prove();
                info!(user = %format!("{user}@{domain}"), use_path = %uri, "MSRP relay session granted");
                let r = head
                    .response(200, "OK", &own)
                    .with("Use-Path", uri.to_string())
                    .with("Expires", granted.to_string());
                self.reply(r).await;
            }
        }
    }

    async fn reply(&self, response: Head) {
        if let Some(tx) = self.own_sender() {
            let _ = tx
                .send(Bytes::from(response.to_bytes(None, Flag::End)))
                .await;
        }
    }

    async fn request(&mut self, head: Head) {
        let Some(first) = head.to_path.first().cloned() else {
            return;
        };
        if !self.is_me(&first) {
            self.refuse(&head, 403, "To-Path does not start with this relay")
                .await;
            return;
        }
        // For a session Parley itself terminates.
        if head.to_path.len() == 1 {
            let sid = first.session_id.clone().unwrap_or_default();
            // Some(true): for this session on its connection; Some(false):
            // the session is bound to another connection (RFC 4975 §7.3:
            // 506); None: no such session here.
            // A relayed session (an outside relay is the other side's
            // first hop) also takes what that relay sends on a connection
            // of its own: relays such as Kamailio's open one towards
            // Parley's URI rather than reuse the one Parley opened.
            let known = {
                let mut eps = lock(&self.inner.endpoints);
                eps.get_mut(&sid).map(|e| {
                    *e.conn.get_or_insert(self.id) == self.id
                        || (e.remote.len() > 1
                            && head
                                .from_path
                                .first()
                                .is_some_and(|f| f.same_as(&e.remote[0])))
                })
            };
            if known == Some(false) {
                self.refuse(&head, 506, "Session Already Bound").await;
                return;
            }
            if known == Some(true) {
                self.prove();
                match head.method() {
                    Some("SEND") => {
                        self.state = State::Collect {
                            sid,
                            head,
                            body: Vec::new(),
                        };
                    }
                    Some("NICKNAME") => self.nickname(&sid, head, first),
                    _ => {}
                }
                return;
            }
        }
        let Some(next) = head.to_path.get(1) else {
            self.refuse(&head, 481, "Session Does Not Exist").await;
            return;
        };
        // What the session allows, read under the lock without copying it:
        // the connection it lives on, and whether `next` is its user.
        let now = Instant::now();
        let found = first.session_id.as_ref().and_then(|sid| {
            lock(&self.inner.bindings)
                .get(sid)
                .filter(|b| b.until > now)
                .map(|b| (b.conn, next.same_as(&b.client)))
        });
        let Some((held_by, to_user)) = found else {
            self.refuse(&head, 481, "Session Does Not Exist").await;
            return;
        };
        let to = if held_by == self.id {
            // From the user, out to the next hop.
            let next = next.clone();
            match self.hop(&next).await {
                Some(tx) => tx,
                None => {
                    self.refuse(&head, 481, "Next Hop Unreachable").await;
                    return;
                }
            }
        } else if to_user {
            // To the user, over the connection it authenticated on.
            let held = lock(&self.inner.conns)
                .by_id
                .get(&held_by)
                .map(|c| c.tx.clone());
            match held {
                Some(tx) => tx,
                None => {
                    self.refuse(&head, 481, "Session Does Not Exist").await;
                    return;
                }
            }
        } else {
            let user = first
                .session_id
                .as_ref()
                .and_then(|sid| lock(&self.inner.bindings).get(sid).map(|b| b.user.clone()))
                .unwrap_or_default();
            debug!(%user, "MSRP request for a session from a hop that does not hold it");
            self.refuse(&head, 403, "Forbidden").await;
            return;
        };
        // SEND is answered hop by hop; AUTH end to end; REPORT never.
        let ok = (head.method() == Some("SEND") && answers(&head, 200))
            .then(|| Box::new(head.response(200, "OK", &first)));
        let mut forwarded = head.clone();
        forwarded.to_path.remove(0);
        forwarded.from_path.insert(0, first.clone());
        let tid = head.tid.clone();
        lock(&self.inner.routes).insert(
            tid.clone(),
            Route {
                from: self.id,
                at: Instant::now(),
                request: head,
            },
        );
        if !self.send_head(&to, &forwarded).await {
            let route = lock(&self.inner.routes).remove(&tid);
            if let Some(route) = route {
                self.refuse(&route.request, 481, "Next Hop Unreachable")
                    .await;
            }
            return;
        }
        self.prove();
        self.state = State::Forward {
            to,
            head: forwarded,
            bytes: 0,
            ok,
        };
    }

    async fn response(&mut self, head: Head) {
        let Some(first) = head.to_path.first().cloned().filter(|u| self.is_me(u)) else {
            return;
        };
        // For Parley's own end (a forwarded response has more hops): an
        // outside relay answering Parley's AUTH, or a session's SEND.
        if head.to_path.len() == 1 {
            let waiter = lock(&self.inner.auth_waiters).remove(&head.tid);
            if let Some(w) = waiter {
                let _ = w.send(head);
                return;
            }
            let sid = first.session_id.clone().unwrap_or_default();
            let waiter = lock(&self.inner.endpoints)
                .get_mut(&sid)
                .and_then(|e| e.waiting.remove(&head.tid));
            if let Some(w) = waiter {
                let _ = w.send(head.code().unwrap_or(400));
                return;
            }
        }
        let Some(route) = lock(&self.inner.routes).remove(&head.tid) else {
            return;
        };
        let Some(to) = lock(&self.inner.conns)
            .by_id
            .get(&route.from)
            .map(|c| c.tx.clone())
        else {
            return;
        };
        if route.request.method() != Some("AUTH") {
            // A later hop refused a SEND this relay already answered: the
            // sender learns it from a REPORT, when it asked for failures.
            let code = head.code().unwrap_or(200);
            let wants = route.request.failure_report() != crate::proto::msrp::Report::No;
            if code != 200 && wants && route.request.method() == Some("SEND") {
                let total = route
                    .request
                    .byte_range()
                    .and_then(|r| r.total.or(r.end))
                    .unwrap_or(0);
                let report = crate::proto::msrp::session::report(
                    route.request.from_path.clone(),
                    &first,
                    &crate::sys::token_hex(8),
                    route.request.message_id().unwrap_or("unknown"),
                    total,
                    code,
                );
                let _ = to.send(Bytes::from(report.to_bytes(None, Flag::End))).await;
            }
            return;
        }
        let mut forwarded = head;
        forwarded.to_path.remove(0);
        forwarded.from_path.insert(0, first);
        if forwarded.to_path.is_empty() {
            return;
        }
        if self.send_head(&to, &forwarded).await {
            self.state = State::Forward {
                to,
                head: forwarded,
                bytes: 0,
                ok: None,
            };
        }
    }

    /// The connection to `next`: one already open to it, or a new one.
    async fn hop(&self, next: &MsrpUri) -> Option<mpsc::Sender<Bytes>> {
        dial(&self.inner, next).await.map(|(_, tx)| tx)
    }
}

/// The connection to `next`: one already open to it, or a new one.
async fn dial(inner: &Arc<Inner>, next: &MsrpUri) -> Option<(ConnId, mpsc::Sender<Bytes>)> {
    let key = (
        next.secure,
        next.host.to_ascii_lowercase(),
        next.port_or_default(),
    );
    {
        let c = lock(&inner.conns);
        if let Some(id) = c.outbound.get(&key) {
            if let Some(conn) = c.by_id.get(id) {
                return Some((*id, conn.tx.clone()));
            }
        }
    }
    let wait = Duration::from_secs(inner.settings.write_timeout_secs.clamp(1, 10));
    let tcp = tokio::time::timeout(wait, TcpStream::connect((key.1.as_str(), key.2)))
        .await
        .ok()?
        .ok()?;
    let peer = tcp.peer_addr().ok()?;
    let _ = tcp.set_nodelay(true);
    let (id, rx, close) = register(inner, peer)?;
    let tx = {
        let mut c = lock(&inner.conns);
        let conn = c.by_id.get_mut(&id)?;
        conn.proven = true;
        conn.tx.clone()
    };
    lock(&inner.conns).outbound.insert(key.clone(), id);
    let registered = (id, rx, close);
    if next.secure {
        let Some(config) = inner.tls_client.clone() else {
            warn!(hop = %next, "no TLS client configuration for msrps");
            unregister(inner, id);
            return None;
        };
        let name = rustls::pki_types::ServerName::try_from(key.1.clone()).ok()?;
        let connector = tokio_rustls::TlsConnector::from(config);
        let Ok(Ok(tls)) = tokio::time::timeout(wait, connector.connect(name, tcp)).await else {
            unregister(inner, id);
            return None;
        };
        let _ = inner
            .dialed
            .send(Dialed::Tls(Box::new(tls), peer, registered));
    } else {
        let _ = inner.dialed.send(Dialed::Tcp(tcp, peer, registered));
    }
    Some((id, tx))
}

/// Forgets expired sessions and routes, and closes connections idle past
/// their limit.
fn housekeeping(inner: &Inner) {
    let now = Instant::now();
    lock(&inner.bindings).retain(|_, b| b.until > now);
    let keep = Duration::from_secs(crate::proto::msrp::session::RESPONSE_TIMEOUT_SECS);
    lock(&inner.routes).retain(|_, r| now.duration_since(r.at) < keep);
    metrics::gauge!("parley_msrp_sessions").set(lock(&inner.bindings).len() as f64);
}
