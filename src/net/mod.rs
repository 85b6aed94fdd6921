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
//! - Server transactions live in one table; one timer task drives all
//!   their timers from a delay queue.

pub mod tls;

use std::collections::HashMap;
use std::hash::BuildHasher;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, UdpSocket};
use tokio::sync::{mpsc, Semaphore};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tokio_util::time::DelayQueue;
use tracing::{debug, info, warn};

use crate::config::{Config, Transport};
use crate::proto::sip::stateless::{screen, Policy, Verdict};
use crate::proto::sip::{frame, Framing, Limits, Message, Method};
use crate::proto::transaction::{Key, Reliability, ServerTransaction, TimerConfig};
use crate::simple::Core;

/// Sockets bound before the server starts, so tests can bind port 0.
#[derive(Debug, Default)]
pub struct Listeners {
    /// UDP sockets.
    pub udp: Vec<UdpSocket>,
    /// TCP listeners.
    pub tcp: Vec<TcpListener>,
    /// TLS listeners (TCP, with the handshake done per connection).
    pub tls: Vec<TcpListener>,
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
        out
    }
}

/// Where the responses of one server transaction go.
#[derive(Debug, Clone)]
enum Reply {
    Udp {
        socket: Arc<UdpSocket>,
        to: SocketAddr,
    },
    Stream(mpsc::Sender<Bytes>),
}

impl Reply {
    async fn send(&self, data: Bytes) {
        match self {
            Reply::Udp { socket, to } => {
                if let Err(e) = socket.send_to(&data, to).await {
                    debug!(%to, error = %e, "udp send failed");
                }
            }
            Reply::Stream(tx) => {
                let _ = tx.send(data).await;
            }
        }
    }
}

struct Entry {
    txn: ServerTransaction,
    reply: Reply,
}

/// What every transport task shares.
struct Shared {
    core: Core,
    limits: Limits,
    policy: Policy,
    timers: TimerConfig,
    transactions: Mutex<HashMap<Key, Entry>>,
    timer_tx: mpsc::UnboundedSender<(Key, std::time::Instant)>,
    tags: AtomicU64,
    multicast_responses: bool,
}

fn now() -> std::time::Instant {
    tokio::time::Instant::now().into_std()
}

impl Shared {
    fn tag(&self) -> String {
        format!(
            "p{:x}",
            self.tags.fetch_add(1, Ordering::Relaxed) ^ 0x5a17_3c00
        )
    }

