//! Mobile users (RFC 5626 outbound, RFC 5627 GRUU, RFC 8599 push): STUN
//! keep-alives on the SIP port, answered to a real STUN client.

use std::process::Command;

use parley_test_support::server::TestServer;

#[test]
fn a_stun_client_learns_its_address_from_the_sip_port() {
    // The embedded default: nothing to turn on.
    let server = TestServer::start("");
    let out = Command::new("turnutils_stunclient")
        .args(["-p", &server.udp.port().to_string(), "127.0.0.1"])
        .output()
        .expect("turnutils_stunclient (tests/peers/install.sh installs coturn)");
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    // "UDP reflexive addr: 127.0.0.1:PORT"
    let line = text
        .lines()
        .find(|l| l.contains("UDP reflexive addr"))
        .unwrap_or_else(|| panic!("no mapped address: {text}"));
    let mapped: std::net::SocketAddr = line
        .rsplit(' ')
        .next()
        .and_then(|a| a.trim().parse().ok())
        .unwrap_or_else(|| panic!("unreadable: {line}"));
    assert_eq!(mapped.ip(), std::net::Ipv4Addr::LOCALHOST);
    assert_ne!(mapped.port(), 0);
    // The SIP side is untouched: OPTIONS still answered on the same port.
    let ua = crate::presence::Ua::new(server.udp);
    ua.send(
        "OPTIONS sip:localhost SIP/2.0\nFrom: <sip:a@localhost>;tag=o\nTo: <sip:localhost>\nCall-ID: stun-o\nCSeq: 1 OPTIONS",
        "",
    );
    assert_eq!(crate::presence::status(&ua.final_response()), 200);
}

use std::io::{Read, Write};
use std::time::Duration;

use crate::presence::{header, status};
use crate::registrar_proxy::user_add;

const INSTANCE: &str = "<urn:uuid:00000000-0000-1000-8000-000A95A0E128>";
const WAIT: Duration = Duration::from_secs(10);

/// A SIP client's connection to Parley (a flow), framing messages by
/// Content-Length and answering digest challenges for alice.
pub(crate) struct Flow {
    stream: std::net::TcpStream,
    buf: Vec<u8>,
    n: u32,
    /// Requests that came while a final response was awaited (a held
    /// request can overtake the REGISTER's 200).
    kept: std::collections::VecDeque<String>,
}

impl Flow {
    fn open(server: &TestServer) -> Flow {
        Flow::connect(server.tcp)
    }

    /// A connection to Parley's TCP listener at `addr`.
    pub(crate) fn connect(addr: std::net::SocketAddr) -> Flow {
        let stream = std::net::TcpStream::connect(addr).unwrap();
        stream.set_read_timeout(Some(WAIT)).unwrap();
        Flow {
            stream,
            buf: Vec::new(),
            n: 0,
            kept: std::collections::VecDeque::new(),
        }
    }

    pub(crate) fn local(&self) -> std::net::SocketAddr {
        self.stream.local_addr().unwrap()
    }

    pub(crate) fn send(&mut self, head: &str, body: &str) {
        let text = format!(
            "{}\r\nContent-Length: {}\r\n\r\n{body}",
            head.trim_end().replace('\n', "\r\n"),
            body.len()
        );
        self.stream.write_all(text.as_bytes()).unwrap();
    }

    /// The next message, whole (kept requests first).
    pub(crate) fn next(&mut self) -> String {
        if let Some(m) = self.kept.pop_front() {
            return m;
        }
        self.read_one()
    }

