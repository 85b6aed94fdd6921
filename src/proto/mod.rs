//! Sans-IO protocol code: parsers, printers and state machines.
//!
//! Nothing here touches a socket, a runtime or the clock: input is bytes and
//! (later) `now`, output is values. Everything is testable and fuzzable
//! without a network.

pub mod conference;
pub mod cpim;
pub mod digest;
pub mod imdn;
pub mod locate;
pub mod msrp;
pub mod pidf;
pub mod room;
pub mod sdp;
pub mod sip;
pub mod stun;
pub mod time;
pub mod transaction;
pub use parley_adapter::xml;
