//! The presence agent with real user agents: SIPp publishes (RFC 3903)
//! and subscribes (RFC 6665, RFC 3856) through Parley; raw requests check
//! the refusals.

use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use parley_test_support::server::TestServer;
use parley_test_support::sipp::Sipp;

use crate::registrar_proxy::{cli_on, user_add};

const NO_AUTH: &str = "[auth]\nregistrar = false\nproxy = false\n";

#[test]
fn a_sipp_watcher_sees_a_sipp_publication_come_and_go() {
    let server = TestServer::start(NO_AUTH);
    user_add(&server, "alice@localhost", "a");
    user_add(&server, "bob@localhost", "b");
    let watcher = Sipp::start(
        "uac_subscribe.xml",
        "u1",
        1,
        Some(server.udp),
        &[
            "-s",
            "bob",
            "-key",
            "domain",
            "localhost",
            "-key",
            "to",
            "alice@localhost",
        ],
    );
    // The watcher's first NOTIFY (closed) comes before anything is published.
    std::thread::sleep(Duration::from_millis(1500));
    Sipp::start(
        "uac_publish.xml",
        "u1",
        1,
        Some(server.udp),
        &[
            "-s",
            "alice",
            "-key",
            "domain",
            "localhost",
            "-key",
            "basic",
            "open",
            "-key",
            "note",
            "Reading RFC 3856",
        ],
    )
    .wait();
    let trace = watcher.wait();
    assert!(trace.contains("Reading RFC 3856"), "{trace}");
    assert!(
        trace.contains("Subscription-State: terminated;reason=timeout"),
        "{trace}"
    );
}

/// A bare user agent on UDP: sends requests, returns what comes back,
/// answers every request it gets with 200.
pub(crate) struct Ua {
    sock: UdpSocket,
    /// Where it listens.
    pub(crate) local: SocketAddr,
    server: SocketAddr,
    n: std::cell::Cell<u32>,
}

impl Ua {
    pub(crate) fn new(server: SocketAddr) -> Ua {
        let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
        sock.set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        Ua {
            local: sock.local_addr().unwrap(),
            sock,
            server,
            n: std::cell::Cell::new(0),
        }
    }

    /// Sends a request; `head` holds the request line and headers (no
    /// Via, no Content-Length).
    pub(crate) fn send(&self, head: &str, body: &str) {
        self.n.set(self.n.get() + 1);
        let text = format!(
            "{}\r\nVia: SIP/2.0/UDP {};branch=z9hG4bKpa{}x{};rport\r\nMax-Forwards: 70\r\nContent-Length: {}\r\n\r\n{body}",
            head.trim().replace('\n', "\r\n"),
            self.local,
            self.local.port(),
            self.n.get(),
            body.len()
        );
        self.sock.send_to(text.as_bytes(), self.server).unwrap();
    }

    /// The next message within five seconds; a request is answered 200.
    pub(crate) fn next(&self) -> String {
        self.next_within(Duration::from_secs(5))
    }

    /// The next message within `wait`; a request is answered 200.
    pub(crate) fn next_within(&self, wait: Duration) -> String {
        self.try_next_within(wait)
            .unwrap_or_else(|| panic!("nothing arrived in {wait:?}"))
    }

    /// The next message within `wait`, if one comes; a request is
    /// answered 200.
    pub(crate) fn try_next_within(&self, wait: Duration) -> Option<String> {
        let deadline = Instant::now() + wait;
        let mut buf = vec![0u8; 65_536];
        while Instant::now() < deadline {
            let Ok((n, from)) = self.sock.recv_from(&mut buf) else {
                continue;
            };
            // Everything Parley sends, Parley's own strictest reading
            // (`parley sip parse`) accepts: bridged messages, kept ones,
            // reports, IMDN notifications, NOTIFYs and every response.
            let limits = parley::proto::sip::Limits::default();
            if let Err(e) = parley::cli::sip_parse(&buf[..n], false, &limits) {
                panic!(
                    "Parley sent what its own parser refuses ({e}):\n{}",
                    String::from_utf8_lossy(&buf[..n])
                );
            }
            let text = String::from_utf8_lossy(&buf[..n]).into_owned();
            if !text.starts_with("SIP/2.0 ") && !text.starts_with("ACK ") {
                let head = text.split("\r\n\r\n").next().unwrap_or_default();
                let keep: String = head
                    .split("\r\n")
                    .filter(|l| {
                        ["Via:", "From:", "To:", "Call-ID:", "CSeq:"]
                            .iter()
                            .any(|h| l.starts_with(h))
                    })
                    .map(|l| format!("{l}\r\n"))
                    .collect();
                let ok = format!("SIP/2.0 200 OK\r\n{keep}Content-Length: 0\r\n\r\n");
                self.sock.send_to(ok.as_bytes(), from).unwrap();
            }
            return Some(text);
        }
        None
    }