    fn read_one(&mut self) -> String {
        loop {
            if let Some(end) = self.buf.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&self.buf[..end]).to_string();
                let len: usize = header(&head, "Content-Length")
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(0);
                if self.buf.len() >= end + 4 + len {
                    let m: Vec<u8> = self.buf.drain(..end + 4 + len).collect();
                    // Everything Parley sends, its own parser accepts.
                    let limits = parley::proto::sip::Limits::default();
                    if let Err(e) = parley::cli::sip_parse(&m, false, &limits) {
                        panic!(
                            "Parley sent what its parser refuses ({e}):\n{}",
                            String::from_utf8_lossy(&m)
                        );
                    }
                    return String::from_utf8_lossy(&m).to_string();
                }
            }
            let mut chunk = [0u8; 8192];
            let n = self.stream.read(&mut chunk).expect("a message on the flow");
            assert!(n > 0, "the flow closed");
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }

    pub(crate) fn final_response(&mut self) -> String {
        loop {
            let m = self.read_one();
            if m.starts_with("SIP/2.0 ") {
                if !m.starts_with("SIP/2.0 1") {
                    return m;
                }
            } else {
                self.kept.push_back(m);
            }
        }
    }

    /// A REGISTER for alice with `contact` (and `extra` headers), answering
    /// the digest challenge; the final response.
    pub(crate) fn register(&mut self, contact: &str, extra: &str) -> String {
        self.n += 1;
        let call = format!("ob-{}", self.local().port());
        let (local, n) = (self.local(), self.n);
        let head = |cseq: u32, auth: &str| {
            format!(
                "REGISTER sip:localhost SIP/2.0\nVia: SIP/2.0/TCP {local};branch=z9hG4bKob{cseq}x{n}\nMax-Forwards: 70\nFrom: <sip:alice@localhost>;tag=ob\nTo: <sip:alice@localhost>\nCall-ID: {call}\nCSeq: {cseq} REGISTER\nSupported: outbound, path, gruu\n{auth}{contact}{extra}"
            )
        };
        let cseq = self.n * 2;
        self.send(&head(cseq - 1, ""), "");
        let r = self.final_response();
        if status(&r) != 401 {
            return r;
        }
        let answer = crate::presence::digest_answer(&r, "REGISTER", "sip:localhost", "alice", "pw");
        self.send(&head(cseq, &format!("Authorization: {answer}\n")), "");
        self.final_response()
    }

    /// A request of alice's own (a new Call-ID) with `extra` headers,
    /// answering the proxy's digest challenge.
    /// Sends the request and, when challenged, sends it again with
    /// credentials; the final answer is read by the caller (`Some` when the
    /// first answer was final and no challenge).
    pub(crate) fn send_authenticated(
        &mut self,
        method: &str,
        uri: &str,
        extra: &str,
    ) -> Option<String> {
        self.n += 1;
        let (local, n) = (self.local(), self.n);
        let head = |cseq: u32, auth: &str| {
            format!(
                "{method} {uri} SIP/2.0\nVia: SIP/2.0/TCP {local};branch=z9hG4bKrq{cseq}x{n}\nMax-Forwards: 70\nFrom: <sip:alice@localhost>;tag=rq{n}\nTo: <{uri}>\nCall-ID: rq-{n}-{}\nCSeq: {cseq} {method}\n{auth}{extra}",
                local.port()
            )
        };
        self.send(&head(1, ""), "");
        let r = self.final_response();
        if status(&r) != 407 {
            return Some(r);
        }
        let answer = crate::presence::digest_answer(&r, method, uri, "alice", "pw");
        self.send(&head(2, &format!("Proxy-Authorization: {answer}\n")), "");
        None
    }

    /// Answers a request 200.
    pub(crate) fn answer(&mut self, request: &str) {
        let copy = |name: &str| {
            request
                .split("\r\n")
                .filter(|l| {
                    l.split(':')
                        .next()
                        .is_some_and(|n| n.eq_ignore_ascii_case(name))
                })
                .collect::<Vec<_>>()
                .join("\n")
        };
        let head = format!(
            "SIP/2.0 200 OK\n{}\n{}\n{};tag=flow\n{}\n{}",
            copy("Via"),
            copy("From"),
            copy("To"),
            copy("Call-ID"),
            copy("CSeq")
        );
        self.send(&head, "");
    }
}

/// The contact of a device behind NAT: an address that reaches nothing.
fn contact(reg_id: u32) -> String {
    contact_of(INSTANCE, reg_id)
}

/// [`contact`] for the device `instance`.
fn contact_of(instance: &str, reg_id: u32) -> String {
    format!("Contact: <sip:alice@127.0.0.9:9;transport=tcp;ob>;+sip.instance=\"{instance}\";reg-id={reg_id}\n")
}

/// A MESSAGE to alice from another domain (no credentials needed).
fn message_to_alice(server: &TestServer, call: &str, text: &str) -> crate::presence::Ua {
    message_to(server, "sip:alice@localhost", call, text)
}

/// A MESSAGE to `uri` from another domain.
fn message_to(server: &TestServer, uri: &str, call: &str, text: &str) -> crate::presence::Ua {
    let ua = crate::presence::Ua::new(server.udp);
    ua.send(
        &format!("MESSAGE {uri} SIP/2.0\nFrom: <sip:carol@example.test>;tag={call}\nTo: <{uri}>\nCall-ID: {call}\nCSeq: 1 MESSAGE\nContent-Type: text/plain"),
        text,
    );
    ua
}

