//! Requests Parley sends: client transactions over UDP, TCP and TLS, with
//! SIPp as the user agent server; connection reuse; a large request moved
//! from UDP to TCP (RFC 3261 §18.1.1); a 408 when no response comes and a
//! 503 when the connection cannot be made.

use std::io::Write;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use parley::net::Target;
use parley::proto::sip::Transport;
use parley::proto::sip::{Framing, Limits, Message};
use parley_test_support::read_message;
use parley_test_support::server::TestServer;
use parley_test_support::sipp::{free_port, Sipp};

const WAIT: Duration = Duration::from_secs(10);

fn message(to: SocketAddr, id: &str, body: &str) -> Message {
    let text = format!(
        "MESSAGE sip:bob@{to} SIP/2.0\r\nFrom: <sip:alice@localhost>;tag=a{id}\r\n\
         To: <sip:bob@{to}>\r\nCall-ID: {id}@localhost\r\nCSeq: 1 MESSAGE\r\n\
         Content-Type: text/plain\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    Message::parse(Bytes::from(text), Framing::Stream, &Limits::default()).expect("request")
}

fn statuses(responses: &[Message]) -> Vec<u16> {
    responses.iter().filter_map(Message::status).collect()
}

fn local(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

#[test]
fn message_over_udp_to_sipp() {
    let server = TestServer::start("");
    let uas = Sipp::start("uas_message.xml", "u1", 1, None, &[]);
    let target = Target::new(Transport::Udp, local(uas.port));
    let responses = server
        .request(message(target.addr, "u1", "hello"), &target, WAIT)
        .unwrap();
    assert_eq!(statuses(&responses), [200]);
    let trace = uas.wait();
    assert!(trace.contains("Via: SIP/2.0/UDP 127.0.0.1:"), "{trace}");
    assert!(trace.contains(";rport"), "{trace}");
}

#[test]
fn requests_over_tcp_share_one_connection() {
    let server = TestServer::start("");
    let uas = Sipp::start("uas_message.xml", "t1", 2, None, &[]);
    let target = Target::new(Transport::Tcp, local(uas.port));
    for id in ["t1", "t2"] {
        let responses = server
            .request(message(target.addr, id, "hello"), &target, WAIT)
            .unwrap();
        assert_eq!(statuses(&responses), [200], "{id}");
        assert_eq!(server.sip.open_connections(), 1);
    }
    let trace = uas.wait();
    assert!(trace.contains("Via: SIP/2.0/TCP 127.0.0.1:"), "{trace}");
}

#[test]
fn a_request_too_large_for_udp_goes_over_tcp() {
    let server = TestServer::start("");
    // SIPp listens on TCP only: the request arrives only if Parley moved it.
    let uas = Sipp::start("uas_message.xml", "t1", 1, None, &[]);
    let target = Target::new(Transport::Udp, local(uas.port));
    let body = "x".repeat(2000);
    let responses = server
        .request(message(target.addr, "big", &body), &target, WAIT)
        .unwrap();
    assert_eq!(statuses(&responses), [200]);
    let trace = uas.wait();
    assert!(trace.contains("Via: SIP/2.0/TCP 127.0.0.1:"), "{trace}");
}

#[test]
fn no_response_becomes_408_after_retransmissions() {
    let server = TestServer::start("[sip.timers]\nt1_ms = 10\n");
    let silent = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    silent
        .set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let target = Target::new(Transport::Udp, silent.local_addr().unwrap());
    let started = std::time::Instant::now();
    let responses = server
        .request(message(target.addr, "lost", "hello"), &target, WAIT)
        .unwrap();
    assert_eq!(statuses(&responses), [408]);
    // Timer F is 64*T1 = 640 ms; Timer E retransmitted meanwhile.
    assert!(started.elapsed() >= Duration::from_millis(600));
    let mut buf = [0u8; 4096];
    let mut received = 0;
    while silent.recv(&mut buf).is_ok() {
        received += 1;
    }
    assert!(received >= 5, "only {received} transmissions");
}

#[test]
fn a_refused_connection_becomes_503() {
    let server = TestServer::start("");
    let target = Target::new(Transport::Tcp, local(free_port()));
    let responses = server
        .request(message(target.addr, "refused", "hello"), &target, WAIT)
        .unwrap();
    assert_eq!(statuses(&responses), [503]);
}

#[test]
fn a_request_to_a_peer_reuses_the_connection_it_opened() {
    let server = TestServer::start("");
    let mut peer = std::net::TcpStream::connect(server.tcp).unwrap();
    peer.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let me = peer.local_addr().unwrap();
    peer.write_all(
        format!(
            "OPTIONS sip:{} SIP/2.0\r\nVia: SIP/2.0/TCP {me};branch=z9hG4bKreuse1\r\n\
             From: <sip:peer@{me}>;tag=p1\r\nTo: <sip:{}>\r\nCall-ID: reuse1\r\n\
             CSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n",
            server.tcp, server.tcp
        )
        .as_bytes(),
    )
    .unwrap();
    let first = read_message(&mut peer);
    assert_eq!(first.status(), Some(200));

    // Parley sends to the peer's address: over the connection the peer opened.
    let target = Target::new(Transport::Tcp, me);
    let sip = server.sip.clone();
    let request = message(me, "back", "hello");
    let mut rx = server
        .block_on(async move { sip.request(request, &target).await })
        .unwrap();
    let got = read_message(&mut peer);
    assert!(got.is_request());
    let via = got.top_via().unwrap().unwrap();
    assert_eq!(via.transport, "TCP");
    let reply = parley::proto::sip::stateless::respond(&got, 200, "OK", "peer", &[]);
    peer.write_all(&reply).unwrap();
    let response = server
        .block_on(async move { tokio::time::timeout(WAIT, rx.recv()).await })
        .unwrap()
        .unwrap();
    assert_eq!(response.status(), Some(200));
}

#[test]
fn tls_request_verified_against_the_configured_anchor() {
    let own = parley_test_support::pki::TestCert::self_signed("localhost");
    let server = TestServer::start(&format!(
        "[sip.tls]\ncert = {}\nkey = {}\nca_file = {}\n",
        own.cert_toml(),
        own.key_toml(),
        own.cert_toml()
    ));
    // Parley's client side talks TLS to Parley's own listener, which
    // answers OPTIONS.
    let options = |name: &str| {
        let text = format!(
            "OPTIONS sip:{name} SIP/2.0\r\nFrom: <sip:alice@localhost>;tag=t{name}\r\n\
             To: <sip:{name}>\r\nCall-ID: tls-{name}\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
        );
        Message::parse(Bytes::from(text), Framing::Stream, &Limits::default()).unwrap()
    };
    let good = Target {
        transport: Transport::Tls,
        addr: server.tls,
        name: Some("localhost".into()),
    };
    let responses = server.request(options("localhost"), &good, WAIT).unwrap();
    assert_eq!(statuses(&responses), [200]);
    // A name the certificate does not carry fails the handshake: 503.
    let bad = Target {
        name: Some("elsewhere.example".into()),
        ..good
    };
    let responses = server
        .request(options("elsewhere.example"), &bad, WAIT)
        .unwrap();
    assert_eq!(statuses(&responses), [503]);
}
