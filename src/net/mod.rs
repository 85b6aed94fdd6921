//! Transports: UDP, TCP and TLS on tokio. This layer moves bytes and runs
//! timers; what a message means is decided by `proto` (screening,
//! transactions) and `simple` (the request handler).
//!
//! - Datagrams are screened and answered on the socket they came in on;
//!   a UDP response goes to the source address, on the source port when the
//!   Via asks for rport (RFC 3581) and to the Via port otherwise.
//! - Streams are framed by Content-Length. Garbage or a bad Content-Length
//!   is answered (400 where the request can be identified) and the
//!   connection closed. Responses go back on the connection the request came
//!   in on. A CRLF CRLF ping gets a CRLF pong (RFC 5626 §4.4.1). Silent
//!   connections close after the idle timeout; past the connection limit
//!   new ones are closed at once.
//! - Requests Parley sends ([`Sip::request`]) run in client transactions.
//!   Every open connection, accepted or opened, is reused for requests to
//!   its peer; a request too large for UDP goes over TCP (RFC 3261
//!   §18.1.1). Responses are matched to client transactions by their top
//!   Via; one that matches none is dropped.
//! - Server and client transactions live in two tables; one timer task
//!   drives all their timers from a delay queue.

pub mod dns;
mod stream;
mod timer;
pub mod tls;
mod udp;

use std::collections::HashMap;
use std::future::Future;
use std::hash::BuildHasher;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use tokio::net::{TcpListener, UdpSocket};
use tokio::sync::{mpsc, Semaphore};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, info, warn};

use crate::config::{Config, Transport};
use crate::proto::sip::stateless::{respond, screen, stamp_via, Policy, Verdict};
use crate::proto::sip::{Framing, HeaderName, Limits, Message, Method, SipError};
use crate::proto::transaction::{
    ClientEvent, ClientTransaction, Key, Reliability, ServerTransaction, TimerConfig,
};
use crate::simple::Core;

/// A request larger than this goes over TCP instead of UDP (RFC 3261
/// §18.1.1: 200 octets below a 1500-octet path MTU).
pub const UDP_REQUEST_LIMIT: usize = 1300;

/// Sockets bound before the server starts, so tests can bind port 0.
#[derive(Debug, Default)]
pub struct Listeners {
    /// UDP sockets.
    pub udp: Vec<UdpSocket>,
    /// TCP listeners.
    pub tcp: Vec<TcpListener>,
    /// TLS listeners (TCP, with the handshake done per connection).
    pub tls: Vec<TcpListener>,
    /// The XMPP s2s listener (`[xmpp] listen`).
    pub xmpp: Option<TcpListener>,
    /// The XMPP direct-TLS s2s listener (`[xmpp] listen_tls`).
    pub xmpp_tls: Option<TcpListener>,
    /// The admin console (`[admin] listen`).
    pub admin: Option<TcpListener>,
}

impl Listeners {
    /// Binds every `[[sip.listen]]` address of the config.
    pub async fn bind(config: &Config) -> std::io::Result<Listeners> {
        let mut l = Listeners::default();
        for listen in &config.sip.listen {
            let err = |e: std::io::Error| {
                std::io::Error::new(
                    e.kind(),
                    format!("{} {}: {e}", listen.transport, listen.address),
                )
            };
            match listen.transport {
                Transport::Udp => l
                    .udp
                    .push(UdpSocket::bind(listen.address).await.map_err(err)?),
                Transport::Tcp => l
                    .tcp
                    .push(TcpListener::bind(listen.address).await.map_err(err)?),
                Transport::Tls => l
                    .tls
                    .push(TcpListener::bind(listen.address).await.map_err(err)?),
            }
        }
        if let (true, Some(addr)) = (config.xmpp.enabled, config.xmpp.listen) {
            l.xmpp = Some(
                TcpListener::bind(addr)
                    .await
                    .map_err(|e| std::io::Error::new(e.kind(), format!("xmpp {addr}: {e}")))?,
            );
        }
        if let (true, Some(addr)) = (config.admin.enabled, config.admin.listen) {
            l.admin = Some(
                TcpListener::bind(addr)
                    .await
                    .map_err(|e| std::io::Error::new(e.kind(), format!("admin {addr}: {e}")))?,
            );
        }
        if let (true, Some(addr)) = (config.xmpp.enabled, config.xmpp.listen_tls) {
            l.xmpp_tls = Some(TcpListener::bind(addr).await.map_err(|e| {
                std::io::Error::new(e.kind(), format!("xmpp direct TLS {addr}: {e}"))
            })?);
        }
        Ok(l)
    }

    /// What is bound, as `transport address` lines.
    pub fn describe(&self) -> Vec<String> {
        let addr =
            |a: std::io::Result<SocketAddr>| a.map_or_else(|e| e.to_string(), |a| a.to_string());
        let mut out = Vec::new();
        out.extend(
            self.udp
                .iter()
                .map(|s| format!("udp {}", addr(s.local_addr()))),
        );
        out.extend(
            self.tcp
                .iter()
                .map(|s| format!("tcp {}", addr(s.local_addr()))),
        );
        out.extend(
            self.tls
                .iter()
                .map(|s| format!("tls {}", addr(s.local_addr()))),
        );
        out.extend(
            self.xmpp
                .iter()
                .map(|s| format!("xmpp-s2s {}", addr(s.local_addr()))),
        );
        out.extend(
            self.xmpp_tls
                .iter()
                .map(|s| format!("xmpp-s2s-tls {}", addr(s.local_addr()))),
        );
        out.extend(
            self.admin
                .iter()
                .map(|s| format!("admin http://{}", addr(s.local_addr()))),
        );
        out
    }
}

