//! `parley run` on real sockets: OPTIONS over UDP, TCP and TLS, the
//! transaction layer answering retransmissions, stateless answers to bad
//! requests, stream framing faults, keep-alives and graceful shutdown.

use std::io::{Read, Write};
use std::net::{TcpStream, UdpSocket};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use parley::proto::sip::{Framing, HeaderName, Limits, Message};
use parley_test_support::server::TestServer;
use parley_test_support::sip_corpus;

fn options(branch: &str, via: &str, transport: &str) -> String {
    format!(
        "OPTIONS sip:127.0.0.1 SIP/2.0\r\n\
         Via: SIP/2.0/{transport} {via};branch={branch};rport\r\n\
         Max-Forwards: 70\r\n\
         From: <sip:probe@localhost>;tag=77\r\n\
         To: <sip:127.0.0.1>\r\n\
         Call-ID: {branch}@test\r\n\
         CSeq: 1 OPTIONS\r\n\
         Content-Length: 0\r\n\r\n"
    )
}

fn parse(b: &[u8]) -> Message {
    Message::parse(
        Bytes::copy_from_slice(b),
        Framing::Datagram,
        &Limits::default(),
    )
    .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(b)))
}

fn udp_client() -> UdpSocket {
    let s = UdpSocket::bind("127.0.0.1:0").unwrap();
    s.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    s
}

fn recv(s: &UdpSocket) -> Option<Message> {
    let mut buf = [0u8; 65536];
    s.recv(&mut buf).ok().map(|n| parse(&buf[..n]))
}

#[test]
fn udp_options_is_answered_and_a_retransmission_gets_the_same_response() {
    let server = TestServer::start("");
    let c = udp_client();
    c.connect(server.udp).unwrap();
    let local = c.local_addr().unwrap();
    let req = options("z9hG4bKudp1", &local.to_string(), "UDP");
    c.send(req.as_bytes()).unwrap();
    let r = recv(&c).expect("a 200");
    assert_eq!(r.status(), Some(200));
    assert_eq!(
        r.headers().get(HeaderName::Allow),
        Some(&b"OPTIONS, REGISTER, PUBLISH, SUBSCRIBE"[..])
    );
    assert_eq!(
        r.headers().get(HeaderName::AllowEvents),
        Some(&b"presence, presence.winfo"[..])
    );
    let via = r.top_via().unwrap().unwrap();
    assert_eq!(
        via.rport(),
        Some(Some(local.port())),
        "rport filled in (RFC 3581)"
    );
    let tag = r.to().unwrap().unwrap().tag().unwrap().to_string();
    // The same request again: the server transaction resends its response.
    c.send(req.as_bytes()).unwrap();
    let again = recv(&c).expect("the 200 again");
    assert_eq!(again.to().unwrap().unwrap().tag(), Some(tag.as_str()));
    // A new transaction gets a new tag.
    c.send(options("z9hG4bKudp2", &local.to_string(), "UDP").as_bytes())
        .unwrap();
    let other = recv(&c).unwrap();
    assert_ne!(other.to().unwrap().unwrap().tag(), Some(tag.as_str()));
    // Another method addressed to the server itself: 405 with Allow.
    let message = req
        .replace(
            "OPTIONS sip:127.0.0.1 ",
            &format!("MESSAGE sip:{} ", server.udp),
        )
        .replace("1 OPTIONS", "1 MESSAGE")
        .replace("z9hG4bKudp1", "z9hG4bKudp3")
        .replace("probe@localhost", "probe@example.com");
    c.send(message.as_bytes()).unwrap();
    let refused = recv(&c).unwrap();
    assert_eq!(refused.status(), Some(405));
    assert!(refused.headers().get(HeaderName::Allow).is_some());
}

#[test]
fn udp_bad_requests_get_stateless_answers_and_bad_responses_nothing() {
    let server = TestServer::start("");
    let c = udp_client();
    c.connect(server.udp).unwrap();
    let corpus: Vec<_> = ["rfc4475", "parley"]
        .iter()
        .flat_map(|s| sip_corpus(s))
        .collect();
    for (name, code) in [
        ("badvers", 505),
        ("unkscm", 416),
        ("bext01", 420),
        ("zero-max-forwards", 483),
        ("badaspec", 400),
        ("clerr", 400),
        ("big-message", 513),
    ] {
        let case = corpus.iter().find(|c| c.name == name).unwrap();
        if case.bytes.len() > 65_000 {
            // Too big for one datagram: the size limit is checked over TCP below.
            continue;
        }
        c.send(&case.bytes).unwrap();
        let r = recv(&c).unwrap_or_else(|| panic!("{name}: no answer"));
        assert_eq!(r.status(), Some(code), "{name}");
    }
    // Malformed responses and garbage are dropped silently.
    c.set_read_timeout(Some(Duration::from_millis(400)))
        .unwrap();
    for name in ["bigcode", "scalarlg"] {
        let case = corpus.iter().find(|c| c.name == name).unwrap();
        c.send(&case.bytes).unwrap();
        assert!(recv(&c).is_none(), "{name} must not be answered");
    }
    c.send(b"\x00\x01 not SIP at all").unwrap();
    assert!(recv(&c).is_none());
}