    /// The next message within `wait` and where it came from, answered by
    /// nobody (the caller answers with [`Ua::send_raw`]).
    pub(crate) fn next_unanswered(&self, wait: Duration) -> (String, SocketAddr) {
        let deadline = Instant::now() + wait;
        let mut buf = vec![0u8; 65_536];
        while Instant::now() < deadline {
            let Ok((n, from)) = self.sock.recv_from(&mut buf) else {
                continue;
            };
            let limits = parley::proto::sip::Limits::default();
            if let Err(e) = parley::cli::sip_parse(&buf[..n], false, &limits) {
                panic!(
                    "Parley sent what its own parser refuses ({e}):\n{}",
                    String::from_utf8_lossy(&buf[..n])
                );
            }
            return (String::from_utf8_lossy(&buf[..n]).into_owned(), from);
        }
        panic!("nothing arrived in {wait:?}");
    }

    /// Sends `text` as it is to `to`.
    pub(crate) fn send_raw(&self, text: &str, to: SocketAddr) {
        self.sock.send_to(text.as_bytes(), to).unwrap();
    }

    /// The final response to the last request.
    pub(crate) fn final_response(&self) -> String {
        loop {
            let m = self.next();
            if m.starts_with("SIP/2.0 ") && !m.starts_with("SIP/2.0 1") {
                return m;
            }
        }
    }
}

/// The Authorization (for a 401) or Proxy-Authorization (for a 407) value
/// that answers `response`'s challenges for `user` with `password`.
pub(crate) fn digest_answer(
    response: &str,
    method: &str,
    uri: &str,
    user: &str,
    password: &str,
) -> String {
    let name = if status(response) == 407 {
        "Proxy-Authenticate:"
    } else {
        "WWW-Authenticate:"
    };
    let challenges: Vec<&str> = response
        .split("\r\n")
        .filter_map(|l| l.strip_prefix(name))
        .map(str::trim)
        .collect();
    parley::proto::digest::answer(challenges, method, uri, user, password, "0a4f113b")
        .expect("a digest challenge")
}

pub(crate) fn header<'a>(msg: &'a str, name: &str) -> Option<&'a str> {
    msg.split("\r\n")
        .find_map(|l| l.strip_prefix(name).and_then(|r| r.strip_prefix(':')))
        .map(str::trim)
}

pub(crate) fn status(msg: &str) -> u16 {
    msg[8..11].parse().unwrap()
}

fn pidf(entity: &str, basic: &str) -> String {
    format!(
        r#"<presence xmlns="urn:ietf:params:xml:ns:pidf" entity="{entity}"><tuple id="t"><status><basic>{basic}</basic></status></tuple></presence>"#
    )
}

