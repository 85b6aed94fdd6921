//! SIP over TCP and TLS: accepted and opened connections, framing by
//! Content-Length, keep-alives, idle timeout, and the table that lets a
//! request reuse any open connection to its peer.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, OwnedSemaphorePermit};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, warn};

use super::endpoint::{Path, Shared};
use super::fair::{Accepted, Fair};
use super::{PeerCertificate, Target};
use crate::proto::sip::stateless::{screen, Verdict};
use crate::proto::sip::Transport;
use crate::proto::sip::{frame, Framing};

/// How long opening a connection (TCP and TLS handshakes) may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// What every connection shares.
pub(super) struct Settings {
    /// A connection silent this long is closed.
    pub idle: Duration,
    /// Admission of accepted connections and the budget of opened ones.
    pub fair: Arc<Fair>,
    /// Cancelled on shutdown.
    pub stop: CancellationToken,
    /// Tracks every task, so shutdown waits for them.
    pub tracker: TaskTracker,
}

/// An open connection: the queue its writer drains, and the local address.
#[derive(Debug, Clone)]
pub(super) struct Conn {
    pub tx: mpsc::Sender<Bytes>,
    pub local: SocketAddr,
}

/// One slot per (transport, peer): held while a connection is being opened,
/// so concurrent requests to one peer share one connection.
pub(super) type Slot = Arc<tokio::sync::Mutex<Option<Conn>>>;

pub(super) async fn accept(
    shared: Arc<Shared>,
    listener: TcpListener,
    tls: Option<tokio_rustls::TlsAcceptor>,
) {
    let transport = if tls.is_some() {
        Transport::Tls
    } else {
        Transport::Tcp
    };
    let stop = shared.conn.stop.clone();
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
        let Some((permit, accepted)) = shared.conn.fair.admit(peer).await else {
            continue;
        };
        let Ok(local) = stream.local_addr() else {
            continue;
        };
        match tls.clone() {
            None => {
                let conn = start(
                    &shared,
                    stream,
                    (transport, peer, None),
                    local,
                    permit,
                    None,
                    Some(accepted),
                );
                register(&shared, transport, peer, conn);
            }
            Some(acceptor) => {
                let shared = shared.clone();
                let handshake = shared.conn.fair.tls_timeout();
                shared.conn.tracker.clone().spawn(async move {
                    let done = tokio::select! {
                        _ = accepted.close.cancelled() => return,
                        r = tokio::time::timeout(handshake, acceptor.accept(stream)) => r,
                    };
                    match done {
                        Ok(Ok(tls)) => {
                            // RFC 5922 §7.4: the certificate a peer server
                            // presents says which domain it speaks for.
                            let cert = tls
                                .get_ref()
                                .1
                                .peer_certificates()
                                .and_then(|c| c.first())
                                .map(|c| Arc::new(c.clone().into_owned()));
                            let conn = start(
                                &shared,
                                tls,
                                (transport, peer, None),
                                local,
                                permit,
                                cert,
                                Some(accepted),
                            );
                            register(&shared, transport, peer, conn);
                        }
                        Ok(Err(e)) => debug!(%peer, error = %e, "TLS handshake failed"),
                        Err(_) => debug!(%peer, "TLS handshake timed out"),
                    }
                });
            }
        }
    }
}

/// Makes an accepted connection available for requests to its peer.
fn register(shared: &Shared, transport: Transport, peer: SocketAddr, conn: Conn) {
    let mut map = shared.connections.lock().unwrap_or_else(|p| p.into_inner());
    map.insert(
        (transport, peer, None),
        Arc::new(tokio::sync::Mutex::new(Some(conn))),
    );
}

/// Forgets the connection if its slot still holds `tx`.
fn unregister(shared: &Shared, key: &SlotKey, tx: &mpsc::Sender<Bytes>) {
    let mut map = shared.connections.lock().unwrap_or_else(|p| p.into_inner());
    let Some(slot) = map.get(key) else {
        return;
    };
    // A slot being filled (locked) belongs to an open() in progress.
    let ours = slot
        .try_lock()
        .is_ok_and(|c| c.as_ref().map_or(true, |c| c.tx.same_channel(tx)));
    if ours {
        map.remove(key);
    }
}

