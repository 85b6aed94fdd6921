//! The fuzz corpora (SIP messages and URIs, digest credentials, PIDF, CPIM,
//! XMPP streams), replayed as ordinary tests: every input found by the
//! fuzzers (and every seed) keeps its properties on every build.

use parley_test_support::{fuzz, fuzz_corpus};

/// Replays every input of a corpus through its property check.
fn replay(target: &str, seeds: usize, check: fn(&[u8])) {
    let corpus = fuzz_corpus(target);
    assert!(corpus.len() >= seeds, "the {target} corpus lost its seeds");
    for (name, data) in corpus {
        let outcome = std::panic::catch_unwind(|| check(&data));
        assert!(
            outcome.is_ok(),
            "{target} corpus input {name} broke a property"
        );
    }
}

#[test]
fn sip_message_corpus() {
    replay("sip_message", 77, fuzz::sip_message);
}

#[test]
fn sip_uri_corpus() {
    replay("sip_uri", 14, fuzz::sip_uri);
}

#[test]
fn digest_corpus() {
    replay("digest", 4, fuzz::digest);
}

#[test]
fn pidf_corpus() {
    replay("pidf", 21, fuzz::pidf);
}

#[test]
fn cpim_corpus() {
    replay("cpim", 2, fuzz::cpim);
}

#[test]
fn xmpp_stream_corpus() {
    replay("xmpp_stream", 5, fuzz::xmpp_stream);
}

#[test]
fn msrp_corpus() {
    replay("msrp", 5, fuzz::msrp);
}

#[test]
fn sdp_corpus() {
    replay("sdp", 2, fuzz::sdp);
}

#[test]
fn stun_corpus() {
    replay("stun", 4, fuzz::stun);
}
