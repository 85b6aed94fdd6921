//! Chat rooms Parley hosts: pager-mode SIP members with the command set,
//! persistence of rooms, standings and history across a restart, and XMPP
//! users (through Prosody over s2s) in the same room as SIP users.

use std::cell::RefCell;
use std::time::{Duration, Instant};

use parley_test_support::server::TestServer;

use crate::presence::{header, status, Ua};
use crate::registrar_proxy::user_add;

const NO_AUTH: &str = "[auth]\nregistrar = false\nproxy = false\n";
const ROOM: &str = "dev@conference.localhost";

/// A registered pager-mode SIP user, keeping the room's MESSAGEs that
/// arrive while it waits for its own final responses.
struct Member {
    ua: Ua,
    user: String,
    inbox: RefCell<Vec<String>>,
    n: std::cell::Cell<u32>,
}

impl Member {
    fn new(server: &TestServer, user: &str) -> Member {
        let ua = Ua::new(server.udp);
        ua.send(
            &format!(
                "REGISTER sip:localhost SIP/2.0\nFrom: <sip:{user}@localhost>;tag=r\nTo: <sip:{user}@localhost>\nCall-ID: reg-{user}\nCSeq: 1 REGISTER\nContact: <sip:{user}@{}>\nExpires: 600",
                ua.local
            ),
            "",
        );
        assert_eq!(status(&ua.final_response()), 200);
        Member {
            ua,
            user: user.to_string(),
            inbox: RefCell::new(Vec::new()),
            n: std::cell::Cell::new(0),
        }
    }

    /// Sends `text` to `to` and returns the final response.
    fn say_to(&self, to: &str, text: &str) -> String {
        self.n.set(self.n.get() + 1);
        let call = format!("{}-{}", self.user, self.n.get());
        self.ua.send(
            &format!(
                "MESSAGE sip:{to} SIP/2.0\nFrom: <sip:{}@localhost>;tag={call}\nTo: <sip:{to}>\nCall-ID: {call}\nCSeq: 1 MESSAGE\nContent-Type: text/plain",
                self.user
            ),
            text,
        );
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let m = self
                .ua
                .next_within(deadline.saturating_duration_since(Instant::now()));
            if m.starts_with("SIP/2.0 ") {
                if !m.starts_with("SIP/2.0 1") {
                    return m;
                }
            } else if m.starts_with("MESSAGE ") {
                self.inbox.borrow_mut().push(m);
            }
        }
    }

    fn say(&self, text: &str) -> u16 {
        status(&self.say_to(ROOM, text))
    }

    /// The next MESSAGE from the room whose body contains `part`; the
    /// ones before it are returned too, in order.
    fn expect(&self, part: &str) -> (String, Vec<String>) {
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
                    assert!(!left.is_zero(), "{} never got {part:?}; got {before:#?}", self.user);
                    let m = self.ua.next_within(left);
                    if !m.starts_with("MESSAGE ") {
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
    fn quiet(&self, wait: Duration) {
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
    assert!(header(&m, "From").is_some_and(|f| f.starts_with("\"bobby\" <sip:dev@conference.localhost>")), "{m}");
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
