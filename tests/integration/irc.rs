//! The IRC adapter against ngIRCd: a SIP user and an IRC user exchange
//! private messages both ways, the SIP user appearing under their own nick
//! (one connection per user); /me and CTCP ACTION, long text cut into
//! lines, formatting removed, NOTICE kept apart, a nick collision.

use std::time::Duration;

use parley_test_support::ngircd::{IrcClient, Ngircd};
use parley_test_support::server::TestServer;

use crate::presence::{header, status, Ua};
use crate::registrar_proxy::user_add;

const IRC: &str = "irc.example.test";
const WAIT: Duration = Duration::from_secs(20);

fn parley(irc_port: u16) -> TestServer {
    parley_named(irc_port, "test")
}

/// Parley with the network under `name` (the metrics of one process are
/// shared by the tests running in it: a name of its own keeps a test's
/// figures its own).
fn parley_named(irc_port: u16, name: &str) -> TestServer {
    TestServer::start_with_admin(&format!(
        "[auth]\nregistrar = false\nproxy = false\n\
         [[irc.network]]\nname = \"{name}\"\ndomain = \"{IRC}\"\nserver = \"127.0.0.1:{irc_port}\"\n"
    ))
}

/// `user@localhost`, added to Parley and registered from a UA of its own.
fn sip_user(server: &TestServer, user: &str) -> Ua {
    user_add(server, &format!("{user}@localhost"), "pw");
    let ua = Ua::new(server.udp);
    register(&ua, user);
    ua
}

fn register(ua: &Ua, user: &str) {
    ua.send(
        &format!(
            "REGISTER sip:localhost SIP/2.0\nFrom: <sip:{user}@localhost>;tag=r\nTo: <sip:{user}@localhost>\nCall-ID: reg-{user}\nCSeq: 1 REGISTER\nContact: <sip:{user}@{}>\nExpires: 600",
            ua.local
        ),
        "",
    );
    assert_eq!(status(&ua.final_response()), 200);
}

thread_local! {
    /// MESSAGEs that arrived while a UA waited for a final response, by
    /// the UA's address: the room's answer can overtake the 200.
    static EARLY: std::cell::RefCell<std::collections::HashMap<std::net::SocketAddr, Vec<String>>> =
        std::cell::RefCell::new(std::collections::HashMap::new());
}

fn message(ua: &Ua, from: &str, to: &str, call: &str, text: &str) -> String {
    ua.send(
        &format!(
            "MESSAGE sip:{to} SIP/2.0\nFrom: <sip:{from}@localhost>;tag={call}\nTo: <sip:{to}>\nCall-ID: {call}\nCSeq: 1 MESSAGE\nContent-Type: text/plain"
        ),
        text,
    );
    loop {
        let m = ua.next_within(WAIT);
        if m.starts_with("SIP/2.0 ") {
            if !m.starts_with("SIP/2.0 1") {
                return m;
            }
        } else if m.starts_with("MESSAGE ") {
            EARLY.with(|e| e.borrow_mut().entry(ua.local).or_default().push(m));
        }
    }
}

/// The next MESSAGE the UA gets (answered 200), kept ones first.
fn next_message(ua: &Ua) -> String {
    let early = EARLY.with(|e| {
        let mut e = e.borrow_mut();
        let list = e.entry(ua.local).or_default();
        (!list.is_empty()).then(|| list.remove(0))
    });
    if let Some(m) = early {
        return m;
    }
    loop {
        let m = ua.next_within(WAIT);
        if m.starts_with("MESSAGE ") {
            return m;
        }
    }
}

fn body(m: &str) -> &str {
    m.split_once("\r\n\r\n").map_or("", |(_, b)| b)
}

#[test]
fn sip_and_irc_users_exchange_private_messages() {
    let net = Ngircd::start(IRC);
    let server = parley_named(net.port, "private");
    let alice = sip_user(&server, "alice");
    let mut bob = IrcClient::connect(net.port, "bob");

    // SIP -> IRC: Parley opens alice's own connection, under her nick.
    let r = message(&alice, "alice", &format!("bob@{IRC}"), "i1", "hello bob");
    assert_eq!(status(&r) / 100, 2, "{r}");
    let line = bob.wait_for(|l| l.contains("PRIVMSG bob :hello bob"), WAIT);
    assert!(line.starts_with(":alice!"), "{line}");

    // IRC -> SIP: bob answers alice's nick; alice gets a MESSAGE from
    // sip:bob@irc.example.test, formatting removed.
    bob.send("PRIVMSG alice :\u{2}hi\u{2} \u{3}04alice\u{3}");
    let m = next_message(&alice);
    assert!(
        header(&m, "From").is_some_and(|f| f.contains(&format!("sip:bob@{IRC}"))),
        "{m}"
    );
    assert_eq!(body(&m), "hi alice");
    // CTCP ACTION both ways.
    bob.send("PRIVMSG alice :\u{1}ACTION waves\u{1}");
    assert_eq!(body(&next_message(&alice)), "/me waves");
    let r = message(
        &alice,
        "alice",
        &format!("bob@{IRC}"),
        "i2",
        "/me waves back",
    );
    assert_eq!(status(&r) / 100, 2, "{r}");
    bob.wait_for(
        |l| l.contains("PRIVMSG bob :\u{1}ACTION waves back\u{1}"),
        WAIT,
    );
    // Long and multi-line text: line by line, each within 512 bytes.
    let long = "x".repeat(1200);
    let r = message(
        &alice,
        "alice",
        &format!("bob@{IRC}"),
        "i3",
        &format!("first\n{long}"),
    );
    assert_eq!(status(&r) / 100, 2, "{r}");
    bob.wait_for(|l| l.ends_with("PRIVMSG bob :first"), WAIT);
    let mut got = 0;
    while got < long.len() {
        let l = bob.wait_for(|l| l.contains("PRIVMSG bob :x"), WAIT);
        assert!(l.len() + 2 <= 512, "{}", l.len());
        got += l.rsplit_once(" :").unwrap().1.len();
    }
    assert_eq!(got, long.len());
    // A NOTICE arrives too, kept apart from PRIVMSG.
    bob.send("NOTICE alice :just so you know");
    assert_eq!(body(&next_message(&alice)), "just so you know");
    // The console counts the network's connections and messages: the
    // status lists alice's connection as a link of the network.
    let (_, status_json) = crate::admin::http(
        server.admin.unwrap(),
        "GET",
        "/api/v1/status",
        Some(&server.admin_token()),
        None,
    );
    assert!(
        status_json.contains(&format!("\"domain\":\"{IRC}\"")),
        "{status_json}"
    );
    let (_, metrics) = crate::admin::http(server.admin.unwrap(), "GET", "/metrics", None, None);
    assert!(
        metrics.contains("parley_irc_connections{network=\"private\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("parley_irc_messages_total")
                && l.contains("network=\"private\"")
                && l.contains("direction=\"in\"")),
        "{metrics}"
    );
    // No one of that nick: the network's 401 comes back to alice as a
    // report, not lost.
    let r = message(&alice, "alice", &format!("nobody@{IRC}"), "i4", "anyone?");
    assert_eq!(status(&r) / 100, 2, "{r}");
    let report = next_message(&alice);
    assert!(body(&report).contains(&format!("nobody@{IRC}")), "{report}");
    assert!(
        body(&report).contains("no one is called nobody"),
        "{report}"
    );
}

