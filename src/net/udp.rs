//! SIP over UDP: one reader task per core on each socket; responses by Via.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use bytes::Bytes;
use tokio::net::UdpSocket;
use tracing::{debug, warn};

use super::{Path, Shared};
use crate::proto::sip::{Framing, Message};

/// Sets the socket's kernel buffers so a burst is not lost.
pub(super) fn size_buffers(socket: &UdpSocket, size: usize) {
    let sock = socket2::SockRef::from(socket);
    if let Err(e) = sock
        .set_recv_buffer_size(size)
        .and_then(|_| sock.set_send_buffer_size(size))
    {
        warn!(error = %e, "cannot size the UDP buffers");
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

pub(super) async fn reader(shared: Arc<Shared>, socket: Arc<UdpSocket>) {
    let stop = shared.conn.stop.clone();
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
        let answer = shared
            .handle(data, source, Framing::Datagram, |m| Path::Udp {
                socket: socket.clone(),
                to: destination(m, source, shared.multicast_responses),
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
