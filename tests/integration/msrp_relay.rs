//! Parley's MSRP relay (RFC 4976) on its default settings: AUTH with the
//! users' SIP credentials, Use-Path and Expires, chunks passed on hop by
//! hop with the path rewrites, the 403/481/413 refusals, and a chain
//! through Kamailio's msrp module, an independent relay, both ways.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::Duration;

use bytes::BytesMut;
use parley::proto::msrp::{Decoder, Event, Flag, Head, Kind, MsrpLimits, MsrpUri};
use parley_test_support::kamailio::Kamailio;
use parley_test_support::server::TestServer;

use crate::registrar_proxy::cli_with;

/// A byte stream: TCP, or TLS over TCP.
pub(crate) trait Wire: Read + Write + Send {}
impl<T: Read + Write + Send> Wire for T {}

/// A test endpoint speaking MSRP over one TCP or TLS connection.
pub(crate) struct Peer {
    pub(crate) s: Box<dyn Wire>,
    buf: BytesMut,
    decoder: Decoder,
    pub(crate) uri: MsrpUri,
    n: u32,
}

type Msg = (Head, Option<Vec<u8>>, Flag);

impl Peer {
    pub(crate) fn connect(to: SocketAddr, session: &str) -> Peer {
        let s = TcpStream::connect(to).unwrap();
        s.set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        let local = s.local_addr().unwrap();
        Peer {
            uri: MsrpUri::new(false, &local.ip().to_string(), local.port(), session),
            s: Box::new(s),
            buf: BytesMut::new(),
            decoder: Decoder::new(MsrpLimits::default()),
            n: 0,
        }
    }

    /// Over TLS, trusting `cert_pem` for `localhost`.
    pub(crate) fn connect_tls(to: SocketAddr, session: &str, cert_pem: &[u8]) -> Peer {
        use rustls::pki_types::pem::PemObject;
        let mut roots = rustls::RootCertStore::empty();
        for cert in rustls::pki_types::CertificateDer::pem_slice_iter(cert_pem) {
            roots.add(cert.unwrap()).unwrap();
        }
        let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
        let conn = rustls::ClientConnection::new(std::sync::Arc::new(config), name).unwrap();
        let sock = TcpStream::connect(to).unwrap();
        sock.set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        let local = sock.local_addr().unwrap();
        Peer {
            uri: MsrpUri::new(true, &local.ip().to_string(), local.port(), session),
            s: Box::new(rustls::StreamOwned::new(conn, sock)),
            buf: BytesMut::new(),
            decoder: Decoder::new(MsrpLimits::default()),
            n: 0,
        }
    }

    pub(crate) fn from_stream(s: TcpStream, uri: MsrpUri) -> Peer {
        s.set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        Peer {
            s: Box::new(s),
            buf: BytesMut::new(),
            decoder: Decoder::new(MsrpLimits::default()),
            uri,
            n: 0,
        }
    }

    pub(crate) fn tid(&mut self) -> String {
        self.n += 1;
        format!("tid{:05}x", self.n)
    }

    pub(crate) fn send(&mut self, head: &Head, body: Option<&[u8]>, flag: Flag) {
        self.s.write_all(&head.to_bytes(body, flag)).unwrap();
    }