/// Where a request goes: a transport and an address (what RFC 3263 target
/// selection produces). `name` is the host the TLS certificate must name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// The transport asked for; UDP becomes TCP for a large request.
    pub transport: Transport,
    /// Address and port.
    pub addr: SocketAddr,
    /// The server name for TLS (SNI and certificate check); the address
    /// when empty.
    pub name: Option<String>,
}

impl Target {
    /// A target without a TLS server name.
    pub fn new(transport: Transport, addr: SocketAddr) -> Target {
        Target {
            transport,
            addr,
            name: None,
        }
    }
}

/// Why a request could not be sent at all.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    /// The request cannot be sent as it is.
    #[error("cannot send the request: {0}")]
    Request(#[from] SipError),
    /// No socket of the right kind or family to send from.
    #[error("no {0} socket to send from")]
    NoSocket(Transport),
}

/// Where the messages of one transaction go.
#[derive(Debug, Clone)]
enum Path {
    Udp {
        socket: Arc<std::net::UdpSocket>,
        to: SocketAddr,
    },
    /// A connection's queue, its transport, and the certificate its TLS
    /// peer presented.
    Stream(mpsc::Sender<Bytes>, Transport, Option<PeerCertificate>),
}

/// The certificate a TLS peer authenticated with (mutual TLS).
pub type PeerCertificate = Arc<rustls::pki_types::CertificateDer<'static>>;

impl Path {
    /// Sends; false when the connection is gone.
    async fn send(&self, data: Bytes) -> bool {
        match self {
            Path::Udp { socket, to } => {
                udp::send(socket, &data, *to);
                true
            }
            Path::Stream(tx, ..) => tx.send(data).await.is_ok(),
        }
    }

    /// Sends without waiting when the socket or queue has room (nearly
    /// always), else waits; false when the connection is gone.
    async fn send_now(&self, data: Bytes) -> bool {
        match self {
            Path::Udp { socket, to } => {
                udp::send(socket, &data, *to);
                true
            }
            Path::Stream(tx, ..) => match tx.try_send(data) {
                Ok(()) => true,
                Err(mpsc::error::TrySendError::Full(data)) => self.send(data).await,
                Err(mpsc::error::TrySendError::Closed(_)) => false,
            },
        }
    }

    /// Sends from synchronous code: in place when there is room, else on a
    /// task of its own.
    fn send_detached(&self, data: Bytes) {
        let pending = match self {
            Path::Udp { socket, to } => {
                udp::send(socket, &data, *to);
                None
            }
            Path::Stream(tx, ..) => match tx.try_send(data) {
                Err(mpsc::error::TrySendError::Full(data)) => Some(data),
                _ => None,
            },
        };
        if let Some(data) = pending {
            if let Ok(rt) = tokio::runtime::Handle::try_current() {
                let path = self.clone();
                rt.spawn(async move { path.send(data).await });
            }
        }
    }

    fn reliability(&self) -> Reliability {
        match self {
            Path::Udp { .. } => Reliability::Unreliable,
            Path::Stream(..) => Reliability::Reliable,
        }
    }

    fn peer_certificate(&self) -> Option<PeerCertificate> {
        match self {
            Path::Udp { .. } => None,
            Path::Stream(_, _, c) => c.clone(),
        }
    }

    fn transport(&self) -> Transport {
        match self {
            Path::Udp { .. } => Transport::Udp,
            Path::Stream(_, t, _) => *t,
        }
    }
}

struct ServerEntry {
    txn: ServerTransaction,
    path: Path,
}

struct ClientEntry {
    txn: ClientTransaction,
    path: Path,
    responses: Sink,
}

/// Called with each response of a client transaction, on the task that
/// received it: the proxy's response context runs here, without a task
/// switch.
pub type OnResponse = Arc<dyn Fn(Message) + Send + Sync>;

/// Where the responses of a client transaction go.
#[derive(Clone)]
enum Sink {
    /// A receiver of its own.
    One(mpsc::UnboundedSender<Message>),
    /// A function called in place.
    Call(OnResponse),
    /// The final response was delivered; nothing more goes anywhere.
    Done,
}

impl Sink {
    fn send(&self, m: Message) {
        match self {
            Sink::One(tx) => {
                let _ = tx.send(m);
            }
            Sink::Call(f) => f(m),
            Sink::Done => {}
        }
    }
}

/// What one input to a client transaction produced.
struct ClientStep {
    out: Vec<Bytes>,
    path: Option<Path>,
    next: Option<std::time::Instant>,
    deliver: Vec<(Sink, Message)>,
}

/// A hash map keyed by what peers send (branches), with a per-process
/// random seed: fast, and collisions cannot be computed in advance.
type FastMap<K, V> = HashMap<K, V, foldhash::fast::RandomState>;

/// The timers of both tables share one queue.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum TimerKey {
    Server(Key),
    Client(Key),
}

/// Open connections by transport, peer address and, for TLS opened by
/// Parley, the name the peer's certificate was checked against: a
/// connection is only reused for the identity it was authenticated as.
type Connections = HashMap<(Transport, SocketAddr, Option<String>), stream::Slot>;