fn read_until(s: &mut TcpStream, want: usize) -> Vec<u8> {
    let mut out = Vec::new();
    let mut buf = [0u8; 8192];
    while out.len() < want {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => out.extend_from_slice(&buf[..n]),
        }
    }
    out
}

/// Splits a stream of responses by Content-Length framing.
fn responses(mut data: &[u8]) -> Vec<Message> {
    let mut out = Vec::new();
    while let Ok(Some((skip, len))) = parley::proto::sip::frame(data, &Limits::default()) {
        out.push(
            Message::parse(
                Bytes::copy_from_slice(&data[skip..skip + len]),
                Framing::Stream,
                &Limits::default(),
            )
            .unwrap(),
        );
        data = &data[skip + len..];
    }
    out
}

#[test]
fn tcp_pipelined_requests_keepalive_and_bad_framing() {
    let server = TestServer::start("");
    let mut s = TcpStream::connect(server.tcp).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    let local = s.local_addr().unwrap().to_string();
    // Two requests in one write, then a keep-alive ping.
    let two = format!(
        "{}{}",
        options("z9hG4bKtcp1", &local, "TCP"),
        options("z9hG4bKtcp2", &local, "TCP")
    );
    s.write_all(two.as_bytes()).unwrap();
    let data = read_until(&mut s, 2 * 200);
    let rs = responses(&data);
    assert_eq!(rs.len(), 2, "{}", String::from_utf8_lossy(&data));
    assert!(rs.iter().all(|r| r.status() == Some(200)));
    s.write_all(b"\r\n\r\n").unwrap();
    let mut pong = [0u8; 2];
    s.read_exact(&mut pong).unwrap();
    assert_eq!(&pong, b"\r\n", "CRLF pong (RFC 5626 §4.4.1)");
    // A request with a bad Content-Length: 400, then the connection closes.
    s.write_all(
        options("z9hG4bKtcp3", &local, "TCP")
            .replace("Content-Length: 0", "Content-Length: -1")
            .as_bytes(),
    )
    .unwrap();
    let data = read_until(&mut s, usize::MAX);
    let rs = responses(&data);
    assert_eq!(rs.len(), 1, "{}", String::from_utf8_lossy(&data));
    assert_eq!(rs[0].status(), Some(400));
    assert!(String::from_utf8_lossy(rs[0].reason().unwrap()).contains("Content-Length"));

    // Over a stream, a message over the limit gets 513 and the connection closes.
    let mut s = TcpStream::connect(server.tcp).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    let big = sip_corpus("parley")
        .into_iter()
        .find(|c| c.name == "big-message")
        .unwrap();
    s.write_all(&big.bytes).unwrap();
    let rs = responses(&read_until(&mut s, usize::MAX));
    assert_eq!(
        rs.iter().map(|r| r.status()).collect::<Vec<_>>(),
        vec![Some(513)]
    );
}

