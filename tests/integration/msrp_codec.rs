//! The MSRP and SDP codecs without a network: the RFCs' examples, streaming
//! in any split, print-parse round trips, chunk reassembly in any order,
//! offer/answer for message streams, and hostile input refused by name.

use bytes::BytesMut;
use parley::proto::msrp::session::{
    answers, chunks, for_session, Chunked, Outstanding, Reassembly,
};
use parley::proto::msrp::{decode_one, Decoder, Event, Flag, Head, MsrpError, MsrpLimits, MsrpUri};
use parley::proto::sdp::{self, MsrpLocal, Sdp, Setup};
use proptest::prelude::*;

fn corpus() -> Vec<(String, Vec<u8>)> {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/msrp");
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "msrp"))
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|p| {
            (
                p.file_name().unwrap().to_string_lossy().into_owned(),
                std::fs::read(&p).unwrap(),
            )
        })
        .collect()
}

/// Every event of `bytes` fed `step` bytes at a time; the body joined.
fn stream(bytes: &[u8], step: usize) -> Vec<(Head, Option<Vec<u8>>, Flag)> {
    let mut d = Decoder::new(MsrpLimits::default());
    let mut buf = BytesMut::new();
    let mut out = Vec::new();
    let mut current: Option<(Head, Option<Vec<u8>>)> = None;
    for piece in bytes.chunks(step.max(1)) {
        buf.extend_from_slice(piece);
        while let Some(e) = d.decode(&mut buf).unwrap() {
            match e {
                Event::Head(h) => {
                    let body = h.has_body.then(Vec::new);
                    current = Some((h, body));
                }
                Event::Refused(_, e) => panic!("malformed MSRP: {e}"),
                Event::Data(b) => current
                    .as_mut()
                    .unwrap()
                    .1
                    .as_mut()
                    .unwrap()
                    .extend_from_slice(&b),
                Event::End(f) => {
                    let (h, b) = current.take().unwrap();
                    out.push((h, b, f));
                }
            }
        }
    }
    assert!(buf.is_empty() && d.idle(), "nothing left over");
    out
}

#[test]
fn the_rfc_examples_decode_in_any_split_and_print_back_byte_for_byte() {
    let files = corpus();
    assert!(files.len() >= 5);
    for (name, bytes) in &files {
        let (head, body, flag) = decode_one(bytes, &MsrpLimits::default())
            .unwrap_or_else(|e| panic!("{name}: {e}"))
            .unwrap_or_else(|| panic!("{name}: incomplete"));
        assert_eq!(flag, Flag::End, "{name}");
        for step in [1, 2, 3, 7, 16, 64, bytes.len()] {
            let got = stream(bytes, step);
            assert_eq!(
                got,
                vec![(head.clone(), body.clone(), flag)],
                "{name} in pieces of {step}"
            );
        }
        assert_eq!(
            &head.to_bytes(body.as_deref(), flag),
            bytes,
            "{name} printed back"
        );
    }
    let (send, body, _) = decode_one(
        &files
            .iter()
            .find(|f| f.0 == "rfc4975-4-send.msrp")
            .unwrap()
            .1,
        &MsrpLimits::default(),
    )
    .unwrap()
    .unwrap();
    assert_eq!(send.method(), Some("SEND"));
    assert_eq!(send.message_id(), Some("87652491"));
    assert_eq!(send.content_type(), Some("text/plain"));
    assert_eq!(body.as_deref(), Some(&b"Hey Bob, are you there?"[..]));
    assert_eq!(send.to_path[0].port, Some(12763));
    let (report, _, _) = decode_one(
        &files
            .iter()
            .find(|f| f.0 == "rfc4975-7.1.2-report.msrp")
            .unwrap()
            .1,
        &MsrpLimits::default(),
    )
    .unwrap()
    .unwrap();
    assert_eq!(report.status().map(|s| s.code), Some(200));
    assert!(!answers(&report, 200), "a REPORT is never answered");
}

