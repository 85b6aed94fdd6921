//! Parley on PostgreSQL (Debian's PostgreSQL 15, a cluster of its own per
//! test, started as the tests start Kamailio): the store behaves as the
//! SQLite one does, the two schemas hold the same columns, a node's SQLite
//! data moves into PostgreSQL without loss, and Parley runs on it.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

use parley::store::{
    ArchiveQuery, ArchiveRow, BindingRow, OfflineRow, RoomLine, RoomRow, SqliteStore, Store, User,
};
use parley_test_support::postgres::Postgres;

use crate::mobile::Flow;
use crate::operator::Running;
use crate::presence::{digest_answer, header, status, Ua};
use crate::registrar_proxy::run_cli;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn binding(aor: &str, uri: &str, reg_id: i64) -> BindingRow {
    BindingRow {
        aor: aor.into(),
        uri: uri.into(),
        contact: format!("<{uri}>;expires=600"),
        expires_at: 4_000_000_000,
        q: 1000,
        call_id: format!("{aor}-{reg_id}"),
        cseq: 7,
        path: String::new(),
        transport: "udp".into(),
        source: "127.0.0.1:5099".into(),
        instance: if reg_id > 0 {
            "<urn:uuid:00000000-0000-0000-0000-000000000001>".into()
        } else {
            String::new()
        },
        reg_id,
        user_agent: "Cluster-Test/1.0".into(),
        node: if reg_id > 0 {
            "a".into()
        } else {
            String::new()
        },
        node_route: if reg_id > 0 {
            "<sip:ft-x@127.0.0.1:5070;transport=udp;lr;parley-node>".into()
        } else {
            String::new()
        },
    }
}

fn archived(at: i64, sender: &str, recipient: &str) -> ArchiveRow {
    ArchiveRow {
        id: 0,
        at,
        source_protocol: "xmpp".into(),
        destination_protocol: "sip".into(),
        sender: sender.into(),
        recipient: recipient.into(),
        peer_domain: "xmpp.test".into(),
        auth: "dialback".into(),
        decision: "delivered".into(),
        cpim: format!("From: <im:{sender}>\r\n\r\nContent-Type: text/plain\r\n\r\nat {at}"),
    }
}

/// Fills a store with some of everything.
async fn populate(s: &dyn Store) {
    for u in ["alice", "bob", "carol"] {
        s.put_user(&User::with_password(u, "localhost", "pw"))
            .await
            .unwrap();
    }
    s.put_binding(&binding("alice@localhost", "sip:alice@127.0.0.1:5099", 0))
        .await
        .unwrap();
    s.put_binding(&binding("alice@localhost", "sip:alice@127.0.0.1:5098", 1))
        .await
        .unwrap();
    for (i, text) in [b"one".as_slice(), b"two\x00\xff binary"]
        .iter()
        .enumerate()
    {
        s.put_offline(&OfflineRow {
            id: 0,
            aor: "bob@localhost".into(),
            sender: "<sip:alice@localhost>".into(),
            content_type: "text/plain".into(),
            body: text.to_vec(),
            received_at: 100 + i as i64,
            expires_at: 10_000 + i as i64,
        })
        .await
        .unwrap();
    }
    s.put_presence_rule("alice@localhost", "bob@partner.test", "allow")
        .await
        .unwrap();
    s.put_presence_rule("alice@localhost", "*", "polite-block")
        .await
        .unwrap();
    s.put_archive_batch(&[
        archived(100, "juliet@xmpp.test", "alice@localhost"),
        archived(200, "alice@localhost", "juliet@xmpp.test"),
    ])
    .await
    .unwrap();
    s.put_archive(&archived(300, "romeo@xmpp.test", "bob@localhost"))
        .await
        .unwrap();
    s.put_room(&RoomRow {
        address: "ops@conference.localhost".into(),
        subject: "Operations".into(),
        public: true,
        members_only: false,
        moderated: true,
        password: Some("door".into()),
        history: 20,
        max_members: 50,
        created_at: 1_700_000_000,
    })
    .await
    .unwrap();
    s.put_room_affiliation("ops@conference.localhost", "alice@localhost", "owner")
        .await
        .unwrap();
    s.put_room_affiliation("ops@conference.localhost", "mallory@evil.test", "outcast")
        .await
        .unwrap();
    for (i, body) in ["first", "second", "third"].iter().enumerate() {
        s.put_room_line(
            "ops@conference.localhost",
            &RoomLine {
                nick: "alice".into(),
                body: body.to_string(),
                at: 1_700_000_100 + i as i64,
            },
            2,
        )
        .await
        .unwrap();
    }
}