/// What every transport task shares.
struct Shared {
    core: Arc<Core>,
    limits: Limits,
    policy: Policy,
    timers: TimerConfig,
    // Entries are boxed: a table keeps spare slots, and a slot is then
    // only a key and a pointer.
    servers: Mutex<FastMap<Key, Box<ServerEntry>>>,
    clients: Mutex<FastMap<Key, Box<ClientEntry>>>,
    timers_queue: timer::Timers<TimerKey>,
    counter: AtomicU64,
    random: std::collections::hash_map::RandomState,
    multicast_responses: bool,
    udp: Vec<(Arc<std::net::UdpSocket>, SocketAddr)>,
    /// The address each stream transport listens on, for Via sent-by.
    stream_listen: Vec<(Transport, SocketAddr)>,
    connections: Mutex<Connections>,
    tls_client: Option<tokio_rustls::TlsConnector>,
    conn: stream::Settings,
}

fn now() -> std::time::Instant {
    tokio::time::Instant::now().into_std()
}

impl Shared {
    /// A fresh, unpredictable token (To tags, branches).
    fn token(&self) -> String {
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        format!("{:016x}", self.random.hash_one(n))
    }

    /// One received message, from any transport. Returns a stateless
    /// answer to send back to the source.
    async fn handle(
        self: &Arc<Self>,
        data: Bytes,
        source: SocketAddr,
        framing: Framing,
        path: impl FnOnce(&Message) -> Path,
    ) -> Option<Bytes> {
        match screen(data, framing, &self.limits, &self.policy) {
            Verdict::Answer { status, response } => {
                debug!(status, "answered statelessly");
                Some(Bytes::from(response))
            }
            Verdict::Drop(e) => {
                debug!(error = %e, "dropped");
                None
            }
            Verdict::Accept(msg) if !msg.is_request() => {
                self.response(msg).await;
                None
            }
            Verdict::Accept(mut msg) => {
                stamp_via(&mut msg, source);
                self.request(msg, source, path).await;
                None
            }
        }
    }

    async fn request(
        self: &Arc<Self>,
        msg: Message,
        source: SocketAddr,
        path: impl FnOnce(&Message) -> Path,
    ) {
        // Requests whose answer is a function of the request alone are
        // answered without a transaction, as a stateless UAS (RFC 3261
        // §8.2.7): a retransmission gets the same response again.
        if let Some(response) = self.core.answer_stateless(&msg, self.policy.tag_secret) {
            path(&msg).send(Bytes::from(response)).await;
            return;
        }
        let Ok(key) = Key::for_request(&msg) else {
            return;
        };
        let now = now();
        let (out, path, next, incoming) = {
            let mut table = self.servers.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(entry) = table.get_mut(&key) {
                entry.txn.handle_request(now, msg);
                (
                    std::iter::from_fn(|| entry.txn.poll_transmit()).collect::<Vec<_>>(),
                    entry.path.clone(),
                    None,
                    None,
                )
            } else if matches!(msg.method(), Some(Method::Ack)) {
                // The ACK for a 2xx is a transaction of its own, with no
                // response: the core forwards it.
                drop(table);
                let core = self.core.clone();
                let sip = Sip {
                    shared: self.clone(),
                };
                tokio::spawn(async move { core.ack(sip, msg).await });
                return;
            } else {
                let path = path(&msg);
                let txn = ServerTransaction::with_key(
                    now,
                    &msg,
                    key.clone(),
                    path.reliability(),
                    self.timers,
                );
                let next = txn.poll_timeout();
                table.insert(
                    key.clone(),
                    Box::new(ServerEntry {
                        txn,
                        path: path.clone(),
                    }),
                );
                let incoming = Incoming {
                    transport: path.transport(),
                    peer_certificate: path.peer_certificate(),
                    source,
                    responder: Responder {
                        shared: self.clone(),
                        key: key.clone(),
                        request: msg.clone(),
                        finished: false,
                        started: std::time::Instant::now(),
                    },
                    message: msg,
                };
                (Vec::new(), path, next, Some(incoming))
            }
        };
        for data in out {
            path.send_now(data).await;
        }
        if let Some(at) = next {
            self.timers_queue.schedule(TimerKey::Server(key), at);
        }
        if let Some(incoming) = incoming {
            // The core runs here, on the receiving task, as far as it can
            // without waiting; only what must wait gets a task of its own.
            let sip = Sip {
                shared: self.clone(),
            };
            let mut handler = Box::pin(self.core.clone().handle(sip, incoming));
            let done = std::future::poll_fn(|cx| {
                std::task::Poll::Ready(handler.as_mut().poll(cx).is_ready())
            })
            .await;
            if !done {
                tokio::spawn(handler);
            }
        }
    }

    /// Sends a response the core made in the server transaction `key`.
    /// Returns false when the transaction is gone.
    fn respond_now(&self, key: &Key, status: u16, wire: Bytes) -> Option<(Vec<Bytes>, Path)> {
        let now = now();
        let (out, path, next) = {
            let mut table = self.servers.lock().unwrap_or_else(|p| p.into_inner());
            let entry = table.get_mut(key)?;
            entry.txn.send_printed(now, status, wire);
            let out: Vec<_> = std::iter::from_fn(|| entry.txn.poll_transmit()).collect();
            let path = entry.path.clone();
            let next = entry.txn.poll_timeout();
            if entry.txn.is_terminated() {
                table.remove(key);
            }
            (out, path, next)
        };
        if let Some(at) = next {
            self.timers_queue
                .schedule(TimerKey::Server(key.clone()), at);
        }
        Some((out, path))
    }

