//! Inter-domain routing by DNS (RFC 3263): NAPTR → SRV → A from an
//! in-process DNS server, failover from a dead first-priority target, and
//! Kamailio serving a second domain, b.example.test, with messages crossing
//! both ways.

use std::net::{Ipv4Addr, UdpSocket};
use std::time::Duration;

use parley_test_support::dns::{Rec, TestDns};
use parley_test_support::kamailio::Kamailio;
use parley_test_support::server::TestServer;
use parley_test_support::sipp::{free_port, Sipp};

fn zone(records: Vec<Rec>) -> TestDns {
    TestDns::start("b.example.test", records)
}

fn a(name: &str) -> Rec {
    Rec::A {
        name: name.into(),
        ip: Ipv4Addr::LOCALHOST,
    }
}

fn srv(name: &str, priority: u16, port: u16, target: &str) -> Rec {
    Rec::Srv {
        name: name.into(),
        priority,
        weight: 10,
        port,
        target: target.into(),
    }
}

#[test]
fn naptr_and_srv_lead_to_the_second_target_when_the_first_is_dead() {
    let dead = UdpSocket::bind("127.0.0.1:0").unwrap();
    let live = UdpSocket::bind("127.0.0.1:0").unwrap();
    dead.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    live.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let dns = zone(vec![
        Rec::Naptr {
            name: "b.example.test".into(),
            order: 10,
            preference: 10,
            service: "SIP+D2U".into(),
            replacement: "_sip._udp.b.example.test".into(),
        },
        srv(
            "_sip._udp.b.example.test",
            10,
            dead.local_addr().unwrap().port(),
            "dead.b.example.test",
        ),
        srv(
            "_sip._udp.b.example.test",
            20,
            live.local_addr().unwrap().port(),
            "live.b.example.test",
        ),
        a("dead.b.example.test"),
        a("live.b.example.test"),
    ]);
    let server = TestServer::start(&format!(
        "[dns]\nnameserver = \"{}\"\n[auth]\nproxy = false\n[sip.timers]\nt1_ms = 10\n",
        dns.addr
    ));
    let sender = UdpSocket::bind("127.0.0.1:0").unwrap();
    sender
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let me = sender.local_addr().unwrap();
    let request = format!(
        "MESSAGE sip:bob@b.example.test SIP/2.0\r\nVia: SIP/2.0/UDP {me};branch=z9hG4bKdns1;rport\r\n\
         Max-Forwards: 70\r\nFrom: <sip:alice@localhost>;tag=a1\r\nTo: <sip:bob@b.example.test>\r\n\
         Call-ID: dns1@localhost\r\nCSeq: 1 MESSAGE\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\nhi"
    );
    sender.send_to(request.as_bytes(), server.udp).unwrap();
    let mut buf = vec![0u8; 65_536];
    // The first-priority target gets the request (and its retransmissions)…
    let n = dead
        .recv(&mut buf)
        .expect("the first target is tried first");
    assert!(buf[..n].starts_with(b"MESSAGE sip:bob@b.example.test "));
    // …then, after Timer F, the second.
    let (n, from) = live
        .recv_from(&mut buf)
        .expect("failover to the second target");
    let req = parley::proto::sip::Message::parse(
        bytes::Bytes::copy_from_slice(&buf[..n]),
        parley::proto::sip::Framing::Datagram,
        &parley::proto::sip::Limits::default(),
    )
    .unwrap();
    let ok = parley::proto::sip::stateless::respond(&req, 200, "OK", "b1", &[]);
    live.send_to(&ok, from).unwrap();
    loop {
        let n = sender.recv(&mut buf).expect("the 200 comes back");
        let text = String::from_utf8_lossy(&buf[..n]).into_owned();
        if text.starts_with("SIP/2.0 200") {
            break;
        }
        assert!(text.starts_with("SIP/2.0 1"), "{text}");
    }
}

