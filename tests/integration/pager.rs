//! Pager mode (RFC 3428): store and forward (a MESSAGE for a known user
//! with no contact is kept (202), delivered when a contact registers,
//! reported to its sender when it expires, and survives SIGKILL), the
//! size rule, and CPIM identity.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use parley_test_support::server::TestServer;
use parley_test_support::sipp::{free_port, Sipp};

use crate::presence::{header, status, Ua};
use crate::registrar_proxy::user_add;

const NO_AUTH: &str = "[auth]\nregistrar = false\nproxy = false\n";

/// Sends a MESSAGE from Alice to `to` in a dialog-less request of its own
/// (`call` is its Call-ID and From tag).
fn send_message(ua: &Ua, to: &str, call: &str, content_type: &str, body: &str) {
    ua.send(
        &format!(
            "MESSAGE sip:{to} SIP/2.0\nFrom: \"Alice\" <sip:alice@localhost>;tag={call}\nTo: <sip:{to}>\nCall-ID: {call}\nCSeq: 1 MESSAGE\nContent-Type: {content_type}"
        ),
        body,
    );
}

/// A text/plain MESSAGE from Alice and its final response.
fn message(ua: &Ua, to: &str, text: &str) -> String {
    send_message(ua, to, &format!("m-{text}"), "text/plain", text);
    ua.final_response()
}

fn register(ua: &Ua, user: &str, expires: u32) -> String {
    ua.send(
        &format!(
            "REGISTER sip:localhost SIP/2.0\nFrom: <sip:{user}@localhost>;tag=r{expires}\nTo: <sip:{user}@localhost>\nCall-ID: reg-{user}-{}\nCSeq: {} REGISTER\nContact: <sip:{user}@{}>\nExpires: {expires}",
            ua.local, expires + 1, ua.local
        ),
        "",
    );
    ua.final_response()
}

#[test]
fn a_message_for_an_offline_user_waits_for_its_contact() {
    let server = TestServer::start(&format!("{NO_AUTH}[offline]\nmax_per_user = 2\n"));
    user_add(&server, "alice@localhost", "a");
    user_add(&server, "bob@localhost", "b");
    let alice = Ua::new(server.udp);

    let r = message(&alice, "bob@localhost", "first");
    assert_eq!(status(&r), 202, "{r}");
    assert_eq!(status(&message(&alice, "bob@localhost", "second")), 202);
    // Bob's share is two messages.
    let r = message(&alice, "bob@localhost", "third");
    assert_eq!(status(&r), 480, "{r}");
    // Nobody of that name: nothing is kept.
    assert_eq!(status(&message(&alice, "nobody@localhost", "x")), 404);

    // Bob comes online: both arrive in order, from Alice, with the Date
    // they were accepted.
    let bob = Ua::new(server.udp);
    assert_eq!(status(&register(&bob, "bob", 600)), 200);
    let mut got = Vec::new();
    while got.len() < 2 {
        let m = bob.next();
        if m.starts_with("MESSAGE ") {
            assert!(
                header(&m, "From")
                    .unwrap()
                    .starts_with("\"Alice\" <sip:alice@localhost>"),
                "{m}"
            );
            assert!(
                header(&m, "Date").is_some_and(|d| d.ends_with("GMT")),
                "{m}"
            );
            // Bob registered without a Path: no Route set at all.
            assert_eq!(header(&m, "Route"), None, "{m}");
            got.push(m.split("\r\n\r\n").nth(1).unwrap().to_string());
        }
    }
    assert_eq!(got, ["first", "second"]);
    // Delivered once: registering again brings nothing more.
    assert_eq!(status(&register(&bob, "bob", 601)), 200);
    std::thread::sleep(Duration::from_millis(800));
    // And with a contact, a MESSAGE goes straight through.
    send_message(&alice, "bob@localhost", "live", "text/plain", "live");
    let m = bob.next();
    assert!(m.starts_with("MESSAGE ") && m.ends_with("live"), "{m}");
    assert_eq!(status(&alice.final_response()), 200);
}

#[test]
fn an_expired_message_is_reported_to_its_sender() {
    let server = TestServer::start(&format!("{NO_AUTH}[offline]\nexpiry_secs = 1\n"));
    user_add(&server, "alice@localhost", "a");
    user_add(&server, "carol@localhost", "c");
    let alice = Ua::new(server.udp);
    assert_eq!(status(&register(&alice, "alice", 600)), 200);
    assert_eq!(status(&message(&alice, "carol@localhost", "lost")), 202);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        assert!(Instant::now() < deadline, "no report came");
        let m = alice.next();
        if m.starts_with("MESSAGE ") {
            assert!(
                header(&m, "From")
                    .unwrap()
                    .starts_with("<sip:parley@localhost>"),
                "{m}"
            );
            assert!(m.contains("Your message to sip:carol@localhost"), "{m}");
            assert!(m.contains("was not delivered"), "{m}");
            break;
        }
    }
}