    /// A response: to the client transaction it matches, or dropped.
    async fn response(&self, msg: Message) {
        let Ok(key) = Key::for_response(&msg) else {
            debug!("dropped a response without a usable Via");
            return;
        };
        let now = now();
        let step = {
            let mut table = self.clients.lock().unwrap_or_else(|p| p.into_inner());
            let Some(entry) = table.get_mut(&key) else {
                debug!("dropped a response that matches no transaction");
                return;
            };
            entry.txn.handle_response(now, msg);
            Self::client_step(&mut table, &key)
        };
        self.finish_client_step(key, step).await;
    }

    /// Sends, schedules and delivers what a client step produced, outside
    /// the table's lock.
    async fn finish_client_step(&self, key: Key, step: ClientStep) {
        if let Some(path) = &step.path {
            for data in step.out {
                path.send_now(data).await;
            }
        }
        if let Some(at) = step.next {
            self.timers_queue.schedule(TimerKey::Client(key), at);
        }
        for (sink, m) in step.deliver {
            sink.send(m);
        }
    }

    /// Drains a client transaction after an input: what to send, where, and
    /// the next timer. Timeouts and transport errors reach the requester as
    /// 408 and 503 responses (RFC 3261 §16.7 step 1, §8.1.3.1).
    fn client_step(table: &mut FastMap<Key, Box<ClientEntry>>, key: &Key) -> ClientStep {
        let Some(entry) = table.get_mut(key) else {
            return ClientStep {
                out: Vec::new(),
                path: None,
                next: None,
                deliver: Vec::new(),
            };
        };
        let mut deliver = Vec::new();
        let invite = entry.txn.is_invite();
        while let Some(event) = entry.txn.poll_event() {
            let response = match event {
                ClientEvent::Response(m) => Some(m),
                ClientEvent::Timeout => entry
                    .txn
                    .request()
                    .and_then(|r| local_response(&r, 408, "Request Timeout")),
                ClientEvent::TransportError => entry
                    .txn
                    .request()
                    .and_then(|r| local_response(&r, 503, "Service Unavailable")),
            };
            if let Some(r) = response {
                let last = r.status().is_some_and(|s| s >= 200) && !invite;
                deliver.push((entry.responses.clone(), r));
                if last {
                    // Nothing more reaches the requester: let go of what
                    // it holds (a proxy's response context) now rather
                    // than when Timer K ends the transaction.
                    entry.responses = Sink::Done;
                }
            }
        }
        let out: Vec<_> = std::iter::from_fn(|| entry.txn.poll_transmit()).collect();
        let path = Some(entry.path.clone());
        let next = entry.txn.poll_timeout();
        if entry.txn.is_terminated() {
            table.remove(key);
        }
        ClientStep {
            out,
            path,
            next,
            deliver,
        }
    }

    /// Fires the timers of one transaction.
    async fn expire(&self, key: &TimerKey) -> Option<std::time::Instant> {
        let (out, path, next, deliver) = match key {
            TimerKey::Server(key) => {
                let mut table = self.servers.lock().unwrap_or_else(|p| p.into_inner());
                let entry = table.get_mut(key)?;
                entry.txn.handle_timeout(now());
                let out: Vec<_> = std::iter::from_fn(|| entry.txn.poll_transmit()).collect();
                let path = entry.path.clone();
                let next = entry.txn.poll_timeout();
                if entry.txn.is_terminated() {
                    table.remove(key);
                }
                (out, Some(path), next, Vec::new())
            }
            TimerKey::Client(key) => {
                let mut table = self.clients.lock().unwrap_or_else(|p| p.into_inner());
                table.get_mut(key)?.txn.handle_timeout(now());
                let s = Self::client_step(&mut table, key);
                (s.out, s.path, s.next, s.deliver)
            }
        };
        if let Some(path) = path {
            for data in out {
                path.send_now(data).await;
            }
        }
        for (sink, m) in deliver {
            sink.send(m);
        }
        next
    }

    /// Transactions still waiting for their final response.
    fn unanswered(&self) -> usize {
        self.servers
            .lock()
            .map_or(0, |t| t.values().filter(|e| e.txn.awaits_final()).count())
    }

    /// The UDP socket to send to `to` from: the first of the same family.
    fn udp_socket(&self, to: SocketAddr) -> Option<(Arc<std::net::UdpSocket>, SocketAddr)> {
        self.udp
            .iter()
            .find(|(_, a)| a.is_ipv4() == to.is_ipv4())
            .cloned()
    }

    /// The sent-by for a Via on `transport` towards `to`: the address
    /// Parley listens on for that transport and family.
    fn sent_by(&self, transport: Transport, to: SocketAddr) -> Option<SocketAddr> {
        if transport == Transport::Udp {
            return self.udp_socket(to).map(|(_, a)| a);
        }
        self.stream_listen
            .iter()
            .find(|(t, a)| *t == transport && a.is_ipv4() == to.is_ipv4())
            .map(|(_, a)| *a)
    }
}

/// The CANCEL for an INVITE as it was sent (RFC 3261 §9.1).
fn cancel_for(invite: &Message) -> Option<Message> {
    let text = |name: HeaderName| {
        invite
            .headers()
            .get(name)
            .map(|v| String::from_utf8_lossy(v).into_owned())
    };
    let uri = String::from_utf8_lossy(invite.request_uri_raw()?).into_owned();
    let via = invite
        .headers()
        .values(HeaderName::Via)
        .next()
        .map(|v| String::from_utf8_lossy(v).into_owned())?;
    let cseq = invite.cseq()?.ok()?.seq;
    let mut out = format!("CANCEL {uri} SIP/2.0\r\nVia: {via}\r\n");
    for route in invite.headers().lines(HeaderName::Route) {
        out.push_str(&format!("Route: {}\r\n", String::from_utf8_lossy(route)));
    }
    out.push_str(&format!(
        "From: {}\r\nTo: {}\r\nCall-ID: {}\r\nCSeq: {cseq} CANCEL\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n",
        text(HeaderName::From)?,
        text(HeaderName::To)?,
        text(HeaderName::CallId)?
    ));
    Message::parse(Bytes::from(out), Framing::Stream, &Limits::default()).ok()
}

