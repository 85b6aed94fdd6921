//! The interface between Parley's router and its network adapters.
//!
//! Adapters (XMPP, IRC, …) depend on this crate only: they never see SIP
//! types. It holds the neutral address every network maps to and from
//! (RFC 7247 §5), messages and presence (RFC 7572, RFC 7248), the neutral
//! error set with the RFC 7247 §7 tables, the [`Adapter`] trait with the
//! [`Hub`] handle, the bounded XML reader XML-speaking networks share, and
//! what adapters need of Parley's network: service location ([`Locator`])
//! and the certificate name check.

#![forbid(unsafe_code)]
#![warn(missing_docs, unreachable_pub)]

mod adapter;
mod address;
mod error;
mod message;
mod net;
mod room;
pub mod time;
pub mod xml;

pub use adapter::{
    Adapter, Health, Hub, HubSink, Inbound, Link, NetworkHealth, Outbound, Peer, PeerAuth,
    Protocol, Security,
};
pub use address::{normalize_domain, Address, AddressError};
pub use error::{Condition, ErrorType, Failure};
pub use message::{
    is_text_plain, ChatState, Message, MessageKind, Part, Presence, Receipt, Show, Subscription,
    SubscriptionAction,
};
pub use net::{certificate_names, Locator, SrvTarget};
pub use room::{
    Change, Occupant, RoomAction, RoomAffiliation, RoomEvent, RoomInfo, RoomNotice, RoomQuery,
    RoomRequest, RoomRole,
};
