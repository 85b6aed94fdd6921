//! Chat rooms Parley hosts: pager-mode SIP members with the command set,
//! persistence of rooms, standings and history across a restart, and XMPP
//! users (through Prosody over s2s) in the same room as SIP users.

use std::cell::RefCell;
use std::time::{Duration, Instant};

use parley_test_support::server::TestServer;

use parley_test_support::sipp::Sipp;

use crate::presence::{header, status, Ua};
use crate::registrar_proxy::{register, user_add};

const NO_AUTH: &str = "[auth]\nregistrar = false\nproxy = false\n";
const ROOM: &str = "dev@conference.localhost";

/// A registered pager-mode SIP user, keeping the room's MESSAGEs that
/// arrive while it waits for its own final responses.
pub(crate) struct Member {
    pub(crate) ua: Ua,
    user: String,
    domain: String,
    room: String,
    password: Option<String>,
    inbox: RefCell<Vec<String>>,
    n: std::cell::Cell<u32>,
}

impl Member {
    pub(crate) fn new(server: &TestServer, user: &str) -> Member {
        Member::of(server, user, "localhost", ROOM)
    }

    /// A user of `domain` who speaks to `room`.
    pub(crate) fn of(server: &TestServer, user: &str, domain: &str, room: &str) -> Member {
        Member::with_password(server, user, domain, room, None)
    }

    /// A user who answers digest challenges with `password`.
    pub(crate) fn with_password(
        server: &TestServer,
        user: &str,
        domain: &str,
        room: &str,
        password: Option<&str>,
    ) -> Member {
        let m = Member {
            ua: Ua::new(server.udp),
            user: user.to_string(),
            domain: domain.to_string(),
            room: room.to_string(),
            password: password.map(str::to_string),
            inbox: RefCell::new(Vec::new()),
            n: std::cell::Cell::new(0),
        };
        let r = m.request(
            "REGISTER",
            &format!("sip:{domain}"),
            &format!("Contact: <sip:{user}@{}>\nExpires: 600", m.ua.local),
            "",
        );
        assert_eq!(status(&r), 200, "{r}");
        m
    }

    /// Sends a request of its own (a new Call-ID) and returns the final
    /// response, answering one digest challenge when it has a password.
    pub(crate) fn request(&self, method: &str, uri: &str, extra: &str, body: &str) -> String {
        self.n.set(self.n.get() + 1);
        let call = format!("{}-{}", self.user, self.n.get());
        let to = if method == "REGISTER" {
            format!("sip:{}@{}", self.user, self.domain)
        } else {
            uri.to_string()
        };
        let head = |cseq: u32, auth: &str| {
            format!(
                "{method} {uri} SIP/2.0\nFrom: <sip:{}@{}>;tag={call}\nTo: <{to}>\nCall-ID: {call}\nCSeq: {cseq} {method}\n{auth}{extra}",
                self.user, self.domain
            )
        };
        self.ua.send(&head(1, ""), body);
        let r = self.final_response();
        let code = status(&r);
        let (Some(password), 401 | 407) = (&self.password, code) else {
            return r;
        };
        let name = if code == 401 {
            "WWW-Authenticate"
        } else {
            "Proxy-Authenticate"
        };
        let challenges: Vec<&str> = r
            .split("\r\n")
            .filter_map(|l| l.strip_prefix(name).and_then(|v| v.strip_prefix(':')))
            .map(str::trim)
            .collect();
        let answer = parley::proto::digest::answer(
            challenges, method, uri, &self.user, password, "0a4f113b",
        )
        .expect("a digest challenge Parley's client side answers");
        let field = if code == 401 {
            "Authorization"
        } else {
            "Proxy-Authorization"
        };
        self.ua
            .send(&head(2, &format!("{field}: {answer}\n")), body);
        self.final_response()
    }

    /// The final response to what was just sent; room MESSAGEs that
    /// arrive meanwhile are kept.
    pub(crate) fn final_response(&self) -> String {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let m = self
                .ua
                .next_within(deadline.saturating_duration_since(Instant::now()));
            if m.starts_with("SIP/2.0 ") {
                if !m.starts_with("SIP/2.0 1") {
                    return m;
                }
            } else if !m.starts_with("ACK ") {
                self.inbox.borrow_mut().push(m);
            }
        }
    }

    /// The next request (one kept meanwhile, or a new one) that `pred`
    /// accepts; the others are kept.
    pub(crate) fn next_matching(&self, pred: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            {
                let mut inbox = self.inbox.borrow_mut();
                if let Some(i) = inbox.iter().position(|m| pred(m)) {
                    return inbox.remove(i);
                }
            }
            let m = self
                .ua
                .next_within(deadline.saturating_duration_since(Instant::now()));
            self.inbox.borrow_mut().push(m);
        }
    }

    /// Sends `text` to `to` and returns the final response.
    pub(crate) fn say_to(&self, to: &str, text: &str) -> String {
        self.request(
            "MESSAGE",
            &format!("sip:{to}"),
            "Content-Type: text/plain",
            text,
        )
    }

    pub(crate) fn say(&self, text: &str) -> u16 {
        status(&self.say_to(&self.room, text))
    }

    /// The next MESSAGE from the room whose body contains `part`; the
    /// ones before it are returned too, in order.
    pub(crate) fn expect(&self, part: &str) -> (String, Vec<String>) {
        let mut before = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let m = {
                let mut inbox = self.inbox.borrow_mut();
                if inbox.is_empty() {
                    None
                } else {
                    Some(inbox.remove(0))
                }
            };
            let m = match m {
                Some(m) => m,
                None => {
                    let left = deadline.saturating_duration_since(Instant::now());
                    assert!(
                        !left.is_zero(),
                        "{} never got {part:?}; got {before:#?}",
                        self.user
                    );
                    let m = self.ua.next_within(left);
                    if m.starts_with("SIP/2.0 ") || m.starts_with("ACK ") {
                        continue;
                    }
                    m
                }
            };
            let b = body(&m).to_string();
            if b.contains(part) {
                return (m, before);
            }
            before.push(b);
        }
    }

    /// Nothing more arrives within `wait`.
    pub(crate) fn quiet(&self, wait: Duration) {
        assert!(self.inbox.borrow().is_empty(), "{:#?}", self.inbox.borrow());
        if let Some(m) = self.ua.try_next_within(wait) {
            panic!("{} got {m}", self.user);
        }
    }
}

fn body(m: &str) -> &str {
    m.split_once("\r\n\r\n").map_or("", |(_, b)| b)
}