#[test]
fn a_taken_nick_gets_another_and_the_user_keeps_talking() {
    let net = Ngircd::start(IRC);
    let server = parley(net.port);
    let carol = sip_user(&server, "carol");
    // Someone on IRC already has the nick the template gives carol.
    let _squatter = IrcClient::connect(net.port, "carol");
    let mut dave = IrcClient::connect(net.port, "dave");
    let r = message(&carol, "carol", &format!("dave@{IRC}"), "n1", "it is carol");
    assert_eq!(status(&r) / 100, 2, "{r}");
    let line = dave.wait_for(|l| l.contains("PRIVMSG dave :it is carol"), WAIT);
    assert!(line.starts_with(":carol_!"), "{line}");
    dave.send("PRIVMSG carol_ :got it");
    assert_eq!(body(&next_message(&carol)), "got it");
}

#[test]
fn a_sip_user_takes_part_in_an_irc_channel() {
    let net = Ngircd::start(IRC);
    let server = parley(net.port);
    let alice = sip_user(&server, "alice");
    let mut bob = IrcClient::connect(net.port, "bob");
    bob.send("JOIN #dev");
    bob.wait_for(|l| l.contains(" 366 "), WAIT);
    bob.send("TOPIC #dev :Release planning");
    bob.wait_for(|l| l.contains("TOPIC #dev"), WAIT);

    // #dev on the network is the room dev%25irc.example.test in Parley's
    // conference domain.
    let room = format!("dev%25{IRC}@conference.localhost");
    let r = message(&alice, "alice", &room, "c1", "/join");
    assert_eq!(status(&r), 200, "{r}");
    let welcome = next_message(&alice);
    assert!(
        body(&welcome).contains(&format!("You are in dev@{IRC} as alice")),
        "{welcome}"
    );
    assert!(body(&welcome).contains("Also here: bob."), "{welcome}");
    bob.wait_for(|l| l.starts_with(":alice!") && l.contains("JOIN"), WAIT);
    assert!(body(&next_message(&alice)).contains("Topic: Release planning"));

    // Both ways in the channel, each with the speaker named.
    let r = message(&alice, "alice", &room, "c2", "hello channel");
    assert_eq!(status(&r), 200, "{r}");
    bob.wait_for(
        |l| l.starts_with(":alice!") && l.ends_with("PRIVMSG #dev :hello channel"),
        WAIT,
    );
    bob.send("PRIVMSG #dev :welcome alice");
    let m = next_message(&alice);
    assert_eq!(body(&m), "<bob> welcome alice");
    assert!(
        header(&m, "From").is_some_and(|f| f.starts_with("\"bob\"")),
        "{m}"
    );
    // Joins, nick changes and parts on IRC reach the SIP member.
    let mut carol = IrcClient::connect(net.port, "carol");
    carol.send("JOIN #dev");
    assert_eq!(body(&next_message(&alice)), "*** carol has joined");
    carol.send("NICK caroline");
    assert_eq!(
        body(&next_message(&alice)),
        "*** carol is now known as caroline"
    );
    carol.send("PART #dev :bye");
    assert_eq!(body(&next_message(&alice)), "*** caroline has left");
    // The console and `parley status` show the network: alice's
    // connection, the one channel, and the messages each way.
    let admin = server.admin.unwrap();
    let token = server.admin_token();
    let (code, adapters) = crate::admin::http(admin, "GET", "/api/v1/adapters", Some(&token), None);
    assert_eq!(code, 200, "{adapters}");
    let v: serde_json::Value = serde_json::from_str(&adapters).unwrap();
    let irc = v
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["protocol"] == "irc")
        .expect("the IRC adapter");
    let network = &irc["networks"][0];
    assert_eq!(network["name"], "test", "{network}");
    assert_eq!(network["domain"], IRC, "{network}");
    assert_eq!(network["connections"], 1, "{network}");
    assert_eq!(network["channels"], 1, "{network}");
    assert_eq!(network["messages_out"], 1, "{network}");
    assert_eq!(network["messages_in"], 1, "{network}");
    let config = server.state_dir.join("status.toml");
    std::fs::write(
        &config,
        format!("[admin]\nlisten = \"{admin}\"\ntoken = \"{token}\"\n"),
    )
    .unwrap();
    let text = crate::registrar_proxy::run_cli(&["status"], &config);
    let line = text
        .lines()
        .find(|l| l.starts_with("test "))
        .unwrap_or_else(|| panic!("no network line: {text}"));
    let figures: Vec<&str> = line.split_whitespace().collect();
    assert_eq!(figures, ["test", IRC, "1", "1", "1", "1"], "{text}");
    // Alice leaves: IRC sees her part.
    let r = message(&alice, "alice", &room, "c3", "/leave");
    assert_eq!(status(&r), 200, "{r}");
    bob.wait_for(
        |l| l.starts_with(":alice!") && l.contains("PART #dev"),
        WAIT,
    );
}

