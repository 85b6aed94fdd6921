//! Presence documents: the PIDF codec on the RFC examples, hostile XML,
//! composition, and `parley pidf parse` as a process.

use parley::proto::pidf::{Activity, Basic, Limits, PidfError, Presence};
use parley::proto::xml::XmlError;
use parley_test_support::data_dir;

use crate::cli_sip_parse::parley;

fn documents(set: &str) -> Vec<(String, Vec<u8>)> {
    let dir = data_dir().join("pidf").join(set);
    let mut out: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .map(|p| {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            (name, std::fs::read(&p).unwrap())
        })
        .collect();
    out.sort();
    assert!(!out.is_empty());
    out
}

#[test]
fn valid_documents_survive_a_round_trip() {
    for (name, text) in documents("valid") {
        let doc =
            Presence::parse(&text, &Limits::default()).unwrap_or_else(|e| panic!("{name}: {e}"));
        let printed = doc.to_xml();
        let again = Presence::parse(printed.as_bytes(), &Limits::default())
            .unwrap_or_else(|e| panic!("{name} printed: {e}\n{printed}"));
        assert_eq!(again, doc, "{name}");
        assert_eq!(again.to_xml(), printed, "{name}: printing is stable");
    }
}

#[test]
fn the_model_reads_what_the_rfc_examples_say() {
    let read = |name: &str| {
        let text = std::fs::read(data_dir().join("pidf/valid").join(name)).unwrap();
        Presence::parse(&text, &Limits::default()).unwrap()
    };
    let basic = read("rfc3863-basic.xml");
    assert_eq!(basic.entity, "pres:someone@example.com");
    assert_eq!(basic.tuples[0].id, "sg89ae");
    assert_eq!(basic.basic(), Some(Basic::Open));
    let contact = basic.tuples[0].contact.as_ref().unwrap();
    assert_eq!(
        (contact.uri.as_str(), contact.priority.as_deref()),
        ("tel:+09012345678", Some("0.8"))
    );

    // Prefixed PIDF and an unknown namespace: the extension stays where it was.
    let ext = read("rfc3863-extensions.xml");
    assert_eq!(ext.tuples.len(), 2);
    let mobile = &ext.tuples[1];
    assert_eq!(mobile.status_extensions[0].name, "location");
    assert_eq!(
        mobile.status_extensions[0].ns,
        "http://id.example.com/presence/"
    );
    assert_eq!(mobile.extensions[0].text(), "mobile");
    assert_eq!(mobile.notes.len(), 2);
    assert_eq!(mobile.notes[1].lang.as_deref(), Some("fr"));
    assert_eq!(mobile.timestamp.as_deref(), Some("2001-10-27T16:49:29Z"));
    assert_eq!(ext.notes[0].text, "I'll be in Tokyo next week");
    assert!(ext.to_xml().contains("<ns1:location>Home</ns1:location>"));

    // RPID with attributes on <activities> is kept whole, not flattened.
    let rpid = read("rfc4480-rpid.xml");
    let person = &rpid.persons[0];
    assert_eq!(person.id, "p1");
    assert_eq!(
        person.timestamp.as_deref(),
        Some("2005-05-30T22:02:44+05:00")
    );
    let names: Vec<_> = person.extensions.iter().map(|e| e.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "activities",
            "class",
            "mood",
            "place-type",
            "display-name",
            "homepage"
        ]
    );
    assert_eq!(person.extensions[4].text(), "Someone & Co.");
    assert_eq!(
        rpid.devices[0].device_id.as_deref(),
        Some("urn:device:0003:4fe1")
    );
    assert_eq!(
        rpid.tuples[0].extensions.len(),
        2,
        "deviceID and relationship"
    );

    let acts = read("person-activities.xml");
    assert_eq!(
        acts.activities(),
        Some(
            &[
                Activity::Known("busy".into()),
                Activity::Known("on-the-phone".into())
            ][..]
        )
    );
    assert_eq!(acts.note(), Some("In a call \u{263A} <back soon>"));
    let printed = acts.to_xml();
    assert!(
        printed.contains("<rpid:activities><rpid:busy/><rpid:on-the-phone/></rpid:activities>"),
        "{printed}"
    );
    assert!(printed.contains("&lt;back soon&gt;"), "{printed}");
}