    /// One received message, from any transport.
    async fn handle(
        &self,
        data: Bytes,
        source: SocketAddr,
        framing: Framing,
        reply: impl FnOnce(&Message) -> Reply,
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
                // No client transactions yet: a response matches nothing we sent.
                debug!("dropped a response that matches no transaction");
                None
            }
            Verdict::Accept(mut msg) => {
                crate::proto::sip::stateless::stamp_via(&mut msg, source);
                self.request(msg, reply).await;
                None
            }
        }
    }

    async fn request(&self, msg: Message, reply: impl FnOnce(&Message) -> Reply) {
        // Requests whose answer is a function of the request alone are
        // answered without a transaction, as a stateless UAS (RFC 3261
        // §8.2.7): a retransmission gets the same response again.
        if let Some(response) = self.core.answer_stateless(&msg, self.policy.tag_secret) {
            reply(&msg).send(Bytes::from(response)).await;
            return;
        }
        let Ok(key) = Key::for_request(&msg) else {
            return;
        };
        let now = now();
        let (out, path, next) = {
            let mut table = self.transactions.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(entry) = table.get_mut(&key) {
                entry.txn.handle_request(now, msg);
                (
                    std::iter::from_fn(|| entry.txn.poll_transmit()).collect::<Vec<_>>(),
                    entry.reply.clone(),
                    None,
                )
            } else if matches!(msg.method(), Some(Method::Ack)) {
                debug!("ACK without a transaction");
                return;
            } else {
                let path = reply(&msg);
                let reliability = match path {
                    Reply::Udp { .. } => Reliability::Unreliable,
                    Reply::Stream(_) => Reliability::Reliable,
                };
                let mut txn =
                    ServerTransaction::with_key(now, &msg, key.clone(), reliability, self.timers);
                let span = tracing::debug_span!("transaction", method = %msg.method().map_or("", |m| m.as_str()));
                let _enter = span.enter();
                if let Some((status, resp)) = self.core.handle_request(&msg, &self.tag()) {
                    txn.send_printed(now, status, Bytes::from(resp));
                    debug!(status, "answered");
                }
                let out: Vec<_> = std::iter::from_fn(|| txn.poll_transmit()).collect();
                let next = txn.poll_timeout();
                if !txn.is_terminated() {
                    table.insert(
                        key.clone(),
                        Entry {
                            txn,
                            reply: path.clone(),
                        },
                    );
                }
                (out, path, next)
            }
        };
        for data in out {
            path.send(data).await;
        }
        if let Some(at) = next {
            let _ = self.timer_tx.send((key, at));
        }
    }

    /// Fires the timers of one transaction.
    async fn expire(&self, key: &Key) -> Option<std::time::Instant> {
        let (out, path, next) = {
            let mut table = self.transactions.lock().unwrap_or_else(|p| p.into_inner());
            let entry = table.get_mut(key)?;
            entry.txn.handle_timeout(now());
            let out: Vec<_> = std::iter::from_fn(|| entry.txn.poll_transmit()).collect();
            let path = entry.reply.clone();
            let next = entry.txn.poll_timeout();
            if entry.txn.is_terminated() {
                table.remove(key);
            }
            (out, path, next)
        };
        for data in out {
            path.send(data).await;
        }
        next
    }

    /// Transactions still waiting for their final response.
    fn unanswered(&self) -> usize {
        use crate::proto::transaction::ServerState;
        self.transactions.lock().map_or(0, |t| {
            t.values()
                .filter(|e| {
                    matches!(
                        e.txn.state(),
                        ServerState::Trying | ServerState::Proceeding { .. }
                    )
                })
                .count()
        })
    }
}

/// Runs the SIP server on bound listeners until `shutdown` completes, then
/// stops accepting and lets transactions in flight finish for up to the
/// configured grace period.
pub async fn serve(
    config: &Config,
    listeners: Listeners,
    shutdown: impl std::future::Future<Output = ()>,
) -> anyhow::Result<()> {
    let tls = if listeners.tls.is_empty() {
        None
    } else {
        Some(tokio_rustls::TlsAcceptor::from(tls::server_config(config)?))
    };
    let (timer_tx, timer_rx) = mpsc::unbounded_channel();
    let shared = Arc::new(Shared {
        core: Core,
        limits: config.sip.limits,
        policy: Policy {
            tag_secret: std::collections::hash_map::RandomState::new().hash_one(std::process::id()),
            ..Policy::default()
        },
        timers: config.sip.timers.config(),
        transactions: Mutex::new(HashMap::new()),
        timer_tx,
        tags: AtomicU64::new(u64::from(std::process::id()) << 20),
        multicast_responses: config.sip.multicast_responses,
    });
    let stop = CancellationToken::new();
    let tracker = TaskTracker::new();
    let connections = Arc::new(Semaphore::new(config.sip.max_connections));
    let idle = Duration::from_secs(config.sip.idle_timeout_secs);

    tracker.spawn(timers(shared.clone(), timer_rx, stop.clone()));
    // Several readers per UDP socket, as many as there are cores, so a burst
    // is drained while one reader is busy or descheduled.
    let readers = std::thread::available_parallelism().map_or(2, |n| n.get());
    for socket in listeners.udp {
        let sock = socket2::SockRef::from(&socket);
        let size = config.sip.udp_buffer_bytes;
        if let Err(e) = sock
            .set_recv_buffer_size(size)
            .and_then(|_| sock.set_send_buffer_size(size))
        {
            warn!(error = %e, "cannot size the UDP buffers");
        }
        let socket = Arc::new(socket);
        for _ in 0..readers {
            tracker.spawn(udp(shared.clone(), socket.clone(), stop.clone()));
        }
    }
    for listener in listeners.tcp {
        tracker.spawn(accept(
            shared.clone(),
            listener,
            None,
            connections.clone(),
            idle,
            stop.clone(),
            tracker.clone(),
        ));
    }
    for listener in listeners.tls {
        tracker.spawn(accept(
            shared.clone(),
            listener,
            tls.clone(),
            connections.clone(),
            idle,
            stop.clone(),
            tracker.clone(),
        ));
    }

    shutdown.await;
    info!("shutting down");
    // Let transactions in flight get their final responses out, then stop.
    let grace = Duration::from_secs(config.sip.shutdown_grace_secs);
    let deadline = tokio::time::Instant::now() + grace;
    while shared.unanswered() > 0 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    stop.cancel();
    tracker.close();
    tracker.wait().await;
    info!("stopped");
    Ok(())
}

