//! Parley's integration tests: one binary, one module per capability.

mod sip_corpus;
mod sip_fuzz_corpus;
mod sip_roundtrip;
