//! The fuzz corpora, replayed as ordinary tests: every input found by the
//! fuzzers (and every seed) keeps its properties on every build.

use parley_test_support::{fuzz, fuzz_corpus};

#[test]
fn sip_message_corpus() {
    let corpus = fuzz_corpus("sip_message");
    assert!(corpus.len() >= 77, "the message corpus lost its seeds");
    for (name, data) in corpus {
        let outcome = std::panic::catch_unwind(|| fuzz::sip_message(&data));
        assert!(outcome.is_ok(), "corpus input {name} broke a property");
    }
}

#[test]
fn sip_uri_corpus() {
    let corpus = fuzz_corpus("sip_uri");
    assert!(corpus.len() >= 14, "the URI corpus lost its seeds");
    for (name, data) in corpus {
        let outcome = std::panic::catch_unwind(|| fuzz::sip_uri(&data));
        assert!(outcome.is_ok(), "corpus input {name} broke a property");
    }
}