async fn timers(
    shared: Arc<Shared>,
    mut rx: mpsc::UnboundedReceiver<(Key, std::time::Instant)>,
    stop: CancellationToken,
) {
    let mut queue: DelayQueue<Key> = DelayQueue::new();
    let mut scheduled: HashMap<Key, tokio_util::time::delay_queue::Key> = HashMap::new();
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            Some((key, at)) = rx.recv() => {
                let at = tokio::time::Instant::from_std(at);
                match scheduled.get(&key) {
                    Some(k) => queue.reset_at(k, at),
                    None => {
                        let k = queue.insert_at(key.clone(), at);
                        scheduled.insert(key, k);
                    }
                }
            }
            Some(expired) = std::future::poll_fn(|cx| queue.poll_expired(cx)) => {
                let key = expired.into_inner();
                scheduled.remove(&key);
                if let Some(next) = shared.expire(&key).await {
                    let k = queue.insert_at(key.clone(), tokio::time::Instant::from_std(next));
                    scheduled.insert(key, k);
                }
            }
        }
    }
}

/// Where a UDP response goes (RFC 3261 §18.2.2, RFC 3581 §4): to the Via
/// maddr when it is an address (multicast or broadcast only when the config
/// allows), else to the source address, on the source port when rport was
/// asked for and on the Via port otherwise.
fn udp_destination(msg: &Message, source: SocketAddr, allow_multicast: bool) -> SocketAddr {
    let Some(Ok(via)) = msg.top_via() else {
        return source;
    };
    let port = via.port.unwrap_or(5060);
    if let Some(maddr) = via
        .maddr()
        .and_then(|m| m.trim_matches(['[', ']']).parse::<IpAddr>().ok())
    {
        if sendable(maddr) || allow_multicast {
            return SocketAddr::new(maddr, port);
        }
        debug!(%maddr, "not answering to a multicast or broadcast maddr");
    }
    if via.rport().is_some() {
        return source;
    }
    SocketAddr::new(source.ip(), port)
}

/// Never answer to a broadcast or multicast address (RFC 4475 §3.3.10).
fn sendable(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(a) => !a.is_broadcast() && !a.is_multicast() && !a.is_unspecified(),
        IpAddr::V6(a) => !a.is_multicast() && !a.is_unspecified(),
    }
}

async fn udp(shared: Arc<Shared>, socket: Arc<UdpSocket>, stop: CancellationToken) {
    let mut buf = vec![0u8; 65_536];
    loop {
        let (n, source) = tokio::select! {
            _ = stop.cancelled() => return,
            r = socket.recv_from(&mut buf) => match r {
                Ok(r) => r,
                Err(e) => {
                    debug!(error = %e, "udp receive failed");
                    continue;
                }
            },
        };
        if n == 0 || buf[..n].iter().all(|&c| c == b'\r' || c == b'\n') {
            continue; // keep-alive
        }
        let data = Bytes::copy_from_slice(&buf[..n]);
        let sock = socket.clone();
        let answer = shared
            .handle(data, source, Framing::Datagram, |m| Reply::Udp {
                socket: sock.clone(),
                to: udp_destination(m, source, shared.multicast_responses),
            })
            .await;
        if let Some(answer) = answer {
            // A stateless answer goes where the request came from.
            if sendable(source.ip()) {
                let _ = socket.send_to(&answer, source).await;
            }
        }
    }
}