#[test]
fn pager_members_talk_and_moderate_with_commands() {
    let server = TestServer::start(NO_AUTH);
    for u in ["alice", "bob", "carol"] {
        user_add(&server, &format!("{u}@localhost"), "pw");
    }
    let alice = Member::new(&server, "alice");
    let bob = Member::new(&server, "bob");
    let carol = Member::new(&server, "carol");

    // Speaking before entering is refused; a plain message to a room that
    // does not exist is 404.
    assert_eq!(alice.say("hello?"), 404);
    // Entering creates the room: alice owns it and moderates.
    assert_eq!(alice.say("/join"), 200);
    let (welcome, _) = alice.expect("You are in");
    assert!(
        body(&welcome).contains("as alice (moderator). No one else is here."),
        "{welcome}"
    );
    assert!(
        header(&welcome, "From").is_some_and(|f| f.contains("sip:dev@conference.localhost")),
        "{welcome}"
    );
    assert_eq!(bob.say("/join bobby"), 200);
    alice.expect("*** bobby has joined");
    let (welcome, _) = bob.expect("You are in");
    assert!(body(&welcome).contains("Also here: alice."), "{welcome}");
    assert_eq!(carol.say("hi"), 403, "not in the room");

    // A message goes to everyone else, with the speaker named both in the
    // From display name and in the text.
    assert_eq!(bob.say("hello all"), 200);
    let (m, _) = alice.expect("<bobby> hello all");
    assert!(
        header(&m, "From")
            .is_some_and(|f| f.starts_with("\"bobby\" <sip:dev@conference.localhost>")),
        "{m}"
    );
    assert_eq!(bob.say("/nick bob"), 200);
    alice.expect("*** bobby is now known as bob");
    bob.expect("*** bobby is now known as bob");
    assert_eq!(alice.say("/topic Release planning"), 200);
    bob.expect("*** alice set the topic: Release planning");
    assert_eq!(bob.say("/me waves"), 200);
    alice.expect("* bob waves");
    assert_eq!(bob.say("/msg alice psst"), 200);
    alice.expect("[private] <bob> psst");
    assert_eq!(bob.say("/msg nobody psst"), 404);
    // Nicknames are unique in the room (the XEP-0045 409 as a 486).
    let r = carol.say_to(ROOM, "/join alice");
    assert_eq!(status(&r), 486, "{r}");
    assert!(r.contains("nickname is taken"), "{r}");
    assert_eq!(carol.say("/join"), 200);
    carol.expect("You are in");
    alice.expect("*** carol has joined");
    bob.expect("*** carol has joined");
    // Only a moderator removes someone.
    assert_eq!(carol.say("/kick bob"), 403);
    assert_eq!(carol.say("/who"), 200);
    let (who, _) = carol.expect("Here:");
    assert!(body(&who).contains("@alice, bob, carol"), "{who}");
    assert_eq!(alice.say("/kick bob spamming"), 200);
    bob.expect("You were removed from the room by alice: spamming");
    carol.expect("*** bob was removed by alice: spamming");
    assert_eq!(bob.say("still here?"), 403);
    assert_eq!(carol.say("/leave"), 200);
    alice.expect("*** carol has left");
    assert_eq!(carol.say("/help"), 200);
    carol.expect("/join [nick]");
    // A usage error names the usage.
    let r = alice.say_to(ROOM, "/msg");
    assert_eq!(status(&r), 400, "{r}");
    assert!(r.contains("usage: /msg NICK TEXT"), "{r}");
    // Bob, removed, hears nothing more of the room.
    assert_eq!(alice.say("bob is gone"), 200);
    bob.quiet(Duration::from_millis(600));
}