#[test]
fn outbound_flows_carry_requests_and_end_with_their_connections() {
    let server = TestServer::start("");
    user_add(&server, "alice@localhost", "pw");

    // Two flows of one device (reg-id 1 and 2), each its own connection.
    let mut one = Flow::open(&server);
    let r = one.register(&contact(1), "");
    assert_eq!(status(&r), 200, "{r}");
    assert_eq!(header(&r, "Require"), Some("outbound"), "{r}");
    assert_eq!(header(&r, "Flow-Timer"), Some("120"), "{r}");
    assert!(r.contains("reg-id=1"), "{r}");
    let mut two = Flow::open(&server);
    let r = two.register(&contact(2), "");
    assert_eq!(status(&r), 200, "{r}");
    assert_eq!(r.matches("Contact:").count(), 2, "{r}");

    // A MESSAGE reaches the device over both flows, never at its Contact.
    let carol = message_to_alice(&server, "m1", "over the flows");
    for flow in [&mut one, &mut two] {
        let m = flow.next();
        assert!(m.starts_with("MESSAGE "), "{m}");
        assert!(m.ends_with("over the flows"), "{m}");
        flow.answer(&m);
    }
    assert_eq!(status(&carol.final_response()), 200);

    // The first connection closes: its binding ends at once, and the next
    // MESSAGE goes over the second flow only.
    drop(one);
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let r = two.register("", "");
        if r.matches("Contact:").count() == 1 {
            assert!(r.contains("reg-id=2"), "{r}");
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the closed flow stayed: {r}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let carol = message_to_alice(&server, "m2", "one flow left");
    let m = two.next();
    assert!(m.ends_with("one flow left"), "{m}");
    two.answer(&m);
    assert_eq!(status(&carol.final_response()), 200);

    // The device comes back from another address (a NAT rebinding) on
    // reg-id 2: the new flow replaces the old one.
    let mut again = Flow::open(&server);
    let r = again.register(&contact(2), "");
    assert_eq!(status(&r), 200, "{r}");
    assert_eq!(r.matches("Contact:").count(), 1, "{r}");
    let carol = message_to_alice(&server, "m3", "the new flow");
    let m = again.next();
    assert!(m.ends_with("the new flow"), "{m}");
    again.answer(&m);
    assert_eq!(status(&carol.final_response()), 200);
}

#[test]
fn outbound_flows_are_bounded_and_need_an_outbound_first_hop() {
    let server = TestServer::start("");
    user_add(&server, "alice@localhost", "pw");
    let mut flow = Flow::open(&server);
    // Four flows per instance by default; the fifth is refused.
    for reg_id in 1..=4 {
        let r = flow.register(&contact(reg_id), "");
        assert_eq!(status(&r), 200, "{r}");
    }
    let r = flow.register(&contact(5), "");
    assert_eq!(status(&r), 403, "{r}");
    assert!(r.contains("Too many flows"), "{r}");
    // Through a proxy that did not put `ob` in its Path: 439.
    let r = flow.register(
        &contact(1),
        "Via: SIP/2.0/UDP 127.0.0.1:5999;branch=z9hG4bKedge\n",
    );
    assert_eq!(status(&r), 439, "{r}");
    // With an `ob` Path it is accepted.
    let r = flow.register(
        &contact(1),
        "Via: SIP/2.0/UDP 127.0.0.1:5999;branch=z9hG4bKedge2\nPath: <sip:edge@127.0.0.1:5999;lr;ob>\n",
    );
    assert_eq!(status(&r), 200, "{r}");
}

#[test]
fn over_udp_the_flow_is_the_address_the_register_came_from() {
    let server = TestServer::start("");
    user_add(&server, "alice@localhost", "pw");
    let alice = crate::presence::Ua::new(server.udp);
    let register = |cseq: u32, auth: &str| {
        format!(
            "REGISTER sip:localhost SIP/2.0\nFrom: <sip:alice@localhost>;tag=u\nTo: <sip:alice@localhost>\nCall-ID: ob-udp\nCSeq: {cseq} REGISTER\nSupported: outbound\n{auth}Contact: <sip:alice@127.0.0.9:9;ob>;+sip.instance=\"{INSTANCE}\";reg-id=1"
        )
    };
    alice.send(&register(1, ""), "");
    let r = alice.final_response();
    assert_eq!(status(&r), 401, "{r}");
    let answer = crate::presence::digest_answer(&r, "REGISTER", "sip:localhost", "alice", "pw");
    alice.send(&register(2, &format!("Authorization: {answer}\n")), "");
    let r = alice.final_response();
    assert_eq!(status(&r), 200, "{r}");
    assert_eq!(header(&r, "Require"), Some("outbound"), "{r}");
    // The MESSAGE comes to the socket the REGISTER came from, not to the
    // Contact's address.
    let carol = message_to_alice(&server, "u1", "to the udp flow");
    let m = alice.next();
    assert!(m.starts_with("MESSAGE "), "{m}");
    assert!(m.ends_with("to the udp flow"), "{m}");
    assert_eq!(status(&carol.final_response()), 200);
}

/// The value of a Contact parameter in a REGISTER 200 (quoted).
fn contact_param(r: &str, name: &str, nth: usize) -> String {
    r.split("\r\n")
        .filter(|l| l.starts_with("Contact:"))
        .filter_map(|l| {
            let at = l.find(&format!(";{name}=\""))? + name.len() + 3;
            Some(l[at..].split('"').next()?.to_string())
        })
        .nth(nth)
        .unwrap_or_else(|| panic!("no {name}: {r}"))
}

#[test]
fn a_gruu_reaches_one_device_and_a_temporary_one_hides_who_it_is() {
    const OTHER: &str = "<urn:uuid:11111111-2222-3333-4444-555555555555>";
    let server = TestServer::start("");
    user_add(&server, "alice@localhost", "pw");
    // Two devices of alice, each on its own flow.
    let mut phone = Flow::open(&server);
    let r = phone.register(&contact(1), "");
    assert_eq!(status(&r), 200, "{r}");
    let public = contact_param(&r, "pub-gruu", 0);
    let temp = contact_param(&r, "temp-gruu", 0);
    assert_eq!(
        public,
        "sip:alice@localhost;gr=urn:uuid:00000000-0000-1000-8000-000A95A0E128"
    );
    assert!(
        temp.starts_with("sip:tgruu.") && temp.ends_with("@localhost;gr"),
        "{temp}"
    );
    assert!(
        !temp.contains("alice") && !temp.contains("000A95A0E128"),
        "{temp}"
    );
    let mut desk = Flow::open(&server);
    let r = desk.register(&contact_of(OTHER, 1), "");
    assert_eq!(status(&r), 200, "{r}");

    // The public GRUU reaches the phone only; the AOR reaches both.
    let carol = message_to(&server, &public, "g1", "to the phone");
    let m = phone.next();
    assert!(m.ends_with("to the phone"), "{m}");
    phone.answer(&m);
    assert_eq!(status(&carol.final_response()), 200);
    // So does the temporary one.
    let carol = message_to(&server, &temp, "g2", "by the temporary gruu");
    let m = phone.next();
    assert!(m.ends_with("by the temporary gruu"), "{m}");
    phone.answer(&m);
    assert_eq!(status(&carol.final_response()), 200);
    // Nothing reached the desk meanwhile: its next message is this one.
    let carol = message_to_alice(&server, "g3", "to both");
    for flow in [&mut phone, &mut desk] {
        let m = flow.next();
        assert!(m.ends_with("to both"), "{m}");
        flow.answer(&m);
    }
    assert_eq!(status(&carol.final_response()), 200);

    // A refresh gives a new temporary GRUU; the old one still works.
    let r = phone.register(&contact(1), "");
    let newer = contact_param(&r, "temp-gruu", 0);
    assert_ne!(newer, temp);
    let carol = message_to(&server, &temp, "g4", "the old one still");
    let m = phone.next();
    assert!(m.ends_with("the old one still"), "{m}");
    phone.answer(&m);
    assert_eq!(status(&carol.final_response()), 200);

    // The phone goes: its GRUUs answer 480 and nothing is kept for it;
    // a temporary GRUU never issued is 404. (Once its binding ended with
    // its connection: a request sent into a connection that is closing
    // waits for its transaction to time out.)
    drop(phone);
    let deadline = std::time::Instant::now() + WAIT;
    while desk.register("", "").matches("Contact:").count() > 1 {
        assert!(
            std::time::Instant::now() < deadline,
            "the phone's binding stayed"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    loop {
        let carol = message_to(&server, &public, "g5", "gone");
        let code = status(&carol.final_response());
        if code == 480 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the GRUU answered {code}"
        );
    }
    // The desk's own GRUU still reaches the desk.
    let r = desk.register(&contact_of(OTHER, 1), "");
    let desk_gruu = contact_param(&r, "pub-gruu", 0);
    assert!(
        desk_gruu.ends_with("gr=urn:uuid:11111111-2222-3333-4444-555555555555"),
        "{r}"
    );
    let carol = message_to(
        &server,
        "sip:tgruu.0123456789abcdef01234567@localhost;gr",
        "g6",
        "never",
    );
    assert_eq!(status(&carol.final_response()), 404);
}

#[test]
fn baresip_registers_outbound_flows_and_gets_messages_over_them() {
    use parley_test_support::baresip::Baresip;
    // The default [auth]: baresip answers its first challenge, MD5.
    let server = TestServer::start_with_admin("");
    user_add(&server, "alice@localhost", "alice-pw");
    let outbound = format!(
        ";sipnat=outbound;outbound=\"sip:{};transport=tcp\"",
        server.tcp
    );
    let mut alice = Baresip::start_with("alice", "alice-pw", server.tcp, &[], &outbound);
    let wait = Duration::from_secs(15);
    assert!(
        alice.wait_for("reginfo", "OK", wait),
        "{}",
        alice.command("reginfo", None)
    );
    // Registered as a flow of its instance, over its TCP connection.
    let (code, list) = crate::admin::http(
        server.admin.unwrap(),
        "GET",
        "/api/v1/registrations",
        Some(&server.admin_token()),
        None,
    );
    assert_eq!(code, 200, "{list}");
    let v: serde_json::Value = serde_json::from_str(&list).unwrap();
    let b = &v[0];
    assert_eq!(b["transport"], "tcp", "{list}");
    assert_eq!(b["reg_id"], 1, "{list}");
    assert!(
        b["instance"]
            .as_str()
            .is_some_and(|i| i.starts_with("urn:uuid:")),
        "{list}"
    );
    let carol = message_to_alice(&server, "b1", "over baresip's flow");
    assert!(
        alice.heard("over baresip's flow", wait),
        "{}",
        alice.console_text()
    );
    assert_eq!(status(&carol.final_response()), 200);
    // baresip goes away with its connection: the binding ends at once,
    // not at its expiry ten minutes on.
    drop(alice);
    let deadline = std::time::Instant::now() + wait;
    loop {
        let (_, list) = crate::admin::http(
            server.admin.unwrap(),
            "GET",
            "/api/v1/registrations",
            Some(&server.admin_token()),
            None,
        );
        if list.trim() == "[]" {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the flow's binding stayed: {list}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn baresip_over_udp_registers_a_flow_and_gets_messages_at_its_source() {
    use parley_test_support::baresip::Baresip;
    let server = TestServer::start_with_admin("");
    user_add(&server, "alice@localhost", "alice-pw");
    let outbound = format!(";sipnat=outbound;outbound=\"sip:{}\"", server.udp);
    let mut alice = Baresip::start_with("alice", "alice-pw", server.udp, &[], &outbound);
    let wait = Duration::from_secs(15);
    assert!(
        alice.wait_for("reginfo", "OK", wait),
        "{}",
        alice.command("reginfo", None)
    );
    let (_, list) = crate::admin::http(
        server.admin.unwrap(),
        "GET",
        "/api/v1/registrations",
        Some(&server.admin_token()),
        None,
    );
    let v: serde_json::Value = serde_json::from_str(&list).unwrap();
    assert_eq!(v[0]["transport"], "udp", "{list}");
    assert_eq!(v[0]["reg_id"], 1, "{list}");
    let carol = message_to_alice(&server, "bu1", "over the udp flow");
    assert!(
        alice.heard("over the udp flow", wait),
        "{}",
        alice.console_text()
    );
    assert_eq!(status(&carol.final_response()), 200);
}

/// A push service on loopback: answers each POST with the next of
/// `codes` (then 200) and hands the test every body it got.
fn push_service(codes: Vec<u16>) -> (u16, std::sync::mpsc::Receiver<String>) {
    push_service_on(codes, None)
}

/// [`push_service`], over TLS with `tls` when given.
fn push_service_on(
    codes: Vec<u16>,
    tls: Option<std::sync::Arc<rustls::ServerConfig>>,
) -> (u16, std::sync::mpsc::Receiver<String>) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut codes = codes.into_iter();
        for conn in listener.incoming().take(20) {
            let Ok(conn) = conn else { break };
            conn.set_read_timeout(Some(WAIT)).unwrap();
            let code = codes.next().unwrap_or(200);
            let body = match &tls {
                None => answer_push(conn, code),
                Some(config) => {
                    let server = rustls::ServerConnection::new(config.clone()).unwrap();
                    answer_push(rustls::StreamOwned::new(server, conn), code)
                }
            };
            if tx.send(body).is_err() {
                break;
            }
        }
    });
    (port, rx)
}

/// Reads one HTTP request on `stream`, answers it `code`, and returns its
/// body.
fn answer_push(stream: impl Read + Write, code: u16) -> String {
    use std::io::BufRead;
    let mut reader = std::io::BufReader::new(stream);
    let mut length = 0;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            break;
        }
        if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
            length = v.trim().parse().unwrap_or(0);
        }
        if line == "\r\n" {
            break;
        }
    }
    let mut body = vec![0u8; length];
    let _ = reader.read_exact(&mut body);
    let conn = reader.get_mut();
    let _ = write!(
        conn,
        "HTTP/1.1 {code} X\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    );
    let _ = conn.flush();
    String::from_utf8_lossy(&body).to_string()
}

