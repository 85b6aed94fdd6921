//! Parley's integration tests: one binary, one module per capability.

mod sip_corpus;