#[test]
fn messages_back_to_back_and_a_body_holding_end_line_lookalikes() {
    let a = Head::request(
        "SEND",
        "tid0001",
        vec![MsrpUri::parse("msrp://b.example.com:2855/s1;tcp").unwrap()],
        vec![MsrpUri::parse("msrp://a.example.com:2855/s2;tcp").unwrap()],
    )
    .with("Message-ID", "m0001")
    .with("Content-Type", "text/plain");
    // The body holds the marker of the transaction, with no valid flag
    // after it, and the end-line of another transaction.
    let body = b"x\r\n-------tid0001 is not the end\r\n-------tid0002$\r\nstill body";
    let mut all = a.to_bytes(Some(body), Flag::More);
    let mut b = a.clone();
    b.tid = "tid0003".into();
    all.extend_from_slice(&b.to_bytes(None, Flag::Abort));
    for step in [1, 5, 13, all.len()] {
        let got = stream(&all, step);
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].1.as_deref(), Some(&body[..]));
        assert_eq!(got[0].2, Flag::More);
        assert_eq!(got[1].2, Flag::Abort);
        assert_eq!(got[1].1, None);
    }
}

#[test]
fn a_body_larger_than_the_buffer_streams_through_in_bounded_memory() {
    let size = 10 * 1024 * 1024;
    let body: Vec<u8> = (0..size).map(|i| (i % 251) as u8).collect();
    let head = Head::request(
        "SEND",
        "bigone1",
        vec![MsrpUri::parse("msrp://b.example.com:2855/s1;tcp").unwrap()],
        vec![MsrpUri::parse("msrp://a.example.com:2855/s2;tcp").unwrap()],
    )
    .with("Message-ID", "big1")
    .with("Byte-Range", format!("1-{size}/{size}"))
    .with("Content-Type", "application/octet-stream");
    let wire = head.to_bytes(Some(&body), Flag::End);
    let mut d = Decoder::new(MsrpLimits::default());
    let mut buf = BytesMut::new();
    let mut seen = 0usize;
    let mut largest_buffer = 0;
    let mut ended = false;
    for piece in wire.chunks(64 * 1024) {
        buf.extend_from_slice(piece);
        largest_buffer = largest_buffer.max(buf.len());
        while let Some(e) = d.decode(&mut buf).unwrap() {
            match e {
                Event::Refused(_, e) => panic!("malformed MSRP: {e}"),
                Event::Data(b) => {
                    assert_eq!(&b[..], &body[seen..seen + b.len()]);
                    seen += b.len();
                }
                Event::End(f) => {
                    assert_eq!(f, Flag::End);
                    ended = true;
                }
                Event::Head(_) => {}
            }
        }
    }
    assert!(ended && seen == size);
    assert!(largest_buffer < 64 * 1024 + 64, "{largest_buffer}");
}

#[test]
fn hostile_and_malformed_input_is_refused_by_name() {
    let limits = MsrpLimits::default();
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (b"GET / HTTP/1.1\r\n\r\n".to_vec(), "start line"),
        (b"MSRP ab SEND\r\nTo-Path: msrp://a:1/x;tcp\r\nFrom-Path: msrp://b:1/y;tcp\r\n-------ab$\r\n".to_vec(), "transaction id"),
        (b"MSRP abcd SEND\nTo-Path: msrp://a:1/x;tcp\n".to_vec(), "CRLF"),
        (b"MSRP abcd SEND\r\nFrom-Path: msrp://b:1/y;tcp\r\nTo-Path: msrp://a:1/x;tcp\r\n-------abcd$\r\n".to_vec(), "first two"),
        (b"MSRP abcd SEND\r\nTo-Path: sip:a@b\r\nFrom-Path: msrp://b:1/y;tcp\r\n-------abcd$\r\n".to_vec(), "scheme"),
        (b"MSRP abcd SEND\r\nTo-Path: msrp://a:1/x;tcp\r\nFrom-Path: msrp://b:1/y;tcp\r\n-------abce$\r\n".to_vec(), "end-line"),
        (b"MSRP abcd SEND\r\nTo-Path: msrp://a:1/x;tcp\r\nFrom-Path: msrp://b:1/y;tcp\r\nByte-Range: 0-5/5\r\n-------abcd$\r\n".to_vec(), "Byte-Range"),
        (b"MSRP abcd SEND\r\nTo-Path: msrp://a:1/x;tcp\r\nFrom-Path: msrp://b:1/y;tcp\r\nMessage-ID: 1\r\n\r\nbody\r\n-------abcd$\r\n".to_vec(), "Message-ID"),
        (b"MSRP abcd SEND\r\nTo-Path: msrp://a:1/x;tcp\r\nFrom-Path: msrp://b:1/y;tcp\r\n\r\nbody\r\n-------abcd$\r\n".to_vec(), "Content-Type"),
        ([&b"MSRP abcd SEND\r\nX: "[..], &vec![b'a'; 20_000]].concat(), "head size"),
    ];
    for (bytes, why) in cases {
        let e = decode_one(&bytes, &limits).expect_err(why);
        assert!(e.to_string().contains(why), "{why}: {e}");
        assert_eq!(e.status(), 400);
    }
    let many = format!(
        "MSRP abcd SEND\r\nTo-Path: msrp://a:1/x;tcp\r\nFrom-Path: msrp://b:1/y;tcp\r\n{}-------abcd$\r\n",
        "X-A: 1\r\n".repeat(100)
    );
    assert!(matches!(
        decode_one(many.as_bytes(), &limits),
        Err(MsrpError::TooLarge {
            what: "header count",
            ..
        })
    ));
    let long_path = format!(
        "MSRP abcd SEND\r\nTo-Path: {}\r\nFrom-Path: msrp://b:1/y;tcp\r\n-------abcd$\r\n",
        vec!["msrp://a:1/x;tcp"; 20].join(" ")
    );
    assert!(matches!(
        decode_one(long_path.as_bytes(), &limits),
        Err(MsrpError::TooLarge {
            what: "path length",
            ..
        })
    ));
}