/// A device with push: its Contact URI carries the push service, token
/// and app (RFC 8599 §4.1.1).
fn push_contact(provider: &str) -> String {
    format!(
        "Contact: <sip:alice@127.0.0.9:9;transport=tcp;ob;pn-provider={provider};pn-prid=tok3n%3D42;pn-param=ZZY8.com.example.voip>;+sip.instance=\"{INSTANCE}\";reg-id=1\n"
    )
}

#[test]
fn a_suspended_device_is_woken_by_push_and_gets_the_held_message() {
    let (port, pushes) = push_service(vec![200, 200, 410]);
    let server = TestServer::start(&format!(
        "[push]\nwait_secs = 3\n[[push.provider]]\nname = \"apns\"\nurl = \"http://127.0.0.1:{port}/push\"\n"
    ));
    user_add(&server, "alice@localhost", "pw");
    // A service Parley has no webhook for: 555.
    let mut phone = Flow::open(&server);
    let r = phone.register(&push_contact("fcm"), "");
    assert_eq!(status(&r), 555, "{r}");
    // Parley names the service it will use.
    let r = phone.register(&push_contact("apns"), "");
    assert_eq!(status(&r), 200, "{r}");
    assert!(
        header(&r, "Feature-Caps")
            .is_some_and(|c| c.starts_with("*;+sip.pns=\"apns\";+sip.pnspurr=\"purr.")),
        "{r}"
    );

    // The app is suspended: its connection is gone, its binding stays.
    drop(phone);
    std::thread::sleep(Duration::from_millis(200));
    let carol = message_to_alice(&server, "p1", "wake up");
    // The push names the device and the sender, never the text.
    let push = pushes.recv_timeout(WAIT).expect("a push request");
    let v: serde_json::Value = serde_json::from_str(&push).unwrap();
    assert_eq!(v["provider"], "apns", "{push}");
    assert_eq!(v["prid"], "tok3n=42", "{push}");
    assert_eq!(v["param"], "ZZY8.com.example.voip", "{push}");
    assert_eq!(v["aor"], "alice@localhost", "{push}");
    assert_eq!(v["method"], "MESSAGE", "{push}");
    assert_eq!(v["from"], "sip:carol@example.test", "{push}");
    assert!(!push.contains("wake up"), "{push}");
    // The app wakes and registers again over a new flow: the held
    // MESSAGE comes over it.
    let mut woken = Flow::open(&server);
    let r = woken.register(&push_contact("apns"), "");
    assert_eq!(status(&r), 200, "{r}");
    let m = woken.next();
    assert!(m.starts_with("MESSAGE ") && m.ends_with("wake up"), "{m}");
    woken.answer(&m);
    assert_eq!(status(&carol.final_response()), 200);

    // Suspended again, and the app does not come back in time: the
    // MESSAGE is kept offline (202), as for anyone unreachable.
    drop(woken);
    std::thread::sleep(Duration::from_millis(200));
    let carol = message_to_alice(&server, "p2", "later");
    pushes.recv_timeout(WAIT).expect("a second push");
    assert_eq!(status(&carol.final_response()), 202);

    // The service says the token is gone (410): the binding goes with it,
    // and the MESSAGE is kept at once.
    let carol = message_to_alice(&server, "p3", "token gone");
    pushes.recv_timeout(WAIT).expect("a third push");
    assert_eq!(status(&carol.final_response()), 202);
    let carol = message_to_alice(&server, "p4", "no push now");
    assert_eq!(status(&carol.final_response()), 202);
    assert!(
        pushes.recv_timeout(Duration::from_millis(500)).is_err(),
        "a push for a token that is gone"
    );
}

