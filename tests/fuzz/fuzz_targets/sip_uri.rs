//! URI parsing, alone and inside a name-addr.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    parley_test_support::fuzz::sip_uri(data);
});