/// A response made locally for a request that got none (408, 503), parsed
/// back so the requester sees one kind of thing.
pub fn local_response(request: &Message, status: u16, reason: &str) -> Option<Message> {
    let tag = crate::proto::sip::stateless::stateless_tag(request, 0);
    let wire = respond(request, status, reason, &tag, &[]);
    Message::parse(Bytes::from(wire), Framing::Stream, &Limits::default()).ok()
}

/// A request that opened a server transaction, handed to the core.
#[derive(Debug)]
pub struct Incoming {
    /// The request, its top Via stamped with received/rport.
    pub message: Message,
    /// Where it came from.
    pub source: SocketAddr,
    /// The transport it came over.
    pub transport: Transport,
    /// The certificate of the TLS peer it came from, when the peer
    /// authenticated with one (RFC 5922 §7.4).
    pub peer_certificate: Option<PeerCertificate>,
    /// Sends the responses.
    pub responder: Responder,
}

/// Sends the responses of one server transaction. Dropping it before a
/// final response was sent answers 500, so no request is left unanswered.
pub struct Responder {
    shared: Arc<Shared>,
    key: Key,
    request: Message,
    finished: bool,
    /// When the request arrived: the transaction latency histogram.
    started: std::time::Instant,
}

impl std::fmt::Debug for Responder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Responder")
            .field("key", &self.key)
            .field("finished", &self.finished)
            .finish_non_exhaustive()
    }
}

impl Responder {
    /// Sends a printed response (provisional or final).
    pub async fn send(&mut self, status: u16, wire: Bytes) {
        self.send_sync(status, wire);
    }

    /// Sends a printed response from synchronous code (a response
    /// callback): in place, or on a task of its own when the socket is full.
    pub fn send_sync(&mut self, status: u16, wire: Bytes) {
        if status >= 200 && !self.finished {
            self.finished = true;
            let method = self.request.method().map_or("other", |m| match m {
                crate::proto::sip::Method::Invite => "INVITE",
                crate::proto::sip::Method::Register => "REGISTER",
                crate::proto::sip::Method::Message => "MESSAGE",
                crate::proto::sip::Method::Subscribe => "SUBSCRIBE",
                crate::proto::sip::Method::Publish => "PUBLISH",
                crate::proto::sip::Method::Options => "OPTIONS",
                crate::proto::sip::Method::Cancel => "CANCEL",
                _ => "other",
            });
            metrics::histogram!("parley_transaction_seconds", "method" => method)
                .record(self.started.elapsed().as_secs_f64());
        }
        if let Some((out, path)) = self.shared.respond_now(&self.key, status, wire) {
            for data in out {
                path.send_detached(data);
            }
        }
    }

    /// Sends a response made from the request (RFC 3261 §8.2.6) with
    /// `extra` header fields; the To tag is the transaction's own.
    pub async fn reply(&mut self, status: u16, reason: &str, extra: &[(&str, String)]) {
        self.reply_sync(status, reason, extra);
    }

    /// [`Responder::reply`] from synchronous code.
    pub fn reply_sync(&mut self, status: u16, reason: &str, extra: &[(&str, String)]) {
        let tag = crate::proto::sip::stateless::stateless_tag(
            &self.request,
            self.shared.policy.tag_secret,
        );
        let wire = respond(&self.request, status, reason, &tag, extra);
        count_response(status);
        self.send_sync(status, Bytes::from(wire));
    }

    /// [`Responder::reply`] with a To tag of the caller's choosing (a
    /// dialog the core creates, e.g. a subscription).
    pub async fn reply_with_tag(
        &mut self,
        status: u16,
        reason: &str,
        to_tag: &str,
        extra: &[(&str, String)],
    ) {
        let wire = respond(&self.request, status, reason, to_tag, extra);
        self.send_sync(status, Bytes::from(wire));
    }

    /// The server transaction's key.
    pub fn key(&self) -> &Key {
        &self.key
    }

    /// True once a final response was sent.
    pub fn is_finished(&self) -> bool {
        self.finished
    }
}

impl Drop for Responder {
    fn drop(&mut self) {
        if self.finished {
            return;
        }
        let tag = crate::proto::sip::stateless::stateless_tag(&self.request, 0);
        let wire = respond(&self.request, 500, "Server Internal Error", &tag, &[]);
        if let Some((out, path)) = self.shared.respond_now(&self.key, 500, Bytes::from(wire)) {
            for data in out {
                path.send_detached(data);
            }
        }
    }
}

/// A handle on the running transports, for the services that send requests.
#[derive(Clone)]
pub struct Sip {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for Sip {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sip").finish_non_exhaustive()
    }
}

impl Sip {
    /// Sends `request` to `target` in a new client transaction, with a
    /// top Via of Parley's own (fresh branch, rport). The receiver yields
    /// every response in order: provisional ones, then the final one (or a
    /// local 408 on timeout, 503 on a transport error); for INVITE, every
    /// 2xx that arrives while the transaction lasts.
    pub async fn request(
        &self,
        request: Message,
        target: &Target,
    ) -> Result<mpsc::UnboundedReceiver<Message>, SendError> {
        let (tx, rx) = mpsc::unbounded_channel();
        self.send_request(request, target, Sink::One(tx), None)
            .await?;
        Ok(rx)
    }