#[test]
fn a_user_whose_device_sleeps_with_push_is_shown_reachable_not_offline() {
    let (port, _pushes) = push_service(Vec::new());
    let server = TestServer::start(&format!(
        "[[push.provider]]\nname = \"apns\"\nurl = \"http://127.0.0.1:{port}/push\"\n"
    ));
    user_add(&server, "alice@localhost", "pw");
    user_add(&server, "bob@localhost", "bobpw");
    let bob = crate::rooms::Member::with_password(
        &server,
        "bob",
        "localhost",
        "x@localhost",
        Some("bobpw"),
    );
    let r = bob.request(
        "SUBSCRIBE",
        "sip:alice@localhost",
        &format!(
            "Event: presence\nAccept: application/pidf+xml\nContact: <sip:bob@{}>\nExpires: 600",
            bob.ua.local
        ),
        "",
    );
    assert_eq!(status(&r), 200, "{r}");
    let notify = |part: &str| bob.next_matching(|m| m.starts_with("NOTIFY ") && m.contains(part));
    // Nothing published, no device: closed.
    notify("<basic>closed</basic>");
    // alice's phone registers with push and sleeps: she is shown open, with
    // a note that says how (she publishes nothing herself).
    let mut phone = Flow::open(&server);
    let r = phone.register(&push_contact("apns"), "");
    assert_eq!(status(&r), 200, "{r}");
    let m = notify("<basic>open</basic>");
    assert!(m.contains(parley::simple::presence::PUSH_NOTE), "{m}");
    drop(phone);
    // The phone unregisters (from a new flow): closed again.
    let mut last = Flow::open(&server);
    let r = last.register(
        &push_contact("apns").replace(";reg-id=1", ";reg-id=1;expires=0"),
        "",
    );
    assert_eq!(status(&r), 200, "{r}");
    notify("<basic>closed</basic>");
}

