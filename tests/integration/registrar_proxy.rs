//! The registrar and the proxy with real user agents: SIPp registers with
//! digest authentication and exchanges MESSAGE through Parley; users are
//! provisioned with `parley user add`.

use std::process::Command;

use parley_test_support::server::TestServer;
use parley_test_support::sipp::Sipp;

/// Runs `parley ARGS --config …` on the server's database and checks it
/// succeeded.
pub(crate) fn cli_on(server: &TestServer, args: &[&str]) {
    cli_with(server, "", args)
}

/// Runs the command line on the server's state with more config lines.
pub(crate) fn cli_with(server: &TestServer, config_text: &str, args: &[&str]) {
    let config = server.state_dir.join("cli.toml");
    std::fs::write(
        &config,
        format!(
            "state_dir = {:?}\n{config_text}\n",
            server.state_dir.display().to_string()
        ),
    )
    .unwrap();
    run_cli(args, &config);
}

/// Runs the real command line with `--config config`, checks it succeeded
/// and returns what it printed.
pub(crate) fn run_cli(args: &[&str], config: &std::path::Path) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_parley"))
        .args(args)
        .arg("--config")
        .arg(config)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "parley {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Provisions a user with the real command line, on the server's database.
pub(crate) fn user_add(server: &TestServer, address: &str, password: &str) {
    cli_on(server, &["user", "add", address, "--password", password]);
}

pub(crate) fn register(
    server: &TestServer,
    user: &str,
    password: &str,
    transport: &str,
    port: u16,
) {
    let target = if transport == "u1" {
        server.udp
    } else {
        server.tcp
    };
    Sipp::start_on(
        "uac_register_auth.xml",
        transport,
        1,
        Some(target),
        port,
        &["-s", user, "-au", user, "-ap", password],
    )
    .wait();
}

#[test]
fn sipp_registers_with_digest_and_a_message_reaches_the_registered_agent() {
    // SIPp answers only MD5 challenges, and only the first one it sees:
    // the default config puts MD5 first.
    let server = TestServer::start("");
    user_add(&server, "alice@localhost", "alice-secret");
    user_add(&server, "bob@localhost", "bob-secret");
    let bob_port = parley_test_support::sipp::free_port();
    register(&server, "bob", "bob-secret", "u1", bob_port);
    let bob = Sipp::start_on("uas_message.xml", "u1", 1, None, bob_port, &[]);
    Sipp::start(
        "uac_message_auth.xml",
        "u1",
        1,
        Some(server.udp),
        &["-s", "alice", "-au", "alice", "-ap", "alice-secret"],
    )
    .wait();
    let trace = bob.wait();
    assert!(trace.contains("Hello from SIPp"), "{trace}");
}

/// A user agent on a UDP socket that speaks just enough SIP to test the
/// registrar's answers, computing digest responses with Parley's own
/// digest module (SIPp knows only MD5).
struct Ua {
    sock: std::net::UdpSocket,
    local: std::net::SocketAddr,
    server: std::net::SocketAddr,
    branch: std::sync::atomic::AtomicU32,
}

impl Ua {
    fn new(server: std::net::SocketAddr) -> Ua {
        let sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        sock.set_read_timeout(Some(std::time::Duration::from_secs(5)))
            .unwrap();
        Ua {
            local: sock.local_addr().unwrap(),
            sock,
            server,
            branch: std::sync::atomic::AtomicU32::new(0),
        }
    }

