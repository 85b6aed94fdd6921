//! A real SIMPLE client through Parley: two baresip user agents register
//! with digest, publish their presence, watch each other, see a change,
//! and exchange MESSAGEs.

use std::time::Duration;

use parley_test_support::baresip::Baresip;
use parley_test_support::server::TestServer;

use crate::registrar_proxy::user_add;

#[test]
fn two_baresip_users_see_each_other_and_talk() {
    // baresip answers only the first digest challenge, and only MD5: the
    // default config offers MD5 first.
    let server = TestServer::start("");
    user_add(&server, "alice@localhost", "alice-pw");
    user_add(&server, "bob@localhost", "bob-pw");
    let mut alice = Baresip::start("alice", "alice-pw", server.udp, &["bob"]);
    let mut bob = Baresip::start("bob", "bob-pw", server.udp, &["alice"]);
    let wait = Duration::from_secs(15);
    assert!(
        alice.wait_for("reginfo", "OK", wait),
        "{}",
        alice.command("reginfo", None)
    );
    assert!(
        bob.wait_for("reginfo", "OK", wait),
        "{}",
        bob.command("reginfo", None)
    );

    // Each publishes "open" and watches the other (PUBLISH, SUBSCRIBE, NOTIFY).
    assert!(
        alice.wait_for("contacts", "Online", wait),
        "{}",
        alice.command("contacts", None)
    );
    assert!(
        bob.wait_for("contacts", "Online", wait),
        "{}",
        bob.command("contacts", None)
    );

    // Bob goes offline and back: Alice sees both changes.
    bob.command("presence_offline", None);
    assert!(
        alice.wait_for("contacts", "Offline", wait),
        "{}",
        alice.command("contacts", None)
    );
    bob.command("presence_online", None);
    assert!(
        alice.wait_for("contacts", "Online", wait),
        "{}",
        alice.command("contacts", None)
    );

    // MESSAGE both ways (to the current contact of each).
    bob.command("message", Some("Hello Alice, from baresip"));
    assert!(
        alice.heard("Hello Alice, from baresip", wait),
        "{}",
        alice.console_text()
    );
    alice.command("message", Some("Hello Bob, through Parley"));
    assert!(
        bob.heard("Hello Bob, through Parley", wait),
        "{}",
        bob.console_text()
    );
}
