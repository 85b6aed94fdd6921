//! SIP over UDP: blocking reader threads, one per core on each socket;
//! responses by Via.

use std::future::Future;
use std::io::ErrorKind;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::task::{Context, Wake, Waker};
use std::time::Duration;

use bytes::Bytes;
use tokio::net::UdpSocket;
use tracing::{debug, warn};

use super::endpoint::{Path, Shared};
use crate::proto::sip::{Framing, Message};

/// Takes a bound socket out of the reactor for the blocking readers and
/// sizes its kernel buffers so a burst is not lost. A reader waits in the
/// kernel's receive call and wakes for each datagram, as a Kamailio
/// child process does: no readiness events, no task wakeups. The short
/// receive timeout lets a reader notice a shutdown.
pub(super) fn blocking(socket: UdpSocket, buffer: usize) -> std::io::Result<std::net::UdpSocket> {
    let socket = socket.into_std()?;
    socket.set_nonblocking(false)?;
    socket.set_read_timeout(Some(READ_TIMEOUT))?;
    let sock = socket2::SockRef::from(&socket);
    if let Err(e) = sock
        .set_recv_buffer_size(buffer)
        .and_then(|_| sock.set_send_buffer_size(buffer))
    {
        warn!(error = %e, "cannot size the UDP buffers");
    }
    Ok(socket)
}

/// How often a waiting reader looks at the stop signal.
const READ_TIMEOUT: Duration = Duration::from_millis(100);

/// Sends one datagram. The send buffer is large, so this waits only when
/// the kernel is already behind; a failure is logged, as UDP loses
/// datagrams anyway and the transaction layer retransmits.
pub(super) fn send(socket: &std::net::UdpSocket, data: &[u8], to: SocketAddr) {
    if let Err(e) = socket.send_to(data, to) {
        debug!(%to, error = %e, "udp send failed");
    }
}

/// Where a UDP response goes (RFC 3261 §18.2.2, RFC 3581 §4): to the Via
/// maddr when it is an address (multicast or broadcast only when the config
/// allows), else to the source address, on the source port when rport was
/// asked for and on the Via port otherwise.
pub(super) fn destination(msg: &Message, source: SocketAddr, allow_multicast: bool) -> SocketAddr {
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
pub(super) fn sendable(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(a) => !a.is_broadcast() && !a.is_multicast() && !a.is_unspecified(),
        IpAddr::V6(a) => !a.is_multicast() && !a.is_unspecified(),
    }
}

/// One reader thread: receives, then runs the transaction layer and the
/// core on this thread as far as they go without waiting. Whatever must
/// wait (a DNS answer, a connection) continues as a task on the runtime.
pub(super) fn reader(shared: Arc<Shared>, socket: Arc<std::net::UdpSocket>) {
    let stop = shared.conn.stop.clone();
    let waker = Waker::from(Arc::new(Resumed));
    let mut cx = Context::from_waker(&waker);
    let mut buf = vec![0u8; 65_536];
    while !stop.is_cancelled() {
        let (n, source) = match socket.recv_from(&mut buf) {
            Ok(r) => r,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => continue,
            Err(e) => {
                debug!(error = %e, "udp receive failed");
                continue;
            }
        };
        if n == 0 || buf[..n].iter().all(|&c| c == b'\r' || c == b'\n') {
            continue; // keep-alive
        }
        // RFC 5626 §8: STUN keep-alives on the SIP port, answered at once
        // with where the client is seen; malformed ones are dropped.
        if crate::proto::stun::is_stun(&buf[..n]) {
            let answer = crate::proto::stun::answer(&buf[..n], source);
            let outcome = if answer.is_some() {
                "answered"
            } else {
                "dropped"
            };
            metrics::counter!("parley_stun_requests_total", "outcome" => outcome).increment(1);
            if let Some(answer) = answer.filter(|_| sendable(source.ip())) {
                send(&socket, &answer, source);
            }
            continue;
        }
        let data = Bytes::copy_from_slice(&buf[..n]);
        let (shared, socket) = (shared.clone(), socket.clone());
        let mut work = Box::pin(async move {
            let answer = shared
                .handle(data, source, Framing::Datagram, |m| Path::Udp {
                    socket: socket.clone(),
                    to: destination(m, source, shared.multicast_responses),
                })
                .await;
            // A stateless answer goes where the request came from.
            if let Some(answer) = answer.filter(|_| sendable(source.ip())) {
                send(&socket, &answer, source);
            }
        });
        if work.as_mut().poll(&mut cx).is_pending() {
            tokio::spawn(work);
        }
    }
}

/// The waker of the first, inline poll. A future still pending after it
/// moves to a task, whose poll registers the task's own waker, so this
/// one has nothing to wake.
struct Resumed;

impl Wake for Resumed {
    fn wake(self: Arc<Self>) {}
}