/// What a store says about everything in it, as text to compare.
async fn transcript(s: &dyn Store) -> Vec<String> {
    let mut out = Vec::new();
    for u in s.users().await.unwrap() {
        out.push(format!("user {}@{} {:?}", u.username, u.domain, u.ha1));
    }
    out.push(format!(
        "user lookup {:?}",
        s.user("alice", "localhost")
            .await
            .unwrap()
            .map(|u| u.username)
    ));
    out.push(format!(
        "no user {:?}",
        s.user("nobody", "localhost").await.unwrap()
    ));
    for b in s.bindings().await.unwrap() {
        out.push(format!("binding {b:?}"));
    }
    for m in s.offline_for("bob@localhost").await.unwrap() {
        out.push(format!(
            "kept {} {:?} {} {}",
            m.sender, m.body, m.received_at, m.expires_at
        ));
    }
    out.push(format!(
        "kept counts {:?}",
        s.offline_counts().await.unwrap()
    ));
    out.push(format!(
        "kept senders {:?}",
        s.offline_sender_counts().await.unwrap()
    ));
    out.push(format!(
        "expired {}",
        s.offline_expired(10_000).await.unwrap().len()
    ));
    out.push(format!("rules {:?}", s.presence_rules().await.unwrap()));
    out.push(format!(
        "rules version {:?}",
        s.presence_rules_version().await.unwrap()
    ));
    let q = |address: Option<&str>, domain: Option<&str>, since, until| ArchiveQuery {
        address: address.map(str::to_string),
        domain: domain.map(str::to_string),
        since,
        until,
        limit: 10,
    };
    for query in [
        q(Some("Juliet@xmpp.test"), None, None, None),
        q(None, Some("localhost"), Some(150), None),
        q(None, None, None, Some(250)),
    ] {
        let found: Vec<(i64, String)> = s
            .search_archive(&query)
            .await
            .unwrap()
            .into_iter()
            .map(|r| (r.at, r.cpim))
            .collect();
        out.push(format!("archive {query:?}: {found:?}"));
    }
    out.push(format!("rooms {:?}", s.rooms().await.unwrap()));
    out.push(format!(
        "affiliations {:?}",
        s.room_affiliations().await.unwrap()
    ));
    let history: Vec<(String, i64)> = s
        .room_history("ops@conference.localhost", 10)
        .await
        .unwrap()
        .into_iter()
        .map(|l| (l.body, l.at))
        .collect();
    out.push(format!("history {history:?}"));
    out
}

/// Changes every kind of row once more and reads again.
async fn change(s: &dyn Store) -> Vec<String> {
    let mut out = Vec::new();
    s.put_user(&User::with_password("alice", "localhost", "new"))
        .await
        .unwrap();
    out.push(format!(
        "removed carol {}",
        s.remove_user("carol", "localhost").await.unwrap()
    ));
    out.push(format!(
        "removed carol again {}",
        s.remove_user("carol", "localhost").await.unwrap()
    ));
    let mut refreshed = binding("alice@localhost", "sip:alice@127.0.0.1:5099", 0);
    refreshed.cseq = 8;
    refreshed.expires_at = 50;
    s.put_binding(&refreshed).await.unwrap();
    out.push(format!(
        "expired bindings {}",
        s.remove_expired(60).await.unwrap()
    ));
    s.remove_binding("alice@localhost", "sip:alice@127.0.0.1:5098", 1)
        .await
        .unwrap();
    let first = s.offline_for("bob@localhost").await.unwrap()[0].id;
    out.push(format!("taken {}", s.remove_offline(first).await.unwrap()));
    out.push(format!(
        "taken again {}",
        s.remove_offline(first).await.unwrap()
    ));
    out.push(format!(
        "rule forgotten {}",
        s.remove_presence_rule("alice@localhost", "*")
            .await
            .unwrap()
    ));
    out.push(format!(
        "archive expired {}",
        s.expire_archive(250).await.unwrap()
    ));
    s.put_room_affiliation("ops@conference.localhost", "mallory@evil.test", "none")
        .await
        .unwrap();
    out.push(format!(
        "room closed {}",
        s.remove_room("ops@conference.localhost").await.unwrap()
    ));
    out.extend(transcript(s).await);
    out
}