#[test]
fn as_an_edge_proxy_parley_brings_a_registrars_requests_back_over_the_flow() {
    use parley_test_support::kamailio::Kamailio;
    // Kamailio is the home registrar of 127.0.0.1:KPORT; Parley fronts it.
    let kamailio = Kamailio::start("outbound-registrar.cfg", &[]);
    let home = format!("127.0.0.1:{}", kamailio.port);
    let server = TestServer::start(&format!("[proxy]\nedge_for = [\"{home}\"]\n"));
    // The client registers with Kamailio through Parley, over its flow.
    let mut phone = Flow::open(&server);
    let call = format!("edge-{}", phone.local().port());
    phone.send(
        &format!(
            "REGISTER sip:{home} SIP/2.0\nVia: SIP/2.0/TCP {};branch=z9hG4bKedge1\nMax-Forwards: 70\nFrom: <sip:alice@{home}>;tag=e\nTo: <sip:alice@{home}>\nCall-ID: {call}\nCSeq: 1 REGISTER\nSupported: outbound, path\nContact: <sip:alice@127.0.0.9:9;transport=tcp;ob>;+sip.instance=\"{INSTANCE}\";reg-id=1\nExpires: 600",
            phone.local()
        ),
        "",
    );
    let r = phone.final_response();
    assert_eq!(status(&r), 200, "{r}");
    // Kamailio stored Parley's Path, with the flow token.
    let path = header(&r, "Path").unwrap_or_default().to_string();
    assert!(path.contains(";ob") && path.contains("ft-t-"), "{r}");
    // A MESSAGE sent to Kamailio for alice goes along the Path, and Parley
    // sends it over the flow: never to the Contact's address.
    let carol =
        crate::presence::Ua::new(std::net::SocketAddr::from(([127, 0, 0, 1], kamailio.port)));
    carol.send(
        &format!("MESSAGE sip:alice@{home} SIP/2.0\nFrom: <sip:carol@example.test>;tag=k1\nTo: <sip:alice@{home}>\nCall-ID: k1\nCSeq: 1 MESSAGE\nContent-Type: text/plain"),
        "from the home registrar",
    );
    let m = phone.next();
    assert!(m.starts_with("MESSAGE sip:alice@127.0.0.9:9"), "{m}");
    assert!(m.ends_with("from the home registrar"), "{m}");
    phone.answer(&m);
    assert_eq!(status(&carol.final_response()), 200);
    // The flow is gone: Parley answers 430 Flow Failed (RFC 5626 §5.3).
    drop(phone);
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let carol =
            crate::presence::Ua::new(std::net::SocketAddr::from(([127, 0, 0, 1], kamailio.port)));
        carol.send(
            &format!("MESSAGE sip:alice@{home} SIP/2.0\nFrom: <sip:carol@example.test>;tag=k2\nTo: <sip:alice@{home}>\nCall-ID: k2-{}\nCSeq: 1 MESSAGE\nContent-Type: text/plain", carol.local.port()),
            "after the flow",
        );
        let code = status(&carol.final_response());
        if code == 430 {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "answered {code}");
    }
}