#[test]
fn publish_follows_rfc3903_and_refuses_what_it_must() {
    let server = TestServer::start(NO_AUTH);
    user_add(&server, "alice@localhost", "a");
    let ua = Ua::new(server.udp);
    let publish = |extra: &str, body: &str| {
        ua.send(
            &format!(
                "PUBLISH sip:alice@localhost SIP/2.0\nFrom: <sip:alice@localhost>;tag=1\nTo: <sip:alice@localhost>\nCall-ID: pub-{}\nCSeq: 1 PUBLISH\n{extra}",
                ua.n.get()
            ),
            body,
        );
        ua.final_response()
    };
    let doc = pidf("pres:alice@localhost", "open");
    let pidf_type = "Content-Type: application/pidf+xml\n";

    let r = publish(&format!("Event: presence\nExpires: 120\n{pidf_type}"), &doc);
    assert_eq!(status(&r), 200, "{r}");
    assert_eq!(header(&r, "Expires"), Some("120"));
    let etag = header(&r, "SIP-ETag").expect("an entity tag").to_string();

    // Refresh: a new tag, the old one is gone.
    let r = publish(
        &format!("Event: presence\nExpires: 120\nSIP-If-Match: {etag}\n"),
        "",
    );
    assert_eq!(status(&r), 200, "{r}");
    let etag2 = header(&r, "SIP-ETag").unwrap().to_string();
    assert_ne!(etag, etag2);
    let r = publish(&format!("Event: presence\nSIP-If-Match: {etag}\n"), "");
    assert_eq!(status(&r), 412, "{r}");

    // Refusals.
    let r = publish(&format!("Event: dialog\n{pidf_type}"), &doc);
    assert_eq!(
        (status(&r), header(&r, "Allow-Events")),
        (489, Some("presence, presence.winfo")),
        "{r}"
    );
    let r = publish(&format!("Event: presence\nExpires: 5\n{pidf_type}"), &doc);
    assert_eq!(
        (status(&r), header(&r, "Min-Expires")),
        (423, Some("60")),
        "{r}"
    );
    let r = publish("Event: presence\nContent-Type: text/plain\n", "open");
    assert_eq!(status(&r), 415, "{r}");
    let r = publish("Event: presence\n", "");
    assert_eq!(status(&r), 400, "initial PUBLISH without a body: {r}");
    let hostile = std::fs::read_to_string(
        parley_test_support::data_dir().join("pidf/invalid/billion-laughs.xml"),
    )
    .unwrap();
    let r = publish(&format!("Event: presence\n{pidf_type}"), &hostile);
    assert_eq!(status(&r), 400, "{r}");
    assert!(r.contains("DTD refused"), "{r}");
    // Someone else's presence.
    ua.send(
        &format!("PUBLISH sip:alice@localhost SIP/2.0\nFrom: <sip:mallory@localhost>;tag=1\nTo: <sip:alice@localhost>\nCall-ID: pub-x\nCSeq: 1 PUBLISH\nEvent: presence\n{pidf_type}"),
        &doc,
    );
    assert_eq!(status(&ua.final_response()), 403);

    // Removal.
    let r = publish(
        &format!("Event: presence\nExpires: 0\nSIP-If-Match: {etag2}\n"),
        "",
    );
    assert_eq!(status(&r), 200, "{r}");
    let r = publish(&format!("Event: presence\nSIP-If-Match: {etag2}\n"), "");
    assert_eq!(status(&r), 412, "{r}");
}

