//! XMPP federation against a real Prosody with slixmpp clients: a SIP user
//! of Parley's domain and an XMPP user of Prosody's domain exchange
//! messages both ways over s2s (STARTTLS + dialback, found through SRV
//! records on a test DNS server), with typing notifications and receipts
//! crossing; the same through XEP-0114 component mode; and the policy's
//! refusals.

use std::net::Ipv4Addr;
use std::time::Duration;

use parley_test_support::dns::{Rec, TestDns};
use parley_test_support::prosody::{Ports, Prosody, XmppClient};
use parley_test_support::server::TestServer;

use crate::presence::{header, status, Ua};
use crate::registrar_proxy::cli_with;

const PARLEY: &str = "parley.example.test";
const XMPP: &str = "xmpp.example.test";
const WAIT: Duration = Duration::from_secs(30);

/// DNS for both domains: `_xmpp-server._tcp` SRV records on loopback.
fn dns(parley_s2s: u16, prosody_s2s: u16) -> TestDns {
    let srv = |domain: &str, port: u16| Rec::Srv {
        name: format!("_xmpp-server._tcp.{domain}"),
        priority: 0,
        weight: 5,
        port,
        target: domain.to_string(),
    };
    let a = |domain: &str| Rec::A {
        name: domain.to_string(),
        ip: Ipv4Addr::LOCALHOST,
    };
    TestDns::start(
        "example.test",
        vec![
            srv(PARLEY, parley_s2s),
            a(PARLEY),
            srv(XMPP, prosody_s2s),
            a(XMPP),
        ],
    )
}

fn register(ua: &Ua, user: &str, domain: &str) {
    ua.send(
        &format!(
            "REGISTER sip:{domain} SIP/2.0\nFrom: <sip:{user}@{domain}>;tag=r1\nTo: <sip:{user}@{domain}>\nCall-ID: reg-{user}\nCSeq: 1 REGISTER\nContact: <sip:{user}@{}>\nExpires: 600",
            ua.local
        ),
        "",
    );
    assert_eq!(status(&ua.final_response()), 200);
}

/// A MESSAGE from `from` (a local SIP user) to `to`; its final response.
fn send(ua: &Ua, from: &str, to: &str, call: &str, content_type: &str, body: &str) -> String {
    ua.send(
        &format!(
            "MESSAGE sip:{to} SIP/2.0\nFrom: <sip:{from}>;tag={call}\nTo: <sip:{to}>\nCall-ID: {call}\nCSeq: 1 MESSAGE\nContent-Type: {content_type}"
        ),
        body,
    );
    final_within(ua, WAIT)
}

fn final_within(ua: &Ua, wait: Duration) -> String {
    let deadline = std::time::Instant::now() + wait;
    loop {
        let m = ua.next_within(deadline.saturating_duration_since(std::time::Instant::now()));
        if m.starts_with("SIP/2.0 ") && !m.starts_with("SIP/2.0 1") {
            return m;
        }
    }
}

/// The next MESSAGE request the UA receives (answered 200).
fn next_message(ua: &Ua) -> String {
    loop {
        let m = ua.next_within(WAIT);
        if m.starts_with("MESSAGE ") {
            return m;
        }
    }
}

fn body(msg: &str) -> &str {
    msg.split_once("\r\n\r\n").map_or("", |(_, b)| b)
}

/// Parley serving `parley.example.test` with its s2s listener, and
/// Prosody serving `xmpp.example.test`, finding each other through DNS.
struct Federation {
    _dns: TestDns,
    prosody: Prosody,
    parley: TestServer,
}

fn federation(extra_config: &str, components: &[(&str, &str)]) -> Federation {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let parley_s2s = listener.local_addr().unwrap().port();
    let ports = Ports::free();
    let dns = dns(parley_s2s, ports.s2s);
    let prosody = Prosody::start(XMPP, ports, dns.addr, components);
    let parley = TestServer::start_with_xmpp(
        &format!(
            "domains = [\"{PARLEY}\"]\n{extra_config}\n[auth]\nregistrar = false\nproxy = false\n[dns]\nnameserver = \"{}\"\n",
            dns.addr
        ),
        listener,
    );
    Federation {
        _dns: dns,
        prosody,
        parley,
    }
}

fn add_user(parley: &TestServer, user: &str) {
    cli_with(
        parley,
        &format!("domains = [\"{PARLEY}\"]"),
        &[
            "user",
            "add",
            &format!("{user}@{PARLEY}"),
            "--password",
            "pw",
        ],
    );
}