/// The identity of a connection in the table.
type SlotKey = (Transport, SocketAddr, Option<String>);

/// A connection to `target` over `transport`: an open one when there is
/// one, else a new one. Returns its queue and local address.
pub(super) async fn open(
    shared: &Arc<Shared>,
    transport: Transport,
    target: &Target,
) -> std::io::Result<(mpsc::Sender<Bytes>, SocketAddr)> {
    let slot: Slot = {
        let mut map = shared.connections.lock().unwrap_or_else(|p| p.into_inner());
        let name = target.name.clone().filter(|_| transport == Transport::Tls);
        map.entry((transport, target.addr, name))
            .or_default()
            .clone()
    };
    let mut held = slot.lock().await;
    if let Some(conn) = held.as_ref().filter(|c| !c.tx.is_closed()) {
        return Ok((conn.tx.clone(), conn.local));
    }
    let err = |kind, text: &str| std::io::Error::new(kind, text.to_string());
    let permit = shared
        .conn
        .fair
        .outbound
        .clone()
        .try_acquire_owned()
        .map_err(|_| {
            err(
                std::io::ErrorKind::OutOfMemory,
                "outbound connection limit reached",
            )
        })?;
    let tcp = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(target.addr))
        .await
        .map_err(|_| err(std::io::ErrorKind::TimedOut, "connect timed out"))??;
    let _ = tcp.set_nodelay(true);
    let local = tcp.local_addr()?;
    let conn = match transport {
        Transport::Tls => {
            let connector = shared.tls_client.clone().ok_or_else(|| {
                err(
                    std::io::ErrorKind::Unsupported,
                    "no trust anchors for TLS (sip.tls.ca_file)",
                )
            })?;
            let name = match &target.name {
                Some(n) => rustls::pki_types::ServerName::try_from(n.clone())
                    .map_err(|_| err(std::io::ErrorKind::InvalidInput, "bad TLS server name"))?,
                None => rustls::pki_types::ServerName::IpAddress(target.addr.ip().into()),
            };
            let tls = tokio::time::timeout(CONNECT_TIMEOUT, connector.connect(name, tcp))
                .await
                .map_err(|_| err(std::io::ErrorKind::TimedOut, "TLS handshake timed out"))??;
            let key = (transport, target.addr, target.name.clone());
            let cert = tls
                .get_ref()
                .1
                .peer_certificates()
                .and_then(|c| c.first())
                .map(|c| Arc::new(c.clone().into_owned()));
            start(shared, tls, key, local, permit, cert, None)
        }
        _ => start(
            shared,
            tcp,
            (transport, target.addr, None),
            local,
            permit,
            None,
            None,
        ),
    };
    *held = Some(conn.clone());
    Ok((conn.tx, local))
}

/// Runs one connection (reader and writer tasks) and returns its queue.
/// `accepted` is the admission record of a connection a client opened.
fn start<S: AsyncRead + AsyncWrite + Send + 'static>(
    shared: &Arc<Shared>,
    stream: S,
    key: SlotKey,
    local: SocketAddr,
    permit: OwnedSemaphorePermit,
    peer_certificate: Option<PeerCertificate>,
    accepted: Option<Arc<Accepted>>,
) -> Conn {
    // Counted while the connection lives (the permit goes with it).
    let permit = Counted::new(permit);
    let peer = key.1;
    let (rd, mut wr) = tokio::io::split(stream);
    let (tx, mut rx) = mpsc::channel::<Bytes>(64);
    // Transactions keep senders to this connection after it ends, so the
    // writer stops on `done`, writing what is already queued first.
    let done = CancellationToken::new();
    let writer_done = done.clone();
    let tracker = &shared.conn.tracker;
    let writer = tracker.spawn(async move {
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
        // Closing the queue tells open() this connection is gone.
        rx.close();
        let _ = wr.shutdown().await;
    });
    let reader_tx = tx.clone();
    let shared2 = shared.clone();
    tracker.spawn(async move {
        read(
            &shared2,
            rd,
            peer,
            key.0,
            peer_certificate,
            &reader_tx,
            accepted.as_deref(),
        )
        .await;
        let inbound = accepted.is_some();
        drop(accepted);
        unregister(&shared2, &key, &reader_tx);
        if inbound {
            shared2.handler.flow_closed(key.0, peer);
        }
        drop(reader_tx);
        done.cancel();
        let _ = writer.await;
        drop(permit);
    });
    Conn { tx, local }
}

