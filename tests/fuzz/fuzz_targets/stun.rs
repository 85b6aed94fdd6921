//! STUN datagrams on the SIP port: bounded decoding, and answers Parley
//! reads back.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    parley_test_support::fuzz::stun(data);
});