    /// [`Sip::request`] with `on_response` called for each response, in
    /// place, on the task that received it (it must not block).
    /// A request that cannot be sent at all gets a local 503 the same way.
    /// Returns the client transaction's key, for [`Sip::cancel`].
    /// `loop_tag` goes into the branch (RFC 3261 §16.6 item 8) so the
    /// proxy can tell a loop from a spiral.
    pub async fn request_with(
        &self,
        request: Message,
        target: &Target,
        on_response: OnResponse,
        loop_tag: Option<u64>,
    ) -> Option<Key> {
        // Kept for a local 503, made only when the request cannot be sent.
        let original = request.clone();
        let sink = Sink::Call(on_response.clone());
        match self.send_request(request, target, sink, loop_tag).await {
            Ok(key) => key,
            Err(e) => {
                debug!(error = %e, "request not sent");
                if let Some(r) = local_response(&original, 503, "Service Unavailable") {
                    on_response(r);
                }
                None
            }
        }
    }

    /// Cancels the INVITE client transaction `key` (RFC 3261 §9.1): a
    /// CANCEL with the INVITE's Request-URI, top Via, Route, From, To,
    /// Call-ID and CSeq number goes the same way. False when the INVITE has
    /// no provisional response yet (the CANCEL must wait for one) or is over.
    pub async fn cancel(&self, key: &Key) -> bool {
        use crate::proto::transaction::ClientState;
        let (cancel, path) = {
            let table = self
                .shared
                .clients
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            let Some(entry) = table.get(key) else {
                return false;
            };
            if !matches!(entry.txn.state(), ClientState::Proceeding { .. }) {
                return false;
            }
            let Some(cancel) = entry.txn.request().as_ref().and_then(cancel_for) else {
                return false;
            };
            (cancel, entry.path.clone())
        };
        let Ok(txn) = ClientTransaction::new(now(), cancel, path.reliability(), self.shared.timers)
        else {
            return false;
        };
        let ckey = txn.key().clone();
        let step = {
            let mut table = self
                .shared
                .clients
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            // The 200 to the CANCEL is of no further use.
            let (tx, _) = mpsc::unbounded_channel();
            table.insert(
                ckey.clone(),
                Box::new(ClientEntry {
                    txn,
                    path,
                    responses: Sink::One(tx),
                }),
            );
            Shared::client_step(&mut table, &ckey)
        };
        self.shared.finish_client_step(ckey, step).await;
        true
    }

    /// Forwards a request without a transaction (the ACK for a 2xx, RFC
    /// 3261 §16.11): a Via of Parley's own, whose branch is derived from
    /// the request's, so a retransmission is forwarded identically.
    pub async fn forward_stateless(&self, mut request: Message, target: &Target) {
        let shared = &self.shared;
        let branch_of = request
            .top_via()
            .and_then(Result::ok)
            .and_then(|v| v.branch().map(str::to_string))
            .unwrap_or_default();
        let (path, local) = match self.path_to(target.transport, target).await {
            Ok(p) => p,
            Err(e) => {
                debug!(addr = %target.addr, error = %e, "ACK not forwarded");
                return;
            }
        };
        let via = format!(
            "SIP/2.0/{} {local};branch=z9hG4bK{:016x};rport",
            path.transport().via_name(),
            shared.random.hash_one(&branch_of)
        );
        if request.headers_mut().push_front("Via", &via).is_err() {
            return;
        }
        request.ensure_content_length();
        path.send_now(Bytes::from(request.to_bytes())).await;
    }

    /// True while the server transaction `key` waits for its final response.
    pub fn is_pending(&self, key: &Key) -> bool {
        self.shared
            .servers
            .lock()
            .is_ok_and(|t| t.get(key).is_some_and(|e| e.txn.awaits_final()))
    }

    /// Where to send to `target` over `transport`, and the sent-by for the
    /// Via: the UDP socket of the right family, or a connection (open or
    /// new) with the address Parley listens on for that transport.
    async fn path_to(
        &self,
        transport: Transport,
        target: &Target,
    ) -> Result<(Path, SocketAddr), std::io::Error> {
        let shared = &self.shared;
        if transport == Transport::Udp {
            let (socket, local) = shared.udp_socket(target.addr).ok_or_else(|| {
                std::io::Error::new(std::io::ErrorKind::NotFound, "no UDP socket")
            })?;
            let path = Path::Udp {
                socket,
                to: target.addr,
            };
            return Ok((path, local));
        }
        let (tx, local) = stream::open(shared, transport, target).await?;
        let sent_by = shared.sent_by(transport, target.addr).unwrap_or(local);
        Ok((Path::Stream(tx, transport, None), sent_by))
    }