/// Parley as its own process, so it can be killed.
struct Process {
    child: Child,
}

impl Process {
    fn start(dir: &std::path::Path, port: u16) -> Process {
        let config = dir.join("parley.toml");
        std::fs::write(
            &config,
            format!(
                "state_dir = {:?}\n[[sip.listen]]\ntransport = \"udp\"\naddress = \"127.0.0.1:{port}\"\n{NO_AUTH}[xmpp]\nenabled = false\n[admin]\nenabled = false\n[log]\nlevel = \"warn\"\n",
                dir.display().to_string()
            ),
        )
        .unwrap();
        let process = Process {
            child: Command::new(env!("CARGO_BIN_EXE_parley"))
                .args(["run", "--config"])
                .arg(&config)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap(),
        };
        // Ready when it answers OPTIONS.
        let probe = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        probe
            .set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        let local = probe.local_addr().unwrap();
        for i in 0..100 {
            let options = format!(
                "OPTIONS sip:127.0.0.1:{port} SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch=z9hG4bKprobe{i}\r\nFrom: <sip:probe@localhost>;tag=p\r\nTo: <sip:127.0.0.1:{port}>\r\nCall-ID: probe{i}\r\nCSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
            );
            probe
                .send_to(options.as_bytes(), ("127.0.0.1", port))
                .unwrap();
            let mut buf = [0u8; 4096];
            if probe.recv(&mut buf).is_ok() {
                return process;
            }
        }
        panic!("parley did not start");
    }

