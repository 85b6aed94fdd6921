//! XMPP stream bytes: the framer, however split, and stanza mapping.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    parley_test_support::fuzz::xmpp_stream(data);
});