/// Reads and frames messages until the peer closes, the connection idles
/// out, a message is not finished in time, garbage arrives, the connection
/// is closed to make room, or the server stops. A client has
/// `message_timeout` for its first message from accept, and for any
/// message once it has begun: a slow drip of bytes does not hold a
/// connection (slowloris).
async fn read<R: AsyncRead + Unpin>(
    shared: &Arc<Shared>,
    mut rd: R,
    peer: SocketAddr,
    transport: Transport,
    peer_certificate: Option<PeerCertificate>,
    tx: &mpsc::Sender<Bytes>,
    accepted: Option<&Accepted>,
) {
    let stop = &shared.conn.stop;
    let never = CancellationToken::new();
    let close = accepted.map_or(&never, |a| &a.close);
    let message_timeout = shared.conn.fair.message_timeout();
    let mut due = accepted.map(|_| tokio::time::Instant::now() + message_timeout);
    let mut buf = BytesMut::with_capacity(4096);
    loop {
        let now = tokio::time::Instant::now();
        let wait = due.map_or(shared.conn.idle, |d| {
            d.saturating_duration_since(now).min(shared.conn.idle)
        });
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = close.cancelled() => return,
            r = tokio::time::timeout(wait, rd.read_buf(&mut buf)) => match r {
                Ok(Ok(0)) | Ok(Err(_)) => return,
                Ok(Ok(_)) => {}
                Err(_) if due.is_some_and(|d| tokio::time::Instant::now() >= d) => {
                    metrics::counter!("parley_connections_closed_total", "reason" => "message-timeout")
                        .increment(1);
                    debug!(%peer, "no whole message in time; closed");
                    return;
                }
                Err(_) => {
                    debug!(%peer, "idle connection closed");
                    return;
                }
            },
        }
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
                    // A whole message: the connection is in use, and the
                    // next message's clock starts with its first byte.
                    due = None;
                    if let Some(a) = accepted {
                        a.proven();
                    }
                    if let Some(answer) = shared
                        .handle(data, peer, Framing::Stream, |_| {
                            Path::Stream(tx.clone(), transport, peer_certificate.clone())
                        })
                        .await
                    {
                        let _ = tx.send(answer).await;
                    }
                }
                Ok(None) => {
                    if !buf.is_empty() && due.is_none() {
                        due = Some(tokio::time::Instant::now() + message_timeout);
                    }
                    break;
                }
                Err(e) => {
                    // Garbage or a bad Content-Length: answer when the request
                    // can be identified, then close (RFC 4475 §3.1.2.2, §3.3.9).
                    debug!(%peer, error = %e, "unframeable stream");
                    let data = buf.split().freeze();
                    if let Verdict::Answer { response, .. } =
                        screen(data, Framing::Stream, &shared.limits, &shared.policy)
                    {
                        let _ = tx.send(Bytes::from(response)).await;
                    }
                    return;
                }
            }
        }
    }
}

/// A connection permit that keeps the open-connections gauge.
struct Counted(#[allow(dead_code)] OwnedSemaphorePermit);

impl Counted {
    fn new(permit: OwnedSemaphorePermit) -> Counted {
        metrics::gauge!("parley_open_connections").increment(1.0);
        Counted(permit)
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        metrics::gauge!("parley_open_connections").decrement(1.0);
    }
}
