//! SDP descriptions: bounded parsing, print/parse round trips, and answers
//! to message-stream offers.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    parley_test_support::fuzz::sdp(data);
});
