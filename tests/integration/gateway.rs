//! The domain policy on SIP federation: the same rules as for the adapters,
//! applied once in the router. A denied domain is refused both ways with
//! the policy's reason; a request from another domain may assert only
//! addresses of that domain (P-Asserted-Identity, CPIM From, PIDF entity),
//! never one of Parley's own.

use parley_test_support::server::TestServer;

use crate::presence::{header, status, Ua};
use crate::registrar_proxy::user_add;

fn request(ua: &Ua, head: &str, body: &str) -> String {
    ua.send(head, body);
    ua.final_response()
}

#[test]
fn sip_federation_meets_the_domain_policy() {
    let server = TestServer::start(
        "[auth]\nregistrar = false\nproxy = false\n[gateway]\ndeny_domains = [\"evil.test\", \"*.spam.test\"]\n",
    );
    user_add(&server, "alice@localhost", "a");
    let ua = Ua::new(server.udp);
    ua.send(
        &format!(
            "REGISTER sip:localhost SIP/2.0\nFrom: <sip:alice@localhost>;tag=r\nTo: <sip:alice@localhost>\nCall-ID: reg-a\nCSeq: 1 REGISTER\nContact: <sip:alice@{}>\nExpires: 600",
            ua.local
        ),
        "",
    );
    assert_eq!(status(&ua.final_response()), 200);

    // In from a denied domain (and its subdomains): 403 with the reason.
    for (n, from) in ["mallory@evil.test", "bot@a.spam.test"].iter().enumerate() {
        let r = request(
            &ua,
            &format!("MESSAGE sip:alice@localhost SIP/2.0\nFrom: <sip:{from}>;tag=d{n}\nTo: <sip:alice@localhost>\nCall-ID: deny-in-{n}\nCSeq: 1 MESSAGE\nContent-Type: text/plain"),
            "hi",
        );
        assert_eq!(status(&r), 403, "{r}");
        assert!(
            header(&r, "Warning").is_some_and(|w| w.contains("denied by policy")),
            "{r}"
        );
    }
    // Out to a denied domain: the same.
    let r = request(
        &ua,
        "MESSAGE sip:mallory@evil.test SIP/2.0\nFrom: <sip:alice@localhost>;tag=o1\nTo: <sip:mallory@evil.test>\nCall-ID: deny-out\nCSeq: 1 MESSAGE\nContent-Type: text/plain",
        "hi",
    );
    assert_eq!(status(&r), 403, "{r}");

    // A partner asserting one of Parley's addresses, or another domain's.
    let r = request(
        &ua,
        "MESSAGE sip:alice@localhost SIP/2.0\nFrom: <sip:carol@partner.test>;tag=i1\nTo: <sip:alice@localhost>\nCall-ID: pai-own\nCSeq: 1 MESSAGE\nP-Asserted-Identity: <sip:boss@localhost>\nContent-Type: text/plain",
        "wire the money",
    );
    assert_eq!(status(&r), 403, "{r}");
    assert!(
        header(&r, "Warning").is_some_and(|w| w.contains("local domain")),
        "{r}"
    );
    let cpim = "From: <sip:ceo@bank.test>\r\nTo: <sip:alice@localhost>\r\n\r\nContent-Type: text/plain\r\n\r\nhello";
    let r = request(
        &ua,
        "MESSAGE sip:alice@localhost SIP/2.0\nFrom: <sip:carol@partner.test>;tag=i2\nTo: <sip:alice@localhost>\nCall-ID: cpim-other\nCSeq: 1 MESSAGE\nContent-Type: message/cpim",
        cpim,
    );
    assert_eq!(status(&r), 403, "{r}");
    assert!(
        header(&r, "Warning").is_some_and(|w| w.contains("not of the domain")),
        "{r}"
    );
    let pidf = "<?xml version=\"1.0\"?><presence xmlns=\"urn:ietf:params:xml:ns:pidf\" entity=\"pres:alice@localhost\"><tuple id=\"t\"><status><basic>open</basic></status></tuple></presence>";
    let r = request(
        &ua,
        "MESSAGE sip:alice@localhost SIP/2.0\nFrom: <sip:carol@partner.test>;tag=i3\nTo: <sip:alice@localhost>\nCall-ID: pidf-own\nCSeq: 1 MESSAGE\nContent-Type: application/pidf+xml",
        pidf,
    );
    assert_eq!(status(&r), 403, "{r}");

    // Asserting its own domain is fine: the message reaches Alice.
    ua.send(
        "MESSAGE sip:alice@localhost SIP/2.0\nFrom: <sip:carol@partner.test>;tag=i4\nTo: <sip:alice@localhost>\nCall-ID: pai-ok\nCSeq: 1 MESSAGE\nP-Asserted-Identity: <sip:carol@partner.test>\nContent-Type: text/plain",
        "hello from a partner",
    );
    let mut got = false;
    for _ in 0..4 {
        let m = ua.next();
        if m.starts_with("MESSAGE ") && m.ends_with("hello from a partner") {
            got = true;
        }
        if m.starts_with("SIP/2.0 2") {
            break;
        }
    }
    assert!(got, "the partner's message did not arrive");
}
