//! Overload control: past `[sip.overload] max_pending` unanswered
//! requests, a new one gets 503 with Retry-After at once; what was admitted
//! is not turned away, and OPTIONS to Parley itself is still answered.
//! Connection fairness: one address gets its share of TCP connections, a
//! full budget makes room by closing the oldest unused connection, and a
//! message dripped byte by byte is cut off.

use std::net::UdpSocket;
use std::time::Duration;

use parley_test_support::server::TestServer;

use crate::presence::{header, status, Ua};
use crate::registrar_proxy::user_add;

#[test]
fn past_the_bound_new_requests_get_503_and_admitted_ones_go_on() {
    let server = TestServer::start(
        "[auth]\nregistrar = false\nproxy = false\n[sip.overload]\nmax_pending = 4\nretry_after_secs = 7\n",
    );
    user_add(&server, "bob@localhost", "b");
    // Bob's device takes MESSAGEs and never answers: each stays pending
    // (Timer F) and holds a place.
    let silent = UdpSocket::bind("127.0.0.1:0").unwrap();
    silent
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let ua = Ua::new(server.udp);
    ua.send(
        &format!(
            "REGISTER sip:localhost SIP/2.0\nFrom: <sip:bob@localhost>;tag=r1\nTo: <sip:bob@localhost>\nCall-ID: reg-bob\nCSeq: 1 REGISTER\nContact: <sip:bob@{}>\nExpires: 600",
            silent.local_addr().unwrap()
        ),
        "",
    );
    assert_eq!(status(&ua.final_response()), 200);
    let message = |call: &str| {
        format!(
            "MESSAGE sip:bob@localhost SIP/2.0\nFrom: <sip:alice@localhost>;tag={call}\nTo: <sip:bob@localhost>\nCall-ID: {call}\nCSeq: 1 MESSAGE\nContent-Type: text/plain"
        )
    };
    for n in 0..4 {
        ua.send(&message(&format!("held-{n}")), "hello");
    }
    // Each of the four reaches Bob's device: admitted and now pending.
    let mut buf = [0u8; 4096];
    let mut reached = 0;
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while reached < 4 && std::time::Instant::now() < deadline {
        if let Ok(n) = silent.recv(&mut buf) {
            if buf[..n].starts_with(b"MESSAGE ") {
                reached += 1;
            }
        }
    }
    assert_eq!(reached, 4, "the admitted MESSAGEs were forwarded");
    // The fifth is turned away at once, with Retry-After.
    ua.send(&message("turned-away"), "hello");
    let r = ua.final_response();
    assert_eq!(status(&r), 503, "{r}");
    assert_eq!(header(&r, "Retry-After"), Some("7"), "{r}");
    assert!(r.contains("Call-ID: turned-away"), "{r}");
    // OPTIONS to Parley itself needs no transaction and is still answered.
    ua.send(
        "OPTIONS sip:localhost SIP/2.0\nFrom: <sip:alice@localhost>;tag=o1\nTo: <sip:localhost>\nCall-ID: ping\nCSeq: 1 OPTIONS",
        "",
    );
    assert_eq!(status(&ua.final_response()), 200);
}

/// A TCP connection to `server` from the loopback address `from`.
fn connect_from(from: [u8; 4], server: std::net::SocketAddr) -> std::net::TcpStream {
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    socket
        .bind(&std::net::SocketAddr::from((from, 0)).into())
        .unwrap();
    socket.connect(&server.into()).unwrap();
    let s: std::net::TcpStream = socket.into();
    s.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    s
}

/// True when the server closed the connection (EOF or reset) within the
/// read timeout; false when it is still open.
fn closed_by_server(s: &mut std::net::TcpStream) -> bool {
    use std::io::{ErrorKind, Read};
    let mut buf = [0u8; 256];
    match s.read(&mut buf) {
        Ok(n) => n == 0,
        Err(e) => !matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut),
    }
}

#[test]
fn one_client_cannot_lock_the_others_out_of_tcp() {
    use std::io::Write;
    let server = TestServer::start(
        "[auth]\nregistrar = false\nproxy = false\n[sip]\nmax_connections = 6\n\
         [sip.connections]\nmax_per_source = 3\nmessage_timeout_secs = 2\n",
    );
    // One address holds its share of idle connections; a fourth is closed.
    let mut a: Vec<_> = (0..3)
        .map(|_| connect_from([127, 0, 0, 2], server.tcp))
        .collect();
    std::thread::sleep(Duration::from_millis(200));
    let mut fourth = connect_from([127, 0, 0, 2], server.tcp);
    assert!(closed_by_server(&mut fourth), "over its share: closed");
    // Another fills the rest of the budget with idle connections too.
    let _b: Vec<_> = (0..3)
        .map(|_| connect_from([127, 0, 0, 3], server.tcp))
        .collect();
    std::thread::sleep(Duration::from_millis(200));
    // A real client still gets in: the oldest unused connection makes room.
    let mut client = connect_from([127, 0, 0, 4], server.tcp);
    let local = client.local_addr().unwrap();
    write!(
        client,
        "OPTIONS sip:localhost SIP/2.0\r\nVia: SIP/2.0/TCP {local};branch=z9hG4bKfair1\r\nFrom: <sip:carol@localhost>;tag=f1\r\nTo: <sip:localhost>\r\nCall-ID: fair-1\r\nCSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
    )
    .unwrap();
    let answer = parley_test_support::read_message(&mut client);
    assert_eq!(answer.status(), Some(200));
    assert!(
        closed_by_server(&mut a[0]),
        "the oldest idle one was closed"
    );
}

#[test]
fn a_message_dripped_byte_by_byte_is_cut_off() {
    use std::io::Write;
    let server = TestServer::start("[sip.connections]\nmessage_timeout_secs = 1\n");
    let mut s = connect_from([127, 0, 0, 5], server.tcp);
    let head =
        b"OPTIONS sip:localhost SIP/2.0\r\nVia: SIP/2.0/TCP 127.0.0.5:9;branch=z9hG4bKdrip\r\n";
    let mut cut = false;
    // One byte every 100 ms never lets the idle timeout fire, but the
    // message is not finished within the message timeout.
    for b in head.iter().cycle().take(60) {
        if s.write_all(&[*b]).is_err() {
            cut = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(cut || closed_by_server(&mut s), "the drip was cut off");
}