#[allow(clippy::too_many_arguments)]
async fn accept(
    shared: Arc<Shared>,
    listener: TcpListener,
    tls: Option<tokio_rustls::TlsAcceptor>,
    connections: Arc<Semaphore>,
    idle: Duration,
    stop: CancellationToken,
    tracker: TaskTracker,
) {
    loop {
        let (stream, peer) = tokio::select! {
            _ = stop.cancelled() => return,
            r = listener.accept() => match r {
                Ok(r) => r,
                Err(e) => {
                    warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let Ok(permit) = connections.clone().try_acquire_owned() else {
            warn!(%peer, "connection limit reached; closing");
            continue;
        };
        let shared = shared.clone();
        let stop = stop.clone();
        match tls.clone() {
            None => {
                tracker.spawn(async move {
                    connection(shared, stream, peer, idle, stop).await;
                    drop(permit);
                });
            }
            Some(acceptor) => {
                tracker.spawn(async move {
                    match tokio::time::timeout(Duration::from_secs(10), acceptor.accept(stream))
                        .await
                    {
                        Ok(Ok(tls)) => connection(shared, tls, peer, idle, stop).await,
                        Ok(Err(e)) => debug!(%peer, error = %e, "TLS handshake failed"),
                        Err(_) => debug!(%peer, "TLS handshake timed out"),
                    }
                    drop(permit);
                });
            }
        }
    }
}

/// One TCP or TLS connection: framing, keep-alives, responses on the same
/// connection, idle timeout.
async fn connection<S: AsyncRead + AsyncWrite + Send + 'static>(
    shared: Arc<Shared>,
    stream: S,
    peer: SocketAddr,
    idle: Duration,
    stop: CancellationToken,
) {
    let (mut rd, mut wr) = tokio::io::split(stream);
    let (tx, mut rx) = mpsc::channel::<Bytes>(64);
    // Transactions keep senders to this connection after it ends, so the
    // writer stops on `done`, writing what is already queued first.
    let done = CancellationToken::new();
    let writer_done = done.clone();
    let writer = tokio::spawn(async move {
        loop {
            tokio::select! {
                biased;
                Some(data) = rx.recv() => {
                    if wr.write_all(&data).await.is_err() {
                        break;
                    }
                }
                _ = writer_done.cancelled() => {
                    while let Ok(data) = rx.try_recv() {
                        if wr.write_all(&data).await.is_err() {
                            break;
                        }
                    }
                    break;
                }
            }
        }
        let _ = wr.shutdown().await;
    });
    let mut buf = BytesMut::with_capacity(4096);
    'read: loop {
        let n = tokio::select! {
            _ = stop.cancelled() => break,
            r = tokio::time::timeout(idle, rd.read_buf(&mut buf)) => match r {
                Ok(Ok(0)) | Ok(Err(_)) => break,
                Ok(Ok(n)) => n,
                Err(_) => {
                    debug!("idle connection closed");
                    break;
                }
            },
        };
        let _ = n;
        loop {
            // RFC 5626 §4.4.1: a CRLF CRLF ping gets a CRLF pong.
            if buf.starts_with(b"\r\n\r\n") {
                let _ = buf.split_to(4);
                let _ = tx.send(Bytes::from_static(b"\r\n")).await;
                continue;
            }
            if buf.len() < 4 && b"\r\n\r\n".starts_with(&buf) {
                break;
            }
            match frame(&buf, &shared.limits) {
                Ok(Some((skip, len))) => {
                    let data = buf.split_to(skip + len).freeze().slice(skip..);
                    let tx2 = tx.clone();
                    if let Some(answer) = shared
                        .handle(data, peer, Framing::Stream, |_| Reply::Stream(tx2.clone()))
                        .await
                    {
                        let _ = tx.send(answer).await;
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    // Garbage or a bad Content-Length: answer when the request
                    // can be identified, then close (RFC 4475 §3.1.2.2, §3.3.9).
                    debug!(error = %e, "unframeable stream");
                    let data = buf.split().freeze();
                    if let Verdict::Answer { response, .. } =
                        screen(data, Framing::Stream, &shared.limits, &shared.policy)
                    {
                        let _ = tx.send(Bytes::from(response)).await;
                    }
                    break 'read;
                }
            }
        }
    }
    drop(tx);
    done.cancel();
    let _ = writer.await;
}
