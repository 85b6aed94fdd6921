//! Parley's integration tests: one binary, one module per capability.

mod admin;
mod cli_sip_parse;
mod client;
mod compliance;
mod console;
mod gateway;
mod interdomain;
mod irc;
mod layout;
mod mobile;
mod msrp_codec;
mod msrp_relay;
mod overload;
mod pager;
mod peers_simple;
mod peers_sip;
mod pidf;
mod presence;
mod registrar_proxy;
mod rooms;
mod server;
mod sip_corpus;
mod sip_fuzz_corpus;
mod sip_roundtrip;
mod transactions;
mod xmpp;
