//! The transaction tables and what every transport task shares: a
//! received message is screened, matched to its transaction or handed to
//! the handler; client transactions are run for requests Parley sends; one
//! timer queue drives both tables.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use tokio::sync::mpsc;
use tracing::debug;

use super::responder::{Incoming, Responder};
use super::sip::{OnResponse, Sip};
use super::{stream, timer, udp, Handler, PeerCertificate};
use crate::proto::sip::stateless::{respond, screen, stamp_via, stateless_tag, Policy, Verdict};
use crate::proto::sip::{Framing, HeaderName, Limits, Message, Method, RequestBuilder, Transport};
use crate::proto::transaction::{
    ClientEvent, ClientTransaction, Key, Reliability, ServerTransaction, TimerConfig,
};

/// Where the messages of one transaction go.
#[derive(Debug, Clone)]
pub(super) enum Path {
    Udp {
        socket: Arc<std::net::UdpSocket>,
        to: SocketAddr,
    },
    /// A connection's queue, its transport, and the certificate its TLS
    /// peer presented.
    Stream(mpsc::Sender<Bytes>, Transport, Option<PeerCertificate>),
}

impl Path {
    /// Sends; false when the connection is gone.
    pub(super) async fn send(&self, data: Bytes) -> bool {
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
    pub(super) async fn send_now(&self, data: Bytes) -> bool {
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
    pub(super) fn send_detached(&self, data: Bytes) {
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

    pub(super) fn reliability(&self) -> Reliability {
        match self {
            Path::Udp { .. } => Reliability::Unreliable,
            Path::Stream(..) => Reliability::Reliable,
        }
    }

    pub(super) fn peer_certificate(&self) -> Option<PeerCertificate> {
        match self {
            Path::Udp { .. } => None,
            Path::Stream(_, _, c) => c.clone(),
        }
    }

    pub(super) fn transport(&self) -> Transport {
        match self {
            Path::Udp { .. } => Transport::Udp,
            Path::Stream(_, t, _) => *t,
        }
    }
}

pub(super) struct ServerEntry {
    pub(super) txn: ServerTransaction,
    pub(super) path: Path,
}

pub(super) struct ClientEntry {
    pub(super) txn: ClientTransaction,
    pub(super) path: Path,
    pub(super) responses: Sink,
    /// The server it went to (RFC 7339 reductions are per server).
    pub(super) peer: SocketAddr,
}

/// Where the responses of a client transaction go.
#[derive(Clone)]
pub(super) enum Sink {
    /// A receiver of its own.
    One(mpsc::UnboundedSender<Message>),
    /// A function called in place.
    Call(OnResponse),
    /// The final response was delivered; nothing more goes anywhere.
    Done,
}

impl Sink {
    pub(super) fn send(&self, m: Message) {
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
pub(super) struct ClientStep {
    pub(super) out: Vec<Bytes>,
    pub(super) path: Option<Path>,
    pub(super) next: Option<std::time::Instant>,
    pub(super) deliver: Vec<(Sink, Message)>,
}

/// A hash map keyed by what peers send (branches), with a per-process
/// random seed: fast, and collisions cannot be computed in advance.
pub(super) type FastMap<K, V> = HashMap<K, V, foldhash::fast::RandomState>;

/// The timers of both tables share one queue.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(super) enum TimerKey {
    Server(Key),
    Client(Key),
}

/// Open connections by transport, peer address and, for TLS opened by
/// Parley, the name the peer's certificate was checked against: a
/// connection is only reused for the identity it was authenticated as.
pub(super) type Connections = HashMap<(Transport, SocketAddr, Option<String>), stream::Slot>;

/// What every transport task shares.
pub(super) struct Shared {
    pub(super) handler: Arc<dyn Handler>,
    /// Admission of new requests (RFC 3261 §21.5.4, RFC 7339).
    pub(super) overload: super::overload::Overload,
    pub(super) limits: Limits,
    pub(super) policy: Policy,
    pub(super) timers: TimerConfig,
    // Entries are boxed: a table keeps spare slots, and a slot is then
    // only a key and a pointer.
    pub(super) servers: Mutex<FastMap<Key, Box<ServerEntry>>>,
    pub(super) clients: Mutex<FastMap<Key, Box<ClientEntry>>>,
    pub(super) timers_queue: timer::Timers<TimerKey>,
    /// The key Parley derives stateless branches with (a retransmitted ACK
    /// is forwarded with the same branch).
    pub(super) branch_key: std::collections::hash_map::RandomState,
    pub(super) multicast_responses: bool,
    pub(super) udp: Vec<(Arc<std::net::UdpSocket>, SocketAddr)>,
    /// The address each stream transport listens on, for Via sent-by.
    pub(super) stream_listen: Vec<(Transport, SocketAddr)>,
    pub(super) connections: Mutex<Connections>,
    pub(super) tls_client: Option<tokio_rustls::TlsConnector>,
    pub(super) conn: stream::Settings,
}

/// Counts a request received (a new transaction, or answered statelessly).
fn count_request(method: &'static str) {
    metrics::counter!("parley_sip_requests_total", "method" => method).increment(1);
}

/// The status code of a printed response.
fn status_of(response: &[u8]) -> u16 {
    response
        .get(8..11)
        .and_then(|c| std::str::from_utf8(c).ok())
        .and_then(|c| c.parse().ok())
        .unwrap_or(0)
}

/// The method a printed response's CSeq names, as a bounded label.
fn cseq_method(response: &[u8]) -> &'static str {
    let head = &response[..memchr::memmem::find(response, b"\r\n\r\n").unwrap_or(response.len())];
    head.split(|&b| b == b'\n')
        .find_map(|line| {
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            let colon = line.iter().position(|&b| b == b':')?;
            let name = std::str::from_utf8(&line[..colon]).ok()?.trim();
            if !name.eq_ignore_ascii_case("CSeq") {
                return None;
            }
            let value = std::str::from_utf8(&line[colon + 1..]).ok()?;
            let method = value.split_whitespace().nth(1)?;
            Some(Method::from_bytes(method.as_bytes()).label())
        })
        .unwrap_or("other")
}

pub(super) fn now() -> std::time::Instant {
    tokio::time::Instant::now().into_std()
}

impl Shared {
    /// One received message, from any transport. Returns a stateless
    /// answer to send back to the source.
    pub(super) async fn handle(
        self: &Arc<Self>,
        data: Bytes,
        source: SocketAddr,
        framing: Framing,
        path: impl FnOnce(&Message) -> Path,
    ) -> Option<Bytes> {
        match screen(data, framing, &self.limits, &self.policy) {
            Verdict::Answer { status, response } => {
                debug!(status, "answered statelessly");
                // Counted like every other request and response: the
                // method as the answer's CSeq names it.
                count_request(cseq_method(&response));
                super::responder::count_response(status);
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

    pub(super) async fn request(
        self: &Arc<Self>,
        msg: Message,
        source: SocketAddr,
        path: impl FnOnce(&Message) -> Path,
    ) {
        // Requests whose answer is a function of the request alone are
        // answered without a transaction, as a stateless UAS (RFC 3261
        // §8.2.7): a retransmission gets the same response again.
        if let Some(response) = self.handler.answer_stateless(&msg, self.policy.tag_secret) {
            count_request(msg.method().map_or("other", Method::label));
            super::responder::count_response(status_of(&response));
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
                // response: the handler forwards it.
                drop(table);
                let sip = Sip::of(self.clone());
                tokio::spawn(self.handler.clone().ack(sip, msg));
                return;
            } else {
                let path = path(&msg);
                // Past the bound a new request is turned away at once, before
                // any work; retransmissions matched a transaction above.
                let counted = !matches!(msg.method(), Some(Method::Invite));
                count_request(msg.method().map_or("other", Method::label));
                if !self.overload.admit(counted) {
                    super::responder::count_response(503);
                    let tag = stateless_tag(&msg, self.policy.tag_secret);
                    let retry = [("Retry-After", self.overload.retry_after())];
                    let wire = respond(&msg, 503, "Service Unavailable (overloaded)", &tag, &retry);
                    (vec![Bytes::from(wire)], path, None, None)
                } else {
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
                        responder: Responder::new(self.clone(), key.clone(), msg.clone(), counted),
                        message: msg,
                    };
                    (Vec::new(), path, next, Some(incoming))
                }
            }
        };
        for data in out {
            path.send_now(data).await;
        }
        if let Some(at) = next {
            self.timers_queue.schedule(TimerKey::Server(key), at);
        }
        if let Some(incoming) = incoming {
            // The handler runs here, on the receiving task, as far as it
            // can without waiting; only what must wait gets a task of its own.
            let sip = Sip::of(self.clone());
            let mut handler = self.handler.clone().handle(sip, incoming);
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
    pub(super) fn respond_now(
        &self,
        key: &Key,
        status: u16,
        wire: Bytes,
    ) -> Option<(Vec<Bytes>, Path)> {
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
    pub(super) async fn response(&self, msg: Message) {
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
            self.overload.learn(entry.peer, &msg);
            entry.txn.handle_response(now, msg);
            Self::client_step(&mut table, &key)
        };
        self.finish_client_step(key, step).await;
    }

    /// Sends, schedules and delivers what a client step produced, outside
    /// the table's lock.
    pub(super) async fn finish_client_step(&self, key: Key, step: ClientStep) {
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
    pub(super) fn client_step(table: &mut FastMap<Key, Box<ClientEntry>>, key: &Key) -> ClientStep {
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
    pub(super) async fn expire(&self, key: &TimerKey) -> Option<std::time::Instant> {
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

    /// Gives back the room the transaction tables grew into during a burst,
    /// once they have emptied: memory returns towards its idle level.
    pub(super) fn compact(&self) {
        fn shrink<V>(table: &Mutex<FastMap<Key, V>>) {
            let mut t = table.lock().unwrap_or_else(|p| p.into_inner());
            if t.capacity() > 4 * t.len() + 1024 {
                let keep = t.len() * 2;
                t.shrink_to(keep);
            }
        }
        shrink(&self.servers);
        shrink(&self.clients);
        self.timers_queue.compact();
    }

    /// Transactions still waiting for their final response.
    pub(super) fn unanswered(&self) -> usize {
        self.servers
            .lock()
            .map_or(0, |t| t.values().filter(|e| e.txn.awaits_final()).count())
    }

    /// The UDP socket to send to `to` from: the first of the same family.
    pub(super) fn udp_socket(
        &self,
        to: SocketAddr,
    ) -> Option<(Arc<std::net::UdpSocket>, SocketAddr)> {
        self.udp
            .iter()
            .find(|(_, a)| a.is_ipv4() == to.is_ipv4())
            .cloned()
    }

    /// The sent-by for a Via on `transport` towards `to`: the address
    /// Parley listens on for that transport and family.
    pub(super) fn sent_by(&self, transport: Transport, to: SocketAddr) -> Option<SocketAddr> {
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
pub(super) fn cancel_for(invite: &Message) -> Option<Message> {
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
    let routes = invite
        .headers()
        .lines(HeaderName::Route)
        .map(|r| String::from_utf8_lossy(r).into_owned());
    RequestBuilder::new("CANCEL", &uri)
        .header("Via", &via)
        .headers("Route", routes)
        .header("From", &text(HeaderName::From)?)
        .header("To", &text(HeaderName::To)?)
        .header("Call-ID", &text(HeaderName::CallId)?)
        .header("CSeq", &format!("{cseq} CANCEL"))
        .header("Max-Forwards", "70")
        .build()
        .ok()
}

/// The response for a request that could not be sent at all (no socket,
/// no connection, too large): made as if Parley's own branch had answered,
/// with a Via for that branch on top, so a proxy that takes its Via off
/// every response keeps the ones of the hops before it.
pub(super) fn unsent_response(request: &Message, status: u16, reason: &str) -> Option<Message> {
    let mut request = request.clone();
    let via = format!(
        "SIP/2.0/UDP 127.0.0.1;branch=z9hG4bK{}",
        crate::sys::token()
    );
    request.headers_mut().push_front("Via", &via).ok()?;
    local_response(&request, status, reason)
}

/// A response made locally for a request that got none (408, 503), parsed
/// back so the requester sees one kind of thing.
pub fn local_response(request: &Message, status: u16, reason: &str) -> Option<Message> {
    let tag = crate::proto::sip::stateless::stateless_tag(request, 0);
    let wire = respond(request, status, reason, &tag, &[]);
    Message::parse(Bytes::from(wire), Framing::Stream, &Limits::default()).ok()
}