fn send_head(id: &str, range: &str) -> Head {
    Head::request(
        "SEND",
        "t1234",
        vec![MsrpUri::parse("msrp://b.example.com:2855/s1;tcp").unwrap()],
        vec![MsrpUri::parse("msrp://a.example.com:2855/s2;tcp").unwrap()],
    )
    .with("Message-ID", id)
    .with("Byte-Range", range)
    .with("Content-Type", "text/plain")
}

#[test]
fn chunks_are_put_back_together_in_any_order_with_duplicates_and_overlaps() {
    let mut r = Reassembly::new(1024, 4);
    let h = |range: &str| send_head("m1", range);
    assert_eq!(
        r.chunk(&h("11-20/20"), b"klmnopqrst", Flag::End, 0),
        Chunked::Partial
    );
    assert_eq!(
        r.chunk(&h("1-5/20"), b"abcde", Flag::More, 0),
        Chunked::Partial
    );
    // The same chunk again, and one that overlaps both sides.
    assert_eq!(
        r.chunk(&h("1-5/20"), b"abcde", Flag::More, 0),
        Chunked::Partial
    );
    match r.chunk(&h("4-12/20"), b"defghijkl", Flag::More, 1) {
        Chunked::Complete(m) => {
            assert_eq!(m.body, b"abcdefghijklmnopqrst");
            assert_eq!(m.message_id, "m1");
            assert_eq!(m.content_type, "text/plain");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(r.in_progress(), 0);
    // Unknown total: the `$` chunk fixes it.
    assert_eq!(
        r.chunk(&send_head("m2", "1-3/*"), b"abc", Flag::More, 0),
        Chunked::Partial
    );
    assert!(
        matches!(r.chunk(&send_head("m2", "4-*/*"), b"def", Flag::End, 0), Chunked::Complete(m) if m.body == b"abcdef")
    );
    // Abort drops what came.
    assert_eq!(
        r.chunk(&send_head("m3", "1-3/9"), b"abc", Flag::More, 0),
        Chunked::Partial
    );
    assert_eq!(
        r.chunk(&send_head("m3", "4-6/9"), b"def", Flag::Abort, 0),
        Chunked::Aborted
    );
    assert_eq!(r.in_progress(), 0);
    // Over max-size: 413, and nothing kept.
    assert_eq!(
        r.chunk(&send_head("m4", "1-3/4096"), b"abc", Flag::More, 0),
        Chunked::Refused(413, "message larger than max-size")
    );
    assert!(matches!(
        r.chunk(&send_head("m5", "1-3/5"), b"abc", Flag::More, 0),
        Chunked::Partial
    ));
    assert!(matches!(
        r.chunk(&send_head("m5", "4-6/5"), b"def", Flag::More, 0),
        Chunked::Refused(400, _)
    ));
    // At most four half-received messages; the idle ones expire.
    for n in 0..4 {
        assert_eq!(
            r.chunk(&send_head(&format!("p{n}"), "1-1/2"), b"a", Flag::More, n),
            Chunked::Partial
        );
    }
    assert!(matches!(
        r.chunk(&send_head("p9", "1-1/2"), b"a", Flag::More, 5),
        Chunked::Refused(413, _)
    ));
    let mut gone = r.expire(12, 10);
    gone.sort();
    assert_eq!(gone, ["p0", "p1", "p2"]);
}

#[test]
fn a_message_is_chunked_and_the_chunks_reassemble_and_reports_follow_the_rules() {
    let body: Vec<u8> = (0..10_000u32).map(|i| (i % 97) as u8).collect();
    let template = send_head("x", "1-1/1").with("Success-Report", "yes");
    let mut n = 0;
    let pieces = chunks(
        &template,
        "big1",
        "application/octet-stream",
        &body,
        4096,
        || {
            n += 1;
            format!("tid{n:04}")
        },
    );
    assert_eq!(pieces.len(), 3);
    assert_eq!(pieces[1].0.header("Byte-Range"), Some("4097-8192/10000"));
    assert_eq!(pieces[2].2, Flag::End);
    let mut r = Reassembly::new(1 << 20, 4);
    let mut done = None;
    for (head, piece, flag) in pieces.iter().rev() {
        // Through the wire and back.
        let (h, b, f) = decode_one(&head.to_bytes(Some(piece), *flag), &MsrpLimits::default())
            .unwrap()
            .unwrap();
        if let Chunked::Complete(m) = r.chunk(&h, &b.unwrap(), f, 0) {
            done = Some(m);
        }
    }
    let m = done.expect("complete");
    assert_eq!(m.body, body);
    assert!(m.success_report);

    let yes = send_head("r", "1-1/1");
    assert!(answers(&yes, 200) && answers(&yes, 413));
    let partial = yes.clone().with("Failure-Report", "partial");
    assert!(!answers(&partial, 200) && answers(&partial, 481));
    let no = yes.clone().with("Failure-Report", "no");
    assert!(!answers(&no, 481));

    let own = MsrpUri::parse("msrp://b.example.com:2855/s1;tcp").unwrap();
    assert!(for_session(&yes, &own));
    assert!(!for_session(
        &yes,
        &MsrpUri::parse("msrp://b.example.com:2855/other;tcp").unwrap()
    ));

    let mut out = Outstanding::default();
    out.sent("t1", "m1", 100);
    out.sent("t2", "m2", 110);
    assert_eq!(out.answered("t1").as_deref(), Some("m1"));
    assert!(out.expired(129).is_empty());
    assert_eq!(out.expired(140), vec![("t2".to_string(), "m2".to_string())]);
}

const RFC4975_OFFER: &str = "v=0\r\no=alice 2890844557 2890844559 IN IP4 alicepc.example.com\r\ns=-\r\nc=IN IP4 alicepc.example.com\r\nm=message 7777 TCP/MSRP *\r\na=accept-types:text/plain\r\na=path:msrp://alicepc.example.com:7777/iau39soe2843z;tcp\r\n";

fn local(tls: bool) -> MsrpLocal {
    MsrpLocal {
        paths: vec!["msrp://127.0.0.1:2855/p4rl3y;tcp".into()],
        address: "127.0.0.1".into(),
        port: 2855,
        tls,
        accept_types: vec!["message/cpim".into(), "text/plain".into()],
        accept_wrapped_types: vec!["text/plain".into(), "message/imdn+xml".into()],
        max_size: Some(65536),
    }
}

#[test]
fn an_msrp_offer_is_answered_and_what_is_not_understood_is_kept() {
    let offer = Sdp::parse(RFC4975_OFFER.as_bytes()).unwrap();
    assert_eq!(offer.to_string(), RFC4975_OFFER, "printed back unchanged");
    let m = &offer.media[0];
    assert!(m.is_msrp() && !m.is_tls());
    assert_eq!(
        m.path(),
        ["msrp://alicepc.example.com:7777/iau39soe2843z;tcp"]
    );
    assert_eq!(m.accept_types(), ["text/plain"]);
    let (answer, index) =
        sdp::answer(&offer, &local(false), "parley 1 1 IN IP4 127.0.0.1").unwrap();
    assert_eq!(index, 0);
    let a = &answer.media[0];
    assert_eq!(a.accept_types(), ["text/plain"]);
    assert_eq!(a.path(), ["msrp://127.0.0.1:2855/p4rl3y;tcp"]);
    assert_eq!(
        a.setup(),
        Some(Setup::Active),
        "the answerer connects by default"
    );
    assert_eq!(
        Sdp::parse(&answer.to_bytes()).unwrap(),
        answer,
        "what Parley sends, it parses"
    );

    // An audio stream beside it is refused with port 0; unknown lines stay.
    let mixed = format!(
        "{RFC4975_OFFER}a=x-unknown:kept as written\r\nm=audio 49170 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n"
    );
    let offer = Sdp::parse(mixed.as_bytes()).unwrap();
    assert_eq!(offer.to_string(), mixed);
    assert_eq!(offer.media[0].attr("x-unknown"), Some("kept as written"));
    let (answer, _) = sdp::answer(&offer, &local(false), "parley 1 1 IN IP4 127.0.0.1").unwrap();
    assert_eq!(answer.media.len(), 2);
    assert_eq!(answer.media[1].port, 0);
    assert_eq!(answer.media[1].formats, ["0"]);

    // RFC 6135: an offerer that connects makes the answerer passive.
    let active = RFC4975_OFFER.replace("a=path", "a=setup:active\r\na=path");
    let (answer, _) = sdp::answer(
        &Sdp::parse(active.as_bytes()).unwrap(),
        &local(false),
        "p 1 1 IN IP4 127.0.0.1",
    )
    .unwrap();
    assert_eq!(answer.media[0].setup(), Some(Setup::Passive));
    assert_eq!(answer.media[0].connection(), Some("new"));

    // Parley's own offer parses and is answerable.
    let own = sdp::offer(&local(true), "parley 2 2 IN IP4 127.0.0.1");
    let again = Sdp::parse(&own.to_bytes()).unwrap();
    assert!(again.media[0].is_tls());
    assert_eq!(again.media[0].setup(), Some(Setup::ActPass));
    assert!(sdp::answer(&again, &local(true), "x 1 1 IN IP4 127.0.0.1").is_ok());
}

#[test]
fn offers_parley_cannot_answer_say_why() {
    let cases = [
        (
            RFC4975_OFFER.replace("text/plain", "image/png"),
            305,
            "accept-types",
        ),
        (
            RFC4975_OFFER.replace("TCP/MSRP", "TCP/TLS/MSRP"),
            302,
            "TLS",
        ),
        (
            RFC4975_OFFER.replace("m=message 7777 TCP/MSRP *", "m=audio 7777 RTP/AVP 0"),
            304,
            "no message stream",
        ),
        (
            RFC4975_OFFER.replace(
                "a=path:msrp://alicepc.example.com:7777/iau39soe2843z;tcp\r\n",
                "",
            ),
            305,
            "a=path",
        ),
        (
            RFC4975_OFFER.replace("msrp://alicepc", "http://alicepc"),
            305,
            "malformed MSRP URI",
        ),
    ];
    for (offer, code, why) in cases {
        let r = sdp::answer(
            &Sdp::parse(offer.as_bytes()).unwrap(),
            &local(false),
            "p 1 1 IN IP4 127.0.0.1",
        )
        .unwrap_err();
        assert_eq!(r.warn_code, code, "{why}: {r:?}");
        assert!(r.text.contains(why), "{why}: {r:?}");
    }
    let required = sdp::answer(
        &Sdp::parse(RFC4975_OFFER.as_bytes()).unwrap(),
        &local(true),
        "p 1 1 IN IP4 127.0.0.1",
    )
    .unwrap_err();
    assert!(required.text.contains("required"), "{required:?}");
}

#[test]
fn malformed_and_oversized_descriptions_are_refused_by_name() {
    for (bytes, why) in [
        ("o=a 1 1 IN IP4 h\r\ns=-\r\n".to_string(), "v=0"),
        ("v=0\r\ns=-\r\n".to_string(), "o="),
        (
            "v=0\r\no=a 1 1 IN IP4 h\r\ns=-\r\nm=message x TCP/MSRP *\r\n".to_string(),
            "m= line",
        ),
        (
            "v=0\r\no=a 1 1 IN IP4 h\r\ns=-\r\nm=message 1 TCP/MSRP\r\n".to_string(),
            "m= line",
        ),
        (
            "v=0\r\no=a 1 1 IN IP4 h\r\ns=-\r\nbogus\r\n".to_string(),
            "<type>=<value>",
        ),
        (
            "v=0\r\no=a 1 1 IN IP4 h\r\ns=-\r\nM=x\r\n".to_string(),
            "<type>=<value>",
        ),
        (
            format!(
                "v=0\r\no=a 1 1 IN IP4 h\r\ns=-\r\n{}",
                "m=message 1 TCP/MSRP *\r\n".repeat(17)
            ),
            "media count",
        ),
        (
            format!(
                "v=0\r\no=a 1 1 IN IP4 h\r\ns=-\r\n{}",
                "a=x\r\n".repeat(300)
            ),
            "line count",
        ),
        (
            format!(
                "v=0\r\no=a 1 1 IN IP4 h\r\ns=-\r\na={}\r\n",
                "x".repeat(3000)
            ),
            "line length",
        ),
        (
            "v=0\r\no=a 1 1 IN IP4 h\r\ns=\0\r\n".to_string(),
            "not text",
        ),
    ] {
        let e = Sdp::parse(bytes.as_bytes()).expect_err(why).to_string();
        assert!(e.contains(why), "{why}: {e}");
    }
    assert!(Sdp::parse(&vec![b'a'; 20_000])
        .unwrap_err()
        .to_string()
        .contains("size"));
}

fn ident() -> impl Strategy<Value = String> {
    "[a-zA-Z0-9][a-zA-Z0-9.+=%-]{3,20}"
}

fn uri() -> impl Strategy<Value = MsrpUri> {
    (
        any::<bool>(),
        "[a-z][a-z0-9-]{0,10}(\\.[a-z]{2,5})?",
        any::<u16>(),
        "[a-zA-Z0-9]{1,12}",
    )
        .prop_map(|(secure, host, port, sid)| MsrpUri::new(secure, &host, port, &sid))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn any_message_parley_prints_decodes_to_itself_in_any_split(
        tid in ident(),
        to in proptest::collection::vec(uri(), 1..4),
        from in proptest::collection::vec(uri(), 1..4),
        id in ident(),
        body in proptest::option::of(proptest::collection::vec(any::<u8>(), 0..300)),
        flag in prop_oneof![Just(Flag::End), Just(Flag::More), Just(Flag::Abort)],
        step in 1usize..40,
        extra in proptest::collection::vec(("X-[A-Za-z]{1,8}", "[ -~]{0,30}"), 0..4),
    ) {
        let mut head = Head::request("SEND", &tid, to, from).with("Message-ID", id);
        for (n, v) in extra {
            head = head.with(&n, v.trim().to_string());
        }
        if body.is_some() {
            head = head.with("Content-Type", "application/octet-stream");
        }
        // The sender picks a tid whose end-line the body does not hold.
        if let Some(b) = &body {
            let marker = format!("\r\n-------{tid}");
            prop_assume!(!b.windows(marker.len()).any(|w| w == marker.as_bytes()));
        }
        let wire = head.to_bytes(body.as_deref(), flag);
        let mut expected = head.clone();
        expected.has_body = body.is_some();
        let got = stream(&wire, step);
        prop_assert_eq!(got, vec![(expected, body, flag)]);
    }

    #[test]
    fn any_bytes_are_refused_or_decoded_never_a_panic(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
        let _ = decode_one(&bytes, &MsrpLimits::default());
        let _ = Sdp::parse(&bytes);
        let mut with_head = b"MSRP abcd SEND\r\nTo-Path: msrp://a:1/x;tcp\r\nFrom-Path: msrp://b:1/y;tcp\r\n".to_vec();
        with_head.extend_from_slice(&bytes);
        let _ = decode_one(&with_head, &MsrpLimits::default());
    }

    #[test]
    fn any_description_parley_prints_parses_back(
        fields in proptest::collection::vec(("[a-z]", "[ -~]{0,40}"), 0..10),
        ports in proptest::collection::vec(any::<u16>(), 0..4),
    ) {
        let mut text = String::from("v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\n");
        for (k, v) in &fields {
            if k != "v" && k != "m" {
                text.push_str(&format!("{k}={v}\r\n"));
            }
        }
        for p in &ports {
            text.push_str(&format!("m=message {p} TCP/MSRP *\r\na=path:msrp://h:{p}/s;tcp\r\n"));
        }
        let parsed = Sdp::parse(text.as_bytes()).unwrap();
        prop_assert_eq!(parsed.to_string(), text);
        prop_assert_eq!(Sdp::parse(&parsed.to_bytes()).unwrap(), parsed);
    }
}