#[test]
fn hostile_and_invalid_documents_are_refused() {
    for (name, text) in documents("invalid") {
        let err = Presence::parse(&text, &Limits::default())
            .err()
            .unwrap_or_else(|| panic!("{name} was accepted"));
        let expected = match name.as_str() {
            "billion-laughs.xml" | "external-entity.xml" => {
                matches!(err, PidfError::Xml(XmlError::Dtd))
            }
            "undeclared-entity.xml" => matches!(err, PidfError::Xml(XmlError::Entity(_))),
            "processing-instruction.xml" => {
                matches!(err, PidfError::Xml(XmlError::ProcessingInstruction))
            }
            "latin1.xml" => matches!(err, PidfError::Xml(XmlError::Encoding(_))),
            "wrong-namespace.xml" => matches!(err, PidfError::NotPidf(_)),
            "no-entity.xml" | "tuple-without-status.xml" => matches!(err, PidfError::Missing(..)),
            "bad-basic.xml" | "bad-priority.xml" | "bad-timestamp.xml" => {
                matches!(err, PidfError::Invalid(..))
            }
            "duplicate-id.xml" => matches!(err, PidfError::DuplicateId(_)),
            "two-roots.xml" => matches!(err, PidfError::Xml(XmlError::TrailingContent)),
            "unbound-prefix.xml" => matches!(
                err,
                PidfError::Xml(XmlError::UnboundPrefix(_) | XmlError::Malformed { .. })
            ),
            "empty.xml" => matches!(err, PidfError::Xml(XmlError::Empty)),
            "mismatched-tags.xml" | "unclosed.xml" => {
                matches!(err, PidfError::Xml(XmlError::Malformed { .. }))
            }
            other => panic!("no expectation for {other}"),
        };
        assert!(expected, "{name}: unexpected error {err:?}");
    }
}

#[test]
fn bounds_hold_for_generated_attacks() {
    let limits = Limits::default();
    let head = r#"<presence xmlns="urn:ietf:params:xml:ns:pidf" entity="pres:a@b">"#;
    // A million nested elements stop at the depth bound.
    let deep = format!("{head}{}", "<x>".repeat(1_000_000));
    let err = Presence::parse(
        deep.as_bytes(),
        &Limits {
            xml: parley::proto::xml::Limits {
                max_bytes: usize::MAX,
                ..limits.xml
            },
            ..limits
        },
    );
    assert!(
        matches!(err, Err(PidfError::Xml(XmlError::TooDeep(_)))),
        "{err:?}"
    );
    // Ten megabytes are refused before parsing.
    let big = format!("{head}<note>{}</note></presence>", "a".repeat(10 << 20));
    assert!(matches!(
        Presence::parse(big.as_bytes(), &limits),
        Err(PidfError::Xml(XmlError::TooLarge(_)))
    ));
    // Many attributes on one element.
    let attrs: String = (0..100).map(|i| format!(" a{i}=\"v\"")).collect();
    let many = format!("{head}<tuple id=\"t\"{attrs}><status/></tuple></presence>");
    assert!(matches!(
        Presence::parse(many.as_bytes(), &limits),
        Err(PidfError::Xml(XmlError::TooManyAttributes(..)))
    ));
    // Many elements, each small.
    let wide = format!("{head}{}</presence>", "<x/>".repeat(5000));
    assert!(matches!(
        Presence::parse(wide.as_bytes(), &limits),
        Err(PidfError::Xml(XmlError::TooManyElements(_)))
    ));
    // Many tuples.
    let tuples: String = (0..200)
        .map(|i| format!("<tuple id=\"t{i}\"><status><basic>open</basic></status></tuple>"))
        .collect();
    let crowd = format!("{head}{tuples}</presence>");
    assert!(matches!(
        Presence::parse(crowd.as_bytes(), &limits),
        Err(PidfError::TooManyComponents(_))
    ));
    // A character reference to a code point XML does not allow.
    let nul = format!("{head}<note>&#0;</note></presence>");
    assert!(matches!(
        Presence::parse(nul.as_bytes(), &limits),
        Err(PidfError::Xml(XmlError::Entity(_)))
    ));
    // Not UTF-8.
    let mut latin = head.as_bytes().to_vec();
    latin.extend_from_slice(b"<note>caf\xe9</note></presence>");
    assert!(matches!(
        Presence::parse(&latin, &limits),
        Err(PidfError::Xml(XmlError::Encoding(_)))
    ));
}