    /// Sends a request (the Via is added) and returns the final response.
    fn request(&self, head: &str, body: &str) -> parley::proto::sip::Message {
        let branch = self
            .branch
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let text = format!(
            "{}\r\nVia: SIP/2.0/UDP {};branch=z9hG4bKua{}x{};rport\r\nMax-Forwards: 70\r\nContent-Length: {}\r\n\r\n{body}",
            head.trim_end().replace('\n', "\r\n"),
            self.local,
            self.local.port(),
            branch,
            body.len()
        );
        self.sock.send_to(text.as_bytes(), self.server).unwrap();
        let mut buf = vec![0u8; 65_536];
        loop {
            let n = self.sock.recv(&mut buf).expect("a response");
            let m = parley::proto::sip::Message::parse(
                bytes::Bytes::copy_from_slice(&buf[..n]),
                parley::proto::sip::Framing::Datagram,
                &parley::proto::sip::Limits::default(),
            )
            .unwrap();
            if m.status().is_some_and(|s| s >= 200) {
                return m;
            }
        }
    }

    fn register(
        &self,
        user: &str,
        call_id: &str,
        cseq: u32,
        contacts: &[String],
        expires: Option<u32>,
        auth: Option<&str>,
    ) -> parley::proto::sip::Message {
        let mut head = format!(
            "REGISTER sip:localhost SIP/2.0\nFrom: <sip:{user}@localhost>;tag=r{cseq}\nTo: <sip:{user}@localhost>\nCall-ID: {call_id}\nCSeq: {cseq} REGISTER\n"
        );
        for c in contacts {
            head.push_str(&format!("Contact: {c}\n"));
        }
        if let Some(e) = expires {
            head.push_str(&format!("Expires: {e}\n"));
        }
        if let Some(a) = auth {
            head.push_str(&format!("Authorization: {a}\n"));
        }
        self.request(&head, "")
    }
}

/// The Authorization value answering `challenge` for `method` on `uri`.
fn answer(challenge: &str, method: &str, uri: &str, user: &str, password: &str, nc: u32) -> String {
    use parley::proto::digest::{Algorithm, Credentials};
    let auth =
        parley::proto::sip::typed::Auth::parse(challenge.as_bytes(), "WWW-Authenticate").unwrap();
    let realm = auth.param("realm").unwrap().into_owned();
    let nonce = auth.param("nonce").unwrap().into_owned();
    let algorithm = Algorithm::parse(&auth.param("algorithm").unwrap()).unwrap();
    let mut c = Credentials {
        username: user.into(),
        realm: realm.clone(),
        nonce: nonce.clone(),
        uri: uri.into(),
        response: String::new(),
        algorithm,
        cnonce: Some("0a4f113b".into()),
        nc: Some(nc),
        qop: Some("auth".into()),
        opaque: None,
    };
    let ha1 = algorithm.0.ha1(user, &realm, password);
    c.response = c.expected(method, &ha1).unwrap();
    format!(
        "Digest username=\"{user}\", realm=\"{realm}\", nonce=\"{nonce}\", uri=\"{uri}\", response=\"{}\", algorithm={}, qop=auth, nc={nc:08x}, cnonce=\"0a4f113b\"",
        c.response,
        algorithm.0.name()
    )
}

fn challenges(m: &parley::proto::sip::Message) -> Vec<String> {
    m.headers()
        .lines(parley::proto::sip::HeaderName::WwwAuthenticate)
        .map(|v| String::from_utf8_lossy(v).into_owned())
        .collect()
}

fn contacts(m: &parley::proto::sip::Message) -> Vec<String> {
    m.headers()
        .values(parley::proto::sip::HeaderName::Contact)
        .map(|v| String::from_utf8_lossy(v).into_owned())
        .collect()
}

