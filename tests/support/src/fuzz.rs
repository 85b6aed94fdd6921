//! The properties every fuzz target checks, shared with the ordinary tests
//! that replay the fuzz corpora: no input makes a parser panic, and whatever
//! parses prints back to something that parses to the same message.

use bytes::Bytes;
use parley::proto::sip::{frame, Framing, HeaderName, Limits, Message, Uri};

/// Checks one input as a datagram and as the start of a stream.
pub fn sip_message(data: &[u8]) {
    let limits = Limits::default();
    if let Ok(msg) = Message::parse(Bytes::copy_from_slice(data), Framing::Datagram, &limits) {
        exercise(&msg, &limits);
        let printed = msg.to_bytes();
        assert_eq!(
            msg.wire_len(),
            printed.len(),
            "wire_len disagrees with the print"
        );
        let again = Message::parse(Bytes::from(printed.clone()), Framing::Datagram, &limits)
            .unwrap_or_else(|e| panic!("printed message does not parse: {e}"));
        assert_eq!(again, msg, "parse(print(m)) != m");
        assert_eq!(again.to_bytes(), printed, "printing is not stable");
    }
    // The stateless screen never panics, and what it answers parses.
    let policy = parley::proto::sip::stateless::Policy::default();
    let verdict = parley::proto::sip::stateless::screen(
        Bytes::copy_from_slice(data),
        Framing::Datagram,
        &limits,
        &policy,
    );
    if let parley::proto::sip::stateless::Verdict::Answer { response, status } = verdict {
        let answer = Message::parse(Bytes::from(response), Framing::Stream, &limits)
            .unwrap_or_else(|e| panic!("the {status} answer does not parse: {e}"));
        assert_eq!(answer.status(), Some(status));
    }
    if let Ok(Some((skip, len))) = frame(data, &limits) {
        let framed = Bytes::copy_from_slice(&data[skip..skip + len]);
        if let Ok(msg) = Message::parse(framed, Framing::Stream, &limits) {
            exercise(&msg, &limits);
        }
    }
}

/// Calls every typed accessor; none may panic, whatever they return.
fn exercise(msg: &Message, limits: &Limits) {
    let _ = msg.validate(limits);
    let _ = msg
        .top_via()
        .map(|v| v.map(|v| (v.branch(), v.rport(), v.received(), v.ttl())));
    let _ = msg
        .from()
        .map(|f| f.map(|f| (f.tag(), f.display_name(), f.uri().is_ok())));
    let _ = msg.to().map(|t| t.map(|t| t.tag()));
    let _ = msg.cseq();
    let _ = msg.content_type();
    let _ = msg.request_uri();
    let _ = msg.multipart(limits);
    for name in [
        HeaderName::Via,
        HeaderName::Contact,
        HeaderName::Route,
        HeaderName::Accept,
    ] {
        let _ = msg.headers().values(name).count();
    }
    let mut copy = msg.clone();
    copy.headers_mut()
        .push_front("Via", "SIP/2.0/UDP 127.0.0.1;branch=z9hG4bKfuzz")
        .expect("a well-formed Via is accepted");
    copy.ensure_content_length();
    // The added Via may take a message that sat at a limit past it; the
    // property is about printing, so the re-parse gets room for that one field.
    let roomier = Limits {
        max_message_size: limits.max_message_size + 128,
        max_headers: limits.max_headers + 2,
        ..*limits
    };
    let reparsed = Message::parse(Bytes::from(copy.to_bytes()), Framing::Stream, &roomier);
    assert!(
        reparsed.is_ok(),
        "a modified message does not re-parse: {reparsed:?}"
    );
}

/// Checks one input as a URI.
pub fn sip_uri(data: &[u8]) {
    if let Ok(uri) = Uri::parse(data) {
        let _ = uri.scheme();
        if let Uri::Sip(sip) = &uri {
            let _ = (
                sip.transport(),
                sip.lr(),
                sip.maddr(),
                sip.params.iter().count(),
            );
            let _ = sip.host.to_string();
        }
        // A URI that parses is accepted inside a name-addr too.
        let text = String::from_utf8_lossy(data);
        let field = format!("<{text}>;tag=x");
        let parsed = parley::proto::sip::typed::NameAddr::parse_full(field.as_bytes(), "To");
        assert!(parsed.is_ok(), "{field}: {parsed:?}");
    }
}

