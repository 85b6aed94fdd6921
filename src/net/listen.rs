//! The SIP sockets, bound before the server starts (tests bind port 0).

use std::net::SocketAddr;

use tokio::net::{TcpListener, UdpSocket};

use crate::config::Config;
use crate::proto::sip::Transport;

/// The SIP sockets, bound before the server starts, so tests can bind
/// port 0.
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

    /// The addresses bound, by transport: what the core counts as its own.
    pub fn addresses(&self) -> Vec<(Transport, SocketAddr)> {
        let mut out = Vec::new();
        out.extend(
            self.udp
                .iter()
                .filter_map(|l| l.local_addr().ok())
                .map(|a| (Transport::Udp, a)),
        );
        for (t, list) in [(Transport::Tcp, &self.tcp), (Transport::Tls, &self.tls)] {
            out.extend(
                list.iter()
                    .filter_map(|l| l.local_addr().ok())
                    .map(|a| (t, a)),
            );
        }
        out
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

/// Binds a TCP listener at `addr` when one is configured; the error names
/// `what` and the address.
pub async fn bind_tcp(
    what: &str,
    addr: Option<SocketAddr>,
) -> std::io::Result<Option<TcpListener>> {
    match addr {
        Some(addr) => TcpListener::bind(addr)
            .await
            .map(Some)
            .map_err(|e| std::io::Error::new(e.kind(), format!("{what} {addr}: {e}"))),
        None => Ok(None),
    }
}
