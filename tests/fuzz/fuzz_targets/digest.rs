//! Authorization values and Parley's own challenges.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    parley_test_support::fuzz::digest(data);
});