#[test]
fn tls_options_with_the_self_made_certificate() {
    let server = TestServer::start("");
    let pem = std::fs::read(server.state_dir.join("tls/cert.pem")).unwrap();
    let mut roots = rustls::RootCertStore::empty();
    use rustls::pki_types::pem::PemObject;
    for cert in rustls::pki_types::CertificateDer::pem_slice_iter(&pem) {
        roots.add(cert.unwrap()).unwrap();
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let conn = rustls::ClientConnection::new(Arc::new(config), name).unwrap();
    let sock = TcpStream::connect(server.tls).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    let local = sock.local_addr().unwrap().to_string();
    let mut tls = rustls::StreamOwned::new(conn, sock);
    tls.write_all(options("z9hG4bKtls1", &local, "TLS").as_bytes())
        .unwrap();
    let mut data = Vec::new();
    let mut buf = [0u8; 4096];
    while responses(&data).is_empty() {
        let n = tls.read(&mut buf).unwrap();
        assert!(n > 0, "connection closed early");
        data.extend_from_slice(&buf[..n]);
    }
    assert_eq!(responses(&data)[0].status(), Some(200));
}

#[test]
fn shutdown_is_prompt_when_nothing_is_pending() {
    let server = TestServer::start("[sip]\nshutdown_grace_secs = 5\n");
    let c = udp_client();
    c.connect(server.udp).unwrap();
    c.send(options("z9hG4bKbye", &c.local_addr().unwrap().to_string(), "UDP").as_bytes())
        .unwrap();
    assert!(recv(&c).is_some());
    let took = server.stop();
    assert!(took < Duration::from_secs(3), "shutdown took {took:?}");
}

#[test]
fn ipv6_udp_and_tcp_listeners_answer() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let (Ok(udp), Ok(tcp)) = (
        rt.block_on(tokio::net::UdpSocket::bind("[::1]:0")),
        rt.block_on(tokio::net::TcpListener::bind("[::1]:0")),
    ) else {
        panic!("::1 is not available on this machine");
    };
    let (udp_addr, tcp_addr) = (udp.local_addr().unwrap(), tcp.local_addr().unwrap());
    let config = parley::config::Config::parse("", "test").unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = rt.spawn(parley::app::run(
        config,
        parley::app::Listeners {
            sip: parley::net::Listeners {
                udp: vec![udp],
                tcp: vec![tcp],
                tls: vec![],
            },
            ..Default::default()
        },
        async {
            let _ = stopped.await;
        },
    ));
    let c = UdpSocket::bind("[::1]:0").unwrap();
    c.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    c.connect(udp_addr).unwrap();
    let via = c.local_addr().unwrap().to_string();
    c.send(options("z9hG4bKv6u", &via, "UDP").as_bytes())
        .unwrap();
    let r = recv(&c).expect("a 200 over IPv6 UDP");
    assert_eq!(r.status(), Some(200));
    assert_eq!(
        r.top_via().unwrap().unwrap().rport(),
        Some(Some(c.local_addr().unwrap().port()))
    );
    let mut s = TcpStream::connect(tcp_addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    let via = s.local_addr().unwrap().to_string();
    s.write_all(options("z9hG4bKv6t", &via, "TCP").as_bytes())
        .unwrap();
    let got = responses(&read_until(&mut s, 200));
    assert_eq!(got.first().and_then(|r| r.status()), Some(200));
    let _ = stop.send(());
    rt.block_on(server).unwrap().unwrap();
}

#[test]
fn udp_responses_follow_maddr_but_never_to_multicast() {
    let server = TestServer::start("");
    // maddr names another loopback address: the response goes there, to the sent-by port.
    let target = UdpSocket::bind("127.0.0.2:0").unwrap();
    target
        .set_read_timeout(Some(Duration::from_secs(3)))
        .unwrap();
    let port = target.local_addr().unwrap().port();
    let sender = udp_client();
    let req = options("z9hG4bKmaddr1", &format!("127.0.0.1:{port}"), "UDP")
        .replace(";rport", ";maddr=127.0.0.2");
    sender.send_to(req.as_bytes(), server.udp).unwrap();
    assert_eq!(
        recv(&target).expect("the 200 at the maddr").status(),
        Some(200)
    );
    // A multicast maddr is not used: the response goes to the source address and Via port.
    let local = sender.local_addr().unwrap();
    let req =
        options("z9hG4bKmaddr2", &local.to_string(), "UDP").replace(";rport", ";maddr=224.0.1.75");
    sender.send_to(req.as_bytes(), server.udp).unwrap();
    assert_eq!(
        recv(&sender).expect("the 200 at the source").status(),
        Some(200)
    );
}

#[test]
fn secrets_are_private_and_the_self_made_certificate_names_the_server() {
    use std::os::unix::fs::PermissionsExt;
    let server = TestServer::start_with_admin("domains = [\"parley.example.test\"]\n");
    let mode = |p: &std::path::Path| {
        std::fs::metadata(p)
            .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
            .permissions()
            .mode()
            & 0o777
    };
    let tls = server.state_dir.join("tls");
    assert_eq!(mode(&tls.join("key.pem")), 0o600, "the TLS key");
    assert_eq!(mode(&tls), 0o700, "the TLS directory");
    let db = std::fs::read_dir(&server.state_dir)
        .unwrap()
        .filter_map(Result::ok)
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|x| x == "db" || x == "sqlite"))
        .expect("the database file");
    assert_eq!(mode(&db), 0o600, "{}", db.display());
    // The certificate names the first domain (its subject) and the
    // addresses Parley listens on, not a library's placeholder.
    let pem = std::fs::read_to_string(tls.join("cert.pem")).unwrap();
    use rustls::pki_types::pem::PemObject;
    let der = rustls::pki_types::CertificateDer::from_pem_slice(pem.as_bytes()).unwrap();
    let bytes: &[u8] = der.as_ref();
    let has = |s: &str| bytes.windows(s.len()).any(|w| w == s.as_bytes());
    assert!(has("parley.example.test"), "no domain in the certificate");
    assert!(!has("rcgen self signed cert"), "a placeholder subject");
    let end = webpki::EndEntityCert::try_from(&der).unwrap();
    for name in ["parley.example.test", "localhost"] {
        let n = rustls::pki_types::ServerName::try_from(name).unwrap();
        assert!(end.verify_is_valid_for_subject_name(&n).is_ok(), "{name}");
    }
    let ip =
        rustls::pki_types::ServerName::IpAddress(std::net::IpAddr::from([127, 0, 0, 1]).into());
    assert!(
        end.verify_is_valid_for_subject_name(&ip).is_ok(),
        "127.0.0.1"
    );
}