#[test]
fn after_a_server_restart_the_user_is_back_in_the_channel() {
    let mut net = Ngircd::start(IRC);
    let server = parley(net.port);
    let alice = sip_user(&server, "alice");
    let room = format!("dev%25{IRC}@conference.localhost");
    let r = message(&alice, "alice", &room, "r1", "/join");
    assert_eq!(status(&r), 200, "{r}");
    assert!(body(&next_message(&alice)).contains("You are in"));

    // The network goes away and comes back: Parley reconnects alice's
    // connection and rejoins the channel.
    net.restart();
    let mut bob = IrcClient::connect(net.port, "bob");
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        bob.send("NAMES #dev");
        let names = bob.wait_for(|l| l.contains(" 353 ") || l.contains(" 366 "), WAIT);
        if names.contains("alice") {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "alice did not rejoin: {names}"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    bob.send("JOIN #dev");
    bob.wait_for(|l| l.contains(" 366 "), WAIT);
    let r = message(&alice, "alice", &room, "r2", "still here");
    assert_eq!(status(&r), 200, "{r}");
    bob.wait_for(
        |l| l.starts_with(":alice!") && l.ends_with("PRIVMSG #dev :still here"),
        WAIT,
    );
}

#[test]
fn a_sip_user_watches_an_irc_nick_come_and_go() {
    let net = Ngircd::start(IRC);
    // ISON every second, so the test need not wait a minute.
    let server = TestServer::start(&format!(
        "[auth]\nregistrar = false\nproxy = false\n\
         [[irc.network]]\nname = \"test\"\ndomain = \"{IRC}\"\nserver = \"127.0.0.1:{}\"\npresence_poll_secs = 1\n",
        net.port
    ));
    let alice = sip_user(&server, "alice");
    alice.send(
        &format!(
            "SUBSCRIBE sip:bob@{IRC} SIP/2.0\nFrom: <sip:alice@localhost>;tag=w1\nTo: <sip:bob@{IRC}>\nCall-ID: watch-bob\nCSeq: 1 SUBSCRIBE\nEvent: presence\nAccept: application/pidf+xml\nContact: <sip:alice@{}>\nExpires: 600",
            alice.local
        ),
        "",
    );
    assert_eq!(status(&alice.final_response()), 200);
    // IRC grants at once; bob is not on line yet: closed.
    let notify_with = |part: &str| -> String {
        let deadline = std::time::Instant::now() + WAIT;
        loop {
            assert!(
                std::time::Instant::now() < deadline,
                "no NOTIFY with {part}"
            );
            let m = alice.next_within(WAIT);
            if m.starts_with("NOTIFY ")
                && header(&m, "Subscription-State").is_some_and(|s| s.starts_with("active"))
                && body(&m).contains(part)
            {
                return m;
            }
        }
    };
    notify_with("<basic>closed</basic>");
    // bob comes on line: open; and goes: closed again.
    let bob = IrcClient::connect(net.port, "bob");
    notify_with("<basic>open</basic>");
    drop(bob);
    notify_with("<basic>closed</basic>");
}

#[test]
fn a_tls_network_is_reached_only_with_a_certificate_that_names_it() {
    use parley_test_support::pki::TestCa;
    let ca = TestCa::new();
    let (cert, key) = ca.issue("irc.example.test");
    let net = Ngircd::start_with_tls(IRC, &cert, &key);
    let tls_port = net.tls_port.unwrap();
    let config = |name: &str| {
        format!(
            "[auth]\nregistrar = false\nproxy = false\n\
             [[irc.network]]\nname = \"test\"\ndomain = \"{IRC}\"\nserver = \"127.0.0.1:{tls_port}\"\n\
             tls = true\nserver_name = \"{name}\"\nca_file = {:?}\n",
            ca.cert.display().to_string()
        )
    };
    let server = TestServer::start(&config(IRC));
    let alice = sip_user(&server, "alice");
    let mut bob = IrcClient::connect(net.port, "bob");
    let r = message(&alice, "alice", &format!("bob@{IRC}"), "t1", "over TLS");
    assert_eq!(status(&r) / 100, 2, "{r}");
    bob.wait_for(
        |l| l.starts_with(":alice!") && l.ends_with("PRIVMSG bob :over TLS"),
        WAIT,
    );
    bob.send("PRIVMSG alice :and back");
    assert_eq!(body(&next_message(&alice)), "and back");

    // A certificate that does not name the server asked for: no link, and
    // the sender is told.
    let wrong = TestServer::start(&config("other.example.test"));
    let carol = sip_user(&wrong, "carol");
    let r = message(&carol, "carol", &format!("bob@{IRC}"), "t2", "will not go");
    assert!(status(&r) >= 400, "{r}");
}

#[test]
fn a_flood_from_the_network_reaches_the_sip_user_whole_and_in_order() {
    let net = Ngircd::start(IRC);
    let server = parley(net.port);
    let alice = sip_user(&server, "alice");
    let mut bob = IrcClient::connect(net.port, "bob");
    // alice's connection opens with her first message.
    let r = message(&alice, "alice", &format!("bob@{IRC}"), "f0", "ready");
    assert_eq!(status(&r) / 100, 2, "{r}");
    bob.wait_for(|l| l.ends_with("PRIVMSG bob :ready"), WAIT);
    // 300 lines back to back (ngIRCd here does not throttle): every one
    // becomes a MESSAGE, in order.
    let mut burst = String::new();
    for i in 0..300 {
        burst.push_str(&format!("PRIVMSG alice :line {i}\r\n"));
    }
    bob.send(burst.trim_end());
    for i in 0..300 {
        assert_eq!(body(&next_message(&alice)), format!("line {i}"));
    }
}

#[test]
fn a_policy_that_requires_tls_keeps_messages_off_a_plain_network() {
    let net = Ngircd::start(IRC);
    let server = TestServer::start(&format!(
        "[auth]\nregistrar = false\nproxy = false\n\
         [[gateway.domain]]\nname = \"{IRC}\"\nrequire_tls = true\n\
         [[irc.network]]\nname = \"plain\"\ndomain = \"{IRC}\"\nserver = \"127.0.0.1:{}\"\n",
        net.port
    ));
    let alice = sip_user(&server, "alice");
    let mut bob = IrcClient::connect(net.port, "bob");
    let r = message(
        &alice,
        "alice",
        &format!("bob@{IRC}"),
        "p1",
        "in the clear?",
    );
    assert!(status(&r) >= 400, "{r}");
    assert!(r.contains("not encrypted"), "{r}");
    // Nothing reached the network.
    bob.send("PING :check");
    let l = bob.wait_for(|l| l.contains("PONG") || l.contains("PRIVMSG"), WAIT);
    assert!(l.contains("PONG"), "{l}");
}

#[test]
fn what_flood_control_holds_back_is_bounded_and_the_rest_refused_with_the_reason() {
    // The default flood control: a line every two seconds after a burst of
    // five; the connection's queue holds 256 lines.
    let net = Ngircd::start(IRC);
    let server = parley(net.port);
    let alice = sip_user(&server, "alice");
    let mut bob = IrcClient::connect(net.port, "bob");
    let mut accepted = 0;
    let mut refused = None;
    for i in 0..300 {
        let r = message(
            &alice,
            "alice",
            &format!("bob@{IRC}"),
            &format!("q{i}"),
            &format!("n{i}"),
        );
        if status(&r) / 100 == 2 {
            accepted += 1;
        } else {
            refused = Some(r);
            break;
        }
    }
    let r = refused.expect("a full queue refuses");
    assert!(r.contains("flood control"), "{r}");
    // The queue (256), the burst and what the clock let through meanwhile.
    assert!((256..=280).contains(&accepted), "{accepted}");
    // What was accepted goes out in order, paced.
    bob.wait_for(|l| l.ends_with("PRIVMSG bob :n0"), WAIT);
    bob.wait_for(|l| l.ends_with("PRIVMSG bob :n5"), WAIT);
}

/// Parley between Prosody and ngIRCd: the network's domain is served to
/// XMPP servers, and its policy bridges Prosody's users to it.
fn three_networks(net: &Ngircd, bridge: bool) -> crate::rooms::Federation {
    let policy = if bridge {
        format!(
            "[[gateway.domain]]\nname = \"{IRC}\"\nbridge = [\"{}\"]\n",
            crate::rooms::XMPP
        )
    } else {
        String::new()
    };
    // The XMPP domain is routed, not classified by DNS: a lookup slow
    // under load would refuse the first message the IRC side sends.
    crate::rooms::federation_full(
        None,
        &[IRC],
        &format!(
            "[[irc.network]]\nname = \"three\"\ndomain = \"{IRC}\"\nserver = \"127.0.0.1:{}\"\n{policy}\
             [[route]]\ndomain = \"{}\"\nvia = \"xmpp\"\n",
            net.port,
            crate::rooms::XMPP
        ),
    )
}

#[test]
fn xmpp_and_irc_users_exchange_private_messages_through_parley() {
    use parley_test_support::prosody::XmppClient;
    let net = Ngircd::start(IRC);
    let f = three_networks(&net, true);
    f.prosody.register("juliet", "jpw");
    let xmpp = crate::rooms::XMPP;
    let mut juliet = XmppClient::connect(&format!("juliet@{xmpp}/balcony"), "jpw", f.prosody.c2s);
    let mut bob = IrcClient::connect(net.port, "bob");

    // XMPP -> IRC: Juliet writes to bob@irc.example.test; Parley opens a
    // connection of her own, under her nick.
    juliet.command(&format!(
        r#"{{"cmd": "message", "to": "bob@{IRC}", "body": "hello bob, from xmpp"}}"#
    ));
    let line = bob.wait_for(|l| l.contains("PRIVMSG bob :hello bob, from xmpp"), WAIT);
    assert!(line.starts_with(":juliet!"), "{line}");
    // IRC -> XMPP: the answer comes from bob@irc.example.test.
    bob.send("PRIVMSG juliet :hi juliet");
    let e = juliet.wait_for(|e| e.contains("hi juliet"), WAIT);
    assert!(e.contains(&format!("\"from\": \"bob@{IRC}")), "{e}");
    // A nick no one has: the message is reported back to Juliet.
    juliet.command(&format!(
        r#"{{"cmd": "message", "to": "nobody@{IRC}", "body": "anyone?"}}"#
    ));
    let e = juliet.wait_for(|e| e.contains("Not delivered to nobody@"), WAIT);
    assert!(e.contains("no one is called nobody"), "{e}");
    // Presence: IRC grants the subscription at once, and bob's being on
    // line reaches Juliet's roster.
    juliet.command(&format!(r#"{{"cmd": "subscribe", "to": "bob@{IRC}"}}"#));
    let e = juliet.wait_for(|e| e.contains("\"event\": \"subscription\""), WAIT);
    assert!(e.contains("\"type\": \"subscribed\""), "{e}");
    let from_bob = |e: &str| e.contains(&format!("\"from\": \"bob@{IRC}"));
    let e = juliet.wait_for(
        |e| e.contains("\"event\": \"presence\"") && from_bob(e),
        WAIT,
    );
    assert!(e.contains("\"type\": \"available\""), "{e}");
}

#[test]
fn without_a_bridge_policy_xmpp_users_are_refused_with_the_reason() {
    use parley_test_support::prosody::XmppClient;
    let net = Ngircd::start(IRC);
    let f = three_networks(&net, false);
    f.prosody.register("juliet", "jpw");
    let xmpp = crate::rooms::XMPP;
    let mut juliet = XmppClient::connect(&format!("juliet@{xmpp}/balcony"), "jpw", f.prosody.c2s);
    juliet.command(&format!(
        r#"{{"cmd": "message", "to": "bob@{IRC}", "body": "let me in", "id": "x1"}}"#
    ));
    let e = juliet.wait_for(|e| e.contains("\"event\": \"error\""), WAIT);
    assert!(e.contains("policy-violation"), "{e}");
    assert!(e.contains("does not bridge"), "{e}");
    juliet.command(&format!(
        r##"{{"cmd": "join", "room": "#dev@{IRC}", "nick": "juliet"}}"##
    ));
    let e = juliet.wait_for(|e| e.contains("presence_error"), WAIT);
    assert!(e.contains("policy-violation"), "{e}");
}

#[test]
fn a_channel_carries_irc_sip_and_xmpp_users_all_round() {
    use crate::rooms::{Member, PARLEY, XMPP};
    use parley_test_support::prosody::XmppClient;
    let net = Ngircd::start(IRC);
    let f = three_networks(&net, true);
    f.prosody.register("juliet", "jpw");
    crate::rooms::add_user(&f, "alice");
    let mut bob = IrcClient::connect(net.port, "bob");
    bob.send("JOIN #dev");
    bob.wait_for(|l| l.contains(" 366 "), WAIT);

    // The SIP user through Parley's conference domain.
    let alice = Member::of(
        &f.parley,
        "alice",
        PARLEY,
        &format!("dev%25{IRC}@conference.{PARLEY}"),
    );
    assert_eq!(alice.say("/join"), 200);
    let (welcome, _) = alice.expect("You are in");
    assert!(welcome.contains("Also here: bob."), "{welcome}");
    bob.wait_for(|l| l.starts_with(":alice!") && l.contains("JOIN"), WAIT);

    // The XMPP user joins #dev@irc.example.test as a MUC room: the roster,
    // then her own presence (110).
    let room = format!("#dev@{IRC}");
    let mut juliet = XmppClient::connect(&format!("juliet@{XMPP}/balcony"), "jpw", f.prosody.c2s);
    juliet.command(&format!(
        r#"{{"cmd": "join", "room": "{room}", "nick": "juliet"}}"#
    ));
    let is = |e: &str, kind: &str, from: &str| {
        e.contains(&format!("\"event\": \"{kind}\""))
            && e.contains(&format!("\"from\": \"{from}\""))
    };
    let e = juliet.wait_for(|e| is(e, "presence", &format!("{room}/juliet")), WAIT);
    assert!(e.contains("\"110\""), "{e}");
    for other in ["bob", "alice"] {
        assert!(
            juliet
                .seen
                .iter()
                .any(|e| is(e, "presence", &format!("{room}/{other}"))),
            "{other} not in the roster: {:?}",
            juliet.seen
        );
    }
    bob.wait_for(|l| l.starts_with(":juliet!") && l.contains("JOIN"), WAIT);
    alice.expect("*** juliet has joined");

    // Each one speaks; the two others hear it, with the speaker named.
    bob.send("PRIVMSG #dev :from irc");
    alice.expect("<bob> from irc");
    juliet.wait_for(
        |e| is(e, "message", &format!("{room}/bob")) && e.contains("from irc"),
        WAIT,
    );
    assert_eq!(alice.say("from sip"), 200);
    bob.wait_for(
        |l| l.starts_with(":alice!") && l.ends_with("PRIVMSG #dev :from sip"),
        WAIT,
    );
    juliet.wait_for(
        |e| is(e, "message", &format!("{room}/alice")) && e.contains("from sip"),
        WAIT,
    );
    juliet.command(&format!(
        r#"{{"cmd": "groupchat", "to": "{room}", "body": "from xmpp", "id": "g1"}}"#
    ));
    bob.wait_for(
        |l| l.starts_with(":juliet!") && l.ends_with("PRIVMSG #dev :from xmpp"),
        WAIT,
    );
    alice.expect("<juliet> from xmpp");
    // Juliet's own message is reflected to her, with its id (XEP-0045 §7.4).
    let e = juliet.wait_for(|e| is(e, "message", &format!("{room}/juliet")), WAIT);
    assert!(e.contains("\"id\": \"g1\""), "{e}");

    // Parts, all round.
    juliet.command(&format!(
        r#"{{"cmd": "leave", "room": "{room}", "nick": "juliet"}}"#
    ));
    bob.wait_for(
        |l| l.starts_with(":juliet!") && l.contains("PART #dev"),
        WAIT,
    );
    alice.expect("*** juliet has left");
    assert_eq!(alice.say("/leave"), 200);
    bob.wait_for(
        |l| l.starts_with(":alice!") && l.contains("PART #dev"),
        WAIT,
    );
    bob.send("PART #dev");
    drop(juliet);
}

/// Parley on InspIRCd's TLS port, logging alice in with SASL PLAIN
/// (Atheme) and dave with a wrong password.
fn inspircd_parley(
    net: &parley_test_support::inspircd::InspIrcd,
    ca: &parley_test_support::pki::TestCa,
) -> TestServer {
    TestServer::start(&format!(
        "[auth]\nregistrar = false\nproxy = false\n\
         [[irc.network]]\nname = \"inspircd\"\ndomain = \"{IRC}\"\nserver = \"127.0.0.1:{}\"\n\
         tls = true\nca_file = {:?}\nlogin = \"sasl\"\n\
         [[irc.network.account]]\nuser = \"alice@localhost\"\nname = \"alice\"\npassword = \"alice-secret\"\n\
         [[irc.network.account]]\nuser = \"dave@localhost\"\nname = \"dave\"\npassword = \"not-his\"\n",
        net.tls_port,
        ca.cert.display().to_string()
    ))
}

#[test]
fn on_an_ircv3_network_over_tls_users_log_in_with_sasl_and_follow_nicks_with_monitor() {
    use parley_test_support::inspircd::InspIrcd;
    use parley_test_support::pki::TestCa;
    let ca = TestCa::new();
    let (cert, key) = ca.issue(IRC);
    let net = InspIrcd::start(IRC, &cert, &key);
    net.register_account("alice", "alice-secret");
    net.register_account("dave", "dave-secret");
    let server = inspircd_parley(&net, &ca);
    let alice = sip_user(&server, "alice");
    let mut bob = IrcClient::connect(net.port, "bob");

    // alice's connection: TLS, logged in to her account by SASL.
    let r = message(
        &alice,
        "alice",
        &format!("bob@{IRC}"),
        "s1",
        "over TLS, logged in",
    );
    assert_eq!(status(&r) / 100, 2, "{r}");
    bob.wait_for(
        |l| l.starts_with(":alice!") && l.ends_with("PRIVMSG bob :over TLS, logged in"),
        WAIT,
    );
    assert_eq!(account_of(&mut bob, "alice").as_deref(), Some("alice"));

    // A refused login: the connection is not made, and the sender hears
    // the server's reason.
    let dave = sip_user(&server, "dave");
    let r = message(&dave, "dave", &format!("bob@{IRC}"), "s2", "will not go");
    assert!(status(&r) >= 400, "{r}");
    assert!(r.contains("SASL authentication failed"), "{r}");

    // MONITOR: carol's coming and going is told at once (the ISON poll
    // is a minute by default), and away-notify (extended-monitor) tells
    // her away state.
    alice.send(
        &format!(
            "SUBSCRIBE sip:carol@{IRC} SIP/2.0\nFrom: <sip:alice@localhost>;tag=w1\nTo: <sip:carol@{IRC}>\nCall-ID: watch-carol\nCSeq: 1 SUBSCRIBE\nEvent: presence\nAccept: application/pidf+xml\nContact: <sip:alice@{}>\nExpires: 600",
            alice.local
        ),
        "",
    );
    assert_eq!(status(&alice.final_response()), 200);
    let notify_with = |part: &str| -> String {
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            assert!(
                std::time::Instant::now() < deadline,
                "no NOTIFY with {part}"
            );
            let m = alice.next_within(Duration::from_secs(10));
            if m.starts_with("NOTIFY ") && body(&m).contains(part) {
                return m;
            }
        }
    };
    notify_with("<basic>closed</basic>");
    let mut carol = IrcClient::connect(net.port, "carol");
    notify_with("<basic>open</basic>");
    carol.send("AWAY :at lunch");
    let m = notify_with("at lunch");
    assert!(body(&m).contains("<basic>open</basic>"), "{m}");
    assert!(body(&m).contains("away"), "{m}");
    carol.send("QUIT :bye");
    notify_with("<basic>closed</basic>");

    // A channel with echo-message on: what alice says reaches bob once,
    // and the server's echo is not sent back to her as someone's line.
    bob.send("JOIN #ops");
    bob.wait_for(|l| l.contains(" 366 "), WAIT);
    let room = format!("ops%25{IRC}@conference.localhost");
    let r = message(&alice, "alice", &room, "s3", "/join");
    assert_eq!(status(&r), 200, "{r}");
    assert!(body(&next_message(&alice)).contains("You are in"));
    let r = message(&alice, "alice", &room, "s4", "said once");
    assert_eq!(status(&r), 200, "{r}");
    bob.wait_for(|l| l.contains("PRIVMSG #ops :said once"), WAIT);
    bob.send("PRIVMSG #ops :after you");
    assert_eq!(body(&next_message(&alice)), "<bob> after you");
}

/// InspIRCd that kills a connection whose penalty passes 20 lines (one
/// line a second paid back, no fakelag), and Parley on it with `flood`
/// settings for the network.
fn strict_network(
    flood: &str,
) -> (
    parley_test_support::inspircd::InspIrcd,
    TestServer,
    parley_test_support::pki::TestCa,
) {
    use parley_test_support::inspircd::InspIrcd;
    use parley_test_support::pki::TestCa;
    let ca = TestCa::new();
    let (cert, key) = ca.issue(IRC);
    let net = InspIrcd::start_with(IRC, &cert, &key, "threshold=\"20\" commandrate=\"1000\"");
    let server = TestServer::start(&format!(
        "[auth]\nregistrar = false\nproxy = false\n\
         [[irc.network]]\nname = \"strict\"\ndomain = \"{IRC}\"\nserver = \"127.0.0.1:{}\"\n{flood}",
        net.port
    ));
    (net, server, ca)
}

#[test]
fn flood_control_keeps_a_long_message_within_a_throttling_servers_limits() {
    // The defaults (RFC 1459: five lines at once, then one every two
    // seconds) against a server that kills past 20 lines of penalty.
    let (net, server, _ca) = strict_network("");
    let alice = sip_user(&server, "alice");
    let mut bob = IrcClient::connect(net.port, "bob");
    // 12 lines of text: each its own PRIVMSG.
    let text: Vec<String> = (1..=12).map(|i| format!("line {i}")).collect();
    for (i, chunk) in text.chunks(3).enumerate() {
        let r = message(
            &alice,
            "alice",
            &format!("bob@{IRC}"),
            &format!("f{i}"),
            &chunk.join("\n"),
        );
        assert_eq!(status(&r) / 100, 2, "{r}");
    }
    for line in &text {
        bob.wait_for(
            |l| l.starts_with(":alice!") && l.ends_with(&format!("PRIVMSG bob :{line}")),
            Duration::from_secs(30),
        );
    }
    assert!(
        !bob.seen.iter().any(|l| l.contains("Excess Flood")),
        "{:?}",
        bob.seen
    );
}

#[test]
fn what_a_server_kills_unconfirmed_is_reported_with_its_reason() {
    // Flood control turned off: the server kills the connection for
    // excess flood, and what it had not confirmed (echo-message) is
    // reported to the sender with the server's words.
    let (net, server, _ca) = strict_network("flood_interval_ms = 0\n");
    let alice = sip_user(&server, "alice");
    let _bob = IrcClient::connect(net.port, "bob");
    let many: Vec<String> = (1..=60).map(|i| format!("flood {i}")).collect();
    let r = message(
        &alice,
        "alice",
        &format!("bob@{IRC}"),
        "k1",
        &many.join("\n"),
    );
    assert_eq!(status(&r) / 100, 2, "{r}");
    let report = next_message(&alice);
    assert!(body(&report).contains(&format!("bob@{IRC}")), "{report}");
    assert!(body(&report).contains("Excess Flood"), "{report}");
}

#[test]
fn a_hostile_server_gets_a_defined_outcome_for_each_thing_it_does() {
    // A scripted server for what real ones do not send: a line far over
    // the limit, text that is not UTF-8, and then silence.
    use std::io::{BufRead, BufReader, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let (tx, heard) = std::sync::mpsc::channel::<String>();
    std::thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        let mut lines = BufReader::new(s.try_clone().unwrap());
        let mut next = || {
            let mut l = String::new();
            match lines.read_line(&mut l) {
                Ok(0) => "EOF".to_string(),
                Ok(_) => l.trim_end().to_string(),
                Err(_) => "TIMEOUT".to_string(),
            }
        };
        while !next().starts_with("USER ") {}
        s.write_all(b":fake.example.test 001 alice :Welcome\r\n")
            .unwrap();
        loop {
            let l = next();
            if l.starts_with("PRIVMSG bob") || l == "EOF" || l == "TIMEOUT" {
                break;
            }
        }
        let long = format!(":bob!b@h PRIVMSG alice :{}\r\n", "x".repeat(20_000));
        s.write_all(long.as_bytes()).unwrap();
        s.write_all(b":bob!b@h PRIVMSG alice :caf\xe9 cr\xe8me\r\n")
            .unwrap();
        s.write_all(b":bob!b@h PRIVMSG alice :after\r\n").unwrap();
        loop {
            let l = next();
            let end = l == "EOF" || l == "TIMEOUT";
            let _ = tx.send(l);
            if end {
                break;
            }
        }
    });
    let server = TestServer::start(&format!(
        "[auth]\nregistrar = false\nproxy = false\n\
         [[irc.network]]\nname = \"hostile\"\ndomain = \"{IRC}\"\nserver = \"127.0.0.1:{port}\"\nkeepalive_secs = 1\n"
    ));
    let alice = sip_user(&server, "alice");
    let r = message(&alice, "alice", &format!("bob@{IRC}"), "h1", "hello?");
    assert_eq!(status(&r) / 100, 2, "{r}");
    // The over-long line is dropped whole; Latin-1 is read as Latin-1.
    assert_eq!(body(&next_message(&alice)), "café crème");
    assert_eq!(body(&next_message(&alice)), "after");
    // Silence: a PING after a second, then the connection is given up.
    let mut seen = Vec::new();
    loop {
        let l = heard
            .recv_timeout(Duration::from_secs(10))
            .unwrap_or_else(|_| panic!("Parley kept a silent server: {seen:?}"));
        seen.push(l.clone());
        if l == "EOF" || l == "TIMEOUT" {
            break;
        }
    }
    assert!(seen.iter().any(|l| l == "PING :parley"), "{seen:?}");
    assert_eq!(seen.last().map(String::as_str), Some("EOF"), "{seen:?}");
}

#[test]
fn connections_to_a_network_are_bounded() {
    let net = Ngircd::start(IRC);
    let server = TestServer::start(&format!(
        "[auth]\nregistrar = false\nproxy = false\n\
         [[irc.network]]\nname = \"small\"\ndomain = \"{IRC}\"\nserver = \"127.0.0.1:{}\"\nmax_connections = 1\n",
        net.port
    ));
    let mut bob = IrcClient::connect(net.port, "bob");
    user_add(&server, "alice@localhost", "pw");
    user_add(&server, "carol@localhost", "pw");
    let alice = Ua::new(server.udp);
    register(&alice, "alice");
    let carol = Ua::new(server.udp);
    register(&carol, "carol");
    let r = message(&alice, "alice", &format!("bob@{IRC}"), "b1", "first");
    assert_eq!(status(&r) / 100, 2, "{r}");
    bob.wait_for(|l| l.ends_with("PRIVMSG bob :first"), WAIT);
    // carol would need a second connection: refused, with the reason
    // (resource-constraint, 500 as RFC 7247 maps it).
    let r = message(&carol, "carol", &format!("bob@{IRC}"), "b2", "second");
    assert_eq!(status(&r), 500, "{r}");
    assert!(r.contains("limit of 1 connections"), "{r}");
}

#[test]
fn nicks_with_characters_addresses_do_not_allow_are_escaped_both_ways() {
    let net = Ngircd::start(IRC);
    let server = parley(net.port);
    let alice = sip_user(&server, "alice");
    // `[`, `]` and `|` are nick characters no SIP user part or JID local
    // part takes as they are: `\5b`, `\5d`, `\7c` (XEP-0106 style), and
    // the `\` percent-encoded in a SIP URI.
    let mut odd = IrcClient::connect(net.port, "b[o]b|x");
    let r = message(
        &alice,
        "alice",
        &format!("b%5C5bo%5C5db%5C7cx@{IRC}"),
        "e1",
        "to an odd nick",
    );
    assert_eq!(status(&r) / 100, 2, "{r}");
    odd.wait_for(|l| l.ends_with("PRIVMSG b[o]b|x :to an odd nick"), WAIT);
    // The answer comes from the same address.
    odd.send("PRIVMSG alice :from the odd nick");
    let m = next_message(&alice);
    let from = header(&m, "From").unwrap_or_default().to_string();
    assert!(
        from.contains(&format!("sip:b%5C5bo%5C5db%5C7cx@{IRC}")),
        "{m}"
    );
    assert_eq!(body(&m), "from the odd nick");
    // Content IRC cannot carry is refused, not dropped after a 200

    let cpim = "From: <sip:alice@localhost>\r\nTo: <sip:bob@irc>\r\n\r\nContent-Type: application/xml\r\n\r\n<x/>";
    alice.send(
        &format!(
            "MESSAGE sip:b%5C5bo%5C5db%5C7cx@{IRC} SIP/2.0\nFrom: <sip:alice@localhost>;tag=e3\nTo: <sip:b%5C5bo%5C5db%5C7cx@{IRC}>\nCall-ID: e3\nCSeq: 1 MESSAGE\nContent-Type: message/cpim"
        ),
        cpim,
    );
    // (the default policy refuses the type before the network is asked).
    let r = alice.final_response();
    assert_eq!(status(&r), 415, "{r}");
    // A local part that is no nick is refused, not guessed at.
    let r = message(&alice, "alice", &format!("no%20such@{IRC}"), "e2", "x");
    assert!(status(&r) >= 400, "{r}");
}

#[test]
fn a_baresip_user_and_an_irc_user_talk() {
    use parley_test_support::baresip::Baresip;
    let net = Ngircd::start(IRC);
    // The default [auth]: baresip answers its first challenge, MD5.
    let server = TestServer::start(&format!(
        "[[irc.network]]\nname = \"baresip\"\ndomain = \"{IRC}\"\nserver = \"127.0.0.1:{}\"\n",
        net.port
    ));
    user_add(&server, "alice@localhost", "alice-pw");
    let mut bob = IrcClient::connect(net.port, "bob");
    let bob_address = format!("bob@{IRC}");
    let mut alice = Baresip::start("alice", "alice-pw", server.udp, &[&bob_address]);
    let wait = Duration::from_secs(15);
    assert!(
        alice.wait_for("reginfo", "OK", wait),
        "{}",
        alice.command("reginfo", None)
    );
    // baresip watches bob: IRC grants at once, and bob is on line.
    assert!(
        alice.wait_for("contacts", "Online", wait),
        "{}",
        alice.command("contacts", None)
    );
    alice.command("message", Some("Hello bob, from baresip"));
    let line = bob.wait_for(|l| l.contains("PRIVMSG bob :Hello bob, from baresip"), WAIT);
    assert!(line.starts_with(":alice!"), "{line}");
    bob.send("PRIVMSG alice :Hello alice, from IRC");
    assert!(
        alice.heard("Hello alice, from IRC", wait),
        "{}",
        alice.console_text()
    );
}

#[test]
fn on_a_network_whose_services_have_no_sasl_users_identify_to_nickserv() {
    use parley_test_support::inspircd::InspIrcd;
    use parley_test_support::pki::TestCa;
    let ca = TestCa::new();
    let (cert, key) = ca.issue(IRC);
    let net = InspIrcd::start(IRC, &cert, &key);
    net.register_account("alice", "alice-secret");
    let server = TestServer::start(&format!(
        "[auth]\nregistrar = false\nproxy = false\n\
         [[irc.network]]\nname = \"nickserv\"\ndomain = \"{IRC}\"\nserver = \"127.0.0.1:{}\"\nlogin = \"nickserv\"\n\
         [[irc.network.account]]\nuser = \"alice@localhost\"\nname = \"alice\"\npassword = \"alice-secret\"\n",
        net.port
    ));
    let alice = sip_user(&server, "alice");
    let mut bob = IrcClient::connect(net.port, "bob");
    let r = message(&alice, "alice", &format!("bob@{IRC}"), "n1", "identified");
    assert_eq!(status(&r) / 100, 2, "{r}");
    bob.wait_for(
        |l| l.starts_with(":alice!") && l.ends_with("PRIVMSG bob :identified"),
        WAIT,
    );
    // IDENTIFY follows the welcome: ask until the account shows.
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        if account_of(&mut bob, "alice").as_deref() == Some("alice") {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "alice never identified"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn a_network_server_that_refuses_is_passed_over_for_the_next() {
    let net = Ngircd::start(IRC);
    // A port nobody listens on: closed at once.
    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead_port = dead.local_addr().unwrap().port();
    drop(dead);
    let server = TestServer::start(&format!(
        "[auth]\nregistrar = false\nproxy = false\n\
         [[irc.network]]\nname = \"two\"\ndomain = \"{IRC}\"\nserver = \"127.0.0.1:{dead_port}\"\n\
         servers = [\"127.0.0.1:{}\"]\n",
        net.port
    ));
    let alice = sip_user(&server, "alice");
    let mut bob = IrcClient::connect(net.port, "bob");
    let r = message(
        &alice,
        "alice",
        &format!("bob@{IRC}"),
        "v1",
        "via the second server",
    );
    assert_eq!(status(&r) / 100, 2, "{r}");
    bob.wait_for(|l| l.ends_with("PRIVMSG bob :via the second server"), WAIT);
}

#[test]
fn with_sasl_external_connections_log_in_with_parleys_certificate() {
    use parley_test_support::inspircd::InspIrcd;
    use parley_test_support::pki::TestCa;
    use rustls::pki_types::pem::PemObject;
    let ca = TestCa::new();
    let (cert, key) = ca.issue(IRC);
    let net = InspIrcd::start(IRC, &cert, &key);
    let server = TestServer::start(&format!(
        "[auth]\nregistrar = false\nproxy = false\n\
         [[irc.network]]\nname = \"external\"\ndomain = \"{IRC}\"\nserver = \"127.0.0.1:{}\"\n\
         tls = true\nca_file = {:?}\nlogin = \"external\"\n",
        net.tls_port,
        ca.cert.display().to_string()
    ));
    // The services know Parley's certificate (its SHA-256 fingerprint) as
    // the gateway's account.
    let own =
        rustls::pki_types::CertificateDer::from_pem_file(server.state_dir.join("tls/cert.pem"))
            .expect("Parley's certificate");
    let fingerprint: String = ring::digest::digest(&ring::digest::SHA256, &own)
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    net.register_with_certificate("gateway", "gw-secret", Some(&fingerprint));
    let alice = sip_user(&server, "alice");
    let mut bob = IrcClient::connect(net.port, "bob");
    let r = message(
        &alice,
        "alice",
        &format!("bob@{IRC}"),
        "x1",
        "logged in by certificate",
    );
    assert_eq!(status(&r) / 100, 2, "{r}");
    bob.wait_for(
        |l| l.starts_with(":alice!") && l.ends_with("PRIVMSG bob :logged in by certificate"),
        WAIT,
    );
    assert_eq!(account_of(&mut bob, "alice").as_deref(), Some("gateway"));
}

/// The services account `nick` is logged in to, as WHOIS tells `asker`
/// (330), or `None` (318 first).
fn account_of(asker: &mut IrcClient, nick: &str) -> Option<String> {
    asker.send(&format!("WHOIS {nick}"));
    let line = asker.wait_for(|l| l.contains(" 330 ") || l.contains(" 318 "), WAIT);
    let (_, rest) = line.split_once(" 330 ")?;
    // `<asker> <nick> <account> :is logged in as`
    rest.split_whitespace().nth(2).map(str::to_string)
}
