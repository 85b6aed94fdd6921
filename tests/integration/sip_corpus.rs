//! Every message of the RFC 4475, RFC 5118 and Parley corpora gets the
//! verdict its manifest states, with an error that names the fault.

use bytes::Bytes;
use parley::proto::sip::stateless::{screen, Policy, Verdict};
use parley::proto::sip::{Framing, HeaderName, Limits, Message, SipError};
use parley_test_support::{sip_corpus, SipCase};

fn check(case: &SipCase) -> Result<Message, SipError> {
    let limits = Limits::default();
    let msg = Message::parse(Bytes::from(case.bytes.clone()), Framing::Datagram, &limits)?;
    msg.validate(&limits)?;
    Ok(msg)
}

fn run_set(set: &str, expected_cases: usize) {
    let cases = sip_corpus(set);
    assert_eq!(cases.len(), expected_cases, "{set}: corpus size changed");
    let mut failures = Vec::new();
    for case in &cases {
        let outcome = check(case);
        match (case.verdict.as_str(), outcome) {
            ("accept", Ok(msg)) => {
                if let Err(why) = accepted_details(case, &msg) {
                    failures.push(format!("{}: {why}", case.name));
                }
            }
            ("accept", Err(e)) => failures.push(format!("{}: refused: {e}", case.name)),
            ("reject", Ok(_)) => {
                failures.push(format!("{}: accepted, should be refused", case.name))
            }
            ("reject", Err(e)) => {
                let fault = case.fault.as_deref().unwrap_or("");
                if !e.to_string().contains(fault) {
                    failures.push(format!(
                        "{}: error {:?} does not name {:?}",
                        case.name,
                        e.to_string(),
                        fault
                    ));
                }
                if let Some(status) = case.status {
                    if e.status() != status {
                        failures.push(format!(
                            "{}: status {} instead of {status}",
                            case.name,
                            e.status()
                        ));
                    }
                }
            }
            (v, _) => failures.push(format!("{}: unknown verdict {v}", case.name)),
        }
    }
    assert!(failures.is_empty(), "{set}:\n{}", failures.join("\n"));
}

/// What an accepted message must also show: exact re-printing, and the
/// per-case facts of the manifest.
fn accepted_details(case: &SipCase, msg: &Message) -> Result<(), String> {
    let printed = msg.to_bytes();
    let skip = case
        .bytes
        .iter()
        .take_while(|&&c| c == b'\r' || c == b'\n')
        .count();
    let expected_len = case.bytes.len() - skip - case.trailing.unwrap_or(0);
    if printed != case.bytes[skip..skip + expected_len] {
        return Err("not re-printed byte for byte".into());
    }
    let again = Message::parse(Bytes::from(printed), Framing::Datagram, &Limits::default())
        .map_err(|e| format!("re-parse failed: {e}"))?;
    if &again != msg {
        return Err("re-parse differs".into());
    }
    if let Some(n) = case.parts {
        let parts = msg
            .multipart(&Limits::default())
            .map_err(|e| e.to_string())?
            .ok_or("not multipart")?;
        if parts.len() != n {
            return Err(format!("{} parts instead of {n}", parts.len()));
        }
    }
    if let Some(n) = case.body_len {
        if msg.body().len() != n {
            return Err(format!("body of {} bytes instead of {n}", msg.body().len()));
        }
    }
    if case.host.is_some() || case.port.is_some() {
        let uri = msg
            .request_uri()
            .ok_or("no Request-URI")?
            .map_err(|e| e.to_string())?;
        let sip = uri.as_sip().ok_or("not a SIP URI")?;
        if let Some(h) = &case.host {
            if sip.host
                != parley::proto::sip::Host::V6(h.parse().map_err(|_| "bad host in manifest")?)
            {
                return Err(format!("host {} instead of [{h}]", sip.host));
            }
        }
        if case.port.is_some() && sip.port != case.port {
            return Err(format!("port {:?} instead of {:?}", sip.port, case.port));
        }
    }
    Ok(())
}

#[test]
fn rfc4475_torture_messages() {
    run_set("rfc4475", 49);
}

#[test]
fn rfc5118_ipv6_messages() {
    run_set("rfc5118", 11);
}

#[test]
fn parley_edge_messages() {
    run_set("parley", 20);
}

