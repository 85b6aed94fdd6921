//! Overload control: past `[sip.overload] max_pending` unanswered
//! requests, a new one gets 503 with Retry-After at once; what was admitted
//! is not turned away (its retransmissions included), and OPTIONS to Parley
//! itself is still answered.

use std::net::UdpSocket;
use std::time::Duration;

use parley_test_support::server::TestServer;

use crate::presence::{header, status, Ua};
use crate::registrar_proxy::user_add;

#[test]
fn past_the_bound_new_requests_get_503_and_admitted_ones_go_on() {
    let server = TestServer::start(
        "[auth]\nregistrar = false\nproxy = false\n[sip.overload]\nmax_pending = 4\nretry_after_secs = 7\n",
    );
    user_add(&server, "bob@localhost", "b");
    // Bob's device takes MESSAGEs and never answers: each stays pending
    // (Timer F) and holds a place.
    let silent = UdpSocket::bind("127.0.0.1:0").unwrap();
    silent
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let ua = Ua::new(server.udp);
    ua.send(
        &format!(
            "REGISTER sip:localhost SIP/2.0\nFrom: <sip:bob@localhost>;tag=r1\nTo: <sip:bob@localhost>\nCall-ID: reg-bob\nCSeq: 1 REGISTER\nContact: <sip:bob@{}>\nExpires: 600",
            silent.local_addr().unwrap()
        ),
        "",
    );
    assert_eq!(status(&ua.final_response()), 200);
    let message = |call: &str| {
        format!(
            "MESSAGE sip:bob@localhost SIP/2.0\nFrom: <sip:alice@localhost>;tag={call}\nTo: <sip:bob@localhost>\nCall-ID: {call}\nCSeq: 1 MESSAGE\nContent-Type: text/plain"
        )
    };
    for n in 0..4 {
        ua.send(&message(&format!("held-{n}")), "hello");
    }
    // Each of the four reaches Bob's device: admitted and now pending.
    let mut buf = [0u8; 4096];
    let mut reached = 0;
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while reached < 4 && std::time::Instant::now() < deadline {
        if let Ok(n) = silent.recv(&mut buf) {
            if buf[..n].starts_with(b"MESSAGE ") {
                reached += 1;
            }
        }
    }
    assert_eq!(reached, 4, "the admitted MESSAGEs were forwarded");
    // The fifth is turned away at once, with Retry-After.
    ua.send(&message("turned-away"), "hello");
    let r = ua.final_response();
    assert_eq!(status(&r), 503, "{r}");
    assert_eq!(header(&r, "Retry-After"), Some("7"), "{r}");
    assert!(r.contains("Call-ID: turned-away"), "{r}");
    // OPTIONS to Parley itself needs no transaction and is still answered.
    ua.send(
        "OPTIONS sip:localhost SIP/2.0\nFrom: <sip:alice@localhost>;tag=o1\nTo: <sip:localhost>\nCall-ID: ping\nCSeq: 1 OPTIONS",
        "",
    );
    assert_eq!(status(&ua.final_response()), 200);
}
