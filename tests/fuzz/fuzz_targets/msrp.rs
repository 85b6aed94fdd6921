//! MSRP connection bytes: the streaming decoder in any split, and print/parse
//! round trips of what it yields.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    parley_test_support::fuzz::msrp(data);
});
