//! The `Adapter` trait every network implements and the hub handle through
//! which an adapter hands the gateway what arrives from its network.
//!
//! The gateway owns policy: an adapter reports who its peer authenticated
//! as ([`Peer`]) and the gateway decides. An adapter never decides whether
//! a domain may federate, and never sees a SIP type.

use std::sync::Arc;

use async_trait::async_trait;

use crate::{
    Failure, Message, Presence, RoomInfo, RoomNotice, RoomQuery, RoomRequest, Subscription,
};

/// The networks Parley joins.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Protocol {
    /// SIP/SIMPLE, Parley's core.
    Sip,
    /// XMPP.
    Xmpp,
    /// IRC.
    Irc,
}

impl Protocol {
    /// A short lower-case name for logs and metrics.
    pub fn name(self) -> &'static str {
        match self {
            Protocol::Sip => "sip",
            Protocol::Xmpp => "xmpp",
            Protocol::Irc => "irc",
        }
    }
}

/// How a peer proved which domain it speaks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum PeerAuth {
    /// A certificate checked against trust anchors (SASL EXTERNAL, XEP-0178;
    /// or SIP mutual TLS).
    Certificate,
    /// XMPP Server Dialback (XEP-0220): DNS-based, weaker.
    Dialback,
    /// A shared secret (XEP-0114 component handshake).
    SharedSecret,
    /// Nothing: only a local, trusted link may be unauthenticated.
    None,
}

impl PeerAuth {
    /// A short lower-case name for logs, metrics and the admin API.
    pub fn name(self) -> &'static str {
        match self {
            PeerAuth::Certificate => "certificate",
            PeerAuth::Dialback => "dialback",
            PeerAuth::SharedSecret => "shared-secret",
            PeerAuth::None => "none",
        }
    }
}

/// Who handed the gateway an inbound item: the link it came over.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Peer {
    /// The adapter's name (from the config).
    pub adapter: String,
    /// The protocol of the link.
    pub protocol: Protocol,
    /// The domains the peer is authenticated for (for a component: the
    /// domain of the XMPP server it is attached to and its users).
    pub domain: String,
    /// How it authenticated.
    pub auth: PeerAuth,
    /// Whether the link is encrypted.
    pub tls: bool,
}

/// Something an adapter received from its network for the gateway.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Inbound {
    /// A message.
    Message(Message),
    /// A presence state for a watcher.
    Presence(Presence),
    /// A subscription request or answer.
    Subscription(Subscription),
    /// A member of this network acts in a room Parley hosts.
    Room(RoomRequest),
    /// A room of this network tells one of Parley's users, a member
    /// there, what happened (RFC 7702: Parley keeps one occupant per
    /// user).
    RoomEvent(RoomNotice),
    /// The network reports that something the gateway sent failed.
    Failed {
        /// The id of the message that failed.
        id: String,
        /// The original sender (the address on the gateway's side).
        sender: crate::Address,
        /// The original recipient.
        recipient: crate::Address,
        /// Why.
        failure: Failure,
    },
}

/// Something the gateway hands an adapter for its network.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Outbound {
    /// A message.
    Message(Message),
    /// A presence state.
    Presence(Presence),
    /// A subscription request or answer.
    Subscription(Subscription),
    /// What a room Parley hosts tells one member of this network.
    Room(RoomNotice),
    /// One of Parley's users acts in a room of this network (`from` is
    /// the user's occupant address, `room` carries the nickname as its
    /// resource where the network needs it).
    RoomRequest(RoomRequest),
}

/// An adapter's state, for monitoring.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Health {
    /// Whether it can carry traffic.
    pub up: bool,
    /// Its links to other servers.
    pub links: Vec<Link>,
    /// The networks it bridges, each with its figures (an IRC network);
    /// empty for an adapter that federates servers instead.
    pub networks: Vec<NetworkHealth>,
}

/// One bridged network's figures, for the console.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetworkHealth {
    /// Its name.
    pub name: String,
    /// The domain it appears under.
    pub domain: String,
    /// Users' connections open to it.
    pub connections: usize,
    /// Channels Parley's users are in (each counted once).
    pub channels: usize,
    /// Messages from it so far.
    pub messages_in: u64,
    /// Messages to it so far.
    pub messages_out: u64,
}

/// One link of an adapter (an s2s stream, a component connection).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    /// The remote domain.
    pub domain: String,
    /// `inbound` or `outbound`.
    pub direction: &'static str,
    /// How the remote side authenticated (or we to it, outbound).
    pub auth: PeerAuth,
    /// Whether it is encrypted.
    pub tls: bool,
}

/// A network adapter. Used as `Arc<dyn Adapter>`.
#[async_trait]
pub trait Adapter: Send + Sync + 'static {
    /// The name the config gives it.
    fn name(&self) -> &str;

    /// The protocol it speaks.
    fn protocol(&self) -> Protocol;

    /// Opens its listeners and links; returns once it is ready to carry
    /// traffic. Inbound traffic goes to `hub` from then on.
    async fn start(&self, hub: Hub) -> Result<(), Failure>;

    /// Hands one item to the network. `Ok` means the network took it (the
    /// next hop accepted it); a later failure arrives as [`Inbound::Failed`].
    async fn deliver(&self, item: Outbound, security: Security) -> Result<(), Failure>;

    /// Its state now.
    fn health(&self) -> Health;

    /// Closes its links gracefully.
    async fn stop(&self);
}

/// The gateway side of the hub.
#[async_trait]
pub trait HubSink: Send + Sync + 'static {
    /// Takes one inbound item from `peer`. `Err` is the refusal to return
    /// to the network (a policy refusal, an unknown user…).
    async fn submit(&self, peer: &Peer, item: Inbound) -> Result<(), Failure>;

    /// The rooms Parley hosts, as `peer` may see them (disco#items of a
    /// conference domain, disco#info of a room).
    async fn rooms(&self, peer: &Peer, query: RoomQuery) -> Result<Vec<RoomInfo>, Failure> {
        let _ = (peer, query);
        Err(Failure::bare(crate::Condition::ItemNotFound))
    }
}

/// The handle an adapter submits inbound traffic through. Cheap to clone.
#[derive(Clone)]
pub struct Hub(Arc<dyn HubSink>);

impl Hub {
    /// A hub over the gateway's sink.
    pub fn new(sink: Arc<dyn HubSink>) -> Hub {
        Hub(sink)
    }

    /// Hands the gateway one inbound item.
    pub async fn submit(&self, peer: &Peer, item: Inbound) -> Result<(), Failure> {
        self.0.submit(peer, item).await
    }

    /// Looks rooms up in the directory of the rooms Parley hosts.
    pub async fn rooms(&self, peer: &Peer, query: RoomQuery) -> Result<Vec<RoomInfo>, Failure> {
        self.0.rooms(peer, query).await
    }
}

impl std::fmt::Debug for Hub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Hub")
    }
}

/// What the link an outbound item takes must offer, as the domain policy
/// requires for the recipient's domain.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Security {
    /// The link must be encrypted.
    pub tls: bool,
    /// The remote server must have proved its name with a certificate.
    pub verified: bool,
}
