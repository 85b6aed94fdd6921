//! Parley: an IM federation gateway with a SIMPLE (SIP for Instant Messaging
//! and Presence) core.
//!
//! The layers, each importing only those below it (checked by
//! `tests/integration/layout.rs`):
//!
//! ```text
//! cli      the command line                      -> app, admin, config, store, proto, sys
//! app      start-up, shutdown, reload: wires all -> everything
//! admin    console, JSON API, metrics            -> hub, router, simple, msrp, auth, store, config, proto, sys
//! hub      adapters -> SIP                       -> simple, msrp, router, net, store, config, proto, sys
//! simple   SIMPLE services; bridge SIP -> adapter -> msrp, auth, router, net, store, config, proto, sys
//! router   destination, policy, archive, mapping -> net::dns, store, config, proto, sys
//! msrp     MSRP relay and session endpoints      -> auth, net, store, config, proto, sys
//! net      transports, transactions, Handler     -> config, proto, sys
//! auth     digest against the users              -> store, config, proto, sys
//! store    persistence                           -> config, proto, sys
//! config   settings                              -> proto
//! sys      wall clock and CSPRNG                 -> (nothing)
//! proto    sans-IO codecs and state machines     -> (nothing of the crate)
//! ```
//!
//! The router is built before the core and handed to it: no path to
//! another domain skips the policy. The transports know the core only as
//! a [`net::Handler`]; the adapters know the hub only as a
//! `parley_adapter::HubSink`.

#![forbid(unsafe_code)]
#![warn(missing_docs, unreachable_pub)]

pub mod admin;
pub mod app;
pub mod auth;
pub mod cli;
pub mod config;
pub mod hub;
pub mod msrp;
pub mod net;
pub mod proto;
pub mod router;
pub mod simple;
pub mod store;
pub mod sys;