#[test]
fn sip_and_xmpp_users_talk_over_s2s_with_typing_and_receipts() {
    let f = federation("", &[]);
    f.prosody.register("juliet", "jpw");
    add_user(&f.parley, "romeo");
    let romeo = Ua::new(f.parley.udp);
    register(&romeo, "romeo", PARLEY);
    let mut juliet = XmppClient::connect(&format!("juliet@{XMPP}/balcony"), "jpw", f.prosody.c2s);

    // XMPP → SIP, asking for a receipt: Prosody dials Parley (SRV, STARTTLS,
    // dialback with Parley checking back with Prosody), Parley delivers a
    // CPIM MESSAGE carrying the id as its IMDN Message-ID.
    juliet.command(&format!(
        r#"{{"cmd": "message", "to": "romeo@{PARLEY}", "body": "Wherefore art thou?", "id": "j1", "receipt": true, "state": "active"}}"#
    ));
    let m = next_message(&romeo);
    assert!(
        header(&m, "From").is_some_and(|h| h.contains(&format!("sip:juliet@{XMPP}"))),
        "{m}"
    );
    assert!(
        header(&m, "Content-Type").is_some_and(|h| h.starts_with("message/cpim")),
        "{m}"
    );
    assert!(body(&m).contains("imdn.Message-ID: j1"), "{m}");
    assert!(body(&m).contains("positive-delivery"), "{m}");
    assert!(body(&m).ends_with("Wherefore art thou?"), "{m}");

    // SIP → XMPP: Parley dials Prosody and relays; 202 once it left.
    let r = send(
        &romeo,
        &format!("romeo@{PARLEY}"),
        &format!("juliet@{XMPP}"),
        "s1",
        "text/plain",
        "It is the east",
    );
    assert_eq!(status(&r), 202, "{r}\n{}", f.prosody.log());
    let e = juliet.wait_for(
        |e| e.contains("\"event\": \"message\"") && e.contains("It is the east"),
        WAIT,
    );
    assert!(e.contains(&format!("\"from\": \"romeo@{PARLEY}\"")), "{e}");

    // Romeo's IMDN "delivered" for j1 reaches Juliet as a XEP-0184 receipt,
    // not as an empty message.
    let imdn = format!(
        "From: <sip:romeo@{PARLEY}>\r\nTo: <sip:juliet@{XMPP}>\r\nNS: imdn <urn:ietf:params:imdn>\r\n\
         imdn.Message-ID: r1\r\nDateTime: 2026-11-26T10:00:00Z\r\n\r\n\
         Content-Type: message/imdn+xml\r\nContent-Disposition: notification\r\n\r\n\
         <?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<imdn xmlns=\"urn:ietf:params:xml:ns:imdn\">\
         <message-id>j1</message-id><datetime>2026-11-26T10:00:00Z</datetime>\
         <delivery-notification><status><delivered/></status></delivery-notification></imdn>"
    );
    let r = send(
        &romeo,
        &format!("romeo@{PARLEY}"),
        &format!("juliet@{XMPP}"),
        "s2",
        "message/cpim",
        &imdn,
    );
    assert_eq!(status(&r), 202, "{r}");
    let e = juliet.wait_for(|e| e.contains("\"received\": \"j1\""), WAIT);
    assert!(e.contains("\"body\": null"), "{e}");

    // Typing: XEP-0085 composing → RFC 3994 isComposing active, both ways.
    juliet.command(&format!(
        r#"{{"cmd": "state", "to": "romeo@{PARLEY}", "state": "composing"}}"#
    ));
    let m = next_message(&romeo);
    assert!(
        header(&m, "Content-Type").is_some_and(|h| h.starts_with("application/im-iscomposing+xml")),
        "{m}"
    );
    assert!(body(&m).contains("<state>active</state>"), "{m}");
    let typing = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<isComposing xmlns=\"urn:ietf:params:xml:ns:im-iscomposing\"><state>active</state><contenttype>text/plain</contenttype><refresh>60</refresh></isComposing>";
    let r = send(
        &romeo,
        &format!("romeo@{PARLEY}"),
        &format!("juliet@{XMPP}"),
        "s3",
        "application/im-iscomposing+xml",
        typing,
    );
    assert_eq!(status(&r), 202, "{r}");
    let e = juliet.wait_for(|e| e.contains("\"state\": \"composing\""), WAIT);
    assert!(e.contains("\"body\": null"), "{e}");

    // Juliet's receipt for Romeo's CPIM message becomes an IMDN for Romeo.
    let cpim = format!(
        "From: <sip:romeo@{PARLEY}>\r\nTo: <sip:juliet@{XMPP}>\r\nNS: imdn <urn:ietf:params:imdn>\r\n\
         imdn.Message-ID: r2\r\nDateTime: 2026-11-26T10:00:00Z\r\n\
         imdn.Disposition-Notification: positive-delivery\r\n\r\n\
         Content-Type: text/plain\r\n\r\nShall I hear more?"
    );
    let r = send(
        &romeo,
        &format!("romeo@{PARLEY}"),
        &format!("juliet@{XMPP}"),
        "s4",
        "message/cpim",
        &cpim,
    );
    assert_eq!(status(&r), 202, "{r}");
    let e = juliet.wait_for(|e| e.contains("Shall I hear more?"), WAIT);
    assert!(
        e.contains("\"id\": \"r2\"") && e.contains("\"receipt_request\": true"),
        "{e}"
    );
    juliet.command(&format!(
        r#"{{"cmd": "receipt", "to": "romeo@{PARLEY}", "id": "r2"}}"#
    ));
    let m = next_message(&romeo);
    assert!(
        body(&m).contains("<message-id>r2</message-id>") && body(&m).contains("<delivered/>"),
        "{m}"
    );

    // A user Parley does not have: the XMPP sender gets item-not-found.
    juliet.command(&format!(
        r#"{{"cmd": "message", "to": "nobody@{PARLEY}", "body": "hello?", "id": "j2"}}"#
    ));
    let e = juliet.wait_for(|e| e.contains("\"event\": \"error\""), WAIT);
    assert!(
        e.contains("\"condition\": \"item-not-found\"") && e.contains("\"id\": \"j2\""),
        "{e}"
    );
}
