//! CPIM messages: parsing and print/parse round trips.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    parley_test_support::fuzz::cpim(data);
});