#[test]
fn registrar_challenges_strongest_first_and_serves_bindings() {
    // The stronger algorithms, as an operator whose clients all support
    // RFC 8760 offers them.
    let server =
        TestServer::start("[auth]\nalgorithms = [\"SHA-512-256\", \"SHA-256\", \"MD5\"]\n");
    user_add(&server, "carol@localhost", "carol-pw");
    let ua = Ua::new(server.udp);
    let c1 = format!(
        "<sip:carol@{};transport=udp>;q=0.5;x-unknown=\"kept\"",
        ua.local
    );
    let c2 = "<sip:carol@192.0.2.1:5070;ob>;q=0.9".to_string();

    // No credentials: one challenge per algorithm offered, strongest
    // first (the default offers MD5 alone; this server all three).
    let r = ua.register(
        "carol",
        "reg1",
        1,
        std::slice::from_ref(&c1),
        Some(600),
        None,
    );
    assert_eq!(r.status(), Some(401));
    let ch = challenges(&r);
    assert_eq!(ch.len(), 3, "{ch:?}");
    for (c, alg) in ch.iter().zip(["SHA-512-256", "SHA-256", "MD5"]) {
        assert!(c.contains(&format!("algorithm={alg}")), "{c}");
        assert!(c.contains("qop=\"auth\""), "{c}");
    }

    // SHA-512-256 credentials: two contacts bound, listed with q and
    // parameters as sent and their remaining time; a Date header.
    let auth = answer(&ch[0], "REGISTER", "sip:localhost", "carol", "carol-pw", 1);
    let r = ua.register(
        "carol",
        "reg1",
        2,
        &[c1.clone(), c2.clone()],
        Some(600),
        Some(&auth),
    );
    assert_eq!(r.status(), Some(200), "{:?}", r.reason());
    let listed = contacts(&r);
    assert_eq!(listed.len(), 2, "{listed:?}");
    assert!(listed.iter().any(|c| c.contains("x-unknown=\"kept\"")
        && c.contains("q=0.5")
        && c.contains("expires=")));
    assert!(r
        .headers()
        .get(parley::proto::sip::HeaderName::Date)
        .is_some());

    // The same nonce-count again is a replay: challenged, not served.
    let r = ua.register(
        "carol",
        "reg1",
        3,
        std::slice::from_ref(&c1),
        Some(600),
        Some(&auth),
    );
    assert_eq!(r.status(), Some(401));

    // A wrong password is refused.
    let ch = challenges(&r);
    let bad = answer(&ch[1], "REGISTER", "sip:localhost", "carol", "wrong", 1);
    let r = ua.register(
        "carol",
        "reg1",
        4,
        std::slice::from_ref(&c1),
        Some(600),
        Some(&bad),
    );
    assert_eq!(r.status(), Some(403));

    // Too short an interval: 423 with Min-Expires.
    let good = |nc| answer(&ch[1], "REGISTER", "sip:localhost", "carol", "carol-pw", nc);
    let r = ua.register(
        "carol",
        "reg1",
        5,
        std::slice::from_ref(&c1),
        Some(10),
        Some(&good(1)),
    );
    assert_eq!(r.status(), Some(423));
    assert_eq!(
        r.headers().get(parley::proto::sip::HeaderName::MinExpires),
        Some(&b"60"[..])
    );

    // An older CSeq on the same Call-ID is out of order.
    let r = ua.register(
        "carol",
        "reg1",
        1,
        std::slice::from_ref(&c1),
        Some(600),
        Some(&good(2)),
    );
    assert_eq!(r.status(), Some(500));

    // Removing one contact leaves the other.
    let r = ua.register(
        "carol",
        "reg1",
        6,
        std::slice::from_ref(&c2),
        Some(0),
        Some(&good(3)),
    );
    assert_eq!(r.status(), Some(200));
    assert_eq!(contacts(&r).len(), 1);

    // Contact: * needs Expires: 0; then every binding goes.
    let r = ua.register("carol", "reg1", 7, &["*".into()], Some(60), Some(&good(4)));
    assert_eq!(r.status(), Some(400));
    let r = ua.register("carol", "reg1", 8, &["*".into()], Some(0), Some(&good(5)));
    assert_eq!(r.status(), Some(200));
    assert!(contacts(&r).is_empty());

    // Someone else's address is not carol's to register.
    user_add(&server, "dave@localhost", "dave-pw");
    let r = ua.register(
        "dave",
        "reg2",
        1,
        std::slice::from_ref(&c1),
        Some(600),
        Some(&good(6)),
    );
    assert_eq!(r.status(), Some(403));
}