#[test]
fn subscriptions_fetch_refresh_and_end_per_rfc6665() {
    let server = TestServer::start(NO_AUTH);
    user_add(&server, "alice@localhost", "a");
    user_add(&server, "bob@localhost", "b");
    let ua = Ua::new(server.udp);
    let contact = format!("Contact: <sip:bob@{}>", ua.local);
    let subscribe = |call: &str, to_tag: &str, extra: &str| {
        ua.send(
            &format!(
                "SUBSCRIBE sip:alice@localhost SIP/2.0\nFrom: <sip:bob@localhost>;tag=b1\nTo: <sip:alice@localhost>{to_tag}\nCall-ID: {call}\nCSeq: {} SUBSCRIBE\n{contact}\n{extra}",
                ua.n.get() + 1
            ),
            "",
        );
    };

    // A fetch: 200, then one NOTIFY that ends the subscription at once.
    subscribe("fetch", "", "Event: presence\nExpires: 0");
    let r = ua.final_response();
    assert_eq!(status(&r), 200, "{r}");
    assert!(
        header(&r, "Contact").is_some(),
        "the 200 carries a Contact: {r}"
    );
    let n = ua.next();
    assert!(n.starts_with("NOTIFY "), "{n}");
    assert_eq!(
        header(&n, "Subscription-State"),
        Some("terminated;reason=timeout")
    );
    assert_eq!(header(&n, "Content-Type"), Some("application/pidf+xml"));
    assert!(
        n.contains("<basic>closed</basic>"),
        "nothing published: closed: {n}"
    );

    // A subscription, then a publication: the watcher hears of it.
    subscribe("sub", "", "Event: presence;id=7\nExpires: 300");
    let r = ua.final_response();
    assert_eq!(
        (status(&r), header(&r, "Expires")),
        (200, Some("300")),
        "{r}"
    );
    let to = header(&r, "To").unwrap().to_string();
    let tag = to.split(";tag=").nth(1).unwrap().to_string();
    let n = ua.next();
    assert!(
        header(&n, "Subscription-State")
            .unwrap()
            .starts_with("active;expires="),
        "{n}"
    );
    assert_eq!(header(&n, "Event"), Some("presence;id=7"));
    let publisher = Ua::new(server.udp);
    publisher.send(
        "PUBLISH sip:alice@localhost SIP/2.0\nFrom: <sip:alice@localhost>;tag=1\nTo: <sip:alice@localhost>\nCall-ID: p1\nCSeq: 1 PUBLISH\nEvent: presence\nContent-Type: application/pidf+xml",
        &pidf("pres:alice@localhost", "open"),
    );
    assert_eq!(status(&publisher.final_response()), 200);
    let n = ua.next();
    assert!(n.contains("<basic>open</basic>"), "{n}");
    let cseq = |m: &str| {
        header(m, "CSeq")
            .unwrap()
            .split(' ')
            .next()
            .unwrap()
            .parse::<u32>()
            .unwrap()
    };
    let first = cseq(&n);

    // Refresh inside the dialog: 200 and a NOTIFY with a higher CSeq.
    subscribe(
        "sub",
        &format!(";tag={tag}"),
        "Event: presence;id=7\nExpires: 600",
    );
    let r = ua.final_response();
    assert_eq!(
        (status(&r), header(&r, "Expires")),
        (200, Some("600")),
        "{r}"
    );
    let n = ua.next();
    assert!(cseq(&n) > first);

    // An unknown dialog: 481. A short one: 423. Another event package
    // is for alice's own agents, as a proxy sends it: she has none (480).
    subscribe("sub", ";tag=nonesuch", "Event: presence\nExpires: 600");
    assert_eq!(status(&ua.final_response()), 481);
    subscribe("other", "", "Event: dialog\nExpires: 600");
    assert_eq!(status(&ua.final_response()), 480);
    subscribe("other", "", "Event: presence\nExpires: 10");
    assert_eq!(status(&ua.final_response()), 423);
    ua.send(
        &format!("SUBSCRIBE sip:nobody@localhost SIP/2.0\nFrom: <sip:bob@localhost>;tag=b1\nTo: <sip:nobody@localhost>\nCall-ID: nobody\nCSeq: 1 SUBSCRIBE\n{contact}\nEvent: presence"),
        "",
    );
    assert_eq!(status(&ua.final_response()), 404);

    // Unsubscribe: 200, then the terminating NOTIFY.
    subscribe(
        "sub",
        &format!(";tag={tag}"),
        "Event: presence;id=7\nExpires: 0",
    );
    assert_eq!(status(&ua.final_response()), 200);
    let n = ua.next();
    assert_eq!(
        header(&n, "Subscription-State"),
        Some("terminated;reason=timeout")
    );
}

/// Runs `parley presence VERB PRESENTITY WATCHER` on the server's database.
fn presence_rule(server: &TestServer, verb: &str, presentity: &str, watcher: &str) {
    cli_on(server, &["presence", verb, presentity, watcher]);
}

/// The next NOTIFY at `ua` that `want` accepts (retransmissions and
/// others are answered and passed over).
fn notify_where(ua: &Ua, want: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        assert!(Instant::now() < deadline, "no such NOTIFY came");
        let m = ua.next();
        if m.starts_with("NOTIFY ") && want(&m) {
            return m;
        }
    }
}