#[test]
fn messages_cross_both_ways_with_kamailio_serving_the_other_domain() {
    // Kamailio's port is chosen first so the zone can point at it; Parley
    // starts next, then Kamailio with Parley's address.
    let kam_port_hint = free_port();
    let dns = zone(vec![
        srv(
            "_sip._udp.b.example.test",
            10,
            kam_port_hint,
            "sip.b.example.test",
        ),
        a("sip.b.example.test"),
    ]);
    let server = TestServer::start(&format!(
        "[dns]\nnameserver = \"{}\"\n[auth]\nregistrar = false\nproxy = false\n",
        dns.addr
    ));
    let kamailio = Kamailio::start_on(
        "b-domain.cfg",
        kam_port_hint,
        &[("PARLEY", server.udp.to_string())],
    );

    // Parley → Kamailio: bob is registered at Kamailio, alice sends through Parley.
    let bob_port = free_port();
    let bob = Sipp::start_on("uas_message.xml", "u1", 1, None, bob_port, &[]);
    Sipp::start(
        "register_contact.xml",
        "u1",
        1,
        Some(([127, 0, 0, 1], kamailio.port).into()),
        &[
            "-s",
            "bob",
            "-key",
            "uas_port",
            &bob_port.to_string(),
            "-key",
            "domain",
            "b.example.test",
        ],
    )
    .wait();
    Sipp::start(
        "uac_message_to.xml",
        "u1",
        1,
        Some(server.udp),
        &[
            "-s",
            "alice",
            "-key",
            "from_domain",
            "localhost",
            "-key",
            "to",
            "bob@b.example.test",
        ],
    )
    .wait();
    assert!(bob.wait().contains("Across domains"));

    // Kamailio → Parley: carol is registered at Parley, dave sends through Kamailio.
    crate::registrar_proxy::user_add(&server, "carol@localhost", "pw");
    let carol_port = free_port();
    let carol = Sipp::start_on("uas_message.xml", "u1", 1, None, carol_port, &[]);
    Sipp::start(
        "register_contact.xml",
        "u1",
        1,
        Some(server.udp),
        &[
            "-s",
            "carol",
            "-key",
            "uas_port",
            &carol_port.to_string(),
            "-key",
            "domain",
            "localhost",
        ],
    )
    .wait();
    Sipp::start(
        "uac_message_to.xml",
        "u1",
        1,
        Some(([127, 0, 0, 1], kamailio.port).into()),
        &[
            "-s",
            "dave",
            "-key",
            "from_domain",
            "b.example.test",
            "-key",
            "to",
            "carol@localhost",
        ],
    )
    .wait();
    assert!(carol.wait().contains("Across domains"));
}

#[test]
fn a_tls_peer_speaks_only_for_the_domains_its_certificate_names() {
    // The peer server of a.example.test, with a certificate naming it.
    let peer = parley_test_support::pki::TestCert::self_signed("a.example.test");
    let server = TestServer::start(&format!("[sip.tls]\nca_file = {}\n", peer.cert_toml()));
    let server_ca = server.state_dir.join("tls/cert.pem");
    let message = |from: &str, n: u32| {
        format!(
            "MESSAGE sip:nobody@localhost SIP/2.0\r\nVia: SIP/2.0/TLS 127.0.0.1:5999;branch=z9hG4bKmtls{n}\r\n\
             Max-Forwards: 70\r\nFrom: <sip:someone@{from}>;tag={n}\r\nTo: <sip:nobody@localhost>\r\n\
             Call-ID: mtls{n}@test\r\nCSeq: 1 MESSAGE\r\nContent-Length: 0\r\n\r\n"
        )
    };
    let status = |text: &str| text.split(' ').nth(1).unwrap_or("").to_string();
    let with_cert = Some((peer.cert.as_path(), peer.key.as_path()));
    // The domain it authenticated as: past the check (nobody is unknown: 404).
    let (text, err) = crate::peers_sip::openssl_exchange(
        server.tls,
        &server_ca,
        with_cert,
        &message("a.example.test", 1),
    );
    assert_eq!(status(&text), "404", "{text}\n{err}");
    // Another domain over the same kind of connection: refused.
    let (text, err) = crate::peers_sip::openssl_exchange(
        server.tls,
        &server_ca,
        with_cert,
        &message("evil.example", 2),
    );
    assert_eq!(status(&text), "403", "{text}\n{err}");
    assert!(text.contains("TLS peer"), "{text}");
    // Without a client certificate there is no claim to check.
    let (text, err) = crate::peers_sip::openssl_exchange(
        server.tls,
        &server_ca,
        None,
        &message("evil.example", 3),
    );
    assert_eq!(status(&text), "404", "{text}\n{err}");
}