#[test]
fn the_proxy_is_no_open_relay_and_names_missing_users() {
    let server = TestServer::start("");
    user_add(&server, "erin@localhost", "erin-pw");
    let ua = Ua::new(server.udp);
    let message = |from: &str, to: &str| {
        format!(
            "MESSAGE sip:{to} SIP/2.0\nFrom: <sip:{from}>;tag=m1\nTo: <sip:{to}>\nCall-ID: relay-{}-{}\nCSeq: 1 MESSAGE\nContent-Type: text/plain\n",
            from.replace('@', "."),
            to.replace('@', ".")
        )
    };
    // From outside to outside: refused.
    let r = ua.request(&message("mallory@example.com", "victim@example.org"), "hi");
    assert_eq!(
        r.status(),
        Some(403),
        "{:?}",
        String::from_utf8_lossy(r.reason().unwrap_or(b""))
    );
    // From outside to a local user who is not registered: kept for her
    // (202, RFC 3428 pager mode); to no such user: 404.
    let r = ua.request(&message("friend@example.com", "erin@localhost"), "hi");
    assert_eq!(r.status(), Some(202));
    let r = ua.request(&message("friend@example.com", "nobody@localhost"), "hi");
    assert_eq!(r.status(), Some(404));
    // A local sender must authenticate first: one challenge per algorithm
    // offered (MD5 alone by default).
    let r = ua.request(&message("erin@localhost", "friend@example.com"), "hi");
    assert_eq!(r.status(), Some(407));
    let challenges: Vec<String> = r
        .headers()
        .lines(parley::proto::sip::HeaderName::ProxyAuthenticate)
        .map(|v| String::from_utf8_lossy(v).into_owned())
        .collect();
    assert_eq!(challenges.len(), 1, "{challenges:?}");
    assert!(challenges[0].contains("algorithm=MD5"), "{challenges:?}");
}