fn subscribe_as(ua: &Ua, watcher: &str, presentity: &str, package: &str, call: &str) -> String {
    ua.send(
        &format!(
            "SUBSCRIBE sip:{presentity} SIP/2.0\nFrom: <sip:{watcher}>;tag=w-{call}\nTo: <sip:{presentity}>\nCall-ID: {call}\nCSeq: 1 SUBSCRIBE\nContact: <sip:w@{}>\nEvent: {package}\nExpires: 600",
            ua.local
        ),
        "",
    );
    ua.final_response()
}

#[test]
fn watchers_are_authorized_and_the_presentity_sees_them() {
    let server = TestServer::start(NO_AUTH);
    user_add(&server, "alice@localhost", "a");
    user_add(&server, "carol@localhost", "c");
    let alice = Ua::new(server.udp);
    let bob = Ua::new(server.udp);
    let carol = Ua::new(server.udp);

    // Alice watches her watchers (RFC 3857): nobody yet.
    let r = subscribe_as(
        &alice,
        "alice@localhost",
        "alice@localhost",
        "presence.winfo",
        "winfo",
    );
    assert_eq!(status(&r), 200, "{r}");
    let n = notify_where(&alice, |_| true);
    assert_eq!(header(&n, "Event"), Some("presence.winfo"));
    assert_eq!(
        header(&n, "Content-Type"),
        Some("application/watcherinfo+xml")
    );
    assert!(
        n.contains("<watcher-list resource=\"sip:alice@localhost\" package=\"presence\"/>"),
        "{n}"
    );
    // Nobody else watches Alice's watchers.
    let r = subscribe_as(
        &bob,
        "bob@example.com",
        "alice@localhost",
        "presence.winfo",
        "spy",
    );
    assert_eq!(status(&r), 403, "{r}");

    // Bob, of another domain, waits: pending, and a neutral document.
    let r = subscribe_as(
        &bob,
        "bob@example.com",
        "alice@localhost",
        "presence",
        "bob",
    );
    assert_eq!(status(&r), 200, "{r}");
    let n = notify_where(&bob, |_| true);
    assert!(
        header(&n, "Subscription-State")
            .unwrap()
            .starts_with("pending;expires="),
        "{n}"
    );
    assert!(n.contains("<basic>closed</basic>"), "{n}");
    let n = notify_where(&alice, |m| m.contains("status=\"pending\""));
    assert!(n.contains(">sip:bob@example.com</watcher>"), "{n}");

    // Alice is online; Bob still sees nothing of it.
    let publisher = Ua::new(server.udp);
    publisher.send(
        "PUBLISH sip:alice@localhost SIP/2.0\nFrom: <sip:alice@localhost>;tag=1\nTo: <sip:alice@localhost>\nCall-ID: pub\nCSeq: 1 PUBLISH\nEvent: presence\nContent-Type: application/pidf+xml",
        &pidf("pres:alice@localhost", "open"),
    );
    assert_eq!(status(&publisher.final_response()), 200);

    // Carol is blocked politely: accepted, and only ever sees closed.
    presence_rule(&server, "block", "alice@localhost", "carol@localhost");
    std::thread::sleep(Duration::from_millis(1500));
    let r = subscribe_as(
        &carol,
        "carol@localhost",
        "alice@localhost",
        "presence",
        "carol",
    );
    assert_eq!(status(&r), 200, "{r}");
    let n = notify_where(&carol, |_| true);
    assert!(
        header(&n, "Subscription-State")
            .unwrap()
            .starts_with("active;"),
        "{n}"
    );
    assert!(n.contains("<basic>closed</basic>"), "{n}");

    // Alice approves Bob: he sees her state at once; her list says active.
    presence_rule(&server, "allow", "alice@localhost", "bob@example.com");
    let n = notify_where(&bob, |m| m.contains("<basic>open</basic>"));
    assert!(
        header(&n, "Subscription-State")
            .unwrap()
            .starts_with("active;"),
        "{n}"
    );
    notify_where(&alice, |m| {
        m.contains("status=\"active\">sip:bob@example.com</watcher>")
    });

    // Alice denies him: his subscription ends, and he cannot come back.
    presence_rule(&server, "deny", "alice@localhost", "bob@example.com");
    let n = notify_where(&bob, |m| m.contains("terminated"));
    assert_eq!(
        header(&n, "Subscription-State"),
        Some("terminated;reason=rejected")
    );
    let r = subscribe_as(
        &bob,
        "bob@example.com",
        "alice@localhost",
        "presence",
        "bob2",
    );
    assert_eq!(status(&r), 403, "{r}");
}