#[test]
fn the_store_behaves_alike_on_sqlite_and_postgresql() {
    let pg = Postgres::start();
    let url = pg.database("alike");
    let dir = std::env::temp_dir().join(format!("parley-alike-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    runtime().block_on(async {
        let sqlite = SqliteStore::open(&dir.join("alike.db")).await.unwrap();
        let postgres = parley::store::open_url(&url).await.unwrap();
        populate(&sqlite).await;
        populate(&*postgres).await;
        let (a, b) = (transcript(&sqlite).await, transcript(&*postgres).await);
        assert_eq!(a, b);
        // What the stores were asked to keep is what they say.
        let text = a.join("\n");
        assert_eq!(
            a.iter().filter(|l| l.starts_with("binding ")).count(),
            2,
            "{text}"
        );
        assert!(
            text.contains("[116, 119, 111, 0, 255, 32, 98"),
            "binary body kept: {text}"
        );
        assert!(
            text.contains("history [(\"second\", 1700000101), (\"third\", 1700000102)]"),
            "{text}"
        );
        assert!(
            text.contains("(\"alice@localhost\", \"*\", \"polite-block\")"),
            "{text}"
        );
        let (a, b) = (change(&sqlite).await, change(&*postgres).await);
        assert_eq!(a, b);
        let text = a.join("\n");
        assert!(
            text.contains("removed carol true\nremoved carol again false"),
            "{text}"
        );
        assert!(text.contains("taken true\ntaken again false"), "{text}");
        assert!(text.contains("expired bindings 1"), "{text}");
        assert!(text.contains("rooms []"), "{text}");
        assert!(text.contains("affiliations []"), "{text}");
    });
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn the_postgresql_schema_holds_the_sqlite_columns() {
    use sqlx::Row;
    let pg = Postgres::start();
    let url = pg.database("schema");
    let dir = std::env::temp_dir().join(format!("parley-schema-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let db = dir.join("schema.db");
    runtime().block_on(async {
        SqliteStore::open(&db).await.unwrap();
        parley::store::open_url(&url).await.unwrap();
        let sqlite = sqlx::SqlitePool::connect(&format!("sqlite:{}", db.display()))
            .await
            .unwrap();
        let lite: BTreeSet<(String, String)> = sqlx::query(
            "SELECT m.name, p.name FROM sqlite_master m JOIN pragma_table_info(m.name) p
             WHERE m.type = 'table' AND m.name NOT LIKE 'sqlite_%' AND m.name != '_sqlx_migrations'",
        )
        .fetch_all(&sqlite)
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
        let postgres = sqlx::PgPool::connect(&url).await.unwrap();
        let pg_columns: BTreeSet<(String, String)> = sqlx::query(
            "SELECT table_name::TEXT, column_name::TEXT FROM information_schema.columns
             WHERE table_schema = 'public' AND table_name != '_sqlx_migrations'",
        )
        .fetch_all(&postgres)
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
        assert!(lite.len() > 40, "{lite:?}");
        assert_eq!(lite, pg_columns);
    });
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_node_moves_into_postgresql_without_losing_anything() {
    let pg = Postgres::start();
    let url = pg.database("moved");
    let dir = std::env::temp_dir().join(format!("parley-moved-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let db = dir.join("node.db");
    let before = runtime().block_on(async {
        let sqlite = SqliteStore::open(&db).await.unwrap();
        populate(&sqlite).await;
        transcript(&sqlite).await
    });
    let config = dir.join("p.toml");
    std::fs::write(
        &config,
        format!("state_dir = {:?}\n", dir.display().to_string()),
    )
    .unwrap();
    let from = format!("sqlite:{}", db.display());
    let said = run_cli(
        &["store", "migrate", "--from", &from, "--to", &url],
        &config,
    );
    for line in [
        "users                       3",
        "bindings                    2",
        "offline messages            2",
        "archived messages           3",
        "room history lines          2",
        "everything copied and counted",
    ] {
        assert!(said.contains(line), "{line:?} missing:\n{said}");
    }
    let after = runtime().block_on(async {
        let postgres = parley::store::open_url(&url).await.unwrap();
        transcript(&*postgres).await
    });
    assert_eq!(before, after);
    // Into a database that holds data: refused, nothing changed.
    let out = Command::new(env!("CARGO_BIN_EXE_parley"))
        .args([
            "store", "migrate", "--from", &from, "--to", &url, "--config",
        ])
        .arg(&config)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("holds data already"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn parley_runs_on_postgresql_and_says_when_it_cannot_reach_it() {
    let pg = Postgres::start();
    let url = pg.database("node");
    let parley = Running::start(
        "on-postgres",
        &format!("[store]\nurl = {url:?}\n[xmpp]\nenabled = false\n"),
    );
    // The command line works on the same database.
    run_cli(
        &["user", "add", "alice@localhost", "--password", "pw"],
        &parley.config,
    );
    assert_eq!(
        run_cli(&["user", "list"], &parley.config).trim(),
        "alice@localhost"
    );
    // A MESSAGE for Alice, offline: kept in PostgreSQL (202).
    let ua = Ua::new(parley.sip);
    ua.send(
        "MESSAGE sip:alice@localhost SIP/2.0\nFrom: <sip:bob@partner.test>;tag=k\nTo: <sip:alice@localhost>\nCall-ID: pg-kept\nCSeq: 1 MESSAGE\nContent-Type: text/plain",
        "kept in postgres",
    );
    assert_eq!(status(&ua.final_response()), 202);
    let kept = runtime().block_on(async {
        let s = parley::store::open_url(&url).await.unwrap();
        s.offline_for("alice@localhost").await.unwrap()
    });
    assert_eq!(kept.len(), 1);
    assert_eq!(kept[0].body, b"kept in postgres");
    drop(parley);

    // A database that does not answer: one clear error, nothing listening.
    let closed = parley_test_support::sipp::free_port();
    let dir = std::env::temp_dir().join(format!("parley-pg-down-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("p.toml");
    std::fs::write(
        &config,
        format!(
            "state_dir = {:?}\n[store]\nurl = \"postgres://parley:secret@127.0.0.1:{closed}/parley\"\n\
             [[sip.listen]]\ntransport = \"udp\"\naddress = \"127.0.0.1:0\"\n[xmpp]\nenabled = false\n\
             [admin]\nlisten = \"127.0.0.1:0\"\n[msrp]\nlisten = \"127.0.0.1:0\"\nlisten_tls = \"127.0.0.1:0\"\n",
            dir.display().to_string()
        ),
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_parley"))
        .args(["run", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains(&format!(
            "cannot reach postgres://parley:…@127.0.0.1:{closed}/parley"
        )),
        "{text}"
    );
    assert!(!text.contains("secret"), "{text}");
    assert!(!text.contains("listening on"), "{text}");
    let _ = std::fs::remove_dir_all(Path::new(&dir));
}

const SECRET: &str = "cluster-secret-for-the-tests";

/// A node of a cluster on `url`: UDP and TCP SIP listeners, the default
/// `[auth]`; its TCP address.
fn node(name: &str, url: &str) -> (Running, std::net::SocketAddr) {
    let parley = Running::start(
        &format!("node-{name}"),
        &format!(
            "[store]\nurl = {url:?}\n[cluster]\nnode = {name:?}\nsecret = {SECRET:?}\n\
             [xmpp]\nenabled = false\n[[sip.listen]]\ntransport = \"tcp\"\naddress = \"127.0.0.1:0\"\n"
        ),
    );
    parley.wait_for_output("following the cluster's changes");
    // The listeners are reported once every layer runs, just before the
    // console's address.
    let out = parley.wait_for_output("console at");
    let tcp = out
        .split("listening on tcp ")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .and_then(|a| a.parse().ok())
        .expect("the TCP address");
    (parley, tcp)
}

/// Waits until `node`'s registrations hold `needle`.
fn until_registered(node: &Running, needle: &str) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let (code, body) = crate::admin::http(
            node.admin,
            "GET",
            "/api/v1/registrations",
            Some(&node.token()),
            None,
        );
        assert_eq!(code, 200);
        if body.contains(needle) {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{needle} never seen: {body}"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// The final response to the last request; requests that come first
/// (a kept message can overtake the REGISTER's 200) are answered and kept.
fn final_keeping(ua: &Ua, kept: &mut Vec<String>) -> String {
    loop {
        let m = ua.next();
        if m.starts_with("SIP/2.0 ") {
            if !m.starts_with("SIP/2.0 1") {
                return m;
            }
        } else {
            kept.push(m);
        }
    }
}

/// A UDP user agent registering `user@localhost` (password pw) through
/// `ua`'s node; the requests that came meanwhile.
fn register_udp(ua: &Ua, user: &str) -> Vec<String> {
    register_at(ua, user, "localhost")
}

/// [`register_udp`] in `domain`.
fn register_at(ua: &Ua, user: &str, domain: &str) -> Vec<String> {
    let mut kept = Vec::new();
    let head = |cseq: u32, auth: &str| {
        format!(
            "REGISTER sip:{domain} SIP/2.0\nFrom: <sip:{user}@{domain}>;tag=r\nTo: <sip:{user}@{domain}>\nCall-ID: reg-{user}-{}\nCSeq: {cseq} REGISTER\nContact: <sip:{user}@{}>\nExpires: 600{auth}",
            ua.local.port(),
            ua.local
        )
    };
    ua.send(&head(1, ""), "");
    let r = final_keeping(ua, &mut kept);
    assert_eq!(status(&r), 401, "{r}");
    let answer = digest_answer(&r, "REGISTER", &format!("sip:{domain}"), user, "pw");
    ua.send(&head(2, &format!("\nAuthorization: {answer}")), "");
    let r = final_keeping(ua, &mut kept);
    assert_eq!(status(&r), 200, "{r}");
    kept
}

/// A MESSAGE from `user@localhost` through `ua`'s node, answering the
/// proxy's challenge; the final status.
fn message_udp(ua: &Ua, user: &str, to: &str, call: &str, text: &str) -> u16 {
    message_from(ua, &format!("{user}@localhost"), to, call, text)
}

/// [`message_udp`] from any `user@domain`.
fn message_from(ua: &Ua, from: &str, to: &str, call: &str, text: &str) -> u16 {
    let r = request_udp(
        ua,
        from,
        "MESSAGE",
        &format!("sip:{to}"),
        call,
        "Content-Type: text/plain",
        text,
        &mut Vec::new(),
    );
    status(&r)
}

/// The next MESSAGE `ua` receives (answered 200), within a few seconds.
fn received(ua: &Ua) -> Option<String> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while std::time::Instant::now() < deadline {
        if let Some(m) = ua.try_next_within(std::time::Duration::from_millis(200)) {
            if m.starts_with("MESSAGE ") {
                return Some(m);
            }
        }
    }
    None
}

#[test]
fn two_nodes_on_one_database_serve_one_domain() {
    let pg = Postgres::start();
    let url = pg.database("cluster");
    let (a, a_tcp) = node("a", &url);
    let (b, _) = node("b", &url);
    for user in ["alice", "bob", "dave"] {
        run_cli(
            &[
                "user",
                "add",
                &format!("{user}@localhost"),
                "--password",
                "pw",
            ],
            &a.config,
        );
    }

    // Alice is on a connection to node A; Bob on UDP at node B.
    let mut alice = Flow::connect(a_tcp);
    let r = alice.register(
        &format!("Contact: <sip:alice@{}>;expires=600\n", alice.local()),
        "",
    );
    assert_eq!(status(&r), 200, "{r}");
    let bob = Ua::new(b.sip);
    register_udp(&bob, "bob");
    until_registered(&b, "alice@localhost");
    until_registered(&a, "bob@localhost");

    // Either node's console shows both nodes, up.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    loop {
        let (code, body) =
            crate::admin::http(b.admin, "GET", "/api/v1/cluster", Some(&b.token()), None);
        assert_eq!(code, 200, "{body}");
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        let up: Vec<&str> = v["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|n| n["up"] == true)
            .filter_map(|n| n["name"].as_str())
            .collect();
        if up == ["a", "b"] {
            assert_eq!(v["node"], "b");
            let a_row = &v["nodes"][0];
            assert!(
                a_row["sip"].as_str().unwrap().contains(&a.sip.to_string()),
                "{body}"
            );
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{body}");
        std::thread::sleep(std::time::Duration::from_millis(200));
    }

    // Bob writes to Alice through B: B forwards it, signed, to A, which
    // holds her connection.
    let (status_b, m) = std::thread::scope(|scope| {
        let answered = scope.spawn(|| {
            let m = alice.next();
            alice.answer(&m);
            m
        });
        let s = message_udp(&bob, "bob", "alice@localhost", "x-1", "hello from b");
        (s, answered.join().unwrap())
    });
    assert_eq!(status_b, 200);
    assert!(m.starts_with("MESSAGE sip:alice@"), "{m}");
    assert!(m.ends_with("hello from b"), "{m}");
    assert!(
        header(&m, "Parley-Node").is_none(),
        "the node's signature left the cluster: {m}"
    );

    // A signature that does not verify authenticates nothing.
    bob.send(
        "MESSAGE sip:alice@localhost SIP/2.0\nFrom: <sip:bob@localhost>;tag=forged\nTo: <sip:alice@localhost>\nCall-ID: forged\nCSeq: 1 MESSAGE\nParley-Node: a;sig=00112233445566778899aabbccddeeff\nContent-Type: text/plain",
        "forged",
    );
    assert_eq!(status(&bob.final_response()), 407);

    // Alice writes to Bob through A: his UDP binding is reached from A.
    assert!(alice
        .send_authenticated("MESSAGE", "sip:bob@localhost", "Content-Type: text/plain\n")
        .is_none());
    let m = received(&bob).expect("Bob's message through A");
    assert!(m.starts_with("MESSAGE sip:bob@"), "{m}");

    // Bob unregisters through A: B, which held his binding, drops it too.
    let via_a = Ua::new(a.sip);
    via_a.send(
        &format!(
            "REGISTER sip:localhost SIP/2.0\nFrom: <sip:bob@localhost>;tag=u\nTo: <sip:bob@localhost>\nCall-ID: unreg-bob-a\nCSeq: 1 REGISTER\nContact: <sip:bob@{}>;expires=0",
            bob.local
        ),
        "",
    );
    let r = via_a.final_response();
    if status(&r) == 401 {
        let answer = digest_answer(&r, "REGISTER", "sip:localhost", "bob", "pw");
        via_a.send(
            &format!(
                "REGISTER sip:localhost SIP/2.0\nFrom: <sip:bob@localhost>;tag=u\nTo: <sip:bob@localhost>\nCall-ID: unreg-bob-a\nCSeq: 2 REGISTER\nContact: <sip:bob@{}>;expires=0\nAuthorization: {answer}",
                bob.local
            ),
            "",
        );
        assert_eq!(status(&via_a.final_response()), 200);
    }
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let (_, body) = crate::admin::http(
            b.admin,
            "GET",
            "/api/v1/registrations",
            Some(&b.token()),
            None,
        );
        if !body.contains("bob@localhost") {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "B kept Bob's binding: {body}"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    register_udp(&bob, "bob");

    // Dave is offline: a message accepted (202) through A is kept once in
    // the shared store. A dies (SIGKILL); Dave registers on B and gets it,
    // once.
    let carol = Ua::new(a.sip);
    assert_eq!(
        message_udp(&carol, "bob", "dave@localhost", "x-2", "while you were out"),
        202
    );
    let mut a = a;
    let _ = a.child.kill();
    let _ = a.child.wait();
    let dave = Ua::new(b.sip);
    let early = register_udp(&dave, "dave");
    let m = match early.into_iter().find(|m| m.starts_with("MESSAGE ")) {
        Some(m) => m,
        None => received(&dave).expect("the kept message, on B"),
    };
    assert!(m.ends_with("while you were out"), "{m}");
    assert!(received(&dave).is_none(), "delivered twice");
    let kept = runtime().block_on(async {
        let s = parley::store::open_url(&url).await.unwrap();
        s.offline_for("dave@localhost").await.unwrap()
    });
    assert!(kept.is_empty(), "{kept:?}");

    // The database goes away: what would be kept is refused with 503 and
    // Retry-After (the sender keeps it), not lost.
    run_cli(
        &["user", "add", "erin@localhost", "--password", "pw"],
        &b.config,
    );
    assert_eq!(
        message_udp(&bob, "bob", "erin@localhost", "x-3", "kept"),
        202
    );
    drop(pg);
    bob.send(
        "MESSAGE sip:erin@localhost SIP/2.0\nFrom: <sip:bob@localhost>;tag=down\nTo: <sip:erin@localhost>\nCall-ID: x-4\nCSeq: 1 MESSAGE\nContent-Type: text/plain",
        "not kept",
    );
    let mut r = bob.final_response();
    if status(&r) == 407 {
        let answer = digest_answer(&r, "MESSAGE", "sip:erin@localhost", "bob", "pw");
        bob.send(
            &format!("MESSAGE sip:erin@localhost SIP/2.0\nFrom: <sip:bob@localhost>;tag=down\nTo: <sip:erin@localhost>\nCall-ID: x-4\nCSeq: 2 MESSAGE\nProxy-Authorization: {answer}\nContent-Type: text/plain"),
            "not kept",
        );
        r = bob.final_response();
    }
    assert_eq!(status(&r), 503, "{r}");
    assert_eq!(header(&r, "Retry-After"), Some("5"), "{r}");
}

/// A request of `from` (`user@domain`, password pw) through `ua`'s node,
/// answering a 407; the final response (requests that come meanwhile are
/// kept in `kept`).
#[allow(clippy::too_many_arguments)]
fn request_udp(
    ua: &Ua,
    from: &str,
    method: &str,
    uri: &str,
    call: &str,
    extra: &str,
    body: &str,
    kept: &mut Vec<String>,
) -> String {
    let user = from.split('@').next().unwrap_or(from);
    let head = |cseq: u32, auth: &str| {
        format!(
            "{method} {uri} SIP/2.0\nFrom: <sip:{from}>;tag=t{call}\nTo: <{uri}>\nCall-ID: {call}\nCSeq: {cseq} {method}\nContact: <sip:{user}@{}>\n{extra}{auth}",
            ua.local
        )
    };
    ua.send(&head(1, ""), body);
    let r = final_keeping(ua, kept);
    if status(&r) != 407 {
        return r;
    }
    let answer = digest_answer(&r, method, uri, user, "pw");
    ua.send(&head(2, &format!("\nProxy-Authorization: {answer}")), body);
    final_keeping(ua, kept)
}

#[test]
fn a_watcher_on_one_node_sees_a_publication_on_another() {
    let pg = Postgres::start();
    let url = pg.database("presence");
    let (a, _) = node("a", &url);
    let (b, _) = node("b", &url);
    for user in ["alice", "bob"] {
        run_cli(
            &[
                "user",
                "add",
                &format!("{user}@localhost"),
                "--password",
                "pw",
            ],
            &a.config,
        );
    }
    // Bob watches Alice on node A.
    let bob = Ua::new(a.sip);
    let mut kept = Vec::new();
    let r = request_udp(
        &bob,
        "bob@localhost",
        "SUBSCRIBE",
        "sip:alice@localhost",
        "w-1",
        "Event: presence\nAccept: application/pidf+xml\nExpires: 600",
        "",
        &mut kept,
    );
    assert!(status(&r) < 300, "{r}");
    // Alice publishes on node B.
    let alice = Ua::new(b.sip);
    let pidf = r#"<?xml version="1.0" encoding="UTF-8"?><presence xmlns="urn:ietf:params:xml:ns:pidf" entity="pres:alice@localhost"><tuple id="t1"><status><basic>open</basic></status><note>At the other node</note></tuple></presence>"#;
    let r = request_udp(
        &alice,
        "alice@localhost",
        "PUBLISH",
        "sip:alice@localhost",
        "p-1",
        "Event: presence\nContent-Type: application/pidf+xml\nExpires: 600",
        pidf,
        &mut Vec::new(),
    );
    assert_eq!(status(&r), 200, "{r}");
    // Bob's NOTIFY on A carries what Alice published on B.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let seen = loop {
        if let Some(n) = kept.iter().find(|m| m.contains("At the other node")) {
            break n.clone();
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no NOTIFY from A with B's publication: {kept:?}"
        );
        if let Some(m) = bob.try_next_within(std::time::Duration::from_millis(200)) {
            kept.push(m);
        }
    };
    assert!(seen.starts_with("NOTIFY "), "{seen}");
    assert!(seen.contains("<basic>open</basic>"), "{seen}");
    // Alice's publication ends on B: Bob sees her closed on A.
    let etag = header(&r, "SIP-ETag").expect("an entity tag").to_string();
    let r = request_udp(
        &alice,
        "alice@localhost",
        "PUBLISH",
        "sip:alice@localhost",
        "p-2",
        &format!("Event: presence\nSIP-If-Match: {etag}\nExpires: 0"),
        "",
        &mut Vec::new(),
    );
    assert_eq!(status(&r), 200, "{r}");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        assert!(
            std::time::Instant::now() < deadline,
            "no closed NOTIFY: {kept:?}"
        );
        if let Some(m) = bob.try_next_within(std::time::Duration::from_millis(200)) {
            if m.starts_with("NOTIFY ") && m.contains("<basic>closed</basic>") {
                break;
            }
        }
    }
    // Node A dies. Bob's refresh lands on B, which does not know the
    // dialog: 481, and RFC 6665 §4.1.2.4 has Bob subscribe again, which B
    // serves.
    let mut a = a;
    let _ = a.child.kill();
    let _ = a.child.wait();
    let to_tag = kept
        .iter()
        .chain(std::iter::once(&seen))
        .find_map(|m| {
            header(m, "From")
                .and_then(|f| f.split(";tag=").nth(1))
                .map(str::to_string)
        })
        .expect("the notifier's tag");
    let bob_at_b = Ua::new(b.sip);
    bob_at_b.send(
        &format!(
            "SUBSCRIBE sip:alice@localhost SIP/2.0\nFrom: <sip:bob@localhost>;tag=tw-1\nTo: <sip:alice@localhost>;tag={to_tag}\nCall-ID: w-1\nCSeq: 5 SUBSCRIBE\nContact: <sip:bob@{}>\nEvent: presence\nExpires: 600",
            bob_at_b.local
        ),
        "",
    );
    let r = bob_at_b.final_response();
    assert_eq!(status(&r), 481, "{r}");
    let r = request_udp(
        &bob_at_b,
        "bob@localhost",
        "SUBSCRIBE",
        "sip:alice@localhost",
        "w-2",
        "Event: presence\nAccept: application/pidf+xml\nExpires: 600",
        "",
        &mut Vec::new(),
    );
    assert!(status(&r) < 300, "{r}");
    drop(b);
}

/// Prosody federates with the cluster: its streams reach node A (the SRV
/// record), which delivers to a SIP user registered on node B; node B
/// opens its own stream to Prosody, whose dialback check lands on node A,
/// which verifies B's key (the cluster's shared secret).
#[test]
fn prosody_federates_with_both_nodes() {
    use parley_test_support::dns::{Rec, TestDns};
    use parley_test_support::prosody::{Ports, Prosody, XmppClient};
    const PARLEY: &str = "parley.example.test";
    const XMPP: &str = "xmpp.example.test";
    let wait = std::time::Duration::from_secs(30);
    let pg = Postgres::start();
    let url = pg.database("federation");
    let ports = Ports::free();
    let (a_s2s, b_s2s) = (
        parley_test_support::sipp::free_port(),
        parley_test_support::sipp::free_port(),
    );
    let record = |domain: &str, port: u16| {
        vec![
            Rec::Srv {
                name: format!("_xmpp-server._tcp.{domain}"),
                priority: 0,
                weight: 5,
                port,
                target: domain.to_string(),
            },
            Rec::A {
                name: domain.to_string(),
                ip: std::net::Ipv4Addr::LOCALHOST,
            },
        ]
    };
    let mut records = record(PARLEY, a_s2s);
    records.extend(record(XMPP, ports.s2s));
    let dns = TestDns::start("example.test", records);
    let prosody = Prosody::start(XMPP, ports, dns.addr, &[]);
    prosody.register("juliet", "jpw");
    let node_on = |name: &str, s2s: u16| {
        Running::start(
            &format!("xmpp-{name}"),
            &format!(
                "domains = [{PARLEY:?}]\n[store]\nurl = {url:?}\n[cluster]\nnode = {name:?}\nsecret = {SECRET:?}\n\
                 [dns]\nnameserver = \"{}\"\n\
                 [xmpp]\nenabled = true\nlisten = \"127.0.0.1:{s2s}\"\n",
                dns.addr
            ),
        )
    };
    let a = node_on("a", a_s2s);
    let b = node_on("b", b_s2s);
    run_cli(
        &[
            "user",
            "add",
            &format!("romeo@{PARLEY}"),
            "--password",
            "pw",
        ],
        &a.config,
    );
    let romeo = Ua::new(b.sip);
    register_at(&romeo, "romeo", PARLEY);
    until_registered(&a, &format!("romeo@{PARLEY}"));
    let mut juliet = XmppClient::connect(&format!("juliet@{XMPP}/balcony"), "jpw", prosody.c2s);

    // XMPP → SIP: Prosody's stream reaches A; Romeo is on B.
    juliet.command(&format!(
        r#"{{"cmd": "message", "to": "romeo@{PARLEY}", "body": "Wherefore art thou?", "id": "j1"}}"#
    ));
    let m = received(&romeo).unwrap_or_else(|| panic!("nothing through A:\n{}", a.output()));
    assert!(m.ends_with("Wherefore art thou?"), "{m}");

    // SIP → XMPP from B: B dials Prosody; Prosody's dialback check goes to
    // A, which verifies B's key.
    assert_eq!(
        message_from(
            &romeo,
            &format!("romeo@{PARLEY}"),
            &format!("juliet@{XMPP}"),
            "s1",
            "It is the east"
        ),
        202
    );
    let e = juliet.wait_for(
        |e| e.contains("\"event\": \"message\"") && e.contains("It is the east"),
        wait,
    );
    assert!(e.contains(&format!("\"from\": \"romeo@{PARLEY}\"")), "{e}");
    drop(b);
    drop(a);
}

/// SIPp as the users, on the default `[auth]`: a SIPp user agent
/// registered with digest on node A receives the MESSAGEs a SIPp client of
/// another domain sends to node B.
#[test]
fn a_sipp_user_on_one_node_gets_messages_sent_to_the_other() {
    use parley_test_support::sipp::{free_port, Sipp};
    let pg = Postgres::start();
    let url = pg.database("sipp");
    let base = |name: &str| {
        format!(
            "[store]\nurl = {url:?}\n[cluster]\nnode = {name:?}\nsecret = {SECRET:?}\n\
             [xmpp]\nenabled = false\n"
        )
    };
    let a = Running::start("sipp-a", &base("a"));
    let b = Running::start("sipp-b", &base("b"));
    run_cli(
        &["user", "add", "bob@localhost", "--password", "pw"],
        &a.config,
    );
    let calls = 20;
    let bob_port = free_port();
    let bob = Sipp::start_on("uas_message.xml", "u1", calls, None, bob_port, &[]);
    Sipp::start(
        "register_contact_auth.xml",
        "u1",
        1,
        Some(a.sip),
        &[
            "-au",
            "bob",
            "-ap",
            "pw",
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
    until_registered(&b, "bob@localhost");
    Sipp::start("message_load.xml", "u1", calls, Some(b.sip), &[]).wait();
    let trace = bob.wait();
    assert!(
        trace.matches("MESSAGE sip:bob@").count() as u32 >= calls,
        "{trace}"
    );
}

/// TLS to the database: `sslmode=verify-full` with the server's CA in
/// `sslrootcert` connects (and the session is encrypted); a certificate
/// from another CA is refused.
#[test]
fn the_store_reaches_postgresql_over_verified_tls() {
    use sqlx::Row;
    let server = parley_test_support::pki::TestCert::self_signed("127.0.0.1");
    let stranger = parley_test_support::pki::TestCert::self_signed("127.0.0.1");
    let pg = Postgres::start_tls(&server.cert, &server.key);
    pg.database("tls");
    let url = |ca: &Path| {
        format!(
            "{}?sslmode=verify-full&sslrootcert={}",
            pg.url("tls"),
            ca.display()
        )
    };
    runtime().block_on(async {
        let store = parley::store::open_url(&url(&server.cert)).await.unwrap();
        store
            .put_user(&User::with_password("alice", "localhost", "pw"))
            .await
            .unwrap();
        assert_eq!(store.users().await.unwrap().len(), 1);
        let pool = sqlx::PgPool::connect(&url(&server.cert)).await.unwrap();
        let encrypted: bool =
            sqlx::query("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
                .fetch_one(&pool)
                .await
                .unwrap()
                .get(0);
        assert!(encrypted);
        let refused = match parley::store::open_url(&url(&stranger.cert)).await {
            Ok(_) => panic!("a certificate of another CA was accepted"),
            Err(e) => e.to_string(),
        };
        assert!(refused.contains("cannot reach"), "{refused}");
    });
}
