//! XMPP federation against a real Prosody with slixmpp clients: a SIP user
//! of Parley's domain and an XMPP user of Prosody's domain exchange
//! messages both ways over s2s (STARTTLS + dialback, found through SRV
//! records on a test DNS server), with typing notifications and receipts
//! crossing; the same through XEP-0114 component mode; and the policy's
//! refusals.

use std::net::Ipv4Addr;
use std::time::Duration;

use parley_test_support::dns::{Rec, TestDns};
use parley_test_support::ejabberd::Ejabberd;
use parley_test_support::pki::TestCa;
use parley_test_support::prosody::{Ports, Prosody, XmppClient};
use parley_test_support::server::TestServer;

use crate::presence::{header, status, Ua};
use crate::registrar_proxy::cli_with;

const PARLEY: &str = "parley.example.test";
const XMPP: &str = "xmpp.example.test";
const WAIT: Duration = Duration::from_secs(30);

/// An SRV record for `service` (`_xmpp-server`, `_xmpps-server`) of
/// `domain`, pointing at `target` on `port`.
fn srv(service: &str, domain: &str, port: u16, target: &str) -> Rec {
    Rec::Srv {
        name: format!("{service}._tcp.{domain}"),
        priority: 0,
        weight: 5,
        port,
        target: target.to_string(),
    }
}

/// `domain` on 127.0.0.1.
fn a(domain: &str) -> Rec {
    Rec::A {
        name: domain.to_string(),
        ip: Ipv4Addr::LOCALHOST,
    }
}