#[test]
fn subscription_state_is_bounded_by_the_caps() {
    let server = TestServer::start(&format!(
        "{NO_AUTH}[presence]\nmax_per_presentity = 3\nmax_per_watcher_domain = 2\nmax_pending_outside = 4\npending_expires = 120\n"
    ));
    user_add(&server, "alice@localhost", "a");
    user_add(&server, "bob@localhost", "b");
    let ua = Ua::new(server.udp);
    let expires = |r: &str| {
        header(r, "Expires")
            .and_then(|v| v.trim().parse::<u32>().ok())
            .unwrap_or(0)
    };
    // Watchers of another domain wait for a rule (default policy
    // `local`); they must come back within pending_expires, not 600 s.
    let first = subscribe_as(
        &ua,
        "w1@outside.test",
        "alice@localhost",
        "presence",
        "cap-1",
    );
    assert_eq!(status(&first), 200, "{first}");
    assert!(expires(&first) <= 120, "{first}");
    let r = subscribe_as(
        &ua,
        "w2@outside.test",
        "alice@localhost",
        "presence",
        "cap-2",
    );
    assert_eq!(status(&r), 200, "{r}");
    // A third from the same domain passes max_per_watcher_domain.
    let r = subscribe_as(
        &ua,
        "w3@outside.test",
        "alice@localhost",
        "presence",
        "cap-3",
    );
    assert_eq!(status(&r), 503, "{r}");
    assert!(r.contains("this watcher domain"), "{r}");
    assert!(header(&r, "Retry-After").is_some(), "{r}");
    // Another domain may, until Alice has max_per_presentity watchers.
    let r = subscribe_as(
        &ua,
        "w1@elsewhere.test",
        "alice@localhost",
        "presence",
        "cap-4",
    );
    assert_eq!(status(&r), 200, "{r}");
    let r = subscribe_as(
        &ua,
        "w2@elsewhere.test",
        "alice@localhost",
        "presence",
        "cap-5",
    );
    assert_eq!(status(&r), 503, "{r}");
    assert!(r.contains("subscriptions to this user"), "{r}");
    // The pending ones of other domains are bounded in all: Bob takes the
    // fourth, and a fifth is refused whoever it watches.
    let r = subscribe_as(
        &ua,
        "w2@elsewhere.test",
        "bob@localhost",
        "presence",
        "cap-6",
    );
    assert_eq!(status(&r), 200, "{r}");
    let r = subscribe_as(&ua, "w1@third.test", "bob@localhost", "presence", "cap-7");
    assert_eq!(status(&r), 503, "{r}");
    assert!(
        r.contains("pending subscriptions from other domains"),
        "{r}"
    );
    // An ended subscription frees its place.
    let tag = header(&first, "To")
        .and_then(|t| t.split("tag=").nth(1))
        .map(|t| t.split(';').next().unwrap_or(t).trim().to_string())
        .expect("a To tag");
    ua.send(
        &format!(
            "SUBSCRIBE sip:alice@localhost SIP/2.0\nFrom: <sip:w1@outside.test>;tag=w-cap-1\nTo: <sip:alice@localhost>;tag={tag}\nCall-ID: cap-1\nCSeq: 2 SUBSCRIBE\nContact: <sip:w@{}>\nEvent: presence\nExpires: 0",
            ua.local
        ),
        "",
    );
    assert_eq!(status(&ua.final_response()), 200);
    let r = subscribe_as(
        &ua,
        "w3@outside.test",
        "alice@localhost",
        "presence",
        "cap-8",
    );
    assert_eq!(status(&r), 200, "{r}");
}