    /// The next whole message within `wait`, or `None` (also when the
    /// relay closed the connection).
    pub(crate) fn next(&mut self, wait: Duration) -> Option<Msg> {
        let deadline = std::time::Instant::now() + wait;
        let mut current: Option<(Head, Option<Vec<u8>>)> = None;
        loop {
            while let Some(e) = self
                .decoder
                .decode(&mut self.buf)
                .expect("well-formed MSRP from Parley")
            {
                match e {
                    Event::Head(h) => {
                        let body = h.has_body.then(Vec::new);
                        current = Some((h, body));
                    }
                    Event::Refused(_, e) => panic!("malformed MSRP: {e}"),
                    Event::Data(d) => current
                        .as_mut()?
                        .1
                        .get_or_insert_with(Vec::new)
                        .extend_from_slice(&d),
                    Event::End(f) => {
                        let (h, b) = current.take()?;
                        return Some((h, b, f));
                    }
                }
            }
            if std::time::Instant::now() > deadline {
                return None;
            }
            let mut chunk = [0u8; 65536];
            match self.s.read(&mut chunk) {
                Ok(0) => return None,
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) => {}
                Err(_) => return None,
            }
        }
    }

    /// The next request (responses before it are skipped).
    pub(crate) fn next_request(&mut self, wait: Duration) -> Option<Msg> {
        let deadline = std::time::Instant::now() + wait;
        while std::time::Instant::now() < deadline {
            let m = self.next(deadline - std::time::Instant::now())?;
            if matches!(m.0.kind, Kind::Request { .. }) {
                return Some(m);
            }
        }
        None
    }

    /// The response to `tid`.
    pub(crate) fn response_to(&mut self, tid: &str, wait: Duration) -> Option<Head> {
        let deadline = std::time::Instant::now() + wait;
        while std::time::Instant::now() < deadline {
            let (h, _, _) = self.next(deadline - std::time::Instant::now())?;
            if h.tid == tid && h.code().is_some() {
                return Some(h);
            }
        }
        None
    }

    /// AUTH to the relay at `relay` as `user` with `password`; the
    /// Use-Path granted, or the final status.
    pub(crate) fn auth(
        &mut self,
        relay: &MsrpUri,
        user: &str,
        password: &str,
    ) -> Result<(MsrpUri, u64), u16> {
        self.auth_asking(relay, user, password, None)
    }

    /// [`Peer::auth`], asking for `expires` seconds.
    pub(crate) fn auth_asking(
        &mut self,
        relay: &MsrpUri,
        user: &str,
        password: &str,
        expires: Option<u64>,
    ) -> Result<(MsrpUri, u64), u16> {
        let tid = self.tid();
        let head = Head::request("AUTH", &tid, vec![relay.clone()], vec![self.uri.clone()]);
        self.send(&head, None, Flag::End);
        let challenge = self
            .response_to(&tid, Duration::from_secs(5))
            .expect("an answer to AUTH");
        if challenge.code() != Some(401) {
            return Err(challenge.code().unwrap_or(0));
        }
        // The first challenge this client knows (all of Parley's).
        let value = parley::proto::digest::answer(
            challenge.values("WWW-Authenticate"),
            "AUTH",
            &relay.to_string(),
            user,
            password,
            "0a4f113b",
        )
        .expect("a digest challenge");
        let tid = self.tid();
        let mut head = Head::request("AUTH", &tid, vec![relay.clone()], vec![self.uri.clone()])
            .with("Authorization", value);
        if let Some(e) = expires {
            head = head.with("Expires", e.to_string());
        }
        self.send(&head, None, Flag::End);
        let r = self
            .response_to(&tid, Duration::from_secs(5))
            .expect("an answer to AUTH");
        if r.code() != Some(200) {
            return Err(r.code().unwrap_or(0));
        }
        let use_path = MsrpUri::parse(r.header("Use-Path").expect("Use-Path")).unwrap();
        Ok((use_path, r.expires().expect("Expires")))
    }

    pub(crate) fn send_text(
        &mut self,
        to_path: Vec<MsrpUri>,
        text: &str,
        extra: &[(&str, &str)],
    ) -> String {
        let tid = self.tid();
        let mut head = Head::request("SEND", &tid, to_path, vec![self.uri.clone()])
            .with("Message-ID", format!("msg{tid}"))
            .with("Byte-Range", format!("1-{}/{}", text.len(), text.len()))
            .with("Content-Type", "text/plain");
        for (n, v) in extra {
            head = head.with(n, *v);
        }
        self.send(&head, Some(text.as_bytes()), Flag::End);
        tid
    }

    /// Answers a received request with 200 (as an endpoint does).
    pub(crate) fn ok(&mut self, request: &Head) {
        let r = request.response(200, "OK", &self.uri);
        self.send(&r, None, Flag::End);
    }
}