/// DNS for both domains: `_xmpp-server._tcp` SRV records on loopback.
fn dns(parley_s2s: u16, prosody_s2s: u16) -> TestDns {
    let srv = |domain: &str, port: u16| srv("_xmpp-server", domain, port, domain);
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

thread_local! {
    /// Requests that arrived while a final response was awaited: a bounce
    /// report can overtake the 202 it follows.
    static EARLY: std::cell::RefCell<Vec<String>> = const { std::cell::RefCell::new(Vec::new()) };
}

fn final_within(ua: &Ua, wait: Duration) -> String {
    let deadline = std::time::Instant::now() + wait;
    loop {
        let m = ua.next_within(deadline.saturating_duration_since(std::time::Instant::now()));
        if m.starts_with("SIP/2.0 ") && !m.starts_with("SIP/2.0 1") {
            return m;
        }
        if !m.starts_with("SIP/2.0 ") {
            EARLY.with(|e| e.borrow_mut().push(m));
        }
    }
}

/// The next request of `method` the UA received or receives (answered 200).
fn next_request(ua: &Ua, method: &str) -> String {
    let prefix = format!("{method} ");
    let early = EARLY.with(|e| {
        let mut e = e.borrow_mut();
        e.iter()
            .position(|m| m.starts_with(&prefix))
            .map(|i| e.remove(i))
    });
    if let Some(m) = early {
        return m;
    }
    loop {
        let m = ua.next_within(WAIT);
        if m.starts_with(&prefix) {
            return m;
        }
    }
}

/// The next MESSAGE request the UA receives (answered 200).
fn next_message(ua: &Ua) -> String {
    next_request(ua, "MESSAGE")
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

    // An offer Parley cannot take to an XMPP user (audio, and a message
    // stream it shares no type with) is refused with 488 and a Warning
    // that says why (RFC 3261 §20.43).
    romeo.send(
        &format!(
            "INVITE sip:juliet@{XMPP} SIP/2.0\nFrom: <sip:romeo@{PARLEY}>;tag=inv1\nTo: <sip:juliet@{XMPP}>\nCall-ID: inv1\nCSeq: 1 INVITE\nContact: <sip:romeo@{}>\nContent-Type: application/sdp",
            romeo.local
        ),
        "v=0\r\no=romeo 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 49170 RTP/AVP 0\r\nm=message 7654 TCP/MSRP *\r\na=accept-types:image/png\r\na=path:msrp://127.0.0.1:7654/s1;tcp\r\n",
    );
    let r = final_within(&romeo, WAIT);
    assert_eq!(status(&r), 488, "{r}");
    assert!(
        header(&r, "Warning").is_some_and(|w| w.starts_with("305 ") && w.contains("accept-types")),
        "{r}"
    );

    // Accepted (202) for someone Prosody does not have: the bounce comes
    // back later and Romeo is told, so nothing accepted is lost silently.
    let r = send(
        &romeo,
        &format!("romeo@{PARLEY}"),
        &format!("nobody@{XMPP}"),
        "s5",
        "text/plain",
        "Anyone there?",
    );
    // Accepted, or, when Prosody's bounce is back before Parley answers,
    // answered with the bounce's mapped status (RFC 7247 §7) itself.
    if status(&r) == 202 {
        let m = next_message(&romeo);
        assert!(
            header(&m, "From").is_some_and(|h| h.contains(&format!("parley@{PARLEY}"))),
            "{m}"
        );
        assert!(
            body(&m).contains(&format!("nobody@{XMPP}")) && body(&m).contains("not delivered"),
            "{m}"
        );
        // Prosody's words, if any, are Prosody's: attributed, never Parley's.
        assert!(body(&m).contains(&format!("the server of {XMPP}")), "{m}");
    } else {
        // item-not-found (404) or service-unavailable (503), as Prosody says.
        assert!((400..600).contains(&status(&r)), "{r}");
        assert!(
            r.lines()
                .next()
                .is_some_and(|l| l.contains(&format!("the server of {XMPP}"))),
            "{r}"
        );
    }

    // Every crossing is in the compliance archive (the real CLI reads it).
    let text = crate::registrar_proxy::run_cli(
        &["archive", "search", "--domain", XMPP],
        &f.parley.state_dir.join("cli.toml"),
    );
    assert!(
        text.lines().any(|l| l.contains("xmpp  sip")
            && l.contains(&format!("juliet@{XMPP}"))
            && l.contains("delivered")),
        "{text}"
    );
    assert!(
        text.lines().any(|l| l.contains("sip   xmpp")
            && l.contains(&format!("romeo@{PARLEY}"))
            && l.contains("accepted")),
        "{text}"
    );

    // The console sees the federation Prosody set up: both links, with
    // their authentication and TLS, and the messages routed each way.
    let admin = f.parley.admin.unwrap();
    let token = f.parley.admin_token();
    let (code, peers) = crate::admin::http(admin, "GET", "/api/v1/peers", Some(&token), None);
    assert_eq!(code, 200, "{peers}");
    let peers: serde_json::Value = serde_json::from_str(&peers).unwrap();
    for direction in ["inbound", "outbound"] {
        assert!(
            peers.as_array().unwrap().iter().any(|l| l["domain"] == XMPP
                && l["direction"] == direction
                && l["auth"] == "dialback"
                && l["tls"] == true),
            "{direction} link missing: {peers}"
        );
    }
    let (_, status) = crate::admin::http(admin, "GET", "/api/v1/status", Some(&token), None);
    let status: serde_json::Value = serde_json::from_str(&status).unwrap();
    let routed = |s: &str, d: &str| {
        status["routed"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["source"] == s && r["destination"] == d)
            .map_or(0, |r| r["messages"].as_u64().unwrap_or(0))
    };
    assert!(
        routed("xmpp", "sip") >= 3 && routed("sip", "xmpp") >= 4,
        "{status}"
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

#[test]
fn component_mode_attaches_to_prosody_and_carries_messages_both_ways() {
    // No DNS at all: Prosody's domain is reached through an explicit route,
    // and Parley serves sip.xmpp.example.test as Prosody's component.
    let ports = Ports::free();
    let dns = TestDns::start("example.test", vec![]);
    let prosody = Prosody::start(
        XMPP,
        ports,
        dns.addr,
        &[("sip.xmpp.example.test", "s3cret")],
    );
    prosody.register("juliet", "jpw");
    let parley = TestServer::start(&format!(
        "domains = [\"{PARLEY}\"]\n[[route]]\ndomain = \"{XMPP}\"\nvia = \"xmpp\"\n\
         [[xmpp.component]]\nserver = \"127.0.0.1:{}\"\ndomain = \"sip.xmpp.example.test\"\n\
         server_domain = \"{XMPP}\"\nsecret = \"s3cret\"\n\
         [auth]\nregistrar = false\nproxy = false\n",
        ports.component
    ));
    add_user(&parley, "romeo");
    let romeo = Ua::new(parley.udp);
    register(&romeo, "romeo", PARLEY);
    let mut juliet = XmppClient::connect(&format!("juliet@{XMPP}/balcony"), "jpw", prosody.c2s);

    // XMPP → SIP: romeo@sip.xmpp.example.test is romeo@parley.example.test.
    juliet.command(r#"{"cmd": "message", "to": "romeo@sip.xmpp.example.test", "body": "Through the component", "id": "c1"}"#);
    let m = next_message(&romeo);
    assert!(m.starts_with("MESSAGE sip:romeo@"), "{m}");
    assert!(
        header(&m, "From").is_some_and(|h| h.contains(&format!("sip:juliet@{XMPP}"))),
        "{m}"
    );
    assert_eq!(body(&m), "Through the component");

    // SIP → XMPP: Romeo appears as romeo@sip.xmpp.example.test.
    let r = send(
        &romeo,
        &format!("romeo@{PARLEY}"),
        &format!("juliet@{XMPP}"),
        "c2",
        "text/plain",
        "And back",
    );
    assert_eq!(status(&r), 202, "{r}\n{}", prosody.log());
    let e = juliet.wait_for(|e| e.contains("And back"), WAIT);
    assert!(
        e.contains("\"from\": \"romeo@sip.xmpp.example.test\""),
        "{e}"
    );

    // Someone Parley does not have: item-not-found back through the component.
    juliet.command(
        r#"{"cmd": "message", "to": "nobody@sip.xmpp.example.test", "body": "?", "id": "c3"}"#,
    );
    let e = juliet.wait_for(|e| e.contains("\"event\": \"error\""), WAIT);
    assert!(
        e.contains("item-not-found") && e.contains("\"id\": \"c3\""),
        "{e}"
    );
}

#[test]
fn a_denied_domain_is_refused_with_the_policys_reason_both_ways() {
    let f = federation(&format!("[gateway]\ndeny_domains = [\"{XMPP}\"]"), &[]);
    f.prosody.register("juliet", "jpw");
    add_user(&f.parley, "romeo");
    let romeo = Ua::new(f.parley.udp);
    register(&romeo, "romeo", PARLEY);
    let mut juliet = XmppClient::connect(&format!("juliet@{XMPP}/balcony"), "jpw", f.prosody.c2s);

    let r = send(
        &romeo,
        &format!("romeo@{PARLEY}"),
        &format!("juliet@{XMPP}"),
        "d1",
        "text/plain",
        "hi",
    );
    assert_eq!(status(&r), 403, "{r}");
    assert!(
        header(&r, "Warning").is_some_and(|w| w.contains("denied by policy")),
        "{r}"
    );

    juliet.command(&format!(
        r#"{{"cmd": "message", "to": "romeo@{PARLEY}", "body": "let me in", "id": "d2"}}"#
    ));
    let e = juliet.wait_for(|e| e.contains("\"event\": \"error\""), WAIT);
    assert!(
        e.contains("\"condition\": \"policy-violation\"") && e.contains("\"id\": \"d2\""),
        "{e}"
    );
}

/// Reads from `s` until the text holds `pattern` (or the peer closes);
/// everything read so far.
fn read_until(s: &mut std::net::TcpStream, text: &mut String, pattern: &str) -> bool {
    use std::io::Read;
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let mut buf = [0u8; 4096];
    while !text.contains(pattern) {
        if std::time::Instant::now() > deadline {
            return false;
        }
        match s.read(&mut buf) {
            Ok(0) => return text.contains(pattern),
            Ok(n) => text.push_str(&String::from_utf8_lossy(&buf[..n])),
            Err(e)
                if e.kind() == std::io::ErrorKind::WouldBlock
                    || e.kind() == std::io::ErrorKind::TimedOut => {}
            Err(_) => return text.contains(pattern),
        }
    }
    true
}

const ROGUE: &str = "rogue.example.test";

fn open_stream(parley_s2s: u16) -> (std::net::TcpStream, String) {
    use std::io::Write;
    let mut s = std::net::TcpStream::connect(("127.0.0.1", parley_s2s)).unwrap();
    s.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    write!(
        s,
        "<?xml version='1.0'?><stream:stream xmlns='jabber:server' xmlns:stream='http://etherx.jabber.org/streams' \
         xmlns:db='jabber:server:dialback' from='{ROGUE}' to='{PARLEY}' version='1.0'>"
    )
    .unwrap();
    let mut text = String::new();
    assert!(read_until(&mut s, &mut text, "features>"), "{text}");
    (s, text)
}

/// Parley beside rogue.example.test, a real domain here: this test is its
/// server and answers Parley's dialback verification once. Romeo is a
/// user of Parley. Returns the DNS (kept alive), Parley and its s2s port.
fn rogue_setup() -> (TestDns, TestServer, u16) {
    rogue_setup_with("")
}

/// `rogue_setup` with more lines for the `[xmpp]` section.
fn rogue_setup_with(xmpp: &str) -> (TestDns, TestServer, u16) {
    use std::io::Write;
    let authority = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let authority_port = authority.local_addr().unwrap().port();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let parley_s2s = listener.local_addr().unwrap().port();
    let dns = TestDns::start(
        "example.test",
        vec![srv("_xmpp-server", ROGUE, authority_port, ROGUE), a(ROGUE)],
    );
    let parley = TestServer::start_with_xmpp(
        &format!(
            "domains = [\"{PARLEY}\"]\n[auth]\nregistrar = false\nproxy = false\n\
             [xmpp]\nrequire_tls = false\n{xmpp}[dns]\nnameserver = \"{}\"\n",
            dns.addr
        ),
        listener,
    );
    add_user(&parley, "romeo");
    std::thread::spawn(move || {
        let Ok((mut s, _)) = authority.accept() else {
            return;
        };
        s.set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        let mut text = String::new();
        read_until(&mut s, &mut text, "version='1.0'>");
        let _ = write!(
            s,
            "<stream:stream xmlns='jabber:server' xmlns:stream='http://etherx.jabber.org/streams' \
             xmlns:db='jabber:server:dialback' from='{ROGUE}' to='{PARLEY}' id='auth1' version='1.0'>\
             <stream:features><dialback xmlns='urn:xmpp:features:dialback'/></stream:features>"
        );
        text.clear();
        if read_until(&mut s, &mut text, "</db:verify>") {
            let id = text
                .split("id=\"")
                .nth(1)
                .and_then(|r| r.split('"').next())
                .unwrap_or_default()
                .to_string();
            let _ = write!(
                s,
                "<db:verify from='{ROGUE}' to='{PARLEY}' id='{id}' type='valid'/>"
            );
        }
        std::thread::sleep(Duration::from_secs(5));
    });
    (dns, parley, parley_s2s)
}

/// A stream to Parley authenticated by dialback as rogue.example.test.
fn rogue_stream(parley_s2s: u16) -> (std::net::TcpStream, String) {
    use std::io::Write;
    let (mut s, mut text) = open_stream(parley_s2s);
    assert!(text.contains("urn:xmpp:features:dialback"), "{text}");
    write!(
        s,
        "<db:result from='{ROGUE}' to='{PARLEY}'>anykey</db:result>"
    )
    .unwrap();
    assert!(read_until(&mut s, &mut text, "type=\"valid\""), "{text}");
    (s, text)
}

#[test]
fn forged_failure_reports_are_dropped() {
    use std::io::Write;
    let (_dns, parley, parley_s2s) = rogue_setup();
    let romeo = Ua::new(parley.udp);
    register(&romeo, "romeo", PARLEY);
    let (mut s, _) = rogue_stream(parley_s2s);
    // Errors for messages Parley never sent, with words meant to pass for
    // Parley's own: none of them reaches Romeo, and none is answered.
    for n in 0..10 {
        write!(
            s,
            "<message from='juliet@{ROGUE}' to='romeo@{PARLEY}' type='error' id='forged-{n}'>\
             <error type='cancel'><item-not-found xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/>\
             <text xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'>your SIP password expired, re-enter it at https://{ROGUE}/</text>\
             </error></message>"
        )
        .unwrap();
    }
    // Then an ordinary message over the same stream: the first thing Romeo
    // gets is that message, so the errors before it produced nothing.
    write!(
        s,
        "<message from='juliet@{ROGUE}' to='romeo@{PARLEY}' type='chat' id='c1'><body>after the errors</body></message>"
    )
    .unwrap();
    let m = next_message(&romeo);
    assert!(body(&m).ends_with("after the errors"), "{m}");
    assert!(
        header(&m, "From").is_some_and(|h| h.contains(&format!("juliet@{ROGUE}"))),
        "{m}"
    );
    // No error went back for the errors either (RFC 6120 §8.3.1).
    let mut text = String::new();
    s.set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    read_until(&mut s, &mut text, "type='error'");
    assert!(!text.contains("forged-"), "{text}");
    drop(parley);
}

/// True when Parley closes `s` within `wait` (whatever it sent first).
fn closed_within(s: &mut std::net::TcpStream, wait: Duration) -> bool {
    use std::io::Read;
    let deadline = std::time::Instant::now() + wait;
    let mut buf = [0u8; 4096];
    while std::time::Instant::now() < deadline {
        match s.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => {}
            Err(e)
                if e.kind() == std::io::ErrorKind::WouldBlock
                    || e.kind() == std::io::ErrorKind::TimedOut => {}
            Err(_) => return true,
        }
    }
    false
}

#[test]
fn streams_that_never_authenticate_make_room_and_run_out_of_time() {
    use std::io::Write;
    let (_dns, parley, parley_s2s) =
        rogue_setup_with("max_inbound_streams = 3\nnegotiation_timeout_secs = 3\n");
    let romeo = Ua::new(parley.udp);
    register(&romeo, "romeo", PARLEY);
    let (mut proven, _) = rogue_stream(parley_s2s);
    let (mut first, _) = open_stream(parley_s2s);
    let (mut second, _) = open_stream(parley_s2s);
    // Every place is taken: a newcomer is still answered, and the oldest
    // stream that never authenticated is closed for it.
    let (mut third, _) = open_stream(parley_s2s);
    assert!(
        closed_within(&mut first, Duration::from_secs(2)),
        "the oldest unauthenticated stream made room"
    );
    assert!(
        !closed_within(&mut second, Duration::from_millis(300)),
        "only one stream is closed per newcomer"
    );
    let (mut fourth, _) = open_stream(parley_s2s);
    assert!(closed_within(&mut second, Duration::from_secs(2)));
    // However slowly they trickle, the newcomers have the negotiation
    // deadline to authenticate, and are closed when it passes.
    for _ in 0..4 {
        let _ = third.write_all(b" ");
        let _ = fourth.write_all(b" ");
        std::thread::sleep(Duration::from_millis(500));
    }
    assert!(
        closed_within(&mut third, Duration::from_secs(3)),
        "deadline"
    );
    assert!(
        closed_within(&mut fourth, Duration::from_secs(3)),
        "deadline"
    );
    // The authenticated stream was never pushed out, deadline or not.
    write!(
        proven,
        "<message from='juliet@{ROGUE}' to='romeo@{PARLEY}' type='chat' id='p1'><body>still here</body></message>"
    )
    .unwrap();
    let m = next_message(&romeo);
    assert!(body(&m).ends_with("still here"), "{m}");
}

#[test]
fn a_peer_asserting_a_domain_it_did_not_authenticate_as_is_cut_off() {
    use std::io::Write;
    let (_dns, _parley, parley_s2s) = rogue_setup();
    let (mut s, mut text) = rogue_stream(parley_s2s);
    // Authenticated as rogue; now it speaks for someone else.
    write!(
        s,
        "<message from='juliet@{XMPP}' to='romeo@{PARLEY}' type='chat'><body>It is I, Juliet</body></message>"
    )
    .unwrap();
    assert!(read_until(&mut s, &mut text, "</stream:stream>"), "{text}");
    assert!(text.contains("<invalid-from"), "{text}");

    // Restricted XML (RFC 6120 §11.1): a comment ends the stream.
    let (mut s, mut text) = open_stream(parley_s2s);
    write!(s, "<!-- hello -->").unwrap();
    assert!(read_until(&mut s, &mut text, "</stream:stream>"), "{text}");
    assert!(text.contains("<restricted-xml"), "{text}");
    // So does an entity declaration.
    let (mut s, mut text) = open_stream(parley_s2s);
    write!(s, "<!DOCTYPE x [<!ENTITY lol 'lol'>]>").unwrap();
    assert!(read_until(&mut s, &mut text, "</stream:stream>"), "{text}");
    assert!(text.contains("<restricted-xml"), "{text}");
    // And a stanza before authentication is not routed.
    let (mut s, mut text) = open_stream(parley_s2s);
    write!(
        s,
        "<message from='mallory@{ROGUE}' to='romeo@{PARLEY}'><body>unauthenticated</body></message>"
    )
    .unwrap();
    assert!(read_until(&mut s, &mut text, "</stream:stream>"), "{text}");
    assert!(text.contains("<invalid-from"), "{text}");
}

#[test]
fn sip_and_xmpp_users_watch_each_others_presence() {
    let f = federation("", &[]);
    f.prosody.register("juliet", "jpw");
    add_user(&f.parley, "romeo");
    let romeo = Ua::new(f.parley.udp);
    register(&romeo, "romeo", PARLEY);
    let mut juliet = XmppClient::connect(&format!("juliet@{XMPP}/balcony"), "jpw", f.prosody.c2s);

    // SIP watches XMPP (RFC 7248 §4): Parley holds the SIP subscription,
    // pending, and asks Juliet.
    romeo.send(
        &format!(
            "SUBSCRIBE sip:juliet@{XMPP} SIP/2.0\nFrom: <sip:romeo@{PARLEY}>;tag=w1\nTo: <sip:juliet@{XMPP}>\nCall-ID: watch-juliet\nCSeq: 1 SUBSCRIBE\nEvent: presence\nAccept: application/pidf+xml\nContact: <sip:romeo@{}>\nExpires: 600",
            romeo.local
        ),
        "",
    );
    let r = final_within(&romeo, WAIT);
    assert_eq!(status(&r), 200, "{r}");
    let n = next_request(&romeo, "NOTIFY");
    assert!(
        header(&n, "Subscription-State").is_some_and(|s| s.starts_with("pending")),
        "{n}"
    );
    juliet.wait_for(
        |e| {
            e.contains("\"event\": \"subscription\"")
                && e.contains("\"type\": \"subscribe\"")
                && e.contains(&format!("romeo@{PARLEY}"))
        },
        WAIT,
    );
    // Juliet approves: the subscription turns active and her presence
    // arrives as PIDF.
    juliet.command(&format!(
        r#"{{"cmd": "subscribed", "to": "romeo@{PARLEY}"}}"#
    ));
    let mut open = String::new();
    for _ in 0..5 {
        let n = next_request(&romeo, "NOTIFY");
        if header(&n, "Subscription-State").is_some_and(|s| s.starts_with("active"))
            && body(&n).contains("<basic>open</basic>")
        {
            open = n;
            break;
        }
    }
    assert!(!open.is_empty(), "no active NOTIFY with open state");
    juliet.command(r#"{"cmd": "presence", "show": "dnd", "status": "In a meeting"}"#);
    let n = next_request(&romeo, "NOTIFY");
    assert!(
        body(&n).contains("busy") && body(&n).contains("In a meeting"),
        "{n}"
    );
    juliet.command(r#"{"cmd": "unavailable"}"#);
    let n = next_request(&romeo, "NOTIFY");
    assert!(body(&n).contains("<basic>closed</basic>"), "{n}");
    juliet.command(r#"{"cmd": "presence"}"#);
    let n = next_request(&romeo, "NOTIFY");
    assert!(body(&n).contains("<basic>open</basic>"), "{n}");

    // XMPP watches SIP: Juliet's request waits for Romeo's rule (the
    // default policy keeps watchers of other domains pending).
    juliet.command(&format!(
        r#"{{"cmd": "subscribe", "to": "romeo@{PARLEY}"}}"#
    ));
    std::thread::sleep(Duration::from_millis(500));
    assert!(
        !juliet
            .seen
            .iter()
            .any(|e| e.contains("\"type\": \"subscribed\"")),
        "approved before any rule: {:?}",
        juliet.seen
    );
    cli_with(
        &f.parley,
        &format!("domains = [\"{PARLEY}\"]"),
        &[
            "presence",
            "allow",
            &format!("romeo@{PARLEY}"),
            &format!("juliet@{XMPP}"),
        ],
    );
    juliet.wait_for(
        |e| e.contains("\"type\": \"subscribed\"") && e.contains(&format!("romeo@{PARLEY}")),
        WAIT,
    );
    // Romeo publishes: Juliet sees him available with his note.
    let pidf = format!(
        "<?xml version=\"1.0\"?><presence xmlns=\"urn:ietf:params:xml:ns:pidf\" entity=\"pres:romeo@{PARLEY}\"><tuple id=\"t1\"><status><basic>open</basic></status><note>Under the balcony</note></tuple></presence>"
    );
    romeo.send(
        &format!(
            "PUBLISH sip:romeo@{PARLEY} SIP/2.0\nFrom: <sip:romeo@{PARLEY}>;tag=p1\nTo: <sip:romeo@{PARLEY}>\nCall-ID: pub-romeo\nCSeq: 1 PUBLISH\nEvent: presence\nExpires: 600\nContent-Type: application/pidf+xml"
        ),
        &pidf,
    );
    assert_eq!(status(&final_within(&romeo, WAIT)), 200);
    let e = juliet.wait_for(
        |e| e.contains("\"event\": \"presence\"") && e.contains("Under the balcony"),
        WAIT,
    );
    assert!(
        e.contains("\"type\": \"available\"") && e.contains(&format!("romeo@{PARLEY}")),
        "{e}"
    );
}

#[test]
fn ejabberd_federates_with_parley_too() {
    const EJ: &str = "ej.example.test";
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let parley_s2s = listener.local_addr().unwrap().port();
    let ports = Ejabberd::ports();
    // Parley's SRV target is an address: ejabberd asks the system, not this
    // DNS server, for the addresses of SRV targets.
    let dns = TestDns::start(
        "example.test",
        vec![
            srv("_xmpp-server", PARLEY, parley_s2s, "127.0.0.1"),
            a(PARLEY),
            srv("_xmpp-server", EJ, ports.1, EJ),
            a(EJ),
        ],
    );
    let ej = Ejabberd::start(EJ, ports, dns.addr);
    ej.register("mercutio", "mpw");
    let parley = TestServer::start_with_xmpp(
        &format!(
            "domains = [\"{PARLEY}\"]\n[auth]\nregistrar = false\nproxy = false\n[dns]\nnameserver = \"{}\"\n",
            dns.addr
        ),
        listener,
    );
    add_user(&parley, "romeo");
    let romeo = Ua::new(parley.udp);
    register(&romeo, "romeo", PARLEY);
    let mut mercutio = XmppClient::connect(&format!("mercutio@{EJ}/street"), "mpw", ej.c2s);

    // ejabberd finds Parley through SRV, secures the stream and
    // authenticates with dialback; Parley checks back with ejabberd.
    mercutio.command(&format!(
        r#"{{"cmd": "message", "to": "romeo@{PARLEY}", "body": "A plague o' both your houses", "id": "e1"}}"#
    ));
    let m = next_message(&romeo);
    assert!(
        header(&m, "From").is_some_and(|h| h.contains(&format!("sip:mercutio@{EJ}"))),
        "{m}"
    );
    assert_eq!(body(&m), "A plague o' both your houses");

    let r = send(
        &romeo,
        &format!("romeo@{PARLEY}"),
        &format!("mercutio@{EJ}"),
        "e2",
        "text/plain",
        "Courage, man",
    );
    assert_eq!(status(&r), 202, "{r}\n{}", ej.log());
    let e = mercutio.wait_for(|e| e.contains("Courage, man"), WAIT);
    assert!(e.contains(&format!("\"from\": \"romeo@{PARLEY}\"")), "{e}");
}

#[test]
fn certificates_authenticate_both_ways_with_sasl_external() {
    // One CA for both domains; Prosody requires certificates
    // (s2s_secure_auth) and Parley's policy requires them of Prosody's
    // domain: a dialback link would be refused either side.
    let ca = TestCa::new();
    let (p_cert, p_key) = ca.issue(PARLEY);
    let (x_cert, x_key) = ca.issue(XMPP);
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let parley_s2s = listener.local_addr().unwrap().port();
    let ports = Ports::free();
    let dns = dns(parley_s2s, ports.s2s);
    let prosody = Prosody::start_with(
        XMPP,
        ports,
        dns.addr,
        &[],
        Some((&ca.cert, &x_cert, &x_key)),
    );
    prosody.register("juliet", "jpw");
    let parley = TestServer::start_with_xmpp(
        &format!(
            "domains = [\"{PARLEY}\"]\n[sip.tls]\ncert = {:?}\nkey = {:?}\nca_file = {:?}\n\
             [[gateway.domain]]\nname = \"{XMPP}\"\nrequire_certificate = true\n\
             [auth]\nregistrar = false\nproxy = false\n[dns]\nnameserver = \"{}\"\n",
            p_cert.display().to_string(),
            p_key.display().to_string(),
            ca.cert.display().to_string(),
            dns.addr
        ),
        listener,
    );
    add_user(&parley, "romeo");
    let romeo = Ua::new(parley.udp);
    register(&romeo, "romeo", PARLEY);
    let mut juliet = XmppClient::connect(&format!("juliet@{XMPP}/balcony"), "jpw", prosody.c2s);

    juliet.command(&format!(
        r#"{{"cmd": "message", "to": "romeo@{PARLEY}", "body": "By certificate", "id": "x1"}}"#
    ));
    let m = next_message(&romeo);
    assert_eq!(body(&m), "By certificate", "{m}");
    let r = send(
        &romeo,
        &format!("romeo@{PARLEY}"),
        &format!("juliet@{XMPP}"),
        "x2",
        "text/plain",
        "And back by certificate",
    );
    assert_eq!(status(&r), 202, "{r}\n{}", prosody.log());
    juliet.wait_for(|e| e.contains("And back by certificate"), WAIT);
    // Prosody's own account of both links.
    let log = prosody.log();
    assert!(
        log.contains(&format!("SASL EXTERNAL with {PARLEY} succeeded")),
        "Prosody -> Parley was not SASL EXTERNAL:\n{log}"
    );
    assert!(
        log.contains(&format!("Accepting SASL EXTERNAL identity from {PARLEY}")),
        "Parley -> Prosody was not SASL EXTERNAL:\n{log}"
    );
}

#[test]
fn direct_tls_federation_follows_xmpps_server_records() {
    // XEP-0368: both domains publish only _xmpps-server._tcp, so each side
    // must open TLS from the first byte.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let tls_listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let parley_tls = tls_listener.local_addr().unwrap().port();
    let ports = Ports::free();
    let srv = |domain: &str, port: u16| srv("_xmpps-server", domain, port, domain);
    let dns = TestDns::start(
        "example.test",
        vec![
            srv(PARLEY, parley_tls),
            a(PARLEY),
            srv(XMPP, ports.s2s_tls),
            a(XMPP),
        ],
    );
    let prosody = Prosody::start(XMPP, ports, dns.addr, &[]);
    prosody.register("juliet", "jpw");
    let parley = TestServer::start_with_xmpp_listeners(
        &format!(
            "domains = [\"{PARLEY}\"]\n[auth]\nregistrar = false\nproxy = false\n[dns]\nnameserver = \"{}\"\n",
            dns.addr
        ),
        listener,
        Some(tls_listener),
    );
    add_user(&parley, "romeo");
    let romeo = Ua::new(parley.udp);
    register(&romeo, "romeo", PARLEY);
    let mut juliet = XmppClient::connect(&format!("juliet@{XMPP}/balcony"), "jpw", prosody.c2s);

    let r = send(
        &romeo,
        &format!("romeo@{PARLEY}"),
        &format!("juliet@{XMPP}"),
        "t1",
        "text/plain",
        "Direct from the first byte",
    );
    assert_eq!(status(&r), 202, "{r}\n{}", prosody.log());
    juliet.wait_for(|e| e.contains("Direct from the first byte"), WAIT);
    juliet.command(&format!(
        r#"{{"cmd": "message", "to": "romeo@{PARLEY}", "body": "And back the same way", "id": "t2"}}"#
    ));
    let m = next_message(&romeo);
    assert_eq!(body(&m), "And back the same way", "{m}");
}

/// RFC 7573: Romeo (SIP) opens a chat session to Juliet (XMPP) with an
/// MSRP offer; Parley answers as the session's far end, connects to
/// Romeo's path, and carries the session as one conversation both ways;
/// BYE ends it with the `gone` chat state.
#[test]
fn an_msrp_session_becomes_one_xmpp_conversation_both_ways() {
    use parley::proto::msrp::{Decoder, Event, Flag, Head, MsrpLimits, MsrpUri};
    use std::io::{Read, Write};
    let f = federation("", &[]);
    f.prosody.register("juliet", "jpw");
    add_user(&f.parley, "romeo");
    let romeo = Ua::new(f.parley.udp);
    register(&romeo, "romeo", PARLEY);
    let mut juliet = XmppClient::connect(&format!("juliet@{XMPP}/balcony"), "jpw", f.prosody.c2s);

    // Romeo's MSRP endpoint waits for Parley to connect (Parley answers
    // active, as RFC 4975 has the answerer connect).
    let msrp = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let romeo_uri = MsrpUri::new(
        false,
        "127.0.0.1",
        msrp.local_addr().unwrap().port(),
        "romeo7573",
    );
    let offer = format!(
        "v=0\r\no=romeo 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=message {} TCP/MSRP *\r\na=accept-types:message/cpim text/plain application/im-iscomposing+xml\r\na=path:{romeo_uri}\r\n",
        romeo_uri.port.unwrap()
    );
    romeo.send(
        &format!(
            "INVITE sip:juliet@{XMPP} SIP/2.0\nFrom: <sip:romeo@{PARLEY}>;tag=s7573\nTo: <sip:juliet@{XMPP}>\nCall-ID: session-7573\nCSeq: 1 INVITE\nContact: <sip:romeo@{}>\nContent-Type: application/sdp",
            romeo.local
        ),
        &offer,
    );
    let ok = final_within(&romeo, WAIT);
    assert_eq!(status(&ok), 200, "{ok}");
    let answer = body(&ok).to_string();
    assert!(
        answer.contains("m=message ") && answer.contains("TCP/MSRP"),
        "{answer}"
    );
    assert!(answer.contains("a=setup:active"), "{answer}");
    let parley_path = answer
        .lines()
        .find_map(|l| l.trim().strip_prefix("a=path:"))
        .expect("a=path in the answer")
        .trim()
        .to_string();
    let parley_uri = MsrpUri::parse(&parley_path).unwrap();

    // Parley connects and binds the connection with an empty SEND.
    let (mut conn, _) = msrp.accept().unwrap();
    conn.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let mut decoder = Decoder::new(MsrpLimits::default());
    let mut buf = bytes::BytesMut::new();
    let mut next_request = |conn: &mut std::net::TcpStream,
                            method: &str,
                            code: u16|
     -> Option<(Head, Vec<u8>)> {
        let deadline = std::time::Instant::now() + WAIT;
        let mut head = None;
        let mut data = Vec::new();
        loop {
            while let Some(e) = decoder.decode(&mut buf).unwrap() {
                match e {
                    Event::Head(h) => head = Some(h),
                    Event::Refused(_, e) => panic!("malformed MSRP: {e}"),
                    Event::Data(d) => data.extend_from_slice(&d),
                    Event::End(_) => {
                        let h = head.take().unwrap();
                        if h.method() == Some("SEND") {
                            let own = h.to_path.last().cloned().unwrap();
                            conn.write_all(&h.response(code, "", &own).to_bytes(None, Flag::End))
                                .unwrap();
                        }
                        if h.method() == Some(method) {
                            return Some((h, std::mem::take(&mut data)));
                        }
                        data.clear();
                    }
                }
            }
            if std::time::Instant::now() > deadline {
                return None;
            }
            let mut chunk = [0u8; 8192];
            match conn.read(&mut chunk) {
                Ok(0) => return None,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
                Err(_) => {}
            }
        }
    };
    let (bind, empty) = next_request(&mut conn, "SEND", 200).expect("the binding SEND");
    assert!(empty.is_empty());
    assert_eq!(bind.to_path, vec![romeo_uri.clone()]);
    assert!(bind.from_path[0].same_as(&parley_uri));

    // Romeo writes in the session: Juliet gets a chat message of one thread.
    let send = Head::request(
        "SEND",
        "r7573a1",
        vec![parley_uri.clone()],
        vec![romeo_uri.clone()],
    )
    .with("Message-ID", "rm000001")
    .with("Byte-Range", "1-16/16")
    .with("Success-Report", "yes")
    .with("Content-Type", "text/plain");
    conn.write_all(&send.to_bytes(Some(b"Juliet, my dear!"), Flag::End))
        .unwrap();
    // The success report Romeo asked for (RFC 4975 §7.1.2).
    let (report, _) = next_request(&mut conn, "REPORT", 200).expect("a success report");
    assert_eq!(report.message_id(), Some("rm000001"));
    assert_eq!(report.status().map(|s| s.code), Some(200));
    assert_eq!(report.header("Byte-Range"), Some("1-16/16"));
    let e = juliet.wait_for(|e| e.contains("Juliet, my dear!"), WAIT);
    assert!(e.contains(&format!("romeo@{PARLEY}")), "{e}");
    let thread = e
        .split("\"thread\": \"")
        .nth(1)
        .and_then(|t| t.split('"').next())
        .expect("a thread")
        .to_string();

    // Juliet answers: it arrives in the session as an MSRP SEND, not as a
    // pager-mode MESSAGE.
    juliet.command(&format!(
        r#"{{"cmd": "message", "to": "romeo@{PARLEY}", "body": "Romeo, Romeo", "id": "j7573"}}"#
    ));
    let (reply, text) = next_request(&mut conn, "SEND", 200).expect("Juliet's words over MSRP");
    assert_eq!(String::from_utf8_lossy(&text), "Romeo, Romeo");
    assert!(reply
        .content_type()
        .is_some_and(|t| t.starts_with("text/plain")));

    // Receipts inside the session: Romeo's CPIM message asks for an IMDN
    // (RFC 5438 over MSRP); Juliet's XEP-0184 receipt comes back as one.
    let cpim = format!(
        "From: <sip:romeo@{PARLEY}>\r\nTo: <sip:juliet@{XMPP}>\r\nNS: imdn <urn:ietf:params:imdn>\r\n\
         imdn.Message-ID: rs7573\r\nDateTime: 2026-12-06T10:00:00Z\r\n\
         imdn.Disposition-Notification: positive-delivery\r\n\r\n\
         Content-Type: text/plain\r\n\r\nDost thou love me?"
    );
    let send = Head::request(
        "SEND",
        "r7573r1",
        vec![parley_uri.clone()],
        vec![romeo_uri.clone()],
    )
    .with("Message-ID", "rm000004")
    .with("Byte-Range", format!("1-{0}/{0}", cpim.len()))
    .with("Content-Type", "message/cpim");
    conn.write_all(&send.to_bytes(Some(cpim.as_bytes()), Flag::End))
        .unwrap();
    let e = juliet.wait_for(|e| e.contains("Dost thou love me?"), WAIT);
    assert!(
        e.contains("\"receipt_request\": true") && e.contains("\"id\": \"rs7573\""),
        "{e}"
    );
    juliet.command(&format!(
        r#"{{"cmd": "receipt", "to": "romeo@{PARLEY}", "id": "rs7573"}}"#
    ));
    let (imdn, doc) = next_request(&mut conn, "SEND", 200).expect("the IMDN over MSRP");
    let doc = String::from_utf8_lossy(&doc).into_owned();
    assert!(
        imdn.content_type()
            .is_some_and(|t| t.starts_with("message/cpim")),
        "{doc}"
    );
    assert!(
        doc.contains("<message-id>rs7573</message-id>") && doc.contains("<delivered/>"),
        "{doc}"
    );

    // A type the domain policy does not let cross: the 200 said the chunk
    // arrived; a failure report says the message went no further.
    let send = Head::request(
        "SEND",
        "r7573p1",
        vec![parley_uri.clone()],
        vec![romeo_uri.clone()],
    )
    .with("Message-ID", "rm000005")
    .with("Byte-Range", "1-4/4")
    .with("Content-Type", "image/png");
    conn.write_all(&send.to_bytes(Some(b"\x89PNG"), Flag::End))
        .unwrap();
    let (failed, _) = next_request(&mut conn, "REPORT", 200).expect("a failure report");
    assert_eq!(failed.message_id(), Some("rm000005"));
    assert_eq!(failed.status().map(|s| s.code), Some(415));

    // Romeo's side refuses a message (415): Juliet's client gets the
    // error for it (RFC 7247 §7), not silence.
    juliet.command(&format!(
        r#"{{"cmd": "message", "to": "romeo@{PARLEY}", "body": "refuse me", "id": "jref1"}}"#
    ));
    let (refused, _) = next_request(&mut conn, "SEND", 415).expect("the SEND to refuse");
    assert!(refused.content_type().is_some());
    let e = juliet.wait_for(
        |e| e.contains("\"event\": \"error\"") && e.contains("jref1"),
        WAIT,
    );
    assert!(e.contains("\"condition\""), "{e}");

    // Typing both ways inside the session: XEP-0085 composing becomes an
    // RFC 3994 isComposing SEND, and the other way round.
    juliet.command(&format!(
        r#"{{"cmd": "state", "to": "romeo@{PARLEY}", "state": "composing"}}"#
    ));
    let (typing, doc) = next_request(&mut conn, "SEND", 200).expect("isComposing over MSRP");
    assert!(typing
        .content_type()
        .is_some_and(|t| t.starts_with("application/im-iscomposing+xml")));
    assert!(
        String::from_utf8_lossy(&doc).contains("<state>active</state>"),
        "{}",
        String::from_utf8_lossy(&doc)
    );
    let composing = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<isComposing xmlns=\"urn:ietf:params:xml:ns:im-iscomposing\"><state>active</state><contenttype>text/plain</contenttype><refresh>60</refresh></isComposing>";
    let send = Head::request(
        "SEND",
        "r7573c1",
        vec![parley_uri.clone()],
        vec![romeo_uri.clone()],
    )
    .with("Message-ID", "rm000003")
    .with("Byte-Range", format!("1-{0}/{0}", composing.len()))
    .with("Content-Type", "application/im-iscomposing+xml");
    conn.write_all(&send.to_bytes(Some(composing.as_bytes()), Flag::End))
        .unwrap();
    let e = juliet.wait_for(|e| e.contains("\"state\": \"composing\""), WAIT);
    assert!(e.contains(&thread), "{e}");

    // BYE ends the session; Juliet's client learns that Romeo has gone.
    romeo.send(
        &format!(
            "BYE sip:juliet@{XMPP} SIP/2.0\nFrom: <sip:romeo@{PARLEY}>;tag=s7573\nTo: <sip:juliet@{XMPP}>\nCall-ID: session-7573\nCSeq: 2 BYE"
        ),
        "",
    );
    assert_eq!(status(&final_within(&romeo, WAIT)), 200);
    let e = juliet.wait_for(|e| e.contains("\"state\": \"gone\""), WAIT);
    assert!(e.contains(&format!("\"thread\": \"{thread}\"")), "{e}");

    // A second session whose MSRP connection drops: Parley ends the SIP
    // side with a BYE of its own, in Romeo's dialog.
    let msrp2 = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let uri2 = MsrpUri::new(
        false,
        "127.0.0.1",
        msrp2.local_addr().unwrap().port(),
        "romeo7573b",
    );
    romeo.send(
        &format!(
            "INVITE sip:juliet@{XMPP} SIP/2.0\nFrom: <sip:romeo@{PARLEY}>;tag=s7573b\nTo: <sip:juliet@{XMPP}>\nCall-ID: session-7573b\nCSeq: 1 INVITE\nContact: <sip:romeo@{}>\nContent-Type: application/sdp",
            romeo.local
        ),
        &offer.replace(&romeo_uri.to_string(), &uri2.to_string()),
    );
    assert_eq!(status(&final_within(&romeo, WAIT)), 200);
    let (conn2, _) = msrp2.accept().unwrap();
    std::thread::sleep(Duration::from_millis(200));
    drop(conn2);
    let bye = crate::xmpp::next_request(&romeo, "BYE");
    assert!(
        header(&bye, "Call-ID").is_some_and(|c| c == "session-7573b"),
        "{bye}"
    );
    assert!(
        header(&bye, "To").is_some_and(|t| t.contains("tag=s7573b")),
        "{bye}"
    );
    juliet.wait_for(
        |e| e.contains("\"state\": \"gone\"") && e.contains("msrp-session-7573b"),
        WAIT,
    );
}

/// The same with Kamailio's msrp module as Romeo's relay: Parley reaches
/// Romeo's MSRP end through the relay he authenticated to, and refuses the
/// session's requests on any other connection (506).
#[test]
fn an_msrp_session_through_kamailios_relay_reaches_xmpp() {
    use crate::msrp_relay::{relay_uri, Peer};
    use parley::proto::msrp::MsrpUri;
    let f = federation("", &[]);
    f.prosody.register("juliet", "jpw");
    add_user(&f.parley, "romeo");
    let romeo = Ua::new(f.parley.udp);
    register(&romeo, "romeo", PARLEY);
    let mut juliet = XmppClient::connect(&format!("juliet@{XMPP}/balcony"), "jpw", f.prosody.c2s);
    let (_kamailio, kam) = crate::msrp_relay::kamailio_relay();
    let port = kam.port();
    let mut msrp = Peer::connect(kam, "romeok1");
    let (kam_path, _) = msrp
        .auth(&relay_uri(kam), "romeo", "kampw")
        .expect("Kamailio grants a session");
    let offer = format!(
        "v=0\r\no=romeo 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=message {port} TCP/MSRP *\r\na=accept-types:text/plain\r\na=path:{kam_path} {}\r\n",
        msrp.uri
    );
    romeo.send(
        &format!(
            "INVITE sip:juliet@{XMPP} SIP/2.0\nFrom: <sip:romeo@{PARLEY}>;tag=k7573\nTo: <sip:juliet@{XMPP}>\nCall-ID: session-k7573\nCSeq: 1 INVITE\nContact: <sip:romeo@{}>\nContent-Type: application/sdp",
            romeo.local
        ),
        &offer,
    );
    let ok = final_within(&romeo, WAIT);
    assert_eq!(status(&ok), 200, "{ok}");
    let parley_uri = MsrpUri::parse(
        body(&ok)
            .lines()
            .find_map(|l| l.trim().strip_prefix("a=path:"))
            .expect("a=path")
            .trim(),
    )
    .unwrap();
    // Parley connected to Kamailio and bound the session; Kamailio passed
    // the binding SEND on to Romeo.
    let (bind, _, _) = msrp
        .next_request(WAIT)
        .expect("the binding SEND through Kamailio");
    assert_eq!(bind.to_path, vec![msrp.uri.clone()]);
    msrp.ok(&bind);

    // The session is bound to the connection Parley opened to Kamailio: a
    // request for it on another connection is refused (RFC 4975 §7.3).
    let mut direct = Peer::connect(f.parley.msrp.unwrap(), "romeok2");
    direct.uri = msrp.uri.clone();
    let tid = direct.send_text(vec![parley_uri.clone()], "to Juliet", &[]);
    assert_eq!(
        direct.response_to(&tid, WAIT).and_then(|h| h.code()),
        Some(506)
    );
    juliet.command(&format!(
        r#"{{"cmd": "message", "to": "romeo@{PARLEY}", "body": "and back through Kamailio", "id": "jk1"}}"#
    ));
    let (got, text, _) = msrp
        .next_request(WAIT)
        .expect("Juliet's answer through Kamailio");
    assert_eq!(text.as_deref(), Some(&b"and back through Kamailio"[..]));
    assert!(
        got.from_path.iter().any(|u| u.same_as(&parley_uri)),
        "{:?}",
        got.from_path
    );
}

#[test]
fn an_msrp_offer_over_tcp_is_refused_where_the_policy_requires_tls() {
    let f = federation(
        &format!("[[gateway.domain]]\nname = \"{XMPP}\"\nrequire_tls = true\n"),
        &[],
    );
    add_user(&f.parley, "romeo");
    let romeo = Ua::new(f.parley.udp);
    register(&romeo, "romeo", PARLEY);
    romeo.send(
        &format!(
            "INVITE sip:juliet@{XMPP} SIP/2.0\nFrom: <sip:romeo@{PARLEY}>;tag=tls1\nTo: <sip:juliet@{XMPP}>\nCall-ID: tls-7573\nCSeq: 1 INVITE\nContact: <sip:romeo@{}>\nContent-Type: application/sdp",
            romeo.local
        ),
        "v=0\r\no=romeo 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=message 7654 TCP/MSRP *\r\na=accept-types:text/plain\r\na=path:msrp://127.0.0.1:7654/s1;tcp\r\n",
    );
    let r = final_within(&romeo, WAIT);
    assert_eq!(status(&r), 488, "{r}");
    assert!(
        header(&r, "Warning").is_some_and(|w| w.starts_with("302 ") && w.contains("TLS")),
        "{r}"
    );
}

/// RFC 7573 the other way: Juliet (XMPP) writes to Bob, a SIP user who
/// prefers sessions; Parley opens an INVITE + MSRP session to Bob's
/// contact, and the chat runs in it both ways.
#[test]
fn a_chat_to_a_user_who_prefers_sessions_opens_an_msrp_session() {
    use crate::msrp_relay::Peer;
    use parley::proto::msrp::{Flag, Head, MsrpUri};
    let f = federation(
        &format!("[msrp]\nprefer_sessions = [\"bob@{PARLEY}\"]\n"),
        &[],
    );
    f.prosody.register("juliet", "jpw");
    add_user(&f.parley, "bob");
    let bob = Ua::new(f.parley.udp);
    register(&bob, "bob", PARLEY);
    // Bob's second device rings and never answers.
    let desk = Ua::new(f.parley.udp);
    desk.send(
        &format!(
            "REGISTER sip:{PARLEY} SIP/2.0\nFrom: <sip:bob@{PARLEY}>;tag=d1\nTo: <sip:bob@{PARLEY}>\nCall-ID: reg-bob-desk\nCSeq: 1 REGISTER\nContact: <sip:bob@{}>\nExpires: 600",
            desk.local
        ),
        "",
    );
    assert_eq!(status(&desk.final_response()), 200);
    let mut juliet = XmppClient::connect(&format!("juliet@{XMPP}/balcony"), "jpw", f.prosody.c2s);
    juliet.command(&format!(
        r#"{{"cmd": "message", "to": "bob@{PARLEY}", "body": "Are you there, Bob?", "id": "jb1"}}"#
    ));
    // The INVITE forks to both devices (RFC 3261 §16.6).
    let (ringing, desk_from) = loop {
        let (m, from) = desk.next_unanswered(WAIT);
        if m.starts_with("INVITE ") {
            break (m, from);
        }
    };
    let keep: String = ringing
        .split("\r\n\r\n")
        .next()
        .unwrap()
        .split("\r\n")
        .filter(|l| {
            ["Via:", "From:", "To:", "Call-ID:", "CSeq:"]
                .iter()
                .any(|h| l.starts_with(h))
        })
        .map(|l| format!("{l}\r\n"))
        .collect();
    desk.send_raw(
        &format!("SIP/2.0 180 Ringing\r\n{keep}Content-Length: 0\r\n\r\n"),
        desk_from,
    );
    // An INVITE with Parley's MSRP offer reaches Bob's contact.
    let (invite, from) = loop {
        let (m, from) = bob.next_unanswered(WAIT);
        if m.starts_with("INVITE ") {
            break (m, from);
        }
    };
    assert!(body(&invite).contains("m=message "), "{invite}");
    assert!(body(&invite).contains("a=setup:actpass"), "{invite}");
    let parley_uri = MsrpUri::parse(
        body(&invite)
            .lines()
            .find_map(|l| l.trim().strip_prefix("a=path:"))
            .expect("a=path")
            .trim(),
    )
    .unwrap();
    // Bob answers active: he connects to Parley's path.
    let mut msrp = Peer::connect(
        std::net::SocketAddr::from(([127, 0, 0, 1], parley_uri.port.unwrap())),
        "bob7573",
    );
    let answer = format!(
        "v=0\r\no=bob 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=message {} TCP/MSRP *\r\na=accept-types:text/plain\r\na=path:{}\r\na=setup:active\r\n",
        msrp.uri.port.unwrap(),
        msrp.uri
    );
    let keep: String = invite
        .split("\r\n\r\n")
        .next()
        .unwrap()
        .split("\r\n")
        .filter(|l| {
            ["Via:", "From:", "Call-ID:", "CSeq:"]
                .iter()
                .any(|h| l.starts_with(h))
        })
        .map(|l| format!("{l}\r\n"))
        .collect();
    let to = header(&invite, "To").unwrap();
    bob.send_raw(
        &format!(
            "SIP/2.0 200 OK\r\n{keep}To: {to};tag=bob1\r\nContact: <sip:bob@{}>\r\nContent-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{answer}",
            bob.local,
            answer.len()
        ),
        from,
    );
    // The binding SEND, then Juliet's first words in the session.
    let empty = Head::request(
        "SEND",
        "bind0001",
        vec![parley_uri.clone()],
        vec![msrp.uri.clone()],
    )
    .with("Message-ID", "bind0001")
    .with("Byte-Range", "1-0/0");
    msrp.send(&empty, None, Flag::End);
    let (_, text, _) = msrp.next_request(WAIT).expect("Juliet's words over MSRP");
    assert_eq!(text.as_deref(), Some(&b"Are you there, Bob?"[..]));
    let (ack, _) = bob.next_unanswered(WAIT);
    assert!(ack.starts_with("ACK "), "{ack}");
    // Bob answers in the session; Juliet gets it as chat.
    msrp.send_text(vec![parley_uri.clone()], "Here, Juliet", &[]);
    let e = juliet.wait_for(|e| e.contains("Here, Juliet"), WAIT);
    assert!(e.contains(&format!("bob@{PARLEY}")), "{e}");
    // The device that only rang was cancelled once Bob answered.
    let cancel = loop {
        let (m, _) = desk.next_unanswered(WAIT);
        if m.starts_with("CANCEL ") {
            break m;
        }
    };
    assert_eq!(
        header(&cancel, "Call-ID"),
        header(&ringing, "Call-ID"),
        "{cancel}"
    );
}

/// Parley's own session end through an outside relay (RFC 4976 as a
/// client): it authenticates to Kamailio's msrp module with AUTH, puts the
/// Use-Path first in its a=path, and the session runs through Kamailio
/// and Parley's relay (Romeo's) both ways.
#[test]
fn parleys_session_end_authenticates_to_kamailio_and_runs_through_it() {
    use crate::msrp_relay::{relay_uri, Peer};
    use parley::proto::msrp::MsrpUri;
    let (_kamailio, kam) = crate::msrp_relay::kamailio_relay();
    let port = kam.port();
    let f = federation(
        &format!(
            "[msrp]\noutbound_relay = \"msrp://127.0.0.1:{port};tcp\"\noutbound_relay_user = \"parley\"\noutbound_relay_password = \"kampw\"\n"
        ),
        &[],
    );
    f.prosody.register("juliet", "jpw");
    add_user(&f.parley, "romeo");
    let romeo = Ua::new(f.parley.udp);
    register(&romeo, "romeo", PARLEY);
    let mut juliet = XmppClient::connect(&format!("juliet@{XMPP}/balcony"), "jpw", f.prosody.c2s);
    // Romeo's MSRP goes through Parley's relay.
    let relay = f.parley.msrp.unwrap();
    let mut msrp = Peer::connect(relay, "romeor1");
    let (romeo_path, _) = msrp.auth(&relay_uri(relay), "romeo", "pw").unwrap();
    let offer = format!(
        "v=0\r\no=romeo 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=message {} TCP/MSRP *\r\na=accept-types:text/plain\r\na=path:{romeo_path} {}\r\n",
        relay.port(),
        msrp.uri
    );
    romeo.send(
        &format!(
            "INVITE sip:juliet@{XMPP} SIP/2.0\nFrom: <sip:romeo@{PARLEY}>;tag=o7573\nTo: <sip:juliet@{XMPP}>\nCall-ID: session-o7573\nCSeq: 1 INVITE\nContact: <sip:romeo@{}>\nContent-Type: application/sdp",
            romeo.local
        ),
        &offer,
    );
    let ok = final_within(&romeo, WAIT);
    assert_eq!(status(&ok), 200, "{ok}");
    let path: Vec<MsrpUri> = body(&ok)
        .lines()
        .find_map(|l| l.trim().strip_prefix("a=path:"))
        .expect("a=path")
        .split_whitespace()
        .map(|u| MsrpUri::parse(u).unwrap())
        .collect();
    assert_eq!(
        path.len(),
        2,
        "Kamailio's Use-Path, then Parley's end: {path:?}"
    );
    assert_eq!(path[0].port, Some(port), "{path:?}");
    // The binding SEND came through Kamailio and Parley's relay.
    let (bind, _, _) = msrp.next_request(WAIT).expect("the binding SEND");
    assert!(
        bind.from_path.iter().any(|u| u.port == Some(port)),
        "{:?}",
        bind.from_path
    );
    msrp.ok(&bind);
    // Romeo to Juliet, through Parley's relay and Kamailio.
    msrp.send_text(
        vec![romeo_path.clone(), path[0].clone(), path[1].clone()],
        "through Kamailio",
        &[],
    );
    let e = juliet.wait_for(|e| e.contains("through Kamailio"), WAIT);
    assert!(e.contains(&format!("romeo@{PARLEY}")), "{e}");
    // And back.
    juliet.command(&format!(
        r#"{{"cmd": "message", "to": "romeo@{PARLEY}", "body": "and back again", "id": "jo1"}}"#
    ));
    let (got, text, _) = msrp.next_request(WAIT).expect("Juliet's answer");
    assert_eq!(text.as_deref(), Some(&b"and back again"[..]));
    assert!(
        got.from_path.iter().any(|u| u.port == Some(port)),
        "{:?}",
        got.from_path
    );
    msrp.ok(&got);
}
