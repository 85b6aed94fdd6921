//! Transports: UDP, TCP and TLS on tokio. This layer moves bytes and runs
//! timers; what a message means is decided by `proto` (screening,
//! transactions) and by the [`Handler`] the application gives the server
//! (the SIMPLE core); this layer never names it.
//!
//! - `listen`: the bound sockets. `server`: readers, acceptors, timers and
//!   a graceful stop. `endpoint`: the transaction tables and the shared
//!   state of every transport task. `responder`: a request handed to the
//!   handler and the answers to it. `sip`: the handle for sending
//!   requests. `udp`, `stream`, `tls`: the transports; `dns`: RFC 3263.
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
mod endpoint;
mod fair;
mod listen;
mod overload;
mod responder;
mod server;
mod sip;
mod stream;
mod timer;
pub mod tls;
mod udp;

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;

use crate::proto::sip::{Message, SipError, Transport};

pub use endpoint::local_response;
pub use listen::{bind_tcp, Listeners};
pub use responder::{Incoming, Responder};
pub use server::{Running, Server, StartError};
pub use sip::{OnResponse, Sip};

/// The certificate a TLS peer authenticated with (mutual TLS).
pub type PeerCertificate = Arc<rustls::pki_types::CertificateDer<'static>>;

/// A future a handler returns: boxed, so the handler is a trait object.
pub type HandlerFuture = Pin<Box<dyn Future<Output = ()> + Send + 'static>>;

/// What the transports hand requests to (as hickory's `RequestHandler`, or
/// reSIProcate's `TransactionUser`): the transport layer knows this trait,
/// never the services behind it.
pub trait Handler: Send + Sync + 'static {
    /// The response to a request answered without a transaction (RFC 3261
    /// §8.2.7), when its answer is a function of the request alone. The To
    /// tag is derived from the request with `tag_secret`, so a
    /// retransmission gets the same response.
    fn answer_stateless(&self, request: &Message, tag_secret: u64) -> Option<Vec<u8>>;

    /// Serves one request that opened a server transaction. The future is
    /// polled once on the receiving task and spawned only if it must wait.
    fn handle(self: Arc<Self>, sip: Sip, incoming: Incoming) -> HandlerFuture;

    /// An ACK with no transaction (the ACK for a 2xx, RFC 3261 §17.2.1).
    fn ack(self: Arc<Self>, sip: Sip, ack: Message) -> HandlerFuture;

    /// Work that runs once a second (expiry sweeps that send requests).
    fn tick(self: Arc<Self>, sip: Sip) -> HandlerFuture;

    /// A connection a peer opened has closed: the flow `(transport,
    /// peer)` is gone (RFC 5626 §5.3).
    fn flow_closed(&self, _transport: Transport, _peer: SocketAddr) {}
}

/// A request larger than this goes over TCP instead of UDP (RFC 3261
/// §18.1.1: 200 octets below a 1500-octet path MTU).
pub const UDP_REQUEST_LIMIT: usize = 1300;

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