    async fn send_request(
        &self,
        mut request: Message,
        target: &Target,
        sink: Sink,
        loop_tag: Option<u64>,
    ) -> Result<Option<Key>, SendError> {
        let shared = &self.shared;
        let mut transport = target.transport;
        let too_large = transport == Transport::Udp && request.wire_len() + 100 > UDP_REQUEST_LIMIT;
        if too_large {
            transport = Transport::Tcp; // RFC 3261 §18.1.1
        }
        let (path, local) = match self.path_to(transport, target).await {
            Ok(p) => p,
            Err(_) if transport == Transport::Udp => return Err(SendError::NoSocket(transport)),
            Err(e) => {
                debug!(addr = %target.addr, error = %e, "cannot connect");
                // Too large for UDP and no TCP at the target: the request
                // cannot go there at all (RFC 3428 §5: 513).
                let answer = if too_large {
                    local_response(&request, 513, "Message Too Large")
                } else {
                    local_response(&request, 503, "Service Unavailable")
                };
                if let Some(r) = answer {
                    sink.send(r);
                }
                return Ok(None);
            }
        };
        let tag = loop_tag.map_or_else(String::new, |t| format!(".{t:016x}"));
        let via = format!(
            "SIP/2.0/{} {local};branch=z9hG4bK{}{tag};rport",
            transport.via_name(),
            shared.token()
        );
        request.headers_mut().push_front("Via", &via)?;
        if request.headers().get(HeaderName::MaxForwards).is_none() {
            request.headers_mut().push("Max-Forwards", "70")?;
        }
        request.ensure_content_length();
        let txn = ClientTransaction::new(now(), request, path.reliability(), shared.timers)?;
        let key = txn.key().clone();
        let step = {
            let mut table = shared.clients.lock().unwrap_or_else(|p| p.into_inner());
            table.insert(
                key.clone(),
                Box::new(ClientEntry {
                    txn,
                    path,
                    responses: sink,
                }),
            );
            Shared::client_step(&mut table, &key)
        };
        let path = step.path.clone();
        for data in step.out {
            let sent = match &path {
                Some(p) => p.send_now(data).await,
                None => false,
            };
            if !sent {
                let failed = {
                    let mut table = shared.clients.lock().unwrap_or_else(|p| p.into_inner());
                    if let Some(e) = table.get_mut(&key) {
                        e.txn.handle_transport_error();
                    }
                    Shared::client_step(&mut table, &key)
                };
                shared.finish_client_step(key, failed).await;
                return Ok(None);
            }
        }
        if let Some(at) = step.next {
            shared
                .timers_queue
                .schedule(TimerKey::Client(key.clone()), at);
        }
        for (sink, m) in step.deliver {
            sink.send(m);
        }
        Ok(Some(key))
    }

    /// True when a connection over `transport` to `peer` is open (a flow a
    /// user agent registered over).
    pub fn is_connected(&self, transport: Transport, peer: SocketAddr) -> bool {
        let map = self
            .shared
            .connections
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        map.get(&(transport, peer, None)).is_some_and(|slot| {
            slot.try_lock()
                .is_ok_and(|c| c.as_ref().is_some_and(|c| !c.tx.is_closed()))
        })
    }

    /// Open connections (accepted and opened), for monitoring and tests.
    pub fn open_connections(&self) -> usize {
        self.shared.connections.lock().map_or(0, |c| c.len())
    }
}

/// A SIP server on bound listeners.
pub struct Server {
    shared: Arc<Shared>,
    listeners: Listeners,
    tls: Option<tokio_rustls::TlsAcceptor>,
    grace: Duration,
    readers: usize,
}

impl Server {
    /// Prepares the server: loads the TLS material, sizes the UDP buffers.
    pub fn new(config: &Config, listeners: Listeners, core: Arc<Core>) -> anyhow::Result<Server> {
        let tls = if listeners.tls.is_empty() {
            None
        } else {
            Some(tokio_rustls::TlsAcceptor::from(tls::server_config(config)?))
        };
        let tls_client = tls::client_config(config)?.map(tokio_rustls::TlsConnector::from);
        let random = std::collections::hash_map::RandomState::new();
        let mut listeners = listeners;
        let mut udp_sockets = Vec::new();
        for socket in std::mem::take(&mut listeners.udp) {
            let socket = udp::blocking(socket, config.sip.udp_buffer_bytes)?;
            let local = socket.local_addr()?;
            udp_sockets.push((Arc::new(socket), local));
        }
        let mut stream_listen = Vec::new();
        for (t, list) in [
            (Transport::Tcp, &listeners.tcp),
            (Transport::Tls, &listeners.tls),
        ] {
            for l in list {
                if let Ok(a) = l.local_addr() {
                    stream_listen.push((t, a));
                }
            }
        }
        let shared = Arc::new(Shared {
            core,
            limits: config.sip.limits,
            policy: Policy {
                tag_secret: random.hash_one(std::process::id()),
                ..Policy::default()
            },
            timers: config.sip.timers.config(),
            servers: Mutex::new(FastMap::default()),
            clients: Mutex::new(FastMap::default()),
            timers_queue: timer::Timers::new(),
            counter: AtomicU64::new(0),
            random,
            multicast_responses: config.sip.multicast_responses,
            udp: udp_sockets,
            stream_listen,
            connections: Mutex::new(HashMap::new()),
            tls_client,
            conn: stream::Settings {
                idle: Duration::from_secs(config.sip.idle_timeout_secs),
                permits: Arc::new(Semaphore::new(config.sip.max_connections)),
                stop: CancellationToken::new(),
                tracker: TaskTracker::new(),
            },
        });
        Ok(Server {
            shared,
            listeners,
            tls,
            grace: Duration::from_secs(config.sip.shutdown_grace_secs),
            // Several readers per UDP socket, as many as there are cores,
            // so a burst is drained while one reader is busy.
            readers: config.workers(),
        })
    }

