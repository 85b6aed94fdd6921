//! Parley: an IM federation gateway with a SIMPLE (SIP for Instant Messaging
//! and Presence) core.
//!
//! The crate is organised as the design describes: `proto` holds sans-IO
//! protocol code; the services, the router and the transports build on it.

#![forbid(unsafe_code)]
#![warn(missing_docs, unreachable_pub)]

pub mod admin;
pub mod app;
pub mod cli;
pub mod config;
pub mod gateway;
pub mod net;
pub mod proto;
pub mod simple;
pub mod store;