    fn kill(mut self) {
        // SIGKILL: no shutdown, no flush.
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn a_kept_message_survives_sigkill() {
    let dir = std::env::temp_dir().join(format!("parley-sigkill-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let port = free_port();
    let server: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let cli = |args: &[&str]| {
        crate::registrar_proxy::run_cli(args, &dir.join("parley.toml"));
    };
    let first = Process::start(&dir, port);
    cli(&["user", "add", "alice@localhost", "--password", "a"]);
    cli(&["user", "add", "bob@localhost", "--password", "b"]);
    Sipp::start(
        "uac_message_stored.xml",
        "u1",
        1,
        Some(server),
        &[
            "-s",
            "alice",
            "-key",
            "domain",
            "localhost",
            "-key",
            "to",
            "bob@localhost",
        ],
    )
    .wait();
    first.kill();

    let _second = Process::start(&dir, port);
    let bob_port = free_port();
    let bob = Sipp::start_on("uas_message.xml", "u1", 1, None, bob_port, &[]);
    Sipp::start(
        "register_contact.xml",
        "u1",
        1,
        Some(server),
        &[
            "-s",
            "bob",
            "-key",
            "uas_port",
            &bob_port.to_string(),
            "-key",
            "domain",
            "localhost",
        ],
    )
    .wait();
    let trace = bob.wait();
    assert!(trace.contains("Kept while you were away"), "{trace}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_large_message_never_goes_over_udp() {
    let server = TestServer::start(NO_AUTH);
    user_add(&server, "alice@localhost", "a");
    user_add(&server, "bob@localhost", "b");
    let alice = Ua::new(server.udp);
    // Bob listens on UDP only: no TCP behind his contact.
    let bob = Ua::new(server.udp);
    assert_eq!(status(&register(&bob, "bob", 600)), 200);
    let big = "x".repeat(1400);
    send_message(&alice, "bob@localhost", "big", "text/plain", &big);
    let r = alice.final_response();
    assert_eq!(status(&r), 513, "{r}");
    // A small one still reaches him over UDP.
    send_message(&alice, "bob@localhost", "small", "text/plain", "small");
    assert!(bob.next().ends_with("small"));
    assert_eq!(status(&alice.final_response()), 200);
}

#[test]
fn cpim_must_name_the_sender_and_bodies_pass_untouched() {
    let server = TestServer::start(NO_AUTH);
    user_add(&server, "alice@localhost", "a");
    user_add(&server, "bob@localhost", "b");
    let alice = Ua::new(server.udp);
    let bob = Ua::new(server.udp);
    assert_eq!(status(&register(&bob, "bob", 600)), 200);
    let send = |call: &str, content_type: &str, body: &str| {
        send_message(&alice, "bob@localhost", call, content_type, body);
    };
    let cpim = |from: &str| {
        format!(
            "From: Alice <{from}>\r\nTo: <im:bob@localhost>\r\nDateTime: 2026-11-26T10:00:00Z\r\nNS: imdn <urn:ietf:params:imdn>\r\nimdn.Message-ID: 34jk324j\r\nimdn.Disposition-Notification: positive-delivery, display\r\n\r\nContent-Type: text/plain\r\n\r\nHello in CPIM"
        )
    };
    // CPIM with IMDN headers (RFC 5438): relayed byte for byte.
    let good = cpim("im:alice@localhost");
    send("cpim-ok", "message/cpim", &good);
    let m = bob.next();
    assert!(m.starts_with("MESSAGE "), "{m}");
    assert_eq!(m.split_once("\r\n\r\n").unwrap().1, good);
    assert_eq!(status(&alice.final_response()), 200);
    // isComposing (RFC 3994): untouched too.
    let composing = r#"<?xml version="1.0" encoding="UTF-8"?>
<isComposing xmlns="urn:ietf:params:xml:ns:im-iscomposing"><state>active</state><contenttype>text/plain</contenttype><refresh>60</refresh></isComposing>"#;
    send("composing", "application/im-iscomposing+xml", composing);
    let m = bob.next();
    assert_eq!(m.split_once("\r\n\r\n").unwrap().1, composing);
    assert_eq!(status(&alice.final_response()), 200);

    // Someone else's identity inside CPIM: 403, and nothing reaches Bob.
    send("cpim-forged", "message/cpim", &cpim("im:mallory@localhost"));
    let r = alice.final_response();
    assert_eq!(status(&r), 403, "{r}");
    send("cpim-bad", "message/cpim", "not cpim at all");
    assert_eq!(status(&alice.final_response()), 400);
}

/// A CPIM body from Alice to `to` asking for IMDN `wanted`.
fn cpim_asking(to: &str, id: &str, wanted: &str) -> String {
    format!(
        "From: Alice <im:alice@localhost>\r\nTo: <im:{to}>\r\nDateTime: 2026-11-26T10:00:00Z\r\nNS: imdn <urn:ietf:params:imdn>\r\nimdn.Message-ID: {id}\r\nimdn.Disposition-Notification: {wanted}\r\n\r\nContent-Type: text/plain\r\n\r\nPlease tell me"
    )
}

/// Waits for a MESSAGE at `ua` carrying an IMDN document.
fn imdn_at(ua: &Ua) -> String {
    loop {
        let m = ua.next();
        if m.starts_with("MESSAGE ") && m.contains("message/imdn+xml") {
            return m;
        }
    }
}

#[test]
fn kept_messages_get_the_imdn_notifications_they_ask_for() {
    let server = TestServer::start(&format!("{NO_AUTH}[offline]\nexpiry_secs = 2\n"));
    for u in ["alice", "bob", "carol"] {
        user_add(&server, &format!("{u}@localhost"), "x");
    }
    let alice = Ua::new(server.udp);
    assert_eq!(status(&register(&alice, "alice", 600)), 200);
    let send = |to: &str, call: &str, body: &str| {
        send_message(&alice, to, call, "message/cpim", body);
        alice.final_response()
    };
    // Kept for Bob, then delivered when he registers: "delivered".
    assert_eq!(
        status(&send(
            "bob@localhost",
            "m1",
            &cpim_asking("bob@localhost", "id-bob", "positive-delivery")
        )),
        202
    );
    let bob = Ua::new(server.udp);
    assert_eq!(status(&register(&bob, "bob", 600)), 200);
    let m = bob.next();
    assert!(m.contains("Please tell me"), "{m}");
    let n = imdn_at(&alice);
    assert!(n.contains("<message-id>id-bob</message-id>"), "{n}");
    assert!(n.contains("<delivered/>"), "{n}");
    assert!(
        header(&n, "From")
            .unwrap()
            .starts_with("<sip:bob@localhost>"),
        "{n}"
    );

    // Kept for Carol, who never comes: "failed" when it expires.
    assert_eq!(
        status(&send(
            "carol@localhost",
            "m2",
            &cpim_asking("carol@localhost", "id-carol", "negative-delivery")
        )),
        202
    );
    let n = imdn_at(&alice);
    assert!(n.contains("<message-id>id-carol</message-id>"), "{n}");
    assert!(n.contains("<failed/>"), "{n}");
}

#[test]
fn kept_messages_are_bounded_per_sender_domain() {
    let server = TestServer::start(&format!(
        "{NO_AUTH}[offline]\nmax_per_user = 5\nmax_per_sender_domain = 2\n"
    ));
    for user in ["alice", "bob", "carol", "dave"] {
        user_add(&server, &format!("{user}@localhost"), "x");
    }
    let ua = Ua::new(server.udp);
    let from_outside = |to: &str, call: &str| {
        ua.send(
            &format!(
                "MESSAGE sip:{to} SIP/2.0\nFrom: <sip:eve@outside.test>;tag={call}\nTo: <sip:{to}>\nCall-ID: {call}\nCSeq: 1 MESSAGE\nContent-Type: text/plain"
            ),
            "hello",
        );
        ua.final_response()
    };
    assert_eq!(status(&from_outside("bob@localhost", "d1")), 202);
    assert_eq!(status(&from_outside("carol@localhost", "d2")), 202);
    // A third for yet another user: outside.test's share is full.
    let r = from_outside("dave@localhost", "d3");
    assert_eq!(status(&r), 480, "{r}");
    assert!(r.contains("from this domain"), "{r}");
    // Senders of Parley's own domain have their own share.
    assert_eq!(status(&message(&ua, "dave@localhost", "local")), 202);
}