#[test]
fn a_dialog_of_an_outbound_client_comes_back_over_its_flow() {
    let server = TestServer::start("");
    user_add(&server, "alice@localhost", "pw");
    user_add(&server, "bob@localhost", "bobpw");
    // alice on an outbound flow; bob an ordinary registered UA.
    let mut phone = Flow::open(&server);
    let r = phone.register(&contact(1), "");
    assert_eq!(status(&r), 200, "{r}");
    let bob = crate::rooms::Member::with_password(
        &server,
        "bob",
        "localhost",
        "x@localhost",
        Some("bobpw"),
    );
    // alice invites bob: Parley record-routes the INVITE.
    let sent = phone.send_authenticated(
        "INVITE",
        "sip:bob@localhost",
        "Contact: <sip:alice@127.0.0.9:9;transport=tcp;ob>",
    );
    assert!(sent.is_none(), "{sent:?}");
    let seen = bob.next_matching(|m| m.starts_with("INVITE "));
    assert_eq!(status(&phone.final_response()), 200);
    // Parley's Record-Route names alice's flow.
    assert!(seen.contains("Record-Route: <sip:ft-t-"), "{seen}");
    let rr = seen
        .lines()
        .find(|l| l.starts_with("Record-Route:"))
        .unwrap()
        .trim_start_matches("Record-Route:")
        .trim()
        .to_string();
    // bob's in-dialog request, routed by that Record-Route to alice's
    // unreachable Contact, comes to her over her flow.
    let (done, m) = std::thread::scope(|scope| {
        let alice = scope.spawn(|| loop {
            let m = phone.next();
            if m.starts_with("MESSAGE ") {
                phone.answer(&m);
                break m;
            }
        });
        let r = bob.request(
            "MESSAGE",
            "sip:alice@127.0.0.9:9;transport=tcp;ob",
            &format!("Route: {rr}\nContent-Type: text/plain"),
            "in the dialog",
        );
        (r, alice.join().unwrap())
    });
    assert!(m.ends_with("in the dialog"), "{m}");
    assert_eq!(status(&done), 200, "{done}");
}

#[test]
fn sipp_registers_as_a_mobile_device_and_is_reached_by_its_temporary_gruu() {
    use parley_test_support::sipp::Sipp;
    let (port, _pushes) = push_service(Vec::new());
    // The default [auth]: SIPp answers its first challenge, MD5.
    let server = TestServer::start(&format!(
        "[[push.provider]]\nname = \"apns\"\nurl = \"http://127.0.0.1:{port}/push\"\n"
    ));
    user_add(&server, "alice@localhost", "pw");
    for (transport, target) in [("t1", server.tcp), ("u1", server.udp)] {
        let out = Sipp::start(
            "register_gruu_push.xml",
            transport,
            1,
            Some(target),
            &["-s", "alice", "-au", "alice", "-ap", "pw"],
        )
        .wait();
        // The MESSAGE to its temporary GRUU went out and came back to it.
        assert!(out.contains("MESSAGE sip:tgruu."), "{transport}: {out}");
        assert!(
            out.contains("to my own temporary gruu"),
            "{transport}: {out}"
        );
    }
}