/// Checks one input as an `Authorization` / `Proxy-Authorization` value:
/// parsing never panics, and what parses yields credentials or a reason.
/// Every challenge Parley makes parses as a header of its kind.
pub fn digest(data: &[u8]) {
    use parley::proto::digest::{challenge, Algorithm, Credentials};
    use parley::proto::sip::typed::Auth;
    if let Ok(auth) = Auth::parse(data, "Authorization") {
        if let Ok(creds) = Credentials::from_auth(&auth) {
            let _ = creds.expected("MESSAGE", "00000000000000000000000000000000");
            let _ = creds.verify("MESSAGE", "00000000000000000000000000000000");
        }
    }
    let text = String::from_utf8_lossy(data);
    let realm: String = text
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '.')
        .take(64)
        .collect();
    for algorithm in [Algorithm::Md5, Algorithm::Sha256] {
        let made = challenge(&realm, "nonce", algorithm, false);
        assert!(
            Auth::parse(made.as_bytes(), "WWW-Authenticate").is_ok(),
            "Parley's own challenge does not parse: {made}"
        );
    }
}

/// Checks one input as a PIDF document: parsing is bounded and never
/// panics, and what parses prints to a document that parses the same.
pub fn pidf(data: &[u8]) {
    use parley::proto::pidf::{Limits, Presence};
    let limits = Limits::default();
    if let Ok(doc) = Presence::parse(data, &limits) {
        let printed = doc.to_xml();
        let again = Presence::parse(printed.as_bytes(), &limits)
            .unwrap_or_else(|e| panic!("printed PIDF does not parse: {e}\n{printed}"));
        assert_eq!(again, doc, "parse(print(d)) != d");
    }
}

/// Checks one input as a CPIM message: what parses prints to a message
/// that parses the same.
pub fn cpim(data: &[u8]) {
    use parley::proto::cpim::{Cpim, Limits};
    let limits = Limits::default();
    if let Ok(msg) = Cpim::parse(&Bytes::copy_from_slice(data), &limits) {
        let printed = msg.to_bytes();
        let again = Cpim::parse(&Bytes::from(printed.clone()), &limits).unwrap_or_else(|e| {
            panic!(
                "printed CPIM does not parse: {e}\n{}",
                String::from_utf8_lossy(&printed)
            )
        });
        assert_eq!(again, msg, "parse(print(m)) != m");
    }
}

/// Checks one input as bytes of an XMPP stream: the framer never panics,
/// gives the same frames however the bytes are split, and every stanza it
/// yields maps to the neutral model (or a refusal) without panicking.
pub fn xmpp_stream(data: &[u8]) {
    use parley_xmpp::framer::Framer;
    let frames = |splits: &[usize]| {
        let mut f = Framer::new(16 * 1024);
        let mut out = Vec::new();
        let mut at = 0;
        for &end in splits.iter().chain(std::iter::once(&data.len())) {
            let end = end.min(data.len()).max(at);
            f.feed(&data[at..end]);
            at = end;
            loop {
                match f.next_frame() {
                    Ok(Some(frame)) => out.push(Ok(frame)),
                    Ok(None) => break,
                    Err(e) => {
                        out.push(Err(e));
                        return out;
                    }
                }
            }
        }
        out
    };
    let whole = frames(&[]);
    let halves = frames(&[data.len() / 2]);
    let bytewise: Vec<usize> = (1..data.len().min(512)).collect();
    if data.len() <= 512 {
        assert_eq!(frames(&bytewise), whole, "byte-by-byte differs");
    }
    assert_eq!(halves, whole, "split in two differs");
    for frame in whole.into_iter().flatten() {
        if let parley_xmpp::framer::Frame::Stanza(el) = frame {
            let _ = parley_xmpp::stanza::decode(&el, "jabber:server");
        }
    }
}

/// One message the decoder yielded: head, joined body, flag (once the
/// end-line came), and whether the head was refused (sound framing, bad
/// fields: answered 400, never printed back).
type Decoded = (
    parley::proto::msrp::Head,
    Vec<u8>,
    Option<parley::proto::msrp::Flag>,
    bool,
);