/// Kamailio's msrp module as a relay on a free TCP port, up and
/// accepting: the process and the relay's address.
pub(crate) fn kamailio_relay() -> (Kamailio, SocketAddr) {
    let port = parley_test_support::sipp::free_port();
    let kamailio = Kamailio::start("msrp-relay.cfg", &[("RELAYTCP", port.to_string())]);
    let kam: SocketAddr = ([127, 0, 0, 1], port).into();
    for _ in 0..100 {
        if TcpStream::connect(kam).is_ok() {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    (kamailio, kam)
}

pub(crate) fn relay_uri(addr: SocketAddr) -> MsrpUri {
    MsrpUri::parse(&format!("msrp://{addr};tcp")).unwrap()
}

fn parley_with_user(user: &str) -> TestServer {
    let parley = TestServer::start("");
    cli_with(
        &parley,
        "",
        &[
            "user",
            "add",
            &format!("{user}@localhost"),
            "--password",
            "pw",
        ],
    );
    parley
}

const WAIT: Duration = Duration::from_secs(5);

#[test]
fn a_user_authenticates_and_chunks_pass_both_ways_with_the_paths_rewritten() {
    let parley = parley_with_user("alice");
    let relay = relay_uri(parley.msrp.expect("the relay runs by default"));
    let mut alice = Peer::connect(parley.msrp.unwrap(), "alice1");
    // Wrong password: 403; the right one: a session.
    assert_eq!(alice.auth(&relay, "alice", "wrong").unwrap_err(), 403);
    let (use_path, expires) = alice.auth(&relay, "alice", "pw").unwrap();
    assert!(use_path.session_id.is_some() && relay.port == use_path.port);
    assert_eq!(expires, 600, "the configured default");

    // Bob is an endpoint out there, listening.
    let bob_listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let bob_uri = MsrpUri::new(
        false,
        "127.0.0.1",
        bob_listener.local_addr().unwrap().port(),
        "bob1",
    );
    let tid = alice.send_text(vec![use_path.clone(), bob_uri.clone()], "Hi Bob", &[]);
    let (conn, _) = bob_listener.accept().unwrap();
    let mut bob = Peer::from_stream(conn, bob_uri.clone());
    let (got, body, flag) = bob.next_request(WAIT).expect("the SEND reached Bob");
    assert_eq!(body.as_deref(), Some(&b"Hi Bob"[..]));
    assert_eq!(flag, Flag::End);
    assert_eq!(
        got.to_path,
        vec![bob_uri.clone()],
        "the relay took itself off To-Path"
    );
    assert_eq!(
        got.from_path,
        vec![use_path.clone(), alice.uri.clone()],
        "and put itself on From-Path"
    );
    // The relay answered Alice hop by hop.
    assert_eq!(
        alice.response_to(&tid, WAIT).and_then(|h| h.code()),
        Some(200)
    );
    bob.ok(&got);

    // Bob answers over the same connection, through the relay, to Alice.
    let tid = bob.send_text(vec![use_path.clone(), alice.uri.clone()], "Hi Alice", &[]);
    let (got, body, _) = alice.next_request(WAIT).expect("Bob's SEND reached Alice");
    assert_eq!(body.as_deref(), Some(&b"Hi Alice"[..]));
    assert_eq!(got.to_path, vec![alice.uri.clone()]);
    assert_eq!(got.from_path, vec![use_path.clone(), bob_uri.clone()]);
    assert_eq!(
        bob.response_to(&tid, WAIT).and_then(|h| h.code()),
        Some(200)
    );

    // A message in three chunks, with a body over the read buffer.
    let big: Vec<u8> = (0..300_000u32).map(|i| b'a' + (i % 26) as u8).collect();
    let parts = [&big[..100_000], &big[100_000..200_000], &big[200_000..]];
    for (i, part) in parts.iter().enumerate() {
        let tid = alice.tid();
        let start = i * 100_000 + 1;
        let head = Head::request(
            "SEND",
            &tid,
            vec![use_path.clone(), bob_uri.clone()],
            vec![alice.uri.clone()],
        )
        .with("Message-ID", "bigmsg1")
        .with(
            "Byte-Range",
            format!("{start}-{}/300000", start + part.len() - 1),
        )
        .with("Content-Type", "text/plain");
        alice.send(
            &head,
            Some(part),
            if i == 2 { Flag::End } else { Flag::More },
        );
    }
    let mut joined = Vec::new();
    for i in 0..3 {
        let (h, b, f) = bob.next_request(WAIT).expect("every chunk passed on");
        assert_eq!(f, if i == 2 { Flag::End } else { Flag::More });
        assert_eq!(h.message_id(), Some("bigmsg1"));
        joined.extend_from_slice(&b.unwrap());
    }
    assert_eq!(joined, big);
}

#[test]
fn over_tls_with_the_self_made_certificate_a_user_gets_an_msrps_path() {
    let parley = parley_with_user("tess");
    let addr = parley.msrps.expect("msrps listens by default");
    let pem = std::fs::read(parley.state_dir.join("tls/cert.pem")).unwrap();
    let mut tess = Peer::connect_tls(addr, "tess1", &pem);
    let relay = MsrpUri::parse(&format!("msrps://{addr};tcp")).unwrap();
    let (use_path, _) = tess.auth(&relay, "tess", "pw").unwrap();
    assert!(use_path.secure, "{use_path}");
    assert_eq!(use_path.port, Some(addr.port()));
    // A message out to a plain-TCP endpoint, through the TLS relay.
    let far = TcpListener::bind("127.0.0.1:0").unwrap();
    let far_uri = MsrpUri::new(false, "127.0.0.1", far.local_addr().unwrap().port(), "far1");
    let tid = tess.send_text(vec![use_path.clone(), far_uri.clone()], "over TLS", &[]);
    let (conn, _) = far.accept().unwrap();
    let mut endpoint = Peer::from_stream(conn, far_uri);
    let (got, body, _) = endpoint.next_request(WAIT).expect("passed on");
    assert_eq!(body.as_deref(), Some(&b"over TLS"[..]));
    assert_eq!(got.from_path[0], use_path);
    assert_eq!(
        tess.response_to(&tid, WAIT).and_then(|h| h.code()),
        Some(200)
    );
}

#[test]
fn requests_the_relay_cannot_serve_are_refused_with_the_rfc_status() {
    let parley = parley_with_user("carol");
    let relay = relay_uri(parley.msrp.unwrap());
    let mut carol = Peer::connect(parley.msrp.unwrap(), "carol1");
    let elsewhere = MsrpUri::new(false, "127.0.0.1", 9, "x1");

    // No session: 481.
    let mut unknown = relay.clone();
    unknown.session_id = Some("nosuchsession".into());
    let tid = carol.send_text(vec![unknown, elsewhere.clone()], "hello", &[]);
    assert_eq!(
        carol.response_to(&tid, WAIT).and_then(|h| h.code()),
        Some(481)
    );

    // Another user's session, from a connection that does not hold it and
    // to a hop that is not that user: 403.
    let (use_path, _) = carol.auth(&relay, "carol", "pw").unwrap();
    let mut mallory = Peer::connect(parley.msrp.unwrap(), "mallory1");
    let tid = mallory.send_text(vec![use_path.clone(), elsewhere.clone()], "spam", &[]);
    assert_eq!(
        mallory.response_to(&tid, WAIT).and_then(|h| h.code()),
        Some(403)
    );
    // AUTH addressed to a relay that is not this one: 403.
    let tid = mallory.tid();
    let head = Head::request(
        "AUTH",
        &tid,
        vec![elsewhere.clone()],
        vec![mallory.uri.clone()],
    );
    mallory.send(&head, None, Flag::End);
    assert_eq!(
        mallory.response_to(&tid, WAIT).and_then(|h| h.code()),
        Some(403)
    );
    // Failure-Report: no means no response at all, even for a refusal.
    let tid = mallory.send_text(
        vec![use_path.clone(), elsewhere.clone()],
        "quiet",
        &[("Failure-Report", "no")],
    );
    assert!(mallory
        .response_to(&tid, Duration::from_millis(600))
        .is_none());

    // Sound framing but a malformed field: 400, and the connection stays.
    let tid = carol.tid();
    let bad = Head::request(
        "SEND",
        &tid,
        vec![use_path.clone(), elsewhere.clone()],
        vec![carol.uri.clone()],
    )
    .with("Message-ID", "m1")
    .with("Byte-Range", "0-5/5")
    .with("Content-Type", "text/plain");
    carol.send(&bad, Some(b"hello"), Flag::End);
    assert_eq!(
        carol.response_to(&tid, WAIT).and_then(|h| h.code()),
        Some(400)
    );

    // Expires below the minimum: 423; above the maximum: cut to it.
    assert_eq!(
        carol
            .auth_asking(&relay, "carol", "pw", Some(5))
            .unwrap_err(),
        423
    );
    assert_eq!(
        carol
            .auth_asking(&relay, "carol", "pw", Some(99_999))
            .unwrap()
            .1,
        3600
    );
}

#[test]
fn a_chunk_over_the_limit_is_cut_with_the_abort_flag_and_answered_413() {
    let parley = TestServer::start("[msrp.limits]\nmax_chunk = 1000\n");
    cli_with(
        &parley,
        "",
        &["user", "add", "dave@localhost", "--password", "pw"],
    );
    let relay = relay_uri(parley.msrp.unwrap());
    let mut dave = Peer::connect(parley.msrp.unwrap(), "dave1");
    let (use_path, _) = dave.auth(&relay, "dave", "pw").unwrap();
    let eve_listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let eve_uri = MsrpUri::new(
        false,
        "127.0.0.1",
        eve_listener.local_addr().unwrap().port(),
        "eve1",
    );
    let text = "x".repeat(5000);
    let tid = dave.send_text(vec![use_path, eve_uri.clone()], &text, &[]);
    let (conn, _) = eve_listener.accept().unwrap();
    let mut eve = Peer::from_stream(conn, eve_uri);
    let (_, body, flag) = eve
        .next_request(WAIT)
        .expect("the start of the chunk, then its end");
    assert_eq!(flag, Flag::Abort, "the chunk was interrupted");
    assert!(body.unwrap().len() <= 1000 + 64 * 1024);
    assert_eq!(
        dave.response_to(&tid, WAIT).and_then(|h| h.code()),
        Some(413)
    );
}

#[test]
fn a_session_runs_through_kamailio_and_parley_both_ways() {
    let parley = parley_with_user("frank");
    let parley_relay = relay_uri(parley.msrp.unwrap());
    let msrp_port = parley_test_support::sipp::free_port();
    let kamailio = Kamailio::start("msrp-relay.cfg", &[("RELAYTCP", msrp_port.to_string())]);
    let kam_addr: SocketAddr = ([127, 0, 0, 1], msrp_port).into();
    for _ in 0..100 {
        if TcpStream::connect(kam_addr).is_ok() {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let kam_relay = relay_uri(kam_addr);

    // Grace authenticates to Kamailio, Frank to Parley.
    let mut grace = Peer::connect(kam_addr, "grace1");
    let (grace_path, _) = grace
        .auth(&kam_relay, "grace", "kampw")
        .expect("Kamailio grants a session");
    let mut frank = Peer::connect(parley.msrp.unwrap(), "frank1");
    let (frank_path, _) = frank.auth(&parley_relay, "frank", "pw").unwrap();

    // Grace -> Kamailio -> Parley -> Frank.
    let tid = grace.send_text(
        vec![grace_path.clone(), frank_path.clone(), frank.uri.clone()],
        "via two relays",
        &[],
    );
    let (got, body, _) = frank
        .next_request(WAIT)
        .expect("through Kamailio and Parley");
    assert_eq!(body.as_deref(), Some(&b"via two relays"[..]));
    assert_eq!(got.to_path, vec![frank.uri.clone()]);
    assert_eq!(got.from_path.len(), 3, "{:?}", got.from_path);
    assert!(got.from_path[0].same_as(&frank_path));
    assert_eq!(got.from_path[2], grace.uri);
    assert_eq!(
        grace.response_to(&tid, WAIT).and_then(|h| h.code()),
        Some(200)
    );
    frank.ok(&got);

    // Frank -> Parley -> Kamailio -> Grace, over a connection Parley opens.
    let tid = frank.send_text(
        vec![frank_path.clone(), grace_path.clone(), grace.uri.clone()],
        "and back",
        &[],
    );
    let (got, body, _) = grace
        .next_request(WAIT)
        .expect("through Parley and Kamailio");
    assert_eq!(body.as_deref(), Some(&b"and back"[..]));
    assert_eq!(got.to_path, vec![grace.uri.clone()]);
    assert_eq!(
        frank.response_to(&tid, WAIT).and_then(|h| h.code()),
        Some(200)
    );
    drop(kamailio);
}

/// True when the relay closes `s` within `wait`.
fn closed_within(s: &mut TcpStream, wait: Duration) -> bool {
    let deadline = std::time::Instant::now() + wait;
    let mut buf = [0u8; 1024];
    s.set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    while std::time::Instant::now() < deadline {
        match s.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => {}
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(_) => return true,
        }
    }
    false
}

#[test]
fn connections_that_never_authenticate_make_room_and_run_out_of_time() {
    let parley = TestServer::start("[msrp]\nmax_connections = 3\nauth_timeout_secs = 2\n");
    cli_with(
        &parley,
        "",
        &["user", "add", "olga@localhost", "--password", "pw"],
    );
    let relay = relay_uri(parley.msrp.unwrap());
    let mut olga = Peer::connect(parley.msrp.unwrap(), "olga1");
    olga.auth(&relay, "olga", "pw").unwrap();
    let mut first = TcpStream::connect(parley.msrp.unwrap()).unwrap();
    std::thread::sleep(Duration::from_millis(100));
    let mut second = TcpStream::connect(parley.msrp.unwrap()).unwrap();
    std::thread::sleep(Duration::from_millis(100));
    // Full: the newcomer gets in, the oldest unauthenticated one goes.
    let mut third = TcpStream::connect(parley.msrp.unwrap()).unwrap();
    assert!(
        closed_within(&mut first, Duration::from_secs(1)),
        "the oldest made room"
    );
    assert!(!closed_within(&mut second, Duration::from_millis(300)));
    // A trickle of bytes does not buy time past the deadline.
    for _ in 0..4 {
        let _ = third.write_all(b"M");
        std::thread::sleep(Duration::from_millis(400));
    }
    assert!(
        closed_within(&mut second, Duration::from_secs(2)),
        "deadline"
    );
    assert!(
        closed_within(&mut third, Duration::from_secs(2)),
        "deadline"
    );
    // The authenticated connection is still served.
    let (use_path, _) = olga.auth(&relay, "olga", "pw").unwrap();
    assert!(use_path.session_id.is_some());
}

#[test]
fn metrics_count_sessions_and_what_the_relay_passed_on() {
    let parley = TestServer::start_with_admin("");
    cli_with(
        &parley,
        "",
        &["user", "add", "pia@localhost", "--password", "pw"],
    );
    let relay = relay_uri(parley.msrp.unwrap());
    let mut pia = Peer::connect(parley.msrp.unwrap(), "pia1");
    let (use_path, _) = pia.auth(&relay, "pia", "pw").unwrap();
    let far = TcpListener::bind("127.0.0.1:0").unwrap();
    let far_uri = MsrpUri::new(false, "127.0.0.1", far.local_addr().unwrap().port(), "far2");
    let tid = pia.send_text(vec![use_path, far_uri], "counted", &[]);
    let _held = far.accept().unwrap();
    assert_eq!(
        pia.response_to(&tid, WAIT).and_then(|h| h.code()),
        Some(200)
    );
    let (code, metrics) = crate::admin::http(parley.admin.unwrap(), "GET", "/metrics", None, None);
    assert_eq!(code, 200);
    // The console's status says the same.
    let token = parley.admin_token();
    let (code, status) = crate::admin::http(
        parley.admin.unwrap(),
        "GET",
        "/api/v1/status",
        Some(&token),
        None,
    );
    assert_eq!(code, 200, "{status}");
    let st: serde_json::Value = serde_json::from_str(&status).unwrap();
    assert_eq!(st["msrp"]["relay_sessions"], 1, "{st}");
    assert!(st["msrp"]["relayed_chunks"].as_u64() >= Some(1), "{st}");
    assert!(
        st["msrp"]["relay"].as_array().is_some_and(|r| r.len() == 2),
        "{st}"
    );
    for line in [
        "parley_msrp_relayed_chunks_total",
        "parley_msrp_relayed_bytes_total",
        "# TYPE parley_msrp_sessions gauge",
    ] {
        assert!(metrics.contains(line), "{line} missing:\n{metrics}");
    }
}

#[test]
fn a_next_hop_that_stops_reading_is_cut_off_and_the_sender_is_told() {
    let parley = TestServer::start("[msrp]\nwrite_timeout_secs = 1\n");
    cli_with(
        &parley,
        "",
        &["user", "add", "ugo@localhost", "--password", "pw"],
    );
    let relay = relay_uri(parley.msrp.unwrap());
    let mut ugo = Peer::connect(parley.msrp.unwrap(), "ugo1");
    let (use_path, _) = ugo.auth(&relay, "ugo", "pw").unwrap();
    // The far end accepts and never reads.
    let far = TcpListener::bind("127.0.0.1:0").unwrap();
    let far_uri = MsrpUri::new(
        false,
        "127.0.0.1",
        far.local_addr().unwrap().port(),
        "deaf1",
    );
    let (tx, rx) = std::sync::mpsc::channel();
    let sender = std::thread::spawn(move || {
        let piece = vec![b'z'; 1 << 20];
        let mut tids = Vec::new();
        for n in 0..24 {
            let tid = ugo.tid();
            let head = Head::request(
                "SEND",
                &tid,
                vec![use_path.clone(), far_uri.clone()],
                vec![ugo.uri.clone()],
            )
            .with("Message-ID", format!("deaf{n:04}"))
            .with("Byte-Range", format!("1-{0}/{0}", piece.len()))
            .with("Content-Type", "text/plain");
            if ugo
                .s
                .write_all(&head.to_bytes(Some(&piece), Flag::End))
                .is_err()
            {
                break;
            }
            tids.push(tid);
        }
        // Every SEND is answered, and not every one with 200: the hop was
        // cut off and the sender told so.
        let mut codes = Vec::new();
        for tid in &tids {
            codes.push(
                ugo.response_to(tid, Duration::from_secs(10))
                    .and_then(|h| h.code()),
            );
        }
        let _ = tx.send(codes);
    });
    let (mut conn, _) = far.accept().unwrap();
    // No second chance: the relay cannot open another connection to it.
    drop(far);
    let codes = rx
        .recv_timeout(Duration::from_secs(60))
        .expect("the sender was answered");
    sender.join().unwrap();
    assert!(
        codes.iter().any(|c| matches!(c, Some(408) | Some(481))),
        "{codes:?}"
    );
    // The relay closed the far connection: what it holds ends in EOF.
    conn.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut sink = vec![0u8; 1 << 20];
    let closed = loop {
        match conn.read(&mut sink) {
            Ok(0) => break true,
            Ok(_) => {}
            Err(_) => break false,
        }
    };
    assert!(closed, "the relay cut the far end off");
}