    /// Opens the store, loads the services and prepares the server.
    pub async fn start(config: &Config, listeners: Listeners) -> anyhow::Result<Server> {
        let store: Arc<dyn crate::store::Store> =
            Arc::new(crate::store::SqliteStore::open(&config.sqlite_path()).await?);
        let mut listen = Vec::new();
        for (t, list) in [
            (Transport::Tcp, &listeners.tcp),
            (Transport::Tls, &listeners.tls),
        ] {
            listen.extend(
                list.iter()
                    .filter_map(|l| l.local_addr().ok())
                    .map(|a| (t, a)),
            );
        }
        listen.extend(
            listeners
                .udp
                .iter()
                .filter_map(|l| l.local_addr().ok())
                .map(|a| (Transport::Udp, a)),
        );
        let core = Core::start(config, store.clone(), listen).await?;
        let mut listeners = listeners;
        let admin_listener = listeners.admin.take();
        let adapter_listeners = crate::gateway::AdapterListeners {
            xmpp: listeners.xmpp.take(),
            xmpp_tls: listeners.xmpp_tls.take(),
        };
        let server = Server::new(config, listeners, core.clone())?;
        let gateway = crate::gateway::Gateway::start(
            config,
            &core,
            server.sip(),
            adapter_listeners,
            store.clone(),
        )
        .await?;
        let _ = core.gateway.set(gateway);
        let stop = server.shared.conn.stop.clone();
        let tracker = server.shared.conn.tracker.clone();
        if let Some(listener) = admin_listener {
            let token = crate::admin::token(config)?;
            tracker.spawn(crate::admin::serve(
                token,
                config.source.clone(),
                core.clone(),
                store,
                listener,
                stop.clone(),
            ));
        }
        // SIGHUP reloads the domain policy from the configuration file.
        #[cfg(unix)]
        if let Ok(mut hup) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
        {
            let (core, path) = (core.clone(), config.source.clone());
            tracker.spawn(async move {
                loop {
                    tokio::select! {
                        _ = stop.cancelled() => return,
                        got = hup.recv() => {
                            if got.is_none() {
                                return;
                            }
                            if let Err(e) = crate::admin::reload_from(&core, path.as_deref()) {
                                warn!(error = %e, "policy not reloaded");
                            }
                        }
                    }
                }
            });
        }
        Ok(server)
    }

    /// The handle services use to send requests.
    pub fn sip(&self) -> Sip {
        Sip {
            shared: self.shared.clone(),
        }
    }

    /// Serves until `shutdown` completes, then stops accepting and lets
    /// transactions in flight finish for up to the configured grace period.
    pub async fn run(self, shutdown: impl std::future::Future<Output = ()>) -> anyhow::Result<()> {
        let Server {
            shared,
            listeners,
            tls,
            grace,
            readers,
        } = self;
        let stop = shared.conn.stop.clone();
        let tracker = shared.conn.tracker.clone();
        tracker.spawn(timers(shared.clone(), stop.clone()));
        tracker.spawn(ticks(shared.clone(), stop.clone()));
        for (socket, _) in &shared.udp {
            for _ in 0..readers {
                let (shared, socket) = (shared.clone(), socket.clone());
                tracker.spawn_blocking(move || udp::reader(shared, socket));
            }
        }
        for listener in listeners.tcp {
            tracker.spawn(stream::accept(shared.clone(), listener, None));
        }
        for listener in listeners.tls {
            tracker.spawn(stream::accept(shared.clone(), listener, tls.clone()));
        }

        shutdown.await;
        info!("shutting down");
        // Let transactions in flight get their final responses out, then stop.
        let deadline = tokio::time::Instant::now() + grace;
        while shared.unanswered() > 0 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        if let Some(gateway) = shared.core.gateway.get() {
            gateway.stop().await;
        }
        stop.cancel();
        tracker.close();
        tracker.wait().await;
        info!("stopped");
        Ok(())
    }
}

/// Runs the SIP server on bound listeners until `shutdown` completes.
pub async fn serve(
    config: &Config,
    listeners: Listeners,
    shutdown: impl std::future::Future<Output = ()>,
) -> anyhow::Result<()> {
    Server::start(config, listeners).await?.run(shutdown).await
}

/// Gives the core a turn every second (expiry sweeps that send requests).
async fn ticks(shared: Arc<Shared>, stop: CancellationToken) {
    let sip = Sip {
        shared: shared.clone(),
    };
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tick.tick() => shared.core.tick(&sip).await,
        }
    }
}

/// Runs the transaction timers. Deadlines that fall close together are
/// handled in one wake-up: after a round the task sleeps at least a
/// granule (a fiftieth of T1, at most 10 ms), so under load the timers
/// cost a bounded number of wake-ups per second instead of one per
/// transaction, and fire at most a granule late.
async fn timers(shared: Arc<Shared>, stop: CancellationToken) {
    let granule = (shared.timers.t1 / 50).min(Duration::from_millis(10));
    let mut not_before = now();
    loop {
        let next = shared.timers_queue.next();
        let sleep = async {
            match next {
                Some(at) => {
                    let at = at.max(not_before);
                    tokio::time::sleep_until(tokio::time::Instant::from_std(at)).await
                }
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = shared.timers_queue.changed.notified() => continue,
            _ = sleep => {}
        }
        let round = now();
        for key in shared.timers_queue.due(round) {
            if let Some(next) = shared.expire(&key).await {
                shared.timers_queue.schedule(key, next);
            }
        }
        not_before = round + granule;
    }
}

/// Counts a final or provisional response Parley sent, by status class
/// and code (a bounded label set: SIP codes are three digits).
fn count_response(status: u16) {
    static CODES: std::sync::OnceLock<Vec<String>> = std::sync::OnceLock::new();
    let codes = CODES.get_or_init(|| (0..700).map(|c| c.to_string()).collect());
    let code = codes
        .get(usize::from(status))
        .map_or("other", String::as_str);
    metrics::counter!("parley_sip_responses_total", "code" => code).increment(1);
}