/// What the stateless screen does with every corpus message: refused
/// requests are answered with the manifest's status, in a response that
/// parses and echoes the request's identifiers; refused responses and ACKs
/// are dropped; requests the policy cannot serve get 416, 420 or 483.
#[test]
fn stateless_answers() {
    let limits = Limits::default();
    let policy = Policy::default();
    let mut checked = 0;
    for set in ["rfc4475", "rfc5118", "parley"] {
        for case in sip_corpus(set) {
            let is_response = case.bytes.starts_with(b"SIP/");
            let expected = match (case.verdict.as_str(), case.stateless, case.status) {
                (_, Some(0), _) => None,
                (_, Some(code), _) => Some(code),
                ("reject", None, Some(code)) if !is_response => Some(code),
                _ => None,
            };
            let verdict = screen(
                Bytes::from(case.bytes.clone()),
                Framing::Datagram,
                &limits,
                &policy,
            );
            match (expected, verdict) {
                (Some(code), Verdict::Answer { status, response }) => {
                    assert_eq!(status, code, "{}", case.name);
                    let r = Message::parse(Bytes::from(response), Framing::Stream, &limits)
                        .unwrap_or_else(|e| panic!("{}: answer does not parse: {e}", case.name));
                    assert_eq!(r.status(), Some(code), "{}", case.name);
                    assert!(r.top_via().is_some(), "{}: answer has no Via", case.name);
                    if let Some(Ok(to)) = r.to() {
                        assert!(to.tag().is_some(), "{}: answer without a To tag", case.name);
                    }
                    if code == 420 {
                        assert!(
                            r.headers().get(HeaderName::Unsupported).is_some(),
                            "{}",
                            case.name
                        );
                    }
                    checked += 1;
                }
                (None, Verdict::Accept(_)) if case.verdict == "accept" => checked += 1,
                (None, Verdict::Drop(_)) if case.verdict == "reject" => checked += 1,
                (e, v) => panic!("{}: expected {e:?}, got {v:?}", case.name),
            }
        }
    }
    assert_eq!(checked, 49 + 11 + 20);
}

#[test]
fn answers_name_the_fault_and_keep_the_request_identifiers() {
    let limits = Limits::default();
    let case = sip_corpus("rfc4475")
        .into_iter()
        .find(|c| c.name == "badaspec")
        .unwrap();
    let case_bytes = case.bytes.clone();
    let Verdict::Answer { response, .. } = screen(
        Bytes::from(case.bytes),
        Framing::Datagram,
        &limits,
        &Policy::default(),
    ) else {
        panic!("badaspec must be answered");
    };
    let text = String::from_utf8(response).unwrap();
    assert!(
        text.starts_with("SIP/2.0 400 invalid To header: white space inside () around the URI\r\n"),
        "{text}"
    );
    assert!(text.contains("\r\nCall-ID: badaspec.sdf0234n2nds0a099u23h3hnnw009cdkne3\r\n"));
    assert!(text.contains("\r\nCSeq: 3923239 OPTIONS\r\n"));
    // A stateless answer's To tag is the same for a retransmission of the
    // request (RFC 3261 §8.2.7) and depends on the server's secret.
    let tag_of = |secret: u64| {
        let policy = Policy {
            tag_secret: secret,
            ..Policy::default()
        };
        match screen(
            Bytes::from(case_bytes.clone()),
            Framing::Datagram,
            &limits,
            &policy,
        ) {
            Verdict::Answer { response, .. } => {
                let text = String::from_utf8(response).unwrap();
                let to = text.lines().find(|l| l.starts_with("To:")).unwrap();
                to.split(";tag=").nth(1).unwrap().to_string()
            }
            v => panic!("{v:?}"),
        }
    };
    assert_eq!(tag_of(7), tag_of(7));
    assert_ne!(tag_of(7), tag_of(8));
}

/// A stateless answer to a hostile request stays within Parley's own
/// limits: the fuzz inputs that once made the 400 carry 129 fields, or echo
/// a 50,924-byte To line, are answered within bounds or not at all.
#[test]
fn answers_to_hostile_requests_stay_within_limits() {
    let limits = Limits::default();
    let policy = Policy::default();
    let corpus = parley_test_support::fuzz_corpus("sip_message");
    let input = |name: &str| {
        corpus
            .iter()
            .find(|(n, _)| n == name)
            .unwrap_or_else(|| panic!("fuzz input {name}"))
            .1
            .clone()
    };
    let many = input("stateless-answer-field-count");
    let Verdict::Answer { status, response } =
        screen(Bytes::from(many), Framing::Datagram, &limits, &policy)
    else {
        panic!("a request with too many fields gets a 400");
    };
    assert_eq!(status, 400);
    let answer = Message::parse(Bytes::from(response), Framing::Stream, &limits)
        .expect("the answer is within the limits");
    let fields = answer.headers().iter().count();
    assert!(fields <= limits.max_headers, "{fields} fields");
    let vias = answer.headers().values(HeaderName::Via).count();
    assert!((1..126).contains(&vias), "{vias} Vias copied of 126");
    assert!(answer
        .headers()
        .values(HeaderName::Via)
        .next()
        .is_some_and(|v| v.starts_with(b"SIP/2.0/UDP h0.example.com")));

    let long = input("stateless-answer-long-to");
    match screen(Bytes::from(long), Framing::Datagram, &limits, &policy) {
        Verdict::Drop(_) => {}
        other => panic!("a 50,924-byte To is not echoed: {other:?}"),
    }
}