#[test]
fn bindings_survive_a_restart() {
    let dir = std::env::temp_dir().join(format!("parley-restart-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let config = "[auth]\nregistrar = false\n";
    let first = TestServer::start_in(&dir, config);
    user_add(&first, "frank@localhost", "frank-pw");
    let ua = Ua::new(first.udp);
    let c = format!("<sip:frank@{}>", ua.local);
    let r = ua.register(
        "frank",
        "persist",
        1,
        std::slice::from_ref(&c),
        Some(900),
        None,
    );
    assert_eq!(r.status(), Some(200));
    // Written through off the request path: give the writer a moment.
    std::thread::sleep(std::time::Duration::from_millis(300));
    first.stop();

    let second = TestServer::start_in(&dir, config);
    let ua2 = Ua::new(second.udp);
    // A refresh with a higher CSeq lists the binding that was restored.
    let other = format!("<sip:frank@{}>", ua2.local);
    let r = ua2.register("frank", "persist", 2, &[other], Some(900), None);
    assert_eq!(r.status(), Some(200));
    let listed = contacts(&r);
    assert_eq!(listed.len(), 2, "{listed:?}");
    assert!(listed.iter().any(|l| l.contains(&ua.local.to_string())));
    drop(second);
    let _ = std::fs::remove_dir_all(&dir);
}

/// A user agent that receives one request and answers it with `status`.
fn answer_one(sock: &std::net::UdpSocket, status: u16) -> parley::proto::sip::Message {
    let (req, from) = receive(sock);
    let reply = parley::proto::sip::stateless::respond(&req, status, "Test", "uas", &[]);
    sock.send_to(&reply, from).unwrap();
    req
}

/// Receives one request.
fn receive(sock: &std::net::UdpSocket) -> (parley::proto::sip::Message, std::net::SocketAddr) {
    let mut buf = vec![0u8; 65_536];
    let (n, from) = sock.recv_from(&mut buf).expect("a forked request");
    let req = parley::proto::sip::Message::parse(
        bytes::Bytes::copy_from_slice(&buf[..n]),
        parley::proto::sip::Framing::Datagram,
        &parley::proto::sip::Limits::default(),
    )
    .unwrap();
    (req, from)
}

fn quiet(sock: &std::net::UdpSocket) -> bool {
    sock.set_read_timeout(Some(std::time::Duration::from_millis(200)))
        .unwrap();
    let mut buf = [0u8; 4096];
    let got = sock.recv(&mut buf).is_err();
    sock.set_read_timeout(Some(std::time::Duration::from_secs(5)))
        .unwrap();
    got
}

#[test]
fn the_proxy_forks_by_q_value_and_picks_the_best_response() {
    let server = TestServer::start("[auth]\nregistrar = false\nproxy = false\n");
    user_add(&server, "gina@localhost", "gina-pw");
    let high = Ua::new(server.udp);
    let low = Ua::new(server.udp);
    let sender = Ua::new(server.udp);
    let message = |n: u32| {
        format!(
            "MESSAGE sip:gina@localhost SIP/2.0\nFrom: <sip:pal@example.com>;tag=f{n}\nTo: <sip:gina@localhost>\nCall-ID: fork{n}\nCSeq: 1 MESSAGE\nContent-Type: text/plain\n"
        )
    };
    let bind = |ua: &Ua, q: &str, cseq: u32| {
        let c = format!("<sip:gina@{}>;q={q}", ua.local);
        let r = ua.register(
            "gina",
            &format!("bind-{}", ua.local.port()),
            cseq,
            &[c],
            Some(600),
            None,
        );
        assert_eq!(r.status(), Some(200));
    };

    // Sequential: the q=1.0 contact first; on its 486 the q=0.5 one.
    bind(&high, "1.0", 1);
    bind(&low, "0.5", 1);
    std::thread::scope(|s| {
        let uas = s.spawn(|| {
            let (first, from) = receive(&high.sock);
            assert!(quiet(&low.sock), "the lower q waits for the higher");
            let busy = parley::proto::sip::stateless::respond(&first, 486, "Busy Here", "h", &[]);
            high.sock.send_to(&busy, from).unwrap();
            let second = answer_one(&low.sock, 200);
            // Max-Forwards went down by one on the way.
            assert_eq!(
                second
                    .headers()
                    .get(parley::proto::sip::HeaderName::MaxForwards),
                Some(&b"69"[..])
            );
        });
        let r = sender.request(&message(1), "hello");
        uas.join().unwrap();
        assert_eq!(r.status(), Some(200));
        // The proxy's own Via is gone from the response it forwards.
        assert_eq!(
            r.headers()
                .values(parley::proto::sip::HeaderName::Via)
                .count(),
            1
        );
    });

    // Parallel: equal q-values are tried at once; every branch fails, and
    // the best class wins (4xx over 5xx).
    bind(&low, "1.0", 2);
    std::thread::scope(|s| {
        let a = s.spawn(|| answer_one(&high.sock, 503));
        let b = s.spawn(|| answer_one(&low.sock, 486));
        let r = sender.request(&message(2), "hello");
        a.join().unwrap();
        b.join().unwrap();
        assert_eq!(r.status(), Some(486));
    });

    // A 503 chosen as best goes upstream as 500 (RFC 3261 §16.7 step 6).
    std::thread::scope(|s| {
        let a = s.spawn(|| answer_one(&high.sock, 503));
        let b = s.spawn(|| answer_one(&low.sock, 503));
        let r = sender.request(&message(3), "hello");
        a.join().unwrap();
        b.join().unwrap();
        assert_eq!(r.status(), Some(500));
    });
}

/// Registers `user` at the SIPp agent on `port` without authentication.
fn register_plain(server: &TestServer, user: &str, port: u16) {
    Sipp::start(
        "register_contact.xml",
        "u1",
        1,
        Some(server.udp),
        &[
            "-s",
            user,
            "-key",
            "uas_port",
            &port.to_string(),
            "-key",
            "domain",
            "localhost",
        ],
    )
    .wait();
}

#[test]
fn sipp_calls_through_the_proxy_with_ack_and_bye() {
    let server = TestServer::start("[auth]\nregistrar = false\nproxy = false\n");
    user_add(&server, "henry@localhost", "pw");
    let port = parley_test_support::sipp::free_port();
    // SIPp's built-in user agent server: 180, 200, then the ACK and the BYE.
    let uas = Sipp::start_on("", "u1", 1, None, port, &["-sn", "uas"]);
    register_plain(&server, "henry", port);
    Sipp::start(
        "",
        "u1",
        1,
        Some(server.udp),
        &["-sn", "uac", "-s", "henry"],
    )
    .wait();
    let trace = uas.wait();
    assert!(trace.contains("Record-Route: <sip:127.0.0.1:"), "{trace}");
    assert!(trace.contains("ACK sip:"), "{trace}");
    assert!(trace.contains("BYE sip:"), "{trace}");
}

#[test]
fn a_chat_session_is_set_up_and_torn_down_through_the_proxy_with_its_msrp_offer_intact() {
    let server = TestServer::start("[auth]\nregistrar = false\nproxy = false\n");
    user_add(&server, "mona@localhost", "pw");
    let port = parley_test_support::sipp::free_port();
    // Both scenarios check the SDP: the offer arrives as sent, the answer
    // comes back with its MSRP stream (each fails on a mismatch).
    let uas = Sipp::start_on("uas_chat_session.xml", "u1", 1, None, port, &[]);
    register_plain(&server, "mona", port);
    let uac = Sipp::start(
        "uac_chat_session.xml",
        "u1",
        1,
        Some(server.udp),
        &["-s", "mona"],
    )
    .wait();
    assert!(uac.contains("BYE sip:"), "{uac}");
    let trace = uas.wait();
    assert!(trace.contains("a=path:msrp://"), "{trace}");
    assert!(trace.contains("BYE sip:"), "{trace}");
}

#[test]
fn a_ringing_chat_session_is_cancelled_through_the_proxy() {
    let server = TestServer::start("[auth]\nregistrar = false\nproxy = false\n");
    user_add(&server, "nina@localhost", "pw");
    let port = parley_test_support::sipp::free_port();
    let uas = Sipp::start_on("uas_cancel.xml", "u1", 1, None, port, &[]);
    register_plain(&server, "nina", port);
    Sipp::start(
        "uac_chat_cancel.xml",
        "u1",
        1,
        Some(server.udp),
        &["-s", "nina"],
    )
    .wait();
    let trace = uas.wait();
    assert!(trace.contains("m=message 7654 TCP/MSRP"), "{trace}");
    assert!(trace.contains("CANCEL sip:"), "{trace}");
}

#[test]
fn sipp_cancel_reaches_the_ringing_branch() {
    let server = TestServer::start("[auth]\nregistrar = false\nproxy = false\n");
    user_add(&server, "iris@localhost", "pw");
    let port = parley_test_support::sipp::free_port();
    let uas = Sipp::start_on("uas_cancel.xml", "u1", 1, None, port, &[]);
    register_plain(&server, "iris", port);
    Sipp::start("uac_cancel.xml", "u1", 1, Some(server.udp), &["-s", "iris"]).wait();
    let trace = uas.wait();
    assert!(trace.contains("CANCEL sip:"), "{trace}");
}

#[test]
fn a_redirect_rule_answers_302_and_sipp_follows_it() {
    let server = TestServer::start(
        "[auth]\nregistrar = false\nproxy = false\n\
         [[redirect]]\nuser = \"old@localhost\"\nto = [\"sip:jane@localhost\"]\n",
    );
    user_add(&server, "jane@localhost", "pw");
    let port = parley_test_support::sipp::free_port();
    let jane = Sipp::start_on("uas_message.xml", "u1", 1, None, port, &[]);
    register_plain(&server, "jane", port);
    Sipp::start(
        "uac_follow_redirect.xml",
        "u1",
        1,
        Some(server.udp),
        &["-s", "old"],
    )
    .wait();
    let trace = jane.wait();
    assert!(trace.contains("Found you"), "{trace}");
    assert!(
        !trace.contains("Where are you"),
        "the first MESSAGE was redirected, not relayed"
    );
}

#[test]
fn a_redirect_domain_answers_with_the_registered_contacts() {
    let server = TestServer::start(
        "[auth]\nregistrar = false\nproxy = false\n[[redirect]]\ndomain = \"localhost\"\nstatus = 301\n",
    );
    user_add(&server, "kim@localhost", "pw");
    let ua = Ua::new(server.udp);
    let c = format!("<sip:kim@{}>;q=0.7", ua.local);
    let r = ua.register("kim", "redir", 1, std::slice::from_ref(&c), Some(600), None);
    assert_eq!(r.status(), Some(200));
    let r = ua.request(
        "MESSAGE sip:kim@localhost SIP/2.0\nFrom: <sip:x@example.com>;tag=1\nTo: <sip:kim@localhost>\nCall-ID: redir2\nCSeq: 1 MESSAGE\n",
        "",
    );
    assert_eq!(r.status(), Some(301));
    let contacts = contacts(&r);
    assert_eq!(contacts, [format!("<sip:kim@{}>;q=0.7", ua.local)]);
}

#[test]
fn a_request_that_comes_back_unchanged_is_a_loop() {
    let server = TestServer::start("[auth]\nregistrar = false\nproxy = false\n");
    user_add(&server, "loopy@localhost", "pw");
    let ua = Ua::new(server.udp);
    // A binding that points back at Parley itself.
    let c = format!("<sip:loopy@{}>", server.udp);
    let r = ua.register(
        "loopy",
        "loop",
        1,
        std::slice::from_ref(&c),
        Some(600),
        None,
    );
    assert_eq!(r.status(), Some(200));
    let r = ua.request(
        "MESSAGE sip:loopy@localhost SIP/2.0\nFrom: <sip:x@example.com>;tag=1\nTo: <sip:loopy@localhost>\nCall-ID: loop1\nCSeq: 1 MESSAGE\n",
        "round and round",
    );
    // The first return is a spiral (new Request-URI); the second is a loop.
    assert_eq!(r.status(), Some(482), "{:?}", r.reason());
}

#[test]
fn timer_c_cancels_a_branch_that_rings_forever() {
    let server =
        TestServer::start("[auth]\nregistrar = false\nproxy = false\n[proxy]\ntimer_c_secs = 1\n");
    user_add(&server, "lena@localhost", "pw");
    let port = parley_test_support::sipp::free_port();
    let uas = Sipp::start_on("uas_cancel.xml", "u1", 1, None, port, &[]);
    register_plain(&server, "lena", port);
    Sipp::start(
        "uac_ring_timeout.xml",
        "u1",
        1,
        Some(server.udp),
        &["-s", "lena"],
    )
    .wait();
    let trace = uas.wait();
    assert!(trace.contains("CANCEL sip:"), "{trace}");
}

#[test]
fn a_tcp_binding_is_reached_over_its_flow_then_at_its_contact() {
    use std::io::Write;
    let server = TestServer::start("[auth]\nregistrar = false\nproxy = false\n");
    user_add(&server, "mona@localhost", "pw");
    let contact_listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let contact = contact_listener.local_addr().unwrap();
    let mut flow = std::net::TcpStream::connect(server.tcp).unwrap();
    flow.set_read_timeout(Some(std::time::Duration::from_secs(5)))
        .unwrap();
    let me = flow.local_addr().unwrap();
    flow.write_all(
        format!(
            "REGISTER sip:localhost SIP/2.0\r\nVia: SIP/2.0/TCP {me};branch=z9hG4bKflow1\r\n\
             Max-Forwards: 70\r\nFrom: <sip:mona@localhost>;tag=f1\r\nTo: <sip:mona@localhost>\r\n\
             Call-ID: flow1\r\nCSeq: 1 REGISTER\r\nContact: <sip:mona@{contact};transport=tcp>\r\n\
             Expires: 600\r\nContent-Length: 0\r\n\r\n"
        )
        .as_bytes(),
    )
    .unwrap();
    assert_eq!(
        parley_test_support::read_message(&mut flow).status(),
        Some(200)
    );
    let ua = Ua::new(server.udp);
    let message = |n: u32| {
        format!(
            "MESSAGE sip:mona@localhost SIP/2.0\nFrom: <sip:x@example.com>;tag={n}\nTo: <sip:mona@localhost>\nCall-ID: flowmsg{n}\nCSeq: 1 MESSAGE\nContent-Type: text/plain\n"
        )
    };
    // While the flow is open, the request comes back over it.
    std::thread::scope(|s| {
        let uas = s.spawn(|| {
            let req = parley_test_support::read_message(&mut flow);
            let ok = parley::proto::sip::stateless::respond(&req, 200, "OK", "m", &[]);
            flow.write_all(&ok).unwrap();
        });
        assert_eq!(ua.request(&message(1), "over the flow").status(), Some(200));
        uas.join().unwrap();
    });
    // Once it is closed, the contact address is used instead.
    drop(flow);
    std::thread::sleep(std::time::Duration::from_millis(200));
    std::thread::scope(|s| {
        let uas = s.spawn(|| {
            let (mut conn, _) = contact_listener.accept().unwrap();
            conn.set_read_timeout(Some(std::time::Duration::from_secs(5)))
                .unwrap();
            let req = parley_test_support::read_message(&mut conn);
            let ok = parley::proto::sip::stateless::respond(&req, 200, "OK", "m", &[]);
            conn.write_all(&ok).unwrap();
        });
        assert_eq!(
            ua.request(&message(2), "at the contact").status(),
            Some(200)
        );
        uas.join().unwrap();
    });
}

#[test]
fn failed_authentications_are_counted_by_reason() {
    let server = TestServer::start_with_admin("");
    user_add(&server, "dora@localhost", "dora-pw");
    let ua = crate::presence::Ua::new(server.udp);
    let register = |cseq: u32, user: &str, auth: &str| {
        format!(
            "REGISTER sip:localhost SIP/2.0\nFrom: <sip:{user}@localhost>;tag=f{cseq}\nTo: <sip:{user}@localhost>\nCall-ID: fail-{user}\nCSeq: {cseq} REGISTER\n{auth}Contact: <sip:{user}@{}>",
            ua.local
        )
    };
    for (n, (user, password, want)) in [("dora", "not-dora-pw", 403), ("nobody", "x", 403)]
        .into_iter()
        .enumerate()
    {
        let cseq = 2 * n as u32 + 1;
        ua.send(&register(cseq, user, ""), "");
        let r = ua.final_response();
        assert_eq!(crate::presence::status(&r), 401, "{r}");
        let answer =
            crate::presence::digest_answer(&r, "REGISTER", "sip:localhost", user, password);
        ua.send(
            &register(cseq + 1, user, &format!("Authorization: {answer}\n")),
            "",
        );
        assert_eq!(crate::presence::status(&ua.final_response()), want);
    }
    let (code, metrics) = crate::admin::http(server.admin.unwrap(), "GET", "/metrics", None, None);
    assert_eq!(code, 200);
    for reason in ["wrong-password", "unknown-user"] {
        assert!(
            metrics.contains(&format!(
                "parley_auth_failures_total{{reason=\"{reason}\"}}"
            )),
            "{reason} not counted"
        );
    }
}