/// Checks one input as bytes of an MSRP connection: the decoder never
/// panics, gives the same messages however the bytes are split (one
/// split at every third of the input), and every message it yields prints
/// to bytes that decode to the same message.
pub fn msrp(data: &[u8]) {
    use parley::proto::msrp::{Decoder, Event, MsrpLimits};
    fn run(data: &[u8], step: usize) -> (Vec<Event>, bool) {
        let mut d = Decoder::new(MsrpLimits::default());
        let mut buf = bytes::BytesMut::new();
        let mut events = Vec::new();
        for piece in data.chunks(step.max(1)) {
            buf.extend_from_slice(piece);
            loop {
                match d.decode(&mut buf) {
                    Ok(Some(e)) => events.push(e),
                    Ok(None) => break,
                    Err(_) => return (events, true),
                }
            }
        }
        (events, false)
    }
    // Data events may be cut differently; compare heads, joined bodies, flags.
    fn messages(events: Vec<Event>) -> Vec<Decoded> {
        let mut out: Vec<Decoded> = Vec::new();
        for e in events {
            match e {
                Event::Head(h) => out.push((h, Vec::new(), None, false)),
                Event::Refused(h, _) => out.push((h, Vec::new(), None, true)),
                Event::Data(b) => out
                    .last_mut()
                    .expect("a head first")
                    .1
                    .extend_from_slice(&b),
                Event::End(f) => out.last_mut().expect("a head first").2 = Some(f),
            }
        }
        out
    }
    let (whole, failed) = run(data, data.len().max(1));
    let (split, failed_split) = run(data, data.len() / 3 + 1);
    let (a, b) = (messages(whole), messages(split));
    if !failed && !failed_split {
        // Without an error, both saw the same complete messages.
        let complete = |m: &Vec<Decoded>| {
            m.iter()
                .filter(|x| x.2.is_some())
                .cloned()
                .collect::<Vec<_>>()
        };
        assert_eq!(complete(&a), complete(&b), "the split changed the messages");
    }
    for (head, body, flag, refused) in a {
        let Some(flag) = flag else { continue };
        if refused {
            continue;
        }
        let printed = head.to_bytes(head.has_body.then_some(body.as_slice()), flag);
        let again = parley::proto::msrp::decode_one(&printed, &MsrpLimits::default())
            .unwrap_or_else(|e| {
                panic!(
                    "printed MSRP does not decode: {e}\n{}",
                    String::from_utf8_lossy(&printed)
                )
            });
        if let Some((h, b, f)) = again {
            assert_eq!(h, head, "decode(print(m)) != m");
            assert_eq!(b.unwrap_or_default(), body);
            assert_eq!(f, flag);
        } else {
            panic!("printed MSRP is incomplete");
        }
    }
}

/// Checks one input as an SDP description: parsing is bounded and never
/// panics, what parses prints to a description that parses the same, and
/// answering it never panics and yields a description Parley parses.
pub fn sdp(data: &[u8]) {
    use parley::proto::sdp::{answer, MsrpLocal, Sdp};
    let Ok(doc) = Sdp::parse(data) else { return };
    let printed = doc.to_bytes();
    let again = Sdp::parse(&printed).unwrap_or_else(|e| {
        panic!(
            "printed SDP does not parse: {e}\n{}",
            String::from_utf8_lossy(&printed)
        )
    });
    assert_eq!(again, doc, "parse(print(d)) != d");
    let local = MsrpLocal {
        paths: vec!["msrp://127.0.0.1:2855/fuzz;tcp".into()],
        address: "127.0.0.1".into(),
        port: 2855,
        tls: false,
        accept_types: vec!["message/cpim".into(), "text/plain".into()],
        accept_wrapped_types: vec!["text/plain".into()],
        max_size: Some(65536),
    };
    if let Ok((ans, _)) = answer(&doc, &local, "parley 1 1 IN IP4 127.0.0.1") {
        Sdp::parse(&ans.to_bytes()).expect("Parley's answer parses");
    }
}

/// Checks one datagram as STUN on the SIP port: decoding is bounded and
/// never panics; whatever Parley answers is a STUN message Parley reads,
/// of the request's transaction, and a success tells the source's address.
pub fn stun(data: &[u8]) {
    use parley::proto::stun::{answer, decode, Class};
    let source: std::net::SocketAddr = "192.0.2.1:32853".parse().unwrap();
    let request = decode(data);
    let Some(reply) = answer(data, source) else {
        return;
    };
    let request = request.expect("only a message that reads is answered");
    let read = decode(&reply).expect("Parley's answer reads");
    assert_eq!(read.transaction, request.transaction);
    assert_eq!(read.method, request.method);
    match read.class {
        Class::Success => assert_eq!(read.mapped, Some(source)),
        Class::Error => {}
        other => panic!("answered with a {other:?}"),
    }
}
