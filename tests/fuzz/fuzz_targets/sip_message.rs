//! SIP message parsing, printing and every typed accessor.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    parley_test_support::fuzz::sip_message(data);
});