#[test]
fn a_push_service_that_does_not_answer_holds_nothing_past_its_timeout() {
    // A service that takes the connection and says nothing.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = silent.local_addr().unwrap().port();
    let held = std::thread::spawn(move || {
        let conns: Vec<_> = silent.incoming().take(1).filter_map(Result::ok).collect();
        std::thread::sleep(Duration::from_secs(3));
        drop(conns);
    });
    let server = TestServer::start(&format!(
        "[push]\nwait_secs = 30\n[[push.provider]]\nname = \"apns\"\nurl = \"http://127.0.0.1:{port}/push\"\ntimeout_ms = 300\n"
    ));
    user_add(&server, "alice@localhost", "pw");
    let mut phone = Flow::open(&server);
    let r = phone.register(&push_contact("apns"), "");
    assert_eq!(status(&r), 200, "{r}");
    drop(phone);
    std::thread::sleep(Duration::from_millis(200));
    // The push fails when the service's time is up: the MESSAGE does not
    // wait the thirty seconds for a device no one woke, it is kept.
    let carol = message_to_alice(&server, "s1", "no one woke her");
    assert_eq!(status(&carol.final_response()), 202);
    let _ = held.join();
}

#[test]
fn a_request_to_a_devices_purr_wakes_that_device() {
    let (port, pushes) = push_service(Vec::new());
    let server = TestServer::start(&format!(
        "[push]\nwait_secs = 5\n[[push.provider]]\nname = \"apns\"\nurl = \"http://127.0.0.1:{port}/push\"\n"
    ));
    user_add(&server, "alice@localhost", "pw");
    let mut phone = Flow::open(&server);
    let r = phone.register(&push_contact("apns"), "");
    assert_eq!(status(&r), 200, "{r}");
    // Parley gives the device a PURR, the same on each registration.
    let caps = header(&r, "Feature-Caps").unwrap_or_default().to_string();
    let purr = caps
        .split("+sip.pnspurr=\"")
        .nth(1)
        .and_then(|v| v.split('"').next())
        .unwrap_or_else(|| panic!("no PURR: {r}"))
        .to_string();
    let r = phone.register(&push_contact("apns"), "");
    assert!(
        header(&r, "Feature-Caps").is_some_and(|c| c.contains(&purr)),
        "{r}"
    );
    drop(phone);
    std::thread::sleep(Duration::from_millis(200));
    // A request inside one of its dialogs (to its Contact with the PURR)
    // wakes it, and reaches it over its new flow.
    let target = format!("sip:alice@127.0.0.9:9;transport=tcp;pn-purr={purr}");
    let carol = message_to(&server, &target, "pu1", "in our dialog");
    pushes.recv_timeout(WAIT).expect("a push request");
    let mut woken = Flow::open(&server);
    let r = woken.register(&push_contact("apns"), "");
    assert_eq!(status(&r), 200, "{r}");
    let m = woken.next();
    assert!(m.ends_with("in our dialog"), "{m}");
    woken.answer(&m);
    assert_eq!(status(&carol.final_response()), 200);
}

#[test]
fn pushes_to_a_service_are_rate_limited() {
    let (port, pushes) = push_service(Vec::new());
    let server = TestServer::start(&format!(
        "[push]\nwait_secs = 2\n[[push.provider]]\nname = \"apns\"\nurl = \"http://127.0.0.1:{port}/push\"\nper_second = 1\n"
    ));
    user_add(&server, "alice@localhost", "pw");
    let mut phone = Flow::open(&server);
    let r = phone.register(&push_contact("apns"), "");
    assert_eq!(status(&r), 200, "{r}");
    drop(phone);
    std::thread::sleep(Duration::from_millis(200));
    // Two messages at once: one push goes out; the other is over the
    // service's rate, so that message is kept at once instead of waiting.
    let first = message_to_alice(&server, "r1", "first");
    let second = message_to_alice(&server, "r2", "second");
    assert_eq!(status(&second.final_response()), 202);
    assert_eq!(status(&first.final_response()), 202);
    pushes.recv_timeout(WAIT).expect("one push");
    assert!(
        pushes.recv_timeout(Duration::from_millis(300)).is_err(),
        "a second push within the second"
    );
}

#[test]
fn a_push_service_over_https_is_reached_with_its_certificate_checked() {
    use parley_test_support::pki::TestCa;
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let ca = TestCa::new();
    let (cert, key) = ca.issue("localhost");
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&cert)
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let key = PrivateKeyDer::from_pem_file(&key).unwrap();
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let config = std::sync::Arc::new(
        rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .unwrap(),
    );
    let (port, pushes) = push_service_on(Vec::new(), Some(config));
    let server = TestServer::start(&format!(
        "[push]\nwait_secs = 2\n[[push.provider]]\nname = \"apns\"\nurl = \"https://localhost:{port}/push\"\nca_file = {:?}\n",
        ca.cert.display().to_string()
    ));
    user_add(&server, "alice@localhost", "pw");
    let mut phone = Flow::open(&server);
    let r = phone.register(&push_contact("apns"), "");
    assert_eq!(status(&r), 200, "{r}");
    drop(phone);
    std::thread::sleep(Duration::from_millis(200));
    let carol = message_to_alice(&server, "h1", "over https");
    let push = pushes.recv_timeout(WAIT).expect("a push over https");
    assert!(push.contains("\"prid\":\"tok3n=42\""), "{push}");
    // No one wakes: kept offline after the wait.
    assert_eq!(status(&carol.final_response()), 202);
}
