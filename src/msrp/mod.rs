//! Session-mode chat: the MSRP relay (RFC 4976) that Parley's users
//! authenticate to with AUTH, and that passes their chunks on, hop by hop,
//! as they arrive.

pub mod relay;

pub use relay::{Relay, RelayListeners, SessionEvent, SessionHandle};
