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