#[test]
fn rooms_their_owners_and_history_survive_a_restart() {
    let dir = std::env::temp_dir().join(format!("parley-rooms-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let first = TestServer::start_in(&dir, NO_AUTH);
    for u in ["alice", "bob"] {
        user_add(&first, &format!("{u}@localhost"), "pw");
    }
    {
        let alice = Member::new(&first, "alice");
        assert_eq!(alice.say("/join"), 200);
        alice.expect("You are in");
        assert_eq!(alice.say("/topic Ops"), 200);
        for text in ["one", "two", "three"] {
            assert_eq!(alice.say(text), 200);
        }
    }
    first.stop();

    let second = TestServer::start_in(&dir, NO_AUTH);
    let bob = Member::new(&second, "bob");
    assert_eq!(bob.say("/join"), 200);
    let (welcome, _) = bob.expect("You are in");
    let text = body(&welcome);
    assert!(text.contains("as bob (participant)"), "{text}");
    assert!(text.contains("Topic: Ops"), "{text}");
    let one = text.find("<alice> one").expect(text);
    let three = text.find("<alice> three").expect(text);
    assert!(one < three, "{text}");
    // Alice is still the owner: she enters as a moderator and may remove.
    let alice = Member::new(&second, "alice");
    assert_eq!(alice.say("/join"), 200);
    let (welcome, _) = alice.expect("You are in");
    assert!(body(&welcome).contains("as alice (moderator)"), "{welcome}");
    assert_eq!(alice.say("/kick bob"), 200);
    bob.expect("You were removed");
    drop(second);
    let _ = std::fs::remove_dir_all(&dir);
}

pub(crate) const PARLEY: &str = "parley.example.test";
pub(crate) const XMPP: &str = "xmpp.example.test";
const XROOM: &str = "dev@conference.parley.example.test";
const WAIT: Duration = Duration::from_secs(30);

/// Parley serving `parley.example.test` (rooms in
/// `conference.parley.example.test`) and Prosody serving
/// `xmpp.example.test`, finding each other through SRV records.
pub(crate) struct Federation {
    _dns: parley_test_support::dns::TestDns,
    pub(crate) prosody: parley_test_support::prosody::Prosody,
    pub(crate) parley: TestServer,
}

/// `user@parley.example.test` with password `pw`.
pub(crate) fn add_user(f: &Federation, user: &str) {
    crate::registrar_proxy::cli_with(
        &f.parley,
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

fn federation() -> Federation {
    federation_with(None)
}

/// [`federation`], with Prosody's MUC service at `muc` when given.
fn federation_with(muc: Option<&str>) -> Federation {
    federation_full(muc, &[], "")
}

/// [`federation_with`], with more domains served by Parley's s2s listener
/// (IRC networks) and more configuration.
pub(crate) fn federation_full(muc: Option<&str>, also: &[&str], config: &str) -> Federation {
    use parley_test_support::dns::{Rec, TestDns};
    use parley_test_support::prosody::{Ports, Prosody};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let parley_s2s = listener.local_addr().unwrap().port();
    let ports = Ports::free();
    let mut records = Vec::new();
    let conference = format!("conference.{PARLEY}");
    let mut domains = vec![
        (PARLEY, parley_s2s),
        (&conference as &str, parley_s2s),
        (XMPP, ports.s2s),
    ];
    domains.extend(muc.map(|m| (m, ports.s2s)));
    domains.extend(also.iter().map(|d| (*d, parley_s2s)));
    for (domain, port) in domains {
        records.push(Rec::Srv {
            name: format!("_xmpp-server._tcp.{domain}"),
            priority: 0,
            weight: 5,
            port,
            target: domain.to_string(),
        });
        records.push(Rec::A {
            name: domain.to_string(),
            ip: std::net::Ipv4Addr::LOCALHOST,
        });
    }
    let dns = TestDns::start("example.test", records);
    let prosody = match muc {
        Some(m) => Prosody::start_with_muc(XMPP, ports, dns.addr, m),
        None => Prosody::start(XMPP, ports, dns.addr, &[]),
    };
    let parley = TestServer::start_with_xmpp(
        &format!(
            "domains = [\"{PARLEY}\"]\n[auth]\nregistrar = false\nproxy = false\n[dns]\nnameserver = \"{}\"\n{config}",
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

fn is(e: &str, kind: &str, from: &str) -> bool {
    e.contains(&format!("\"event\": \"{kind}\"")) && e.contains(&format!("\"from\": \"{from}\""))
}

#[test]
fn xmpp_and_sip_members_share_a_room_over_s2s() {
    let f = federation();
    f.prosody.register("juliet", "jpw");
    f.prosody.register("romeo", "rpw");
    add_user(&f, "alice");
    let alice = Member::of(&f.parley, "alice", PARLEY, XROOM);
    assert_eq!(alice.say("/join"), 200);
    alice.expect("You are in");
    assert_eq!(alice.say("before you came"), 200);

    // Juliet enters from Prosody: the roster, her own presence (110), the
    // history with its XEP-0203 delay, then the subject (XEP-0045 §7.2).
    let mut juliet = parley_test_support::prosody::XmppClient::connect(
        &format!("juliet@{XMPP}/balcony"),
        "jpw",
        f.prosody.c2s,
    );
    juliet.command(&format!(
        r#"{{"cmd": "join", "room": "{XROOM}", "nick": "juliet", "maxstanzas": 5}}"#
    ));
    let e = juliet.wait_for(|e| is(e, "presence", &format!("{XROOM}/alice")), WAIT);
    assert!(e.contains("\"role\": \"moderator\""), "{e}");
    assert!(e.contains("\"affiliation\": \"owner\""), "{e}");
    let e = juliet.wait_for(|e| is(e, "presence", &format!("{XROOM}/juliet")), WAIT);
    assert!(e.contains("\"110\""), "{e}");
    assert!(e.contains("\"role\": \"participant\""), "{e}");
    let e = juliet.wait_for(|e| e.contains("before you came"), WAIT);
    assert!(e.contains("\"delay\": \"20"), "{e}");
    assert!(is(&e, "message", &format!("{XROOM}/alice")), "{e}");
    juliet.wait_for(|e| e.contains("\"subject\": \"\""), WAIT);
    alice.expect("*** juliet has joined");

    // Both ways, each with the speaker named; Juliet's own message comes
    // back to her (XEP-0045 §7.4).
    juliet.command(&format!(
        r#"{{"cmd": "groupchat", "to": "{XROOM}", "body": "hello from xmpp", "id": "g1"}}"#
    ));
    let (m, _) = alice.expect("<juliet> hello from xmpp");
    assert!(
        header(&m, "From").is_some_and(|f| f.starts_with("\"juliet\"")),
        "{m}"
    );
    let e = juliet.wait_for(|e| e.contains("hello from xmpp"), WAIT);
    assert!(e.contains("\"id\": \"g1\""), "{e}");
    assert_eq!(alice.say("hi juliet"), 200);
    let e = juliet.wait_for(|e| e.contains("hi juliet"), WAIT);
    assert!(is(&e, "message", &format!("{XROOM}/alice")), "{e}");
    assert!(e.contains("\"type\": \"groupchat\""), "{e}");

    // A new nickname: the old one leaves with 303, the new one is present.
    assert_eq!(alice.say("/nick al"), 200);
    let e = juliet.wait_for(|e| is(e, "presence", &format!("{XROOM}/alice")), WAIT);
    assert!(e.contains("\"303\""), "{e}");
    assert!(e.contains("\"nick\": \"al\""), "{e}");
    juliet.wait_for(|e| is(e, "presence", &format!("{XROOM}/al")), WAIT);
    // A private message to one occupant.
    juliet.command(&format!(
        r#"{{"cmd": "message", "to": "{XROOM}/al", "body": "psst"}}"#
    ));
    alice.expect("[private] <juliet> psst");
    // The subject, set from XMPP.
    juliet.command(&format!(
        r#"{{"cmd": "subject", "to": "{XROOM}", "subject": "Balcony"}}"#
    ));
    alice.expect("*** juliet set the topic: Balcony");

    // Romeo cannot take a nickname someone holds (409 conflict).
    let mut romeo = parley_test_support::prosody::XmppClient::connect(
        &format!("romeo@{XMPP}/garden"),
        "rpw",
        f.prosody.c2s,
    );
    romeo.command(&format!(
        r#"{{"cmd": "join", "room": "{XROOM}", "nick": "juliet"}}"#
    ));
    let e = romeo.wait_for(|e| e.contains("presence_error"), WAIT);
    assert!(e.contains("\"condition\": \"conflict\""), "{e}");
    // The service lists the room.
    romeo.command(&format!(
        r#"{{"cmd": "raw", "xml": "<iq type='get' id='d1' to='conference.{PARLEY}'><query xmlns='http://jabber.org/protocol/disco#items'/></iq>"}}"#
    ));
    let e = romeo.wait_for(|e| e.contains("\"id\": \"d1\""), WAIT);
    assert!(e.contains(XROOM), "{e}");
    assert!(e.contains("Balcony"), "{e}");

    // Alice removes Juliet: 307 with her own 110; Juliet hears no more.
    assert_eq!(alice.say("/kick juliet enough"), 200);
    let e = juliet.wait_for(
        |e| is(e, "presence", &format!("{XROOM}/juliet")) && e.contains("307"),
        WAIT,
    );
    assert!(e.contains("\"110\""), "{e}");
    assert!(e.contains("\"type\": \"unavailable\""), "{e}");
    // Romeo enters and leaves; Alice sees both.
    romeo.command(&format!(
        r#"{{"cmd": "join", "room": "{XROOM}", "nick": "romeo"}}"#
    ));
    alice.expect("*** romeo has joined");
    romeo.command(&format!(
        r#"{{"cmd": "leave", "room": "{XROOM}", "nick": "romeo"}}"#
    ));
    alice.expect("*** romeo has left");
    let e = romeo.wait_for(
        |e| is(e, "presence", &format!("{XROOM}/romeo")) && e.contains("unavailable"),
        WAIT,
    );
    assert!(e.contains("\"110\""), "{e}");
}

#[test]
fn an_operator_creates_configures_empties_and_closes_a_room() {
    use crate::admin::http;
    const TOKEN: &str = "room-admin-token";
    let server = TestServer::start_with_admin(&format!("{NO_AUTH}[admin]\ntoken = \"{TOKEN}\"\n"));
    let admin = server.admin.unwrap();
    user_add(&server, "alice@localhost", "pw");
    let alice = Member::of(&server, "alice", "localhost", "ops@conference.localhost");

    let (code, answer) = http(
        admin,
        "POST",
        "/api/v1/rooms",
        Some(TOKEN),
        Some(r#"{"address": "ops", "members_only": true, "subject": "Operations"}"#),
    );
    assert_eq!(code, 201, "{answer}");
    assert!(
        answer.contains("\"address\":\"ops@conference.localhost\""),
        "{answer}"
    );
    let (code, _) = http(
        admin,
        "POST",
        "/api/v1/rooms",
        Some(TOKEN),
        Some(r#"{"address": "ops"}"#),
    );
    assert_eq!(code, 409);
    let (code, answer) = http(
        admin,
        "POST",
        "/api/v1/rooms",
        Some(TOKEN),
        Some(r#"{"address": "x@elsewhere.test"}"#),
    );
    assert_eq!(code, 400, "{answer}");
    // Members only: alice has no standing yet.
    let r = alice.say_to("ops@conference.localhost", "/join");
    assert_eq!(status(&r), 403, "{r}");
    assert!(r.contains("members only"), "{r}");
    let (code, answer) = http(
        admin,
        "PATCH",
        "/api/v1/rooms/ops@conference.localhost",
        Some(TOKEN),
        Some(r#"{"members_only": false}"#),
    );
    assert_eq!(code, 200, "{answer}");
    assert_eq!(alice.say("/join"), 200);
    let (welcome, _) = alice.expect("You are in");
    assert!(body(&welcome).contains("Topic: Operations"), "{welcome}");
    let (code, answer) = http(admin, "GET", "/api/v1/rooms", Some(TOKEN), None);
    assert_eq!(code, 200);
    let v: serde_json::Value = serde_json::from_str(&answer).unwrap();
    let members = &v["rooms"][0]["members"];
    assert_eq!(members[0]["nick"], "alice", "{answer}");
    assert_eq!(members[0]["network"], "sip", "{answer}");
    assert_eq!(members[0]["address"], "alice@localhost", "{answer}");
    let (code, _) = http(
        admin,
        "DELETE",
        "/api/v1/rooms/ops/members/alice",
        Some(TOKEN),
        None,
    );
    assert_eq!(code, 204);
    alice.expect("You were removed from the room by the operator");
    let (code, _) = http(admin, "DELETE", "/api/v1/rooms/ops", Some(TOKEN), None);
    assert_eq!(code, 204);
    let (code, _) = http(admin, "GET", "/api/v1/rooms/ops", Some(TOKEN), None);
    assert_eq!(code, 404);
    let (_, metrics) = http(admin, "GET", "/metrics", None, None);
    assert!(metrics.contains("parley_rooms 0"), "{metrics}");

    // The same from the command line, through the admin API.
    let config = server.state_dir.join("room-cli.toml");
    std::fs::write(
        &config,
        format!("{NO_AUTH}[admin]\nlisten = \"{admin}\"\ntoken = \"{TOKEN}\"\n"),
    )
    .unwrap();
    let cli = |args: &[&str]| crate::registrar_proxy::run_cli(args, &config);
    let made = cli(&[
        "room",
        "create",
        "plans",
        "--members-only",
        "true",
        "--subject",
        "From the CLI",
    ]);
    assert!(made.contains("plans@conference.localhost"), "{made}");
    assert!(made.contains("members-only"), "{made}");
    let listed = cli(&["room", "list"]);
    assert!(
        listed.contains("plans@conference.localhost") && listed.contains("From the CLI"),
        "{listed}"
    );
    let set = cli(&["room", "set", "plans", "--members-only", "false"]);
    assert!(set.contains("open"), "{set}");
    assert!(cli(&["room", "close", "plans"]).contains("closed"));
    assert!(cli(&["room", "list"]).contains("no rooms in conference.localhost"));
}

#[test]
fn subscribers_follow_the_roster_on_the_default_config() {
    // The embedded default: digest on REGISTER and on everything a local
    // user sends.
    let server = TestServer::start("");
    for u in ["alice", "bob", "carol"] {
        user_add(&server, &format!("{u}@localhost"), &format!("{u}-pw"));
    }
    let member =
        |u: &str| Member::with_password(&server, u, "localhost", ROOM, Some(&format!("{u}-pw")));
    let (alice, bob, carol) = (member("alice"), member("bob"), member("carol"));
    // Unauthenticated, nothing happens in the room.
    let stranger = Member {
        ua: Ua::new(server.udp),
        user: "alice".into(),
        domain: "localhost".into(),
        room: ROOM.into(),
        password: None,
        inbox: RefCell::new(Vec::new()),
        n: std::cell::Cell::new(0),
    };
    assert_eq!(stranger.say("/join"), 407);
    assert_eq!(alice.say("/join"), 200);
    alice.expect("You are in");

    // Carol watches the room: 200, then the roster at once.
    let r = carol.request(
        "SUBSCRIBE",
        &format!("sip:{ROOM}"),
        &format!("Event: conference\nAccept: application/conference-info+xml\nExpires: 600\nContact: <sip:carol@{}>", carol.ua.local),
        "",
    );
    assert_eq!(status(&r), 200, "{r}");
    let to_tag = header(&r, "To")
        .and_then(|t| t.split("tag=").nth(1))
        .unwrap()
        .to_string();
    let contact = header(&r, "Contact")
        .unwrap()
        .trim_matches(['<', '>'])
        .to_string();
    let (n, _) = carol.expect("<conference-info");
    assert_eq!(header(&n, "Event"), Some("conference"), "{n}");
    assert!(
        header(&n, "Subscription-State").is_some_and(|s| s.starts_with("active;expires=")),
        "{n}"
    );
    assert_eq!(
        header(&n, "Content-Type"),
        Some("application/conference-info+xml"),
        "{n}"
    );
    let doc = body(&n);
    assert!(doc.contains("version=\"1\""), "{doc}");
    assert!(doc.contains("<user-count>1</user-count>"), "{doc}");
    assert!(
        doc.contains("<user entity=\"sip:alice@localhost\" state=\"full\">"),
        "{doc}"
    );
    assert!(doc.contains("<entry>moderator</entry>"), "{doc}");
    // The roster changes: a NOTIFY with the next version each time.
    assert_eq!(bob.say("/join bobby"), 200);
    let (n, _) = carol.expect("<display-text>bobby</display-text>");
    assert!(body(&n).contains("version=\"2\""), "{n}");
    assert!(body(&n).contains("<user-count>2</user-count>"), "{n}");
    assert_eq!(bob.say("/nick robert"), 200);
    let (n, _) = carol.expect("<display-text>robert</display-text>");
    assert!(body(&n).contains("version=\"3\""), "{n}");
    // Carol ends the subscription in its dialog: the last NOTIFY says so.
    carol.ua.send(
        &format!(
            "SUBSCRIBE {contact} SIP/2.0\nFrom: <sip:carol@localhost>;tag=carol-2\nTo: <sip:{ROOM}>;tag={to_tag}\nCall-ID: carol-2\nCSeq: 2 SUBSCRIBE\nEvent: conference\nExpires: 0\nContact: <sip:carol@{}>",
            carol.ua.local
        ),
        "",
    );
    let r = carol.final_response();
    assert_eq!(status(&r), 200, "{r}");
    let (n, _) = carol.expect("<conference-info");
    assert!(
        header(&n, "Subscription-State").is_some_and(|s| s.starts_with("terminated")),
        "{n}"
    );
    // Another package is not the room's.
    let r = carol.request(
        "SUBSCRIBE",
        &format!("sip:{ROOM}"),
        "Event: presence\nExpires: 600",
        "",
    );
    assert_eq!(status(&r), 489, "{r}");
}

#[test]
fn sipp_is_a_pager_member_and_a_conference_subscriber() {
    // SIPp answers only MD5 challenges, and only the first one it sees.
    let server = TestServer::start("");
    user_add(&server, "alice@localhost", "alice-pw");
    user_add(&server, "sipp@localhost", "sipp-pw");
    let alice = Member::with_password(&server, "alice", "localhost", ROOM, Some("alice-pw"));
    assert_eq!(alice.say("/join"), 200);
    alice.expect("You are in");
    // The member's user agent: registered, it takes the room's MESSAGEs
    // (the welcome, then what alice says).
    let port = parley_test_support::sipp::free_port();
    register(&server, "sipp", "sipp-pw", "u1", port);
    let agent = Sipp::start_on("uas_message.xml", "u1", 2, None, port, &[]);
    Sipp::start(
        "uac_room_member.xml",
        "u1",
        1,
        Some(server.udp),
        &[
            "-s", "sipp", "-au", "sipp", "-ap", "sipp-pw", "-key", "to", ROOM,
        ],
    )
    .wait();
    alice.expect("*** sipp has joined");
    alice.expect("<sipp> hello from sipp");
    assert_eq!(alice.say("hi sipp"), 200);
    let trace = agent.wait();
    assert!(
        trace.contains("You are in dev@conference.localhost as sipp (participant)"),
        "{trace}"
    );
    assert!(trace.contains("<alice> hi sipp"), "{trace}");
}

/// An MSRP member's endpoint: the next SEND whose body contains `part`
/// (each SEND answered 200), or a panic naming what came.
fn msrp_expect(peer: &mut crate::msrp_relay::Peer, part: &str) -> String {
    let mut seen = Vec::new();
    let deadline = Instant::now() + WAIT;
    while Instant::now() < deadline {
        let Some((h, body, _)) = peer.next_request(Duration::from_secs(1)) else {
            continue;
        };
        if h.method() == Some("SEND") {
            peer.ok(&h);
        }
        let text = String::from_utf8_lossy(&body.unwrap_or_default()).into_owned();
        if text.contains(part) {
            return text;
        }
        seen.push(text);
    }
    panic!("the MSRP member never got {part:?}; got {seen:#?}");
}

#[test]
fn xmpp_pager_and_msrp_members_see_each_other_in_one_room() {
    use parley::proto::msrp::{Flag, Head, MsrpUri};
    let f = federation();
    f.prosody.register("juliet", "jpw");
    for u in ["alice", "bob"] {
        crate::registrar_proxy::cli_with(
            &f.parley,
            &format!("domains = [\"{PARLEY}\"]"),
            &["user", "add", &format!("{u}@{PARLEY}"), "--password", "pw"],
        );
    }
    let alice = Member::of(&f.parley, "alice", PARLEY, XROOM);
    assert_eq!(alice.say("/join"), 200);
    alice.expect("You are in");

    // Bob enters over MSRP (RFC 7701): an INVITE to the room; Parley, the
    // answerer, connects to Bob's endpoint.
    let bob_sip = Member::of(&f.parley, "bob", PARLEY, XROOM);
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let bob_uri = MsrpUri::new(
        false,
        "127.0.0.1",
        listener.local_addr().unwrap().port(),
        "bob7701",
    );
    let offer = format!(
        "v=0\r\no=bob 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=message {} TCP/MSRP *\r\na=accept-types:message/cpim text/plain\r\na=accept-wrapped-types:text/plain\r\na=path:{bob_uri}\r\n",
        bob_uri.port.unwrap()
    );
    let ok = bob_sip.request(
        "INVITE",
        &format!("sip:{XROOM}"),
        &format!(
            "Contact: <sip:bob@{}>\nContent-Type: application/sdp",
            bob_sip.ua.local
        ),
        &offer,
    );
    assert_eq!(status(&ok), 200, "{ok}");
    let answer = body(&ok).to_string();
    assert!(
        answer.contains("a=chatroom:nickname private-messages"),
        "{answer}"
    );
    let room_uri = MsrpUri::parse(
        answer
            .lines()
            .find_map(|l| l.trim().strip_prefix("a=path:"))
            .expect("a=path")
            .trim(),
    )
    .unwrap();
    let (conn, _) = listener.accept().unwrap();
    let mut bob = crate::msrp_relay::Peer::from_stream(conn, bob_uri.clone());
    let welcome = msrp_expect(&mut bob, "You are in");
    assert!(
        welcome.contains(&format!("From: <sip:{XROOM}>")),
        "{welcome}"
    );
    assert!(
        welcome.contains("as bob (participant). Also here: alice."),
        "{welcome}"
    );
    alice.expect("*** bob has joined");

    // Juliet enters from XMPP: both SIP members hear of it.
    let mut juliet = parley_test_support::prosody::XmppClient::connect(
        &format!("juliet@{XMPP}/balcony"),
        "jpw",
        f.prosody.c2s,
    );
    juliet.command(&format!(
        r#"{{"cmd": "join", "room": "{XROOM}", "nick": "juliet"}}"#
    ));
    juliet.wait_for(|e| is(e, "presence", &format!("{XROOM}/bob")), WAIT);
    juliet.wait_for(|e| e.contains("\"subject\": \"\""), WAIT);
    alice.expect("*** juliet has joined");
    msrp_expect(&mut bob, "*** juliet has joined");

    // Bob speaks over MSRP: the pager member and the XMPP member hear it,
    // each with Bob named.
    let cpim = |to: &str, text: &str| {
        format!(
            "From: <sip:bob@{PARLEY}>\r\nTo: <{to}>\r\n\r\nContent-Type: text/plain\r\n\r\n{text}"
        )
    };
    let say = |bob: &mut crate::msrp_relay::Peer, to: &str, text: &str| {
        let tid = bob.tid();
        let body = cpim(to, text);
        let head = Head::request("SEND", &tid, vec![room_uri.clone()], vec![bob_uri.clone()])
            .with("Message-ID", format!("m{tid}"))
            .with("Byte-Range", format!("1-{}/{}", body.len(), body.len()))
            .with("Content-Type", "message/cpim");
        bob.send(&head, Some(body.as_bytes()), Flag::End);
        let r = bob.response_to(&tid, WAIT).expect("a response to the SEND");
        assert_eq!(r.code(), Some(200), "{r:?}");
    };
    say(&mut bob, &format!("sip:{XROOM}"), "hello from msrp");
    alice.expect("<bob> hello from msrp");
    let e = juliet.wait_for(|e| e.contains("hello from msrp"), WAIT);
    assert!(is(&e, "message", &format!("{XROOM}/bob")), "{e}");
    // The others speak: Bob gets CPIM whose From names the speaker.
    juliet.command(&format!(
        r#"{{"cmd": "groupchat", "to": "{XROOM}", "body": "hi from xmpp"}}"#
    ));
    let m = msrp_expect(&mut bob, "hi from xmpp");
    assert!(
        m.contains(&format!("From: \"juliet\" <sip:juliet@{XMPP}>")),
        "{m}"
    );
    assert!(m.contains(&format!("To: <sip:{XROOM}>")), "{m}");
    alice.expect("<juliet> hi from xmpp");
    assert_eq!(alice.say("hi from pager"), 200);
    let m = msrp_expect(&mut bob, "hi from pager");
    assert!(
        m.contains(&format!("From: \"alice\" <sip:alice@{PARLEY}>")),
        "{m}"
    );
    juliet.wait_for(|e| e.contains("hi from pager"), WAIT);

    // NICKNAME (RFC 7701 §7): a new one is taken, someone else's is 425.
    let nickname = |bob: &mut crate::msrp_relay::Peer, nick: &str| {
        let tid = bob.tid();
        let head = Head::request(
            "NICKNAME",
            &tid,
            vec![room_uri.clone()],
            vec![bob_uri.clone()],
        )
        .with("Use-Nickname", format!("\"{nick}\""));
        bob.send(&head, None, Flag::End);
        bob.response_to(&tid, WAIT)
            .expect("a response to NICKNAME")
            .code()
    };
    assert_eq!(nickname(&mut bob, "robert"), Some(200));
    alice.expect("*** bob is now known as robert");
    let e = juliet.wait_for(|e| is(e, "presence", &format!("{XROOM}/bob")), WAIT);
    assert!(e.contains("\"303\""), "{e}");
    assert_eq!(nickname(&mut bob, "alice"), Some(425));
    // A private message: CPIM To names one member.
    say(&mut bob, &format!("sip:juliet@{XMPP}"), "just for you");
    let e = juliet.wait_for(|e| e.contains("just for you"), WAIT);
    assert!(e.contains("\"type\": \"chat\""), "{e}");
    assert!(is(&e, "message", &format!("{XROOM}/robert")), "{e}");

    // Bob hangs up: he leaves, and the others see it.
    let to_tag = header(&ok, "To")
        .and_then(|t| t.split("tag=").nth(1))
        .unwrap()
        .to_string();
    let call = header(&ok, "Call-ID").unwrap().to_string();
    bob_sip.ua.send(
        &format!(
            "BYE {} SIP/2.0\nFrom: <sip:bob@{PARLEY}>;tag={call}\nTo: <sip:{XROOM}>;tag={to_tag}\nCall-ID: {call}\nCSeq: 3 BYE",
            header(&ok, "Contact").unwrap().trim_matches(['<', '>'])
        ),
        "",
    );
    assert_eq!(status(&bob_sip.final_response()), 200);
    alice.expect("*** robert has left");
    let e = juliet.wait_for(|e| is(e, "presence", &format!("{XROOM}/robert")), WAIT);
    assert!(e.contains("unavailable"), "{e}");
}

#[test]
fn a_ban_holds_whatever_network_the_banned_user_comes_back_on() {
    let f = federation();
    f.prosody.register("juliet", "jpw");
    add_user(&f, "alice");
    let alice = Member::of(&f.parley, "alice", PARLEY, XROOM);
    assert_eq!(alice.say("/join"), 200);
    alice.expect("You are in");
    let mut juliet = parley_test_support::prosody::XmppClient::connect(
        &format!("juliet@{XMPP}/balcony"),
        "jpw",
        f.prosody.c2s,
    );
    juliet.command(&format!(
        r#"{{"cmd": "join", "room": "{XROOM}", "nick": "juliet"}}"#
    ));
    alice.expect("*** juliet has joined");
    assert_eq!(alice.say("/ban juliet spam"), 200);
    alice.expect("*** juliet was banned by alice: spam");
    let e = juliet.wait_for(
        |e| is(e, "presence", &format!("{XROOM}/juliet")) && e.contains("unavailable"),
        WAIT,
    );
    assert!(e.contains("\"301\""), "{e}");
    assert!(e.contains("\"affiliation\": \"outcast\""), "{e}");
    // Back over XMPP: forbidden.
    juliet.command(&format!(
        r#"{{"cmd": "join", "room": "{XROOM}", "nick": "jules"}}"#
    ));
    let e = juliet.wait_for(|e| e.contains("presence_error"), WAIT);
    assert!(e.contains("\"condition\": \"forbidden\""), "{e}");
    // Back over SIP, under the same address: banned too.
    let sip_juliet = Ua::new(f.parley.udp);
    sip_juliet.send(
        &format!("MESSAGE sip:{XROOM} SIP/2.0\nFrom: <sip:juliet@{XMPP}>;tag=j1\nTo: <sip:{XROOM}>\nCall-ID: j1\nCSeq: 1 MESSAGE\nContent-Type: text/plain"),
        "/join jules",
    );
    let r = sip_juliet.final_response();
    assert_eq!(status(&r), 403, "{r}");
    assert!(r.contains("banned"), "{r}");
}

#[test]
fn a_member_whose_link_takes_nothing_is_dropped_not_buffered() {
    // A small outbox so the test is quick; the default is 256.
    let server = TestServer::start(&format!("{NO_AUTH}[rooms]\nmember_queue = 2\n"));
    for u in ["alice", "carol"] {
        user_add(&server, &format!("{u}@localhost"), "pw");
    }
    let alice = Member::new(&server, "alice");
    assert_eq!(alice.say("/join"), 200);
    alice.expect("You are in");
    // Carol's contact is a socket nobody reads: MESSAGEs to her are never
    // answered.
    let deaf = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let ua = Ua::new(server.udp);
    ua.send(
        &format!(
            "REGISTER sip:localhost SIP/2.0\nFrom: <sip:carol@localhost>;tag=r\nTo: <sip:carol@localhost>\nCall-ID: reg-carol\nCSeq: 1 REGISTER\nContact: <sip:carol@{}>\nExpires: 600",
            deaf.local_addr().unwrap()
        ),
        "",
    );
    assert_eq!(status(&ua.final_response()), 200);
    ua.send(
        &format!("MESSAGE sip:{ROOM} SIP/2.0\nFrom: <sip:carol@localhost>;tag=c1\nTo: <sip:{ROOM}>\nCall-ID: c1\nCSeq: 1 MESSAGE\nContent-Type: text/plain"),
        "/join",
    );
    assert_eq!(status(&ua.final_response()), 200);
    alice.expect("*** carol has joined");
    // The welcome is stuck on the way to Carol; two more fill her outbox,
    // the next overflows it: she is removed, and the room says so.
    for n in 0..4 {
        assert_eq!(alice.say(&format!("message {n}")), 200);
    }
    alice.expect("*** carol was removed: not reachable");
    assert_eq!(alice.say("/who"), 200);
    let (who, _) = alice.expect("Here:");
    assert!(body(&who).ends_with("Here: @alice"), "{who}");
}

#[test]
fn an_msrp_member_reaches_the_room_through_kamailios_relay() {
    use crate::msrp_relay::{relay_uri, Peer};
    use parley::proto::msrp::{Flag, Head, MsrpUri};
    let server = TestServer::start(NO_AUTH);
    for u in ["alice", "bob"] {
        user_add(&server, &format!("{u}@localhost"), "pw");
    }
    let alice = Member::new(&server, "alice");
    assert_eq!(alice.say("/join"), 200);
    alice.expect("You are in");
    let (_kamailio, kam) = crate::msrp_relay::kamailio_relay();
    // Bob's client authenticates to Kamailio's relay and offers the path
    // through it (RFC 4976).
    let mut bob = Peer::connect(kam, "bobk7701");
    let (kam_path, _) = bob
        .auth(&relay_uri(kam), "bob", "kampw")
        .expect("Kamailio grants a session");
    let offer = format!(
        "v=0\r\no=bob 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=message {} TCP/MSRP *\r\na=accept-types:message/cpim text/plain\r\na=accept-wrapped-types:text/plain\r\na=path:{kam_path} {}\r\n",
        kam.port(),
        bob.uri
    );
    let bob_sip = Member::new(&server, "bob");
    let ok = bob_sip.request(
        "INVITE",
        &format!("sip:{ROOM}"),
        &format!(
            "Contact: <sip:bob@{}>\nContent-Type: application/sdp",
            bob_sip.ua.local
        ),
        &offer,
    );
    assert_eq!(status(&ok), 200, "{ok}");
    let room_uri = MsrpUri::parse(
        body(&ok)
            .lines()
            .find_map(|l| l.trim().strip_prefix("a=path:"))
            .expect("a=path")
            .trim(),
    )
    .unwrap();
    // Parley connected to Kamailio; the welcome comes through it.
    let welcome = msrp_expect(&mut bob, "You are in");
    assert!(
        welcome.contains("as bob (participant). Also here: alice."),
        "{welcome}"
    );
    alice.expect("*** bob has joined");
    // And Bob's message goes through Kamailio to the room.
    let tid = bob.tid();
    let text = "through the relay";
    let head = Head::request(
        "SEND",
        &tid,
        vec![kam_path.clone(), room_uri],
        vec![bob.uri.clone()],
    )
    .with("Message-ID", format!("m{tid}"))
    .with("Byte-Range", format!("1-{}/{}", text.len(), text.len()))
    .with("Content-Type", "text/plain");
    bob.send(&head, Some(text.as_bytes()), Flag::End);
    let r = bob
        .response_to(&tid, WAIT)
        .expect("Kamailio answers the SEND");
    assert_eq!(r.code(), Some(200), "{r:?}");
    alice.expect("<bob> through the relay");
    assert_eq!(alice.say("heard you"), 200);
    let m = msrp_expect(&mut bob, "heard you");
    assert!(m.contains("From: \"alice\" <sip:alice@localhost>"), "{m}");
}

#[test]
fn a_sip_user_joins_a_room_on_prosodys_muc() {
    use parley_test_support::prosody::XmppClient;
    const MUC: &str = "muc.xmpp.example.test";
    let f = federation_with(Some(MUC));
    let (prosody, parley) = (&f.prosody, &f.parley);
    prosody.register("juliet", "jpw");
    crate::registrar_proxy::cli_with(
        parley,
        &format!("domains = [\"{PARLEY}\"]"),
        &[
            "user",
            "add",
            &format!("alice@{PARLEY}"),
            "--password",
            "pw",
        ],
    );
    // Juliet makes the room on Prosody.
    let room = format!("dev@{MUC}");
    let mut juliet = XmppClient::connect(&format!("juliet@{XMPP}/balcony"), "jpw", prosody.c2s);
    juliet.command(&format!(
        r#"{{"cmd": "join", "room": "{room}", "nick": "juliet"}}"#
    ));
    juliet.wait_for(|e| is(e, "presence", &format!("{room}/juliet")), WAIT);
    juliet.command(&format!(
        r#"{{"cmd": "groupchat", "to": "{room}", "body": "anyone?"}}"#
    ));
    juliet.wait_for(|e| e.contains("anyone?"), WAIT);

    // Alice, a SIP user of Parley, enters through the gateway address.
    let gateway = format!("dev%25{MUC}@conference.{PARLEY}");
    let alice = Member::of(parley, "alice", PARLEY, &gateway);
    let r = alice.say_to(&gateway, "/join alice");
    assert_eq!(status(&r), 200, "{r}\n{}", prosody.log());
    let (welcome, _) = alice.expect("You are in");
    assert!(
        body(&welcome).contains(&format!("You are in {room} as alice")),
        "{welcome}"
    );
    assert!(body(&welcome).contains("Also here: juliet."), "{welcome}");
    assert!(
        header(&welcome, "From").is_some_and(|f| f.contains(&format!("sip:{gateway}"))),
        "{welcome}"
    );
    let e = juliet.wait_for(|e| is(e, "presence", &format!("{room}/alice")), WAIT);
    assert!(e.contains("available"), "{e}");

    // Both ways, with the speaker named.
    assert_eq!(alice.say("hello from sip"), 200);
    let e = juliet.wait_for(|e| e.contains("hello from sip"), WAIT);
    assert!(is(&e, "message", &format!("{room}/alice")), "{e}");
    juliet.command(&format!(
        r#"{{"cmd": "groupchat", "to": "{room}", "body": "welcome, alice"}}"#
    ));
    let (m, _) = alice.expect("<juliet> welcome, alice");
    assert!(
        header(&m, "From").is_some_and(|f| f.starts_with("\"juliet\"")),
        "{m}"
    );
    // Alice's own message is not echoed back to her.
    assert!(
        alice
            .inbox
            .borrow()
            .iter()
            .all(|m| !body(m).contains("<alice> hello from sip")),
        "{:?}",
        alice.inbox.borrow()
    );
    // A private message through the room, and a nickname change.
    assert_eq!(alice.say("/msg juliet psst"), 200);
    let e = juliet.wait_for(|e| e.contains("psst"), WAIT);
    assert!(e.contains("\"type\": \"chat\""), "{e}");
    assert_eq!(alice.say("/nick ally"), 200);
    alice.expect("*** alice is now known as ally");
    juliet.wait_for(|e| is(e, "presence", &format!("{room}/ally")), WAIT);
    assert_eq!(alice.say("/who"), 200);
    let (who, _) = alice.expect("Here:");
    assert!(body(&who).contains("ally, juliet"), "{who}");
    // Leaving.
    assert_eq!(alice.say("/leave"), 200);
    let e = juliet.wait_for(
        |e| is(e, "presence", &format!("{room}/ally")) && e.contains("unavailable"),
        WAIT,
    );
    assert!(e.contains("unavailable"), "{e}");
    assert_eq!(alice.say("still here?"), 403);
}

#[test]
fn xmpp_users_reach_parleys_rooms_through_a_component_too() {
    use parley_test_support::dns::TestDns;
    use parley_test_support::prosody::{Ports, Prosody, XmppClient};
    const ROOMS: &str = "rooms.xmpp.example.test";
    // No DNS: Prosody's domain is reached through an explicit route, and
    // Parley is two of its components, one for users and one for rooms.
    let ports = Ports::free();
    let dns = TestDns::start("example.test", vec![]);
    let prosody = Prosody::start(
        XMPP,
        ports,
        dns.addr,
        &[("sip.xmpp.example.test", "s3cret"), (ROOMS, "r00ms")],
    );
    prosody.register("juliet", "jpw");
    let parley = TestServer::start(&format!(
        "domains = [\"{PARLEY}\"]\n[[route]]\ndomain = \"{XMPP}\"\nvia = \"xmpp\"\n\
         [[xmpp.component]]\nserver = \"127.0.0.1:{port}\"\ndomain = \"sip.xmpp.example.test\"\n\
         server_domain = \"{XMPP}\"\nsecret = \"s3cret\"\n\
         [[xmpp.component]]\nserver = \"127.0.0.1:{port}\"\ndomain = \"{ROOMS}\"\n\
         server_domain = \"{XMPP}\"\nsecret = \"r00ms\"\nlocal_domain = \"conference.{PARLEY}\"\n\
         {NO_AUTH}",
        port = ports.component
    ));
    crate::registrar_proxy::cli_with(
        &parley,
        &format!("domains = [\"{PARLEY}\"]"),
        &[
            "user",
            "add",
            &format!("alice@{PARLEY}"),
            "--password",
            "pw",
        ],
    );
    let alice = Member::of(&parley, "alice", PARLEY, XROOM);
    assert_eq!(alice.say("/join"), 200);
    alice.expect("You are in");

    // Juliet sees the room as dev@rooms.xmpp.example.test.
    let room = format!("dev@{ROOMS}");
    let mut juliet = XmppClient::connect(&format!("juliet@{XMPP}/balcony"), "jpw", prosody.c2s);
    juliet.command(&format!(
        r#"{{"cmd": "join", "room": "{room}", "nick": "juliet"}}"#
    ));
    let e = juliet.wait_for(|e| is(e, "presence", &format!("{room}/alice")), WAIT);
    assert!(e.contains("\"role\": \"moderator\""), "{e}");
    juliet.wait_for(
        |e| is(e, "presence", &format!("{room}/juliet")) && e.contains("110"),
        WAIT,
    );
    alice.expect("*** juliet has joined");
    juliet.command(&format!(
        r#"{{"cmd": "groupchat", "to": "{room}", "body": "via the component"}}"#
    ));
    alice.expect("<juliet> via the component");
    assert_eq!(alice.say("and back"), 200);
    let e = juliet.wait_for(|e| e.contains("and back"), WAIT);
    assert!(is(&e, "message", &format!("{room}/alice")), "{e}");
    // The service's rooms, under the component's name.
    juliet.command(&format!(
        r#"{{"cmd": "raw", "xml": "<iq type='get' id='d2' to='{ROOMS}'><query xmlns='http://jabber.org/protocol/disco#items'/></iq>"}}"#
    ));
    let e = juliet.wait_for(|e| e.contains("\"id\": \"d2\""), WAIT);
    assert!(e.contains("\"type\": \"result\""), "{e}");
    assert!(e.contains(&room), "{e}");
}