#[test]
fn publications_compose_per_rfc4479() {
    let doc = |s: &str| Presence::parse(s.as_bytes(), &Limits::default()).unwrap();
    let head = r#"<presence xmlns="urn:ietf:params:xml:ns:pidf" xmlns:dm="urn:ietf:params:xml:ns:pidf:data-model" entity="sip:alice@localhost">"#;
    let phone = doc(&format!(
        r#"{head}<tuple id="phone"><status><basic>closed</basic></status></tuple><dm:person id="p"><dm:note>old</dm:note></dm:person></presence>"#
    ));
    let pc = doc(&format!(
        r#"{head}<tuple id="pc"><status><basic>open</basic></status></tuple><dm:person id="p"><dm:note>new</dm:note></dm:person></presence>"#
    ));
    let phone_again = doc(&format!(
        r#"{head}<tuple id="phone"><status><basic>open</basic></status></tuple></presence>"#
    ));
    let c = Presence::compose("sip:alice@localhost", [&phone, &pc]);
    assert_eq!(
        c.tuples.iter().map(|t| t.id.as_str()).collect::<Vec<_>>(),
        ["phone", "pc"]
    );
    assert_eq!(c.basic(), Some(Basic::Open));
    assert_eq!(c.note(), Some("new"), "the newest person wins");
    let c = Presence::compose("sip:alice@localhost", [&phone, &pc, &phone_again]);
    assert_eq!(c.tuples.len(), 2, "same tuple id replaces");
    assert_eq!(c.tuples[0].basic, Some(Basic::Open));
    assert_eq!(
        c.note(),
        Some("new"),
        "a publication without a person keeps the last one"
    );
    let closed = Presence::closed("sip:alice@localhost");
    assert_eq!(closed.basic(), Some(Basic::Closed));
    assert_eq!(Presence::compose("sip:alice@localhost", []).tuples.len(), 0);
}

#[test]
fn cli_prints_canonical_documents_and_one_line_errors() {
    let valid = data_dir().join("pidf/valid/rfc4480-rpid.xml");
    let (code, out, _) = parley(&["pidf", "parse", &valid.display().to_string()], None);
    assert_eq!(code, 0);
    let out = String::from_utf8(out).unwrap();
    assert!(out.starts_with("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<presence xmlns=\"urn:ietf:params:xml:ns:pidf\""), "{out}");
    // Standard input, and the output parses to the same document.
    let (code, again, _) = parley(&["pidf", "parse"], Some(out.as_bytes()));
    assert_eq!((code, String::from_utf8(again).unwrap()), (0, out));

    for (name, input) in [
        (
            "billion-laughs",
            std::fs::read(data_dir().join("pidf/invalid/billion-laughs.xml")).unwrap(),
        ),
        ("ten megabytes", vec![b'<'; 10 << 20]),
        ("deep", "<a>".repeat(200_000).into_bytes()),
        ("binary", vec![0xff; 100]),
    ] {
        let (code, out, err) = parley(&["pidf", "parse"], Some(&input));
        let out = String::from_utf8(out).unwrap();
        assert_eq!(code, 1, "{name}: {out} {err}");
        assert!(
            out.starts_with("error: ") && out.lines().count() == 1,
            "{name}: {out:?}"
        );
    }
}
